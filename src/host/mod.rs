//! Hosts: how ocmigrate reaches the source and the target, and what it may do there.
//!
//! A side is either the operator's own machine or a machine reached with the system OpenSSH client
//! (so `~/.ssh/config`, agents, jump hosts and known_hosts work as the admin expects), over one
//! multiplexed master connection per host, in batch mode, with strict host key checking.
//!
//! The capability rule of SPEC.md lives in the types: [`SourceHost`] offers only reads,
//! `occ maintenance:mode` and the configured stop/start commands; it has no method that writes a
//! file. [`TargetHost`] may do everything. Both wrap a [`Host`], whose general `run` is private to
//! this module, so code outside cannot run an arbitrary command on the source.

mod agent;
mod source;
mod ssh;
mod target;

pub use agent::{AgentChannel, AgentInstall, SpareAgent};
pub use source::{
    Compress, DbConn, DbSelect, DumpCommand, KeyRanges, MysqlPart, PgFormat, Probe, SourceHost,
    NO_TOOL,
};
pub use ssh::SshError;
pub use target::TargetHost;

use crate::config::Side;
use crate::exit::Failure;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// What both sides offer: who and where they are, reads, read-only probes, and the agent in the
/// login user's cache folder. `SourceHost` and `TargetHost` dereference to it; it has no method
/// that writes into the instance.
pub struct ReadSide {
    host: Host,
    root: std::path::PathBuf,
    /// An agent started ahead of its handshake (see [`SpareAgent`]).
    spare: std::sync::Mutex<Option<SpareAgent>>,
}

impl ReadSide {
    fn new(host: Host, root: std::path::PathBuf) -> ReadSide {
        ReadSide {
            host,
            root,
            spare: std::sync::Mutex::new(None),
        }
    }
    /// Keep an agent started ahead for the next `deploy::start` on this side (one at most: an
    /// older one is stopped).
    pub fn keep_spare(&self, agent: SpareAgent) {
        *self.spare.lock().unwrap_or_else(|p| p.into_inner()) = Some(agent);
    }
    /// The agent started ahead, if any (it is then the caller's).
    pub fn take_spare(&self) -> Option<SpareAgent> {
        self.spare.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
    pub fn label(&self) -> &str {
        &self.host.label
    }
    /// The instance root (holding `config/` and `occ`).
    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn login_user(&self) -> &str {
        &self.host.login_user
    }
    /// How far the host is: the quickest command run there so far over its ssh connection (a
    /// session's channel, exec and answer: about 2.5 round trips), a `true` timed when none was.
    /// Zero for the operator's own machine.
    pub fn command_time(&self) -> Result<std::time::Duration, Failure> {
        if let HostKind::Local = self.host.kind {
            return Ok(std::time::Duration::ZERO);
        }
        if let Some(d) = self.host.quickest() {
            return Ok(d);
        }
        self.host.run("true")?;
        Ok(self.host.quickest().unwrap_or_default())
    }
    /// The quickest round trip to an agent on this host measured so far (see
    /// [`ReadSide::note_round_trip`]): the network's and the ssh connection's share of a
    /// command's time, without the disk or a process start.
    pub fn round_trip(&self) -> Option<std::time::Duration> {
        let us = self
            .host
            .round_trip_us
            .load(std::sync::atomic::Ordering::Relaxed);
        (us != u64::MAX).then(|| std::time::Duration::from_micros(us))
    }
    /// Note a round trip to an idle agent on this host (a request it answers at once).
    pub fn note_round_trip(&self, d: std::time::Duration) {
        let us = d.as_micros().min(u64::MAX as u128 - 1) as u64;
        self.host
            .round_trip_us
            .fetch_min(us, std::sync::atomic::Ordering::Relaxed);
    }
    /// Which folder the root is, machine-wide, as the connection found it: the kernel's boot id
    /// and `dev:inode` of the root with symlinks followed (`None` when the root did not exist or
    /// either could not be read). Two sides with the same identity are the same folder.
    pub fn root_identity(&self) -> Option<&str> {
        self.host.root_identity.as_deref()
    }
    /// True if this side is the operator's own machine (no ssh).
    pub fn is_local(&self) -> bool {
        matches!(self.host.kind, HostKind::Local)
    }
    /// Put ocmigrate's agent binary in the login user's cache folder (the one file SPEC.md lets
    /// ocmigrate leave on the source outside the instance); copied only when missing or different.
    pub fn install_agent<B>(
        &self,
        bytes: impl FnOnce() -> Result<B, Failure>,
        sha256_hex: &str,
    ) -> Result<AgentInstall, Failure>
    where
        B: std::ops::Deref,
        B::Target: AsRef<[u8]>,
    {
        self.host.install_agent(bytes, sha256_hex)
    }
    /// Where the agent `sha256_hex` is when an earlier run installed it (not checked: see
    /// `Host::assumed_agent`).
    pub fn assumed_agent(&self, sha256_hex: &str) -> Option<AgentInstall> {
        self.host.assumed_agent(sha256_hex)
    }
    /// Start the agent installed by [`Self::install_agent`], read-only (it refuses every write
    /// request), stdio piped, through the master connection or on one of its own. Only
    /// [`TargetHost::spawn_writable_agent`] starts one that writes.
    pub fn spawn_agent(
        &self,
        install: &AgentInstall,
        channel: AgentChannel,
    ) -> Result<std::process::Child, Failure> {
        self.host
            .spawn_agent(install, channel, agent::Access::ReadOnly)
    }
    /// Remove the agent binaries ocmigrate left in the login user's cache folder.
    pub fn remove_agents(&self) -> Result<Vec<String>, Failure> {
        self.host.remove_agents()
    }
    /// Read a whole file; `None` when it does not exist.
    pub fn read_file(&self, path: &Path) -> Result<Option<Vec<u8>>, Failure> {
        self.host.read_file(path)
    }
    /// Ask a read-only question.
    pub fn probe(&self, p: &Probe) -> Result<Ran, Failure> {
        let (script, input) = p.script();
        self.host.run_with_input(&script, &input)
    }
    /// Ask a read-only question as a user (PHP reading config.php must run as its owner).
    pub fn probe_as(&self, user: &str, p: &Probe) -> Result<Ran, Failure> {
        let (script, input) = p.script();
        self.host.run_as(user, &script, &input)
    }
    /// [`ReadSide::probe_as`] the owner of `path`, found by the same command (one round trip
    /// instead of two); `Ok(None)` when `path` cannot be `stat`ed.
    pub fn probe_as_owner_of(&self, path: &Path, p: &Probe) -> Result<Option<Ran>, Failure> {
        let (script, input) = p.script();
        let ran = self.host.run_as_owner_of(path, &script, &input)?;
        Ok((ran.status != Some(NO_OWNER)).then_some(ran))
    }
}

/// The exit status of [`Host::run_as_owner_of`]'s command when the path cannot be `stat`ed.
const NO_OWNER: i32 = 97;

/// This machine as a host, for tests.
#[cfg(test)]
pub(crate) fn local_host_for_tests() -> Host {
    let side = Side::Local { root: "/".into() };
    Host::connect("test", &side, &ConnectOptions::default()).unwrap()
}

/// Quote one word for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:@,+%".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// A shell command line built from words, each quoted.
pub fn shell_words<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|w| shell_quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The result of a command on a host, with its stderr kept for messages.
#[derive(Debug, Clone)]
pub struct Ran {
    pub status: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Ran {
    pub fn ok(&self) -> bool {
        self.status == Some(0)
    }
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).trim().to_string()
    }
}

impl From<Output> for Ran {
    fn from(o: Output) -> Ran {
        Ran {
            status: o.status.code(),
            stdout: o.stdout,
            stderr: o.stderr,
        }
    }
}

/// One reachable machine: the operator's own, or one behind ssh.
pub struct Host {
    /// A short name for messages: `source old.example.com`.
    pub label: String,
    kind: HostKind,
    /// `id -un` of the account commands run as.
    pub login_user: String,
    /// `$HOME` of that account as its shell sees it (empty when unset): where the agent's cache
    /// folder is, known without another round trip.
    home: String,
    /// Boot id and `dev:inode` of the side's root (see [`ReadSide::root_identity`]), learnt in
    /// the same round trip.
    root_identity: Option<String>,
    /// The quickest command run here so far, in µs (`u64::MAX`: none yet); see
    /// [`ReadSide::command_time`].
    quickest_us: std::sync::atomic::AtomicU64,
    /// The quickest round trip to an agent here, in µs (`u64::MAX`: none yet); see
    /// [`ReadSide::round_trip`].
    round_trip_us: std::sync::atomic::AtomicU64,
}

/// The tag of the line of the first round trip that carries the root's identity.
const IDENTITY_TAG: &str = "root-identity";

/// The first command on a host: who we are and the home folder (for the agent's path), then
/// the root's identity (for the same-folder check), all in one round trip. The identity line
/// always comes, with empty fields for what could not be read.
fn first_command(root: &Path) -> String {
    format!(
        "id -un && printf '%s\\n' \"$HOME\" && printf '{IDENTITY_TAG} %s %s\\n' \
         \"$(cat /proc/sys/kernel/random/boot_id 2>/dev/null)\" \"$(stat -L -c %d:%i -- {} 2>/dev/null)\"",
        shell_quote(&root.to_string_lossy())
    )
}

/// The root's identity from the first command's last line: both fields, or none.
fn parse_identity(text: &str) -> Option<String> {
    let line = text.lines().rev().find(|l| l.starts_with(IDENTITY_TAG))?;
    let mut f = line[IDENTITY_TAG.len()..].split_whitespace();
    match (f.next(), f.next(), f.next()) {
        (Some(boot), Some(inode), None) => Some(format!("{boot}\n{inode}")),
        _ => None,
    }
}

enum HostKind {
    Local,
    Ssh(ssh::Master),
}

/// Options for reaching hosts, shared by both sides.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// Extra `ssh -F FILE` (tests and the lab use their own config).
    pub ssh_config: Option<PathBuf>,
    /// Where control sockets live; default: a private folder in the temp dir.
    pub control_dir: Option<PathBuf>,
}

impl Host {
    /// Reach a side: start the ssh master (or nothing for a local side) and learn who we are.
    pub fn connect(role: &str, side: &Side, opts: &ConnectOptions) -> Result<Host, Failure> {
        let first = first_command(side.root());
        let (label, kind, who) = match side {
            Side::Local { .. } => (format!("{role} (local)"), HostKind::Local, None),
            Side::Ssh {
                user, host, port, ..
            } => {
                let (m, out) = ssh::Master::start(user.as_deref(), host, *port, opts, &first)
                    .map_err(|e| e.into_failure(role))?;
                (format!("{role} {host}"), HostKind::Ssh(m), Some(out))
            }
        };
        let mut h = Host {
            label,
            kind,
            login_user: String::new(),
            home: String::new(),
            root_identity: None,
            quickest_us: std::sync::atomic::AtomicU64::new(u64::MAX),
            round_trip_us: std::sync::atomic::AtomicU64::new(u64::MAX),
        };
        let text = match who {
            Some(out) => out,
            None => {
                let who = h.run(&first)?;
                if !who.ok() {
                    return Err(Failure::unreachable(format!(
                        "{}: `id -un` failed: {}",
                        h.label,
                        who.stderr_text()
                    )));
                }
                who.stdout_text()
            }
        };
        let mut lines = text.lines();
        h.login_user = lines.next().unwrap_or("").trim().to_string();
        h.home = lines.next().unwrap_or("").to_string();
        h.root_identity = parse_identity(&text);
        Ok(h)
    }

    /// See [`ReadSide::command_time`].
    fn quickest(&self) -> Option<std::time::Duration> {
        let us = self.quickest_us.load(std::sync::atomic::Ordering::Relaxed);
        (us != u64::MAX).then(|| std::time::Duration::from_micros(us))
    }

    fn command(&self, script: &str) -> Command {
        match &self.kind {
            HostKind::Local => {
                let mut c = Command::new("sh");
                c.arg("-c").arg(script);
                c
            }
            HostKind::Ssh(m) => m.command(script),
        }
    }

    /// Run a shell script on the host and collect its output. A failure to reach the host is an
    /// error; the script's own exit status is in the result.
    fn run(&self, script: &str) -> Result<Ran, Failure> {
        self.run_with_input(script, &[])
    }

    /// Like `run`, with bytes for the script's stdin (how secrets reach a remote command: never
    /// through argv, which `ps` shows to every user).
    fn run_with_input(&self, script: &str, input: &[u8]) -> Result<Ran, Failure> {
        let started = std::time::Instant::now();
        let mut cmd = self.command(script);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| {
            Failure::unreachable(format!("{}: cannot start the command: {e}", self.label))
        })?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        // Write stdin on its own thread so a command that writes much before reading cannot
        // deadlock against us; borrowed, not copied (the agent's binary is ~12 MB).
        let out = std::thread::scope(|sc| {
            sc.spawn(move || {
                let _ = stdin.write_all(input);
            });
            child.wait_with_output()
        })
        .map_err(|e| {
            Failure::unreachable(format!("{}: the command did not finish: {e}", self.label))
        })?;
        let took = started.elapsed().as_micros().min(u64::MAX as u128 - 1) as u64;
        self.quickest_us
            .fetch_min(took, std::sync::atomic::Ordering::Relaxed);
        let signal = std::os::unix::process::ExitStatusExt::signal(&out.status);
        let ran = Ran::from(out);
        if let HostKind::Ssh(m) = &self.kind {
            // The ssh client itself was killed: the session is lost, whatever the script did.
            // (Its output is cut short; reading it as the script's answer would mistake a lost
            // connection for a missing file or a broken instance.)
            if let Some(sig) = signal {
                return Err(Failure::unreachable(format!(
                    "{}: the ssh connection was lost (the ssh client was killed by signal {sig})",
                    self.label
                ))
                .hint("check the network and the host, then run the same command again"));
            }
            // 255 is ssh's own failure: the connection, not the script.
            if ran.status == Some(255) {
                if let Some(err) = ssh::classify(&ran.stderr_text()) {
                    return Err(err.into_failure(&self.label));
                }
                if !m.alive() {
                    return Err(Failure::unreachable(format!(
                        "{}: the ssh connection was lost: {}",
                        self.label,
                        ran.stderr_text()
                    )));
                }
            }
        }
        Ok(ran)
    }

    /// Start a shell script on the host with stdin, stdout and stderr piped, and return at once:
    /// for streams (a dump read on one host and written into a command on another). The caller
    /// reads stdout and stderr and waits. Private to this module like `run`, so the source's
    /// capability rule holds.
    fn spawn(&self, script: &str) -> Result<std::process::Child, Failure> {
        let mut cmd = self.command(script);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.spawn().map_err(|e| {
            Failure::unreachable(format!("{}: cannot start the command: {e}", self.label))
        })
    }

    /// Run a script as `user` (the web user): directly when we are that user, with `runuser`
    /// when we are root, with `sudo -n` otherwise.
    fn run_as(&self, user: &str, script: &str, input: &[u8]) -> Result<Ran, Failure> {
        let wrapped = if self.login_user == user {
            script.to_string()
        } else {
            format!(
                "{} -u {} -- sh -c {}",
                self.switch_user(),
                shell_quote(user),
                shell_quote(script)
            )
        };
        self.run_with_input(&wrapped, input)
    }

    /// How this login becomes another user: `runuser` as root, `sudo -n` otherwise.
    fn switch_user(&self) -> &'static str {
        if self.login_user == "root" {
            "runuser"
        } else {
            "sudo -n"
        }
    }

    /// [`Host::run_as`] the owner of `path`, which the same command finds (`stat -c %U`); exit
    /// status [`NO_OWNER`] when it cannot.
    fn run_as_owner_of(&self, path: &Path, script: &str, input: &[u8]) -> Result<Ran, Failure> {
        let switch = self.switch_user();
        let wrapped = format!(
            "u=$(stat -c %U -- {path}) || exit {NO_OWNER}; \
             if [ \"$u\" = {me} ]; then sh -c {script}; else {switch} -u \"$u\" -- sh -c {script}; fi",
            path = shell_quote(&path.to_string_lossy()),
            me = shell_quote(&self.login_user),
            script = shell_quote(script),
        );
        self.run_with_input(&wrapped, input)
    }

    /// Read a whole file; `Ok(None)` when it does not exist.
    fn read_file(&self, path: &Path) -> Result<Option<Vec<u8>>, Failure> {
        let p = shell_quote(&path.to_string_lossy());
        let r = self.run(&format!("if [ -e {p} ]; then cat -- {p}; else exit 44; fi"))?;
        match r.status {
            Some(0) => Ok(Some(r.stdout)),
            Some(44) => Ok(None),
            _ => Err(Failure::check(format!(
                "{}: cannot read {}: {}",
                self.label,
                path.display(),
                r.stderr_text()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("abc/def.php"), "abc/def.php");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_words(&["echo", "$HOME", "x;y"]), "echo '$HOME' 'x;y'");
    }

    #[test]
    fn a_probe_runs_as_the_owner_of_a_file_in_one_command() {
        use std::os::unix::fs::chown;
        let h = crate::host::local_host_for_tests();
        assert_eq!(h.login_user, "root", "the tests run as root");
        let side = ReadSide::new(h, "/".into());
        let t = tempfile::tempdir().unwrap();
        let (mine, theirs) = (t.path().join("mine"), t.path().join("theirs"));
        std::fs::write(&mine, b"").unwrap();
        std::fs::write(&theirs, b"").unwrap();
        chown(&theirs, Some(65534), Some(65534)).unwrap();
        let who = |p: &Path| {
            side.probe_as_owner_of(p, &Probe::HasCommand("sh".into()))
                .unwrap()
                .map(|r| r.ok())
        };
        // HasCommand stands for any probe; the user it ran as is what counts here.
        assert_eq!(who(&mine), Some(true));
        let (script, _) = Probe::HasCommand("sh".into()).script();
        let as_owner = |p: &Path| {
            side.host
                .run_as_owner_of(p, &format!("{script} >/dev/null && id -un"), b"")
                .unwrap()
        };
        assert_eq!(as_owner(&mine).stdout_text().trim(), "root");
        let nobody = as_owner(&theirs);
        assert!(nobody.ok(), "{}", nobody.stderr_text());
        let name = std::fs::read_to_string("/etc/passwd")
            .unwrap()
            .lines()
            .find(|l| l.split(':').nth(2) == Some("65534"))
            .map(|l| l.split(':').next().unwrap().to_string())
            .unwrap();
        assert_eq!(nobody.stdout_text().trim(), name);
        // No such file: no owner, and nothing ran.
        assert_eq!(who(&t.path().join("missing")), None);
    }

    #[test]
    fn local_host_runs_and_quotes() {
        let h = crate::host::local_host_for_tests();
        assert!(!h.login_user.is_empty());
        let r = h.run(&shell_words(&["printf", "%s", "a'b $c"])).unwrap();
        assert_eq!(r.stdout_text(), "a'b $c");
        let r = h.run_with_input("cat", b"secret-on-stdin").unwrap();
        assert_eq!(r.stdout, b"secret-on-stdin");
        assert_eq!(h.read_file(Path::new("/nonexistent/x")).unwrap(), None);
    }

    /// The first round trip names the root by boot id and inode: the same for two names of one
    /// folder, different for another folder, none for a folder that does not exist.
    #[test]
    fn the_first_round_trip_tells_which_folder_the_root_is() {
        let t = tempfile::tempdir().unwrap();
        let (a, b, odd) = (
            t.path().join("a"),
            t.path().join("b"),
            t.path().join("it's $x"),
        );
        for d in [&a, &b, &odd] {
            std::fs::create_dir(d).unwrap();
        }
        std::os::unix::fs::symlink(&a, t.path().join("link")).unwrap();
        let id = |p: &Path| {
            let side = Side::Local { root: p.into() };
            Host::connect("test", &side, &ConnectOptions::default())
                .unwrap()
                .root_identity
        };
        let ida = id(&a).expect("an identity");
        assert_eq!(ida.lines().count(), 2, "{ida:?}");
        assert_eq!(id(&t.path().join("link")).as_deref(), Some(ida.as_str()));
        assert_ne!(id(&b).as_deref(), Some(ida.as_str()));
        assert!(id(&odd).is_some(), "a quoted name");
        assert_eq!(id(&t.path().join("missing")), None);
        assert_eq!(parse_identity("root\n/root\nroot-identity  1:2\n"), None);
        assert_eq!(parse_identity("root\n/root\n"), None);
    }
}
