//! `ocmigrate dns check|switch` (being written).
use crate::cli::FileArgs;

/// The CNAME step on its own.
#[derive(Debug, clap::Args)]
pub struct DnsArgs {
    #[command(flatten)]
    pub file: FileArgs,
}

pub fn run(_args: DnsArgs) -> anyhow::Result<crate::exit::ExitKind> {
    anyhow::bail!("not written yet")
}
