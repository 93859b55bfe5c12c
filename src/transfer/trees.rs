//! The managed trees (SPEC "What is copied"): which folders of the source travel, where they go
//! on the target, and what inside them is left out.
//!
//! From the source inventory: `config/` (only `config.php` and `*.config.php`; the target keeps
//! its own release code), the data directory (same absolute path on the target, since
//! `datadirectory` stays equal) without the SQLite database files (the database leg copies them
//! consistently), every `apps_paths` entry that is not the release's `apps/`, a legacy theme
//! folder (`themes/<theme>`), and homes outside the data directory. A tree inside another one is
//! dropped (the outer one carries it). Each tree is one agent root on each side.

use crate::agent::proto::FileType;
use crate::inventory::Inventory;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// One folder copied from the source to the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tree {
    /// A short name for messages and manifest files: `data`, `config`, `apps-external`, ...
    pub name: String,
    /// Absolute path on the source.
    pub source: PathBuf,
    /// Absolute path on the target.
    pub target: PathBuf,
    /// What inside the tree is left out (on both sides: never copied, never deleted).
    pub filter: Filter,
}

/// What a tree leaves out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub enum Filter {
    /// Everything, except these names directly in the tree's root.
    #[default]
    Everything,
    Except(Vec<Vec<u8>>),
    /// `config/`: the folder itself and its `config.php` / `*.config.php` files only.
    ConfigFiles,
}

/// Prefix of the database leg's private folder in the data directory (never copied or deleted).
const SQLITE_TEMP: &[u8] = b".ocmigrate-sqlite.";

impl Filter {
    /// Returns true if and only if the entry at `path` (relative to the tree root) is managed.
    pub fn keep(&self, path: &[u8], ft: FileType) -> bool {
        if path.is_empty() {
            return true;
        }
        let top = !path.contains(&b'/');
        match self {
            Filter::Everything => !(top && path.starts_with(SQLITE_TEMP)),
            Filter::Except(names) => {
                let first = path.split(|&b| b == b'/').next().unwrap_or(path);
                !(names.iter().any(|n| n == first) || first.starts_with(SQLITE_TEMP))
            }
            Filter::ConfigFiles => {
                top && ft != FileType::Dir
                    && (path == b"config.php" || path.ends_with(b".config.php"))
            }
        }
    }
}

impl Tree {
    /// A tree with the same path on both sides.
    pub fn same(name: &str, path: impl Into<PathBuf>, filter: Filter) -> Tree {
        let p = path.into();
        Tree {
            name: name.into(),
            source: p.clone(),
            target: p,
            filter,
        }
    }
}

fn norm(p: &str) -> PathBuf {
    let t = p.trim_end_matches('/');
    PathBuf::from(if t.is_empty() { "/" } else { t })
}

fn inside(inner: &Path, outer: &Path) -> bool {
    inner != outer && inner.starts_with(outer)
}

/// `config/`, the first tree of a final pass: its `config.php` and `*.config.php` files.
pub fn config_tree(source_root: &Path, target_root: &Path) -> Tree {
    Tree {
        name: "config".into(),
        source: source_root.join("config"),
        target: target_root.join("config"),
        filter: Filter::ConfigFiles,
    }
}

/// The trees of an instance, from its inventory. `with_config`: include `config/` (the final
/// pass; during the online sync the target's own config stays until the cut-over).
/// `target_root`: the target's instance root (config/, apps-external/ and themes/ inside the
/// instance root go to the same place under the target's root).
pub fn of_inventory(
    inv: &Inventory,
    source_root: &Path,
    target_root: &Path,
    with_config: bool,
) -> Vec<Tree> {
    let mut out: Vec<Tree> = Vec::new();
    // Paths under the source's instance root move to the same place under the target's root;
    // anything else keeps its absolute path.
    let on_target = |p: &Path| -> PathBuf {
        match p.strip_prefix(source_root) {
            Ok(rest) => target_root.join(rest),
            Err(_) => p.to_path_buf(),
        }
    };
    let datadir = inv
        .datadir
        .as_deref()
        .map(norm)
        .unwrap_or_else(|| source_root.join("data"));
    if with_config {
        out.push(config_tree(source_root, target_root));
    }
    // The data directory keeps its absolute path (`datadirectory` stays equal).
    let mut except = Vec::new();
    if let Some(db) = &inv.db {
        if db.kind == "sqlite" || db.kind == "sqlite3" {
            // The database file is `<datadir>/<dbname>.db` (prelude.php's `ocm_db`).
            let file = db
                .file
                .as_deref()
                .map(Path::new)
                .filter(|f| f.parent() == Some(datadir.as_path()))
                .and_then(|f| f.file_name())
                .map(|n| n.to_string_lossy().into_owned());
            let name = match file {
                Some(f) => f.trim_end_matches(".db").to_string(),
                None => db.name.clone().unwrap_or_else(|| "owncloud".into()),
            };
            for suffix in ["", "-wal", "-shm", "-journal"] {
                except.push(format!("{name}.db{suffix}").into_bytes());
            }
        }
    }
    out.push(Tree {
        name: "data".into(),
        source: datadir.clone(),
        target: datadir.clone(),
        filter: if except.is_empty() {
            Filter::Everything
        } else {
            Filter::Except(except)
        },
    });
    // apps_paths entries that are not the release's apps/.
    let release_apps = source_root.join("apps");
    if let Some(serde_json::Value::Array(paths)) = inv.cfg("apps_paths") {
        for p in paths {
            let Some(path) = p.get("path").and_then(|v| v.as_str()) else {
                continue;
            };
            let path = norm(path);
            if path == release_apps {
                continue;
            }
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "apps".into());
            out.push(Tree {
                name,
                target: on_target(&path),
                source: path,
                filter: Filter::Everything,
            });
        }
    }
    // A legacy theme folder.
    if let Some(theme) = inv
        .cfg_str("theme")
        .filter(|t| !t.is_empty() && !t.contains('/'))
    {
        let p = source_root.join("themes").join(theme);
        out.push(Tree {
            name: format!("theme-{theme}"),
            target: on_target(&p),
            source: p,
            filter: Filter::Everything,
        });
    }
    // Homes outside the data directory.
    if let Some(homes) = inv.db.as_ref().and_then(|d| d.homes.as_ref()) {
        for h in homes {
            let Some(home) = h.home.as_deref().filter(|s| s.starts_with('/')) else {
                continue;
            };
            let p = norm(home);
            out.push(Tree {
                name: format!("home-{}", h.user_id),
                target: p.clone(),
                source: p,
                filter: Filter::Everything,
            });
        }
    }
    dedupe(out)
}

/// Drop trees that are inside another tree (or the same as one before them).
pub fn dedupe(trees: Vec<Tree>) -> Vec<Tree> {
    let mut out: Vec<Tree> = Vec::new();
    for t in &trees {
        let covered = trees
            .iter()
            .any(|o| o.filter != Filter::ConfigFiles && inside(&t.source, &o.source))
            || out.iter().any(|o| o.source == t.source);
        if !covered {
            out.push(t.clone());
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An inventory with a SQLite database, an apps folder besides the release's, a theme, and a
    /// home inside and one outside the data directory.
    pub(crate) fn inventory() -> Inventory {
        serde_json::from_value(serde_json::json!({
            "root": "/var/www/owncloud",
            "php": {"version": "7.4", "modules": []},
            "services": {"systemd": true, "units": []},
            "datadir": "/var/www/owncloud/data",
            "config": {
                "apps_paths": [
                    {"path": "/var/www/owncloud/apps", "url": "/apps", "writable": false},
                    {"path": "/var/www/owncloud/apps-external/", "url": "/apps-external", "writable": true}
                ],
                "theme": "mytheme"
            },
            "db": {"type": "sqlite", "prefix": "oc_", "ok": true, "name": "owncloud",
                   "homes": [{"user_id": "alice", "home": "/var/www/owncloud/data/alice"},
                             {"user_id": "bob", "home": "/home/bob"}]}
        }))
        .unwrap()
    }

    #[test]
    fn filters() {
        let f = Filter::ConfigFiles;
        assert!(f.keep(b"", FileType::Dir));
        assert!(f.keep(b"config.php", FileType::File));
        assert!(f.keep(b"objectstore.config.php", FileType::File));
        assert!(!f.keep(b"config.sample.php", FileType::File));
        assert!(!f.keep(b".htaccess", FileType::File));
        assert!(!f.keep(b"sub/config.php", FileType::File));
        let e = Filter::Except(vec![b"owncloud.db".to_vec(), b"owncloud.db-wal".to_vec()]);
        assert!(!e.keep(b"owncloud.db", FileType::File));
        assert!(!e.keep(b"owncloud.db-wal", FileType::File));
        assert!(e.keep(b"owncloud.db-x", FileType::File));
        assert!(e.keep(b"alice/owncloud.db", FileType::File));
        assert!(!e.keep(b".ocmigrate-sqlite.Ab12/owncloud.db", FileType::File));
        assert!(Filter::Everything.keep(b"a/.ocmigrate-sqlite.x", FileType::File));
    }

    #[test]
    fn inner_trees_are_dropped() {
        let t = dedupe(vec![
            Tree::same("data", "/srv/data", Filter::Everything),
            Tree::same("home-a", "/srv/data/a", Filter::Everything),
            Tree::same("home-b", "/home/b", Filter::Everything),
            Tree::same("home-b2", "/home/b", Filter::Everything),
            Tree::same("config", "/srv/data/config", Filter::ConfigFiles),
        ]);
        let names: Vec<_> = t.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["data", "home-b"]);
    }

    #[test]
    fn trees_of_an_inventory() {
        let inv = inventory();
        let t = of_inventory(
            &inv,
            Path::new("/var/www/owncloud"),
            Path::new("/srv/oc"),
            true,
        );
        let got: Vec<_> = t
            .iter()
            .map(|t| format!("{} {} {}", t.name, t.source.display(), t.target.display()))
            .collect();
        assert_eq!(
            got,
            [
                "config /var/www/owncloud/config /srv/oc/config",
                "data /var/www/owncloud/data /var/www/owncloud/data",
                "apps-external /var/www/owncloud/apps-external /srv/oc/apps-external",
                "theme-mytheme /var/www/owncloud/themes/mytheme /srv/oc/themes/mytheme",
                "home-bob /home/bob /home/bob",
            ]
        );
        assert!(!t[1].filter.keep(b"owncloud.db-shm", FileType::File));
    }
}
