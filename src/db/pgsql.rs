//! PostgreSQL: `pg_dump -Fc` on the source streamed, compressed, into `pg_restore` on the target
//! (or plain SQL into `psql`), run as `postgres` with `--no-owner --role=<dbuser>` so every object
//! belongs to config.php's user; the role and the database created when missing.

use super::{
    as_root, compress_name, conn, elapsed, figures_from_lines, login_warning, mark, may_import,
    nonempty_lines, source_sql, stream, target_query, CopyOptions, CopyReport, DbKind, DbParams,
    Figures,
};
use crate::exit::Failure;
use crate::host::{shell_quote, shell_words, Compress, DumpCommand, PgFormat};
use crate::host::{SourceHost, TargetHost};
use std::collections::BTreeMap;
use std::time::Instant;

/// A PostgreSQL string literal (standard_conforming_strings).
pub(crate) fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A PostgreSQL identifier.
pub(crate) fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Session settings that make row text the same on both servers.
const PGOPTIONS: &str =
    "PGOPTIONS='-c TimeZone=UTC -c DateStyle=ISO -c extra_float_digits=3 -c bytea_output=hex'; export PGOPTIONS";

/// How a command runs as `postgres` on the target (peer authentication through the socket).
fn as_postgres(tgt: &TargetHost) -> String {
    match tgt.login_user() {
        "postgres" => String::new(),
        "root" => "runuser -u postgres -- ".into(),
        _ => format!("{}-u postgres ", as_root(tgt)),
    }
}

fn check_admin(opts: &CopyOptions) -> Result<(), Failure> {
    if opts.target_admin == "socket" || opts.target_admin.is_empty() {
        return Ok(());
    }
    Err(Failure::usage(format!(
        "[database] target_admin = {:?} is not understood for PostgreSQL",
        opts.target_admin
    ))
    .hint(
        "use \"socket\": ocmigrate runs the admin tools as the postgres user (peer authentication)",
    ))
}

fn target_sql(
    tgt: &TargetHost,
    db: &str,
    sql: &str,
    what: &str,
    secret: &[u8],
) -> Result<String, Failure> {
    let script = format!(
        "command -v psql >/dev/null || {{ echo 'ocmigrate: psql is not installed' >&2; exit 127; }}\n\
         {PGOPTIONS}\ncd / && exec {}psql -X -q -A -t -v ON_ERROR_STOP=1 --dbname={}",
        as_postgres(tgt),
        shell_quote(db)
    );
    target_query(tgt, &script, sql.as_bytes(), what, secret)
}

pub(crate) fn copy(
    src: &SourceHost,
    tgt: &TargetHost,
    p: &DbParams,
    opts: &CopyOptions,
    compress: Compress,
) -> Result<CopyReport, Failure> {
    check_admin(opts)?;
    let facts = source_sql(
        src,
        p,
        "SELECT current_user;\nSELECT current_setting('server_version');\n\
         SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database();",
        "reading the source database",
    )?;
    let f: Vec<&str> = facts.lines().map(str::trim).collect();
    let role = f.first().copied().unwrap_or(&p.user).to_string();
    let src_version = f.get(1).copied().unwrap_or("").to_string();
    let encoding = f.get(2).copied().unwrap_or("UTF8").to_string();
    let db = p.name.clone();

    let state = target_sql(
        tgt,
        "postgres",
        &format!(
            "SELECT current_setting('server_version_num');\n\
             SELECT count(*) FROM pg_database WHERE datname = {};\n\
             SELECT count(*) FROM pg_roles WHERE rolname = {};\n\
             SELECT current_setting('server_version');",
            lit(&db),
            lit(&role)
        ),
        "reading the target database server",
        &[],
    )?;
    let st: Vec<&str> = state.lines().map(str::trim).collect();
    let num = |i: usize| st.get(i).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    let target_version = num(0);
    let db_exists = num(1) > 0;
    let role_exists = num(2) > 0;
    let target_version_text = st.get(3).copied().unwrap_or("").to_string();
    let tables = if db_exists {
        target_sql(
            tgt,
            &db,
            "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema');",
            "reading the target database",
            &[],
        )?
        .trim()
        .parse()
        .unwrap_or(0)
    } else {
        0
    };
    let replace = may_import(opts, DbKind::Pgsql, &db, tgt.label(), tables)?;

    let mut prep = String::new();
    if replace {
        let force = if target_version >= 130000 {
            " WITH (FORCE)"
        } else {
            ""
        };
        prep.push_str(&format!("DROP DATABASE IF EXISTS {}{force};\n", ident(&db)));
    }
    if !role_exists {
        prep.push_str(&format!(
            "CREATE ROLE {} LOGIN PASSWORD {};\n",
            ident(&role),
            lit(&String::from_utf8_lossy(p.password.expose()))
        ));
    }
    if !db_exists || replace {
        prep.push_str(&format!(
            "CREATE DATABASE {} OWNER {} ENCODING {} TEMPLATE template0;\n",
            ident(&db),
            ident(&role),
            lit(&encoding)
        ));
    } else {
        prep.push_str(&format!(
            "ALTER DATABASE {} OWNER TO {};\n",
            ident(&db),
            ident(&role)
        ));
    }
    target_sql(
        tgt,
        "postgres",
        &prep,
        "preparing the target database",
        p.password.expose(),
    )?;
    mark(opts, DbKind::Pgsql, &db, tgt, "started")?;

    let format = if opts.pg_plain {
        PgFormat::Plain
    } else {
        PgFormat::Custom
    };
    let dump = DumpCommand::Pgsql {
        conn: conn(p),
        format,
        compress,
    };
    let pgu = as_postgres(tgt);
    let import = match format {
        PgFormat::Custom => format!(
            "command -v pg_restore >/dev/null || {{ echo 'ocmigrate: pg_restore is not installed' >&2; exit 127; }}\n\
             cd / && {}{pgu}pg_restore --no-owner --no-privileges --role={} --exit-on-error --single-transaction --dbname={}",
            compress.unpipe(),
            shell_quote(&role),
            shell_quote(&db)
        ),
        PgFormat::Plain => {
            let cat = match compress {
                Compress::Zstd => "zstd -q -d -c",
                Compress::Gzip => "gzip -d -c",
                Compress::None => "cat",
            };
            format!(
                "command -v psql >/dev/null || {{ echo 'ocmigrate: psql is not installed' >&2; exit 127; }}\n\
                 cd / && {{ printf '%s\\n' {}; {cat}; }} | {pgu}psql -X -q -v ON_ERROR_STOP=1 --single-transaction --dbname={} >/dev/null",
                shell_quote(&format!("SET ROLE {};", ident(&role))),
                shell_quote(&db)
            )
        }
    };
    let t = Instant::now();
    let r = stream(
        src,
        tgt,
        &dump,
        &import,
        p.password.expose(),
        ("pg_dump", "the restore"),
    )?;
    let seconds = elapsed(t);

    // ownCloud on the target will log in with config.php's credentials: try them.
    let login = format!(
        "IFS= read -r PGPASSWORD || true; export PGPASSWORD\ncd / && exec psql -X -A -t -c 'SELECT 1' {} --dbname={}",
        shell_words(&conn(p).pg_args()),
        shell_quote(&db)
    );
    let warnings: Vec<String> = login_warning(tgt, &login, p.password.expose(), |err| {
        format!(
            "config.php's user '{role}' cannot log in on the target ({err}): check the role's password and pg_hba.conf (ownCloud connects with a password)"
        )
    })?
    .into_iter()
    .collect();
    mark(opts, DbKind::Pgsql, &db, tgt, "done")?;
    Ok(CopyReport {
        kind: DbKind::Pgsql,
        database: db,
        method: format!(
            "{} | {} → {} (source {src_version}, target {target_version_text})",
            if opts.pg_plain {
                "pg_dump -Fp"
            } else {
                "pg_dump -Fc"
            },
            compress_name(compress),
            if opts.pg_plain {
                "psql --single-transaction"
            } else {
                "pg_restore --single-transaction"
            }
        ),
        compress: compress_name(compress).into(),
        bytes_on_wire: r.bytes,
        seconds,
        created_database: !db_exists || replace,
        created_user: !role_exists,
        replaced: replace,
        integrity: None,
        warnings,
        phases_s: serde_json::Value::Null,
        target_rows_saved: None,
    })
}

// ---------------------------------------------------------------------------------------------
// Verification: per table, count(*) and the sum of a 64-bit MD5 prefix of each row's text.

const TABLES_SQL: &str =
    "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables \
     WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1;";

fn checksum_sql(tables: &[String]) -> String {
    tables
        .iter()
        .map(|t| {
            format!(
                "SELECT count(*) || '|' || coalesce(sum(('x' || substr(md5(t::text), 1, 16))::bit(64)::bigint::numeric), 0) FROM {t} t;\n"
            )
        })
        .collect()
}

pub(crate) fn source_figures(
    src: &SourceHost,
    p: &DbParams,
) -> Result<BTreeMap<String, Figures>, Failure> {
    let tables = nonempty_lines(&source_sql(
        src,
        p,
        TABLES_SQL,
        "listing the source's tables",
    )?);
    if tables.is_empty() {
        return Ok(BTreeMap::new());
    }
    let out = source_sql(
        src,
        p,
        &checksum_sql(&tables),
        "checksumming the source's tables",
    )?;
    Ok(figures_from_lines(tables, &out, '|'))
}

pub(crate) fn target_figures(
    tgt: &TargetHost,
    opts: &CopyOptions,
    p: &DbParams,
) -> Result<BTreeMap<String, Figures>, Failure> {
    check_admin(opts)?;
    let db = &p.name;
    let exists = target_sql(
        tgt,
        "postgres",
        &format!(
            "SELECT count(*) FROM pg_database WHERE datname = {};",
            lit(db)
        ),
        "reading the target database server",
        &[],
    )?;
    if exists.trim() == "0" {
        return Ok(BTreeMap::new());
    }
    let tables = nonempty_lines(&target_sql(
        tgt,
        db,
        TABLES_SQL,
        "listing the target's tables",
        &[],
    )?);
    if tables.is_empty() {
        return Ok(BTreeMap::new());
    }
    let out = target_sql(
        tgt,
        db,
        &checksum_sql(&tables),
        "checksumming the target's tables",
        &[],
    )?;
    Ok(figures_from_lines(tables, &out, '|'))
}
