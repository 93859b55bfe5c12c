//! Verification: the checks that prove a migration kept what clients depend on.
//!
//! Here: the file cache check. For every `oc_filecache` row of each home storage, the file on
//! the target must have `mtime == storage_mtime` and (unless encrypted) `size == size`: the exact
//! condition under which ownCloud keeps its ETags, so that clients download nothing. The same
//! read-only program runs on the source, so rows that already disagreed there are reported apart:
//! the migration did not cause them. (Files manifests are the transfer engine's; per-table
//! database checksums are `db::verify`'s.)

use crate::agent::proto::FileType;
use crate::exit::Failure;
use crate::host::{Probe, Ran, ReadSide, SourceHost, TargetHost};
use crate::inventory::PRELUDE_PHP;
use crate::transfer::ScannedTree;
use serde::{Deserialize, Serialize};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

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

/// One storage's rows as `filecache.php rows` prints them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageRows {
    pub user: String,
    /// The storage's folder (the user's home) on the host that was read.
    pub base: Vec<u8>,
    pub rows: Vec<Row>,
}

/// One `oc_filecache` row: what the check compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub fileid: u64,
    pub storage_mtime: i64,
    pub size: i64,
    pub dir: bool,
    pub encrypted: bool,
    /// Relative to the storage's folder (`files/a.txt`; empty: the folder itself).
    pub path: Vec<u8>,
}

/// `%XX` escapes (PHP's `rawurlencode`) back to bytes.
fn unescape(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Parse `filecache.php rows`'s answer: storages and rows, then the end line with their counts
/// (an answer without it, or with other counts, was cut short).
pub fn parse_rows(text: &str) -> Result<Vec<StorageRows>, String> {
    let mut out: Vec<StorageRows> = Vec::new();
    let mut rows = 0u64;
    for (n, line) in text.lines().enumerate() {
        let bad = || {
            format!(
                "line {}: unexpected '{}'",
                n + 1,
                line.chars().take(80).collect::<String>()
            )
        };
        let f: Vec<&str> = line.split('\t').collect();
        match f.as_slice() {
            ["S", user, base] => out.push(StorageRows {
                user: String::from_utf8_lossy(&unescape(user).ok_or_else(bad)?).into_owned(),
                base: unescape(base).ok_or_else(bad)?,
                rows: Vec::new(),
            }),
            ["E", r, st] => {
                return if r.parse::<u64>().ok() == Some(rows)
                    && st.parse::<usize>().ok() == Some(out.len())
                {
                    Ok(out)
                } else {
                    Err(format!(
                        "the end line says {r} rows of {st} storages, {rows} of {} arrived",
                        out.len()
                    ))
                };
            }
            [id, mtime, size, kind, enc, path] => {
                let row = Row {
                    fileid: id.parse().map_err(|_| bad())?,
                    storage_mtime: mtime.parse().map_err(|_| bad())?,
                    size: size.parse().map_err(|_| bad())?,
                    dir: *kind == "d",
                    encrypted: *enc == "1",
                    path: unescape(path).ok_or_else(bad)?,
                };
                out.last_mut().ok_or_else(bad)?.rows.push(row);
                rows += 1;
            }
            _ if line.starts_with('{') => {
                let err: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
                return Err(err["error"].as_str().unwrap_or(line).to_string());
            }
            _ => return Err(bad()),
        }
    }
    Err(format!(
        "the answer was cut short after {rows} rows (no end line)"
    ))
}

/// Read every file cache row of the home storages of the instance at `side`'s root (read-only,
/// PHP CLI as the web user), without looking at its disk.
pub fn read_rows(side: &ReadSide, web_user: &str) -> Result<Vec<StorageRows>, Failure> {
    let mut p = probe(side.root(), &[], None);
    if let Probe::PhpRead { args, .. } = &mut p {
        args.extend(["".to_string(), "rows".to_string()]);
    }
    let r = side.probe_as(web_user, &p)?;
    parse_rows(&r.stdout_text()).map_err(|e| {
        Failure::check(format!(
            "{}: reading the file cache failed: {e} {}",
            side.label(),
            r.stderr_text()
        ))
    })
}

/// The file cache check against manifests of the disk instead of the disk itself: `scans` are
/// complete walks of the host's trees made while nothing else wrote there (the final sync's
/// exit check, in the window). The PHP check's test, row for row, on the disk as the walk saw
/// it: `lstat`'s whole seconds against `storage_mtime`, the size for files that are not
/// encrypted, a row without its file is `missing`. Returns the scan, and the rows for which a
/// manifest may not say what `lstat` of the joined path would, which are for the disk itself:
/// outside every tree, left out by a tree's filter, under a path the walk could not read or
/// under a symlink, in a tree whose root could not be read, a tree's root itself (the walk
/// opens it following symlinks), or a path with an empty, `.` or `..` part.
pub fn check_rows(storages: &[StorageRows], scans: &[ScannedTree]) -> (FileCacheScan, Vec<u64>) {
    let mut out = FileCacheScan::default();
    let mut uncovered = Vec::new();
    for st in storages {
        out.storages += 1;
        let base = Path::new(std::ffi::OsStr::from_bytes(&st.base));
        // The tree that holds this storage, and the storage's folder inside it.
        let tree = scans.iter().find_map(|t| {
            let rel = base.strip_prefix(&t.root).ok()?;
            Some((t, rel.as_os_str().as_bytes().to_vec()))
        });
        for r in &st.rows {
            out.rows += 1;
            let Some((t, rel_base)) = &tree else {
                uncovered.push(r.fileid);
                continue;
            };
            let mut rel = rel_base.clone();
            if !r.path.is_empty() {
                if !rel.is_empty() {
                    rel.push(b'/');
                }
                rel.extend_from_slice(&r.path);
            }
            let ft = if r.dir { FileType::Dir } else { FileType::File };
            let m = &t.manifest;
            let odd = rel.is_empty()
                || rel
                    .split(|&b| b == b'/')
                    .any(|c| c.is_empty() || c == b"." || c == b"..");
            if odd || m.root_error.is_some() || !t.filter.keep(&rel, ft) || m.under_skipped(&rel) {
                uncovered.push(r.fileid);
                continue;
            }
            let (kind, cache, disk) = match m.find(&rel) {
                // Under a symlink the walk did not follow (PHP's stat would): for the disk.
                None if behind_symlink(m, &rel) => {
                    uncovered.push(r.fileid);
                    continue;
                }
                None => ("missing", None, None),
                Some(e) if e.mtime.sec != r.storage_mtime => {
                    ("mtime", Some(r.storage_mtime), Some(e.mtime.sec))
                }
                Some(e) if !r.dir && !r.encrypted && e.size as i64 != r.size => {
                    ("size", Some(r.size), Some(e.size as i64))
                }
                Some(_) => continue,
            };
            out.mismatch_count += 1;
            if out.mismatches.len() < LIST_LIMIT {
                out.mismatches.push(Mismatch {
                    user: st.user.clone(),
                    path: String::from_utf8_lossy(&r.path).into_owned(),
                    fileid: r.fileid,
                    kind: kind.into(),
                    cache,
                    disk,
                });
            }
        }
    }
    (out, uncovered)
}

/// Returns true if and only if a folder above `rel` is a symlink in `m`.
fn behind_symlink(m: &crate::transfer::manifest::Manifest, rel: &[u8]) -> bool {
    rel.iter()
        .enumerate()
        .filter(|(_, &b)| b == b'/')
        .any(|(i, _)| {
            m.find(&rel[..i])
                .is_some_and(|e| e.file_type == FileType::Symlink)
        })
}

/// The rows of `uncovered` (at most [`UNCOVERED_BY_ID`]) checked on `tgt`'s disk itself (PHP),
/// added to `scan`.
pub fn check_uncovered(
    tgt: &TargetHost,
    web_user: &str,
    mut scan: FileCacheScan,
    uncovered: &[u64],
) -> Result<FileCacheScan, Failure> {
    if uncovered.is_empty() {
        return Ok(scan);
    }
    let more = parse(
        tgt.label(),
        &tgt.probe_as(web_user, &probe(tgt.root(), uncovered, None))?,
    )?;
    scan.mismatch_count += more.mismatch_count;
    scan.mismatches.extend(more.mismatches);
    scan.mismatches.sort_by_key(|m| m.fileid);
    scan.mismatches.truncate(LIST_LIMIT);
    Ok(scan)
}

/// At most this many rows are checked on the disk by file id (a command line carries them).
pub const UNCOVERED_BY_ID: usize = 2_000;

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

    fn entry(p: &str, ft: FileType, size: u64, sec: i64) -> crate::agent::proto::Entry {
        crate::agent::proto::Entry {
            path: crate::agent::proto::RelPath::new(p.as_bytes().to_vec()).unwrap(),
            file_type: ft,
            mode: 0o640,
            uid: 33,
            gid: 33,
            size,
            mtime: crate::agent::proto::Time { sec, nsec: 123 },
            ctime: crate::agent::proto::Time { sec, nsec: 0 },
            dev: 1,
            ino: 1,
            nlink: 1,
            target: if ft == FileType::Symlink {
                b"/elsewhere".to_vec()
            } else {
                vec![]
            },
        }
    }

    fn row(id: u64, path: &str, mtime: i64, size: i64, dir: bool) -> Row {
        Row {
            fileid: id,
            storage_mtime: mtime,
            size,
            dir,
            encrypted: false,
            path: path.as_bytes().to_vec(),
        }
    }

    /// The manifest check gives the PHP check's verdict row for row, and hands back what no
    /// manifest covers.
    #[test]
    fn rows_against_a_manifest_of_the_disk() {
        use crate::transfer::manifest::{Manifest, Skip};
        let mut m = Manifest::from_entries([
            entry("", FileType::Dir, 0, 1),
            entry("u1", FileType::Dir, 0, 10),
            entry("u1/files", FileType::Dir, 0, 11),
            entry("u1/files/a.txt", FileType::File, 5, 100),
            entry("u1/files/b.txt", FileType::File, 6, 200),
            entry("u1/files/c.txt", FileType::File, 7, 300),
            entry("u1/files/enc.bin", FileType::File, 999, 400),
            entry("u1/files/link", FileType::Symlink, 10, 500),
            entry("u1/files/locked", FileType::Dir, 0, 600),
            entry(".ocmigrate-sqlite.x", FileType::Dir, 0, 1),
        ]);
        m.skipped.push(Skip {
            path: crate::agent::proto::RelPath::new(b"u1/files/locked".to_vec()).unwrap(),
            code: crate::agent::proto::ErrorCode::Io,
            message: "denied".into(),
        });
        let scans = vec![ScannedTree {
            root: "/srv/data".into(),
            filter: crate::transfer::Filter::Everything,
            manifest: std::sync::Arc::new(m),
        }];
        let mut enc = row(7, "files/enc.bin", 400, 5, false);
        enc.encrypted = true;
        let storages = vec![
            StorageRows {
                user: "u1".into(),
                base: b"/srv/data/u1".to_vec(),
                rows: vec![
                    row(1, "", 10, 0, true),
                    row(2, "files", 11, 4096, true), // a folder's size is not compared
                    row(3, "files/a.txt", 100, 5, false),
                    row(4, "files/b.txt", 201, 6, false), // mtime
                    row(5, "files/c.txt", 300, 8, false), // size
                    row(6, "files/gone.txt", 1, 1, false), // missing
                    enc,                                  // encrypted: its size is not compared
                    row(8, "files/link/x.txt", 1, 1, false), // behind a symlink: the disk's
                    row(9, "files/locked/y", 1, 1, false), // unreadable to the walk: the disk's
                ],
            },
            StorageRows {
                user: "u2".into(),
                base: b"/home/u2".to_vec(), // outside every tree
                rows: vec![row(10, "files", 1, 0, true)],
            },
        ];
        let (scan, uncovered) = check_rows(&storages, &scans);
        assert_eq!((scan.rows, scan.storages), (10, 2));
        let got: Vec<(u64, &str, Option<i64>, Option<i64>)> = scan
            .mismatches
            .iter()
            .map(|m| (m.fileid, m.kind.as_str(), m.cache, m.disk))
            .collect();
        assert_eq!(
            got,
            vec![
                (4, "mtime", Some(201), Some(200)),
                (5, "size", Some(8), Some(7)),
                (6, "missing", None, None)
            ]
        );
        assert_eq!(scan.mismatch_count, 3);
        assert_eq!(uncovered, vec![8, 9, 10]);

        // A home that is a tree of its own (outside the data folder): its root row is for the
        // disk (the walk opened the root following symlinks); what a filter leaves out, and
        // paths with `..`, `.` or empty parts are for the disk too.
        let home = Manifest::from_entries([
            entry("", FileType::Dir, 0, 1),
            entry("files", FileType::Dir, 0, 2),
            entry("files/a.txt", FileType::File, 3, 4),
        ]);
        let own = vec![ScannedTree {
            root: "/home/u3".into(),
            filter: crate::transfer::Filter::Except(vec![b"cache".to_vec()]),
            manifest: std::sync::Arc::new(home),
        }];
        let u3 = vec![StorageRows {
            user: "u3".into(),
            base: b"/home/u3/".to_vec(),
            rows: vec![
                row(20, "", 1, 0, true),
                row(21, "files/a.txt", 4, 3, false),
                row(22, "cache/x", 1, 1, false),
                row(23, "files/../files/a.txt", 4, 3, false),
                row(24, "files//a.txt", 4, 3, false),
                row(25, "files/b.txt", 4, 3, false),
            ],
        }];
        let (scan, uncovered) = check_rows(&u3, &own);
        assert_eq!(uncovered, vec![20, 22, 23, 24]);
        assert_eq!(scan.mismatch_count, 1);
        assert_eq!(
            (scan.mismatches[0].fileid, scan.mismatches[0].kind.as_str()),
            (25, "missing")
        );

        // A tree whose root could not be read covers nothing.
        let mut broken = (*scans[0].manifest).clone();
        broken.root_error = Some((crate::agent::proto::ErrorCode::Io, "gone".into()));
        let scans = vec![ScannedTree {
            manifest: std::sync::Arc::new(broken),
            ..scans[0].clone()
        }];
        let (scan, uncovered) = check_rows(&storages[..1], &scans);
        assert_eq!((scan.mismatch_count, uncovered.len()), (0, 9));
    }

    #[test]
    fn the_rows_answer_is_parsed_and_a_cut_one_refused() {
        let text = "S\tu%201\t%2Fsrv%2Fdata%2Fu%201\n\
                    1\t10\t0\td\t0\t\n\
                    2\t11\t5\tf\t1\tfiles%2Fa%09b%0A.txt\n\
                    S\tu2\t%2Fsrv%2Fdata%2Fu2\n\
                    E\t2\t2\n";
        let st = parse_rows(text).unwrap();
        assert_eq!(st.len(), 2);
        assert_eq!(st[0].user, "u 1");
        assert_eq!(st[0].base, b"/srv/data/u 1");
        assert_eq!(st[0].rows[0], row(1, "", 10, 0, true));
        let mut r = row(2, "files/a\tb\n.txt", 11, 5, false);
        r.encrypted = true;
        assert_eq!(st[0].rows[1], r);
        assert!(st[1].rows.is_empty());
        // Without the end line, or with other counts: cut short.
        let cut = text.rsplit_once("E\t").unwrap().0;
        assert!(parse_rows(cut).unwrap_err().contains("cut short"));
        assert!(parse_rows(&text.replace("E\t2\t2", "E\t3\t2")).is_err());
        assert!(
            parse_rows("1\t2\t3\tf\t0\tx\n").is_err(),
            "a row before any storage"
        );
        assert!(parse_rows("S\tu\t%zz\nE\t0\t1\n").is_err());
        assert!(parse_rows("S\tu\t%+1\nE\t0\t1\n").is_err());
        assert_eq!(
            parse_rows("{\"error\":\"db: refused\"}\n").unwrap_err(),
            "db: refused"
        );
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
