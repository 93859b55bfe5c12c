//! The transfer engine: scan the managed trees of both sides into manifests, send the difference
//! over parallel agent streams, and verify.
//!
//! * [`trees`]: what is copied (SPEC "What is copied") and what is left out.
//! * [`manifest`]: a scan of one tree through the agent, sorted; saved in the state folder.
//! * `ahead`: a migration pass's agents started with the last pass's roots, their scans asked
//!   while the source's inventory runs.
//! * `last_target`: the target as the last online pass left it, saved so that the final pass
//!   reads only the source in the window.
//! * [`owners`]: user and group names on both hosts, the source → target mapping.
//! * [`diff`]: the actions that make the target equal to the source.
//! * `merge`: a pass's scans of both sides merged as they arrive, in the agents' scan order, and
//!   diffed at once (no manifest held).
//! * [`send`]: the parallel streams (source agent → operator → target agent), pipelined.
//! * [`progress`]: counters and how they are shown.
//! * [`verify`]: the file verification (manifests attribute by attribute, `--content` BLAKE3).
//! * [`timing`]: `OCMIGRATE_TIMING=1` marks for measuring a pass.
//!
//! Every pass removes the temporary files a killed run left (its target scan sets them aside; the
//! first batch removes them), and a file reaches its name only after its data and mtime are
//! written (by the agent's rename), so the diff of the next pass skips every finished file: that
//! is the resume.

mod ahead;
pub mod diff;
mod last_target;
pub mod manifest;
mod merge;
pub mod owners;
mod pass;
pub mod progress;
pub mod send;
pub mod timing;
pub mod trees;
pub mod verify;

pub use progress::ProgressMode;
pub use trees::{Filter, Tree};
pub use verify::{FileVerification, ScannedTree};

use crate::agent::client::AgentClient;
use crate::agent::deploy::{self, AgentBinary};
use crate::exit::Failure;
use crate::host::{SourceHost, TargetHost};
use crate::migration::Migration;
use manifest::Manifest;
use owners::{Accounts, OwnerMap};
use progress::Sink;
use serde::Serialize;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Which copy: while the source serves, or the last delta during the downtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// Data, apps, theme, homes; the target's own `config/` stays until the cut-over.
    Online,
    /// The same and `config/` (`config.php`, `*.config.php`).
    Final,
}

/// What a pass did (no secrets; it goes into the journal and the report).
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncReport {
    /// Regular files whose bytes were sent (a file sent again after a change counts once more).
    pub files_sent: u64,
    /// File bytes sent (before compression).
    pub bytes_sent: u64,
    /// Bytes of file data on the wire between the operator and the target (after compression).
    pub wire_bytes: u64,
    /// Entries of the source's managed trees, and their regular files' bytes.
    pub entries: u64,
    pub bytes_total: u64,
    pub dirs_created: u64,
    pub symlinks: u64,
    pub hard_links: u64,
    pub meta_fixed: u64,
    /// Entries removed from the target (topmost; a folder counts once).
    pub removed: u64,
    /// New files whose bytes were already on the target under an old name (a renamed folder):
    /// hard-linked from there, not sent.
    pub reused: u64,
    /// Temporary files of an interrupted run removed at the start.
    pub cleaned: u64,
    /// Files that changed while read and were sent again.
    pub resent: u64,
    /// Files that disappeared from the source before they could be read.
    pub vanished: u64,
    /// Source paths that could not be read (first 100), and how many.
    pub unreadable: Vec<String>,
    pub unreadable_count: u64,
    /// Files that kept changing while read (3 tries): their copy is not current.
    pub gave_up: Vec<String>,
    /// Target requests that failed (first 100), and how many: the target is not equal.
    pub failed: Vec<String>,
    pub failed_count: u64,
    /// Fifos, sockets, devices: not copied.
    pub special: Vec<String>,
    pub warnings: Vec<String>,
    pub trees: Vec<String>,
    /// Streams of the send after the scans.
    pub streams: usize,
    /// Streams opened while the scans ran, to send what needs nothing else first (0 or 1;
    /// 0 when the merge found nothing to send before the scans' end).
    pub early_streams: usize,
    /// Files sent (settled on the target) while the scans still ran; counted in `files_sent`.
    pub sent_during_scan: u64,
    pub scan_seconds: f64,
    pub seconds: f64,
    /// Trees whose target side this pass took from the manifests the last pass saved of the
    /// target ([`last_target`]) instead of reading the target (only a pass with an exit check).
    pub target_as_last_left: Vec<String>,
    /// Trees whose target manifest this pass saved at its end for the next pass (online passes).
    pub target_saved: Vec<String>,
    /// Of those, the trees the pass wrote nothing to, saved from its own read of the target
    /// (the others were read again at its end).
    pub target_saved_as_read: Vec<String>,
    /// Of those, the trees the pass wrote a little to, saved from its own read of the target
    /// with the paths it wrote read again (the others were read whole again at its end).
    pub target_saved_patched: Vec<String>,
    /// The exit check made inside the pass ([`SyncOptions::check`]), after its last write, on its
    /// own agents: the target's trees (all but `config/`) scanned again and compared, as
    /// [`verify_migration`] does, with the source's manifests this pass saved
    /// ([`Check::Target`]) or with the source scanned again ([`Check::BothSides`]).
    /// `FileVerification::read` says which. `None` when not asked or when changes failed.
    #[serde(skip)]
    pub check: Option<FileVerification>,
}

const LIST_MAX: usize = 100;

impl SyncReport {
    pub fn summary(&self) -> String {
        format!(
            "{} files, {} bytes sent ({} on the wire); {} removed, {} metadata fixes; {} entries in {} in {:.1} s",
            self.files_sent,
            self.bytes_sent,
            self.wire_bytes,
            self.removed,
            self.meta_fixed,
            self.entries,
            self.trees.join(", "),
            self.seconds
        )
    }

    /// Count in what an earlier pass of the same sync did on the target (a pass run again: its
    /// own lists and its check are this report's).
    fn add_work_of(&mut self, first: &SyncReport) {
        self.files_sent += first.files_sent;
        self.bytes_sent += first.bytes_sent;
        self.wire_bytes += first.wire_bytes;
        self.dirs_created += first.dirs_created;
        self.symlinks += first.symlinks;
        self.hard_links += first.hard_links;
        self.meta_fixed += first.meta_fixed;
        self.removed += first.removed;
        self.reused += first.reused;
        self.cleaned += first.cleaned;
        self.resent += first.resent;
        self.vanished += first.vanished;
        self.sent_during_scan += first.sent_during_scan;
        self.scan_seconds += first.scan_seconds;
        self.seconds += first.seconds;
    }

    /// Lines about what is not right: unreadable, kept changing, not copyable, warnings.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for u in &self.unreadable {
            out.push(format!("unreadable on the source: {u}"));
        }
        if self.unreadable_count > self.unreadable.len() as u64 {
            out.push(format!(
                "… and {} more unreadable",
                self.unreadable_count - self.unreadable.len() as u64
            ));
        }
        for g in &self.gave_up {
            out.push(format!(
                "kept changing while read (not current on the target): {g}"
            ));
        }
        for f in &self.failed {
            out.push(format!("failed on the target: {f}"));
        }
        if self.failed_count > self.failed.len() as u64 {
            out.push(format!(
                "… and {} more failures",
                self.failed_count - self.failed.len() as u64
            ));
        }
        for s in &self.special {
            out.push(format!("not copied (fifo, socket or device): {s}"));
        }
        for w in &self.warnings {
            out.push(format!("warning: {w}"));
        }
        out
    }

    fn failed(&mut self, what: String) {
        self.failed_count += 1;
        if self.failed.len() < LIST_MAX {
            self.failed.push(what);
        }
    }

    fn unreadable(&mut self, what: String) {
        self.unreadable_count += 1;
        if self.unreadable.len() < LIST_MAX {
            self.unreadable.push(what);
        }
    }
}

/// How a pass runs.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Parallel streams; default: [`default_streams`].
    pub streams: Option<usize>,
    pub progress: ProgressMode,
    /// zstd on the wire: `None` adaptive (on, and off for a stream whose data does not shrink).
    pub compress: Option<bool>,
    /// Where the source manifests are saved (`<state>/manifests`); none: not saved.
    pub state_dir: Option<PathBuf>,
    /// The exit check, made by the pass itself ([`SyncReport::check`]) on its open agents: no
    /// second inventory, no new connections.
    pub check: Option<Check>,
    /// Keep the exit check's manifests of the target in its verdict
    /// ([`FileVerification::target_scans`]): migrate's file cache check compares with them.
    pub keep_target_scans: bool,
}

/// What a pass's exit check reads again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Both sides, tree by tree: for a source that may still change (online).
    BothSides,
    /// Only the target, compared with the source's manifests this very pass saved as its scan
    /// streamed (with what the scan could not read), for a source that holds still (the final
    /// sync: maintenance on, its web server stopped). A tree is read again on the source all the
    /// same when this pass has no complete manifest of its own for it (not saved, or another
    /// pass's file under the name) or when the pass saw one of its files move (changed while
    /// read, vanished, opened with other attributes than scanned).
    Target,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            streams: None,
            progress: ProgressMode::Quiet,
            compress: None,
            state_dir: None,
            check: None,
            keep_target_scans: false,
        }
    }
}

/// Streams by default: the core count, between 2 and 8.
pub fn default_streams() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(4)
        .clamp(2, 8)
}

/// Copy every managed tree of the source to the target (the runbook's steps 2 and 6). Progress
/// lines go to `progress` (every 30 s while sending). Unreadable source files fail the pass unless
/// `[transfer] accept_unreadable = true`.
pub fn sync(
    m: &Migration,
    pass: Pass,
    progress: &mut dyn FnMut(&str),
) -> Result<SyncReport, Failure> {
    let opts = SyncOptions {
        streams: m.config.transfer.streams,
        state_dir: Some(m.state_dir()),
        // The final pass runs in the window: maintenance on, the source's web server stopped,
        // so the manifest this pass saves is what the source holds.
        check: (pass == Pass::Final).then_some(Check::Target),
        keep_target_scans: pass == Pass::Final,
        ..SyncOptions::default()
    };
    let mut sink = progress::LineSink::new(progress, Duration::from_secs(30));
    let r = sync_migration_with(m, pass, &opts, &mut sink)?;
    if r.unreadable_count > 0 && !m.config.transfer.accept_unreadable {
        return Err(Failure::check(format!(
            "{} source file(s) could not be read: {}",
            r.unreadable_count,
            r.unreadable
                .iter()
                .take(10)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        ))
        .hint(
            "fix their permissions on the source and run again, or accept them with \
             `[transfer] accept_unreadable = true` in the migration file",
        ));
    }
    if r.failed_count > 0 {
        return Err(failed_changes(m.target.label(), r.failed_count, &r.failed));
    }
    if !r.gave_up.is_empty() {
        return Err(Failure::check(format!(
            "{} file(s) kept changing while read: {}",
            r.gave_up.len(),
            r.gave_up.join("; ")
        ))
        .hint(
            "run the sync again (in the final pass the source is stopped, so files hold still)",
        ));
    }
    Ok(r)
}

/// The failure of a pass whose changes on the target failed: a full disk (ENOSPC) named as such,
/// with what to do; any other cause listed.
fn failed_changes(target: &str, count: u64, failed: &[String]) -> Failure {
    let list = failed
        .iter()
        .take(10)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if failed
        .iter()
        .any(|f| f.contains("No space left on device") || f.contains("os error 28"))
    {
        return Failure::check(format!(
            "{target}: No space left on device: {count} change(s) could not be written: {list}"
        ))
        .hint(
            "free space on the target's disk (or give its data directory a larger one), then run \
             the same command again: it resumes and removes the temporary files of this pass. \
             Nothing was written under a real name half-way, and the source is untouched: \
             during `migrate`, `ocmigrate rollback` puts the source back in service instead",
        );
    }
    Failure::check(format!(
        "{target}: {count} change(s) on the target failed: {list}"
    ))
    .hint("fix the cause on the target (permissions, disk) and run again")
}

/// [`sync`] for the `sync` command: progress shown as `opts.progress` says; unreadable files
/// are in the report, not an error.
pub fn sync_migration(
    m: &Migration,
    pass: Pass,
    opts: &SyncOptions,
) -> Result<SyncReport, Failure> {
    let mut sink = opts.progress.sink();
    let mut opts = opts.clone();
    opts.state_dir.get_or_insert_with(|| m.state_dir());
    sync_migration_with(m, pass, &opts, sink.as_mut())
}

fn sync_migration_with(
    m: &Migration,
    pass: Pass,
    opts: &SyncOptions,
    sink: &mut dyn Sink,
) -> Result<SyncReport, Failure> {
    let mut p = prepare_with(m, pass == Pass::Final, Some(pass))?;
    sync_trees_ahead(
        &m.source,
        &m.target,
        &p.trees,
        p.owners,
        opts,
        sink,
        Some(&mut p.ahead),
    )
}

/// What a migration's file passes need, from the source's inventory.
pub struct Prepared {
    pub trees: Vec<Tree>,
    pub owners: OwnerMap,
    pub source_web_user: String,
    pub target_web_user: String,
    /// The agents started ahead for a pass, their scans asked when the last pass's roots were
    /// recorded (see `ahead`).
    ahead: ahead::Ahead,
}

/// The trees, the owner mapping and the web users of a migration, from the source's inventory
/// (`with_config`: `config/` too, as in the final pass).
pub fn prepare(m: &Migration, with_config: bool) -> Result<Prepared, Failure> {
    prepare_with(m, with_config, None)
}

/// [`prepare`]; for a `pass`, the agents that follow start with the roots the last pass
/// recorded and scan while the inventory runs (see `ahead`).
fn prepare_with(m: &Migration, with_config: bool, pass: Option<Pass>) -> Result<Prepared, Failure> {
    let c = &m.config;
    timing::mark("prepare");
    // Four independent questions to the two hosts, asked at once; meanwhile the agents that
    // follow every preparation start (their handshake waits for the trees, unless a pass's
    // scans are asked ahead).
    let manifests = pass.map(|_| m.state_dir().join("manifests"));
    let (ahead, inv, src_acc, tgt_acc, tgt_owner) = std::thread::scope(|sc| {
        let ahead = sc.spawn(|| {
            let bin = AgentBinary::locate().ok()?;
            let final_pass = pass == Some(Pass::Final);
            let a =
                ahead::Ahead::start(manifests.as_deref(), &m.source, &m.target, &bin, final_pass);
            timing::mark("agents started ahead");
            Some(a)
        });
        let inv = sc
            .spawn(|| crate::inventory::source_for_trees(&m.source, c.source.web_user.as_deref()));
        let sa = sc.spawn(|| Accounts::of_side(&m.source));
        let ta = sc.spawn(|| Accounts::of_side(&m.target));
        let owner = c
            .target
            .web_user
            .is_none()
            .then(|| target_config_owner(&m.target))
            .flatten();
        let what = "a preparation thread";
        (
            // Asking ahead only saves time: a panic there costs the head start, not the pass.
            ahead.join().ok().flatten(),
            crate::exit::joined(inv.join(), what),
            crate::exit::joined(sa.join(), what),
            crate::exit::joined(ta.join(), what),
            owner,
        )
    });
    let inv = inv?;
    // The homes outside the data directory are in the database: a pass that could not read it
    // would leave them out without a word.
    if let Some(db) = inv.db.as_ref().filter(|d| !d.ok) {
        return Err(Failure::check(format!(
            "{}: the database could not be read ({}): a pass needs it to know which folders \
             hold users' files (homes outside the data directory)",
            m.source.label(),
            db.error.as_deref().unwrap_or("no reason given")
        ))
        .hint("check that the source's database server runs and that config.php's database settings reach it (`ocmigrate plan` tests them), then run again"));
    }
    if let Some(why) = inv.homes_unread() {
        let table = inv.db.as_ref().map_or("oc_", |d| d.prefix.as_str());
        return Err(Failure::check(format!(
            "{}: the users' homes could not be read from {table}accounts ({why}): a pass needs \
             them to know which homes lie outside the data directory",
            m.source.label()
        ))
        .hint(format!("ownCloud 10 needs that table too: check it with `SELECT user_id, home FROM {table}accounts` as config.php's database user, mend it (a damaged or renamed table, a missing grant), then run again")));
    }
    let src_web = c
        .source
        .web_user
        .clone()
        .or(inv.config_owner.clone())
        .unwrap_or_else(|| "www-data".into());
    let tgt_web = match &c.target.web_user {
        Some(u) => u.clone(),
        None => tgt_owner.unwrap_or_else(|| src_web.clone()),
    };
    let trees = trees::of_inventory(&inv, m.source.root(), m.target.root(), with_config);
    let owners = OwnerMap::new(src_acc?, tgt_acc?, &src_web, &tgt_web)?;
    timing::mark("inventory and accounts");
    Ok(Prepared {
        trees,
        owners,
        source_web_user: src_web,
        target_web_user: tgt_web,
        ahead: ahead.unwrap_or_default(),
    })
}

/// The owner of the target's `config/config.php`, if there is one.
fn target_config_owner(tgt: &TargetHost) -> Option<String> {
    let r = tgt
        .probe(&crate::host::Probe::Owner(
            tgt.root().join("config/config.php"),
        ))
        .ok()?;
    r.ok()
        .then(|| r.stdout_text().trim().to_string())
        .filter(|s| !s.is_empty())
}

fn roots(trees: &[Tree], source: bool) -> Vec<Vec<u8>> {
    trees
        .iter()
        .map(|t| {
            if source { &t.source } else { &t.target }
                .as_os_str()
                .as_bytes()
                .to_vec()
        })
        .collect()
}

/// `n` agents on each side (the first pair through the hosts' master connections, the others
/// on ssh connections of their own, started at once), for parallel hashing.
pub(crate) fn agent_pairs(
    src: &SourceHost,
    tgt: &TargetHost,
    bin: &AgentBinary,
    trees: &[Tree],
    n: usize,
) -> Result<Vec<(AgentClient, AgentClient)>, Failure> {
    let (s, t) = std::thread::scope(|sc| {
        let h = sc.spawn(|| deploy::start(src, bin, roots(trees, true)));
        let t = deploy::start(tgt, bin, roots(trees, false));
        let s = crate::exit::joined(h.join(), "starting an agent");
        (s, t)
    });
    let ((s0, si), (t0, ti)) = (s?, t?);
    let mut out = vec![(s0, t0)];
    let more: Vec<Result<(AgentClient, AgentClient), Failure>> = std::thread::scope(|sc| {
        let hs: Vec<_> = (1..n)
            .map(|_| {
                sc.spawn(|| -> Result<(AgentClient, AgentClient), Failure> {
                    let ch = crate::host::AgentChannel::Dedicated;
                    let s = deploy::connect(src, bin, &si, roots(trees, true), ch)?;
                    let t = deploy::connect(tgt, bin, &ti, roots(trees, false), ch)?;
                    Ok((s, t))
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| crate::exit::joined(h.join(), "starting an agent"))
            .collect()
    });
    for m in more {
        out.push(m?);
    }
    Ok(out)
}

/// Scan every tree on one side.
fn scan_side(a: &mut AgentClient, trees: &[Tree]) -> Result<Vec<Manifest>, Failure> {
    trees
        .iter()
        .enumerate()
        .map(|(i, tr)| manifest::scan(a, i as u16, &tr.filter).map_err(deploy::failure_of))
        .collect()
}

/// Scan every tree on both sides at once.
fn scan_all(
    s: &mut AgentClient,
    t: &mut AgentClient,
    trees: &[Tree],
) -> Result<(Vec<Manifest>, Vec<Manifest>), Failure> {
    let scan = |a: &mut AgentClient| scan_side(a, trees);
    std::thread::scope(|sc| {
        let h = sc.spawn(|| scan(s));
        let b = scan(t);
        let a = crate::exit::joined(h.join(), "a scan thread");
        Ok((a?, b?))
    })
}

/// Copy `trees` from `src` to `tgt`: the engine, below the migration file (tests call it with
/// local sides). Unreadable source files are listed in the report, not an error.
pub fn sync_trees(
    src: &SourceHost,
    tgt: &TargetHost,
    trees: &[Tree],
    owners: OwnerMap,
    opts: &SyncOptions,
    sink: &mut dyn Sink,
) -> Result<SyncReport, Failure> {
    sync_trees_ahead(src, tgt, trees, owners, opts, sink, None)
}

/// [`sync_trees`], with the agents a migration's preparation started ahead (their roots are
/// recorded for the next pass).
fn sync_trees_ahead(
    src: &SourceHost,
    tgt: &TargetHost,
    trees: &[Tree],
    owners: OwnerMap,
    opts: &SyncOptions,
    sink: &mut dyn Sink,
    ahead: Option<&mut ahead::Ahead>,
) -> Result<SyncReport, Failure> {
    let rep = pass::run_pass(src, tgt, trees, owners.clone(), opts, sink, true, ahead)?;
    let stale = if rep.target_as_last_left.is_empty() {
        None
    } else if rep.failed_count > 0 {
        Some(format!(
            "{} change(s) failed, e.g. {}",
            rep.failed_count,
            rep.failed.first().map(String::as_str).unwrap_or("")
        ))
    } else {
        rep.check.as_ref().filter(|v| !v.equal).map(|v| {
            format!(
                "the exit check found {} difference(s), e.g. {}",
                v.difference_count,
                v.differences.first().map(String::as_str).unwrap_or("")
            )
        })
    };
    let Some(why) = stale else {
        return Ok(rep);
    };
    // The target changed after the last pass saved it (by hand, or an instance ran on it): the
    // pass again, with the target read.
    let w = format!(
        "the target's manifests saved by the last pass ({}) were out of date ({why}): the pass ran again with the target read",
        rep.target_as_last_left.join(", ")
    );
    sink.note(&w);
    let mut again = pass::run_pass(src, tgt, trees, owners, opts, sink, false, None)?;
    again.warnings.insert(0, w);
    again.add_work_of(&rep);
    Ok(again)
}

/// Options of a verification.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Also compare a BLAKE3 of every regular file.
    pub content: bool,
    /// Agents per host for hashing; default: [`default_streams`].
    pub agents: Option<usize>,
}

/// The file verification of a migration (every managed tree, `config/` included when the target
/// has the source's config). The runbook's final sync uses it as its exit condition.
pub fn verify_migration(m: &Migration, opts: &VerifyOptions) -> Result<FileVerification, Failure> {
    let p = prepare(m, false)?;
    verify_trees(
        &m.source,
        &m.target,
        &p.trees,
        &p.owners,
        opts,
        &mut progress::Quiet,
    )
}

/// Compare `trees` on both sides (read-only on both).
pub fn verify_trees(
    src: &SourceHost,
    tgt: &TargetHost,
    trees: &[Tree],
    owners: &OwnerMap,
    opts: &VerifyOptions,
    sink: &mut dyn progress::Sink,
) -> Result<FileVerification, Failure> {
    let t0 = Instant::now();
    let bin = AgentBinary::locate()?;
    let n = if opts.content {
        opts.agents.unwrap_or_else(default_streams).max(1)
    } else {
        1
    };
    let pairs = agent_pairs(src, tgt, &bin, trees, n)?;
    let (mut sa, mut ta): (Vec<_>, Vec<_>) = pairs.into_iter().unzip();
    let (sm, tm) = scan_all(&mut sa[0], &mut ta[0], trees)?;
    let mut v = FileVerification {
        trees: trees.iter().map(|t| t.name.clone()).collect(),
        ..FileVerification::default()
    };
    for (i, tree) in trees.iter().enumerate() {
        if tm[i].root_error.is_some() && sm[i].root_error.is_some() {
            continue; // on neither side: nothing to compare
        }
        let to_hash = verify::compare(&tree.name, &sm[i], &tm[i], owners, &mut v);
        if opts.content && !to_hash.is_empty() {
            verify::hash_compare(
                &tree.name, i as u16, &to_hash, &mut sa, &mut ta, &mut v, sink,
            )?;
        }
    }
    for a in sa.into_iter().chain(ta) {
        let _ = a.exit();
    }
    v.equal = v.difference_count == 0;
    v.seconds = t0.elapsed().as_secs_f64();
    Ok(v)
}

#[cfg(test)]
mod failure_tests {
    use super::failed_changes;

    #[test]
    fn a_full_disk_is_named_with_what_to_do() {
        let f = failed_changes(
            "target new",
            1,
            &["/srv/data/u/files/a.txt: No space left on device (os error 28)".into()],
        );
        assert!(
            f.message
                .starts_with("target new: No space left on device: 1 change(s)"),
            "{}",
            f.message
        );
        let hint = f.hint.unwrap();
        assert!(hint.contains("free space on the target") && hint.contains("rollback"));
        let f = failed_changes(
            "target new",
            2,
            &["a: Permission denied (os error 13)".into()],
        );
        assert!(f
            .message
            .contains("2 change(s) on the target failed: a: Permission denied"));
        assert!(!f.message.contains("No space"));
    }
}
