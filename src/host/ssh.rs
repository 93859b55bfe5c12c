//! The system OpenSSH client: one master connection per host (ControlMaster), commands over it,
//! and ssh's own failures turned into messages that say what to do.
//!
//! We run `ssh` as a process rather than speak SSH ourselves, so the admin's `~/.ssh/config`,
//! agent, jump hosts and known_hosts apply unchanged. Host keys are checked strictly and nothing
//! ever prompts (`BatchMode`): an unknown key is an error with a hint, never a question.

use super::ConnectOptions;
use crate::exit::Failure;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Why ssh could not reach a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SshError {
    UnknownHostKey(String),
    ChangedHostKey(String),
    AuthRefused(String),
    ConnectionRefused(String),
    CannotResolve(String),
    TimedOut(String),
    Other(String),
}

impl SshError {
    pub fn into_failure(self, who: &str) -> Failure {
        use SshError::*;
        let (msg, hint) = match &self {
            UnknownHostKey(d) => (
                format!("{who}: the host key is not known ({d})"),
                "connect once with `ssh HOST` and check the fingerprint with the host's admin, \
                 or add the key to ~/.ssh/known_hosts; ocmigrate never accepts a key by itself",
            ),
            ChangedHostKey(d) => (
                format!("{who}: THE HOST KEY HAS CHANGED ({d})"),
                "this may be an attack or a reinstalled host: verify the new key out of band, then \
                 remove the old one with `ssh-keygen -R HOST`",
            ),
            AuthRefused(d) => (
                format!("{who}: authentication was refused ({d})"),
                "load the key into ssh-agent or name it with IdentityFile in ~/.ssh/config; \
                 ocmigrate runs ssh in batch mode and cannot type a password",
            ),
            ConnectionRefused(d) => (
                format!("{who}: the connection was refused ({d})"),
                "check the host and port in the side (ssh://user@host:port/path) and that sshd runs",
            ),
            CannotResolve(d) => (
                format!("{who}: the host name cannot be resolved ({d})"),
                "check the spelling, or use an address or a Host entry in ~/.ssh/config",
            ),
            TimedOut(d) => (
                format!("{who}: the connection timed out ({d})"),
                "check the address, firewalls and that the host is up",
            ),
            Other(d) => (format!("{who}: ssh failed: {d}"), "run `ssh -v HOST true` to see why"),
        };
        Failure::unreachable(msg).hint(hint)
    }
}

/// Recognise ssh's own error messages (on stderr, with exit status 255).
pub fn classify(stderr: &str) -> Option<SshError> {
    let first = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string();
    let s = stderr;
    Some(if s.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") {
        SshError::ChangedHostKey(first)
    } else if s.contains("Host key verification failed") || s.contains("host key is known") {
        SshError::UnknownHostKey(first)
    } else if s.contains("Permission denied") || s.contains("Too many authentication failures") {
        SshError::AuthRefused(first)
    } else if s.contains("Connection refused") {
        SshError::ConnectionRefused(first)
    } else if s.contains("Could not resolve hostname") || s.contains("Name or service not known") {
        SshError::CannotResolve(first)
    } else if s.contains("timed out") || s.contains("No route to host") || s.contains("unreachable")
    {
        SshError::TimedOut(first)
    } else if s.contains("Connection closed")
        || s.contains("Connection reset")
        || s.contains("kex_")
    {
        SshError::Other(first)
    } else {
        return None;
    })
}

/// OpenSSH's default ciphers with AES-GCM first, for a CPU with AES instructions: there it
/// costs about half of chacha20-poly1305's CPU per byte (measured in the lab: 1.3 against
/// 2.4 s of client CPU for 1 GB), and the transfer engine's bytes cross ssh twice (source to
/// operator, operator to target). Every default cipher stays in the list, so any server that
/// accepts OpenSSH's defaults agrees on one. None (ssh's own choice) on other CPUs, where
/// chacha20-poly1305 is the faster.
fn cipher_preference() -> Option<&'static str> {
    const AES_FIRST: &str = "Ciphers=aes128-gcm@openssh.com,aes256-gcm@openssh.com,\
                             chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr";
    static HAS_AES: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let has = *HAS_AES
        .get_or_init(|| std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|t| cpu_has_aes(&t)));
    has.then_some(AES_FIRST)
}

/// True when /proc/cpuinfo's `flags` (x86) or `Features` (arm64) line names `aes`.
fn cpu_has_aes(cpuinfo: &str) -> bool {
    cpuinfo
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| matches!(k.trim(), "flags" | "Features"))
        .any(|(_, v)| v.split_whitespace().any(|f| f == "aes"))
}

/// A running master connection.
pub struct Master {
    base: Vec<String>,
    host: String,
    control: PathBuf,
}

impl Master {
    /// Connect, and run `first` as the master's own first session (its output is returned):
    /// one round trip less than a master started with `-N` and a command over it. Once
    /// `first` ends, `ControlPersist` keeps the master running in the background (its stdio
    /// on /dev/null), and later commands go over it. The control socket is named for this
    /// process (`<pid>-<n>`), so two ocmigrate processes never share or close each other's
    /// master.
    pub fn start(
        user: Option<&str>,
        host: &str,
        port: Option<u16>,
        opts: &ConnectOptions,
        first: &str,
    ) -> Result<(Master, String), SshError> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = opts.control_dir.clone().unwrap_or_else(default_control_dir);
        if let Err(e) = create_private_dir(&dir) {
            return Err(SshError::Other(format!(
                "cannot create {}: {e}",
                dir.display()
            )));
        }
        let mut base = Vec::new();
        if let Some(cfg) = &opts.ssh_config {
            base.push("-F".to_string());
            base.push(cfg.to_string_lossy().into_owned());
        }
        for o in [
            "BatchMode=yes",
            "StrictHostKeyChecking=yes",
            "ConnectTimeout=20",
            "ServerAliveInterval=15",
            "ServerAliveCountMax=4",
        ] {
            base.push("-o".into());
            base.push(o.into());
        }
        if let Some(c) = cipher_preference() {
            base.push("-o".into());
            base.push(c.into());
        }
        if let Some(u) = user {
            base.push("-l".into());
            base.push(u.into());
        }
        if let Some(p) = port {
            base.push("-p".into());
            base.push(p.to_string());
        }
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let control = dir.join(format!("{}-{n}", std::process::id()));
        // A socket left by a killed process that had our pid: ssh would not bind over it.
        let _ = std::fs::remove_file(&control);
        let m = Master {
            base,
            host: host.to_string(),
            control,
        };
        // stderr goes to a file, so that nothing of the background master holds a pipe we wait on.
        let errfile = tempfile_in(&dir).map_err(|e| SshError::Other(e.to_string()))?;
        let out = Command::new("ssh")
            .args(&m.base)
            .arg("-o")
            .arg(format!("ControlPath={}", m.control.display()))
            .args([
                "-o",
                "ControlMaster=yes",
                "-o",
                "ControlPersist=600",
                "-T",
                "--",
            ])
            .arg(&m.host)
            .arg(first)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(
                errfile
                    .1
                    .try_clone()
                    .map_err(|e| SshError::Other(e.to_string()))?,
            )
            .output()
            .map_err(|e| {
                SshError::Other(format!("cannot run ssh: {e} (install openssh-client)"))
            })?;
        let stderr = std::fs::read_to_string(&errfile.0).unwrap_or_default();
        let _ = std::fs::remove_file(&errfile.0);
        if !out.status.success() {
            // 255: ssh's own failure; another status: the first command failed on the host.
            let said = match (stderr.trim(), out.status.code()) {
                ("", Some(255)) => "ssh exited with status 255 without a message".to_string(),
                ("", Some(c)) => format!("`{first}` exited with status {c} without a message"),
                ("", None) => "ssh was killed before it connected".to_string(),
                (s, Some(255)) => s.to_string(),
                (s, c) => format!("`{first}` failed (exit status {c:?}): {s}"),
            };
            return Err(classify(&stderr).unwrap_or(SshError::Other(said)));
        }
        Ok((m, String::from_utf8_lossy(&out.stdout).into_owned()))
    }

    /// `ssh … host -- script`, over the master.
    pub fn command(&self, script: &str) -> Command {
        let mut c = Command::new("ssh");
        c.args(&self.base)
            .arg("-o")
            .arg(format!("ControlPath={}", self.control.display()))
            .args(["-o", "ControlMaster=no", "--"])
            .arg(&self.host)
            .arg(script);
        c
    }

    /// `ssh … host -- script` over a connection of its own (same user, host, port, config and
    /// options as the master, batch mode, strict host keys), not through the master: the
    /// transfer engine's parallel streams each get one, so encryption runs on every core.
    pub fn dedicated_command(&self, script: &str) -> Command {
        let mut c = Command::new("ssh");
        c.args(&self.base)
            .args([
                "-o",
                "ControlMaster=no",
                "-o",
                "ControlPath=none",
                "-T",
                "--",
            ])
            .arg(&self.host)
            .arg(script);
        c
    }

    /// True if the master still answers.
    pub fn alive(&self) -> bool {
        Command::new("ssh")
            .args(&self.base)
            .arg("-o")
            .arg(format!("ControlPath={}", self.control.display()))
            .args(["-O", "check", "--"])
            .arg(&self.host)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }
}

impl Drop for Master {
    /// Ask the master to exit, without waiting for it: the request is on its way once `ssh -O
    /// exit` has started (it ends on its own if we exit first), and a command closing two hosts
    /// does not wait for one before asking the other. A thread reaps it.
    fn drop(&mut self) {
        let exit = Command::new("ssh")
            .args(&self.base)
            .arg("-o")
            .arg(format!("ControlPath={}", self.control.display()))
            .args(["-O", "exit", "--"])
            .arg(&self.host)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        if let Ok(mut child) = exit {
            // Without a thread to spare it stays a zombie until we exit: harmless.
            let _ = std::thread::Builder::new()
                .name("ssh-exit".into())
                .spawn(move || child.wait());
        }
    }
}

fn default_control_dir() -> PathBuf {
    let uid = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap_or(0);
    std::env::temp_dir().join(format!("ocmigrate-{uid}"))
}

fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

fn tempfile_in(dir: &std::path::Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    use std::os::unix::fs::OpenOptionsExt;
    for i in 0..100u32 {
        let p = dir.join(format!(".ssh-err-{}-{i}", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&p)
        {
            Ok(f) => return Ok((p, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("no free temporary name"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aes_instructions_are_read_from_cpuinfo() {
        let x86 = "processor\t: 0\nflags\t\t: fpu sse2 aes avx vaes\n";
        let arm = "processor\t: 0\nFeatures\t: fp asimd aes pmull sha1\n";
        let none = "processor\t: 0\nflags\t\t: fpu sse2 vaes avx\nmodel name\t: aes\n";
        assert!(cpu_has_aes(x86));
        assert!(cpu_has_aes(arm));
        assert!(!cpu_has_aes(none));
        assert!(!cpu_has_aes(""));
    }

    /// The preferred cipher list is one the installed OpenSSH client parses (`ssh -G` exits 255
    /// with "Bad SSH2 cipher spec" otherwise), and it keeps every cipher of ssh's default.
    #[test]
    fn the_cipher_list_is_valid_for_the_local_ssh() {
        let list = "Ciphers=aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr";
        if let Some(c) = cipher_preference() {
            assert_eq!(c, list);
        }
        let out = Command::new("ssh")
            .args(["-G", "-F", "/dev/null", "-o", list, "example.invalid"])
            .output()
            .expect("ssh runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().find(|l| l.starts_with("ciphers ")).unwrap();
        assert_eq!(line, format!("ciphers {}", &list["Ciphers=".len()..]));
        let default = Command::new("ssh")
            .args(["-G", "-F", "/dev/null", "example.invalid"])
            .output()
            .unwrap();
        let default = String::from_utf8_lossy(&default.stdout);
        let default = default.lines().find(|l| l.starts_with("ciphers ")).unwrap();
        let ours: Vec<&str> = line["ciphers ".len()..].split(',').collect();
        for c in default["ciphers ".len()..].split(',') {
            assert!(ours.contains(&c), "{c} of ssh's default is not in the list");
        }
    }

    #[test]
    fn classifies_ssh_messages() {
        let unknown = "No ED25519 host key is known for 127.0.0.2 and you have requested strict checking.\nHost key verification failed.\n";
        assert!(matches!(
            classify(unknown),
            Some(SshError::UnknownHostKey(_))
        ));
        assert!(matches!(
            classify("@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@\nHost key verification failed."),
            Some(SshError::ChangedHostKey(_))
        ));
        assert!(matches!(
            classify("root@h: Permission denied (publickey)."),
            Some(SshError::AuthRefused(_))
        ));
        assert!(matches!(
            classify("ssh: connect to host 127.0.0.2 port 2299: Connection refused"),
            Some(SshError::ConnectionRefused(_))
        ));
        assert!(matches!(
            classify("ssh: Could not resolve hostname nope: Name or service not known"),
            Some(SshError::CannotResolve(_))
        ));
        assert_eq!(classify("bash: foo: command not found"), None);
    }

    #[test]
    fn failure_is_unreachable_with_hint() {
        let f = SshError::UnknownHostKey("x".into()).into_failure("source old");
        assert_eq!(f.kind, crate::exit::ExitKind::Unreachable);
        assert!(f.message.contains("source old"));
        assert!(f.hint.unwrap().contains("known_hosts"));
    }
}
