//! The database leg in the lab: MariaDB, PostgreSQL and SQLite copied old → new, verified equal;
//! a row changed on the target afterwards is found; no process shows the database password in its
//! argv while the copy runs; a target database with tables is refused.
//!
//! Run: `cargo test --test db -- --test-threads=1` (the lab is one machine-wide resource).

mod common;
use common::*;

use ocmigrate::config::Side;
use ocmigrate::db::{self, CopyOptions};
use ocmigrate::host::{SourceHost, TargetHost};
use ocmigrate::migration::{connect_source, connect_target};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

const ROOT: &str = "/var/www/owncloud";

fn sides() -> (SourceHost, TargetHost) {
    let s = connect_source(&Side::parse(&format!("ssh://root@127.0.0.2{ROOT}")).unwrap())
        .expect("connect old");
    let t = connect_target(&Side::parse(&format!("ssh://root@127.0.0.3{ROOT}")).unwrap())
        .expect("connect new");
    (s, t)
}

fn opts(state: &std::path::Path) -> CopyOptions {
    CopyOptions {
        replace_target: false,
        target_admin: "socket".into(),
        state_dir: state.to_path_buf(),
        web_user: None,
        compress: None,
        pg_plain: false,
        rows_loaded: None,
    }
}

/// A password with every character that breaks careless quoting (used by the fallback fixture).
const FIXTURE_PW: &str = "Pw'\"\\ $x`#;%&-é";

fn php_str(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}
fn sh_q(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}
fn my_lit(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}
fn pg_lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Make an instance with database `kind` on old and a clean database server on new. Uses
/// `lab/lab instance` when the lab has it; otherwise builds a small instance of its own (config.php
/// and a few tables of ownCloud's schema, with utf8mb4 names, NULLs and a TIMESTAMP column).
pub fn make_instance(lab: &Lab, kind: &str, rows: u64) {
    if repo().join("lab/instance.sh").exists() {
        lab.instance("owncloud", kind, 3, 60, 7);
    } else {
        fixture(lab, kind, rows);
    }
    clean_target(lab);
}

/// Drop what a previous test left on new.
pub fn clean_target(lab: &Lab) {
    lab.sh(
        "new",
        "mariadb -e \"DROP DATABASE IF EXISTS owncloud; DROP DATABASE IF EXISTS nextcloud; DROP USER IF EXISTS 'oc_admin'@'localhost'; DROP USER IF EXISTS 'oc_admin'@'%'\" && \
         cd / && runuser -u postgres -- psql -Xq -c 'DROP DATABASE IF EXISTS owncloud' -c 'DROP DATABASE IF EXISTS nextcloud' -c 'DROP ROLE IF EXISTS oc_admin' && \
         rm -f /var/www/owncloud/data/owncloud.db /var/www/owncloud/data/owncloud.db-wal /var/www/owncloud/data/owncloud.db-shm",
    );
}

fn fixture(lab: &Lab, kind: &str, rows: u64) {
    let (dbtype, dbhost) = match kind {
        "mysql" => ("mysql", "localhost"),
        "pgsql" => ("pgsql", "/var/run/postgresql"),
        _ => ("sqlite", ""),
    };
    let config = format!(
        "<?php\n$CONFIG = array (\n  'instanceid' => 'ocfixture01',\n  'installed' => true,\n  'version' => '10.15.2.0',\n  \
         'dbtype' => '{dbtype}',\n  'dbname' => 'owncloud',\n  'dbhost' => '{dbhost}',\n  'dbuser' => 'oc_admin',\n  \
         'dbpassword' => {},\n  'dbtableprefix' => 'oc_',\n  'mysql.utf8mb4' => true,\n  'datadirectory' => '{ROOT}/data',\n);\n",
        php_str(FIXTURE_PW)
    );
    lab.sh(
        "old",
        &format!(
            "mkdir -p {ROOT}/config {ROOT}/data && printf '%s' {} > {ROOT}/config/config.php && \
             chown -R www-data:www-data {ROOT}/config {ROOT}/data && chmod 0640 {ROOT}/config/config.php && \
             rm -f {ROOT}/data/owncloud.db*",
            sh_q(&config)
        ),
    );
    match kind {
        "mysql" => {
            let sql = format!(
                "DROP DATABASE IF EXISTS owncloud; DROP USER IF EXISTS 'oc_admin'@'localhost';\n\
                 CREATE DATABASE owncloud CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;\n\
                 CREATE USER 'oc_admin'@'localhost' IDENTIFIED BY {};\n\
                 GRANT ALL PRIVILEGES ON owncloud.* TO 'oc_admin'@'localhost';\n\
                 USE owncloud;\n\
                 CREATE TABLE oc_storages (numeric_id INT AUTO_INCREMENT PRIMARY KEY, id VARCHAR(64) UNIQUE, available INT NOT NULL DEFAULT 1, last_checked INT NULL) ROW_FORMAT=COMPRESSED;\n\
                 CREATE TABLE oc_filecache (fileid BIGINT AUTO_INCREMENT PRIMARY KEY, storage INT NOT NULL, path VARCHAR(4000), path_hash VARCHAR(32) NOT NULL, parent BIGINT, name VARCHAR(250), mimetype INT, mimepart INT, size BIGINT, mtime BIGINT, storage_mtime BIGINT, encrypted INT DEFAULT 0, unencrypted_size BIGINT DEFAULT 0, etag VARCHAR(40), permissions INT, checksum VARCHAR(255), UNIQUE KEY fs_storage_path_hash (storage, path_hash), KEY fs_parent_name_hash (parent, name(100)));\n\
                 CREATE TABLE oc_appconfig (appid VARCHAR(32) NOT NULL, configkey VARCHAR(64) NOT NULL, configvalue LONGTEXT, PRIMARY KEY (appid, configkey));\n\
                 CREATE TABLE oc_share (id INT AUTO_INCREMENT PRIMARY KEY, share_with VARCHAR(255), expiration TIMESTAMP NULL, token VARCHAR(32), data BLOB);\n\
                 INSERT INTO oc_storages (id, last_checked) VALUES ('home::admin', NULL), ('local::{ROOT}/data/', 1700000000);\n\
                 INSERT INTO oc_appconfig VALUES ('core','vendor','owncloud'), ('files','enabled','yes'), ('files','installed_version','1.5.2'), ('emoji','name','😀 ünïcode ''q'' \\\\ x');\n\
                 INSERT INTO oc_share (share_with, expiration, token, data) VALUES ('user1', '2030-01-02 03:04:05', 'tok1', 0x00FF10), (NULL, NULL, 'tok2', NULL);\n\
                 INSERT INTO oc_filecache (storage, path, path_hash, parent, name, mimetype, mimepart, size, mtime, storage_mtime, etag, permissions, checksum) \
                   SELECT 1, CONCAT('files/d', seq DIV 1000, '/f', seq, '-😀.txt'), MD5(CONCAT('files/f', seq)), seq DIV 1000, CONCAT('f', seq, '-😀.txt'), 3, 2, seq * 7, 1600000000 + seq, 1600000000 + seq, MD5(seq), 27, IF(seq % 3 = 0, NULL, CONCAT('SHA1:', SHA1(seq))) FROM seq_1_to_{rows};\n",
                my_lit(FIXTURE_PW)
            );
            run_stdin(lab, "old", "mariadb --default-character-set=utf8mb4", &sql);
        }
        "pgsql" => {
            let admin = format!(
                "DROP DATABASE IF EXISTS owncloud;\nDROP ROLE IF EXISTS oc_admin;\n\
                 CREATE ROLE oc_admin LOGIN PASSWORD {};\nCREATE DATABASE owncloud OWNER oc_admin ENCODING 'UTF8' TEMPLATE template0;\n",
                pg_lit(FIXTURE_PW)
            );
            run_stdin(
                lab,
                "old",
                "cd / && runuser -u postgres -- psql -Xq -v ON_ERROR_STOP=1",
                &admin,
            );
            let sql = format!(
                "SET ROLE oc_admin;\n\
                 CREATE TABLE oc_storages (numeric_id SERIAL PRIMARY KEY, id VARCHAR(64) UNIQUE, available INT NOT NULL DEFAULT 1, last_checked INT NULL);\n\
                 CREATE TABLE oc_filecache (fileid BIGSERIAL PRIMARY KEY, storage INT NOT NULL, path VARCHAR(4000), path_hash VARCHAR(32) NOT NULL, parent BIGINT, name VARCHAR(250), mimetype INT, mimepart INT, size BIGINT, mtime BIGINT, storage_mtime BIGINT, encrypted INT DEFAULT 0, unencrypted_size BIGINT DEFAULT 0, etag VARCHAR(40), permissions INT, checksum VARCHAR(255), UNIQUE (storage, path_hash));\n\
                 CREATE INDEX fs_parent_name_hash ON oc_filecache (parent, name);\n\
                 CREATE TABLE oc_appconfig (appid VARCHAR(32) NOT NULL, configkey VARCHAR(64) NOT NULL, configvalue TEXT, PRIMARY KEY (appid, configkey));\n\
                 CREATE TABLE oc_share (id SERIAL PRIMARY KEY, share_with VARCHAR(255), expiration TIMESTAMP NULL, token VARCHAR(32), data BYTEA);\n\
                 INSERT INTO oc_storages (id, last_checked) VALUES ('home::admin', NULL), ('local::{ROOT}/data/', 1700000000);\n\
                 INSERT INTO oc_appconfig VALUES ('core','vendor','owncloud'), ('files','enabled','yes'), ('files','installed_version','1.5.2'), ('emoji','name','😀 ünïcode ''q'' \\ x');\n\
                 INSERT INTO oc_share (share_with, expiration, token, data) VALUES ('user1', '2030-01-02 03:04:05', 'tok1', '\\x00ff10'), (NULL, NULL, 'tok2', NULL);\n\
                 INSERT INTO oc_filecache (storage, path, path_hash, parent, name, mimetype, mimepart, size, mtime, storage_mtime, etag, permissions, checksum) \
                   SELECT 1, 'files/d' || (s / 1000) || '/f' || s || '-😀.txt', md5('files/f' || s), s / 1000, 'f' || s || '-😀.txt', 3, 2, s * 7, 1600000000 + s, 1600000000 + s, md5(s::text), 27, CASE WHEN s % 3 = 0 THEN NULL ELSE 'SHA1:' || md5(s::text) END FROM generate_series(1, {rows}) s;\n"
            );
            run_stdin(
                lab,
                "old",
                "cd / && runuser -u postgres -- psql -Xq -v ON_ERROR_STOP=1 -d owncloud",
                &sql,
            );
        }
        _ => {
            let sql = format!(
                "PRAGMA journal_mode=WAL;\n\
                 CREATE TABLE oc_storages (numeric_id INTEGER PRIMARY KEY AUTOINCREMENT, id VARCHAR(64) UNIQUE, available INT NOT NULL DEFAULT 1, last_checked INT NULL);\n\
                 CREATE TABLE oc_filecache (fileid INTEGER PRIMARY KEY AUTOINCREMENT, storage INT NOT NULL, path VARCHAR(4000), path_hash VARCHAR(32) NOT NULL, parent BIGINT, name VARCHAR(250), mimetype INT, mimepart INT, size BIGINT, mtime BIGINT, storage_mtime BIGINT, encrypted INT DEFAULT 0, unencrypted_size BIGINT DEFAULT 0, etag VARCHAR(40), permissions INT, checksum VARCHAR(255), UNIQUE (storage, path_hash));\n\
                 CREATE TABLE oc_appconfig (appid VARCHAR(32) NOT NULL, configkey VARCHAR(64) NOT NULL, configvalue CLOB, PRIMARY KEY (appid, configkey));\n\
                 INSERT INTO oc_storages (id, last_checked) VALUES ('home::admin', NULL), ('local::{ROOT}/data/', 1700000000);\n\
                 INSERT INTO oc_appconfig VALUES ('core','vendor','owncloud'), ('files','enabled','yes'), ('emoji','name','😀 ünïcode ''q'' \\ x');\n\
                 WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {rows}) \
                 INSERT INTO oc_filecache (storage, path, path_hash, parent, name, mimetype, mimepart, size, mtime, storage_mtime, etag, permissions, checksum) \
                   SELECT 1, 'files/f' || n || '-😀.txt', hex(randomblob(16)), n / 1000, 'f' || n, 3, 2, n * 7, 1600000000 + n, 1600000000 + n, hex(randomblob(8)), 27, NULL FROM s;\n"
            );
            run_stdin(
                lab,
                "old",
                &format!("sqlite3 {ROOT}/data/owncloud.db && chown www-data:www-data {ROOT}/data/owncloud.db*"),
                &sql,
            );
        }
    }
}

/// Run `cmd` on a lab host with `input` on stdin; panic with its output when it fails.
pub fn run_stdin(lab: &Lab, host: &str, cmd: &str, input: &str) {
    use std::io::Write;
    let _ = lab;
    let mut c = std::process::Command::new(lab_script())
        .args(["exec", host, "--", "sh", "-c", cmd])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "on {host}: {cmd} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The instance's database password, read from config.php on old.
fn db_password(lab: &Lab) -> String {
    lab.sh(
        "old",
        &format!("php -r 'include \"{ROOT}/config/config.php\"; echo $CONFIG[\"dbpassword\"];'"),
    )
}

/// Watches every process's argv (the lab's hosts share the machine's PID namespace) for `needle`
/// until stopped; returns (samples, hits).
struct ArgvWatch {
    stop: Arc<AtomicBool>,
    samples: Arc<AtomicUsize>,
    handle: std::thread::JoinHandle<Vec<String>>,
}

impl ArgvWatch {
    fn start(needle: &str) -> ArgvWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(AtomicUsize::new(0));
        let (s2, n2) = (stop.clone(), samples.clone());
        let needle = needle.as_bytes().to_vec();
        let me = std::process::id().to_string();
        let handle = std::thread::spawn(move || {
            let mut hits = Vec::new();
            while !s2.load(Ordering::Relaxed) {
                if let Ok(rd) = std::fs::read_dir("/proc") {
                    for e in rd.flatten() {
                        let name = e.file_name().to_string_lossy().into_owned();
                        if !name.bytes().all(|b| b.is_ascii_digit()) || name == me {
                            continue;
                        }
                        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
                            if cmd.windows(needle.len()).any(|w| w == needle.as_slice()) {
                                hits.push(String::from_utf8_lossy(&cmd).replace('\0', " "));
                            }
                        }
                    }
                }
                n2.fetch_add(1, Ordering::Relaxed);
            }
            hits
        });
        ArgvWatch {
            stop,
            samples,
            handle,
        }
    }
    fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let hits = self.handle.join().unwrap();
        (self.samples.load(Ordering::Relaxed), hits)
    }
}

/// Copy old → new while watching argv; verify equal; change a row on new and see verify find it.
fn copy_verify_tamper(kind: &str, tamper: &str, changed_table: &str) {
    let lab = Lab::get();
    make_instance(&lab, kind, 3000);
    // SQLite has no password; a string that never appears stands in.
    let pw = if kind == "sqlite" {
        "no-password-for-sqlite-\u{1}".to_string()
    } else {
        db_password(&lab)
    };
    assert!(
        pw.len() >= 6,
        "the instance's password is too short to look for"
    );
    let state = tempfile::tempdir().unwrap();
    let (src, tgt) = sides();
    let o = opts(state.path());

    let watch = ArgvWatch::start(&pw);
    let rep = db::copy_between(&src, &tgt, &o);
    let (samples, hits) = watch.finish();
    let rep = rep.unwrap_or_else(|e| panic!("copy failed: {e} (hint: {:?})", e.hint));
    assert!(samples > 3, "the argv watch ran only {samples} times");
    assert!(
        hits.is_empty(),
        "the password was in a process's argv: {hits:?}"
    );
    let json = serde_json::to_string(&rep).unwrap();
    assert!(!json.contains(&pw), "the report holds the password");
    eprintln!("{json}");

    let v = db::verify_between(&src, &tgt, &o).unwrap_or_else(|e| panic!("verify: {e}"));
    eprintln!("{}", v.render());
    assert!(v.equal, "not equal after the copy:\n{}", v.render());
    assert!(v.tables.len() >= 3);
    assert!(v
        .tables
        .iter()
        .any(|t| t.source.as_ref().is_some_and(|f| f.rows > 10)));
    assert!(!serde_json::to_string(&v).unwrap().contains(&pw));

    lab.sh("new", tamper);
    let v = db::verify_between(&src, &tgt, &o).unwrap();
    eprintln!("{}", v.render());
    assert!(!v.equal, "a changed row on the target was not found");
    let diff: Vec<&str> = v.differences().iter().map(|t| t.table.as_str()).collect();
    assert_eq!(diff.len(), 1, "{diff:?}");
    assert!(diff[0].ends_with(changed_table), "{diff:?}");

    // Copying again is refused: the database was imported already.
    let e = db::copy_between(&src, &tgt, &o).unwrap_err();
    assert!(e.message.contains("already imported"), "{e}");
    // Without our marker, tables in the target are someone else's: refused with the fix named.
    let other = tempfile::tempdir().unwrap();
    let e = db::copy_between(&src, &tgt, &opts(other.path())).unwrap_err();
    assert!(e.message.contains("already has"), "{e}");
    assert!(
        e.hint.as_deref().unwrap_or("").contains("replace_target"),
        "{e:?}"
    );
    // replace_target: imported again, equal again.
    let mut o2 = opts(other.path());
    o2.replace_target = true;
    let rep = db::copy_between(&src, &tgt, &o2).unwrap_or_else(|e| panic!("replace: {e}"));
    assert!(rep.replaced);
    assert!(db::verify_between(&src, &tgt, &o2).unwrap().equal);
}

#[test]
fn mysql_copy_verify_and_detect_a_change() {
    copy_verify_tamper(
        "mysql",
        "mariadb owncloud -e \"UPDATE oc_filecache SET etag = 'changed' WHERE fileid = (SELECT MIN(fileid) FROM (SELECT fileid FROM oc_filecache) x)\"",
        "oc_filecache",
    );
}

#[test]
fn pgsql_copy_verify_and_detect_a_change() {
    copy_verify_tamper(
        "pgsql",
        "cd / && runuser -u postgres -- psql -Xq -d owncloud -c \"UPDATE oc_filecache SET etag = 'changed' WHERE fileid = (SELECT min(fileid) FROM oc_filecache)\"",
        "oc_filecache",
    );
}

#[test]
fn sqlite_copy_verify_and_detect_a_change() {
    copy_verify_tamper(
        "sqlite",
        "sqlite3 /var/www/owncloud/data/owncloud.db \"UPDATE oc_filecache SET etag = 'changed' WHERE fileid = (SELECT min(fileid) FROM oc_filecache)\"",
        "oc_filecache",
    );
}

#[test]
fn mysql_target_with_tables_is_refused() {
    let lab = Lab::get();
    make_instance(&lab, "mysql", 100);
    lab.sh(
        "new",
        "mariadb -e 'CREATE DATABASE owncloud; CREATE TABLE owncloud.someones_table (id INT)'",
    );
    let state = tempfile::tempdir().unwrap();
    let (src, tgt) = sides();
    let e = db::copy_between(&src, &tgt, &opts(state.path())).unwrap_err();
    assert!(
        e.message.contains("already has 1 table") && e.message.contains("refusing"),
        "{e}"
    );
    assert!(e.hint.unwrap().contains("replace_target = true"));
    // Nothing was touched on the target.
    let t = lab.sh("new", "mariadb -N -e 'SHOW TABLES FROM owncloud'");
    assert_eq!(t.trim(), "someones_table");
}

#[test]
fn sqlite_copy_keeps_the_source_untouched_and_carries_the_wal() {
    let lab = Lab::get();
    make_instance(&lab, "sqlite", 500);
    // Leave a WAL with committed content on the source, as a crashed writer does: write with
    // automatic checkpoints off and kill the writer before it closes (a close would checkpoint).
    lab.sh(
        "old",
        "cd /var/www/owncloud/data || exit 1; \
         { printf '%s\\n' 'PRAGMA journal_mode=WAL;' 'PRAGMA wal_autocheckpoint=0;' \"INSERT OR REPLACE INTO oc_appconfig VALUES ('wal','only','in the wal');\"; sleep 30; } 2>/dev/null | sqlite3 owncloud.db >/tmp/ocm-wal.err 2>&1 & \\
         p=$!; i=0; while [ ! -s owncloud.db-wal ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done; sleep 1; kill -9 $p; sleep 0.2; test -s owncloud.db-wal || { ls -la; cat /tmp/ocm-wal.err; exit 1; }",
    );
    let before = lab.sh(
        "old",
        "cd /var/www/owncloud/data && ls owncloud.db* | sort && sha256sum owncloud.db* | sort",
    );
    let state = tempfile::tempdir().unwrap();
    let (src, tgt) = sides();
    let rep = db::copy_between(&src, &tgt, &opts(state.path())).unwrap();
    assert_eq!(rep.integrity.as_deref(), Some("ok"));
    let v = db::verify_between(&src, &tgt, &opts(state.path())).unwrap();
    assert!(v.equal, "{}", v.render());
    assert!(v.source_read.contains("fresh copy"), "{}", v.source_read);
    let wal_row = lab.sh(
        "new",
        "sqlite3 -readonly /var/www/owncloud/data/owncloud.db \"SELECT configvalue FROM oc_appconfig WHERE appid = 'wal'\"",
    );
    assert_eq!(wal_row.trim(), "in the wal");
    let after = lab.sh(
        "old",
        "cd /var/www/owncloud/data && ls owncloud.db* | sort && sha256sum owncloud.db* | sort",
    );
    assert_eq!(before, after, "the source's SQLite files changed");
    let owner = lab.sh("new", "stat -c %U /var/www/owncloud/data/owncloud.db");
    assert_eq!(owner.trim(), "www-data");
}

#[test]
fn mysql_wrong_password_names_the_problem_and_the_fix() {
    let lab = Lab::get();
    make_instance(&lab, "mysql", 100);
    // An extra config file that overrides dbpassword, as ownCloud merges them.
    lab.sh(
        "old",
        "printf '%s\\n' '<?php' \"\\$CONFIG = array('dbpassword' => 'not-the-password');\" > /var/www/owncloud/config/zz-wrong.config.php && chown www-data:www-data /var/www/owncloud/config/zz-wrong.config.php",
    );
    let state = tempfile::tempdir().unwrap();
    let (src, tgt) = sides();
    let e = db::copy_between(&src, &tgt, &opts(state.path())).unwrap_err();
    lab.sh("old", "rm -f /var/www/owncloud/config/zz-wrong.config.php");
    assert!(e.message.contains("refused the credentials"), "{e}");
    assert!(
        e.hint.as_deref().unwrap_or("").contains("config.php"),
        "{e:?}"
    );
    assert!(!e.message.contains("not-the-password"), "{e}");
    // Nothing was created on the target.
    let dbs = lab.sh("new", "mariadb -N -e 'SHOW DATABASES'");
    assert!(!dbs.lines().any(|l| l == "owncloud"), "{dbs}");
}

#[test]
fn pgsql_interrupted_import_of_ours_is_replaced_on_the_next_run() {
    let lab = Lab::get();
    make_instance(&lab, "pgsql", 100);
    let state = tempfile::tempdir().unwrap();
    let (src, tgt) = sides();
    db::copy_between(&src, &tgt, &opts(state.path())).unwrap();
    // As if the run had stopped during the import: the marker still says "started", and the
    // target has (some of) the tables.
    let marker = state.path().join("db-import.json");
    let text = std::fs::read_to_string(&marker).unwrap();
    assert!(text.contains("\"done\""), "{text}");
    std::fs::write(&marker, text.replace("\"done\"", "\"started\"")).unwrap();
    lab.sh(
        "new",
        "cd / && runuser -u postgres -- psql -Xq -d owncloud -c 'DELETE FROM oc_filecache'",
    );
    let rep = db::copy_between(&src, &tgt, &opts(state.path()))
        .unwrap_or_else(|e| panic!("the next run must replace our own failed import: {e}"));
    assert!(rep.replaced);
    assert!(
        db::verify_between(&src, &tgt, &opts(state.path()))
            .unwrap()
            .equal
    );
    // The tables belong to config.php's user, as ownCloud needs.
    let owners = lab.sh(
        "new",
        "cd / && runuser -u postgres -- psql -XAt -d owncloud -c \"SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'\"",
    );
    assert_eq!(owners.trim(), "oc_admin");
}

#[test]
fn nextcloud_mysql_copy_and_verify() {
    let lab = Lab::get();
    if !repo().join("lab/instance.sh").exists() {
        eprintln!("skipped: the lab cannot make a Nextcloud instance yet");
        return;
    }
    lab.instance("nextcloud", "mysql", 2, 20, 11);
    clean_target(&lab);
    let state = tempfile::tempdir().unwrap();
    let (src, tgt) = sides();
    let rep = db::copy_between(&src, &tgt, &opts(state.path())).unwrap();
    assert_eq!(rep.database, "nextcloud");
    let v = db::verify_between(&src, &tgt, &opts(state.path())).unwrap();
    assert!(v.equal, "{}", v.render());
}
