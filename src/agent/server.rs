//! The agent's side of a connection: read frames from stdin, answer on stdout.
//!
//! [`serve_with`] runs the handshake, then answers requests in the order they come until `Exit`
//! or a clean end of its input. The operator may pipeline: send many requests before reading
//! answers; the agent buffers its answers and flushes whenever no further whole request is
//! waiting in its input, and before it starts a `Scan` (which takes long). A request that fails gets an `Error` frame and the connection goes on;
//! bytes that are not a frame end the connection with an `Error` frame of id 0 (after a bad
//! header there is no way to find the next frame). Nothing here panics on input.
//!
//! # Reads and writes
//! Reads (`Stat`, `Scan`, `ReadFile`, `Hash`, `Accounts`) go through [`super::fs`]. Writes
//! (`Put` with its `Data` and `PutEnd`, `Mkdir`, `Symlink`, `Link`, `SetMeta`, `Remove`,
//! `Cleanup`, `Sync`; see [`Request`] for what each does) go through [`super::write`] and are
//! carried out only when both the process was started writable (`ocmigrate agent --writable`,
//! which only the target's spawn passes) and the `Hello` asked for it; otherwise each is
//! answered with `Error` [`ErrorCode::ReadOnly`] and the file system is not touched. Several
//! `Put`s may be open at once (their `Data` frames interleaved by id); each is answered once,
//! at its `PutEnd` or at its first failure. Temporary files of `Put`s still open when the
//! connection ends are removed.
//!
//! Stdout carries frames only; diagnostics go to stderr, which the operator keeps.

use super::frame::{self, Frame, FrameReader, Kind, ReadError};
use super::fs::{self, Fail, Root};
use super::proto::{
    data_of, Entry, ErrorCode, Hello, RelPath, Request, Response, Target, Welcome, BINARY_VERSION,
    MAX_CHUNK, PROTOCOL_VERSION,
};
use super::readahead::ReadAhead;
use super::scan;
use super::write::{self, PutFile};
use std::collections::{HashMap, HashSet};
use std::io::{self, BufWriter, Read, Write};

pub use super::proto::CHUNK;
/// `Put`s open at once on one connection, at most.
const MAX_OPEN_PUTS: usize = 1024;
/// The zstd level for `ReadFile` with `compress` (fast: the link, not the CPU, should be what
/// limits a transfer).
const ZSTD_LEVEL: i32 = 1;
/// An `Entries` frame is sent once its payload passes this size.
const BATCH_BYTES: usize = 256 * 1024;

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
    /// Write requests are carried out (the process allows it and the Hello asked).
    writable: bool,
    /// Open `Put`s by request id.
    puts: HashMap<u32, (RelPath, PutFile)>,
    /// Ids of `Put`s already answered with an error: their `Data` and `PutEnd` are dropped.
    dropped: HashSet<u32>,
    /// `Scan` batches go as `EntriesZstd` when that saves a tenth.
    compress_entries: bool,
    compressor: Option<zstd::bulk::Compressor<'static>>,
    decompressor: Option<zstd::bulk::Decompressor<'static>>,
    /// File bytes read for a `ReadFile`, and (de)compressed chunks.
    buf: Vec<u8>,
    zbuf: Vec<u8>,
    /// Flushes in the background while `Put`s write: tried once, at the first `Data` (`None`
    /// inside when it could not start).
    writeback: Option<Option<write::Writeback>>,
    /// Asks the disk for the files the operator has asked for ahead of the one being read.
    readahead: ReadAhead,
}

/// Serve one operator on `input`/`output` (the agent's stdin and stdout), read-only.
pub fn serve<R: Read, W: Write>(input: R, output: W) -> Result<(), ServeError> {
    serve_with(input, output, false)
}

/// Serve one operator; write requests are carried out only if `allow_write` (the process was
/// started `--writable`) and the `Hello` asks for them.
pub fn serve_with<R: Read, W: Write>(
    input: R,
    output: W,
    allow_write: bool,
) -> Result<(), ServeError> {
    raise_fd_limit();
    let mut reader = FrameReader::new(input);
    let mut s = Server {
        out: BufWriter::with_capacity(CHUNK + 64 * 1024, output),
        roots: Vec::new(),
        writable: false,
        puts: HashMap::new(),
        dropped: HashSet::new(),
        compressor: None,
        decompressor: None,
        buf: Vec::new(),
        zbuf: Vec::new(),
        writeback: None,
        readahead: ReadAhead::new(Vec::new()),
        // Started by sshd: the entries of a scan cross a network, where their size counts.
        compress_entries: std::env::var_os("SSH_CONNECTION").is_some(),
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
        s.out.flush()?;
        return Err(ServeError::NoHello(kind));
    }
    let hello = match Hello::from_frame(&first) {
        Ok(h) => h,
        Err(e @ frame::Error::VersionMismatch { .. }) => {
            // Tell the operator who we are, so it can deploy the right binary, then stop.
            let w = welcome(Vec::new(), false);
            s.send(&w.into_frame())?;
            s.out.flush()?;
            return Err(e.into());
        }
        Err(e) => return s.fatal(ErrorCode::BadRequest, e.into()),
    };
    s.writable = allow_write && hello.writable;
    s.roots = hello.roots.iter().map(|r| Root::open(r)).collect();
    s.readahead = ReadAhead::new(
        s.roots
            .iter()
            .map(|r| r.as_ref().ok().and_then(|r| r.try_clone().ok()))
            .collect(),
    );
    let statuses = s
        .roots
        .iter()
        .map(|r| match r {
            Ok(_) => Ok(()),
            Err(f) => Err((f.code, f.message.clone())),
        })
        .collect();
    s.send(&welcome(statuses, s.writable).into_frame())?;
    s.out.flush()?;

    loop {
        let f = match reader.read_frame() {
            Ok(Some(f)) => f,
            // The operator closed our stdin between frames: a normal end.
            Ok(None) => {
                s.out.flush()?;
                return Ok(());
            }
            Err(e) => return s.fatal(ErrorCode::BadRequest, e.into()),
        };
        // The files asked for behind this request: their reads start now.
        let ra = &mut s.readahead;
        ra.taken(f.id);
        reader.look_ahead(|kind, id, payload| {
            if let Some(t) = Request::file_of(kind, payload) {
                ra.hint(id, t);
            }
        });
        let id = f.id;
        if id == 0 {
            // Id 0 is the connection's (the handshake, fatal errors): a second Hello or a request
            // without an id means the operator lost track, and so would every answer.
            let e = frame::Error::Unexpected { kind: f.kind };
            return s.fatal(ErrorCode::BadRequest, e.into());
        }
        if f.kind == Kind::Data {
            s.data(&f)?;
        } else {
            match Request::from_frame(&f) {
                // The frame's bounds were fine, only its payload was not: answer and go on.
                Err(e) => {
                    if f.kind == Kind::Put {
                        // Its Data and PutEnd will follow: drop them without more answers.
                        s.dropped.insert(id);
                    }
                    s.send_error(id, ErrorCode::BadRequest, e.to_string(), b"")?
                }
                Ok(Request::Exit) => {
                    s.send(&Response::Bye.into_frame(id))?;
                    s.out.flush()?;
                    return Ok(());
                }
                Ok(req) => {
                    if matches!(req, Request::Scan(_)) {
                        // A scan takes long: the answers before it go now, not behind it.
                        s.out.flush()?;
                    }
                    s.handle(id, req)?
                }
            }
        }
        // Flush when the operator is waiting for us; keep batching while requests are queued.
        if !reader.has_buffered_frame() {
            s.out.flush()?;
        }
    }
}

/// Raise the soft limit of open descriptors to the hard one: `Remove` holds one descriptor per
/// level of a tree (paths near 4096 bytes are ~2000 levels deep) and `Scan`'s workers a few.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid out pointer; setrlimit with a soft limit not above the hard one.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn welcome(roots: Vec<Result<(), (ErrorCode, String)>>, writable: bool) -> Welcome {
    Welcome {
        proto: PROTOCOL_VERSION,
        version: BINARY_VERSION.to_string(),
        exe_hash: own_exe_hash(),
        pid: std::process::id(),
        // SAFETY: geteuid has no preconditions.
        uid: unsafe { libc::geteuid() },
        writable,
        roots,
    }
}

fn done(entries: u64, skipped: u64, bytes: u64) -> Response {
    Response::Done {
        entries,
        skipped,
        bytes,
        changed: false,
    }
}

impl<W: Write> Server<W> {
    fn send(&mut self, f: &Frame) -> io::Result<()> {
        frame::write_frame_buffered(&mut self.out, f)
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

    /// A `Data` frame from the operator: the next bytes of an open `Put`.
    fn data(&mut self, f: &Frame) -> io::Result<()> {
        let id = f.id;
        if self.dropped.contains(&id) {
            return Ok(());
        }
        let Some((path, put)) = self.puts.get_mut(&id) else {
            self.dropped.insert(id);
            return self.send_error(
                id,
                ErrorCode::BadRequest,
                "Data for a request that is not an open Put".into(),
                b"",
            );
        };
        let r = match data_of(f) {
            Err(e) => Err(Fail::new(ErrorCode::BadData, e.to_string())),
            Ok((chunk, false)) => put.write(chunk).map(|()| chunk.len()),
            Ok((chunk, true)) => {
                if self.zbuf.len() < MAX_CHUNK {
                    self.zbuf.resize(MAX_CHUNK, 0);
                }
                let d = match self.decompressor.as_mut() {
                    Some(d) => Ok(d),
                    None => zstd::bulk::Decompressor::new().map(|d| self.decompressor.insert(d)),
                };
                // The buffer's size caps what a chunk may decompress to: a zstd bomb fails here.
                d.and_then(|d| d.decompress_to_buffer(chunk, &mut self.zbuf[..MAX_CHUNK]))
                    .map_err(|e| {
                        Fail::new(
                            ErrorCode::BadData,
                            format!(
                                "a compressed chunk is not a zstd frame of at most {MAX_CHUNK} \
                                 bytes: {e}"
                            ),
                        )
                    })
                    .and_then(|n| put.write(&self.zbuf[..n]).map(|()| n))
            }
        };
        let r = r.map(|n| {
            let w = self
                .writeback
                .get_or_insert_with(|| write::Writeback::start(self.roots.iter().flatten()));
            if let Some(w) = w {
                w.wrote(n as u64);
            }
        });
        if let Err(fail) = r {
            let path = path.as_bytes().to_vec();
            // Dropping the PutFile removes its temporary file.
            self.puts.remove(&id);
            self.dropped.insert(id);
            return self.send_error(id, fail.code, fail.message, &path);
        }
        Ok(())
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
        if req.is_write() && !self.writable {
            let path = match &req {
                Request::Put { target, .. } => {
                    self.dropped.insert(id);
                    target.path.as_bytes().to_vec()
                }
                // The Put was refused already and answered.
                Request::PutEnd if self.dropped.remove(&id) => return Ok(()),
                _ => Vec::new(),
            };
            return self.send_error(
                id,
                ErrorCode::ReadOnly,
                "this agent connection is read-only (the source is never written)".into(),
                &path,
            );
        }
        let (path, result): (Vec<u8>, Result<Option<Response>, Fail>) = match req {
            Request::Stat(t) => {
                let r = self.root(t.root).and_then(|root| root.lstat(&t.path));
                (
                    t.path.as_bytes().to_vec(),
                    r.map(|e| Some(Response::Meta(e))),
                )
            }
            Request::Scan(t) => {
                let r = self.scan(id, &t);
                (t.path.as_bytes().to_vec(), r)
            }
            Request::ReadFile {
                target,
                offset,
                len,
                compress,
            } => {
                let r = self.read_file(id, &target, offset, len, compress);
                (target.path.as_bytes().to_vec(), r)
            }
            Request::Hash(t) => {
                let r = self.hash(&t).map(Some);
                (t.path.as_bytes().to_vec(), r)
            }
            Request::Put {
                target,
                size,
                mode,
                uid,
                gid,
                mtime,
            } => {
                let r = if self.puts.contains_key(&id) || self.dropped.contains(&id) {
                    Err(Fail::new(
                        ErrorCode::BadRequest,
                        format!("request id {id} is already an open Put"),
                    ))
                } else if self.puts.len() >= MAX_OPEN_PUTS {
                    Err(Fail::new(
                        ErrorCode::BadRequest,
                        format!("more than {MAX_OPEN_PUTS} Puts open at once"),
                    ))
                } else {
                    self.root(target.root)
                        .and_then(|root| root.put_begin(&target.path, size, mode, uid, gid, mtime))
                };
                match r {
                    Ok(p) => {
                        self.puts.insert(id, (target.path, p));
                        // Answered at its PutEnd.
                        return Ok(());
                    }
                    Err(f) => {
                        if let Some((_, p)) = self.puts.remove(&id) {
                            drop(p);
                        }
                        self.dropped.insert(id);
                        (target.path.as_bytes().to_vec(), Err(f))
                    }
                }
            }
            Request::PutEnd => {
                if self.dropped.remove(&id) {
                    return Ok(());
                }
                match self.puts.remove(&id) {
                    Some((path, p)) => {
                        let r = p.finish().map(|n| Some(done(0, 0, n)));
                        (path.as_bytes().to_vec(), r)
                    }
                    None => (
                        Vec::new(),
                        Err(Fail::new(
                            ErrorCode::BadRequest,
                            "PutEnd for a request that is not an open Put",
                        )),
                    ),
                }
            }
            Request::Mkdir {
                target,
                mode,
                uid,
                gid,
            } => {
                let r = self
                    .root(target.root)
                    .and_then(|root| root.mkdir(&target.path, mode, uid, gid));
                (
                    target.path.as_bytes().to_vec(),
                    r.map(|()| Some(done(0, 0, 0))),
                )
            }
            Request::Symlink {
                target,
                link,
                uid,
                gid,
                mtime,
            } => {
                let r = self
                    .root(target.root)
                    .and_then(|root| root.symlink(&target.path, &link, uid, gid, mtime));
                (
                    target.path.as_bytes().to_vec(),
                    r.map(|()| Some(done(0, 0, 0))),
                )
            }
            Request::Link { target, existing } => {
                let r = self
                    .root(target.root)
                    .and_then(|root| root.link(&target.path, &existing));
                (
                    target.path.as_bytes().to_vec(),
                    r.map(|()| Some(done(0, 0, 0))),
                )
            }
            Request::SetMeta {
                target,
                mode,
                uid,
                gid,
                mtime,
            } => {
                let r = self
                    .root(target.root)
                    .and_then(|root| root.set_meta(&target.path, mode, uid, gid, mtime));
                (
                    target.path.as_bytes().to_vec(),
                    r.map(|()| Some(done(0, 0, 0))),
                )
            }
            Request::Remove { target } => {
                let r = self
                    .root(target.root)
                    .and_then(|root| root.remove(&target.path));
                (
                    target.path.as_bytes().to_vec(),
                    r.map(|n| Some(done(n, 0, 0))),
                )
            }
            Request::Cleanup { target } => {
                let r = self
                    .root(target.root)
                    .and_then(|root| root.cleanup(&target.path));
                (
                    target.path.as_bytes().to_vec(),
                    r.map(|(n, unreadable)| Some(done(n, unreadable, 0))),
                )
            }
            Request::Sync => {
                let r = self.roots.iter().flatten().try_for_each(|root| root.sync());
                (Vec::new(), r.map(|()| Some(done(0, 0, 0))))
            }
            Request::Accounts => {
                let r = write::accounts()
                    .map(|(users, groups)| Some(Response::AccountList { users, groups }));
                (Vec::new(), r)
            }
            Request::Exit => unreachable!("handled by serve"),
        };
        match result {
            Ok(Some(r)) => self.send(&r.into_frame(id)),
            Ok(None) => Ok(()),
            Err(fail) => self.send_error(id, fail.code, fail.message, &path),
        }
    }

    /// `Scan`: `Err` only when the start path cannot be read; everything below it that cannot
    /// be read is `Skipped` and the scan goes on (see [`scan::walk`] for the order and the
    /// threads). A write error to the operator ends it as `Fail` with code Io, re-raised by the
    /// next write.
    fn scan(&mut self, id: u32, t: &Target) -> Result<Option<Response>, Fail> {
        let root = match self.roots.get(t.root as usize) {
            Some(Ok(r)) => r,
            _ => return Err(self.root(t.root).unwrap_err()),
        };
        let out = &mut self.out;
        let mut batch = Batch {
            compress: self.compress_entries,
            ..Batch::default()
        };
        let mut skipped = 0u64;
        let mut emit = |item: scan::Item| -> io::Result<()> {
            match item {
                scan::Item::Entry(e) => {
                    batch.push(e);
                    if batch.bytes >= BATCH_BYTES {
                        flush_batch(out, id, &mut batch)?;
                    }
                    Ok(())
                }
                scan::Item::Skipped(path, f) => {
                    skipped += 1;
                    // Keep the stream's order: entries before the skip go out first.
                    flush_batch(out, id, &mut batch)?;
                    let r = Response::Skipped {
                        path,
                        code: f.code,
                        message: f.message,
                    };
                    frame::write_frame_buffered(out, &r.into_frame(id))
                }
            }
        };
        match scan::walk(root, &t.path, scan::default_workers(), &mut emit) {
            Ok(()) => {}
            Err(scan::WalkError::Start(f)) => return Err(f),
            Err(scan::WalkError::Emit(e)) => return Err(io_fail(e)),
        }
        flush_batch(out, id, &mut batch).map_err(io_fail)?;
        Ok(Some(done(batch.total, skipped, 0)))
    }

    /// `ReadFile`: `Opened`, `Data`*, and `Done` returned for the caller to send. With
    /// `compress`, each chunk goes compressed when that saves a tenth; after four chunks in a row
    /// that do not, only every sixteenth is tried (incompressible files cost little CPU).
    fn read_file(
        &mut self,
        id: u32,
        t: &Target,
        offset: u64,
        len: u64,
        compress: bool,
    ) -> Result<Option<Response>, Fail> {
        let (mut f, meta) = self.root(t.root)?.open_file_with_metadata(&t.path)?;
        let before = fs::entry_of_metadata(t.path.clone(), &meta);
        self.send(&Response::Opened(before.clone()).into_frame(id))
            .map_err(io_fail)?;
        std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(offset))?;
        if self.buf.len() < CHUNK {
            self.buf.resize(CHUNK, 0);
        }
        if compress && self.zbuf.len() < MAX_CHUNK {
            self.zbuf.resize(MAX_CHUNK, 0);
        }
        let mut left = len;
        let mut sent = 0u64;
        let (mut misses, mut chunk_no) = (0u32, 0u64);
        while left > 0 {
            let want = (left.min(CHUNK as u64)) as usize;
            let n = match f.read(&mut self.buf[..want]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            let mut packed = None;
            if compress && (misses < 4 || chunk_no % 16 == 0) {
                if self.compressor.is_none() {
                    self.compressor = Some(zstd::bulk::Compressor::new(ZSTD_LEVEL)?);
                }
                let c = self.compressor.as_mut().expect("just made");
                // A buffer a tenth smaller than the chunk: zstd fails when it does not fit.
                let limit = n - n / 10;
                match c.compress_to_buffer(&self.buf[..n], &mut self.zbuf[..limit]) {
                    Ok(m) => {
                        packed = Some(m);
                        misses = 0;
                    }
                    Err(_) => misses += 1,
                }
            }
            chunk_no += 1;
            let r = match packed {
                Some(m) => {
                    frame::write_parts(&mut self.out, Kind::Data, id, &[&self.zbuf[..m], &[1]])
                }
                None => frame::write_parts(&mut self.out, Kind::Data, id, &[&self.buf[..n], &[0]]),
            };
            r.map_err(io_fail)?;
            sent += n as u64;
            left -= n as u64;
        }
        let after = fs::entry_of_metadata(t.path.clone(), &f.metadata()?);
        Ok(Some(Response::Done {
            entries: 0,
            skipped: 0,
            bytes: sent,
            changed: changed(&before, &after),
        }))
    }

    fn hash(&mut self, t: &Target) -> Result<Response, Fail> {
        let (mut f, meta) = self.root(t.root)?.open_file_with_metadata(&t.path)?;
        let before = fs::entry_of_metadata(t.path.clone(), &meta);
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

fn flush_batch<W: Write>(out: &mut W, id: u32, batch: &mut Batch) -> io::Result<()> {
    if batch.entries.is_empty() {
        return Ok(());
    }
    let entries = std::mem::take(&mut batch.entries);
    batch.bytes = 0;
    let mut f = Response::Entries(entries).into_frame(id);
    if batch.compress {
        if let Ok(z) = zstd::bulk::compress(&f.payload, ZSTD_LEVEL) {
            if z.len() < f.payload.len() - f.payload.len() / 10 {
                f = Frame::new(Kind::EntriesZstd, id, z);
            }
        }
    }
    frame::write_frame_buffered(out, &f)
}

#[derive(Default)]
struct Batch {
    entries: Vec<Entry>,
    bytes: usize,
    total: u64,
    /// zstd for the batches (see `Server::compress_entries`).
    compress: bool,
}

impl Batch {
    fn push(&mut self, e: Entry) {
        self.bytes += 80 + e.path.as_bytes().len() + e.target.len();
        self.total += 1;
        self.entries.push(e);
    }
}
