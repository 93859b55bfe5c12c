//! File access beneath a root, one component at a time, never following a symlink.
//!
//! Every path the agent touches is a [`RelPath`] under a root directory it opened at the
//! handshake. Each component is opened with `openat(…, O_NOFOLLOW)` relative to the directory
//! descriptor of the one before, so neither a `..` (refused by `RelPath` already) nor a symlink
//! placed anywhere along the path, even one swapped in while we walk, can lead outside the root.
//! Where the kernel has `openat2` (5.6 and later) the folders of a path are opened in one call
//! that the kernel refuses for the same reasons (a symlink anywhere, leaving the root); any
//! failure of that call is looked at again by the walk. Metadata is
//! `fstatat(…, AT_SYMLINK_NOFOLLOW)`. Nothing here writes: this module has no call
//! that creates, changes or removes anything; the writes of protocol version 2 are in
//! [`super::write`], built on the same walk.
//!
//! Only functions that exist in glibc 2.17 are used (the agent must run on CentOS 7).

use super::proto::{Entry, ErrorCode, FileType, RelPath, Time};
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, Ordering};

/// A failure with the code the operator sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fail {
    pub code: ErrorCode,
    pub message: String,
}

impl Fail {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Fail {
        Fail {
            code,
            message: message.into(),
        }
    }
}

impl From<io::Error> for Fail {
    fn from(e: io::Error) -> Fail {
        let code = ErrorCode::of_io(&e);
        let message = match code {
            ErrorCode::Symlink => "a component of the path is a symlink (never followed)".into(),
            _ => e.to_string(),
        };
        Fail { code, message }
    }
}

pub(super) fn cstr(name: &[u8]) -> Result<CString, Fail> {
    CString::new(name).map_err(|_| Fail::new(ErrorCode::BadRequest, "a name contains NUL"))
}

pub(super) fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// `openat` with close-on-exec, retried on EINTR.
pub(super) fn openat(dir: RawFd, name: &CString, flags: libc::c_int) -> io::Result<OwnedFd> {
    openat_mode(dir, name, flags, 0)
}

/// `openat` with a creation mode (for `O_CREAT`).
pub(super) fn openat_mode(
    dir: RawFd,
    name: &CString,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> io::Result<OwnedFd> {
    loop {
        // SAFETY: `name` is a valid C string; the returned descriptor is owned by us alone.
        let fd = unsafe { libc::openat(dir, name.as_ptr(), flags | libc::O_CLOEXEC, mode) };
        if fd >= 0 {
            // SAFETY: a fresh descriptor from openat.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

pub(super) const DIR_FLAGS: libc::c_int = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW;

/// A directory every request path is resolved under.
#[derive(Debug)]
pub struct Root {
    pub(super) fd: OwnedFd,
}

impl Root {
    /// The same root on a descriptor of its own (for the read-ahead thread).
    pub fn try_clone(&self) -> io::Result<Root> {
        Ok(Root {
            fd: self.fd.try_clone()?,
        })
    }

    /// Open a root given by the operator (an absolute path; symlinks in the root's own path are
    /// the admin's configuration and are followed).
    pub fn open(path: &[u8]) -> Result<Root, Fail> {
        if path.first() != Some(&b'/') {
            return Err(Fail::new(ErrorCode::BadRequest, "a root must be absolute"));
        }
        let fd = openat(
            libc::AT_FDCWD,
            &cstr(path)?,
            libc::O_RDONLY | libc::O_DIRECTORY,
        )?;
        Ok(Root { fd })
    }

    /// Open the directory at `rel` (the root itself for the empty path).
    pub fn open_dir(&self, rel: &RelPath) -> Result<OwnedFd, Fail> {
        let comps: Vec<&[u8]> = rel.components().collect();
        self.walk(&comps)
    }

    /// Open the directories along `comps`, each relative to the one before, no symlinks.
    /// Where the kernel has `openat2` (Linux 5.6), one call with `RESOLVE_BENEATH |
    /// RESOLVE_NO_SYMLINKS` does it; when that fails for any reason the walk below runs, one
    /// component at a time, and names the failure exactly.
    pub(super) fn walk(&self, comps: &[&[u8]]) -> Result<OwnedFd, Fail> {
        if !comps.is_empty() {
            if let Some(fd) = open_beneath(self.fd.as_raw_fd(), comps, DIR_FLAGS) {
                return Ok(fd);
            }
        }
        let mut cur = self.fd.try_clone().map_err(Fail::from)?;
        for c in comps {
            let name = cstr(c)?;
            cur = match openat(cur.as_raw_fd(), &name, DIR_FLAGS) {
                Ok(fd) => fd,
                // O_DIRECTORY|O_NOFOLLOW on a symlink gives ENOTDIR (or ELOOP): say which it is.
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTDIR) | Some(libc::ELOOP)) => {
                    let rel = RelPath::root();
                    return Err(match lstat_at(cur.as_raw_fd(), &name, rel) {
                        Ok(x) if x.file_type == FileType::Symlink => {
                            Fail::from(io::Error::from_raw_os_error(libc::ELOOP))
                        }
                        _ => e.into(),
                    });
                }
                Err(e) => return Err(e.into()),
            };
        }
        Ok(cur)
    }

    /// The directory holding `rel` and `rel`'s last name; `None` for the root itself.
    pub(super) fn parent(&self, rel: &RelPath) -> Result<Option<(OwnedFd, CString)>, Fail> {
        let comps: Vec<&[u8]> = rel.components().collect();
        match comps.split_last() {
            None => Ok(None),
            Some((last, dirs)) => Ok(Some((self.walk(dirs)?, cstr(last)?))),
        }
    }

    /// The entry at `rel`, as `lstat` sees it.
    pub fn lstat(&self, rel: &RelPath) -> Result<Entry, Fail> {
        match self.parent(rel)? {
            None => {
                let f = File::from(self.fd.try_clone()?);
                Ok(entry_of_metadata(rel.clone(), &f.metadata()?))
            }
            Some((dir, name)) => lstat_at(dir.as_raw_fd(), &name, rel.clone()),
        }
    }

    /// Open the regular file at `rel` for reading. Anything else (directory, symlink, fifo, device)
    /// is refused before it is opened, and checked again on the descriptor, so a fifo swapped in
    /// cannot block us.
    pub fn open_file(&self, rel: &RelPath) -> Result<File, Fail> {
        self.open_file_with_metadata(rel).map(|(f, _)| f)
    }

    /// [`Root::open_file`], with the metadata of the open descriptor (the check's own `fstat`,
    /// so a read needs no second one to know what it opened).
    pub fn open_file_with_metadata(
        &self,
        rel: &RelPath,
    ) -> Result<(File, std::fs::Metadata), Fail> {
        let not_file = || Fail::new(ErrorCode::NotAFile, "not a regular file");
        let (dir, name) = self.parent(rel)?.ok_or_else(not_file)?;
        let e = lstat_at(dir.as_raw_fd(), &name, rel.clone())?;
        match e.file_type {
            FileType::File => {}
            FileType::Symlink => {
                return Err(Fail::new(
                    ErrorCode::Symlink,
                    "is a symlink (never followed)",
                ))
            }
            _ => return Err(not_file()),
        }
        let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY;
        // O_NOATIME keeps reading from changing the source's access times; the kernel allows it
        // only to the file's owner (or root), so fall back without it.
        let fd = match openat(dir.as_raw_fd(), &name, flags | libc::O_NOATIME) {
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                openat(dir.as_raw_fd(), &name, flags)?
            }
            r => r?,
        };
        let f = File::from(fd);
        let meta = f.metadata()?;
        if !meta.file_type().is_file() {
            return Err(not_file());
        }
        Ok((f, meta))
    }
}

/// The kernel's `struct open_how` (libc's is non-exhaustive).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// Set once the kernel said it has no `openat2`.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// `openat2(dir, comps joined by '/', flags, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`: the whole
/// path in one call, refused by the kernel if any component is a symlink (magic links included)
/// or it would leave `dir`. `None` when it failed or the kernel lacks it: the caller then walks.
fn open_beneath(dir: RawFd, comps: &[&[u8]], flags: libc::c_int) -> Option<OwnedFd> {
    if NO_OPENAT2.load(Ordering::Relaxed) {
        return None;
    }
    let mut path = Vec::with_capacity(comps.iter().map(|c| c.len() + 1).sum());
    for (i, c) in comps.iter().enumerate() {
        if i > 0 {
            path.push(b'/');
        }
        path.extend_from_slice(c);
    }
    let path = CString::new(path).ok()?;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS,
    };
    loop {
        // SAFETY: valid C string and `open_how` of the size given; a returned descriptor is ours.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir,
                path.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if fd >= 0 {
            // SAFETY: a fresh descriptor from openat2.
            return Some(unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
        }
        match io::Error::last_os_error().raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::ENOSYS) => {
                NO_OPENAT2.store(true, Ordering::Relaxed);
                return None;
            }
            _ => return None,
        }
    }
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)` as an [`Entry`] named `rel` (with the target of a
/// symlink read by `readlinkat`).
pub fn lstat_at(dir: RawFd, name: &CString, rel: RelPath) -> Result<Entry, Fail> {
    // SAFETY: all-zero is a valid `stat64`; fstatat fills it.
    let mut st: libc::stat64 = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor, C string and out pointer.
    cvt(unsafe { libc::fstatat64(dir, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) })?;
    let mode = st.st_mode;
    let file_type = FileType::from_mode(mode)
        .ok_or_else(|| Fail::new(ErrorCode::Io, format!("unknown file type in mode {mode:o}")))?;
    let target = if file_type == FileType::Symlink {
        readlink_at(dir, name)?
    } else {
        Vec::new()
    };
    Ok(Entry {
        path: rel,
        file_type,
        mode: mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
        size: st.st_size as u64,
        mtime: time(st.st_mtime, st.st_mtime_nsec),
        ctime: time(st.st_ctime, st.st_ctime_nsec),
        dev: st.st_dev,
        ino: st.st_ino,
        nlink: st.st_nlink,
        target,
    })
}

fn time(sec: i64, nsec: i64) -> Time {
    Time {
        sec,
        nsec: nsec.clamp(0, 999_999_999) as u32,
    }
}

/// The metadata of an open descriptor (std's `fstat`) as an [`Entry`] named `rel`.
pub fn entry_of_metadata(rel: RelPath, m: &std::fs::Metadata) -> Entry {
    Entry {
        path: rel,
        file_type: FileType::from_mode(m.mode()).unwrap_or(FileType::File),
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        size: m.size(),
        mtime: time(m.mtime(), m.mtime_nsec()),
        ctime: time(m.ctime(), m.ctime_nsec()),
        dev: m.dev(),
        ino: m.ino(),
        nlink: m.nlink(),
        target: Vec::new(),
    }
}

fn readlink_at(dir: RawFd, name: &CString) -> Result<Vec<u8>, Fail> {
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: the buffer is valid for buf.len() bytes.
        let n = unsafe {
            libc::readlinkat(
                dir,
                name.as_ptr(),
                buf.as_mut_ptr() as *mut libc::c_char,
                buf.len(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error().into());
        }
        let n = n as usize;
        if n < buf.len() {
            buf.truncate(n);
            return Ok(buf);
        }
        if buf.len() >= super::proto::MAX_PATH {
            return Err(Fail::new(ErrorCode::Io, "symlink target too long"));
        }
        buf.resize(buf.len() * 4, 0);
    }
}

/// The names in an open directory, without `.` and `..`, in the order the file system gives.
pub fn read_names(dir: &OwnedFd) -> Result<Vec<Vec<u8>>, Fail> {
    Ok(read_entries(dir)?.into_iter().map(|(n, _)| n).collect())
}

/// [`read_names`] with each name's inode number as the directory gives it (`d_ino`).
pub fn read_entries(dir: &OwnedFd) -> Result<Vec<(Vec<u8>, u64)>, Fail> {
    // fdopendir takes its descriptor; give it a duplicate so `dir` stays ours.
    let dup = dir.try_clone()?;
    let raw = std::os::fd::IntoRawFd::into_raw_fd(dup);
    // SAFETY: `raw` is a valid directory descriptor we own; on success DIR owns it.
    let d = unsafe { libc::fdopendir(raw) };
    if d.is_null() {
        let e = io::Error::last_os_error();
        // SAFETY: fdopendir failed, so we still own `raw`.
        unsafe { libc::close(raw) };
        return Err(e.into());
    }
    // The duplicate shares the file offset with `dir`: start from the beginning.
    // SAFETY: `d` is a valid DIR*.
    unsafe { libc::rewinddir(d) };
    let mut names = Vec::new();
    let result = loop {
        // SAFETY: errno is thread-local; readdir64 reports errors only through it.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: `d` is a valid DIR*; the entry is valid until the next readdir on `d`.
        let ent = unsafe { libc::readdir64(d) };
        if ent.is_null() {
            let e = io::Error::last_os_error();
            break match e.raw_os_error() {
                Some(0) | None => Ok(()),
                _ => Err(e),
            };
        }
        // SAFETY: d_name is NUL-terminated within the entry.
        let name = unsafe { std::ffi::CStr::from_ptr((*ent).d_name.as_ptr()) }.to_bytes();
        if name != b"." && name != b".." {
            // SAFETY: as above.
            names.push((name.to_vec(), unsafe { (*ent).d_ino }));
        }
    };
    // SAFETY: `d` is valid and closed once.
    unsafe { libc::closedir(d) };
    result?;
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn rp(s: &str) -> RelPath {
        RelPath::new(s).unwrap()
    }

    #[test]
    fn never_leaves_the_root_through_a_symlink() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"s").unwrap();
        std::fs::create_dir(t.path().join("d")).unwrap();
        std::fs::write(t.path().join("d/f"), b"hello").unwrap();
        symlink(outside.path(), t.path().join("d/out")).unwrap();
        symlink("f", t.path().join("d/lf")).unwrap();
        let root = Root::open(t.path().as_os_str().as_encoded_bytes()).unwrap();

        let e = root.lstat(&rp("d/out")).unwrap();
        assert_eq!(e.file_type, FileType::Symlink);
        assert_eq!(e.target, outside.path().as_os_str().as_encoded_bytes());
        // through the symlink: refused, whether as a directory or a file
        assert_eq!(
            root.lstat(&rp("d/out/secret")).unwrap_err().code,
            ErrorCode::Symlink
        );
        assert_eq!(
            root.open_file(&rp("d/out/secret")).unwrap_err().code,
            ErrorCode::Symlink
        );
        assert_eq!(
            root.open_dir(&rp("d/out")).unwrap_err().code,
            ErrorCode::Symlink
        );
        assert_eq!(
            root.open_file(&rp("d/lf")).unwrap_err().code,
            ErrorCode::Symlink
        );
        // ordinary things work
        let mut s = String::new();
        std::io::Read::read_to_string(&mut root.open_file(&rp("d/f")).unwrap(), &mut s).unwrap();
        assert_eq!(s, "hello");
        assert_eq!(
            root.open_file(&rp("d")).unwrap_err().code,
            ErrorCode::NotAFile
        );
        assert_eq!(
            root.open_file(&RelPath::root()).unwrap_err().code,
            ErrorCode::NotAFile
        );
        assert_eq!(
            root.lstat(&rp("nope")).unwrap_err().code,
            ErrorCode::NotFound
        );
        assert_eq!(
            root.lstat(&rp("d/f/x")).unwrap_err().code,
            ErrorCode::NotADirectory
        );
        assert_eq!(
            root.lstat(&RelPath::root()).unwrap().file_type,
            FileType::Dir
        );
        let mut names = read_names(&root.open_dir(&rp("d")).unwrap()).unwrap();
        names.sort();
        assert_eq!(names, [b"f".to_vec(), b"lf".to_vec(), b"out".to_vec()]);
    }

    #[test]
    fn one_call_open_refuses_what_the_walk_refuses() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("d/e")).unwrap();
        symlink(outside.path(), t.path().join("d/out")).unwrap();
        symlink("e", t.path().join("d/le")).unwrap();
        let root = Root::open(t.path().as_os_str().as_encoded_bytes()).unwrap();
        let fd = root.fd.as_raw_fd();
        // a symlink as the last or a middle component, or a name that is not there: no fd
        for bad in [
            &[&b"d"[..], b"out"][..],
            &[b"d", b"le"],
            &[b"d", b"le", b"x"],
            &[b"x"],
        ] {
            assert!(open_beneath(fd, bad, DIR_FLAGS).is_none(), "{bad:?}");
        }
        if NO_OPENAT2.load(Ordering::Relaxed) {
            return; // a kernel before 5.6: the walk does it all
        }
        let e = open_beneath(fd, &[b"d", b"e"], DIR_FLAGS).expect("d/e opens");
        let st = File::from(e).metadata().unwrap();
        let want = std::fs::metadata(t.path().join("d/e")).unwrap();
        assert_eq!((st.dev(), st.ino()), (want.dev(), want.ino()));
        // swapped for a symlink between requests: refused, by both ways
        std::fs::rename(t.path().join("d/e"), outside.path().join("e")).unwrap();
        symlink(outside.path().join("e"), t.path().join("d/e")).unwrap();
        assert!(open_beneath(fd, &[b"d", b"e"], DIR_FLAGS).is_none());
        assert_eq!(
            root.open_dir(&rp("d/e")).unwrap_err().code,
            ErrorCode::Symlink
        );
    }

    #[test]
    fn a_fifo_is_not_opened() {
        let t = tempfile::tempdir().unwrap();
        let p = CString::new(t.path().join("fifo").as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: valid C string.
        assert_eq!(unsafe { libc::mkfifo(p.as_ptr(), 0o600) }, 0);
        let root = Root::open(t.path().as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(root.lstat(&rp("fifo")).unwrap().file_type, FileType::Fifo);
        assert_eq!(
            root.open_file(&rp("fifo")).unwrap_err().code,
            ErrorCode::NotAFile
        );
    }
}
