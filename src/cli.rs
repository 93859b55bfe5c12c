//! The command line: what the admin types, as clap definitions. Parsing only; every command's
//! work is in `crate::cmd::<name>`, which calls the library.

use crate::cmd;
use crate::exit::HELP_FOOTER;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "ocmigrate",
    version,
    about = "Move a self-hosted ownCloud (or Nextcloud) server to another machine: \
             resumable, verified, with the shortest downtime",
    after_help = HELP_FOOTER,
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by the commands that work from a migration file.
#[derive(Debug, Clone, clap::Args)]
pub struct FileArgs {
    /// The migration file; its state folder is beside it.
    #[arg(
        short = 'c',
        long = "config",
        value_name = "FILE",
        default_value = "ocmigrate.toml"
    )]
    pub config: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the agent protocol on stdin/stdout (started by ocmigrate over ssh).
    #[command(hide = true)]
    Agent(cmd::agent::AgentArgs),
    Init(cmd::init::InitArgs),
    Plan(cmd::plan::PlanArgs),
    Sync(cmd::sync::SyncArgs),
    Migrate(cmd::migrate::MigrateArgs),
    Status(cmd::status::StatusArgs),
    Verify(cmd::verify::VerifyArgs),
    Rollback(cmd::rollback::RollbackArgs),
    Dns(cmd::dns::DnsArgs),
    Db(cmd::db::DbArgs),
}
