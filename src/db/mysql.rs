//! MariaDB / MySQL: `mariadb-dump` (or `mysqldump`) on the source streamed, compressed, into
//! `mariadb` (or `mysql`) on the target; the target's database and user created through its admin
//! access; per-table figures for verification.

use super::{
    as_root, compress_name, conn, elapsed, figures_from_lines, login_warning, mark, may_import,
    source_sql, stream, target_query, CopyOptions, CopyReport, DbKind, DbParams, Figures,
};
use crate::exit::Failure;
use crate::host::{shell_quote, Compress, DumpCommand, MysqlPart, SourceHost, TargetHost};
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
    let login = format!(
        "{CLIENT}\nIFS= read -r MYSQL_PWD || true; export MYSQL_PWD\nexec \"$c\" -N -B {} -e 'SELECT 1' -- {}",
        crate::host::shell_words(&conn(p).mysql_args()),
        shell_quote(&db)
    );
    let warnings: Vec<String> = login_warning(tgt, &login, p.password.expose(), |err| {
        format!(
            "config.php's user '{user}'@'{host_pat}' cannot log in on the target ({err}): if the user already existed there with another password or host, set its password to the one in config.php (ALTER USER) or drop it and run again"
        )
    })?
    .into_iter()
    .collect();
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
    })
}

/// Undo the escapes of the client's batch mode (`\\n`, `\\t`, `\\\\`, `\\0`).
fn unescape_batch(s: &str) -> String {
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

fn checksum_sql(columns: &str) -> (Vec<String>, String) {
    let mut tables: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in columns.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 3 {
            continue;
        }
        let col = ident(f[1]);
        let e = if f[2].eq_ignore_ascii_case("timestamp") {
            format!("QUOTE(UNIX_TIMESTAMP({col}))")
        } else {
            format!("QUOTE({col})")
        };
        tables.entry(f[0].to_string()).or_default().push(e);
    }
    let mut sql = String::new();
    for (t, cols) in &tables {
        sql.push_str(&format!(
            "SELECT COUNT(*), COALESCE(SUM(CAST(CONV(SUBSTRING(MD5(CONCAT_WS('#', {})), 1, 16), 16, 10) AS DECIMAL(20,0))), 0) FROM {};\n",
            cols.join(", "),
            ident(t)
        ));
    }
    (tables.into_keys().collect(), sql)
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
    fn checksum_sql_per_table() {
        let (t, sql) = checksum_sql("oc_a\tid\tint\noc_a\tts\ttimestamp\noc_b\tx\tvarchar\n");
        assert_eq!(t, vec!["oc_a", "oc_b"]);
        assert!(sql.contains("QUOTE(UNIX_TIMESTAMP(`ts`))"));
        assert_eq!(sql.lines().count(), 2);
    }
}
