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

    /// The test instance's admin password (`lab/lab instance` wrote it).
    pub fn admin_password(&self) -> String {
        std::fs::read_to_string(self.path("LAB_ADMIN_PASSWORD_FILE"))
            .expect("admin password file")
            .trim()
            .to_string()
    }

    /// A query's rows on `old`, tab-separated, through the database's own client as root:
    /// `db` is `sqlite`, `mysql` or `pgsql`; `dbname` the MariaDB/PostgreSQL database.
    pub fn sql(&self, db: &str, dbname: &str, sql: &str) -> String {
        let client = match db {
            "sqlite" => "runuser -u www-data -- sqlite3 -batch -noheader -separator \"$(printf '\\t')\" /var/www/owncloud/data/owncloud.db".to_string(),
            "mysql" => format!("mariadb --no-defaults --default-character-set=utf8mb4 -u root -N -B -r {dbname}"),
            "pgsql" => format!("runuser -u postgres -- psql -X -q -A -t -F \"$(printf '\\t')\" -d {dbname}"),
            other => panic!("no database type {other}"),
        };
        self.sh("old", &format!("{client} <<'EOF'\n{sql}\nEOF\n"))
    }

    /// The lab's TSIG secret (base64, from the knot-format key file `LAB_TSIG_KEY`).
    pub fn tsig_secret(&self) -> String {
        let text =
            std::fs::read_to_string(self.var("LAB_TSIG_KEY")).expect("read the lab's TSIG key");
        text.lines()
            .find_map(|l| l.trim().strip_prefix("secret:"))
            .expect("secret: in the lab key")
            .trim()
            .to_string()
    }

    /// The lab's TSIG key in BIND's format (as `tsig-keygen` writes it), written as `dir/bind.key`
    /// (mode 0600) for nsupdate -k and ocmigrate; returns the path.
    pub fn bind_key_file(&self, dir: &Path) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join("bind.key");
        std::fs::write(
            &p,
            format!(
                "key \"oc-migrate.\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{}\";\n}};\n",
                self.tsig_secret()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p
    }
}

/// The instance's public name in the lab (`cloud.example.test`, a CNAME of `old`).
pub const LAB_HOST_NAME: &str = "cloud.example.test";

#[derive(Debug)]
pub struct Resp {
    pub code: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP request to `old` with the production host name ([`LAB_HOST_NAME`]), through curl. Credentials go in
/// through curl's config on stdin, not on the command line.
pub fn http(
    lab: &Lab,
    method: &str,
    path: &str,
    auth: Option<(&str, &str)>,
    headers: &[&str],
    body: Option<&str>,
) -> Resp {
    let addr = lab.var("LAB_OLD").to_string();
    let mut cmd = Command::new("curl");
    cmd.args([
        "-s",
        "-S",
        "-i",
        "--http1.1",
        "--max-time",
        "20",
        "-K",
        "-",
        "-X",
        method,
    ])
    .arg("--resolve")
    .arg(format!("{LAB_HOST_NAME}:80:{addr}"));
    for h in headers {
        cmd.arg("-H").arg(h);
    }
    if let Some(b) = body {
        cmd.arg("--data-binary").arg(b);
    }
    cmd.arg(format!("http://{LAB_HOST_NAME}{path}"));
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run curl");
    use std::io::Write;
    {
        let mut stdin = child.stdin.take().unwrap();
        if let Some((u, p)) = auth {
            let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
            writeln!(stdin, "user = \"{}:{}\"", esc(u), esc(p)).unwrap();
        }
    }
    let out = child.wait_with_output().expect("curl output");
    assert!(
        out.status.success(),
        "curl {method} {path} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let raw = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut rest = raw.as_str();
    loop {
        let (head, body) = rest.split_once("\r\n\r\n").unwrap_or((rest, ""));
        let mut lines = head.lines();
        let status = lines.next().unwrap_or("");
        let code: u16 = status
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        if code == 100 {
            rest = body;
            continue;
        }
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        return Resp {
            code,
            headers,
            body: body.to_string(),
        };
    }
}

/// One `#[test]` per `name => (flavor, database, seed)`, each calling `check(flavor, db, seed)`.
#[macro_export]
macro_rules! flavor_db_tests {
    ($check:ident: $($name:ident => ($flavor:literal, $db:literal, $seed:literal)),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $check($flavor, $db, $seed);
            }
        )*
    };
}

/// Run the ocmigrate binary under test in `cwd`, stdin closed.
pub fn ocmigrate_in(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ocmigrate"))
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .expect("run ocmigrate")
}

/// stdout then stderr of a command, as text (for messages and `contains` checks).
pub fn output_text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
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
/// TSIG key (written in BIND's format into a private temporary folder).
pub fn lab_nsupdate(lab: &Lab, name: &str, to: &str, ttl: u32) {
    let dir = tempfile::tempdir().unwrap();
    nsupdate(lab, &lab.bind_key_file(dir.path()), name, to, ttl);
}

/// `nsupdate -k key`: set `name` to a CNAME `to` with `ttl` in the lab's zone.
pub fn nsupdate(lab: &Lab, key: &Path, name: &str, to: &str, ttl: u32) {
    use std::io::Write;
    let (addr, port) = lab
        .var("LAB_DNS")
        .rsplit_once(':')
        .expect("LAB_DNS is host:port");
    let script = format!(
        "server {addr} {port}\nzone example.test.\nupdate delete {name} CNAME\nupdate add {name} {ttl} CNAME {to}\nsend\n"
    );
    let mut child = Command::new("nsupdate")
        .arg("-k")
        .arg(key)
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
