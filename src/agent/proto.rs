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
//! `bytes` holding UTF-8.

use super::frame::{Error, Frame, Kind};
use super::wire::{Parse, Put};
use std::fmt;

/// The first bytes of every `Hello` and `Welcome` payload.
pub const MAGIC: [u8; 8] = *b"OCMAGENT";

/// The protocol version. Both sides must speak the same one; on a mismatch the operator deploys
/// its own binary again. Bump it on any change of a format below.
pub const PROTOCOL_VERSION: u16 = 1;

/// The version of this binary, exchanged in the handshake.
pub const BINARY_VERSION: &str = env!("CARGO_PKG_VERSION");

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
/// nroots   u16      then nroots × bytes: absolute paths of the roots every request is under
/// ```
///
/// Magic and protocol version come first and are checked before anything else is read, so that
/// any two versions can tell that they differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub proto: u16,
    pub version: String,
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
    /// A `Hello` from this binary for these roots.
    pub fn ours(roots: Vec<Vec<u8>>) -> Hello {
        Hello {
            proto: PROTOCOL_VERSION,
            version: BINARY_VERSION.to_string(),
            roots,
        }
    }

    pub fn into_frame(&self) -> Frame {
        let mut w = Put::new();
        w.fixed(&MAGIC)
            .u16(self.proto)
            .bytes(self.version.as_bytes())
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
            roots,
        })
    }
}

/// A request after the handshake, from the operator to the agent.
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
    /// Answer: `Opened` (the file's metadata from the open descriptor), `Data`*, then `Done`
    /// whose `changed` says the file's size, mtime or ctime moved while it was read.
    ///
    /// # Format
    /// ```text
    /// root u16, path bytes, offset u64, len u64
    /// ```
    ReadFile {
        target: Target,
        offset: u64,
        len: u64,
    },
    /// `Hash`: BLAKE3 of a regular file's bytes. Answer: `Hashed` or `Error`.
    ///
    /// # Format
    /// ```text
    /// root u16, path bytes
    /// ```
    Hash(Target),
    /// `Exit`: answer `Bye`, then exit 0. Empty payload.
    Exit,
}

impl Request {
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
            } => {
                target.put(&mut w);
                w.u64(*offset).u64(*len);
                Kind::ReadFile
            }
            Request::Hash(t) => {
                t.put(&mut w);
                Kind::Hash
            }
            Request::Exit => Kind::Exit,
        };
        Frame::new(kind, id, w.0)
    }

    /// The request in a frame; a response kind (or `Hello` after the handshake) is
    /// [`Error::Unexpected`].
    pub fn from_frame(f: &Frame) -> Result<Request, Error> {
        let mut p = Parse::new(f.kind, &f.payload);
        let r = match f.kind {
            Kind::Stat => Request::Stat(Target::get(&mut p)?),
            Kind::Scan => Request::Scan(Target::get(&mut p)?),
            Kind::ReadFile => Request::ReadFile {
                target: Target::get(&mut p)?,
                offset: p.u64("offset")?,
                len: p.u64("len")?,
            },
            Kind::Hash => Request::Hash(Target::get(&mut p)?),
            Kind::Exit => Request::Exit,
            kind => return Err(Error::Unexpected { kind }),
        };
        p.finish()?;
        Ok(r)
    }
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
    /// `Data`: file bytes; the whole payload is data (at most [`super::frame::MAX_PAYLOAD`]).
    Data(Vec<u8>),
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
    /// `Done`: the end of a `Scan` or `ReadFile`.
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
    /// `Bye`: the answer to `Exit`. Empty payload.
    Bye,
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
            Response::Data(d) => return Frame::new(Kind::Data, id, d.clone()),
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
            Response::Bye => Kind::Bye,
        };
        Frame::new(kind, id, w.0)
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
            Kind::Data => return Ok(Response::Data(f.payload.clone())),
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

    #[test]
    fn requests_round_trip() {
        let t = Target::new(1, RelPath::new("data/alice").unwrap());
        for r in [
            Request::Stat(t.clone()),
            Request::Scan(Target::new(0, RelPath::root())),
            Request::ReadFile {
                target: t.clone(),
                offset: 5,
                len: u64::MAX,
            },
            Request::Hash(t),
            Request::Exit,
        ] {
            assert_eq!(Request::from_frame(&wire(&r.into_frame(9))).unwrap(), r);
        }
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
            Response::Data(vec![1, 2, 3]),
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
        }
    }

    #[test]
    fn handshake_round_trip_and_checks() {
        let h = Hello::ours(vec![b"/var/www/owncloud".to_vec(), b"/srv/data".to_vec()]);
        assert_eq!(Hello::from_frame(&wire(&h.into_frame())).unwrap(), h);
        let w = Welcome {
            proto: PROTOCOL_VERSION,
            version: "0.1.0".into(),
            exe_hash: [9; 32],
            pid: 42,
            uid: 0,
            roots: vec![Ok(()), Err((ErrorCode::NotFound, "No such file".into()))],
        };
        assert_eq!(Welcome::from_frame(&wire(&w.into_frame())).unwrap(), w);

        // bad magic
        let mut f = h.into_frame();
        f.payload[0] = b'X';
        assert!(matches!(Hello::from_frame(&f), Err(Error::BadMagic(_))));
        // another protocol version: found before the rest, whatever it holds
        let mut f = h.into_frame();
        f.payload[8..10].copy_from_slice(&2u16.to_be_bytes());
        f.payload.truncate(10);
        assert!(matches!(
            Hello::from_frame(&f),
            Err(Error::VersionMismatch { theirs: 2, .. })
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
            Request::ReadFile {
                target: t,
                offset: 1,
                len: 2,
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
                roots: vec![Ok(()), Err((ErrorCode::NotFound, "n".into()))],
            }
            .into_frame(),
        );
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
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
                let _ = Request::from_frame(&f);
                let _ = Response::from_frame(&f);
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
