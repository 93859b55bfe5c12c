//! `ocmigrate dns check|switch` against the lab's knot (127.0.0.1:5353, zone example.test,
//! `cloud CNAME old`, TSIG key `oc-migrate.`). The independent side is `dig` and `nsupdate`.
//!
//! Every test holds the lab and puts the zone back (`lab/lab dns-reset`) before and after.

mod common;
use common::*;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const NAME: &str = "cloud.example.test.";

/// The lab, with the zone reset now and again when the test ends (also on panic).
struct DnsLab {
    lab: Lab,
    dir: tempfile::TempDir,
}

impl Drop for DnsLab {
    fn drop(&mut self) {
        let _ = dns_reset();
    }
}

/// `lab/lab dns-reset`, tried up to three times: it can die of SIGPIPE (exit 141) when both of
/// its knotd pidfiles name the same process (`signal_pidfile ... | head -n1` under pipefail).
fn dns_reset() -> Result<(), String> {
    let mut last = String::new();
    for _ in 0..3 {
        let out = Command::new(lab_script())
            .arg("dns-reset")
            .stdin(Stdio::null())
            .output()
            .expect("run lab/lab dns-reset");
        if out.status.success() {
            return Ok(());
        }
        last = format!(
            "lab/lab dns-reset failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Err(last)
}

impl DnsLab {
    fn get() -> DnsLab {
        let lab = Lab::get();
        dns_reset().unwrap_or_else(|e| panic!("{e}"));
        DnsLab {
            lab,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn server(&self) -> String {
        self.lab.var("LAB_DNS").to_string()
    }

    fn key_file(&self) -> PathBuf {
        PathBuf::from(self.lab.var("LAB_TSIG_KEY"))
    }

    /// The lab key's secret (knot format), for writing other key files.
    fn secret(&self) -> String {
        self.lab.tsig_secret()
    }

    /// The lab key in BIND's format (as `tsig-keygen` writes it), for nsupdate -k and ocmigrate.
    fn bind_key_file(&self) -> PathBuf {
        let p = self.dir.path().join("bind.key");
        if p.exists() {
            p
        } else {
            self.lab.bind_key_file(self.dir.path())
        }
    }

    /// Write a migration file with this [dns] section body; returns its path.
    fn config(&self, dns: &str) -> PathBuf {
        let p = self.dir.path().join("ocmigrate.toml");
        std::fs::write(
            &p,
            format!(
                "[source]\nside = \"/srv/old/owncloud\"\n[target]\nside = \"/srv/new/owncloud\"\n[dns]\n{dns}"
            ),
        )
        .unwrap();
        p
    }

    /// The usual rfc2136 section, with a key file.
    fn rfc2136(&self, key: &Path, extra: &str) -> PathBuf {
        self.config(&format!(
            "mode = \"rfc2136\"\nserver = \"{}\"\nzone = \"example.test.\"\nname = \"{NAME}\"\ntarget = \"new.example.test.\"\n\
             tsig_key_file = \"{}\"\npropagation_timeout = \"20s\"\npoll_interval = \"100ms\"\n{extra}",
            self.server(),
            key.display()
        ))
    }

    /// What the lab's server answers now, as `dig` sees it.
    fn dig(&self) -> String {
        let (addr, port) = self
            .server()
            .rsplit_once(':')
            .map(|(a, p)| (a.to_string(), p.to_string()))
            .unwrap();
        let out = Command::new("dig")
            .args([
                "+short",
                "+norec",
                "-p",
                &port,
                &format!("@{addr}"),
                NAME,
                "CNAME",
            ])
            .output()
            .expect("run dig");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Change the record behind ocmigrate's back.
    fn nsupdate(&self, to: &str, ttl: u32) {
        nsupdate(&self.lab, &self.bind_key_file(), NAME, to, ttl);
    }
}

fn ocmigrate(args: &[&str], cfg: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ocmigrate"))
        .args(args)
        .arg("-c")
        .arg(cfg)
        .stdin(Stdio::null())
        .output()
        .expect("run ocmigrate")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exit code")
}

#[test]
fn switch_moves_the_cname_and_check_then_says_so() {
    let d = DnsLab::get();
    let cfg = d.rfc2136(&d.key_file(), "");
    assert_eq!(d.dig(), "old.example.test.");

    let o = ocmigrate(&["dns", "check"], &cfg);
    let (out, err) = text(&o);
    assert_eq!(code(&o), 0, "{out}{err}");
    assert!(out.contains("CNAME old.example.test. (TTL 60 s)"), "{out}");
    assert!(out.contains("ready to switch"), "{out}");
    assert!(!err.contains("warning"), "{err}");

    let t = Instant::now();
    let o = ocmigrate(&["dns", "switch", "--yes"], &cfg);
    let took = t.elapsed();
    let (out, err) = text(&o);
    assert_eq!(code(&o), 0, "{out}{err}");
    assert!(out.contains("now points at new.example.test."), "{out}");
    eprintln!(
        "dns switch + propagation against knot: {} ms",
        took.as_millis()
    );
    assert_eq!(d.dig(), "new.example.test.");

    let o = ocmigrate(&["dns", "check"], &cfg);
    let (out, err) = text(&o);
    assert_eq!(code(&o), 0, "{out}{err}");
    assert!(
        out.contains("points at the target new.example.test.: switched"),
        "{out}"
    );
    let o = ocmigrate(&["dns", "check", "--json"], &cfg);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["state"], "at_target");
    assert_eq!(v["current"], "new.example.test.");
    assert_eq!(v["ttl"], 60);

    // Again: nothing to send, only the propagation is checked.
    let o = ocmigrate(&["dns", "switch", "--yes", "--json"], &cfg);
    let (out, err) = text(&o);
    assert_eq!(code(&o), 0, "{out}{err}");
    let last: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(last["event"], "report");
    assert_eq!(last["already"], true);
    assert_eq!(last["updated"], false);
}

#[test]
fn switch_works_with_a_bind_format_key_and_never_prints_the_secret() {
    let d = DnsLab::get();
    let cfg = d.rfc2136(&d.bind_key_file(), "source = \"old.example.test.\"\n");
    let o = ocmigrate(&["dns", "switch", "--yes", "--json"], &cfg);
    let (out, err) = text(&o);
    assert_eq!(code(&o), 0, "{out}{err}");
    assert_eq!(d.dig(), "new.example.test.");
    let secret = d.secret();
    assert!(!out.contains(&secret) && !err.contains(&secret));
    // The events are JSON lines, the last one the report.
    for line in out.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }
    assert!(out.contains("\"event\":\"updated\""), "{out}");
}

#[test]
fn a_wrong_key_fails_tsig_authentication_and_changes_nothing() {
    let d = DnsLab::get();
    // Right name and algorithm, another secret: BADSIG.
    let wrong = d.dir.path().join("wrong.key");
    std::fs::write(
        &wrong,
        "key:\n  - id: oc-migrate.\n    algorithm: hmac-sha256\n    secret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
    )
    .unwrap();
    let cfg = d.rfc2136(&wrong, "");
    let o = ocmigrate(&["dns", "switch", "--yes"], &cfg);
    let (out, err) = text(&o);
    assert_eq!(code(&o), 1, "{out}{err}");
    assert!(err.contains("TSIG authentication failed"), "{err}");
    assert!(
        err.contains("BADSIG") && err.contains("nothing was changed"),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
    assert_eq!(d.dig(), "old.example.test.");

    // A key the server does not know: BADKEY.
    let unknown = d.dir.path().join("unknown.key");
    std::fs::write(
        &unknown,
        "key \"somebody-else.\" {\n\talgorithm hmac-sha256;\n\tsecret \"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\";\n};\n",
    )
    .unwrap();
    let cfg = d.rfc2136(&unknown, "");
    let o = ocmigrate(&["dns", "switch", "--yes"], &cfg);
    let (out, err) = text(&o);
    assert_eq!(code(&o), 1, "{out}{err}");
    assert!(
        err.contains("TSIG authentication failed") && err.contains("BADKEY"),
        "{err}"
    );
    assert_eq!(d.dig(), "old.example.test.");

    // An unreadable key file is a usage error, before anything is sent.
    let bad = d.dir.path().join("bad.key");
    std::fs::write(&bad, "this is not a key\n").unwrap();
    let o = ocmigrate(&["dns", "switch", "--yes"], &d.rfc2136(&bad, ""));
    let (out, err) = text(&o);
    assert_eq!(code(&o), 2, "{out}{err}");
    assert!(err.contains("bad.key"), "{err}");
}

#[test]
fn a_record_changed_by_someone_else_fails_the_prerequisite_and_changes_nothing() {
    let d = DnsLab::get();
    let cfg = d.rfc2136(&d.key_file(), "source = \"old.example.test.\"\n");
    d.nsupdate("elsewhere.example.test.", 60);
    assert_eq!(d.dig(), "elsewhere.example.test.");
    let o = ocmigrate(&["dns", "switch", "--yes"], &cfg);
    let (out, err) = text(&o);
    assert_eq!(code(&o), 1, "{out}{err}");
    assert!(err.contains("prerequisite failed (NXRRSET)"), "{err}");
    assert!(err.contains("elsewhere.example.test."), "{err}");
    assert!(err.contains("nothing was changed"), "{err}");
    assert_eq!(d.dig(), "elsewhere.example.test.");

    // check says so too.
    let o = ocmigrate(&["dns", "check"], &cfg);
    let (out, err) = text(&o);
    assert_eq!(code(&o), 1, "{out}{err}");
    assert!(out.contains("neither the source"), "{out}");
}

#[test]
fn manual_mode_completes_when_the_record_is_changed_by_hand() {
    let d = DnsLab::get();
    let cfg = d.config(&format!(
        "mode = \"manual\"\nserver = \"{}\"\nname = \"{NAME}\"\ntarget = \"new.example.test.\"\npropagation_timeout = \"30s\"\npoll_interval = \"100ms\"\n",
        d.server()
    ));
    let t = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ocmigrate"))
        .args(["dns", "switch", "-c"])
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.starts_with("Waiting for every authoritative server") {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "no instructions: {seen}"
        );
    }
    assert!(seen.contains("In zone example.test."), "{seen}");
    assert!(
        seen.contains("cloud.example.test. 60 IN CNAME old.example.test."),
        "{seen}"
    );
    assert!(
        seen.contains("cloud.example.test. 60 IN CNAME new.example.test."),
        "{seen}"
    );
    assert!(
        seen.contains("update add cloud.example.test. 60 CNAME new.example.test."),
        "{seen}"
    );
    // Still waiting: nothing changed yet.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "manual mode ended before the change:\n{seen}"
    );
    assert_eq!(d.dig(), "old.example.test.");

    d.nsupdate("new.example.test.", 60);
    let changed = Instant::now();
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let status = child.wait().unwrap();
    let noticed = changed.elapsed();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    let rest = rest.join("\n");
    assert_eq!(status.code(), Some(0), "{seen}{rest}\n{err}");
    assert!(rest.contains("now points at new.example.test."), "{rest}");
    eprintln!(
        "manual mode noticed the change after {} ms",
        noticed.as_millis()
    );
}

#[test]
fn a_long_ttl_gives_the_warning() {
    let d = DnsLab::get();
    d.nsupdate("old.example.test.", 3600);
    let cfg = d.rfc2136(&d.key_file(), "");
    let o = ocmigrate(&["dns", "check"], &cfg);
    let (out, err) = text(&o);
    assert_eq!(code(&o), 0, "{out}{err}");
    assert!(out.contains("TTL: 3600 s"), "{out}");
    assert!(
        err.contains("warning: the TTL of cloud.example.test. is 3600 s (over 300 s)"),
        "{err}"
    );
    assert!(
        err.contains(
            "Lower it to 300 s or less at least 3600 s (one old TTL) before the migration"
        ),
        "{err}"
    );
    let o = ocmigrate(&["dns", "check", "--json"], &cfg);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["ttl_warning"].as_str().unwrap().contains("3600 s"));

    // The switch keeps the TTL, and says so.
    let o = ocmigrate(&["dns", "switch", "--yes"], &cfg);
    let (out, err) = text(&o);
    assert_eq!(code(&o), 0, "{out}{err}");
    assert!(err.contains("over 300 s"), "{err}");
    assert!(out.contains("up to 3600 s"), "{out}");
}

#[test]
fn wrong_zone_unreachable_server_and_no_confirmation_are_clear_errors() {
    let d = DnsLab::get();
    // A zone the server does not serve.
    let cfg = d.config(&format!(
        "mode = \"rfc2136\"\nserver = \"{}\"\nzone = \"nope.test.\"\nname = \"cloud.nope.test.\"\ntarget = \"new.example.test.\"\ntsig_key_file = \"{}\"\n",
        d.server(),
        d.key_file().display()
    ));
    let o = ocmigrate(&["dns", "switch", "--yes"], &cfg);
    let (out, err) = text(&o);
    assert_eq!(code(&o), 1, "{out}{err}");
    assert!(
        err.contains("wrong zone") && err.contains("nope.test."),
        "{err}"
    );

    // Nothing listens there: exit 3 quickly.
    let cfg = d.rfc2136(&d.key_file(), "").to_path_buf();
    let text_cfg = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace(&d.server(), "127.0.0.1:9");
    std::fs::write(&cfg, text_cfg).unwrap();
    let t = Instant::now();
    let o = ocmigrate(&["dns", "check"], &cfg);
    let (out, err) = text(&o);
    assert_eq!(code(&o), 3, "{out}{err}");
    assert!(
        err.contains("127.0.0.1:9") && err.contains("hint:"),
        "{err}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t.elapsed()
    );

    // No terminal and no --yes: refused, exit 2, nothing changed.
    let cfg = d.rfc2136(&d.key_file(), "");
    let o = ocmigrate(&["dns", "switch"], &cfg);
    let (out, err) = text(&o);
    assert_eq!(code(&o), 2, "{out}{err}");
    assert!(err.contains("--yes"), "{err}");
    assert_eq!(d.dig(), "old.example.test.");
}

#[test]
fn a_server_that_never_gets_the_change_times_out() {
    let d = DnsLab::get();
    // A second "authoritative server" that does not answer: the primary takes the update, the
    // wait ends with exit 3 after the timeout, naming the server.
    let cfg = d.rfc2136(&d.key_file(), "servers = [\"127.0.0.1:9\"]\n");
    let text_cfg = std::fs::read_to_string(&cfg).unwrap().replace(
        "propagation_timeout = \"20s\"",
        "propagation_timeout = \"2s\"",
    );
    std::fs::write(&cfg, text_cfg).unwrap();
    let t = Instant::now();
    let o = ocmigrate(&["dns", "switch", "--yes"], &cfg);
    let (out, err) = text(&o);
    assert_eq!(code(&o), 3, "{out}{err}");
    assert!(
        err.contains("timed out") && err.contains("127.0.0.1:9"),
        "{err}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(d.dig(), "new.example.test.");
}

#[test]
fn help_has_an_example_and_the_exit_codes() {
    for args in [
        &["dns", "--help"][..],
        &["dns", "switch", "--help"],
        &["dns", "check", "--help"],
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_ocmigrate"))
            .args(args)
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{out}");
        assert!(
            out.contains("Example:") && out.contains("ocmigrate dns switch"),
            "{out}"
        );
        assert!(out.contains("Exit status:"), "{out}");
    }
}
