//! `ocmigrate verify`: re-run the verifications. Files: both sides' manifests compared attribute
//! by attribute (`--content`: a BLAKE3 of every byte, computed on each host).

use crate::cli::FileArgs;
use crate::exit::{ExitKind, HELP_FOOTER};
use crate::migration::Migration;
use crate::transfer::{self, VerifyOptions};

const EXAMPLE: &str = "Examples:
  ocmigrate verify -c ocmigrate.toml        # metadata of every file on both sides
  ocmigrate verify --content                # and a BLAKE3 of every file, on each host
  ocmigrate verify --json | jq .equal";

/// Compare the target's copy with the source: path, type, size, mtime to the nanosecond, mode,
/// owner (by name, mapped to the target's web user), symlink target, hard-link groups; with
/// --content also every byte. Read-only on both sides. Exit 0 when equal, 1 with the differences.
#[derive(Debug, clap::Args)]
#[command(after_help = format!("{EXAMPLE}\n\n{HELP_FOOTER}"))]
pub struct VerifyArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// Also hash every file's bytes (BLAKE3) on both hosts and compare.
    #[arg(long)]
    pub content: bool,
    /// One JSON document instead of lines.
    #[arg(long)]
    pub json: bool,
    /// Agents per host for --content (default: from the core count).
    #[arg(long, value_name = "N")]
    pub streams: Option<usize>,
    /// Compare one folder tree instead of an instance (no migration file): an absolute path or
    /// ssh://[user@]host[:port]/path; owners compared by number. For benchmarks and tests.
    #[arg(long, value_name = "SIDE", requires = "to")]
    pub from: Option<String>,
    /// The other side of `--from`.
    #[arg(long, value_name = "SIDE", requires = "from")]
    pub to: Option<String>,
}

pub fn run(args: VerifyArgs) -> anyhow::Result<ExitKind> {
    let opts = VerifyOptions {
        content: args.content,
        agents: args.streams,
    };
    let v = match (&args.from, &args.to) {
        (Some(from), Some(to)) => {
            let (src, tgt, trees) = super::sync::tree_sides(from, to)?;
            let owners = transfer::owners::OwnerMap::identity();
            transfer::verify_trees(&src, &tgt, &trees, &owners, &opts)?
        }
        _ => {
            let m = Migration::open(&args.file.config)?;
            transfer::verify_migration(&m, &opts)?
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", v.render());
    }
    Ok(if v.equal {
        ExitKind::Ok
    } else {
        ExitKind::CheckFailed
    })
}
