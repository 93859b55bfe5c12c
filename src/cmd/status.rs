//! `ocmigrate status`: where a migration stands, read from its journal (no host is contacted).

use crate::cli::FileArgs;
use crate::exit::{ExitKind, HELP_FOOTER};
use crate::migration::state_dir_for;
use crate::runbook::{Journal, State, Step};

const EXAMPLE: &str = "Example:
  ocmigrate status             # the steps, their state and times
  ocmigrate status --json      # the journal for scripts";

/// Where a migration stands, from its journal.
#[derive(Debug, clap::Args)]
#[command(after_help = format!("{EXAMPLE}\n\n{HELP_FOOTER}"))]
pub struct StatusArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// The journal as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: StatusArgs) -> anyhow::Result<ExitKind> {
    // The same check every command makes of its migration file (a typo in -c is not "nothing
    // started"); the journal beside it is what status reads.
    crate::config::Config::load(&args.file.config)?;
    let state = state_dir_for(&args.file.config);
    let journal = Journal::load(&state)?;
    let Some(j) = journal else {
        if args.json {
            println!("{}", serde_json::json!({"started": false}));
        } else {
            println!(
                "No migration has started for {} (no journal in {}).",
                args.file.config.display(),
                state.display()
            );
        }
        return Ok(ExitKind::Ok);
    };
    if args.json {
        let mut v = serde_json::to_value(&j)?;
        v["started"] = true.into();
        v["next_step"] = j.next_step().map(|s| s.name()).into();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitKind::Ok);
    }
    println!("Migration {} → {}", j.source, j.target);
    for step in Step::ALL {
        let (tag, detail) = match j.entry(step) {
            None => ("·", String::new()),
            Some(e) => {
                let secs = e
                    .ended
                    .map(|end| format!(" ({:.1} s)", end - e.started))
                    .unwrap_or_default();
                let tag = match e.state {
                    State::Done => "done",
                    State::Skipped => "skipped",
                    State::Running => "RUNNING",
                    State::Failed => "FAILED",
                    State::Interrupted => "STOPPED",
                };
                (tag, format!("{}{secs}", e.outcome))
            }
        };
        println!(
            "  {tag:<8} {:<16} {}",
            step.name(),
            if detail.is_empty() {
                step.what().to_string()
            } else {
                detail
            }
        );
    }
    match j.next_step() {
        Some(s) => println!("Next: {} — run `ocmigrate migrate` to continue.", s.name()),
        None => println!("The migration is complete."),
    }
    Ok(ExitKind::Ok)
}
