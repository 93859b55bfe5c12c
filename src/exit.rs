//! Exit codes: the one table, used by `main` and repeated in every `--help`.
//!
//! Nothing else in the crate builds a process exit status. Library code returns errors that carry
//! an [`ExitKind`]; `main` maps them here.

use std::process::ExitCode;

/// What a run of ocmigrate ended with. The numbers are a documented contract (SPEC.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// 0: done, or ready.
    Ok,
    /// 1: a check failed, or `plan` found blockers.
    CheckFailed,
    /// 2: usage or configuration error (bad flag, bad migration file, missing secret file).
    Usage,
    /// 3: a host or service could not be reached.
    Unreachable,
    /// 4: interrupted; run the same command again to resume.
    Interrupted,
}

impl ExitKind {
    pub fn code(self) -> u8 {
        match self {
            ExitKind::Ok => 0,
            ExitKind::CheckFailed => 1,
            ExitKind::Usage => 2,
            ExitKind::Unreachable => 3,
            ExitKind::Interrupted => 4,
        }
    }
}

impl From<ExitKind> for ExitCode {
    fn from(k: ExitKind) -> ExitCode {
        ExitCode::from(k.code())
    }
}

/// The table as it appears at the end of every `--help`.
pub const HELP_FOOTER: &str = "\
Exit status:
  0  done, or ready
  1  a check failed, or blockers were found
  2  usage or configuration error
  3  a host or service could not be reached
  4  interrupted: run the same command again to resume";

/// An error that knows which exit code it deserves and, optionally, a hint that says how to fix it.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub kind: ExitKind,
    pub message: String,
    pub hint: Option<String>,
}

/// A thread's answer, a panic in it turned into a check failure: "`what` panicked".
pub fn joined<T>(r: std::thread::Result<Result<T, Failure>>, what: &str) -> Result<T, Failure> {
    r.unwrap_or_else(|_| Err(Failure::check(format!("{what} panicked"))))
}

impl Failure {
    pub fn new(kind: ExitKind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            message: message.into(),
            hint: None,
        }
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    pub fn usage(message: impl Into<String>) -> Self {
        Failure::new(ExitKind::Usage, message)
    }
    pub fn unreachable(message: impl Into<String>) -> Self {
        Failure::new(ExitKind::Unreachable, message)
    }
    pub fn check(message: impl Into<String>) -> Self {
        Failure::new(ExitKind::CheckFailed, message)
    }
}

/// The exit kind of any error chain: the first [`Failure`] found in it, else a usage error's
/// opposite, a plain failure (1).
pub fn kind_of(err: &anyhow::Error) -> ExitKind {
    err.chain()
        .find_map(|e| e.downcast_ref::<Failure>().map(|f| f.kind))
        .unwrap_or(ExitKind::CheckFailed)
}

/// The hint of the first [`Failure`] in the chain, if any.
pub fn hint_of(err: &anyhow::Error) -> Option<&str> {
    err.chain()
        .find_map(|e| e.downcast_ref::<Failure>().and_then(|f| f.hint.as_deref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_thread_is_a_check_failure_naming_it() {
        let ok = std::thread::spawn(|| Ok::<u8, Failure>(7)).join();
        assert_eq!(joined(ok, "a scan thread").unwrap(), 7);
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let bad = std::thread::spawn(|| -> Result<u8, Failure> { panic!("boom") }).join();
        std::panic::set_hook(hook);
        let f = joined(bad, "a scan thread").unwrap_err();
        assert_eq!(f.kind, ExitKind::CheckFailed);
        assert_eq!(f.message, "a scan thread panicked");
    }
}
