//! The agent as a process: `ocmigrate agent` started as a child (locally, and over ssh on the lab
//! host `old`), driven through `AgentClient` and with raw frames, on a temporary tree holding
//! the names and file types a real data directory has.

mod common;

use common::*;
use ocmigrate::agent::client::{AgentError, ScanItem};
use ocmigrate::agent::deploy::{self, AgentBinary};
use ocmigrate::agent::frame::{self, FrameReader, Kind};
use ocmigrate::agent::proto::{ErrorCode, FileType, Hello, RelPath, Target, Welcome};
use ocmigrate::agent::AgentClient;
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

const EXE: &str = env!("CARGO_BIN_EXE_ocmigrate");

fn spawn_agent() -> std::process::Child {
    Command::new(EXE)
        .arg("agent")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ocmigrate agent")
}

fn p(s: &str) -> Target {
    Target::new(0, RelPath::new(s).unwrap())
}

/// A tree with what a data directory can hold: nested folders, a file larger than a few
/// chunks, an empty file, names that are not UTF-8 or contain a newline, a symlink pointing out
/// of the tree, a hard link, a fifo and an unreadable folder.
fn make_tree(dir: &Path) -> Vec<u8> {
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::create_dir_all(dir.join("data/alice/files/Photos")).unwrap();
    std::fs::write(dir.join("data/alice/files/big.bin"), &big).unwrap();
    std::fs::write(dir.join("data/alice/files/empty"), b"").unwrap();
    std::fs::write(dir.join("data/alice/files/Photos/a.jpg"), b"jpeg").unwrap();
    let odd = std::ffi::OsStr::from_bytes(b"data/alice/files/caf\xe9\nline");
    std::fs::write(dir.join(odd), b"latin1 name").unwrap();
    std::os::unix::fs::symlink("/etc", dir.join("data/alice/files/etc-link")).unwrap();
    std::fs::hard_link(
        dir.join("data/alice/files/Photos/a.jpg"),
        dir.join("data/alice/files/a-hardlink.jpg"),
    )
    .unwrap();
    let fifo = std::ffi::CString::new(dir.join("data/fifo").as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    big
}

fn scan_map(c: &mut AgentClient, t: Target) -> (BTreeMap<Vec<u8>, ScanItem>, u64) {
    let mut m = BTreeMap::new();
    let done = c
        .scan(t, |i| {
            let k = match &i {
                ScanItem::Entry(e) => e.path.as_bytes().to_vec(),
                ScanItem::Skipped { path, .. } => path.as_bytes().to_vec(),
            };
            m.insert(k, i);
        })
        .unwrap();
    (m, done.entries)
}

fn entry<'a>(m: &'a BTreeMap<Vec<u8>, ScanItem>, k: &[u8]) -> &'a ocmigrate::agent::Entry {
    match m.get(k) {
        Some(ScanItem::Entry(e)) => e,
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(k)),
    }
}

#[test]
fn local_agent_hello_scan_read_hash() {
    let t = tempfile::tempdir().unwrap();
    let big = make_tree(t.path());
    let root = t.path().as_os_str().as_bytes().to_vec();
    let expected = AgentBinary::from_path(Path::new(EXE)).unwrap().blake3;

    let t0 = Instant::now();
    let mut c =
        AgentClient::from_child("agent@local", spawn_agent(), vec![root], Some(expected)).unwrap();
    eprintln!(
        "local agent: handshake {:?} (spawn + handshake {:?})",
        c.handshake_time,
        t0.elapsed()
    );
    assert_eq!(c.welcome().roots, vec![Ok(())]);

    // Scan: every entry once, lstat'ed, the symlink not followed.
    let (m, n) = scan_map(&mut c, p(""));
    assert_eq!(n as usize, m.len());
    assert_eq!(entry(&m, b"").file_type, FileType::Dir);
    let b = entry(&m, b"data/alice/files/big.bin");
    assert_eq!((b.file_type, b.size), (FileType::File, big.len() as u64));
    let l = entry(&m, b"data/alice/files/etc-link");
    assert_eq!(
        (l.file_type, &l.target[..]),
        (FileType::Symlink, &b"/etc"[..])
    );
    assert!(!m
        .keys()
        .any(|k| k.starts_with(b"data/alice/files/etc-link/")));
    let odd = entry(&m, b"data/alice/files/caf\xe9\nline");
    assert_eq!(odd.size, 11);
    let (h1, h2) = (
        entry(&m, b"data/alice/files/Photos/a.jpg"),
        entry(&m, b"data/alice/files/a-hardlink.jpg"),
    );
    assert_eq!((h1.dev, h1.ino, h1.nlink), (h2.dev, h2.ino, 2));
    assert_eq!(entry(&m, b"data/fifo").file_type, FileType::Fifo);
    let meta = std::fs::symlink_metadata(t.path().join("data/alice/files/big.bin")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (b.mtime.sec, b.mtime.nsec as i64, b.mode),
        (meta.mtime(), meta.mtime_nsec(), meta.mode() & 0o7777)
    );

    // ReadFile: the whole file over several Data frames, and a range.
    let mut out = Vec::new();
    let r = c
        .read_file(p("data/alice/files/big.bin"), 0, u64::MAX, &mut out)
        .unwrap();
    assert!(out == big && r.bytes == big.len() as u64 && !r.changed);
    assert_eq!(r.meta.ino, b.ino);
    let mut part = Vec::new();
    c.read_file(p("data/alice/files/big.bin"), 1000, 10, &mut part)
        .unwrap();
    assert_eq!(part, &big[1000..1010]);
    let mut none = Vec::new();
    assert_eq!(
        c.read_file(p("data/alice/files/empty"), 0, u64::MAX, &mut none)
            .unwrap()
            .bytes,
        0
    );

    // Hash: BLAKE3 of the bytes.
    let h = c.hash(p("data/alice/files/big.bin")).unwrap();
    assert_eq!(h.hash, *blake3::hash(&big).as_bytes());
    assert_eq!(h.size, big.len() as u64);

    // Refusals are errors for that request; the connection goes on.
    let code = |e: AgentError| e.code();
    assert_eq!(
        code(c.stat(p("nope")).unwrap_err()),
        Some(ErrorCode::NotFound)
    );
    assert_eq!(
        code(c.hash(p("data/alice/files/etc-link/passwd")).unwrap_err()),
        Some(ErrorCode::Symlink)
    );
    assert_eq!(
        code(
            c.read_file(p("data/alice/files/etc-link"), 0, 1, &mut Vec::new())
                .unwrap_err()
        ),
        Some(ErrorCode::Symlink)
    );
    assert_eq!(
        code(c.hash(p("data/fifo")).unwrap_err()),
        Some(ErrorCode::NotAFile)
    );
    assert_eq!(
        code(c.hash(p("data")).unwrap_err()),
        Some(ErrorCode::NotAFile)
    );
    assert_eq!(
        code(c.stat(Target::new(3, RelPath::root())).unwrap_err()),
        Some(ErrorCode::NoSuchRoot)
    );
    assert_eq!(c.stat(p("data/alice")).unwrap().file_type, FileType::Dir);
    c.exit().unwrap();
}

/// A folder the agent may not read is `Skipped` and the scan goes on. The agent runs as
/// `nobody` (through `runuser`) when the test runs as root, since root reads everything.
#[test]
fn unreadable_folder_is_skipped_not_fatal() {
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::tempdir().unwrap();
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(t.path().join("a/locked/inner")).unwrap();
    std::fs::create_dir_all(t.path().join("b")).unwrap();
    std::fs::write(t.path().join("b/f"), b"x").unwrap();
    std::fs::set_permissions(
        t.path().join("a/locked"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    // SAFETY: geteuid has no preconditions.
    let child = if unsafe { libc::geteuid() } == 0 {
        let exe_ok = Command::new("runuser")
            .args(["-u", "nobody", "--", EXE, "--version"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !exe_ok {
            eprintln!("skipped: `runuser -u nobody` cannot run {EXE}");
            return;
        }
        Command::new("runuser")
            .args(["-u", "nobody", "--", EXE, "agent"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    } else {
        std::fs::set_permissions(
            t.path().join("a/locked"),
            std::fs::Permissions::from_mode(0o000),
        )
        .unwrap();
        spawn_agent()
    };
    let root = t.path().as_os_str().as_bytes().to_vec();
    let mut c = AgentClient::from_child("agent@local", child, vec![root], None).unwrap();
    let mut items = Vec::new();
    let done = c.scan(p(""), |i| items.push(i)).unwrap();
    let skipped: Vec<_> = items
        .iter()
        .filter_map(|i| match i {
            ScanItem::Skipped { path, code, .. } => Some((path.to_string(), *code)),
            _ => None,
        })
        .collect();
    assert_eq!(
        skipped,
        [("a/locked".to_string(), ErrorCode::PermissionDenied)]
    );
    assert_eq!(done.skipped, 1);
    assert!(items
        .iter()
        .any(|i| matches!(i, ScanItem::Entry(e) if e.path.as_bytes() == b"b/f")));
    assert_eq!(
        c.stat(p("a/locked/inner")).unwrap_err().code(),
        Some(ErrorCode::PermissionDenied)
    );
    c.exit().unwrap();
    std::fs::set_permissions(
        t.path().join("a/locked"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
}

/// Raw bytes in, raw bytes out: what a fuzzer or a shell `printf` would send.
#[test]
fn raw_frames_on_stdin() {
    // A Hello, then Exit: Welcome, Bye, exit status 0.
    let mut input = Hello::ours(vec![b"/".to_vec()])
        .into_frame()
        .encode()
        .unwrap();
    input.extend(
        ocmigrate::agent::Request::Exit
            .into_frame(1)
            .encode()
            .unwrap(),
    );
    let out = run_with_input(&input);
    assert!(out.status.success(), "{out:?}");
    let mut r = FrameReader::new(&out.stdout[..]);
    let w = Welcome::from_frame(&r.read_frame().unwrap().unwrap()).unwrap();
    assert_eq!(w.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(r.read_frame().unwrap().unwrap().kind, Kind::Bye);
    assert!(r.read_frame().unwrap().is_none());

    // Garbage: an Error frame with id 0 on stdout, a line on stderr, exit status 2.
    let out = run_with_input(b"hello agent\n");
    assert_eq!(out.status.code(), Some(2));
    let f = FrameReader::new(&out.stdout[..])
        .read_frame()
        .unwrap()
        .unwrap();
    assert_eq!((f.kind, f.id), (Kind::Error, 0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown frame kind"));

    // An oversized frame after the handshake: refused from its header, nothing allocated.
    let mut input = Hello::ours(vec![]).into_frame().encode().unwrap();
    input.extend_from_slice(&[
        Kind::Stat as u8,
        0,
        0,
        0,
        0,
        0,
        0,
        1,
        0xff,
        0xff,
        0xff,
        0xff,
    ]);
    let out = run_with_input(&input);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("larger than the limit"));

    // A frame cut short: the agent says so.
    let mut input = Hello::ours(vec![]).into_frame().encode().unwrap();
    input.extend_from_slice(&[Kind::Stat as u8, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 9, 1, 2]);
    let out = run_with_input(&input);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ended inside a frame"));

    // Nothing at all: a clean close.
    let out = run_with_input(b"");
    assert!(out.status.success() && out.stdout.is_empty());
}

fn run_with_input(input: &[u8]) -> std::process::Output {
    let mut child = spawn_agent();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let w = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    w.join().unwrap();
    out
}

#[test]
fn frame_decode_is_total_on_short_garbage() {
    // Every 0..3-byte input and a sweep of 12-byte headers: never a panic.
    for a in 0..=255u8 {
        let _ = frame::decode(&[a]);
        for b in [0u8, 1, 0x80, 0xff] {
            let _ = frame::decode(&[a, b, 0]);
            let h = [a, b, 0, 0, 0, 0, 0, 1, 0, 0, 0, b];
            let _ = frame::decode(&h);
        }
    }
}

/// The portable agent inside a Debian 11 userland, driven by the Rust client: run by
/// `bench/agent-portability`, which builds the binary, makes the chroot and sets
/// `OCM_AGENT_CHROOT`; without it this test has nothing to run against and says so.
#[test]
fn portable_agent_in_chroot() {
    let Some(dir) = std::env::var_os("OCM_AGENT_CHROOT") else {
        eprintln!("skipped: OCM_AGENT_CHROOT is not set (see bench/agent-portability)");
        return;
    };
    let dir = Path::new(&dir);
    let bin = AgentBinary::from_path(&dir.join("ocmigrate")).unwrap();
    let tree = dir.join("srv/agent-test-rust");
    let _ = std::fs::remove_dir_all(&tree);
    std::fs::create_dir_all(&tree).unwrap();
    let big = make_tree(&tree);
    let child = Command::new("chroot")
        .arg(dir)
        .args(["/ocmigrate", "agent"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let mut c = AgentClient::from_child(
        "agent@bullseye",
        child,
        vec![b"/srv/agent-test-rust".to_vec()],
        Some(bin.blake3),
    )
    .unwrap();
    eprintln!(
        "    Rust client, agent in Debian 11: spawn + handshake {:?}",
        t0.elapsed()
    );
    let (m, _) = scan_map(&mut c, p(""));
    assert_eq!(
        entry(&m, b"data/alice/files/big.bin").size,
        big.len() as u64
    );
    assert_eq!(
        entry(&m, b"data/alice/files/etc-link").file_type,
        FileType::Symlink
    );
    let mut out = Vec::new();
    c.read_file(p("data/alice/files/big.bin"), 0, u64::MAX, &mut out)
        .unwrap();
    assert!(out == big);
    let h = c.hash(p("data/alice/files/big.bin")).unwrap();
    assert_eq!(h.hash, *blake3::hash(&big).as_bytes());
    c.exit().unwrap();
    std::fs::remove_dir_all(&tree).unwrap();
}

/// Over ssh to the lab host `old`: deploy into root's cache folder (once), start, handshake,
/// scan the instance, read and hash a file, compare with what the host has.
#[test]
fn lab_deploy_and_talk_over_ssh() {
    let lab = Lab::get();
    use ocmigrate::config::Side;
    use ocmigrate::host::{ConnectOptions, Host, SourceHost};
    let opts = ConnectOptions {
        ssh_config: Some(lab.var("LAB_SSH_CONFIG").into()),
        control_dir: None,
    };
    let side = Side::Ssh {
        user: Some("root".into()),
        host: "old".into(),
        port: None,
        root: "/var/www/owncloud".into(),
    };
    let host = Host::connect("source", &side, &opts).unwrap();
    let source = SourceHost::new(host, "/var/www/owncloud".into());
    let bin = AgentBinary::from_path(Path::new(EXE)).unwrap();
    lab.sh(
        "old",
        "mkdir -p /tmp/agent-test && printf 'abc' > /tmp/agent-test/f",
    );
    // Start clean so the copy is exercised.
    lab.sh("old", "rm -rf /root/.cache/ocmigrate");

    let t0 = Instant::now();
    let (mut c, inst) = deploy::start(&source, &bin, vec![b"/tmp/agent-test".to_vec()]).unwrap();
    let first = t0.elapsed();
    assert!(inst.copied() && !inst.local(), "{inst:?}");
    assert_eq!(
        inst.path(),
        format!("/root/.cache/ocmigrate/agent-{}", &bin.sha256[..16])
    );
    let listed = lab.sh("old", "stat -c '%a %s' /root/.cache/ocmigrate/agent-*");
    assert_eq!(listed.trim(), format!("755 {}", bin.len()));
    let (m, _) = scan_map(&mut c, p(""));
    assert_eq!(entry(&m, b"f").size, 3);
    let h = c.hash(p("f")).unwrap();
    assert_eq!(h.hash, *blake3::hash(b"abc").as_bytes());
    c.exit().unwrap();

    // Second time: already there, only started.
    let t1 = Instant::now();
    let (c, inst) = deploy::start(&source, &bin, vec![b"/tmp/agent-test".to_vec()]).unwrap();
    eprintln!(
        "ssh agent: first start with copy {first:?}; second start {:?} (handshake {:?})",
        t1.elapsed(),
        c.handshake_time
    );
    assert!(!inst.copied());
    c.exit().unwrap();

    // Asked to leave nothing behind: the binary and then the empty folder go.
    assert_eq!(
        source.remove_agents().unwrap(),
        vec![inst.path().to_string()]
    );
    lab.sh("old", "test ! -e /root/.cache/ocmigrate");
    lab.sh("old", "rm -rf /tmp/agent-test");
}
