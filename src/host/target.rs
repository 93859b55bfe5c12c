//! The target host: the new machine, which ocmigrate prepares and fills. Everything is allowed
//! here, but files still reach their real names only by rename (the transfer engine's rule).

use super::{Host, Ran};
use crate::exit::Failure;
use std::path::{Path, PathBuf};

pub struct TargetHost {
    r: super::ReadSide,
}

impl std::ops::Deref for TargetHost {
    type Target = super::ReadSide;
    fn deref(&self) -> &super::ReadSide {
        &self.r
    }
}

impl TargetHost {
    pub fn new(host: Host, root: PathBuf) -> TargetHost {
        TargetHost {
            r: super::ReadSide::new(host, root),
        }
    }
    /// Write a file atomically: under a temporary name in the same folder, then `chmod`, `chown`,
    /// the mtime (seconds since the epoch, with fractions) when given, and rename.
    pub fn write_file(
        &self,
        path: &Path,
        bytes: &[u8],
        mode: u32,
        owner: &str,
        mtime: Option<&str>,
    ) -> Result<(), Failure> {
        let p = super::shell_quote(&path.to_string_lossy());
        let touch = mtime
            .map(|t| format!(" && touch -h -d @{} \"$t\"", super::shell_quote(t)))
            .unwrap_or_default();
        let script = format!(
            "t=$(mktemp {p}.ocm-XXXXXX) && trap 'rm -f \"$t\"' EXIT && cat > \"$t\" && chmod {mode:o} \"$t\" && chown {} \"$t\"{touch} && mv -f \"$t\" {p} && trap - EXIT",
            super::shell_quote(owner)
        );
        let r = self.r.host.run_with_input(&script, bytes)?;
        if !r.ok() {
            return Err(Failure::check(format!(
                "{}: cannot write {}: {}",
                self.label(),
                path.display(),
                r.stderr_text()
            )));
        }
        Ok(())
    }

    /// Run any shell script (the target may be changed).
    pub fn run(&self, script: &str) -> Result<Ran, Failure> {
        self.r.host.run(script)
    }
    pub fn run_with_input(&self, script: &str, input: &[u8]) -> Result<Ran, Failure> {
        self.r.host.run_with_input(script, input)
    }
    pub fn run_as(&self, user: &str, script: &str, input: &[u8]) -> Result<Ran, Failure> {
        self.r.host.run_as(user, script, input)
    }
    /// Start a shell script with stdin, stdout and stderr piped (a stream's receiving end: the
    /// caller writes to stdin, drains stdout and stderr, and waits).
    pub fn spawn(&self, script: &str) -> Result<std::process::Child, Failure> {
        self.r.host.spawn(script)
    }
}
