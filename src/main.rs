//! The `ocmigrate` binary: parse the command line, run the command, map the outcome to an exit
//! code (the table is in `exit.rs`). Errors are printed with their whole chain and a hint.

use clap::Parser;
use ocmigrate::cli::{Cli, Command};
use ocmigrate::cmd;
use ocmigrate::exit::{self, ExitKind};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitKind::Usage.into()
            } else {
                ExitKind::Ok.into()
            };
        }
    };
    let result = match cli.command {
        Command::Agent(args) => cmd::agent::run(args),
        Command::Init(args) => cmd::init::run(args),
        Command::Plan(args) => cmd::plan::run(args),
        Command::Sync(args) => cmd::sync::run(args),
        Command::Migrate(args) => cmd::migrate::run(args),
        Command::Status(args) => cmd::status::run(args),
        Command::Verify(args) => cmd::verify::run(args),
        Command::Rollback(args) => cmd::rollback::run(args),
        Command::Dns(args) => cmd::dns::run(args),
        Command::Db(args) => cmd::db::run(args),
    };
    match result {
        Ok(kind) => kind.into(),
        Err(err) => {
            eprintln!("ocmigrate: error: {err:#}");
            if let Some(hint) = exit::hint_of(&err) {
                eprintln!("hint: {hint}");
            }
            exit::kind_of(&err).into()
        }
    }
}
