//! `init` and `plan` against the lab: discovery per flavor × database, every pre-flight finding
//! provoked on purpose, the source left unchanged, and bad input.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SRC: &str = "ssh://root@127.0.0.2/var/www/owncloud";
const TGT: &str = "ssh://root@127.0.0.3/var/www/owncloud";

fn ocmigrate(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ocmigrate"))
        .args(args)
        .current_dir(cwd)
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
        assert!(toml.contains("stop = [\"service apache2 stop\"]"), "{toml}");
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
    }
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
