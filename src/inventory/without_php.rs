//! The inventory without PHP on the host: when `php` cannot run there (not installed, or it does
//! not start), the config files are fetched over the host layer (a listing of `config/` and
//! whole-file reads, as the login user) and read by ocmigrate's own reader ([`crate::instance`]),
//! which merges them as ownCloud does. The result has the PHP inventory's shape, with secrets
//! fingerprinted alike ([`fingerprint`], the same as `fp()` in `inventory.php`), and says how it
//! was made ([`Inventory::without_php`]). On the source, the database facts come from the
//! database's own client instead (the same SELECTs, in a read-only session; [`read_database`]).
//! What only PHP can tell stays empty: the PHP version and modules, and the apps' code versions.

use super::{labelled, DbInfo, Disk, Inventory, Mode, PhpInfo, Release, Services};
use crate::exit::Failure;
use crate::host::{Probe, ReadSide, SourceHost};
use crate::instance::{
    is_extra_config_name, read_code_version, typed_dump, DbKind, DbParams, Flavor, InstanceFiles,
    MergedConfig, PhpValue,
};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::path::Path;

/// The config keys whose values leave the host only as a fingerprint (as in `inventory.php`).
pub const SECRET_KEYS: &[&str] = &[
    "instanceid",
    "secret",
    "passwordsalt",
    "dbpassword",
    "dbuser",
    "redis",
    "ldap_agent_password",
    "mail_smtppassword",
    "license-key",
    "objectstore",
];

/// `fp()` of `inventory.php`: 16 hex digits of SHA-256 over a string's bytes, or over
/// [`typed_dump`] of any other value; `None` for null.
pub fn fingerprint(v: &PhpValue) -> Option<String> {
    let bytes = match v {
        PhpValue::Null => return None,
        PhpValue::Str(s) => s.clone(),
        other => typed_dump(other).into_bytes(),
    };
    let hash = Sha256::digest(&bytes);
    Some(hash.iter().take(8).map(|b| format!("{b:02x}")).collect())
}

/// The merged config as the inventory shows it: secrets replaced by `{"fingerprint": …}` (Redis
/// keeps its host and port, object storage its class), plus `dbuser_plain`.
pub fn shown_config(config: &PhpValue) -> Map<String, Value> {
    let json = |v: &PhpValue| serde_json::to_value(v).unwrap_or(Value::Null);
    let fp = |v: &PhpValue| serde_json::json!({ "fingerprint": fingerprint(v) });
    let mut out = Map::new();
    let Some(a) = config.as_array() else {
        return out;
    };
    for (k, v) in a.iter() {
        let name = k.to_string();
        let shown = if SECRET_KEYS.contains(&name.as_str()) {
            fp(v)
        } else {
            json(v)
        };
        out.insert(name, shown);
    }
    if let Some(r @ PhpValue::Array(_)) = config.get("redis") {
        out.insert(
            "redis".into(),
            serde_json::json!({
                "fingerprint": fingerprint(r),
                "host": r.get("host").map(json),
                "port": r.get("port").map(json),
            }),
        );
    }
    if let Some(o) = config.get("objectstore").filter(|o| !o.is_null()) {
        out.insert(
            "objectstore".into(),
            serde_json::json!({
                "fingerprint": fingerprint(o),
                "class": o.get("class").map(json),
            }),
        );
    }
    out.insert(
        "dbuser_plain".into(),
        config.get("dbuser").map(json).unwrap_or(Value::Null),
    );
    out
}

/// The files that describe the instance at the side's root, fetched over the host layer: the
/// `config/*.config.php` found by a listing, then whole-file reads.
pub fn fetch_instance_files(side: &ReadSide) -> Result<InstanceFiles, Failure> {
    let root = side.root();
    let config_dir = root.join("config");
    let mut extra_configs = Vec::new();
    let listing = side.probe(&Probe::ListFiles(config_dir.clone()))?;
    if listing.ok() {
        for line in listing.stdout_text().lines() {
            let Some(name) = line.splitn(3, '\t').nth(2) else {
                continue;
            };
            if is_extra_config_name(name) {
                if let Some(bytes) = side.read_file(&config_dir.join(name))? {
                    extra_configs.push((name.to_string(), bytes));
                }
            }
        }
    }
    Ok(InstanceFiles {
        root: root.to_path_buf(),
        config_php: side.read_file(&config_dir.join("config.php"))?,
        extra_configs,
        version_php: side.read_file(&root.join("version.php"))?,
    })
}

/// The merged config read by the Rust reader over the host layer. Fails with the file, line and
/// column when a file cannot be read.
pub fn merged_config(side: &ReadSide) -> Result<MergedConfig, Failure> {
    fetch_instance_files(side)?
        .merged_config()
        .map_err(|f| labelled(side, f))
}

/// The inventory of a side without PHP (see the module comment). `full`: the config too (the
/// source), else the release only (the target before its config is in place). `why` says why PHP
/// was not used; it is kept in [`Inventory::without_php`].
pub fn inventory(side: &ReadSide, full: bool, why: String) -> Result<Inventory, Failure> {
    let mode = if full { Mode::Full } else { Mode::Release };
    Ok(inventory_and_params(side, mode, why)?.0)
}

/// [`inventory`], with the database parameters of the config (for [`read_database`]). In
/// [`Mode::Trees`] (a file pass), only the config: no release, services or free space, each of
/// which costs round trips to the host.
pub(super) fn inventory_and_params(
    side: &ReadSide,
    mode: Mode,
    why: String,
) -> Result<(Inventory, Option<DbParams>), Failure> {
    let root = side.root();
    let root_s = root.to_string_lossy().trim_end_matches('/').to_string();
    let files = fetch_instance_files(side)?;
    let trees = mode == Mode::Trees;
    let release = match &files.version_php {
        Some(bytes) if !trees => {
            let code = read_code_version(root, Some(bytes)).map_err(|f| labelled(side, f))?;
            let (php_min, php_max) = php_bounds(side, root)?;
            Some(Release {
                version: Some(code.version.to_string()),
                versionstring: Some(code.version_string.clone()),
                edition: Some(code.edition.clone()),
                vendor: Some(code.flavor.vendor().into()),
                php_min,
                php_max,
            })
        }
        _ => None,
    };
    let status = |p: &Path| -> Result<String, Failure> {
        Ok(side
            .probe(&Probe::PathStatus(p.to_path_buf()))?
            .stdout_text()
            .trim()
            .to_string())
    };
    let mut inv = Inventory {
        root: root_s.clone(),
        php: PhpInfo::default(),
        release,
        occ: !trees && status(&root.join("occ"))? == "exists file",
        services: if trees {
            Services::default()
        } else {
            services(side)?
        },
        config_exists: files.config_php.is_some(),
        without_php: Some(why),
        ..Default::default()
    };
    if !trees && status(root)?.starts_with("exists") {
        let parent = root
            .parent()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|| "/".into());
        for p in [root_s.clone(), parent, "/".to_string()] {
            let free = side.probe(&Probe::FreeBytes(p.clone().into()))?;
            let free = free.stdout_text().trim().parse::<f64>().ok();
            inv.disk.insert(p, Disk { free });
        }
    }
    if mode == Mode::Release || files.config_php.is_none() {
        return Ok((inv, None));
    }
    let owner = side.probe(&Probe::Owner(root.join("config/config.php")))?;
    if owner.ok() {
        inv.config_owner = Some(owner.stdout_text().trim().to_string());
    }
    let merged = files.merged_config().map_err(|f| labelled(side, f))?;
    if merged.config.as_array().is_none_or(|a| a.is_empty()) {
        inv.error = Some("config_no_array".into());
        return Ok((inv, None));
    }
    inv.config_files = merged.files.clone();
    inv.config = Some(shown_config(&merged.config));
    let c = &merged.config;
    let get = |k: &str| c.get(k).filter(|v| !v.is_null());
    let datadir = match get("datadirectory") {
        Some(v) => String::from_utf8_lossy(v.as_bytes().unwrap_or_default())
            .trim_end_matches('/')
            .to_string(),
        None => format!("{root_s}/data"),
    };
    let text = |k: &str, default: &str| match get(k) {
        Some(PhpValue::Str(s)) => String::from_utf8_lossy(s).into_owned(),
        Some(PhpValue::Int(i)) => i.to_string(),
        _ => default.to_string(),
    };
    let mut db = DbInfo {
        kind: text("dbtype", "sqlite"),
        prefix: text("dbtableprefix", "oc_"),
        ok: false,
        error: Some(format!(
            "not read: {} (ocmigrate reads the database through PHP on the host)",
            inv.without_php.as_deref().unwrap_or("PHP cannot run")
        )),
        ..Default::default()
    };
    let flavor = inv.flavor().unwrap_or(Flavor::OwnCloud);
    let params = DbParams::from_config(&get, flavor, datadir.as_bytes()).ok();
    if let Some(p) = &params {
        db.name = Some(p.name.clone());
        match &p.sqlite_file {
            Some(f) => db.file = Some(f.to_string_lossy().into_owned()),
            None => {
                db.host = Some(p.host.clone());
                db.port = p.port.map(|n| n.to_string());
                db.socket = p.socket.clone();
            }
        }
    }
    inv.datadir = Some(datadir);
    inv.db = Some(db);
    Ok((inv, params))
}

/// The database facts `inventory.php` reads (server, storages, enabled apps and LDAP/encryption
/// settings, file count and bytes, held locks, homes, external mounts), read on the source with
/// the database's own client: the same SELECTs, in a read-only session (SQLite opened immutable;
/// see [`SourceHost::db_select`]). Text columns travel hex-encoded, so no value can break the
/// client's row format. On failure `db.ok` stays false and `db.error` says why. The homes are
/// asked for even in [`Mode::Trees`], and their failure is kept apart (`db.homes_error`), as in
/// `inventory.php`; that mode asks the server's version (that the database answers) and the homes
/// only.
pub(super) fn read_database(src: &SourceHost, p: &DbParams, db: &mut DbInfo, mode: Mode) {
    match database_facts(src, p, db, mode) {
        Ok(()) => {
            db.ok = true;
            db.error = None;
        }
        Err(f) => {
            db.ok = false;
            db.error = Some(format!(
                "{} (read with the database's client, as PHP cannot run)",
                f.message
            ));
        }
    }
}

fn database_facts(
    src: &SourceHost,
    p: &DbParams,
    db: &mut DbInfo,
    mode: Mode,
) -> Result<(), Failure> {
    let kind = p.kind;
    let t = |name: &str| format!("{}{name}", p.table_prefix);
    // A text column as `N` (NULL) or `s<hex of its bytes>`.
    let hx = |c: &str| {
        match kind {
        DbKind::Mysql => format!("IF({c} IS NULL, 'N', CONCAT('s', HEX({c})))"),
        DbKind::Pgsql => format!(
            "CASE WHEN {c} IS NULL THEN 'N' ELSE 's' || encode(convert_to({c}::text, 'UTF8'), 'hex') END"
        ),
        DbKind::Sqlite => format!("CASE WHEN {c} IS NULL THEN 'N' ELSE 's' || hex({c}) END"),
    }
    };
    let ident = |c: &str| match kind {
        DbKind::Mysql => format!("`{c}`"),
        _ => format!("\"{c}\""),
    };
    let sep = if kind == DbKind::Mysql { '\t' } else { '|' };
    let rows = |sql: &str, what: &str| -> Result<Vec<Vec<String>>, Failure> {
        Ok(crate::db::source_sql(src, p, sql, what)?
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.split(sep).map(str::to_string).collect())
            .collect())
    };
    let text = |v: Option<&String>| -> Option<String> {
        let v = v?.strip_prefix('s')?;
        let bytes: Option<Vec<u8>> = (0..v.len() / 2)
            .map(|i| u8::from_str_radix(v.get(2 * i..2 * i + 2)?, 16).ok())
            .collect();
        Some(String::from_utf8_lossy(&bytes?).into_owned())
    };
    let number = |v: Option<&String>| -> Value {
        v.and_then(|n| n.trim().parse::<u64>().ok())
            .map(Value::from)
            .unwrap_or(Value::Null)
    };
    let server_sql = match kind {
        DbKind::Mysql => "SELECT VERSION();",
        DbKind::Pgsql => "SHOW server_version;",
        DbKind::Sqlite => "SELECT 'sqlite ' || sqlite_version();",
    };
    db.server = rows(server_sql, "reading the server version")?
        .first()
        .and_then(|r| r.first().cloned());
    // Scans of whole tables on a large instance: not for a file pass.
    if mode != Mode::Trees {
        db.storages = rows(
            &format!(
                "SELECT numeric_id, {} FROM {} ORDER BY numeric_id;",
                hx("id"),
                t("storages")
            ),
            "reading the storages",
        )?
        .iter()
        .map(|r| super::Storage {
            numeric_id: number(r.first()),
            id: text(r.get(1)).unwrap_or_default(),
        })
        .collect();
        db.appconfig = rows(
            &format!(
                "SELECT {}, {}, {} FROM {} WHERE configkey IN ('enabled', 'installed_version') \
                 OR appid = 'core' AND configkey LIKE '%encryption%' OR appid = 'user_ldap' AND \
                 (configkey LIKE '%ldap_host' OR configkey LIKE '%ldap_port' OR configkey LIKE \
                 '%ldap_backup_host' OR configkey LIKE '%ldap_backup_port' OR configkey LIKE \
                 '%ldap_configuration_active') ORDER BY appid, configkey;",
                hx("appid"),
                hx("configkey"),
                hx("configvalue"),
                t("appconfig")
            ),
            "reading the app settings",
        )?
        .iter()
        .map(|r| super::AppConfigRow {
            appid: text(r.first()).unwrap_or_default(),
            configkey: text(r.get(1)).unwrap_or_default(),
            configvalue: text(r.get(2)),
        })
        .collect();
        let fc = rows(
            &format!(
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN mimetype <> (SELECT id FROM {} WHERE \
                 mimetype = 'httpd/unix-directory') THEN size ELSE 0 END), 0) FROM {};",
                t("mimetypes"),
                t("filecache")
            ),
            "counting the file cache",
        )?;
        let fc = fc.first().cloned().unwrap_or_default();
        db.filecache = Some(super::FileCacheSummary {
            files: number(fc.first()),
            bytes: number(fc.get(1)),
        });
        db.locks = Some(number(
            rows(
                &format!(
                    "SELECT COUNT(*) FROM {} WHERE {} <> 0;",
                    t("file_locks"),
                    ident("lock")
                ),
                "counting the file locks",
            )?
            .first()
            .and_then(|r| r.first()),
        ));
    }
    // Tables that not every version has: absent is not an error (as in inventory.php), but the
    // reason is kept for the homes.
    match rows(
        &format!(
            "SELECT {}, {} FROM {} ORDER BY user_id;",
            hx("user_id"),
            hx("home"),
            t("accounts")
        ),
        "reading the accounts",
    ) {
        Ok(rs) => {
            db.homes = Some(
                rs.iter()
                    .map(|r| super::Home {
                        user_id: text(r.first()).unwrap_or_default(),
                        home: text(r.get(1)),
                    })
                    .collect(),
            )
        }
        Err(f) => {
            let label = format!("{}: ", src.label());
            db.homes = None;
            db.homes_error = Some(
                f.message
                    .strip_prefix(&label)
                    .unwrap_or(&f.message)
                    .to_string(),
            );
        }
    }
    if mode == Mode::Trees {
        return Ok(());
    }
    db.external = rows(
        &format!(
            "SELECT m.mount_id, {}, {}, {} FROM {} m LEFT JOIN {} c ON c.mount_id = m.mount_id \
             AND c.{} = 'datadir';",
            hx("m.mount_point"),
            hx("m.storage_backend"),
            hx("c.value"),
            t("external_mounts"),
            t("external_config"),
            ident("key")
        ),
        "reading the external mounts",
    )
    .ok()
    .map(|rs| {
        rs.iter()
            .map(|r| super::ExternalMount {
                mount_id: number(r.first()),
                mount_point: text(r.get(1)).unwrap_or_default(),
                storage_backend: text(r.get(2)).unwrap_or_default(),
                datadir: text(r.get(3)),
            })
            .collect()
    });
    Ok(())
}

/// Web server and PHP-FPM units as `inventory.php` finds them: init scripts and systemd unit
/// files of apache2, httpd, nginx and php*-fpm.
fn services(side: &ReadSide) -> Result<Services, Failure> {
    let names = |dir: &str| -> Result<Vec<String>, Failure> {
        let r = side.probe(&Probe::ListFiles(dir.into()))?;
        Ok(if r.ok() {
            r.stdout_text()
                .lines()
                .filter_map(|l| l.splitn(3, '\t').nth(2).map(str::to_string))
                .collect()
        } else {
            Vec::new()
        })
    };
    let systemd = side
        .probe(&Probe::PathStatus("/run/systemd/system".into()))?
        .stdout_text()
        .starts_with("exists");
    let init_d = names("/etc/init.d")?;
    let mut unit_files = names("/lib/systemd/system")?;
    unit_files.extend(names("/usr/lib/systemd/system")?);
    let mut units: Vec<String> = Vec::new();
    let mut add = |u: String| {
        if !units.contains(&u) {
            units.push(u);
        }
    };
    for s in ["apache2", "httpd", "nginx"] {
        let service = format!("{s}.service");
        if init_d.iter().any(|n| n == s) || unit_files.contains(&service) {
            add(s.to_string());
        }
    }
    let fpm = |n: &&String| n.starts_with("php") && n.ends_with("-fpm");
    let mut init_fpm: Vec<&String> = init_d.iter().filter(fpm).collect();
    init_fpm.sort();
    for n in init_fpm {
        add(n.clone());
    }
    let mut unit_fpm: Vec<String> = unit_files
        .iter()
        .filter_map(|n| n.strip_suffix(".service"))
        .filter(|n| n.starts_with("php") && n.ends_with("-fpm"))
        .map(str::to_string)
        .collect();
    unit_fpm.sort();
    for n in unit_fpm {
        add(n);
    }
    Ok(Services { systemd, units })
}

/// The PHP versions the release accepts, from its own version checks (as `inventory.php` reads
/// them): `PHP_VERSION_ID < N` gives the lowest, `PHP_VERSION_ID >= N` the first refused, and
/// `version_compare(PHP_VERSION, 'x.y') === -1` a lowest too.
fn php_bounds(side: &ReadSide, root: &Path) -> Result<(Option<u32>, Option<u32>), Failure> {
    let (mut min, mut max): (Option<u32>, Option<u32>) = (None, None);
    for f in ["lib/versioncheck.php", "index.php", "lib/base.php"] {
        let Some(code) = side.read_file(&root.join(f))? else {
            continue;
        };
        let code = String::from_utf8_lossy(&code);
        let (lo, hi) = version_checks(&code);
        for v in lo {
            min = Some(min.map_or(v, |m| m.max(v)));
        }
        for v in hi {
            max = Some(max.map_or(v, |m| m.min(v)));
        }
    }
    Ok((min.filter(|m| *m > 0), max))
}

/// The `PHP_VERSION_ID` bounds written in one PHP file: (lowest accepted, first refused).
fn version_checks(code: &str) -> (Vec<u32>, Vec<u32>) {
    let (mut lo, mut hi) = (Vec::new(), Vec::new());
    let five_digits = |s: &str| -> Option<u32> {
        let d: String = s.chars().take_while(char::is_ascii_digit).collect();
        (d.len() == 5).then(|| d.parse().ok()).flatten()
    };
    for (i, _) in code.match_indices("PHP_VERSION_ID") {
        let rest = code[i + "PHP_VERSION_ID".len()..].trim_start();
        if let Some(r) = rest.strip_prefix(">=") {
            hi.extend(five_digits(r.trim_start()));
        } else if let Some(r) = rest.strip_prefix('<').filter(|r| !r.starts_with('=')) {
            lo.extend(five_digits(r.trim_start()));
        }
    }
    for (i, _) in code.match_indices("version_compare(") {
        let rest = code[i + "version_compare(".len()..].trim_start();
        let Some(rest) = rest.strip_prefix("PHP_VERSION") else {
            continue;
        };
        let Some(rest) = rest.trim_start().strip_prefix(',') else {
            continue;
        };
        let Some(rest) = rest.trim_start().strip_prefix('\'') else {
            continue;
        };
        let Some((v, rest)) = rest.split_once('\'') else {
            continue;
        };
        if !v.chars().all(|c| c.is_ascii_digit() || c == '.') || v.is_empty() {
            continue;
        }
        let Some(rest) = rest.trim_start().strip_prefix(')') else {
            continue;
        };
        if !rest.trim_start().starts_with("=== -1") && !rest.trim_start().starts_with("===-1") {
            continue;
        }
        let p: Vec<u32> = v.split('.').map(|x| x.parse().unwrap_or(0)).collect();
        lo.push(p[0] * 10000 + p.get(1).copied().unwrap_or(0) * 100);
    }
    (lo, hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_checks_as_inventory_php_reads_them() {
        let code = "if (PHP_VERSION_ID < 70400) { die(); }\nif (PHP_VERSION_ID >= 80000) {}\n\
                    if (version_compare(PHP_VERSION, '7.2.5') === -1) {}\nPHP_VERSION_ID <= 70000";
        let (lo, hi) = version_checks(code);
        assert_eq!(lo, vec![70400, 70200]);
        assert_eq!(hi, vec![80000]);
    }

    #[test]
    fn fingerprints_match_php() {
        // sha256("abc") = ba7816bf8f01cfea…
        assert_eq!(
            fingerprint(&PhpValue::str("abc")).as_deref(),
            Some("ba7816bf8f01cfea")
        );
        assert_eq!(fingerprint(&PhpValue::Null), None);
        // The same as PHP's fp() for a non-string (checked against php in the lab test too).
        let code = format!(
            "{}\necho substr(hash('sha256', ocm_dump(array('host' => 'r', 'port' => 6379, 'x' => 1.5))), 0, 16);",
            include_str!("../instance/dump.php")
        );
        let (rc, out, err) = crate::instance::testphp::php(&["-r", &code], b"");
        assert_eq!(rc, 0, "{err}");
        let mut a = crate::instance::PhpArray::new();
        a.insert("host".into(), PhpValue::str("r"));
        a.insert("port".into(), PhpValue::Int(6379));
        a.insert("x".into(), PhpValue::Float(1.5));
        assert_eq!(
            fingerprint(&PhpValue::Array(a)).unwrap(),
            String::from_utf8(out).unwrap()
        );
    }
}
