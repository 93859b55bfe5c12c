//! One sync pass, start to end: agents, cleanup of an interrupted run's temporary files, scans
//! of both sides, the diff, then on the target: removals, folders, symlinks, file contents over
//! the parallel streams, hard links, metadata fixes, folder attributes (deepest first), `Sync`.
//! Files that need nothing else done first (rewrites, new files in folders the target has) are
//! sent while the scans run, on an early stream of their own ([`early_send`]).

use super::ahead::Ahead;
use super::diff::{Differ, FileOp, Plan};
use super::last_target::AsRead;
use super::manifest::EntryRef;
use super::merge;
use super::owners::OwnerMap;
use super::progress::{Counters, Sink};
use super::send::{self, Answer, Compression, Conn, Job, Sent};
use super::timing;
use super::verify::{self, FileVerification};
use super::{manifest, roots, Check, SyncOptions, SyncReport, Tree};
use crate::agent::client::{AgentClient, AgentError};
use crate::agent::deploy::{self, AgentBinary};
use crate::agent::proto::{Entry, ErrorCode, RelPath, Request, Response, Target};
use crate::exit::Failure;
use crate::host::{AgentChannel, AgentInstall, SourceHost, TargetHost};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// A path of a tree on the source, as the admin finds it there.
fn shown(tree: &Tree, p: &RelPath) -> String {
    joined(&tree.source, p)
}

/// A path of a tree on the target (where a write failed), as the admin finds it there.
fn shown_on_target(tree: &Tree, p: &RelPath) -> String {
    joined(&tree.target, p)
}

fn joined(root: &Path, p: &RelPath) -> String {
    if p.is_root() {
        root.display().to_string()
    } else {
        format!("{}/{p}", root.display())
    }
}

/// With a stream count asked for (`--streams`, `[transfer] streams`): files per extra stream.
const FILES_PER_STREAM: usize = 200;
/// By default, an extra stream (two more ssh connections, each a key exchange and an ssh client
/// of ~8 MB on the operator, and two more agents) per this many files or bytes to send, whichever
/// gives more: a final delta of a few hundred small files goes faster over the first stream alone.
const FILES_PER_DEFAULT_STREAM: usize = 2000;
const BYTES_PER_DEFAULT_STREAM: u64 = 64 << 20;
/// Files the merge hands the early stream that may wait for it at once; beyond, further ones are
/// sent with the plan after the scans (the merge never waits for the stream).
const EARLY_QUEUED: usize = 4096;

#[allow(clippy::too_many_arguments)]
pub(crate) fn run_pass(
    src: &SourceHost,
    tgt: &TargetHost,
    trees: &[Tree],
    mut owners: OwnerMap,
    opts: &SyncOptions,
    sink: &mut dyn Sink,
    last_target: bool,
    mut ahead: Option<&mut Ahead>,
) -> Result<SyncReport, Failure> {
    let t0 = Instant::now();
    let mut rep = SyncReport {
        trees: trees.iter().map(|t| t.name.clone()).collect(),
        ..SyncReport::default()
    };
    timing::mark("pass");
    let bin = AgentBinary::locate()?;
    timing::mark("agent binary hashed");
    sink.phase(
        "scan",
        &format!("{} tree(s): {}", trees.len(), rep.trees.join(", ")),
    );

    // Both agents start at once (or were started ahead, their scans asked, with these very
    // roots); the source's handshake says which trees exist there.
    let (s_roots, t_roots) = (roots(trees, true), roots(trees, false));
    let s_ahead = ahead.as_mut().and_then(|a| a.source(&s_roots));
    // A pass that may take the target's side from the last pass's saved manifests would not
    // read every scan asked ahead: that agent is dropped (killed).
    let replays = last_target && opts.check.is_some();
    let t_ahead = ahead
        .as_mut()
        .and_then(|a| a.target(&t_roots))
        .filter(|_| !replays);
    let (s_started, t_started) = std::thread::scope(|sc| {
        let h = sc.spawn(|| s_ahead.map_or_else(|| deploy::start(src, &bin, s_roots), Ok));
        let t = t_ahead.map_or_else(|| deploy::start(tgt, &bin, t_roots), Ok);
        let s = crate::exit::joined(h.join(), "starting an agent");
        (s, t)
    });
    let (mut sa, s_install) = s_started?;
    let (mut ta, t_install) = t_started?;
    timing::mark("agents started");
    time_round_trips(src, &mut sa, tgt, &mut ta);
    let start = Starter {
        src,
        tgt,
        bin: &bin,
        si: &s_install,
        ti: &t_install,
        trees,
    };
    let on_source: Vec<bool> = sa.welcome().roots.iter().map(|r| r.is_ok()).collect();
    for (t, ok) in trees.iter().zip(&on_source) {
        if !ok {
            rep.warnings.push(format!(
                "{} ({}) is not on the source: skipped",
                t.name,
                t.source.display()
            ));
        }
    }
    // The source is scanned while the target is made ready and scanned; the two scans are
    // merged and diffed as they arrive (neither side's manifest is held).
    let manifests = opts.state_dir.as_ref().and_then(|dir| {
        let d = dir.join("manifests");
        // Private like the rest of the state folder: file names are users' data.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&d)
            .and_then(|()| std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)))
            .is_ok()
            .then_some(d)
    });
    if let (Some(d), Some(_)) = (&manifests, &ahead) {
        super::ahead::remember(d, src, tgt, trees);
    }
    // This pass's saved manifests carry its id: the exit check takes no other pass's file.
    let pass_id = manifest::PassId::new();
    let mut saved: Vec<Option<PathBuf>> = Vec::new();
    let (stx, srx) = merge::channel();
    let (ttx, trx) = merge::channel();
    let mut uids = BTreeSet::new();
    let mut gids = BTreeSet::new();
    let mut temporary: Vec<Vec<RelPath>> = Vec::new();
    // An online pass with a state folder saves the target as it leaves it (`last_target`):
    // from the merge's own read of the target, as it is for a tree it writes nothing to, with
    // the paths it wrote read again for a delta ([`side_save`]); other trees are read again
    // whole at the end.
    let keep_target_side = match (manifests.as_deref(), opts.check) {
        (Some(dir), None) => Some(dir),
        _ => None,
    };
    let mut target_sides: Vec<Option<AsRead>> = Vec::new();
    let mut plans: Vec<Plan> = Vec::new();
    let compression = match opts.compress {
        Some(true) => Compression::On,
        Some(false) => Compression::Off,
        // Both sides on this machine: nothing to save on a wire.
        None if s_install.local() && t_install.local() => Compression::Off,
        None => Compression::Adaptive,
    };
    // Files that need nothing else done on the target first are sent while the scans run, on a
    // stream of its own (the pass's agents are busy scanning), connected when the merge finds
    // the first one (on a distant host as the scans start, so that it is ready by then); not
    // when one stream is asked for.
    let early_q = send::Queue::open();
    let early_counters = Counters::default();
    let early_on = opts.streams != Some(1);
    let mut sent_during_scan = 0;
    let mut scanned_at = t0;
    let (merged, s_scan, ta, early, first) = std::thread::scope(|sc| {
        let sa = &mut sa;
        let early = early_on.then(|| {
            let (q, c, own, on_src) = (&early_q, &early_counters, &owners, &on_source);
            sc.spawn(move || {
                let _closed = CloseOnDrop(q);
                early_send(start, on_src, q, own, c, compression)
            })
        });
        // The queue is closed however the merge ends (else the early stream waits on).
        let closing = CloseOnDrop(&early_q);
        let h = sc.spawn(move || {
            let r = merge::scan_into(sa, trees, &mut [], &stx);
            timing::mark("source scanned");
            r
        });
        let on_source = &on_source;
        let manifests = manifests.as_deref();
        let target = move || -> Result<_, Failure> {
            let mut ta = ta;
            // The target as the last pass left it, taken (and removed) before anything is
            // written there (here, beside the source's scan; the early stream writes only what
            // the merge of both sides finds); used only by a pass that reads the target again
            // at its end.
            let mut last_left = super::last_target::take(
                manifests,
                tgt.label(),
                trees,
                last_target && opts.check.is_some(),
            )
            .map_err(|e| {
                Failure::check(format!("the state folder: {e}"))
                    .hint("make the state folder writable by the operator, then run again")
            })?;
            timing::mark("target's last manifests taken");
            // A tree the source has and the target lacks (the first pass): its folder is made,
            // and the agent started again to open it.
            let missing: Vec<String> = lacking(&ta, on_source)
                .into_iter()
                .map(|i| {
                    last_left[i] = None; // not what the target holds
                    crate::host::shell_quote(&trees[i].target.to_string_lossy())
                })
                .collect();
            if !missing.is_empty() {
                let _ = ta.exit();
                let r = tgt.run(&format!("mkdir -p -- {}", missing.join(" ")))?;
                if !r.ok() {
                    return Err(Failure::check(format!(
                        "{}: cannot create {}: {}",
                        tgt.label(),
                        missing.join(" "),
                        r.stderr_text()
                    )));
                }
                ta = start.target(AgentChannel::Master)?;
            }
            if !ta.welcome().writable {
                return Err(Failure::check(format!(
                    "{}: the agent did not grant write access",
                    tgt.label()
                )));
            }
            let replayed = merge::scan_into(&mut ta, trees, &mut last_left, &ttx)?;
            timing::mark("target scanned");
            Ok((ta, replayed))
        };
        let t = sc.spawn(target);
        let mut sf = merge::Feed::new(srx, false);
        let mut tf = merge::Feed::new(trx, true);
        let mut merged = Ok(());
        for (i, tree) in trees.iter().enumerate() {
            sf.next_tree();
            tf.next_tree();
            let r = merge_tree(
                i,
                tree,
                on_source[i],
                &mut sf,
                &mut tf,
                &owners,
                early.as_ref().map(|_| &early_q),
                manifests.map(|d| (d, pass_id)),
                keep_target_side.and_then(|d| AsRead::create(d, tgt.label(), tree, pass_id).ok()),
                &mut uids,
                &mut gids,
                &mut rep,
            );
            match r {
                Ok((p, file, side)) => {
                    target_sides.push(side);
                    plans.push(p);
                    saved.push(file);
                    temporary.push(std::mem::take(&mut tf.temporary));
                }
                Err(e) => {
                    merged = Err(e);
                    break;
                }
            }
        }
        // A stopped merge lets the scan threads finish (their sends fail).
        drop((sf, tf));
        let s = crate::exit::joined(h.join(), "a scan thread");
        let t = crate::exit::joined(t.join(), "a scan thread");
        scanned_at = Instant::now();
        sent_during_scan = early_counters.files_done.load(Relaxed);
        timing::mark("scans merged");
        // The early stream sends what is queued, then ends.
        drop(closing);
        // Meanwhile the first batch runs on the pass's own target agent: what it touches
        // (entries in the way, new folders, links to renamed files' bytes, extraneous entries,
        // symlinks) never shares a path with a file sent early (a rewrite of a file the target
        // has, or a new file in a folder it has).
        let t = t.map(|(ta, replayed)| (Conn::new(ta), replayed));
        let (t, first) = match (t, &merged, &s) {
            (Ok((mut tcon, replayed)), Ok(()), Ok(_)) => {
                let f = first_batch(&mut tcon, &plans, trees, &mut rep);
                timing::mark("first batch");
                (Ok((tcon, replayed)), Some(f))
            }
            (t, _, _) => (t, None),
        };
        let e = early.map(|h| crate::exit::joined(h.join(), "the early stream"));
        (merged, s, t, e, first)
    });
    // A scan's own failure says more than the merge's stop.
    s_scan?;
    let (mut tcon, replayed) = ta?;
    rep.target_as_last_left = replayed.iter().map(|&i| trees[i].name.clone()).collect();
    if let Err(stop) = merged {
        return Err(match stop {
            merge::Stop::Closed => Failure::check("a scan ended before its trees did"),
            merge::Stop::Order(w) => Failure::check(format!(
                "the scans are not in the expected order, so they cannot be compared: {w}"
            ))
            .hint("the agents on both hosts must be this version of ocmigrate's"),
        });
    }
    // Per tree: files the streams saw move on the source (the first one, how many).
    let mut moved: BTreeMap<usize, (RelPath, usize)> = BTreeMap::new();
    if let Some(e) = early {
        if let Some(sent) = e? {
            timing::mark("early stream done");
            rep.early_streams = 1;
            rep.sent_during_scan = sent_during_scan;
            sink.note(&format!(
                "sent {} file(s), {} while scanning (one stream)",
                sent.files,
                super::progress::human(sent.bytes as f64)
            ));
            absorb(&mut rep, &mut moved, trees, sent);
        }
    }
    // How each tree's target is to be saved at the end (online passes), decided while the plans
    // are whole.
    let target_sides: Vec<Option<SideSave>> = target_sides
        .into_iter()
        .enumerate()
        .map(|(i, side)| side.and_then(|r| side_save(r, &plans[i], &temporary[i])))
        .collect();
    rep.scan_seconds = scanned_at.duration_since(t0).as_secs_f64();
    owners.note_unmapped(&uids, &gids);
    rep.warnings.extend(owners.warnings.iter().cloned());
    let to_send: usize = plans.iter().map(|p| p.files.len()).sum();
    let to_send_bytes: u64 = plans.iter().map(|p| p.bytes).sum();
    release_freed_memory();
    timing::mark("diff");
    sink.note(&format!(
        "scanned {} entries in {:.1} s: {to_send} file(s), {} to send",
        rep.entries,
        rep.scan_seconds,
        super::progress::human(to_send_bytes as f64)
    ));

    let mut scon = Conn::new(sa);
    let keep_owner = tcon.tx.welcome().uid != 0;
    if keep_owner {
        rep.warnings.push(format!(
            "{}: not connected as root, so files keep the login user as owner",
            tgt.label()
        ));
    }
    let failed_reuse = first.expect("run when the merge and both scans succeeded")?;
    // What a killed run left: removed now that the early stream is done (the target's scan
    // may have seen that stream's own temporary files).
    clean_batch(&mut tcon, temporary, &on_source, trees, &mut rep)?;
    // A link that could not be made: the file is sent.
    for (i, path) in failed_reuse {
        if let Some((op, _)) = plans[i].reuse.iter().find(|(op, _)| op.path == path) {
            let op = op.clone();
            plans[i].bytes += op.size;
            plans[i].files.push(op);
        }
    }
    let files: usize = plans.iter().map(|p| p.files.len()).sum();
    let bytes: u64 = plans.iter().map(|p| p.bytes).sum();

    // File contents over the streams.
    let counters = Counters::default();
    counters.files_total.store(files as u64, Relaxed);
    counters.bytes_total.store(bytes, Relaxed);
    if files > 0 {
        let n = match opts.streams {
            Some(want) => want.min(files.div_ceil(FILES_PER_STREAM)),
            None => super::default_streams().min(
                files
                    .div_ceil(FILES_PER_DEFAULT_STREAM)
                    .max(bytes.div_ceil(BYTES_PER_DEFAULT_STREAM) as usize),
            ),
        }
        .max(1);
        rep.streams = n;
        sink.phase(
            "send",
            &format!(
                "{files} file(s), {} over {n} stream(s)",
                super::progress::human(bytes as f64)
            ),
        );
        // The plans' files move to the streams' queue, each made a job only when a stream
        // takes it (a copy of every operation was a third of the operator's peak at 100,000
        // files); nothing reads `Plan::files` after this.
        let jobs: Vec<(u16, usize, Vec<FileOp>)> = plans
            .iter_mut()
            .enumerate()
            .map(|(i, p)| (i as u16, i, std::mem::take(&mut p.files)))
            .collect();
        let started = Instant::now();
        let halves = vec![send::halves(&mut scon, &mut tcon)];
        // The other streams' connections are made while the first stream sends.
        let connect = || start.streams(AgentChannel::Dedicated);
        let later = send::Later {
            count: n - 1,
            connect: &connect,
        };
        let sent = send::send_trees(halves, later, jobs, &owners, &counters, compression, || {
            sink.tick(&counters.snapshot("send", started))
        })?;
        sink.end(&counters.snapshot("send", started));
        timing::mark("sent");
        absorb(&mut rep, &mut moved, trees, sent);
    }

    // Hard links, metadata, folders' attributes (deepest first), then durability.
    let mut reqs = Vec::new();
    let mut what = Vec::new();
    for (i, p) in plans.iter().enumerate() {
        let r = i as u16;
        for (x, existing) in &p.links {
            reqs.push(Request::Link {
                target: Target::new(r, x.clone()),
                existing: existing.clone(),
            });
            what.push((i, x.clone(), Kind::Link));
        }
        for m in p.meta.iter().chain(&p.dir_meta) {
            reqs.push(Request::SetMeta {
                target: Target::new(r, m.path.clone()),
                mode: m.mode,
                uid: m.uid.filter(|_| !keep_owner),
                gid: m.gid.filter(|_| !keep_owner),
                mtime: m.mtime,
            });
            what.push((i, m.path.clone(), Kind::Meta));
        }
    }
    rep.meta_fixed = plans.iter().map(|p| p.meta.len() as u64).sum();
    reqs.push(Request::Sync);
    what.push((0, RelPath::root(), Kind::Sync));
    // An online pass that saves a tree's target patched reads its written paths again: asked
    // behind this batch, on the same agent (answered in order, so after what the batch did),
    // they cost no round trip of their own. Not after a failed write (the trees are then read
    // whole), and for at most PATCH_MAX paths in all, the answers being held until the saves
    // (the trees beyond ask for theirs then, one tree at a time).
    let saving = manifests.is_some() && opts.check.is_none() && rep.failed_count == 0;
    let mut asked = 0;
    let restats: Vec<(usize, usize)> = target_sides
        .iter()
        .enumerate()
        .filter(|_| saving)
        .filter_map(|(i, side)| match side {
            Some(SideSave::Patch(_, written, _)) if asked + written.len() <= PATCH_MAX => {
                asked += written.len();
                let paths: Option<Vec<RelPath>> = written
                    .iter()
                    .map(|p| RelPath::new(p.clone()).ok())
                    .collect();
                let paths = paths?;
                let n = paths.len();
                reqs.extend(
                    paths
                        .into_iter()
                        .map(|p| Request::Stat(Target::new(i as u16, p))),
                );
                Some((i, n))
            }
            _ => None,
        })
        .collect();
    let (_, mut stats) = run_batch_with_tail(&mut tcon, reqs, what, trees, &mut rep)?;
    let mut read_again: BTreeMap<usize, Vec<Answer>> = BTreeMap::new();
    for (i, n) in restats {
        let rest = stats.split_off(n.min(stats.len()));
        read_again.insert(i, std::mem::replace(&mut stats, rest));
    }
    timing::mark("last batch");
    // The exit check, on the pass's own agents (no new connection, no second inventory): the
    // target read again and compared attribute by attribute with this pass's source manifests,
    // or with the source read again.
    if let Some(mode) = opts.check.filter(|_| rep.failed_count == 0) {
        let sources = check_sources(mode, trees, &saved, &moved);
        let (mut sa, mut ta) = (scon.into_client(), tcon.into_client());
        let keep = opts.keep_target_scans;
        let v = check_trees(
            &mut sa, &mut ta, trees, &owners, mode, &sources, pass_id, keep,
        )?;
        // Their processes end on their own: the pass does not wait a round trip for them.
        Conn::new(sa).close_in_background();
        Conn::new(ta).close_in_background();
        timing::mark("checked");
        rep.check = Some(v);
    } else if let (Some(dir), None) = (manifests.as_deref(), opts.check) {
        // An online pass: the target as it leaves it, for the final pass to read in its stead.
        scon.close_in_background();
        let mut done = Vec::new();
        let mut keep = on_source.clone();
        // After a failed write nothing is taken on trust: a patched save assumes that what the
        // plan removed is gone below its path, so any failure reads the written trees whole.
        let failed = rep.failed_count > 0;
        for (i, side) in target_sides.into_iter().enumerate() {
            let name = trees[i].name.clone();
            let side = side.filter(|s| !failed || matches!(s, SideSave::AsRead(_)));
            let r =
                match side {
                    None => continue,
                    Some(SideSave::AsRead(r)) => r.keep().map_err(|e| e.to_string()).map(|()| {
                        rep.target_saved_as_read.push(name.clone());
                    }),
                    Some(SideSave::Patch(r, written, gone)) => r
                        .patch(&written, &gone, &trees[i].filter, |paths| match read_again
                            .remove(&i)
                        {
                            Some(answers) if answers.len() == paths.len() => stat_entries(answers),
                            _ => restat(&mut tcon, i, paths),
                        })
                        .map(|()| rep.target_saved_patched.push(name.clone())),
                };
            match r {
                Ok(()) => {
                    done.push(name);
                    keep[i] = false;
                }
                // Read again below.
                Err(e) => rep.warnings.push(format!(
                    "saving the target's manifest of {name} from the pass's own read: {e} (the \
                     target is read again)"
                )),
            }
        }
        let mut ta = tcon.into_client();
        rep.target_saved = done;
        match super::last_target::save(dir, tgt.label(), &mut ta, trees, &keep, pass_id) {
            Ok(names) => rep.target_saved.extend(names),
            Err(w) => rep
                .warnings
                .push(format!("{w} (the next pass reads the target instead)")),
        }
        Conn::new(ta).close_in_background();
        timing::mark("target saved");
    } else {
        scon.close_in_background();
        tcon.close_in_background();
    }
    timing::mark("agents closed");
    rep.seconds = t0.elapsed().as_secs_f64();
    sink.note(&rep.summary());
    Ok(rep)
}

/// The first batch on the target, per tree in this order: removals of what is in the way,
/// folders, links to the bytes of renamed files, removals of what is extraneous, symlinks.
/// Returns the `Reuse` links that failed (their files are sent instead).
fn first_batch(
    tcon: &mut Conn,
    plans: &[Plan],
    trees: &[Tree],
    rep: &mut SyncReport,
) -> Result<Vec<(usize, RelPath)>, Failure> {
    let keep_owner = tcon.tx.welcome().uid != 0;
    let own = |v: u32| if keep_owner { u32::MAX } else { v };
    let mut reqs = Vec::new();
    let mut what = Vec::new();
    for (i, p) in plans.iter().enumerate() {
        let r = i as u16;
        for x in &p.remove_first {
            reqs.push(Request::Remove {
                target: Target::new(r, x.clone()),
            });
            what.push((i, x.clone(), Kind::Remove));
        }
        for (x, a) in &p.mkdir {
            reqs.push(Request::Mkdir {
                target: Target::new(r, x.clone()),
                mode: a.mode,
                uid: own(a.uid),
                gid: own(a.gid),
            });
            what.push((i, x.clone(), Kind::Mkdir));
        }
        for (op, old) in &p.reuse {
            reqs.push(Request::Link {
                target: Target::new(r, op.path.clone()),
                existing: old.clone(),
            });
            what.push((i, op.path.clone(), Kind::Reuse));
        }
        for x in &p.remove {
            reqs.push(Request::Remove {
                target: Target::new(r, x.clone()),
            });
            what.push((i, x.clone(), Kind::Remove));
        }
        for (x, link, a) in &p.symlinks {
            reqs.push(Request::Symlink {
                target: Target::new(r, x.clone()),
                link: link.clone(),
                uid: own(a.uid),
                gid: own(a.gid),
                mtime: a.mtime,
            });
            what.push((i, x.clone(), Kind::Symlink));
        }
    }
    run_batch(tcon, reqs, what, trees, rep)
}

/// Remove the temporary files a killed run left (as the target's scan set them aside).
fn clean_batch(
    tcon: &mut Conn,
    temporary: Vec<Vec<RelPath>>,
    on_source: &[bool],
    trees: &[Tree],
    rep: &mut SyncReport,
) -> Result<(), Failure> {
    let mut reqs = Vec::new();
    let mut what = Vec::new();
    for (i, tmp) in temporary.into_iter().enumerate() {
        if !on_source[i] {
            continue;
        }
        for x in tmp {
            reqs.push(Request::Remove {
                target: Target::new(i as u16, x.clone()),
            });
            what.push((i, x, Kind::Clean));
        }
    }
    run_batch(tcon, reqs, what, trees, rep).map(|_| ())
}

/// What streams did, into the report (added to what is there).
fn absorb(
    rep: &mut SyncReport,
    moved: &mut BTreeMap<usize, (RelPath, usize)>,
    trees: &[Tree],
    sent: Sent,
) {
    rep.files_sent += sent.files;
    rep.bytes_sent += sent.bytes;
    rep.wire_bytes += sent.wire;
    rep.resent += sent.resent;
    rep.vanished += sent.vanished;
    for (i, p, why) in sent.unreadable {
        rep.unreadable(format!("{}: {why}", shown(&trees[i], &p)));
    }
    for (i, p) in sent.gave_up {
        rep.gave_up.push(shown(&trees[i], &p));
    }
    for (i, p, why) in sent.failed {
        rep.failed(format!("{}: {why}", shown_on_target(&trees[i], &p)));
    }
    for (i, p) in sent.moved {
        moved.entry(i).or_insert((p, 0)).1 += 1;
    }
}

/// Closes a queue when dropped (also when a thread unwinds).
struct CloseOnDrop<'q>(&'q send::Queue);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// A host is distant when a round trip to an agent there took this long or more (measured when
/// the pass's scans were asked ahead), else when its quickest command did
/// ([`EARLY_AHEAD_COMMAND`]): the early stream's agents are then started as the scans start (a
/// session's start is a few round trips), not when the first file comes. On a near host that
/// would only cost a re-sync with nothing to send early the start of two agents beside its
/// scans (D3 on the lab, where both hosts share 2 cores: +0.03-0.04 s of 0.78 s).
const EARLY_AHEAD_ROUND_TRIP: Duration = Duration::from_millis(20);
/// About 2.5 round trips of 20 ms: a command's session, exec and answer. A command also reads
/// the disk (a cold one can take 50 ms on a near host), so a round trip, when measured, decides.
const EARLY_AHEAD_COMMAND: Duration = Duration::from_millis(50);

/// Either host is distant (see [`EARLY_AHEAD_ROUND_TRIP`]); a host that cannot be timed is not.
fn distant(src: &SourceHost, tgt: &TargetHost) -> bool {
    let far = |side: &crate::host::ReadSide| far_by(side.round_trip(), || side.command_time().ok());
    std::thread::scope(|sc| {
        let s = sc.spawn(|| far(src));
        far(tgt) || s.join().unwrap_or(false)
    })
}

/// How far each host is, for the early stream ([`distant`]): a round trip to its agent, timed
/// here where no agent started ahead timed one. The source's rides in front of its scans (a
/// `Stat` of its first root, then every opened root's `Scan`, which the merge reads as usual:
/// no wait added); the target's is a `Stat` of its first root (one round trip before its scan,
/// in a pass that started no agent ahead there). A failed or refused answer still measures one.
fn time_round_trips(
    src: &SourceHost,
    sa: &mut AgentClient,
    tgt: &TargetHost,
    ta: &mut AgentClient,
) {
    std::thread::scope(|sc| {
        if src.round_trip().is_none() {
            sc.spawn(|| super::ahead::scans_asked_timed(src, sa));
        }
        if tgt.round_trip().is_none() {
            let t0 = Instant::now();
            let answered = match ta.stat(Target::new(0, RelPath::root())) {
                Ok(_) | Err(AgentError::Failed { .. }) => true,
                Err(_) => false,
            };
            if answered {
                tgt.note_round_trip(t0.elapsed());
            }
        }
    });
    let ms =
        |d: Option<Duration>| d.map_or("-".into(), |d| format!("{:.1}", d.as_secs_f64() * 1e3));
    timing::mark(&format!(
        "round trips (ms): source {}, target {}",
        ms(src.round_trip()),
        ms(tgt.round_trip())
    ));
}

/// A host's distance from its round trip when one was measured, else from its quickest command
/// (timed now when none ran).
fn far_by(round_trip: Option<Duration>, command: impl FnOnce() -> Option<Duration>) -> bool {
    match round_trip {
        Some(rt) => rt >= EARLY_AHEAD_ROUND_TRIP,
        None => command().is_some_and(|d| d >= EARLY_AHEAD_COMMAND),
    }
}

/// The early stream: waits for the merge's first file that can be sent before the scans end (or
/// for the queue to close: then nothing is sent), starts a source and a target agent of its own
/// and sends from the queue until it is closed and empty. Its agents are sessions of the hosts'
/// master ssh connections (a session starts in a fraction of a key exchange's time, which on the
/// 2-core lab took 0.4-0.6 s beside the scans; what the early stream carries is a delta, for
/// which one ssh process encrypting is no bottleneck). On a distant host (see
/// [`EARLY_AHEAD_COMMAND`]) they are started at once, beside the scans, so that the first file
/// does not wait the round trips of their start; unused, they are closed without waiting for
/// them, and a failure to start them matters only when a file comes. A target agent started
/// ahead that could not open a tree the source has (a first pass makes the target's missing
/// folders while the scans start) is started again when the first file comes.
fn early_send(
    start: Starter<'_>,
    on_source: &[bool],
    q: &send::Queue,
    owners: &OwnerMap,
    counters: &Counters,
    compression: Compression,
) -> Result<Option<Sent>, Failure> {
    let connected = distant(start.src, start.tgt).then(|| {
        let pair = start.pair(AgentChannel::Master);
        timing::mark("early stream connected ahead");
        pair
    });
    loop {
        // Closed is read first: every push comes before the close.
        let closed = q.is_closed();
        if q.waiting() > 0 {
            break;
        }
        if closed {
            if let Some(Ok((s, t))) = connected {
                Conn::new(s).close_in_background();
                Conn::new(t).close_in_background();
            }
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    timing::mark("early stream: first file");
    let (s, t) = match connected {
        Some(pair) => {
            let (s, mut t) = pair?;
            if !lacking(&t, on_source).is_empty() {
                // Opened before the pass made the target's missing folders: open them now.
                Conn::new(t).close_in_background();
                t = start.target(AgentChannel::Master)?;
            }
            (s, t)
        }
        None => start.pair(AgentChannel::Master)?,
    };
    timing::mark("early stream connected");
    let (mut s, mut t) = (Conn::new(s), Conn::new(t));
    let r = send::send_queue(
        vec![send::halves(&mut s, &mut t)],
        send::Later::none(),
        q,
        owners,
        counters,
        compression,
        || {},
    );
    s.close();
    t.close();
    r.map(Some)
}

/// Merge one tree's scans into its plan: source entries counted (and saved under the pass's id,
/// with what could not be read: the saved file is returned), owners noted, unreadable parts
/// listed. With `early`, files that need nothing else done first go to that queue as the merge
/// finds them (while it holds fewer than [`EARLY_QUEUED`]), not into the plan.
#[allow(clippy::too_many_arguments)]
fn merge_tree(
    index: usize,
    tree: &Tree,
    on_source: bool,
    sf: &mut merge::Feed,
    tf: &mut merge::Feed,
    owners: &OwnerMap,
    early: Option<&send::Queue>,
    manifests: Option<(&std::path::Path, manifest::PassId)>,
    mut target_side: Option<AsRead>,
    uids: &mut BTreeSet<u32>,
    gids: &mut BTreeSet<u32>,
    rep: &mut SyncReport,
) -> Result<Merged, merge::Stop> {
    let mut saver = merge::Saver::new(manifests, &tree.name);
    let mut d = Differ::new(owners);
    let early = early.filter(|_| on_source);
    if early.is_some() {
        d = d.send_early();
    }
    loop {
        let (s, t) = (sf.peek()?.is_some(), tf.peek()?.is_some());
        if !s && !t {
            break;
        }
        let ord = merge::order(sf.peek()?, tf.peek()?).expect("an entry");
        let se = if ord != std::cmp::Ordering::Greater {
            sf.take()
        } else {
            None
        };
        let te = if ord != std::cmp::Ordering::Less {
            tf.take()
        } else {
            None
        };
        if let (Some(e), Some(w)) = (&te, &mut target_side) {
            if w.push(e).is_err() {
                target_side = None;
            }
        }
        if let Some(e) = &se {
            rep.entries += 1;
            if e.file_type == crate::agent::proto::FileType::File {
                rep.bytes_total += e.size;
            }
            uids.insert(e.uid);
            gids.insert(e.gid);
            saver.push(e);
        }
        if on_source {
            let se = se.as_ref().map(EntryRef::of);
            let te = te.as_ref().map(EntryRef::of);
            d.pair(se.as_ref(), te.as_ref());
            if let Some(q) = early {
                while let Some(op) = d.take_early() {
                    if q.waiting() < EARLY_QUEUED {
                        if let Some(w) = &mut target_side {
                            w.early.push(op.path.clone());
                        }
                        q.push(Job {
                            root: index as u16,
                            tree: index,
                            op,
                            tries: 0,
                        });
                    } else {
                        d.send_later(op);
                    }
                }
            }
        }
    }
    for s in &sf.skipped {
        rep.unreadable(format!("{}: {}", shown(tree, &s.path), s.message));
    }
    // The target's side is kept only when its scan was complete.
    if !on_source || !tf.skipped.is_empty() || tf.root_error.is_some() {
        target_side = None;
    }
    let file = saver
        .finish(&sf.skipped, sf.root_error.as_ref())
        .unwrap_or_else(|w| {
            rep.warnings.push(w);
            None
        });
    if let Some((_, msg)) = &sf.root_error {
        if on_source {
            // Nothing of this tree could be read: nothing is removed from the target.
            rep.unreadable(format!("{}: {msg}", shown(tree, &RelPath::root())));
            return Ok((Plan::default(), file, None));
        }
    }
    if !on_source {
        return Ok((Plan::default(), file, None));
    }
    for s in sf.skipped.drain(..) {
        d.skipped(s);
    }
    let p = d.finish();
    for s in &p.special {
        rep.special.push(shown(tree, s));
    }
    Ok((p, file, target_side))
}

/// A tree's plan, its saved source manifest, and the target's side as the merge read it
/// (unfinished; `None` when it is not to be kept).
type Merged = (Plan, Option<PathBuf>, Option<AsRead>);

/// How an online pass saves a tree's target at its end, short of reading it whole again.
enum SideSave {
    /// Nothing written there: the merge's read as it is.
    AsRead(AsRead),
    /// The merge's read with the paths written (and their folders) read again (`lstat`), and
    /// what was below removed paths left out.
    Patch(AsRead, BTreeSet<Vec<u8>>, HashSet<Vec<u8>>),
}

/// Above this many written paths, or a quarter of the tree's entries, reading the tree again
/// whole costs less than reading them one by one.
const PATCH_MAX: usize = 50_000;

/// How to save the target of a tree the merge read as `r` after the plan `plan` (and the files
/// sent during the scans, and the removal of the leftover temporaries): `None` to read it again.
fn side_save(r: AsRead, plan: &Plan, temporary: &[RelPath]) -> Option<SideSave> {
    if plan.is_empty() && r.early.is_empty() && temporary.is_empty() {
        return Some(SideSave::AsRead(r));
    }
    if r.links {
        return None;
    }
    // A patch reads again at most PATCH_MAX paths, and a quarter of the tree: past that, reading
    // the tree whole costs less. The set stops growing there, so a first copy (every path
    // written) never holds a second copy of every path beside the plan.
    let limit = usize::try_from(r.entries() / 4).map_or(PATCH_MAX, |q| q.min(PATCH_MAX));
    let removed = plan.remove_first.iter().chain(&plan.remove);
    let paths = removed
        .clone()
        .chain(plan.mkdir.iter().map(|(p, _)| p))
        .chain(plan.symlinks.iter().map(|(p, _, _)| p))
        .chain(plan.reuse.iter().flat_map(|(f, old)| [&f.path, old]))
        .chain(plan.files.iter().map(|f| &f.path))
        .chain(
            plan.links
                .iter()
                .flat_map(|(new, existing)| [new, existing]),
        )
        .chain(plan.meta.iter().chain(&plan.dir_meta).map(|m| &m.path))
        .chain(&r.early)
        // A leftover temporary and its folder (its removal may have failed).
        .chain(temporary);
    let mut written = BTreeSet::new();
    for p in paths {
        let p = p.as_bytes();
        written.insert(p.to_vec());
        written.insert(parent_of(p).to_vec());
        if written.len() > limit {
            return None;
        }
    }
    let gone: HashSet<Vec<u8>> = removed.map(|p| p.as_bytes().to_vec()).collect();
    Some(SideSave::Patch(r, written, gone))
}

fn parent_of(p: &[u8]) -> &[u8] {
    match p.iter().rposition(|&b| b == b'/') {
        Some(i) => &p[..i],
        None => b"",
    }
}

/// `lstat` of `paths` of tree `i` on the target, pipelined: each entry, or `None` when nothing
/// is there.
fn restat(tcon: &mut Conn, i: usize, paths: Vec<RelPath>) -> Result<Vec<Option<Entry>>, String> {
    let reqs = paths
        .into_iter()
        .map(|p| Request::Stat(Target::new(i as u16, p)))
        .collect();
    stat_entries(tcon.batch(reqs).map_err(|e| e.to_string())?)
}

/// The answers to `Stat`s: each entry, or `None` when nothing is there.
fn stat_entries(answers: Vec<Answer>) -> Result<Vec<Option<Entry>>, String> {
    answers
        .into_iter()
        .map(|a| match a {
            Ok(Response::Meta(e)) => Ok(Some(e)),
            // Nothing there, or a parent that is now a file or a symlink (a scan would not
            // reach the path either).
            Err((ErrorCode::NotFound | ErrorCode::NotADirectory | ErrorCode::Symlink, _)) => {
                Ok(None)
            }
            Ok(r) => Err(format!("an unexpected answer to a stat: {r:?}")),
            Err((_, m)) => Err(m),
        })
        .collect()
}

/// Give the memory the scans and the diff freed back to the system before the send, which runs
/// for minutes beside the ssh clients' buffers: glibc keeps freed heap pages (in every thread's
/// arena) resident until told. A first copy of 100,000 files (bench/run D1 S1): the operator
/// side's peak PSS 44 -> 41 MB.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of glibc's heaps to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Where the exit check takes a tree's source side from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum CheckSource {
    /// The manifest this pass saved (refused, and the source scanned, when another pass wrote
    /// the file or it is incomplete).
    Saved(PathBuf),
    /// A scan of the source, and why.
    Scan(String),
}

/// Per tree, where the exit check takes the source from: with [`Check::Target`], the manifest
/// this pass saved, unless it saved none for the tree or the streams saw one of the tree's files
/// move on the source (then that manifest is not what the source holds).
fn check_sources(
    mode: Check,
    trees: &[Tree],
    saved: &[Option<PathBuf>],
    moved: &BTreeMap<usize, (RelPath, usize)>,
) -> Vec<CheckSource> {
    (0..trees.len())
        .map(|i| match mode {
            Check::BothSides => CheckSource::Scan("both sides asked".into()),
            Check::Target => match (moved.get(&i), saved.get(i).cloned().flatten()) {
                (Some((p, n)), _) => CheckSource::Scan(format!(
                    "{n} file(s) moved on the source while the pass sent them (changed, \
                     vanished or not as scanned), e.g. {}",
                    shown(&trees[i], p)
                )),
                (None, Some(f)) => CheckSource::Saved(f),
                (None, None) => CheckSource::Scan("this pass saved no manifest of it".into()),
            },
        })
        .collect()
}

/// A tree's source side for the exit check: the manifest this pass saved, or `scan` (called
/// only when that manifest is not to be used, or cannot be: another pass's file, incomplete,
/// unreadable); with why the source was scanned.
fn source_side(
    src: &CheckSource,
    pass_id: manifest::PassId,
    scan: impl FnOnce() -> Result<manifest::Manifest, Failure>,
) -> Result<(manifest::Manifest, Option<String>), Failure> {
    match src {
        CheckSource::Saved(f) => match manifest::load_of_pass(f, pass_id) {
            Ok(m) => {
                timing::mark("check: source manifest loaded");
                Ok((m, None))
            }
            Err(e) => {
                let why = format!("its manifest of this pass is not usable: {e}");
                Ok((scan()?, Some(why)))
            }
        },
        CheckSource::Scan(why) => Ok((scan()?, Some(why.clone()))),
    }
}

/// Scan every tree but `config/` (as [`super::verify_migration`]: target-config checks it) on
/// the target and compare it ([`verify::compare`]) with the source's side as `sources` says
/// (the pass's saved manifest, or the source scanned at the same time), one tree at a time, so
/// one tree's two manifests are held at once; with `keep`, the target's are kept in the verdict.
#[allow(clippy::too_many_arguments)]
fn check_trees(
    sa: &mut AgentClient,
    ta: &mut AgentClient,
    trees: &[Tree],
    owners: &OwnerMap,
    mode: Check,
    sources: &[CheckSource],
    pass_id: manifest::PassId,
    keep: bool,
) -> Result<FileVerification, Failure> {
    let t0 = Instant::now();
    let mut v = FileVerification::default();
    for (i, tree) in trees.iter().enumerate() {
        if tree.name == "config" {
            continue;
        }
        v.trees.push(tree.name.clone());
        let scan = |a: &mut AgentClient| {
            manifest::scan(a, i as u16, &tree.filter).map_err(deploy::failure_of)
        };
        let (sm, tm) = std::thread::scope(|sc| {
            let h = sc.spawn(|| source_side(&sources[i], pass_id, || scan(sa)));
            let t = scan(ta);
            timing::mark("check: target scanned");
            let s = crate::exit::joined(h.join(), "a scan thread");
            (s, t)
        });
        let ((sm, why), tm) = (sm?, tm?);
        if let Some(why) = why {
            v.source_read.push(format!("{}: {why}", tree.name));
        }
        if tm.root_error.is_some() && sm.root_error.is_some() {
            continue; // on neither side: nothing to compare
        }
        verify::compare(&tree.name, &sm, &tm, owners, &mut v);
        if keep {
            v.target_scans.push(verify::ScannedTree {
                root: tree.target.clone(),
                filter: tree.filter.clone(),
                manifest: std::sync::Arc::new(tm),
            });
        }
    }
    v.equal = v.difference_count == 0;
    v.read = match mode {
        Check::BothSides => "both sides, on the pass's agents".into(),
        Check::Target if v.source_read.is_empty() => {
            "target, against the pass's source manifests".into()
        }
        Check::Target => format!(
            "target, against the pass's source manifests; the source read again for {}",
            v.source_read.join("; ")
        ),
    };
    v.seconds = t0.elapsed().as_secs_f64();
    Ok(v)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Clean,
    Remove,
    Reuse,
    Mkdir,
    Symlink,
    Link,
    Meta,
    Sync,
}

/// The `Reuse` links of a batch that failed (tree, path): their files are sent instead.
type FailedReuse = Vec<(usize, RelPath)>;

/// Run a batch; returns the `Reuse` links that failed (their files are sent instead).
fn run_batch(
    con: &mut Conn,
    reqs: Vec<Request>,
    what: Vec<(usize, RelPath, Kind)>,
    trees: &[Tree],
    rep: &mut SyncReport,
) -> Result<FailedReuse, Failure> {
    run_batch_with_tail(con, reqs, what, trees, rep).map(|(failed_reuse, _)| failed_reuse)
}

/// [`run_batch`] whose requests go on past `what` (reads asked behind the writes): their
/// answers, in order, come back as they are.
fn run_batch_with_tail(
    con: &mut Conn,
    reqs: Vec<Request>,
    what: Vec<(usize, RelPath, Kind)>,
    trees: &[Tree],
    rep: &mut SyncReport,
) -> Result<(FailedReuse, Vec<Answer>), Failure> {
    let mut failed_reuse = Vec::new();
    if reqs.is_empty() {
        return Ok((failed_reuse, Vec::new()));
    }
    let mut answers = con.batch(reqs).map_err(deploy::failure_of)?;
    let tail = answers.split_off(what.len().min(answers.len()));
    for ((i, p, kind), a) in what.into_iter().zip(answers) {
        match a {
            Ok(_) => match kind {
                Kind::Remove => rep.removed += 1,
                Kind::Clean => rep.cleaned += 1,
                Kind::Mkdir => rep.dirs_created += 1,
                Kind::Symlink => rep.symlinks += 1,
                Kind::Link => rep.hard_links += 1,
                Kind::Reuse => rep.reused += 1,
                Kind::Meta | Kind::Sync => {}
            },
            Err(_) if kind == Kind::Reuse => failed_reuse.push((i, p)),
            Err((_, msg)) if kind == Kind::Clean => rep.warnings.push(format!(
                "cleanup of {}: {msg}",
                shown_on_target(&trees[i], &p)
            )),
            // A folder removed by a removal above it, a link to a file that vanished.
            Err((ErrorCode::NotFound, _)) if kind == Kind::Meta || kind == Kind::Link => {}
            // `Sync` covers every root of the target.
            Err((_, msg)) if kind == Kind::Sync => {
                rep.failed(format!("sync (syncfs) of the target's trees: {msg}"))
            }
            Err((_, msg)) => {
                let what = format!("{kind:?}").to_lowercase();
                rep.failed(format!("{what} {}: {msg}", shown_on_target(&trees[i], &p)))
            }
        }
    }
    Ok((failed_reuse, tail))
}

/// What starting more agents for a pass takes: both hosts, the agent's binary and where it is
/// on each, and the trees (their roots, in the handshake).
#[derive(Clone, Copy)]
struct Starter<'a> {
    src: &'a SourceHost,
    tgt: &'a TargetHost,
    bin: &'a AgentBinary,
    si: &'a AgentInstall,
    ti: &'a AgentInstall,
    trees: &'a [Tree],
}

impl Starter<'_> {
    /// A target agent (a session of the master connection, or a connection of its own).
    fn target(&self, channel: AgentChannel) -> Result<AgentClient, Failure> {
        deploy::connect(
            self.tgt,
            self.bin,
            self.ti,
            roots(self.trees, false),
            channel,
        )
    }

    /// A source and a target agent, started at once (each is an ssh handshake, or a session's
    /// start).
    fn pair(&self, channel: AgentChannel) -> Result<(AgentClient, AgentClient), Failure> {
        std::thread::scope(|sc| {
            let h = sc.spawn(|| {
                deploy::connect(
                    self.src,
                    self.bin,
                    self.si,
                    roots(self.trees, true),
                    channel,
                )
            });
            let t = self.target(channel);
            let s = crate::exit::joined(h.join(), "starting an agent");
            Ok((s?, t?))
        })
    }

    /// One more stream pair: each agent on an ssh connection of its own (`Dedicated`), or a
    /// session of the host's master connection.
    fn streams(&self, channel: AgentChannel) -> Result<(Conn, Conn), Failure> {
        let (s, t) = self.pair(channel)?;
        Ok((Conn::new(s), Conn::new(t)))
    }
}

/// The trees the source has (`on_source`) that the target agent `ta` could not open: their
/// folders do not exist there yet (a first pass).
fn lacking(ta: &AgentClient, on_source: &[bool]) -> Vec<usize> {
    let roots = ta.welcome().roots;
    (0..on_source.len())
        .filter(|&i| on_source[i] && roots.get(i).is_none_or(|r| r.is_err()))
        .collect()
}

#[cfg(test)]
mod check_tests {
    use super::*;
    use crate::agent::proto::{Entry, FileType, Time};
    use manifest::{Manifest, PassId, Skip};
    use std::cell::Cell;

    fn e(p: &str, ft: FileType, size: u64, sec: i64) -> Entry {
        Entry {
            path: RelPath::new(p).unwrap(),
            file_type: ft,
            mode: 0o644,
            uid: 1,
            gid: 1,
            size,
            mtime: Time { sec, nsec: 7 },
            ctime: Time::default(),
            dev: 1,
            ino: 0,
            nlink: 1,
            target: vec![],
        }
    }

    fn tree() -> Vec<Entry> {
        vec![
            e("", FileType::Dir, 0, 1),
            e("a", FileType::File, 5, 2),
            e("d", FileType::Dir, 0, 3),
            e("d/b", FileType::File, 6, 4),
        ]
    }

    fn trees(names: &[&str]) -> Vec<Tree> {
        names
            .iter()
            .map(|n| Tree {
                name: n.to_string(),
                source: PathBuf::from(format!("/old/{n}")),
                target: PathBuf::from(format!("/new/{n}")),
                filter: super::super::Filter::Everything,
            })
            .collect()
    }

    /// The source side as the target-only check takes it, and whether `scan` (the source read
    /// again) was called.
    fn side(src: &CheckSource, id: PassId) -> (Manifest, Option<String>, bool) {
        let scanned = Cell::new(false);
        let (m, why) = source_side(src, id, || {
            scanned.set(true);
            Ok(Manifest::from_entries(tree()))
        })
        .unwrap();
        (m, why, scanned.get())
    }

    fn compare(src: &Manifest, tgt: Vec<Entry>) -> FileVerification {
        let mut v = FileVerification::default();
        verify::compare(
            "data",
            src,
            &Manifest::from_entries(tgt),
            &OwnerMap::identity(),
            &mut v,
        );
        v.equal = v.difference_count == 0;
        v
    }

    #[test]
    fn a_measured_round_trip_decides_how_far_a_host_is() {
        let ms = Duration::from_millis;
        let unused = || -> Option<Duration> { panic!("a measured round trip decides") };
        // A near host whose commands were slow (a cold disk) is near; a far one is far.
        assert!(!far_by(Some(ms(2)), unused));
        assert!(far_by(Some(ms(30)), unused));
        // Without a round trip, its quickest command decides; a host not timed is near.
        assert!(far_by(None, || Some(ms(80))));
        assert!(!far_by(None, || Some(ms(10))));
        assert!(!far_by(None, || None));
    }

    /// The target-only check: this pass's saved manifest against the target read again. The
    /// source is not read; a target that differs from the manifest (changed after the pass's
    /// writes) fails the check, each difference named; the unreadable paths the source's scan
    /// saved are reported as a both-sides check reports them.
    #[test]
    fn target_only_check_compares_the_pass_manifest_with_the_target() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("data.source");
        let id = PassId::new();
        let mut w = manifest::Writer::create(&f, id).unwrap();
        for x in tree() {
            w.push(&manifest::EntryRef::of(&x)).unwrap();
        }
        w.finish().unwrap();
        let (m, why, scanned) = side(&CheckSource::Saved(f.clone()), id);
        assert!(!scanned && why.is_none(), "the source is not read: {why:?}");
        assert_eq!(m.len(), 4);
        assert!(compare(&m, tree()).equal);
        // The target altered after the pass: a file's mtime, one gone, one more.
        let mut tgt = tree();
        tgt[1].mtime.nsec = 8;
        tgt.remove(3);
        tgt.push(e("d/extra", FileType::File, 1, 5));
        let v = compare(&m, tgt);
        assert!(!v.equal);
        assert_eq!(v.difference_count, 3, "{:?}", v.differences);
        let all = v.differences.join("\n");
        for d in [
            "mtime: data:/a",
            "missing: data:/d/b",
            "extra: data:/d/extra",
        ] {
            assert!(all.contains(d), "{d} in {all}");
        }
        // What the source's scan could not read is in the manifest, and reported.
        let mut s = Manifest::from_entries(tree());
        s.skipped.push(Skip {
            path: RelPath::new("locked").unwrap(),
            code: crate::agent::proto::ErrorCode::PermissionDenied,
            message: "Permission denied".into(),
        });
        manifest::save(&s, &f, id).unwrap();
        let (m, _, scanned) = side(&CheckSource::Saved(f.clone()), id);
        assert!(!scanned);
        let v = compare(&m, tree());
        assert!(!v.equal);
        assert_eq!(
            v.differences,
            ["unreadable: data:/locked: source: Permission denied"]
        );
    }

    /// A manifest another pass left under the name (stale: this pass could not save its own),
    /// or one cut short, is never compared: the source is read again instead.
    #[test]
    fn a_stale_or_incomplete_manifest_is_never_used() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("data.source");
        let earlier = PassId::new();
        let stale: Vec<Entry> = tree().into_iter().take(2).collect();
        manifest::save(&Manifest::from_entries(stale), &f, earlier).unwrap();
        let (m, why, scanned) = side(&CheckSource::Saved(f.clone()), PassId::new());
        assert!(scanned, "the source was read again");
        assert!(why.unwrap().contains("another pass"));
        assert_eq!(m.len(), 4, "the scan's manifest, not the stale one");
        let bytes = std::fs::read(&f).unwrap();
        std::fs::write(&f, &bytes[..bytes.len() - 9]).unwrap();
        let (_, why, scanned) = side(&CheckSource::Saved(f.clone()), earlier);
        assert!(scanned && why.unwrap().contains("incomplete"));
        let (_, why, scanned) = side(&CheckSource::Saved(t.path().join("none")), earlier);
        assert!(scanned && why.is_some());
    }

    /// Which trees the target-only check reads on the source again: those whose files moved
    /// while sent, and those this pass saved no manifest of; both-sides: every tree.
    #[test]
    fn check_sources_read_the_source_only_where_the_manifest_is_not_current() {
        let ts = trees(&["data", "apps-external", "themes"]);
        let saved = vec![
            Some(PathBuf::from("/s/data.source")),
            Some(PathBuf::from("/s/apps-external.source")),
            None,
        ];
        let mut moved = BTreeMap::new();
        moved.insert(1, (RelPath::new("x/y").unwrap(), 2));
        let s = check_sources(Check::Target, &ts, &saved, &moved);
        assert_eq!(s[0], CheckSource::Saved(PathBuf::from("/s/data.source")));
        match &s[1] {
            CheckSource::Scan(why) => {
                assert!(
                    why.contains("2 file(s) moved") && why.contains("/old/apps-external/x/y"),
                    "{why}"
                )
            }
            o => panic!("{o:?}"),
        }
        assert_eq!(
            s[2],
            CheckSource::Scan("this pass saved no manifest of it".into())
        );
        let s = check_sources(Check::BothSides, &ts, &saved, &BTreeMap::new());
        assert!(s.iter().all(|x| matches!(x, CheckSource::Scan(_))));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::proto::{FileType, Time};
    use crate::transfer::diff::{Attrs, MetaOp};
    use crate::transfer::Filter;

    fn rel(p: &str) -> RelPath {
        RelPath::new(p).unwrap()
    }

    fn entry(p: &str, nlink: u64) -> Entry {
        Entry {
            path: rel(p),
            file_type: FileType::File,
            mode: 0o644,
            uid: 1,
            gid: 1,
            size: 1,
            mtime: Time { sec: 1, nsec: 2 },
            ctime: Time::default(),
            dev: 1,
            ino: 2,
            nlink,
            target: vec![],
        }
    }

    fn file(p: &str) -> FileOp {
        FileOp {
            path: rel(p),
            size: 1,
            attrs: Attrs {
                mode: 0o644,
                uid: 1,
                gid: 1,
                mtime: Time { sec: 1, nsec: 2 },
            },
        }
    }

    fn set(ps: &[&str]) -> Vec<Vec<u8>> {
        ps.iter().map(|p| p.as_bytes().to_vec()).collect()
    }

    /// How an online pass saves a tree's target: as read when it wrote nothing there; as read
    /// with every written path and its folder read again (and what lay below removed paths left
    /// out) when it wrote little; read again whole when it wrote much, or when the target has
    /// files of several links (a write to one name changes what the others show).
    #[test]
    fn the_target_is_saved_from_the_pass_own_read_only_when_that_is_exact() {
        let d = tempfile::tempdir().unwrap();
        let tree = Tree {
            name: "data".into(),
            source: "/old/data".into(),
            target: "/new/data".into(),
            filter: Filter::Everything,
        };
        let read = |n: usize, link: bool| {
            let mut r =
                AsRead::create(d.path(), "root@new", &tree, manifest::PassId::new()).unwrap();
            for i in 0..n {
                r.push(&entry(&format!("f{i}"), if link && i == 7 { 2 } else { 1 }))
                    .unwrap();
            }
            r
        };
        assert!(matches!(
            side_save(read(100, false), &Plan::default(), &[]),
            Some(SideSave::AsRead(_))
        ));
        // Only the removal of a killed run's temporary file: it and its folder are read again
        // (the removal may have failed).
        match side_save(read(100, false), &Plan::default(), &[rel("u/.ocm-x.tmp")]) {
            Some(SideSave::Patch(_, w, g)) => {
                assert_eq!(
                    w.into_iter().collect::<Vec<_>>(),
                    set(&["u", "u/.ocm-x.tmp"])
                );
                assert!(g.is_empty());
            }
            _ => panic!("patched"),
        }
        let mut p = Plan::default();
        p.files.push(file("a/b/new"));
        p.remove.push(rel("x/y"));
        p.dir_meta.push(MetaOp {
            path: rel("a"),
            mode: None,
            uid: None,
            gid: None,
            mtime: Some(Time { sec: 3, nsec: 4 }),
        });
        match side_save(read(100, false), &p, &[]) {
            Some(SideSave::Patch(_, w, g)) => {
                let w: Vec<_> = w.into_iter().collect();
                assert_eq!(w, set(&["", "a", "a/b", "a/b/new", "x", "x/y"]));
                assert_eq!(g.into_iter().collect::<Vec<_>>(), set(&["x/y"]));
            }
            _ => panic!("patched"),
        }
        assert!(side_save(read(100, true), &p, &[]).is_none(), "hard links");
        assert!(
            side_save(read(20, false), &p, &[]).is_none(),
            "6 of 20: read again"
        );
        // Nothing of a patch or a read given up stays in the state folder.
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
    }
}
