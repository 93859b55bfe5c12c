//! `labkit instance`: a whole installed instance (config, data directory, apps-external, database
//! rows, secrets) made from a seed. See lab/README.md ("Test instances") and lab/labkit/README.md.

use crate::php::{config_file, Php};
use crate::rng::{Rng, ALNUM, LOWER_ALNUM};
use crate::sql::{Dialect, Inserts, V};
use crate::tree::{content_for, set_mtime, write_tree, Content, Tree, NOW, OLDEST};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub const ROOT: &str = "/var/www/owncloud";
pub const DATADIR: &str = "/var/www/owncloud/data";
pub const PREFIX: &str = "oc_";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Owncloud,
    Nextcloud,
}

impl Flavor {
    pub fn name(self) -> &'static str {
        match self {
            Flavor::Owncloud => "owncloud",
            Flavor::Nextcloud => "nextcloud",
        }
    }
    pub fn version(self) -> &'static str {
        match self {
            Flavor::Owncloud => "10.15.2.0",
            Flavor::Nextcloud => "33.0.1.2",
        }
    }
    pub fn log_name(self) -> &'static str {
        match self {
            Flavor::Owncloud => "owncloud.log",
            Flavor::Nextcloud => "nextcloud.log",
        }
    }
    /// The apps in the release's `apps/` that are installed and enabled: (id, name, version, types).
    pub fn core_apps(self) -> &'static [(&'static str, &'static str, &'static str, &'static str)] {
        match self {
            Flavor::Owncloud => &[
                ("comments", "Comments", "0.3.0", "logging"),
                ("dav", "WebDAV", "0.7.0", "filesystem"),
                (
                    "federatedfilesharing",
                    "Federated File Sharing",
                    "0.5.0",
                    "",
                ),
                ("files", "Files", "1.5.2", "filesystem"),
                (
                    "files_external",
                    "External storage support",
                    "0.9.0",
                    "filesystem",
                ),
                ("files_sharing", "Share Files", "0.14.0", "filesystem"),
                ("files_trashbin", "Deleted files", "0.9.1", "filesystem"),
                ("files_versions", "Versions", "1.3.0", "filesystem"),
                (
                    "provisioning_api",
                    "Provisioning API",
                    "0.5.0",
                    "prevent_group_restriction",
                ),
                ("systemtags", "Collaborative Tags", "0.3.0", "logging"),
                ("updatenotification", "Update notifications", "0.2.1", ""),
            ],
            Flavor::Nextcloud => &[
                ("comments", "Comments", "1.23.0", "logging"),
                ("dav", "WebDAV", "1.35.0", "filesystem"),
                (
                    "federatedfilesharing",
                    "Federated file sharing",
                    "1.23.0",
                    "",
                ),
                ("files", "Files", "2.5.0", "filesystem"),
                ("files_sharing", "File sharing", "1.25.1", "filesystem"),
                (
                    "files_trashbin",
                    "Deleted files",
                    "1.23.0",
                    "filesystem,dav",
                ),
                ("files_versions", "Versions", "1.26.0", "filesystem,dav"),
                (
                    "provisioning_api",
                    "Provisioning API",
                    "1.23.0",
                    "prevent_group_restriction",
                ),
                ("settings", "Settings", "1.16.0", ""),
                ("systemtags", "Collaborative tags", "1.23.0", "logging"),
                ("theming", "Theming", "2.8.0", "logging"),
                ("viewer", "Files viewer", "5.0.0", ""),
            ],
        }
    }
    /// Apps in `apps-external/` (ownCloud's writable apps path; copied by a migration).
    pub fn external_apps(
        self,
    ) -> &'static [(&'static str, &'static str, &'static str, &'static str)] {
        match self {
            Flavor::Owncloud => &[("customgroups", "Custom groups", "0.9.0", "")],
            Flavor::Nextcloud => &[],
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Mysql,
    Pgsql,
}

impl Db {
    pub fn name(self) -> &'static str {
        match self {
            Db::Sqlite => "sqlite",
            Db::Mysql => "mysql",
            Db::Pgsql => "pgsql",
        }
    }
    fn dialect(self) -> Dialect {
        match self {
            Db::Sqlite => Dialect::Sqlite,
            Db::Mysql => Dialect::Mysql,
            Db::Pgsql => Dialect::Pgsql,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Opts {
    pub flavor: Flavor,
    pub db: Db,
    pub users: u32,
    pub files: u64,
    pub bytes: u64,
    pub seed: u64,
    pub out: PathBuf,
    pub sql: Option<PathBuf>,
    pub secrets: Option<PathBuf>,
    pub release_out: Option<PathBuf>,
    pub extra_config: bool,
    pub bcrypt_cost: u32,
}

/// What was made, for the summary.
#[derive(Debug, Default)]
pub struct Made {
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
    pub rows: u64,
}

struct Storage {
    numeric_id: i64,
    id: String,
    uid: Option<String>,
    tree: Tree,
}

struct User {
    uid: String,
    display: String,
    password: String,
    hash: String,
    created: i64,
}

const DISPLAY_NAMES: &[&str] = &[
    "Zoë Müller",
    "José García",
    "Åsa Öberg",
    "李雷",
    "Ольга Иванова",
    "Siobhán O'Brien",
    "Nguyễn Văn An",
    "Ærøskøbing Jensen",
    "Grace Hopper",
    "Ada Lovelace",
];

pub fn run(o: &Opts) -> io::Result<Made> {
    let mut rng = Rng::derive(o.seed, "instance");
    let instanceid = format!("oc{}", rng.string(LOWER_ALNUM, 10));
    let passwordsalt = rng.string(ALNUM, 30);
    let secret = match o.flavor {
        Flavor::Owncloud => rng.string(ALNUM, 48),
        Flavor::Nextcloud => rng.string(
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
            48,
        ),
    };
    let dbpassword = rng.string(ALNUM, 30);
    // Installed between about two years and one year before NOW.
    let installed_at = NOW - 730 * 86_400 + rng.range(0, 365 * 86_400);
    let installed_us = rng.below(1_000_000);

    // Users and their passwords.
    let mut prng = Rng::derive(o.seed, "passwords");
    let mut users = vec![];
    for i in 0..=o.users {
        let uid = if i == 0 {
            "admin".to_string()
        } else {
            format!("user{i}")
        };
        let password = prng.string(ALNUM, 20);
        let mut salt = [0u8; 16];
        prng.fill(&mut salt);
        let hash = bcrypt::hash_with_salt(&password, o.bcrypt_cost, salt)
            .map_err(|e| io::Error::other(format!("bcrypt: {e}")))?
            .format_for_version(bcrypt::Version::TwoY);
        let display = if i == 0 {
            "admin".to_string()
        } else {
            DISPLAY_NAMES[(i as usize - 1) % DISPLAY_NAMES.len()].to_string()
        };
        let created = installed_at
            + if i == 0 {
                0
            } else {
                prng.range(3600, 200 * 86_400)
            };
        users.push(User {
            uid,
            display,
            password,
            hash: format!("1|{hash}"),
            created,
        });
    }

    // Share of files per user: admin weight 1, others 0.3..2.
    let mut drng = Rng::derive(o.seed, "distribution");
    let weights: Vec<f64> = (0..users.len())
        .map(|i| if i == 0 { 1.0 } else { 0.3 + 1.7 * drng.unit() })
        .collect();
    let wsum: f64 = weights.iter().sum();
    let mut counts: Vec<u64> = weights
        .iter()
        .map(|w| (o.files as f64 * w / wsum).floor() as u64)
        .collect();
    counts[0] += o.files - counts.iter().sum::<u64>();
    let mut bytes: Vec<u64> = counts
        .iter()
        .map(|&c| {
            if o.files == 0 {
                0
            } else {
                (o.bytes as u128 * c as u128 / o.files as u128) as u64
            }
        })
        .collect();
    bytes[0] += o.bytes - bytes.iter().sum::<u64>();

    // Storages: home::admin (1), local::<datadir>/ (2), home::user1 (3), … as after a real install.
    let mut storages = vec![];
    let mut next_sid = 1;
    for (i, u) in users.iter().enumerate() {
        let mut hrng = Rng::derive(o.seed, &format!("home:{}", u.uid));
        let tree = build_home(o.flavor, &mut hrng, counts[i], bytes[i], u.created);
        storages.push(Storage {
            numeric_id: next_sid,
            id: format!("home::{}", u.uid),
            uid: Some(u.uid.clone()),
            tree,
        });
        next_sid += 1;
        if i == 0 {
            let mut lrng = Rng::derive(o.seed, "datadir");
            let tree = build_datadir(o.flavor, &mut lrng, &instanceid, installed_at, &users);
            storages.push(Storage {
                numeric_id: next_sid,
                id: format!("local::{DATADIR}/"),
                uid: None,
                tree,
            });
            next_sid += 1;
        }
    }

    // File ids (pre-order per storage, in storage order) and etags.
    let mut erng = Rng::derive(o.seed, "etags");
    let mut fileid = 0i64;
    let mut seq: u64 = 0;
    let etag_base = installed_at as u64;
    for s in &mut storages {
        for i in s.tree.preorder() {
            let n = &mut s.tree.nodes[i];
            if !n.cached {
                continue;
            }
            fileid += 1;
            n.fileid = fileid;
            if n.is_dir {
                seq += 1 + erng.below(64);
                n.etag = format!("{:013x}", (etag_base << 20) + seq);
            } else {
                n.etag = erng.hex(32);
            }
        }
    }

    // Disk.
    let out = &o.out;
    fs::create_dir_all(out)?;
    for d in ["config", "data"] {
        if out.join(d).exists() {
            return Err(io::Error::other(format!(
                "{} already exists: give an empty --out",
                out.join(d).display()
            )));
        }
    }
    let datadir = out.join("data");
    let checksums = o.flavor == Flavor::Owncloud;
    let mut made = Made::default();
    let local = storages.iter().position(|s| s.uid.is_none()).unwrap();
    write_tree(&mut storages[local].tree, &datadir, 0o770, checksums)?;
    for s in storages.iter_mut().filter(|s| s.uid.is_some()) {
        write_tree(
            &mut s.tree,
            &datadir.join(s.uid.as_ref().unwrap()),
            0o755,
            checksums,
        )?;
    }
    for s in storages.iter().filter(|s| s.uid.is_some()) {
        s.tree
            .set_folder_mtimes(&datadir.join(s.uid.as_ref().unwrap()))?;
    }
    storages[local].tree.set_folder_mtimes(&datadir)?;
    for s in &storages {
        for n in &s.tree.nodes {
            if n.is_dir {
                made.dirs += 1;
            } else {
                made.files += 1;
                made.bytes += n.size;
            }
        }
    }

    // config/
    let config = build_config(o, &instanceid, &passwordsalt, &secret, &dbpassword);
    fs::DirBuilder::new()
        .mode(0o755)
        .create(out.join("config"))?;
    write_file(
        &out.join("config/config.php"),
        config_file(&config).as_bytes(),
        0o640,
    )?;
    if o.extra_config {
        let extra = Php::Map(vec![
            ("filesystem_check_changes".into(), Php::Int(0)),
            ("log_rotate_size".into(), Php::Int(104_857_600)),
            ("default_language".into(), Php::s("en")),
        ]);
        write_file(
            &out.join("config/zz.config.php"),
            config_file(&extra).as_bytes(),
            0o640,
        )?;
    }
    // A real config/ also holds the release's .htaccess; the migration copies config/ whole.
    write_file(
        &out.join("config/.htaccess"),
        b"# deny access to this folder\nRequire all denied\n",
        0o644,
    )?;

    // apps-external/ (and the release's apps/ info.xml files when asked).
    if o.flavor == Flavor::Owncloud {
        fs::DirBuilder::new()
            .mode(0o755)
            .create(out.join("apps-external"))?;
        for app in o.flavor.external_apps() {
            write_info_xml(&out.join("apps-external"), o.flavor, app)?;
        }
    }
    if let Some(rel) = &o.release_out {
        for app in o.flavor.core_apps() {
            write_info_xml(&rel.join("apps"), o.flavor, app)?;
        }
    }

    // Fixed folder mtimes outside data/ too, so one seed gives one listing.
    fix_dir_mtimes(&out.join("config"))?;
    fix_dir_mtimes(&out.join("apps-external"))?;
    if let Some(rel) = &o.release_out {
        fix_dir_mtimes(&rel.join("apps"))?;
    }

    // Database.
    let sql = build_sql(
        o,
        &storages,
        &users,
        &instanceid,
        installed_at,
        installed_us,
        &mut made,
    );
    let sql_path = o.sql.clone().unwrap_or_else(|| out.join("db.sql"));
    write_file(&sql_path, sql.as_bytes(), 0o600)?;

    // Secrets.
    if let Some(dir) = &o.secrets {
        fs::create_dir_all(dir)?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        write_file(
            &dir.join("admin-password"),
            users[0].password.as_bytes(),
            0o600,
        )?;
        let tsv: String = users
            .iter()
            .map(|u| format!("{}\t{}\n", u.uid, u.password))
            .collect();
        write_file(&dir.join("users.tsv"), tsv.as_bytes(), 0o600)?;
        write_file(&dir.join("dbpassword"), dbpassword.as_bytes(), 0o600)?;
        let (dbname, dbuser, dbhost) = match o.db {
            Db::Sqlite => ("owncloud", "", ""),
            Db::Mysql => (o.flavor.name(), "oc_admin", "localhost"),
            Db::Pgsql => (o.flavor.name(), "oc_admin", "/var/run/postgresql"),
        };
        let admin_home = &storages[0].tree;
        let files_etag = admin_home
            .nodes
            .iter()
            .find(|n| n.path == "files")
            .map(|n| n.etag.clone())
            .unwrap_or_default();
        let env: Vec<(&str, String)> = vec![
            ("FLAVOR", o.flavor.name().into()),
            ("VERSION", o.flavor.version().into()),
            ("DB", o.db.name().into()),
            ("DBTYPE", dbtype(o).into()),
            ("DBNAME", dbname.into()),
            ("DBUSER", dbuser.into()),
            ("DBHOST", dbhost.into()),
            ("DBTABLEPREFIX", PREFIX.into()),
            (
                "SQLITE_FILE",
                if o.db == Db::Sqlite {
                    format!("{DATADIR}/owncloud.db")
                } else {
                    String::new()
                },
            ),
            ("INSTANCE_ROOT", ROOT.into()),
            ("DATADIR", DATADIR.into()),
            ("INSTANCEID", instanceid.clone()),
            ("SEED", o.seed.to_string()),
            ("USERS", o.users.to_string()),
            ("FILES", o.files.to_string()),
            ("BYTES", o.bytes.to_string()),
            ("ADMIN_USER", "admin".into()),
            ("ADMIN_FILES_ETAG", files_etag),
            ("LOGFILE", format!("{DATADIR}/{}", o.flavor.log_name())),
        ];
        let text: String = env
            .iter()
            .map(|(k, v)| format!("{k}={}\n", shell_quote(v)))
            .collect();
        write_file(&dir.join("instance.env"), text.as_bytes(), 0o600)?;
    }
    Ok(made)
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-:+@".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn write_file(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    use std::io::Write;
    if let Some(p) = path.parent() {
        fs::create_dir_all(p)?;
    }
    let _ = fs::remove_file(path);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    f.write_all(data)?;
    f.set_permissions(fs::Permissions::from_mode(mode))?;
    // Fixed mtimes keep two runs with one seed identical.
    set_mtime(&f, NOW - 86_400, 0)
}

/// Give `dir` and every folder below it the fixed mtime labkit uses outside data/, deepest first.
fn fix_dir_mtimes(dir: &Path) -> io::Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    for e in fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            fix_dir_mtimes(&e.path())?;
        }
    }
    set_mtime(&fs::File::open(dir)?, NOW - 86_400, 0)
}

fn write_info_xml(dir: &Path, flavor: Flavor, app: &(&str, &str, &str, &str)) -> io::Result<()> {
    let (id, name, version, types) = *app;
    let types = if types.is_empty() {
        String::new()
    } else {
        let t: String = types.split(',').map(|t| format!("<{t}/>")).collect();
        format!("\t<types>{t}</types>\n")
    };
    let dep = match flavor {
        Flavor::Owncloud => "<owncloud min-version=\"10.11\" max-version=\"10\" />",
        Flavor::Nextcloud => "<nextcloud min-version=\"33\" max-version=\"33\"/>",
    };
    let xml = format!(
        "<?xml version=\"1.0\"?>\n<info>\n\t<id>{id}</id>\n\t<name>{name}</name>\n\t<summary>{name}</summary>\n\t<licence>AGPL</licence>\n\t<version>{version}</version>\n{types}\t<dependencies>\n\t\t{dep}\n\t</dependencies>\n</info>\n"
    );
    write_file(
        &dir.join(id).join("appinfo/info.xml"),
        xml.as_bytes(),
        0o644,
    )
}

fn dbtype(o: &Opts) -> &'static str {
    match (o.db, o.flavor) {
        (Db::Sqlite, Flavor::Nextcloud) => "sqlite3",
        (Db::Sqlite, Flavor::Owncloud) => "sqlite",
        (Db::Mysql, _) => "mysql",
        (Db::Pgsql, _) => "pgsql",
    }
}

/// config.php, keys in the order the installers write them (reference/observed-servers.md).
fn build_config(o: &Opts, instanceid: &str, salt: &str, secret: &str, dbpassword: &str) -> Php {
    let mut c: Vec<(String, Php)> = vec![];
    let mut put = |k: &str, v: Php| c.push((k.to_string(), v));
    let db_keys = |put: &mut dyn FnMut(&str, Php)| {
        if o.db == Db::Sqlite {
            return;
        }
        put("dbname", Php::s(o.flavor.name()));
        put(
            "dbhost",
            Php::s(if o.db == Db::Mysql {
                "localhost"
            } else {
                "/var/run/postgresql"
            }),
        );
        put("dbtableprefix", Php::s(PREFIX));
        if o.db == Db::Mysql {
            put("mysql.utf8mb4", Php::Bool(true));
        }
        put("dbuser", Php::s("oc_admin"));
        put("dbpassword", Php::s(dbpassword));
    };
    let trusted = Php::List(vec![Php::s("localhost"), Php::s("cloud.example.test")]);
    match o.flavor {
        Flavor::Owncloud => {
            put("passwordsalt", Php::s(salt));
            put("secret", Php::s(secret));
            put("trusted_domains", trusted);
            put("datadirectory", Php::s(DATADIR));
            put("overwrite.cli.url", Php::s("http://cloud.example.test"));
            put("dbtype", Php::s(dbtype(o)));
            put("version", Php::s(o.flavor.version()));
            db_keys(&mut put);
            put("allow_user_to_change_mail_address", Php::s(""));
            put("logtimezone", Php::s("UTC"));
            put(
                "apps_paths",
                Php::List(vec![
                    Php::Map(vec![
                        ("path".into(), Php::s(format!("{ROOT}/apps"))),
                        ("url".into(), Php::s("/apps")),
                        ("writable".into(), Php::Bool(false)),
                    ]),
                    Php::Map(vec![
                        ("path".into(), Php::s(format!("{ROOT}/apps-external"))),
                        ("url".into(), Php::s("/apps-external")),
                        ("writable".into(), Php::Bool(true)),
                    ]),
                ]),
            );
            put("installed", Php::Bool(true));
            put("instanceid", Php::s(instanceid));
            put("loglevel", Php::Int(2));
        }
        Flavor::Nextcloud => {
            put("passwordsalt", Php::s(salt));
            put("secret", Php::s(secret));
            put("trusted_domains", trusted);
            put("datadirectory", Php::s(DATADIR));
            put("dbtype", Php::s(dbtype(o)));
            put("version", Php::s(o.flavor.version()));
            put("overwrite.cli.url", Php::s("http://cloud.example.test"));
            db_keys(&mut put);
            put("instanceid", Php::s(instanceid));
            put("installed", Php::Bool(true));
            put("logtimezone", Php::s("UTC"));
            put("loglevel", Php::Int(2));
        }
    }
    Php::Map(c)
}

// ---------------------------------------------------------------------------------------------
// Homes

const FOLDER_NAMES: &[&str] = &[
    "Projects",
    "Invoices",
    "Holiday",
    "Scans",
    "Music",
    "Backup",
    "Receipts",
    "Family",
    "Work",
    "Notes",
    "Drafts",
    "Archive",
    "Clients",
    "Reports",
    "Recipes",
    "Travel",
    "School",
    "Taxes",
    "Code",
    "Misc",
    "Übersicht",
    "Фото",
    "写真",
    "Meeting notes",
    "Old stuff",
    "Shared with me",
    "Garden",
    "Car",
];
const FILE_WORDS: &[&str] = &[
    "report",
    "notes",
    "scan",
    "invoice",
    "letter",
    "budget",
    "draft",
    "meeting",
    "summary",
    "todo",
    "backup",
    "data",
    "readme",
    "minutes",
    "contract",
    "presentation",
    "song",
    "plan",
    "Angebot",
    "Rechnung",
    "résumé",
    "list",
    "photo",
    "export",
    "config",
    "agenda",
];
/// (extension, weight, may be large)
const EXTS: &[(&str, u32, bool)] = &[
    ("txt", 20, false),
    ("md", 10, false),
    ("csv", 5, false),
    ("log", 3, false),
    ("jpg", 20, true),
    ("png", 8, true),
    ("pdf", 10, true),
    ("odt", 5, true),
    ("docx", 5, true),
    ("ods", 3, true),
    ("zip", 2, true),
    ("mp4", 2, true),
    ("mp3", 3, true),
    ("bin", 2, true),
];

fn pick_ext(rng: &mut Rng) -> (&'static str, bool) {
    let total: u32 = EXTS.iter().map(|e| e.1).sum();
    let mut x = rng.below(total as u64) as u32;
    for &(e, w, big) in EXTS {
        if x < w {
            return (e, big);
        }
        x -= w;
    }
    unreachable!()
}

fn gen_file_name(rng: &mut Rng) -> String {
    let (ext, _) = pick_ext(rng);
    let t = rng.range(OLDEST, NOW);
    let (y, mo, d, h, mi, s) = civil(t);
    match (ext, rng.below(4)) {
        ("jpg", 0 | 1) => format!("IMG_{y:04}{mo:02}{d:02}_{h:02}{mi:02}{s:02}.jpg"),
        ("png", 0 | 1) => format!("Screenshot {y:04}-{mo:02}-{d:02} at {h:02}.{mi:02}.{s:02}.png"),
        (_, 0) => format!(
            "{} {}.{ext}",
            capitalize(rng.pick::<&str>(FILE_WORDS)),
            rng.range(1, 99)
        ),
        (_, 1) => format!("{}_{}.{ext}", rng.pick(FILE_WORDS), rng.pick(FILE_WORDS)),
        (_, 2) => format!(
            "{} {y:04}-{mo:02}-{d:02}.{ext}",
            capitalize(rng.pick::<&str>(FILE_WORDS))
        ),
        _ => format!("{}.{ext}", rng.pick(FILE_WORDS)),
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// The 255-byte name: the longest a Linux file name can be, with multi-byte characters so that it
/// stays within `oc_filecache.name` varchar(250) (which counts characters).
pub fn long_name() -> String {
    let mut s = String::from("Very long name ");
    while s.len() + 2 + 4 <= 255 {
        s.push('é');
    }
    while s.len() + 4 < 255 {
        s.push('x');
    }
    s.push_str(".txt");
    assert_eq!(s.len(), 255);
    s
}

/// (folder path under files/, file name) of the names that trip up tools, made in every home
/// that has room for them. Folder paths are created as needed; a name ending in '/' is an empty
/// folder.
fn special_names() -> Vec<(String, String)> {
    let sp = "Special names".to_string();
    let nfd_dir = format!("{sp}/de\u{301}compose\u{301}");
    vec![
        (sp.clone(), "Résumé.txt".into()), // NFC: é is U+00E9
        (nfd_dir.clone(), "Re\u{301}sume\u{301}.txt".into()), // NFD: e + U+0301
        (nfd_dir, "Übersicht NFC.md".into()),
        (sp.clone(), "file with  two spaces .txt".into()),
        (sp.clone(), "it's mine.txt".into()),
        (sp.clone(), "say \"cheese\".jpg".into()),
        (sp.clone(), "-rf.txt".into()),
        (sp.clone(), "--help".into()),
        (sp.clone(), "#1 #hashtag.md".into()),
        (sp.clone(), "100% sure.txt".into()),
        (sp.clone(), "%2F%20encoded.txt".into()),
        (sp.clone(), "📷 Urlaub 🏖️.jpg".into()),
        (sp.clone(), "😀.txt".into()),
        (sp.clone(), "$HOME `id` $(id).txt".into()),
        (sp.clone(), "glob*?[ab].txt".into()),
        (sp.clone(), "semi;colon & amp.txt".into()),
        (sp.clone(), "日本語のファイル.txt".into()),
        (sp.clone(), "Привет мир.md".into()),
        (sp.clone(), ".hidden".into()),
        (sp.clone(), "empty.txt".into()),
        (sp.clone(), long_name()),
        (sp.clone(), "Empty folder/".into()),
        (
            format!("{sp}/Folder with 'quotes' & #hash %"),
            "inside.txt".into(),
        ),
    ]
}

fn skeleton(flavor: Flavor) -> Vec<(&'static str, &'static str, bool)> {
    match flavor {
        Flavor::Owncloud => vec![
            ("Documents", "Example.odt", false),
            ("Photos", "Paris.jpg", false),
            ("Photos", "San Francisco.jpg", false),
            ("Photos", "Squirrel.jpg", false),
            ("Learn more about ownCloud", "ownCloud Manual.pdf", true),
        ],
        Flavor::Nextcloud => vec![
            ("", "Nextcloud intro.mp4", true),
            ("", "Nextcloud.png", false),
            ("", "Readme.md", false),
            ("", "Reasons to use Nextcloud.pdf", false),
            ("", "Templates credits.md", false),
            ("Documents", "Welcome to Nextcloud Hub.docx", false),
            ("Documents", "Example.md", false),
            ("Photos", "Birdie.jpg", false),
            ("Photos", "Frog.jpg", false),
            ("Photos", "Gorilla.jpg", false),
            ("Templates", "Meeting notes.md", false),
            ("Templates", "Invoice.odt", false),
        ],
    }
}

/// A folder path under `base`, made as needed.
fn mkpath(t: &mut Tree, base: usize, path: &str) -> usize {
    let mut cur = base;
    for part in path.split('/').filter(|p| !p.is_empty()) {
        cur = t.dir_path(cur, part);
    }
    cur
}

fn random_time(rng: &mut Rng, lo: i64, hi: i64) -> (i64, u32) {
    let s = rng.range(lo, hi);
    // About a third of files have whole-second mtimes, as after an upload with X-OC-Mtime.
    let ns = if rng.chance(0.3) {
        0
    } else {
        rng.below(1_000_000_000) as u32
    };
    (s, ns)
}

/// One user's home: files/ (skeleton, tricky names, a generated tree), files_versions/ and
/// files_trashbin/, with `n` files and `bytes` bytes under files/.
fn build_home(flavor: Flavor, rng: &mut Rng, n: u64, bytes: u64, created: i64) -> Tree {
    let mut t = Tree::new(0);
    let files = t.dir(0, "files");
    let mut budget: Vec<usize> = vec![]; // files whose size comes from the byte budget
    let mut count = 0u64;

    for (dir, name, big) in skeleton(flavor) {
        if count >= n {
            break;
        }
        let d = mkpath(&mut t, files, dir);
        let i = t.file(d, name, content_for(name, rng.next_u64()));
        t.nodes[i].big = big;
        let (s, ns) = random_time(rng, created - 86_400 * 30, created);
        t.nodes[i].mtime = s;
        t.nodes[i].mtime_ns = ns;
        budget.push(i);
        count += 1;
    }
    for (dir, name) in special_names() {
        if count >= n {
            break;
        }
        let d = mkpath(&mut t, files, &dir);
        if let Some(folder) = name.strip_suffix('/') {
            t.dir(d, folder);
            continue;
        }
        let i = if name == "empty.txt" {
            t.file_sized(d, &name, Content::Fixed(vec![]), 0)
        } else {
            let i = t.file(d, &name, content_for(&name, rng.next_u64()));
            budget.push(i);
            i
        };
        let (s, ns) = random_time(rng, OLDEST, NOW);
        t.nodes[i].mtime = s;
        t.nodes[i].mtime_ns = ns;
        count += 1;
    }

    // The generated tree: folders a few levels deep, files spread over them.
    let rest = n - count;
    let mut folders: Vec<usize> = t
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, x)| x.is_dir && x.path.starts_with("files"))
        .map(|(i, _)| i)
        .collect();
    folders.retain(|&i| !t.nodes[i].path.starts_with("files/Special names"));
    let nfolders = if rest == 0 { 0 } else { rest / 12 + 1 };
    for _ in 0..nfolders {
        let mut parent = *rng.pick(&folders);
        if t.depth(parent) > 6 || (t.depth(parent) > 3 && rng.chance(0.5)) {
            parent = files;
        }
        let base = rng.pick(FOLDER_NAMES);
        let name = if rng.chance(0.4) {
            format!("{base} {}", rng.range(2015, 2026))
        } else {
            base.to_string()
        };
        let name = t.free_name(parent, &name);
        let d = t.dir(parent, &name);
        folders.push(d);
    }
    for _ in 0..rest {
        // Favour the newer (deeper) folders a little: half the files go to a recent folder.
        let d = if rng.chance(0.5) && folders.len() > 4 {
            folders[folders.len() - 1 - rng.below(folders.len().min(40) as u64) as usize]
        } else {
            *rng.pick(&folders)
        };
        let name = gen_file_name(rng);
        let name = t.free_name(d, &name);
        let i = t.file(d, &name, content_for(&name, rng.next_u64()));
        let (s, ns) = random_time(rng, OLDEST, NOW);
        t.nodes[i].mtime = s;
        t.nodes[i].mtime_ns = ns;
        budget.push(i);
    }

    assign_sizes(&mut t, &budget, bytes, rng);

    // files_versions: 1–3 older versions of some files, mirroring their folders.
    if n >= 3 {
        let nv = (n / 30).clamp(1, 200);
        let mut chosen = std::collections::BTreeSet::new();
        for _ in 0..nv * 2 {
            if chosen.len() as u64 >= nv {
                break;
            }
            let i = *rng.pick(&budget);
            if t.nodes[i].name.len() < 240 {
                chosen.insert(i);
            }
        }
        if !chosen.is_empty() {
            let root = t.dir(0, "files_versions");
            for i in chosen {
                let rel_dir = t.nodes[t.nodes[i].parent.unwrap()]
                    .path
                    .trim_start_matches("files")
                    .trim_start_matches('/')
                    .to_string();
                let name = t.nodes[i].name.clone();
                let (mtime, size) = (t.nodes[i].mtime, t.nodes[i].size);
                let d = mkpath(&mut t, root, &rel_dir);
                let mut ts = mtime;
                for _ in 0..rng.range(1, 3) {
                    ts -= rng.range(3600, 90 * 86_400);
                    let vname = format!("{name}.v{ts}");
                    if t.has(d, &vname) {
                        continue;
                    }
                    let vsize = rng.below(size.min(65_536) + 1);
                    let v = t.file_sized(d, &vname, content_for(&name, rng.next_u64()), vsize);
                    t.nodes[v].mtime = ts;
                }
            }
        }
    }

    // files_trashbin/files: deleted files and one deleted folder, named <name>.d<deletion time>.
    if n >= 2 {
        let trash = t.dir(0, "files_trashbin");
        let tf = t.dir(trash, "files");
        for _ in 0..(n / 50).clamp(1, 30) {
            let name = gen_file_name(rng);
            let ts = rng.range(NOW - 365 * 86_400, NOW);
            let tname = t.free_name(tf, &format!("{name}.d{ts}"));
            let i = t.file_sized(
                tf,
                &tname,
                content_for(&name, rng.next_u64()),
                rng.below(32_768),
            );
            let (s, ns) = random_time(rng, OLDEST, ts);
            t.nodes[i].mtime = s;
            t.nodes[i].mtime_ns = ns;
        }
        let ts = rng.range(NOW - 365 * 86_400, NOW);
        let d = t.dir(tf, &format!("Old project.d{ts}"));
        for k in 0..3 {
            let name = format!("part {k}.txt");
            let i = t.file_sized(
                d,
                &name,
                content_for(&name, rng.next_u64()),
                rng.below(8192),
            );
            let (s, ns) = random_time(rng, OLDEST, ts);
            t.nodes[i].mtime = s;
            t.nodes[i].mtime_ns = ns;
        }
    }

    t.settle_folders(rng);
    t
}

/// Hand out `bytes` over the budget files: about 2% large files (binary types preferred) take
/// three quarters, the rest get a long-tailed small size; a few small files are empty. The sizes
/// add up to exactly `bytes`.
fn assign_sizes(t: &mut Tree, budget: &[usize], bytes: u64, rng: &mut Rng) {
    if budget.is_empty() {
        return;
    }
    let n = budget.len();
    let want_big = ((n as f64 * 0.02).round() as usize).max(1).min(n);
    let mut big: Vec<usize> = budget.iter().copied().filter(|&i| t.nodes[i].big).collect();
    let binary: Vec<usize> = budget
        .iter()
        .copied()
        .filter(|&i| !t.nodes[i].big && matches!(t.nodes[i].content, Content::Binary { .. }))
        .collect();
    let mut tries = 0;
    while big.len() < want_big && tries < want_big * 4 {
        tries += 1;
        let pool = if binary.is_empty() {
            budget
        } else {
            &binary[..]
        };
        let i = *rng.pick(pool);
        if !big.contains(&i) {
            big.push(i);
        }
    }
    for &i in &big {
        t.nodes[i].big = true;
    }
    let small: Vec<usize> = budget
        .iter()
        .copied()
        .filter(|&i| !t.nodes[i].big)
        .collect();
    let small_budget = if small.is_empty() {
        0
    } else if big.is_empty() {
        bytes
    } else {
        bytes / 4
    };
    let big_budget = bytes - small_budget;

    let sw: Vec<f64> = small
        .iter()
        .map(|_| {
            if rng.chance(0.02) {
                0.0
            } else {
                (-(1.0 - rng.unit()).ln()).powi(2)
            }
        })
        .collect();
    let bw: Vec<f64> = big.iter().map(|_| 0.5 + rng.unit()).collect();
    let mut total = 0u64;
    for (list, ws, b) in [(&small, &sw, small_budget), (&big, &bw, big_budget)] {
        let sum: f64 = ws.iter().sum();
        for (k, &i) in list.iter().enumerate() {
            let s = if sum > 0.0 {
                (b as f64 * ws[k] / sum).floor() as u64
            } else {
                0
            };
            t.nodes[i].size = s;
            total += s;
        }
    }
    // Rounding leftovers (or a budget with no weights) go to the first large (else first) file.
    let target = *big.first().unwrap_or(&budget[0]);
    if total < bytes {
        t.nodes[target].size += bytes - total;
    } else {
        let mut over = total - bytes;
        for &i in budget {
            let cut = over.min(t.nodes[i].size);
            t.nodes[i].size -= cut;
            over -= cut;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The data directory's own content (storage local::<datadir>/)

fn build_datadir(
    flavor: Flavor,
    rng: &mut Rng,
    instanceid: &str,
    installed_at: i64,
    users: &[User],
) -> Tree {
    let mut t = Tree::new(0);
    let marker = match flavor {
        Flavor::Owncloud => (".ocdata", Vec::new()),
        Flavor::Nextcloud => (
            ".ncdata",
            b"# Nextcloud data directory\n# Do not change this file\n".to_vec(),
        ),
    };
    let (y, mo, d, h, mi, s) = civil(installed_at);
    let product = if flavor == Flavor::Owncloud {
        "ownCloud"
    } else {
        "Nextcloud"
    };
    let htaccess = format!(
        "# Generated by {product} on {y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}\n# line below if for Apache 2.4\n<ifModule mod_authz_core.c>\nRequire all denied\n</ifModule>\n\n# line below if for Apache 2.2\n<ifModule !mod_authz_core.c>\ndeny from all\nSatisfy All\n</ifModule>\n\n# section for Apache 2.2 and 2.4\n<ifModule mod_autoindex.c>\nIndexIgnore *\n</ifModule>\n"
    );
    let log = log_lines(flavor, rng, users);
    let mut fixed: Vec<(&str, Vec<u8>, i64)> = vec![
        (marker.0, marker.1, installed_at),
        (".htaccess", htaccess.into_bytes(), installed_at),
    ];
    if flavor == Flavor::Nextcloud {
        fixed.push(("index.html", Vec::new(), installed_at));
    }
    fixed.push((flavor.log_name(), log.0, log.1));
    for (name, bytes, mtime) in fixed {
        let size = bytes.len() as u64;
        let i = t.file_sized(0, name, Content::Fixed(bytes), size);
        t.nodes[i].cached = false;
        t.nodes[i].mtime = mtime;
        t.nodes[i].mtime_ns = rng.below(1_000_000_000) as u32;
    }
    // appdata_<instanceid>: previews, generated CSS/JS, avatars.
    let app = t.dir(0, &format!("appdata_{instanceid}"));
    let preview = t.dir(app, "preview");
    for k in 0..3 {
        let d = t.dir(preview, &(100 + k * 7).to_string());
        for (w, h) in [(64, 64), (256, 256), (1024, 768)] {
            let name = format!("{w}-{h}{}.png", if w == 1024 { "-max" } else { "" });
            let i = t.file_sized(
                d,
                &name,
                content_for(&name, rng.next_u64()),
                (w * h / 40) as u64 + rng.below(500),
            );
            let (s, ns) = random_time(rng, installed_at, NOW);
            t.nodes[i].mtime = s;
            t.nodes[i].mtime_ns = ns;
        }
    }
    let css = mkpath(&mut t, app, "css/core");
    for name in ["server.css", "guest.css"] {
        let i = t.file_sized(
            css,
            name,
            content_for(name, rng.next_u64()),
            2000 + rng.below(30_000),
        );
        let (s, ns) = random_time(rng, installed_at, NOW);
        t.nodes[i].mtime = s;
        t.nodes[i].mtime_ns = ns;
    }
    let avatar = t.dir(app, "avatar");
    for u in users.iter().take(3) {
        let d = t.dir(avatar, &u.uid);
        let i = t.file_sized(
            d,
            "avatar.png",
            content_for("avatar.png", rng.next_u64()),
            3000 + rng.below(3000),
        );
        let (s, ns) = random_time(rng, u.created, NOW);
        t.nodes[i].mtime = s;
        t.nodes[i].mtime_ns = ns;
    }
    t.settle_folders(rng);
    t
}

/// A few log lines as each flavor writes them; returns the text and the last line's time.
fn log_lines(flavor: Flavor, rng: &mut Rng, users: &[User]) -> (Vec<u8>, i64) {
    let mut out = String::new();
    let mut t = NOW - 20 * 86_400;
    let msgs: &[(u8, &str, &str, &str)] = &[
        (
            2,
            "PROPFIND",
            "/remote.php/dav/files/admin/",
            "Login failed: 'admin' (Remote IP: '127.0.0.1')",
        ),
        (
            2,
            "GET",
            "/index.php/login",
            "Login failed: 'user1' (Remote IP: '127.0.0.1')",
        ),
        (
            3,
            "GET",
            "/index.php/apps/files/",
            "Trusted domain error. \"127.0.0.9\" tried to access using \"10.0.0.5\" as host.",
        ),
        (
            2,
            "PUT",
            "/remote.php/dav/files/admin/Documents/report.txt",
            "Could not detect mimetype for file",
        ),
        (
            1,
            "--",
            "--",
            "Background job OCA\\Files\\BackgroundJob\\ScanFiles finished",
        ),
    ];
    for k in 0..8 {
        t += rng.range(600, 2 * 86_400);
        let (level, method, url, msg) = msgs[k % msgs.len()];
        let (y, mo, d, h, mi, s) = civil(t);
        let time = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}+00:00");
        let user = if k % 3 == 0 {
            "--".to_string()
        } else {
            users[k % users.len()].uid.clone()
        };
        let req = rng.string(ALNUM, 20);
        let line = match flavor {
            Flavor::Owncloud => format!(
                "{{\"reqId\":\"{req}\",\"level\":{level},\"time\":\"{time}\",\"remoteAddr\":\"127.0.0.1\",\"user\":\"{user}\",\"app\":\"core\",\"method\":\"{method}\",\"url\":{},\"message\":{}}}\n",
                json(url, true),
                json(msg, true)
            ),
            Flavor::Nextcloud => format!(
                "{{\"reqId\":\"{req}\",\"level\":{level},\"time\":\"{time}\",\"remoteAddr\":\"127.0.0.1\",\"user\":\"{user}\",\"app\":\"core\",\"method\":\"{method}\",\"url\":{},\"scriptName\":\"/remote.php\",\"message\":{},\"userAgent\":\"curl/7.88.1\",\"version\":\"{}\",\"data\":{{\"app\":\"core\"}}}}\n",
                json(url, false),
                json(msg, false),
                flavor.version()
            ),
        };
        out.push_str(&line);
    }
    (out.into_bytes(), t)
}

/// A JSON string; `escape_slashes` as PHP's json_encode does by default (ownCloud), not with
/// JSON_UNESCAPED_SLASHES (Nextcloud's log).
pub fn json(s: &str, escape_slashes: bool) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' if escape_slashes => out.push_str("\\/"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// UTC calendar fields of a Unix time.
pub fn civil(t: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = if m <= 2 { y + 1 } else { y };
    (
        y,
        m,
        d,
        (secs / 3600) as u32,
        (secs % 3600 / 60) as u32,
        (secs % 60) as u32,
    )
}

// ---------------------------------------------------------------------------------------------
// Database rows

fn build_sql(
    o: &Opts,
    storages: &[Storage],
    users: &[User],
    instanceid: &str,
    installed_at: i64,
    installed_us: u64,
    made: &mut Made,
) -> String {
    let d = o.db.dialect();
    let oc = o.flavor == Flavor::Owncloud;
    let mut out = String::with_capacity(
        256 * storages.iter().map(|s| s.tree.nodes.len()).sum::<usize>() + 65_536,
    );
    let _ = writeln!(
        out,
        "-- labkit: {} instance, {} database, seed {}, instance id {instanceid}",
        o.flavor.name(),
        o.db.name(),
        o.seed
    );
    out.push_str(d.begin());
    out.push_str(&d.schema(PREFIX, oc));
    let t = |name: &str| format!("{PREFIX}{name}");
    let mut rows = 0u64;

    let mut ins = Inserts::new(
        d,
        t("storages"),
        &["numeric_id", "id", "available", "last_checked"],
        &mut out,
    );
    for s in storages {
        ins.row(&[V::I(s.numeric_id), s.id.as_str().into(), V::I(1), V::Null]);
        rows += 1;
    }
    ins.finish();

    // Mimetypes in order of first use, each after its part.
    let mut mimes: BTreeMap<String, i64> = BTreeMap::new();
    let mut order: Vec<String> = vec![];
    let add_mime = |m: &str, mimes: &mut BTreeMap<String, i64>, order: &mut Vec<String>| {
        let part = m.split('/').next().unwrap().to_string();
        for x in [part, m.to_string()] {
            if !mimes.contains_key(&x) {
                mimes.insert(x.clone(), order.len() as i64 + 1);
                order.push(x);
            }
        }
    };
    add_mime(crate::tree::DIR_MIME, &mut mimes, &mut order);
    for s in storages {
        for n in &s.tree.nodes {
            if n.cached {
                add_mime(n.mime, &mut mimes, &mut order);
            }
        }
    }
    let mut ins = Inserts::new(d, t("mimetypes"), &["id", "mimetype"], &mut out);
    for (k, m) in order.iter().enumerate() {
        ins.row(&[V::I(k as i64 + 1), m.as_str().into()]);
        rows += 1;
    }
    ins.finish();

    let cols = [
        "fileid",
        "storage",
        "path",
        "path_hash",
        "parent",
        "name",
        "mimetype",
        "mimepart",
        "size",
        "mtime",
        "storage_mtime",
        "encrypted",
        "unencrypted_size",
        "etag",
        "permissions",
        "checksum",
    ];
    let mut ins = Inserts::new(d, t("filecache"), &cols, &mut out);
    for s in storages {
        for i in s.tree.preorder() {
            let n = &s.tree.nodes[i];
            if !n.cached {
                continue;
            }
            let parent = n.parent.map(|p| s.tree.nodes[p].fileid).unwrap_or(-1);
            let part = n.mime.split('/').next().unwrap();
            ins.row(&[
                V::I(n.fileid),
                V::I(s.numeric_id),
                n.path.as_str().into(),
                format!("{:x}", md5::compute(n.path.as_bytes())).into(),
                V::I(parent),
                n.name.as_str().into(),
                V::I(mimes[n.mime]),
                V::I(mimes[part]),
                V::I(n.size as i64),
                V::I(n.mtime),
                V::I(n.mtime),
                V::I(0),
                V::I(0),
                n.etag.as_str().into(),
                V::I(if n.is_dir { 31 } else { 27 }),
                n.checksum.clone().into(),
            ]);
            rows += 1;
        }
    }
    ins.finish();

    let homes: Vec<&Storage> = storages.iter().filter(|s| s.uid.is_some()).collect();
    let mut ins = Inserts::new(
        d,
        t("mounts"),
        &["id", "storage_id", "root_id", "user_id", "mount_point"],
        &mut out,
    );
    for (k, s) in homes.iter().enumerate() {
        let uid = s.uid.as_deref().unwrap();
        ins.row(&[
            V::I(k as i64 + 1),
            V::I(s.numeric_id),
            V::I(s.tree.nodes[0].fileid),
            uid.into(),
            format!("/{uid}/").into(),
        ]);
        rows += 1;
    }
    ins.finish();

    let mut lrng = Rng::derive(o.seed, "logins");
    let last_login: Vec<i64> = users.iter().map(|u| lrng.range(u.created, NOW)).collect();
    if oc {
        let cols = [
            "id",
            "email",
            "user_id",
            "lower_user_id",
            "display_name",
            "quota",
            "last_login",
            "backend",
            "home",
            "state",
        ];
        let mut ins = Inserts::new(d, t("accounts"), &cols, &mut out);
        for (k, u) in users.iter().enumerate() {
            ins.row(&[
                V::I(k as i64 + 1),
                if k == 0 {
                    V::Null
                } else {
                    format!("{}@example.test", u.uid).into()
                },
                u.uid.as_str().into(),
                u.uid.to_lowercase().into(),
                u.display.as_str().into(),
                "default".into(),
                V::I(last_login[k]),
                "OC\\User\\Database".into(),
                format!("{DATADIR}/{}", u.uid).into(),
                V::I(1),
            ]);
            rows += 1;
        }
        ins.finish();
    }

    let mut ins = Inserts::new(
        d,
        t("users"),
        &["uid", "displayname", "password", "uid_lower"],
        &mut out,
    );
    for u in users {
        let display = if u.uid == "admin" {
            V::Null
        } else {
            u.display.as_str().into()
        };
        ins.row(&[
            u.uid.as_str().into(),
            display,
            u.hash.as_str().into(),
            u.uid.to_lowercase().into(),
        ]);
        rows += 1;
    }
    ins.finish();

    // appconfig
    let mut ac: Vec<(String, String, String)> = vec![];
    let mut kv = |a: &str, k: &str, v: String| ac.push((a.into(), k.into(), v));
    kv("backgroundjob", "lastjob", "4".into());
    kv("core", "backgroundjobs_mode", "cron".into());
    kv(
        "core",
        "installedat",
        format!("{installed_at}.{installed_us:06}"),
    );
    kv("core", "lastcron", (NOW - 300).to_string());
    kv("core", "lastupdatedat", format!("{}", installed_at + 60));
    kv("core", "public_files", "files_sharing/public.php".into());
    kv(
        "core",
        "public_webdav",
        "dav/appinfo/v1/publicwebdav.php".into(),
    );
    kv("core", "vendor", o.flavor.name().into());
    if oc {
        kv("core", "first_install_version", o.flavor.version().into());
    }
    for (id, _, version, types) in o.flavor.core_apps().iter().chain(o.flavor.external_apps()) {
        kv(id, "enabled", "yes".into());
        kv(id, "installed_version", version.to_string());
        kv(id, "types", types.to_string());
    }
    ac.sort();
    let mut ins = Inserts::new(
        d,
        t("appconfig"),
        &["appid", "configkey", "configvalue"],
        &mut out,
    );
    for (a, k, v) in &ac {
        ins.row(&[a.as_str().into(), k.as_str().into(), v.as_str().into()]);
        rows += 1;
    }
    ins.finish();

    // jobs: the log rotation job carries the log path, JSON-encoded (escaped slashes).
    let log_arg = json(&format!("{DATADIR}/{}", o.flavor.log_name()), true);
    let jobs: Vec<(&str, String)> = vec![
        ("OC\\Log\\Rotate", log_arg),
        ("OCA\\Files\\BackgroundJob\\ScanFiles", "null".into()),
        (
            "OCA\\Files\\BackgroundJob\\DeleteOrphanedItems",
            "null".into(),
        ),
        (
            "OCA\\Files_Trashbin\\BackgroundJob\\ExpireTrash",
            "null".into(),
        ),
        (
            "OCA\\Files_Versions\\BackgroundJob\\ExpireVersions",
            "null".into(),
        ),
        (
            "OC\\Authentication\\Token\\DefaultTokenCleanupJob",
            "null".into(),
        ),
    ];
    let cols = [
        "id",
        "class",
        "argument",
        "last_run",
        "last_checked",
        "reserved_at",
        "execution_duration",
    ];
    let mut ins = Inserts::new(d, t("jobs"), &cols, &mut out);
    for (k, (class, arg)) in jobs.iter().enumerate() {
        let last = NOW - 300 - 60 * k as i64;
        ins.row(&[
            V::I(k as i64 + 1),
            (*class).into(),
            arg.as_str().into(),
            V::I(last),
            V::I(last),
            V::I(0),
            V::I(k as i64 % 3),
        ]);
        rows += 1;
    }
    ins.finish();

    // shares: admin shares a folder with user1, user1 a file with admin, admin a public link.
    let mut srng = Rng::derive(o.seed, "shares");
    let find =
        |s: &Storage, pred: &dyn Fn(&crate::tree::Node) -> bool| -> Option<(i64, String, bool)> {
            s.tree
                .preorder()
                .into_iter()
                .map(|i| &s.tree.nodes[i])
                .find(|n| n.path.starts_with("files/") && pred(n))
                .map(|n| (n.fileid, n.name.clone(), n.is_dir))
        };
    let mut shares: Vec<Vec<V>> = vec![];
    let mut share = |ty: i64,
                     with: Option<&str>,
                     owner: &str,
                     item: (i64, String, bool),
                     perms: i64,
                     token: Option<String>,
                     accepted: i64| {
        let (fid, name, is_dir) = item;
        let stime = srng.range(NOW - 200 * 86_400, NOW - 86_400);
        shares.push(vec![
            V::I(shares.len() as i64 + 1),
            V::I(ty),
            with.map(|w| V::S(w.into())).unwrap_or(V::Null),
            owner.into(),
            owner.into(),
            V::Null,
            if is_dir { "folder" } else { "file" }.into(),
            fid.to_string().into(),
            format!("/{fid}").into(),
            V::I(fid),
            format!("/{name}").into(),
            V::I(perms),
            V::I(stime),
            V::I(accepted),
            V::Null,
            token.map(V::S).unwrap_or(V::Null),
            V::I(0),
            V::Null,
        ]);
    };
    let admin = &storages[0];
    if let Some(item) = find(admin, &|n| {
        n.is_dir && n.path.matches('/').count() == 1 && n.name != "Special names"
    }) {
        if users.len() > 1 {
            share(0, Some("user1"), "admin", item.clone(), 31, None, 1);
        }
        let token = Rng::derive(o.seed, "token").string(ALNUM, 15);
        share(3, None, "admin", item, 1, Some(token), 0);
    }
    if users.len() > 1 {
        let u1 = storages
            .iter()
            .find(|s| s.uid.as_deref() == Some("user1"))
            .unwrap();
        if let Some(item) = find(u1, &|n| !n.is_dir) {
            share(0, Some("admin"), "user1", item, 19, None, 1);
        }
    }
    let cols = [
        "id",
        "share_type",
        "share_with",
        "uid_owner",
        "uid_initiator",
        "parent",
        "item_type",
        "item_source",
        "item_target",
        "file_source",
        "file_target",
        "permissions",
        "stime",
        "accepted",
        "expiration",
        "token",
        "mail_send",
        "share_name",
    ];
    let mut ins = Inserts::new(d, t("share"), &cols, &mut out);
    for r in &shares {
        ins.row(r);
        rows += 1;
    }
    ins.finish();

    // file_locks: one long-expired lock.
    let mut ins = Inserts::new(d, t("file_locks"), &["id", "lock", "key", "ttl"], &mut out);
    ins.row(&[
        V::I(1),
        V::I(0),
        format!("files/{:x}", md5::compute(b"files/Documents")).into(),
        V::I(installed_at + 3600),
    ]);
    rows += 1;
    ins.finish();

    // authtoken: a browser session of admin and an app password of the first user.
    let mut arng = Rng::derive(o.seed, "authtoken");
    let cols = [
        "id",
        "uid",
        "login_name",
        "password",
        "name",
        "token",
        "type",
        "last_activity",
        "last_check",
        "remember",
    ];
    let mut ins = Inserts::new(d, t("authtoken"), &cols, &mut out);
    let last = users.len() - 1;
    for (k, u) in [&users[0], &users[last]].into_iter().enumerate() {
        let act = arng.range(NOW - 30 * 86_400, NOW);
        let name = if k == 0 {
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
        } else {
            "ocmigrate lab client"
        };
        let pw = format!("{}|{}", arng.hex(64), arng.hex(32));
        ins.row(&[
            V::I(k as i64 + 1),
            u.uid.as_str().into(),
            u.uid.as_str().into(),
            pw.into(),
            name.into(),
            arng.hex(128).into(),
            V::I(k as i64),
            V::I(act),
            V::I(act),
            V::I(0),
        ]);
        rows += 1;
        if users.len() == 1 {
            break;
        }
    }
    ins.finish();

    out.push_str(&d.end(PREFIX, oc));
    made.rows = rows;
    out
}

/// A sorted listing (path, size, mtime with ns, mode) of a tree, for tests.
#[cfg(test)]
pub fn listing(root: &Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let mut out = vec![];
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        for e in fs::read_dir(&p).unwrap() {
            let e = e.unwrap();
            let m = fs::symlink_metadata(e.path()).unwrap();
            let rel = e
                .path()
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            out.push(format!(
                "{rel}\t{}\t{}.{:09}\t{:o}",
                m.len(),
                m.mtime(),
                m.mtime_nsec(),
                m.mode()
            ));
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(dir: &Path, seed: u64) -> Opts {
        Opts {
            flavor: Flavor::Owncloud,
            db: Db::Sqlite,
            users: 2,
            files: 120,
            bytes: 300_000,
            seed,
            out: dir.join("out"),
            sql: None,
            secrets: Some(dir.join("secrets")),
            release_out: Some(dir.join("release")),
            extra_config: true,
            bcrypt_cost: 4,
        }
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(civil(NOW), (2026, 11, 1, 0, 0, 0));
        assert_eq!(civil(1_600_000_000), (2020, 9, 13, 12, 26, 40));
    }

    #[test]
    fn long_name_is_255_bytes_and_fits_varchar_250() {
        let n = long_name();
        assert_eq!(n.len(), 255);
        assert!(n.chars().count() <= 250);
    }

    #[test]
    fn json_like_php() {
        assert_eq!(
            json("/var/www/owncloud/data/owncloud.log", true),
            r#""\/var\/www\/owncloud\/data\/owncloud.log""#
        );
        assert_eq!(json("a\"b\\c/d", false), r#""a\"b\\c/d""#);
    }

    #[test]
    fn same_seed_same_instance_other_seed_other_instance() {
        let base = std::env::temp_dir().join(format!("labkit-unit-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        let (a, b, c) = (base.join("a"), base.join("b"), base.join("c"));
        for (d, seed) in [(&a, 5), (&b, 5), (&c, 6)] {
            fs::create_dir_all(d).unwrap();
            let made = run(&opts(d, seed)).unwrap();
            assert!(made.bytes >= 300_000);
        }
        let la = listing(&a.join("out"));
        let lb = listing(&b.join("out"));
        let diff: Vec<_> = la.iter().zip(&lb).filter(|(x, y)| x != y).take(5).collect();
        assert!(
            la.len() == lb.len() && diff.is_empty(),
            "listings differ: {diff:?}"
        );
        assert_ne!(la, listing(&c.join("out")));
        let sql = |d: &Path| fs::read_to_string(d.join("out/db.sql")).unwrap();
        assert_eq!(sql(&a), sql(&b));
        assert_ne!(sql(&a), sql(&c));
        // Sizes under files/ add up to --bytes exactly.
        let mut total = 0;
        for line in &la {
            let f: Vec<&str> = line.split('\t').collect();
            let p = f[0];
            if p.starts_with("data/")
                && p.contains("/files/")
                && !p.contains("files_")
                && f[3].starts_with("100")
            {
                total += f[1].parse::<u64>().unwrap();
            }
        }
        assert_eq!(total, 300_000);
        let users = fs::read_to_string(a.join("secrets/users.tsv")).unwrap();
        assert_eq!(users.lines().count(), 3);
        fs::remove_dir_all(&base).unwrap();
    }
}
