//! The target as the last pass left it: an online pass saves the target's trees as it leaves
//! them (`<state>/manifests/<tree>.<key>.target`, the key a hash of the target host, the tree's
//! target folder and its filter), so that the final pass, in the window, reads only the source
//! and takes the target's side from these files: one scan of every file less while the service
//! is down. The pass's merge writes its read of the target as it streams ([`AsRead`]); a tree
//! it wrote nothing to is saved from that read, a tree it wrote a delta to from that read with
//! the written paths read again, any other tree is read whole again at the pass's end
//! ([`save`]).
//!
//! Invariants:
//! * Every pass takes the files at its start, before it writes anything, and removes them all,
//!   used or not: a file on disk always describes the target as the pass that wrote it left it,
//!   and no later write of ours has happened since (a pass that was killed leaves none).
//! * Only a pass that reads the target again at its end (its exit check) uses them; a target
//!   changed behind our back (by hand, by an instance that ran on it) makes that check or the
//!   pass itself fail, and the pass is then run again with the target scanned (`pass.rs`).
//! * Only complete scans are saved: no unreadable path, the tree's root present.

use super::manifest::{self, EntryRef, Manifest, PassId};
use super::Tree;
use crate::agent::client::{AgentClient, AgentError, ScanItem};
use crate::agent::proto::{Entry, FileType, RelPath, Target};
use std::collections::{BTreeSet, HashSet};
use std::io;
use std::path::{Path, PathBuf};

const EXT: &str = "target";
/// A merge's read of the target, not yet the target as the pass leaves it (removed by `take`).
const EXT_READ: &str = "read";

/// The file of a tree's saved target manifest in `dir`, for the target host `host`.
fn file(dir: &Path, host: &str, tree: &Tree) -> PathBuf {
    let mut h = blake3::Hasher::new();
    h.update(host.as_bytes());
    h.update(&[0]);
    h.update(tree.target.as_os_str().as_encoded_bytes());
    h.update(&[0]);
    h.update(format!("{:?}", tree.filter).as_bytes());
    let key = h.finalize().to_hex();
    dir.join(format!("{}.{}.{EXT}", tree.name, &key[..16]))
}

/// The saved target manifests of `trees` (when `usable`; `None` for a tree without a complete
/// one), after which every saved target manifest in `dir` is removed. An error names the file
/// that could not be removed: the pass must not write to the target while it is there.
pub(crate) fn take(
    dir: Option<&Path>,
    host: &str,
    trees: &[Tree],
    usable: bool,
) -> Result<Vec<Option<Manifest>>, String> {
    let Some(dir) = dir else {
        return Ok(trees.iter().map(|_| None).collect());
    };
    let loaded = trees
        .iter()
        .map(|t| {
            usable
                .then(|| manifest::load(&file(dir, host, t)).ok())
                .flatten()
                .map(|(_, m)| m)
                .filter(|m| m.skipped.is_empty() && m.root_error.is_none() && !m.is_empty())
        })
        .collect();
    let entries = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(loaded),
        Err(e) => return Err(format!("cannot list {}: {e}", dir.display())),
    };
    for e in entries.flatten() {
        let p = e.path();
        // Finished files only: this pass's own writers may already be writing `*.tmp` (a
        // killed pass's temporary is truncated by the next writer of the same name).
        if p.extension().is_some_and(|x| x == EXT || x == EXT_READ) {
            std::fs::remove_file(&p)
                .or_else(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => Ok(()),
                    _ => Err(e),
                })
                .map_err(|e| format!("cannot remove {}: {e}", p.display()))?;
        }
    }
    Ok(loaded)
}

/// A tree's target as the pass's merge read it, written as it streams (`<tree>.<key>.read`,
/// never taken by a pass), to become the saved manifest at the pass's end: as it is when the
/// pass wrote nothing there ([`AsRead::keep`]), or with every path the pass wrote (and their
/// folders) read again on the target ([`AsRead::patch`]), which for a delta is a few thousand
/// `lstat`s instead of a walk of the whole tree.
pub(crate) struct AsRead {
    w: manifest::Writer,
    id: PassId,
    read: PathBuf,
    target: PathBuf,
    /// Files sent while the scans ran (their paths are read again).
    pub early: Vec<RelPath>,
    /// A file of several links was read: a write to one of its names changes the count the
    /// others show, which no `lstat` of the written paths sees; such a tree is read again whole.
    pub links: bool,
}

impl AsRead {
    pub(crate) fn create(dir: &Path, host: &str, tree: &Tree, id: PassId) -> io::Result<AsRead> {
        let target = file(dir, host, tree);
        let read = target.with_extension(EXT_READ);
        Ok(AsRead {
            w: manifest::Writer::create(&read, id)?,
            id,
            read,
            target,
            early: Vec::new(),
            links: false,
        })
    }

    pub(crate) fn push(&mut self, e: &Entry) -> io::Result<()> {
        if e.file_type == FileType::File && e.nlink > 1 {
            self.links = true;
        }
        self.w.push(&EntryRef::of(e))
    }

    /// Entries read.
    pub(crate) fn entries(&self) -> u64 {
        self.w.entries()
    }

    /// The pass wrote nothing in the tree: what it read is the target as it leaves it.
    pub(crate) fn keep(self) -> io::Result<()> {
        self.w.finish()?;
        std::fs::rename(&self.read, &self.target)
    }

    /// The pass wrote `written` (paths it wrote, created, set attributes of, or removed, and
    /// their folders) and removed whatever was below the paths of `gone`: the read without
    /// them, plus what `restat` (one answer per written path, in order: the entry, or `None`
    /// when there is nothing there) finds there now, the tree's filter applied.
    pub(crate) fn patch(
        self,
        written: &BTreeSet<Vec<u8>>,
        gone: &HashSet<Vec<u8>>,
        filter: &super::Filter,
        restat: impl FnOnce(Vec<RelPath>) -> Result<Vec<Option<Entry>>, String>,
    ) -> Result<(), String> {
        let AsRead {
            w,
            id,
            read,
            target,
            ..
        } = self;
        let io = |e: io::Error| e.to_string();
        w.finish().map_err(io)?;
        // The read is copied record by record, never held whole (a million entries would be
        // ~120 MB on the operator), and removed whatever happens.
        let copied = (|| {
            let paths: Vec<RelPath> = written
                .iter()
                .map(|p| RelPath::new(p.clone()).map_err(|e| format!("{e:?}")))
                .collect::<Result<_, _>>()?;
            let now = restat(paths.clone())?;
            if now.len() != paths.len() {
                return Err("fewer answers than paths".into());
            }
            super::timing::mark("save: written paths read again");
            let (_, mut records) = manifest::Reader::open(&read).map_err(io)?;
            let mut out = manifest::Writer::create(&target, id).map_err(io)?;
            while let Some(r) = records.next_record().map_err(io)? {
                if let manifest::Record::Entry(e) = r {
                    let p = e.path.as_bytes();
                    if !written.contains(p) && !under_gone(gone, p) {
                        out.push(&EntryRef::of(&e)).map_err(io)?;
                    }
                }
            }
            for e in now.into_iter().flatten() {
                if e.path.is_root() || filter.keep(e.path.as_bytes(), e.file_type) {
                    out.push(&EntryRef::of(&e)).map_err(io)?;
                }
            }
            out.finish().map_err(io)
        })();
        let _ = std::fs::remove_file(&read);
        copied
    }
}

/// True if `p` or one of its parents is in `gone`.
fn under_gone(gone: &HashSet<Vec<u8>>, p: &[u8]) -> bool {
    let mut a = p;
    loop {
        if gone.contains(a) {
            return true;
        }
        match a.iter().rposition(|&b| b == b'/') {
            Some(i) => a = &a[..i],
            None if !a.is_empty() => a = &[],
            None => return false,
        }
    }
}

/// Read `trees` on the target agent `ta` and save each complete scan in `dir` (under `id`).
/// Trees not to save (`keep[i]` false) are skipped. Returns the names of the trees saved; an
/// error is for a warning (the next pass then scans the target as before).
pub(crate) fn save(
    dir: &Path,
    host: &str,
    ta: &mut AgentClient,
    trees: &[Tree],
    keep: &[bool],
    id: PassId,
) -> Result<Vec<String>, String> {
    let mut saved = Vec::new();
    for (i, tree) in trees.iter().enumerate() {
        if !keep.get(i).copied().unwrap_or(false) {
            continue;
        }
        if ta.welcome().roots.get(i).is_some_and(|r| r.is_err()) {
            continue;
        }
        // Written as the scan delivers it (not held whole: 100,000 entries are ~14 MB).
        let path = file(dir, host, tree);
        let mut w = manifest::Writer::create(&path, id)
            .map_err(|e| format!("saving the target's manifest of {}: {e}", tree.name))?;
        let mut complete = true;
        let mut write_error = None;
        let r = ta.scan(Target::new(i as u16, RelPath::root()), |item| match item {
            ScanItem::Entry(e) => {
                if tree.filter.keep(e.path.as_bytes(), e.file_type) && write_error.is_none() {
                    write_error = w.push(&EntryRef::of(&e)).err();
                }
            }
            ScanItem::Skipped { path, .. } => {
                if tree.filter.keep(path.as_bytes(), FileType::Dir) {
                    complete = false;
                }
            }
        });
        let r = match r {
            Ok(_) => Ok(()),
            // The root could not be read: not complete, nothing saved.
            Err(AgentError::Failed { .. }) => {
                complete = false;
                Ok(())
            }
            Err(e) => Err(format!("reading the target's {} again: {e}", tree.name)),
        };
        if let Err(e) = r {
            w.abandon();
            return Err(e);
        }
        if let Some(e) = write_error {
            w.abandon();
            return Err(format!(
                "saving the target's manifest of {}: {e}",
                tree.name
            ));
        }
        if !complete || w.entries() == 0 {
            w.abandon();
            continue;
        }
        w.finish()
            .map_err(|e| format!("saving the target's manifest of {}: {e}", tree.name))?;
        saved.push(tree.name.clone());
    }
    Ok(saved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::proto::{Entry, FileType, RelPath, Time};

    const H: &str = "root@new";

    fn tree(name: &str, target: &str) -> Tree {
        Tree {
            name: name.into(),
            source: PathBuf::from(format!("/old/{name}")),
            target: PathBuf::from(target),
            filter: super::super::Filter::Everything,
        }
    }

    fn m() -> Manifest {
        let e = |p: &str, ft| Entry {
            path: RelPath::new(p).unwrap(),
            file_type: ft,
            mode: 0o644,
            uid: 1,
            gid: 1,
            size: 3,
            mtime: Time { sec: 5, nsec: 6 },
            ctime: Time::default(),
            dev: 1,
            ino: 2,
            nlink: 1,
            target: vec![],
        };
        Manifest::from_entries([e("", FileType::Dir), e("a", FileType::File)])
    }

    /// A saved manifest is taken once: used by the pass that takes it, removed for every later
    /// one; one of another target folder or host (the migration file changed) is never used; one with
    /// unreadable paths is not used; `usable` false removes them all unused.
    #[test]
    fn saved_target_manifests_are_taken_once_and_only_for_their_folder() {
        let d = tempfile::tempdir().unwrap();
        let data = tree("data", "/new/data");
        manifest::save(&m(), &file(d.path(), H, &data), PassId::new()).unwrap();
        let got = take(Some(d.path()), H, std::slice::from_ref(&data), true).unwrap();
        assert_eq!(got[0].as_ref().map(|m| m.len()), Some(2));
        let again = take(Some(d.path()), H, std::slice::from_ref(&data), true).unwrap();
        assert!(again[0].is_none(), "taken once");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);

        manifest::save(&m(), &file(d.path(), H, &data), PassId::new()).unwrap();
        let moved = tree("data", "/srv/new-data");
        let got = take(Some(d.path()), H, &[moved], true).unwrap();
        assert!(got[0].is_none(), "another target folder");
        manifest::save(&m(), &file(d.path(), H, &data), PassId::new()).unwrap();
        let got = take(
            Some(d.path()),
            "root@other",
            std::slice::from_ref(&data),
            true,
        )
        .unwrap();
        assert!(got[0].is_none(), "another target host");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);

        let mut bad = m();
        bad.skipped.push(manifest::Skip {
            path: RelPath::new("x").unwrap(),
            code: crate::agent::proto::ErrorCode::PermissionDenied,
            message: "denied".into(),
        });
        manifest::save(&bad, &file(d.path(), H, &data), PassId::new()).unwrap();
        assert!(take(Some(d.path()), H, std::slice::from_ref(&data), true).unwrap()[0].is_none());

        manifest::save(&m(), &file(d.path(), H, &data), PassId::new()).unwrap();
        std::fs::write(d.path().join("data.source"), b"kept").unwrap();
        assert!(take(Some(d.path()), H, std::slice::from_ref(&data), false).unwrap()[0].is_none());
        let left: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["data.source"], "only target manifests are removed");
        assert!(take(None, H, &[data], true).unwrap()[0].is_none());
    }
}
