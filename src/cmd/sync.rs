//! `ocmigrate sync`: copy every managed tree of the source to the target while the source stays
//! online; repeatable and incremental (only the difference travels, extraneous target entries
//! inside the managed trees are deleted).

use crate::cli::FileArgs;
use crate::exit::{ExitKind, HELP_FOOTER};
use crate::migration::Migration;
use crate::transfer::{self, Pass, ProgressMode, SyncOptions};

const EXAMPLE: &str = "Examples:
  ocmigrate sync -c ocmigrate.toml          # copy what changed since the last run
  ocmigrate sync --streams 8 --no-progress  # more parallel streams, plain lines
  ocmigrate sync --json | jq -c 'select(.event == \"done\")'";

/// Copy the instance's files (data directory, config/*.config.php excluded, apps-external,
/// theme, homes outside the data directory) to the target while the source stays online. Run it
/// as often as you like: each run sends only what changed. Exit 1 when a source file could not be
/// read (listed), unless --accept-unreadable or `[transfer] accept_unreadable = true`.
#[derive(Debug, clap::Args)]
#[command(after_help = format!("{EXAMPLE}\n\n{HELP_FOOTER}"))]
pub struct SyncArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// Parallel streams, each with its own ssh connection per side (default: from the core count,
    /// or `[transfer] streams`).
    #[arg(long, value_name = "N")]
    pub streams: Option<usize>,
    /// Exit 0 even when some source files could not be read (they are still listed).
    #[arg(long)]
    pub accept_unreadable: bool,
    /// One JSON event a line on stdout instead of lines for people.
    #[arg(long)]
    pub json: bool,
    /// No progress bar: plain lines only.
    #[arg(long)]
    pub no_progress: bool,
}

pub fn run(args: SyncArgs) -> anyhow::Result<ExitKind> {
    let m = Migration::open(&args.file.config)?;
    let accept = args.accept_unreadable || m.config.transfer.accept_unreadable;
    let opts = SyncOptions {
        streams: args.streams.or(m.config.transfer.streams),
        progress: ProgressMode::choose(args.json, args.no_progress),
        ..SyncOptions::default()
    };
    let report = transfer::sync_migration(&m, Pass::Online, &opts)?;
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        v["event"] = "done".into();
        println!("{v}");
    } else {
        eprintln!("{}", report.summary());
        for line in report.problems() {
            eprintln!("  {line}");
        }
    }
    if !report.unreadable.is_empty() && !accept {
        eprintln!(
            "ocmigrate: error: {} source file(s) could not be read (listed above)",
            report.unreadable_count
        );
        eprintln!(
            "hint: fix their permissions on the source and run `ocmigrate sync` again, or accept \
             them with --accept-unreadable (or `[transfer] accept_unreadable = true`)"
        );
        return Ok(ExitKind::CheckFailed);
    }
    if !report.gave_up.is_empty() {
        return Ok(ExitKind::CheckFailed);
    }
    Ok(ExitKind::Ok)
}
