//! Inventory: what an instance and its host are, gathered read-only from a host.
//!
//! The facts come from one PHP program (`inventory.php`, after `src/instance/merge.php`, the one
//! PHP config merge, and `prelude.php`) run on the host as the web user: the config as ownCloud
//! merges it, `version.php`, the apps' code versions, the PHP version and
//! modules, service units, free disk, and from the database SELECTs only (storages, homes,
//! enabled apps, LDAP servers, external mounts, encryption, file count and bytes, stale locks).
//! PHP is what ownCloud itself runs on, so it is on every source, knows every database driver the
//! instance uses, and reads the credentials itself: secrets never leave the host (identity keys and
//! passwords come back as SHA-256 fingerprints). Nothing here writes.
//!
//! When PHP cannot run on a host (not installed, or it does not start), [`without_php`] reads
//! the config files over the host layer with ocmigrate's own reader instead and says so
//! ([`Inventory::without_php`]; `plan` turns it into a warning). [`read_instance`] gives the
//! [`Instance`] model (database parameters included) by the same two roads.

pub mod without_php;

pub use without_php::{fetch_instance_files, fingerprint, shown_config, SECRET_KEYS};

use crate::exit::Failure;
use crate::host::{Probe, Ran, ReadSide, SourceHost, TargetHost};
use crate::instance::{
    merged_config_from_php, read_code_version, Instance, MergedConfig, MERGE_SNIPPET,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// The PHP program, sent on stdin to `php` on the host.
pub const INVENTORY_PHP: &str = concat!(
    include_str!("../instance/merge.php"),
    include_str!("../instance/dump.php"),
    include_str!("prelude.php"),
    include_str!("inventory.php")
);

/// The shared PHP prelude (config merge, database connection) for other host programs.
pub const PRELUDE_PHP: &str = concat!(
    include_str!("../instance/merge.php"),
    include_str!("prelude.php")
);

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
    /// Set when PHP could not run on the host, saying why: the config was then read by
    /// ocmigrate's own reader, and the PHP facts, the apps' code and the database are unknown.
    #[serde(default)]
    pub without_php: Option<String>,
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
    /// Why the homes could not be read (`homes` is then `None`): normal on Nextcloud, which has
    /// no home column; see [`Inventory::homes_unread`].
    pub homes_error: Option<String>,
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

pub use crate::instance::Flavor;

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
        Flavor::from_vendor(self.release.as_ref()?.vendor.as_deref()?)
    }
    /// The version recorded in config.php (the one the database schema is at).
    pub fn config_version(&self) -> Option<&str> {
        self.cfg_str("version")
    }
    /// Why the users' homes are unknown although the database was read and this instance keeps
    /// them there. ownCloud 10 records every home in `oc_accounts.home`, and a home may lie outside
    /// the data directory, so a pass that cannot read them would leave such a home behind.
    /// Nextcloud has no such column (its homes are `<datadirectory>/<uid>`), nor had ownCloud
    /// before 10; Nextcloud's config says `version` 9.x (Nextcloud 10) or 11 and later, never 10.
    pub fn homes_unread(&self) -> Option<&str> {
        let db = self.db.as_ref().filter(|d| d.ok && d.homes.is_none())?;
        let owncloud_10 = self
            .config_version()
            .is_some_and(|v| v.split('.').next() == Some("10"));
        let nextcloud = self.flavor() == Some(Flavor::Nextcloud);
        (owncloud_10 && !nextcloud).then(|| db.homes_error.as_deref().unwrap_or("no reason given"))
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

/// Why PHP could not run, when the command's outcome says so: the shell found no `php` (127) or
/// could not execute it (126). Anything else (a PHP error) is PHP's answer, not its absence.
pub fn php_cannot_run(ran: &Ran) -> Option<String> {
    let first = ran.stderr_text().lines().next().unwrap_or("").to_string();
    match ran.status {
        Some(127) => Some(format!("php is not installed (command not found: {first})")),
        Some(126) => Some(format!("php cannot be executed ({first})")),
        _ => None,
    }
}

fn parse(label: &str, ran: &Ran) -> Result<Inventory, Failure> {
    let err = ran.stderr_text();
    if let Some(pos) = err.find("Parse error") {
        // PHP names the file and line: "PHP Parse error:  syntax error, … in /x/version.php on line 3".
        let what = err[pos..].lines().next().unwrap_or("").trim().to_string();
        return Err(Failure::usage(format!("{label}: a PHP file of the instance cannot be parsed: {what}"))
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

/// What the inventory program reads (its `$argv[2]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The release, services, disk, apps, the config and the database.
    Full,
    /// The release, services, disk and apps; no config, no database.
    Release,
    /// The config alone (merged as ownCloud does, secrets as fingerprints) and the data folder.
    Config,
    /// Everything but the database: the release, services, disk, apps and the config.
    NoDatabase,
    /// What a file pass needs for its trees: the config and the homes in the database.
    Trees,
}

/// Run the inventory program on a side (as `user`, or as the login user); `Ok(Err(why))` when
/// PHP cannot run there.
fn run_inventory(
    side: &ReadSide,
    user: Option<&str>,
    mode: Mode,
) -> Result<Result<Inventory, String>, Failure> {
    let probe = inventory_probe(side, mode);
    let ran = match user {
        Some(u) => side.probe_as(u, &probe)?,
        None => side.probe(&probe)?,
    };
    inventory_of(side, &ran)
}

/// [`run_inventory`] as the owner of `config/config.php`, which the same command finds;
/// `Ok(None)` when there is no such file to find.
fn run_inventory_as_config_owner(
    side: &ReadSide,
    mode: Mode,
) -> Result<Option<Result<Inventory, String>>, Failure> {
    let probe = inventory_probe(side, mode);
    let config = side.root().join("config/config.php");
    match side.probe_as_owner_of(&config, &probe)? {
        None => Ok(None),
        Some(ran) => inventory_of(side, &ran).map(Some),
    }
}

fn inventory_probe(side: &ReadSide, mode: Mode) -> Probe {
    let mode = match mode {
        Mode::Full => "full",
        Mode::Release => "release",
        Mode::Config => "config",
        Mode::NoDatabase => "nodb",
        Mode::Trees => "trees",
    };
    Probe::PhpRead {
        snippet: INVENTORY_PHP,
        args: vec![side.root().display().to_string(), mode.into()],
    }
}

/// The inventory the program printed; `Ok(Err(why))` when PHP could not run.
fn inventory_of(side: &ReadSide, ran: &Ran) -> Result<Result<Inventory, String>, Failure> {
    match php_cannot_run(ran) {
        Some(why) => Ok(Err(why)),
        None => parse(side.label(), ran).map(Ok),
    }
}

/// The source's inventory without PHP, its database read with the database's own client.
fn source_inventory_without_php(
    src: &SourceHost,
    mode: Mode,
    why: String,
) -> Result<Inventory, Failure> {
    let (mut inv, params) = without_php::inventory_and_params(src, mode, why)?;
    if let (Some(p), Some(db)) = (params, inv.db.as_mut()) {
        without_php::read_database(src, &p, db, mode);
    }
    Ok(inv)
}

/// The owner of `<root>/config/config.php`, or the failure that says this is not an instance
/// (no such folder, a folder without a config, or a release that is not configured yet).
pub fn config_owner(side: &ReadSide) -> Result<String, Failure> {
    let root = side.root();
    let owner = side.probe(&Probe::Owner(root.join("config/config.php")))?;
    if owner.ok() {
        return Ok(owner.stdout_text().trim().to_string());
    }
    let what = if !side.probe(&Probe::Owner(root.to_path_buf()))?.ok() {
        format!("{} does not exist", root.display())
    } else if side.read_file(&root.join("version.php"))?.is_some() {
        format!(
            "{} holds ownCloud code but no config/config.php: the instance is not configured (a release without an installation)",
            root.display()
        )
    } else {
        format!("{} has no config/config.php", root.display())
    };
    Err(Failure::usage(format!(
        "{}: {what}: this is not an ownCloud instance",
        side.label()
    ))
    .hint("give the instance root, the folder that holds config/ and occ (e.g. /var/www/owncloud)"))
}

/// Inventory of the source instance: config, release, database. Fails with a clear message when
/// the path is not an instance or the instance is not installed.
pub fn source(src: &SourceHost, web_user: Option<&str>) -> Result<Inventory, Failure> {
    source_with(src, web_user, Mode::Full)
}

/// What a file pass needs of the source: [`source`] without the release, the apps' code and the
/// database's tables other than the homes (on a large instance, counting the file cache alone
/// takes seconds, and the final pass runs while the service is down).
pub fn source_for_trees(src: &SourceHost, web_user: Option<&str>) -> Result<Inventory, Failure> {
    source_with(src, web_user, Mode::Trees)
}

/// One round trip when all goes well: PHP runs as the web user given, or as the owner of
/// `config.php`, which the same command finds. Only an instance that turns out to have no config
/// costs a second look ([`config_owner`]), which says why.
fn source_with(src: &SourceHost, web_user: Option<&str>, mode: Mode) -> Result<Inventory, Failure> {
    let ran = match web_user {
        Some(u) => run_inventory(src, Some(u), mode)?,
        None => match run_inventory_as_config_owner(src, mode)? {
            Some(r) => r,
            None => {
                let owner = config_owner(src)?;
                run_inventory(src, Some(&owner), mode)?
            }
        },
    };
    let inv = match ran {
        Ok(inv) => inv,
        Err(why) => source_inventory_without_php(src, mode, why)?,
    };
    if !inv.config_exists {
        // Not an instance (a precise failure), or PHP's user cannot see a config we can.
        let owner = config_owner(src)?;
        return Err(config_hidden(src, &inv, &owner));
    }
    check_instance(src.label(), src.root(), &inv)?;
    Ok(inv)
}

/// `config.php` exists (the login user sees it, owned by `owner`) but the user the inventory ran
/// as does not: a folder on the way is closed to that user, or `web_user` names the wrong one.
fn config_hidden(side: &ReadSide, inv: &Inventory, owner: &str) -> Failure {
    let file = side.root().join("config/config.php");
    let who = inv
        .php
        .user
        .as_deref()
        .unwrap_or(if inv.without_php.is_some() {
            "the ssh login user"
        } else {
            "the user it ran as"
        });
    let msg = format!(
        "{}: {} exists (owned by {owner}), but the inventory, run as {who}, cannot see it",
        side.label(),
        file.display()
    );
    let hint = if who == owner {
        format!("a folder above config/ is closed to {owner}: let {owner} through it (`namei -l {}` shows each folder's mode)", file.display())
    } else {
        format!("set [source] web_user = \"{owner}\" (the owner of config.php) in the migration file, or let {who} read config/ (`namei -l {}` shows each folder's mode)", file.display())
    };
    Failure::usage(msg).hint(hint)
}

/// [`source`] with ocmigrate's own reader even where PHP runs: for comparing the two roads.
pub fn source_without_php(src: &SourceHost) -> Result<Inventory, Failure> {
    source_without_php_with(src, Mode::Full)
}

/// [`source_for_trees`] with ocmigrate's own reader even where PHP runs.
pub fn source_for_trees_without_php(src: &SourceHost) -> Result<Inventory, Failure> {
    source_without_php_with(src, Mode::Trees)
}

fn source_without_php_with(src: &SourceHost, mode: Mode) -> Result<Inventory, Failure> {
    config_owner(src)?;
    let inv = source_inventory_without_php(src, mode, "asked to read without PHP".into())?;
    check_instance(src.label(), src.root(), &inv)?;
    Ok(inv)
}

fn check_instance(label: &str, root: &Path, inv: &Inventory) -> Result<(), Failure> {
    let error = inv
        .error
        .as_deref()
        .map(|e| e.split_once(": ").unwrap_or((e, "")));
    match error {
        Some(("config_unreadable", detail)) => {
            return Err(Failure::usage(format!(
                "{label}: the config in {}/config cannot be read{}",
                root.display(),
                if detail.is_empty() {
                    String::new()
                } else {
                    format!(" ({detail})")
                }
            ))
            .hint("set [source] web_user to the owner of config.php, or connect as root"))
        }
        Some(("config_failed", detail)) => return Err(Failure::usage(format!(
            "{label}: a config file cannot be parsed: {detail}"
        ))
        .hint(
            "fix that file (ownCloud cannot read it either); `php -l FILE` shows PHP's view of it",
        )),
        Some(("config_no_array", _)) => {
            return Err(Failure::usage(format!(
                "{label}: {}/config/config.php does not define $CONFIG as an array",
                root.display()
            ))
            .hint("fix config.php: it must read `<?php $CONFIG = array ( ... );`"))
        }
        Some((other, detail)) => {
            return Err(Failure::check(format!(
                "{label}: inventory failed: {other} {detail}"
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

/// Inventory of the target once its config is in place (as its web user): the release,
/// services, apps and config, as for the source, but not its database (target-up reads it while
/// the import may still hold it, and needs only the log paths and the services).
pub fn source_like_target(tgt: &TargetHost, web_user: &str) -> Result<Inventory, Failure> {
    let inv = match run_inventory(tgt, Some(web_user), Mode::NoDatabase)? {
        Ok(inv) => inv,
        Err(why) => without_php::inventory(tgt, true, why)?,
    };
    check_instance(tgt.label(), tgt.root(), &inv)?;
    Ok(inv)
}

/// The target's config as its web user's PHP reads it, and nothing else (no release, apps,
/// services or database: target-config runs while the database is being imported, and needs
/// only the identity keys, `version`, `datadirectory` and `maintenance`). Without PHP there,
/// ocmigrate's own reader.
pub fn target_config(tgt: &TargetHost, web_user: &str) -> Result<Inventory, Failure> {
    let inv = match run_inventory(tgt, Some(web_user), Mode::Config)? {
        Ok(inv) => inv,
        Err(why) => without_php::inventory(tgt, true, why)?,
    };
    check_instance(tgt.label(), tgt.root(), &inv)?;
    Ok(inv)
}

/// Inventory of the target: the release installed there, PHP, services, disk. A config there is
/// read when present (a re-run after the config step).
pub fn target(tgt: &TargetHost) -> Result<Inventory, Failure> {
    match run_inventory(tgt, None, Mode::Release)? {
        Ok(inv) => Ok(inv),
        Err(why) => without_php::inventory(tgt, false, why),
    }
}

/// The instance model of a side and how its config was read.
#[derive(Debug)]
pub struct ReadInstance {
    pub instance: Instance,
    /// `None`: PHP read the config; else why ocmigrate's own reader did.
    pub without_php: Option<String>,
}

/// The merged config read by PHP on the host ([`MERGE_SNIPPET`], as `user`), or `Ok(Err(why))`
/// when PHP cannot run there.
pub fn merged_config_with_php(
    side: &ReadSide,
    user: &str,
) -> Result<Result<MergedConfig, String>, Failure> {
    let config_dir = side.root().join("config");
    let ran = side.probe_as(
        user,
        &Probe::PhpRead {
            snippet: MERGE_SNIPPET,
            args: vec![config_dir.display().to_string()],
        },
    )?;
    if let Some(why) = php_cannot_run(&ran) {
        return Ok(Err(why));
    }
    merged_config_from_php(side.root(), ran.status, &ran.stdout, &ran.stderr_text())
        .map(Ok)
        .map_err(|f| labelled(side, f))
}

/// A failure from the host-free [`crate::instance`] code, with the side's label in front.
fn labelled(side: &ReadSide, f: Failure) -> Failure {
    Failure {
        message: format!("{}: {}", side.label(), f.message),
        ..f
    }
}

/// The instance of a side (config merged as ownCloud does, `version.php`): read by PHP on the
/// host as `user`, or by ocmigrate's own reader when PHP cannot run there.
pub fn read_instance(side: &ReadSide, user: &str) -> Result<ReadInstance, Failure> {
    config_owner(side)?;
    let root = side.root();
    let (merged, without_php) = match merged_config_with_php(side, user)? {
        Ok(m) => (m, None),
        Err(why) => (without_php::merged_config(side)?, Some(why)),
    };
    let version = side.read_file(&root.join("version.php"))?;
    let code = read_code_version(root, version.as_deref())?;
    let instance = Instance::from_parts(root, merged, code)?;
    Ok(ReadInstance {
        instance,
        without_php,
    })
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

    /// Unread homes stop a pass only where the database keeps them: ownCloud 10, known by its
    /// config's version (a pass's inventory has no release) or by its release.
    #[test]
    fn unread_homes_matter_on_owncloud_10_only() {
        let inv = |version: &str, vendor: Option<&str>, ok: bool, homes: Option<Vec<Home>>| {
            let mut config = serde_json::Map::new();
            config.insert("version".into(), version.into());
            Inventory {
                config: Some(config),
                release: vendor.map(|v| Release {
                    vendor: Some(v.into()),
                    ..Default::default()
                }),
                db: Some(DbInfo {
                    ok,
                    homes,
                    homes_error: Some("Table 'oc.oc_accounts' doesn't exist".into()),
                    ..Default::default()
                }),
                ..Default::default()
            }
        };
        let why = "Table 'oc.oc_accounts' doesn't exist";
        assert_eq!(inv("10.15.2.1", None, true, None).homes_unread(), Some(why));
        assert_eq!(
            inv("10.0.3.3", Some("owncloud"), true, None).homes_unread(),
            Some(why)
        );
        // Nextcloud: no home column, by design.
        assert_eq!(inv("33.0.1.2", None, true, None).homes_unread(), None);
        assert_eq!(inv("9.1.6.1", None, true, None).homes_unread(), None);
        assert_eq!(
            inv("10.0.1.5", Some("nextcloud"), true, None).homes_unread(),
            None
        );
        // Read (even empty), or the database not read at all (a failure of its own).
        assert_eq!(
            inv("10.15.2.1", None, true, Some(Vec::new())).homes_unread(),
            None
        );
        assert_eq!(inv("10.15.2.1", None, false, None).homes_unread(), None);
    }

    /// The top-level keys whose shown values differ (names only: values may be secrets).
    pub(crate) fn differing_keys(a: &Inventory, b: &Inventory) -> Vec<String> {
        let empty = serde_json::Map::new();
        let (a, b) = (
            a.config.as_ref().unwrap_or(&empty),
            b.config.as_ref().unwrap_or(&empty),
        );
        let mut keys: Vec<String> = a
            .iter()
            .filter(|(k, v)| b.get(*k) != Some(*v))
            .map(|(k, _)| k.clone())
            .collect();
        keys.extend(b.keys().filter(|k| !a.contains_key(*k)).cloned());
        keys
    }

    /// The PHP merge of the inventory program (merge.php through prelude.php) and the Rust reader
    /// make the same inventory of the fixture instance (secrets compared by fingerprint).
    #[test]
    fn php_and_rust_inventories_agree_on_the_fixture_instance() {
        let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/phpconfig_fixtures/instance");
        let host = crate::host::Host::connect(
            "source",
            &crate::config::Side::Local { root: root.clone() },
            &Default::default(),
        )
        .unwrap();
        let src = SourceHost::new(host, root.clone());
        let php = source(&src, None).expect("php must be installed for this test (php-cli)");
        assert_eq!(php.without_php, None);
        let rust = source_without_php(&src).unwrap();
        assert!(rust.without_php.is_some());
        assert_eq!(differing_keys(&php, &rust), Vec::<String>::new());
        assert_eq!(
            php.config.as_ref().map(|c| c.len()),
            rust.config.as_ref().map(|c| c.len())
        );
        assert!(php.fingerprint("secret").is_some_and(|f| f.len() == 16));
        assert!(php
            .cfg("redis")
            .and_then(|r| r.get("fingerprint"))
            .is_some());
        assert_eq!(php.config_files, rust.config_files);
        assert_eq!(php.config_files.len(), 5);
        assert_eq!(php.datadir, rust.datadir);
        assert_eq!(php.release, rust.release);
        assert_eq!(php.config_owner, rust.config_owner);
        assert_eq!(php.occ, rust.occ);
        assert_eq!(php.services.units, rust.services.units);
        assert_eq!(php.services.systemd, rust.services.systemd);
        assert_eq!(
            php.disk.keys().collect::<Vec<_>>(),
            rust.disk.keys().collect::<Vec<_>>()
        );
        // Without the database (target-up's read): the same config, release and services, no
        // database facts.
        let nodb = run_inventory(&src, None, Mode::NoDatabase)
            .unwrap()
            .unwrap();
        assert!(nodb.db.is_none(), "{:?}", nodb.db);
        assert_eq!(differing_keys(&php, &nodb), Vec::<String>::new());
        assert_eq!(
            (&nodb.release, &nodb.datadir, &nodb.services.units),
            (&php.release, &php.datadir, &php.services.units)
        );
        let (pd, rd) = (php.db.unwrap(), rust.db.unwrap());
        assert_eq!((pd.kind, pd.prefix), (rd.kind, rd.prefix));
        // The fixture's SQLite file does not exist: the client says so.
        assert!(!rd.ok && rd.error.unwrap().contains("as PHP cannot run"));
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
