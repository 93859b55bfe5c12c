//! ownCloud knowledge: what an instance is, derived from its merged system config and its
//! `version.php`, exactly as ownCloud (or Nextcloud) itself would derive it.
//!
//! * [`phpconfig`] reads PHP literal files without PHP; [`merge`] orders and merges
//!   `config/*.config.php` like ownCloud, and holds the PHP snippet that does the same on a host
//!   that has PHP; [`value`] is PHP's value model.
//! * [`Instance`] is the model: flavor, versions, data directory, database, apps paths, log,
//!   memcache modules, identity secrets, and the warnings worth a preflight line.
//! * [`Secret`] holds `secret`, `passwordsalt`, `instanceid` and `dbpassword`; it cannot be
//!   printed by accident.
//!
//! # Discovery, in short
//! * PHP on the host: run `php -- <root>/config` as the web user with [`merge_snippet_file`] on
//!   standard input (or `php -r MERGE_SNIPPET -- <root>/config`), then
//!   [`merged_config_from_php`]`(root, exit code, stdout, stderr)`; read `<root>/version.php`'s
//!   bytes with [`read_code_version`]; [`Instance::from_parts`].
//! * No PHP: fetch `config/config.php`, every `config/*.config.php` ([`is_extra_config_name`])
//!   and `version.php` into an [`InstanceFiles`], then [`InstanceFiles::instance`]. A
//!   [`ParseError`] with `needs_php` means the file is valid PHP that only PHP can evaluate.
//! * Both roads give the same [`MergedConfig`] (tested against real PHP on fixtures, and on the
//!   lab's instances in `tests/plan.rs`). [`crate::inventory::read_instance`] takes them over
//!   the host layer: PHP when it runs on the host, this reader when it does not. The PHP side
//!   is one file, `merge.php` ([`MERGE_SNIPPET`] and the host programs' prelude both use it).
//!
//! Not modelled: Nextcloud's `NC_<key>` environment overrides (they live in the web server's
//! environment, which neither road can see from the command line).
//!
//! This module never writes anything, never runs a process and never talks to a host: callers
//! hand it bytes (or a local root, for the operator's own machine and for tests). It never
//! prints a secret and never keeps one in a type whose `Debug` would show it.

pub mod db;
pub mod merge;
pub mod phpconfig;
pub mod secret;
pub mod value;
pub mod version;

#[cfg(test)]
pub(crate) mod testphp;

pub use db::{DbEndpoint, DbKind, DbParams};
pub use merge::{
    config_file_order, is_extra_config_name, merge_config, merge_snippet_file, parse_merge_output,
    MergedConfig, MERGE_SNIPPET,
};
pub use phpconfig::{parse_config, parse_php_file, ParseError, PhpFile};
pub use secret::Secret;
pub use value::{redact_sensitive, typed_dump, Key, PhpArray, PhpValue};
pub use version::{read_version_php, CodeVersion, Flavor, Version};

use crate::exit::Failure;
use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The raw files that describe an instance, as fetched from its host. Nothing interpreted yet.
#[derive(Clone)]
pub struct InstanceFiles {
    /// The instance root (holds `config/`, `version.php`, `occ`).
    pub root: PathBuf,
    /// `config/config.php`, `None` if it does not exist.
    pub config_php: Option<Vec<u8>>,
    /// Every `config/*.config.php` ([`is_extra_config_name`]), by file name, in any order.
    pub extra_configs: Vec<(String, Vec<u8>)>,
    /// `version.php`, `None` if it does not exist.
    pub version_php: Option<Vec<u8>>,
}

/// File contents are secrets; show names and sizes only.
impl fmt::Debug for InstanceFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstanceFiles")
            .field("root", &self.root)
            .field("config_php", &self.config_php.as_ref().map(Vec::len))
            .field(
                "extra_configs",
                &self
                    .extra_configs
                    .iter()
                    .map(|(n, b)| (n, b.len()))
                    .collect::<Vec<_>>(),
            )
            .field("version_php", &self.version_php.as_ref().map(Vec::len))
            .finish()
    }
}

impl InstanceFiles {
    /// Read the files of an instance on this machine. Missing files are `None`; other I/O errors
    /// (permissions) are failures that name the path. Files larger than
    /// [`phpconfig::MAX_INPUT`] are refused.
    pub fn read_local(root: &Path) -> Result<InstanceFiles, Failure> {
        let read = |p: &Path| -> Result<Option<Vec<u8>>, Failure> {
            match std::fs::metadata(p) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(io_failure(p, &e)),
                Ok(m) if m.len() > phpconfig::MAX_INPUT as u64 => {
                    return Err(Failure::usage(format!(
                        "{}: {} bytes is too large for a config file (at most {})",
                        p.display(),
                        m.len(),
                        phpconfig::MAX_INPUT
                    )))
                }
                Ok(_) => {}
            }
            match std::fs::read(p) {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(io_failure(p, &e)),
            }
        };
        let config_dir = root.join("config");
        let mut extra_configs = Vec::new();
        match std::fs::read_dir(&config_dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_failure(&config_dir, &e)),
            Ok(dir) => {
                for entry in dir {
                    let entry = entry.map_err(|e| io_failure(&config_dir, &e))?;
                    let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                        continue; // glob would match it, but a non-UTF-8 name is not ownCloud's
                    };
                    if is_extra_config_name(&name) && !entry.path().is_dir() {
                        if let Some(b) = read(&entry.path())? {
                            extra_configs.push((name, b));
                        }
                    }
                }
            }
        }
        Ok(InstanceFiles {
            root: root.to_path_buf(),
            config_php: read(&config_dir.join("config.php"))?,
            extra_configs,
            version_php: read(&root.join("version.php"))?,
        })
    }

    fn config_path(&self, name: &str) -> PathBuf {
        self.root.join("config").join(name)
    }

    /// The merged config, read with the Rust reader (the road without PHP). Fails with the
    /// file, line and column when a file cannot be read, and when `config.php` is missing.
    pub fn merged_config(&self) -> Result<MergedConfig, Failure> {
        let main_path = self.config_path("config.php");
        let Some(main) = &self.config_php else {
            return Err(not_an_instance(&self.root, &main_path));
        };
        let mut names: Vec<String> = self.extra_configs.iter().map(|(n, _)| n.clone()).collect();
        config_file_order(&mut names);
        let mut parsed = Vec::with_capacity(names.len() + 1);
        let mut output = Vec::new();
        let mut files = Vec::new();
        let sources = std::iter::once(("config.php".to_string(), main.as_slice())).chain(
            names.iter().filter_map(|n| {
                self.extra_configs
                    .iter()
                    .find(|(m, _)| m == n)
                    .map(|(_, b)| (n.clone(), b.as_slice()))
            }),
        );
        for (name, bytes) in sources {
            let path = self.config_path(&name);
            let file = parse_php_file(bytes).map_err(|e| parse_failure(&path, &e))?;
            if !file.inline_output.is_empty() {
                output.push((name.clone(), file.inline_output.len()));
            }
            let value = file.var("CONFIG").cloned().unwrap_or(PhpValue::Null);
            files.push(name.clone());
            parsed.push((name, value));
        }
        Ok(MergedConfig {
            files,
            output,
            config: merge_config(&parsed),
        })
    }

    /// `version.php`, read.
    pub fn code_version(&self) -> Result<CodeVersion, Failure> {
        read_code_version(&self.root, self.version_php.as_deref())
    }

    /// The instance, entirely with the Rust reader.
    pub fn instance(&self) -> Result<Instance, Failure> {
        let merged = self.merged_config()?;
        let code = self.code_version()?;
        Instance::from_parts(&self.root, merged, code)
    }
}

/// `<root>/version.php` (`None`: it does not exist), read into a [`CodeVersion`], with failures
/// that name the path.
pub fn read_code_version(root: &Path, version_php: Option<&[u8]>) -> Result<CodeVersion, Failure> {
    let path = root.join("version.php");
    let Some(bytes) = version_php else {
        return Err(Failure::usage(format!(
            "{} has a config/config.php but no version.php at {}: the ownCloud code is missing",
            root.display(),
            path.display()
        ))
        .hint("point ocmigrate at the ownCloud install directory, the one that holds occ, version.php and config/"));
    };
    read_version_php(bytes).map_err(|m| {
        Failure::usage(format!("{}: {m}", path.display())).hint(
            "version.php comes with the ownCloud release; restore it from the release archive",
        )
    })
}

/// The merged config by the PHP road: what [`MERGE_SNIPPET`] printed on the host, with its exit
/// code (`None` if it was killed) and standard error, turned into a [`MergedConfig`] or a failure
/// that says what went wrong. A `config.php` missing from the files read means this is not an
/// instance.
pub fn merged_config_from_php(
    root: &Path,
    exit_code: Option<i32>,
    stdout: &[u8],
    stderr: &str,
) -> Result<MergedConfig, Failure> {
    let config_dir = root.join("config");
    let stderr = stderr.trim();
    match exit_code {
        Some(0) => {}
        Some(2) => {
            return Err(Failure::usage(format!(
                "PHP could not read the config in {}: {stderr}",
                config_dir.display()
            ))
            .hint("ownCloud fails on this file too; fix it (`php -l` on the file shows the error)"))
        }
        Some(3) => {
            return Err(Failure::usage(format!(
                "reading the config in {} with PHP failed: {stderr}",
                config_dir.display()
            ))
            .hint("check that the directory exists and is readable by the user ocmigrate runs PHP as; a config that cannot be JSON (not UTF-8) is read without PHP instead"))
        }
        other => {
            return Err(Failure::check(format!(
                "PHP ended with {} while reading the config in {}: {stderr}",
                other.map_or("a signal".to_string(), |c| format!("exit code {c}")),
                config_dir.display()
            )))
        }
    }
    let merged = parse_merge_output(stdout).map_err(|e| {
        Failure::check(format!(
            "reading the config in {}: {e}",
            config_dir.display()
        ))
    })?;
    if !merged.files.iter().any(|f| f == "config.php") {
        return Err(not_an_instance(root, &config_dir.join("config.php")));
    }
    Ok(merged)
}

fn io_failure(path: &Path, e: &std::io::Error) -> Failure {
    Failure::usage(format!("cannot read {}: {e}", path.display()))
        .hint("run ocmigrate as a user that can read the ownCloud directory (root, or the web server user)")
}

fn not_an_instance(root: &Path, config_php: &Path) -> Failure {
    Failure::usage(format!(
        "no ownCloud instance at {}: {} does not exist",
        root.display(),
        config_php.display()
    ))
    .hint("give the ownCloud install directory, the one that holds config/config.php, version.php and occ (often /var/www/owncloud)")
}

fn parse_failure(path: &Path, e: &ParseError) -> Failure {
    let f = Failure::usage(format!("{}: {e}", path.display()));
    if e.needs_php {
        f.hint("install the PHP command line (php-cli) on that host so ocmigrate can let PHP read the config, or write the value as a literal")
    } else {
        f.hint(format!(
            "fix the file; `php -l {}` shows what PHP itself thinks of it",
            path.display()
        ))
    }
}

/// The merged config of an instance. `Debug` shows its keys only: the values hold secrets.
#[derive(Clone, PartialEq)]
pub struct RawConfig(PhpValue);

impl RawConfig {
    /// The merged `$CONFIG` (an array). Do not print it; print [`RawConfig::redacted`].
    pub fn value(&self) -> &PhpValue {
        &self.0
    }

    /// A value as ownCloud's `getValue` sees it: absent and `null` are both `None` (`isset`).
    pub fn get(&self, key: &str) -> Option<&PhpValue> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    /// The config with secrets masked, safe to print and diff.
    pub fn redacted(&self) -> PhpValue {
        redact_sensitive(&self.0)
    }
}

impl fmt::Debug for RawConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<String> = self
            .0
            .as_array()
            .map(|a| a.keys().map(|k| k.to_string()).collect())
            .unwrap_or_default();
        f.debug_tuple("RawConfig").field(&keys).finish()
    }
}

/// One `apps_paths` entry (trailing slashes trimmed, as ownCloud trims them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppsPath {
    pub path: PathBuf,
    pub url: String,
    /// `'writable' => true` exactly (ownCloud installs apps only into such a path).
    pub writable: bool,
}

/// Where the log goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `log_type`, or the flavor's default (`owncloud` / `file`).
    pub log_type: String,
    /// `logfile`, or `<datadirectory>/owncloud.log` (`nextcloud.log`). ownCloud falls back to
    /// the default at run time when the configured file cannot be created.
    pub file: PathBuf,
    /// `logfile` is set (and not empty).
    pub file_configured: bool,
}

impl LogConfig {
    /// The log is written to [`LogConfig::file`] (not syslog, errorlog or systemd).
    pub fn writes_file(&self) -> bool {
        matches!(self.log_type.as_str(), "owncloud" | "file")
    }
}

/// `memcache.*` class names as configured (`\OC\Memcache\APCu`, …).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Memcache {
    pub local: Option<String>,
    pub distributed: Option<String>,
    pub locking: Option<String>,
}

impl Memcache {
    /// The PHP modules the configured classes need (`apcu`, `redis`, `memcached`). A missing
    /// module stops every request on the target ("Memcache … not available").
    pub fn php_modules(&self) -> BTreeSet<&'static str> {
        [&self.local, &self.distributed, &self.locking]
            .into_iter()
            .flatten()
            .filter_map(|c| memcache_php_module(c).flatten())
            .collect()
    }

    /// Classes ocmigrate does not know (so cannot say which module they need).
    pub fn unknown_classes(&self) -> Vec<&str> {
        [&self.local, &self.distributed, &self.locking]
            .into_iter()
            .flatten()
            .filter(|c| memcache_php_module(c).is_none())
            .map(String::as_str)
            .collect()
    }
}

/// The PHP module a memcache class needs: `Some(Some(module))`, `Some(None)` for classes built
/// into ownCloud (`ArrayCache`, `NullCache`), `None` for a class ocmigrate does not know. Class
/// names are case-insensitive in PHP and may start with `\`.
pub fn memcache_php_module(class: &str) -> Option<Option<&'static str>> {
    let c = class.trim_start_matches('\\').to_ascii_lowercase();
    match c.as_str() {
        "oc\\memcache\\apcu" => Some(Some("apcu")),
        "oc\\memcache\\redis" => Some(Some("redis")),
        "oc\\memcache\\memcached" => Some(Some("memcached")),
        "oc\\memcache\\arraycache" | "oc\\memcache\\nullcache" => Some(None),
        _ => None,
    }
}

/// Primary object storage: user files live in a bucket, not in the data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectStore {
    /// `objectstore['class']`, if set.
    pub class: Option<String>,
    /// Nextcloud's `objectstore_multibucket` rather than `objectstore`.
    pub multibucket: bool,
}

/// The values that make an instance itself. They must be identical on source and target
/// (compare with [`Identity::differences`]; never print them).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identity {
    pub instanceid: Option<Secret>,
    pub secret: Option<Secret>,
    pub passwordsalt: Option<Secret>,
}

impl Identity {
    /// The names of the identity keys whose values differ (or are set on one side only).
    pub fn differences(&self, other: &Identity) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.instanceid != other.instanceid {
            out.push("instanceid");
        }
        if self.secret != other.secret {
            out.push("secret");
        }
        if self.passwordsalt != other.passwordsalt {
            out.push("passwordsalt");
        }
        out
    }
}

/// An ownCloud or Nextcloud instance, as its config and code describe it.
#[derive(Debug, Clone)]
pub struct Instance {
    pub root: PathBuf,
    pub flavor: Flavor,
    /// What `version.php` says (the code).
    pub code: CodeVersion,
    /// The config's `version` (the database schema the config was last upgraded to).
    pub config_version: Option<Version>,
    pub installed: bool,
    pub maintenance: bool,
    /// `datadirectory`, or `<root>/data`, exactly as configured (no trailing-slash cleanup:
    /// storage ids in the database hold this string).
    pub datadirectory: PathBuf,
    pub datadirectory_is_default: bool,
    pub db: DbParams,
    pub apps_paths: Vec<AppsPath>,
    /// `apps_paths` was not set; the list holds ownCloud's default `<root>/apps`.
    pub apps_paths_default: bool,
    pub log: LogConfig,
    /// `theme` (legacy theme name), if set and not empty.
    pub theme: Option<String>,
    pub objectstore: Option<ObjectStore>,
    pub memcache: Memcache,
    /// Writes to `config.php` fail (`occ maintenance:mode` too): `config_is_read_only`, as the
    /// flavor honours it.
    pub config_is_read_only: bool,
    pub trusted_domains: Vec<String>,
    pub overwrite_cli_url: Option<String>,
    pub identity: Identity,
    /// The config files read, in merge order.
    pub config_files: Vec<String>,
    /// Odd but workable findings, one sentence each (for preflight).
    pub warnings: Vec<String>,
    pub config: RawConfig,
}

impl Instance {
    /// Read an instance on this machine with the Rust reader.
    pub fn load_local(root: &Path) -> Result<Instance, Failure> {
        InstanceFiles::read_local(root)?.instance()
    }

    /// The model from a merged config (from either road) and `version.php`. Fails if the
    /// instance is half-installed or a key that matters has an unusable value.
    pub fn from_parts(
        root: &Path,
        merged: MergedConfig,
        code: CodeVersion,
    ) -> Result<Instance, Failure> {
        let config_php = root.join("config").join("config.php");
        let bad = |key: &str, what: String| {
            Failure::usage(format!("{}: `{key}` {what}", config_php.display()))
                .hint("fix the value in config/config.php (or the *.config.php file that sets it)")
        };
        let flavor = code.flavor;
        let mut warnings = Vec::new();
        if !merged.files.iter().any(|f| f == "config.php") {
            return Err(not_an_instance(root, &config_php));
        }
        for (file, n) in &merged.output {
            warnings.push(format!(
                "config/{file} has {n} byte(s) outside <?php … ?> (a BOM or blank lines); PHP prints them, and Nextcloud refuses such a file"
            ));
        }
        if merged.config.as_array().is_none_or(PhpArray::is_empty) {
            return Err(Failure::usage(format!(
                "{} does not set $CONFIG: the instance is not configured",
                config_php.display()
            ))
            .hint("finish the installation, or point ocmigrate at the right directory"));
        }
        let config = RawConfig(merged.config);
        let get = |k: &str| config.get(k);

        let flag = |key: &str, warnings: &mut Vec<String>| -> bool {
            match get(key) {
                None => false,
                Some(PhpValue::Bool(b)) => *b,
                Some(v) => {
                    warnings.push(format!(
                        "`{key}` is the {} {:?}, not true or false; {} reads it as {}",
                        v.type_name(),
                        shown_scalar(v),
                        flavor.name(),
                        v.truthy()
                    ));
                    v.truthy()
                }
            }
        };
        let installed = flag("installed", &mut warnings);
        if !installed {
            return Err(Failure::usage(format!(
                "the {} instance at {} is half-installed: its config says 'installed' => false",
                flavor.name(),
                root.display()
            ))
            .hint("finish the installation (web installer or occ maintenance:install) before migrating, or point ocmigrate at the right directory"));
        }
        let maintenance = flag("maintenance", &mut warnings);
        // ownCloud honours `config_is_read_only` only in the default `operation.mode`
        // (`Config::isReadOnly()`); Nextcloud always does.
        let single_instance = match get("operation.mode") {
            None => true,
            Some(v) => v.as_str() == Some("single-instance"),
        };
        let config_is_read_only = flag("config_is_read_only", &mut warnings)
            && (flavor == Flavor::Nextcloud || single_instance);

        let text = |key: &str| -> Result<Option<String>, Failure> {
            match get(key) {
                None => Ok(None),
                Some(PhpValue::Str(s)) => String::from_utf8(s.clone())
                    .map(Some)
                    .map_err(|_| bad(key, "is not valid UTF-8".into())),
                Some(v) => Err(bad(key, format!("is a {}, not a string", v.type_name()))),
            }
        };

        let (datadir_bytes, datadirectory_is_default) = match get("datadirectory") {
            None => {
                let mut d = root.as_os_str().as_bytes().to_vec();
                d.extend_from_slice(b"/data");
                (d, true)
            }
            Some(PhpValue::Str(s)) if !s.is_empty() => (s.clone(), false),
            Some(v) => {
                return Err(bad(
                    "datadirectory",
                    format!("is {}, not a path", describe(v)),
                ))
            }
        };
        let datadirectory = PathBuf::from(OsStr::from_bytes(&datadir_bytes));

        let db = DbParams::from_config(&get, flavor, &datadir_bytes)
            .map_err(|m| Failure::usage(format!("{}: {m}", config_php.display())).hint(
                "fix the database settings in config/config.php; ownCloud cannot connect with these either",
            ))?;

        let config_version = match text("version")? {
            None => None,
            Some(v) => Some(v.parse::<Version>().map_err(|m| bad("version", m))?),
        };

        let (apps_paths, apps_paths_default) = apps_paths(root, get("apps_paths"), &mut warnings);

        let log_type = text("log_type")?.unwrap_or_else(|| flavor.default_log_type().to_string());
        let log = match text("logfile")?.filter(|s| !s.is_empty()) {
            Some(f) => LogConfig {
                log_type,
                file: PathBuf::from(f),
                file_configured: true,
            },
            None => {
                let mut p = datadir_bytes.clone();
                p.push(b'/');
                p.extend_from_slice(flavor.default_log_name().as_bytes());
                LogConfig {
                    log_type,
                    file: PathBuf::from(OsStr::from_bytes(&p)),
                    file_configured: false,
                }
            }
        };

        let theme = match get("theme") {
            None => None,
            Some(PhpValue::Str(s)) if s.is_empty() => None,
            Some(_) => text("theme")?,
        };

        let objectstore = if let Some(os) = get("objectstore") {
            Some(ObjectStore {
                class: os.get_str("class").map(str::to_string),
                multibucket: false,
            })
        } else {
            get("objectstore_multibucket").map(|os| ObjectStore {
                class: os.get_str("class").map(str::to_string),
                multibucket: true,
            })
        };

        let memcache = Memcache {
            local: text("memcache.local")?,
            distributed: text("memcache.distributed")?,
            locking: text("memcache.locking")?,
        };
        for c in memcache.unknown_classes() {
            warnings.push(format!(
                "the memcache class {c:?} is not one ocmigrate knows; check by hand that its PHP module is on the target"
            ));
        }

        let trusted_domains = match get("trusted_domains") {
            None => Vec::new(),
            Some(PhpValue::Array(a)) => a
                .values()
                .filter_map(|v| match v.as_str() {
                    Some(s) => Some(s.to_string()),
                    None => {
                        warnings.push(format!(
                            "`trusted_domains` holds {}, which is not a host name",
                            describe(v)
                        ));
                        None
                    }
                })
                .collect(),
            Some(v) => {
                warnings.push(format!(
                    "`trusted_domains` is {}, not a list; ownCloud trusts only localhost then",
                    describe(v)
                ));
                Vec::new()
            }
        };

        let secret_of = |key: &str, warnings: &mut Vec<String>| match get(key) {
            None => None,
            Some(PhpValue::Str(s)) => Some(Secret::new(s.clone())),
            Some(PhpValue::Int(i)) => Some(Secret::new(i.to_string())),
            Some(v) => {
                warnings.push(format!("`{key}` is a {}, not a string", v.type_name()));
                None
            }
        };
        let identity = Identity {
            instanceid: secret_of("instanceid", &mut warnings),
            secret: secret_of("secret", &mut warnings),
            passwordsalt: secret_of("passwordsalt", &mut warnings),
        };
        if identity.instanceid.is_none() {
            warnings.push("`instanceid` is not set; an installed instance always has one".into());
        }
        if identity.secret.is_none() {
            warnings.push("`secret` is not set; an installed instance always has one".into());
        }
        if let (Some(cv), true) = (config_version, installed) {
            if cv != code.version {
                warnings.push(format!(
                    "the config says version {cv} but the code (version.php) is {}: an upgrade is pending or was interrupted",
                    code.version
                ));
            }
        }

        Ok(Instance {
            root: root.to_path_buf(),
            flavor,
            code,
            config_version,
            installed,
            maintenance,
            datadirectory,
            datadirectory_is_default,
            db,
            apps_paths,
            apps_paths_default,
            log,
            theme,
            objectstore,
            memcache,
            config_is_read_only,
            trusted_domains,
            overwrite_cli_url: text("overwrite.cli.url")?,
            identity,
            config_files: merged.files,
            warnings,
            config,
        })
    }

    /// The PHP modules this instance's config needs beyond ownCloud's own list (memcache
    /// backends).
    pub fn required_php_modules(&self) -> BTreeSet<&'static str> {
        self.memcache.php_modules()
    }

    /// The legacy theme folder (`<root>/themes/<theme>`), if a theme is set. It is copied when it
    /// exists; a theme shipped as an app lives in an apps path instead.
    pub fn theme_dir(&self) -> Option<PathBuf> {
        self.theme
            .as_ref()
            .map(|t| self.root.join("themes").join(t))
    }

    /// The keys that must be equal on source and target (SPEC step 8: `instanceid`, `secret`,
    /// `passwordsalt`, `version`, `datadirectory`) and differ between `self` and `other`. Names
    /// only: the values are never shown.
    pub fn must_match_differences(&self, other: &Instance) -> Vec<&'static str> {
        let mut out = self.identity.differences(&other.identity);
        if self.config_version != other.config_version {
            out.push("version");
        }
        if self.datadirectory != other.datadirectory {
            out.push("datadirectory");
        }
        out
    }
}

/// The top-level config keys that differ between two merged configs (added, removed or changed),
/// in `after`'s order, then the removed ones. For the "only `maintenance` changed" check around a
/// maintenance toggle; names only, never values.
pub fn changed_config_keys(before: &PhpValue, after: &PhpValue) -> Vec<String> {
    let empty = PhpArray::new();
    let b = before.as_array().unwrap_or(&empty);
    let a = after.as_array().unwrap_or(&empty);
    let mut out: Vec<String> = a
        .iter()
        .filter(|(k, v)| b.get(k) != Some(*v))
        .map(|(k, _)| k.to_string())
        .collect();
    out.extend(
        b.keys()
            .filter(|k| a.get(k).is_none())
            .map(|k| k.to_string()),
    );
    out
}

/// A short description of a value for messages: never the content of a string.
fn describe(v: &PhpValue) -> String {
    match v {
        PhpValue::Str(s) if s.is_empty() => "an empty string".into(),
        PhpValue::Str(_) => "a string".into(),
        PhpValue::Array(a) => format!("an array of {}", a.len()),
        other => format!("the {} {:?}", other.type_name(), other),
    }
}

/// A flag's odd value, for a warning: strings shortened, arrays not shown.
fn shown_scalar(v: &PhpValue) -> String {
    match v {
        PhpValue::Str(s) => String::from_utf8_lossy(&s[..s.len().min(20)]).into_owned(),
        PhpValue::Array(a) => format!("array({})", a.len()),
        other => format!("{other:?}"),
    }
}

/// `apps_paths` as ownCloud reads it (`lib/kernel.php`): entries need `path` and `url`; both are
/// right-trimmed of `/`. Not set or empty → `<root>/apps`, url `/apps`, writable.
fn apps_paths(
    root: &Path,
    v: Option<&PhpValue>,
    warnings: &mut Vec<String>,
) -> (Vec<AppsPath>, bool) {
    let default = || {
        (
            vec![AppsPath {
                path: root.join("apps"),
                url: "/apps".into(),
                writable: true,
            }],
            true,
        )
    };
    let entries = match v {
        None => return default(),
        Some(PhpValue::Array(a)) if a.is_empty() => return default(),
        Some(PhpValue::Array(a)) => a,
        Some(other) => {
            warnings.push(format!(
                "`apps_paths` is {}, not a list; ownCloud then uses <root>/apps",
                describe(other)
            ));
            return default();
        }
    };
    let mut out = Vec::new();
    for (k, e) in entries.iter() {
        match (e.get_bytes("path"), e.get_str("url")) {
            (Some(p), Some(u)) => {
                let p = trim_end_slashes(p);
                out.push(AppsPath {
                    path: PathBuf::from(OsStr::from_bytes(p)),
                    url: u.trim_end_matches('/').to_string(),
                    writable: e.get_bool("writable") == Some(true),
                })
            }
            _ => warnings.push(format!(
                "`apps_paths` entry {k} has no `path` or no `url`; ownCloud ignores it"
            )),
        }
    }
    (out, false)
}

fn trim_end_slashes(mut p: &[u8]) -> &[u8] {
    while let [rest @ .., b'/'] = p {
        p = rest;
    }
    p
}

#[cfg(test)]
mod tests;
