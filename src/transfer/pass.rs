//! One sync pass, start to end: agents, cleanup of an interrupted run's temporary files, scans
//! of both sides, the diff, then on the target: removals, folders, symlinks, file contents over
//! the parallel streams, hard links, metadata fixes, folder attributes (deepest first), `Sync`.

use super::diff::{self, Plan};
use super::manifest::{self, Manifest};
use super::owners::OwnerMap;
use super::progress::{Counters, Sink};
use super::send::{self, Compression, Conn, Job};
use super::timing;
use super::{roots, scan_side, SyncOptions, SyncReport, Tree};
use crate::agent::deploy::{self, AgentBinary};
use crate::agent::proto::{ErrorCode, RelPath, Request, Target};
use crate::exit::Failure;
use crate::host::{AgentChannel, AgentInstall, SourceHost, TargetHost};
use std::collections::BTreeSet;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

fn shown(tree: &Tree, p: &RelPath) -> String {
    if p.is_root() {
        tree.source.display().to_string()
    } else {
        format!("{}/{p}", tree.source.display())
    }
}

/// Files per extra stream: fewer files than this do not pay for another connection.
const FILES_PER_STREAM: usize = 200;

pub(crate) fn run_pass(
    src: &SourceHost,
    tgt: &TargetHost,
    trees: &[Tree],
    mut owners: OwnerMap,
    opts: &SyncOptions,
    sink: &mut dyn Sink,
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

    // Both agents start at once; the source's handshake says which trees exist there.
    let (s_started, t_started) = std::thread::scope(|sc| {
        let h = sc.spawn(|| deploy::start(src, &bin, roots(trees, true)));
        let t = deploy::start(tgt, &bin, roots(trees, false));
        let s = h
            .join()
            .unwrap_or_else(|_| Err(Failure::check("starting an agent panicked")));
        (s, t)
    });
    let (mut sa, s_install) = s_started?;
    let (ta, t_install) = t_started?;
    timing::mark("agents started");
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
    // The source is scanned while the target is made ready and scanned.
    let (sm, mut tm, ta) = std::thread::scope(|sc| {
        let h = sc.spawn(|| scan_side(&mut sa, trees));
        let (bin, t_install, on_source) = (&bin, &t_install, &on_source);
        let target = move || -> Result<_, Failure> {
            let mut ta = ta;
            // A tree the source has and the target lacks (the first pass): its folder is made,
            // and the agent started again to open it.
            let t_roots = ta.welcome().roots;
            let missing: Vec<String> = trees
                .iter()
                .enumerate()
                .filter(|(i, _)| on_source[*i] && t_roots.get(*i).is_none_or(|r| r.is_err()))
                .map(|(_, t)| crate::host::shell_quote(&t.target.to_string_lossy()))
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
                ta = deploy::connect(
                    tgt,
                    bin,
                    t_install,
                    roots(trees, false),
                    AgentChannel::Master,
                )?;
            }
            if !ta.welcome().writable {
                return Err(Failure::check(format!(
                    "{}: the agent did not grant write access",
                    tgt.label()
                )));
            }
            let tm = scan_side(&mut ta, trees)?;
            timing::mark("target scanned");
            Ok((ta, tm))
        };
        let t = target();
        let s = h
            .join()
            .unwrap_or_else(|_| Err(Failure::check("a scan thread panicked")));
        timing::mark("source scanned");
        let (ta, tm) = t?;
        Ok::<_, Failure>((s?, tm, ta))
    })?;
    // Temporary files of an interrupted run, as the target's scan found them: removed first.
    let temporary: Vec<Vec<RelPath>> = tm.iter_mut().map(|m| m.take_temporary()).collect();
    rep.scan_seconds = t0.elapsed().as_secs_f64();
    if let Some(dir) = &opts.state_dir {
        let d = dir.join("manifests");
        // Private like the rest of the state folder: file names are users' data.
        let made = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&d)
            .and_then(|()| std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)));
        if made.is_ok() {
            for (t, m) in trees.iter().zip(&sm) {
                if let Err(e) = manifest::save(m, &d.join(format!("{}.source", t.name))) {
                    rep.warnings
                        .push(format!("cannot save the manifest of {}: {e}", t.name));
                }
            }
        }
    }
    let mut uids = BTreeSet::new();
    let mut gids = BTreeSet::new();
    for m in &sm {
        for e in m.iter() {
            uids.insert(e.uid);
            gids.insert(e.gid);
        }
    }
    owners.note_unmapped(&uids, &gids);
    rep.warnings.extend(owners.warnings.iter().cloned());

    let mut plans: Vec<Plan> = Vec::new();
    for (i, tree) in trees.iter().enumerate() {
        let m: &Manifest = &sm[i];
        rep.entries += m.len() as u64;
        rep.bytes_total += m.totals().1;
        for s in &m.skipped {
            rep.unreadable(format!("{}: {}", shown(tree, &s.path), s.message));
        }
        if !on_source[i] {
            plans.push(Plan::default());
            continue;
        }
        let p = diff::diff(m, &tm[i], &owners);
        for s in &p.special {
            rep.special.push(shown(tree, s));
        }
        plans.push(p);
    }
    let to_send: usize = plans.iter().map(|p| p.files.len()).sum();
    let to_send_bytes: u64 = plans.iter().map(|p| p.bytes).sum();
    timing::mark("diff");
    sink.note(&format!(
        "scanned {} entries in {:.1} s: {to_send} file(s), {} to send",
        rep.entries,
        rep.scan_seconds,
        super::progress::human(to_send_bytes as f64)
    ));

    let mut scon = Conn::new(sa);
    let mut tcon = Conn::new(ta);
    let keep_owner = tcon.tx.welcome().uid != 0;
    if keep_owner {
        rep.warnings.push(format!(
            "{}: not connected as root, so files keep the login user as owner",
            tgt.label()
        ));
    }
    let own = |v: u32| if keep_owner { u32::MAX } else { v };

    // Removals of what is in the way, folders, links to the bytes of renamed files,
    // removals of what is extraneous, symlinks: in this order, per tree.
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
    let failed_reuse = run_batch(&mut tcon, reqs, what, trees, &mut rep)?;
    timing::mark("first batch");
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
        let want = opts.streams.unwrap_or_else(super::default_streams).max(1);
        let n = want.min(files.div_ceil(FILES_PER_STREAM)).max(1);
        rep.streams = n;
        sink.phase(
            "send",
            &format!(
                "{files} file(s), {} over {n} stream(s)",
                super::progress::human(bytes as f64)
            ),
        );
        let jobs: Vec<Job> = plans
            .iter()
            .enumerate()
            .flat_map(|(i, p)| {
                p.files.iter().map(move |op| Job {
                    root: i as u16,
                    tree: i,
                    op: op.clone(),
                    tries: 0,
                })
            })
            .collect();
        let compression = match opts.compress {
            Some(true) => Compression::On,
            Some(false) => Compression::Off,
            // Both sides on this machine: nothing to save on a wire.
            None if s_install.local() && t_install.local() => Compression::Off,
            None => Compression::Adaptive,
        };
        let started = Instant::now();
        let halves = vec![send::halves(&mut scon, &mut tcon)];
        // The other streams' connections are made while the first stream sends.
        let connect = || stream_pair(src, tgt, &bin, &s_install, &t_install, trees);
        let later = send::Later {
            count: n - 1,
            connect: &connect,
        };
        let sent = send::send_files(halves, later, jobs, &owners, &counters, compression, || {
            sink.tick(&counters.snapshot("send", started))
        })?;
        sink.end(&counters.snapshot("send", started));
        timing::mark("sent");
        rep.files_sent = sent.files;
        rep.bytes_sent = sent.bytes;
        rep.wire_bytes = sent.wire;
        rep.resent = sent.resent;
        rep.vanished = sent.vanished;
        for (i, p, why) in sent.unreadable {
            rep.unreadable(format!("{}: {why}", shown(&trees[i], &p)));
        }
        for (i, p) in sent.gave_up {
            rep.gave_up.push(shown(&trees[i], &p));
        }
        for (i, p, why) in sent.failed {
            rep.failed(format!("{}: {why}", shown(&trees[i], &p)));
        }
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
    run_batch(&mut tcon, reqs, what, trees, &mut rep)?;
    timing::mark("last batch");
    scon.close();
    tcon.close();
    timing::mark("agents closed");
    rep.seconds = t0.elapsed().as_secs_f64();
    sink.note(&rep.summary());
    Ok(rep)
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

/// Run a batch; returns the `Reuse` links that failed (their files are sent instead).
fn run_batch(
    con: &mut Conn,
    reqs: Vec<Request>,
    what: Vec<(usize, RelPath, Kind)>,
    trees: &[Tree],
    rep: &mut SyncReport,
) -> Result<Vec<(usize, RelPath)>, Failure> {
    let mut failed_reuse = Vec::new();
    if reqs.is_empty() {
        return Ok(failed_reuse);
    }
    let answers = con.batch(reqs).map_err(deploy::failure_of)?;
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
            Err((_, msg)) if kind == Kind::Clean => rep
                .warnings
                .push(format!("cleanup of {}: {msg}", shown(&trees[i], &p))),
            // A folder removed by a removal above it, a link to a file that vanished.
            Err((ErrorCode::NotFound, _)) if kind == Kind::Meta || kind == Kind::Link => {}
            Err((_, msg)) => {
                rep.failed(format!("{kind:?} {}: {msg}", shown(&trees[i], &p)).to_lowercase())
            }
        }
    }
    Ok(failed_reuse)
}

/// One more stream pair, each agent on an ssh connection of its own.
fn stream_pair(
    src: &SourceHost,
    tgt: &TargetHost,
    bin: &AgentBinary,
    si: &AgentInstall,
    ti: &AgentInstall,
    trees: &[Tree],
) -> Result<(Conn, Conn), Failure> {
    // Both at once: each is an ssh handshake.
    std::thread::scope(|sc| {
        let h =
            sc.spawn(|| deploy::connect(src, bin, si, roots(trees, true), AgentChannel::Dedicated));
        let t = deploy::connect(tgt, bin, ti, roots(trees, false), AgentChannel::Dedicated);
        let s = h
            .join()
            .unwrap_or_else(|_| Err(Failure::check("starting an agent panicked")));
        Ok((Conn::new(s?), Conn::new(t?)))
    })
}
