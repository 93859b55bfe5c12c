//! Test instances (`lab/lab instance`, made by `lab/instance.sh` and `labkit`): deterministic for a
//! seed, and the database agrees with the disk on `old` for every database type.

mod common;
use common::*;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The labkit binary, built (release) by `lab/instance.sh --print-labkit`.
fn labkit() -> PathBuf {
    let out = Command::new("bash")
        .arg(repo().join("lab/instance.sh"))
        .arg("--print-labkit")
        .stdin(Stdio::null())
        .output()
        .expect("run lab/instance.sh --print-labkit");
    assert!(
        out.status.success(),
        "building labkit failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

fn run_labkit(bin: &Path, out: &Path, seed: u64) {
    let st = Command::new(bin)
        .args([
            "instance",
            "--flavor",
            "nextcloud",
            "--db",
            "mysql",
            "--users",
            "2",
        ])
        .args([
            "--files",
            "150",
            "--bytes",
            "2M",
            "--bcrypt-cost",
            "4",
            "--extra-config",
        ])
        .args(["--seed", &seed.to_string()])
        .arg("--out")
        .arg(out.join("root"))
        .arg("--secrets")
        .arg(out.join("secrets"))
        .arg("--release-out")
        .arg(out.join("release"))
        .stdout(Stdio::null())
        .status()
        .expect("run labkit");
    assert!(st.success(), "labkit failed for seed {seed}");
}

/// Every entry under `root`: relative path, type, size (files), mtime to the ns, mode.
fn listing(root: &Path) -> Vec<String> {
    let out = Command::new("find")
        .arg(root)
        .args(["-mindepth", "1", "-printf", r"%P\t%y\t%s\t%T@\t%m\n"])
        .output()
        .expect("find");
    assert!(out.status.success());
    let mut lines: Vec<String> = String::from_utf8(out.stdout)
        .expect("utf-8 names")
        .lines()
        .map(|l| {
            // Folder sizes depend on the file system, not on labkit.
            let f: Vec<&str> = l.split('\t').collect();
            if f[1] == "d" {
                format!("{}\td\t-\t{}\t{}", f[0], f[3], f[4])
            } else {
                l.to_string()
            }
        })
        .collect();
    lines.sort();
    lines
}

#[test]
fn same_seed_same_instance_other_seed_another() {
    let bin = labkit();
    let base = std::env::temp_dir().join(format!("ocm-instance-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let (a, b, c) = (base.join("a"), base.join("b"), base.join("c"));
    run_labkit(&bin, &a, 7);
    run_labkit(&bin, &b, 7);
    run_labkit(&bin, &c, 8);
    for part in ["root", "secrets", "release"] {
        let (la, lb) = (listing(&a.join(part)), listing(&b.join(part)));
        assert!(la.len() > 10 || part != "root", "too few entries in {part}");
        let first_diff = la.iter().zip(&lb).find(|(x, y)| x != y);
        assert!(
            la.len() == lb.len() && first_diff.is_none(),
            "{part} differs between two runs with seed 7: {first_diff:?} ({} vs {} entries)",
            la.len(),
            lb.len()
        );
    }
    let read = |d: &Path, f: &str| std::fs::read(d.join(f)).unwrap();
    for f in [
        "root/db.sql",
        "root/config/config.php",
        "secrets/users.tsv",
        "secrets/instance.env",
    ] {
        assert!(
            read(&a, f) == read(&b, f),
            "{f} differs between two runs with seed 7"
        );
    }
    // Every file's bytes too.
    let cmp = Command::new("diff")
        .args(["-r", "-q"])
        .arg(a.join("root"))
        .arg(b.join("root"))
        .output()
        .unwrap();
    assert!(
        cmp.status.success(),
        "contents differ:\n{}",
        String::from_utf8_lossy(&cmp.stdout)
    );
    assert_ne!(listing(&a.join("root")), listing(&c.join("root")));
    assert_ne!(read(&a, "root/db.sql"), read(&c, "root/db.sql"));
    assert_ne!(
        read(&a, "root/config/config.php"),
        read(&c, "root/config/config.php")
    );
    std::fs::remove_dir_all(&base).unwrap();
}

/// The query that lists every home storage's file cache as `uid \t path \t size \t
/// storage_mtime \t mtime \t is-folder \t fileid \t parent`.
const ROWS_SQL: &str = "SELECT SUBSTR(s.id, 7), f.path, f.size, f.storage_mtime, f.mtime, \
     CASE WHEN m.mimetype = 'httpd/unix-directory' THEN 1 ELSE 0 END, f.fileid, f.parent \
     FROM oc_filecache f JOIN oc_storages s ON f.storage = s.numeric_id \
     JOIN oc_mimetypes m ON f.mimetype = m.id WHERE s.id LIKE 'home::%';";

#[derive(Debug)]
struct Row {
    size: i64,
    storage_mtime: i64,
    mtime: i64,
    dir: bool,
    fileid: i64,
    parent: i64,
}

fn check_filecache_matches_disk(flavor: &str, db: &str, seed: u64) {
    let lab = Lab::get();
    lab.instance(flavor, db, 2, 200, seed);
    let dbname = if db == "sqlite" { "owncloud" } else { flavor };

    let mut rows: BTreeMap<(String, String), Row> = BTreeMap::new();
    for line in lab.sql(db, dbname, ROWS_SQL).lines() {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 8, "odd row {line:?}");
        let n = |i: usize| {
            f[i].parse::<i64>()
                .unwrap_or_else(|_| panic!("not a number in {line:?}"))
        };
        rows.insert(
            (f[0].to_string(), f[1].to_string()),
            Row {
                size: n(2),
                storage_mtime: n(3),
                mtime: n(4),
                dir: n(5) == 1,
                fileid: n(6),
                parent: n(7),
            },
        );
    }
    let uids: BTreeSet<String> = rows.keys().map(|(u, _)| u.clone()).collect();
    assert_eq!(
        uids,
        ["admin", "user1", "user2"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        "home storages"
    );

    // The disk, walked on old.
    let mut disk: BTreeMap<(String, String), (i64, i64, bool)> = BTreeMap::new();
    for uid in &uids {
        let out = lab.sh(
            "old",
            &format!("find /var/www/owncloud/data/{uid} -printf '%P\\t%s\\t%T@\\t%y\\n'"),
        );
        for line in out.lines() {
            let f: Vec<&str> = line.split('\t').collect();
            assert_eq!(f.len(), 4, "odd find line {line:?}");
            let secs = f[2].split('.').next().unwrap().parse::<i64>().unwrap();
            disk.insert(
                (uid.clone(), f[0].to_string()),
                (f[1].parse().unwrap(), secs, f[3] == "d"),
            );
        }
    }
    assert!(disk.len() >= 200, "only {} entries on disk", disk.len());

    let on_disk_only: Vec<_> = disk
        .keys()
        .filter(|k| !rows.contains_key(*k))
        .take(5)
        .collect();
    let in_db_only: Vec<_> = rows
        .keys()
        .filter(|k| !disk.contains_key(*k))
        .take(5)
        .collect();
    assert!(
        on_disk_only.is_empty() && in_db_only.is_empty(),
        "{flavor}/{db}: on disk without a row: {on_disk_only:?}; rows without a file: {in_db_only:?}"
    );

    let mut children_size: BTreeMap<i64, i64> = BTreeMap::new();
    for r in rows.values() {
        *children_size.entry(r.parent).or_default() += r.size;
    }
    let mut files = 0;
    for (key, r) in &rows {
        let (size, mtime, dir) = disk[key];
        assert_eq!(r.dir, dir, "{flavor}/{db}: type of {key:?}");
        assert_eq!(
            r.storage_mtime, mtime,
            "{flavor}/{db}: storage_mtime of {key:?}"
        );
        assert_eq!(r.mtime, mtime, "{flavor}/{db}: mtime of {key:?}");
        if dir {
            let sum = children_size.get(&r.fileid).copied().unwrap_or(0);
            assert_eq!(r.size, sum, "{flavor}/{db}: folder size of {key:?}");
        } else {
            assert_eq!(r.size, size, "{flavor}/{db}: size of {key:?}");
            files += 1;
        }
    }
    let under_files = rows
        .iter()
        .filter(|((_, p), r)| p.starts_with("files/") && !r.dir)
        .count();
    assert_eq!(under_files, 200, "{flavor}/{db}: files under files/");
    assert!(files > 200, "versions and trash are cached too");

    // Mounts point at each home's root row.
    let mounts = lab.sql(
        db,
        dbname,
        "SELECT m.user_id, m.mount_point, f.path FROM oc_mounts m JOIN oc_filecache f ON f.fileid = m.root_id ORDER BY m.user_id;",
    );
    assert_eq!(
        mounts,
        "admin\t/admin/\t\nuser1\t/user1/\t\nuser2\t/user2/\t\n"
    );

    // The instance is installed and the admin can log in (the double reads the same rows).
    let status = lab.sh(
        "old",
        "curl -sf -H 'Host: cloud.example.test' http://127.0.0.2/status.php",
    );
    assert!(
        status.contains("\"installed\":true") && status.contains("\"needsDbUpgrade\":false"),
        "{status}"
    );
    let pw = lab.admin_password();
    let r = http(
        &lab,
        "PROPFIND",
        "/remote.php/dav/files/admin/",
        Some(("admin", &pw)),
        &["Depth: 0"],
        None,
    );
    assert_eq!(r.code, 207, "admin PROPFIND on old: {r:?}");

    // new has the release only: no config, no data, no instance database, web server stopped.
    let new = lab.sh(
        "new",
        "ls /var/www/owncloud; test -e /var/www/owncloud/config && echo HAS-CONFIG; \
         test -e /var/www/owncloud/data && echo HAS-DATA; \
         mariadb --no-defaults -u root -N -B -e 'SHOW DATABASES'; \
         runuser -u postgres -- psql -X -A -t -c 'SELECT datname FROM pg_database'; \
         curl -s -o /dev/null -m 2 http://127.0.0.3/status.php && echo HTTP-UP; true",
    );
    for bad in [
        "HAS-CONFIG",
        "HAS-DATA",
        "owncloud\n",
        "nextcloud\n",
        "HTTP-UP",
    ] {
        assert!(!new.contains(bad), "new should not have {bad:?}:\n{new}");
    }
    assert!(
        new.contains("status.php") && new.contains("version.php"),
        "release on new:\n{new}"
    );
}

flavor_db_tests!(check_filecache_matches_disk:
    filecache_matches_disk_sqlite => ("owncloud", "sqlite", 11),
    filecache_matches_disk_mysql => ("nextcloud", "mysql", 12),
    filecache_matches_disk_pgsql => ("owncloud", "pgsql", 13),
);

/// A second instance replaces the first: the other database type's database is gone from old.
#[test]
fn second_instance_replaces_the_first() {
    let lab = Lab::get();
    lab.instance("owncloud", "mysql", 1, 20, 3);
    let dbs = lab.sh(
        "old",
        "mariadb --no-defaults -u root -N -B -e 'SHOW DATABASES'",
    );
    assert!(dbs.lines().any(|l| l == "owncloud"), "{dbs}");
    lab.instance("nextcloud", "sqlite", 1, 20, 4);
    let dbs = lab.sh(
        "old",
        "mariadb --no-defaults -u root -N -B -e 'SHOW DATABASES'",
    );
    assert!(
        !dbs.lines().any(|l| l == "owncloud" || l == "nextcloud"),
        "{dbs}"
    );
    let users = lab.sh("old", "mariadb --no-defaults -u root -N -B -e \"SELECT user FROM mysql.user WHERE user = 'oc_admin'\"");
    assert_eq!(users.trim(), "");
    let ls = lab.sh(
        "old",
        "ls -A /var/www/owncloud/data; cat /var/www/owncloud/version.php",
    );
    assert!(
        ls.contains(".ncdata") && !ls.contains(".ocdata") && ls.contains("nextcloud.log"),
        "{ls}"
    );
    assert!(ls.contains("owncloud.db"), "{ls}");
}
