//! The runbook: the cut-over procedure of SPEC.md as steps that each check their precondition,
//! act, verify, and write a journal entry before the next one starts.
//!
//! `run` resumes at the first step that is not done: a done step is skipped unless its inputs
//! (a fingerprint recorded with it) changed. Every step is written so that running it again after
//! a crash in its middle is safe. The runbook never prints: it reports through [`Events`], which
//! the command line implements (text or JSON lines). It never changes the source except through
//! `SourceHost` (maintenance mode and the configured service commands).

mod drain;
pub mod journal;
mod report;
pub mod rollback;
mod steps;
mod target_config;

pub use journal::{Journal, State, Step};
pub use report::write_report;

use crate::exit::{ExitKind, Failure};
use crate::migration::Migration;
use std::collections::BTreeMap;
use std::time::Duration;

/// What the runbook tells the person (or script) running it.
pub trait Events {
    fn step_started(&mut self, step: Step);
    fn step_ended(&mut self, step: Step, state: State, outcome: &str);
    fn info(&mut self, message: &str);
    fn warning(&mut self, message: &str);
    /// A countdown (drain); called about once a second.
    fn waiting(&mut self, what: &str, left: Duration);
    /// Ask before a step that users will notice. `false` stops the run (it can be resumed).
    fn confirm(&mut self, question: &str) -> bool;
}

/// How `migrate` runs.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Answer every confirmation with yes.
    pub yes: bool,
    /// Stop after this step (tests and step-by-step runs).
    pub stop_after: Option<Step>,
}

/// What a step returns when it succeeds.
#[derive(Debug, Default)]
pub struct Outcome {
    pub summary: String,
    pub figures: BTreeMap<String, serde_json::Value>,
    pub skipped: bool,
}

impl Outcome {
    pub fn done(summary: impl Into<String>) -> Outcome {
        Outcome {
            summary: summary.into(),
            ..Default::default()
        }
    }
    pub fn skipped(summary: impl Into<String>) -> Outcome {
        Outcome {
            summary: summary.into(),
            skipped: true,
            ..Default::default()
        }
    }
    pub fn figure(mut self, key: &str, v: impl Into<serde_json::Value>) -> Outcome {
        self.figures.insert(key.to_string(), v.into());
        self
    }
}

/// Run (or resume) the migration. Returns the exit kind: Ok when every step is done.
pub fn run(m: &Migration, opts: &Options, ev: &mut dyn Events) -> Result<ExitKind, Failure> {
    let state_dir = m.state_dir();
    let mut journal = match Journal::load(&state_dir)? {
        Some(j) => {
            let (s, t) = (
                m.config.source.side.to_string(),
                m.config.target.side.to_string(),
            );
            if j.source != s || j.target != t {
                return Err(Failure::usage(format!(
                    "the journal in {} belongs to another migration ({} → {})",
                    state_dir.display(),
                    j.source,
                    j.target
                ))
                .hint("use another migration file (its state folder is beside it), or move that state folder away"));
            }
            j
        }
        None => Journal::new(
            &m.config.source.side.to_string(),
            &m.config.target.side.to_string(),
        ),
    };
    journal.save(&state_dir)?;
    let mut ctx = steps::Ctx::open(m, opts)?;
    let mut i = 0;
    while i < Step::ALL.len() {
        let step = Step::ALL[i];
        // The database copy runs beside the final sync, target-config and target-up's start
        // when the database lives in a database server: the source's is quiescent once its web
        // server is stopped, and neither lane writes what the other does (files, config/ and the
        // web server; the database). Target-up waits for the database before its checks. A
        // SQLite database is a file in the data folder: copied after the final sync, in order.
        let lanes: Vec<Vec<Step>> = if step == Step::FinalSync && ctx.database_beside_final_sync() {
            vec![
                vec![Step::FinalSync, Step::TargetConfig, Step::TargetUp],
                vec![Step::Database],
            ]
        } else {
            vec![vec![step]]
        };
        let group: Vec<Step> = lanes.iter().flatten().copied().collect();
        i += group.len();
        let todo: Vec<Vec<(Step, Option<String>)>> = lanes
            .iter()
            .map(|lane| {
                lane.iter()
                    .map(|&s| (s, ctx.inputs(s)))
                    .filter(|(s, inputs)| {
                        !(journal.is_done(*s)
                            && journal.entry(*s).and_then(|e| e.inputs.clone()) == *inputs)
                    })
                    .filter(|(s, _)| opts.stop_after.is_none_or(|x| *s <= x))
                    .collect::<Vec<_>>()
            })
            .filter(|lane| !lane.is_empty())
            .collect();
        if todo.len() == 1 && lanes.len() == 1 {
            for (step, inputs) in todo.into_iter().flatten() {
                ev.step_started(step);
                journal.start(step, inputs);
                journal.save(&state_dir)?;
                let result = ctx.run(step, &mut journal, ev);
                let (state, summary) = record(&mut journal, &state_dir, step, &result)?;
                ev.step_ended(step, state, &summary);
                result?;
            }
        } else if !todo.is_empty() {
            side_by_side(&ctx, &mut journal, &state_dir, todo, ev)?;
        }
        if opts.stop_after.is_some_and(|x| group.contains(&x)) {
            return Ok(ExitKind::Ok);
        }
    }
    Ok(ExitKind::Ok)
}

/// Write a step's end into the journal (done, skipped or failed, with its figures) and save it;
/// the report is rewritten once the report step itself is done. Returns the state and summary.
fn record(
    journal: &mut Journal,
    state_dir: &std::path::Path,
    step: Step,
    result: &Result<Outcome, Failure>,
) -> Result<(State, String), Failure> {
    let (state, summary) = match result {
        Ok(outcome) => {
            let state = if outcome.skipped {
                State::Skipped
            } else {
                State::Done
            };
            journal.finish(step, state, &outcome.summary, outcome.figures.clone());
            (state, outcome.summary.clone())
        }
        Err(f) => {
            let mut figures = BTreeMap::new();
            if let Some(h) = &f.hint {
                figures.insert("hint".to_string(), h.clone().into());
            }
            journal.finish(step, State::Failed, &f.message, figures);
            (State::Failed, f.message.clone())
        }
    };
    journal.save(state_dir)?;
    if step == Step::Report && state == State::Done {
        // Again, now that the report step itself is done in the journal.
        write_report(state_dir, journal)?;
    }
    Ok((state, summary))
}

/// What a step running in a thread tells the main thread, which owns the [`Events`].
enum Said {
    Started(Step),
    Info(String),
    Warning(String),
    Ended(Step, State, String),
}

/// The [`Events`] of a step running beside another: lines go to the main thread; nothing is
/// asked (the steps that run side by side never ask).
struct Relay(std::sync::mpsc::Sender<Said>);

impl Events for Relay {
    fn step_started(&mut self, _step: Step) {}
    fn step_ended(&mut self, step: Step, state: State, outcome: &str) {
        let _ = self.0.send(Said::Ended(step, state, outcome.to_string()));
    }
    fn info(&mut self, message: &str) {
        let _ = self.0.send(Said::Info(message.to_string()));
    }
    fn warning(&mut self, message: &str) {
        let _ = self.0.send(Said::Warning(message.to_string()));
    }
    fn waiting(&mut self, _what: &str, _left: Duration) {}
    fn confirm(&mut self, _question: &str) -> bool {
        false
    }
}

/// Whether the database step ended well, for a step of another lane that waits for it; and,
/// earlier, whether its rows are imported (the data is in the target's database; its indexes
/// and checksums may still be under way), for reads that need only the data.
#[derive(Clone)]
pub struct Gate(std::sync::Arc<GateState>);

struct GateState {
    done: std::sync::Mutex<(Option<bool>, Option<bool>)>,
    cv: std::sync::Condvar,
}

impl Gate {
    fn with(done: (Option<bool>, Option<bool>)) -> Gate {
        Gate(std::sync::Arc::new(GateState {
            done: std::sync::Mutex::new(done),
            cv: std::sync::Condvar::new(),
        }))
    }
    /// Nothing to wait for (the database step is done, or runs in order before).
    pub fn open() -> Gate {
        Gate::with((Some(true), Some(true)))
    }
    fn pending() -> Gate {
        Gate::with((None, None))
    }
    /// The database step ended (`ok`: done); an import not yet said done is then said `ok`.
    fn set(&self, ok: bool) {
        let mut g = self.0.done.lock().unwrap_or_else(|p| p.into_inner());
        if g.0.is_none() {
            g.0 = Some(ok);
        }
        if g.1.is_none() {
            g.1 = Some(ok);
        }
        self.0.cv.notify_all();
    }
    /// The rows are imported: the target's database holds the source's data (its indexes may
    /// still be being built, its checksums not yet compared).
    pub fn set_imported(&self) {
        let mut g = self.0.done.lock().unwrap_or_else(|p| p.into_inner());
        if g.1.is_none() {
            g.1 = Some(true);
        }
        self.0.cv.notify_all();
    }
    fn wait_for(&self, which: impl Fn(&(Option<bool>, Option<bool>)) -> Option<bool>) -> bool {
        let mut g = self.0.done.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(ok) = which(&g) {
                return ok;
            }
            g = self.0.cv.wait(g).unwrap_or_else(|p| p.into_inner());
        }
    }
    /// Wait until the database step ended; true if it is done.
    pub fn wait(&self) -> bool {
        self.wait_for(|g| g.0)
    }
    /// Wait until the import is done (true) or the step failed before (false). A caller that
    /// goes on must still [`Gate::wait`] before it trusts what it read: the step's checksums
    /// may yet fail it.
    pub fn wait_imported(&self) -> bool {
        self.wait_for(|g| g.1)
    }
}

/// Closes a gate that is still pending when dropped (the lane that owns it ended early).
struct GateCloser<'a>(&'a Gate);

impl Drop for GateCloser<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

/// Run lanes at the same time, one thread each; the steps of a lane run in order, and a lane
/// stops at its first failure. Each step's journal entry is written when it starts and the
/// moment it ends (so a kill -9 finds a finished step done and an unfinished one running).
/// After all lanes ended, the first failure in runbook order is returned.
fn side_by_side(
    ctx: &steps::Ctx,
    journal: &mut Journal,
    state_dir: &std::path::Path,
    lanes: Vec<Vec<(Step, Option<String>)>>,
    ev: &mut dyn Events,
) -> Result<(), Failure> {
    let database = if lanes.iter().flatten().any(|(s, _)| *s == Step::Database) {
        Gate::pending()
    } else {
        Gate::open()
    };
    let shared = std::sync::Mutex::new(journal);
    let (tx, rx) = std::sync::mpsc::channel();
    let has = |step: Step| lanes.iter().flatten().any(|(s, _)| *s == step);
    // Only when this run also proves the target's tables equal to the source's (the database
    // step): a database step done by an earlier run proved them equal then, not now.
    let early_rows = has(Step::FinalSync) && has(Step::TargetUp) && has(Step::Database);
    let mut failures: Vec<(Step, Failure)> = std::thread::scope(|sc| {
        // Target-up compares the file cache rows with the final sync's manifests of the
        // target's disk: the rows are read ahead, on the source once the database step has
        // copied them, off target-up's path (`Ctx::read_rows_early`).
        let reader = early_rows.then(|| {
            ctx.expect_rows_early();
            let database = &database;
            sc.spawn(move || ctx.read_rows_early(database))
        });
        let handles: Vec<_> = lanes
            .into_iter()
            .map(|lane| {
                let (shared, database, mut relay) = (&shared, &database, Relay(tx.clone()));
                sc.spawn(move || -> Result<(), (Step, Failure)> {
                    // However this lane ends (an error, a panic), a step waiting for the
                    // database is told: only a done database step opens the gate. (`then`, not
                    // `then_some`: a closer made and dropped for another lane would close it.)
                    let _closes = lane
                        .iter()
                        .any(|(s, _)| *s == Step::Database)
                        .then(|| GateCloser(database));
                    for (step, inputs) in lane {
                        {
                            let mut j = shared.lock().unwrap_or_else(|p| p.into_inner());
                            j.start(step, inputs);
                            j.save(state_dir).map_err(|f| (step, f))?;
                        }
                        let _ = relay.0.send(Said::Started(step));
                        let result = ctx.run_beside(step, &mut relay, database);
                        if step == Step::Database {
                            database.set(result.is_ok());
                        }
                        let (state, summary) = {
                            let mut j = shared.lock().unwrap_or_else(|p| p.into_inner());
                            record(&mut j, state_dir, step, &result).map_err(|f| (step, f))?
                        };
                        relay.step_ended(step, state, &summary);
                        result.map_err(|f| (step, f))?;
                    }
                    Ok(())
                })
            })
            .collect();
        drop(tx);
        for said in rx {
            match said {
                Said::Started(step) => ev.step_started(step),
                Said::Info(m) => ev.info(&m),
                Said::Warning(m) => ev.warning(&m),
                Said::Ended(step, state, outcome) => ev.step_ended(step, state, &outcome),
            }
        }
        // Joined, so that a panic there (target-up was answered) does not end the scope's.
        if let Some(r) = reader {
            let _ = r.join();
        }
        handles
            .into_iter()
            .filter_map(|h| match h.join() {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(_) => Some((Step::Report, Failure::check("a step's thread panicked"))),
            })
            .collect()
    });
    failures.sort_by_key(|(s, _)| *s);
    match failures.into_iter().next() {
        Some((_, f)) => Err(f),
        None => Ok(()),
    }
}
