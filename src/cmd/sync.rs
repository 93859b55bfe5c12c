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
    /// With --from/--to: after the pass, an exit check on the pass's agents; exit 1 on a
    /// difference (listed). `--check` (`=both`) reads both sides again and compares them;
    /// `--check=target`, for a source that holds still (as in migrate's final sync), reads only
    /// the target and compares it with the source manifest this pass saved (the source is read
    /// again only where that manifest is not current).
    #[arg(
        long,
        value_enum,
        value_name = "READ",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "both",
        requires = "from"
    )]
    pub check: Option<CheckArg>,
    /// With --from/--to: a state folder; the pass saves the source's manifest in it as
    /// `manifests/tree.source` (mode 0600 in a 0700 folder). Default: not saved (with
    /// --check=target: in a temporary folder, removed afterwards).
    #[arg(long, value_name = "DIR", requires = "from")]
    pub state_dir: Option<std::path::PathBuf>,
}

/// What `--check` reads again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CheckArg {
    /// Both sides.
    Both,
    /// Only the target, against the pass's source manifest.
    Target,
}

/// A private temporary state folder, removed when dropped.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> anyhow::Result<TempDir> {
        use std::os::unix::fs::DirBuilderExt;
        let id = crate::transfer::manifest::PassId::new().0;
        let hex: String = id[..8].iter().map(|b| format!("{b:02x}")).collect();
        let p = std::env::temp_dir().join(format!("ocmigrate-check-{hex}"));
        std::fs::DirBuilder::new().mode(0o700).create(&p)?;
        Ok(TempDir(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
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
            // The pass saves the manifest in `<state_dir>/manifests`.
            let temp = match (&args.state_dir, args.check) {
                (None, Some(CheckArg::Target)) => Some(TempDir::new()?),
                _ => None,
            };
            let state_dir = args
                .state_dir
                .clone()
                .or(temp.as_ref().map(|t| t.0.clone()));
            let opts = SyncOptions {
                streams: args.streams,
                progress,
                state_dir,
                check: args.check.map(|c| match c {
                    CheckArg::Both => transfer::Check::BothSides,
                    CheckArg::Target => transfer::Check::Target,
                }),
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
    if args.check.is_some() && report.check.as_ref().is_some_and(|c| !c.equal) {
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
