//! Test support shared by the integration tests: the lab (see lab/README.md).
//!
//! The lab is one machine-wide resource, so every test that uses it holds [`Lab`], which is a
//! process-wide mutex plus an exclusive lock on a file in the lab's state folder (so test binaries
//! running in parallel, e.g. under nextest, take turns). `Lab::get()` brings the lab up when it is
//! not up. Tests must not assume an instance exists: they make the one they need.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};

static IN_PROCESS: Mutex<()> = Mutex::new(());

pub struct Lab {
    _file: File,
    _guard: MutexGuard<'static, ()>,
    pub env: HashMap<String, String>,
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `lab/lab` script.
pub fn lab_script() -> PathBuf {
    repo().join("lab/lab")
}

pub fn lab_dir() -> PathBuf {
    std::env::var_os("OCM_LAB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/var/tmp/ocmigrate-lab".into())
}

/// Run `lab/lab ARGS…`, panicking with its output when it fails.
pub fn lab_cmd(args: &[&str]) -> Output {
    let out = Command::new(lab_script())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run lab/lab");
    if !out.status.success() {
        panic!(
            "lab/lab {} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

impl Lab {
    /// Take the lab for this test, bringing it up when needed.
    pub fn get() -> Lab {
        let guard = IN_PROCESS.lock().unwrap_or_else(|p| p.into_inner());
        let dir = lab_dir();
        std::fs::create_dir_all(&dir).expect("create lab dir");
        let file = File::create(dir.join(".test-lock")).expect("lock file");
        file.lock().expect("lock the lab");
        let up = Command::new(lab_script())
            .arg("status")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !matches!(up, Ok(s) if s.success()) {
            lab_cmd(&["up"]);
        }
        let env = parse_env(&String::from_utf8_lossy(&lab_cmd(&["env"]).stdout));
        Lab {
            _file: file,
            _guard: guard,
            env,
        }
    }

    /// A value of `lab/lab env`.
    pub fn var(&self, key: &str) -> &str {
        self.env
            .get(key)
            .unwrap_or_else(|| panic!("lab/lab env has no {key}"))
    }

    /// Run a shell command on a lab host (`old` or `new`) as root; returns its output, whatever
    /// its exit status.
    pub fn exec(&self, host: &str, shell: &str) -> Output {
        Command::new(lab_script())
            .args(["exec", host, "--", "sh", "-c", shell])
            .stdin(Stdio::null())
            .output()
            .expect("run lab/lab exec")
    }

    /// Like [`Lab::exec`] but panics unless the command succeeds; returns stdout as text.
    pub fn sh(&self, host: &str, shell: &str) -> String {
        let out = self.exec(host, shell);
        if !out.status.success() {
            panic!(
                "on {host}: `{shell}` failed ({}):\n{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Make a test instance (see `lab/lab instance`).
    pub fn instance(&self, flavor: &str, db: &str, users: u32, files: u32, seed: u64) {
        lab_cmd(&[
            "instance",
            "--flavor",
            flavor,
            "--db",
            db,
            "--users",
            &users.to_string(),
            "--files",
            &files.to_string(),
            "--seed",
            &seed.to_string(),
        ]);
    }

    /// The file in the lab's state folder that holds a secret or a key, as `lab/lab env` names it.
    pub fn path(&self, key: &str) -> &Path {
        Path::new(self.var(key))
    }
}

/// Parse `KEY=value` / `KEY='value'` / `export KEY=…` lines as `lab/lab env` prints them.
pub fn parse_env(text: &str) -> HashMap<String, String> {
    let mut map = HashMap::new();
    for line in text.lines() {
        let line = line.trim().trim_start_matches("export ");
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim();
            let v = if v.len() >= 2 && v.starts_with('\'') && v.ends_with('\'') {
                v[1..v.len() - 1].replace("'\\''", "'")
            } else if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
                v[1..v.len() - 1].to_string()
            } else {
                v.to_string()
            };
            map.insert(k.trim().to_string(), v);
        }
    }
    map
}

/// Change a CNAME in the lab's zone behind ocmigrate's back, with `nsupdate -k` and the lab's
/// TSIG key (written in BIND's format into a private temporary file).
pub fn lab_nsupdate(lab: &Lab, name: &str, to: &str, ttl: u32) {
    use std::io::Write;
    let key_text =
        std::fs::read_to_string(lab.var("LAB_TSIG_KEY")).expect("read the lab's TSIG key");
    let secret = key_text
        .lines()
        .find_map(|l| l.trim().strip_prefix("secret:"))
        .expect("secret: in the lab key")
        .trim();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("bind.key");
    std::fs::write(
        &key,
        format!("key \"oc-migrate.\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{secret}\";\n}};\n"),
    )
    .unwrap();
    let (addr, port) = lab
        .var("LAB_DNS")
        .rsplit_once(':')
        .expect("LAB_DNS is host:port");
    let script = format!(
        "server {addr} {port}\nzone example.test.\nupdate delete {name} CNAME\nupdate add {name} {ttl} CNAME {to}\nsend\n"
    );
    let mut child = Command::new("nsupdate")
        .arg("-k")
        .arg(&key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run nsupdate");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "nsupdate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
