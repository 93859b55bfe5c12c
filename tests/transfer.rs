//! The transfer engine end to end, on local sides (absolute paths, so no lab): `ocmigrate sync
//! --from A --to B` and `ocmigrate verify`, checked by an independent walker written here
//! (`std::fs::symlink_metadata`, not the engine's code): every attribute equal, a second sync
//! sends nothing, a delta sends exactly the delta, every edge case on its own, unreadable files,
//! files changing while copied, and kill -9 of the operator or of an agent at several moments
//! followed by a resume that sends only what was not finished and leaves no temporary file.

mod common;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_ocmigrate");

// ---------------------------------------------------------------------------------------------
// The independent walker

/// Everything the engine must carry, as seen by `lstat` through std.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Attr {
    kind: char,
    size: u64,
    mtime: (i64, i64),
    mode: u32,
    uid: u32,
    gid: u32,
    link: Vec<u8>,
    hash: Option<[u8; 32]>,
    /// The first path (in sort order) of this file's inode in the tree, when it has several.
    group: Option<Vec<u8>>,
}

fn walk(root: &Path) -> BTreeMap<Vec<u8>, Attr> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), Vec<Vec<u8>>> = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let full = root.join(&rel);
        let m = std::fs::symlink_metadata(&full).unwrap();
        let ft = m.file_type();
        let kind = if ft.is_dir() {
            'd'
        } else if ft.is_symlink() {
            'l'
        } else if ft.is_file() {
            'f'
        } else {
            '?'
        };
        let key = rel.as_os_str().as_bytes().to_vec();
        if kind == 'd' {
            for e in std::fs::read_dir(&full).unwrap() {
                stack.push(rel.join(e.unwrap().file_name()));
            }
        }
        if kind == 'f' && m.nlink() > 1 {
            inodes
                .entry((m.dev(), m.ino()))
                .or_default()
                .push(key.clone());
        }
        out.insert(
            key,
            Attr {
                kind,
                size: if kind == 'd' { 0 } else { m.size() },
                mtime: (m.mtime(), m.mtime_nsec()),
                mode: m.mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
                link: if kind == 'l' {
                    std::fs::read_link(&full)
                        .unwrap()
                        .as_os_str()
                        .as_bytes()
                        .to_vec()
                } else {
                    vec![]
                },
                hash: (kind == 'f')
                    .then(|| *blake3::hash(&std::fs::read(&full).unwrap()).as_bytes()),
                group: None,
            },
        );
    }
    for paths in inodes.values() {
        if paths.len() > 1 {
            let first = paths.iter().min().unwrap().clone();
            for p in paths {
                out.get_mut(p).unwrap().group = Some(first.clone());
            }
        }
    }
    out
}

fn show(p: &[u8]) -> String {
    String::from_utf8_lossy(p).into_owned()
}

/// Every entry and attribute equal; the roots' own attributes too.
fn assert_same(a: &Path, b: &Path) {
    let (x, y) = (walk(a), walk(b));
    let mut diffs = Vec::new();
    for (p, s) in &x {
        match y.get(p) {
            None => diffs.push(format!("missing on the target: {}", show(p))),
            Some(t) if t != s => diffs.push(format!("{}: {s:?} != {t:?}", show(p))),
            _ => {}
        }
    }
    for p in y.keys().filter(|p| !x.contains_key(*p)) {
        diffs.push(format!("extra on the target: {}", show(p)));
    }
    assert!(
        diffs.is_empty(),
        "{} difference(s):\n{}",
        diffs.len(),
        diffs[..diffs.len().min(20)].join("\n")
    );
}

fn temp_files(root: &Path) -> Vec<String> {
    walk(root)
        .keys()
        .filter(|p| {
            let name = p.rsplit(|&b| b == b'/').next().unwrap();
            name.starts_with(b".ocm-") && name.ends_with(b".tmp")
        })
        .map(|p| show(p))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Running the binary

struct Run {
    code: i32,
    report: serde_json::Value,
    stderr: String,
}

fn sync_args(a: &Path, b: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(EXE);
    c.arg("sync")
        .arg("--from")
        .arg(a)
        .arg("--to")
        .arg(b)
        .arg("--json")
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn finish(o: std::process::Output) -> Run {
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let report = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == "done")
        .unwrap_or(serde_json::Value::Null);
    Run {
        code: o.status.code().unwrap_or(-1),
        report,
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn sync(a: &Path, b: &Path, extra: &[&str]) -> Run {
    finish(sync_args(a, b, extra).output().unwrap())
}

/// A sync that must succeed; its report.
fn sync_ok(a: &Path, b: &Path) -> serde_json::Value {
    let r = sync(a, b, &[]);
    assert_eq!(r.code, 0, "sync failed: {}\n{}", r.stderr, r.report);
    r.report
}

fn verify(a: &Path, b: &Path, content: bool) -> (i32, String) {
    let mut c = Command::new(EXE);
    c.arg("verify").arg("--from").arg(a).arg("--to").arg(b);
    if content {
        c.arg("--content");
    }
    let o = c.output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
    )
}

fn n(v: &serde_json::Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("no {k} in {v}"))
}

// ---------------------------------------------------------------------------------------------
// Making trees

/// A small, seeded generator (xorshift64*).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

fn cpath(p: &Path) -> std::ffi::CString {
    std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap()
}

/// Set atime and mtime (nanoseconds) without following a symlink.
fn set_mtime(p: &Path, sec: i64, nsec: i64) {
    let ts = [
        libc::timespec {
            tv_sec: sec,
            tv_nsec: nsec,
        },
        libc::timespec {
            tv_sec: sec,
            tv_nsec: nsec,
        },
    ];
    // SAFETY: valid C string and two timespecs.
    let r = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            cpath(p).as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(r, 0, "utimensat {}", p.display());
}

fn lchown(p: &Path, uid: u32, gid: u32) {
    // SAFETY: valid C string.
    assert_eq!(unsafe { libc::lchown(cpath(p).as_ptr(), uid, gid) }, 0);
}

fn write(p: &Path, data: &[u8]) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

/// Give every folder a seeded mtime, deepest first (writing into a folder moves its mtime).
fn fix_dir_times(root: &Path, rng: &mut Rng) {
    let mut dirs: Vec<Vec<u8>> = walk(root)
        .into_iter()
        .filter(|(_, a)| a.kind == 'd')
        .map(|(p, _)| p)
        .collect();
    dirs.sort_by_key(|p| {
        std::cmp::Reverse(p.iter().filter(|&&b| b == b'/').count() + p.len().min(1))
    });
    for d in dirs {
        let p = root.join(OsStr::from_bytes(&d));
        set_mtime(
            &p,
            1_500_000_000 + rng.below(100_000_000) as i64,
            rng.below(1_000_000_000) as i64,
        );
    }
}

/// A seeded tree with every edge case mixed in.
fn random_tree(root: &Path, seed: u64, files: usize) {
    let mut rng = Rng(seed | 1);
    std::fs::create_dir_all(root).unwrap();
    let mut dirs = vec![PathBuf::new()];
    for i in 0..files {
        // sometimes a new folder under a random existing one
        if rng.below(6) == 0 {
            let parent = dirs[rng.below(dirs.len() as u64) as usize].clone();
            let d = parent.join(format!("d{i}"));
            std::fs::create_dir_all(root.join(&d)).unwrap();
            dirs.push(d);
        }
        let dir = dirs[rng.below(dirs.len() as u64) as usize].clone();
        let mut name = format!("f{i}").into_bytes();
        match rng.below(10) {
            0 => name.extend_from_slice(b"-caf\xe9"), // not UTF-8
            1 => name.extend_from_slice(b"\nline"),
            2 => name.extend_from_slice(" space é ü".as_bytes()),
            _ => {}
        }
        let p = root.join(&dir).join(OsStr::from_bytes(&name));
        let size = match rng.below(20) {
            0 => 0,
            1 => 100_000 + rng.below(600_000) as usize,
            _ => rng.below(16_384) as usize,
        };
        let data = if rng.below(3) == 0 {
            vec![b'a'; size] // compressible
        } else {
            rng.bytes(size)
        };
        write(&p, &data);
        let mode = [0o644, 0o600, 0o640, 0o755, 0o444][rng.below(5) as usize];
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        if rng.below(8) == 0 {
            lchown(&p, 1000 + rng.below(3) as u32, 2000 + rng.below(3) as u32);
        }
        set_mtime(
            &p,
            1_400_000_000 + rng.below(300_000_000) as i64,
            rng.below(1_000_000_000) as i64,
        );
        match rng.below(25) {
            0 => {
                let l = root.join(&dir).join(format!("hl{i}"));
                std::fs::hard_link(&p, l).unwrap();
            }
            1 => {
                let l = root.join(&dir).join(format!("sl{i}"));
                std::os::unix::fs::symlink(OsStr::from_bytes(&name), &l).unwrap();
                set_mtime(&l, 1_600_000_000, 123);
            }
            2 => {
                let l = root.join(&dir).join(format!("dangling{i}"));
                std::os::unix::fs::symlink("../nowhere/at/all", &l).unwrap();
            }
            3 => {
                let l = root.join(&dir).join(format!("outside{i}"));
                std::os::unix::fs::symlink("/etc", &l).unwrap();
            }
            _ => {}
        }
    }
    std::fs::create_dir_all(root.join("empty/deeper/still-empty")).unwrap();
    write(&root.join("zero"), b"");
    // a sparse file: 32 MiB with two small data regions
    let f = std::fs::File::create(root.join("sparse")).unwrap();
    f.set_len(32 << 20).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(b"head", 0).unwrap();
    f.write_all_at(b"tail", (32 << 20) - 4).unwrap();
    drop(f);
    // a big file over several chunks
    write(&root.join("big.bin"), &rng.bytes(3 << 20));
    fix_dir_times(root, &mut rng);
}

/// A test's source `a`, target `b` and state folder, in `t`.
fn source_target_state(t: &tempfile::TempDir) -> (PathBuf, PathBuf, PathBuf) {
    let p = t.path();
    (p.join("a"), p.join("b"), p.join("state"))
}

/// `files` small files `f<i>.txt` in each of `folders` under `root`, each naming itself.
fn small_files(root: &Path, folders: impl IntoIterator<Item = String>, files: usize) {
    for d in folders {
        for f in 0..files {
            write(
                &root.join(format!("{d}/f{f}.txt")),
                format!("{d} {f}").as_bytes(),
            );
        }
    }
}

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ocm-transfer-")
        .tempdir()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn seeded_random_tree_is_copied_exactly_then_nothing_moves() {
    let t = tmp();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    random_tree(&a, 0x5eed_0001, 400);
    let r = sync_ok(&a, &b);
    assert_same(&a, &b);
    assert!(temp_files(&b).is_empty());
    assert!(n(&r, "files_sent") > 300, "{r}");
    let again = sync_ok(&a, &b);
    assert_eq!(
        n(&again, "files_sent"),
        0,
        "a second sync sends nothing: {again}"
    );
    assert_eq!(n(&again, "removed"), 0);
    assert_eq!(n(&again, "meta_fixed"), 0);
    let (code, out) = verify(&a, &b, true);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("equal"), "{out}");
}

#[test]
fn delta_is_sent_exactly() {
    let t = tmp();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    random_tree(&a, 0x5eed_0002, 200);
    std::fs::create_dir_all(a.join("folder/sub")).unwrap();
    for i in 0..5 {
        write(
            &a.join(format!("folder/sub/x{i}")),
            format!("x{i}").as_bytes(),
        );
    }
    sync_ok(&a, &b);
    // modify 3 files (content and mtime), add 4, delete 2, chmod 1, rename a folder of 5
    let files: Vec<PathBuf> = walk(&a)
        .into_iter()
        .filter(|(p, x)| x.kind == 'f' && x.group.is_none() && !p.starts_with(b"folder"))
        .map(|(p, _)| a.join(OsStr::from_bytes(&p)))
        .collect();
    for f in &files[0..3] {
        std::fs::write(f, b"changed content").unwrap();
    }
    for i in 0..4 {
        write(&a.join(format!("new{i}")), b"new");
    }
    std::fs::remove_file(&files[3]).unwrap();
    std::fs::remove_file(&files[4]).unwrap();
    std::fs::set_permissions(&files[5], std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::rename(a.join("folder"), a.join("folder-renamed")).unwrap();
    let r = sync_ok(&a, &b);
    assert_same(&a, &b);
    assert_eq!(n(&r, "files_sent"), 3 + 4, "{r}");
    assert_eq!(
        n(&r, "reused"),
        5,
        "the renamed folder's files are linked, not sent: {r}"
    );
    assert_eq!(n(&r, "removed"), 2 + 1, "two files and the old folder: {r}");
    assert!(n(&r, "meta_fixed") >= 1, "{r}");
}

#[test]
fn names_not_utf8_with_newlines_and_255_bytes() {
    let t = tmp();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    let long = vec![b'n'; 255];
    write(&a.join(OsStr::from_bytes(&long)), b"255");
    write(&a.join(OsStr::from_bytes(b"caf\xe9")), b"latin1");
    write(&a.join(OsStr::from_bytes(b"two\nlines")), b"nl");
    write(&a.join(OsStr::from_bytes(b"\xff\xfe/inside\n")), b"deep");
    write(&a.join(OsStr::from_bytes(b"-dash")), b"dash");
    sync_ok(&a, &b);
    assert_same(&a, &b);
    assert_eq!(
        std::fs::read(b.join(OsStr::from_bytes(&long))).unwrap(),
        b"255"
    );
}

#[test]
fn paths_near_4096_bytes() {
    let t = tmp();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    // 16 levels of 250-byte names: a relative path of about 4 KiB (4016 bytes)
    let mut p = PathBuf::new();
    for i in 0..16 {
        p.push(format!("{i:02}{}", "x".repeat(248)));
    }
    let rel_len = p.as_os_str().len();
    assert!(rel_len > 4000, "{rel_len}");
    // create it step by step (one component at a time, relative to the current folder)
    let mut dir = a.clone();
    std::fs::create_dir_all(&dir).unwrap();
    for c in p.components() {
        dir.push(c);
        std::fs::create_dir(&dir).unwrap();
    }
    write(&dir.join("leaf"), b"deep leaf");
    sync_ok(&a, &b);
    assert_same(&a, &b);
}

#[test]
fn symlinks_are_copied_as_links_never_followed() {
    let t = tmp();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    let outside = t.path().join("outside");
    write(&outside.join("secret"), b"not to be copied");
    std::fs::create_dir_all(&a).unwrap();
    std::os::unix::fs::symlink(&outside, a.join("to-dir-outside")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", a.join("absolute")).unwrap();
    std::os::unix::fs::symlink("missing/target", a.join("dangling")).unwrap();
    std::os::unix::fs::symlink(OsStr::from_bytes(b"odd\xff\ntarget"), a.join("odd")).unwrap();
    write(&a.join("real"), b"real");
    std::os::unix::fs::symlink("real", a.join("relative")).unwrap();
    set_mtime(&a.join("relative"), 1_234_567_890, 987_654_321);
    lchown(&a.join("relative"), 1001, 1002);
    sync_ok(&a, &b);
    assert_same(&a, &b);
    assert!(std::fs::symlink_metadata(b.join("to-dir-outside"))
        .unwrap()
        .is_symlink());
    // a symlink replaced by a file and a file by a symlink
    std::fs::remove_file(a.join("relative")).unwrap();
    write(&a.join("relative"), b"now a file");
    std::fs::remove_file(a.join("real")).unwrap();
    std::os::unix::fs::symlink("relative", a.join("real")).unwrap();
    sync_ok(&a, &b);
    assert_same(&a, &b);
}

#[test]
fn hard_links_stay_linked() {
    let t = tmp();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    write(&a.join("one/original"), b"shared bytes");
    std::fs::create_dir_all(a.join("two")).unwrap();
    std::fs::hard_link(a.join("one/original"), a.join("two/second")).unwrap();
    std::fs::hard_link(a.join("one/original"), a.join("third")).unwrap();
    write(&a.join("lonely"), b"alone");
    let r = sync_ok(&a, &b);
    assert_same(&a, &b);
    assert_eq!(n(&r, "hard_links"), 2, "{r}");
    let ino = |p: &str| std::fs::metadata(b.join(p)).unwrap().ino();
    assert_eq!(ino("one/original"), ino("two/second"));
    assert_eq!(ino("one/original"), ino("third"));
    // the group's content changes: every name follows
    std::fs::write(a.join("third"), b"new shared bytes").unwrap();
    sync_ok(&a, &b);
    assert_same(&a, &b);
    assert_eq!(
        std::fs::read(b.join("two/second")).unwrap(),
        b"new shared bytes"
    );
}

#[test]
fn sparse_files_stay_sparse() {
    let t = tmp();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    let f = std::fs::File::create(a.join("sparse")).unwrap();
    f.set_len(256 << 20).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(b"middle", 100 << 20).unwrap();
    drop(f);
    sync_ok(&a, &b);
    assert_same(&a, &b);
    let m = std::fs::metadata(b.join("sparse")).unwrap();
    assert_eq!(m.len(), 256 << 20);
    assert!(
        m.blocks() * 512 < 1 << 20,
        "{} bytes allocated for 6 bytes of data",
        m.blocks() * 512
    );
}

#[test]
fn empty_folders_and_zero_byte_files() {
    let t = tmp();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    std::fs::create_dir_all(a.join("e1/e2/e3")).unwrap();
    std::fs::create_dir_all(a.join("e4")).unwrap();
    write(&a.join("e4/zero"), b"");
    write(&a.join("zero"), b"");
    std::fs::set_permissions(a.join("e1/e2"), std::fs::Permissions::from_mode(0o700)).unwrap();
    set_mtime(&a.join("e1/e2/e3"), 1_000_000_000, 1);
    set_mtime(&a.join("e1/e2"), 1_000_000_001, 2);
    set_mtime(&a.join("e1"), 1_000_000_002, 3);
    let r = sync_ok(&a, &b);
    assert_same(&a, &b);
    assert_eq!(n(&r, "files_sent"), 2);
}

#[test]
fn big_file_over_many_chunks() {
    let t = tmp();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    let mut rng = Rng(77);
    write(&a.join("big"), &rng.bytes(20 << 20));
    write(
        &a.join("zeros-and-text"),
        &[vec![0u8; 5 << 20], b"text".repeat(1 << 18)].concat(),
    );
    let r = sync_ok(&a, &b);
    assert_same(&a, &b);
    assert_eq!(n(&r, "bytes_sent"), (20 << 20) + (5 << 20) + (4 << 18));
    let (code, out) = verify(&a, &b, true);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn extraneous_target_entries_are_removed_and_type_changes_handled() {
    let t = tmp();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    write(&a.join("x/file"), b"f");
    write(&a.join("was-dir"), b"now a file");
    std::fs::create_dir_all(a.join("was-file")).unwrap();
    write(&b.join("extra/deep/deeper/f"), b"extra");
    write(&b.join("was-dir/inside"), b"old");
    write(&b.join("was-file"), b"old file");
    write(&b.join("x/stale"), b"stale");
    write(
        &b.join(".ocm-0123456789abcdef.tmp"),
        b"left by a killed run",
    );
    let r = sync_ok(&a, &b);
    assert_same(&a, &b);
    assert_eq!(n(&r, "cleaned"), 1, "{r}");
}

#[test]
fn verify_finds_each_kind_of_difference() {
    let t = tmp();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    write(&a.join("same-meta-other-bytes"), b"aaaa");
    write(&a.join("mode"), b"m");
    write(&a.join("gone"), b"g");
    sync_ok(&a, &b);
    // same size and mtime, other bytes: only --content sees it
    let m = std::fs::metadata(b.join("same-meta-other-bytes")).unwrap();
    std::fs::write(b.join("same-meta-other-bytes"), b"bbbb").unwrap();
    set_mtime(&b.join("same-meta-other-bytes"), m.mtime(), m.mtime_nsec());
    let (code, out) = verify(&a, &b, false);
    assert_eq!(code, 0, "{out}");
    let (code, out) = verify(&a, &b, true);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("content"), "{out}");
    std::fs::set_permissions(b.join("mode"), std::fs::Permissions::from_mode(0o666)).unwrap();
    std::fs::remove_file(b.join("gone")).unwrap();
    write(&b.join("extra"), b"e");
    let (code, out) = verify(&a, &b, false);
    assert_eq!(code, 1, "{out}");
    for k in ["mode", "missing", "extra"] {
        assert!(out.contains(k), "{k} in {out}");
    }
}

#[test]
fn verify_content_names_exactly_the_files_whose_bytes_differ() {
    // 3 x 400 files hashed by one agent a side, more than its window of answers in flight: a
    // hash given to the wrong path would show as a difference elsewhere, or hide one of these.
    // Run as nobody, with one file neither side can read: its error is its own, mid-pipeline.
    let t = tmp();
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    small_files(&a, (0..3).map(|d| format!("d{d}")), 400);
    sync_ok(&a, &b);
    let differ = ["d0/f17.txt", "d1/f350.txt", "d2/f399.txt"];
    for f in differ {
        let path = b.join(f);
        let m = std::fs::metadata(&path).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[0] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        set_mtime(&path, m.mtime(), m.mtime_nsec());
    }
    for p in [&a, &b] {
        let ok = Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(p)
            .status()
            .unwrap();
        assert!(ok.success());
        let locked = p.join("d1/f200.txt");
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    }
    let o = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", EXE])
        .args(["verify", "--content", "--streams", "1", "--json", "--from"])
        .arg(&a)
        .arg("--to")
        .arg(&b)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["files_hashed"], 1199, "{out}");
    assert_eq!(v["difference_count"], 4, "{out}");
    let listed = v["differences"].to_string();
    for f in differ {
        assert!(
            listed.contains(&format!("{f}: the bytes differ")),
            "{f} in {listed}"
        );
    }
    assert!(listed.contains("d1/f200.txt: source: "), "{listed}");
    // Without --json, the hashing's progress goes to stderr (plain lines: no terminal here),
    // counted to the end; stdout keeps the verdict alone.
    let o = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", EXE])
        .args(["verify", "--content", "--streams", "1", "--from"])
        .arg(&a)
        .arg("--to")
        .arg(&b)
        .output()
        .unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    assert!(err.contains("hash: tree: 1200 file(s), "), "{err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("hash: 1200/1200 files, ") && last.contains(" in "),
        "{err}"
    );
    assert!(!out.contains("hash: "), "{out}");
}

/// Make a folder readable by `nobody`, with one file it cannot read.
#[test]
fn unreadable_file_fails_the_sync_unless_accepted() {
    let t = tmp();
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    write(&a.join("ok"), b"fine");
    write(&a.join("secret"), b"locked");
    write(&a.join("locked-dir/inside"), b"x");
    std::fs::create_dir_all(&b).unwrap();
    for p in [&a, &b] {
        Command::new("chown")
            .arg("-R")
            .arg("65534:65534")
            .arg(p)
            .status()
            .unwrap();
    }
    std::fs::set_permissions(a.join("secret"), std::fs::Permissions::from_mode(0o000)).unwrap();
    std::fs::set_permissions(a.join("locked-dir"), std::fs::Permissions::from_mode(0o000)).unwrap();
    let as_nobody = |extra: &[&str]| {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            EXE,
            "sync",
            "--json",
            "--from",
        ])
        .arg(&a)
        .arg("--to")
        .arg(&b)
        .args(extra);
        finish(c.output().unwrap())
    };
    let r = as_nobody(&[]);
    assert_eq!(r.code, 1, "{}\n{}", r.stderr, r.report);
    assert_eq!(n(&r.report, "unreadable_count"), 2, "{}", r.report);
    let listed = r.report["unreadable"].to_string();
    assert!(
        listed.contains("secret") && listed.contains("locked-dir"),
        "{listed}"
    );
    assert!(r.stderr.contains("--accept-unreadable"), "{}", r.stderr);
    assert_eq!(std::fs::read(b.join("ok")).unwrap(), b"fine");
    let r = as_nobody(&["--accept-unreadable"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stderr, r.report);
    assert_eq!(n(&r.report, "unreadable_count"), 2);
    // The exit check reports what could not be read: reading only the target (the pass's
    // saved manifest keeps its scan's unreadable folder) as reading both sides does.
    let both = as_nobody(&["--accept-unreadable", "--check"]);
    let target = as_nobody(&["--accept-unreadable", "--check=target"]);
    for r in [&both, &target] {
        assert_eq!(r.code, 1, "{}\n{}", r.stderr, r.report);
    }
    let (vb, vt) = (&both.report["check"], &target.report["check"]);
    assert_eq!(vb["differences"], vt["differences"], "{vb}\n{vt}");
    assert!(vt["source_read"].is_null(), "{vt}");
    let listed = vt["differences"].to_string();
    assert!(
        listed.contains("unreadable: tree:/locked-dir: source:")
            && listed.contains("missing: tree:/secret"),
        "{listed}"
    );
}

/// A writer appending to a file every 2 ms until stopped: a file that changes while copied.
struct Grower {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    writer: std::thread::JoinHandle<()>,
}

impl Grower {
    fn start(path: &Path) -> Grower {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s2 = stop.clone();
        let path = path.to_path_buf();
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
            while !s2.load(std::sync::atomic::Ordering::Relaxed) {
                f.write_all(b"more").unwrap();
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        Grower { stop, writer }
    }

    fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.writer.join().unwrap();
    }
}

#[test]
fn file_changing_while_copied_is_sent_again() {
    let t = tmp();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    let mut rng = Rng(5);
    write(&a.join("growing"), &rng.bytes(64 << 20));
    let grower = Grower::start(&a.join("growing"));
    let r = sync(&a, &b, &[]);
    grower.stop();
    let again =
        n(&r.report, "resent") + r.report["gave_up"].as_array().map_or(0, |v| v.len() as u64);
    assert!(again >= 1, "the change was seen: {}", r.report);
    assert_eq!(
        r.code == 0,
        r.report["gave_up"].as_array().is_some_and(|v| v.is_empty())
    );
    // it holds still now: the next sync makes the copy exact
    sync_ok(&a, &b);
    assert_same(&a, &b);
}

/// A tree big enough that a debug build needs a few seconds for it.
fn kill_tree(root: &Path) {
    let mut rng = Rng(99);
    for i in 0..3000 {
        let size = 2000 + rng.below(30_000) as usize;
        write(&root.join(format!("d{}/f{i}", i % 37)), &rng.bytes(size));
    }
    for i in 0..6 {
        write(&root.join(format!("big{i}")), &rng.bytes(8 << 20));
    }
}

/// Source regular files (one per inode) whose copy is missing or not finished on the target.
fn unfinished(a: &Path, b: &Path) -> u64 {
    let x = walk(a);
    let y = if b.exists() { walk(b) } else { BTreeMap::new() };
    x.iter()
        .filter(|(p, s)| s.kind == 'f' && s.group.as_ref().is_none_or(|g| g == *p))
        .filter(|(p, s)| {
            !y.get(*p)
                .is_some_and(|t| t.kind == 'f' && t.size == s.size && t.mtime == s.mtime)
        })
        .count() as u64
}

/// Regular files under `root` (no hashing; what vanishes meanwhile is skipped).
fn count_files(root: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => n += 1,
                _ => {}
            }
        }
    }
    n
}

/// Start a sync and kill it (with `victim`, given the operator's pid) once the target holds at
/// least `files` regular files. False when the sync ended first.
fn kill_at(a: &Path, b: &Path, files: usize, victim: &dyn Fn(u32)) -> bool {
    let mut child = sync_args(a, b, &["--streams", "2"]).spawn().unwrap();
    loop {
        if child.try_wait().unwrap().is_some() {
            return false; // finished before the kill
        }
        if files == 0 || count_files(b) >= files {
            break;
        }
        std::thread::sleep(Duration::from_millis(3));
    }
    let agents = children(child.id());
    victim(child.id());
    // The operator must end (killed, or failing on its broken agent), never hang.
    let t1 = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            // and its agents end too (their stdin closed): wait for them before looking
            while agents.iter().any(|p| alive(*p)) {
                assert!(
                    t1.elapsed() < Duration::from_secs(60),
                    "agents still running"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            return true;
        }
        if t1.elapsed() > Duration::from_secs(60) {
            kill9(child.id());
            let _ = child.wait();
            panic!("the operator did not end within 60 s after an agent was killed");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Children of a process (the local agents of an operator).
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let after = &stat[stat.rfind(')').unwrap_or(0) + 2..];
        let ppid: u32 = after
            .split(' ')
            .nth(1)
            .and_then(|x| x.parse().ok())
            .unwrap_or(0);
        if ppid == pid {
            out.push(p);
        }
    }
    out
}

/// Running (not gone, not a zombie nobody reaped).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat[stat.rfind(')').unwrap_or(0)..].starts_with(") Z"),
        Err(_) => false,
    }
}

fn kill9(pid: u32) {
    // SAFETY: plain kill(2).
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
}

fn resume_and_check(a: &Path, b: &Path) {
    let left = unfinished(a, b);
    let r = sync_ok(a, b);
    assert_same(a, b);
    assert!(temp_files(b).is_empty(), "{:?}", temp_files(b));
    assert_eq!(
        n(&r, "files_sent"),
        left,
        "only the files not finished before the kill are sent: {r}"
    );
}

#[test]
fn kill_of_the_operator_at_five_moments_then_resume() {
    let t = tmp();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    kill_tree(&a);
    let mut killed = 0;
    // at the start (agents starting, scanning), then at four points of the copy
    for files in [0, 300, 1000, 1800, 2600] {
        if kill_at(&a, &b, files, &kill9) {
            killed += 1;
        }
        // no operator: its agents end with their stdin
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        killed >= 3,
        "the sync was killed while running ({killed} times)"
    );
    resume_and_check(&a, &b);
}

#[test]
fn kill_of_an_agent_then_resume() {
    let t = tmp();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    kill_tree(&a);
    for (files, which) in [(200, 0usize), (1200, 1), (2200, 2)] {
        let killed = kill_at(&a, &b, files, &|pid| {
            let kids = children(pid);
            if let Some(k) = kids.get(which % kids.len().max(1)) {
                kill9(*k);
            }
        });
        assert!(
            killed,
            "an agent was killed while the sync ran ({files} files)"
        );
    }
    resume_and_check(&a, &b);
}

/// Over ssh in the lab (old → new, the hosts' /root seen from here through the lab's folders):
/// two streams on connections of their own; one of the operator's ssh processes killed during
/// the copy; the resume finishes it exactly and sends only what was not finished.
#[test]
fn lab_over_ssh_with_a_killed_ssh_then_resume() {
    let _lab = common::Lab::get();
    let folders = LabFolders::new("ocm-transfer");
    let (a, b) = (folders.src(), folders.dst());
    kill_tree(&a);
    random_tree(&a.join("mixed"), 0x5eed_0003, 150);
    let from = "ssh://root@127.0.0.2/root/ocm-transfer/src";
    let to = "ssh://root@127.0.0.3/root/ocm-transfer/dst";
    let run = |extra: &[&str]| {
        let mut c = Command::new(EXE);
        c.args([
            "sync",
            "--json",
            "--streams",
            "2",
            "--from",
            from,
            "--to",
            to,
        ])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        c
    };
    let mut child = run(&[]).spawn().unwrap();
    let t0 = Instant::now();
    while count_files(&b) < 500 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the sync ended before the kill"
        );
        assert!(t0.elapsed() < Duration::from_secs(120));
        std::thread::sleep(Duration::from_millis(5));
    }
    let ssh: Vec<u32> = children(child.id())
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "ssh")
        })
        .collect();
    assert!(!ssh.is_empty(), "the operator's ssh processes");
    kill9(*ssh.last().unwrap());
    let out = child.wait_with_output().unwrap();
    let r = finish(out);
    assert_ne!(r.code, 0, "a killed ssh fails the sync: {}", r.stderr);
    assert!(r.stderr.contains("hint"), "{}", r.stderr);
    // the remote agents notice their closed channel and end; then resume
    std::thread::sleep(Duration::from_millis(500));
    let left = unfinished(&a, &b);
    let r = finish(run(&[]).output().unwrap());
    assert_eq!(r.code, 0, "{}\n{}", r.stderr, r.report);
    assert_eq!(n(&r.report, "files_sent"), left, "{}", r.report);
    assert_same(&a, &b);
    assert!(temp_files(&b).is_empty(), "{:?}", temp_files(&b));
    let o = Command::new(EXE)
        .args(["verify", "--content", "--from", from, "--to", to])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
}

/// `/root/<name>/src` on old and `/root/<name>/dst` on new (seen from here through the lab's
/// folders), as `ssh://root@old/root/<name>/src` and `…@new/…/dst` name them: removed at the
/// start and when dropped, however the test ends.
struct LabFolders {
    old: PathBuf,
    new: PathBuf,
}

impl LabFolders {
    fn new(name: &str) -> LabFolders {
        let hosts = common::lab_dir().join("hosts");
        let f = LabFolders {
            old: hosts.join("old/root").join(name),
            new: hosts.join("new/root").join(name),
        };
        f.remove();
        f
    }
    fn src(&self) -> PathBuf {
        self.old.join("src")
    }
    fn dst(&self) -> PathBuf {
        self.new.join("dst")
    }
    fn remove(&self) {
        let _ = std::fs::remove_dir_all(&self.old);
        let _ = std::fs::remove_dir_all(&self.new);
    }
}

impl Drop for LabFolders {
    fn drop(&mut self) {
        self.remove();
    }
}

/// `lab/lab shape new off` when dropped, however the test ends.
struct Shaped;

impl Shaped {
    fn new(rate: &str, delay: &str) -> Shaped {
        common::lab_cmd(&["shape", "new", rate, delay]);
        Shaped
    }
}

impl Drop for Shaped {
    fn drop(&mut self) {
        let _ = Command::new(common::lab_script())
            .args(["shape", "new", "off"])
            .output();
    }
}

/// On a distant target (the lab's `new` behind 15 ms each way: the agents' handshake takes over
/// 20 ms) the early stream's agents start as the scans start. In a first copy the target's
/// folder does not exist yet when they start, so its agent is started again when the first file
/// comes; the early stream then writes through it (exact copy, no temporary left). A re-sync
/// with nothing to send closes them unused; on the near target they are not started ahead.
#[test]
fn early_stream_starts_ahead_on_a_distant_target() {
    let lab = common::Lab::get();
    let folders = LabFolders::new("ocm-early");
    let (a, b) = (folders.src(), folders.dst());
    // The root's own files come first in the scans' order: sent early; the folders after.
    for i in 0..40 {
        write(&a.join(format!("f{i}.txt")), format!("root {i}").as_bytes());
    }
    small_files(&a, (0..30).map(|d| format!("d{d:02}/e")), 20);
    let cfg = lab.var("LAB_SSH_CONFIG").to_string();
    let run = |to: &str| {
        let o = Command::new(EXE)
            .args([
                "sync",
                "--json",
                "--from",
                "ssh://root@old/root/ocm-early/src",
            ])
            .args(["--to", to])
            .env("OCMIGRATE_SSH_CONFIG", &cfg)
            .env("OCMIGRATE_TIMING", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        finish(o)
    };
    let far = "ssh://root@new-slow/root/ocm-early/dst";
    let shaped = Shaped::new("100mbit", "15ms");
    let first = run(far);
    assert_eq!(first.code, 0, "{}\n{}", first.stderr, first.report);
    assert!(
        first.stderr.contains("early stream connected ahead"),
        "{}",
        first.stderr
    );
    assert_eq!(n(&first.report, "early_streams"), 1, "{}", first.report);
    assert_eq!(n(&first.report, "files_sent"), 40 + 600, "{}", first.report);
    assert_eq!(n(&first.report, "failed_count"), 0, "{}", first.report);
    assert_same(&a, &b);
    assert!(temp_files(&b).is_empty(), "{:?}", temp_files(&b));

    for i in 0..10 {
        write(
            &a.join(format!("f{i}.txt")),
            format!("rewritten {i}").as_bytes(),
        );
    }
    let delta = run(far);
    assert_eq!(delta.code, 0, "{}\n{}", delta.stderr, delta.report);
    assert!(delta.stderr.contains("early stream connected ahead"));
    assert_eq!(n(&delta.report, "files_sent"), 10, "{}", delta.report);
    assert_eq!(n(&delta.report, "early_streams"), 1, "{}", delta.report);
    assert_same(&a, &b);

    let nothing = run(far);
    assert_eq!(nothing.code, 0, "{}\n{}", nothing.stderr, nothing.report);
    assert!(nothing.stderr.contains("early stream connected ahead"));
    assert_eq!(n(&nothing.report, "files_sent"), 0, "{}", nothing.report);
    assert_eq!(n(&nothing.report, "early_streams"), 0, "{}", nothing.report);
    drop(shaped);

    write(&a.join("f0.txt"), b"near");
    let near = run("ssh://root@new/root/ocm-early/dst");
    assert_eq!(near.code, 0, "{}\n{}", near.stderr, near.report);
    assert!(
        !near.stderr.contains("connected ahead"),
        "a near target waits for the first file: {}",
        near.stderr
    );
    assert_eq!(n(&near.report, "files_sent"), 1, "{}", near.report);
    assert_same(&a, &b);
}

/// A migration file in `dir` from the lab's old instance to `target` (an ssh side).
fn lab_migration(dir: &Path, name: &str, target: &str) -> PathBuf {
    let file = dir.join(name);
    std::fs::write(
        &file,
        format!(
            "[source]\nside = \"ssh://root@127.0.0.2/var/www/owncloud\"\n\n\
             [target]\nside = \"{target}\"\n"
        ),
    )
    .unwrap();
    file
}

/// A small lab instance (SQLite, seed `seed`), the target's data folder removed, and a migration
/// file to the near target in a temporary folder.
fn fresh_lab_migration(lab: &common::Lab, seed: u64) -> (tempfile::TempDir, PathBuf) {
    lab.instance("owncloud", "sqlite", 2, 40, seed);
    lab.sh("new", "rm -rf /var/www/owncloud/data");
    let dir = tmp();
    let near = "ssh://root@127.0.0.3/var/www/owncloud";
    let file = lab_migration(dir.path(), "ocmigrate.toml", near);
    (dir, file)
}

/// `ocmigrate ARGS -c FILE`, with the timing marks on stderr and the lab's ssh config (for the
/// shaped path's aliases).
fn run_migration(lab: &common::Lab, file: &Path, args: &[&str]) -> Run {
    let o = Command::new(EXE)
        .args(args)
        .arg("-c")
        .arg(file)
        .env("OCMIGRATE_TIMING", "1")
        .env("OCMIGRATE_SSH_CONFIG", lab.var("LAB_SSH_CONFIG"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    finish(o)
}

/// A lab instance (SQLite) through the migration file: `ocmigrate sync -c` copies the data
/// directory without the database files, owners mapped by name, then `verify --files-only` finds
/// both sides equal and a second sync sends nothing.
#[test]
fn lab_instance_sync_then_verify() {
    let lab = common::Lab::get();
    let (dir, file) = fresh_lab_migration(&lab, 11);
    let run = |args: &[&str]| run_migration(&lab, &file, args);
    let r = run(&["sync", "--json"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stderr, r.report);
    assert!(n(&r.report, "files_sent") > 0, "{}", r.report);
    assert!(
        r.report["trees"].to_string().contains("data"),
        "{}",
        r.report
    );
    let hosts = common::lab_dir().join("hosts");
    let (a, b) = (hosts.join("old/www/data"), hosts.join("new/www/data"));
    assert!(a.join("owncloud.db").exists());
    assert!(
        !b.join("owncloud.db").exists(),
        "the database leg copies the database"
    );
    // the rest is equal (the database files aside)
    let (x, y) = (walk(&a), walk(&b));
    for (p, s) in &x {
        if p.starts_with(b"owncloud.db") {
            continue;
        }
        assert_eq!(y.get(p), Some(s), "{}", show(p));
    }
    // The saved manifests hold users' file names: private, like the rest of the state folder.
    let mdir = dir.path().join("ocmigrate.state/manifests");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&mdir), 0o700, "manifests folder mode");
    let saved: Vec<PathBuf> = std::fs::read_dir(&mdir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!saved.is_empty(), "no manifest saved");
    for f in &saved {
        assert_eq!(mode(f), 0o600, "{} mode", f.display());
    }
    let o = Command::new(EXE)
        .args(["verify", "--files-only", "-c"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let r = run(&["sync", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(n(&r.report, "files_sent"), 0, "{}", r.report);
    drop(lab);
}

/// A migration's pass records its trees' roots; the next pass starts its agents with them and
/// asks their scans while the source's inventory runs, and takes those agents only when the
/// inventory gives the same roots (else they are killed at once, and the pass starts its own).
#[test]
fn scans_asked_ahead_are_taken_only_with_the_pass_roots() {
    let lab = common::Lab::get();
    let (dir, file) = fresh_lab_migration(&lab, 12);
    let run = |args: &[&str]| run_migration(&lab, &file, args);
    // The round trip the target's agent started ahead measured (timing mark), in ms.
    let round_trip = |r: &Run| -> f64 {
        let line = r
            .stderr
            .lines()
            .find(|l| l.contains("scans asked ahead on target"));
        let line = line.unwrap_or_else(|| panic!("no scans asked ahead: {}", r.stderr));
        let ms = line.rsplit("round trip ").next().unwrap();
        ms.trim_end_matches(" ms)").parse().unwrap()
    };
    let record_path = dir.path().join("ocmigrate.state/manifests/pass-roots.json");
    let record = || -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(&record_path).unwrap()).unwrap()
    };
    let roots = |v: &serde_json::Value| -> Vec<String> {
        let paths = v.as_array().unwrap_or_else(|| panic!("{v}"));
        let bytes = |p: &serde_json::Value| -> Vec<u8> {
            p.as_array()
                .unwrap()
                .iter()
                .map(|b| b.as_u64().unwrap() as u8)
                .collect()
        };
        paths
            .iter()
            .map(|p| String::from_utf8(bytes(p)).unwrap())
            .collect()
    };
    let taken = |r: &Run, side: &str| {
        r.stderr
            .contains(&format!("{side}'s agent started ahead: taken"))
    };
    let new_data = common::lab_dir().join("hosts/new/www/data");

    let first = run(&["sync", "--json"]);
    assert_eq!(first.code, 0, "{}\n{}", first.stderr, first.report);
    assert!(
        !first.stderr.contains("scans asked ahead"),
        "no record yet: {}",
        first.stderr
    );
    let recorded = record();
    let trees = ["/var/www/owncloud/data", "/var/www/owncloud/apps-external"];
    assert_eq!(roots(&recorded["source"]), trees, "{recorded}");
    assert_eq!(roots(&recorded["target"]), trees, "{recorded}");

    // The next pass takes both agents, their scans under way, and finds the new file.
    lab.sh("old", "printf ahead > /var/www/owncloud/data/ahead.txt");
    let second = run(&["sync", "--json"]);
    assert_eq!(second.code, 0, "{}\n{}", second.stderr, second.report);
    assert!(
        second.stderr.contains("scans asked ahead"),
        "{}",
        second.stderr
    );
    assert!(
        taken(&second, "source") && taken(&second, "target"),
        "{}",
        second.stderr
    );
    // The round trip they measured says the target is near: no early stream started ahead.
    assert!(round_trip(&second) < 20.0, "{}", second.stderr);
    assert!(
        !second.stderr.contains("connected ahead"),
        "{}",
        second.stderr
    );
    assert_eq!(n(&second.report, "files_sent"), 1, "{}", second.report);
    assert_eq!(std::fs::read(new_data.join("ahead.txt")).unwrap(), b"ahead");

    // A record that names other folders (the instance root on both hosts): both agents are
    // killed, none is left running, and the pass scans the data directory with its own. (That a
    // killed agent blocked on answers nobody reads does not hold the pass is
    // tests/agent.rs's `an_agent_with_unread_scans_is_killed_when_dropped`.)
    let mut other = recorded.clone();
    other["source"][0] = serde_json::json!(b"/var/www/owncloud".to_vec());
    other["target"][1] = serde_json::json!(b"/var/www/owncloud".to_vec());
    std::fs::write(&record_path, serde_json::to_vec(&other).unwrap()).unwrap();
    lab.sh("old", "rm /var/www/owncloud/data/ahead.txt");
    let third = run(&["sync", "--json"]);
    assert_eq!(third.code, 0, "{}\n{}", third.stderr, third.report);
    assert!(
        !taken(&third, "source") && !taken(&third, "target"),
        "{}",
        third.stderr
    );
    for host in ["old", "new"] {
        let left = (0..50).find(|_| {
            let out = lab.exec(host, "pgrep -fc '[.]cache/ocmigrate/agent-' || true");
            let alive = String::from_utf8_lossy(&out.stdout).trim() != "0";
            if alive {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            !alive
        });
        assert!(
            left.is_some(),
            "an agent is still running on {host} 5 s after the pass"
        );
    }
    assert_eq!(n(&third.report, "removed"), 1, "{}", third.report);
    assert!(!new_data.join("ahead.txt").exists());
    let at = |what: &str| -> f64 {
        let line = third.stderr.lines().find(|l| l.ends_with(what));
        let line = line.unwrap_or_else(|| panic!("no mark {what:?}: {}", third.stderr));
        line.split_whitespace()
            .nth(2)
            .unwrap()
            .trim_start_matches('+')
            .parse()
            .unwrap()
    };
    let kill = at("target's agent started ahead: other roots, killed") - at("agent binary hashed");
    assert!(
        kill < 3.0,
        "the agent started ahead took {kill} s to stop: {}",
        third.stderr
    );
    assert_eq!(
        record(),
        recorded,
        "the pass's own roots are recorded again"
    );

    let o = Command::new(EXE)
        .args(["verify", "--files-only", "-c"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));

    // The same target behind 15 ms each way (its own migration file and state folder): the
    // round trip measured ahead says it is far, and the early stream starts ahead.
    let slow = lab_migration(
        dir.path(),
        "slow.toml",
        "ssh://root@new-slow/var/www/owncloud",
    );
    let shaped = Shaped::new("100mbit", "15ms");
    let recorded_far = run_migration(&lab, &slow, &["sync", "--json"]);
    assert_eq!(recorded_far.code, 0, "{}", recorded_far.stderr);
    lab.sh("old", "printf far > /var/www/owncloud/data/far.txt");
    let far = run_migration(&lab, &slow, &["sync", "--json"]);
    assert_eq!(far.code, 0, "{}\n{}", far.stderr, far.report);
    assert!(round_trip(&far) >= 30.0, "{}", far.stderr);
    assert!(
        far.stderr.contains("early stream connected ahead"),
        "{}",
        far.stderr
    );
    assert_eq!(n(&far.report, "files_sent"), 1, "{}", far.report);
    drop(shaped);
    assert_eq!(std::fs::read(new_data.join("far.txt")).unwrap(), b"far");
    lab.sh("old", "rm /var/www/owncloud/data/far.txt");
    drop(lab);
}

/// Files deleted from the source while the sync runs are dropped (counted), not errors; the next
/// sync removes their old copies.
#[test]
fn files_vanishing_during_the_copy_are_dropped() {
    let t = tmp();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    kill_tree(&a);
    let mut victims: Vec<PathBuf> = (0..3000)
        .rev()
        .map(|i| a.join(format!("d{}/f{i}", i % 37)))
        .collect();
    victims.truncate(1500);
    let mut child = sync_args(&a, &b, &[]).spawn().unwrap();
    // once the copy runs, delete files from the end of the list (copied last)
    while count_files(&b) < 100 && child.try_wait().unwrap().is_none() {
        std::thread::sleep(Duration::from_millis(2));
    }
    for v in &victims {
        let _ = std::fs::remove_file(v);
    }
    let r = finish(child.wait_with_output().unwrap());
    assert_eq!(r.code, 0, "{}\n{}", r.stderr, r.report);
    assert!(
        n(&r.report, "vanished") > 0,
        "files vanished during the copy: {}",
        r.report
    );
    assert_eq!(n(&r.report, "unreadable_count"), 0, "{}", r.report);
    sync_ok(&a, &b);
    assert_same(&a, &b);
}

/// A pass with its exit check (`sync --check`): on its own open agents it reads both sides
/// again (`both`), or only the target against the source manifest the pass saved (`target`, as
/// the final sync's). Equal after a good pass; a difference the pass left (a fifo is never
/// copied) is caught.
fn pass_with_check(a: &Path, b: &Path, read: &str) -> Run {
    sync(a, b, &[&format!("--check={read}")])
}

fn exit_check_reads_again_and_catches_what_differs(read: &str) {
    let t = tmp();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    random_tree(&a, 21, 300);
    let r = pass_with_check(&a, &b, read);
    assert_eq!(r.code, 0, "{}\n{}", r.stderr, r.report);
    let v = &r.report["check"];
    assert_eq!(v["equal"], true, "{v}");
    assert_eq!(
        n(v, "entries"),
        n(&r.report, "entries"),
        "every entry compared"
    );
    let what = v["read"].as_str().unwrap();
    match read {
        // Not one tree's source read again: the manifest the pass saved was the source side.
        "target" => {
            assert_eq!(what, "target, against the pass's source manifests", "{v}");
            assert!(v["source_read"].is_null(), "{v}");
        }
        _ => {
            assert_eq!(what, "both sides, on the pass's agents", "{v}");
            assert_eq!(v["source_read"][0], "tree: both sides asked", "{v}");
        }
    }
    assert_same(&a, &b);
    // Something the pass cannot make equal: a fifo (never copied). The check names it.
    let fifo = a.join("a-fifo");
    let c = cpath(&fifo);
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let r = pass_with_check(&a, &b, read);
    assert_eq!(r.code, 1, "{}\n{}", r.stderr, r.report);
    let v = &r.report["check"];
    assert_eq!(v["equal"], false, "{v}");
    assert_eq!(n(v, "difference_count"), 1, "{v}");
    assert!(
        v["differences"][0]
            .as_str()
            .unwrap()
            .starts_with("missing: tree:/a-fifo"),
        "{v}"
    );
    std::fs::remove_file(&fifo).unwrap();
    // A target file changed behind the engine's back is put right by the pass, then equal.
    let f = walk(&b)
        .into_iter()
        .find(|(_, at)| at.kind == 'f' && at.size > 0)
        .map(|(p, _)| b.join(OsStr::from_bytes(&p)))
        .unwrap();
    set_mtime(&f, 1_500_000_000, 1);
    let r = pass_with_check(&a, &b, read);
    assert_eq!(r.code, 0, "{}\n{}", r.stderr, r.report);
    assert_eq!(n(&r.report, "files_sent"), 1, "{}", r.report);
    assert_eq!(r.report["check"]["equal"], true, "{}", r.report);
    assert_same(&a, &b);
}

#[test]
fn exit_check_reads_both_sides_again_and_catches_what_differs() {
    exit_check_reads_again_and_catches_what_differs("both");
    // `--check` alone is the both-sides check (a source that may still change).
    let t = tmp();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    random_tree(&a, 22, 20);
    let r = sync(&a, &b, &["--check"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stderr, r.report);
    assert_eq!(
        r.report["check"]["read"], "both sides, on the pass's agents",
        "{}",
        r.report
    );
}

#[test]
fn exit_check_reads_only_the_target_again_and_catches_what_differs() {
    exit_check_reads_again_and_catches_what_differs("target");
}

/// The target-only check never compares with a manifest another pass left: when this pass
/// cannot save its own (here its temporary file's name is taken by a folder), the file under
/// the name is the previous pass's, which no longer says what the source holds (a file changed
/// since); the check reads the source again for that tree instead, and says why.
#[test]
fn target_only_check_never_uses_an_earlier_pass_manifest() {
    let t = tmp();
    let (a, b, state) = source_target_state(&t);
    random_tree(&a, 23, 100);
    let st = state.to_str().unwrap();
    let r = sync(&a, &b, &["--check=target", "--state-dir", st]);
    assert_eq!(r.code, 0, "{}\n{}", r.stderr, r.report);
    let saved = state.join("manifests/tree.source");
    let first = std::fs::read(&saved).unwrap();
    // The source changes; the next pass cannot save its manifest.
    let f = walk(&a)
        .into_iter()
        .find(|(_, at)| at.kind == 'f')
        .map(|(p, _)| a.join(OsStr::from_bytes(&p)))
        .unwrap();
    set_mtime(&f, 1_400_000_000, 3);
    std::fs::create_dir(state.join("manifests/tree.source.tmp")).unwrap();
    let r = sync(&a, &b, &["--check=target", "--state-dir", st]);
    assert_eq!(r.code, 0, "{}\n{}", r.stderr, r.report);
    assert_eq!(n(&r.report, "files_sent"), 1, "{}", r.report);
    assert!(
        r.report["warnings"]
            .to_string()
            .contains("cannot save the manifest of tree"),
        "{}",
        r.report
    );
    assert_eq!(
        std::fs::read(&saved).unwrap(),
        first,
        "the earlier pass's file is there"
    );
    let v = &r.report["check"];
    assert_eq!(
        v["equal"], true,
        "compared with the source, not the stale manifest: {v}"
    );
    assert_eq!(
        v["source_read"][0], "tree: this pass saved no manifest of it",
        "{v}"
    );
    assert!(v["read"].as_str().unwrap().starts_with("target, "), "{v}");
    assert_same(&a, &b);
}

/// When a file changes while the pass copies it, the pass's source manifest is not what the
/// source holds: the target-only check reads that tree's source again, and says why.
#[test]
fn target_only_check_reads_the_source_where_a_file_moved_during_the_pass() {
    let t = tmp();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    let mut rng = Rng(9);
    write(&a.join("growing"), &rng.bytes(64 << 20));
    let grower = Grower::start(&a.join("growing"));
    let r = pass_with_check(&a, &b, "target");
    grower.stop();
    let again =
        n(&r.report, "resent") + r.report["gave_up"].as_array().map_or(0, |v| v.len() as u64);
    assert!(again >= 1, "the change was seen: {}", r.report);
    let v = &r.report["check"];
    let why = v["source_read"][0].as_str().unwrap_or_default();
    assert!(
        why.starts_with("tree: ") && why.contains("moved on the source") && why.contains("growing"),
        "{v}"
    );
}

/// A delta whose files can be written before the scans end (rewrites of files the target has,
/// new files in folders it has) is sent while the scans still run, on a stream of its own; new
/// folders and what lies below them wait for the scans, as before; every figure stays exact. A
/// pass with nothing to send opens no further connection.
#[test]
fn files_are_sent_while_the_scans_still_run() {
    let t = tmp();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    // The rewritten files come first in the scans' order (the root's own files); the scans
    // then walk on through 50,000 more entries (copied with `cp -a`: a first sync of them
    // would take long in a debug build).
    for i in 0..20 {
        write(&a.join(format!("r{i:02}")), format!("first {i}").as_bytes());
    }
    for i in 0..50_000 {
        write(&a.join(format!("d{:02}/f{i}", i % 50)), b"0123456789");
    }
    let cp = Command::new("cp")
        .arg("-a")
        .arg(&a)
        .arg(&b)
        .status()
        .unwrap();
    assert!(cp.success());
    let first = sync_ok(&a, &b);
    assert_eq!(n(&first, "files_sent"), 0, "{first}");
    // The scans race the early stream's connection: on a busy machine a pass may end its scans
    // first, so up to three passes (each rewriting the 20 files) may show it.
    let mut during = 0;
    for pass in 0..3i64 {
        for i in 0..20 {
            let f = a.join(format!("r{i:02}"));
            std::fs::write(&f, format!("version {pass} of {i:02}")).unwrap();
            set_mtime(&f, 1_700_000_000 + i, 123_456_789 + pass);
        }
        let mut files = 20;
        let mut bytes = 20 * "version 0 of 00".len() as u64;
        if pass == 0 {
            write(&a.join("d00/new"), b"new in an existing folder");
            write(&a.join("zz-new/sub/x"), b"below a new folder");
            std::fs::remove_file(a.join("d01/f1")).unwrap();
            files += 2;
            bytes += 25 + 18;
        }
        let r = sync(&a, &b, &[]);
        assert_eq!(r.code, 0, "{}\n{}", r.stderr, r.report);
        let r = r.report;
        assert_same(&a, &b);
        assert!(temp_files(&b).is_empty(), "{:?}", temp_files(&b));
        assert_eq!(n(&r, "files_sent"), files, "{r}");
        assert_eq!(n(&r, "bytes_sent"), bytes, "{r}");
        if pass == 0 {
            assert_eq!(n(&r, "removed"), 1, "{r}");
            assert_eq!(n(&r, "dirs_created"), 2, "{r}");
        }
        assert_eq!(n(&r, "early_streams"), 1, "{r}");
        during = n(&r, "sent_during_scan");
        assert!(during <= 21, "only what needs nothing else first: {r}");
        if during > 0 {
            break;
        }
    }
    assert!(during > 0, "files were sent while the scans ran");
    // Nothing to send: no stream at all, early or late.
    let again = sync_ok(&a, &b);
    assert_eq!(n(&again, "files_sent"), 0, "{again}");
    assert_eq!(n(&again, "early_streams"), 0, "{again}");
    assert_eq!(n(&again, "streams"), 0, "{again}");
    assert_eq!(n(&again, "sent_during_scan"), 0, "{again}");
    // One stream asked for: no early stream either.
    std::fs::write(a.join("r00"), b"third").unwrap();
    let one = sync(&a, &b, &["--streams", "1"]);
    assert_eq!(one.code, 0, "{}", one.stderr);
    assert_eq!(n(&one.report, "files_sent"), 1, "{}", one.report);
    assert_eq!(n(&one.report, "early_streams"), 0, "{}", one.report);
    assert_same(&a, &b);
}

/// The target as the last pass left it (issue #6: one scan less in the window). An online pass
/// (no exit check) with a state folder reads the target once more at its end and saves it; the
/// next pass that checks the target at its end takes its target side from that file instead of
/// reading the target, and removes it. The delta is exact (a rewrite, a new file, a removal, a
/// renamed folder), and the check, which reads the target, proves it. A target changed behind
/// the engine's back after the save (an mtime, a file removed, one added) is what the file does
/// not show: the pass or its check finds out, and the pass runs again with the target read.
#[test]
fn the_final_pass_takes_the_target_as_the_last_pass_left_it() {
    let t = tmp();
    let (a, b, state) = source_target_state(&t);
    random_tree(&a, 31, 300);
    std::fs::create_dir_all(a.join("folder")).unwrap();
    for i in 0..3 {
        write(&a.join(format!("folder/f{i}")), format!("f{i}").as_bytes());
    }
    let st = state.to_str().unwrap();
    let saved_files = || -> Vec<String> {
        std::fs::read_dir(state.join("manifests"))
            .map(|rd| {
                rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(".target"))
                    .collect()
            })
            .unwrap_or_default()
    };
    let online = sync(&a, &b, &["--state-dir", st]);
    assert_eq!(online.code, 0, "{}\n{}", online.stderr, online.report);
    assert_eq!(
        online.report["target_saved"][0], "tree",
        "{}",
        online.report
    );
    assert_eq!(saved_files().len(), 1, "{:?}", saved_files());
    assert!(
        online.report["target_saved_as_read"]
            .as_array()
            .unwrap()
            .is_empty(),
        "the pass wrote the tree: read again at its end: {}",
        online.report
    );
    // The source changes while it serves.
    let files: Vec<PathBuf> = walk(&a)
        .into_iter()
        .filter(|(p, x)| x.kind == 'f' && x.group.is_none() && !p.starts_with(b"folder"))
        .map(|(p, _)| a.join(OsStr::from_bytes(&p)))
        .collect();
    std::fs::write(&files[0], b"rewritten in the window").unwrap();
    std::fs::remove_file(&files[1]).unwrap();
    write(&a.join("added"), b"new");
    std::fs::rename(a.join("folder"), a.join("folder-renamed")).unwrap();
    let fin = sync(&a, &b, &["--check=target", "--state-dir", st]);
    assert_eq!(fin.code, 0, "{}\n{}", fin.stderr, fin.report);
    let r = &fin.report;
    assert_eq!(r["target_as_last_left"][0], "tree", "{r}");
    assert_eq!(n(r, "files_sent"), 2, "{r}");
    assert_eq!(n(r, "reused"), 3, "the renamed folder's files linked: {r}");
    assert_eq!(r["check"]["equal"], true, "{r}");
    assert!(r["warnings"].as_array().unwrap().is_empty(), "{r}");
    assert!(saved_files().is_empty(), "taken: {:?}", saved_files());
    assert_same(&a, &b);

    // A pass that writes nothing to the tree saves the target as its merge read it (no second
    // read); the final pass takes that and finds it exact.
    let as_read = |online: &Run| {
        assert_eq!(online.code, 0, "{}\n{}", online.stderr, online.report);
        assert_eq!(n(&online.report, "files_sent"), 0, "{}", online.report);
        assert_eq!(
            online.report["target_saved_as_read"][0], "tree",
            "{}",
            online.report
        );
        assert_eq!(saved_files().len(), 1, "{:?}", saved_files());
    };
    as_read(&sync(&a, &b, &["--state-dir", st]));
    let fin = sync(&a, &b, &["--check=target", "--state-dir", st]);
    assert_eq!(fin.code, 0, "{}\n{}", fin.stderr, fin.report);
    assert_eq!(
        fin.report["target_as_last_left"][0], "tree",
        "{}",
        fin.report
    );
    assert_eq!(fin.report["check"]["equal"], true, "{}", fin.report);
    assert!(
        fin.report["warnings"].as_array().unwrap().is_empty(),
        "{}",
        fin.report
    );

    // Saved again (as read); then the target changes behind our back.
    as_read(&sync(&a, &b, &["--state-dir", st]));
    let on_b: Vec<PathBuf> = walk(&b)
        .into_iter()
        .filter(|(_, x)| x.kind == 'f' && x.group.is_none())
        .map(|(p, _)| b.join(OsStr::from_bytes(&p)))
        .collect();
    set_mtime(&on_b[0], 1_500_000_000, 1);
    std::fs::remove_file(&on_b[1]).unwrap();
    write(&b.join("extra-on-target"), b"x");
    let fin = sync(&a, &b, &["--check=target", "--state-dir", st]);
    assert_eq!(fin.code, 0, "{}\n{}", fin.stderr, fin.report);
    let r = &fin.report;
    let w = r["warnings"][0].as_str().unwrap_or_default();
    assert!(
        w.starts_with("the target's manifests saved by the last pass (tree) were out of date")
            && w.ends_with("the pass ran again with the target read"),
        "{r}"
    );
    assert!(
        r["target_as_last_left"].as_array().unwrap().is_empty(),
        "{r}"
    );
    assert_eq!(r["check"]["equal"], true, "{r}");
    assert!(saved_files().is_empty(), "{:?}", saved_files());
    assert_same(&a, &b);

    // A pass without a check never uses a saved file (it takes it, reads the target and saves
    // its own under the same key); without a state folder nothing is saved.
    let online = sync(&a, &b, &["--state-dir", st]);
    assert_eq!(
        online.report["target_saved"][0], "tree",
        "{}",
        online.report
    );
    let before = saved_files();
    write(&b.join("extra-again"), b"x");
    let plain = sync(&a, &b, &["--state-dir", st]);
    assert_eq!(plain.code, 0, "{}\n{}", plain.stderr, plain.report);
    assert!(
        plain.report["target_saved_as_read"]
            .as_array()
            .unwrap()
            .is_empty(),
        "it removed a file: read again: {}",
        plain.report
    );
    assert_eq!(plain.report["target_saved"][0], "tree", "{}", plain.report);
    assert!(
        plain.report["target_saved_patched"]
            .as_array()
            .unwrap()
            .is_empty(),
        "a tree with hard links is read again whole: {}",
        plain.report
    );
    assert!(
        plain.report["target_as_last_left"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{}",
        plain.report
    );
    assert_eq!(
        n(&plain.report, "removed"),
        1,
        "the target was read: {}",
        plain.report
    );
    assert_eq!(saved_files(), before, "same tree, same key");
    let bare = sync(&a, &b, &[]);
    assert_eq!(bare.code, 0, "{}\n{}", bare.stderr, bare.report);
    assert!(
        bare.report["target_saved"].as_array().unwrap().is_empty(),
        "{}",
        bare.report
    );
}

/// An online pass that writes a delta saves the target as it leaves it from its own read of the
/// target, with only the paths it wrote (and their folders) read again; the final pass takes
/// that file and finds nothing to do, and its check (which reads the target) finds it exact.
/// A first copy (nearly every path written) is read again whole.
#[test]
fn an_online_pass_reads_again_only_what_it_wrote() {
    let t = tmp();
    let (a, b, state) = source_target_state(&t);
    let folders = (0..4).flat_map(|u| (0..5).map(move |d| format!("u{u}/files/d{d}")));
    small_files(&a, folders, 10);
    std::os::unix::fs::symlink("f0.txt", a.join("u0/files/d0/link")).unwrap();
    std::fs::create_dir_all(a.join("u1/empty")).unwrap();
    let st = state.to_str().unwrap();
    let list = |r: &Run, k: &str| -> Vec<String> {
        r.report[k]
            .as_array()
            .unwrap_or_else(|| panic!("{k}: {}", r.report))
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    let first = sync(&a, &b, &["--state-dir", st]);
    assert_eq!(first.code, 0, "{}\n{}", first.stderr, first.report);
    assert_eq!(list(&first, "target_saved"), ["tree"], "{}", first.report);
    assert!(
        list(&first, "target_saved_patched").is_empty(),
        "{}",
        first.report
    );

    // A delta: a rewrite, a new file in a new folder, a file and a folder removed, a mode
    // changed, a symlink pointed elsewhere.
    write(&a.join("u0/files/d1/f1.txt"), b"rewritten, and longer");
    write(&a.join("u2/files/new/n.txt"), b"new");
    std::fs::remove_file(a.join("u3/files/d4/f9.txt")).unwrap();
    std::fs::remove_dir_all(a.join("u1/files/d2")).unwrap();
    std::fs::set_permissions(
        a.join("u0/files/d3/f3.txt"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::remove_file(a.join("u0/files/d0/link")).unwrap();
    std::os::unix::fs::symlink("f1.txt", a.join("u0/files/d0/link")).unwrap();
    let online = sync(&a, &b, &["--state-dir", st]);
    assert_eq!(online.code, 0, "{}\n{}", online.stderr, online.report);
    assert_eq!(n(&online.report, "files_sent"), 2, "{}", online.report);
    assert_eq!(list(&online, "target_saved"), ["tree"], "{}", online.report);
    assert_eq!(
        list(&online, "target_saved_patched"),
        ["tree"],
        "{}",
        online.report
    );
    assert_same(&a, &b);

    let fin = sync(&a, &b, &["--check=target", "--state-dir", st]);
    assert_eq!(fin.code, 0, "{}\n{}", fin.stderr, fin.report);
    let r = &fin.report;
    assert_eq!(list(&fin, "target_as_last_left"), ["tree"], "{r}");
    for k in [
        "files_sent",
        "removed",
        "meta_fixed",
        "dirs_created",
        "symlinks",
    ] {
        assert_eq!(n(r, k), 0, "{k}: the saved target was exact: {r}");
    }
    assert_eq!(r["check"]["equal"], true, "{r}");
    assert!(r["warnings"].as_array().unwrap().is_empty(), "{r}");
    assert_same(&a, &b);
}

/// `chattr -i` on drop, so the test's folder can be removed however the test ends.
struct Immutable(PathBuf);

impl Immutable {
    fn set(p: &Path) -> Immutable {
        let o = Command::new("chattr").arg("+i").arg(p).output().unwrap();
        assert!(
            o.status.success(),
            "chattr +i {} (needs root and a file system with attributes, as ext4): {}",
            p.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        Immutable(p.to_path_buf())
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

#[test]
fn after_a_failed_write_the_target_is_saved_from_a_whole_read() {
    // The patched save assumes that what the plan removed is gone below its path; a removal
    // that failed halfway leaves entries there. After any failure the tree is read whole.
    let t = tmp();
    let (a, b, state) = source_target_state(&t);
    small_files(&a, (0..4).map(|d| format!("u/d{d}")), 10);
    let st = state.to_str().unwrap();
    let first = sync(&a, &b, &["--state-dir", st]);
    assert_eq!(first.code, 0, "{}\n{}", first.stderr, first.report);

    // A delta the pass can write (one rewrite), and an extraneous folder on the target that it
    // cannot remove whole: one of its files is immutable.
    write(&a.join("u/d1/f1.txt"), b"rewritten");
    for f in ["a", "m", "z"] {
        write(&b.join(format!("u/extra/{f}")), b"extraneous");
    }
    let lock = Immutable::set(&b.join("u/extra/m"));
    let online = sync(&a, &b, &["--state-dir", st]);
    assert_eq!(online.code, 1, "{}\n{}", online.stderr, online.report);
    let r = &online.report;
    assert!(n(r, "failed_count") >= 1, "{r}");
    // The failure names the path where it is: on the target, as written (not lower-cased).
    let at = format!("remove {}: ", b.join("u/extra").display());
    assert!(
        r["failed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f.as_str().unwrap().starts_with(&at)),
        "{at} in {r}"
    );
    assert_eq!(n(r, "files_sent"), 1, "{r}");
    assert_eq!(r["target_saved"], serde_json::json!(["tree"]), "{r}");
    assert_eq!(
        r["target_saved_patched"],
        serde_json::json!([]),
        "a pass with a failed write must not patch its read: {r}"
    );
    assert!(b.join("u/extra/m").exists());

    // Unlocked, the final pass takes the saved target, removes what is left and checks equal.
    drop(lock);
    let fin = sync(&a, &b, &["--check=target", "--state-dir", st]);
    assert_eq!(fin.code, 0, "{}\n{}", fin.stderr, fin.report);
    assert_eq!(
        fin.report["target_as_last_left"],
        serde_json::json!(["tree"])
    );
    assert_eq!(fin.report["check"]["equal"], true, "{}", fin.report);
    assert!(!b.join("u/extra").exists());
    assert_same(&a, &b);
}
