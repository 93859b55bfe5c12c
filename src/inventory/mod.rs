//! Inventory: what an instance and its host are, gathered read-only from a host.
//!
//! The facts come from one PHP program (`inventory.php`) run on the host as the web user: the
//! config as ownCloud merges it, `version.php`, the apps' code versions, the PHP version and
//! modules, service units, free disk, and from the database SELECTs only (storages, homes,
//! enabled apps, LDAP servers, external mounts, encryption, file count and bytes, stale locks).
//! PHP is what ownCloud itself runs on, so it is on every source, knows every database driver the
//! instance uses, and reads the credentials itself: secrets never leave the host (identity keys and
//! passwords come back as SHA-256 fingerprints). Nothing here writes.

use crate::exit::Failure;
use crate::host::{Probe, Ran, SourceHost, TargetHost};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// The PHP program, sent on stdin to `php` on the host.
pub const INVENTORY_PHP: &str = concat!(include_str!("prelude.php"), include_str!("inventory.php"));

/// The shared PHP prelude (config merge, database connection) for other host programs.
pub const PRELUDE_PHP: &str = include_str!("prelude.php");

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Inventory {
    pub root: String,
    pub php: PhpInfo,
    pub release: Option<Release>,
    #[serde(default)]
    pub occ: bool,
    #[serde(default)]
    pub services: Services,
    #[serde(default)]
    pub disk: BTreeMap<String, Disk>,
    #[serde(default)]
    pub config_exists: bool,
    pub config_owner: Option<String>,
    pub error: Option<String>,
    #[serde(default)]
    pub config_files: Vec<String>,
    /// The merged config; secrets replaced by `{"fingerprint": …}`.
    pub config: Option<serde_json::Map<String, Value>>,
    pub datadir: Option<String>,
    #[serde(default)]
    pub apps_code: BTreeMap<String, AppCode>,
    pub db: Option<DbInfo>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PhpInfo {
    pub version: String,
    #[serde(default)]
    pub modules: Vec<String>,
    pub user: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Release {
    pub version: Option<String>,
    pub versionstring: Option<String>,
    pub edition: Option<String>,
    pub vendor: Option<String>,
    /// The lowest `PHP_VERSION_ID` the release's own version checks accept (e.g. 70400).
    pub php_min: Option<u32>,
    /// The first `PHP_VERSION_ID` they refuse (e.g. 80000).
    pub php_max: Option<u32>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Services {
    #[serde(default)]
    pub systemd: bool,
    #[serde(default)]
    pub units: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Disk {
    pub free: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AppCode {
    pub path: String,
    pub version: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DbInfo {
    #[serde(rename = "type")]
    pub kind: String,
    pub prefix: String,
    #[serde(default)]
    pub ok: bool,
    pub error: Option<String>,
    pub server: Option<String>,
    pub file: Option<String>,
    pub host: Option<String>,
    pub port: Option<String>,
    pub socket: Option<String>,
    pub name: Option<String>,
    #[serde(default)]
    pub storages: Vec<Storage>,
    #[serde(default)]
    pub appconfig: Vec<AppConfigRow>,
    pub filecache: Option<FileCacheSummary>,
    pub locks: Option<Value>,
    pub homes: Option<Vec<Home>>,
    pub external: Option<Vec<ExternalMount>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Storage {
    pub numeric_id: Value,
    pub id: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AppConfigRow {
    pub appid: String,
    pub configkey: String,
    pub configvalue: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FileCacheSummary {
    pub files: Value,
    pub bytes: Value,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Home {
    pub user_id: String,
    pub home: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExternalMount {
    pub mount_id: Value,
    pub mount_point: String,
    pub storage_backend: String,
    pub datadir: Option<String>,
}

/// ownCloud or Nextcloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    OwnCloud,
    Nextcloud,
}

impl std::fmt::Display for Flavor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Flavor::OwnCloud => "ownCloud",
            Flavor::Nextcloud => "Nextcloud",
        })
    }
}

/// A number read from JSON that PHP may have written as a number or a string.
pub fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().map(|f| f as u64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

impl Inventory {
    /// A config value.
    pub fn cfg(&self, key: &str) -> Option<&Value> {
        self.config.as_ref()?.get(key)
    }
    pub fn cfg_str(&self, key: &str) -> Option<&str> {
        self.cfg(key)?.as_str()
    }
    pub fn cfg_bool(&self, key: &str) -> bool {
        match self.cfg(key) {
            Some(Value::Bool(b)) => *b,
            Some(Value::Number(n)) => n.as_i64() == Some(1),
            Some(Value::String(s)) => s == "true" || s == "1",
            _ => false,
        }
    }
    /// The fingerprint the host computed for a secret key.
    pub fn fingerprint(&self, key: &str) -> Option<&str> {
        self.cfg(key)?.get("fingerprint")?.as_str()
    }
    /// The flavor, from `version.php`'s `$vendor` (or the data dir marker's name as fallback).
    pub fn flavor(&self) -> Option<Flavor> {
        match self.release.as_ref()?.vendor.as_deref()? {
            "nextcloud" => Some(Flavor::Nextcloud),
            "owncloud" => Some(Flavor::OwnCloud),
            _ => None,
        }
    }
    /// The version recorded in config.php (the one the database schema is at).
    pub fn config_version(&self) -> Option<&str> {
        self.cfg_str("version")
    }
    /// The code version of the installed release.
    pub fn code_version(&self) -> Option<&str> {
        self.release.as_ref()?.version.as_deref()
    }
    /// Enabled apps and their installed (database) versions.
    pub fn enabled_apps(&self) -> BTreeMap<String, Option<String>> {
        let mut out = BTreeMap::new();
        let Some(db) = &self.db else { return out };
        let rows = &db.appconfig;
        for r in rows.iter().filter(|r| r.configkey == "enabled") {
            let on = matches!(
                r.configvalue.as_deref(),
                Some("yes") | Some("1") | Some("true")
            ) || r.configvalue.as_deref().is_some_and(|v| v.starts_with('['));
            if on {
                let ver = rows
                    .iter()
                    .find(|x| x.appid == r.appid && x.configkey == "installed_version")
                    .and_then(|x| x.configvalue.clone());
                out.insert(r.appid.clone(), ver);
            }
        }
        out
    }
    pub fn appconfig(&self, app: &str, key: &str) -> Option<&str> {
        self.db
            .as_ref()?
            .appconfig
            .iter()
            .find(|r| r.appid == app && r.configkey == key)?
            .configvalue
            .as_deref()
    }
    /// `(host, port)` of every active LDAP configuration.
    pub fn ldap_servers(&self) -> Vec<(String, u16)> {
        let Some(db) = &self.db else { return vec![] };
        let mut out = Vec::new();
        for r in db
            .appconfig
            .iter()
            .filter(|r| r.appid == "user_ldap" && r.configkey.ends_with("ldap_host"))
        {
            let prefix = r.configkey.trim_end_matches("ldap_host");
            let active = self.appconfig("user_ldap", &format!("{prefix}ldap_configuration_active"));
            if active == Some("0") {
                continue;
            }
            let port = self
                .appconfig("user_ldap", &format!("{prefix}ldap_port"))
                .and_then(|p| p.parse().ok())
                .unwrap_or(389);
            if let Some(h) = r.configvalue.as_deref().filter(|h| !h.is_empty()) {
                let h = h
                    .trim_start_matches("ldaps://")
                    .trim_start_matches("ldap://");
                out.push((h.to_string(), port));
            }
        }
        out
    }
    pub fn encryption_enabled(&self) -> bool {
        self.appconfig("core", "encryption_enabled") == Some("yes")
    }
    /// Free bytes on the filesystem holding `path` (or its nearest listed parent).
    pub fn free_bytes(&self) -> Option<u64> {
        self.disk.values().find_map(|d| d.free.map(|f| f as u64))
    }
    /// Files and bytes in the file cache.
    pub fn filecache_totals(&self) -> Option<(u64, u64)> {
        let fc = self.db.as_ref()?.filecache.as_ref()?;
        Some((as_u64(&fc.files)?, as_u64(&fc.bytes)?))
    }
}

fn parse(label: &str, ran: &Ran) -> Result<Inventory, Failure> {
    if ran.status == Some(127) {
        return Err(
            Failure::check(format!("{label}: php is not installed (command not found)")).hint(
                "ownCloud runs on PHP; install the PHP CLI (e.g. apt install php-cli) on that host",
            ),
        );
    }
    let err = ran.stderr_text();
    if let Some(pos) = err.find("Parse error") {
        // PHP names the file and line: "PHP Parse error:  syntax error, … in /x/config/config.php on line 3".
        let what = err[pos..].lines().next().unwrap_or("").trim().to_string();
        return Err(Failure::usage(format!("{label}: a config file cannot be parsed: {what}"))
            .hint("fix the PHP syntax in that file (ownCloud cannot read it either); `php -l FILE` checks it"));
    }
    let text = ran.stdout_text();
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or("");
    serde_json::from_str(line).map_err(|e| {
        Failure::check(format!(
            "{label}: the inventory program gave no usable answer ({e}); php said: {}",
            ran.stderr_text()
        ))
    })
}

/// Inventory of the source instance: config, release, database. Fails with a clear message when
/// the path is not an instance or the instance is not installed.
pub fn source(src: &SourceHost, web_user: Option<&str>) -> Result<Inventory, Failure> {
    let root = src.root().to_path_buf();
    let cfg = root.join("config/config.php");
    let owner = src.probe(&Probe::Owner(cfg.clone()))?;
    if !owner.ok() {
        let what = if src.probe(&Probe::Owner(root.clone()))?.ok() {
            format!("{} has no config/config.php", root.display())
        } else {
            format!("{} does not exist", root.display())
        };
        return Err(Failure::usage(format!("{}: {what}: this is not an ownCloud instance", src.label()))
            .hint("give the instance root, the folder that holds config/ and occ (e.g. /var/www/owncloud)"));
    }
    let owner = owner.stdout_text().trim().to_string();
    let user = web_user.unwrap_or(&owner).to_string();
    let probe = Probe::PhpRead {
        snippet: INVENTORY_PHP,
        args: vec![root.display().to_string(), "full".into()],
    };
    let ran = src.probe_as(&user, &probe)?;
    let inv = parse(src.label(), &ran)?;
    check_instance(src.label(), &root, &inv)?;
    Ok(inv)
}

fn check_instance(label: &str, root: &Path, inv: &Inventory) -> Result<(), Failure> {
    match inv.error.as_deref() {
        Some("config_unreadable") => {
            return Err(Failure::usage(format!(
                "{label}: {}/config/config.php cannot be read",
                root.display()
            ))
            .hint("set [source] web_user to the owner of config.php, or connect as root"))
        }
        Some("config_no_array") => {
            return Err(Failure::usage(format!(
                "{label}: {}/config/config.php does not define $CONFIG as an array",
                root.display()
            ))
            .hint("fix config.php: it must read `<?php $CONFIG = array ( ... );`"))
        }
        Some(other) => {
            return Err(Failure::check(format!(
                "{label}: inventory failed: {other}"
            )))
        }
        None => {}
    }
    if inv.config.is_none() {
        return Err(Failure::usage(format!(
            "{label}: config.php could not be evaluated"
        )));
    }
    if !inv.cfg_bool("installed") {
        return Err(Failure::usage(format!(
            "{label}: the instance at {} is not installed ('installed' is not true in config.php)",
            root.display()
        ))
        .hint("finish the installation (or fix config.php) before migrating: a half-installed instance has nothing to move"));
    }
    Ok(())
}

/// Full inventory of the target once its config is in place (as its web user).
pub fn source_like_target(tgt: &TargetHost, web_user: &str) -> Result<Inventory, Failure> {
    let probe = Probe::PhpRead {
        snippet: INVENTORY_PHP,
        args: vec![tgt.root().display().to_string(), "full".into()],
    };
    let ran = tgt.probe_as(web_user, &probe)?;
    let inv = parse(tgt.label(), &ran)?;
    check_instance(tgt.label(), tgt.root(), &inv)?;
    Ok(inv)
}

/// Inventory of the target: the release installed there, PHP, services, disk. A config there is
/// read when present (a re-run after the config step).
pub fn target(tgt: &TargetHost) -> Result<Inventory, Failure> {
    let probe = Probe::PhpRead {
        snippet: INVENTORY_PHP,
        args: vec![tgt.root().display().to_string(), "release".into()],
    };
    let ran = tgt.probe(&probe)?;
    parse(tgt.label(), &ran)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inventory_program_runs_on_a_release_only_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("version.php"),
            "<?php\n$OC_Version = array(10,15,2,0);\n$OC_VersionString = '10.15.2';\n$OC_Edition = 'Community';\n$vendor = 'owncloud';\n",
        )
        .unwrap();
        let host = crate::host::Host::connect(
            "target",
            &crate::config::Side::Local {
                root: dir.path().into(),
            },
            &Default::default(),
        )
        .unwrap();
        let t = TargetHost::new(host, dir.path().into());
        let inv = target(&t).expect("php must be installed for this test (apt install php-cli)");
        assert_eq!(inv.flavor(), Some(Flavor::OwnCloud));
        assert_eq!(inv.code_version(), Some("10.15.2.0"));
        assert!(!inv.config_exists);
        assert!(!inv.php.version.is_empty());
    }

    #[test]
    fn enabled_apps_and_ldap_from_appconfig() {
        let row = |a: &str, k: &str, v: &str| AppConfigRow {
            appid: a.into(),
            configkey: k.into(),
            configvalue: Some(v.into()),
        };
        let inv = Inventory {
            db: Some(DbInfo {
                appconfig: vec![
                    row("files", "enabled", "yes"),
                    row("files", "installed_version", "1.5.2"),
                    row("old", "enabled", "no"),
                    row("user_ldap", "ldap_host", "ldap.example.test"),
                    row("user_ldap", "ldap_port", "636"),
                    row("user_ldap", "s01ldap_host", "ldap2.example.test"),
                    row("user_ldap", "s01ldap_configuration_active", "0"),
                ],
                ..Default::default()
            }),
            ..Default::default()
        };
        let apps = inv.enabled_apps();
        assert_eq!(apps.get("files"), Some(&Some("1.5.2".to_string())));
        assert!(!apps.contains_key("old"));
        assert_eq!(
            inv.ldap_servers(),
            vec![("ldap.example.test".to_string(), 636)]
        );
    }
}
