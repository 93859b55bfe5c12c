//! `ocmigrate rollback`: the source back in service; the target left as it is.

use super::events::Console;
use crate::cli::FileArgs;
use crate::exit::{ExitKind, HELP_FOOTER};
use crate::migration::Migration;
use crate::runbook::Events;
use std::io::IsTerminal;

const EXAMPLE: &str = "Example:
  ocmigrate rollback          # asks first; refuses if users wrote to the target after go-live
  ocmigrate rollback --yes";

/// Put the source back in service (web server started, maintenance off). After the target went
/// live, only when nothing changed on the target since.
#[derive(Debug, clap::Args)]
#[command(after_help = format!("{EXAMPLE}\n\n{HELP_FOOTER}"))]
pub struct RollbackArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// Answer the confirmation with yes.
    #[arg(long)]
    pub yes: bool,
    /// One JSON event a line on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: RollbackArgs) -> anyhow::Result<ExitKind> {
    let m = Migration::open(&args.file.config)?;
    let mut console = Console::new(args.json, true);
    // Look first (read-only), then ask.
    let check = crate::runbook::rollback::rollback(&m, true, &mut console)?;
    let q = if check.after_go_live {
        "The target went live but nothing changed on it since. Put the source back in service?"
    } else {
        "Put the source back in service (web server started, maintenance off)?"
    };
    if !args.yes && !std::io::stdin().is_terminal() {
        return Err(crate::exit::Failure::usage(format!(
            "refusing to roll back without a confirmation: there is no terminal to ask on ({q})"
        ))
        .hint("run `ocmigrate rollback --yes` to confirm on the command line (`ocmigrate status` shows where the migration stands)")
        .into());
    }
    if !args.yes && !console.confirm(q) {
        return Ok(ExitKind::Interrupted);
    }
    let r = crate::runbook::rollback::rollback(&m, false, &mut console)?;
    if args.json {
        println!("{}", serde_json::json!({"event": "rollback", "report": r}));
    } else {
        println!("The source serves again. The target was left as it is.");
    }
    Ok(ExitKind::Ok)
}
