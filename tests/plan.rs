//! `init` and `plan` against the lab: discovery per flavor × database, every pre-flight finding
//! provoked on purpose, the source left unchanged, and bad input.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SRC: &str = "ssh://root@127.0.0.2/var/www/owncloud";
const TGT: &str = "ssh://root@127.0.0.3/var/www/owncloud";

fn ocmigrate(args: &[&str], cwd: &Path) -> Output {
    ocmigrate_in(args, cwd)
}

fn text(o: &Output) -> String {
    output_text(o)
}

/// `init` into a fresh folder; returns the folder and the migration file.
fn init(dir: &Path) -> PathBuf {
    let out = ocmigrate(&["init", "--source", SRC, "--target", TGT], dir);
    assert_eq!(out.status.code(), Some(0), "init failed:\n{}", text(&out));
    dir.join("ocmigrate.toml")
}

fn plan_json(dir: &Path) -> (Option<i32>, serde_json::Value) {
    let out = ocmigrate(&["plan", "--json"], dir);
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("plan --json gave no JSON ({e}):\n{}", text(&out)));
    (out.status.code(), v)
}

fn codes(v: &serde_json::Value) -> Vec<(String, String)> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["severity"].as_str().unwrap().to_string(),
                f["code"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn assert_finding(v: &serde_json::Value, severity: &str, code: &str) {
    let c = codes(v);
    assert!(
        c.contains(&(severity.to_string(), code.to_string())),
        "expected {severity} {code}, got {c:?}"
    );
}

/// Everything on old that a migration must not change: every file's path, size, mtime and
/// content hash under the instance, and a dump of the database.
fn source_fingerprint(lab: &Lab, flavor: &str, db: &str) -> String {
    let files = lab.sh(
        "old",
        "cd /var/www/owncloud && find . -printf '%p %y %s %T@ %m %u\\n' | LC_ALL=C sort && \
         find . -type f -print0 | LC_ALL=C sort -z | xargs -0 md5sum",
    );
    let name = if flavor == "nextcloud" {
        "nextcloud"
    } else {
        "owncloud"
    };
    let dump = match db {
        "mysql" => lab.sh(
            "old",
            &format!("mariadb-dump --skip-dump-date --skip-comments --order-by-primary {name} | md5sum"),
        ),
        // pg_dump's \\restrict lines carry a random key on every run: leave them out.
        "pgsql" => lab.sh(
            "old",
            &format!(
                "cd / && runuser -u postgres -- pg_dump {name} | grep -v -e '^--' -e '^.restrict' -e '^.unrestrict' | md5sum"
            ),
        ),
        _ => String::new(),
    };
    format!("{files}\n{dump}")
}

fn add_source_config(lab: &Lab, php: &str) {
    let script = format!(
        "cat > /var/www/owncloud/config/zz-test.config.php <<'PHP'\n<?php\n$CONFIG = array (\n{php}\n);\nPHP\nchown www-data: /var/www/owncloud/config/zz-test.config.php"
    );
    lab.sh("old", &script);
}

fn sqlite(lab: &Lab, sql: &str) {
    lab.sh(
        "old",
        &format!(
            "runuser -u www-data -- sqlite3 /var/www/owncloud/data/owncloud.db <<'SQL'\n{sql}\nSQL"
        ),
    );
}

#[test]
fn discovery_and_a_good_pair_for_each_flavor_and_database() {
    let lab = Lab::get();
    for (flavor, db) in [
        ("owncloud", "sqlite"),
        ("owncloud", "mysql"),
        ("owncloud", "pgsql"),
        ("nextcloud", "mysql"),
        ("nextcloud", "pgsql"),
        ("nextcloud", "sqlite"),
    ] {
        lab.instance(flavor, db, 2, 60, 7);
        let dir = tempfile::tempdir().unwrap();
        let before = source_fingerprint(&lab, flavor, db);
        let file = init(dir.path());
        let toml = std::fs::read_to_string(&file).unwrap();
        assert!(toml.contains("web_user = \"www-data\""), "{toml}");
        // The lab's hosts have no systemd: Debian's init script's own commands, without its
        // 1 s polls.
        assert!(
            toml.contains(&format!(
                "stop = [{:?}]",
                ocmigrate::cmd::init::APACHE2_STOP
            )),
            "{toml}"
        );
        assert!(
            toml.contains("public_url = \"http://cloud.example.test\""),
            "{toml}"
        );
        let want_version = if flavor == "owncloud" {
            "10.15.2.0"
        } else {
            "33.0.1.2"
        };
        assert!(
            toml.contains(want_version),
            "{flavor}/{db}: version missing:\n{toml}"
        );
        assert!(
            toml.contains(&format!("database {db}")),
            "{flavor}/{db}: db type missing:\n{toml}"
        );
        let (code, v) = plan_json(dir.path());
        assert_eq!(
            code,
            Some(0),
            "{flavor}/{db}: plan should pass on a good pair: {v:#}"
        );
        assert_eq!(v["ready"], true);
        assert_eq!(v["copy_data"], true);
        assert_finding(&v, "info", "release");
        // The source is exactly as it was: bytes, mtimes and the database.
        let after = source_fingerprint(&lab, flavor, db);
        let changed: Vec<_> = before
            .lines()
            .zip(after.lines())
            .filter(|(a, b)| a != b)
            .take(5)
            .collect();
        assert!(
            before == after,
            "{flavor}/{db}: init/plan changed the source: {changed:#?}"
        );
        php_and_rust_agree(flavor, db);
    }
}

/// PHP on `old` and ocmigrate's own reader (over ssh, without PHP) read the instance alike: the
/// merged config exactly (compared as typed dumps, never printed), and the inventory's config
/// with secrets as fingerprints.
fn php_and_rust_agree(flavor: &str, db: &str) {
    use ocmigrate::instance::typed_dump;
    use ocmigrate::inventory;
    let (src, root) = old_source();
    let with_php = inventory::merged_config_with_php(&src, "www-data")
        .unwrap()
        .expect("PHP runs on old");
    let without = inventory::without_php::merged_config(&src).unwrap();
    assert_eq!(with_php.files, without.files, "{flavor}/{db}: files read");
    assert_eq!(with_php.output, without.output, "{flavor}/{db}");
    let keys = |m: &ocmigrate::instance::MergedConfig| -> Vec<String> {
        m.config
            .as_array()
            .map(|a| a.keys().map(|k| k.to_string()).collect())
            .unwrap_or_default()
    };
    assert_eq!(keys(&with_php), keys(&without), "{flavor}/{db}: keys");
    let differing: Vec<String> = keys(&with_php)
        .into_iter()
        .filter(|k| with_php.config.get(k).map(typed_dump) != without.config.get(k).map(typed_dump))
        .collect();
    assert!(
        differing.is_empty(),
        "{flavor}/{db}: PHP and the Rust reader differ on {differing:?}"
    );
    let php_inv = inventory::source(&src, None).unwrap();
    let rust_inv = inventory::source_without_php(&src).unwrap();
    // A file pass asks less (no release, apps' code or whole-table counts) and finds the same
    // trees, the homes in the database included.
    let for_trees = inventory::source_for_trees(&src, None).unwrap();
    let trees_of = |inv: &inventory::Inventory| {
        ocmigrate::transfer::trees::of_inventory(inv, &root, &root, true)
    };
    assert_eq!(trees_of(&for_trees), trees_of(&php_inv), "{flavor}/{db}");
    assert_eq!(for_trees.config, php_inv.config, "{flavor}/{db}");
    assert_eq!(for_trees.config_owner, php_inv.config_owner);
    assert!(for_trees.release.is_none() && for_trees.apps_code.is_empty());
    let pass_db = for_trees.db.as_ref().unwrap();
    assert!(pass_db.ok, "{flavor}/{db}: {:?}", pass_db.error);
    assert!(pass_db.filecache.is_none() && pass_db.storages.is_empty() && pass_db.locks.is_none());
    let homes_of = |d: &inventory::DbInfo| {
        d.homes.as_ref().map(|h| {
            h.iter()
                .map(|x| (x.user_id.clone(), x.home.clone()))
                .collect::<Vec<_>>()
        })
    };
    assert_eq!(
        homes_of(pass_db),
        homes_of(php_inv.db.as_ref().unwrap()),
        "{flavor}/{db}: homes"
    );
    // Nextcloud has no home column: the failure is kept, and matters on ownCloud only.
    assert_eq!(
        pass_db.homes.is_none(),
        flavor == "nextcloud",
        "{flavor}/{db}: {:?}",
        pass_db.homes_error
    );
    assert_eq!(pass_db.homes_error.is_some(), flavor == "nextcloud");
    assert_eq!(for_trees.homes_unread(), None, "{flavor}/{db}");
    // The same without PHP: the config, and of the database only the homes.
    let trees_rust = inventory::source_for_trees_without_php(&src).unwrap();
    assert_eq!(trees_of(&trees_rust), trees_of(&php_inv), "{flavor}/{db}");
    assert_eq!(trees_rust.config_owner, php_inv.config_owner);
    assert!(trees_rust.release.is_none() && trees_rust.services.units.is_empty());
    assert!(trees_rust.disk.is_empty());
    let rust_pass_db = trees_rust.db.as_ref().unwrap();
    assert!(rust_pass_db.ok, "{flavor}/{db}: {:?}", rust_pass_db.error);
    assert!(rust_pass_db.filecache.is_none() && rust_pass_db.storages.is_empty());
    assert!(rust_pass_db.locks.is_none() && rust_pass_db.external.is_none());
    assert_eq!(homes_of(rust_pass_db), homes_of(pass_db), "{flavor}/{db}");
    assert_eq!(
        rust_pass_db.homes_error.is_some(),
        flavor == "nextcloud",
        "{flavor}/{db}: {:?}",
        rust_pass_db.homes_error
    );
    let (a, b) = (
        php_inv.config.clone().unwrap(),
        rust_inv.config.clone().unwrap(),
    );
    let differing: Vec<&String> = a.keys().filter(|k| a.get(*k) != b.get(*k)).collect();
    assert!(
        differing.is_empty() && a.len() == b.len(),
        "{flavor}/{db}: the inventories differ on {differing:?}"
    );
    let mut secrets = vec!["secret", "passwordsalt", "instanceid"];
    if db != "sqlite" {
        secrets.push("dbpassword");
    }
    for secret in secrets {
        let fp = a.get(secret).and_then(|v| v["fingerprint"].as_str());
        assert_eq!(
            fp.map(str::len),
            Some(16),
            "{flavor}/{db}: {secret} fingerprint"
        );
    }
    assert_eq!(php_inv.datadir, rust_inv.datadir);
    assert_eq!(php_inv.release, rust_inv.release);
    assert_eq!(php_inv.config_files, rust_inv.config_files);
    assert_eq!(php_inv.services.units, rust_inv.services.units);
    // The database, read by PHP and by the database's own client.
    assert_eq!(php_inv.filecache_totals(), rust_inv.filecache_totals());
    assert!(php_inv.filecache_totals().is_some_and(|(n, _)| n > 0));
    assert_eq!(php_inv.enabled_apps(), rust_inv.enabled_apps());
    assert_eq!(php_inv.encryption_enabled(), rust_inv.encryption_enabled());
    let (pd, rd) = (php_inv.db.unwrap(), rust_inv.db.unwrap());
    assert!(
        pd.ok && rd.ok,
        "{flavor}/{db}: {:?} / {:?}",
        pd.error,
        rd.error
    );
    assert_eq!(pd.server, rd.server, "{flavor}/{db}: server");
    let ids = |d: &inventory::DbInfo| -> Vec<(Option<u64>, String)> {
        d.storages
            .iter()
            .map(|s| (inventory::as_u64(&s.numeric_id), s.id.clone()))
            .collect()
    };
    assert_eq!(ids(&pd), ids(&rd), "{flavor}/{db}: storages");
    assert_eq!(homes_of(&pd), homes_of(&rd), "{flavor}/{db}: homes");
    let ext = |d: &inventory::DbInfo| d.external.as_ref().map(Vec::len);
    assert_eq!(ext(&pd), ext(&rd), "{flavor}/{db}: external mounts");
    let locks = |d: &inventory::DbInfo| d.locks.as_ref().and_then(inventory::as_u64);
    assert_eq!(locks(&pd), locks(&rd), "{flavor}/{db}: locks");
    assert_eq!((&pd.kind, &pd.prefix), (&rd.kind, &rd.prefix));
    if db == "sqlite" {
        assert_eq!(pd.file, rd.file, "{flavor}/{db}");
    } else {
        assert_eq!(
            (&pd.name, &pd.socket),
            (&rd.name, &rd.socket),
            "{flavor}/{db}"
        );
    }
}

/// The lab's old host as a migration's source, and its instance root.
fn old_source() -> (ocmigrate::host::SourceHost, PathBuf) {
    use ocmigrate::host::{ConnectOptions, Host, SourceHost};
    let root = PathBuf::from("/var/www/owncloud");
    let side = ocmigrate::config::Side::Ssh {
        user: Some("root".into()),
        host: "127.0.0.2".into(),
        port: None,
        root: root.clone(),
    };
    let host = Host::connect("source", &side, &ConnectOptions::default()).unwrap();
    (SourceHost::new(host, root.clone()), root)
}

/// A PATH with every command of the machine but PHP (`php`, `php7.4`, …), for running
/// ocmigrate on a host where PHP cannot run.
fn path_without_php(dir: &Path) -> String {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for d in ["/usr/local/bin", "/usr/bin"] {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let name = e.file_name();
            let n = name.to_string_lossy();
            if n.starts_with("php") || bin.join(&name).exists() {
                continue;
            }
            std::os::unix::fs::symlink(e.path(), bin.join(&name)).unwrap();
        }
    }
    format!("{}:/usr/sbin:/sbin", bin.display())
}

/// Without the lab: local sides (a copy of the fixture instance, a release-only folder) with PHP
/// hidden from PATH. init and plan read the config with the Rust reader and say so; a
/// malformed config.php and a folder without config get their messages and exit 2.
#[test]
fn without_php_locally_init_and_plan_say_what_they_could_read() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = repo().join("tests/phpconfig_fixtures/instance");
    let (src, tgt) = (dir.path().join("src"), dir.path().join("tgt"));
    let cp = Command::new("cp")
        .arg("-a")
        .arg(&fixture)
        .arg(&src)
        .status()
        .unwrap();
    assert!(cp.success());
    std::fs::create_dir(&tgt).unwrap();
    std::fs::copy(fixture.join("version.php"), tgt.join("version.php")).unwrap();
    let path = path_without_php(dir.path());
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ocmigrate"))
            .args(args)
            .current_dir(&work)
            .env("PATH", &path)
            .output()
            .unwrap()
    };
    let (s, t) = (src.to_str().unwrap(), tgt.to_str().unwrap());

    let o = run(&["init", "--source", s, "--target", t]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("PHP could not run"), "{}", text(&o));
    let toml = std::fs::read_to_string(work.join("ocmigrate.toml")).unwrap();
    assert!(
        toml.contains("10.15.2.0") && toml.contains("database sqlite"),
        "{toml}"
    );
    let o = run(&["plan", "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("plan --json");
    assert_finding(&v, "warning", "read-without-php");
    assert_finding(&v, "blocker", "source-php-missing");
    assert_finding(&v, "blocker", "target-php-missing");
    assert_finding(&v, "info", "release");
    // No SQLite file at the fixture's data directory: a blocker (a file pass needs the homes).
    assert_finding(&v, "blocker", "source-db-unreadable");
    assert!(
        !codes(&v).iter().any(|(_, c)| c == "php-version"),
        "no PHP version check without PHP: {v:#}"
    );

    // A malformed config.php: the reader's file, line and column; exit 2.
    std::fs::write(
        src.join("config/config.php"),
        "<?php\n$CONFIG = array (\n  'x' => ,\n);\n",
    )
    .unwrap();
    let o = run(&["init", "--force", "--source", s, "--target", t]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("config/config.php: line 3, column"),
        "{}",
        text(&o)
    );
    // No config.php at all (a release): not an instance, exit 2.
    let o = run(&["init", "--force", "--source", t, "--target", s]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("holds ownCloud code but no config/config.php"),
        "{}",
        text(&o)
    );
}

/// ocmigrate run on `old` itself (the source is a local path there) with PHP hidden from PATH:
/// discovery falls back to the Rust reader, init says so, plan warns and blocks (occ cannot
/// run), and a malformed config.php gets the reader's message with line and column.
#[test]
fn without_php_on_the_source_the_rust_reader_reads_the_config() {
    let lab = Lab::get();
    lab.instance("nextcloud", "mysql", 1, 10, 17);
    let dir = tempfile::tempdir().unwrap();
    let path = path_without_php(dir.path());
    let bin = env!("CARGO_BIN_EXE_ocmigrate");
    let on_old = |args: &str| {
        lab.exec(
            "old",
            &format!("cd {} && PATH={path} {bin} {args}", dir.path().display()),
        )
    };
    let hidden = lab.exec("old", &format!("PATH={path} command -v php"));
    assert!(!hidden.status.success(), "php is still on the PATH");

    let o = on_old("init --source /var/www/owncloud --target ssh://root@new/var/www/owncloud");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("PHP could not run"), "{}", text(&o));
    let toml = std::fs::read_to_string(dir.path().join("ocmigrate.toml")).unwrap();
    assert!(
        toml.contains("33.0.1.2") && toml.contains("database mysql"),
        "{toml}"
    );
    assert!(toml.contains("read by ocmigrate's own"), "{toml}");
    assert!(toml.contains("web_user = \"www-data\""), "{toml}");

    let o = on_old("plan --json");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("plan --json");
    assert_finding(&v, "warning", "read-without-php");
    assert_finding(&v, "blocker", "source-php-missing");
    assert_finding(&v, "info", "release");
    assert!(
        !codes(&v)
            .iter()
            .any(|(_, c)| c == "release-differs" || c == "source-db-unreadable"),
        "{v:#}"
    );
    assert!(
        v.to_string().contains("the database with its own client"),
        "{v:#}"
    );

    // A malformed config.php: the Rust reader names file, line and column; exit 2.
    lab.sh("old", "cp -p /var/www/owncloud/config/config.php /tmp/config.php.nophp && printf '<?php\\n$CONFIG = array (\\n  \"x\" => ,\\n' > /var/www/owncloud/config/config.php");
    let o =
        on_old("init --force --source /var/www/owncloud --target ssh://root@new/var/www/owncloud");
    lab.sh(
        "old",
        "cp -p /tmp/config.php.nophp /var/www/owncloud/config/config.php && rm -f /tmp/config.php.nophp",
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("/var/www/owncloud/config/config.php") && text(&o).contains("line 3"),
        "{}",
        text(&o)
    );
}

#[test]
fn each_blocker_and_warning_is_specific() {
    let lab = Lab::get();
    lab.instance("owncloud", "sqlite", 2, 40, 3);
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());

    // The target's release differs.
    lab.sh("new", "cp /var/www/owncloud/version.php /tmp/version.php.bak && sed -i 's/10,15,2,0/10,15,3,0/; s/10,\\s*15,\\s*2,\\s*0/10,15,3,0/' /var/www/owncloud/version.php");
    let (code, v) = plan_json(dir.path());
    lab.sh(
        "new",
        "cp /tmp/version.php.bak /var/www/owncloud/version.php",
    );
    assert_eq!(code, Some(1));
    assert_finding(&v, "blocker", "release-differs");

    // Redis configured on the source; no redis module on the target.
    add_source_config(&lab, "  'memcache.local' => '\\\\OC\\\\Memcache\\\\Redis',\n  'redis' => array ('host' => '127.0.0.1', 'port' => 6399),");
    let (code, v) = plan_json(dir.path());
    assert_eq!(code, Some(1));
    assert_finding(&v, "blocker", "php-module-missing");
    assert!(v.to_string().contains("redis"), "{v}");
    assert_finding(&v, "warning", "redis-unreachable");

    // config_is_read_only, object storage, public name not trusted.
    add_source_config(&lab, "  'config_is_read_only' => true,\n  'objectstore' => array ('class' => 'OCA\\\\Files_Primary_S3\\\\S3Storage', 'arguments' => array ('bucket' => 'b')),\n  'trusted_domains' => array (0 => 'localhost'),");
    let (code, v) = plan_json(dir.path());
    assert_eq!(code, Some(1));
    assert_finding(&v, "blocker", "config-read-only");
    assert_finding(&v, "warning", "object-storage");
    assert_eq!(v["copy_data"], false);
    assert_finding(&v, "blocker", "public-name-untrusted");
    lab.sh("old", "rm -f /var/www/owncloud/config/zz-test.config.php");

    // LDAP server unreachable, a local external mount, a home outside the data directory.
    sqlite(&lab, "INSERT INTO oc_appconfig (appid, configkey, configvalue) VALUES ('user_ldap','enabled','yes'),('user_ldap','installed_version','0.15.4'),('user_ldap','ldap_host','127.0.0.9'),('user_ldap','ldap_port','3899'),('user_ldap','ldap_configuration_active','1');\n\
        INSERT INTO oc_external_mounts (mount_point, storage_backend, auth_backend, priority, type) VALUES ('/shared', 'local', 'null::null', 100, 1);\n\
        INSERT INTO oc_external_config (mount_id, key, value) VALUES ((SELECT max(mount_id) FROM oc_external_mounts), 'datadir', '/srv/shared');\n\
        UPDATE oc_accounts SET home = '/home/oc/user1' WHERE user_id = 'user1';");
    let (_, v) = plan_json(dir.path());
    assert_finding(&v, "warning", "ldap-unreachable");
    assert_finding(&v, "warning", "external-local-mount");
    assert_finding(&v, "warning", "home-outside-datadir");
    // A file pass's own (smaller) inventory finds that home too, and copies it as a tree.
    let (src, root) = old_source();
    let inv = ocmigrate::inventory::source_for_trees(&src, None).unwrap();
    let trees = ocmigrate::transfer::trees::of_inventory(&inv, &root, &root, false);
    assert!(
        trees
            .iter()
            .any(|t| t.name == "home-user1" && t.source == Path::new("/home/oc/user1")),
        "{trees:?}"
    );

    // Target data path cannot be created; then not enough disk on the target.
    lab.instance("owncloud", "sqlite", 2, 40, 3);
    lab.sh("new", "touch /var/www/owncloud/data");
    let (code, v) = plan_json(dir.path());
    lab.sh("new", "rm -f /var/www/owncloud/data");
    assert_eq!(code, Some(1));
    assert_finding(&v, "blocker", "target-datadir");
    lab.sh(
        "new",
        "mkdir -p /var/www/owncloud/data && mount -t tmpfs -o size=1m tmpfs /var/www/owncloud/data",
    );
    let (code, v) = plan_json(dir.path());
    lab.sh(
        "new",
        "umount /var/www/owncloud/data && rmdir /var/www/owncloud/data",
    );
    assert_eq!(code, Some(1));
    assert_finding(&v, "blocker", "target-disk");
}

#[test]
fn target_database_server_unreachable() {
    let lab = Lab::get();
    lab.instance("owncloud", "mysql", 1, 20, 5);
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());
    lab.sh("new", "mariadb-admin shutdown");
    let (code, v) = plan_json(dir.path());
    // Bring the lab back whole for the tests after this one.
    lab_cmd(&["up"]);
    assert_eq!(code, Some(1));
    assert_finding(&v, "blocker", "target-db-unreachable");
}

/// A first pass's setting: the lab instance, a migration file for it, and no data folder on the
/// target yet (so that a pass that stops can be seen to have written nothing there).
fn first_pass(lab: &Lab, flavor: &str, db: &str, seed: u64) -> tempfile::TempDir {
    lab.instance(flavor, db, 1, 20, seed);
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());
    lab.sh("new", "rm -rf /var/www/owncloud/data");
    dir
}

/// A pass that stopped: exit `code`, a message holding every one of `says`, and the target's data
/// folder not made (it stopped before it wrote).
fn stopped(lab: &Lab, out: &Output, code: i32, says: &[&str]) {
    let t = text(out);
    assert_eq!(out.status.code(), Some(code), "{t}");
    for s in says {
        assert!(t.contains(s), "{s:?} in:\n{t}");
    }
    lab.sh("new", "test ! -e /var/www/owncloud/data");
}

/// The same pass, with its cause mended, runs and makes the target's data folder.
fn then_the_pass_runs(lab: &Lab, dir: &Path) {
    let out = ocmigrate(&["sync"], dir);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    lab.sh("new", "test -e /var/www/owncloud/data/.ocdata");
}

/// A pass whose source database cannot be read stops and says so: homes outside the data
/// directory are known only from it, and a pass without them would leave them out without a
/// word. Nothing reaches the target; with the database back, the same pass runs.
#[test]
fn a_pass_stops_when_the_source_database_cannot_be_read() {
    let lab = Lab::get();
    let dir = first_pass(&lab, "owncloud", "mysql", 5);
    add_source_config(&lab, "  'dbhost' => '127.0.0.1:3399',");
    let out = ocmigrate(&["sync"], dir.path());
    lab.sh("old", "rm -f /var/www/owncloud/config/zz-test.config.php");
    stopped(
        &lab,
        &out,
        1,
        &[
            "the database could not be read",
            "homes outside the data directory",
        ],
    );
    then_the_pass_runs(&lab, dir.path());
}

/// ownCloud 10 keeps every home in `oc_accounts.home`: a pass that cannot read that table, the
/// database otherwise reachable, stops (exit 1) and names the table; plan blocks. Both roads
/// (PHP and the database's own client) see it. Nextcloud, which has no home column, is covered
/// by `php_and_rust_agree`.
#[test]
fn a_pass_stops_when_the_homes_cannot_be_read() {
    let lab = Lab::get();
    let dir = first_pass(&lab, "owncloud", "mysql", 6);
    lab.sql(
        "mysql",
        "owncloud",
        "RENAME TABLE oc_accounts TO ocm_test_accounts;",
    );
    let out = ocmigrate(&["sync"], dir.path());
    let (plan_code, plan) = plan_json(dir.path());
    let (src, _) = old_source();
    let without_php = ocmigrate::inventory::source_for_trees_without_php(&src);
    lab.sql(
        "mysql",
        "owncloud",
        "RENAME TABLE ocm_test_accounts TO oc_accounts;",
    );
    stopped(
        &lab,
        &out,
        1,
        &[
            "the users' homes could not be read from oc_accounts",
            "doesn't exist",
        ],
    );
    assert_eq!(plan_code, Some(1), "{plan:#}");
    assert_finding(&plan, "blocker", "source-homes-unreadable");
    let inv = without_php.unwrap();
    let why = inv.homes_unread().expect("the client road sees it too");
    assert!(why.contains("oc_accounts"), "{why}");
    then_the_pass_runs(&lab, dir.path());
}

/// A web user who cannot see `config/` (a folder closed to it) is named, with the owner of
/// `config.php` to set instead; exit 2, nothing written.
#[test]
fn a_web_user_who_cannot_see_the_config_is_named() {
    let lab = Lab::get();
    let dir = first_pass(&lab, "owncloud", "sqlite", 8);
    let toml = dir.path().join("ocmigrate.toml");
    let file = std::fs::read_to_string(&toml).unwrap();
    let (before, after) = file.split_once("[target]").expect("a [target] table");
    assert!(before.contains("web_user = \"www-data\""), "{file}");
    let changed = format!(
        "{}[target]{after}",
        before.replace("web_user = \"www-data\"", "web_user = \"nobody\"")
    );
    std::fs::write(&toml, changed).unwrap();
    lab.sh("old", "chmod 0750 /var/www/owncloud/config");
    let out = ocmigrate(&["sync"], dir.path());
    lab.sh("old", "chmod 0755 /var/www/owncloud/config");
    stopped(
        &lab,
        &out,
        2,
        &[
            "/var/www/owncloud/config/config.php exists (owned by www-data), but the inventory, run as nobody, cannot see it",
            "web_user = \"www-data\"",
        ],
    );
}

#[test]
fn bad_input_gives_clear_messages_and_exit_codes() {
    let lab = Lab::get();
    lab.instance("owncloud", "sqlite", 1, 10, 9);
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| ocmigrate(args, dir.path());

    // A path that is not an instance.
    let o = run(&[
        "init",
        "--source",
        "ssh://root@127.0.0.2/var/www",
        "--target",
        TGT,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("/var/www has no config/config.php: this is not an ownCloud instance"),
        "{}",
        text(&o)
    );
    let o = run(&[
        "init",
        "--source",
        "ssh://root@127.0.0.2/nope",
        "--target",
        TGT,
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("/nope does not exist"), "{}", text(&o));

    // No config: new holds the release only (code, no config/config.php).
    let o = run(&["init", "--source", TGT, "--target", SRC]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("holds ownCloud code but no config/config.php"),
        "{}",
        text(&o)
    );

    // Wrong ssh port: unreachable, exit 3.
    let o = run(&[
        "init",
        "--source",
        "ssh://root@127.0.0.2:2299/var/www/owncloud",
        "--target",
        TGT,
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("connection was refused"), "{}", text(&o));

    // Unknown host key (an empty known_hosts): refused, never accepted silently.
    let cfg = dir.path().join("ssh_config");
    std::fs::write(
        &cfg,
        "UserKnownHostsFile /dev/null\nGlobalKnownHostsFile /dev/null\n",
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_ocmigrate"))
        .args(["init", "--source", SRC, "--target", TGT])
        .current_dir(dir.path())
        .env("OCMIGRATE_SSH_CONFIG", &cfg)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("host key is not known"), "{}", text(&o));

    // Malformed config.php on the source.
    lab.sh("old", "cp -p /var/www/owncloud/config/config.php /tmp/config.php.bak && printf '<?php\\n$CONFIG = array (\\n  \"x\" => ,\\n' > /var/www/owncloud/config/config.php");
    let o = run(&["init", "--source", SRC, "--target", TGT]);
    lab.sh(
        "old",
        "cp -p /tmp/config.php.bak /var/www/owncloud/config/config.php",
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("a config file cannot be parsed"),
        "{}",
        text(&o)
    );
    assert!(
        text(&o).contains("config/config.php on line 3"),
        "{}",
        text(&o)
    );

    // Half-installed: 'installed' => false.
    lab.sh("old", "sed -i \"s/'installed' => true/'installed' => false/\" /var/www/owncloud/config/config.php");
    let o = run(&["init", "--source", SRC, "--target", TGT]);
    lab.sh(
        "old",
        "cp -p /tmp/config.php.bak /var/www/owncloud/config/config.php",
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("is not installed"), "{}", text(&o));

    // No migration file, and an existing one is not overwritten.
    let o = run(&["plan"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("cannot read the migration file"),
        "{}",
        text(&o)
    );
    std::fs::write(dir.path().join("ocmigrate.toml"), "x").unwrap();
    let o = run(&["init", "--source", SRC, "--target", TGT]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("exists already"), "{}", text(&o));
    let o = run(&["plan"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn a_long_cname_ttl_is_a_warning() {
    let lab = Lab::get();
    lab.instance("owncloud", "sqlite", 1, 10, 11);
    let dir = tempfile::tempdir().unwrap();
    let file = init(dir.path());
    let mut toml = std::fs::read_to_string(&file).unwrap();
    let dns_at = toml.find("[dns]").unwrap();
    toml.truncate(dns_at);
    toml.push_str(&format!(
        "[dns]\nmode = \"manual\"\nserver = \"{}\"\nzone = \"example.test.\"\nname = \"cloud.example.test.\"\ntarget = \"new.example.test.\"\n",
        lab.var("LAB_DNS")
    ));
    std::fs::write(&file, toml).unwrap();
    lab_cmd(&["dns-reset"]);
    let (code, v) = plan_json(dir.path());
    assert_eq!(code, Some(0), "{v:#}");
    assert!(
        !codes(&v).iter().any(|(_, c)| c == "dns-ttl-long"),
        "TTL 60 is short: {v:#}"
    );
    assert_finding(&v, "info", "dns");
    lab_nsupdate(&lab, "cloud.example.test.", "old.example.test.", 3600);
    let (code, v) = plan_json(dir.path());
    lab_cmd(&["dns-reset"]);
    assert_eq!(code, Some(0), "a warning does not block: {v:#}");
    assert_finding(&v, "warning", "dns-ttl-long");
    assert!(v.to_string().contains("3600"), "{v}");
}

/// An ssh session killed under ocmigrate (a lost connection) is exit 3, "the ssh connection was
/// lost", whatever the command was: not a missing file read as "no config.php" (exit 2, found by
/// bench/faults: ssh killed during preflight), nor a broken PHP answer (exit 1). The `ssh` first
/// in PATH kills itself (SIGKILL) when its command is the one given, and is the real ssh otherwise.
#[test]
fn a_killed_ssh_session_is_a_lost_connection() {
    let lab = Lab::get();
    lab.instance("owncloud", "sqlite", 1, 10, 5);
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let real = String::from_utf8(
        Command::new("sh")
            .args(["-c", "command -v ssh"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let file = dir.path().join("ocmigrate.toml");
    let with_web_user = std::fs::read_to_string(&file).unwrap();
    assert!(with_web_user.contains("web_user = \"www-data\""));
    // Without a web user in the migration file the inventory runs as the owner of config.php,
    // which the same command finds first.
    let without: String = with_web_user
        .lines()
        .filter(|l| !l.starts_with("web_user"))
        .map(|l| format!("{l}\n"))
        .collect();
    for (victim, why, toml) in [
        ("stat -c %U", "the owner of config.php", &without),
        (
            "php -d display_errors=stderr",
            "the PHP inventory",
            &with_web_user,
        ),
    ] {
        std::fs::write(&file, toml).unwrap();
        let wrapper = bin.join("ssh");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\ncase \"$*\" in *'{victim}'*) kill -9 $$ ;; esac\nexec {} \"$@\"\n",
                real.trim()
            ),
        )
        .unwrap();
        Command::new("chmod")
            .arg("755")
            .arg(&wrapper)
            .status()
            .unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_ocmigrate"))
            .arg("plan")
            .current_dir(dir.path())
            .env(
                "PATH",
                format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
            )
            .output()
            .unwrap();
        let t = text(&out);
        assert_eq!(out.status.code(), Some(3), "{why}: {t}");
        assert!(
            t.contains("the ssh connection was lost (the ssh client was killed by signal 9)"),
            "{why}: {t}"
        );
    }
}
