//! `ocmigrate db copy|verify`: the database leg on its own (runbook step 7 and its verification).

use crate::cli::FileArgs;
use crate::db;
use crate::exit::{ExitKind, HELP_FOOTER};
use crate::migration::Migration;

const EXAMPLE: &str = "Examples:
  ocmigrate db copy -c ocmigrate.toml       # dump on the source, streamed into the target's import
  ocmigrate db verify                       # per table: rows and checksum on both sides
  ocmigrate db verify --json | jq .equal";

/// The database leg on its own: copy the instance's database to the target, or compare both.
#[derive(Debug, clap::Args)]
#[command(after_help = format!("{EXAMPLE}\n\n{HELP_FOOTER}"))]
pub struct DbArgs {
    #[command(subcommand)]
    pub action: DbAction,
}

#[derive(Debug, clap::Subcommand)]
pub enum DbAction {
    /// Copy the database: a consistent dump on the source streamed (compressed) into the target's
    /// import; database and user created on the target when missing; SQLite files copied and checked
    /// with PRAGMA integrity_check. Refuses a target database that has tables unless
    /// `[database] replace_target = true` (or the tables are a failed import of ours). Put the source
    /// in maintenance mode first: the dump is consistent, but writes after it are not carried.
    #[command(after_help = format!("{EXAMPLE}\n\n{HELP_FOOTER}"))]
    Copy {
        #[command(flatten)]
        file: FileArgs,
        /// One JSON document instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Compare the database on both sides: per table, row count and a content checksum, each
    /// computed by that side's server. Read-only on the source. Exit 0 when equal, 1 when not.
    #[command(after_help = format!("{EXAMPLE}\n\n{HELP_FOOTER}"))]
    Verify {
        #[command(flatten)]
        file: FileArgs,
        /// One JSON document instead of the table.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: DbArgs) -> anyhow::Result<ExitKind> {
    match args.action {
        DbAction::Copy { file, json } => {
            let m = Migration::open(&file.config)?;
            let r = db::copy(&m)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "Database {} copied in {:.1} s ({} bytes on the wire): {}",
                    r.database, r.seconds, r.bytes_on_wire, r.method
                );
                if r.created_database {
                    println!("  created the database on the target");
                }
                if r.created_user {
                    println!("  created the database user on the target");
                }
                if r.replaced {
                    println!("  replaced the tables that were in the target database");
                }
                if let Some(i) = &r.integrity {
                    println!("  PRAGMA integrity_check: {i}");
                }
                for w in &r.warnings {
                    println!("  warning: {w}");
                }
            }
            Ok(ExitKind::Ok)
        }
        DbAction::Verify { file, json } => {
            let m = Migration::open(&file.config)?;
            let v = db::verify(&m)?;
            if json {
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
    }
}
