//! MariaDB / MySQL: `mariadb-dump` (or `mysqldump`) on the source streamed, compressed, into
//! `mariadb` (or `mysql`) on the target; the target's database and user created through its admin
//! access; per-table figures for verification.

use super::{
    as_root, compress_name, conn, elapsed, figures_from_lines, login_warning, mark, may_import,
    source_sql, stream, target_query, CopyOptions, CopyReport, DbKind, DbParams, Figures,
};
use crate::exit::Failure;
use crate::host::{
    shell_quote, Compress, DumpCommand, KeyRanges, MysqlPart, SourceHost, TargetHost,
};
use std::collections::BTreeMap;
use std::time::Instant;

/// A MySQL string literal.
pub(crate) fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// A MySQL identifier.
pub(crate) fn ident(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
}

const CLIENT: &str = "c=$(command -v mariadb || command -v mysql) || { echo 'ocmigrate: neither mariadb nor mysql (the client) is installed' >&2; exit 127; }";

/// The target's admin client: root through the socket, or an option file named by
/// `[database] target_admin`.
fn admin(tgt: &TargetHost, opts: &CopyOptions) -> Result<String, Failure> {
    let extra = match opts.target_admin.as_str() {
        "socket" | "" => String::new(),
        p if p.starts_with('/') => format!(" --defaults-extra-file={}", shell_quote(p)),
        other => {
            return Err(Failure::usage(format!(
                "[database] target_admin = {other:?} is not understood"
            ))
            .hint("use \"socket\" (root through the unix socket) or the absolute path of a MySQL option file on the target with an admin's user and password"))
        }
    };
    Ok(format!("{}\"$c\"{extra}", as_root(tgt)))
}

/// Run SQL on the target as the admin, in `db` when given; stdout as text.
fn target_sql(
    tgt: &TargetHost,
    opts: &CopyOptions,
    db: Option<&str>,
    sql: &str,
    what: &str,
) -> Result<String, Failure> {
    target_sql_secret(tgt, opts, db, sql, what, &[])
}

/// Like `target_sql`; `secret` (a password inside the SQL) is cut out of any error message.
fn target_sql_secret(
    tgt: &TargetHost,
    opts: &CopyOptions,
    db: Option<&str>,
    sql: &str,
    what: &str,
    secret: &[u8],
) -> Result<String, Failure> {
    let script = format!(
        "{CLIENT}\nexec {} -N -B --default-character-set=utf8mb4{}",
        admin(tgt, opts)?,
        db.map(|d| format!(" -- {}", shell_quote(d)))
            .unwrap_or_default()
    );
    target_query(tgt, &script, sql.as_bytes(), what, secret)
}

struct SourceFacts {
    user_host: String,
    version: String,
    charset: String,
    collation: String,
    non_innodb: u64,
    triggers: u64,
}

fn source_facts(src: &SourceHost, p: &DbParams) -> Result<SourceFacts, Failure> {
    let out = source_sql(
        src,
        p,
        "SELECT CURRENT_USER();\n\
         SELECT VERSION();\n\
         SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = DATABASE();\n\
         SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' AND ENGINE <> 'InnoDB';\n\
         SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE();",
        "reading the source database",
    )?;
    let lines: Vec<&str> = out.lines().collect();
    if lines.len() < 5 {
        return Err(Failure::check(format!(
            "{}: unexpected answer from the database server: {out:?}",
            src.label()
        )));
    }
    let (cs, coll) = lines[2]
        .split_once('\t')
        .unwrap_or(("utf8mb4", "utf8mb4_general_ci"));
    Ok(SourceFacts {
        user_host: lines[0].trim().to_string(),
        version: lines[1].trim().to_string(),
        charset: cs.trim().to_string(),
        collation: coll.trim().to_string(),
        non_innodb: lines[3].trim().parse().unwrap_or(0),
        triggers: lines[4].trim().parse().unwrap_or(1),
    })
}

pub(crate) fn copy(
    src: &SourceHost,
    tgt: &TargetHost,
    p: &DbParams,
    opts: &CopyOptions,
    compress: Compress,
    laps: &mut crate::laps::Laps,
) -> Result<CopyReport, Failure> {
    // The target's tables are about to be replaced: rows saved of them no longer hold.
    forget_target_rows(opts)?;
    let facts = source_facts(src, p)?;
    laps.lap("source_facts");
    let db = p.name.clone();
    // The account as the source server matched it: `user@host pattern`.
    let (user, host_pat) = facts
        .user_host
        .rsplit_once('@')
        .map(|(u, h)| (u.to_string(), h.to_string()))
        .unwrap_or((p.user.clone(), "localhost".into()));

    // The target as it is.
    let state = target_sql(
        tgt,
        opts,
        None,
        &format!(
            "SELECT VERSION();\n\
             SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {d};\n\
             SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = {d};\n\
             SELECT COUNT(*) FROM mysql.user WHERE User = {u} AND Host = {h};",
            d = lit(&db),
            u = lit(&user),
            h = lit(&host_pat)
        ),
        "reading the target database server",
    )?;
    let st: Vec<&str> = state.lines().map(str::trim).collect();
    let num = |i: usize| st.get(i).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    let target_version = st.first().copied().unwrap_or("").to_string();
    let db_exists = num(1) > 0;
    let tables = num(2);
    let user_exists = num(3) > 0;
    let replace = may_import(opts, DbKind::Mysql, &db, tgt.label(), tables)?;
    laps.lap("target_state");

    // Prepare: database (same character set and collation as the source's) and user.
    let charset = if p.utf8mb4 || facts.charset == "utf8mb4" {
        "utf8mb4"
    } else {
        "utf8"
    };
    let mut prep = String::new();
    if replace {
        prep.push_str(&format!("DROP DATABASE IF EXISTS {};\n", ident(&db)));
    }
    prep.push_str(&format!(
        "CREATE DATABASE IF NOT EXISTS {} CHARACTER SET {} COLLATE {};\n",
        ident(&db),
        ident(&facts.charset),
        ident(&facts.collation)
    ));
    if !user_exists {
        prep.push_str(&format!(
            "CREATE USER IF NOT EXISTS {}@{} IDENTIFIED BY {};\n",
            lit(&user),
            lit(&host_pat),
            lit(&String::from_utf8_lossy(p.password.expose()))
        ));
    }
    prep.push_str(&format!(
        "GRANT ALL PRIVILEGES ON {}.* TO {}@{};\n",
        ident(&db),
        lit(&user),
        lit(&host_pat)
    ));
    target_sql_secret(
        tgt,
        opts,
        None,
        &prep,
        "preparing the target database",
        p.password.expose(),
    )?;

    mark(opts, DbKind::Mysql, &db, tgt, "started")?;
    laps.lap("prepare");

    // The stream. Without triggers, the table definitions go first, the secondary indexes are
    // dropped, the rows follow, and the indexes are built at the end: a sorted index build is
    // several times faster than inserting a million random keys (oc_filecache's path_hash).
    let lock_tables = facts.non_innodb > 0;
    let deferred = facts.triggers == 0;
    let admin_cmd = admin(tgt, opts)?;
    let stream_part = |part: MysqlPart| -> Result<u64, Failure> {
        let dump = DumpCommand::Mysql {
            conn: conn(p),
            lock_tables,
            part,
            charset: charset.to_string(),
            compress,
        };
        let import = format!(
            "{CLIENT}\n{}{admin_cmd} --default-character-set={charset} --max-allowed-packet=1G -- {}",
            compress.unpipe(),
            shell_quote(&db)
        );
        let r = stream(
            src,
            tgt,
            &dump,
            &import,
            p.password.expose(),
            ("the dump", "the import"),
        )?;
        Ok(r.bytes)
    };
    let t = Instant::now();
    let mut bytes = 0;
    let mut deferred_keys = 0;
    if deferred {
        bytes += stream_part(MysqlPart::Schema)?;
        laps.lap("schema");
        let keys = secondary_keys(tgt, opts, &db)?;
        let mut drop_sql = String::new();
        let mut add_sql = String::new();
        for (table, defs) in &keys {
            drop_sql.push_str(&format!(
                "ALTER TABLE {} {};\n",
                ident(table),
                defs.iter()
                    .map(|(name, _)| format!("DROP INDEX {}", ident(name)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            add_sql.push_str(&format!(
                "ALTER TABLE {} {};\n",
                ident(table),
                defs.iter()
                    .map(|(_, def)| format!("ADD {def}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            deferred_keys += defs.len();
        }
        if !drop_sql.is_empty() {
            target_sql(
                tgt,
                opts,
                Some(&db),
                &drop_sql,
                "preparing the tables for the rows",
            )?;
        }
        laps.lap("drop_indexes");
        bytes += stream_part(MysqlPart::Data)?;
        laps.lap("rows");
        if let Some(f) = &opts.rows_loaded {
            (f.0)();
        }
        if !add_sql.is_empty() {
            target_sql(tgt, opts, Some(&db), &add_sql, "building the indexes")?;
        }
        laps.lap("indexes");
    } else {
        bytes += stream_part(MysqlPart::All)?;
        laps.lap("dump_import");
    }
    let seconds = elapsed(t);

    // ownCloud on the target will log in with config.php's credentials: prove they work.
    let warnings = login_check(tgt, p, &format!("'{user}'@'{host_pat}'"))?;
    laps.lap("login_check");

    mark(opts, DbKind::Mysql, &db, tgt, "done")?;
    Ok(CopyReport {
        kind: DbKind::Mysql,
        database: db,
        method: format!(
            "{} {} | {} → {}{} (source {}, target {})",
            "mariadb-dump/mysqldump",
            if lock_tables {
                "--lock-tables"
            } else {
                "--single-transaction"
            },
            compress_name(compress),
            "mariadb/mysql",
            if deferred {
                format!(
                    ", definitions first, {deferred_keys} secondary indexes built after the rows"
                )
            } else {
                String::new()
            },
            facts.version,
            target_version
        ),
        compress: compress_name(compress).into(),
        bytes_on_wire: bytes,
        seconds,
        created_database: !db_exists || replace,
        created_user: !user_exists,
        replaced: replace,
        integrity: None,
        warnings,
        phases_s: serde_json::Value::Null,
        target_rows_saved: None,
    })
}

/// Log in on the target with config.php's credentials as ownCloud will; a warning when refused
/// (`who` names the account).
fn login_check(tgt: &TargetHost, p: &DbParams, who: &str) -> Result<Vec<String>, Failure> {
    let login = format!(
        "{CLIENT}\nIFS= read -r MYSQL_PWD || true; export MYSQL_PWD\nexec \"$c\" -N -B {} -e 'SELECT 1' -- {}",
        crate::host::shell_words(&conn(p).mysql_args()),
        shell_quote(&p.name)
    );
    Ok(login_warning(tgt, &login, p.password.expose(), |err| {
        format!(
            "config.php's user {who} cannot log in on the target ({err}): if the user already existed there with another password or host, set its password to the one in config.php (ALTER USER) or drop it and run again"
        )
    })?
    .into_iter()
    .collect())
}

/// Undo the escapes of the client's batch mode (`\\n`, `\\t`, `\\\\`, `\\0`).
pub(crate) fn unescape_batch(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('0') => out.push('\0'),
            Some(o) => out.push(o),
            None => out.push('\\'),
        }
    }
    out
}

/// Per table, its secondary indexes as `(name, definition)`.
type TableKeys = Vec<(String, Vec<(String, String)>)>;

/// The secondary indexes of every table in the target database, as `(name, definition)` taken
/// from `SHOW CREATE TABLE`; tables with foreign keys are left out (their indexes must stay).
fn secondary_keys(tgt: &TargetHost, opts: &CopyOptions, db: &str) -> Result<TableKeys, Failure> {
    let tables = target_sql(
        tgt,
        opts,
        Some(db),
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' ORDER BY 1;",
        "listing the new tables",
    )?;
    let tables: Vec<&str> = tables
        .lines()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    if tables.is_empty() {
        return Ok(vec![]);
    }
    let sql: String = tables
        .iter()
        .map(|t| format!("SHOW CREATE TABLE {};\n", ident(t)))
        .collect();
    let out = target_sql(tgt, opts, Some(db), &sql, "reading the new tables")?;
    Ok(parse_keys(&out))
}

fn parse_keys(out: &str) -> TableKeys {
    let mut res = Vec::new();
    for row in out.lines() {
        let Some((table, create)) = row.split_once('\t') else {
            continue;
        };
        let create = unescape_batch(create);
        if create.contains("FOREIGN KEY") {
            continue;
        }
        let mut defs = Vec::new();
        for line in create.lines() {
            let l = line.trim().trim_end_matches(',');
            let is_key = ["KEY `", "UNIQUE KEY `", "FULLTEXT KEY `", "SPATIAL KEY `"]
                .iter()
                .any(|p| l.starts_with(p));
            if !is_key {
                continue;
            }
            let name = l.split('`').nth(1).unwrap_or_default().to_string();
            if !name.is_empty() {
                defs.push((name, l.to_string()));
            }
        }
        if !defs.is_empty() {
            res.push((unescape_batch(table), defs));
        }
    }
    res
}

// ---------------------------------------------------------------------------------------------
// Verification: per table, the row count and the sum of a 64-bit MD5 prefix of every row (every
// column QUOTE()d, TIMESTAMPs as UNIX_TIMESTAMP so the server's time zone does not matter).

const COLUMNS_SQL: &str = "SELECT c.TABLE_NAME, c.COLUMN_NAME, c.DATA_TYPE FROM information_schema.COLUMNS c \
     JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME \
     WHERE c.TABLE_SCHEMA = DATABASE() AND t.TABLE_TYPE = 'BASE TABLE' ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION;";

/// A row's 64-bit hash as a decimal number: the MD5 of its columns (`(name, type)`, in order),
/// each `QUOTE()`d, TIMESTAMPs as `UNIX_TIMESTAMP` so the server's time zone does not matter.
/// The verification sums it per table; a refresh compares it row by row.
fn row_hash<'a>(columns: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let cols: Vec<String> = columns
        .into_iter()
        .map(|(c, ty)| {
            if ty.eq_ignore_ascii_case("timestamp") {
                format!("QUOTE(UNIX_TIMESTAMP({}))", ident(c))
            } else {
                format!("QUOTE({})", ident(c))
            }
        })
        .collect();
    format!(
        "CONV(SUBSTRING(MD5(CONCAT_WS('#', {})), 1, 16), 16, 10)",
        cols.join(", ")
    )
}

/// A table's figures: its row count and the sum of its rows' hashes.
fn figures_sql(table: &str, hash: &str) -> String {
    format!(
        "COUNT(*), COALESCE(SUM(CAST({hash} AS DECIMAL(20,0))), 0) FROM {}",
        ident(table)
    )
}

fn checksum_sql(columns: &str) -> (Vec<String>, String) {
    let mut tables: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
    for line in columns.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 3 {
            continue;
        }
        tables.entry(f[0]).or_default().push((f[1], f[2]));
    }
    let mut sql = String::new();
    for (t, cols) in &tables {
        sql.push_str(&format!(
            "SELECT {};\n",
            figures_sql(t, &row_hash(cols.iter().copied()))
        ));
    }
    (tables.into_keys().map(str::to_string).collect(), sql)
}

pub(crate) fn source_figures(
    src: &SourceHost,
    p: &DbParams,
) -> Result<BTreeMap<String, Figures>, Failure> {
    let cols = source_sql(src, p, COLUMNS_SQL, "listing the source's tables")?;
    let (tables, sql) = checksum_sql(&cols);
    if tables.is_empty() {
        return Ok(BTreeMap::new());
    }
    let out = source_sql(src, p, &sql, "checksumming the source's tables")?;
    Ok(figures_from_lines(tables, &out, '\t'))
}

pub(crate) fn target_figures(
    tgt: &TargetHost,
    opts: &CopyOptions,
    p: &DbParams,
) -> Result<BTreeMap<String, Figures>, Failure> {
    let db = &p.name;
    let exists = target_sql(
        tgt,
        opts,
        None,
        &format!(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {};",
            lit(db)
        ),
        "reading the target database server",
    )?;
    if exists.trim() == "0" {
        return Ok(BTreeMap::new());
    }
    let cols = target_sql(
        tgt,
        opts,
        Some(db),
        COLUMNS_SQL,
        "listing the target's tables",
    )?;
    let (tables, sql) = checksum_sql(&cols);
    if tables.is_empty() {
        return Ok(BTreeMap::new());
    }
    let out = target_sql(
        tgt,
        opts,
        Some(db),
        &sql,
        "checksumming the target's tables",
    )?;
    Ok(figures_from_lines(tables, &out, '\t'))
}

// ---------------------------------------------------------------------------------------------
// Refresh: the target holds an earlier copy of ours (made online during `sync`); bring it to the
// source's state by copying only what differs. Each side's server hashes every row (the same
// per-row hash as the verification's checksum); tables with a one-column integer primary key are
// compared row by row and the differing key ranges are deleted on the target and dumped again
// from the source (`--where`, integer ranges only); other tables, tables whose definition differs
// and tables new on the source are copied whole; tables only on the target are dropped; the
// tables' AUTO_INCREMENT counters are set to the source's. The target's figures are then its
// rows read before (outside the ranges) and read again (inside them).

/// The conditions of one refresh's dump command travel on its command line (one argument of at
/// most 128 KiB on Linux): at most this many bytes of them; more differences are covered by
/// wider ranges.
const MAX_CONDITIONS: usize = 96 * 1024;

/// Table → (its key column, the key ranges to copy again).
type TableRanges = BTreeMap<String, (String, Vec<(i128, i128)>)>;

/// The ranges of `keys` whose condition on `key` fits in `budget` bytes: the exact keys when
/// they fit, else fewer, wider ranges.
fn fit_ranges(key: &str, keys: &[i128], budget: usize) -> Vec<(i128, i128)> {
    let mut max = keys.len();
    loop {
        let r = super::refresh::ranges(keys, max);
        let len = KeyRanges {
            table: String::new(),
            key: key.to_string(),
            ranges: r.clone(),
        }
        .condition()
        .len();
        if len <= budget || r.len() <= 1 {
            return r;
        }
        max = r.len() * 2 / 3;
    }
}

/// One side's database, as a refresh needs it.
#[derive(Debug, Default)]
struct Shape {
    /// Table → its columns' `(name, type)` in order.
    columns: BTreeMap<String, Vec<(String, String)>>,
    /// Table → its primary key's columns.
    primary: BTreeMap<String, Vec<String>>,
    /// Table → AUTO_INCREMENT counter (when it has one).
    auto_inc: BTreeMap<String, u64>,
    /// Views, triggers, tables not in InnoDB: a refresh does not handle these.
    others: u64,
}

impl Shape {
    const SQL: &'static str = "SELECT 'c', c.TABLE_NAME, c.COLUMN_NAME, c.DATA_TYPE FROM information_schema.COLUMNS c \
         JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME \
         WHERE c.TABLE_SCHEMA = DATABASE() AND t.TABLE_TYPE = 'BASE TABLE' ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION;\n\
         SELECT 'k', TABLE_NAME, COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND INDEX_NAME = 'PRIMARY' ORDER BY TABLE_NAME, SEQ_IN_INDEX;\n\
         SELECT 'a', TABLE_NAME, AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' AND AUTO_INCREMENT IS NOT NULL;\n\
         SELECT 'o', (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND (TABLE_TYPE <> 'BASE TABLE' OR ENGINE <> 'InnoDB')) + (SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE());";

    fn parse(out: &str) -> Shape {
        let mut s = Shape::default();
        for line in out.lines() {
            let f: Vec<String> = line.split('\t').map(unescape_batch).collect();
            match (f[0].as_str(), f.len()) {
                ("c", 4) => s
                    .columns
                    .entry(f[1].clone())
                    .or_default()
                    .push((f[2].clone(), f[3].clone())),
                ("k", 3) => s
                    .primary
                    .entry(f[1].clone())
                    .or_default()
                    .push(f[2].clone()),
                ("a", 3) => {
                    if let Ok(n) = f[2].parse() {
                        s.auto_inc.insert(f[1].clone(), n);
                    }
                }
                ("o", 2) => s.others = f[1].parse().unwrap_or(1),
                _ => {}
            }
        }
        s
    }

    /// The table's one-column integer primary key, when it has one.
    fn int_key(&self, table: &str) -> Option<&str> {
        let key = self.primary.get(table)?;
        let [k] = key.as_slice() else { return None };
        let ty = &self.columns.get(table)?.iter().find(|(c, _)| c == k)?.1;
        matches!(
            ty.to_ascii_lowercase().as_str(),
            "tinyint" | "smallint" | "mediumint" | "int" | "bigint"
        )
        .then_some(k.as_str())
    }

    /// The per-row hash of `table` (as in the verification's checksum).
    fn row_hash(&self, table: &str) -> String {
        row_hash(
            self.columns[table]
                .iter()
                .map(|(c, ty)| (c.as_str(), ty.as_str())),
        )
    }

    /// The content query: each table's definition, then its rows' hashes (tables with an
    /// integer key; with `only`, the rows in its ranges and the tables in `whole`) or its
    /// figures (others, as `=` lines).
    fn content_sql(&self, only: Option<&TableRanges>, whole: &[String]) -> String {
        let mut sql = String::new();
        for t in self.columns.keys() {
            let ranges = only.and_then(|o| o.get(t));
            if only.is_some() && ranges.is_none() && !whole.contains(t) {
                continue;
            }
            if only.is_none() {
                sql.push_str(&format!("SHOW CREATE TABLE {};\n", ident(t)));
            }
            match (self.int_key(t), ranges) {
                (Some(k), _) => {
                    let cond = ranges
                        .map(|(key, r)| {
                            KeyRanges {
                                table: t.clone(),
                                key: key.clone(),
                                ranges: r.clone(),
                            }
                            .condition()
                        })
                        .map(|c| format!(" WHERE {c}"))
                        .unwrap_or_default();
                    sql.push_str(&format!(
                        "SELECT '#', {};\nSELECT {}, {} FROM {}{cond} ORDER BY {};\n",
                        lit(t),
                        ident(k),
                        self.row_hash(t),
                        ident(t),
                        ident(k)
                    ));
                }
                (None, _) => sql.push_str(&format!(
                    "SELECT '=', {}, {};\n",
                    lit(t),
                    figures_sql(t, &self.row_hash(t))
                )),
            }
        }
        sql
    }
}

/// A side's content: definitions (without AUTO_INCREMENT), row hashes, figures of the others.
#[derive(Debug, Default)]
struct Content {
    creates: BTreeMap<String, String>,
    hashes: BTreeMap<String, Vec<super::refresh::RowHash>>,
    figures: BTreeMap<String, Figures>,
}

impl Content {
    fn parse(out: &str) -> Result<Content, Failure> {
        let mut c = Content {
            hashes: super::refresh::parse_hashes(out)
                .map_err(|e| Failure::check(format!("reading the row hashes: {e}")))?,
            ..Content::default()
        };
        for line in out.lines() {
            let f: Vec<&str> = line.split('\t').collect();
            if f.len() == 2 && f[1].starts_with("CREATE ") {
                c.creates.insert(
                    unescape_batch(f[0]),
                    super::refresh::without_auto_increment(&unescape_batch(f[1])),
                );
            } else if f.len() == 4 && f[0] == "=" {
                c.figures.insert(
                    unescape_batch(f[1]),
                    Figures {
                        rows: f[2].parse().unwrap_or(0),
                        checksum: f[3].to_string(),
                    },
                );
            }
        }
        Ok(c)
    }

    /// The figures of every table read.
    fn all_figures(&self) -> BTreeMap<String, Figures> {
        let mut f = self.figures.clone();
        for (t, rows) in &self.hashes {
            f.insert(t.clone(), super::refresh::figures(rows));
        }
        f
    }
}

/// The state folder's file of the target's rows as the copy ahead left them
/// ([`super::refresh::SavedRows`]).
const TARGET_ROWS: &str = "db-target-rows.txt";

/// `CHECKSUM TABLE` of every table of `shape`, in one statement.
fn checksums_sql(shape: &Shape) -> String {
    let tables: Vec<String> = shape.columns.keys().map(|t| ident(t)).collect();
    format!("CHECKSUM TABLE {};\n", tables.join(", "))
}

/// Remove the saved target rows (before anything of ours writes to the target's tables).
pub(crate) fn forget_target_rows(opts: &CopyOptions) -> Result<(), Failure> {
    let p = opts.state_dir.join(TARGET_ROWS);
    match std::fs::remove_file(&p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(
            Failure::check(format!("cannot remove {}: {e}", p.display()))
                .hint("make the state folder writable by the operator, then run again"),
        ),
    }
}

/// After the copy ahead (online): the target's tables read once more (definitions, row hashes,
/// `CHECKSUM TABLE` before and after) into the state folder, so that the window's refresh
/// hashes only the source's rows when the target's still give the same `CHECKSUM TABLE`.
/// `Err(why)` inside `Ok` when nothing was saved (the tables changed while read, or the
/// database cannot be refreshed anyway).
pub(crate) fn save_target_rows(
    tgt: &TargetHost,
    opts: &CopyOptions,
    db: &str,
) -> Result<Result<(), &'static str>, Failure> {
    forget_target_rows(opts)?;
    let shape = Shape::parse(&target_sql(
        tgt,
        opts,
        Some(db),
        Shape::SQL,
        "reading the target's tables",
    )?);
    if shape.others > 0 {
        return Ok(Err("views, triggers or tables not in InnoDB (no refresh)"));
    }
    if shape.columns.is_empty() {
        return Ok(Err("no tables"));
    }
    let sums = checksums_sql(&shape);
    let out = target_sql(
        tgt,
        opts,
        Some(db),
        &format!("{sums}{}{sums}", shape.content_sql(None, &[])),
        "hashing the target's rows",
    )?;
    let Some(saved) = super::refresh::SavedRows::from_batch(&out, shape.columns.len()) else {
        return Ok(Err("the target's tables changed while read"));
    };
    crate::cmd::init::write_atomically(
        &opts.state_dir.join(TARGET_ROWS),
        saved.to_text().as_bytes(),
    )?;
    Ok(Ok(()))
}

/// The saved target rows, removed from the state folder (they serve one refresh at most).
fn take_target_rows(opts: &CopyOptions) -> Option<super::refresh::SavedRows> {
    let p = opts.state_dir.join(TARGET_ROWS);
    let text = std::fs::read_to_string(&p).ok();
    let _ = std::fs::remove_file(&p);
    super::refresh::SavedRows::from_text(&text?)
}

/// What [`refresh`] did, and both sides' figures for the verification.
pub(crate) struct Refreshed {
    pub report: CopyReport,
    pub source: BTreeMap<String, Figures>,
    pub target: BTreeMap<String, Figures>,
}

/// Refresh the target's copy (see above). `None` when it cannot be refreshed (no database
/// there; views, triggers or tables not in InnoDB on either side): then a whole copy is needed.
/// `compress`: the wire's compression, or `None` to choose it (only if anything is to be sent).
/// The caller has made sure the target's tables are an earlier copy of ours.
pub(crate) fn refresh(
    src: &SourceHost,
    tgt: &TargetHost,
    p: &DbParams,
    opts: &CopyOptions,
    compress: Option<Compress>,
    laps: &mut crate::laps::Laps,
) -> Result<Option<Refreshed>, Failure> {
    let db = p.name.clone();
    let exists = target_sql(
        tgt,
        opts,
        None,
        &format!(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {};",
            lit(&db)
        ),
        "reading the target database server",
    )?;
    if exists.trim() == "0" {
        return Ok(None);
    }
    // Both sides at once: their shapes, then their contents (definitions and row hashes).
    let read_source = || -> Result<(Shape, Content), Failure> {
        let shape = Shape::parse(&source_sql(
            src,
            p,
            Shape::SQL,
            "reading the source's tables",
        )?);
        let out = source_sql(
            src,
            p,
            &shape.content_sql(None, &[]),
            "hashing the source's rows",
        )?;
        Ok((shape, Content::parse(&out)?))
    };
    // The target's rows as the copy ahead saved them, when its tables still answer `CHECKSUM
    // TABLE` and `SHOW CREATE TABLE` as then (nothing wrote to them since): only the source's
    // rows are hashed.
    let saved = take_target_rows(opts);
    let read_target = || -> Result<(Shape, Content, &'static str), Failure> {
        let shape = Shape::parse(&target_sql(
            tgt,
            opts,
            Some(&db),
            Shape::SQL,
            "reading the target's tables",
        )?);
        let mut read = "hashed";
        if let Some(saved) = saved.filter(|_| shape.others == 0 && !shape.columns.is_empty()) {
            let creates: String = shape
                .columns
                .keys()
                .map(|t| format!("SHOW CREATE TABLE {};\n", ident(t)))
                .collect();
            let out = target_sql(
                tgt,
                opts,
                Some(&db),
                &format!("{}{creates}", checksums_sql(&shape)),
                "checksumming the target's tables",
            )?;
            let then = Content::parse(&saved.content)?;
            let now = Content::parse(&out)?;
            if super::refresh::parse_checksums(&out) == saved.sums && now.creates == then.creates {
                return Ok((
                    shape,
                    then,
                    "as the copy ahead left them (CHECKSUM TABLE unchanged)",
                ));
            }
            read = "hashed (CHECKSUM TABLE changed since the copy ahead)";
        }
        let out = target_sql(
            tgt,
            opts,
            Some(&db),
            &shape.content_sql(None, &[]),
            "hashing the target's rows",
        )?;
        Ok((shape, Content::parse(&out)?, read))
    };
    let (s, t) = std::thread::scope(|sc| {
        let h = sc.spawn(read_source);
        let t = read_target();
        (
            crate::exit::joined(h.join(), "reading the source's rows"),
            t,
        )
    });
    let ((s_shape, s_content), (t_shape, t_content, target_read)) = (s?, t?);
    laps.lap("refresh_read_both");
    if s_shape.others > 0 || t_shape.others > 0 {
        return Ok(None);
    }

    // What differs.
    let dropped: Vec<String> = t_shape
        .columns
        .keys()
        .filter(|t| !s_shape.columns.contains_key(*t))
        .cloned()
        .collect();
    let mut whole: Vec<String> = Vec::new();
    let mut rows: BTreeMap<String, (String, Vec<i128>)> = BTreeMap::new();
    for table in s_shape.columns.keys() {
        let same_def = t_content.creates.contains_key(table)
            && t_content.creates.get(table) == s_content.creates.get(table);
        if !same_def {
            whole.push(table.clone());
            continue;
        }
        match (
            s_shape.int_key(table),
            s_content.hashes.get(table),
            t_content.hashes.get(table),
        ) {
            (Some(k), Some(sh), Some(th)) => {
                let dirty = super::refresh::dirty_keys(sh, th);
                if !dirty.is_empty() {
                    rows.insert(table.clone(), (k.to_string(), dirty));
                }
            }
            _ => {
                // No integer key: equal figures on both sides, or copied whole.
                let (a, b) = (s_content.figures.get(table), t_content.figures.get(table));
                if a.is_none() || a != b {
                    whole.push(table.clone());
                }
            }
        }
    }
    let budget = MAX_CONDITIONS / rows.len().max(1);
    let ranges: TableRanges = rows
        .into_iter()
        .map(|(t, (k, keys))| {
            let r = fit_ranges(&k, &keys, budget);
            (t, (k, r))
        })
        .collect();
    let rows_copied: u64 = ranges
        .iter()
        .map(|(t, (_, r))| super::refresh::count_in(&s_content.hashes[t], r))
        .sum();
    let rows_deleted: u64 = ranges
        .iter()
        .map(|(t, (_, r))| super::refresh::count_in(&t_content.hashes[t], r))
        .sum();
    let counters: Vec<(String, u64)> = s_shape
        .auto_inc
        .iter()
        .filter(|(t, n)| {
            !whole.contains(t)
                && (t_shape.auto_inc.get(t.as_str()) != Some(n) || ranges.contains_key(t.as_str()))
        })
        .map(|(t, n)| (t.clone(), *n))
        .collect();
    laps.lap("refresh_compare");

    // Apply: drop, delete the ranges, set the counters, copy whole tables and ranges.
    mark(opts, DbKind::Mysql, &db, tgt, "started")?;
    let t0 = Instant::now();
    let mut sql = String::from("SET FOREIGN_KEY_CHECKS = 0;\n");
    for t in &dropped {
        sql.push_str(&format!("DROP TABLE IF EXISTS {};\n", ident(t)));
    }
    for (t, (k, r)) in &ranges {
        let cond = KeyRanges {
            table: t.clone(),
            key: k.clone(),
            ranges: r.clone(),
        }
        .condition();
        sql.push_str(&format!("DELETE FROM {} WHERE {cond};\n", ident(t)));
    }
    // The counters now: rows inserted below with keys under a counter leave it as it is.
    for (t, n) in &counters {
        sql.push_str(&format!("ALTER TABLE {} AUTO_INCREMENT = {n};\n", ident(t)));
    }
    if !dropped.is_empty() || !ranges.is_empty() || !counters.is_empty() {
        target_sql(
            tgt,
            opts,
            Some(&db),
            &sql,
            "removing the rows to copy again",
        )?;
    }
    laps.lap("refresh_delete");
    let mut bytes = 0;
    // The wire's compression is asked of the hosts only when something travels.
    let mut compress_used = Compress::None;
    if !whole.is_empty() || !ranges.is_empty() {
        let compress = match compress {
            Some(c) => c,
            None => super::choose_compress(src, tgt)?,
        };
        compress_used = compress;
        // utf8mb4 carries any column's text unchanged (the whole copy may use utf8 for servers
        // that predate utf8mb4; a refresh runs on servers that have just held a copy).
        let charset = "utf8mb4";
        let dump = DumpCommand::Mysql {
            conn: conn(p),
            lock_tables: false,
            part: MysqlPart::Refresh {
                tables: whole.clone(),
                rows: ranges
                    .iter()
                    .map(|(t, (k, r))| KeyRanges {
                        table: t.clone(),
                        key: k.clone(),
                        ranges: r.clone(),
                    })
                    .collect(),
            },
            charset: charset.to_string(),
            compress,
        };
        let import = format!(
            "{CLIENT}\n{}{} --default-character-set={charset} --max-allowed-packet=1G -- {}",
            compress.unpipe(),
            admin(tgt, opts)?,
            shell_quote(&db)
        );
        bytes = stream(
            src,
            tgt,
            &dump,
            &import,
            p.password.expose(),
            ("the dump of the changed rows", "their import"),
        )?
        .bytes;
    }
    laps.lap("refresh_copy");
    if let Some(f) = &opts.rows_loaded {
        (f.0)();
    }
    let seconds = elapsed(t0);

    // The target's figures: what it held outside the ranges, and what it holds now inside them
    // and in the tables copied whole.
    let mut target = t_content.all_figures();
    for t in &dropped {
        target.remove(t);
    }
    if !whole.is_empty() || !ranges.is_empty() {
        let shape_now = if whole.is_empty() {
            None
        } else {
            Some(Shape::parse(&target_sql(
                tgt,
                opts,
                Some(&db),
                Shape::SQL,
                "reading the target's tables again",
            )?))
        };
        let shape = shape_now.as_ref().unwrap_or(&t_shape);
        let out = target_sql(
            tgt,
            opts,
            Some(&db),
            &shape.content_sql(Some(&ranges), &whole),
            "hashing the copied rows",
        )?;
        let again = Content::parse(&out)?;
        for t in &whole {
            target.remove(t);
        }
        target.extend(again.figures.clone());
        for (t, reread) in &again.hashes {
            let f = match ranges.get(t) {
                Some((_, r)) => {
                    super::refresh::figures(&super::refresh::after(&t_content.hashes[t], r, reread))
                }
                None => super::refresh::figures(reread),
            };
            target.insert(t.clone(), f);
        }
    }
    laps.lap("refresh_reread");

    // ownCloud on the target will log in with config.php's credentials: prove they work.
    let warnings = login_check(tgt, p, &format!("'{}'", p.user))?;
    mark(opts, DbKind::Mysql, &db, tgt, "done")?;
    let ranges_n: usize = ranges.values().map(|(_, r)| r.len()).sum();
    Ok(Some(Refreshed {
        report: CopyReport {
            kind: DbKind::Mysql,
            database: db,
            method: format!(
                "refresh of the earlier copy: {rows_copied} row(s) copied again in {ranges_n} key range(s) of {} table(s) ({rows_deleted} removed first), {} table(s) copied whole, {} dropped (mariadb-dump/mysqldump --where | {} → mariadb/mysql); the target's rows {target_read}",
                ranges.len(),
                whole.len(),
                dropped.len(),
                compress_name(compress_used)
            ),
            compress: compress_name(compress_used).into(),
            bytes_on_wire: bytes,
            seconds,
            created_database: false,
            created_user: false,
            replaced: false,
            integrity: None,
            warnings,
            phases_s: serde_json::Value::Null,
        target_rows_saved: None,
        },
        source: s_content.all_figures(),
        target,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(lit("a'b\\c"), "'a''b\\\\c'");
        assert_eq!(ident("a`b"), "`a``b`");
    }

    #[test]
    fn secondary_keys_from_show_create_table() {
        let out = "oc_filecache\tCREATE TABLE `oc_filecache` (\\n  `fileid` bigint(20) NOT NULL,\\n  `path_hash` varchar(32) NOT NULL,\\n  PRIMARY KEY (`fileid`),\\n  UNIQUE KEY `fs_storage_path_hash` (`storage`,`path_hash`),\\n  KEY `fs_parent` (`parent`,`name`(100))\\n) ENGINE=InnoDB\n\
                   oc_fk\tCREATE TABLE `oc_fk` (\\n  KEY `k` (`a`),\\n  CONSTRAINT `c` FOREIGN KEY (`a`) REFERENCES `x` (`id`)\\n)\n";
        let k = parse_keys(out);
        assert_eq!(k.len(), 1);
        assert_eq!(k[0].0, "oc_filecache");
        assert_eq!(
            k[0].1,
            vec![
                (
                    "fs_storage_path_hash".to_string(),
                    "UNIQUE KEY `fs_storage_path_hash` (`storage`,`path_hash`)".to_string()
                ),
                (
                    "fs_parent".to_string(),
                    "KEY `fs_parent` (`parent`,`name`(100))".to_string()
                )
            ]
        );
    }

    #[test]
    fn refresh_conditions_fit_their_budget() {
        // Few keys: exactly those.
        assert_eq!(fit_ranges("id", &[3, 4, 9], 1000), vec![(3, 4), (9, 9)]);
        // 50,000 scattered keys: wider ranges within 24 KiB, every key covered.
        let keys: Vec<i128> = (0..50_000).map(|i| i * 7 + 1_000_000).collect();
        let r = fit_ranges("fileid", &keys, 24 * 1024);
        let cond = KeyRanges {
            table: "t".into(),
            key: "fileid".into(),
            ranges: r.clone(),
        }
        .condition();
        assert!(cond.len() <= 24 * 1024, "{}", cond.len());
        assert!(keys
            .iter()
            .all(|k| super::super::refresh::in_ranges(&r, *k)));
    }

    #[test]
    fn checksum_sql_per_table() {
        let (t, sql) = checksum_sql("oc_a\tid\tint\noc_a\tts\ttimestamp\noc_b\tx\tvarchar\n");
        assert_eq!(t, vec!["oc_a", "oc_b"]);
        assert!(sql.contains("QUOTE(UNIX_TIMESTAMP(`ts`))"));
        assert_eq!(sql.lines().count(), 2);
    }
}
