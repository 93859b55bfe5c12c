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
    /// `/etc/passwd`, a line holding one NUL byte, then `/etc/group`, in one answer (one round
    /// trip: on a distant host every round trip of a pass's start costs the latency twice). A
    /// file that does not exist reads as empty.
    Accounts,
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
    /// The plain files of a folder, one a line: `mode<TAB>mtime<TAB>name` (`find -printf`).
    ListFiles(PathBuf),
    /// The plain files of a folder (not symlinks, not subfolders) with their bytes, in one
    /// answer: for each, `mode<TAB>mtime<TAB>size<TAB>name<NUL>` (`find -printf`) then its
    /// `size` bytes. For small folders (`config/`); exit 3 when the folder cannot be entered.
    ReadFiles(PathBuf),
    /// A file's size, then its bytes from an offset on (at most 4 MiB): for reading what a log
    /// got since a moment. Prints `size\n` then the bytes; nothing when the file is missing.
    ReadFrom(PathBuf, u64),
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
            Probe::Accounts => (
                "for f in /etc/passwd /etc/group; do if [ -e $f ]; then cat -- $f || exit 4; fi; \
                 [ $f = /etc/group ] || printf '\\n\\000\\n'; done"
                    .into(),
                vec![],
            ),
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
            Probe::ListFiles(p) => (
                format!(
                    "find {} -mindepth 1 -maxdepth 1 -type f -printf '%m\\t%T@\\t%f\\n'",
                    shell_quote(&p.to_string_lossy())
                ),
                vec![],
            ),
            Probe::ReadFiles(p) => (
                format!(
                    "cd -- {} || exit 3; for f in * .[!.]* ..?*; do \
                     if [ -f \"$f\" ] && [ ! -L \"$f\" ]; then \
                     find \"./$f\" -maxdepth 0 -printf '%m\\t%T@\\t%s\\t%f\\0' && cat -- \"$f\" || exit 4; fi; done",
                    shell_quote(&p.to_string_lossy())
                ),
                vec![],
            ),
            Probe::ReadFrom(p, off) => (
                format!(
                    "p={}; if [ -e \"$p\" ]; then stat -c %s -- \"$p\" && tail -c +{} -- \"$p\" | head -c 4194304; fi",
                    shell_quote(&p.to_string_lossy()),
                    off + 1
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
    r: super::ReadSide,
}

impl std::ops::Deref for SourceHost {
    type Target = super::ReadSide;
    fn deref(&self) -> &super::ReadSide {
        &self.r
    }
}

impl SourceHost {
    pub fn new(host: Host, root: PathBuf) -> SourceHost {
        SourceHost {
            r: super::ReadSide::new(host, root),
        }
    }
    /// `occ maintenance:mode --on|--off` as the web user.
    pub fn set_maintenance(&self, web_user: &str, on: bool) -> Result<Ran, Failure> {
        let flag = if on { "--on" } else { "--off" };
        let script = format!(
            "cd {} && php occ maintenance:mode {flag} --no-interaction",
            shell_quote(&self.r.root.to_string_lossy())
        );
        self.r.host.run_as(web_user, &script, &[])
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
            last = self.r.host.run(c)?;
            if !last.ok() {
                break;
            }
        }
        Ok(last)
    }
}

/// How to reach an instance's database server, as config.php says. The password is not here: it
/// travels on the script's stdin (first line), never in a command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DbConn {
    /// TCP host (MySQL: `localhost` means the default socket); PostgreSQL: a host or a socket
    /// folder. `None`: the client's default.
    pub host: Option<String>,
    pub port: Option<u16>,
    /// MySQL socket path.
    pub socket: Option<String>,
    pub user: String,
    pub name: String,
}

impl DbConn {
    /// `-u USER [-h HOST -P PORT | -S SOCKET]` for the MySQL/MariaDB clients.
    pub fn mysql_args(&self) -> Vec<String> {
        let mut a = vec!["-u".to_string(), self.user.clone()];
        if let Some(s) = &self.socket {
            a.push(format!("--socket={s}"));
        } else if let Some(h) = self.host.as_deref().filter(|h| *h != "localhost") {
            a.push(format!("--host={h}"));
            a.push("--protocol=TCP".into());
            if let Some(p) = self.port {
                a.push(format!("--port={p}"));
            }
        } else if let Some(p) = self.port {
            a.push("--host=127.0.0.1".into());
            a.push(format!("--port={p}"));
        }
        a
    }
    /// `-h HOST -p PORT -U USER` for the PostgreSQL clients (`-d` is added by the caller).
    pub fn pg_args(&self) -> Vec<String> {
        let mut a = Vec::new();
        if let Some(h) = &self.host {
            a.push(format!("--host={h}"));
        }
        if let Some(p) = self.port {
            a.push(format!("--port={p}"));
        }
        a.push(format!("--username={}", self.user));
        a
    }
}

/// Compression of a stream on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compress {
    Zstd,
    Gzip,
    None,
}

impl Compress {
    /// The pipeline stage that compresses stdin to stdout (empty for `None`).
    pub fn pipe(self) -> &'static str {
        match self {
            Compress::Zstd => " | zstd -q -1 -T0 -c",
            Compress::Gzip => " | gzip -1 -c",
            Compress::None => "",
        }
    }
    /// The pipeline stage that decompresses (empty for `None`), with a trailing `|`.
    pub fn unpipe(self) -> &'static str {
        match self {
            Compress::Zstd => "zstd -q -d -c | ",
            Compress::Gzip => "gzip -d -c | ",
            Compress::None => "",
        }
    }
}

/// pg_dump's output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgFormat {
    /// `-Fc -Z0` for `pg_restore` (owner and privileges decided at restore time).
    Custom,
    /// `-Fp --no-owner --no-privileges` for `psql`.
    Plain,
}

/// A streaming read of a database on the source. Each variant is a fixed command that only reads:
/// a consistent dump (`--single-transaction`, or `--lock-tables` for MyISAM, which takes read
/// locks only), or the SQLite files as a tar stream. The password (MySQL/PostgreSQL) is the first
/// line of stdin and reaches the tool through its environment, never argv.
#[derive(Debug, Clone)]
pub enum DumpCommand {
    Mysql {
        conn: DbConn,
        /// `--lock-tables` instead of `--single-transaction` (MyISAM tables present).
        lock_tables: bool,
        /// The whole database, the table definitions only, or the rows only.
        part: MysqlPart,
        /// `--default-character-set=…` (utf8mb4 when configured).
        charset: String,
        compress: Compress,
    },
    Pgsql {
        conn: DbConn,
        format: PgFormat,
        compress: Compress,
    },
    /// `tar -c` of a SQLite database file and its `-wal` and `-shm` files when they exist,
    /// without opening the database (so nothing is checkpointed).
    SqliteFiles { db: PathBuf, compress: Compress },
}

/// Which part of a MySQL database a dump carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MysqlPart {
    /// Definitions, rows and triggers, as one stream.
    All,
    /// `--no-data --skip-triggers`: the table definitions.
    Schema,
    /// `--no-create-info --skip-triggers`: the rows.
    Data,
    /// A refresh of a copy made earlier: these whole tables (dropped and re-created on import),
    /// then the rows of these key ranges. The ranges are integers, so no SQL text of the
    /// caller's reaches the source.
    Refresh {
        tables: Vec<String>,
        rows: Vec<KeyRanges>,
    },
}

/// Rows of one table whose integer key lies in one of `ranges` (both ends included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRanges {
    pub table: String,
    pub key: String,
    pub ranges: Vec<(i128, i128)>,
}

impl KeyRanges {
    /// The condition, e.g. `` `id` IN (9,12) OR `id` BETWEEN 1 AND 4 `` (single keys listed,
    /// runs as ranges).
    pub fn condition(&self) -> String {
        let key = format!("`{}`", self.key.replace('`', "``"));
        let singles: Vec<String> = self
            .ranges
            .iter()
            .filter(|(a, b)| a == b)
            .map(|(a, _)| a.to_string())
            .collect();
        let mut parts = Vec::new();
        if !singles.is_empty() {
            parts.push(format!("{key} IN ({})", singles.join(",")));
        }
        parts.extend(
            self.ranges
                .iter()
                .filter(|(a, b)| a != b)
                .map(|(a, b)| format!("{key} BETWEEN {a} AND {b}")),
        );
        parts.join(" OR ")
    }
}

/// Exit status of the source scripts when a client tool is missing.
pub const NO_TOOL: i32 = 127;

impl DumpCommand {
    fn script(&self) -> String {
        match self {
            DumpCommand::Mysql {
                conn,
                lock_tables,
                part,
                charset,
                compress,
            } => {
                let lock = if *lock_tables {
                    "--lock-tables"
                } else {
                    "--single-transaction"
                };
                let head = format!(
                    "c=$(command -v mariadb-dump || command -v mysqldump) || {{ echo 'ocmigrate: neither mariadb-dump nor mysqldump is installed' >&2; exit {NO_TOOL}; }}\n\
                     IFS= read -r MYSQL_PWD || true; export MYSQL_PWD\n\
                     x=; case $(\"$c\" --help 2>/dev/null) in *column-statistics*) x=--column-statistics=0;; esac\n"
                );
                // One dump command: `mode`, then the database and what follows it.
                let dump = |mode: &str, after: &str| {
                    format!(
                        "\"$c\" $x {mode} --quick --no-autocommit --hex-blob --no-tablespaces --default-character-set={} {} -- {}{after}",
                        shell_quote(charset),
                        shell_words(&conn.mysql_args()),
                        shell_quote(&conn.name),
                    )
                };
                let body = match part {
                    MysqlPart::All => dump(&format!("{lock} --triggers"), ""),
                    MysqlPart::Schema => dump(&format!("{lock} --no-data --skip-triggers"), ""),
                    MysqlPart::Data => {
                        dump(&format!("{lock} --no-create-info --skip-triggers"), "")
                    }
                    MysqlPart::Refresh { tables, rows } => {
                        let mut cmds = vec!["true".to_string()];
                        if !tables.is_empty() {
                            let names: Vec<String> =
                                tables.iter().map(|t| shell_quote(t)).collect();
                            cmds.push(dump(
                                &format!("{lock} --skip-triggers"),
                                &format!(" {}", names.join(" ")),
                            ));
                        }
                        for r in rows.iter().filter(|r| !r.ranges.is_empty()) {
                            cmds.push(dump(
                                &format!(
                                    "{lock} --no-create-info --skip-triggers --where={}",
                                    shell_quote(&r.condition())
                                ),
                                &format!(" {}", shell_quote(&r.table)),
                            ));
                        }
                        format!("{{ {}; }}", cmds.join(" && "))
                    }
                };
                format!("{head}{body}{}", compress.pipe())
            }
            DumpCommand::Pgsql {
                conn,
                format,
                compress,
            } => {
                let fmt = match format {
                    PgFormat::Custom => "-Fc -Z0",
                    PgFormat::Plain => "-Fp --no-owner --no-privileges",
                };
                format!(
                    "command -v pg_dump >/dev/null || {{ echo 'ocmigrate: pg_dump is not installed' >&2; exit {NO_TOOL}; }}\n\
                     IFS= read -r PGPASSWORD || true; export PGPASSWORD\n\
                     cd / && pg_dump {fmt} {} --dbname={}{}",
                    shell_words(&conn.pg_args()),
                    shell_quote(&conn.name),
                    compress.pipe()
                )
            }
            DumpCommand::SqliteFiles { db, compress } => {
                let dir = db.parent().unwrap_or(Path::new("/"));
                let name = db
                    .file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default();
                format!(
                    "cd {} || exit 2; n={}; [ -f \"$n\" ] || {{ echo \"ocmigrate: no SQLite database at $PWD/$n\" >&2; exit 2; }}\n\
                     set -- \"$n\"; for s in -wal -shm; do [ -e \"$n$s\" ] && set -- \"$@\" \"$n$s\"; done\n\
                     tar -cf - -- \"$@\"{}",
                    shell_quote(&dir.to_string_lossy()),
                    shell_quote(&name),
                    compress.pipe()
                )
            }
        }
    }
}

/// A read-only query of the instance's database on the source, run with the database's own client:
/// the SQL goes on stdin after the password line. Only `SELECT`, `SHOW` and `WITH` statements are
/// accepted, and the session is read-only (MySQL `SET SESSION TRANSACTION READ ONLY`, PostgreSQL
/// `default_transaction_read_only`, SQLite opened `immutable` and read-only).
#[derive(Debug, Clone)]
pub enum DbSelect {
    Mysql {
        conn: DbConn,
        sql: String,
    },
    Pgsql {
        conn: DbConn,
        sql: String,
    },
    /// Only for a database without a live WAL file (`immutable=1` would miss its content).
    Sqlite {
        db: PathBuf,
        sql: String,
    },
}

/// True when every `;`-separated statement of `sql` is a SELECT, SHOW or WITH.
pub fn is_select_only(sql: &str) -> bool {
    sql.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .all(|s| {
            let w = s
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            matches!(w.as_str(), "SELECT" | "SHOW" | "WITH")
        })
}

/// `file:` URI for SQLite, percent-encoding what a URI path cannot hold.
fn sqlite_uri(p: &Path, params: &str) -> String {
    let mut s = String::from("file:");
    for b in p.to_string_lossy().bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{s}?{params}")
}

impl DbSelect {
    fn sql(&self) -> &str {
        match self {
            DbSelect::Mysql { sql, .. }
            | DbSelect::Pgsql { sql, .. }
            | DbSelect::Sqlite { sql, .. } => sql,
        }
    }
    fn script(&self) -> String {
        match self {
            DbSelect::Mysql { conn, .. } => format!(
                "c=$(command -v mariadb || command -v mysql) || {{ echo 'ocmigrate: neither mariadb nor mysql (the client) is installed' >&2; exit {NO_TOOL}; }}\n\
                 IFS= read -r MYSQL_PWD || true; export MYSQL_PWD\n\
                 exec \"$c\" -N -B --default-character-set=utf8mb4 '--init-command=SET SESSION TRANSACTION READ ONLY' {} -- {}",
                shell_words(&conn.mysql_args()),
                shell_quote(&conn.name)
            ),
            DbSelect::Pgsql { conn, .. } => format!(
                "command -v psql >/dev/null || {{ echo 'ocmigrate: psql is not installed' >&2; exit {NO_TOOL}; }}\n\
                 IFS= read -r PGPASSWORD || true; export PGPASSWORD\n\
                 PGOPTIONS='-c default_transaction_read_only=on -c TimeZone=UTC -c DateStyle=ISO -c extra_float_digits=3 -c bytea_output=hex'; export PGOPTIONS\n\
                 cd / && exec psql -X -q -A -t -v ON_ERROR_STOP=1 {} --dbname={}",
                shell_words(&conn.pg_args()),
                shell_quote(&conn.name)
            ),
            DbSelect::Sqlite { db, .. } => format!(
                "command -v sqlite3 >/dev/null || {{ echo 'ocmigrate: sqlite3 (the command-line shell) is not installed' >&2; exit {NO_TOOL}; }}\n\
                 IFS= read -r x || true\n\
                 exec sqlite3 -readonly -batch -bail {}",
                shell_quote(&sqlite_uri(db, "immutable=1&mode=ro"))
            ),
        }
    }
}

impl SourceHost {
    /// Start a streaming read-only dump of the database (see [`DumpCommand`]). The caller writes
    /// the password line to stdin (then closes it), reads the stream from stdout, drains stderr,
    /// and waits.
    pub fn spawn_dump(&self, d: &DumpCommand) -> Result<std::process::Child, Failure> {
        self.r.host.spawn(&format!(
            "exec bash -o pipefail -c {}",
            shell_quote(&d.script())
        ))
    }

    /// Run a read-only query (see [`DbSelect`]); `password` is handed to the client through its
    /// environment.
    pub fn db_select(&self, q: &DbSelect, password: &[u8]) -> Result<Ran, Failure> {
        if !is_select_only(q.sql()) {
            return Err(Failure::check(format!(
                "{}: refused a database statement on the source that is not a SELECT",
                self.label()
            )));
        }
        let mut input = password.to_vec();
        input.push(b'\n');
        input.extend_from_slice(q.sql().as_bytes());
        input.push(b'\n');
        self.r.host.run_with_input(&q.script(), &input)
    }
}

#[cfg(test)]
mod db_tests {
    use super::*;

    #[test]
    fn select_only() {
        assert!(is_select_only(
            "SELECT 1; show tables;\n WITH x AS (SELECT 1) SELECT * FROM x;"
        ));
        assert!(!is_select_only("SELECT 1; DROP TABLE x"));
        assert!(!is_select_only("update t set a=1"));
    }

    #[test]
    fn dump_scripts_carry_no_password_and_read_it_from_stdin() {
        let conn = DbConn {
            host: Some("localhost".into()),
            user: "oc_admin".into(),
            name: "owncloud".into(),
            ..Default::default()
        };
        let s = DumpCommand::Mysql {
            conn: conn.clone(),
            lock_tables: false,
            part: MysqlPart::All,
            charset: "utf8mb4".into(),
            compress: Compress::Zstd,
        }
        .script();
        assert!(s.contains("IFS= read -r MYSQL_PWD"));
        assert!(s.contains("--single-transaction"));
        assert!(!s.contains("--password"));
        let r = DumpCommand::Mysql {
            conn: conn.clone(),
            lock_tables: false,
            part: MysqlPart::Refresh {
                tables: vec!["oc_new".into()],
                rows: vec![
                    KeyRanges {
                        table: "oc_filecache".into(),
                        key: "fileid".into(),
                        ranges: vec![(1, 4), (9, 9), (12, 12)],
                    },
                    KeyRanges {
                        table: "oc_untouched".into(),
                        key: "id".into(),
                        ranges: vec![],
                    },
                ],
            },
            charset: "utf8mb4".into(),
            compress: Compress::None,
        }
        .script();
        assert!(r.contains("IFS= read -r MYSQL_PWD"), "{r}");
        assert!(r.contains("--skip-triggers --quick"), "{r}");
        assert!(r.contains("owncloud oc_new"), "{r}");
        assert!(
            r.contains("--where='`fileid` IN (9,12) OR `fileid` BETWEEN 1 AND 4'"),
            "{r}"
        );
        assert!(!r.contains("oc_untouched"), "{r}");
        assert_eq!(r.matches("\"$c\" $x").count(), 2, "{r}");
        assert_eq!(
            sqlite_uri(Path::new("/a b/x?.db"), "mode=ro"),
            "file:/a%20b/x%3F.db?mode=ro"
        );
    }
}
