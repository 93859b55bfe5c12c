//! `ocmigrate migrate`: the cut-over runbook; resumes where it stopped.

use super::events::Console;
use crate::cli::FileArgs;
use crate::exit::{ExitKind, HELP_FOOTER};
use crate::migration::Migration;
use crate::runbook::{self, Events, Step};

const EXAMPLE: &str = "Example:
  ocmigrate plan && ocmigrate migrate        # asks before maintenance mode and before DNS
  ocmigrate migrate --yes --json > run.log   # unattended, one JSON event a line
  ocmigrate status                           # where it stands; run migrate again to resume
  ocmigrate migrate --remove-agents          # when complete: take the agent binary off both hosts";

/// Run the cut-over: maintenance, final copy, database, target checks, go-live, DNS, report.
#[derive(Debug, clap::Args)]
#[command(after_help = format!("{EXAMPLE}\n\n{HELP_FOOTER}"))]
pub struct MigrateArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// Answer every confirmation with yes.
    #[arg(long)]
    pub yes: bool,
    /// One JSON event a line on stdout.
    #[arg(long)]
    pub json: bool,
    /// Plain lines, no countdown line.
    #[arg(long)]
    pub no_progress: bool,
    /// Stop after this step (e.g. `target-up` to look at the target before it goes live).
    #[arg(long, value_name = "STEP", value_parser = parse_step)]
    pub stop_after: Option<Step>,
    /// When the migration is complete, take ocmigrate's agent binary off both hosts (it is
    /// copied again when a later command needs it).
    #[arg(long)]
    pub remove_agents: bool,
}

fn parse_step(s: &str) -> Result<Step, String> {
    Step::ALL
        .into_iter()
        .find(|st| st.name() == s)
        .ok_or_else(|| {
            format!(
                "unknown step {s:?}; steps: {}",
                Step::ALL.map(|s| s.name()).join(", ")
            )
        })
}

/// SIGINT, SIGTERM and SIGHUP end the run at once: the journal marks the running step
/// interrupted, and the exit status is 4. Every step is safe to run again from its start, so
/// the same command resumes. (Blocked in every thread but the one that waits for them; children
/// start with an empty signal mask, as std's `Command` resets it.)
fn watch_signals(state_dir: std::path::PathBuf, json: bool) {
    // SAFETY: plain libc calls on a local, zero-initialised sigset_t.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    std::thread::spawn(move || {
        let mut sig: libc::c_int = 0;
        // SAFETY: `set` lives in this closure; sigwait only writes `sig`.
        if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
            return;
        }
        let name = match sig {
            libc::SIGINT => "SIGINT",
            libc::SIGTERM => "SIGTERM",
            _ => "SIGHUP",
        };
        let (step, _keep_journal_writers_out) =
            runbook::journal::record_interrupt(&state_dir, name);
        let at = step.map(|s| s.name()).unwrap_or("between steps");
        if json {
            println!(
                "{}",
                serde_json::json!({"event": "interrupted", "signal": name, "step": at})
            );
        }
        eprintln!(
            "ocmigrate: interrupted by {name} during {at}; the journal says so. Run the same `ocmigrate migrate` again to resume (or `ocmigrate rollback` to put the source back in service)."
        );
        std::process::exit(ExitKind::Interrupted.code().into());
    });
}

pub fn run(args: MigrateArgs) -> anyhow::Result<ExitKind> {
    watch_signals(
        crate::migration::state_dir_for(&args.file.config),
        args.json,
    );
    let m = Migration::open(&args.file.config)?;
    let mut console = Console::new(args.json, args.no_progress);
    let opts = runbook::Options {
        yes: args.yes,
        stop_after: args.stop_after,
    };
    let kind = runbook::run(&m, &opts, &mut console)?;
    let complete =
        crate::runbook::Journal::load(&m.state_dir())?.is_some_and(|j| j.next_step().is_none());
    if args.remove_agents && complete {
        for (label, removed) in [
            (m.source.label().to_string(), m.source.remove_agents()?),
            (m.target.label().to_string(), m.target.remove_agents()?),
        ] {
            for r in removed {
                console.info(&format!("{label}: removed {r}"));
            }
        }
    }
    if !args.json {
        let state = m.state_dir();
        match crate::runbook::Journal::load(&state)?.and_then(|j| j.next_step()) {
            None => println!(
                "Migration complete. Report: {}",
                state.join("report.md").display()
            ),
            Some(s) => println!(
                "Stopped before {}; run `ocmigrate migrate` again to continue.",
                s.name()
            ),
        }
    }
    Ok(kind)
}
