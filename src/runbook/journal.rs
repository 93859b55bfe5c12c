//! The journal: what a migration has done, step by step, in the state folder.
//!
//! It is one JSON file (`journal.json`), rewritten whole after every change: written under a
//! temporary name, flushed, then renamed over the old one, so a crash leaves either the old or
//! the new journal, never half of one. It holds times, outcomes and figures, never a secret.
//! `migrate` resumes at the first step that is not done; `status` reads it.

use crate::exit::Failure;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The runbook's steps, in order (SPEC.md, "`migrate`: the runbook").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    Preflight,
    Sync,
    MaintenanceOn,
    Drain,
    StopSourceWeb,
    FinalSync,
    Database,
    TargetConfig,
    TargetUp,
    MaintenanceOff,
    LiveCheck,
    Dns,
    Report,
}

impl Step {
    pub const ALL: [Step; 13] = [
        Step::Preflight,
        Step::Sync,
        Step::MaintenanceOn,
        Step::Drain,
        Step::StopSourceWeb,
        Step::FinalSync,
        Step::Database,
        Step::TargetConfig,
        Step::TargetUp,
        Step::MaintenanceOff,
        Step::LiveCheck,
        Step::Dns,
        Step::Report,
    ];

    /// The step's name as the journal, `status` and the report write it.
    pub fn name(self) -> &'static str {
        match self {
            Step::Preflight => "preflight",
            Step::Sync => "sync",
            Step::MaintenanceOn => "maintenance-on",
            Step::Drain => "drain",
            Step::StopSourceWeb => "stop-source-web",
            Step::FinalSync => "final-sync",
            Step::Database => "database",
            Step::TargetConfig => "target-config",
            Step::TargetUp => "target-up",
            Step::MaintenanceOff => "maintenance-off",
            Step::LiveCheck => "live-check",
            Step::Dns => "dns",
            Step::Report => "report",
        }
    }

    /// One line saying what the step does.
    pub fn what(self) -> &'static str {
        match self {
            Step::Preflight => "pre-flight checks on both hosts",
            Step::Sync => "online copy while the source serves",
            Step::MaintenanceOn => "source into maintenance mode, seen over HTTP",
            Step::Drain => "wait for sync clients to notice",
            Step::StopSourceWeb => "stop the source's web server",
            Step::FinalSync => "copy the last changes, deletions included",
            Step::Database => "dump the database into the target",
            Step::TargetConfig => "config/ in place, identity keys equal",
            Step::TargetUp => "target web server up, in maintenance, checked",
            Step::MaintenanceOff => "target out of maintenance",
            Step::LiveCheck => "admin PROPFIND, ETags, OCS, logs",
            Step::Dns => "point the public name to the target",
            Step::Report => "write the report",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Running,
    Done,
    Failed,
    Skipped,
    /// Stopped by SIGINT/SIGTERM while it ran; `migrate` runs it again.
    Interrupted,
}

/// Seconds since the epoch, with milliseconds.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub step: Step,
    pub state: State,
    pub started: f64,
    pub ended: Option<f64>,
    /// What happened, in one line (the error's message when failed).
    pub outcome: String,
    /// Figures: files, bytes, seconds, counts… (no secrets).
    #[serde(default)]
    pub figures: BTreeMap<String, serde_json::Value>,
    /// A fingerprint of the step's inputs: a done step is redone when they change.
    pub inputs: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Journal {
    pub format: u32,
    pub source: String,
    pub target: String,
    pub created: f64,
    /// One entry per step, in the order they last ran.
    pub entries: Vec<Entry>,
    /// Moments that matter for the report: `maintenance_seen`, `target_live`, …
    #[serde(default)]
    pub marks: BTreeMap<String, f64>,
}

impl Journal {
    pub const FILE: &'static str = "journal.json";

    pub fn new(source: &str, target: &str) -> Journal {
        Journal {
            format: 1,
            source: source.into(),
            target: target.into(),
            created: now(),
            entries: vec![],
            marks: BTreeMap::new(),
        }
    }

    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join(Self::FILE)
    }

    /// Read the journal of a state folder; `Ok(None)` when no migration has started.
    pub fn load(state_dir: &Path) -> Result<Option<Journal>, Failure> {
        let p = Self::path(state_dir);
        let text = match std::fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Failure::usage(format!("cannot read {}: {e}", p.display()))),
        };
        serde_json::from_str(&text).map(Some).map_err(|e| {
            Failure::usage(format!("the journal {} is damaged: {e}", p.display()))
                .hint("it is rewritten atomically, so this is not a crash: restore it from a backup, or move the state folder away to start over")
        })
    }

    /// Write the journal atomically (temporary name, fsync, rename, fsync of the folder).
    pub fn save(&self, state_dir: &Path) -> Result<(), Failure> {
        let _g = SAVE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        self.save_locked(state_dir)
    }

    fn save_locked(&self, state_dir: &Path) -> Result<(), Failure> {
        create_state_dir(state_dir)?;
        let p = Self::path(state_dir);
        let tmp = state_dir.join(format!(".{}.tmp", Self::FILE));
        let bytes = serde_json::to_vec_pretty(self).expect("journal serializes");
        let res = (|| {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &p)?;
            std::fs::File::open(state_dir)?.sync_all()
        })();
        res.map_err(|e| Failure::usage(format!("cannot write the journal {}: {e}", p.display())))
    }

    /// The latest entry of a step.
    pub fn entry(&self, step: Step) -> Option<&Entry> {
        self.entries.iter().rev().find(|e| e.step == step)
    }

    pub fn is_done(&self, step: Step) -> bool {
        matches!(
            self.entry(step).map(|e| e.state),
            Some(State::Done) | Some(State::Skipped)
        )
    }

    /// The first step that is not done (or skipped).
    pub fn next_step(&self) -> Option<Step> {
        Step::ALL.into_iter().find(|s| !self.is_done(*s))
    }

    /// Record that a step started (replacing any earlier entry of it).
    pub fn start(&mut self, step: Step, inputs: Option<String>) {
        self.entries.retain(|e| e.step != step);
        self.entries.push(Entry {
            step,
            state: State::Running,
            started: now(),
            ended: None,
            outcome: String::new(),
            figures: BTreeMap::new(),
            inputs,
        });
    }

    /// Record the end of the running entry of a step.
    pub fn finish(
        &mut self,
        step: Step,
        state: State,
        outcome: impl Into<String>,
        figures: BTreeMap<String, serde_json::Value>,
    ) {
        if let Some(e) = self.entries.iter_mut().rev().find(|e| e.step == step) {
            e.state = state;
            e.ended = Some(now());
            e.outcome = outcome.into();
            e.figures.extend(figures);
        }
    }

    pub fn mark(&mut self, name: &str) {
        self.marks.insert(name.to_string(), now());
    }
}

/// Held while the journal is written, so that a signal handler's entry is the last one.
static SAVE_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Record in the journal that the running step was interrupted (by `why`, e.g. "SIGINT").
/// Returns the step, and a guard that keeps every other writer of the journal out until the
/// process exits (hold it, then exit).
pub fn record_interrupt(
    state_dir: &Path,
    why: &str,
) -> (Option<Step>, std::sync::MutexGuard<'static, ()>) {
    let g = SAVE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let mut step = None;
    if let Ok(Some(mut j)) = Journal::load(state_dir) {
        // Every running step (the final sync and the database copy may run side by side).
        for e in j.entries.iter_mut().filter(|e| e.state == State::Running) {
            e.state = State::Interrupted;
            e.ended = Some(now());
            e.outcome = format!("interrupted by {why}");
            step = step.or(Some(e.step));
        }
        j.mark("interrupted");
        let _ = j.save_locked(state_dir);
    }
    (step, g)
}

/// Create the state folder with mode 0700 (or tighten it).
pub fn create_state_dir(dir: &Path) -> Result<(), Failure> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .and_then(|_| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)))
        .map_err(|e| {
            Failure::usage(format!(
                "cannot create the state folder {}: {e}",
                dir.display()
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn save_load_resume() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("m.state");
        assert!(Journal::load(&state).unwrap().is_none());
        let mut j = Journal::new("ssh://old/x", "ssh://new/x");
        assert_eq!(j.next_step(), Some(Step::Preflight));
        j.start(Step::Preflight, None);
        j.finish(Step::Preflight, State::Done, "ready", BTreeMap::new());
        j.start(Step::Sync, Some("abc".into()));
        j.save(&state).unwrap();
        let back = Journal::load(&state).unwrap().unwrap();
        assert_eq!(back.next_step(), Some(Step::Sync));
        assert_eq!(back.entry(Step::Sync).unwrap().state, State::Running);
        assert_eq!(
            std::fs::metadata(&state).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert_eq!(
            std::fs::metadata(Journal::path(&state))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        assert!(!state.join(".journal.json.tmp").exists());
    }

    #[test]
    fn damaged_journal_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("journal.json"), "{not json").unwrap();
        let e = Journal::load(dir.path()).unwrap_err();
        assert!(e.message.contains("damaged"), "{}", e.message);
    }
}
