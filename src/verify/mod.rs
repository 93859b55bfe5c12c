//! Verification: the checks that prove a migration kept what clients depend on.
//!
//! Here: the file cache check. For every `oc_filecache` row of each home storage, the file on
//! the target must have `mtime == storage_mtime` and (unless encrypted) `size == size`: the exact
//! condition under which ownCloud keeps its ETags, so that clients download nothing. The same
//! read-only program runs on the source, so rows that already disagreed there are reported apart:
//! the migration did not cause them. (Files manifests are the transfer engine's; per-table
//! database checksums are `db::verify`'s.)

use crate::exit::Failure;
use crate::host::{Probe, Ran, ReadSide, SourceHost, TargetHost};
use crate::inventory::PRELUDE_PHP;
use serde::{Deserialize, Serialize};

const FILECACHE_PHP: &str = include_str!("filecache.php");

/// How many mismatching rows a check lists (all are counted).
pub const LIST_LIMIT: usize = 200;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mismatch {
    pub user: String,
    pub path: String,
    pub fileid: u64,
    /// `missing`, `mtime` or `size`.
    pub kind: String,
    pub cache: Option<i64>,
    pub disk: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FileCacheScan {
    pub rows: u64,
    pub storages: u64,
    pub mismatch_count: u64,
    pub mismatches: Vec<Mismatch>,
    pub error: Option<String>,
}

/// The file cache check's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct FileCacheCheck {
    pub rows: u64,
    pub storages: u64,
    /// Rows that disagree on the target but agree on the source: caused by the migration.
    pub new_mismatches: Vec<Mismatch>,
    pub new_mismatch_count: u64,
    /// Rows that already disagreed on the source.
    pub preexisting: Vec<Mismatch>,
    pub preexisting_count: u64,
}

impl FileCacheCheck {
    pub fn passed(&self) -> bool {
        self.new_mismatch_count == 0
    }
}

fn snippet() -> &'static str {
    static S: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    S.get_or_init(|| format!("{PRELUDE_PHP}\n{FILECACHE_PHP}"))
}

/// The read-only scan of the instance at `root`: every row, or only `fileids`, and of those
/// only the ones whose file id is `k` modulo `n` when `shard` is `(k, n)` (filecache.php).
fn probe(root: &std::path::Path, fileids: &[u64], shard: Option<(usize, usize)>) -> Probe {
    // The snippet is built once and lives for the whole run.
    let s: &'static str = snippet();
    let ids: Vec<String> = fileids.iter().map(u64::to_string).collect();
    let mut args = vec![
        root.display().to_string(),
        LIST_LIMIT.to_string(),
        ids.join(","),
    ];
    if let Some((k, n)) = shard {
        args.push(format!("{k}/{n}"));
    }
    Probe::PhpRead { snippet: s, args }
}

fn parse(label: &str, r: &Ran) -> Result<FileCacheScan, Failure> {
    let text = r.stdout_text();
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or("");
    let scan: FileCacheScan = serde_json::from_str(line).map_err(|e| {
        Failure::check(format!(
            "{label}: the file cache check gave no usable answer ({e}): {}",
            r.stderr_text()
        ))
    })?;
    if let Some(err) = &scan.error {
        return Err(Failure::check(format!(
            "{label}: the file cache check failed: {err}"
        )));
    }
    Ok(scan)
}

/// How many PHP processes share a whole scan (by file id modulo this): the walk is CPU-bound
/// (a row fetched, a file stat'ed), and the hosts have more than one core.
const SHARDS: usize = 2;

/// A whole scan of `side`, in [`SHARDS`] processes at once, their answers merged.
fn scan_all(side: &ReadSide, web_user: &str) -> Result<FileCacheScan, Failure> {
    let parts: Vec<Result<FileCacheScan, Failure>> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..SHARDS)
            .map(|k| {
                sc.spawn(move || {
                    let p = probe(side.root(), &[], Some((k, SHARDS)));
                    parse(side.label(), &side.probe_as(web_user, &p)?)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| crate::exit::joined(h.join(), "a file cache scan"))
            .collect()
    });
    let mut all = FileCacheScan::default();
    for part in parts {
        let part = part?;
        all.rows += part.rows;
        all.storages = all.storages.max(part.storages);
        all.mismatch_count += part.mismatch_count;
        all.mismatches.extend(part.mismatches);
    }
    all.mismatches.sort_by_key(|m| m.fileid);
    all.mismatches.truncate(LIST_LIMIT);
    Ok(all)
}

/// Scan the source (as its web user): which rows disagree with its own disk.
pub fn scan_source(src: &SourceHost, web_user: &str) -> Result<FileCacheScan, Failure> {
    scan_all(src, web_user)
}

/// What the source says of the rows that disagree on the target (`target`): when the target
/// listed all of them, only those rows are read on the source; else the whole source is scanned.
pub fn scan_source_for(
    src: &SourceHost,
    web_user: &str,
    target: &FileCacheScan,
) -> Result<FileCacheScan, Failure> {
    if target.mismatch_count > target.mismatches.len() as u64 {
        return scan_source(src, web_user);
    }
    let ids: Vec<u64> = target.mismatches.iter().map(|m| m.fileid).collect();
    parse(
        src.label(),
        &src.probe_as(web_user, &probe(src.root(), &ids, None))?,
    )
}

/// Scan the target (as its web user).
pub fn scan_target(tgt: &TargetHost, web_user: &str) -> Result<FileCacheScan, Failure> {
    scan_all(tgt, web_user)
}

/// Compare a target scan with the source's: mismatches seen on both are pre-existing.
pub fn compare(source: &FileCacheScan, target: &FileCacheScan) -> FileCacheCheck {
    let key = |m: &Mismatch| (m.user.clone(), m.path.clone(), m.kind.clone());
    let on_source: std::collections::HashSet<_> = source.mismatches.iter().map(key).collect();
    let (pre, new): (Vec<Mismatch>, Vec<Mismatch>) = target
        .mismatches
        .iter()
        .cloned()
        .partition(|m| on_source.contains(&key(m)));
    // Counts: the listed ones are exact; beyond the list, attribute the rest by the totals.
    let pre_count = (pre.len() as u64).max(source.mismatch_count.min(target.mismatch_count));
    let new_count = target
        .mismatch_count
        .saturating_sub(pre_count)
        .max(new.len() as u64);
    FileCacheCheck {
        rows: target.rows,
        storages: target.storages,
        new_mismatches: new,
        new_mismatch_count: new_count,
        preexisting: pre,
        preexisting_count: pre_count,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(path: &str, kind: &str) -> Mismatch {
        Mismatch {
            user: "u".into(),
            path: path.into(),
            kind: kind.into(),
            ..Default::default()
        }
    }

    #[test]
    fn preexisting_mismatches_are_apart() {
        let src = FileCacheScan {
            rows: 10,
            mismatch_count: 1,
            mismatches: vec![m("files/a", "mtime")],
            ..Default::default()
        };
        let tgt = FileCacheScan {
            rows: 10,
            mismatch_count: 2,
            mismatches: vec![m("files/a", "mtime"), m("files/b", "size")],
            ..Default::default()
        };
        let c = compare(&src, &tgt);
        assert!(!c.passed());
        assert_eq!(c.new_mismatch_count, 1);
        assert_eq!(c.new_mismatches[0].path, "files/b");
        assert_eq!(c.preexisting_count, 1);
        let clean = compare(
            &src,
            &FileCacheScan {
                rows: 10,
                mismatch_count: 1,
                mismatches: vec![m("files/a", "mtime")],
                ..Default::default()
            },
        );
        assert!(clean.passed());
    }

    #[test]
    fn the_program_is_valid_php() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("check.php");
        std::fs::write(&f, format!("<?php\n{}", snippet())).unwrap();
        let out = std::process::Command::new("php")
            .arg("-l")
            .arg(&f)
            .output()
            .expect("php must be installed (apt install php-cli)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
