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
use crate::host::{AgentChannel, AgentInstall, SourceHost, SpareAgent, TargetHost};
use sha2::Digest;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Mutex, Weak};

/// The environment variable that names a portable agent build to deploy instead of ourselves.
pub const AGENT_BINARY_ENV: &str = "OCMIGRATE_AGENT_BINARY";

/// The bytes that become the agent on remote sides. Only the hashes are kept from the start
/// (computed streaming); the bytes are read when a copy to a host is needed, and must still have
/// the hash then.
#[derive(Clone)]
pub struct AgentBinary {
    /// The bytes while an upload holds them (two hosts' uploads share one read), then freed:
    /// a pass keeps no 12 MB copy of its own binary once its agents are deployed.
    bytes: Arc<Mutex<Weak<Vec<u8>>>>,
    /// Bytes that exist only in memory (tests), kept for the binary's life.
    pinned: Option<Arc<Vec<u8>>>,
    size: u64,
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
            .field("size", &self.size)
            .field("sha256", &self.sha256)
            .finish()
    }
}

/// The file a binary was hashed from, as it was then: device, inode, size, mtime in ns.
type FileStamp = (u64, u64, u64, i128);

fn stamp_of(p: &Path) -> Option<FileStamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(p).ok()?;
    let mtime = i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec());
    Some((m.dev(), m.ino(), m.size(), mtime))
}

/// The last binary [`AgentBinary::locate`] hashed, with its file's stamp: the passes and checks
/// of one run hash it once, and [`AgentBinary::prewarm`] hashes it while the hosts connect.
static LOCATED: Mutex<Option<(FileStamp, AgentBinary)>> = Mutex::new(None);

impl AgentBinary {
    /// `$OCMIGRATE_AGENT_BINARY` when set, else the running executable. Hashed again only when
    /// the file is another or has changed since the last call.
    pub fn locate() -> Result<AgentBinary, Failure> {
        let (path, from_env) = match std::env::var_os(AGENT_BINARY_ENV) {
            Some(p) if !p.is_empty() => (PathBuf::from(p), true),
            _ => (
                std::env::current_exe()
                    .map_err(|e| Failure::check(format!("cannot find our own executable: {e}")))?,
                false,
            ),
        };
        // Held while hashing: a second caller waits for this hash rather than making its own.
        let mut last = LOCATED.lock().unwrap_or_else(|p| p.into_inner());
        let stamp = stamp_of(&path);
        if let (Some(st), Some((was, bin))) = (stamp, last.as_ref()) {
            if st == *was && bin.origin == path {
                return Ok(bin.clone());
            }
        }
        let bin = AgentBinary::from_path(&path).map_err(|f| {
            if from_env {
                Failure::usage(format!("{} (from {AGENT_BINARY_ENV})", f.message))
            } else {
                f
            }
        })?;
        // Kept only when the file did not change while it was read.
        if let Some(st) = stamp.filter(|st| stamp_of(&path) == Some(*st)) {
            *last = Some((st, bin.clone()));
        }
        Ok(bin)
    }

    /// Start hashing the agent binary on a thread of its own, for a later [`Self::locate`].
    pub fn prewarm() {
        let _ = std::thread::Builder::new()
            .name("hash-agent".into())
            .spawn(|| AgentBinary::locate().map(|_| ()));
    }

    /// Hash the file at `p` streaming (its bytes are not kept).
    pub fn from_path(p: &Path) -> Result<AgentBinary, Failure> {
        let cannot =
            |e: std::io::Error| Failure::usage(format!("cannot read {}: {e}", p.display()));
        let mut f = std::fs::File::open(p).map_err(cannot)?;
        let mut sha = sha2::Sha256::new();
        let mut b3 = blake3::Hasher::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut size = 0u64;
        let mut head = Vec::with_capacity(4);
        loop {
            let n = match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(cannot(e)),
            };
            if head.len() < 4 {
                let k = (4 - head.len()).min(n);
                head.extend_from_slice(&buf[..k]);
            }
            sha.update(&buf[..n]);
            b3.update(&buf[..n]);
            size += n as u64;
        }
        if head != b"\x7fELF" {
            return Err(Failure::usage(format!(
                "{} is not an ELF executable",
                p.display()
            )));
        }
        Ok(AgentBinary {
            bytes: Arc::new(Mutex::new(Weak::new())),
            pinned: None,
            size,
            sha256: hex(&sha.finalize()),
            blake3: *b3.finalize().as_bytes(),
            origin: p.to_path_buf(),
        })
    }

    pub fn from_bytes(bytes: Vec<u8>, origin: PathBuf) -> AgentBinary {
        let sha256 = hex(&sha2::Sha256::digest(&bytes));
        let blake3 = *blake3::hash(&bytes).as_bytes();
        AgentBinary {
            size: bytes.len() as u64,
            bytes: Arc::new(Mutex::new(Weak::new())),
            pinned: Some(Arc::new(bytes)),
            sha256,
            blake3,
            origin,
        }
    }

    /// The bytes, read from [`AgentBinary::origin`] on first use; refused when the file no longer
    /// has the hash it had when located.
    pub fn bytes(&self) -> Result<Arc<Vec<u8>>, Failure> {
        if let Some(b) = &self.pinned {
            return Ok(b.clone());
        }
        let mut slot = self.bytes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = slot.upgrade() {
            return Ok(b);
        }
        let o = &self.origin;
        let b = std::fs::read(o)
            .map_err(|e| Failure::usage(format!("cannot read {}: {e}", o.display())))?;
        if hex(&sha2::Sha256::digest(&b)) != self.sha256 {
            return Err(Failure::check(format!(
                "{} changed while ocmigrate ran (not the binary it started with)",
                o.display()
            ))
            .hint("run ocmigrate again once the new build is in place"));
        }
        let b = Arc::new(b);
        *slot = Arc::downgrade(&b);
        Ok(b)
    }

    pub fn len(&self) -> usize {
        self.size as usize
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }
}

/// The bytes to hand to `install_agent`: none for a local side (it runs the operator's own
/// executable and copies nothing), else the binary.
fn install_bytes(local: bool, bin: &AgentBinary) -> Result<Arc<Vec<u8>>, Failure> {
    if local {
        Ok(Arc::new(Vec::new()))
    } else {
        bin.bytes()
    }
}

/// A side the agent can be deployed to and started on. The source's agents are read-only,
/// the target's writable: [`AgentSide::writable`] says which, and only `TargetHost` can start
/// an agent that writes.
pub trait AgentSide {
    fn label(&self) -> &str;
    /// The side's slot for an agent started ahead ([`start_spare`]).
    fn spares(&self) -> &crate::host::ReadSide;
    fn install(&self, bin: &AgentBinary) -> Result<AgentInstall, Failure>;
    /// Where an earlier run put the agent, not checked (no round trip).
    fn assume(&self, bin: &AgentBinary) -> Option<AgentInstall>;
    fn spawn(&self, install: &AgentInstall, channel: AgentChannel) -> Result<Child, Failure>;
    /// Returns true if and only if [`AgentSide::spawn`] starts agents that write.
    fn writable(&self) -> bool;
}

impl AgentSide for SourceHost {
    fn label(&self) -> &str {
        crate::host::ReadSide::label(self)
    }
    fn spares(&self) -> &crate::host::ReadSide {
        self
    }
    fn assume(&self, bin: &AgentBinary) -> Option<AgentInstall> {
        self.assumed_agent(&bin.sha256)
    }
    fn install(&self, bin: &AgentBinary) -> Result<AgentInstall, Failure> {
        self.install_agent(|| install_bytes(self.is_local(), bin), &bin.sha256)
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
    fn spares(&self) -> &crate::host::ReadSide {
        self
    }
    fn assume(&self, bin: &AgentBinary) -> Option<AgentInstall> {
        self.assumed_agent(&bin.sha256)
    }
    fn install(&self, bin: &AgentBinary) -> Result<AgentInstall, Failure> {
        self.install_agent(|| install_bytes(self.is_local(), bin), &bin.sha256)
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
///
/// Most runs find the agent where an earlier one put it, so it is started there straight away
/// (one round trip: no `sha256sum` of the file first); its `Welcome` proves it is our binary
/// (BLAKE3 of its own executable, checked by the handshake). Only when that start or that check
/// fails is the file checked and copied when needed (`install_agent`), and the agent started
/// again, whose error then is the one reported.
///
/// An agent started ahead by [`start_spare`] is used first, when it runs this binary's install.
pub fn start(
    side: &dyn AgentSide,
    bin: &AgentBinary,
    roots: Vec<Vec<u8>>,
) -> Result<(AgentClient, AgentInstall), Failure> {
    if let Some(install) = side.assume(bin) {
        let spare = side
            .spares()
            .take_spare()
            .filter(|s| s.install() == &install)
            .map(SpareAgent::into_child);
        let started = match spare {
            Some(child) => handshake(side, bin, &install, roots.clone(), child),
            None => connect(side, bin, &install, roots.clone(), AgentChannel::Master),
        };
        if let Ok(c) = started {
            return Ok((c, install));
        }
    }
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
    handshake(side, bin, install, roots, child)
}

/// Start an agent on `side` where an earlier run put it, through the master, and keep it there
/// for the next [`start`], which does the handshake: the process and its ssh session start while
/// the caller does other work (the source's inventory). Nothing happens on a side without the
/// agent's binary (the pass then installs it as usual), and a start that fails is left for
/// [`start`] to meet again and report.
pub fn start_spare(side: &dyn AgentSide, bin: &AgentBinary) {
    if let Some(install) = side.assume(bin) {
        if let Ok(child) = side.spawn(&install, AgentChannel::Master) {
            side.spares().keep_spare(SpareAgent::new(install, child));
        }
    }
}

/// The handshake with a started agent process.
fn handshake(
    side: &dyn AgentSide,
    bin: &AgentBinary,
    install: &AgentInstall,
    roots: Vec<Vec<u8>>,
    child: Child,
) -> Result<AgentClient, Failure> {
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
        // from a file: hashed streaming, the same identity, bytes read on demand
        let t0 = tempfile::tempdir().unwrap();
        let big: Vec<u8> = b"\x7fELF"
            .iter()
            .copied()
            .chain((0..700_000u32).map(|i| i as u8))
            .collect();
        std::fs::write(t0.path().join("a"), &big).unwrap();
        let f = AgentBinary::from_path(&t0.path().join("a")).unwrap();
        let m = AgentBinary::from_bytes(big.clone(), "m".into());
        assert_eq!(
            (&f.sha256, f.blake3, f.len()),
            (&m.sha256, m.blake3, big.len())
        );
        let held = f.bytes().unwrap();
        assert_eq!(*held, big);
        // changed after it was located: refused when the bytes are needed
        let g = AgentBinary::from_path(&t0.path().join("a")).unwrap();
        std::fs::write(t0.path().join("a"), b"\x7fELFother").unwrap();
        assert!(g.bytes().unwrap_err().message.contains("changed"));
        // one read shared while an upload holds it (the two hosts' uploads), freed after
        assert!(Arc::ptr_eq(&f.bytes().unwrap(), &held), "read once, shared");
        drop(held);
        assert!(f.bytes.lock().unwrap().upgrade().is_none(), "not kept");
        assert!(f.bytes().unwrap_err().message.contains("changed"));
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
