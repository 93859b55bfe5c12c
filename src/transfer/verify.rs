//! File verification (SPEC "Verification", Files): both sides' manifests compared attribute by
//! attribute — path, type, size, mtime to the nanosecond, mode, owner and group (mapped by name
//! to the target's), symlink target, hard-link groups — and with `content` a BLAKE3 of every
//! regular file, computed by agents on each host in parallel. It shares the scanner with `sync`,
//! not the diff: an independent comparison of what is there.

use super::manifest::{EntryRef, Manifest, Skip};
use super::owners::OwnerMap;
use crate::agent::client::AgentClient;
use crate::agent::proto::{FileType, RelPath, Target};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// How many differences are listed (all are counted).
pub const LIST_LIMIT: usize = 20;

/// The verdict on the files.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FileVerification {
    pub equal: bool,
    pub trees: Vec<String>,
    pub entries: u64,
    pub files: u64,
    pub bytes: u64,
    /// Files whose bytes were hashed on both sides (`content`).
    pub files_hashed: u64,
    pub bytes_hashed: u64,
    /// The first differences, one line each.
    pub differences: Vec<String>,
    pub difference_count: u64,
    /// Differences by kind (`missing`, `extra`, `type`, `size`, `mtime`, `mode`, `owner`,
    /// `group`, `symlink`, `hardlink`, `content`, `unreadable`).
    pub counts: BTreeMap<String, u64>,
    pub seconds: f64,
    /// A pass's exit check: what it read again (`target, against the pass's source manifests`,
    /// or `both sides, on the pass's agents`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub read: String,
    /// A pass's exit check: trees whose source it scanned again, each with why (a target-only
    /// check does so only where its own manifest is not current or not there).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub source_read: Vec<String>,
    /// A pass's exit check, when asked ([`super::SyncOptions::keep_target_scans`]): the target's
    /// trees as it read them, so that a check right after needs not read the disk again.
    #[serde(skip)]
    pub target_scans: Vec<ScannedTree>,
}

/// One tree of the target's disk as an exit check read it: a complete walk made while nothing
/// but ocmigrate wrote there (the final sync, in the window).
#[derive(Debug, Clone)]
pub struct ScannedTree {
    /// The tree's absolute path on the target.
    pub root: std::path::PathBuf,
    /// What the walk left out (those paths are not in `manifest`).
    pub filter: super::Filter,
    pub manifest: std::sync::Arc<super::manifest::Manifest>,
}

impl FileVerification {
    pub(crate) fn add(&mut self, kind: &str, path: &str, detail: String) {
        self.difference_count += 1;
        *self.counts.entry(kind.to_string()).or_default() += 1;
        if self.differences.len() < LIST_LIMIT {
            self.differences.push(format!("{kind}: {path}: {detail}"));
        }
    }

    /// Lines for people.
    pub fn render(&self) -> String {
        let mut s = String::new();
        if self.equal {
            s.push_str(&format!(
                "Files: equal on both sides ({} entries, {} files, {} bytes{}) in {}\n",
                self.entries,
                self.files,
                self.bytes,
                if self.files_hashed > 0 {
                    format!("; {} files hashed", self.files_hashed)
                } else {
                    String::new()
                },
                self.trees.join(", ")
            ));
            return s;
        }
        s.push_str(&format!(
            "Files: {} difference(s) ({}) in {}\n",
            self.difference_count,
            self.counts
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", "),
            self.trees.join(", ")
        ));
        for d in &self.differences {
            s.push_str(&format!("  {d}\n"));
        }
        if self.difference_count > self.differences.len() as u64 {
            s.push_str(&format!(
                "  … and {} more\n",
                self.difference_count - self.differences.len() as u64
            ));
        }
        s
    }
}

fn show(tree: &str, p: &RelPath) -> String {
    if p.is_root() {
        format!("{tree}:/")
    } else {
        format!("{tree}:/{p}")
    }
}

fn t(e: &EntryRef) -> String {
    format!("{}.{:09}", e.mtime.sec, e.mtime.nsec)
}

/// Compare one tree's manifests; `content` pairs (path, size) of files to hash are returned.
pub fn compare(
    tree: &str,
    src: &Manifest,
    tgt: &Manifest,
    owners: &OwnerMap,
    v: &mut FileVerification,
) -> Vec<RelPath> {
    let mut to_hash = Vec::new();
    if let Some((_, msg)) = &src.root_error {
        v.add("unreadable", &format!("{tree}:/"), format!("source: {msg}"));
        return to_hash;
    }
    for Skip { path, message, .. } in &src.skipped {
        v.add(
            "unreadable",
            &show(tree, path),
            format!("source: {message}"),
        );
    }
    for Skip { path, message, .. } in &tgt.skipped {
        v.add(
            "unreadable",
            &show(tree, path),
            format!("target: {message}"),
        );
    }
    let sl = src.link_leaders();
    let tl = tgt.link_leaders();
    let (mut i, mut j) = (0, 0);
    while i < src.len() || j < tgt.len() {
        let (si, tj) = (src.get(i), tgt.get(j));
        let ord = match (&si, &tj) {
            (Some(a), Some(b)) => a.path.cmp(&b.path),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match ord {
            std::cmp::Ordering::Less => {
                let s = si.expect("less: a source entry");
                if !src.under_skipped(s.path.as_bytes()) {
                    v.add(
                        "missing",
                        &show(tree, &s.path.to_rel()),
                        "not on the target".into(),
                    );
                }
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                let x = tj.expect("greater: a target entry");
                if !src.under_skipped(x.path.as_bytes()) {
                    v.add(
                        "extra",
                        &show(tree, &x.path.to_rel()),
                        "only on the target".into(),
                    );
                }
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                let (s, x) = (si.expect("equal"), tj.expect("equal"));
                let (s, x) = (&s, &x);
                i += 1;
                j += 1;
                v.entries += 1;
                let p = show(tree, &s.path.to_rel());
                if s.file_type != x.file_type {
                    v.add(
                        "type",
                        &p,
                        format!(
                            "{:?} on the source, {:?} on the target",
                            s.file_type, x.file_type
                        ),
                    );
                    continue;
                }
                if s.file_type == FileType::File {
                    v.files += 1;
                    v.bytes += s.size;
                    if s.size != x.size {
                        v.add(
                            "size",
                            &p,
                            format!("{} on the source, {} on the target", s.size, x.size),
                        );
                    }
                }
                if s.file_type == FileType::Symlink && s.target != x.target {
                    v.add(
                        "symlink",
                        &p,
                        format!(
                            "→ {:?} on the source, → {:?} on the target",
                            String::from_utf8_lossy(s.target),
                            String::from_utf8_lossy(x.target)
                        ),
                    );
                }
                if s.mtime != x.mtime {
                    v.add(
                        "mtime",
                        &p,
                        format!("{} on the source, {} on the target", t(s), t(x)),
                    );
                }
                if s.file_type != FileType::Symlink && s.mode != x.mode {
                    v.add(
                        "mode",
                        &p,
                        format!("{:o} on the source, {:o} on the target", s.mode, x.mode),
                    );
                }
                if owners.uid(s.uid) != x.uid {
                    v.add(
                        "owner",
                        &p,
                        format!(
                            "{} expected, {} on the target",
                            owners.target_names(owners.uid(s.uid), x.gid),
                            owners.target_names(x.uid, x.gid)
                        ),
                    );
                }
                if owners.gid(s.gid) != x.gid {
                    v.add(
                        "group",
                        &p,
                        format!(
                            "{} expected, {} on the target",
                            owners.target_names(x.uid, owners.gid(s.gid)),
                            owners.target_names(x.uid, x.gid)
                        ),
                    );
                }
                let a = sl
                    .get(s.path.as_bytes())
                    .copied()
                    .unwrap_or(s.path.as_bytes());
                let b = tl
                    .get(x.path.as_bytes())
                    .copied()
                    .unwrap_or(x.path.as_bytes());
                if a != b {
                    v.add(
                        "hardlink",
                        &p,
                        format!(
                            "linked with {:?} on the source, with {:?} on the target",
                            String::from_utf8_lossy(a),
                            String::from_utf8_lossy(b)
                        ),
                    );
                }
                if s.file_type == FileType::File && s.size == x.size && a == s.path.as_bytes() {
                    to_hash.push(s.path.to_rel());
                }
            }
        }
    }
    to_hash
}

/// BLAKE3 of `paths` (of root `root`) on two groups of agents at once, compared; differences are
/// added to `v`. Each agent takes the next path from a shared queue.
pub fn hash_compare(
    tree: &str,
    root: u16,
    paths: &[RelPath],
    sources: &mut [AgentClient],
    targets: &mut [AgentClient],
    v: &mut FileVerification,
) -> Result<(), crate::exit::Failure> {
    type Out = Mutex<Vec<Option<Result<([u8; 32], u64, bool), String>>>>;
    let run = |agents: &mut [AgentClient], out: &Out| -> Result<(), crate::exit::Failure> {
        let next = AtomicUsize::new(0);
        std::thread::scope(|sc| {
            let hs: Vec<_> = agents
                .iter_mut()
                .map(|a| {
                    let next = &next;
                    sc.spawn(move || -> Result<(), crate::exit::Failure> {
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(p) = paths.get(i) else { return Ok(()) };
                            let r = match a.hash(Target::new(root, p.clone())) {
                                Ok(h) => Ok((h.hash, h.size, h.changed)),
                                Err(e) if !e.is_fatal() => Err(e.to_string()),
                                Err(e) => return Err(crate::agent::deploy::failure_of(e)),
                            };
                            out.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(r);
                        }
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| crate::exit::joined(h.join(), "a hashing thread"))
                .collect::<Result<Vec<()>, _>>()
                .map(|_| ())
        })
    };
    let so: Out = Mutex::new(vec![None; paths.len()]);
    let to: Out = Mutex::new(vec![None; paths.len()]);
    let (a, b) = std::thread::scope(|sc| {
        let h = sc.spawn(|| run(sources, &so));
        let b = run(targets, &to);
        (crate::exit::joined(h.join(), "a hashing thread"), b)
    });
    a?;
    b?;
    let so = so.into_inner().unwrap_or_else(|p| p.into_inner());
    let to = to.into_inner().unwrap_or_else(|p| p.into_inner());
    for (i, p) in paths.iter().enumerate() {
        let shown = show(tree, p);
        match (&so[i], &to[i]) {
            (Some(Ok((hs, n, ch))), Some(Ok((ht, _, _)))) => {
                v.files_hashed += 1;
                v.bytes_hashed += n;
                if hs != ht {
                    let why = if *ch {
                        " (it changed on the source while hashed)"
                    } else {
                        ""
                    };
                    v.add("content", &shown, format!("the bytes differ{why}"));
                }
            }
            (Some(Err(e)), _) => v.add("unreadable", &shown, format!("source: {e}")),
            (_, Some(Err(e))) => v.add("unreadable", &shown, format!("target: {e}")),
            _ => v.add("unreadable", &shown, "not hashed".into()),
        }
    }
    Ok(())
}
