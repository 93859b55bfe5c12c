//! Lab tests of the ownCloud / Nextcloud test double (`tests/double/`, see its README.md): for
//! each flavor × database, the double installed by `lab/lab instance` on `old` must answer as the
//! real servers were observed to answer (/work/shared/reference/observed-servers.md): status.php
//! byte for byte, occ's maintenance toggle and its owner rule, the maintenance answers of
//! index.php / remote.php / OCS, PROPFIND against the database, 401 on a wrong password, and log
//! lines with the flavor's keys in order.
//!
//! Run: `CARGO_TARGET_DIR=/work/target-double cargo test --test double -- --test-threads=1`

mod common;
use common::*;

use std::process::Command;
use std::time::{Duration, Instant};

const ROOT: &str = "/var/www/owncloud";
const DATADIR: &str = "/var/www/owncloud/data";

/// The keys of a JSON object's top level, in the order they appear.
fn top_level_keys(json: &str) -> Vec<String> {
    let mut keys = vec![];
    let mut depth = 0i32;
    let mut in_str = false;
    let mut esc = false;
    let mut cur = String::new();
    let mut last_str: Option<String> = None;
    for c in json.chars() {
        if in_str {
            if esc {
                esc = false;
                cur.push(c);
            } else if c == '\\' {
                esc = true;
            } else if c == '"' {
                in_str = false;
                last_str = Some(std::mem::take(&mut cur));
            } else {
                cur.push(c);
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '{' | '[' => {
                depth += 1;
                last_str = None;
            }
            '}' | ']' => {
                depth -= 1;
                last_str = None;
            }
            ':' if depth == 1 => {
                if let Some(k) = last_str.take() {
                    keys.push(k);
                }
            }
            ',' => last_str = None,
            _ => {}
        }
    }
    keys
}

fn occ(lab: &Lab, as_www: bool, args: &str) -> std::process::Output {
    let cmd = if as_www {
        format!("cd {ROOT} && runuser -u www-data -- php occ {args}")
    } else {
        format!("cd {ROOT} && php occ {args}")
    };
    lab.exec("old", &cmd)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A value from the instance's database on `old`, through the DB's own client as root.
fn db_value(lab: &Lab, flavor: &str, db: &str, sql: &str) -> String {
    lab.sql(db, flavor, &format!("{sql};")).trim().to_string()
}

fn expected_status(flavor: &str, maintenance: bool) -> String {
    if flavor == "owncloud" {
        format!(
            "{{\"installed\":true,\"maintenance\":{maintenance},\"needsDbUpgrade\":false,\"version\":\"10.15.2.0\",\"versionstring\":\"10.15.2\",\"edition\":\"Community\",\"productname\":\"ownCloud\",\"product\":\"ownCloud\"}}"
        )
    } else {
        format!(
            "{{\"installed\":true,\"maintenance\":{maintenance},\"needsDbUpgrade\":false,\"version\":\"33.0.1.2\",\"versionstring\":\"33.0.1\",\"edition\":\"\",\"productname\":\"Nextcloud\",\"extendedSupport\":false}}"
        )
    }
}

/// Poll status.php until it reports `maintenance` as wanted (opcache may lag ~2 s).
fn wait_maintenance(lab: &Lab, flavor: &str, want: bool) -> Resp {
    let start = Instant::now();
    loop {
        let r = http(lab, "GET", "/status.php", None, &[], None);
        if r.code == 200 && r.body == expected_status(flavor, want) {
            return r;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "status.php never reported maintenance={want}: {} {}",
            r.code,
            r.body
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn log_path(flavor: &str) -> String {
    if flavor == "owncloud" {
        format!("{DATADIR}/owncloud.log")
    } else {
        format!("{DATADIR}/nextcloud.log")
    }
}

fn log_lines(lab: &Lab, flavor: &str) -> Vec<String> {
    let out = lab.exec("old", &format!("cat {} 2>/dev/null", log_path(flavor)));
    text(&out.stdout).lines().map(str::to_string).collect()
}

fn check_log_keys(flavor: &str, line: &str) {
    let keys = top_level_keys(line);
    let oc = [
        "reqId",
        "level",
        "time",
        "remoteAddr",
        "user",
        "app",
        "method",
        "url",
        "message",
    ];
    let nc = [
        "reqId",
        "level",
        "time",
        "remoteAddr",
        "user",
        "app",
        "method",
        "url",
        "scriptName",
        "message",
        "userAgent",
        "version",
    ];
    if flavor == "owncloud" {
        assert_eq!(keys, oc, "ownCloud log keys: {line}");
        assert!(
            line.contains("\"url\":\"\\/"),
            "ownCloud escapes slashes: {line}"
        );
    } else {
        assert_eq!(&keys[..nc.len()], &nc[..], "Nextcloud log keys: {line}");
        assert_eq!(
            keys.len(),
            nc.len() + 1,
            "Nextcloud: data or exception last: {line}"
        );
        assert!(
            keys[nc.len()] == "data" || keys[nc.len()] == "exception",
            "{line}"
        );
        assert!(
            line.contains("\"url\":\"/"),
            "Nextcloud does not escape slashes: {line}"
        );
    }
    let v: serde_json::Value = serde_json::from_str(line).expect("log line is JSON");
    assert!(
        v["time"].as_str().unwrap().ends_with("+00:00"),
        "UTC: {line}"
    );
    assert_eq!(v["reqId"].as_str().unwrap().len(), 20, "{line}");
}

fn check(flavor: &str, db: &str, seed: u64) {
    let lab = Lab::get();
    lab.instance(flavor, db, 2, 40, seed);
    let oc = flavor == "owncloud";
    let product = if oc { "ownCloud" } else { "Nextcloud" };
    let pw = lab.admin_password();
    let admin = Some(("admin", pw.as_str()));

    // ---- status.php, exactly as observed
    let r = http(&lab, "GET", "/status.php", None, &[], None);
    assert_eq!(r.code, 200);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(r.header("Access-Control-Allow-Origin"), Some("*"));
    assert_eq!(r.body, expected_status(flavor, false));

    // ---- occ status (as www-data), per flavor
    let o = occ(&lab, true, "status --output=json");
    assert!(o.status.success(), "{o:?}");
    let want = if oc {
        "{\"installed\":true,\"first_install_version\":\"10.15.2.0\",\"version\":\"10.15.2.0\",\"versionstring\":\"10.15.2\",\"edition\":\"Community\"}\n"
    } else {
        "{\"installed\":true,\"version\":\"33.0.1.2\",\"versionstring\":\"33.0.1\",\"edition\":\"\",\"maintenance\":false,\"needsDbUpgrade\":false,\"productname\":\"Nextcloud\",\"extendedSupport\":false}\n"
    };
    assert_eq!(text(&o.stdout), want);

    // ---- occ as root: ownCloud refuses, Nextcloud drops privileges
    let o = occ(&lab, false, "status --output=json");
    if oc {
        assert!(!o.status.success());
        assert_eq!(
            text(&o.stdout),
            "Console has to be executed with the user that owns the file config/config.php\nCurrent user: root\nOwner of config.php: www-data\nTry adding 'sudo -u www-data ' to the beginning of the command (without the single quotes)\n"
        );
        let o = occ(&lab, false, "maintenance:mode --on");
        assert!(!o.status.success(), "ownCloud occ as root must refuse");
        assert!(!lab
            .sh("old", &format!("cat {ROOT}/config/config.php"))
            .contains("'maintenance' => true"));
    } else {
        assert!(o.status.success(), "{o:?}");
        assert_eq!(text(&o.stdout), want);
    }

    // ---- occ details: unknown command, config:system:get, app:list, config:list masking
    let o = occ(&lab, true, "no:such:command");
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("Command \"no:such:command\" is not defined."));
    let o = occ(&lab, true, "config:system:get no_such_key");
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(text(&o.stdout), "");
    let o = occ(&lab, true, "config:system:get datadirectory");
    assert_eq!(text(&o.stdout), format!("{DATADIR}\n"));
    let o = occ(&lab, true, "app:list --output=json");
    let apps: serde_json::Value = serde_json::from_slice(&o.stdout).expect("app:list JSON");
    assert_eq!(
        apps["enabled"]["files"].as_str(),
        Some(if oc { "1.5.2" } else { "2.5.0" }),
        "{apps}"
    );
    let o = occ(&lab, true, "config:list system --output=json");
    let cl: serde_json::Value = serde_json::from_slice(&o.stdout).expect("config:list JSON");
    assert_eq!(cl["system"]["secret"], "***REMOVED SENSITIVE VALUE***");
    assert_eq!(
        cl["system"]["passwordsalt"],
        "***REMOVED SENSITIVE VALUE***"
    );
    if oc {
        assert_eq!(cl["system"]["datadirectory"], DATADIR);
    } else {
        assert_eq!(
            cl["system"]["datadirectory"],
            "***REMOVED SENSITIVE VALUE***"
        );
        assert_eq!(cl["system"]["instanceid"], "***REMOVED SENSITIVE VALUE***");
    }
    let instanceid = text(&occ(&lab, true, "config:system:get instanceid").stdout)
        .trim()
        .to_string();
    assert!(!instanceid.is_empty());
    let users = text(&occ(&lab, true, "user:list --output=json").stdout);
    let users: serde_json::Value = serde_json::from_str(&users).expect("user:list JSON");
    assert!(users.get("admin").is_some(), "{users}");

    // ---- the index page and OCS while up
    let r = http(&lab, "GET", "/index.php", None, &[], None);
    assert_eq!(r.code, 302);
    assert!(
        r.header("Location")
            .unwrap_or("")
            .ends_with("/index.php/login"),
        "{r:?}"
    );
    let r = http(&lab, "GET", "/index.php/login", None, &[], None);
    assert_eq!(r.code, 200);
    let title = if oc {
        "<title>ownCloud</title>"
    } else {
        "<title>Login – Nextcloud</title>"
    };
    assert!(r.body.contains(title), "{}", r.body);
    let ocs = if oc { "/ocs/v1.php" } else { "/ocs/v2.php" };
    let r = http(
        &lab,
        "GET",
        &format!("{ocs}/cloud/user?format=json"),
        admin,
        &["OCS-APIRequest: true"],
        None,
    );
    assert_eq!(r.code, 200, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["ocs"]["meta"]["status"], "ok");
    assert_eq!(v["ocs"]["meta"]["statuscode"], if oc { 100 } else { 200 });
    assert_eq!(v["ocs"]["data"]["id"], "admin");

    // ---- maintenance on (as the web user) → status.php true, index 503, PROPFIND 503, OCS 503
    let o = occ(&lab, true, "maintenance:mode --on");
    assert!(o.status.success(), "{o:?}");
    let want = if oc {
        "Maintenance mode enabled\nPlease also consider to stop the web server on all ownCloud instances\n"
    } else {
        "Maintenance mode enabled\n"
    };
    assert_eq!(text(&o.stdout), want);
    let cfg = lab.sh(
        "old",
        &format!("stat -c '%U %a' {ROOT}/config/config.php; cat {ROOT}/config/config.php"),
    );
    assert!(
        cfg.starts_with("www-data 640\n<?php\n$CONFIG = array (\n"),
        "{cfg}"
    );
    assert!(cfg.contains("  'maintenance' => true,\n"), "{cfg}");
    if !oc {
        let o = occ(&lab, true, "maintenance:mode --on");
        assert_eq!(text(&o.stdout), "Maintenance mode already enabled\n");
    }
    let o = occ(&lab, true, "status --output=json");
    assert!(o.status.success());
    let serr = text(&o.stderr);
    if oc {
        assert!(
            serr.contains("ownCloud is in maintenance mode - no app have been loaded"),
            "{serr}"
        );
        assert!(!text(&o.stdout).contains("maintenance mode"));
    } else {
        assert!(text(&o.stdout).contains("\"maintenance\":true"));
        assert!(!serr.contains("maintenance mode"), "{serr}");
        let o = occ(&lab, true, "user:list --output=json");
        assert!(text(&o.stderr).contains("Nextcloud is in maintenance mode, no apps are loaded."));
        assert!(text(&o.stderr).contains("Commands provided by apps are unavailable."));
    }
    let r = wait_maintenance(&lab, flavor, true);
    assert_eq!(r.header("Access-Control-Allow-Origin"), Some("*"));
    // the web layer may still lag behind status.php for a moment: poll index.php too
    let start = Instant::now();
    let r = loop {
        let r = http(&lab, "GET", "/index.php", None, &[], None);
        if r.code == 503 || start.elapsed() > Duration::from_secs(10) {
            break r;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(r.code, 503);
    assert_eq!(r.header("Retry-After"), Some("120"));
    assert!(r
        .header("Content-Type")
        .unwrap_or("")
        .starts_with("text/html"));
    assert!(
        r.body.contains(&format!(
            "This {product} instance is currently in maintenance mode, which may take a while."
        )),
        "{}",
        r.body
    );
    if !oc {
        assert_eq!(r.header("X-Nextcloud-Maintenance-Mode"), Some("1"));
        assert!(r.body.contains("<h2>Maintenance mode</h2>"));
    }
    let before = log_lines(&lab, flavor).len();
    let r = http(
        &lab,
        "PROPFIND",
        "/remote.php/dav/files/admin/",
        admin,
        &["Depth: 0"],
        None,
    );
    assert_eq!(r.code, 503);
    assert!(r
        .header("Content-Type")
        .unwrap_or("")
        .starts_with("application/xml"));
    let (exc, msg) = if oc {
        (
            "Sabre\\DAV\\Exception\\ServiceUnavailable",
            "System in maintenance mode.",
        )
    } else {
        (
            "OCA\\DAV\\Exception\\ServerMaintenanceMode",
            "System is in maintenance mode.",
        )
    };
    assert!(
        r.body
            .contains(&format!("<s:exception>{exc}</s:exception>")),
        "{}",
        r.body
    );
    assert!(
        r.body.contains(&format!("<s:message>{msg}</s:message>")),
        "{}",
        r.body
    );
    if !oc {
        let lines = log_lines(&lab, flavor);
        let line = lines[before..]
            .iter()
            .find(|l| l.contains("\"message\":\"Uncaught exception\""))
            .expect("NC logs the maintenance exception");
        check_log_keys(flavor, line);
        assert!(line.contains("\"level\":3"));
        assert!(
            line.contains(
                "\"exception\":{\"Exception\":\"OCA\\\\DAV\\\\Exception\\\\ServerMaintenanceMode\""
            ),
            "{line}"
        );
    }
    let r = http(
        &lab,
        "GET",
        &format!("{ocs}/cloud/capabilities?format=json"),
        admin,
        &["OCS-APIRequest: true"],
        None,
    );
    assert_eq!(r.code, 503);
    assert_eq!(
        r.body,
        "{\"ocs\":{\"meta\":{\"status\":\"failure\",\"statuscode\":503,\"message\":\"Service unavailable\"},\"data\":[]}}"
    );

    // ---- maintenance off → 207 with the DB's etag, ids and dates
    let o = occ(&lab, true, "maintenance:mode --off");
    assert_eq!(text(&o.stdout), "Maintenance mode disabled\n");
    wait_maintenance(&lab, flavor, false);
    let sql = "SELECT f.fileid, f.etag, f.mtime, f.size FROM oc_filecache f JOIN oc_storages s ON s.numeric_id = f.storage WHERE s.id = 'home::admin' AND f.path = 'files'";
    let row = db_value(&lab, flavor, db, sql);
    let cols: Vec<&str> = row.split(['|', '\t']).collect();
    assert_eq!(cols.len(), 4, "{row}");
    let (fileid, etag, _mtime, size) = (cols[0], cols[1], cols[2], cols[3]);
    let body = "<?xml version=\"1.0\"?><d:propfind xmlns:d=\"DAV:\" xmlns:oc=\"http://owncloud.org/ns\"><d:prop><d:getetag/><oc:id/><oc:fileid/><oc:permissions/><oc:size/><d:getlastmodified/><d:resourcetype/></d:prop></d:propfind>";
    let start = Instant::now();
    let r = loop {
        let r = http(
            &lab,
            "PROPFIND",
            "/remote.php/dav/files/admin/",
            admin,
            &["Depth: 0", "Content-Type: application/xml"],
            Some(body),
        );
        if r.code != 503 || start.elapsed() > Duration::from_secs(10) {
            break r;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(r.code, 207, "{r:?}");
    assert!(
        r.body
            .contains(&format!("<d:getetag>&quot;{etag}&quot;</d:getetag>")),
        "{}",
        r.body
    );
    let fid: u64 = fileid.parse().unwrap();
    assert!(
        r.body
            .contains(&format!("<oc:id>{:08}{instanceid}</oc:id>", fid)),
        "{}",
        r.body
    );
    assert!(r.body.contains(&format!("<oc:fileid>{fileid}</oc:fileid>")));
    assert!(r.body.contains(&format!("<oc:size>{size}</oc:size>")));
    let perms = if oc { "RDNVCK" } else { "RGDNVCK" };
    assert!(
        r.body
            .contains(&format!("<oc:permissions>{perms}</oc:permissions>")),
        "{}",
        r.body
    );
    assert!(r
        .body
        .contains("<d:resourcetype><d:collection/></d:resourcetype>"));
    assert!(r.body.contains(" GMT</d:getlastmodified>"));
    // Depth 1: one response per child row, plus the folder itself
    let children = db_value(
        &lab,
        flavor,
        db,
        &format!("SELECT COUNT(*) FROM oc_filecache WHERE parent = {fileid}"),
    );
    let r = http(
        &lab,
        "PROPFIND",
        "/remote.php/dav/files/admin/",
        admin,
        &["Depth: 1"],
        None,
    );
    assert_eq!(r.code, 207);
    assert_eq!(
        r.body.matches("<d:response>").count(),
        children.parse::<usize>().unwrap() + 1
    );
    // the legacy endpoint gives the same etag
    let r = http(
        &lab,
        "PROPFIND",
        "/remote.php/webdav/",
        admin,
        &["Depth: 0"],
        None,
    );
    assert_eq!(r.code, 207);
    assert!(r.body.contains(&format!("&quot;{etag}&quot;")));
    // a missing file
    let r = http(
        &lab,
        "PROPFIND",
        "/remote.php/dav/files/admin/no-such-file.txt",
        admin,
        &["Depth: 0"],
        None,
    );
    assert_eq!(r.code, 404);
    assert!(r
        .body
        .contains("<s:exception>Sabre\\DAV\\Exception\\NotFound</s:exception>"));

    // ---- wrong password → 401 and the "Login failed" WARN line
    let before = log_lines(&lab, flavor).len();
    let r = http(
        &lab,
        "PROPFIND",
        "/remote.php/dav/files/admin/",
        Some(("admin", "wrong-password")),
        &["Depth: 0"],
        None,
    );
    assert_eq!(r.code, 401);
    assert_eq!(
        r.header("WWW-Authenticate"),
        Some(format!("Basic realm=\"{product}\", charset=\"UTF-8\"").as_str())
    );
    assert!(r
        .body
        .contains("<s:exception>Sabre\\DAV\\Exception\\NotAuthenticated</s:exception>"));
    assert!(r.body.contains("No public access to this resource., "));
    assert!(r.body.contains("Username or password was incorrect"));
    let lines = log_lines(&lab, flavor);
    let line = lines[before..]
        .iter()
        .find(|l| l.contains("Login failed: 'admin' (Remote IP: "))
        .unwrap_or_else(|| panic!("no Login failed line in {lines:?}"));
    check_log_keys(flavor, line);
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["level"], 2);
    assert_eq!(v["app"], "core");
    assert_eq!(v["method"], "PROPFIND");
    assert_eq!(v["url"], "/remote.php/dav/files/admin/");

    // ---- a forced debug line: log.condition shared_secret + ?log_secret= (both flavors)
    let o = occ(
        &lab,
        true,
        "config:system:set log.condition shared_secret --value=probe-secret-1",
    );
    assert!(o.status.success(), "{o:?}");
    let start = Instant::now();
    loop {
        let before = log_lines(&lab, flavor).len();
        http(
            &lab,
            "GET",
            "/status.php?log_secret=probe-secret-1",
            None,
            &[],
            None,
        );
        let lines = log_lines(&lab, flavor);
        if let Some(l) = lines[before..].iter().find(|l| l.contains("\"level\":0")) {
            check_log_keys(flavor, l);
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no debug line for the log_secret probe"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let o = occ(&lab, true, "config:system:delete log.condition");
    assert!(o.status.success());

    // ---- PUT with X-OC-Mtime, GET, the new root etag in the DB, DELETE
    let r = http(
        &lab,
        "PUT",
        "/remote.php/dav/files/admin/double-test.txt",
        admin,
        &["X-OC-Mtime: 1600000000"],
        Some("hello from the double test\n"),
    );
    assert_eq!(r.code, 201, "{r:?}");
    assert_eq!(r.header("X-OC-MTime"), Some("accepted"));
    assert!(r.header("OC-FileId").unwrap_or("").ends_with(&instanceid));
    let r = http(
        &lab,
        "GET",
        "/remote.php/webdav/double-test.txt",
        admin,
        &[],
        None,
    );
    assert_eq!(
        (r.code, r.body.as_str()),
        (200, "hello from the double test\n")
    );
    let r = http(
        &lab,
        "PROPFIND",
        "/remote.php/dav/files/admin/double-test.txt",
        admin,
        &["Depth: 0"],
        None,
    );
    assert!(
        r.body
            .contains("<d:getlastmodified>Sun, 13 Sep 2020 12:26:40 GMT</d:getlastmodified>"),
        "{}",
        r.body
    );
    // As the real Updater (correctParentStorageMtime): the folder that got the file keeps a
    // storage_mtime equal to its mtime on disk, so the file cache agrees with the disk.
    let files_row_agrees = |when: &str| {
        let cached = db_value(
            &lab,
            flavor,
            db,
            "SELECT f.storage_mtime FROM oc_filecache f JOIN oc_storages s ON s.numeric_id = f.storage WHERE s.id = 'home::admin' AND f.path = 'files'",
        );
        let disk = lab.sh("old", &format!("stat -c %Y {DATADIR}/admin/files"));
        assert_eq!(
            cached,
            disk.trim(),
            "storage_mtime of admin's files/ after {when}"
        );
    };
    files_row_agrees("a PUT");
    let new_root = db_value(&lab, flavor, db, sql);
    let new_etag = new_root.split(['|', '\t']).nth(1).unwrap().to_string();
    assert_ne!(new_etag, etag, "the root etag changes with a PUT");
    let r = http(
        &lab,
        "PROPFIND",
        "/remote.php/dav/files/admin/",
        admin,
        &["Depth: 0"],
        None,
    );
    assert!(
        r.body.contains(&format!("&quot;{new_etag}&quot;")),
        "{}",
        r.body
    );
    let r = http(
        &lab,
        "DELETE",
        "/remote.php/dav/files/admin/double-test.txt",
        admin,
        &[],
        None,
    );
    assert_eq!(r.code, 204);
    files_row_agrees("a DELETE");
    let r = http(
        &lab,
        "PROPFIND",
        "/remote.php/dav/files/admin/double-test.txt",
        admin,
        &["Depth: 0"],
        None,
    );
    assert_eq!(r.code, 404);

    // ---- untrusted host
    let addr = lab.var("LAB_OLD").to_string();
    let o = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            "Host: untrusted.example.test",
        ])
        .arg(format!("http://{addr}/status.php"))
        .output()
        .unwrap();
    assert_eq!(text(&o.stdout), "400");
    if oc {
        let lines = log_lines(&lab, flavor);
        let l = lines
            .iter()
            .rev()
            .find(|l| l.contains("Trusted domain error."))
            .expect("OC logs the trusted domain error");
        assert!(
            l.contains("tried to access using \\\"untrusted.example.test\\\" as host."),
            "{l}"
        );
        check_log_keys(flavor, l);
    }
}

flavor_db_tests!(check:
    owncloud_sqlite => ("owncloud", "sqlite", 11),
    owncloud_mysql => ("owncloud", "mysql", 12),
    owncloud_pgsql => ("owncloud", "pgsql", 13),
    nextcloud_sqlite => ("nextcloud", "sqlite", 21),
    nextcloud_mysql => ("nextcloud", "mysql", 22),
    nextcloud_pgsql => ("nextcloud", "pgsql", 23),
);

#[test]
fn log_keys_parser() {
    assert_eq!(
        top_level_keys(r#"{"a":1,"b":{"c":2},"d":"x:y","e":[{"f":1}]}"#),
        ["a", "b", "d", "e"]
    );
}
