//! Verification of the database leg: per table, the row count and a content checksum read on
//! each side with that side's own server (SQL aggregates; nothing is fetched row by row), compared.
//! The source is only read (SELECT in a read-only session; SQLite opened immutable, or a fresh copy
//! of its files read on the target when a WAL is live).

use super::{
    mysql, pgsql, read_params, source_web_user, sqlite, sqlite_file, CopyOptions, DbKind, DbParams,
};
use crate::exit::Failure;
use crate::host::{SourceHost, TargetHost};
use crate::migration::Migration;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

/// One table's figures on one side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Figures {
    pub rows: u64,
    /// MySQL/PostgreSQL: the sum of a 64-bit MD5 prefix of every row (order-independent);
    /// SQLite: SHA3-256 of the rows in rowid order.
    pub checksum: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableCheck {
    pub table: String,
    pub source: Option<Figures>,
    pub target: Option<Figures>,
    pub equal: bool,
}

/// The database verification, for `verify` and the report.
#[derive(Debug, Clone, Serialize)]
pub struct DbVerification {
    pub kind: DbKind,
    pub database: String,
    pub equal: bool,
    pub tables: Vec<TableCheck>,
    /// How the source's figures were read.
    pub source_read: String,
    pub seconds: f64,
}

impl DbVerification {
    /// The tables that differ (or exist on one side only).
    pub fn differences(&self) -> Vec<&TableCheck> {
        self.tables.iter().filter(|t| !t.equal).collect()
    }

    /// A table for people.
    pub fn render(&self) -> String {
        let w = self
            .tables
            .iter()
            .map(|t| t.table.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let mut s = format!(
            "Database {} ({:?}): {}\n",
            self.database,
            self.kind,
            if self.equal {
                "equal on both sides".to_string()
            } else {
                format!("{} table(s) DIFFER", self.differences().len())
            }
        );
        s.push_str(&format!(
            "  {:<w$}  {:>10}  {:>10}  {:<16}  {:<16}  {}\n",
            "table", "src rows", "tgt rows", "src checksum", "tgt checksum", ""
        ));
        let short = |f: &Option<Figures>| {
            f.as_ref()
                .map(|f| f.checksum.chars().take(16).collect::<String>())
                .unwrap_or_else(|| "-".into())
        };
        let rows = |f: &Option<Figures>| {
            f.as_ref()
                .map(|f| f.rows.to_string())
                .unwrap_or_else(|| "missing".into())
        };
        for t in &self.tables {
            s.push_str(&format!(
                "  {:<w$}  {:>10}  {:>10}  {:<16}  {:<16}  {}\n",
                t.table,
                rows(&t.source),
                rows(&t.target),
                short(&t.source),
                short(&t.target),
                if t.equal { "ok" } else { "DIFFERS" }
            ));
        }
        s.push_str(&format!(
            "  (source read: {}; {:.1} s)\n",
            self.source_read, self.seconds
        ));
        s
    }
}

/// Figures from a query's output: one line per table, `rows<sep>checksum`, in `tables`' order.
pub(crate) fn figures_from_lines(
    tables: Vec<String>,
    out: &str,
    sep: char,
) -> BTreeMap<String, Figures> {
    tables
        .into_iter()
        .zip(out.lines())
        .map(|(t, l)| {
            let (n, s) = l.split_once(sep).unwrap_or((l, ""));
            (
                t,
                Figures {
                    rows: n.trim().parse().unwrap_or(0),
                    checksum: s.trim().to_string(),
                },
            )
        })
        .collect()
}

/// The non-empty lines of a query's output, trimmed (table names, one a line).
pub(crate) fn nonempty_lines(s: &str) -> Vec<String> {
    s.lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

pub(crate) fn compare(
    src: BTreeMap<String, Figures>,
    tgt: BTreeMap<String, Figures>,
) -> (bool, Vec<TableCheck>) {
    let names: BTreeSet<&String> = src.keys().chain(tgt.keys()).collect();
    let tables: Vec<TableCheck> = names
        .into_iter()
        .map(|n| {
            let s = src.get(n).cloned();
            let t = tgt.get(n).cloned();
            TableCheck {
                table: n.clone(),
                equal: s.is_some() && s == t,
                source: s,
                target: t,
            }
        })
        .collect();
    (tables.iter().all(|t| t.equal), tables)
}

/// Verify the migration's database: per table, rows and checksum on both sides.
pub fn verify(m: &Migration) -> Result<DbVerification, Failure> {
    verify_between(&m.source, &m.target, &CopyOptions::for_migration(m))
}

pub fn verify_between(
    src: &SourceHost,
    tgt: &TargetHost,
    opts: &CopyOptions,
) -> Result<DbVerification, Failure> {
    let t = Instant::now();
    let web_user = source_web_user(src, opts.web_user.as_deref())?;
    let p = read_params(src, &web_user)?;
    // The two sides are read by their own servers: at the same time.
    let (s, t_) = std::thread::scope(|sc| {
        let s = sc.spawn(|| source_side(src, tgt, &p));
        let t_ = target_side(tgt, opts, &p);
        (
            s.join()
                .unwrap_or_else(|_| Err(Failure::check("reading the source's figures panicked"))),
            t_,
        )
    });
    Ok(compare_sides(&p, s?, t_?, t))
}

/// The source's side of the verification: per table, rows and checksum, and how they were read
/// (read-only; see the module comment).
pub fn source_side(
    src: &SourceHost,
    tgt: &TargetHost,
    p: &DbParams,
) -> Result<SourceFigures, Failure> {
    Ok(match p.kind {
        DbKind::Mysql => SourceFigures(
            mysql::source_figures(src, p)?,
            "SELECT in a read-only session".to_string(),
        ),
        DbKind::Pgsql => SourceFigures(
            pgsql::source_figures(src, p)?,
            "SELECT in a read-only session".to_string(),
        ),
        DbKind::Sqlite => {
            let (s, how) = sqlite::source_figures(src, tgt, p)?;
            SourceFigures(s, how.to_string())
        }
    })
}

/// The target's side of the verification: per table, rows and checksum.
pub fn target_side(
    tgt: &TargetHost,
    opts: &CopyOptions,
    p: &DbParams,
) -> Result<BTreeMap<String, Figures>, Failure> {
    match p.kind {
        DbKind::Mysql => mysql::target_figures(tgt, opts, p),
        DbKind::Pgsql => pgsql::target_figures(tgt, opts, p),
        DbKind::Sqlite => sqlite::target_figures(tgt, p),
    }
}

/// The source's figures per table, and how they were read.
#[derive(Debug, Clone)]
pub struct SourceFigures(pub BTreeMap<String, Figures>, pub String);

/// Both sides compared, table by table; `t` is when the verification started.
pub fn compare_sides(
    p: &DbParams,
    s: SourceFigures,
    t_: BTreeMap<String, Figures>,
    t: Instant,
) -> DbVerification {
    let (equal, tables) = compare(s.0, t_);
    DbVerification {
        kind: p.kind,
        database: if p.kind == DbKind::Sqlite {
            sqlite_file(p).display().to_string()
        } else {
            p.name.clone()
        },
        equal,
        tables,
        source_read: s.1,
        seconds: super::elapsed(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_finds_changed_and_missing_tables() {
        let f = |r, c: &str| Figures {
            rows: r,
            checksum: c.into(),
        };
        let s = BTreeMap::from([("a".to_string(), f(1, "x")), ("b".to_string(), f(2, "y"))]);
        let t = BTreeMap::from([("a".to_string(), f(1, "x")), ("c".to_string(), f(0, "0"))]);
        let (eq, tables) = compare(s.clone(), s.clone());
        assert!(eq && tables.len() == 2);
        let (eq, tables) = compare(s, t);
        assert!(!eq);
        assert_eq!(
            tables
                .iter()
                .filter(|t| !t.equal)
                .map(|t| t.table.as_str())
                .collect::<Vec<_>>(),
            vec!["b", "c"]
        );
    }
}
