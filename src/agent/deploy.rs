//! Deployment: which binary becomes the agent, getting it onto a side, starting it, and the
//! handshake that proves the running agent is the binary we meant.
//!
//! The binary is the running executable, unless `OCMIGRATE_AGENT_BINARY` names a portable build
//! (the glibc 2.17 one from `ci/build-agent`, for old sources). It is copied through
//! `SourceHost::install_agent`/`TargetHost::install_agent` (the only write this module causes,
//! into the login user's cache folder), started with `spawn_agent` (read-only, on the source) or
//! `spawn_writable_agent` (on the target), through the host's master ssh connection or over one
//! of its own ([`AgentChannel`]), and its `Welcome` must carry our protocol version, our binary
//! version, the BLAKE3 of exactly the bytes we deployed and the access we asked for.
//! This module never runs any other command on a host.

use super::client::{hex, AgentClient, AgentError};
use crate::exit::Failure;
use crate::host::{AgentChannel, AgentInstall, SourceHost, TargetHost};
use sha2::Digest;
use std::path::{Path, PathBuf};
use std::process::Child;

/// The environment variable that names a portable agent build to deploy instead of ourselves.
pub const AGENT_BINARY_ENV: &str = "OCMIGRATE_AGENT_BINARY";

/// The bytes that become the agent on remote sides.
#[derive(Clone)]
pub struct AgentBinary {
    bytes: Vec<u8>,
    /// SHA-256 in hex: checked on the host with `sha256sum`, and names the file there.
    pub sha256: String,
    /// BLAKE3: what the running agent reports about its own executable.
    pub blake3: [u8; 32],
    /// Where the bytes came from.
    pub origin: PathBuf,
}

impl std::fmt::Debug for AgentBinary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentBinary")
            .field("origin", &self.origin)
            .field("size", &self.bytes.len())
            .field("sha256", &self.sha256)
            .finish()
    }
}

impl AgentBinary {
    /// `$OCMIGRATE_AGENT_BINARY` when set, else the running executable.
    pub fn locate() -> Result<AgentBinary, Failure> {
        match std::env::var_os(AGENT_BINARY_ENV) {
            Some(p) if !p.is_empty() => AgentBinary::from_path(Path::new(&p)).map_err(|f| {
                let msg = format!("{} (from {AGENT_BINARY_ENV})", f.message);
                Failure::usage(msg)
            }),
            _ => {
                let exe = std::env::current_exe()
                    .map_err(|e| Failure::check(format!("cannot find our own executable: {e}")))?;
                AgentBinary::from_path(&exe)
            }
        }
    }

    pub fn from_path(p: &Path) -> Result<AgentBinary, Failure> {
        let bytes = std::fs::read(p)
            .map_err(|e| Failure::usage(format!("cannot read {}: {e}", p.display())))?;
        if !bytes.starts_with(b"\x7fELF") {
            return Err(Failure::usage(format!(
                "{} is not an ELF executable",
                p.display()
            )));
        }
        Ok(AgentBinary::from_bytes(bytes, p.to_path_buf()))
    }

    pub fn from_bytes(bytes: Vec<u8>, origin: PathBuf) -> AgentBinary {
        let sha256 = hex(&sha2::Sha256::digest(&bytes));
        let blake3 = *blake3::hash(&bytes).as_bytes();
        AgentBinary {
            bytes,
            sha256,
            blake3,
            origin,
        }
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// A side the agent can be deployed to and started on. The source's agents are read-only,
/// the target's writable: [`AgentSide::writable`] says which, and only `TargetHost` can start
/// an agent that writes.
pub trait AgentSide {
    fn label(&self) -> &str;
    fn install(&self, bin: &AgentBinary) -> Result<AgentInstall, Failure>;
    fn spawn(&self, install: &AgentInstall, channel: AgentChannel) -> Result<Child, Failure>;
    /// Returns true if and only if [`AgentSide::spawn`] starts agents that write.
    fn writable(&self) -> bool;
}

impl AgentSide for SourceHost {
    fn label(&self) -> &str {
        crate::host::ReadSide::label(self)
    }
    fn install(&self, bin: &AgentBinary) -> Result<AgentInstall, Failure> {
        self.install_agent(&bin.bytes, &bin.sha256)
    }
    fn spawn(&self, install: &AgentInstall, channel: AgentChannel) -> Result<Child, Failure> {
        self.spawn_agent(install, channel)
    }
    fn writable(&self) -> bool {
        false
    }
}

impl AgentSide for TargetHost {
    fn label(&self) -> &str {
        crate::host::ReadSide::label(self)
    }
    fn install(&self, bin: &AgentBinary) -> Result<AgentInstall, Failure> {
        self.install_agent(&bin.bytes, &bin.sha256)
    }
    fn spawn(&self, install: &AgentInstall, channel: AgentChannel) -> Result<Child, Failure> {
        self.spawn_writable_agent(install, channel)
    }
    fn writable(&self) -> bool {
        true
    }
}

/// Deploy the agent to a side when needed, start it with these roots through the host's master
/// connection, and do the handshake. On a local side the running executable serves (nothing is
/// copied). The source's agent is read-only, the target's writable.
pub fn start(
    side: &dyn AgentSide,
    bin: &AgentBinary,
    roots: Vec<Vec<u8>>,
) -> Result<(AgentClient, AgentInstall), Failure> {
    let install = side.install(bin)?;
    let c = connect(side, bin, &install, roots, AgentChannel::Master)?;
    Ok((c, install))
}

/// Start one more agent from an install made by [`start`] (or `install_agent`), over `channel`
/// (the transfer engine's parallel streams use [`AgentChannel::Dedicated`]), and do the
/// handshake.
pub fn connect(
    side: &dyn AgentSide,
    bin: &AgentBinary,
    install: &AgentInstall,
    roots: Vec<Vec<u8>>,
    channel: AgentChannel,
) -> Result<AgentClient, Failure> {
    let child = side.spawn(install, channel)?;
    let expected = (!install.local()).then_some(bin.blake3);
    let label = format!("agent@{}", side.label());
    AgentClient::from_child_with(&label, child, roots, expected, side.writable())
        .map_err(failure_of)
}

/// An agent error as a failure with a hint, for the exit-code table.
pub fn failure_of(e: AgentError) -> Failure {
    let from_env = std::env::var_os(AGENT_BINARY_ENV).is_some_and(|v| !v.is_empty());
    match e {
        AgentError::Mismatch { .. } if from_env => {
            let msg = e.to_string();
            Failure::usage(msg).hint(format!(
                "{AGENT_BINARY_ENV} names a build of another version: rebuild it with \
                 ci/build-agent from this version's source"
            ))
        }
        AgentError::Mismatch { .. } | AgentError::WrongBinary { .. } => {
            let msg = e.to_string();
            Failure::check(msg).hint(
                "the agent on the host is not the one deployed; remove ~/.cache/ocmigrate on \
                 the host and run again",
            )
        }
        AgentError::Broken { ref stderr, .. }
            if stderr.iter().any(|l| l.contains("GLIBC_")) && !from_env =>
        {
            let msg = e.to_string();
            Failure::unreachable(msg).hint(format!(
                "the host's C library is older than this build needs: build the portable agent \
                 (glibc 2.17 and later) with ci/build-agent and set {AGENT_BINARY_ENV} to it"
            ))
        }
        AgentError::Broken { .. } => {
            let msg = e.to_string();
            Failure::unreachable(msg).hint(
                "the agent's own words, if any, are above; `ssh HOST true` must print nothing \
                 (a login script that writes to stdout breaks the protocol)",
            )
        }
        AgentError::Failed { .. } => Failure::check(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_identity_and_hints() {
        let b = AgentBinary::from_bytes(b"\x7fELF...".to_vec(), "x".into());
        assert_eq!(b.sha256.len(), 64);
        assert_eq!(b.blake3, *blake3::hash(b"\x7fELF...").as_bytes());
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("sh"), b"#!/bin/sh").unwrap();
        assert!(AgentBinary::from_path(&t.path().join("sh")).is_err());
        let glibc = AgentError::Broken {
            what: "agent@source old: the agent closed the connection (exit status 1)".into(),
            stderr: vec!["/root/.cache/ocmigrate/agent-x: /lib64/libc.so.6: version \
                          `GLIBC_2.34' not found"
                .into()],
        };
        if std::env::var_os(AGENT_BINARY_ENV).is_none() {
            let f = failure_of(glibc);
            assert!(f.hint.unwrap().contains("ci/build-agent"));
            assert!(f.message.contains("GLIBC_2.34"), "{}", f.message);
        }
    }
}
