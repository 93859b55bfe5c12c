//! Scans asked ahead of the inventory. A pass learns its trees from the source's inventory (PHP
//! and the database: 0.1-0.2 s on a cold cache), but they seldom change from one pass to the
//! next. So each pass records its roots in the state folder (`manifests/pass-roots.json`), and
//! the next one starts its agents with those roots and asks their scans at once, while the
//! inventory runs. When the inventory gives the same roots, the pass takes these agents, their
//! scans under way; otherwise it kills them and starts its own.
//!
//! Invariants:
//! * An agent started ahead is used only when its roots are exactly the pass's (the same paths
//!   in the same order, on the same hosts); it has been sent nothing but its handshake, a `Stat`
//!   of its first opened root (whose answer times the round trip) and the scans, which the pass
//!   reads as its own, in the order they were asked.
//! * The record only says which folders to open and read: a stale, foreign or damaged record
//!   costs an agent's start and some reads, never a write (an agent not taken is killed before
//!   any other request).
//! * Only an online pass asks ahead. The final pass takes the target's side from the last
//!   pass's saved manifests, and its source scan, asked ahead, was measured slower in the window
//!   (it shares the disk with the database's dump): it starts bare spares as before.

use super::{timing, Tree};
use crate::agent::client::{AgentClient, AgentError};
use crate::agent::deploy::{self, AgentBinary, AgentSide};
use crate::agent::proto::{RelPath, Target};
use crate::host::{AgentInstall, ReadSide, SourceHost, TargetHost};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The record's name in the state folder's `manifests/`.
const RECORD: &str = "pass-roots.json";

/// The roots of a pass's trees, `config/` left out (the final pass puts it first).
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Record {
    source_host: String,
    target_host: String,
    source: Vec<Vec<u8>>,
    target: Vec<Vec<u8>>,
}

impl Record {
    fn of(source_host: &str, target_host: &str, trees: &[Tree]) -> Record {
        let kept: Vec<Tree> = trees
            .iter()
            .filter(|t| t.filter != super::Filter::ConfigFiles)
            .cloned()
            .collect();
        Record {
            source_host: source_host.to_string(),
            target_host: target_host.to_string(),
            source: super::roots(&kept, true),
            target: super::roots(&kept, false),
        }
    }
}

/// Record the roots of this pass's trees for the next pass (in `manifests`, the state folder's
/// private folder); not written when unchanged. A failure to write costs only the next pass's
/// head start, so it is not an error.
pub(crate) fn remember(manifests: &Path, src: &SourceHost, tgt: &TargetHost, trees: &[Tree]) {
    write(manifests, &Record::of(src.label(), tgt.label(), trees));
}

fn write(manifests: &Path, rec: &Record) {
    let path = manifests.join(RECORD);
    if read(manifests).as_ref() == Some(rec) {
        return;
    }
    let Ok(json) = serde_json::to_vec(rec) else {
        return;
    };
    // Private like the manifests beside it (0600): the roots name the instance's folders.
    let tmp = manifests.join(format!("{RECORD}.tmp"));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(&json));
    if written.is_err() || std::fs::rename(&tmp, &path).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

fn read(manifests: &Path) -> Option<Record> {
    let bytes = std::fs::read(manifests.join(RECORD)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// An agent started with the recorded roots, its scans asked (killed when dropped: see
/// [`AgentClient::ask_scan`]).
struct Asked {
    client: AgentClient,
    install: AgentInstall,
    roots: Vec<Vec<u8>>,
}

/// The agents a pass's preparation started ahead, with their scans asked (none when there is no
/// record, or for a host that could not start one: the pass then starts its own as usual).
#[derive(Default)]
pub struct Ahead {
    source: Option<Asked>,
    target: Option<Asked>,
}

impl Ahead {
    /// Start the agents ahead of the inventory for a pass on `src` and `tgt`: with the roots
    /// the last pass recorded in `manifests`, their scans asked at once; without a record, only
    /// spare processes (their handshake waits for the pass's trees). Not for the final pass,
    /// which gets spares only: in the window its source scan shares the disk with the
    /// database's dump, and `bench/downtime` measured its final sync 0.4 s slower with the
    /// scans ahead in two A/B pairs of one run each (session 14).
    pub(crate) fn start(
        manifests: Option<&Path>,
        src: &SourceHost,
        tgt: &TargetHost,
        bin: &AgentBinary,
        final_pass: bool,
    ) -> Ahead {
        let guess = manifests
            .filter(|_| !final_pass)
            .and_then(read)
            .filter(|r| r.source_host == src.label() && r.target_host == tgt.label());
        let (s_roots, t_roots) = match guess {
            Some(r) => (Some(r.source), Some(r.target)),
            None => (None, None),
        };
        std::thread::scope(|sc| {
            let s = sc.spawn(|| ask(src, bin, s_roots));
            let target = ask(tgt, bin, t_roots);
            let source = s.join().ok().flatten();
            Ahead { source, target }
        })
    }

    /// The source's agent started ahead, when its roots are `roots`; else it is killed.
    pub(crate) fn source(&mut self, roots: &[Vec<u8>]) -> Option<(AgentClient, AgentInstall)> {
        take(self.source.take(), roots, "source")
    }

    /// The target's agent started ahead, when its roots are `roots`; else it is killed.
    pub(crate) fn target(&mut self, roots: &[Vec<u8>]) -> Option<(AgentClient, AgentInstall)> {
        take(self.target.take(), roots, "target")
    }
}

fn take(
    asked: Option<Asked>,
    roots: &[Vec<u8>],
    side: &str,
) -> Option<(AgentClient, AgentInstall)> {
    let a = asked?;
    if a.roots != roots {
        drop(a);
        timing::mark(&format!(
            "{side}'s agent started ahead: other roots, killed"
        ));
        return None;
    }
    timing::mark(&format!("{side}'s agent started ahead: taken"));
    Some((a.client, a.install))
}

/// With roots, an agent on `side` and the scans of the roots it could open, asked; without, a
/// spare process only.
fn ask<S: AgentSide>(side: &S, bin: &AgentBinary, roots: Option<Vec<Vec<u8>>>) -> Option<Asked> {
    let Some(roots) = roots else {
        deploy::start_spare(side, bin);
        return None;
    };
    let (mut client, install) = deploy::start(side, bin, roots.clone()).ok()?;
    match scans_asked_timed(side.spares(), &mut client) {
        Ok(Some(rt)) => {
            timing::mark(&format!(
                "scans asked ahead on {} (round trip {:.1} ms)",
                side.label(),
                rt.as_secs_f64() * 1e3
            ));
        }
        Ok(None) => timing::mark("no scan asked ahead: no root opened"),
        Err(_) => {
            client.kill();
            return None;
        }
    }
    Some(Asked {
        client,
        install,
        roots,
    })
}

/// Every opened root's scan asked of `c` behind a timed `Stat`, whose round trip is noted on
/// `side` (how far it is: see `pass::distant`); `None` when no root opened.
pub(super) fn scans_asked_timed(
    side: &ReadSide,
    c: &mut AgentClient,
) -> Result<Option<std::time::Duration>, AgentError> {
    let opened: Vec<Target> = (c.welcome().roots.iter().enumerate())
        .filter(|(_, r)| r.is_ok())
        .map(|(i, _)| Target::new(i as u16, RelPath::root()))
        .collect();
    let rt = c.ask_scans_timed(opened)?;
    if let Some(d) = rt {
        side.note_round_trip(d);
    }
    Ok(rt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::trees::{self, tests::inventory};
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn either_pass_records_the_online_pass_roots() {
        let (s, t) = (Path::new("/var/www/owncloud"), Path::new("/srv/oc"));
        let online = trees::of_inventory(&inventory(), s, t, false);
        let last = trees::of_inventory(&inventory(), s, t, true);
        assert_eq!(online.len(), 4, "{online:?}");
        // Either pass records the same: config/ is left out.
        let rec = Record::of("old", "new", &online);
        assert_eq!(rec, Record::of("old", "new", &last));
        assert_eq!(rec.source, super::super::roots(&online, true));
        assert_eq!(rec.target, super::super::roots(&online, false));
        assert_ne!(rec.source, rec.target, "the target's roots are its own");
    }

    #[test]
    fn the_record_is_private_rewritten_only_when_changed_and_ignored_when_damaged() {
        let dir = tempfile::tempdir().unwrap();
        let (s, t) = (Path::new("/var/www/owncloud"), Path::new("/srv/oc"));
        let trees = trees::of_inventory(&inventory(), s, t, false);
        let rec = Record::of("old", "new", &trees);
        let path = dir.path().join(RECORD);
        assert_eq!(read(dir.path()), None);
        write(dir.path(), &rec);
        assert_eq!(read(dir.path()).as_ref(), Some(&rec));
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        write(dir.path(), &rec);
        let ino = std::fs::metadata(&path).unwrap().ino();
        assert_eq!(ino, meta.ino(), "an unchanged record is not written again");
        let other = Record::of("old", "elsewhere", &trees);
        write(dir.path(), &other);
        assert_eq!(read(dir.path()).as_ref(), Some(&other));
        std::fs::write(&path, b"{\"source_host\": 1").unwrap();
        assert_eq!(read(dir.path()), None, "a damaged record is no guess");
        // A folder in its place: no guess, and a write fails without a word or a leftover.
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        assert_eq!(read(dir.path()), None);
        write(dir.path(), &rec);
        assert!(path.is_dir());
        assert!(!dir.path().join(format!("{RECORD}.tmp")).exists());
    }
}
