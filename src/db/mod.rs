//! The database leg: copy the instance's database from the source to the target, and verify it.
//!
//! Owns: the database settings of the source's config ([`crate::instance::DbParams`], read through
//! [`crate::inventory::read_instance`]), preparing the target (database and user created through the target's
//! admin access when missing), the streamed copy (MariaDB/MySQL dump → import, PostgreSQL
//! `pg_dump` → `pg_restore`, the SQLite files as a tar stream), the import marker in the state
//! folder that makes a failed import resumable, and the per-table verification ([`verify`]).
//!
//! Must never: write anything on the source (the source is only read, through
//! `SourceHost::spawn_dump` and `SourceHost::db_select`, which accept read-only commands only);
//! put a password on a command line, in a log, in the journal or in a report (passwords live in
//! [`Secret`] and reach the tools on stdin, then through their environment); import into a
//! target database that has tables unless `[database] replace_target = true` or the tables are a
//! failed import of our own (the marker says so); checkpoint a SQLite WAL on the source.

mod mysql;
mod pgsql;
mod refresh;
mod sqlite;
mod verify;

pub use verify::{
    compare_sides, source_side, target_side, verify, verify_between, DbVerification, Figures,
    SourceFigures, TableCheck,
};
pub(crate) use verify::{figures_from_lines, nonempty_lines};

pub use crate::instance::{DbKind, DbParams, Secret};

use crate::exit::{ExitKind, Failure};
use crate::host::{
    shell_quote, Compress, DbConn, DbSelect, DumpCommand, Probe, SourceHost, TargetHost,
};
use crate::inventory;
use crate::migration::Migration;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Instant;

/// How the database tools reach `p`'s server (the password travels apart, on stdin).
pub(crate) fn conn(p: &DbParams) -> DbConn {
    DbConn {
        host: Some(p.host.clone()).filter(|h| !h.is_empty()),
        port: p.port,
        socket: p.socket.clone(),
        user: p.user.clone(),
        name: p.name.clone(),
    }
}

/// The SQLite database file (`<datadirectory>/<dbname>.db`).
pub(crate) fn sqlite_file(p: &DbParams) -> PathBuf {
    p.sqlite_file.clone().unwrap_or_default()
}

/// True when config.php's `dbhost` names this very machine (socket, localhost, loopback).
fn host_is_local(p: &DbParams) -> bool {
    p.socket.is_some()
        || matches!(p.host.as_str(), "" | "localhost" | "127.0.0.1" | "::1")
        || p.host.starts_with('/')
}

/// The web user of the source: the configured one, else the owner of config.php.
pub fn source_web_user(src: &SourceHost, configured: Option<&str>) -> Result<String, Failure> {
    match configured {
        Some(u) => Ok(u.to_string()),
        None => inventory::config_owner(src),
    }
}

/// The database settings of the source's config, merged as ownCloud does (read by `php` there
/// as the web user, or by ocmigrate's own reader when PHP cannot run; see
/// [`inventory::read_instance`]).
pub fn read_params(src: &SourceHost, web_user: &str) -> Result<DbParams, Failure> {
    let p = inventory::read_instance(src, web_user)?.instance.db;
    if p.password.expose().contains(&b'\n') || p.password.expose().contains(&0) {
        return Err(Failure::usage(format!(
            "{}: the database password in config.php contains a newline or NUL byte",
            src.label()
        ))
        .hint("ocmigrate hands the password to the tools as one line; change the password"));
    }
    Ok(p)
}

/// How the copy is done; the defaults are what the migration file says.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// Import even when the target database has tables (they are dropped first).
    pub replace_target: bool,
    /// `socket` (root through the unix socket / `postgres` through peer authentication), or the
    /// path of a MySQL option file on the target holding an admin's credentials.
    pub target_admin: String,
    /// The state folder (the import marker lives there).
    pub state_dir: PathBuf,
    /// The source's web user (default: owner of config.php).
    pub web_user: Option<String>,
    /// Compression on the wire; `None`: zstd when both hosts have it, else gzip, else none.
    pub compress: Option<Compress>,
    /// PostgreSQL: `pg_dump -Fc | pg_restore` (default) or plain SQL into `psql`.
    pub pg_plain: bool,
    /// Called once every row is in the target's database (MySQL/MariaDB, before its secondary
    /// indexes are built), for reads that may start then.
    pub rows_loaded: Option<RowsLoaded>,
}

/// A callback of [`CopyOptions::rows_loaded`].
#[derive(Clone)]
pub struct RowsLoaded(pub std::sync::Arc<dyn Fn() + Send + Sync>);

impl std::fmt::Debug for RowsLoaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RowsLoaded")
    }
}

impl CopyOptions {
    pub fn for_migration(m: &Migration) -> CopyOptions {
        CopyOptions {
            replace_target: m.config.database.replace_target,
            target_admin: m.config.database.target_admin.clone(),
            state_dir: m.state_dir(),
            web_user: m.config.source.web_user.clone(),
            compress: None,
            // For measurements (bench/db): `OCMIGRATE_PG_FORMAT=plain`.
            pg_plain: std::env::var("OCMIGRATE_PG_FORMAT").as_deref() == Ok("plain"),
            rows_loaded: None,
        }
    }
}

/// What a copy did, for the journal and the report (no secrets).
#[derive(Debug, Clone, Serialize)]
pub struct CopyReport {
    pub kind: DbKind,
    pub database: String,
    /// How it was done, e.g. `mariadb-dump --single-transaction | zstd → mariadb`.
    pub method: String,
    pub compress: String,
    pub bytes_on_wire: u64,
    pub seconds: f64,
    pub created_database: bool,
    pub created_user: bool,
    /// The target database had tables and was replaced.
    pub replaced: bool,
    /// SQLite: the result of `PRAGMA integrity_check` on the target.
    pub integrity: Option<String>,
    /// What worked but needs a look (e.g. config.php's user cannot log in on the target yet).
    pub warnings: Vec<String>,
    /// Where the seconds went (phase → seconds), for the journal and `bench/downtime`.
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub phases_s: serde_json::Value,
    /// The copy ahead: whether the target's rows were saved for the window's refresh.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_rows_saved: Option<String>,
}

/// Copy the database of the migration's source to its target.
pub fn copy(m: &Migration) -> Result<CopyReport, Failure> {
    copy_between(&m.source, &m.target, &CopyOptions::for_migration(m))
}

/// Copy the source instance's database to the target (see the module comment).
pub fn copy_between(
    src: &SourceHost,
    tgt: &TargetHost,
    opts: &CopyOptions,
) -> Result<CopyReport, Failure> {
    let mut laps = crate::laps::Laps::start();
    let web_user = source_web_user(src, opts.web_user.as_deref())?;
    let params = read_params(src, &web_user)?;
    laps.lap("read_params");
    copy_with(src, tgt, opts, &params, laps)
}

/// [`copy_between`] with the source's database settings already read; `laps` gets the phases.
pub fn copy_with(
    src: &SourceHost,
    tgt: &TargetHost,
    opts: &CopyOptions,
    params: &DbParams,
    mut laps: crate::laps::Laps,
) -> Result<CopyReport, Failure> {
    if params.kind != DbKind::Sqlite && !host_is_local(params) {
        return Err(Failure::usage(format!(
            "{}: the database is on another server ({}): both instances would use the same database",
            src.label(),
            params.host
        ))
        .hint("a database on its own server is not copied by ocmigrate; move it with that server's tools, or point dbhost at a local server"));
    }
    let compress = match opts.compress {
        Some(c) => c,
        None => choose_compress(src, tgt)?,
    };
    laps.lap("compress_choice");
    let mut r = match params.kind {
        DbKind::Mysql => mysql::copy(src, tgt, params, opts, compress, &mut laps),
        DbKind::Pgsql => pgsql::copy(src, tgt, params, opts, compress),
        DbKind::Sqlite => sqlite::copy(src, tgt, params, opts, compress),
    }?;
    laps.lap("copy");
    r.phases_s = laps.figure();
    Ok(r)
}

/// True when the import marker says the target's database `database` holds a copy of ours (done,
/// or cut short: a refresh checks every table's definition and rows either way).
pub fn holds_our_copy(opts: &CopyOptions, kind: DbKind, database: &str, tgt: &TargetHost) -> bool {
    read_marker(&opts.state_dir).is_some_and(|m| m.is_for(kind, database, tgt.label()))
}

/// A refresh of the target's copy, with both sides' figures for the verification.
#[derive(Debug)]
pub struct Refreshed {
    pub report: CopyReport,
    pub source: SourceFigures,
    pub target: std::collections::BTreeMap<String, Figures>,
}

/// Bring the target's earlier copy of ours up to the source's state by copying only what
/// differs (MariaDB/MySQL; see `mysql.rs`). `None` when there is no such copy or it cannot be
/// refreshed: then a whole copy ([`copy_with`], replacing ours) is the way.
pub fn refresh_with(
    src: &SourceHost,
    tgt: &TargetHost,
    opts: &CopyOptions,
    params: &DbParams,
    mut laps: crate::laps::Laps,
) -> Result<Option<Refreshed>, Failure> {
    if params.kind != DbKind::Mysql
        || !host_is_local(params)
        || !holds_our_copy(opts, params.kind, &params.name, tgt)
    {
        return Ok(None);
    }
    let Some(r) = mysql::refresh(src, tgt, params, opts, opts.compress, &mut laps)? else {
        return Ok(None);
    };
    let mut report = r.report;
    report.phases_s = laps.figure();
    Ok(Some(Refreshed {
        report,
        source: SourceFigures(r.source, "SELECT in a read-only session, row by row".into()),
        target: r.target,
    }))
}

/// The copy made while the source is still online (`migrate`'s sync step), so that the window
/// only carries a refresh: MariaDB/MySQL only (`None` for others, or when `[database] precopy`
/// is off). Refreshes a copy of ours; else copies whole (refusing a target database that has
/// tables of someone else's, as the window's copy would).
pub fn precopy(m: &Migration) -> Result<Option<CopyReport>, Failure> {
    if !m.config.database.precopy {
        return Ok(None);
    }
    let opts = CopyOptions::for_migration(m);
    let (src, tgt) = (&m.source, &m.target);
    let mut laps = crate::laps::Laps::start();
    let web_user = source_web_user(src, opts.web_user.as_deref())?;
    let params = read_params(src, &web_user)?;
    laps.lap("read_params");
    if params.kind != DbKind::Mysql || !host_is_local(&params) {
        return Ok(None);
    }
    let mut r = match refresh_with(src, tgt, &opts, &params, laps)? {
        Some(r) => r.report,
        None => {
            let mut opts = opts.clone();
            if holds_our_copy(&opts, params.kind, &params.name, tgt) {
                // Ours, but not refreshable: copy it again.
                opts.replace_target = true;
            }
            copy_with(src, tgt, &opts, &params, crate::laps::Laps::start())?
        }
    };
    // The target's rows as this copy left them, for the window's refresh (outside the window).
    let t = Instant::now();
    r.target_rows_saved = match mysql::save_target_rows(tgt, &opts, &params.name) {
        Ok(Ok(())) => Some(format!("saved in {:.1} s", t.elapsed().as_secs_f64())),
        Ok(Err(why)) => Some(format!("not saved: {why}")),
        Err(e) => Some(format!("not saved: {}", e.message)),
    };
    Ok(Some(r))
}

/// zstd when both hosts have it, else gzip when both have it, else none.
pub fn choose_compress(src: &SourceHost, tgt: &TargetHost) -> Result<Compress, Failure> {
    for (tool, c) in [("zstd", Compress::Zstd), ("gzip", Compress::Gzip)] {
        let p = Probe::HasCommand(tool.into());
        if src.probe(&p)?.ok() && tgt.probe(&p)?.ok() {
            return Ok(c);
        }
    }
    Ok(Compress::None)
}

pub(crate) fn compress_name(c: Compress) -> &'static str {
    match c {
        Compress::Zstd => "zstd",
        Compress::Gzip => "gzip",
        Compress::None => "none",
    }
}

// ---------------------------------------------------------------------------------------------
// The import marker: a small JSON file in the state folder, written before an import starts and
// marked done after it succeeded. Tables found in the target database are ours to replace only
// when the marker says an import of this database into this target started and did not finish.

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImportMarker {
    pub kind: String,
    pub database: String,
    pub target: String,
    /// `started` or `done`.
    pub state: String,
    pub at: u64,
}

impl ImportMarker {
    /// True when the marker speaks of this database of this kind in this target.
    pub fn is_for(&self, kind: DbKind, database: &str, target: &str) -> bool {
        self.kind == format!("{kind:?}").to_lowercase()
            && self.database == database
            && self.target == target
    }
}

const MARKER_FILE: &str = "db-import.json";

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn read_marker(state_dir: &Path) -> Option<ImportMarker> {
    let text = std::fs::read_to_string(state_dir.join(MARKER_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

pub(crate) fn write_marker(state_dir: &Path, m: &ImportMarker) -> Result<(), Failure> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let fail = |e: std::io::Error| {
        Failure::usage(format!(
            "cannot write the import marker in {}: {e}",
            state_dir.display()
        ))
        .hint("the state folder beside the migration file must be writable")
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state_dir)
        .map_err(fail)?;
    let tmp = state_dir.join(format!(".{MARKER_FILE}.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(fail)?;
    f.write_all(
        serde_json::to_string_pretty(m)
            .unwrap_or_default()
            .as_bytes(),
    )
    .and_then(|_| f.sync_all())
    .map_err(fail)?;
    std::fs::rename(&tmp, state_dir.join(MARKER_FILE)).map_err(fail)
}

/// Decide whether an import may go into a target database that has `tables` tables. Returns
/// whether the existing tables are to be replaced.
pub(crate) fn may_import(
    opts: &CopyOptions,
    kind: DbKind,
    database: &str,
    target_label: &str,
    tables: u64,
) -> Result<bool, Failure> {
    if tables == 0 {
        return Ok(false);
    }
    if opts.replace_target {
        return Ok(true);
    }
    if let Some(m) = read_marker(&opts.state_dir) {
        if m.is_for(kind, database, target_label) {
            if m.state == "started" {
                // A failed (or interrupted) import of ours: replace it.
                return Ok(true);
            }
            return Err(Failure::check(format!(
                "{target_label}: the database '{database}' was already imported by ocmigrate ({} tables there)",
                tables
            ))
            .hint("nothing to do; to import again, set `replace_target = true` under [database] in the migration file"));
        }
    }
    Err(Failure::check(format!(
        "{target_label}: the target database '{database}' already has {tables} tables: refusing to import over them"
    ))
    .hint("check that this is the right target; to drop those tables and import, set `replace_target = true` under [database] in the migration file"))
}

/// Record in the state folder that an import of `database` into `tgt` is `started` or `done`.
pub(crate) fn mark(
    opts: &CopyOptions,
    kind: DbKind,
    database: &str,
    tgt: &TargetHost,
    state: &str,
) -> Result<(), Failure> {
    if state == "started" {
        // What we write next changes the target's tables: the rows saved of them are no longer
        // what it holds.
        mysql::forget_target_rows(opts)?;
    }
    write_marker(&opts.state_dir, &marker(kind, database, tgt.label(), state))
}

pub(crate) fn marker(kind: DbKind, database: &str, target: &str, state: &str) -> ImportMarker {
    ImportMarker {
        kind: format!("{kind:?}").to_lowercase(),
        database: database.to_string(),
        target: target.to_string(),
        state: state.to_string(),
        at: now_secs(),
    }
}

// ---------------------------------------------------------------------------------------------
// Streaming: the source's dump (stdout of one ssh process) relayed into the target's import
// (stdin of another), with both stderrs drained on their own threads.

/// The end of a relay: both exit statuses and stderrs, and the bytes that went through.
pub(crate) struct Relayed {
    pub src_status: Option<i32>,
    pub src_err: String,
    pub tgt_status: Option<i32>,
    pub tgt_err: String,
    pub tgt_out: String,
    pub bytes: u64,
}

fn drain<R: Read + Send + 'static>(r: Option<R>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(mut r) = r {
            let _ = r.read_to_end(&mut s);
        }
        // Keep the tail: a failing import may print much.
        let s = String::from_utf8_lossy(&s).into_owned();
        if s.len() > 8000 {
            let cut = s.len() - 8000;
            let cut = (cut..s.len())
                .find(|i| s.is_char_boundary(*i))
                .unwrap_or(cut);
            s[cut..].to_string()
        } else {
            s
        }
    })
}

/// Relay `src`'s stdout into `tgt`'s stdin. `src_input` is written to the source's stdin first
/// (the password line), `tgt_input` to the target's stdin before the stream.
pub(crate) fn relay(mut src: Child, src_input: &[u8], mut tgt: Child, tgt_input: &[u8]) -> Relayed {
    if let Some(mut i) = src.stdin.take() {
        let _ = i.write_all(src_input);
        let _ = i.write_all(b"\n");
    }
    let src_err = drain(src.stderr.take());
    let tgt_err = drain(tgt.stderr.take());
    let tgt_out = drain(tgt.stdout.take());
    let mut bytes = 0u64;
    let mut broke = false;
    if let (Some(mut out), Some(mut inp)) = (src.stdout.take(), tgt.stdin.take()) {
        if inp.write_all(tgt_input).is_err() {
            broke = true;
        }
        let mut buf = vec![0u8; 1 << 18];
        while !broke {
            match out.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if inp.write_all(&buf[..n]).is_err() {
                        broke = true;
                    }
                    bytes += n as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        drop(inp);
        if broke {
            // The import ended early: stop the dump.
            let _ = src.kill();
        }
    }
    let tgt_status = tgt.wait().ok().and_then(|s| s.code());
    let src_status = src.wait().ok().and_then(|s| s.code());
    Relayed {
        src_status: if broke && src_status.is_none() {
            Some(-1)
        } else {
            src_status
        },
        src_err: src_err.join().unwrap_or_default(),
        tgt_status,
        tgt_err: tgt_err.join().unwrap_or_default(),
        tgt_out: tgt_out.join().unwrap_or_default(),
        bytes,
    }
}

/// The source's dump (`dump`, given `password` on its stdin) streamed into `import` on the target
/// (run under bash with pipefail), both checked; returns the relay (bytes, the import's output).
pub(crate) fn stream(
    src: &SourceHost,
    tgt: &TargetHost,
    dump: &DumpCommand,
    import: &str,
    password: &[u8],
    (dump_what, import_what): (&str, &str),
) -> Result<Relayed, Failure> {
    let s = src.spawn_dump(dump)?;
    let g = tgt.spawn(&bash(import))?;
    let r = relay(s, password, g, b"");
    check_relay(src, tgt, &r, dump_what, import_what)?;
    Ok(r)
}

/// A read-only query on the source's database (see [`SourceHost::db_select`]); its output, or
/// the failure that names the problem and the fix.
pub(crate) fn source_sql(
    src: &SourceHost,
    p: &DbParams,
    sql: &str,
    what: &str,
) -> Result<String, Failure> {
    let sql = sql.to_string();
    let q = match p.kind {
        DbKind::Mysql => DbSelect::Mysql { conn: conn(p), sql },
        DbKind::Pgsql => DbSelect::Pgsql { conn: conn(p), sql },
        DbKind::Sqlite => DbSelect::Sqlite {
            db: sqlite_file(p),
            sql,
        },
    };
    let r = src.db_select(&q, p.password.expose())?;
    if !r.ok() {
        return Err(tool_failure(
            src.label(),
            End::Source,
            what,
            r.status,
            &scrub(&r.stderr_text(), p.password.expose()),
        ));
    }
    Ok(r.stdout_text())
}

/// A database tool's script on the target with `input` on its stdin; its output, or the failure
/// (with `secret` scrubbed from the tool's message).
pub(crate) fn target_query(
    tgt: &TargetHost,
    script: &str,
    input: &[u8],
    what: &str,
    secret: &[u8],
) -> Result<String, Failure> {
    let r = tgt.run_with_input(script, input)?;
    if !r.ok() {
        return Err(tool_failure(
            tgt.label(),
            End::Target,
            what,
            r.status,
            &scrub(&r.stderr_text(), secret),
        ));
    }
    Ok(r.stdout_text())
}

/// Try config.php's credentials on the target the way ownCloud will log in: `script` reads the
/// password from its first stdin line. `Some(warning)` when the login fails.
pub(crate) fn login_warning(
    tgt: &TargetHost,
    script: &str,
    password: &[u8],
    what: impl FnOnce(&str) -> String,
) -> Result<Option<String>, Failure> {
    let mut pw = password.to_vec();
    pw.push(b'\n');
    let r = tgt.run_with_input(script, &pw);
    for b in pw.iter_mut() {
        // A volatile write, so the wipe is not optimised away.
        unsafe { std::ptr::write_volatile(b, 0) };
    }
    let r = r?;
    Ok((!r.ok()).then(|| what(&scrub(&r.stderr_text(), password))))
}

/// `text` with every occurrence of `secret` (and its SQL-escaped forms) replaced by `***`.
pub(crate) fn scrub(text: &str, secret: &[u8]) -> String {
    if secret.is_empty() {
        return text.to_string();
    }
    let s = String::from_utf8_lossy(secret);
    let mut out = text.to_string();
    for form in [
        s.to_string(),
        s.replace('\\', "\\\\").replace('\'', "''"),
        s.replace('\'', "''"),
    ] {
        if !form.is_empty() {
            out = out.replace(&form, "***");
        }
    }
    out
}

/// Wrap a target script so that it runs under bash with `pipefail`.
pub(crate) fn bash(script: &str) -> String {
    format!("exec bash -o pipefail -c {}", shell_quote(script))
}

/// `sudo -n` when the target login is not root (admin access through the socket needs root).
pub(crate) fn as_root(tgt: &TargetHost) -> &'static str {
    if tgt.login_user() == "root" {
        ""
    } else {
        "sudo -n "
    }
}

// ---------------------------------------------------------------------------------------------
// Errors: the database tools' messages turned into what to do.

/// Which end said it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    Source,
    Target,
}

/// Turn a database tool's failure into a `Failure` that names the problem and the fix.
pub(crate) fn tool_failure(
    label: &str,
    end: End,
    what: &str,
    status: Option<i32>,
    stderr: &str,
) -> Failure {
    let e = stderr.trim();
    let last = e
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    let low = e.to_ascii_lowercase();
    let msg = |m: &str| format!("{label}: {what}: {m}");
    let side = if end == End::Source {
        "source"
    } else {
        "target"
    };
    if status == Some(crate::host::NO_TOOL) || low.contains("command not found") {
        let which = e
            .lines()
            .find(|l| l.contains("ocmigrate:"))
            .unwrap_or(last)
            .trim_start_matches("ocmigrate: ");
        return Failure::check(msg(&format!("a database tool is missing: {which}"))).hint(format!(
            "install the database client tools on the {side} (Debian: apt install mariadb-client, or postgresql-client of the server's major version; sqlite3 for SQLite; zstd is optional)"
        ));
    }
    if low.contains("access denied for user") || low.contains("password authentication failed") {
        let hint = if end == End::Source {
            "the source's config.php holds a dbuser/dbpassword that the database server refuses: ownCloud itself cannot connect either; fix config.php or the account"
        } else {
            "the target's admin access was refused: connect as root (socket authentication) or set [database] target_admin to a MySQL option file with an admin's credentials"
        };
        return Failure::check(msg(&format!(
            "the database refused the credentials ({last})"
        )))
        .hint(hint);
    }
    if low.contains("peer authentication failed") || low.contains("role \"root\" does not exist") {
        return Failure::check(msg(&format!("the database refused the connection ({last})")))
            .hint("ocmigrate runs the PostgreSQL admin tools as the postgres user through peer authentication: connect to the target as root");
    }
    if low.contains("can't connect")
        || low.contains("could not connect")
        || low.contains("connection refused")
        || low.contains("no such file or directory") && low.contains("socket")
        || low.contains("is the server running")
    {
        return Failure::unreachable(msg(&format!(
            "the database server cannot be reached ({last})"
        )))
        .hint(format!(
            "start the database server on the {side} and check dbhost in config.php"
        ));
    }
    if low.contains("server version mismatch") || low.contains("unsupported version") {
        return Failure::check(msg(&format!("client and server versions do not fit ({last})")))
            .hint("install the PostgreSQL client tools of the newer of the two server versions (pg_dump must not be older than the source server, pg_restore not older than pg_dump)");
    }
    if low.contains("unknown collation")
        || low.contains("unknown character set")
        || low.contains("incorrect string value")
        || low.contains("character set")
        || low.contains("invalid byte sequence")
    {
        return Failure::check(msg(&format!("character set trouble ({last})")))
            .hint("the target server does not know the source's character set or collation (e.g. utf8mb4_0900_ai_ci from MySQL 8 on MariaDB): use a target server at least as new as the source, or convert the source with `occ db:convert-mysql-charset` before migrating");
    }
    if low.contains("no space left")
        || low.contains("errno: 28")
        || low.contains("errcode: 28")
        || low.contains("disk full")
        || low.contains("is full")
        || low.contains("could not extend file")
    {
        let what = if last.to_ascii_lowercase().contains("no space left") {
            last.to_string()
        } else {
            format!("No space left on device ({last})")
        };
        return Failure::check(msg(&format!("the disk is full: {what}")))
            .hint(format!("free space on the {side}'s disk that holds the database (the database server's data directory; for SQLite the instance's data directory) and run the same command again (the import starts over); during `migrate`, `ocmigrate rollback` puts the source back in service instead"));
    }
    if low.contains("unknown database") || low.contains("does not exist") {
        return Failure::check(msg(&format!("the database does not exist ({last})")))
            .hint("check dbname in config.php");
    }
    if low.contains("uses an unknown")
        || low.contains("unknown table engine")
        || low.contains("unknown storage engine")
    {
        return Failure::check(msg(&format!("the target server lacks a storage engine ({last})")))
            .hint("enable that storage engine on the target server, or convert the tables on the source first");
    }
    Failure::new(
        ExitKind::CheckFailed,
        msg(&format!(
            "failed (exit {}): {}",
            status.map(|s| s.to_string()).unwrap_or_else(|| "signal".into()),
            if last.is_empty() { "no message" } else { last }
        )),
    )
    .hint("see the message above; the database leg can be run again: a failed import of ours is replaced")
}

/// Check a relay's outcome; `Ok(())` when both ends succeeded.
pub(crate) fn check_relay(
    src: &SourceHost,
    tgt: &TargetHost,
    r: &Relayed,
    dump_what: &str,
    import_what: &str,
) -> Result<(), Failure> {
    // The target's error is usually the cause when both failed (the dump dies of a broken pipe).
    if r.tgt_status != Some(0) {
        return Err(tool_failure(
            tgt.label(),
            End::Target,
            import_what,
            r.tgt_status,
            &format!("{}\n{}", r.tgt_out, r.tgt_err),
        ));
    }
    if r.src_status != Some(0) {
        return Err(tool_failure(
            src.label(),
            End::Source,
            dump_what,
            r.src_status,
            &r.src_err,
        ));
    }
    Ok(())
}

pub(crate) fn elapsed(t: Instant) -> f64 {
    (t.elapsed().as_secs_f64() * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_fix() {
        let f = tool_failure(
            "source old",
            End::Source,
            "dump",
            Some(2),
            "mariadb-dump: Got error: 1045: \"Access denied for user 'oc'@'localhost' (using password: YES)\"",
        );
        assert!(f.message.contains("refused the credentials"));
        assert!(f.hint.unwrap().contains("config.php"));
        let f = tool_failure(
            "t",
            End::Target,
            "import",
            Some(1),
            "ERROR 1273 (HY000) at line 25: Unknown collation: 'utf8mb4_0900_ai_ci'",
        );
        assert!(f.message.contains("character set"));
        let f = tool_failure("t", End::Target, "import", Some(1), "ERROR 3 (HY000) at line 1: Error writing file './x' (Errcode: 28 \"No space left on device\")");
        assert!(f.message.contains("disk is full"));
        let f = tool_failure(
            "target new",
            End::Target,
            "writing the SQLite copy",
            Some(2),
            "tar: owncloud.db: Cannot write: No space left on device\ntar: Exiting with failure status due to previous errors",
        );
        assert!(
            f.message.starts_with(
                "target new: writing the SQLite copy: the disk is full: No space left on device"
            ),
            "{}",
            f.message
        );
        assert!(f.hint.unwrap().contains("rollback"));
        let f = tool_failure(
            "t",
            End::Source,
            "dump",
            Some(127),
            "ocmigrate: pg_dump is not installed",
        );
        assert!(f.message.contains("pg_dump is not installed"));
    }

    #[test]
    fn refuses_tables_unless_told_or_ours() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = CopyOptions {
            replace_target: false,
            target_admin: "socket".into(),
            state_dir: dir.path().join("s"),
            web_user: None,
            compress: None,
            pg_plain: false,
            rows_loaded: None,
        };
        assert!(!may_import(&o, DbKind::Mysql, "owncloud", "target new", 0).unwrap());
        let e = may_import(&o, DbKind::Mysql, "owncloud", "target new", 3).unwrap_err();
        assert!(e.message.contains("already has 3 tables"));
        write_marker(
            &o.state_dir,
            &marker(DbKind::Mysql, "owncloud", "target new", "started"),
        )
        .unwrap();
        assert!(may_import(&o, DbKind::Mysql, "owncloud", "target new", 3).unwrap());
        write_marker(
            &o.state_dir,
            &marker(DbKind::Mysql, "owncloud", "target new", "done"),
        )
        .unwrap();
        assert!(may_import(&o, DbKind::Mysql, "owncloud", "target new", 3).is_err());
        o.replace_target = true;
        assert!(may_import(&o, DbKind::Mysql, "owncloud", "target new", 3).unwrap());
    }
}
