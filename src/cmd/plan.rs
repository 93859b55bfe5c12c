//! `ocmigrate plan`: the read-only pre-flight on both hosts.

use crate::cli::FileArgs;
use crate::exit::{ExitKind, HELP_FOOTER};
use crate::migration::Migration;
use crate::preflight::{self, Severity};

const EXAMPLE: &str = "Example:
  ocmigrate plan -c ocmigrate.toml          # a table; exit 0 when ready, 1 with blockers
  ocmigrate plan --json | jq .findings      # the same for scripts";

/// Check both hosts, read-only, and list what blocks the migration and what to look at.
#[derive(Debug, clap::Args)]
#[command(after_help = format!("{EXAMPLE}\n\n{HELP_FOOTER}"))]
pub struct PlanArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// One JSON document instead of the table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: PlanArgs) -> anyhow::Result<ExitKind> {
    let m = Migration::open(&args.file.config)?;
    let plan = preflight::run(&m.config, &m.source, &m.target)?;
    let blockers = plan.blockers();
    let warnings = plan
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Warning)
        .count();
    if args.json {
        let doc = serde_json::json!({
            "ready": blockers == 0,
            "blockers": blockers,
            "warnings": warnings,
            "copy_data": plan.copy_data,
            "source": m.config.source.side.to_string(),
            "target": m.config.target.side.to_string(),
            "findings": plan.findings,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        println!(
            "Pre-flight: {} → {}",
            m.config.source.side, m.config.target.side
        );
        let mut sorted = plan.findings.clone();
        sorted.sort_by_key(|f| f.severity);
        for f in &sorted {
            let tag = match f.severity {
                Severity::Blocker => "BLOCKER",
                Severity::Warning => "warning",
                Severity::Info => "ok",
            };
            println!("  {tag:<8} {:<24} {}", f.code, f.message);
            if !f.fix.is_empty() {
                println!("  {:<8} {:<24} fix: {}", "", "", f.fix);
            }
        }
        if !plan.copy_data {
            println!(
                "  The data directory holds no user files (object storage): it is not copied."
            );
        }
        println!(
            "{blockers} blocker{}, {warnings} warning{}: {}",
            if blockers == 1 { "" } else { "s" },
            if warnings == 1 { "" } else { "s" },
            if blockers == 0 { "ready" } else { "not ready" }
        );
    }
    Ok(if blockers == 0 {
        ExitKind::Ok
    } else {
        ExitKind::CheckFailed
    })
}
