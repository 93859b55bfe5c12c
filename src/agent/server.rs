//! The agent's side of a connection: read frames from stdin, answer on stdout.
//!
//! [`serve`] runs the handshake, then answers one request at a time until `Exit` or a clean end of
//! its input. A request that fails gets an `Error` frame and the connection goes on; bytes that
//! are not a frame end the connection with an `Error` frame of id 0 (after a bad header there is
//! no way to find the next frame). Nothing here panics on input, and nothing here writes to the
//! file system: every request of protocol version 1 is a read (see [`super::fs`]).
//! Stdout carries frames only; diagnostics go to stderr, which the operator keeps.

use super::frame::{self, Frame, FrameReader, Kind, ReadError};
use super::fs::{self, Fail, Root};
use super::proto::{
    Entry, ErrorCode, FileType, Hello, RelPath, Request, Response, Target, Welcome, BINARY_VERSION,
    PROTOCOL_VERSION,
};
use std::io::{self, BufWriter, Read, Write};

/// Bytes of file data per `Data` frame.
pub const CHUNK: usize = 256 * 1024;
/// An `Entries` frame is sent once its payload passes this size.
const BATCH_BYTES: usize = 64 * 1024;

/// How a connection ended, when not cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("protocol error: {0}")]
    Protocol(#[from] frame::Error),
    #[error("{0}")]
    Read(#[from] ReadError),
    #[error("writing to the operator: {0}")]
    Write(#[from] io::Error),
    #[error("the first frame was {0:?}, not Hello")]
    NoHello(Kind),
}

/// BLAKE3 of this process's executable, which the operator compares with what it deployed.
/// Zeros when it cannot be read (no /proc, for example).
pub fn own_exe_hash() -> [u8; 32] {
    let path = std::env::current_exe()
        .ok()
        .or_else(|| std::env::args_os().next().map(Into::into));
    let Some(path) = path else { return [0; 32] };
    let Ok(mut f) = std::fs::File::open(path) else {
        return [0; 32];
    };
    let mut h = blake3::Hasher::new();
    match h.update_reader(&mut f) {
        Ok(_) => *h.finalize().as_bytes(),
        Err(_) => [0; 32],
    }
}

struct Server<W: Write> {
    out: BufWriter<W>,
    roots: Vec<Result<Root, Fail>>,
}

/// Serve one operator on `input`/`output` (the agent's stdin and stdout).
pub fn serve<R: Read, W: Write>(input: R, output: W) -> Result<(), ServeError> {
    let mut reader = FrameReader::new(input);
    let mut s = Server {
        out: BufWriter::with_capacity(CHUNK + 64 * 1024, output),
        roots: Vec::new(),
    };

    // The handshake comes first: nothing else is answered before it.
    let first = match reader.read_frame() {
        Ok(Some(f)) => f,
        // Closed before saying anything: nothing to do.
        Ok(None) => return Ok(()),
        Err(e) => return s.fatal(ErrorCode::BadRequest, e.into()),
    };
    if first.kind != Kind::Hello {
        let kind = first.kind;
        s.send_error(
            0,
            ErrorCode::BadRequest,
            format!("expected Hello, got {kind:?}"),
            b"",
        )?;
        return Err(ServeError::NoHello(kind));
    }
    let hello = match Hello::from_frame(&first) {
        Ok(h) => h,
        Err(e @ frame::Error::VersionMismatch { .. }) => {
            // Tell the operator who we are, so it can deploy the right binary, then stop.
            let w = welcome(Vec::new());
            s.send(&w.into_frame())?;
            s.out.flush()?;
            return Err(e.into());
        }
        Err(e) => return s.fatal(ErrorCode::BadRequest, e.into()),
    };
    s.roots = hello.roots.iter().map(|r| Root::open(r)).collect();
    let statuses = s
        .roots
        .iter()
        .map(|r| match r {
            Ok(_) => Ok(()),
            Err(f) => Err((f.code, f.message.clone())),
        })
        .collect();
    s.send(&welcome(statuses).into_frame())?;
    s.out.flush()?;

    loop {
        let f = match reader.read_frame() {
            Ok(Some(f)) => f,
            // The operator closed our stdin between frames: a normal end.
            Ok(None) => return Ok(()),
            Err(e) => return s.fatal(ErrorCode::BadRequest, e.into()),
        };
        let id = f.id;
        if id == 0 {
            // Id 0 is the connection's (the handshake, fatal errors): a second Hello or a request
            // without an id means the operator lost track, and so would every answer.
            let e = frame::Error::Unexpected { kind: f.kind };
            return s.fatal(ErrorCode::BadRequest, e.into());
        }
        match Request::from_frame(&f) {
            // The frame's bounds were fine, only its payload was not: answer and go on.
            Err(e) => s.send_error(id, ErrorCode::BadRequest, e.to_string(), b"")?,
            Ok(Request::Exit) => {
                s.send(&Response::Bye.into_frame(id))?;
                s.out.flush()?;
                return Ok(());
            }
            Ok(req) => s.handle(id, req)?,
        }
        s.out.flush()?;
    }
}

fn welcome(roots: Vec<Result<(), (ErrorCode, String)>>) -> Welcome {
    Welcome {
        proto: PROTOCOL_VERSION,
        version: BINARY_VERSION.to_string(),
        exe_hash: own_exe_hash(),
        pid: std::process::id(),
        // SAFETY: geteuid has no preconditions.
        uid: unsafe { libc::geteuid() },
        roots,
    }
}

impl<W: Write> Server<W> {
    fn send(&mut self, f: &Frame) -> io::Result<()> {
        frame::write_frame(&mut self.out, f)
    }

    fn send_error(&mut self, id: u32, code: ErrorCode, msg: String, path: &[u8]) -> io::Result<()> {
        self.send(
            &Response::Error {
                code,
                message: msg,
                path: path.to_vec(),
            }
            .into_frame(id),
        )
    }

    /// The connection cannot go on: say why with an id-0 `Error`, then end.
    fn fatal(&mut self, code: ErrorCode, e: ServeError) -> Result<(), ServeError> {
        let _ = self.send_error(0, code, e.to_string(), b"");
        let _ = self.out.flush();
        Err(e)
    }

    fn root(&self, i: u16) -> Result<&Root, Fail> {
        match self.roots.get(i as usize) {
            Some(Ok(r)) => Ok(r),
            Some(Err(f)) => Err(Fail::new(
                ErrorCode::NoSuchRoot,
                format!("root {i} could not be opened: {}", f.message),
            )),
            None => Err(Fail::new(
                ErrorCode::NoSuchRoot,
                format!("no root {i}: the handshake named {}", self.roots.len()),
            )),
        }
    }

    /// Answer one request. Only write errors are returned: everything else is a frame.
    fn handle(&mut self, id: u32, req: Request) -> io::Result<()> {
        let (target, result) = match req {
            Request::Stat(t) => {
                let r = self
                    .root(t.root)
                    .and_then(|root| root.lstat(&t.path))
                    .map(|e| Response::Meta(e).into_frame(id));
                (t, r.map(Some))
            }
            Request::Scan(t) => {
                let r = self.scan(id, &t);
                (t, r)
            }
            Request::ReadFile {
                target,
                offset,
                len,
            } => {
                let r = self.read_file(id, &target, offset, len);
                (target, r)
            }
            Request::Hash(t) => {
                let r = self.hash(&t).map(|r| Some(r.into_frame(id)));
                (t, r)
            }
            Request::Exit => unreachable!("handled by serve"),
        };
        match result {
            Ok(Some(f)) => self.send(&f),
            Ok(None) => Ok(()),
            Err(fail) => self.send_error(id, fail.code, fail.message, target.path.as_bytes()),
        }
    }

    /// `Scan`: `Err` only when the start path cannot be read; everything below it that cannot
    /// be read is `Skipped` and the scan goes on. Write errors surface as `Fail` with code Io
    /// and are re-raised by the next write.
    fn scan(&mut self, id: u32, t: &Target) -> Result<Option<Frame>, Fail> {
        let root = match self.roots.get(t.root as usize) {
            Some(Ok(_)) => t.root as usize,
            _ => return Err(self.root(t.root).unwrap_err()),
        };
        let first = self.root(t.root)?.lstat(&t.path)?;
        let mut batch = Batch::default();
        let mut skipped = 0u64;
        let mut stack = Vec::new();
        if first.file_type == FileType::Dir {
            stack.push(first.path.clone());
        }
        batch.push(first);
        while let Some(dir) = stack.pop() {
            let Some(Ok(r)) = self.roots.get(root) else {
                break;
            };
            let listed = r
                .open_dir(&dir)
                .and_then(|fd| fs::read_names(&fd).map(|n| (fd, n)));
            let (fd, mut names) = match listed {
                Ok(x) => x,
                Err(f) => {
                    skipped += 1;
                    self.skip(id, &mut batch, dir, f).map_err(io_fail)?;
                    continue;
                }
            };
            names.sort();
            let mut subdirs = Vec::new();
            for name in names {
                let rel = match dir.join(&name) {
                    Ok(p) => p,
                    Err(why) => {
                        skipped += 1;
                        let shown = String::from_utf8_lossy(&name).into_owned();
                        self.skip(
                            id,
                            &mut batch,
                            dir.clone(),
                            Fail::new(ErrorCode::Io, format!("name {shown:?}: {why}")),
                        )
                        .map_err(io_fail)?;
                        continue;
                    }
                };
                let cname = std::ffi::CString::new(name).expect("readdir names have no NUL");
                match fs::lstat_at(std::os::fd::AsRawFd::as_raw_fd(&fd), &cname, rel.clone()) {
                    Ok(e) => {
                        if e.file_type == FileType::Dir {
                            subdirs.push(rel);
                        }
                        batch.push(e);
                        if batch.bytes >= BATCH_BYTES {
                            self.flush_batch(id, &mut batch).map_err(io_fail)?;
                        }
                    }
                    Err(f) => {
                        skipped += 1;
                        self.skip(id, &mut batch, rel, f).map_err(io_fail)?;
                    }
                }
            }
            // Sorted order: the first subdirectory is popped first.
            stack.extend(subdirs.into_iter().rev());
        }
        self.flush_batch(id, &mut batch).map_err(io_fail)?;
        Ok(Some(
            Response::Done {
                entries: batch.total,
                skipped,
                bytes: 0,
                changed: false,
            }
            .into_frame(id),
        ))
    }

    fn skip(&mut self, id: u32, batch: &mut Batch, path: RelPath, f: Fail) -> io::Result<()> {
        // Keep the stream's order: entries before the skip go out first.
        self.flush_batch(id, batch)?;
        self.send(
            &Response::Skipped {
                path,
                code: f.code,
                message: f.message,
            }
            .into_frame(id),
        )
    }

    fn flush_batch(&mut self, id: u32, batch: &mut Batch) -> io::Result<()> {
        if batch.entries.is_empty() {
            return Ok(());
        }
        let entries = std::mem::take(&mut batch.entries);
        batch.bytes = 0;
        self.send(&Response::Entries(entries).into_frame(id))
    }

    /// `ReadFile`: `Opened`, `Data`*, and `Done` returned for the caller to send.
    fn read_file(
        &mut self,
        id: u32,
        t: &Target,
        offset: u64,
        len: u64,
    ) -> Result<Option<Frame>, Fail> {
        let mut f = self.root(t.root)?.open_file(&t.path)?;
        let before = fs::entry_of_metadata(t.path.clone(), &f.metadata()?);
        self.send(&Response::Opened(before.clone()).into_frame(id))
            .map_err(io_fail)?;
        std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(offset))?;
        let mut left = len;
        let mut sent = 0u64;
        let mut buf = vec![0u8; CHUNK];
        while left > 0 {
            let want = (left.min(CHUNK as u64)) as usize;
            let n = match f.read(&mut buf[..want]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            self.send(&Frame::new(Kind::Data, id, buf[..n].to_vec()))
                .map_err(io_fail)?;
            sent += n as u64;
            left -= n as u64;
        }
        let after = fs::entry_of_metadata(t.path.clone(), &f.metadata()?);
        Ok(Some(
            Response::Done {
                entries: 0,
                skipped: 0,
                bytes: sent,
                changed: changed(&before, &after),
            }
            .into_frame(id),
        ))
    }

    fn hash(&mut self, t: &Target) -> Result<Response, Fail> {
        let mut f = self.root(t.root)?.open_file(&t.path)?;
        let before = fs::entry_of_metadata(t.path.clone(), &f.metadata()?);
        let mut h = blake3::Hasher::new();
        let size = h.update_reader(&mut f)?.count();
        let after = fs::entry_of_metadata(t.path.clone(), &f.metadata()?);
        Ok(Response::Hashed {
            hash: *h.finalize().as_bytes(),
            size,
            changed: changed(&before, &after) || size != before.size,
        })
    }
}

/// Returns true if and only if a file's size, mtime or ctime moved between two looks: it was
/// written to while we read it, and the copy must be sent again.
fn changed(a: &Entry, b: &Entry) -> bool {
    a.size != b.size || a.mtime != b.mtime || a.ctime != b.ctime
}

fn io_fail(e: io::Error) -> Fail {
    Fail::new(ErrorCode::Io, format!("writing to the operator: {e}"))
}

#[derive(Default)]
struct Batch {
    entries: Vec<Entry>,
    bytes: usize,
    total: u64,
}

impl Batch {
    fn push(&mut self, e: Entry) {
        self.bytes += 80 + e.path.as_bytes().len() + e.target.len();
        self.total += 1;
        self.entries.push(e);
    }
}
