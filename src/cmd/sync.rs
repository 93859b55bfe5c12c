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
    /// Copy one folder tree instead of an instance (no migration file): an absolute path or
    /// ssh://[user@]host[:port]/path. Owners are kept by number. For benchmarks and tests.
    #[arg(long, value_name = "SIDE", requires = "to")]
    pub from: Option<String>,
    /// Where `--from` goes: an absolute path or ssh://[user@]host[:port]/path.
    #[arg(long, value_name = "SIDE", requires = "from")]
    pub to: Option<String>,
    /// With --from/--to: after the pass, read both sides again on the pass's agents and compare
    /// them (the final sync's exit check); exit 1 on a difference (listed).
    #[arg(long, requires = "from")]
    pub check: bool,
}

/// `--from`/`--to`: the two sides connected, and the one tree between them.
pub fn tree_sides(
    from: &str,
    to: &str,
) -> anyhow::Result<(
    crate::host::SourceHost,
    crate::host::TargetHost,
    Vec<transfer::Tree>,
)> {
    let parse = |s: &str| {
        crate::config::Side::parse(s)
            .map_err(|e| crate::exit::Failure::usage(format!("{s:?}: {e}")))
    };
    let (a, b) = (parse(from)?, parse(to)?);
    let (src, tgt) = crate::migration::connect_both(&a, &b)?;
    let tree = transfer::Tree {
        name: "tree".into(),
        source: a.root().to_path_buf(),
        target: b.root().to_path_buf(),
        filter: transfer::Filter::Everything,
    };
    Ok((src, tgt, vec![tree]))
}

pub fn run(args: SyncArgs) -> anyhow::Result<ExitKind> {
    let progress = ProgressMode::choose(args.json, args.no_progress);
    let (report, accept) = match (&args.from, &args.to) {
        (Some(from), Some(to)) => {
            let (src, tgt, trees) = tree_sides(from, to)?;
            let opts = SyncOptions {
                streams: args.streams,
                progress,
                check_target: args.check,
                ..SyncOptions::default()
            };
            let mut sink = progress.sink();
            let owners = transfer::owners::OwnerMap::identity();
            let r = transfer::sync_trees(&src, &tgt, &trees, owners, &opts, sink.as_mut())?;
            (r, args.accept_unreadable)
        }
        _ => {
            let m = Migration::open(&args.file.config)?;
            let accept = args.accept_unreadable || m.config.transfer.accept_unreadable;
            let opts = SyncOptions {
                streams: args.streams.or(m.config.transfer.streams),
                progress,
                ..SyncOptions::default()
            };
            (transfer::sync_migration(&m, Pass::Online, &opts)?, accept)
        }
    };
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        v["event"] = "done".into();
        if let Some(c) = &report.check {
            v["check"] = serde_json::to_value(c)?;
        }
        println!("{v}");
    } else {
        // The summary line was shown by the progress sink.
        for line in report.problems() {
            eprintln!("  {line}");
        }
        if let Some(c) = &report.check {
            eprint!("{}", c.render());
        }
    }
    if args.check && report.check.as_ref().is_some_and(|c| !c.equal) {
        return Ok(ExitKind::CheckFailed);
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
    if !report.gave_up.is_empty() || report.failed_count > 0 {
        return Ok(ExitKind::CheckFailed);
    }
    Ok(ExitKind::Ok)
}
