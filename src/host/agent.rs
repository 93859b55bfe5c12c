//! Putting ocmigrate's agent on a host and starting it: the one write outside the instance that
//! SPEC.md allows on the source ("its own agent binary in the connecting user's cache folder").
//!
//! [`Host::install_agent`] writes exactly one file, `$HOME/.cache/ocmigrate/agent-<sha256
//! prefix>`, under a temporary name first, then `chmod 0755` and rename, and only when the file
//! is missing or its SHA-256 differs. [`Host::spawn_agent`] starts `<that file> agent` (or, on
//! the operator's own machine, the running executable) with piped stdio, through the master
//! connection or over an ssh connection of its own ([`AgentChannel`]). Neither takes a path or
//! a command from the caller: the file name is built here from a checked hash, so these methods
//! cannot be used to write or run anything else on the source. [`Host::remove_agents`] takes
//! those files away again.
//!
//! An agent writes only when started `agent --writable`. That flag comes from
//! [`Access::Writable`], which is private to the host layer and used by one method only,
//! [`TargetHost::spawn_writable_agent`]: the source's agents are always read-only (the source is
//! never written, doc/design.md invariant 1).

use super::{shell_quote, Host, HostKind, TargetHost};
use crate::exit::Failure;
use std::process::{Child, Command, Stdio};

/// Where the agent is on a host. Made only by `install_agent` (of `SourceHost` or `TargetHost`).
#[derive(Debug, Clone, PartialEq, Eq)]
/// Its fields are private so that no other code can make one that names another program for
/// `spawn_agent` to run.
pub struct AgentInstall {
    path: String,
    copied: bool,
    local: bool,
}

/// An agent process started before it is needed, waiting for its `Hello` (an agent reads its
/// roots from it, so it can start before they are known), with the install it runs. Started
/// only by `SourceHost::spawn_agent` (read-only) or `TargetHost::spawn_writable_agent` and kept
/// on that same side, so a source never holds a writable one. One not taken is stopped (killed
/// and reaped) when dropped.
pub struct SpareAgent {
    install: AgentInstall,
    /// Always there until [`SpareAgent::into_child`] or the drop takes it.
    child: Option<std::process::Child>,
}

impl SpareAgent {
    pub fn new(install: AgentInstall, child: std::process::Child) -> SpareAgent {
        SpareAgent {
            install,
            child: Some(child),
        }
    }
    /// The local process: the ssh client, or the agent itself on a local side.
    pub fn process_id(&self) -> u32 {
        self.child.as_ref().map_or(0, std::process::Child::id)
    }
    pub fn install(&self) -> &AgentInstall {
        &self.install
    }
    /// The process, for its handshake: it is the caller's to stop from now on.
    pub fn into_child(mut self) -> std::process::Child {
        self.child
            .take()
            .expect("a spare agent holds its process until taken")
    }
}

impl Drop for SpareAgent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl AgentInstall {
    /// The executable, as an absolute path on that host.
    pub fn path(&self) -> &str {
        &self.path
    }
    /// True if the binary was copied this time (false: it was already there, or local).
    pub fn copied(&self) -> bool {
        self.copied
    }
    /// True if this is the operator's own running executable (a local side).
    pub fn local(&self) -> bool {
        self.local
    }
}

/// How an agent process reaches the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AgentChannel {
    /// Through the host's master ssh connection (cheap to start; all sessions share one ssh
    /// process, so one core encrypts everything).
    #[default]
    Master,
    /// Over an ssh connection of its own (`ControlMaster=no`, `ControlPath=none`), so parallel
    /// streams encrypt on several cores. The same as `Master` on a local side.
    Dedicated,
}

/// Whether a spawned agent may carry out write requests. Private to the host layer: the only
/// place that asks for `Writable` is [`TargetHost::spawn_writable_agent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    ReadOnly,
    Writable,
}

impl TargetHost {
    /// Start the installed agent as `agent --writable`: it carries out write requests when the
    /// operator's `Hello` asks for them (`AgentClient::from_child_with(…, true)`). Only the
    /// target has this method.
    pub fn spawn_writable_agent(
        &self,
        install: &AgentInstall,
        channel: AgentChannel,
    ) -> Result<Child, Failure> {
        self.host.spawn_agent(install, channel, Access::Writable)
    }
}

/// Exit statuses of the install scripts.
const MISSING: i32 = 45;
const WRONG_ARCH: i32 = 46;

/// The folder, in shell syntax, relative to the login user's home.
const CACHE_DIR: &str = "\"$HOME\"/.cache/ocmigrate";

fn check_sha(sha256_hex: &str) -> Result<(), Failure> {
    if sha256_hex.len() == 64
        && sha256_hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        Ok(())
    } else {
        Err(Failure::usage(format!(
            "not a lower-case SHA-256 in hex: {sha256_hex:?}"
        )))
    }
}

/// `agent-` and the first 16 hex digits of the binary's SHA-256.
pub fn agent_file_name(sha256_hex: &str) -> String {
    format!("agent-{}", &sha256_hex[..16.min(sha256_hex.len())])
}

impl Host {
    /// Make sure the agent binary whose SHA-256 is `sha256_hex` is in the login user's cache
    /// folder, copying it only when missing or different. `bytes` gives its bytes, and is called
    /// only for a copy (reading and hashing 12 MB is not free). On a local side nothing is
    /// written: the running executable is the agent.
    pub(crate) fn install_agent<B>(
        &self,
        bytes: impl FnOnce() -> Result<B, Failure>,
        sha256_hex: &str,
    ) -> Result<AgentInstall, Failure>
    where
        B: std::ops::Deref,
        B::Target: AsRef<[u8]>,
    {
        if let HostKind::Local = self.kind {
            let exe = std::env::current_exe().map_err(|e| {
                Failure::check(format!(
                    "{}: cannot find our own executable: {e}",
                    self.label
                ))
            })?;
            return Ok(AgentInstall {
                path: exe.to_string_lossy().into_owned(),
                copied: false,
                local: true,
            });
        }
        self.install_agent_in(CACHE_DIR, bytes, sha256_hex)
    }

    /// Where [`Host::install_agent`] puts the agent `sha256_hex`, assumed to be there, without
    /// asking the host (its home folder was learnt on connecting): the fast start of every pass
    /// after the first. Whoever starts it must check the running agent's identity (the BLAKE3
    /// in its `Welcome`) and fall back to `install_agent` when the start or that check fails.
    /// `None` when the home folder is not known.
    pub(crate) fn assumed_agent(&self, sha256_hex: &str) -> Option<AgentInstall> {
        if let HostKind::Local = self.kind {
            return self.install_agent(|| Ok(&[] as &[u8]), sha256_hex).ok();
        }
        check_sha(sha256_hex).ok()?;
        if !self.home.starts_with('/') || self.home.contains('\n') {
            return None;
        }
        let home = self.home.trim_end_matches('/');
        Some(AgentInstall {
            path: format!("{home}/.cache/ocmigrate/{}", agent_file_name(sha256_hex)),
            copied: false,
            local: false,
        })
    }

    /// [`Host::install_agent`] into a folder given in shell syntax (tests use a temp folder).
    fn install_agent_in<B>(
        &self,
        dir: &str,
        bytes: impl FnOnce() -> Result<B, Failure>,
        sha256_hex: &str,
    ) -> Result<AgentInstall, Failure>
    where
        B: std::ops::Deref,
        B::Target: AsRef<[u8]>,
    {
        check_sha(sha256_hex)?;
        let name = agent_file_name(sha256_hex);
        let arch = std::env::consts::ARCH;
        // First look, without sending the bytes: most runs find the agent in place.
        let check = format!(
            r#"d={dir}; f="$d/{name}"
case "$(uname -m)" in {arch}) ;; *) echo "this host is $(uname -m), the agent is built for {arch}" >&2; exit {WRONG_ARCH};; esac
if [ -f "$f" ] && [ ! -L "$f" ] && [ -x "$f" ] && [ "$(sha256sum < "$f" | cut -d' ' -f1)" = {sha256_hex} ]; then
  printf '%s\n' "$f"; exit 0
fi
exit {MISSING}"#
        );
        let r = self.run(&check)?;
        match r.status {
            Some(0) => {
                return Ok(AgentInstall {
                    path: r.stdout_text().trim().to_string(),
                    copied: false,
                    local: false,
                })
            }
            Some(MISSING) => {}
            _ => {
                return Err(Failure::check(format!(
                    "{}: cannot check for the agent: {}",
                    self.label,
                    r.stderr_text()
                )))
            }
        }
        // Copy: a temporary name in the same folder, checked, made executable, then renamed, so a
        // broken copy never stands under the real name.
        let bytes = bytes()?;
        let bytes: &[u8] = (*bytes).as_ref();
        let size = bytes.len();
        let copy = format!(
            r#"set -e
umask 077
d={dir}; f="$d/{name}"; t="$d/.{name}.$$.tmp"
mkdir -p "$d"
trap 'rm -f "$t"' EXIT
cat > "$t"
[ "$(wc -c < "$t")" -eq {size} ] || {{ echo "the copy is incomplete" >&2; exit 1; }}
[ "$(sha256sum < "$t" | cut -d' ' -f1)" = {sha256_hex} ] || {{ echo "the copy has another SHA-256" >&2; exit 1; }}
chmod 0755 "$t"
mv -f "$t" "$f"
trap - EXIT
printf '%s\n' "$f""#
        );
        let r = self.run_with_input(&copy, bytes)?;
        if !r.ok() {
            return Err(Failure::check(format!(
                "{}: cannot copy the agent to {}/{name}: {}",
                self.label,
                dir.replace('"', ""),
                r.stderr_text()
            )));
        }
        Ok(AgentInstall {
            path: r.stdout_text().trim().to_string(),
            copied: true,
            local: false,
        })
    }

    /// Start the installed agent with stdin, stdout and stderr piped: `ssh … -- exec PATH agent`
    /// (over the master or a connection of its own), or the running executable on a local side;
    /// `--writable` only for [`Access::Writable`].
    pub(super) fn spawn_agent(
        &self,
        install: &AgentInstall,
        channel: AgentChannel,
        access: Access,
    ) -> Result<Child, Failure> {
        let flag = match access {
            Access::ReadOnly => "",
            Access::Writable => " --writable",
        };
        let mut cmd = match (&self.kind, install.local) {
            (HostKind::Local, true) => {
                let mut c = Command::new(&install.path);
                c.arg("agent");
                if access == Access::Writable {
                    c.arg("--writable");
                }
                c
            }
            (HostKind::Ssh(m), false) => {
                let script = format!("exec {} agent{flag}", shell_quote(&install.path));
                match channel {
                    AgentChannel::Master => m.command(&script),
                    AgentChannel::Dedicated => m.dedicated_command(&script),
                }
            }
            _ => {
                return Err(Failure::check(format!(
                    "{}: the agent was installed for another kind of side",
                    self.label
                )))
            }
        };
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.spawn().map_err(|e| {
            Failure::unreachable(format!("{}: cannot start the agent: {e}", self.label))
        })
    }
}

impl Host {
    /// Remove every agent binary ocmigrate left in the login user's cache folder (and the folder
    /// when it is then empty): what `ocmigrate` does when asked to leave nothing behind. Returns
    /// the paths removed. Nothing on a local side.
    pub(crate) fn remove_agents(&self) -> Result<Vec<String>, Failure> {
        if let HostKind::Local = self.kind {
            return Ok(Vec::new());
        }
        self.remove_agents_in(CACHE_DIR)
    }

    fn remove_agents_in(&self, dir: &str) -> Result<Vec<String>, Failure> {
        // Only our own names: agent-<16 hex> and their temporary copies.
        let script = format!(
            r#"d={dir}
[ -d "$d" ] || exit 0
for f in "$d"/agent-[0-9a-f]*[0-9a-f] "$d"/.agent-*.tmp; do
  [ -f "$f" ] || continue
  rm -f -- "$f" && printf '%s\n' "$f"
done
rmdir -- "$d" 2>/dev/null || true"#
        );
        let r = self.run(&script)?;
        if !r.ok() {
            return Err(Failure::check(format!(
                "{}: cannot remove the agent: {}",
                self.label,
                r.stderr_text()
            )));
        }
        Ok(r.stdout_text().lines().map(str::to_string).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installs_once_by_temp_name_and_rename() {
        let h = crate::host::local_host_for_tests();
        let t = tempfile::tempdir().unwrap();
        let dir = shell_quote(&t.path().join("cache").to_string_lossy());
        let body = b"#!/bin/sh\necho agent\n";
        // The bytes are asked for only when a copy is made: counted.
        let reads = std::cell::Cell::new(0);
        let bytes = || {
            reads.set(reads.get() + 1);
            Ok(body)
        };
        let sha = "6ad3d0b8c1f1a9f5b0b4ba8c0ab7c5bd8a9e1d2a6c7f3e0f9d4c1b2a3e4f5a6b";
        // a wrong SHA-256 for these bytes: the copy is refused and nothing stays behind
        let e = h.install_agent_in(&dir, bytes, sha).unwrap_err();
        assert!(e.message.contains("another SHA-256"), "{}", e.message);
        let left: Vec<_> = std::fs::read_dir(t.path().join("cache")).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");

        let real = {
            use sha2::Digest;
            crate::agent::client::hex(&sha2::Sha256::digest(body))
        };
        let a = h.install_agent_in(&dir, bytes, &real).unwrap();
        assert!(a.copied && !a.local);
        assert!(a.path.ends_with(&agent_file_name(&real)));
        let m = std::fs::metadata(&a.path).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777,
            0o755
        );
        assert_eq!(reads.get(), 2, "read for each copy");
        let b = h.install_agent_in(&dir, bytes, &real).unwrap();
        assert!(!b.copied, "present with the right hash: not copied again");
        assert_eq!(reads.get(), 2, "present: its bytes not even read");
        // damaged in place: copied again
        std::fs::write(&a.path, b"broken").unwrap();
        assert!(h.install_agent_in(&dir, bytes, &real).unwrap().copied);
        assert!(check_sha("ABC").is_err());
        // removal takes our files only, then the folder when empty
        std::fs::write(t.path().join("cache/other"), b"not ours").unwrap();
        assert_eq!(h.remove_agents_in(&dir).unwrap(), vec![a.path.clone()]);
        assert!(t.path().join("cache/other").exists());
        std::fs::remove_file(t.path().join("cache/other")).unwrap();
        assert!(h.remove_agents_in(&dir).unwrap().is_empty());
        assert!(!t.path().join("cache").exists());
    }
}
