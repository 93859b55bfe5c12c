//! Messages: the typed requests and responses carried in frames, with their wire formats.
//!
//! [`super::frame`] says where a frame starts and ends; this module says what its payload means.
//! Each message has `into_frame` and `from_frame`; `from_frame` checks every length before it
//! copies, rejects values outside their range and trailing bytes, and never panics. Paths that
//! cross the wire are [`RelPath`]s in both directions: an agent refuses a request path that
//! could leave its root, and the operator refuses an entry path from an agent that could
//! (a compromised source must not be able to name `../../etc/passwd` for the target).
//!
//! Integers are big-endian. `bytes` is a `u32` length followed by that many bytes; `string` is
//! `bytes` holding UTF-8; `opt<T>` is a `u8` (0 absent, 1 present) followed by a `T` when present;
//! `time` is an `i64` of seconds and a `u32` of nanoseconds (below 10^9).
//!
//! # Reads and writes
//! Protocol version 1 had reads only. Version 2 adds write requests (`Put`, `Mkdir`, `Symlink`,
//! `Link`, `SetMeta`, `Remove`, `Cleanup`, `Sync`), which an agent carries out only when the
//! `Hello` asked for a writable connection *and* the agent was started with `agent --writable`
//! (which only the target's spawn does); otherwise each is answered with [`ErrorCode::ReadOnly`].
//! `Welcome::writable` says what was granted. The operator's source side always asks for a
//! read-only connection: the source is never written.
//!
//! # Data frames and compression
//! `Data` goes both ways (file bytes of a `ReadFile` to the operator, of a `Put` to the agent).
//! Its payload is the chunk, then one flag byte, `compressed` (0 raw, 1 one zstd frame):
//!
//! ```text
//! chunk       payload length - 1 bytes
//! compressed  u8   0: the chunk is file bytes; 1: a zstd frame of at most MAX_CHUNK bytes
//! ```
//!
//! The flag is last so that a receiver drops it with a truncate instead of moving the chunk.
//! A compressed chunk that would decompress to more than [`MAX_CHUNK`] bytes is an error (so a
//! zstd bomb costs the agent nothing), and an agent sends a chunk compressed only when that saves
//! at least a tenth of it, so the operator can forward a compressed chunk unchanged.

use super::frame::{Error, Frame, Kind};
use super::wire::{Parse, Put};
use std::fmt;

/// The first bytes of every `Hello` and `Welcome` payload.
pub const MAGIC: [u8; 8] = *b"OCMAGENT";

/// The protocol version. Both sides must speak the same one; on a mismatch the operator deploys
/// its own binary again. Bump it on any change of a format below.
pub const PROTOCOL_VERSION: u16 = 3;

/// The version of this binary, exchanged in the handshake.
pub const BINARY_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The most file bytes in one `Data` chunk, raw or once decompressed (1 MiB). Agents send
/// [`CHUNK`]-byte chunks; an operator may send up to this.
pub const MAX_CHUNK: usize = 1 << 20;
/// The size of the `Data` chunks an agent sends for a `ReadFile` (512 KiB).
pub const CHUNK: usize = 512 * 1024;

/// Longest name of one path component, in bytes (Linux NAME_MAX).
pub const MAX_NAME: usize = 255;
/// Longest relative path, in bytes. Longer than PATH_MAX on purpose: the agent resolves paths one
/// component at a time, so deep trees that `open(2)` could not name still work.
pub const MAX_PATH: usize = 64 * 1024;

/// A path relative to a root the agent was given: `/`-separated components, none empty, `.` or
/// `..`, no NUL byte, no leading or trailing `/`. The empty path is the root itself. Bytes, not
/// UTF-8: file names on a server are whatever bytes users gave them.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RelPath(Vec<u8>);

impl RelPath {
    /// The root itself.
    pub fn root() -> RelPath {
        RelPath(Vec::new())
    }

    /// Check bytes and make a path of them.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<RelPath, String> {
        let bytes = bytes.into();
        if bytes.is_empty() {
            return Ok(RelPath(bytes));
        }
        if bytes.len() > MAX_PATH {
            return Err(format!("longer than {MAX_PATH} bytes"));
        }
        if bytes.contains(&0) {
            return Err("contains a NUL byte".into());
        }
        if bytes[0] == b'/' {
            return Err("is absolute".into());
        }
        for c in bytes.split(|&b| b == b'/') {
            match c {
                b"" => return Err("has an empty component (`//` or a trailing `/`)".into()),
                b"." | b".." => return Err("has a `.` or `..` component".into()),
                c if c.len() > MAX_NAME => {
                    return Err(format!("has a component longer than {MAX_NAME} bytes"))
                }
                _ => {}
            }
        }
        Ok(RelPath(bytes))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Returns true if and only if this is the root itself.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The components, in order (none for the root).
    pub fn components(&self) -> impl Iterator<Item = &[u8]> {
        self.0.split(|&b| b == b'/').filter(|c| !c.is_empty())
    }

    /// This path with one more component; `name` must be a single valid component.
    pub fn join(&self, name: &[u8]) -> Result<RelPath, String> {
        if name.contains(&b'/') {
            return Err("a name contains `/`".into());
        }
        let mut v = Vec::with_capacity(self.0.len() + 1 + name.len());
        v.extend_from_slice(&self.0);
        if !v.is_empty() {
            v.push(b'/');
        }
        v.extend_from_slice(name);
        RelPath::new(v)
    }
}

impl fmt::Debug for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.0))
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str(".")
        } else {
            f.write_str(&String::from_utf8_lossy(&self.0))
        }
    }
}

fn get_path(p: &mut Parse<'_>, what: &'static str) -> Result<RelPath, Error> {
    let b = p.bytes(what)?;
    RelPath::new(b).map_err(|why| p.invalid(what, why))
}

/// Which root a request path is relative to (an index into `Hello::roots`) and the path in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub root: u16,
    pub path: RelPath,
}

impl Target {
    pub fn new(root: u16, path: RelPath) -> Target {
        Target { root, path }
    }
    fn put(&self, w: &mut Put) {
        w.u16(self.root).bytes(self.path.as_bytes());
    }
    fn get(p: &mut Parse<'_>) -> Result<Target, Error> {
        let root = p.u16("root")?;
        let path = get_path(p, "path")?;
        Ok(Target { root, path })
    }
}

/// The type of a file system entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FileType {
    File = 1,
    Dir = 2,
    Symlink = 3,
    Fifo = 4,
    Socket = 5,
    CharDevice = 6,
    BlockDevice = 7,
}

impl FileType {
    pub fn from_u8(b: u8) -> Option<FileType> {
        use FileType::*;
        Some(match b {
            1 => File,
            2 => Dir,
            3 => Symlink,
            4 => Fifo,
            5 => Socket,
            6 => CharDevice,
            7 => BlockDevice,
            _ => return None,
        })
    }
    /// From the `S_IFMT` bits of a `st_mode`.
    pub fn from_mode(mode: u32) -> Option<FileType> {
        use FileType::*;
        Some(match mode & 0o170000 {
            0o100000 => File,
            0o040000 => Dir,
            0o120000 => Symlink,
            0o010000 => Fifo,
            0o140000 => Socket,
            0o020000 => CharDevice,
            0o060000 => BlockDevice,
            _ => return None,
        })
    }
}

/// A point in time as the file system keeps it: seconds since the epoch and nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Time {
    pub sec: i64,
    pub nsec: u32,
}

/// One file system entry, as `lstat` sees it (symlinks are never followed).
///
/// # Format
///
/// ```text
/// path    bytes   relative to the root (a RelPath)
/// type    u8      FileType: 1 file, 2 dir, 3 symlink, 4 fifo, 5 socket, 6 char dev, 7 block dev
/// mode    u32     permission bits (st_mode & 0o7777)
/// uid     u32
/// gid     u32
/// size    u64
/// mtime   i64 seconds, u32 nanoseconds (< 10^9)
/// ctime   i64 seconds, u32 nanoseconds (< 10^9)
/// dev     u64
/// ino     u64
/// nlink   u64
/// target  bytes   the symlink's target; empty for every other type
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: RelPath,
    pub file_type: FileType,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: Time,
    pub ctime: Time,
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
    pub target: Vec<u8>,
}

/// Bytes of an entry with an empty path and no target (bounds a count before a loop).
const ENTRY_MIN: usize = 4 + 1 + 4 + 4 + 4 + 8 + 12 + 12 + 8 + 8 + 8 + 4;

impl Entry {
    fn put(&self, w: &mut Put) {
        w.bytes(self.path.as_bytes())
            .u8(self.file_type as u8)
            .u32(self.mode)
            .u32(self.uid)
            .u32(self.gid)
            .u64(self.size)
            .i64(self.mtime.sec)
            .u32(self.mtime.nsec)
            .i64(self.ctime.sec)
            .u32(self.ctime.nsec)
            .u64(self.dev)
            .u64(self.ino)
            .u64(self.nlink)
            .bytes(&self.target);
    }

    fn get(p: &mut Parse<'_>) -> Result<Entry, Error> {
        let path = get_path(p, "entry path")?;
        let t = p.u8("file type")?;
        let file_type =
            FileType::from_u8(t).ok_or_else(|| p.invalid("file type", format!("value {t}")))?;
        let mode = p.u32("mode")?;
        if mode > 0o7777 {
            return Err(p.invalid("mode", format!("{mode:o} has bits beyond 0o7777")));
        }
        let uid = p.u32("uid")?;
        let gid = p.u32("gid")?;
        let size = p.u64("size")?;
        let mtime = get_time(p, "mtime")?;
        let ctime = get_time(p, "ctime")?;
        let dev = p.u64("dev")?;
        let ino = p.u64("ino")?;
        let nlink = p.u64("nlink")?;
        let target = p.bytes("symlink target")?.to_vec();
        if file_type != FileType::Symlink && !target.is_empty() {
            return Err(p.invalid(
                "symlink target",
                "present on an entry that is not a symlink",
            ));
        }
        if target.len() > MAX_PATH || target.contains(&0) {
            return Err(p.invalid("symlink target", "too long or contains a NUL byte"));
        }
        Ok(Entry {
            path,
            file_type,
            mode,
            uid,
            gid,
            size,
            mtime,
            ctime,
            dev,
            ino,
            nlink,
            target,
        })
    }
}

fn get_time(p: &mut Parse<'_>, what: &'static str) -> Result<Time, Error> {
    let sec = p.i64(what)?;
    let nsec = p.u32(what)?;
    if nsec >= 1_000_000_000 {
        return Err(p.invalid(what, format!("{nsec} nanoseconds")));
    }
    Ok(Time { sec, nsec })
}

/// What went wrong with a request or an item, as a code the operator can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ErrorCode {
    /// The path (or a component of it) does not exist.
    NotFound = 1,
    PermissionDenied = 2,
    /// A component of the path is not a directory.
    NotADirectory = 3,
    /// The request needs a regular file (`ReadFile`, `Hash`) and this is something else.
    NotAFile = 4,
    /// The path goes through a symlink, which the agent never follows.
    Symlink = 5,
    /// The root index is not one the agent was given, or that root could not be opened.
    NoSuchRoot = 6,
    /// The request itself was malformed, unknown or out of order.
    BadRequest = 7,
    /// Any other I/O error; the message has the details.
    Io = 8,
    /// A write request on a read-only connection (every connection to the source is one).
    ReadOnly = 9,
    /// A directory stands where a file, symlink or link is to be written: remove it first.
    IsDir = 10,
    /// Something that is not a directory stands where `Mkdir` wants one.
    Exists = 11,
    /// A `Put` received more or fewer bytes than its size said, or a `Data` chunk was bad.
    BadData = 12,
}

impl ErrorCode {
    pub fn from_u16(v: u16) -> Option<ErrorCode> {
        use ErrorCode::*;
        Some(match v {
            1 => NotFound,
            2 => PermissionDenied,
            3 => NotADirectory,
            4 => NotAFile,
            5 => Symlink,
            6 => NoSuchRoot,
            7 => BadRequest,
            8 => Io,
            9 => ReadOnly,
            10 => IsDir,
            11 => Exists,
            12 => BadData,
            _ => return None,
        })
    }

    /// The code for an I/O error. `ELOOP` is what `O_NOFOLLOW` gives on a symlink.
    pub fn of_io(e: &std::io::Error) -> ErrorCode {
        match e.raw_os_error() {
            Some(libc::ENOENT) => ErrorCode::NotFound,
            Some(libc::EACCES) | Some(libc::EPERM) => ErrorCode::PermissionDenied,
            Some(libc::ENOTDIR) => ErrorCode::NotADirectory,
            Some(libc::ELOOP) => ErrorCode::Symlink,
            Some(libc::EISDIR) => ErrorCode::IsDir,
            Some(libc::EROFS) => ErrorCode::ReadOnly,
            _ => ErrorCode::Io,
        }
    }
}

/// `Hello`, the first frame the operator sends (id 0).
///
/// # Format
///
/// ```text
/// magic    8 bytes  "OCMAGENT"
/// proto    u16      PROTOCOL_VERSION
/// version  string   the operator's binary version
/// writable u8       1: the operator asks for write requests (only ever to the target), else 0
/// nroots   u16      then nroots × bytes: absolute paths of the roots every request is under
/// ```
///
/// Magic and protocol version come first and are checked before anything else is read, so that
/// any two versions can tell that they differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub proto: u16,
    pub version: String,
    /// Whether write requests are wanted (the agent grants them only if started `--writable`).
    pub writable: bool,
    pub roots: Vec<Vec<u8>>,
}

/// `Welcome`, the agent's answer to `Hello` (id 0).
///
/// # Format
///
/// ```text
/// magic    8 bytes  "OCMAGENT"
/// proto    u16      the agent's PROTOCOL_VERSION
/// version  string   the agent's binary version
/// exe      32 bytes BLAKE3 of the agent's own executable (zeros if it could not be read)
/// pid      u32
/// uid      u32      the effective user the agent runs as
/// writable u8       1: write requests will be carried out (asked for and allowed), else 0
/// nroots   u16      then per root: status u16 (0 open, else an ErrorCode), message string
/// ```
///
/// When the protocol versions differ the agent still sends its `Welcome` (so the operator learns
/// which version is there), then exits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    pub proto: u16,
    pub version: String,
    pub exe_hash: [u8; 32],
    pub pid: u32,
    pub uid: u32,
    /// Write requests will be carried out.
    pub writable: bool,
    /// Per root of the `Hello`: `Ok` when the agent opened it.
    pub roots: Vec<Result<(), (ErrorCode, String)>>,
}

fn check_magic_and_version(p: &mut Parse<'_>) -> Result<u16, Error> {
    let magic = p.fixed(MAGIC.len(), "magic")?;
    if magic != MAGIC {
        return Err(Error::BadMagic(String::from_utf8_lossy(magic).into_owned()));
    }
    p.u16("protocol version")
}

impl Hello {
    /// A read-only `Hello` from this binary for these roots.
    pub fn ours(roots: Vec<Vec<u8>>) -> Hello {
        Hello {
            proto: PROTOCOL_VERSION,
            version: BINARY_VERSION.to_string(),
            writable: false,
            roots,
        }
    }

    pub fn into_frame(&self) -> Frame {
        let mut w = Put::new();
        w.fixed(&MAGIC)
            .u16(self.proto)
            .bytes(self.version.as_bytes())
            .u8(self.writable as u8)
            .u16(self.roots.len() as u16);
        for r in &self.roots {
            w.bytes(r);
        }
        Frame::new(Kind::Hello, 0, w.0)
    }

    /// Parse a `Hello`; a different protocol version is [`Error::VersionMismatch`], found before
    /// the rest of the payload (whose layout may differ) is read.
    pub fn from_frame(f: &Frame) -> Result<Hello, Error> {
        if f.kind != Kind::Hello {
            return Err(Error::Unexpected { kind: f.kind });
        }
        let mut p = Parse::new(f.kind, &f.payload);
        let proto = check_magic_and_version(&mut p)?;
        let version = if proto == PROTOCOL_VERSION {
            p.string("version")?
        } else {
            p.string("version").unwrap_or_default()
        };
        if proto != PROTOCOL_VERSION {
            return Err(Error::VersionMismatch {
                ours: PROTOCOL_VERSION,
                theirs: proto,
                version,
            });
        }
        let writable = get_bool(&mut p, "writable")?;
        let n = p.u16("root count")? as usize;
        if n > p.remaining() / 4 {
            return Err(p.invalid("root count", format!("{n} roots in a short payload")));
        }
        let mut roots = Vec::with_capacity(n);
        for _ in 0..n {
            let r = p.bytes("root")?;
            if r.first() != Some(&b'/') || r.contains(&0) {
                return Err(p.invalid("root", "not an absolute path without NUL bytes"));
            }
            roots.push(r.to_vec());
        }
        p.finish()?;
        Ok(Hello {
            proto,
            version,
            writable,
            roots,
        })
    }
}

impl Welcome {
    pub fn into_frame(&self) -> Frame {
        let mut w = Put::new();
        w.fixed(&MAGIC)
            .u16(self.proto)
            .bytes(self.version.as_bytes())
            .fixed(&self.exe_hash)
            .u32(self.pid)
            .u32(self.uid)
            .u8(self.writable as u8)
            .u16(self.roots.len() as u16);
        for r in &self.roots {
            match r {
                Ok(()) => w.u16(0).bytes(b""),
                Err((code, msg)) => w.u16(*code as u16).bytes(msg.as_bytes()),
            };
        }
        Frame::new(Kind::Welcome, 0, w.0)
    }

    /// Parse a `Welcome`; like [`Hello::from_frame`], magic and version are checked first.
    pub fn from_frame(f: &Frame) -> Result<Welcome, Error> {
        if f.kind != Kind::Welcome {
            return Err(Error::Unexpected { kind: f.kind });
        }
        let mut p = Parse::new(f.kind, &f.payload);
        let proto = check_magic_and_version(&mut p)?;
        let version = p.string("version").unwrap_or_default();
        if proto != PROTOCOL_VERSION {
            return Err(Error::VersionMismatch {
                ours: PROTOCOL_VERSION,
                theirs: proto,
                version,
            });
        }
        let mut exe_hash = [0u8; 32];
        exe_hash.copy_from_slice(p.fixed(32, "exe hash")?);
        let pid = p.u32("pid")?;
        let uid = p.u32("uid")?;
        let writable = get_bool(&mut p, "writable")?;
        let n = p.u16("root count")? as usize;
        if n > p.remaining() / 6 {
            return Err(p.invalid("root count", format!("{n} roots in a short payload")));
        }
        let mut roots = Vec::with_capacity(n);
        for _ in 0..n {
            let code = p.u16("root status")?;
            let msg = p.string("root message")?;
            roots.push(if code == 0 {
                Ok(())
            } else {
                let c = ErrorCode::from_u16(code)
                    .ok_or_else(|| p.invalid("root status", format!("code {code}")))?;
                Err((c, msg))
            });
        }
        p.finish()?;
        Ok(Welcome {
            proto,
            version,
            exe_hash,
            pid,
            uid,
            writable,
            roots,
        })
    }
}

/// A request after the handshake, from the operator to the agent.
///
/// Every request names its paths as a [`Target`] (root index and [`RelPath`]); the agent
/// resolves them one component at a time with `O_NOFOLLOW` (see [`super::fs`]), so no request can
/// reach outside a root or through a symlink. Write requests (from `Put` on) are refused with
/// [`ErrorCode::ReadOnly`] on a read-only connection, and none of them writes the root itself
/// except `Mkdir` and `SetMeta` (owner, mode, mtime of the root directory).
///
/// Owners: in `Put`, `Mkdir`, `Symlink` and `SetMeta` a uid or gid of `u32::MAX` means "leave as
/// it is" (for a new entry: the agent's own user and group). An agent that runs as root gives
/// every entry the owner asked for; one that does not can only keep its own uid, and asking for
/// another is [`ErrorCode::PermissionDenied`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `Stat`: the entry at a path. Answer: `Meta` or `Error`.
    ///
    /// # Format
    /// ```text
    /// root u16, path bytes
    /// ```
    Stat(Target),
    /// `Scan`: the entry at a path and, if it is a directory, everything under it, without
    /// following symlinks. Answer: `Entries`* (each directory's children sorted by name, a
    /// directory's children before its subdirectories' contents) and `Skipped`* for what could
    /// not be read, then `Done` (or `Error` when the path itself cannot be read).
    ///
    /// # Format
    /// ```text
    /// root u16, path bytes
    /// ```
    Scan(Target),
    /// `ReadFile`: bytes of a regular file from `offset`, at most `len` (`u64::MAX`: to the end).
    /// Answer: `Opened` (the file's metadata from the open descriptor), `Data`* of [`CHUNK`]
    /// bytes (the last one shorter), then `Done` whose `bytes` counts file bytes (not bytes on the
    /// wire) and whose `changed` says the file's size, mtime or ctime moved while it was read.
    /// With `compress`, each chunk is sent zstd-compressed when that saves at least a tenth.
    ///
    /// # Format
    /// ```text
    /// root u16, path bytes, offset u64, len u64, compress u8 (0/1)
    /// ```
    ReadFile {
        target: Target,
        offset: u64,
        len: u64,
        compress: bool,
    },
    /// `Hash`: BLAKE3 of a regular file's bytes. Answer: `Hashed` or `Error`.
    ///
    /// # Format
    /// ```text
    /// root u16, path bytes
    /// ```
    Hash(Target),
    /// `Put`: write a regular file. The operator then sends `Data` frames with the same id (the
    /// file's bytes in order, raw or compressed) and a `PutEnd` with the same id. The agent
    /// writes them to `.ocm-<16 hex>.tmp` in the file's directory (created `O_EXCL`, mode 0600;
    /// all-zero 4 KiB blocks are skipped, so sparse files stay sparse), checks that exactly
    /// `size` bytes came, then sets owner, mode and mtime (atime := mtime, to the nanosecond) and
    /// renames it over `target` (a file or symlink there is replaced; a directory there is
    /// [`ErrorCode::IsDir`]). The directory must exist. No fsync (see `Sync`).
    ///
    /// Answer: `Done { bytes: size }` after the `PutEnd`, or one `Error` as soon as something
    /// fails (then the temporary file is gone, and the rest of the id's `Data` and its `PutEnd`
    /// are dropped without an answer). The operator always sends the `PutEnd`.
    ///
    /// # Format
    /// ```text
    /// root u16, path bytes, size u64, mode u32 (<= 0o7777), uid u32, gid u32, mtime time
    /// ```
    Put {
        target: Target,
        size: u64,
        mode: u32,
        uid: u32,
        gid: u32,
        mtime: Time,
    },
    /// `PutEnd`: the last frame of a `Put`, with its id. Empty payload. Answered through the
    /// `Put` (`Done` or `Error`), never on its own.
    PutEnd,
    /// `Mkdir`: create the directory `target` (its parent must exist) with this mode and owner;
    /// when it exists, set its owner and mode. Anything else there is [`ErrorCode::Exists`]
    /// (a symlink is never followed). The mtime is set later with `SetMeta`, once the
    /// directory's children are written. Answer: `Done` or `Error`.
    ///
    /// # Format
    /// ```text
    /// root u16, path bytes, mode u32 (<= 0o7777), uid u32, gid u32
    /// ```
    Mkdir {
        target: Target,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    /// `Symlink`: a symlink at `target` pointing to `link` (stored as given, never resolved by
    /// the agent), created under a temporary name, given its owner and mtime, then renamed over
    /// `target` (a directory there is [`ErrorCode::IsDir`]). Answer: `Done` or `Error`.
    ///
    /// # Format
    /// ```text
    /// root u16, path bytes, link bytes (1..=MAX_PATH bytes, no NUL), uid u32, gid u32,
    /// mtime time
    /// ```
    Symlink {
        target: Target,
        link: Vec<u8>,
        uid: u32,
        gid: u32,
        mtime: Time,
    },
    /// `Link`: a hard link at `target` to the entry `existing` (in the same root, never through
    /// a symlink), made under a temporary name and renamed over `target`. Answer: `Done` or
    /// `Error`.
    ///
    /// # Format
    /// ```text
    /// root u16, path bytes, existing bytes (a RelPath, not the root)
    /// ```
    Link { target: Target, existing: RelPath },
    /// `SetMeta`: change what is given of mode, owner and mtime (atime := mtime) of the entry at
    /// `target`, never following a symlink: for a symlink the owner and mtime are its own and a
    /// mode is ignored (symlinks have none). Answer: `Done` or `Error`.
    ///
    /// # Format
    /// ```text
    /// root u16, path bytes, mode opt<u32>, uid opt<u32>, gid opt<u32>, mtime opt<time>
    /// ```
    SetMeta {
        target: Target,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        mtime: Option<Time>,
    },
    /// `Remove`: unlink the entry at `target`; a directory goes with everything in it, and
    /// symlinks inside are removed, never followed. Missing is fine (`Done` with `entries` 0).
    /// The root itself cannot be removed. Answer: `Done { entries: removed }` or `Error`.
    ///
    /// # Format
    /// ```text
    /// root u16, path bytes
    /// ```
    Remove { target: Target },
    /// `Cleanup`: remove every temporary file of ours (`.ocm-<16 hex>.tmp`, what a killed agent,
    /// operator or ssh leaves behind) at or below `target`. Answer: `Done { entries: removed,
    /// skipped: directories that could not be read }` or `Error`.
    ///
    /// # Format
    /// ```text
    /// root u16, path bytes
    /// ```
    Cleanup { target: Target },
    /// `Sync`: `syncfs` on every root, the one durability point of a pass. Empty payload.
    /// Answer: `Done` or `Error`.
    Sync,
    /// `Accounts`: the host's users and groups from `/etc/passwd` and `/etc/group`, so the
    /// operator can map owners by name. Allowed on read-only connections. Empty payload.
    /// Answer: `AccountList`.
    Accounts,
    /// `Exit`: answer `Bye`, then exit 0. Empty payload.
    Exit,
}

fn put_time(w: &mut Put, t: Time) {
    w.i64(t.sec).u32(t.nsec);
}

fn get_mode(p: &mut Parse<'_>) -> Result<u32, Error> {
    let mode = p.u32("mode")?;
    if mode > 0o7777 {
        return Err(p.invalid("mode", format!("{mode:o} has bits beyond 0o7777")));
    }
    Ok(mode)
}

fn put_opt_u32(w: &mut Put, v: Option<u32>) {
    match v {
        Some(v) => w.u8(1).u32(v),
        None => w.u8(0),
    };
}

fn get_opt<T>(
    p: &mut Parse<'_>,
    what: &'static str,
    get: impl FnOnce(&mut Parse<'_>) -> Result<T, Error>,
) -> Result<Option<T>, Error> {
    if get_bool(p, what)? {
        Ok(Some(get(p)?))
    } else {
        Ok(None)
    }
}

impl Request {
    /// Returns true if and only if this request changes the file system (refused on a read-only
    /// connection).
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Request::Put { .. }
                | Request::PutEnd
                | Request::Mkdir { .. }
                | Request::Symlink { .. }
                | Request::Link { .. }
                | Request::SetMeta { .. }
                | Request::Remove { .. }
                | Request::Cleanup { .. }
                | Request::Sync
        )
    }

    pub fn into_frame(&self, id: u32) -> Frame {
        let mut w = Put::new();
        let kind = match self {
            Request::Stat(t) => {
                t.put(&mut w);
                Kind::Stat
            }
            Request::Scan(t) => {
                t.put(&mut w);
                Kind::Scan
            }
            Request::ReadFile {
                target,
                offset,
                len,
                compress,
            } => {
                target.put(&mut w);
                w.u64(*offset).u64(*len).u8(*compress as u8);
                Kind::ReadFile
            }
            Request::Hash(t) => {
                t.put(&mut w);
                Kind::Hash
            }
            Request::Put {
                target,
                size,
                mode,
                uid,
                gid,
                mtime,
            } => {
                target.put(&mut w);
                w.u64(*size).u32(*mode).u32(*uid).u32(*gid);
                put_time(&mut w, *mtime);
                Kind::Put
            }
            Request::PutEnd => Kind::PutEnd,
            Request::Mkdir {
                target,
                mode,
                uid,
                gid,
            } => {
                target.put(&mut w);
                w.u32(*mode).u32(*uid).u32(*gid);
                Kind::Mkdir
            }
            Request::Symlink {
                target,
                link,
                uid,
                gid,
                mtime,
            } => {
                target.put(&mut w);
                w.bytes(link).u32(*uid).u32(*gid);
                put_time(&mut w, *mtime);
                Kind::Symlink
            }
            Request::Link { target, existing } => {
                target.put(&mut w);
                w.bytes(existing.as_bytes());
                Kind::Link
            }
            Request::SetMeta {
                target,
                mode,
                uid,
                gid,
                mtime,
            } => {
                target.put(&mut w);
                put_opt_u32(&mut w, *mode);
                put_opt_u32(&mut w, *uid);
                put_opt_u32(&mut w, *gid);
                match mtime {
                    Some(t) => {
                        w.u8(1);
                        put_time(&mut w, *t);
                    }
                    None => {
                        w.u8(0);
                    }
                }
                Kind::SetMeta
            }
            Request::Remove { target } => {
                target.put(&mut w);
                Kind::Remove
            }
            Request::Cleanup { target } => {
                target.put(&mut w);
                Kind::Cleanup
            }
            Request::Sync => Kind::Sync,
            Request::Accounts => Kind::Accounts,
            Request::Exit => Kind::Exit,
        };
        Frame::new(kind, id, w.0)
    }

    /// The file a `ReadFile` or `Hash` payload names, without parsing the rest (`None` for
    /// another kind or a payload that does not start with a valid target): for read-ahead.
    pub fn file_of(kind: Kind, payload: &[u8]) -> Option<Target> {
        match kind {
            Kind::ReadFile | Kind::Hash => Target::get(&mut Parse::new(kind, payload)).ok(),
            _ => None,
        }
    }

    /// The request in a frame; a response kind (or `Hello` after the handshake) is
    /// [`Error::Unexpected`]. `Data` is not a request: see [`data_of`].
    pub fn from_frame(f: &Frame) -> Result<Request, Error> {
        let mut p = Parse::new(f.kind, &f.payload);
        let r = match f.kind {
            Kind::Stat => Request::Stat(Target::get(&mut p)?),
            Kind::Scan => Request::Scan(Target::get(&mut p)?),
            Kind::ReadFile => Request::ReadFile {
                target: Target::get(&mut p)?,
                offset: p.u64("offset")?,
                len: p.u64("len")?,
                compress: get_bool(&mut p, "compress")?,
            },
            Kind::Hash => Request::Hash(Target::get(&mut p)?),
            Kind::Put => Request::Put {
                target: Target::get(&mut p)?,
                size: p.u64("size")?,
                mode: get_mode(&mut p)?,
                uid: p.u32("uid")?,
                gid: p.u32("gid")?,
                mtime: get_time(&mut p, "mtime")?,
            },
            Kind::PutEnd => Request::PutEnd,
            Kind::Mkdir => Request::Mkdir {
                target: Target::get(&mut p)?,
                mode: get_mode(&mut p)?,
                uid: p.u32("uid")?,
                gid: p.u32("gid")?,
            },
            Kind::Symlink => {
                let target = Target::get(&mut p)?;
                let link = p.bytes("link")?.to_vec();
                if link.is_empty() || link.len() > MAX_PATH || link.contains(&0) {
                    return Err(p.invalid("link", "empty, too long or contains a NUL byte"));
                }
                Request::Symlink {
                    target,
                    link,
                    uid: p.u32("uid")?,
                    gid: p.u32("gid")?,
                    mtime: get_time(&mut p, "mtime")?,
                }
            }
            Kind::Link => {
                let target = Target::get(&mut p)?;
                let existing = get_path(&mut p, "existing")?;
                if existing.is_root() {
                    return Err(p.invalid("existing", "the root cannot be linked"));
                }
                Request::Link { target, existing }
            }
            Kind::SetMeta => Request::SetMeta {
                target: Target::get(&mut p)?,
                mode: get_opt(&mut p, "mode present", get_mode)?,
                uid: get_opt(&mut p, "uid present", |p| p.u32("uid"))?,
                gid: get_opt(&mut p, "gid present", |p| p.u32("gid"))?,
                mtime: get_opt(&mut p, "mtime present", |p| get_time(p, "mtime"))?,
            },
            Kind::Remove => Request::Remove {
                target: Target::get(&mut p)?,
            },
            Kind::Cleanup => Request::Cleanup {
                target: Target::get(&mut p)?,
            },
            Kind::Sync => Request::Sync,
            Kind::Accounts => Request::Accounts,
            Kind::Exit => Request::Exit,
            kind => return Err(Error::Unexpected { kind }),
        };
        p.finish()?;
        Ok(r)
    }
}

/// The payload of a `Data` frame: the chunk and the compressed flag after it (see the module
/// documentation).
pub fn data_payload(chunk: &[u8], compressed: bool) -> Vec<u8> {
    let mut v = Vec::with_capacity(chunk.len() + 1);
    v.extend_from_slice(chunk);
    v.push(compressed as u8);
    v
}

/// The chunk and flag of a `Data` frame's payload, borrowed.
pub fn data_of(f: &Frame) -> Result<(&[u8], bool), Error> {
    if f.kind != Kind::Data {
        return Err(Error::Unexpected { kind: f.kind });
    }
    match f.payload.split_last() {
        None => Err(Error::Truncated {
            kind: Kind::Data,
            what: "compressed flag",
            wanted: 1,
        }),
        Some((&0, chunk)) => Ok((chunk, false)),
        Some((&1, chunk)) => Ok((chunk, true)),
        Some((&v, _)) => Err(Error::Invalid {
            kind: Kind::Data,
            what: "compressed flag",
            why: format!("value {v}, not 0 or 1"),
        }),
    }
}

/// One user or group of the host: its number and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: u32,
    pub name: String,
}

/// A response frame after the handshake, from the agent to the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// `Meta`: one entry (the answer to `Stat`). Format: an [`Entry`].
    Meta(Entry),
    /// `Entries`: part of a `Scan`.
    ///
    /// # Format
    /// ```text
    /// count u32, then count × Entry
    /// ```
    Entries(Vec<Entry>),
    /// `Data`: a chunk of file bytes, raw or one zstd frame (see the module documentation for
    /// the format). The operator may forward it to a target agent as it is
    /// ([`super::client::AgentSender::send_data`] with the same `compressed`).
    Data { bytes: Vec<u8>, compressed: bool },
    /// `Skipped`: an item inside a stream that could not be read; the stream goes on.
    ///
    /// # Format
    /// ```text
    /// path bytes, code u16 (ErrorCode), message string
    /// ```
    Skipped {
        path: RelPath,
        code: ErrorCode,
        message: String,
    },
    /// `Opened`: the metadata of the file a `ReadFile` reads, from its open descriptor.
    /// Format: an [`Entry`].
    Opened(Entry),
    /// `Hashed`: the answer to `Hash`.
    ///
    /// # Format
    /// ```text
    /// blake3 32 bytes, size u64 (bytes hashed), changed u8 (0/1)
    /// ```
    Hashed {
        hash: [u8; 32],
        size: u64,
        changed: bool,
    },
    /// `Done`: the end of a `Scan` or `ReadFile`, or the success of a write request (`Put`:
    /// `bytes` is the file's size; `Remove` and `Cleanup`: `entries` is how many were removed).
    ///
    /// # Format
    /// ```text
    /// entries u64, skipped u64, bytes u64, changed u8 (0/1)
    /// ```
    Done {
        entries: u64,
        skipped: u64,
        bytes: u64,
        changed: bool,
    },
    /// `Error`: the request failed. With id 0, the connection failed and the agent exits.
    ///
    /// # Format
    /// ```text
    /// code u16 (ErrorCode), message string, path bytes (may be empty)
    /// ```
    Error {
        code: ErrorCode,
        message: String,
        path: Vec<u8>,
    },
    /// `AccountList`: the answer to `Accounts`, users then groups, each in file order
    /// (lines that are not `name:x:id:…` with a UTF-8 name are left out).
    ///
    /// # Format
    /// ```text
    /// nusers u32, then nusers × (uid u32, name string)
    /// ngroups u32, then ngroups × (gid u32, name string)
    /// ```
    AccountList {
        users: Vec<Account>,
        groups: Vec<Account>,
    },
    /// `Bye`: the answer to `Exit`. Empty payload.
    Bye,
}

fn put_accounts(w: &mut Put, list: &[Account]) {
    w.u32(list.len() as u32);
    for a in list {
        w.u32(a.id).bytes(a.name.as_bytes());
    }
}

fn get_accounts(p: &mut Parse<'_>, what: &'static str) -> Result<Vec<Account>, Error> {
    let n = p.u32(what)? as usize;
    if n > p.remaining() / 8 {
        return Err(p.invalid(what, format!("{n} accounts in a short payload")));
    }
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let id = p.u32("account id")?;
        let name = p.string("account name")?;
        v.push(Account { id, name });
    }
    Ok(v)
}

fn get_bool(p: &mut Parse<'_>, what: &'static str) -> Result<bool, Error> {
    match p.u8(what)? {
        0 => Ok(false),
        1 => Ok(true),
        v => Err(p.invalid(what, format!("value {v}, not 0 or 1"))),
    }
}

impl Response {
    pub fn into_frame(&self, id: u32) -> Frame {
        let mut w = Put::new();
        let kind = match self {
            Response::Meta(e) => {
                e.put(&mut w);
                Kind::Meta
            }
            Response::Entries(es) => {
                w.u32(es.len() as u32);
                for e in es {
                    e.put(&mut w);
                }
                Kind::Entries
            }
            Response::Data { bytes, compressed } => {
                return Frame::new(Kind::Data, id, data_payload(bytes, *compressed))
            }
            Response::Skipped {
                path,
                code,
                message,
            } => {
                w.bytes(path.as_bytes())
                    .u16(*code as u16)
                    .bytes(message.as_bytes());
                Kind::Skipped
            }
            Response::Opened(e) => {
                e.put(&mut w);
                Kind::Opened
            }
            Response::Hashed {
                hash,
                size,
                changed,
            } => {
                w.fixed(hash).u64(*size).u8(*changed as u8);
                Kind::Hashed
            }
            Response::Done {
                entries,
                skipped,
                bytes,
                changed,
            } => {
                w.u64(*entries).u64(*skipped).u64(*bytes).u8(*changed as u8);
                Kind::Done
            }
            Response::Error {
                code,
                message,
                path,
            } => {
                w.u16(*code as u16).bytes(message.as_bytes()).bytes(path);
                Kind::Error
            }
            Response::AccountList { users, groups } => {
                put_accounts(&mut w, users);
                put_accounts(&mut w, groups);
                Kind::AccountList
            }
            Response::Bye => Kind::Bye,
        };
        Frame::new(kind, id, w.0)
    }

    /// The response in a frame, taking the frame (a `Data` chunk is moved, not copied).
    pub fn from_owned(mut f: Frame) -> Result<Response, Error> {
        if f.kind == Kind::Data {
            let compressed = data_of(&f)?.1;
            f.payload.pop();
            return Ok(Response::Data {
                bytes: f.payload,
                compressed,
            });
        }
        Response::from_frame(&f)
    }

    /// The response in a frame; a request kind (or `Welcome` after the handshake) is
    /// [`Error::Unexpected`].
    pub fn from_frame(f: &Frame) -> Result<Response, Error> {
        let mut p = Parse::new(f.kind, &f.payload);
        let r = match f.kind {
            Kind::Meta => Response::Meta(Entry::get(&mut p)?),
            Kind::Opened => Response::Opened(Entry::get(&mut p)?),
            Kind::Entries => {
                let n = p.u32("entry count")? as usize;
                if n > p.remaining() / ENTRY_MIN {
                    return Err(p.invalid("entry count", format!("{n} entries in a short payload")));
                }
                let mut es = Vec::with_capacity(n);
                for _ in 0..n {
                    es.push(Entry::get(&mut p)?);
                }
                Response::Entries(es)
            }
            Kind::EntriesZstd => {
                let plain = zstd::bulk::decompress(&f.payload, super::frame::MAX_PAYLOAD)
                    .map_err(|e| p.invalid("compressed entries", e.to_string()))?;
                return Response::from_frame(&Frame::new(Kind::Entries, f.id, plain));
            }
            Kind::Data => {
                let (chunk, compressed) = data_of(f)?;
                return Ok(Response::Data {
                    bytes: chunk.to_vec(),
                    compressed,
                });
            }
            Kind::Skipped => {
                let path = get_path(&mut p, "path")?;
                let c = p.u16("error code")?;
                let code =
                    ErrorCode::from_u16(c).ok_or_else(|| p.invalid("error code", c.to_string()))?;
                Response::Skipped {
                    path,
                    code,
                    message: p.string("message")?,
                }
            }
            Kind::Hashed => {
                let mut hash = [0u8; 32];
                hash.copy_from_slice(p.fixed(32, "hash")?);
                Response::Hashed {
                    hash,
                    size: p.u64("size")?,
                    changed: get_bool(&mut p, "changed")?,
                }
            }
            Kind::Done => Response::Done {
                entries: p.u64("entries")?,
                skipped: p.u64("skipped")?,
                bytes: p.u64("bytes")?,
                changed: get_bool(&mut p, "changed")?,
            },
            Kind::Error => {
                let c = p.u16("error code")?;
                let code =
                    ErrorCode::from_u16(c).ok_or_else(|| p.invalid("error code", c.to_string()))?;
                Response::Error {
                    code,
                    message: p.string("message")?,
                    path: p.bytes("path")?.to_vec(),
                }
            }
            Kind::AccountList => Response::AccountList {
                users: get_accounts(&mut p, "user count")?,
                groups: get_accounts(&mut p, "group count")?,
            },
            Kind::Bye => Response::Bye,
            kind => return Err(Error::Unexpected { kind }),
        };
        p.finish()?;
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::frame::decode;

    fn entry(path: &str, t: FileType, target: &[u8]) -> Entry {
        Entry {
            path: RelPath::new(path).unwrap(),
            file_type: t,
            mode: 0o644,
            uid: 33,
            gid: 33,
            size: 12345,
            mtime: Time {
                sec: 1_700_000_000,
                nsec: 999_999_999,
            },
            ctime: Time { sec: -1, nsec: 0 },
            dev: 0xfd00,
            ino: u64::MAX,
            nlink: 2,
            target: target.to_vec(),
        }
    }

    /// Through bytes and back: encode the frame, decode it, parse the payload.
    fn wire(f: &Frame) -> Frame {
        let bytes = f.encode().unwrap();
        let (g, n) = decode(&bytes).unwrap().unwrap();
        assert_eq!(n, bytes.len());
        g
    }

    #[test]
    fn rel_paths() {
        for ok in [
            "",
            "a",
            "a/b",
            "data/alice/files/x y.txt",
            "...",
            ".hidden",
            "a\nb",
        ] {
            RelPath::new(ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
        }
        assert!(
            RelPath::new(&b"\xff\xfe/caf\xe9"[..]).is_ok(),
            "not UTF-8 is fine"
        );
        for bad in [
            "/etc", "..", "a/..", "../a", "a/./b", ".", "a//b", "a/", "a\0b",
        ] {
            assert!(RelPath::new(bad).is_err(), "{bad:?}");
        }
        assert!(RelPath::new("x".repeat(256)).is_err());
        assert!(RelPath::new("x".repeat(255)).is_ok());
        assert_eq!(RelPath::root().join(b"a").unwrap().as_bytes(), b"a");
        assert_eq!(
            RelPath::new("a").unwrap().join(b"b").unwrap().as_bytes(),
            b"a/b"
        );
        assert!(RelPath::root().join(b"..").is_err());
        assert!(RelPath::root().join(b"a/b").is_err());
        let abc = RelPath::new("a/b/c").unwrap();
        let c: Vec<_> = abc.components().collect();
        assert_eq!(c, [b"a", b"b", b"c"]);
        assert_eq!(RelPath::root().components().count(), 0);
    }

    /// One of every request, with values at the edges of their ranges.
    fn every_request() -> Vec<Request> {
        let t = Target::new(1, RelPath::new("data/alice").unwrap());
        let mt = Time {
            sec: -5,
            nsec: 999_999_999,
        };
        vec![
            Request::Stat(t.clone()),
            Request::Scan(Target::new(0, RelPath::root())),
            Request::ReadFile {
                target: t.clone(),
                offset: 5,
                len: u64::MAX,
                compress: true,
            },
            Request::Hash(t.clone()),
            Request::Put {
                target: t.clone(),
                size: u64::MAX,
                mode: 0o7777,
                uid: 33,
                gid: u32::MAX,
                mtime: mt,
            },
            Request::PutEnd,
            Request::Mkdir {
                target: t.clone(),
                mode: 0o755,
                uid: 0,
                gid: 0,
            },
            Request::Symlink {
                target: t.clone(),
                link: b"../x\n\xff".to_vec(),
                uid: 1,
                gid: 2,
                mtime: mt,
            },
            Request::Link {
                target: t.clone(),
                existing: RelPath::new("a/b").unwrap(),
            },
            Request::SetMeta {
                target: t.clone(),
                mode: Some(0o640),
                uid: None,
                gid: Some(7),
                mtime: Some(mt),
            },
            Request::SetMeta {
                target: t.clone(),
                mode: None,
                uid: None,
                gid: None,
                mtime: None,
            },
            Request::Remove { target: t.clone() },
            Request::Cleanup { target: t },
            Request::Sync,
            Request::Accounts,
            Request::Exit,
        ]
    }

    #[test]
    fn requests_round_trip() {
        for r in every_request() {
            assert_eq!(Request::from_frame(&wire(&r.into_frame(9))).unwrap(), r);
        }
    }

    #[test]
    fn write_requests_are_checked() {
        let t = Target::new(0, RelPath::new("f").unwrap());
        let put = Request::Put {
            target: t.clone(),
            size: 1,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: Time::default(),
        };
        // a mode beyond 0o7777
        let mut f = put.into_frame(1);
        let at = f.payload.len() - 12 - 8 - 4;
        f.payload[at..at + 4].copy_from_slice(&0o10000u32.to_be_bytes());
        assert!(matches!(
            Request::from_frame(&f),
            Err(Error::Invalid { what: "mode", .. })
        ));
        // nanoseconds out of range
        let mut f = put.into_frame(1);
        let n = f.payload.len();
        f.payload[n - 4..].copy_from_slice(&1_000_000_000u32.to_be_bytes());
        assert!(matches!(
            Request::from_frame(&f),
            Err(Error::Invalid { .. })
        ));
        // `..` and absolute paths, as target and as a link's existing entry
        for bad in [&b"../x"[..], b"/etc/passwd", b"a/../../x"] {
            let mut w = Put::new();
            w.u16(0).bytes(bad).u32(0o755).u32(0).u32(0);
            assert!(Request::from_frame(&Frame::new(Kind::Mkdir, 1, w.0)).is_err());
            let mut w = Put::new();
            w.u16(0).bytes(b"l").bytes(bad);
            assert!(Request::from_frame(&Frame::new(Kind::Link, 1, w.0)).is_err());
            let mut w = Put::new();
            w.u16(0).bytes(bad);
            assert!(Request::from_frame(&Frame::new(Kind::Remove, 1, w.0)).is_err());
        }
        // a link to the root, an empty symlink target, one with a NUL
        let mut w = Put::new();
        w.u16(0).bytes(b"l").bytes(b"");
        assert!(Request::from_frame(&Frame::new(Kind::Link, 1, w.0)).is_err());
        for link in [&b""[..], b"a\0b"] {
            let mut w = Put::new();
            w.u16(0).bytes(b"l").bytes(link).u32(0).u32(0).i64(0).u32(0);
            assert!(Request::from_frame(&Frame::new(Kind::Symlink, 1, w.0)).is_err());
        }
        // an option flag that is neither 0 nor 1
        let mut f = Request::SetMeta {
            target: t,
            mode: None,
            uid: None,
            gid: None,
            mtime: None,
        }
        .into_frame(1);
        *f.payload.last_mut().unwrap() = 2;
        assert!(Request::from_frame(&f).is_err());
        // Data: the flag is last, and must be 0 or 1
        let d = Frame::new(Kind::Data, 1, data_payload(b"abc", true));
        assert_eq!(data_of(&d).unwrap(), (&b"abc"[..], true));
        assert!(data_of(&Frame::new(Kind::Data, 1, vec![])).is_err());
        assert!(data_of(&Frame::new(Kind::Data, 1, vec![1, 2])).is_err());
        assert!(matches!(
            Request::from_frame(&d),
            Err(Error::Unexpected { kind: Kind::Data })
        ));
        assert!(Request::Put {
            target: Target::new(0, RelPath::root()),
            size: 0,
            mode: 0,
            uid: 0,
            gid: 0,
            mtime: Time::default()
        }
        .is_write());
        assert!(
            !Request::Accounts.is_write()
                && !Request::Stat(Target::new(0, RelPath::root())).is_write()
        );
    }

    #[test]
    fn compressed_entries_decode_like_entries() {
        let es: Vec<Entry> = (0..300)
            .map(|i| entry(&format!("user01/files/Documents/f{i}"), FileType::File, b""))
            .collect();
        let plain = Response::Entries(es.clone()).into_frame(9);
        let z = zstd::bulk::compress(&plain.payload, 1).unwrap();
        assert!(
            z.len() < plain.payload.len() / 4,
            "{} of {}",
            z.len(),
            plain.payload.len()
        );
        let f = Frame::new(Kind::EntriesZstd, 9, z);
        assert_eq!(Response::from_frame(&f).unwrap(), Response::Entries(es));
        // Not zstd, or zstd of something that is not entries: an error, no panic.
        assert!(Response::from_frame(&Frame::new(Kind::EntriesZstd, 9, b"nope".to_vec())).is_err());
        let junk = zstd::bulk::compress(b"\xff\xff\xff\xffjunk", 1).unwrap();
        assert!(Response::from_frame(&Frame::new(Kind::EntriesZstd, 9, junk)).is_err());
    }

    #[test]
    fn responses_round_trip() {
        for r in [
            Response::Meta(entry("a", FileType::File, b"")),
            Response::Entries(vec![
                entry("a", FileType::Dir, b""),
                entry("a/l", FileType::Symlink, b"../x"),
            ]),
            Response::Entries(vec![]),
            Response::Data {
                bytes: vec![1, 2, 3],
                compressed: true,
            },
            Response::Data {
                bytes: vec![],
                compressed: false,
            },
            Response::AccountList {
                users: vec![Account {
                    id: 33,
                    name: "www-data".into(),
                }],
                groups: vec![],
            },
            Response::Skipped {
                path: RelPath::new("a/secret").unwrap(),
                code: ErrorCode::PermissionDenied,
                message: "Permission denied".into(),
            },
            Response::Opened(entry("f", FileType::File, b"")),
            Response::Hashed {
                hash: [7; 32],
                size: 10,
                changed: true,
            },
            Response::Done {
                entries: 1,
                skipped: 2,
                bytes: 3,
                changed: false,
            },
            Response::Error {
                code: ErrorCode::NotFound,
                message: "nope".into(),
                path: b"x".to_vec(),
            },
            Response::Bye,
        ] {
            assert_eq!(Response::from_frame(&wire(&r.into_frame(3))).unwrap(), r);
            assert_eq!(Response::from_owned(wire(&r.into_frame(3))).unwrap(), r);
        }
    }

    #[test]
    fn handshake_round_trip_and_checks() {
        let h = Hello::ours(vec![b"/var/www/owncloud".to_vec(), b"/srv/data".to_vec()]);
        assert_eq!(Hello::from_frame(&wire(&h.into_frame())).unwrap(), h);
        let mut hw = h.clone();
        hw.writable = true;
        assert_eq!(Hello::from_frame(&wire(&hw.into_frame())).unwrap(), hw);
        let w = Welcome {
            proto: PROTOCOL_VERSION,
            version: "0.1.0".into(),
            exe_hash: [9; 32],
            pid: 42,
            uid: 0,
            writable: true,
            roots: vec![Ok(()), Err((ErrorCode::NotFound, "No such file".into()))],
        };
        assert_eq!(Welcome::from_frame(&wire(&w.into_frame())).unwrap(), w);

        // bad magic
        let mut f = h.into_frame();
        f.payload[0] = b'X';
        assert!(matches!(Hello::from_frame(&f), Err(Error::BadMagic(_))));
        // another protocol version: found before the rest, whatever it holds
        let mut f = h.into_frame();
        f.payload[8..10].copy_from_slice(&1u16.to_be_bytes());
        f.payload.truncate(10);
        assert!(matches!(
            Hello::from_frame(&f),
            Err(Error::VersionMismatch { theirs: 1, .. })
        ));
        let mut f = w.into_frame();
        f.payload[8..10].copy_from_slice(&0u16.to_be_bytes());
        assert!(matches!(
            Welcome::from_frame(&f),
            Err(Error::VersionMismatch { theirs: 0, .. })
        ));
        // a relative root
        let bad = Hello::ours(vec![b"relative".to_vec()]);
        assert!(matches!(
            Hello::from_frame(&bad.into_frame()),
            Err(Error::Invalid { .. })
        ));
        // a truncated Hello
        let mut f = h.into_frame();
        f.payload.truncate(5);
        assert!(matches!(
            Hello::from_frame(&f),
            Err(Error::Truncated { .. })
        ));
    }

    #[test]
    fn hostile_payloads() {
        // trailing bytes
        let mut f = Request::Exit.into_frame(1);
        f.payload.push(0);
        assert!(matches!(
            Request::from_frame(&f),
            Err(Error::Trailing { .. })
        ));
        let mut f = Request::Stat(Target::new(0, RelPath::root())).into_frame(1);
        f.payload.extend_from_slice(b"xx");
        assert!(matches!(
            Request::from_frame(&f),
            Err(Error::Trailing { extra: 2, .. })
        ));
        // truncated
        let mut f = Request::Hash(Target::new(0, RelPath::new("abc").unwrap())).into_frame(1);
        f.payload.pop();
        assert!(matches!(
            Request::from_frame(&f),
            Err(Error::Truncated { .. })
        ));
        // a path that leaves the root, in a request and in an entry from an agent
        let mut w = Put::new();
        w.u16(0).bytes(b"../../etc/shadow");
        let f = Frame::new(Kind::ReadFile, 1, w.0);
        assert!(matches!(
            Request::from_frame(&f),
            Err(Error::Invalid { .. })
        ));
        let mut e = Response::Meta(entry("a", FileType::File, b"")).into_frame(1);
        e.payload[4] = b'/';
        assert!(matches!(
            Response::from_frame(&e),
            Err(Error::Invalid { .. })
        ));
        // a response kind where a request is expected, and the other way round
        assert!(matches!(
            Request::from_frame(&Response::Bye.into_frame(1)),
            Err(Error::Unexpected { kind: Kind::Bye })
        ));
        assert!(matches!(
            Response::from_frame(&Request::Exit.into_frame(1)),
            Err(Error::Unexpected { kind: Kind::Exit })
        ));
        // a huge entry count in a small payload allocates nothing
        let mut w = Put::new();
        w.u32(u32::MAX);
        assert!(matches!(
            Response::from_frame(&Frame::new(Kind::Entries, 1, w.0)),
            Err(Error::Invalid { .. })
        ));
        // bad enum values
        let mut f = Response::Meta(entry("a", FileType::File, b"")).into_frame(1);
        f.payload[5] = 99; // file type
        assert!(matches!(
            Response::from_frame(&f),
            Err(Error::Invalid { .. })
        ));
        let mut f = Response::Done {
            entries: 0,
            skipped: 0,
            bytes: 0,
            changed: false,
        }
        .into_frame(1);
        *f.payload.last_mut().unwrap() = 2;
        assert!(matches!(
            Response::from_frame(&f),
            Err(Error::Invalid { .. })
        ));
        // a target on a file
        let mut e = entry("a", FileType::File, b"");
        e.target = b"x".to_vec();
        assert!(matches!(
            Response::from_frame(&Response::Meta(e).into_frame(1)),
            Err(Error::Invalid { .. })
        ));
    }

    /// A poor man's fuzzer until the real one: valid frames of every message, then bytes
    /// flipped, cut or appended; every parser must return, never panic.
    #[test]
    fn mutated_frames_never_panic() {
        let t = Target::new(0, RelPath::new("a/b").unwrap());
        let mut seeds: Vec<Frame> = vec![
            Hello::ours(vec![b"/x".to_vec()]).into_frame(),
            Request::Stat(t.clone()).into_frame(1),
            Frame::new(Kind::Data, 2, data_payload(b"chunk", false)),
            Response::AccountList {
                users: vec![Account {
                    id: 0,
                    name: "root".into(),
                }],
                groups: vec![Account {
                    id: 33,
                    name: "www-data".into(),
                }],
            }
            .into_frame(2),
            Response::Entries(vec![
                entry("a", FileType::Dir, b""),
                entry("l", FileType::Symlink, b"t"),
            ])
            .into_frame(3),
            Response::Hashed {
                hash: [1; 32],
                size: 1,
                changed: false,
            }
            .into_frame(4),
            Response::Error {
                code: ErrorCode::Io,
                message: "m".into(),
                path: b"p".to_vec(),
            }
            .into_frame(5),
        ];
        seeds.push(
            Welcome {
                proto: PROTOCOL_VERSION,
                version: "v".into(),
                exe_hash: [0; 32],
                pid: 1,
                uid: 0,
                writable: false,
                roots: vec![Ok(()), Err((ErrorCode::NotFound, "n".into()))],
            }
            .into_frame(),
        );
        // every request, the write requests' decoders most of all
        seeds.extend(every_request().iter().map(|r| r.into_frame(7)));
        let _ = t;
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..60_000 {
            let seed = &seeds[(rnd() % seeds.len() as u64) as usize];
            let mut bytes = seed.encode().unwrap();
            for _ in 0..1 + rnd() % 4 {
                let i = (rnd() % bytes.len() as u64) as usize;
                match rnd() % 3 {
                    0 => bytes[i] = rnd() as u8,
                    1 => bytes.truncate(i.max(1)),
                    _ => bytes.push(rnd() as u8),
                }
            }
            if let Ok(Some((f, _))) = decode(&bytes) {
                let _ = Hello::from_frame(&f);
                let _ = Welcome::from_frame(&f);
                // what decodes must encode to the same message again
                if let Ok(r) = Request::from_frame(&f) {
                    assert_eq!(Request::from_frame(&r.into_frame(f.id)).unwrap(), r);
                }
                let _ = Response::from_frame(&f);
                let _ = data_of(&f);
                let _ = Response::from_owned(f);
            }
            // the payload alone, under every kind, whatever its declared length
            let f = Frame::new(
                seed.kind,
                1,
                bytes[crate::agent::frame::HEADER_LEN.min(bytes.len())..].to_vec(),
            );
            let _ = Request::from_frame(&f);
            let _ = Response::from_frame(&f);
        }
    }
}
