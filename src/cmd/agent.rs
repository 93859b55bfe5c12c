//! `ocmigrate agent` (hidden): serve the agent protocol on stdin/stdout. Started by the operator
//! over ssh, never by a person. Writes nothing but frames to stdout; a fatal protocol error is
//! also said on stderr (which the operator keeps) and gives exit status 2.

use crate::exit::ExitKind;

/// Serve one operator on stdin/stdout.
#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    /// Carry out write requests when the operator's Hello asks for them. Only the target's
    /// spawn passes this; without it every write request is refused (the source is never
    /// written).
    #[arg(long, hide = true)]
    writable: bool,
}

pub fn run(args: AgentArgs) -> anyhow::Result<ExitKind> {
    let stdin = std::io::stdin().lock();
    let stdout = std::io::stdout().lock();
    match crate::agent::server::serve_with(stdin, stdout, args.writable) {
        Ok(()) => Ok(ExitKind::Ok),
        Err(e) => {
            eprintln!("ocmigrate agent (pid {}): {e}", std::process::id());
            Ok(ExitKind::Usage)
        }
    }
}
