//! The source host: the original ownCloud machine, which ocmigrate must never change.
//!
//! [`SourceHost`] offers reads (files, and the fixed read-only [`Probe`]s), `occ
//! maintenance:mode`, and the configured stop/start commands of the web server. There is no
//! method that writes a file or runs an arbitrary command: adding one is a design change, not a
//! convenience (SPEC.md, "Safety rules").

use super::{shell_quote, shell_words, Host, Ran};
use crate::exit::Failure;
use std::path::{Path, PathBuf};

/// A read-only question to a host. Each variant is a fixed command that writes nothing.
#[derive(Debug, Clone)]
pub enum Probe {
    /// `php -v` first line and `php -m`, as the web user would see them on the CLI.
    Php,
    /// Evaluate a PHP snippet, sent on stdin, with `php` (the snippet only reads: callers pass
    /// compiled-in constants such as `inventory::INVENTORY_PHP`). `args` become `$argv[1..]`.
    PhpRead {
        snippet: &'static str,
        args: Vec<String>,
    },
    /// Owner name of a path (`stat -c %U`).
    Owner(PathBuf),
    /// Bytes used under a path (`du -sb`).
    DiskUsage(PathBuf),
    /// Whether a command is on PATH (`command -v`).
    HasCommand(String),
    /// `cat /etc/os-release`.
    OsRelease,
    /// The local database server's version, asked as root through its socket: `mysql` or
    /// `pgsql`. Prints the version; fails when the server or its client is missing.
    DbServer(String),
    /// Whether a path exists and is an empty folder, or else whether its nearest existing
    /// parent is writable: prints `exists empty`, `exists nonempty`, `exists file`, or
    /// `missing <parent> writable|readonly`.
    PathStatus(PathBuf),
    /// A TCP connection attempt (5 s) with PHP's fsockopen; exit 0 when it connects.
    TcpConnect(String, u16),
    /// A user's crontab (`crontab -u USER -l`), empty when there is none.
    Crontab(String),
    /// Free bytes on the filesystem that holds a path (or would hold it: its nearest existing
    /// parent), from `df`.
    FreeBytes(PathBuf),
}

impl Probe {
    pub(super) fn script(&self) -> (String, Vec<u8>) {
        match self {
            Probe::Php => ("php -v | head -n 1 && echo '--' && php -m".into(), vec![]),
            Probe::PhpRead { snippet, args } => (
                format!("php -d display_errors=stderr -- {}", shell_words(args)),
                format!("<?php\n{snippet}\n").into_bytes(),
            ),
            Probe::Owner(p) => (
                shell_words(&["stat", "-c", "%U", "--", &p.to_string_lossy()]),
                vec![],
            ),
            Probe::DiskUsage(p) => (
                shell_words(&["du", "-sb", "--", &p.to_string_lossy()]),
                vec![],
            ),
            Probe::HasCommand(c) => (format!("command -v {}", shell_quote(c)), vec![]),
            Probe::OsRelease => ("cat /etc/os-release".into(), vec![]),
            Probe::DbServer(kind) if kind == "mysql" => (
                "c=$(command -v mariadb || command -v mysql) || { echo 'no mariadb/mysql client' >&2; exit 3; }; \
                 \"$c\" -N -B -e 'SELECT VERSION()'"
                    .into(),
                vec![],
            ),
            Probe::DbServer(_) => (
                "command -v psql >/dev/null || { echo 'no psql client' >&2; exit 3; }; \
                 cd / && runuser -u postgres -- psql -XAtc 'SHOW server_version'"
                    .into(),
                vec![],
            ),
            Probe::PathStatus(p) => (
                format!(
                    "p={}; if [ -d \"$p\" ]; then if [ -z \"$(ls -A \"$p\")\" ]; then echo exists empty; else echo exists nonempty; fi; \
                     elif [ -e \"$p\" ]; then echo exists file; else q=$p; while [ ! -e \"$q\" ]; do q=$(dirname \"$q\"); done; \
                     if [ -w \"$q\" ]; then echo missing \"$q\" writable; else echo missing \"$q\" readonly; fi; fi",
                    shell_quote(&p.to_string_lossy())
                ),
                vec![],
            ),
            Probe::TcpConnect(h, port) => (
                format!(
                    "php -r 'exit(@fsockopen($argv[1], (int)$argv[2], $e, $s, 5) ? 0 : 1);' {} {port}",
                    shell_quote(h)
                ),
                vec![],
            ),
            Probe::FreeBytes(p) => (
                format!(
                    "q={}; while [ ! -e \"$q\" ]; do q=$(dirname \"$q\"); done; df -P -B1 -- \"$q\" | awk 'NR==2 {{print $4}}'",
                    shell_quote(&p.to_string_lossy())
                ),
                vec![],
            ),
            Probe::Crontab(u) => (format!("crontab -u {} -l 2>/dev/null || true", shell_quote(u)), vec![]),
        }
    }
}

pub struct SourceHost {
    host: Host,
    root: PathBuf,
}

impl SourceHost {
    pub fn new(host: Host, root: PathBuf) -> SourceHost {
        SourceHost { host, root }
    }
    pub fn label(&self) -> &str {
        &self.host.label
    }
    /// The instance root (holding `config/` and `occ`).
    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn login_user(&self) -> &str {
        &self.host.login_user
    }
    /// Put ocmigrate's agent binary in the login user's cache folder (the one file SPEC.md lets
    /// ocmigrate leave on the source outside the instance); copied only when missing or different.
    pub fn install_agent(
        &self,
        bytes: &[u8],
        sha256_hex: &str,
    ) -> Result<super::AgentInstall, Failure> {
        self.host.install_agent(bytes, sha256_hex)
    }
    /// Start the agent installed by [`Self::install_agent`], stdio piped.
    pub fn spawn_agent(
        &self,
        install: &super::AgentInstall,
    ) -> Result<std::process::Child, Failure> {
        self.host.spawn_agent(install)
    }
    /// Read a whole file; `None` when it does not exist.
    pub fn read_file(&self, path: &Path) -> Result<Option<Vec<u8>>, Failure> {
        self.host.read_file(path)
    }
    /// Ask a read-only question.
    pub fn probe(&self, p: &Probe) -> Result<Ran, Failure> {
        let (script, input) = p.script();
        self.host.run_with_input(&script, &input)
    }
    /// Ask a read-only question as the web user (PHP reading config.php must run as its owner).
    pub fn probe_as(&self, user: &str, p: &Probe) -> Result<Ran, Failure> {
        let (script, input) = p.script();
        self.host.run_as(user, &script, &input)
    }
    /// `occ maintenance:mode --on|--off` as the web user.
    pub fn set_maintenance(&self, web_user: &str, on: bool) -> Result<Ran, Failure> {
        let flag = if on { "--on" } else { "--off" };
        let script = format!(
            "cd {} && php occ maintenance:mode {flag} --no-interaction",
            shell_quote(&self.root.to_string_lossy())
        );
        self.host.run_as(web_user, &script, &[])
    }
    /// Run the configured commands that stop (or start) the web server, in order; the first
    /// failure stops the list.
    pub fn run_service_commands(&self, commands: &[String]) -> Result<Ran, Failure> {
        let mut last = Ran {
            status: Some(0),
            stdout: vec![],
            stderr: vec![],
        };
        for c in commands {
            last = self.host.run(c)?;
            if !last.ok() {
                break;
            }
        }
        Ok(last)
    }
}
