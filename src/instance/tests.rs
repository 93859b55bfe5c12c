use super::*;
use crate::exit::ExitKind;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/phpconfig_fixtures")
}

const OC_VERSION_PHP: &str = "<?php\n$OC_Version = array(10,15,2,0);\n$OC_VersionString = '10.15.2';\n$OC_Edition = 'Community';\n$vendor = 'owncloud';\n";
const NC_VERSION_PHP: &str = "<?php\n$OC_Version = array(33,0,1,2);\n$OC_VersionString = '33.0.1';\n$OC_Edition = '';\n$vendor = 'nextcloud';\n";

fn files(root: &str, config: &str, version: &str) -> InstanceFiles {
    InstanceFiles {
        root: PathBuf::from(root),
        config_php: Some(config.as_bytes().to_vec()),
        extra_configs: Vec::new(),
        version_php: Some(version.as_bytes().to_vec()),
    }
}

fn failure(r: Result<Instance, Failure>) -> Failure {
    match r {
        Ok(i) => panic!("accepted: {i:?}"),
        Err(f) => f,
    }
}

#[test]
fn fixture_instance_model() {
    let root = fixtures().join("instance");
    let i = Instance::load_local(&root).unwrap();
    assert_eq!(i.flavor, Flavor::OwnCloud);
    assert_eq!(i.code.version, Version([10, 15, 2, 0]));
    assert_eq!(i.config_version, Some(Version([10, 15, 2, 0])));
    assert!(i.installed && !i.maintenance && !i.config_is_read_only);
    assert_eq!(i.datadirectory, Path::new("/var/www/owncloud/data"));
    assert!(!i.datadirectory_is_default);
    assert_eq!(i.db.kind, DbKind::Sqlite);
    assert_eq!(
        i.db.endpoint(),
        DbEndpoint::File(Path::new("/var/www/owncloud/data/owncloud.db"))
    );
    assert_eq!(
        i.apps_paths,
        [
            AppsPath {
                path: "/var/www/owncloud/apps".into(),
                url: "/apps".into(),
                writable: false
            },
            AppsPath {
                path: "/var/www/owncloud/apps-external".into(),
                url: "/apps-external".into(),
                writable: true
            },
        ]
    );
    assert!(!i.apps_paths_default);
    assert_eq!(i.log.log_type, "owncloud");
    assert_eq!(i.log.file, Path::new("/var/www/owncloud/data/owncloud.log"));
    assert!(i.log.writes_file() && !i.log.file_configured);
    assert_eq!(i.theme.as_deref(), Some("mytheme")); // from 9.config.php
    assert_eq!(i.memcache.local.as_deref(), Some("\\OC\\Memcache\\APCu"));
    assert_eq!(i.memcache.locking.as_deref(), Some("\\OC\\Memcache\\Redis")); // zz.config.php
    assert_eq!(
        i.required_php_modules().into_iter().collect::<Vec<_>>(),
        ["apcu", "redis"]
    );
    assert_eq!(i.trusted_domains, ["localhost", "127.0.0.1"]);
    assert_eq!(i.overwrite_cli_url.as_deref(), Some("http://localhost"));
    assert_eq!(
        i.identity.instanceid.as_ref().map(|s| s.expose()),
        Some(&b"oc8x1k2v9q3z"[..])
    );
    assert!(i.objectstore.is_none());
    assert_eq!(
        i.config_files,
        [
            "config.php",
            "9.config.php",
            "10.config.php",
            "nothing.config.php",
            "zz.config.php"
        ]
    );
    assert_eq!(
        i.config.get("logtimezone").and_then(PhpValue::as_str),
        Some("Europe/Berlin")
    );
}

/// The invariant: no secret value appears in any printed form of the model.
#[test]
fn instance_debug_never_shows_secrets() {
    let i = Instance::load_local(&fixtures().join("instance")).unwrap();
    let shown = format!("{i:?} {i:#?} {:?}", i.config.redacted());
    for secret in [
        "pGhr3XBtsJ+8YQ2y4C0RyqAyqB3Kso",
        "Wm3mRLCnX8LXvu/ld8Gp2Yo0FpX8vJNH0z4UNSVdN0yvjIWq",
        "oc8x1k2v9q3z",
        "redis-pw",
    ] {
        assert!(!shown.contains(secret), "{secret} leaked");
    }
    let f = InstanceFiles::read_local(&fixtures().join("instance")).unwrap();
    assert!(!format!("{f:?}").contains("pGhr3"));
    let m = f.merged_config().unwrap();
    assert!(!format!("{m:?}").contains("pGhr3"));
}

#[test]
fn nextcloud_mysql() {
    let cfg = std::fs::read_to_string(fixtures().join("nextcloud-mysql.php")).unwrap();
    let i = files("/var/www/nextcloud", &cfg, NC_VERSION_PHP)
        .instance()
        .unwrap();
    assert_eq!(i.flavor, Flavor::Nextcloud);
    assert_eq!(i.db.kind, DbKind::Mysql);
    assert_eq!(
        i.db.endpoint(),
        DbEndpoint::Tcp {
            host: "127.0.0.1",
            port: Some(3307)
        }
    );
    assert_eq!(i.db.name, "nextcloud");
    assert_eq!(i.db.user, "nextcloud");
    assert_eq!(i.db.password.expose(), b"p@ss'word\\with\"quotes");
    assert!(i.db.utf8mb4);
    assert_eq!(i.log.log_type, "file");
    assert_eq!(
        i.log.file,
        Path::new("/var/www/nextcloud/data/nextcloud.log")
    );
    assert!(i.apps_paths_default);
    assert_eq!(i.apps_paths[0].path, Path::new("/var/www/nextcloud/apps"));
    assert_eq!(
        i.required_php_modules().into_iter().collect::<Vec<_>>(),
        ["apcu", "redis"]
    );
    assert!(!format!("{i:?}").contains("p@ss"));
}

#[test]
fn defaults() {
    let i = files(
        "/srv/oc",
        "<?php $CONFIG = ['installed' => true, 'instanceid' => 'oc1', 'secret' => 's'];",
        OC_VERSION_PHP,
    )
    .instance()
    .unwrap();
    assert_eq!(i.datadirectory, Path::new("/srv/oc/data"));
    assert!(i.datadirectory_is_default);
    assert_eq!(
        i.db.endpoint(),
        DbEndpoint::File(Path::new("/srv/oc/data/owncloud.db"))
    );
    assert_eq!(i.log.file, Path::new("/srv/oc/data/owncloud.log"));
    assert_eq!(i.config_version, None);
    assert!(i.trusted_domains.is_empty());
    assert!(i.theme.is_none());
    assert!(i.required_php_modules().is_empty());
    // A null value counts as not set, as ownCloud's isset() does.
    let i = files(
        "/srv/oc",
        "<?php $CONFIG = ['installed' => true, 'datadirectory' => null, 'logfile' => '/var/log/oc.log', 'log_type' => 'syslog', 'theme' => ''];",
        OC_VERSION_PHP,
    )
    .instance()
    .unwrap();
    assert_eq!(i.datadirectory, Path::new("/srv/oc/data"));
    assert_eq!(i.log.file, Path::new("/var/log/oc.log"));
    assert!(i.log.file_configured && !i.log.writes_file());
    assert!(i.theme.is_none());
}

#[test]
fn object_store_and_read_only_and_odd_flags() {
    let i = files(
        "/srv/oc",
        "<?php $CONFIG = ['installed' => 1, 'maintenance' => 'false', 'config_is_read_only' => true, 'objectstore' => ['class' => 'OCA\\Files_Primary_S3\\S3Storage', 'arguments' => ['secret' => 'k']], 'memcache.local' => 'OC\\Memcache\\Fancy'];",
        OC_VERSION_PHP,
    )
    .instance()
    .unwrap();
    assert!(i.installed);
    assert!(i.maintenance, "PHP reads the string 'false' as true");
    assert!(i.config_is_read_only);
    assert_eq!(
        i.objectstore,
        Some(ObjectStore {
            class: Some("OCA\\Files_Primary_S3\\S3Storage".into()),
            multibucket: false
        })
    );
    let w = i.warnings.join("\n");
    assert!(
        w.contains("`installed`") && w.contains("`maintenance`"),
        "{w}"
    );
    assert!(w.contains("Fancy"), "{w}");
    assert!(w.contains("instanceid"), "{w}");
}

#[test]
fn memcache_modules() {
    assert_eq!(
        memcache_php_module("\\OC\\Memcache\\APCu"),
        Some(Some("apcu"))
    );
    assert_eq!(
        memcache_php_module("OC\\Memcache\\apcu"),
        Some(Some("apcu"))
    );
    assert_eq!(
        memcache_php_module("\\OC\\Memcache\\Redis"),
        Some(Some("redis"))
    );
    assert_eq!(
        memcache_php_module("\\OC\\Memcache\\Memcached"),
        Some(Some("memcached"))
    );
    assert_eq!(
        memcache_php_module("\\OC\\Memcache\\ArrayCache"),
        Some(None)
    );
    assert_eq!(memcache_php_module("\\OC\\Memcache\\XCache"), None);
}

#[test]
fn not_an_instance_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let f = failure(Instance::load_local(dir.path()));
    assert_eq!(f.kind, ExitKind::Usage);
    let want = dir.path().join("config/config.php");
    assert!(f.message.contains("no ownCloud instance"), "{}", f.message);
    assert!(
        f.message.contains(&want.display().to_string()),
        "{}",
        f.message
    );
    assert!(f.hint.is_some());
}

#[test]
fn half_installed() {
    let f = failure(
        files(
            "/srv/oc",
            "<?php $CONFIG = ['installed' => false];",
            OC_VERSION_PHP,
        )
        .instance(),
    );
    assert!(f.message.contains("half-installed"), "{}", f.message);
    assert!(f.hint.as_deref().unwrap().contains("maintenance:install"));
    let f = failure(files("/srv/oc", "<?php $CONFIG = ['a' => 1];", OC_VERSION_PHP).instance());
    assert!(f.message.contains("half-installed"), "{}", f.message);
    let f = failure(files("/srv/oc", "<?php // nothing", OC_VERSION_PHP).instance());
    assert!(f.message.contains("does not set $CONFIG"), "{}", f.message);
}

#[test]
fn malformed_config_names_file_line_and_column() {
    let f = failure(
        files(
            "/srv/oc",
            "<?php\n$CONFIG = array(\n  'datadirectory' => getenv('DATA'),\n);",
            OC_VERSION_PHP,
        )
        .instance(),
    );
    assert_eq!(f.kind, ExitKind::Usage);
    assert!(
        f.message
            .starts_with("/srv/oc/config/config.php: line 3, column 22:"),
        "{}",
        f.message
    );
    assert!(f.message.contains("getenv"), "{}", f.message);
    assert!(f.hint.as_deref().unwrap().contains("php-cli"));
    let mut broken = files(
        "/srv/oc",
        "<?php $CONFIG = ['installed' => true];",
        OC_VERSION_PHP,
    );
    broken.extra_configs.push((
        "zz.config.php".into(),
        b"<?php $CONFIG = ['a' => ];".to_vec(),
    ));
    let f = failure(broken.instance());
    assert!(
        f.message
            .starts_with("/srv/oc/config/zz.config.php: line 1, column 25:"),
        "{}",
        f.message
    );
    assert!(f.hint.as_deref().unwrap().contains("php -l"));
}

#[test]
fn version_php_problems() {
    let mut f = files(
        "/srv/oc",
        "<?php $CONFIG = ['installed' => true];",
        OC_VERSION_PHP,
    );
    f.version_php = None;
    let e = failure(f.instance());
    assert!(e.message.contains("version.php"), "{}", e.message);
    let e = failure(
        files(
            "/srv/oc",
            "<?php $CONFIG = ['installed' => true];",
            "<?php $vendor = 'x';",
        )
        .instance(),
    );
    assert!(
        e.message.starts_with("/srv/oc/version.php:"),
        "{}",
        e.message
    );
}

#[test]
fn bad_values_fail_with_the_key() {
    for (cfg, key) in [
        ("'datadirectory' => ['x']", "datadirectory"),
        ("'datadirectory' => ''", "datadirectory"),
        ("'dbtype' => 'oci'", "dbtype"),
        ("'version' => 'ten'", "version"),
        ("'overwrite.cli.url' => 5", "overwrite.cli.url"),
    ] {
        let src = format!("<?php $CONFIG = ['installed' => true, {cfg}];");
        let e = failure(files("/srv/oc", &src, OC_VERSION_PHP).instance());
        assert!(e.message.contains(key), "{cfg}: {}", e.message);
        assert_eq!(e.kind, ExitKind::Usage);
    }
}

#[test]
fn apps_paths_rules() {
    let i = files(
        "/srv/oc",
        "<?php $CONFIG = ['installed' => true, 'apps_paths' => [['path' => '/srv/oc/apps/', 'url' => '/apps/', 'writable' => 1], ['url' => '/x'], 'junk']];",
        OC_VERSION_PHP,
    )
    .instance()
    .unwrap();
    assert_eq!(
        i.apps_paths,
        [AppsPath {
            path: "/srv/oc/apps".into(),
            url: "/apps".into(),
            writable: false // only `true` itself counts
        }]
    );
    assert_eq!(
        i.warnings
            .iter()
            .filter(|w| w.contains("apps_paths"))
            .count(),
        2
    );
}

#[test]
fn identity_compares_without_printing() {
    let a = files(
        "/srv/oc",
        "<?php $CONFIG = ['installed' => true, 'instanceid' => 'oc1', 'secret' => 's1', 'passwordsalt' => 'p'];",
        OC_VERSION_PHP,
    )
    .instance()
    .unwrap();
    let b = files(
        "/srv/oc",
        "<?php $CONFIG = ['installed' => true, 'instanceid' => 'oc1', 'secret' => 's2'];",
        OC_VERSION_PHP,
    )
    .instance()
    .unwrap();
    assert_eq!(a.identity.differences(&a.identity), Vec::<&str>::new());
    assert_eq!(
        a.identity.differences(&b.identity),
        ["secret", "passwordsalt"]
    );
    assert_eq!(
        a.identity.instanceid.as_ref().unwrap().fingerprint(),
        b.identity.instanceid.as_ref().unwrap().fingerprint()
    );
}

#[test]
fn pending_upgrade_is_a_warning() {
    let i = files(
        "/srv/oc",
        "<?php $CONFIG = ['installed' => true, 'version' => '10.14.0.3'];",
        OC_VERSION_PHP,
    )
    .instance()
    .unwrap();
    assert!(
        i.warnings.iter().any(|w| w.contains("10.14.0.3")),
        "{:?}",
        i.warnings
    );
}

/// Discovery with PHP: the snippet's output and `version.php` make the same instance.
#[test]
fn instance_from_php_output_equals_rust_road() {
    let root = fixtures().join("instance");
    let config_dir = root.join("config");
    let (rc, out, err) = testphp::php(
        &["-r", MERGE_SNIPPET, "--", config_dir.to_str().unwrap()],
        b"",
    );
    assert_eq!(rc, 0, "{err}");
    let merged = merged_config_from_php(&root, Some(rc), &out, &err).unwrap();
    let code = read_code_version(
        &root,
        Some(&std::fs::read(root.join("version.php")).unwrap()),
    )
    .unwrap();
    let with_php = Instance::from_parts(&root, merged, code).unwrap();
    let without = Instance::load_local(&root).unwrap();
    assert_eq!(format!("{with_php:?}"), format!("{without:?}"));
    assert_eq!(with_php.config, without.config);
    assert_eq!(with_php.identity, without.identity);
}

#[test]
fn must_match_and_changed_keys() {
    let cfg = "<?php $CONFIG = ['installed' => true, 'instanceid' => 'oc1', 'secret' => 's', 'passwordsalt' => 'p', 'version' => '10.15.2.0', 'theme' => 'corp'];";
    let a = files("/srv/oc", cfg, OC_VERSION_PHP).instance().unwrap();
    assert_eq!(a.theme_dir(), Some(PathBuf::from("/srv/oc/themes/corp")));
    let b = files("/srv/new", cfg, OC_VERSION_PHP).instance().unwrap();
    // Same config, other root: the default data directory differs.
    assert_eq!(a.must_match_differences(&b), ["datadirectory"]);
    assert!(a.must_match_differences(&a).is_empty());
    let before = a.config.value().clone();
    let after = files(
        "/srv/oc",
        "<?php $CONFIG = ['installed' => true, 'instanceid' => 'oc1', 'secret' => 'CHANGED', 'version' => '10.15.2.0', 'theme' => 'corp', 'maintenance' => true];",
        OC_VERSION_PHP,
    )
    .instance()
    .unwrap();
    let changed = changed_config_keys(&before, after.config.value());
    assert_eq!(changed, ["secret", "maintenance", "passwordsalt"]);
    assert!(!changed.concat().contains("CHANGED"));
}

#[test]
fn php_road_failures() {
    let root = Path::new("/srv/oc");
    let f = merged_config_from_php(
        root,
        Some(2),
        b"",
        "ocmigrate: ParseError: syntax error in /srv/oc/config/config.php on line 3\n",
    )
    .unwrap_err();
    assert!(
        f.message.contains("line 3") && f.message.contains("/srv/oc/config"),
        "{}",
        f.message
    );
    let f = merged_config_from_php(root, Some(0), b"garbage", "").unwrap_err();
    assert!(f.message.contains("/srv/oc/config"), "{}", f.message);
    let f = merged_config_from_php(
        root,
        Some(0),
        br#"{"files":["zz.config.php"],"output":{},"config":{"a":1}}"#,
        "",
    )
    .unwrap_err();
    assert!(f.message.contains("no ownCloud instance"), "{}", f.message);
    let f = merged_config_from_php(root, None, b"", "").unwrap_err();
    assert!(f.message.contains("signal"), "{}", f.message);
    let f = read_code_version(root, None).unwrap_err();
    assert!(f.message.contains("/srv/oc/version.php"), "{}", f.message);
}

#[test]
fn read_only_config_follows_operation_mode() {
    let ro = |flavor: &str, extra: &str| {
        let src =
            format!("<?php $CONFIG = ['installed' => true, 'config_is_read_only' => true{extra}];");
        files("/srv/oc", &src, flavor)
            .instance()
            .unwrap()
            .config_is_read_only
    };
    assert!(ro(OC_VERSION_PHP, ""));
    assert!(ro(
        OC_VERSION_PHP,
        ", 'operation.mode' => 'single-instance'"
    ));
    assert!(!ro(
        OC_VERSION_PHP,
        ", 'operation.mode' => 'clustered-instance'"
    ));
    assert!(ro(
        NC_VERSION_PHP,
        ", 'operation.mode' => 'clustered-instance'"
    ));
}
