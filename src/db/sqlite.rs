//! SQLite: the database file and its `-wal` and `-shm` files streamed as tar from the source (read
//! as files, never opened there, so nothing is checkpointed) into a private temporary folder beside
//! the target's copy, checked with `PRAGMA integrity_check`, then renamed into place. (The transfer
//! engine will carry the files later; this is the database leg's own copy until then.)

use super::{
    compress_name, elapsed, figures_from_lines, mark, may_import, nonempty_lines, source_sql,
    sqlite_file, stream, target_query, CopyOptions, CopyReport, DbKind, DbParams, Figures,
};
use crate::exit::Failure;
use crate::host::{shell_quote, Compress, DumpCommand, Probe, SourceHost, TargetHost};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

const NEED_SQLITE: &str = "command -v sqlite3 >/dev/null || { echo 'ocmigrate: sqlite3 (the command-line shell) is not installed' >&2; exit 127; }";

/// Stream `db` (+ `-wal`, `-shm`) from the source into folder `dest` on the target under the same
/// file name: written under a temporary folder, checked, renamed. Returns (integrity, bytes).
pub fn copy_files(
    src: &SourceHost,
    tgt: &TargetHost,
    db: &Path,
    dest: &Path,
    compress: Compress,
) -> Result<(String, u64), Failure> {
    let name = db
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let script = format!(
        "set -e\n{NEED_SQLITE}\nd={d}; n={n}\n\
         made=; if [ ! -d \"$d\" ]; then mkdir -p -m 0770 \"$d\"; made=1; fi\n\
         t=$(mktemp -d \"$d/.ocmigrate-sqlite.XXXXXX\")\n\
         trap 'rm -rf \"$t\"' EXIT\n\
         {unpipe}tar -xf - -C \"$t\"\n\
         [ -f \"$t/$n\" ] || {{ echo \"ocmigrate: the stream from the source held no $n\" >&2; exit 2; }}\n\
         o=$(stat -c %u:%g \"$t/$n\")\n\
         r=$(sqlite3 \"$t/$n\" 'PRAGMA integrity_check' 2>&1) || true\n\
         if [ \"$r\" != ok ]; then echo \"ocmigrate: PRAGMA integrity_check on the copy says: $r\" >&2; exit 3; fi\n\
         for s in -wal -shm; do if [ -e \"$t/$n$s\" ]; then chown \"$o\" \"$t/$n$s\"; fi; done\n\
         rm -f \"$d/$n-wal\" \"$d/$n-shm\"\n\
         mv -f \"$t/$n\" \"$d/$n\"\n\
         for s in -wal -shm; do if [ -e \"$t/$n$s\" ]; then mv -f \"$t/$n$s\" \"$d/$n$s\"; fi; done\n\
         if [ -n \"$made\" ]; then chown \"$o\" \"$d\"; fi\n\
         echo \"integrity=$r\"",
        d = shell_quote(&dest.to_string_lossy()),
        n = shell_quote(&name),
        unpipe = compress.unpipe()
    );
    let dump = DumpCommand::SqliteFiles {
        db: db.to_path_buf(),
        compress,
    };
    let r = stream(
        src,
        tgt,
        &dump,
        &script,
        b"",
        ("reading the SQLite files", "writing the SQLite copy"),
    )?;
    let integrity = r
        .tgt_out
        .lines()
        .find_map(|l| l.strip_prefix("integrity="))
        .unwrap_or("?")
        .to_string();
    Ok((integrity, r.bytes))
}

/// Tables in the target's SQLite database at `file` (0 when there is no file).
fn target_tables(tgt: &TargetHost, file: &Path) -> Result<u64, Failure> {
    let script = format!(
        "f={}; if [ -s \"$f\" ]; then {NEED_SQLITE}; exec sqlite3 -readonly -batch \"$f\" \"SELECT count(*) FROM sqlite_master WHERE type = 'table'\"; else echo 0; fi",
        shell_quote(&file.to_string_lossy())
    );
    Ok(target_query(
        tgt,
        &script,
        b"",
        "reading the target's SQLite database",
        b"",
    )?
    .trim()
    .parse()
    .unwrap_or(0))
}

pub(crate) fn copy(
    src: &SourceHost,
    tgt: &TargetHost,
    p: &DbParams,
    opts: &CopyOptions,
    compress: Compress,
) -> Result<CopyReport, Failure> {
    let file = sqlite_file(p);
    let db = file.to_string_lossy().into_owned();
    let tables = target_tables(tgt, &file)?;
    let replace = may_import(opts, DbKind::Sqlite, &db, tgt.label(), tables)?;
    mark(opts, DbKind::Sqlite, &db, tgt, "started")?;
    let t = Instant::now();
    let (integrity, bytes) = copy_files(
        src,
        tgt,
        &file,
        file.parent().unwrap_or(Path::new("/")),
        compress,
    )?;
    let seconds = elapsed(t);
    mark(opts, DbKind::Sqlite, &db, tgt, "done")?;
    Ok(CopyReport {
        kind: DbKind::Sqlite,
        database: db,
        method: format!(
            "tar of the .db, -wal and -shm files | {} → temporary folder, PRAGMA integrity_check, rename",
            compress_name(compress)
        ),
        compress: compress_name(compress).into(),
        bytes_on_wire: bytes,
        seconds,
        created_database: tables == 0,
        created_user: false,
        replaced: replace,
        integrity: Some(integrity),
        warnings: vec![],
        phases_s: serde_json::Value::Null,
        target_rows_saved: None,
    })
}

// ---------------------------------------------------------------------------------------------
// Verification: per table, count(*) and the sqlite3 shell's `sha3_query` of the rows in rowid
// order.

const TABLES_SQL: &str =
    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name;";

fn checksum_sql(tables: &[String]) -> String {
    tables
        .iter()
        .map(|t| {
            let id = format!("\"{}\"", t.replace('"', "\"\""));
            let inner = format!("SELECT * FROM {id} ORDER BY rowid").replace('\'', "''");
            format!(
                "SELECT (SELECT count(*) FROM {id}) || '|' || lower(hex(sha3_query('{inner}')));\n"
            )
        })
        .collect()
}

/// Figures of a SQLite file on the target (read-only).
fn target_file_figures(
    tgt: &TargetHost,
    file: &Path,
) -> Result<BTreeMap<String, Figures>, Failure> {
    let run = |sql: &str, what: &str| -> Result<String, Failure> {
        let script = format!(
            "{NEED_SQLITE}\nf={}; [ -f \"$f\" ] || exit 0; exec sqlite3 -readonly -batch -bail \"$f\"",
            shell_quote(&file.to_string_lossy())
        );
        target_query(tgt, &script, sql.as_bytes(), what, b"")
    };
    let tables = nonempty_lines(&run(TABLES_SQL, "listing the target's tables")?);
    if tables.is_empty() {
        return Ok(BTreeMap::new());
    }
    let out = run(&checksum_sql(&tables), "checksumming the target's tables")?;
    Ok(figures_from_lines(tables, &out, '|'))
}

/// How the source's figures were read.
pub(crate) fn source_figures(
    src: &SourceHost,
    tgt: &TargetHost,
    p: &DbParams,
) -> Result<(BTreeMap<String, Figures>, &'static str), Failure> {
    let file = sqlite_file(p);
    let wal = {
        let mut w = file.clone().into_os_string();
        w.push("-wal");
        std::path::PathBuf::from(w)
    };
    let live_wal = match src.probe(&Probe::DiskUsage(wal))? {
        r if r.ok() => {
            r.stdout_text()
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(1)
                > 0
        }
        _ => false,
    };
    let has_cli = src.probe(&Probe::HasCommand("sqlite3".into()))?.ok();
    if !live_wal && has_cli {
        // No WAL content: the file alone is the database, read immutable (no lock, no -shm).
        let run = |sql: &str, what: &str| source_sql(src, p, sql, what);
        let tables = nonempty_lines(&run(TABLES_SQL, "listing the source's tables")?);
        if tables.is_empty() {
            return Ok((BTreeMap::new(), "source file, read immutable"));
        }
        let out = run(&checksum_sql(&tables), "checksumming the source's tables")?;
        return Ok((
            figures_from_lines(tables, &out, '|'),
            "source file, read immutable",
        ));
    }
    // A live WAL (or no sqlite3 on the source): read a fresh copy of the files in a private
    // temporary folder on the target, so nothing on the source opens the database.
    let tmp = tgt.run("mktemp -d")?;
    if !tmp.ok() {
        return Err(Failure::check(format!(
            "{}: mktemp -d failed: {}",
            tgt.label(),
            tmp.stderr_text()
        )));
    }
    let dir = std::path::PathBuf::from(tmp.stdout_text().trim());
    let res = copy_files(src, tgt, &file, &dir, Compress::None)
        .and_then(|_| target_file_figures(tgt, &dir.join(file.file_name().unwrap_or_default())));
    let _ = tgt.run(&format!(
        "rm -rf -- {}",
        shell_quote(&dir.to_string_lossy())
    ));
    Ok((res?, "a fresh copy of the source's files on the target"))
}

pub(crate) fn target_figures(
    tgt: &TargetHost,
    p: &DbParams,
) -> Result<BTreeMap<String, Figures>, Failure> {
    target_file_figures(tgt, &sqlite_file(p))
}
