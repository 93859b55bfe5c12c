//! Pre-flight: every check of SPEC.md's "Pre-flight" list, as findings (blocker or warning, each
//! with the fix). Read-only on both hosts: the source is only inventoried (no login, no write,
//! nothing started); the target gets read-only probes (DB server version, path status, TCP
//! connections to the services the instance uses).

use crate::config::Config;
use crate::exit::Failure;
use crate::host::{Probe, SourceHost, TargetHost};
use crate::inventory::{self, Inventory};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Blocker,
    Warning,
    Info,
}

/// One result of a check.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// Stable identifier for scripts and tests, e.g. `release-differs`.
    pub code: &'static str,
    pub message: String,
    /// How to fix it (empty for information).
    pub fix: String,
}

/// The outcome of `plan`.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub findings: Vec<Finding>,
    /// Whether the data directory will be copied (not with object storage as primary storage).
    pub copy_data: bool,
    #[serde(skip)]
    pub source: Inventory,
    #[serde(skip)]
    pub target: Inventory,
}

impl Plan {
    pub fn blockers(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Blocker)
            .count()
    }
    pub fn has(&self, code: &str) -> bool {
        self.findings.iter().any(|f| f.code == code)
    }
}

struct Out(Vec<Finding>);

impl Out {
    fn add(
        &mut self,
        severity: Severity,
        code: &'static str,
        message: String,
        fix: impl Into<String>,
    ) {
        self.0.push(Finding {
            severity,
            code,
            message,
            fix: fix.into(),
        });
    }
    fn blocker(&mut self, code: &'static str, message: String, fix: impl Into<String>) {
        self.add(Severity::Blocker, code, message, fix)
    }
    fn warning(&mut self, code: &'static str, message: String, fix: impl Into<String>) {
        self.add(Severity::Warning, code, message, fix)
    }
    fn info(&mut self, code: &'static str, message: String) {
        self.add(Severity::Info, code, message, "")
    }
}

/// PHP modules a config needs, beyond the base set: the database driver, the memcache classes,
/// LDAP.
pub fn needed_php_modules(src: &Inventory) -> Vec<(&'static str, String)> {
    let mut need = Vec::new();
    match src.db.as_ref().map(|d| d.kind.as_str()) {
        Some("mysql") => need.push(("pdo_mysql", "dbtype is mysql".to_string())),
        Some("pgsql") => need.push(("pdo_pgsql", "dbtype is pgsql".to_string())),
        Some("sqlite") | Some("sqlite3") => {
            need.push(("pdo_sqlite", "dbtype is sqlite".to_string()))
        }
        _ => {}
    }
    for key in ["memcache.local", "memcache.distributed", "memcache.locking"] {
        if let Some(class) = src.cfg_str(key) {
            let c = class.to_ascii_lowercase();
            let m = if c.contains("apcu") {
                "apcu"
            } else if c.contains("redis") {
                "redis"
            } else if c.contains("memcached") {
                "memcached"
            } else {
                continue;
            };
            need.push((m, format!("{key} is {class}")));
        }
    }
    if src.enabled_apps().contains_key("user_ldap") {
        need.push(("ldap", "the user_ldap app is enabled".to_string()));
    }
    for m in [
        "ctype",
        "curl",
        "dom",
        "gd",
        "iconv",
        "intl",
        "json",
        "mbstring",
        "posix",
        "simplexml",
        "xmlwriter",
        "zip",
        "zlib",
    ] {
        if src.php.modules.iter().any(|x| x == m) {
            need.push((m, "loaded on the source".to_string()));
        }
    }
    need.dedup_by(|a, b| a.0 == b.0);
    need
}

fn major_minor(v: &str) -> (u32, u32) {
    let mut it = v
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

/// The PHP versions a release accepts, as `[min, max)` (major, minor).
fn php_bounds(
    flavor: Option<inventory::Flavor>,
    version: &str,
) -> Option<((u32, u32), (u32, u32))> {
    let (maj, min) = major_minor(version);
    match flavor? {
        inventory::Flavor::OwnCloud if maj == 10 && min >= 12 => Some(((7, 4), (8, 0))),
        inventory::Flavor::OwnCloud if maj == 10 && min >= 8 => Some(((7, 2), (8, 0))),
        inventory::Flavor::Nextcloud if maj >= 31 => Some(((8, 1), (8, 5))),
        _ => None,
    }
}

/// Run every check. Fails only when a host cannot be reached or the source is not an instance.
pub fn run(cfg: &Config, source: &SourceHost, target: &TargetHost) -> Result<Plan, Failure> {
    let src = inventory::source(source, cfg.source.web_user.as_deref())?;
    let tgt = inventory::target(target)?;
    let mut out = Out(Vec::new());
    check_php_runs(&src, &tgt, &mut out);
    check_release(&src, &tgt, &mut out);
    check_php(&src, &tgt, &mut out);
    let copy_data = check_storage(&src, &mut out);
    check_database(&src, target, &mut out)?;
    check_paths(&src, &tgt, target, copy_data, &mut out)?;
    check_config(cfg, &src, &mut out);
    check_services(&src, target, &mut out)?;
    check_dns(cfg, &mut out);
    Ok(Plan {
        findings: out.0,
        copy_data,
        source: src,
        target: tgt,
    })
}

fn check_release(src: &Inventory, tgt: &Inventory, out: &mut Out) {
    let want = src.config_version().unwrap_or("?").to_string();
    match (tgt.release.as_ref(), tgt.code_version()) {
        (None, _) | (_, None) => out.blocker(
            "target-release-missing",
            format!("no ownCloud release found at {} on the target (no version.php)", tgt.root),
            format!("install the same release as the source ({want}), code only, at that path"),
        ),
        (Some(_), Some(have)) if have != want || tgt.flavor() != src.flavor() => out.blocker(
            "release-differs",
            format!(
                "the target has {} {have}, the source's database is at {} {want}",
                tgt.flavor().map(|f| f.to_string()).unwrap_or_default(),
                src.flavor().map(|f| f.to_string()).unwrap_or_default()
            ),
            format!("install exactly {want} on the target: a migration is not an upgrade; upgrade before or after, not during"),
        ),
        _ => out.info("release", format!("release {want} on both sides")),
    }
    // Enabled apps whose code is part of the release must be on the target with the same version.
    let apps_external: Vec<&str> = src
        .cfg("apps_paths")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|p| p.get("path").and_then(|x| x.as_str()))
                .filter(|p| !p.ends_with("/apps"))
                .collect()
        })
        .unwrap_or_default();
    for (app, installed) in src.enabled_apps() {
        let Some(code) = src.apps_code.get(&app) else {
            continue;
        };
        if apps_external.iter().any(|p| code.path.starts_with(p)) {
            continue; // copied with the instance
        }
        match tgt.apps_code.get(&app) {
            None => out.blocker(
                "app-missing",
                format!(
                    "the enabled app {app} ({}) is not installed on the target",
                    installed.as_deref().unwrap_or("?")
                ),
                format!(
                    "install {app} {} in the target's apps folder",
                    installed.as_deref().unwrap_or("")
                ),
            ),
            Some(t) if t.version != code.version => out.blocker(
                "app-version-differs",
                format!(
                    "the app {app} is {} on the target and {} on the source",
                    t.version.as_deref().unwrap_or("?"),
                    code.version.as_deref().unwrap_or("?")
                ),
                format!(
                    "install {app} {} on the target",
                    code.version.as_deref().unwrap_or("")
                ),
            ),
            _ => {}
        }
    }
}

/// The bounds the target's release states in its own code, else the known table.
fn release_php_bounds(src: &Inventory, tgt: &Inventory) -> Option<((u32, u32), (u32, u32))> {
    let id = |v: u32| (v / 10000, (v / 100) % 100);
    match tgt.release.as_ref() {
        Some(inventory::Release {
            php_min: Some(lo),
            php_max: Some(hi),
            ..
        }) => Some((id(*lo), id(*hi))),
        Some(inventory::Release {
            php_min: Some(lo),
            php_max: None,
            ..
        }) => Some((id(*lo), (99, 0))),
        _ => php_bounds(src.flavor(), src.config_version().unwrap_or("")),
    }
}

/// PHP could not run on a side: its config was read by ocmigrate's own reader (said as a
/// warning, with what could not be checked), and `occ` cannot run there (a blocker).
fn check_php_runs(src: &Inventory, tgt: &Inventory, out: &mut Out) {
    if let Some(why) = &src.without_php {
        let db = if src.db.as_ref().is_some_and(|d| d.ok) {
            "and the database with its own client"
        } else {
            "but could not read the database"
        };
        out.warning(
            "read-without-php",
            format!(
                "PHP could not run on the source ({why}): ocmigrate read config.php with its own reader {db}; the PHP modules and the apps' code versions were not checked"
            ),
            "install the PHP command line on the source (the version the web server runs, e.g. apt install php7.4-cli) and run plan again for a complete check",
        );
        out.blocker(
            "source-php-missing",
            format!("occ cannot run on the source: {why}"),
            "the migration puts the source in maintenance mode with occ, which needs the PHP command line: install it (e.g. apt install php7.4-cli)",
        );
    }
    if let Some(why) = &tgt.without_php {
        out.blocker(
            "target-php-missing",
            format!("PHP cannot run on the target: {why}"),
            "install PHP on the target, the version the release supports, with the modules the source uses (e.g. apt install php-cli php-mysql …)",
        );
    }
}

fn check_php(src: &Inventory, tgt: &Inventory, out: &mut Out) {
    if tgt.without_php.is_some() {
        return; // target-php-missing says it
    }
    if let Some(((lo_maj, lo_min), (hi_maj, hi_min))) = release_php_bounds(src, tgt) {
        let v = major_minor(&tgt.php.version);
        if v < (lo_maj, lo_min) || v >= (hi_maj, hi_min) {
            out.blocker(
                "php-version",
                format!(
                    "the target runs PHP {}; {} {} needs PHP >= {lo_maj}.{lo_min} and < {hi_maj}.{hi_min}",
                    tgt.php.version,
                    src.flavor().map(|f| f.to_string()).unwrap_or_default(),
                    src.config_version().unwrap_or("")
                ),
                "install a PHP version the release supports on the target (ownCloud 10.12+ runs only on PHP 7.4)",
            );
        }
    }
    for (module, why) in needed_php_modules(src) {
        if !tgt.php.modules.iter().any(|m| m == module) {
            out.blocker(
                "php-module-missing",
                format!("the PHP module {module} is missing on the target ({why})"),
                format!(
                    "install it on the target (e.g. apt install php-{})",
                    module.trim_start_matches("pdo_")
                ),
            );
        }
    }
}

/// Returns whether the data directory is copied.
fn check_storage(src: &Inventory, out: &mut Out) -> bool {
    let mut copy_data = true;
    if src.cfg("objectstore").is_some() {
        copy_data = false;
        out.warning(
            "object-storage",
            "primary storage is an object store: user files are not in the data directory and are not copied".into(),
            "make sure the target reaches the bucket, and never run both instances at once against it",
        );
    }
    if src.encryption_enabled() {
        out.warning(
            "encryption",
            format!(
                "server-side encryption is enabled (key storage root: {}): keys travel with the data directory and need the same `secret`",
                src.appconfig("core", "encryption_key_storage_root").filter(|s| !s.is_empty()).unwrap_or("default, data/")
            ),
            "nothing to do if the keys are inside the data directory; copy config/ verbatim (ocmigrate does)",
        );
    }
    if let Some(db) = &src.db {
        for m in db.external.iter().flatten() {
            if m.storage_backend == "local" {
                out.warning(
                    "external-local-mount",
                    format!(
                        "a local external-storage mount {} points to {} on the source",
                        m.mount_point,
                        m.datadir.as_deref().unwrap_or("?")
                    ),
                    "that folder is not part of the data directory: create or copy it on the target at the same path",
                );
            }
        }
        let datadir = src.datadir.clone().unwrap_or_default();
        for h in db.homes.iter().flatten() {
            if let Some(home) = &h.home {
                if !home.starts_with(&format!("{datadir}/")) {
                    out.warning(
                        "home-outside-datadir",
                        format!("the home of {} is {home}, outside the data directory", h.user_id),
                        "ocmigrate copies it to the same path on the target; make sure that path can exist there",
                    );
                }
            }
        }
        if let Some(n) = db
            .locks
            .as_ref()
            .and_then(inventory::as_u64)
            .filter(|n| *n > 0)
        {
            out.warning(
                "stale-locks",
                format!("{n} file locks are held in oc_file_locks"),
                "they expire by themselves; if clients see 423 Locked after the move, clear oc_file_locks on the target in maintenance",
            );
        }
    }
    copy_data
}

fn check_database(src: &Inventory, target: &TargetHost, out: &mut Out) -> Result<(), Failure> {
    let Some(db) = &src.db else { return Ok(()) };
    // A blocker: every file pass stops on it too (it needs the homes the database holds).
    if !db.ok {
        out.blocker(
            "source-db-unreadable",
            format!(
                "the source database could not be read: {}",
                db.error.as_deref().unwrap_or("?")
            ),
            "check that the database server runs and dbhost/dbuser in config.php reach it; plan could not count files or list apps, and a file pass needs the users' homes from it",
        );
    }
    if let Some(why) = src.homes_unread() {
        out.blocker(
            "source-homes-unreadable",
            format!(
                "the users' homes could not be read from {}accounts: {why}",
                db.prefix
            ),
            "ownCloud 10 keeps every home there, and a file pass needs them (a home may lie outside the data directory): mend the table or the database user's grant",
        );
    }
    match db.kind.as_str() {
        "mysql" | "pgsql" => {
            let r = target.probe(&Probe::DbServer(db.kind.clone()))?;
            if r.ok() {
                let v = r.stdout_text().trim().to_string();
                out.info(
                    "target-db",
                    format!(
                        "target database server {v} (source: {})",
                        db.server.as_deref().unwrap_or("?")
                    ),
                );
            } else {
                let server = if db.kind == "mysql" {
                    "MariaDB/MySQL"
                } else {
                    "PostgreSQL"
                };
                out.blocker(
                    "target-db-unreachable",
                    format!("the target's {server} server does not answer: {}", r.stderr_text()),
                    format!("install and start {server} on the target; ocmigrate creates the database and its user as root through the socket"),
                );
            }
        }
        _ => {}
    }
    Ok(())
}

fn check_paths(
    src: &Inventory,
    tgt: &Inventory,
    target: &TargetHost,
    copy_data: bool,
    out: &mut Out,
) -> Result<(), Failure> {
    let Some(datadir) = src.datadir.clone() else {
        return Ok(());
    };
    let r = target.probe(&Probe::PathStatus(datadir.clone().into()))?;
    let status = r.stdout_text().trim().to_string();
    if status == "exists file" || status.ends_with("readonly") || !r.ok() {
        out.blocker(
            "target-datadir",
            format!("the data directory {datadir} cannot be created on the target ({status})"),
            "the data directory must keep its path: make that path creatable (or mount the target's data disk there)",
        );
    } else if status == "exists nonempty" {
        out.warning(
            "target-datadir-nonempty",
            format!("{datadir} on the target already has files"),
            "fine after an earlier `ocmigrate sync`; otherwise empty it, or they are replaced",
        );
    }
    if copy_data {
        let (_, bytes) = src.filecache_totals().unwrap_or((0, 0));
        let free = target.probe(&Probe::FreeBytes(datadir.clone().into()))?;
        let free = free
            .stdout_text()
            .trim()
            .parse::<u64>()
            .ok()
            .or_else(|| tgt.free_bytes());
        if let Some(free) = free {
            let need = bytes + bytes / 10 + (64 << 20);
            if free < need {
                out.blocker(
                    "target-disk",
                    format!(
                        "the target has {:.1} GiB free at {datadir}; the data needs about {:.1} GiB with a 10 % margin",
                        free as f64 / 1073741824.0,
                        need as f64 / 1073741824.0
                    ),
                    "give the target's data directory a larger disk",
                );
            }
        }
    }
    Ok(())
}

fn check_config(cfg: &Config, src: &Inventory, out: &mut Out) {
    if src.cfg_bool("config_is_read_only") {
        out.blocker(
            "config-read-only",
            "config_is_read_only is set: `occ maintenance:mode --on` would fail on the source".into(),
            "set 'config_is_read_only' => false in config.php for the migration (and back afterwards)",
        );
    }
    if src.cfg_bool("maintenance") {
        out.warning(
            "source-in-maintenance",
            "the source is already in maintenance mode".into(),
            "if a failed migration left it so, `ocmigrate rollback` brings it back; otherwise end the other maintenance first",
        );
    }
    let public = cfg
        .web
        .public_url
        .clone()
        .or_else(|| src.cfg_str("overwrite.cli.url").map(String::from));
    match public
        .as_deref()
        .and_then(|u| u.split("://").nth(1))
        .map(|h| h.split(['/', ':']).next().unwrap_or(h).to_string())
    {
        Some(host) => {
            let trusted: Vec<String> = src
                .cfg("trusted_domains")
                .and_then(|v| {
                    v.as_array()
                        .cloned()
                        .or_else(|| v.as_object().map(|o| o.values().cloned().collect()))
                })
                .unwrap_or_default()
                .iter()
                .filter_map(|v| v.as_str().map(|s| s.to_string()))
                .collect();
            if !trusted.iter().any(|t| t.eq_ignore_ascii_case(&host)) {
                out.blocker(
                    "public-name-untrusted",
                    format!(
                        "the public name {host} is not in trusted_domains ({})",
                        trusted.join(", ")
                    ),
                    format!("add '{host}' to trusted_domains in the source's config.php"),
                );
            }
        }
        None => out.warning(
            "public-url-unknown",
            "no public URL: neither [web] public_url nor overwrite.cli.url is set".into(),
            "set [web] public_url in the migration file",
        ),
    }
}

fn check_services(src: &Inventory, target: &TargetHost, out: &mut Out) -> Result<(), Failure> {
    for (host, port) in src.ldap_servers() {
        let r = target.probe(&Probe::TcpConnect(host.clone(), port))?;
        if !r.ok() {
            out.warning(
                "ldap-unreachable",
                format!("the LDAP server {host}:{port} cannot be reached from the target"),
                "open the firewall from the target to the LDAP server (and install its CA for LDAPS), or LDAP users cannot log in",
            );
        }
    }
    if let Some(redis) = src.cfg("redis") {
        if let (Some(h), port) = (
            redis.get("host").and_then(|h| h.as_str()),
            redis.get("port").and_then(inventory::as_u64),
        ) {
            if !h.starts_with('/') {
                let r = target.probe(&Probe::TcpConnect(
                    h.to_string(),
                    port.unwrap_or(6379) as u16,
                ))?;
                if !r.ok() {
                    out.warning(
                        "redis-unreachable",
                        format!(
                            "Redis at {h}:{} cannot be reached from the target",
                            port.unwrap_or(6379)
                        ),
                        "install and start Redis on the target (or reach the shared one)",
                    );
                }
            }
        }
    }
    Ok(())
}

/// The CNAME's current answer and TTL, when the DNS step is configured.
fn check_dns(cfg: &Config, out: &mut Out) {
    if cfg.dns.mode == crate::config::DnsMode::None {
        return;
    }
    match crate::dns::check(&cfg.dns) {
        Ok(st) => {
            out.info(
                "dns",
                format!(
                    "{} is {} (TTL {})",
                    st.name,
                    st.current.as_deref().unwrap_or("not a CNAME"),
                    st.ttl
                        .map(|t| format!("{t} s"))
                        .unwrap_or_else(|| "?".into())
                ),
            );
            if let Some(w) = st.ttl_warning {
                out.warning(
                    "dns-ttl-long",
                    w,
                    "lower the TTL now, at least one old TTL before the migration",
                );
            }
            for w in st.warnings {
                out.warning("dns-warning", w, "");
            }
        }
        Err(e) => out.warning(
            "dns-check-failed",
            format!("the DNS check failed: {}", e.message),
            e.hint
                .unwrap_or_else(|| "run `ocmigrate dns check` for details".into()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn php_bounds_for_owncloud_and_nextcloud() {
        assert_eq!(
            php_bounds(Some(inventory::Flavor::OwnCloud), "10.15.2.0"),
            Some(((7, 4), (8, 0)))
        );
        assert_eq!(
            php_bounds(Some(inventory::Flavor::Nextcloud), "33.0.1.2"),
            Some(((8, 1), (8, 5)))
        );
        assert_eq!(major_minor("8.2.36-1~deb12u1"), (8, 2));
    }
}
