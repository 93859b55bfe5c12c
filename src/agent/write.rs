//! Writes beneath a root (protocol version 2): files, directories, symlinks, hard links,
//! metadata, removal and the clean-up of our temporary files. The server calls these only on a
//! writable connection (see [`super::server`]).
//!
//! Every path is resolved like a read ([`super::fs`]): one component at a time with
//! `O_NOFOLLOW|O_DIRECTORY`, so a symlink anywhere along the way is refused, never followed,
//! and nothing outside the root can be touched. The last component is handled with the `*at`
//! calls relative to its directory, with `AT_SYMLINK_NOFOLLOW` or on a descriptor opened with
//! `O_NOFOLLOW`. New entries are made under a temporary name, `.ocm-<16 hex>.tmp`, in the same
//! directory, get their owner, mode and times, and only then are renamed over the real name, so
//! a real name never holds a half-written file. A killed agent can leave temporary names behind;
//! [`Root::cleanup`] removes them. Nothing here fsyncs a file: `Sync` (`syncfs`) is the one
//! durability point of a pass.
//!
//! Only functions that exist in glibc 2.17 are used (the agent must run on CentOS 7).

use super::fs::{self, cstr, cvt, openat, openat_mode, Fail, Root, DIR_FLAGS};
use super::proto::{Account, ErrorCode, FileType, RelPath, Time};
use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};

/// Owner ids meaning "leave as it is" (as for `chown(2)`).
pub const KEEP: u32 = u32::MAX;

/// Returns true if and only if `name` is one of our temporary names: `.ocm-`, 16 lower-case hex
/// digits, `.tmp`.
pub fn is_tmp_name(name: &[u8]) -> bool {
    name.len() == 5 + 16 + 4
        && name.starts_with(b".ocm-")
        && name.ends_with(b".tmp")
        && name[5..21]
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

/// A fresh temporary name: `.ocm-<16 hex>.tmp`, unpredictable enough that two agents (or a
/// leftover of a killed one) do not collide; creation is `O_EXCL` anyway and retried.
fn tmp_name() -> CString {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut h = blake3::Hasher::new();
    h.update(&std::process::id().to_le_bytes());
    h.update(&n.to_le_bytes());
    h.update(&now.to_le_bytes());
    h.update(&(&n as *const u64 as usize).to_le_bytes());
    let hex = super::client::hex(&h.finalize().as_bytes()[..8]);
    CString::new(format!(".ocm-{hex}.tmp")).expect("no NUL in hex")
}

/// Make something under a fresh temporary name with `make`, retrying on `EEXIST`.
fn with_tmp<T>(mut make: impl FnMut(&CString) -> io::Result<T>) -> Result<(CString, T), Fail> {
    let mut tries = 0;
    loop {
        let name = tmp_name();
        match make(&name) {
            Ok(t) => return Ok((name, t)),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) && tries < 16 => tries += 1,
            Err(e) => return Err(e.into()),
        }
    }
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

fn unlinkat(dir: RawFd, name: &CStr, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: valid descriptor and C string.
    cvt(unsafe { libc::unlinkat(dir, name.as_ptr(), flags) }).map(|_| ())
}

fn renameat(dir: RawFd, from: &CStr, to: &CStr) -> io::Result<()> {
    // SAFETY: valid descriptor and C strings.
    cvt(unsafe { libc::renameat(dir, from.as_ptr(), dir, to.as_ptr()) }).map(|_| ())
}

fn timespecs(t: Time) -> [libc::timespec; 2] {
    let ts = libc::timespec {
        tv_sec: t.sec as libc::time_t,
        tv_nsec: t.nsec as libc::c_long,
    };
    [ts, ts]
}

/// Where an owner, mode or time change goes: an open descriptor, or a name in a directory (for
/// symlinks, changed with `AT_SYMLINK_NOFOLLOW`).
#[derive(Clone, Copy)]
enum On<'a> {
    Fd(RawFd),
    At(RawFd, &'a CStr),
}

fn stat_of(on: On<'_>) -> io::Result<libc::stat64> {
    // SAFETY: all-zero is a valid stat64, filled by the call.
    let mut st: libc::stat64 = unsafe { std::mem::zeroed() };
    match on {
        // SAFETY: valid descriptor and out pointer.
        On::Fd(fd) => cvt(unsafe { libc::fstat64(fd, &mut st) })?,
        // SAFETY: valid descriptor, C string and out pointer.
        On::At(dir, name) => {
            cvt(unsafe { libc::fstatat64(dir, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) })?
        }
    };
    Ok(st)
}

/// Give an entry the owner asked for. As root: always. Otherwise only when it differs from what
/// the entry has, and the kernel's refusal is a clear [`ErrorCode::PermissionDenied`].
fn set_owner(on: On<'_>, uid: u32, gid: u32) -> Result<(), Fail> {
    if uid == KEEP && gid == KEEP {
        return Ok(());
    }
    if euid() != 0 {
        let st = stat_of(on)?;
        let differs = (uid != KEEP && uid != st.st_uid) || (gid != KEEP && gid != st.st_gid);
        if !differs {
            return Ok(());
        }
    }
    let r = match on {
        // SAFETY: valid descriptor.
        On::Fd(fd) => cvt(unsafe { libc::fchown(fd, uid, gid) }),
        // SAFETY: valid descriptor and C string.
        On::At(dir, name) => {
            cvt(unsafe { libc::fchownat(dir, name.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW) })
        }
    };
    r.map(|_| ()).map_err(|e| {
        if matches!(e.raw_os_error(), Some(libc::EPERM)) {
            Fail::new(
                ErrorCode::PermissionDenied,
                format!(
                    "cannot give it owner {uid}:{gid}: the agent runs as uid {} (not root); \
                     run the target's side as root or map owners to the agent's user",
                    euid()
                ),
            )
        } else {
            e.into()
        }
    })
}

fn set_mode(fd: RawFd, mode: u32) -> Result<(), Fail> {
    // SAFETY: valid descriptor.
    cvt(unsafe { libc::fchmod(fd, mode as libc::mode_t) })?;
    Ok(())
}

/// atime and mtime := `t`, to the nanosecond.
fn set_times(on: On<'_>, t: Time) -> Result<(), Fail> {
    let ts = timespecs(t);
    match on {
        // SAFETY: valid descriptor and a two-element array.
        On::Fd(fd) => cvt(unsafe { libc::futimens(fd, ts.as_ptr()) })?,
        // SAFETY: valid descriptor, C string and array.
        On::At(dir, name) => cvt(unsafe {
            libc::utimensat(dir, name.as_ptr(), ts.as_ptr(), libc::AT_SYMLINK_NOFOLLOW)
        })?,
    };
    Ok(())
}

/// The directory holding `rel` and its last name; the root itself is refused for `what`.
fn parent_of(root: &Root, rel: &RelPath, what: &str) -> Result<(OwnedFd, CString), Fail> {
    root.parent(rel)?.ok_or_else(|| {
        Fail::new(
            ErrorCode::BadRequest,
            format!("cannot {what} the root itself"),
        )
    })
}

/// Returns true if and only if the 4 KiB-or-shorter block is all zeros.
fn is_zero(b: &[u8]) -> bool {
    let mut chunks = b.chunks_exact(64);
    // An OR over fixed 64-byte chunks vectorises; `all` on bytes would not.
    let body = chunks
        .by_ref()
        .all(|c| c.iter().fold(0u8, |a, &x| a | x) == 0);
    body && chunks.remainder().iter().all(|&x| x == 0)
}

/// Sparse-write granularity: an all-zero block of this size (aligned in the file) is skipped.
const BLOCK: u64 = 4096;

/// A file being written by a `Put`: under its temporary name until [`PutFile::finish`]. Dropped
/// unfinished, the temporary file is removed.
pub struct PutFile {
    dir: OwnedFd,
    name: CString,
    tmp: CString,
    file: File,
    size: u64,
    written: u64,
    /// The end of the last bytes written to the file (not skipped as a hole).
    stored: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: Time,
    committed: bool,
}

impl Root {
    /// Start a `Put`: the temporary file in `rel`'s directory, created `O_EXCL` with mode 0600.
    pub fn put_begin(
        &self,
        rel: &RelPath,
        size: u64,
        mode: u32,
        uid: u32,
        gid: u32,
        mtime: Time,
    ) -> Result<PutFile, Fail> {
        let (dir, name) = parent_of(self, rel, "write a file over")?;
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
        let (tmp, fd) = with_tmp(|t| openat_mode(dir.as_raw_fd(), t, flags, 0o600))?;
        Ok(PutFile {
            dir,
            name,
            tmp,
            file: File::from(fd),
            size,
            written: 0,
            stored: 0,
            mode,
            uid,
            gid,
            mtime,
            committed: false,
        })
    }
}

impl PutFile {
    /// Bytes received so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Append the next bytes of the file. All-zero 4 KiB blocks (aligned in the file) are not
    /// written, so they stay holes; more bytes than the `Put`'s size is [`ErrorCode::BadData`].
    pub fn write(&mut self, data: &[u8]) -> Result<(), Fail> {
        let end = self.written + data.len() as u64;
        if end > self.size {
            return Err(Fail::new(
                ErrorCode::BadData,
                format!("more than the announced {} bytes", self.size),
            ));
        }
        let base = self.written;
        let mut i = 0usize;
        // The start of the current run of non-zero blocks, if any.
        let mut run: Option<usize> = None;
        while i < data.len() {
            let abs = base + i as u64;
            let step = (BLOCK - abs % BLOCK) as usize;
            let j = (i + step).min(data.len());
            if is_zero(&data[i..j]) {
                if let Some(s) = run.take() {
                    self.file.write_all_at(&data[s..i], base + s as u64)?;
                    self.stored = base + i as u64;
                }
            } else if run.is_none() {
                run = Some(i);
            }
            i = j;
        }
        if let Some(s) = run {
            self.file.write_all_at(&data[s..], base + s as u64)?;
            self.stored = end;
        }
        self.written = end;
        Ok(())
    }

    /// Check the byte count, set size, owner, mode and times, and rename over the real name.
    /// Returns the file's size.
    pub fn finish(mut self) -> Result<u64, Fail> {
        if self.written != self.size {
            return Err(Fail::new(
                ErrorCode::BadData,
                format!(
                    "{} bytes came, the Put announced {}",
                    self.written, self.size
                ),
            ));
        }
        // Holes at the end are not written: the size makes them (a file written to its end
        // has it already).
        if self.stored != self.size {
            self.file.set_len(self.size)?;
        }
        let fd = self.file.as_raw_fd();
        set_owner(On::Fd(fd), self.uid, self.gid)?;
        set_mode(fd, self.mode)?;
        set_times(On::Fd(fd), self.mtime)?;
        renameat(self.dir.as_raw_fd(), &self.tmp, &self.name)?;
        self.committed = true;
        Ok(self.size)
    }
}

impl Drop for PutFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = unlinkat(self.dir.as_raw_fd(), &self.tmp, 0);
        }
    }
}

impl Root {
    /// `Mkdir`: create the directory (parent must exist) or take the one there, then set owner
    /// and mode. Something else there is [`ErrorCode::Exists`].
    pub fn mkdir(&self, rel: &RelPath, mode: u32, uid: u32, gid: u32) -> Result<(), Fail> {
        let fd = match self.parent(rel)? {
            None => self.fd.try_clone()?,
            Some((dir, name)) => {
                // SAFETY: valid descriptor and C string.
                let r = cvt(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), 0o700) });
                match r {
                    Ok(_) => {}
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                match openat(dir.as_raw_fd(), &name, DIR_FLAGS) {
                    Ok(fd) => fd,
                    Err(e)
                        if matches!(e.raw_os_error(), Some(libc::ENOTDIR) | Some(libc::ELOOP)) =>
                    {
                        return Err(Fail::new(
                            ErrorCode::Exists,
                            "something that is not a directory is there (remove it first)",
                        ))
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        set_owner(On::Fd(fd.as_raw_fd()), uid, gid)?;
        set_mode(fd.as_raw_fd(), mode)
    }

    /// `Symlink`: made under a temporary name, owner and times set on the link itself, renamed.
    pub fn symlink(
        &self,
        rel: &RelPath,
        link: &[u8],
        uid: u32,
        gid: u32,
        mtime: Time,
    ) -> Result<(), Fail> {
        let (dir, name) = parent_of(self, rel, "make a symlink of")?;
        let d = dir.as_raw_fd();
        let target = cstr(link)?;
        let (tmp, ()) = with_tmp(|t| {
            // SAFETY: valid C strings and descriptor.
            cvt(unsafe { libc::symlinkat(target.as_ptr(), d, t.as_ptr()) }).map(|_| ())
        })?;
        let r = set_owner(On::At(d, &tmp), uid, gid)
            .and_then(|()| set_times(On::At(d, &tmp), mtime))
            .and_then(|()| renameat(d, &tmp, &name).map_err(Fail::from));
        if r.is_err() {
            let _ = unlinkat(d, &tmp, 0);
        }
        r
    }

    /// `Link`: a hard link to `existing` (same root), made under a temporary name and renamed.
    pub fn link(&self, rel: &RelPath, existing: &RelPath) -> Result<(), Fail> {
        let (dir, name) = parent_of(self, rel, "link over")?;
        let (edir, ename) = parent_of(self, existing, "link to")?;
        let e = fs::lstat_at(edir.as_raw_fd(), &ename, existing.clone())?;
        if e.file_type == FileType::Dir {
            return Err(Fail::new(
                ErrorCode::NotAFile,
                "a directory cannot be hard-linked",
            ));
        }
        let d = dir.as_raw_fd();
        let (tmp, ()) = with_tmp(|t| {
            // SAFETY: valid descriptors and C strings; flags 0: a symlink is linked, not followed.
            cvt(unsafe { libc::linkat(edir.as_raw_fd(), ename.as_ptr(), d, t.as_ptr(), 0) })
                .map(|_| ())
        })?;
        let r = renameat(d, &tmp, &name);
        // When both names are already links to the same inode, rename(2) does nothing and the
        // temporary name stays: remove it in every case.
        let _ = unlinkat(d, &tmp, 0);
        Ok(r?)
    }

    /// `SetMeta`: what is given of mode, owner and times, never through a symlink.
    pub fn set_meta(
        &self,
        rel: &RelPath,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        mtime: Option<Time>,
    ) -> Result<(), Fail> {
        let (uid, gid) = (uid.unwrap_or(KEEP), gid.unwrap_or(KEEP));
        let on_fd = |fd: RawFd| -> Result<(), Fail> {
            set_owner(On::Fd(fd), uid, gid)?;
            if let Some(m) = mode {
                set_mode(fd, m)?;
            }
            if let Some(t) = mtime {
                set_times(On::Fd(fd), t)?;
            }
            Ok(())
        };
        let Some((dir, name)) = self.parent(rel)? else {
            return on_fd(self.fd.as_raw_fd());
        };
        let d = dir.as_raw_fd();
        let e = fs::lstat_at(d, &name, rel.clone())?;
        match e.file_type {
            FileType::Symlink => {
                // A symlink has no mode of its own; owner and times are the link's.
                set_owner(On::At(d, &name), uid, gid)?;
                if let Some(t) = mtime {
                    set_times(On::At(d, &name), t)?;
                }
                Ok(())
            }
            FileType::File | FileType::Dir => {
                let mut flags =
                    libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY;
                if e.file_type == FileType::Dir {
                    flags |= libc::O_DIRECTORY;
                }
                match openat(d, &name, flags) {
                    Ok(fd) => {
                        let st = stat_of(On::Fd(fd.as_raw_fd()))?;
                        if FileType::from_mode(st.st_mode) != Some(e.file_type) {
                            return Err(Fail::new(ErrorCode::Io, "changed while being set"));
                        }
                        on_fd(fd.as_raw_fd())
                    }
                    // Not readable by us (a non-root agent, mode 000): by path.
                    Err(err) if err.raw_os_error() == Some(libc::EACCES) => {
                        self.set_meta_by_path(d, &name, mode, uid, gid, mtime)
                    }
                    Err(err) => Err(err.into()),
                }
            }
            // Fifos, sockets, devices: never opened (a device open can have effects).
            _ => self.set_meta_by_path(d, &name, mode, uid, gid, mtime),
        }
    }

    /// Metadata of an entry we must not or cannot open for reading: an `O_PATH|O_NOFOLLOW`
    /// descriptor pins the inode, and `/proc/self/fd/N` names exactly it.
    fn set_meta_by_path(
        &self,
        dir: RawFd,
        name: &CString,
        mode: Option<u32>,
        uid: u32,
        gid: u32,
        mtime: Option<Time>,
    ) -> Result<(), Fail> {
        let fd = openat(dir, name, libc::O_PATH | libc::O_NOFOLLOW)?;
        let st = stat_of(On::Fd(fd.as_raw_fd()))?;
        if FileType::from_mode(st.st_mode) == Some(FileType::Symlink) {
            return Err(Fail::new(ErrorCode::Io, "changed while being set"));
        }
        let proc = CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("no NUL");
        // `fchownat` with AT_EMPTY_PATH works on O_PATH descriptors.
        if !(uid == KEEP && gid == KEEP) {
            let differs = (uid != KEEP && uid != st.st_uid) || (gid != KEEP && gid != st.st_gid);
            if euid() == 0 || differs {
                let empty = CString::default();
                // SAFETY: valid descriptor and C string.
                cvt(unsafe {
                    libc::fchownat(
                        fd.as_raw_fd(),
                        empty.as_ptr(),
                        uid,
                        gid,
                        libc::AT_EMPTY_PATH,
                    )
                })?;
            }
        }
        if let Some(m) = mode {
            // SAFETY: valid C string.
            cvt(unsafe { libc::fchmodat(libc::AT_FDCWD, proc.as_ptr(), m as libc::mode_t, 0) })?;
        }
        if let Some(t) = mtime {
            let ts = timespecs(t);
            // SAFETY: valid C string and array.
            cvt(unsafe { libc::utimensat(libc::AT_FDCWD, proc.as_ptr(), ts.as_ptr(), 0) })?;
        }
        Ok(())
    }

    /// `Remove`: unlink the entry, or a directory with everything in it (symlinks inside are
    /// unlinked, never followed). Missing is not an error. Returns how many entries went.
    pub fn remove(&self, rel: &RelPath) -> Result<u64, Fail> {
        let (dir, name) = match self.parent(rel) {
            Ok(Some(x)) => x,
            Ok(None) => {
                return Err(Fail::new(
                    ErrorCode::BadRequest,
                    "cannot remove the root itself",
                ))
            }
            // A missing parent: the entry is gone already.
            Err(f) if f.code == ErrorCode::NotFound => return Ok(0),
            Err(f) => return Err(f),
        };
        let d = dir.as_raw_fd();
        match unlinkat(d, &name, 0) {
            Ok(()) => Ok(1),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(0),
            // Linux says EISDIR for a directory.
            Err(e) if e.raw_os_error() == Some(libc::EISDIR) => remove_tree(&dir, &name),
            Err(e) => Err(e.into()),
        }
    }

    /// `Cleanup`: remove our temporary files at or below `rel`. Returns (removed, directories
    /// that could not be read).
    pub fn cleanup(&self, rel: &RelPath) -> Result<(u64, u64), Fail> {
        let e = self.lstat(rel)?;
        if e.file_type != FileType::Dir {
            let last = rel.components().last().unwrap_or(b"");
            if is_tmp_name(last) {
                return Ok((self.remove(rel)?, 0));
            }
            return Ok((0, 0));
        }
        let (mut removed, mut unreadable) = (0u64, 0u64);
        let mut stack = vec![rel.clone()];
        while let Some(dir) = stack.pop() {
            let listed = self
                .open_dir(&dir)
                .and_then(|fd| fs::read_names(&fd).map(|n| (fd, n)));
            let Ok((fd, names)) = listed else {
                unreadable += 1;
                continue;
            };
            for name in names {
                let c = cstr(&name)?;
                if is_tmp_name(&name) {
                    match unlinkat(fd.as_raw_fd(), &c, 0) {
                        Ok(()) => {
                            removed += 1;
                            continue;
                        }
                        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                        // A directory with our name is not ours: look inside like any other.
                        Err(e) if e.raw_os_error() == Some(libc::EISDIR) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                let Ok(st) = stat_of(On::At(fd.as_raw_fd(), &c)) else {
                    continue;
                };
                if FileType::from_mode(st.st_mode) == Some(FileType::Dir) {
                    if let Ok(p) = dir.join(&name) {
                        stack.push(p);
                    }
                }
            }
        }
        Ok((removed, unreadable))
    }

    /// `Sync`: flush the root's file system to disk.
    pub fn sync(&self) -> Result<(), Fail> {
        // SAFETY: valid descriptor.
        cvt(unsafe { libc::syncfs(self.fd.as_raw_fd()) })?;
        Ok(())
    }
}

/// File bytes written between two kicks of [`Writeback`].
pub const WRITEBACK_EVERY: u64 = 64 << 20;

/// Writeback started while a pass writes, so that its one `Sync` at the end finds little left
/// to flush. A host with much memory keeps gigabytes dirty (the kernel starts writing at 10 % of
/// memory, or after 30 s), and the final `syncfs` then writes them all while the pass waits: 4 s
/// of a 38 s first copy of 100,000 files (bench/README.md, session 9). Here, after every
/// [`WRITEBACK_EVERY`] bytes written, a thread of its own runs `syncfs` on the roots while the
/// writes go on. At most one flush runs and one waits; further kicks are dropped. Durability is
/// still the `Sync` request's: this only spreads the disk's work over the pass. An agent told to
/// exit while its thread is in `syncfs` ends when that returns (the operator waits 5 s for it,
/// then kills its ssh and goes on); the final `Sync` would have waited as long.
pub struct Writeback {
    kick: std::sync::mpsc::SyncSender<()>,
    written: u64,
    /// Flushes done (every root's `syncfs` returned 0).
    flushed: std::sync::Arc<AtomicU64>,
}

impl Writeback {
    /// A flusher for `roots`. `None` when no root could be opened again or no thread started:
    /// writes go on, and only the final `Sync` flushes.
    ///
    /// Each root is opened again (`.` beneath it), not `dup`ed: since Linux 5.8 `syncfs` reports
    /// a writeback error (EIO, ENOSPC) once per open file, and a flush here that met one would
    /// otherwise mark it seen for the root's own descriptor too, so that the final `Sync`
    /// returned 0. With an open file of its own, the thread's errors are its own (ignored); the
    /// `Sync` still sees every error since the connection opened its roots.
    pub fn start<'a>(roots: impl Iterator<Item = &'a Root>) -> Option<Writeback> {
        let fds: Vec<OwnedFd> = roots
            .filter_map(|r| openat(r.fd.as_raw_fd(), &cstr(b".").ok()?, DIR_FLAGS).ok())
            .collect();
        if fds.is_empty() {
            return None;
        }
        let (kick, kicked) = std::sync::mpsc::sync_channel::<()>(1);
        let flushed = std::sync::Arc::new(AtomicU64::new(0));
        let done = flushed.clone();
        std::thread::Builder::new()
            .name("writeback".into())
            .spawn(move || {
                for () in kicked {
                    // SAFETY: descriptors this thread owns. A failure is the final `Sync`'s to
                    // report (see above); every root is flushed even after one failed.
                    let failed = fds
                        .iter()
                        .filter(|fd| unsafe { libc::syncfs(fd.as_raw_fd()) } != 0)
                        .count();
                    if failed == 0 {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
            .ok()?;
        Some(Writeback {
            kick,
            written: 0,
            flushed,
        })
    }

    /// Flushes done so far.
    pub fn flushed(&self) -> u64 {
        self.flushed.load(Ordering::Relaxed)
    }

    /// `n` more bytes written: start a flush when enough have been.
    pub fn wrote(&mut self, n: u64) {
        self.written += n;
        if self.written >= WRITEBACK_EVERY {
            self.written = 0;
            let _ = self.kick.try_send(());
        }
    }
}

/// Remove the directory `name` in `parent` and everything in it, depth first, holding one
/// descriptor per level, never following a symlink (each level is opened `O_NOFOLLOW`).
fn remove_tree(parent: &OwnedFd, name: &CString) -> Result<u64, Fail> {
    struct Level {
        fd: OwnedFd,
        name: CString,
        left: Vec<Vec<u8>>,
    }
    let open = |dir: RawFd, name: &CString| -> Result<Level, Fail> {
        let fd = openat(dir, name, DIR_FLAGS)?;
        let left = fs::read_names(&fd)?;
        Ok(Level {
            fd,
            name: name.clone(),
            left,
        })
    };
    let mut stack = vec![open(parent.as_raw_fd(), name)?];
    let mut removed = 0u64;
    while let Some(top) = stack.last_mut() {
        if let Some(n) = top.left.pop() {
            let c = cstr(&n)?;
            match unlinkat(top.fd.as_raw_fd(), &c, 0) {
                Ok(()) => removed += 1,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) if e.raw_os_error() == Some(libc::EISDIR) => {
                    let next = open(top.fd.as_raw_fd(), &c)?;
                    stack.push(next);
                }
                Err(e) => return Err(e.into()),
            }
        } else {
            let done = stack.pop().expect("not empty");
            let p = stack
                .last()
                .map_or(parent.as_raw_fd(), |l| l.fd.as_raw_fd());
            match unlinkat(p, &done.name, libc::AT_REMOVEDIR) {
                Ok(()) => removed += 1,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(removed)
}

/// Users and groups from `/etc/passwd` and `/etc/group` (`name:x:id:…` lines; others skipped).
pub fn accounts() -> Result<(Vec<Account>, Vec<Account>), Fail> {
    let read = |p: &str| -> Result<Vec<Account>, Fail> {
        let text =
            std::fs::read(p).map_err(|e| Fail::new(ErrorCode::of_io(&e), format!("{p}: {e}")))?;
        Ok(parse_accounts(&text))
    };
    Ok((read("/etc/passwd")?, read("/etc/group")?))
}

/// The `name:x:id:…` lines of a passwd or group file.
pub fn parse_accounts(text: &[u8]) -> Vec<Account> {
    text.split(|&b| b == b'\n')
        .filter_map(|line| {
            let mut f = line.split(|&b| b == b':');
            let name = std::str::from_utf8(f.next()?).ok()?;
            let _pw = f.next()?;
            let id: u32 = std::str::from_utf8(f.next()?).ok()?.parse().ok()?;
            (!name.is_empty() && !name.starts_with('#') && !name.starts_with('+')).then(|| {
                Account {
                    id,
                    name: name.to_string(),
                }
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn rp(s: &str) -> RelPath {
        RelPath::new(s).unwrap()
    }

    #[test]
    fn writeback_flushes_once_per_share_of_bytes_written() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::open(t.path().as_os_str().as_encoded_bytes()).unwrap();
        let mut w = Writeback::start(std::iter::once(&root)).unwrap();
        let wait_for = |w: &Writeback, n: u64| {
            let t0 = std::time::Instant::now();
            while w.flushed() < n && t0.elapsed() < std::time::Duration::from_secs(20) {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            w.flushed()
        };
        w.wrote(WRITEBACK_EVERY - 1);
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert_eq!(w.flushed(), 0, "not a whole share written yet");
        w.wrote(1);
        assert_eq!(wait_for(&w, 1), 1, "a share written: one flush");
        // The count starts again: half a share more starts nothing.
        w.wrote(WRITEBACK_EVERY / 2);
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert_eq!(w.flushed(), 1);
        w.wrote(WRITEBACK_EVERY / 2);
        assert_eq!(wait_for(&w, 2), 2);
    }

    #[test]
    fn temp_names() {
        let n = tmp_name();
        assert!(is_tmp_name(n.as_bytes()), "{n:?}");
        assert_ne!(tmp_name(), n);
        assert!(!is_tmp_name(b".ocm-0123456789abcdeX.tmp"));
        assert!(!is_tmp_name(b".ocm-0123456789abcdef.tmpx"));
        assert!(!is_tmp_name(b"ocm-0123456789abcdef.tmp"));
    }

    #[test]
    fn sparse_put_and_size_checks() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::open(t.path().as_os_str().as_encoded_bytes()).unwrap();
        let mut data = vec![0u8; 8 << 20];
        data[5000] = 1; // one non-zero block in the first MiB, the rest is holes
        let last = data.len() - 1;
        data[last] = 2;
        let mt = Time {
            sec: 1_600_000_000,
            nsec: 123_456_789,
        };
        let mut p = root
            .put_begin(&rp("s"), data.len() as u64, 0o640, KEEP, KEEP, mt)
            .unwrap();
        for c in data.chunks(300_001) {
            p.write(c).unwrap();
        }
        assert_eq!(p.finish().unwrap(), data.len() as u64);
        let m = std::fs::metadata(t.path().join("s")).unwrap();
        assert_eq!(std::fs::read(t.path().join("s")).unwrap(), data);
        assert_eq!(
            (m.mtime(), m.mtime_nsec(), m.mode() & 0o7777),
            (1_600_000_000, 123_456_789, 0o640)
        );
        assert!(
            m.blocks() * 512 <= 64 * 1024,
            "{} blocks: not sparse",
            m.blocks()
        );

        // too many bytes, too few: errors, and no temporary file stays
        let mut p = root.put_begin(&rp("x"), 3, 0o600, KEEP, KEEP, mt).unwrap();
        assert_eq!(p.write(b"abcd").unwrap_err().code, ErrorCode::BadData);
        drop(p);
        let p = root.put_begin(&rp("x"), 3, 0o600, KEEP, KEEP, mt).unwrap();
        assert_eq!(p.finish().unwrap_err().code, ErrorCode::BadData);
        let names: Vec<_> = std::fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["s"]);
    }

    #[test]
    fn accounts_parse() {
        let a = parse_accounts(
            b"root:x:0:0:root:/root:/bin/bash\n#c\nbad\nwww-data:x:33:33::/var/www:\n+nis\n",
        );
        assert_eq!(
            a,
            [
                Account {
                    id: 0,
                    name: "root".into()
                },
                Account {
                    id: 33,
                    name: "www-data".into()
                }
            ]
        );
        let (u, g) = accounts().unwrap();
        assert!(u.iter().any(|a| a.id == 0) && g.iter().any(|a| a.id == 0));
    }
}
