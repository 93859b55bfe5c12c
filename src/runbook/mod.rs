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
    for step in Step::ALL {
        let inputs = ctx.inputs(step);
        if journal.is_done(step) && journal.entry(step).and_then(|e| e.inputs.clone()) == inputs {
            continue;
        }
        ev.step_started(step);
        journal.start(step, inputs);
        journal.save(&state_dir)?;
        let result = ctx.run(step, &mut journal, ev);
        match result {
            Ok(outcome) => {
                let state = if outcome.skipped {
                    State::Skipped
                } else {
                    State::Done
                };
                journal.finish(step, state, &outcome.summary, outcome.figures);
                journal.save(&state_dir)?;
                if step == Step::Report {
                    // Again, now that the report step itself is done in the journal.
                    write_report(&state_dir, &journal)?;
                }
                ev.step_ended(step, state, &outcome.summary);
            }
            Err(f) => {
                let mut figures = BTreeMap::new();
                if let Some(h) = &f.hint {
                    figures.insert("hint".to_string(), h.clone().into());
                }
                journal.finish(step, State::Failed, &f.message, figures);
                journal.save(&state_dir)?;
                ev.step_ended(step, State::Failed, &f.message);
                return Err(f);
            }
        }
        if opts.stop_after == Some(step) {
            return Ok(ExitKind::Ok);
        }
    }
    Ok(ExitKind::Ok)
}
