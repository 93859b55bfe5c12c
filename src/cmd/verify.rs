//! `ocmigrate verify`: re-run the verifications. Files: both sides' manifests compared attribute
//! by attribute (`--content`: a BLAKE3 of every byte, computed on each host).

use crate::cli::FileArgs;
use crate::exit::{ExitKind, HELP_FOOTER};
use crate::migration::Migration;
use crate::transfer::{self, ProgressMode, VerifyOptions};

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
    /// Only the files (not the database and the file cache).
    #[arg(long)]
    pub files_only: bool,
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
    // Progress of the hashing on stderr (a bar on a terminal, a line every 5 s otherwise);
    // nothing with --json, whose stdout is one document.
    let mut sink = if args.json {
        ProgressMode::Quiet
    } else {
        ProgressMode::choose(false, false)
    }
    .sink();
    if let (Some(from), Some(to)) = (&args.from, &args.to) {
        let (src, tgt, trees) = super::sync::tree_sides(from, to)?;
        let owners = transfer::owners::OwnerMap::identity();
        let v = transfer::verify_trees(&src, &tgt, &trees, &owners, &opts, sink.as_mut())?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            print!("{}", v.render());
        }
        return Ok(if v.equal {
            ExitKind::Ok
        } else {
            ExitKind::CheckFailed
        });
    }
    let m = Migration::open(&args.file.config)?;
    let p = transfer::prepare(&m, false)?;
    let files = transfer::verify_trees(
        &m.source,
        &m.target,
        &p.trees,
        &p.owners,
        &opts,
        sink.as_mut(),
    )?;
    let mut equal = files.equal;
    let mut doc = serde_json::json!({ "files": files });
    let mut text = files.render();
    if !args.files_only {
        // The database: per table, rows and checksum on both sides.
        match crate::db::verify(&m) {
            Ok(d) => {
                equal &= d.equal;
                text.push_str(&d.render());
                doc["database"] = serde_json::to_value(&d)?;
            }
            Err(e) => {
                equal = false;
                text.push_str(&format!("Database: not verified: {}\n", e.message));
                doc["database"] = serde_json::json!({ "error": e.message });
            }
        }
        // The file cache: every home storage row against the target's disk.
        let fc = crate::verify::scan_source(&m.source, &p.source_web_user).and_then(|s| {
            crate::verify::scan_target(&m.target, &p.target_web_user)
                .map(|t| crate::verify::compare(&s, &t))
        });
        match fc {
            Ok(c) => {
                equal &= c.passed();
                text.push_str(&format!(
                    "File cache: {} rows of {} storages; {} disagree with the target's disk \
                     because of the migration, {} already disagreed on the source\n",
                    c.rows, c.storages, c.new_mismatch_count, c.preexisting_count
                ));
                for x in c.new_mismatches.iter().take(20) {
                    text.push_str(&format!("  {} {}: {}\n", x.user, x.path, x.kind));
                }
                doc["filecache"] = serde_json::to_value(&c)?;
            }
            Err(e) => {
                equal = false;
                text.push_str(&format!("File cache: not verified: {}\n", e.message));
                doc["filecache"] = serde_json::json!({ "error": e.message });
            }
        }
    }
    doc["equal"] = equal.into();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!("{text}");
    }
    Ok(if equal {
        ExitKind::Ok
    } else {
        ExitKind::CheckFailed
    })
}
