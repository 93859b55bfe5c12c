//! The whole agent loop (`agent::server::serve_with`) on arbitrary bytes after a valid `Hello`
//! that names one root: a scratch tree holding files, folders, a fifo and symlinks that point out
//! of it. The first input byte picks a read-only agent (even) or a writable one asked for writes
//! (odd), as the target's is. Whatever follows the handshake, the agent must answer or end the
//! connection with an error, never panic, never block (the fifo), never send a byte of the file
//! outside its root, and never create, change or remove anything outside its root.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocmigrate::agent::proto::Hello;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::OnceLock;

const MARKER: &[u8] = b"OUTSIDE-THE-ROOT-7f3a9c";

extern "C" {
    fn mkfifo(path: *const std::ffi::c_char, mode: u32) -> i32;
}

/// The scratch folder: `root/` (the agent's root) and `secret` beside it.
fn base() -> &'static PathBuf {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        let base =
            std::env::temp_dir().join(format!("ocmigrate-fuzz-serve-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let root = base.join("root");
        std::fs::create_dir_all(root.join("d/e")).unwrap();
        std::fs::write(root.join("f"), b"hello").unwrap();
        std::fs::write(root.join("d/e/g"), vec![7u8; 70_000]).unwrap();
        std::fs::write(base.join("secret"), MARKER).unwrap();
        std::os::unix::fs::symlink(base.join("secret"), root.join("l")).unwrap();
        std::os::unix::fs::symlink(&base, root.join("d/up")).unwrap();
        std::os::unix::fs::symlink("../..", root.join("d/e/rel")).unwrap();
        let fifo = std::ffi::CString::new(root.join("p").as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid C string.
        unsafe { mkfifo(fifo.as_ptr(), 0o600) };
        base
    })
}

fn outside_is_untouched(base: &PathBuf) {
    let mut names: Vec<_> = std::fs::read_dir(base)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["root", "secret"],
        "something was made beside the root"
    );
    assert_eq!(
        std::fs::read(base.join("secret")).unwrap(),
        MARKER,
        "the file outside the root changed"
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let base = base();
    let writable = mode & 1 == 1;
    let root = base.join("root");
    let mut input = Hello {
        writable,
        ..Hello::ours(vec![root.as_os_str().as_bytes().to_vec()])
    }
    .into_frame()
    .encode()
    .unwrap();
    input.extend_from_slice(rest);
    let mut out = Vec::new();
    let _ = ocmigrate::agent::server::serve_with(&input[..], &mut out, writable);
    assert!(
        !out.windows(MARKER.len()).any(|w| w == MARKER),
        "the agent sent bytes of a file outside its root"
    );
    outside_is_untouched(base);
});
