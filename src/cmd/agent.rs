//! `ocmigrate agent` (hidden): serve the agent protocol on stdin/stdout. Started by the operator
//! over ssh, never by a person. Writes nothing but frames to stdout; a fatal protocol error is
//! also said on stderr (which the operator keeps) and gives exit status 2.

use crate::exit::ExitKind;

/// Serve one operator on stdin/stdout.
#[derive(Debug, clap::Args)]
pub struct AgentArgs {}

pub fn run(_args: AgentArgs) -> anyhow::Result<ExitKind> {
    let stdin = std::io::stdin().lock();
    let stdout = std::io::stdout().lock();
    match crate::agent::server::serve(stdin, stdout) {
        Ok(()) => Ok(ExitKind::Ok),
        Err(e) => {
            eprintln!("ocmigrate agent (pid {}): {e}", std::process::id());
            Ok(ExitKind::Usage)
        }
    }
}
