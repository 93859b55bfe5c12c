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

/// `folders` folders of `files` empty files each, with long names; the root, as bytes.
fn many_files(root: &Path, folders: usize, files: usize) -> Vec<u8> {
    for d in 0..folders {
        let dir = root.join(format!("folder-{d:03}"));
        std::fs::create_dir(&dir).unwrap();
        for f in 0..files {
            std::fs::write(dir.join(format!("a-file-with-a-long-name-{f:04}.txt")), b"").unwrap();
        }
    }
    root.as_os_str().as_bytes().to_vec()
}

/// The round trip timed ahead of scans (a `Stat` answered before them) is one round trip, not a
/// wait behind the scan's answers: the agent sends what it has before it starts a scan (before,
/// the `Stat`'s answer waited in its buffer for ~10,000 entries).
#[test]
fn the_round_trip_timed_ahead_of_scans_does_not_wait_for_them() {
    let t = tempfile::tempdir().unwrap();
    let root = many_files(t.path(), 200, 150);
    let mut c = AgentClient::from_child("agent@local", spawn_agent(), vec![root], None).unwrap();
    let t0 = Instant::now();
    let rt = c.ask_scans_timed(vec![p("")]).unwrap().unwrap();
    let (m, _) = scan_map(&mut c, p(""));
    let scan = t0.elapsed();
    assert_eq!(m.len(), 200 * 151 + 1);
    assert!(
        rt * 10 < scan,
        "the round trip took {rt:?}, the whole scan {scan:?}"
    );
    c.exit().unwrap();
}

/// An agent whose scan was asked ahead and never read waits to write its answers, so it would
/// not see its stdin close: dropping the connection kills it (without, the drop waited 5 s).
#[test]
fn an_agent_with_unread_scans_is_killed_when_dropped() {
    let t = tempfile::tempdir().unwrap();
    let root = many_files(t.path(), 40, 150);
    let mut c = AgentClient::from_child("agent@local", spawn_agent(), vec![root], None).unwrap();
    c.ask_scan(Target::new(0, RelPath::root())).unwrap();
    let pid = c.process_id().unwrap();
    // 6,000 entries' answers are more than the pipe holds: the agent is blocked writing.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    let t0 = Instant::now();
    drop(c);
    let took = t0.elapsed();
    assert!(
        took < std::time::Duration::from_secs(3),
        "the drop waited {took:?} for an agent that could not exit"
    );
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "agent {pid} still there"
    );
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
/// `OCM_AGENT_CHROOT` and runs it with `--ignored`; without the chroot it fails, never passes.
#[test]
#[ignore = "needs a Debian 11 chroot: run bench/agent-portability (as root)"]
fn portable_agent_in_chroot() {
    let dir = std::env::var_os("OCM_AGENT_CHROOT")
        .expect("OCM_AGENT_CHROOT names the Debian 11 chroot: run bench/agent-portability");
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

    // Started ahead (while a pass prepares), then taken by the next start: the same process.
    deploy::start_spare(&source, &bin);
    let spare = source.take_spare().expect("an agent started ahead");
    let ahead = spare.process_id();
    source.keep_spare(spare);
    let (c, _) = deploy::start(&source, &bin, vec![b"/tmp/agent-test".to_vec()]).unwrap();
    assert_eq!(c.process_id(), Some(ahead), "the agent started ahead");
    assert!(source.take_spare().is_none(), "taken");
    assert_eq!(
        c.welcome().roots,
        vec![Ok(())],
        "its Hello came with the start"
    );
    c.exit().unwrap();
    // One that is not taken is stopped and reaped when dropped.
    deploy::start_spare(&source, &bin);
    let spare = source.take_spare().expect("an agent started ahead");
    let pid = spare.process_id();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    drop(spare);
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "reaped");

    // Asked to leave nothing behind: the binary and then the empty folder go.
    assert_eq!(
        source.remove_agents().unwrap(),
        vec![inst.path().to_string()]
    );
    lab.sh("old", "test ! -e /root/.cache/ocmigrate");
    lab.sh("old", "rm -rf /tmp/agent-test");
}

// ---------------------------------------------------------------------------------------------
// Protocol 2: writes, pipelining, compression.

use ocmigrate::agent::client::{failed, AgentReceiver, AgentSender};
use ocmigrate::agent::proto::{Time, CHUNK, MAX_CHUNK};
use ocmigrate::agent::{Request, Response};
use std::os::unix::fs::MetadataExt;

fn spawn_writable() -> std::process::Child {
    Command::new(EXE)
        .args(["agent", "--writable"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ocmigrate agent --writable")
}

fn root_of(p: &Path) -> Vec<u8> {
    p.as_os_str().as_bytes().to_vec()
}

/// A writable agent on `dir` (root 0).
fn writer(dir: &Path) -> AgentClient {
    AgentClient::from_child_with(
        "agent@target",
        spawn_writable(),
        vec![root_of(dir)],
        None,
        true,
    )
    .unwrap()
}

fn pb(b: &[u8]) -> Target {
    Target::new(0, RelPath::new(b).unwrap())
}

const MT: Time = Time {
    sec: 1_234_567_890,
    nsec: 987_654_321,
};

fn done(r: Result<Response, AgentError>) -> u64 {
    match r.unwrap() {
        Response::Done { entries, bytes, .. } => entries.max(bytes),
        r => panic!("{r:?}"),
    }
}

fn code_of(r: Result<Response, AgentError>) -> ErrorCode {
    match r {
        Err(e) => e.code().unwrap_or_else(|| panic!("fatal: {e}")),
        Ok(r) => panic!("expected an error, got {r:?}"),
    }
}

fn mkdir(t: Target) -> Request {
    Request::Mkdir {
        target: t,
        mode: 0o750,
        uid: u32::MAX,
        gid: u32::MAX,
    }
}

fn put_req(t: Target, size: u64) -> Request {
    Request::Put {
        target: t,
        size,
        mode: 0o640,
        uid: u32::MAX,
        gid: u32::MAX,
        mtime: MT,
    }
}

/// A listing of everything under `dir` (path, type, size, mtime, mode), to show nothing changed.
fn snapshot(dir: &Path) -> Vec<(Vec<u8>, u32, u64, i64, i64)> {
    let mut v = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            if m.is_dir() {
                stack.push(e.path());
            }
            v.push((
                e.path().as_os_str().as_bytes().to_vec(),
                m.mode(),
                m.size(),
                m.mtime(),
                m.mtime_nsec(),
            ));
        }
    }
    v.sort();
    v
}

fn tmp_files(dir: &Path) -> Vec<Vec<u8>> {
    snapshot(dir)
        .into_iter()
        .map(|s| s.0)
        .filter(|p| {
            let name = Path::new(std::ffi::OsStr::from_bytes(p))
                .file_name()
                .unwrap();
            ocmigrate::agent::write::is_tmp_name(name.as_bytes())
        })
        .collect()
}

#[test]
fn put_round_trip_exact_metadata_and_odd_names() {
    let t = tempfile::tempdir().unwrap();
    let mut c = writer(t.path());
    assert!(c.welcome().writable);
    assert_eq!(done(c.call(&mkdir(p("d")))), 0);
    let body: Vec<u8> = (0..1_500_000u32).map(|i| (i % 251) as u8).collect();
    let long = vec![b'n'; 255];
    let names: Vec<Vec<u8>> = vec![
        b"d/plain.txt".to_vec(),
        [b"d/".as_slice(), &long].concat(),
        b"d/caf\xe9 \xff".to_vec(),
        b"d/line\nbreak".to_vec(),
    ];
    for n in &names {
        let got = c
            .put(
                pb(n),
                body.len() as u64,
                0o4751,
                u32::MAX,
                u32::MAX,
                MT,
                &mut &body[..],
            )
            .unwrap();
        assert_eq!(got, body.len() as u64);
        let path = t.path().join(std::ffi::OsStr::from_bytes(n));
        let m = std::fs::symlink_metadata(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), body, "{n:?}");
        assert_eq!(
            (m.mode() & 0o7777, m.size(), m.mtime(), m.mtime_nsec()),
            (0o4751, body.len() as u64, MT.sec, MT.nsec as i64),
            "{n:?}"
        );
        assert_eq!((m.atime(), m.atime_nsec()), (MT.sec, MT.nsec as i64));
    }
    // The directory's mode is what was asked, whatever the umask.
    let m = std::fs::metadata(t.path().join("d")).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o750);
    // Overwrite: the new content replaces the old under the same name (a new inode).
    let old_ino = std::fs::metadata(t.path().join("d/plain.txt"))
        .unwrap()
        .ino();
    c.put(
        p("d/plain.txt"),
        3,
        0o600,
        u32::MAX,
        u32::MAX,
        MT,
        &mut &b"new"[..],
    )
    .unwrap();
    assert_eq!(std::fs::read(t.path().join("d/plain.txt")).unwrap(), b"new");
    assert_ne!(
        std::fs::metadata(t.path().join("d/plain.txt"))
            .unwrap()
            .ino(),
        old_ino
    );
    // Empty file.
    c.put(
        p("d/empty"),
        0,
        0o644,
        u32::MAX,
        u32::MAX,
        MT,
        &mut &b""[..],
    )
    .unwrap();
    assert_eq!(
        std::fs::metadata(t.path().join("d/empty")).unwrap().len(),
        0
    );
    // Owners: as root, any uid/gid is given.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        c.put(p("d/owned"), 1, 0o644, 12345, 54321, MT, &mut &b"x"[..])
            .unwrap();
        let m = std::fs::metadata(t.path().join("d/owned")).unwrap();
        assert_eq!((m.uid(), m.gid()), (12345, 54321));
        done(c.call(&Request::Mkdir {
            target: p("d"),
            mode: 0o711,
            uid: 777,
            gid: 778,
        }));
        let m = std::fs::metadata(t.path().join("d")).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (777, 778, 0o711));
    }
    // Wrong byte counts: an error, the old file intact, no temporary file left.
    let e = c
        .put(
            p("d/plain.txt"),
            10,
            0o600,
            u32::MAX,
            u32::MAX,
            MT,
            &mut &b"short"[..],
        )
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::BadData));
    let e = c
        .put(
            p("d/plain.txt"),
            2,
            0o600,
            u32::MAX,
            u32::MAX,
            MT,
            &mut &b"long"[..],
        )
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::BadData));
    assert_eq!(std::fs::read(t.path().join("d/plain.txt")).unwrap(), b"new");
    // A directory where the file goes: IsDir; a file where Mkdir wants a directory: Exists.
    done(c.call(&mkdir(p("d/sub"))));
    let e = c
        .put(p("d/sub"), 1, 0o600, u32::MAX, u32::MAX, MT, &mut &b"x"[..])
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::IsDir));
    assert_eq!(code_of(c.call(&mkdir(p("d/plain.txt")))), ErrorCode::Exists);
    // A missing parent: NotFound.
    assert_eq!(code_of(c.call(&mkdir(p("nope/x")))), ErrorCode::NotFound);
    assert!(tmp_files(t.path()).is_empty());
    // SetMeta: mode, mtime, directory mtime after the children.
    done(c.call(&Request::SetMeta {
        target: p("d"),
        mode: Some(0o755),
        uid: None,
        gid: None,
        mtime: Some(Time { sec: 5, nsec: 6 }),
    }));
    let m = std::fs::metadata(t.path().join("d")).unwrap();
    assert_eq!(
        (m.mode() & 0o7777, m.mtime(), m.mtime_nsec()),
        (0o755, 5, 6)
    );
    c.exit().unwrap();
}

#[test]
fn sparse_files_stay_sparse() {
    let t = tempfile::tempdir().unwrap();
    // 64 MiB with 8 KiB of data in the middle and a last byte.
    let size = 64u64 << 20;
    let (mut tx, mut rx) = writer(t.path()).into_split();
    let id = tx.send(&put_req(p("sparse"), size)).unwrap();
    let zeros = vec![0u8; CHUNK];
    let mut sent = 0u64;
    while sent < size {
        let n = (size - sent).min(CHUNK as u64) as usize;
        let mut chunk = zeros[..n].to_vec();
        if sent == 32 << 20 {
            chunk[100..8292].fill(7);
        }
        if sent + n as u64 == size {
            chunk[n - 1] = 9;
        }
        tx.send_data(id, &chunk, false).unwrap();
        sent += n as u64;
    }
    tx.send_end(id).unwrap();
    tx.flush().unwrap();
    let (rid, r) = rx.recv().unwrap();
    assert_eq!(rid, id);
    assert!(matches!(failed(r).unwrap(), Response::Done { bytes, .. } if bytes == size));
    let m = std::fs::metadata(t.path().join("sparse")).unwrap();
    assert_eq!(m.len(), size);
    assert!(
        m.blocks() * 512 <= 256 * 1024,
        "{} KiB allocated for 12 KiB of data: not sparse",
        m.blocks() / 2
    );
    let all = std::fs::read(t.path().join("sparse")).unwrap();
    assert_eq!(all[(32 << 20) + 100], 7);
    assert_eq!(all[(32 << 20) + 8291], 7);
    assert_eq!(all[(32 << 20) + 8292], 0);
    assert_eq!(*all.last().unwrap(), 9);
    assert_eq!(all.iter().filter(|&&b| b != 0).count(), 8192 + 1);
    tx.close().unwrap();
    drop(rx);
}

/// Source agent (read-only) → operator → target agent: chunks the source compressed go to the
/// target unchanged and are decompressed there; incompressible chunks go raw.
#[test]
fn compressed_chunks_are_forwarded_unchanged() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    // Half text (compresses), then incompressible bytes.
    let mut body: Vec<u8> = b"ownCloud data file, line after line. "
        .iter()
        .cycle()
        .take(3 * CHUNK)
        .copied()
        .collect();
    let mut x: u64 = 0x1234_5678_9abc_def1;
    body.extend((0..3 * CHUNK).map(|_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as u8
    }));
    body.extend_from_slice(b"tail");
    std::fs::write(src.path().join("f"), &body).unwrap();
    let s = AgentClient::from_child(
        "agent@source",
        spawn_agent(),
        vec![root_of(src.path())],
        None,
    )
    .unwrap();
    assert!(!s.welcome().writable);
    let (mut stx, mut srx) = s.into_split();
    let (mut ttx, mut trx) = writer(dst.path()).into_split();
    stx.send(&Request::ReadFile {
        target: p("f"),
        offset: 0,
        len: u64::MAX,
        compress: true,
    })
    .unwrap();
    stx.flush().unwrap();
    let meta = match failed(srx.recv().unwrap().1).unwrap() {
        Response::Opened(e) => e,
        r => panic!("{r:?}"),
    };
    let pid = ttx
        .send(&Request::Put {
            target: p("f"),
            size: meta.size,
            mode: meta.mode,
            uid: u32::MAX,
            gid: u32::MAX,
            mtime: meta.mtime,
        })
        .unwrap();
    let (mut packed, mut raw, mut wire) = (0, 0, 0usize);
    loop {
        match failed(srx.recv().unwrap().1).unwrap() {
            Response::Data { bytes, compressed } => {
                assert!(bytes.len() <= MAX_CHUNK);
                wire += bytes.len();
                if compressed {
                    packed += 1;
                } else {
                    raw += 1;
                }
                ttx.send_data(pid, &bytes, compressed).unwrap();
            }
            Response::Done { bytes, changed, .. } => {
                assert_eq!((bytes, changed), (body.len() as u64, false));
                break;
            }
            r => panic!("{r:?}"),
        }
    }
    ttx.send_end(pid).unwrap();
    ttx.flush().unwrap();
    assert!(packed >= 3 && raw >= 3, "compressed {packed}, raw {raw}");
    assert!(
        wire < body.len() * 6 / 10,
        "{wire} bytes on the wire for {}",
        body.len()
    );
    let (id, r) = trx.recv().unwrap();
    assert_eq!(id, pid);
    assert!(matches!(failed(r).unwrap(), Response::Done { .. }));
    assert_eq!(std::fs::read(dst.path().join("f")).unwrap(), body);
    let m = std::fs::metadata(dst.path().join("f")).unwrap();
    assert_eq!(
        (m.mtime(), m.mtime_nsec()),
        (meta.mtime.sec, meta.mtime.nsec as i64)
    );

    // A zstd bomb (a frame that would decompress to 64 MiB) and garbage flagged compressed:
    // BadData, nothing written, and the connection goes on.
    let bomb = zstd::bulk::compress(&vec![0u8; 64 << 20], 19).unwrap();
    assert!(bomb.len() < MAX_CHUNK);
    for bad in [&bomb[..], b"not zstd at all"] {
        let id = ttx.send(&put_req(p("bomb"), 64 << 20)).unwrap();
        ttx.send_data(id, bad, true).unwrap();
        ttx.send_data(id, b"more", false).unwrap(); // dropped without an answer
        ttx.send_end(id).unwrap(); // dropped without an answer
        ttx.flush().unwrap();
        let (rid, r) = trx.recv().unwrap();
        assert_eq!(rid, id);
        assert_eq!(failed(r).unwrap_err().code(), Some(ErrorCode::BadData));
    }
    assert!(!dst.path().join("bomb").exists());
    assert!(tmp_files(dst.path()).is_empty());
    let id = ttx.send(&Request::Stat(p("f"))).unwrap();
    ttx.flush().unwrap();
    assert_eq!(trx.recv().unwrap().0, id);
    stx.close().unwrap();
    ttx.close().unwrap();
    drop((srx, trx));
}

/// Many small files pipelined from one thread while another reads the answers.
#[test]
fn pipelined_puts_from_two_threads() {
    let t = tempfile::tempdir().unwrap();
    let (tx, mut rx): (AgentSender, AgentReceiver) = writer(t.path()).into_split();
    const N: u32 = 3000;
    let sender = std::thread::spawn(move || {
        let mut tx = tx;
        let mut ids = Vec::new();
        ids.push(tx.send(&mkdir(p("many"))).unwrap());
        for i in 0..N {
            let body = format!("file {i}\n").repeat(i as usize % 50);
            let id = tx
                .send(&put_req(
                    pb(format!("many/{i}").as_bytes()),
                    body.len() as u64,
                ))
                .unwrap();
            if !body.is_empty() {
                tx.send_data(id, body.as_bytes(), false).unwrap();
            }
            tx.send_end(id).unwrap();
            ids.push(id);
        }
        tx.flush().unwrap();
        (tx, ids)
    });
    let t0 = Instant::now();
    let mut got = Vec::new();
    for _ in 0..=N {
        let (id, r) = rx.recv().unwrap();
        failed(r).unwrap();
        got.push(id);
    }
    let (tx, ids) = sender.join().unwrap();
    eprintln!("{N} pipelined Puts answered in {:?}", t0.elapsed());
    assert_eq!(got, ids, "answers in request order");
    assert_eq!(
        std::fs::read_dir(t.path().join("many")).unwrap().count(),
        N as usize
    );
    assert_eq!(
        std::fs::read(t.path().join("many/77")).unwrap(),
        "file 77\n".repeat(27).as_bytes()
    );
    tx.close().unwrap();
    drop(rx);
}

/// Two Puts open at once, their Data interleaved.
#[test]
fn interleaved_puts() {
    let t = tempfile::tempdir().unwrap();
    let (mut tx, mut rx) = writer(t.path()).into_split();
    let a = tx.send(&put_req(p("a"), 6)).unwrap();
    let b = tx.send(&put_req(p("b"), 6)).unwrap();
    for (id, part) in [(a, "aaa"), (b, "bbb"), (b, "BBB"), (a, "AAA")] {
        tx.send_data(id, part.as_bytes(), false).unwrap();
    }
    tx.send_end(b).unwrap();
    tx.send_end(a).unwrap();
    tx.flush().unwrap();
    assert_eq!(rx.recv().unwrap().0, b);
    assert_eq!(rx.recv().unwrap().0, a);
    assert_eq!(std::fs::read(t.path().join("a")).unwrap(), b"aaaAAA");
    assert_eq!(std::fs::read(t.path().join("b")).unwrap(), b"bbbBBB");
    // Data and PutEnd for an id that is no open Put: one error, then silence for that id.
    let s = tx.send(&Request::Sync).unwrap();
    tx.send_data(999_999, b"x", false).ok();
    tx.flush().unwrap();
    let (id, r) = rx.recv().unwrap();
    assert_eq!(id, s);
    failed(r).unwrap();
    // 999999 was never sent: the receiver calls that a broken agent.
    assert!(rx.recv().unwrap_err().is_fatal());
}

fn symlink_out(root: &Path, outside: &Path, name: &str) {
    std::os::unix::fs::symlink(outside, root.join(name)).unwrap();
}

#[test]
fn writes_never_follow_a_symlink() {
    let t = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir(outside.path().join("sub")).unwrap();
    std::fs::write(outside.path().join("victim"), b"keep me").unwrap();
    std::fs::write(outside.path().join("sub/x"), b"keep me too").unwrap();
    symlink_out(t.path(), outside.path(), "out");
    std::fs::create_dir(t.path().join("d")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("victim"), t.path().join("d/lvictim")).unwrap();
    let before = snapshot(outside.path());
    let mut c = writer(t.path());
    let sym = ErrorCode::Symlink;
    // Through the symlink as a parent component: refused.
    let e = c
        .put(
            p("out/victim"),
            1,
            0o644,
            u32::MAX,
            u32::MAX,
            MT,
            &mut &b"x"[..],
        )
        .unwrap_err();
    assert_eq!(e.code(), Some(sym));
    let e = c
        .put(
            p("out/new"),
            1,
            0o644,
            u32::MAX,
            u32::MAX,
            MT,
            &mut &b"x"[..],
        )
        .unwrap_err();
    assert_eq!(e.code(), Some(sym));
    assert_eq!(code_of(c.call(&mkdir(p("out/newdir")))), sym);
    assert_eq!(code_of(c.call(&mkdir(p("out/sub")))), sym);
    assert_eq!(
        code_of(c.call(&Request::Remove {
            target: p("out/sub")
        })),
        sym
    );
    assert_eq!(
        code_of(c.call(&Request::Remove {
            target: p("out/victim")
        })),
        sym
    );
    assert_eq!(
        code_of(c.call(&Request::Symlink {
            target: p("out/l"),
            link: b"x".to_vec(),
            uid: u32::MAX,
            gid: u32::MAX,
            mtime: MT
        })),
        sym
    );
    assert_eq!(
        code_of(c.call(&Request::Link {
            target: p("d/hl"),
            existing: RelPath::new("out/victim").unwrap()
        })),
        sym
    );
    assert_eq!(
        code_of(c.call(&Request::SetMeta {
            target: p("out/victim"),
            mode: Some(0o777),
            uid: None,
            gid: None,
            mtime: None
        })),
        sym
    );
    // Cleanup on the link: nothing to do there (it is not followed).
    assert_eq!(done(c.call(&Request::Cleanup { target: p("out") })), 0);
    // The symlink itself as the last component: SetMeta changes the link, not its target;
    // Mkdir is refused (not a directory); Put replaces the link, not the file it points to.
    done(c.call(&Request::SetMeta {
        target: p("d/lvictim"),
        mode: Some(0o777),
        uid: None,
        gid: None,
        mtime: Some(Time { sec: 42, nsec: 1 }),
    }));
    let lm = std::fs::symlink_metadata(t.path().join("d/lvictim")).unwrap();
    assert_eq!((lm.mtime(), lm.mtime_nsec()), (42, 1));
    assert_eq!(code_of(c.call(&mkdir(p("out")))), ErrorCode::Exists);
    c.put(
        p("d/lvictim"),
        3,
        0o600,
        u32::MAX,
        u32::MAX,
        MT,
        &mut &b"new"[..],
    )
    .unwrap();
    assert!(std::fs::symlink_metadata(t.path().join("d/lvictim"))
        .unwrap()
        .is_file());
    // Remove of the link `out` removes the link only.
    assert_eq!(done(c.call(&Request::Remove { target: p("out") })), 1);
    assert!(!t.path().join("out").exists());
    assert_eq!(
        snapshot(outside.path()),
        before,
        "nothing outside the root changed"
    );
    assert_eq!(
        std::fs::read(outside.path().join("victim")).unwrap(),
        b"keep me"
    );
    c.exit().unwrap();
}

#[test]
fn remove_tree_with_symlink_to_outside() {
    let t = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(outside.path().join("a/b")).unwrap();
    std::fs::write(outside.path().join("a/b/f"), b"outside").unwrap();
    let before = snapshot(outside.path());
    // A tree with files, a deep chain, an empty folder, links out (to a dir and a file).
    let tree = t.path().join("tree");
    std::fs::create_dir_all(tree.join("x/y/z")).unwrap();
    std::fs::create_dir_all(tree.join("empty")).unwrap();
    std::fs::write(tree.join("x/y/z/f"), b"1").unwrap();
    std::fs::write(tree.join("x/g"), b"2").unwrap();
    std::os::unix::fs::symlink(outside.path(), tree.join("x/out")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("a/b/f"), tree.join("x/y/outf")).unwrap();
    // 1500 levels: more than the usual limit of 1024 open descriptors, one per level.
    let mut deep = tree.join("deep");
    for _ in 0..1500 {
        deep = deep.join("d");
    }
    std::fs::create_dir_all(&deep).unwrap();
    // The agent starts with a soft limit of 256 descriptors (it raises it to the hard one).
    let child = Command::new("sh")
        .args(["-c", "ulimit -Sn 256 && exec \"$0\" agent --writable", EXE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut c =
        AgentClient::from_child_with("t", child, vec![root_of(t.path())], None, true).unwrap();
    let n = done(c.call(&Request::Remove { target: p("tree") }));
    // x y z, f g, out outf, empty, deep and 1500 d, tree
    assert_eq!(n, 3 + 2 + 2 + 1 + 1501 + 1, "entries removed");
    assert!(!tree.exists());
    assert_eq!(snapshot(outside.path()), before);
    // Missing: Done with 0, also with a missing parent.
    assert_eq!(done(c.call(&Request::Remove { target: p("tree") })), 0);
    assert_eq!(
        done(c.call(&Request::Remove {
            target: p("no/such/x")
        })),
        0
    );
    // The root itself: refused.
    assert_eq!(
        code_of(c.call(&Request::Remove {
            target: Target::new(0, RelPath::root())
        })),
        ErrorCode::BadRequest
    );
    c.exit().unwrap();
}

#[test]
fn symlinks_and_hard_links() {
    let t = tempfile::tempdir().unwrap();
    let mut c = writer(t.path());
    c.put(p("f"), 2, 0o644, u32::MAX, u32::MAX, MT, &mut &b"hi"[..])
        .unwrap();
    done(c.call(&Request::Symlink {
        target: p("l"),
        link: b"../../etc/passwd\n\xff".to_vec(),
        uid: u32::MAX,
        gid: u32::MAX,
        mtime: MT,
    }));
    let lm = std::fs::symlink_metadata(t.path().join("l")).unwrap();
    assert!(lm.file_type().is_symlink());
    assert_eq!((lm.mtime(), lm.mtime_nsec()), (MT.sec, MT.nsec as i64));
    assert_eq!(
        std::fs::read_link(t.path().join("l"))
            .unwrap()
            .as_os_str()
            .as_bytes(),
        b"../../etc/passwd\n\xff"
    );
    // Replace it with another target.
    done(c.call(&Request::Symlink {
        target: p("l"),
        link: b"f".to_vec(),
        uid: u32::MAX,
        gid: u32::MAX,
        mtime: MT,
    }));
    assert_eq!(
        std::fs::read_link(t.path().join("l")).unwrap(),
        Path::new("f")
    );
    // Hard links share the inode; linking again (same inode) leaves no temporary name.
    for _ in 0..2 {
        done(c.call(&Request::Link {
            target: p("h"),
            existing: RelPath::new("f").unwrap(),
        }));
    }
    let (f, h) = (
        std::fs::metadata(t.path().join("f")).unwrap(),
        std::fs::metadata(t.path().join("h")).unwrap(),
    );
    assert_eq!((f.ino(), f.nlink()), (h.ino(), 2));
    // A hard link to a symlink links the symlink itself.
    done(c.call(&Request::Link {
        target: p("hl"),
        existing: RelPath::new("l").unwrap(),
    }));
    assert!(std::fs::symlink_metadata(t.path().join("hl"))
        .unwrap()
        .file_type()
        .is_symlink());
    done(c.call(&mkdir(p("dir"))));
    assert_eq!(
        code_of(c.call(&Request::Link {
            target: p("hd"),
            existing: RelPath::new("dir").unwrap()
        })),
        ErrorCode::NotAFile
    );
    // A symlink where a directory stands: IsDir.
    assert_eq!(
        code_of(c.call(&Request::Symlink {
            target: p("dir"),
            link: b"x".to_vec(),
            uid: u32::MAX,
            gid: u32::MAX,
            mtime: MT
        })),
        ErrorCode::IsDir
    );
    assert!(tmp_files(t.path()).is_empty());
    c.exit().unwrap();
}

/// A read-only connection refuses every write, whether the Hello or the process said so.
#[test]
fn read_only_refuses_every_write() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("f"), b"x").unwrap();
    let before = snapshot(t.path());
    let writes = vec![
        put_req(p("new"), 1),
        mkdir(p("d")),
        Request::Symlink {
            target: p("l"),
            link: b"f".to_vec(),
            uid: u32::MAX,
            gid: u32::MAX,
            mtime: MT,
        },
        Request::Link {
            target: p("h"),
            existing: RelPath::new("f").unwrap(),
        },
        Request::SetMeta {
            target: p("f"),
            mode: Some(0o777),
            uid: None,
            gid: None,
            mtime: Some(MT),
        },
        Request::Remove { target: p("f") },
        Request::Cleanup { target: p("") },
        Request::Sync,
    ];
    // 1. Started --writable, but the Hello says read-only.
    // 2. Started without --writable: the agent grants read-only even when asked, and the
    //    client refuses such a connection for writing.
    let e = AgentClient::from_child_with("src", spawn_agent(), vec![root_of(t.path())], None, true)
        .err()
        .expect("a read-only agent must not pass for a writable one");
    assert!(e.to_string().contains("granted a read-only"), "{e}");
    for child in [spawn_writable(), spawn_agent()] {
        let c = AgentClient::from_child("src", child, vec![root_of(t.path())], None).unwrap();
        assert!(!c.welcome().writable);
        let (mut tx, mut rx) = c.into_split();
        let mut ids = Vec::new();
        for w in &writes {
            ids.push(tx.send(w).unwrap());
            if matches!(w, Request::Put { .. }) {
                tx.send_data(*ids.last().unwrap(), b"x", false).unwrap();
                tx.send_end(*ids.last().unwrap()).unwrap();
            }
        }
        tx.send(&Request::Accounts).unwrap();
        tx.flush().unwrap();
        for (w, id) in writes.iter().zip(&ids) {
            let (rid, r) = rx.recv().unwrap();
            assert_eq!(rid, *id, "{w:?}");
            assert_eq!(
                failed(r).unwrap_err().code(),
                Some(ErrorCode::ReadOnly),
                "{w:?}"
            );
        }
        // Reads still work on a read-only connection.
        match failed(rx.recv().unwrap().1).unwrap() {
            Response::AccountList { users, groups } => {
                assert!(users.iter().any(|u| u.id == 0 && u.name == "root"));
                assert!(!groups.is_empty());
            }
            r => panic!("{r:?}"),
        }
        tx.close().unwrap();
    }
    // And with raw frames: a writable Hello to an agent not started --writable.
    let mut hello = Hello::ours(vec![root_of(t.path())]);
    hello.writable = true;
    let mut input = hello.into_frame().encode().unwrap();
    input.extend(mkdir(p("raw")).into_frame(1).encode().unwrap());
    let out = run_with_input(&input);
    let mut r = FrameReader::new(&out.stdout[..]);
    let w = Welcome::from_frame(&r.read_frame().unwrap().unwrap()).unwrap();
    assert!(!w.writable);
    let f = r.read_frame().unwrap().unwrap();
    assert_eq!(f.kind, Kind::Error);
    assert!(matches!(
        Response::from_frame(&f).unwrap(),
        Response::Error {
            code: ErrorCode::ReadOnly,
            ..
        }
    ));
    assert_eq!(snapshot(t.path()), before, "nothing changed");
}

/// `..` and absolute paths in write requests: refused by the decoder, nothing changes.
#[test]
fn escaping_paths_are_refused() {
    let parent = tempfile::tempdir().unwrap();
    let t = parent.path().join("root");
    std::fs::create_dir(&t).unwrap();
    let before = snapshot(parent.path());
    let mut hello = Hello::ours(vec![root_of(&t)]);
    hello.writable = true;
    let mut input = hello.into_frame().encode().unwrap();
    let mut n = 0;
    for bad in [
        &b"../escaped"[..],
        b"/tmp/escaped",
        b"a/../../escaped",
        b"./x",
        b"a//b",
    ] {
        let mut w = ocmigrate::agent::wire::Put::new();
        w.u16(0).bytes(bad).u32(0o755).u32(0).u32(0);
        n += 1;
        input.extend(frame::Frame::new(Kind::Mkdir, n, w.0).encode().unwrap());
        let mut w = ocmigrate::agent::wire::Put::new();
        w.u16(0).bytes(bad);
        n += 1;
        input.extend(frame::Frame::new(Kind::Remove, n, w.0).encode().unwrap());
    }
    let mut child = spawn_writable();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&input).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let mut r = FrameReader::new(&out.stdout[..]);
    assert!(
        Welcome::from_frame(&r.read_frame().unwrap().unwrap())
            .unwrap()
            .writable
    );
    for i in 1..=n {
        let f = r.read_frame().unwrap().unwrap();
        assert_eq!(f.id, i);
        assert!(matches!(
            Response::from_frame(&f).unwrap(),
            Response::Error {
                code: ErrorCode::BadRequest,
                ..
            }
        ));
    }
    assert_eq!(snapshot(parent.path()), before);
}

/// kill -9 of the agent in the middle of a Put: the old file is intact, a temporary file is
/// left, and Cleanup (from a new agent) removes it.
#[test]
fn killed_during_put_then_cleanup() {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("a/b")).unwrap();
    std::fs::write(t.path().join("a/b/f"), b"old content").unwrap();
    let child = spawn_writable();
    let pid = child.id();
    let c = AgentClient::from_child_with("t", child, vec![root_of(t.path())], None, true).unwrap();
    let (mut tx, mut rx) = c.into_split();
    let id = tx.send(&put_req(p("a/b/f"), 10 << 20)).unwrap();
    tx.send_data(id, &vec![1u8; CHUNK], false).unwrap();
    // A Stat after the data: its answer proves the data was handled.
    let s = tx.send(&Request::Stat(p("a"))).unwrap();
    tx.flush().unwrap();
    assert_eq!(rx.recv().unwrap().0, s);
    // SAFETY: killing the child we started, by its pid.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    assert!(rx.recv().unwrap_err().is_fatal());
    drop((tx, rx));
    assert_eq!(
        std::fs::read(t.path().join("a/b/f")).unwrap(),
        b"old content"
    );
    let left = tmp_files(t.path());
    assert_eq!(left.len(), 1, "{left:?}");
    // A stray look-alike that is not ours stays.
    std::fs::write(t.path().join("a/.ocm-notours.tmp"), b"x").unwrap();
    let mut c = writer(t.path());
    assert_eq!(done(c.call(&Request::Cleanup { target: p("") })), 1);
    assert!(tmp_files(t.path()).is_empty());
    assert!(t.path().join("a/.ocm-notours.tmp").exists());
    assert_eq!(
        std::fs::read(t.path().join("a/b/f")).unwrap(),
        b"old content"
    );
    assert_eq!(done(c.call(&Request::Cleanup { target: p("") })), 0);
    c.exit().unwrap();
}

/// A clean end of the connection with a Put still open removes its temporary file.
#[test]
fn open_put_at_close_leaves_nothing() {
    let t = tempfile::tempdir().unwrap();
    let (mut tx, rx) = writer(t.path()).into_split();
    let id = tx.send(&put_req(p("f"), 100)).unwrap();
    tx.send_data(id, b"partial", false).unwrap();
    tx.close().unwrap();
    drop(rx); // reaps the agent
    assert!(tmp_files(t.path()).is_empty());
    assert!(!t.path().join("f").exists());
}

/// Over ssh in the lab: the target's agent writes, also over an ssh connection of its own
/// (`AgentChannel::Dedicated`, a second ssh process beside the master); the source's agent
/// refuses every write even when its Hello asks.
#[test]
fn lab_target_writes_over_dedicated_ssh() {
    let lab = Lab::get();
    use ocmigrate::config::Side;
    use ocmigrate::host::{AgentChannel, ConnectOptions, Host, SourceHost, TargetHost};
    let opts = ConnectOptions {
        ssh_config: Some(lab.var("LAB_SSH_CONFIG").into()),
        control_dir: None,
    };
    let side = |host: &str| Side::Ssh {
        user: Some("root".into()),
        host: host.into(),
        port: None,
        root: "/var/www/owncloud".into(),
    };
    let bin = AgentBinary::from_path(Path::new(EXE)).unwrap();
    lab.sh("new", "rm -rf /tmp/agent-w && mkdir -p /tmp/agent-w");
    lab.sh(
        "old",
        "rm -rf /tmp/agent-r && mkdir -p /tmp/agent-r && echo keep > /tmp/agent-r/f",
    );
    let target = TargetHost::new(
        Host::connect("target", &side("new"), &opts).unwrap(),
        "/var/www/owncloud".into(),
    );
    let source = SourceHost::new(
        Host::connect("source", &side("old"), &opts).unwrap(),
        "/var/www/owncloud".into(),
    );
    let root = || vec![b"/tmp/agent-w".to_vec()];
    let (mut shared, inst) = deploy::start(&target, &bin, root()).unwrap();
    let t0 = Instant::now();
    let mut own = deploy::connect(&target, &bin, &inst, root(), AgentChannel::Dedicated).unwrap();
    eprintln!("dedicated ssh agent: started in {:?}", t0.elapsed());
    assert!(shared.welcome().writable && own.welcome().writable);
    assert_ne!(shared.welcome().pid, own.welcome().pid);
    for (c, name) in [(&mut shared, "a"), (&mut own, "b")] {
        c.put(p(name), 5, 0o640, 33, 33, MT, &mut &b"hello"[..])
            .unwrap();
    }
    let listed = lab.sh(
        "new",
        "cd /tmp/agent-w && stat -c '%n %s %a %u:%g %.9Y' a b && ls -A | wc -l",
    );
    assert_eq!(
        listed.trim(),
        "a 5 640 33:33 1234567890.987654321\nb 5 640 33:33 1234567890.987654321\n2"
    );
    // The dedicated agent's ssh does not go through the master: its process says so.
    let ps = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&ps.stdout)
            .lines()
            .any(|l| l.starts_with("ssh ")
                && l.contains("ControlPath=none")
                && l.contains("--writable")),
        "no ssh process of its own for the dedicated agent"
    );
    own.exit().unwrap();
    shared.exit().unwrap();

    // The source: read-only whatever the client asks.
    let inst = deploy::start(&source, &bin, vec![b"/tmp/agent-r".to_vec()])
        .unwrap()
        .1;
    let child = source.spawn_agent(&inst, AgentChannel::Dedicated).unwrap();
    let e = AgentClient::from_child_with(
        "src",
        child,
        vec![b"/tmp/agent-r".to_vec()],
        Some(bin.blake3),
        true,
    )
    .err()
    .expect("the source's agent must not grant writes");
    assert!(e.to_string().contains("granted a read-only"), "{e}");
    let (mut c, _) = deploy::start(&source, &bin, vec![b"/tmp/agent-r".to_vec()]).unwrap();
    assert!(!c.welcome().writable);
    assert_eq!(
        c.call(&Request::Remove { target: p("f") })
            .unwrap_err()
            .code(),
        Some(ErrorCode::ReadOnly)
    );
    c.exit().unwrap();
    assert_eq!(lab.sh("old", "cat /tmp/agent-r/f").trim(), "keep");
    lab.sh("new", "rm -rf /tmp/agent-w");
    lab.sh("old", "rm -rf /tmp/agent-r");
}

/// Throughput of the local agents (no ssh): `cargo test --release --test agent bench_local --
/// --ignored --nocapture`. Many small files pipelined into a target agent; one large file read
/// by a source agent and forwarded to a target agent, raw and compressed.
#[test]
#[ignore = "a throughput measurement, not a check: run it by hand (see above)"]
fn bench_local_agents() {
    let src = tempfile::tempdir_in("/var/tmp").unwrap();
    let dst = tempfile::tempdir_in("/var/tmp").unwrap();
    // 1. 20,000 files of 8 KiB, pipelined.
    let n = 20_000u32;
    let body = vec![b'x'; 8192];
    let (mut tx, mut rx) = writer(dst.path()).into_split();
    let t0 = Instant::now();
    let reader = std::thread::spawn(move || {
        for _ in 0..=n {
            failed(rx.recv().unwrap().1).unwrap();
        }
        rx
    });
    tx.send(&mkdir(p("small"))).unwrap();
    for i in 0..n {
        let id = tx
            .send(&put_req(
                pb(format!("small/{i}").as_bytes()),
                body.len() as u64,
            ))
            .unwrap();
        tx.send_data(id, &body, false).unwrap();
        tx.send_end(id).unwrap();
    }
    tx.flush().unwrap();
    let rx = reader.join().unwrap();
    let dt = t0.elapsed();
    eprintln!(
        "bench: {n} × 8 KiB Puts pipelined: {dt:?}, {:.0} files/s",
        n as f64 / dt.as_secs_f64()
    );
    tx.close().unwrap();
    drop(rx);

    // 2. One 512 MiB file, source agent → operator → target agent.
    let size = 512usize << 20;
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut big = Vec::with_capacity(size);
    while big.len() < size {
        // half text-like (compressible), half random, in 1 MiB stretches
        let text = (big.len() >> 20) % 2 == 0;
        for _ in 0..(1 << 17) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let w = if text {
                (x % 26 + 97) * 0x0101_0101_0101_0101
            } else {
                x
            };
            big.extend_from_slice(&w.to_le_bytes());
        }
    }
    std::fs::write(src.path().join("big"), &big).unwrap();
    drop(big);
    for compress in [false, true] {
        let s =
            AgentClient::from_child("s", spawn_agent(), vec![root_of(src.path())], None).unwrap();
        let (mut stx, mut srx) = s.into_split();
        let (mut ttx, mut trx) = writer(dst.path()).into_split();
        let t0 = Instant::now();
        stx.send(&Request::ReadFile {
            target: p("big"),
            offset: 0,
            len: u64::MAX,
            compress,
        })
        .unwrap();
        stx.flush().unwrap();
        let meta = match failed(srx.recv().unwrap().1).unwrap() {
            Response::Opened(e) => e,
            r => panic!("{r:?}"),
        };
        let id = ttx.send(&put_req(p("big"), meta.size)).unwrap();
        let mut wire = 0usize;
        loop {
            match failed(srx.recv().unwrap().1).unwrap() {
                Response::Data { bytes, compressed } => {
                    wire += bytes.len();
                    ttx.send_data(id, &bytes, compressed).unwrap();
                }
                Response::Done { .. } => break,
                r => panic!("{r:?}"),
            }
        }
        ttx.send_end(id).unwrap();
        ttx.flush().unwrap();
        failed(trx.recv().unwrap().1).unwrap();
        let dt = t0.elapsed();
        eprintln!(
            "bench: 512 MiB forwarded, compress={compress}: {dt:?}, {:.0} MB/s, {} MiB on the wire",
            size as f64 / dt.as_secs_f64() / 1e6,
            wire >> 20
        );
        stx.close().unwrap();
        ttx.close().unwrap();
        drop((srx, trx));
    }
}

/// The names of a process's threads.
fn thread_names(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .collect()
}

#[test]
fn a_writable_agent_starts_its_writeback_at_the_first_data_it_writes() {
    // The flushes themselves (one per 64 MiB written) are the unit test
    // `writeback_flushes_once_per_share_of_bytes_written`; here, that the agent starts them.
    let t = tempfile::tempdir().unwrap();
    let child = spawn_writable();
    let pid = child.id();
    let mut c =
        AgentClient::from_child_with("agent@target", child, vec![root_of(t.path())], None, true)
            .unwrap();
    let mut put = |path: &str, data: &[u8]| {
        let size = data.len() as u64;
        c.put(p(path), size, 0o644, u32::MAX, u32::MAX, MT, &mut &data[..])
            .unwrap()
    };
    put("empty", b"");
    assert!(
        !thread_names(pid).iter().any(|n| n == "writeback"),
        "no bytes written yet: {:?}",
        thread_names(pid)
    );
    put("f", b"abc");
    // A thread names itself once it runs: until then it shows the process's name.
    let writeback_threads = || {
        let t0 = std::time::Instant::now();
        loop {
            let names = thread_names(pid);
            let n = names.iter().filter(|n| *n == "writeback").count();
            if n > 0 || t0.elapsed() > std::time::Duration::from_secs(10) {
                return (n, names);
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    };
    let (n, names) = writeback_threads();
    assert_eq!(n, 1, "{names:?}");
    // Tried once: more data starts no second thread (given 200 ms to name itself).
    put("g", b"def");
    std::thread::sleep(std::time::Duration::from_millis(200));
    let (n, names) = writeback_threads();
    assert_eq!(n, 1, "{names:?}");
}

/// Whether every page of the file is in the page cache (`mincore` on a mapping of it).
fn resident(path: &Path) -> bool {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path).unwrap();
    let len = f.metadata().unwrap().len() as usize;
    let page = 4096;
    let mut vec = vec![0u8; len.div_ceil(page)];
    // SAFETY: a read-only shared mapping of an open file, unmapped before return; `vec` has a
    // byte per page of it.
    unsafe {
        let m = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        );
        assert_ne!(m, libc::MAP_FAILED);
        assert_eq!(libc::mincore(m, len, vec.as_mut_ptr()), 0);
        libc::munmap(m, len);
    }
    vec.iter().all(|b| b & 1 == 1)
}

#[test]
fn the_agent_asks_the_disk_for_the_files_requested_behind_the_one_it_reads() {
    // Twelve files of 64 KiB, written, flushed and dropped from the page cache; then the
    // operator asks for a big file first and the twelve after it, and reads no answer. The agent
    // stops inside the big file (its stdout is full); the twelve must reach the page cache all
    // the same, by its read-ahead, not by their reads.
    use std::os::fd::AsRawFd;
    // Beside the build, on a disk: a tmpfs /tmp keeps every page in memory.
    let t = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    std::fs::write(t.path().join("big"), vec![7u8; 8 << 20]).unwrap();
    let names: Vec<String> = (0..12).map(|i| format!("f{i:02}")).collect();
    for n in &names {
        let path = t.path().join(n);
        let data: Vec<u8> = (0..64 * 1024u32).map(|i| (i * 7 + 1) as u8).collect();
        let f = std::fs::File::create(&path).unwrap();
        (&f).write_all(&data).unwrap();
        f.sync_all().unwrap();
        // SAFETY: a valid descriptor; drops the file's clean pages from the cache.
        unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    }
    if let Some(n) = names.iter().find(|n| resident(&t.path().join(n))) {
        panic!("{n} stays in the page cache after POSIX_FADV_DONTNEED: this file system ({:?}) cannot show read-ahead", t.path());
    }
    let child = spawn_agent();
    let pid = child.id();
    let c = AgentClient::from_child("agent@source", child, vec![root_of(t.path())], None).unwrap();
    let (mut tx, rx) = c.into_split();
    let read = |name: &str| Request::ReadFile {
        target: p(name),
        offset: 0,
        len: u64::MAX,
        compress: false,
    };
    tx.send(&read("big")).unwrap();
    for n in &names {
        tx.send(&read(n)).unwrap();
    }
    tx.flush().unwrap();
    let t0 = Instant::now();
    let cold = || {
        names
            .iter()
            .filter(|n| !resident(&t.path().join(n)))
            .cloned()
            .collect::<Vec<_>>()
    };
    while !cold().is_empty() && t0.elapsed() < std::time::Duration::from_secs(10) {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(cold(), Vec::<String>::new(), "not read ahead");
    assert!(
        thread_names(pid).iter().any(|n| n == "readahead"),
        "{:?}",
        thread_names(pid)
    );
    // No request after the big file was answered: its 8 MiB cannot pass the agent's stdout (a
    // pipe of 64 KiB and a buffer of 576 KiB) while nobody reads it.
    drop(rx);
    drop(tx);
}
