//! `migrate`, `status` and `rollback` end to end in the lab (SPEC.md, "`migrate`: the runbook"
//! and "Safety rules"; issue #6):
//!
//! * a full migration per flavor × database: every check passes; the target then answers, for
//!   every user's root and the entries below it, the ETags and file ids the source answered
//!   before; every file of the source is byte-identical except `config.php`'s `maintenance`;
//! * kill -9 of ocmigrate at every step boundary and in the middle of the final sync and of the
//!   import: the next run completes, with the same end state as an uninterrupted run;
//! * five faults, each stopping the run with a clear message and a journal entry, after which
//!   `rollback` puts the source back in service.
//!
//! Instances are small (2 users, a few dozen files) and the drain is 1 s: every test holds the
//! lab, which all tests of the project share.
//! Run: `cargo test --test migrate -- --test-threads=1`

mod common;
use common::*;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const SRC: &str = "ssh://root@127.0.0.2/var/www/owncloud";
const TGT: &str = "ssh://root@127.0.0.3/var/www/owncloud";
const HOST: &str = "cloud.example.test";
const USERS: u32 = 2;

fn ocmigrate(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ocmigrate"))
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .expect("run ocmigrate")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A fresh small instance on old (the release on new) and a migration file for it in a new
/// folder: admin password from the lab, drain 1 s.
fn setup(lab: &Lab, flavor: &str, db: &str, files: u32) -> tempfile::TempDir {
    lab_cmd(&[
        "instance",
        "--flavor",
        flavor,
        "--db",
        db,
        "--users",
        &USERS.to_string(),
        "--files",
        &files.to_string(),
        "--bytes",
        "1M",
        "--seed",
        "5",
    ]);
    // A migration (or another test) may have left the source's web server stopped.
    lab.sh(
        "old",
        "service apache2 status >/dev/null 2>&1 || service apache2 start >/dev/null",
    );
    let dir = tempfile::tempdir().unwrap();
    let out = ocmigrate(&["init", "--source", SRC, "--target", TGT], dir.path());
    assert_eq!(out.status.code(), Some(0), "init failed:\n{}", text(&out));
    let file = dir.path().join("ocmigrate.toml");
    let toml = std::fs::read_to_string(&file).unwrap();
    let toml = toml
        .lines()
        .map(|l| {
            if l.starts_with("# admin_password_file") {
                format!(
                    "admin_password_file = \"{}\"",
                    lab.var("LAB_ADMIN_PASSWORD_FILE")
                )
            } else if l.starts_with("drain =") {
                "drain = \"1s\"".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(toml.contains("admin_password_file = \"/"), "{toml}");
    std::fs::write(&file, toml).unwrap();
    dir
}

fn journal(dir: &Path) -> serde_json::Value {
    let p = dir.join("ocmigrate.state/journal.json");
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap_or_else(|e| {
        panic!("no journal {}: {e}", p.display());
    }))
    .unwrap()
}

/// The latest journal entry of a step (there must be one).
fn last_entry<'a>(j: &'a serde_json::Value, step: &str) -> &'a serde_json::Value {
    latest(j, step).unwrap_or_else(|| panic!("no journal entry for {step}: {j:#}"))
}

fn latest<'a>(j: &'a serde_json::Value, step: &str) -> Option<&'a serde_json::Value> {
    j["entries"]
        .as_array()?
        .iter()
        .rev()
        .find(|e| e["step"] == step)
}

/// The latest journal entry of a step, as (state, outcome).
fn entry(j: &serde_json::Value, step: &str) -> Option<(String, String)> {
    latest(j, step).map(|e| {
        (
            e["state"].as_str().unwrap_or("").to_string(),
            e["outcome"].as_str().unwrap_or("").to_string(),
        )
    })
}

const STEPS: [&str; 13] = [
    "preflight",
    "sync",
    "maintenance-on",
    "drain",
    "stop-source-web",
    "final-sync",
    "database",
    "target-config",
    "target-up",
    "maintenance-off",
    "live-check",
    "dns",
    "report",
];

fn assert_complete(dir: &Path) {
    let j = journal(dir);
    for step in STEPS {
        let (state, outcome) = entry(&j, step).unwrap_or_else(|| panic!("{step} not in {j:#}"));
        let want = if step == "dns" { "skipped" } else { "done" };
        assert_eq!(state, want, "{step}: {outcome}");
    }
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("ocmigrate.state/report.json")).unwrap(),
    )
    .unwrap();
    let downtime = report["downtime_s"].as_f64().expect("downtime in report");
    eprintln!(
        "window {downtime:.2} s; maintenance-off: {}",
        entry(&j, "maintenance-off").unwrap().1
    );
    assert!(downtime > 0.0 && downtime < 600.0, "downtime {downtime}");
    let md = std::fs::read_to_string(dir.join("ocmigrate.state/report.md")).unwrap();
    assert!(md.contains("**Downtime**"), "{md}");
    assert!(
        md.contains("| report | done |"),
        "the report must show its own step done:\n{md}"
    );
}

// ---------------------------------------------------------------------------------------------
// What clients see: PROPFIND over the production name, sent to one host's address.

fn password(lab: &Lab, user: &str) -> String {
    if user == "admin" {
        return std::fs::read_to_string(lab.var("LAB_ADMIN_PASSWORD_FILE"))
            .unwrap()
            .trim()
            .to_string();
    }
    let tsv =
        std::fs::read_to_string(Path::new(lab.var("LAB_DIR")).join("instance/users.tsv")).unwrap();
    tsv.lines()
        .find_map(|l| l.strip_prefix(&format!("{user}\t")))
        .unwrap_or_else(|| panic!("no password for {user}"))
        .to_string()
}

/// PROPFIND (Depth 1) of a user's folder on `addr`; returns (code, href → (etag, fileid)).
fn propfind(
    addr: &str,
    user: &str,
    pass: &str,
    rel: &str,
) -> (u16, BTreeMap<String, (String, String)>) {
    let body = r#"<?xml version="1.0"?><d:propfind xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns"><d:prop><d:getetag/><oc:fileid/><d:resourcetype/></d:prop></d:propfind>"#;
    let mut child = Command::new("curl")
        .args(["-s", "-S", "--max-time", "20", "-K", "-", "-X", "PROPFIND"])
        .args(["-H", "Depth: 1", "-H", "Content-Type: application/xml"])
        .args(["--data-binary", body, "-o", "-", "-w", "\n%{http_code}"])
        .arg("--resolve")
        .arg(format!("{HOST}:80:{addr}"))
        .arg(format!("http://{HOST}/remote.php/dav/files/{user}/{rel}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("curl");
    writeln!(child.stdin.take().unwrap(), "user = \"{user}:{pass}\"").unwrap();
    let out = child.wait_with_output().unwrap();
    let t = String::from_utf8_lossy(&out.stdout).into_owned();
    let (xml, code) = t.rsplit_once('\n').unwrap_or(("", "0"));
    let code: u16 = code.trim().parse().unwrap_or(0);
    let mut map = BTreeMap::new();
    for resp in xml.split("<d:response>").skip(1) {
        let get = |tag: &str| -> String {
            let open = format!("<{tag}>");
            resp.find(&open)
                .and_then(|i| {
                    let rest = &resp[i + open.len()..];
                    rest.find(&format!("</{tag}>"))
                        .map(|j| rest[..j].to_string())
                })
                .unwrap_or_default()
        };
        map.insert(get("d:href"), (get("d:getetag"), get("oc:fileid")));
    }
    (code, map)
}

/// Every user's root, its children and the children of its sub-folders: href → (etag, fileid).
fn client_view(lab: &Lab, addr: &str) -> BTreeMap<String, (String, String)> {
    let mut all = BTreeMap::new();
    let users: Vec<String> = std::iter::once("admin".to_string())
        .chain((1..=USERS).map(|i| format!("user{i}")))
        .collect();
    for u in users {
        let pass = password(lab, &u);
        let (code, root) = propfind(addr, &u, &pass, "");
        assert_eq!(code, 207, "PROPFIND of {u}'s root on {addr}");
        assert!(root.len() > 1, "{u} has files: {root:?}");
        let prefix = format!("/remote.php/dav/files/{u}/");
        for href in root.keys() {
            if href.ends_with('/') && href.len() > prefix.len() {
                let rel = &href[prefix.len()..];
                let (code, sub) = propfind(addr, &u, &pass, rel);
                assert_eq!(code, 207, "PROPFIND of {href} on {addr}");
                all.extend(sub);
            }
        }
        all.extend(root);
    }
    for (href, (etag, id)) in &all {
        assert!(!etag.is_empty() && !id.is_empty(), "{href}: {etag} {id}");
    }
    all
}

// ---------------------------------------------------------------------------------------------
// The source, byte for byte.

/// Every file under the source's instance root: path → "sha256 size mtime mode owner", and the
/// text of config.php; for MariaDB/PostgreSQL also a dump's hash.
fn source_files(lab: &Lab, flavor: &str, db: &str) -> (BTreeMap<String, String>, String, String) {
    let listing = lab.sh(
        "old",
        "cd /var/www/owncloud && find . -type f -printf '%p\\t%s %T@ %m %u:%g\\n' | LC_ALL=C sort",
    );
    let hashes = lab.sh(
        "old",
        "cd /var/www/owncloud && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum",
    );
    let mut map = BTreeMap::new();
    for l in listing.lines() {
        let (p, meta) = l.split_once('\t').unwrap();
        map.insert(p.to_string(), meta.to_string());
    }
    for l in hashes.lines() {
        let (h, p) = l.split_once("  ").unwrap();
        let e = map
            .get_mut(p)
            .unwrap_or_else(|| panic!("{p} hashed, not listed"));
        *e = format!("{h} {e}");
    }
    let config = lab.sh("old", "cat /var/www/owncloud/config/config.php");
    let name = if flavor == "nextcloud" {
        "nextcloud"
    } else {
        "owncloud"
    };
    let dump = match db {
        "mysql" => lab.sh(
            "old",
            &format!("mariadb-dump --skip-dump-date --skip-comments --order-by-primary {name} | sha256sum"),
        ),
        "pgsql" => lab.sh(
            "old",
            &format!("cd / && runuser -u postgres -- pg_dump {name} | grep -v -e '^--' -e '^.restrict' -e '^.unrestrict' | sha256sum"),
        ),
        _ => String::new(),
    };
    (map, config, dump)
}

fn without_maintenance(config: &str) -> String {
    config
        .lines()
        .filter(|l| !l.trim_start().starts_with("'maintenance' =>"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn assert_source_unchanged(
    before: &(BTreeMap<String, String>, String, String),
    after: &(BTreeMap<String, String>, String, String),
) {
    let keys: std::collections::BTreeSet<_> = before.0.keys().chain(after.0.keys()).collect();
    let changed: Vec<String> = keys
        .into_iter()
        .filter(|k| k.as_str() != "./config/config.php" && before.0.get(*k) != after.0.get(*k))
        .map(|k| format!("{k}: {:?} → {:?}", before.0.get(k), after.0.get(k)))
        .collect();
    assert!(changed.is_empty(), "source files changed: {changed:#?}");
    assert_eq!(
        without_maintenance(&before.1),
        without_maintenance(&after.1),
        "config.php changed beyond 'maintenance'"
    );
    assert_eq!(before.2, after.2, "the source database changed");
}

fn full_migration(flavor: &str, db: &str) {
    let t0 = Instant::now();
    let lab = Lab::get();
    let dir = setup(&lab, flavor, db, 30);
    let view_before = client_view(&lab, lab.var("LAB_OLD"));
    let before = source_files(&lab, flavor, db);
    let out = ocmigrate(&["migrate", "--yes"], dir.path());
    assert_eq!(
        out.status.code(),
        Some(0),
        "{flavor}/{db}: migrate failed:\n{}",
        text(&out)
    );
    assert!(text(&out).contains("Migration complete"), "{}", text(&out));
    assert_complete(dir.path());
    // The final sync's exit check was made by the pass on its own agents: the source held
    // still (maintenance, its web server stopped), so only the target was read again and
    // compared with the source manifests the pass saved (no tree's source read again), equal.
    let j = journal(dir.path());
    let fs = last_entry(&j, "final-sync");
    assert_eq!(
        fs["figures"]["verify_read"], "target, against the pass's source manifests",
        "{fs:#}"
    );
    assert!(fs["figures"]["verify"]["source_read"].is_null(), "{fs:#}");
    assert_eq!(fs["figures"]["verify"]["equal"], true, "{fs:#}");
    // Before the diff the final sync read only the source: the target's side was the manifest
    // the online sync saved of it at its end (and the check above read the target itself).
    let sync = last_entry(&j, "sync");
    assert_eq!(sync["figures"]["target_saved"][0], "data", "{sync:#}");
    assert_eq!(fs["figures"]["target_as_last_left"][0], "data", "{fs:#}");
    assert!(
        fs["figures"]["warnings"]
            .to_string()
            .find("out of date")
            .is_none(),
        "{fs:#}"
    );
    if db == "mysql" {
        // The window's refresh hashed only the source's rows: the target's were saved after the
        // copy ahead, and its tables still answered CHECKSUM TABLE as then.
        let pre = &sync["figures"]["database_precopy"];
        assert!(
            pre["target_rows_saved"]
                .as_str()
                .unwrap_or("")
                .starts_with("saved in "),
            "{pre:#}"
        );
        let dbs = last_entry(&j, "database");
        assert!(
            dbs["figures"]["method"].as_str().unwrap_or("").ends_with(
                "the target's rows as the copy ahead left them (CHECKSUM TABLE unchanged)"
            ),
            "{dbs:#}"
        );
    }
    assert!(
        fs["figures"]["verify"]["entries"].as_u64().unwrap() > 30,
        "{fs:#}"
    );
    // The users' roots were read by target-up, beside its file cache scan, for the live check.
    let live = last_entry(&j, "live-check");
    assert_eq!(live["figures"]["roots_read_in"], "target-up", "{live:#}");
    // Target-up compared the file cache with the exit check's manifests of the target's disk,
    // every row covered; with a database server the rows were read ahead on the source (the
    // database step proves them equal), with SQLite (steps in order) on the target.
    let up = last_entry(&j, "target-up");
    let disk = up["figures"]["filecache_disk"].as_str().unwrap_or("");
    let read = if db == "sqlite" {
        "the target's rows, read in "
    } else {
        "the source's rows, read ahead in "
    };
    assert!(
        disk.starts_with(&format!(
            "compared with the final sync's fresh manifests of it (0 row(s) read on the disk itself; {read}"
        )),
        "{up:#}"
    );
    assert!(
        up["figures"]["filecache_rows"].as_u64().unwrap() > 30,
        "{up:#}"
    );
    let view_after = client_view(&lab, lab.var("LAB_NEW"));
    assert_eq!(
        view_before, view_after,
        "{flavor}/{db}: the target shows clients other ETags or file ids"
    );
    let after = source_files(&lab, flavor, db);
    assert_source_unchanged(&before, &after);
    assert!(
        after.1.contains("'maintenance' => true"),
        "the source stays in maintenance after the migration"
    );
    // status agrees with the journal.
    let out = ocmigrate(&["status", "--json"], dir.path());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["next_step"], serde_json::Value::Null, "{v:#}");
    eprintln!(
        "{flavor}/{db}: full migration checked in {:.1} s ({} PROPFIND entries equal)",
        t0.elapsed().as_secs_f64(),
        view_after.len()
    );
}

#[test]
fn full_migration_owncloud_sqlite() {
    full_migration("owncloud", "sqlite");
}

#[test]
fn full_migration_owncloud_mysql() {
    full_migration("owncloud", "mysql");
}

#[test]
fn full_migration_owncloud_pgsql() {
    full_migration("owncloud", "pgsql");
}

#[test]
fn full_migration_nextcloud_mysql() {
    full_migration("nextcloud", "mysql");
}

/// The whole database of `host` as `mariadb-dump` writes it (definitions with their
/// AUTO_INCREMENT counters, every row in key order), hashed.
fn database_dump(lab: &Lab, host: &str) -> String {
    lab.sh(
        host,
        "mariadb-dump --skip-comments --skip-dump-date --order-by-primary --skip-extended-insert owncloud | sha256sum",
    )
}

/// MariaDB: `migrate`'s online sync copies the database ahead of the window; the window's
/// database step then copies only what changed since, on either side: rows changed, added and
/// removed on the source (tables with an integer key, row by row), a table without one changed
/// (copied whole), a table new and one gone on the source, a counter moved on, and rows changed
/// on the target behind ocmigrate's back. Right after the step, both databases dump
/// identically; the migration then completes and clients see the source's ETags.
#[test]
fn database_copied_ahead_then_refreshed_in_the_window() {
    let t0 = Instant::now();
    let lab = Lab::get();
    let dir = setup(&lab, "owncloud", "mysql", 30);
    let d = dir.path();
    let sql = |host: &str, q: &str| lab.sh(host, &format!("mariadb -N -B owncloud -e \"{q}\""));
    sql(
        "old",
        "CREATE TABLE oc_gone (id INT PRIMARY KEY, v TEXT); INSERT INTO oc_gone VALUES (1, 'x')",
    );
    stop_after(d, "sync");
    let j = journal(d);
    let sync = last_entry(&j, "sync");
    let pre = &sync["figures"]["database_precopy"];
    assert!(
        pre["method"]
            .as_str()
            .is_some_and(|m| m.contains("mariadb-dump")),
        "the online sync copied the database: {sync:#}"
    );
    assert_eq!(
        database_dump(&lab, "old"),
        database_dump(&lab, "new"),
        "the copy made ahead"
    );

    // The source goes on living (it is still online) ...
    sql(
        "old",
        "UPDATE oc_filecache SET etag = 'refreshed1' WHERE fileid = (SELECT MIN(fileid) FROM (SELECT fileid FROM oc_filecache WHERE name LIKE '%.%') x); \
         INSERT INTO oc_jobs (class, argument, last_run) VALUES ('TestJob', '[]', 0), ('TestJob', '[1]', 0); \
         DELETE FROM oc_jobs ORDER BY id DESC LIMIT 1; \
         DELETE FROM oc_jobs ORDER BY id LIMIT 1; \
         INSERT INTO oc_appconfig VALUES ('ocmigrate_test', 'k', 'refreshed'); \
         CREATE TABLE oc_new (id BIGINT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(10)); INSERT INTO oc_new (v) VALUES ('a'), ('b'); \
         DROP TABLE oc_gone",
    );
    // ... and someone wrote to the target's copy.
    sql(
        "new",
        "UPDATE oc_filecache SET size = size + 1 WHERE fileid = (SELECT MAX(fileid) FROM (SELECT fileid FROM oc_filecache) x); \
         DELETE FROM oc_mimetypes ORDER BY id DESC LIMIT 1; \
         INSERT INTO oc_storages (id) VALUES ('local::/nowhere/')",
    );
    assert_ne!(database_dump(&lab, "old"), database_dump(&lab, "new"));
    let view_source = client_view(&lab, lab.var("LAB_OLD"));

    let out = ocmigrate(&["migrate", "--yes", "--stop-after", "database"], d);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let j = journal(d);
    let db = last_entry(&j, "database");
    assert_eq!(db["state"], "done", "{db:#}");
    assert_eq!(
        db["figures"]["refreshed"], true,
        "the window refreshed the copy: {db:#}"
    );
    let method = db["figures"]["method"].as_str().unwrap();
    // The target's tables were written to after the copy ahead saved their rows: CHECKSUM TABLE
    // told, and the refresh hashed them again.
    assert!(
        method.ends_with("the target's rows hashed (CHECKSUM TABLE changed since the copy ahead)"),
        "{method}"
    );
    // oc_filecache (2 rows: one per side), oc_jobs (2 added, 1 removed), oc_mimetypes (1) and
    // oc_storages (1): row by row; oc_appconfig (no integer key) and oc_new whole; oc_gone dropped.
    assert!(
        method.contains("2 table(s) copied whole, 1 dropped"),
        "{method}"
    );
    assert!(method.contains("key range(s) of 4 table(s)"), "{method}");
    assert_eq!(
        database_dump(&lab, "old"),
        database_dump(&lab, "new"),
        "after the refresh both databases dump identically (counters included)"
    );

    let out = ocmigrate(&["migrate", "--yes"], d);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_complete(d);
    assert_eq!(
        view_source,
        client_view(&lab, lab.var("LAB_NEW")),
        "clients see on the target what the source showed last (the changed ETag included)"
    );
    eprintln!(
        "database copied ahead, refreshed in the window ({method}): {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}

/// A file cache row that already disagreed with the disk on the source (its file's mtime changed
/// behind ownCloud's back) is not the migration's doing: the target shows it too, that row alone
/// is then read on the source to tell it apart, and the migration completes with a warning. On
/// a clean instance the source is not read for this at all.
#[test]
fn a_row_that_already_disagreed_on_the_source_is_reported_apart() {
    let lab = Lab::get();
    let dir = setup(&lab, "owncloud", "sqlite", 30);
    let d = dir.path();
    lab.sh(
        "old",
        "f=$(find /var/www/owncloud/data/user1/files -type f | LC_ALL=C sort | head -1) && touch -d '2001-02-03 04:05:06' \"$f\"",
    );
    let out = ocmigrate(&["migrate", "--yes"], d);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("1 file cache row(s) already disagreed with the disk on the source"),
        "{}",
        text(&out)
    );
    let j = journal(d);
    let up = last_entry(&j, "target-up");
    assert_eq!(up["figures"]["filecache_preexisting"], 1, "{up:#}");
    // Only that row was read on the source.
    assert_eq!(up["figures"]["filecache_source_rows_read"], 1, "{up:#}");
    // In one run, the target's rows were compared with the final sync's manifests of its disk
    // (every row covered: the homes are in the data folder), and still caught that row.
    let disk = up["figures"]["filecache_disk"].as_str().unwrap_or("");
    assert!(
        disk.starts_with(
            "compared with the final sync's fresh manifests of it (0 row(s) read on the disk itself"
        ),
        "{up:#}"
    );
    assert!(
        up["figures"]["phases_s"]["filecache_source_scan"]
            .as_f64()
            .is_some(),
        "{up:#}"
    );

    // A clean instance: no row disagrees, the source's file cache is not read.
    let dir = setup(&lab, "owncloud", "sqlite", 30);
    let out = ocmigrate(&["migrate", "--yes"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let j = journal(dir.path());
    let up = last_entry(&j, "target-up");
    assert_eq!(up["figures"]["filecache_preexisting"], 0, "{up:#}");
    assert_eq!(up["figures"]["filecache_source_rows_read"], 0, "{up:#}");
    assert!(
        up["figures"]["phases_s"]
            .get("filecache_source_scan")
            .is_none(),
        "{up:#}"
    );
}

// ---------------------------------------------------------------------------------------------
// kill -9 and resume

/// Everything of the target that a migration makes, as text: every file under the data
/// directory and config/ (hash, size, mtime, mode, owner; logs and the SQLite database left
/// out, they are compared apart), and the database's content.
fn target_state(lab: &Lab, host: &str) -> String {
    let files = lab.sh(
        host,
        "cd /var/www/owncloud && t=$(ls -d data config apps-external 2>/dev/null) && \
         find $t -type f ! -name owncloud.log ! -name 'owncloud.db*' ! -path config/config.php \
         -printf '%p %s %T@ %m %u\\n' | LC_ALL=C sort && \
         find $t -type f ! -name owncloud.log ! -name 'owncloud.db*' ! -path config/config.php -print0 \
         | LC_ALL=C sort -z | xargs -0 sha256sum && \
         sqlite3 -readonly data/owncloud.db .dump | sha256sum",
    );
    let config = lab.sh(host, "cat /var/www/owncloud/config/config.php");
    format!("{files}{}", without_maintenance(&config))
}

/// Run `migrate --yes` and kill -9 it as soon as `when` says so (polled every millisecond);
/// returns whether it was killed (false: it ended by itself) and its output.
fn migrate_killed(dir: &Path, when: &dyn Fn(&Path) -> bool) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ocmigrate"))
        .args(["migrate", "--yes", "--no-progress"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if let Some(_st) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            return (false, String::from_utf8_lossy(&out.stderr).into_owned());
        }
        if when(dir) {
            child.kill().unwrap(); // SIGKILL
            let out = child.wait_with_output().unwrap();
            // A run that ended between the look at the journal and the signal was not killed.
            let killed = std::os::unix::process::ExitStatusExt::signal(&out.status) == Some(9);
            return (killed, String::from_utf8_lossy(&out.stderr).into_owned());
        }
        assert!(Instant::now() < deadline, "migrate ran for 5 minutes");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn step_state(dir: &Path, step: &str) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("ocmigrate.state/journal.json")).ok()?;
    let j: serde_json::Value = serde_json::from_str(&text).ok()?;
    entry(&j, step).map(|e| e.0)
}

fn epoch() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// True when the journal shows `step` started at or after `since` (seconds since the epoch).
fn started_since(dir: &Path, step: &str, since: f64) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join("ocmigrate.state/journal.json")) else {
        return false;
    };
    let Ok(j) = serde_json::from_str::<serde_json::Value>(&text) else {
        return false;
    };
    j["entries"].as_array().is_some_and(|es| {
        es.iter()
            .any(|e| e["step"] == step && e["started"].as_f64().is_some_and(|t| t >= since))
    })
}

#[test]
fn kill_9_at_every_step_boundary_and_mid_copy_then_resume() {
    let t0 = Instant::now();
    let lab = Lab::get();
    let dir = setup(&lab, "owncloud", "sqlite", 30);
    let view_before = client_view(&lab, lab.var("LAB_OLD"));
    let mut kills = Vec::new();
    let mut ended_first = None;
    // At each boundary: killed the moment the journal shows the step started.
    for step in &STEPS[1..] {
        if step_state(dir.path(), step).as_deref() == Some("done") {
            continue;
        }
        if *step == "final-sync" {
            // Give the final sync something to carry: 80 new files of 256 KiB on the source
            // (outside the file cache: ownCloud would find them on a scan; the copy must not
            // care), then kill it once the first of them reached the target, before the last.
            lab.sh(
                "old",
                "mkdir -p /var/www/owncloud/data/user1/files/late && cd /var/www/owncloud/data/user1/files/late && \
                 for i in $(seq 1 80); do head -c 262144 /dev/urandom > f$i; done && chown -R www-data: ..",
            );
            let arrived = || -> usize {
                let out = lab.exec(
                    "new",
                    "ls /var/www/owncloud/data/user1/files/late 2>/dev/null | grep -c '^f[0-9]*$'",
                );
                String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .parse()
                    .unwrap_or(0)
            };
            let since = epoch();
            let (killed, err) = migrate_killed(dir.path(), &|d: &Path| {
                started_since(d, "final-sync", since) && arrived() > 0
            });
            let n = arrived();
            assert!(
                n < 80,
                "the kill came after the final sync had copied all 80 files"
            );
            eprintln!("final sync killed with {n} of 80 new files on the target");
            assert!(killed, "final sync ended before the kill: {err}");
            kills.push("final-sync (mid)".to_string());
            continue;
        }
        if *step == "database" {
            // In the middle of the import: the import marker says it started.
            let (killed, err) = migrate_killed(dir.path(), &|d: &Path| {
                std::fs::read_to_string(d.join("ocmigrate.state/db-import.json"))
                    .is_ok_and(|t| t.contains("\"started\""))
            });
            assert!(killed, "the import ended before the kill: {err}");
            kills.push("database (mid-import)".to_string());
            continue;
        }
        let since = epoch();
        let (killed, err) = migrate_killed(dir.path(), &|d: &Path| started_since(d, step, since));
        if step_state(dir.path(), "report").as_deref() == Some("done") {
            // The last steps (dns skipped, the report written) take a millisecond: the run can
            // end, or write its last entry, between the journal's start of the step and the
            // signal. The journal decides.
            eprintln!("the run finished {step} before the kill reached it");
            ended_first = Some(*step);
            break;
        }
        assert!(killed, "migrate ended before {step} started: {err}");
        kills.push(step.to_string());
    }
    assert!(
        kills.len() >= STEPS.len() - 3,
        "too few kills reached a running step: {kills:?}"
    );
    if ended_first.is_none() {
        // The journal shows a step that was running when the process died; status says so.
        let out = ocmigrate(&["status"], dir.path());
        assert!(text(&out).contains("RUNNING"), "{}", text(&out));
    }
    let out = ocmigrate(&["migrate", "--yes"], dir.path());
    assert_eq!(out.status.code(), Some(0), "resume failed:\n{}", text(&out));
    assert_complete(dir.path());
    assert_eq!(
        view_before,
        client_view(&lab, lab.var("LAB_NEW")),
        "ETags or file ids differ after the interrupted runs"
    );
    // Same end state as an uninterrupted run: the target holds what the source holds.
    let src = target_state(&lab, "old");
    let tgt = target_state(&lab, "new");
    let diff: Vec<_> = src
        .lines()
        .zip(tgt.lines())
        .filter(|(a, b)| a != b)
        .take(5)
        .collect();
    assert!(
        src.lines().count() == tgt.lines().count() && diff.is_empty(),
        "target differs from source after {kills:?}: {diff:#?}"
    );
    eprintln!(
        "kill -9 at {} points then resume: checked in {:.1} s ({kills:?})",
        kills.len(),
        t0.elapsed().as_secs_f64()
    );
}

/// With a database server, the database copy runs beside the final sync (then target-config and
/// target-up's start): kill -9 while
/// both run (files still arriving, the import started), then once more when the second attempt
/// has them both running again; the next run completes with the target equal to the source.
#[test]
fn kill_9_while_final_sync_and_import_run_side_by_side_then_resume() {
    let t0 = Instant::now();
    let lab = Lab::get();
    let dir = setup(&lab, "owncloud", "mysql", 30);
    let d = dir.path();
    let view_before = client_view(&lab, lab.var("LAB_OLD"));
    stop_after(d, "stop-source-web");
    lab.sh(
        "old",
        "mkdir -p /var/www/owncloud/data/user1/files/late && cd /var/www/owncloud/data/user1/files/late && \
         for i in $(seq 1 80); do head -c 262144 /dev/urandom > f$i; done && chown -R www-data: ..",
    );
    // Both steps running in the journal, both started in this attempt, and this attempt's
    // import begun (its marker written since).
    let both_running = |d: &Path, since: f64| {
        let marker = d.join("ocmigrate.state/db-import.json");
        let fresh = std::fs::metadata(&marker)
            .and_then(|m| m.modified())
            .is_ok_and(|t| {
                t.duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs_f64()
                    >= since
            });
        started_since(d, "final-sync", since)
            && started_since(d, "database", since)
            && step_state(d, "final-sync").as_deref() == Some("running")
            && step_state(d, "database").as_deref() == Some("running")
            && fresh
            && std::fs::read_to_string(&marker).is_ok_and(|t| t.contains("\"started\""))
    };
    for round in 1..=2 {
        let since = epoch();
        let (killed, err) = migrate_killed(d, &|d: &Path| both_running(d, since));
        assert!(
            killed,
            "round {round}: final sync and import never ran side by side: {err}"
        );
        let j = journal(d);
        for step in ["final-sync", "database"] {
            let (state, _) = entry(&j, step).unwrap();
            assert_eq!(state, "running", "round {round}: {step} in {j:#}");
        }
        // target-config and target-up may run beside the import; target-up's checks wait for it.
        assert_ne!(
            entry(&j, "target-up").map(|e| e.0).as_deref(),
            Some("done"),
            "target-up must wait for the database: {j:#}"
        );
        assert!(
            entry(&j, "maintenance-off").is_none(),
            "maintenance-off must wait for both lanes: {j:#}"
        );
    }
    let out = ocmigrate(&["migrate", "--yes"], d);
    assert_eq!(out.status.code(), Some(0), "resume failed:\n{}", text(&out));
    assert_complete(d);
    let j = journal(d);
    let (fs, db) = (
        j["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["step"] == "final-sync")
            .unwrap(),
        j["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["step"] == "database")
            .unwrap(),
    );
    assert!(
        fs["started"].as_f64() < db["ended"].as_f64()
            && db["started"].as_f64() < fs["ended"].as_f64(),
        "final sync and database should overlap: {fs:#} {db:#}"
    );
    assert!(
        db["figures"]["phases_s"]["copy"].as_f64().is_some()
            || db["figures"]["phases_s"]["refresh"].as_f64().is_some(),
        "phase timings in the journal: {db:#}"
    );
    assert_eq!(
        view_before,
        client_view(&lab, lab.var("LAB_NEW")),
        "ETags or file ids differ after the interrupted runs"
    );
    let files = "cd /var/www/owncloud && find data config -type f ! -name owncloud.log ! -path config/config.php \
                 -printf '%p %s %T@ %m %u\\n' | LC_ALL=C sort && \
                 find data config -type f ! -name owncloud.log ! -path config/config.php -print0 | LC_ALL=C sort -z | xargs -0 sha256sum";
    assert_eq!(
        lab.sh("old", files),
        lab.sh("new", files),
        "target files differ from the source's"
    );
    eprintln!(
        "kill -9 twice while final sync and import ran side by side, then resume: {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}

// ---------------------------------------------------------------------------------------------
// Faults: each stops the run with a clear message and a journal entry; rollback then puts the
// source back in service.

fn source_serves(lab: &Lab) -> bool {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10", "--resolve"])
        .arg(format!("{HOST}:80:{}", lab.var("LAB_OLD")))
        .arg(format!("http://{HOST}/status.php"))
        .output()
        .unwrap();
    let t = String::from_utf8_lossy(&out.stdout);
    t.contains("\"maintenance\":false")
}

/// `migrate` must fail at `step` with exit 1, a message containing `want`, and the same in the
/// journal; then `rollback --yes` must bring the source back.
fn fails_then_rollback(lab: &Lab, dir: &Path, step: &str, want: &str) {
    let out = ocmigrate(&["migrate", "--yes"], dir);
    let t = text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{step}: expected a failed check:\n{t}"
    );
    assert!(
        t.contains(want),
        "{step}: message should say {want:?}:\n{t}"
    );
    let (state, outcome) = entry(&journal(dir), step).expect("journal entry");
    assert_eq!(state, "failed", "{step}: {outcome}");
    assert!(outcome.contains(want), "{step}: journal says {outcome:?}");
    let status = text(&ocmigrate(&["status"], dir));
    assert!(status.contains("FAILED"), "{status}");
    assert!(
        !source_serves(lab),
        "the source is in maintenance before rollback"
    );
    let out = ocmigrate(&["rollback", "--yes"], dir);
    assert_eq!(out.status.code(), Some(0), "rollback:\n{}", text(&out));
    assert!(source_serves(lab), "the source serves after rollback");
    assert!(
        lab.sh("old", "cat /var/www/owncloud/config/config.php")
            .contains("'maintenance' => false"),
        "source config after rollback"
    );
}

fn stop_after(dir: &Path, step: &str) {
    let out = ocmigrate(&["migrate", "--yes", "--stop-after", step], dir);
    assert_eq!(
        out.status.code(),
        Some(0),
        "--stop-after {step}:\n{}",
        text(&out)
    );
}

#[test]
fn faults_stop_the_run_and_rollback_restores_the_source() {
    let t0 = Instant::now();
    let lab = Lab::get();
    let dir = setup(&lab, "owncloud", "sqlite", 20);
    let d = dir.path();
    let before = source_files(&lab, "owncloud", "sqlite");

    // 1. Wrong admin credentials: the live check gets 401.
    let good = std::fs::read_to_string(d.join("ocmigrate.toml")).unwrap();
    let wrong = d.join("wrong-password");
    std::fs::write(&wrong, "not-the-password\n").unwrap();
    std::fs::write(
        d.join("ocmigrate.toml"),
        good.replace(lab.var("LAB_ADMIN_PASSWORD_FILE"), &wrong.to_string_lossy()),
    )
    .unwrap();
    fails_then_rollback(&lab, d, "live-check", "refused the admin credentials");
    std::fs::write(d.join("ocmigrate.toml"), &good).unwrap();
    // The config file changed, so preflight runs again: that is its input.

    // 2. One file's mtime on the target differs from the file cache.
    stop_after(d, "database");
    let f = lab.sh(
        "new",
        "cd /var/www/owncloud/data/user1/files && find . -type f | LC_ALL=C sort | head -n1",
    );
    let f = f.trim().trim_start_matches("./").to_string();
    lab.sh(
        "new",
        &format!("touch -d @1500000000 '/var/www/owncloud/data/user1/files/{f}'"),
    );
    // A run resumed after the final sync has no manifests of it: the disk itself was read.
    fails_then_rollback(
        &lab,
        d,
        "target-up",
        "file cache row(s) disagree with the target's disk (read on the disk itself)",
    );

    // 3. The target reports needsDbUpgrade (an app's code is newer than its installed version).
    stop_after(d, "target-config");
    let info = "/var/www/owncloud/apps/files/appinfo/info.xml";
    lab.sh(
        "new",
        &format!("cp {info} /tmp/h3-info.xml && sed -i 's|<version>[^<]*</version>|<version>9.9.9</version>|' {info}"),
    );
    fails_then_rollback(&lab, d, "target-up", "needsDbUpgrade=true");
    lab.sh("new", &format!("cp /tmp/h3-info.xml {info}"));

    // 4. An error line in the target's ownCloud log during the checks.
    stop_after(d, "target-config");
    lab.sh(
        "new",
        "nohup sh -c 'for i in $(seq 1 400); do echo \"{\\\"reqId\\\":\\\"x\\\",\\\"level\\\":3,\\\"time\\\":\\\"2026-01-01T00:00:00+00:00\\\",\\\"app\\\":\\\"core\\\",\\\"message\\\":\\\"injected error\\\"}\" >> /var/www/owncloud/data/owncloud.log; sleep 0.1; done' >/dev/null 2>&1 & echo $! > /tmp/h3-injector.pid",
    );
    fails_then_rollback(&lab, d, "target-up", "error line(s)");
    lab.exec(
        "new",
        "kill $(cat /tmp/h3-injector.pid); rm -f /tmp/h3-injector.pid",
    );

    // 5. The target's web server fails to start.
    stop_after(d, "target-config");
    lab.sh(
        "new",
        "service apache2 stop; cp /etc/apache2/apache2.conf /tmp/h3-apache2.conf && echo 'NotADirective on' >> /etc/apache2/apache2.conf",
    );
    fails_then_rollback(&lab, d, "target-up", "did not start");
    lab.sh("new", "cp /tmp/h3-apache2.conf /etc/apache2/apache2.conf");

    // After all that, the migration completes, and the source kept its bytes.
    let out = ocmigrate(&["migrate", "--yes"], d);
    assert_eq!(out.status.code(), Some(0), "final run:\n{}", text(&out));
    assert_complete(d);
    // After go-live, a user writes to the target: rollback must refuse, name the change and
    // the safe way back, and leave the source alone.
    let pass = password(&lab, "user1");
    // The password goes in a curl config file, not on the command line.
    let cfg = d.join("curl-auth");
    std::fs::write(&cfg, format!("user = \"user1:{pass}\"\n")).unwrap();
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-K"])
        .arg(&cfg)
        .args([
            "--data-binary",
            "written on the target after go-live",
            "-X",
            "PUT",
        ])
        .arg("--resolve")
        .arg(format!("{HOST}:80:{}", lab.var("LAB_NEW")))
        .arg(format!(
            "http://{HOST}/remote.php/dav/files/user1/after-go-live.txt"
        ))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "201",
        "PUT on the target"
    );
    let out = ocmigrate(&["rollback", "--yes"], d);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "rollback after a write:\n{t}");
    assert!(t.contains("changed since it went live"), "{t}");
    assert!(
        t.contains("user1"),
        "rollback should name what changed: {t}"
    );
    assert!(
        t.contains(&format!("ocmigrate init --source {TGT} --target {SRC}")),
        "rollback should name the way back: {t}"
    );
    assert!(
        !source_serves(&lab),
        "a refused rollback left the source alone"
    );

    let after = source_files(&lab, "owncloud", "sqlite");
    // The source served again in between (rollback), and its log may have grown then.
    let mut b = before.clone();
    let mut a = after.clone();
    b.0.remove("./data/owncloud.log");
    a.0.remove("./data/owncloud.log");
    assert_source_unchanged(&b, &a);
    eprintln!(
        "five faults, each rolled back, then a full run: {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}

/// SIGTERM during the drain: the journal says interrupted, exit 4, the same command resumes.
#[test]
fn sigterm_marks_the_journal_and_exits_4() {
    let lab = Lab::get();
    let dir = setup(&lab, "owncloud", "sqlite", 10);
    let d = dir.path();
    let toml = std::fs::read_to_string(d.join("ocmigrate.toml")).unwrap();
    std::fs::write(
        d.join("ocmigrate.toml"),
        toml.replace("drain = \"1s\"", "drain = \"30s\""),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_ocmigrate"))
        .args(["migrate", "--yes", "--no-progress"])
        .current_dir(d)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while step_state(d, "drain").as_deref() != Some("running") {
        assert!(Instant::now() < deadline, "drain never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe_kill(child.id(), "TERM");
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("interrupted by SIGTERM during drain"), "{err}");
    let (state, outcome) = entry(&journal(d), "drain").unwrap();
    assert_eq!(
        (state.as_str(), outcome.as_str()),
        ("interrupted", "interrupted by SIGTERM")
    );
    std::fs::write(d.join("ocmigrate.toml"), toml).unwrap();
    let out = ocmigrate(&["migrate", "--yes"], d);
    assert_eq!(out.status.code(), Some(0), "resume:\n{}", text(&out));
    assert_complete(d);
}

fn unsafe_kill(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(st.success());
}

/// `drain = "auto"`: a sync client polling the source before maintenance gets its 503, and the
/// drain ends then instead of after the 7-minute maximum.
#[test]
fn auto_drain_ends_when_the_active_clients_got_a_503() {
    let lab = Lab::get();
    let dir = setup(&lab, "owncloud", "sqlite", 10);
    let d = dir.path();
    let toml = std::fs::read_to_string(d.join("ocmigrate.toml")).unwrap();
    std::fs::write(
        d.join("ocmigrate.toml"),
        toml.replace("drain = \"1s\"", "drain = \"auto\""),
    )
    .unwrap();
    let cfg = d.join("client-auth");
    std::fs::write(
        &cfg,
        format!("user = \"user1:{}\"\n", password(&lab, "user1")),
    )
    .unwrap();
    // Every client of the last hour counts, and the lab's log holds other tests' requests:
    // start from an empty log.
    lab.sh("old", ": > /var/log/apache2/access.log");
    // A desktop client: PROPFIND every second, with its own user agent.
    let mut client = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "while :; do curl -s -o /dev/null -K '{}' -A 'Mozilla/5.0 (Linux) mirall/2.11.0' \
             -X PROPFIND -H 'Depth: 0' --resolve {HOST}:80:{} http://{HOST}/remote.php/dav/files/user1/; \
             sleep 1; done",
            cfg.display(),
            lab.var("LAB_OLD")
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let out = ocmigrate(&["migrate", "--yes", "--stop-after", "drain"], d);
    let _ = client.kill();
    let _ = client.wait();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let (state, outcome) = entry(&journal(d), "drain").unwrap();
    assert_eq!(state, "done");
    assert!(
        outcome.starts_with("auto: all 1 client(s)"),
        "the drain should have ended on the client's 503: {outcome}"
    );
    let secs = journal(d)["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["step"] == "drain")
        .map(|e| e["ended"].as_f64().unwrap() - e["started"].as_f64().unwrap())
        .unwrap();
    assert!(secs < 60.0, "drain took {secs:.0} s");
    eprintln!("auto drain ended after {secs:.1} s: {outcome}");
    let out = ocmigrate(&["rollback", "--yes"], d);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}
