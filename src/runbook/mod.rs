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
        // The final sync and the database copy run side by side when the database lives in a
        // database server (the source's is quiescent once its web server is stopped, and neither
        // touches what the other writes). A SQLite database is a file in the data folder: it is
        // copied after the final sync, as before.
        let group: Vec<Step> = if step == Step::FinalSync && ctx.database_beside_final_sync() {
            vec![Step::FinalSync, Step::Database]
        } else {
            vec![step]
        };
        i += group.len();
        let todo: Vec<(Step, Option<String>)> = group
            .iter()
            .map(|&s| (s, ctx.inputs(s)))
            .filter(|(s, inputs)| {
                !(journal.is_done(*s)
                    && journal.entry(*s).and_then(|e| e.inputs.clone()) == *inputs)
            })
            .filter(|(s, _)| opts.stop_after.is_none_or(|x| *s <= x))
            .collect();
        match todo.len() {
            0 => {}
            1 => {
                let (step, inputs) = todo.into_iter().next().expect("one step");
                ev.step_started(step);
                journal.start(step, inputs);
                journal.save(&state_dir)?;
                let result = ctx.run(step, &mut journal, ev);
                let (state, summary) = record(&mut journal, &state_dir, step, &result)?;
                ev.step_ended(step, state, &summary);
                result?;
            }
            _ => side_by_side(&ctx, &mut journal, &state_dir, todo, ev)?,
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

/// Run steps at the same time, one thread each. Each one's journal entry is written the moment
/// it ends (so a kill -9 finds a finished step done and an unfinished one running); after all
/// ended, the first failure in runbook order is returned.
fn side_by_side(
    ctx: &steps::Ctx,
    journal: &mut Journal,
    state_dir: &std::path::Path,
    todo: Vec<(Step, Option<String>)>,
    ev: &mut dyn Events,
) -> Result<(), Failure> {
    for (step, inputs) in &todo {
        ev.step_started(*step);
        journal.start(*step, inputs.clone());
    }
    journal.save(state_dir)?;
    let shared = std::sync::Mutex::new(journal);
    let (tx, rx) = std::sync::mpsc::channel();
    let results: Vec<Result<(), Failure>> = std::thread::scope(|sc| {
        let handles: Vec<_> = todo
            .iter()
            .map(|&(step, _)| {
                let (shared, mut relay) = (&shared, Relay(tx.clone()));
                sc.spawn(move || -> Result<(), Failure> {
                    let result = ctx.run_beside(step, &mut relay);
                    let (state, summary) = {
                        let mut j = shared.lock().unwrap_or_else(|p| p.into_inner());
                        record(&mut j, state_dir, step, &result)?
                    };
                    relay.step_ended(step, state, &summary);
                    result.map(|_| ())
                })
            })
            .collect();
        drop(tx);
        for said in rx {
            match said {
                Said::Info(m) => ev.info(&m),
                Said::Warning(m) => ev.warning(&m),
                Said::Ended(step, state, outcome) => ev.step_ended(step, state, &outcome),
            }
        }
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Failure::check("a step's thread panicked")))
            })
            .collect()
    });
    results.into_iter().collect()
}
