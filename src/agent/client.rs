//! The operator's side of a connection: [`AgentClient`], the handshake and one typed call per
//! request, over any byte streams (a child's stdio in practice).
//!
//! The convenience calls are sequential: each sends one request and reads frames with that
//! request's id until the terminal one. For pipelining, [`AgentClient::into_split`] gives an
//! [`AgentSender`] and an [`AgentReceiver`] for two threads. An `Error` frame for a request is
//! [`AgentError::Failed`] (or `Response::Error` from the receiver) and the connection stays
//! usable; anything else that goes wrong (closed pipe, bytes that are not a
//! frame, a frame out of place) is fatal and the client should be dropped. The agent's stderr
//! is kept (its last lines) and shown in fatal errors: it is never lost.
//!
//! It never trusts the agent (a compromised source must not be able to steer the operator):
//! every path in an answer is checked as a `RelPath`, every count is bounded by its payload, a
//! frame for another request id is an error, and a `ReadFile` whose byte count disagrees with
//! its `Done` is refused.

use super::frame::{self, Frame, FrameReader, Kind, ReadError};
use super::proto::{
    Account, Entry, ErrorCode, Hello, RelPath, Request, Response, Target, Time, Welcome,
    BINARY_VERSION, CHUNK, MAX_CHUNK, PROTOCOL_VERSION,
};
use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Lines of agent stderr kept for error messages.
const STDERR_LINES: usize = 20;

/// What went wrong talking to an agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The agent answered this request with an error; the connection is still fine.
    #[error("{}: {message}", String::from_utf8_lossy(path))]
    Failed {
        code: ErrorCode,
        message: String,
        path: Vec<u8>,
    },
    /// The agent is of another protocol or binary version: deploy ours and start again.
    #[error("the agent is version {version} (protocol {proto}); we are {BINARY_VERSION} (protocol {PROTOCOL_VERSION})")]
    Mismatch { proto: u16, version: String },
    /// The agent's executable is not the one we deployed.
    #[error("the agent's executable has BLAKE3 {found}, not {expected} as deployed")]
    WrongBinary { expected: String, found: String },
    /// The connection broke or the agent said something that is not the protocol.
    #[error("{what}{}", stderr_note(.stderr))]
    Broken { what: String, stderr: Vec<String> },
}

fn stderr_note(lines: &[String]) -> String {
    if lines.is_empty() {
        String::new()
    } else {
        format!("; agent stderr:\n  {}", lines.join("\n  "))
    }
}

impl AgentError {
    /// Returns true if and only if the connection cannot be used any more.
    pub fn is_fatal(&self) -> bool {
        !matches!(self, AgentError::Failed { .. })
    }
    /// The agent's error code, for a request that failed.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            AgentError::Failed { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// One item of a scan, in the agent's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanItem {
    Entry(Entry),
    Skipped {
        path: RelPath,
        code: ErrorCode,
        message: String,
    },
}

/// Totals at the end of a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanDone {
    pub entries: u64,
    pub skipped: u64,
}

/// What a `ReadFile` delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadDone {
    /// The file's metadata when it was opened.
    pub meta: Entry,
    pub bytes: u64,
    /// The file changed while it was read: send it again.
    pub changed: bool,
}

/// The answer to `Hash`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hashed {
    pub hash: [u8; 32],
    pub size: u64,
    pub changed: bool,
}

type Tail = Arc<Mutex<Vec<String>>>;

/// What both halves of a connection share: who the agent is, its process and its stderr. The
/// process is reaped when the last half goes (after the sender closed the agent's stdin).
struct Link {
    label: String,
    stderr: Tail,
    child: Mutex<Option<Child>>,
    stderr_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    welcome: Mutex<Welcome>,
    /// Requests sent so far: an answer for an id never sent is a broken agent.
    sent: AtomicU64,
    /// Kill the agent when the connection is dropped, not wait for it to exit: set while scans
    /// asked ahead are not all read (the agent would not see its stdin close while it waits to
    /// write their answers), and by [`AgentClient::kill`].
    kill_on_drop: AtomicBool,
}

impl Link {
    fn broken(&self, what: String) -> AgentError {
        AgentError::Broken {
            what: format!("{}: {what}", self.label),
            stderr: self.stderr_tail(),
        }
    }

    fn stderr_tail(&self) -> Vec<String> {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Give the agent a moment to exit and the stderr thread to collect its last words, then
    /// say how it ended (`exit status 1`, `signal 9`), if it did.
    fn last_words(&self) -> Option<String> {
        let status = {
            let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
            child.as_mut().and_then(|c| {
                let t0 = Instant::now();
                loop {
                    match c.try_wait() {
                        Ok(Some(s)) => return Some(s),
                        Ok(None) if t0.elapsed() < Duration::from_secs(2) => {
                            std::thread::sleep(Duration::from_millis(10))
                        }
                        _ => return None,
                    }
                }
            })
        };
        if status.is_some() {
            // The process is gone, so its stderr reaches EOF: the thread ends.
            let t = self
                .stderr_thread
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            if let Some(t) = t {
                let _ = t.join();
            }
        }
        status.map(|s| {
            use std::os::unix::process::ExitStatusExt;
            match (s.code(), s.signal()) {
                (Some(c), _) => format!("exit status {c}"),
                (None, Some(sig)) => format!("killed by signal {sig}"),
                _ => s.to_string(),
            }
        })
    }

    /// A broken connection, with how the agent ended and its stderr.
    fn with_stderr(&self, e: AgentError) -> AgentError {
        match e {
            AgentError::Broken { what, .. } => {
                let what = match self.last_words() {
                    Some(how) => format!("{what} ({how})"),
                    None => what,
                };
                AgentError::Broken {
                    what,
                    stderr: self.stderr_tail(),
                }
            }
            e => e,
        }
    }

    fn remote_fatal(&self, f: &Frame) -> AgentError {
        let msg = match Response::from_frame(f) {
            Ok(Response::Error { message, .. }) => message,
            _ => "unreadable error frame".into(),
        };
        self.broken(format!("the agent gave up: {msg}"))
    }
}

impl Drop for Link {
    /// Reap the child (killing it if it does not exit within 5 s of its stdin closing).
    fn drop(&mut self) {
        let child = self
            .child
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(mut c) = child {
            if self.kill_on_drop.load(Ordering::Acquire) {
                let _ = c.kill();
            }
            let t0 = Instant::now();
            loop {
                match c.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if t0.elapsed() > Duration::from_secs(5) => {
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        }
        let t = self
            .stderr_thread
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(t) = t {
            let _ = t.join();
        }
    }
}

/// The sending half of a connection (see [`AgentClient::into_split`]): requests, `Data` and
/// `PutEnd` frames, buffered until [`AgentSender::flush`] (or until the buffer fills).
pub struct AgentSender {
    link: Arc<Link>,
    writer: Option<BufWriter<Box<dyn Write + Send>>>,
    next_id: u32,
    /// Requests sent with [`AgentSender::send_grouped`] since the last flush.
    unflushed: usize,
}

/// A pipelining sender flushes its requests in groups of this many, so the agent wakes for a
/// group, not for each one.
pub const FLUSH_GROUP: usize = 16;

/// The receiving half of a connection (see [`AgentClient::into_split`]): every frame the agent
/// sends, with its request id.
pub struct AgentReceiver {
    link: Arc<Link>,
    reader: FrameReader<Box<dyn Read + Send>>,
}

impl AgentSender {
    /// Queue a request; returns its id (ids count up from 1). Nothing leaves before
    /// [`AgentSender::flush`] unless the buffer (256 KiB) fills. For a `Put`, follow with
    /// [`AgentSender::send_data`] and [`AgentSender::send_end`] under the returned id.
    pub fn send(&mut self, r: &Request) -> Result<u32, AgentError> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        // Counted before it can leave: the answer may come before this thread runs again.
        self.link.sent.fetch_add(1, Ordering::Release);
        self.write(|w| frame::write_frame_buffered(w, &r.into_frame(id)))?;
        Ok(id)
    }

    /// Queue a `Data` frame for the open `Put` `id`: file bytes (`compressed` false), or one
    /// zstd frame of at most [`MAX_CHUNK`] bytes once decompressed (`compressed` true), such as
    /// a chunk a source agent sent compressed, forwarded unchanged. At most [`MAX_CHUNK`] bytes.
    pub fn send_data(&mut self, id: u32, bytes: &[u8], compressed: bool) -> Result<(), AgentError> {
        if bytes.len() > MAX_CHUNK {
            return Err(self.link.broken(format!(
                "a Data chunk of {} bytes is over the limit of {MAX_CHUNK}",
                bytes.len()
            )));
        }
        let flag = [compressed as u8];
        self.write(|w| frame::write_parts(w, Kind::Data, id, &[bytes, &flag]))
    }

    /// Queue the `PutEnd` of the open `Put` `id`. Send it even after the `Put` was answered
    /// with an error (the agent drops it then).
    pub fn send_end(&mut self, id: u32) -> Result<(), AgentError> {
        self.write(|w| frame::write_frame_buffered(w, &Request::PutEnd.into_frame(id)))
    }

    /// Send everything queued.
    pub fn flush(&mut self) -> Result<(), AgentError> {
        self.unflushed = 0;
        self.write(|w| w.flush())
    }

    /// [`AgentSender::send`] for a pipeline: flushed with every [`FLUSH_GROUP`]th request.
    pub fn send_grouped(&mut self, r: &Request) -> Result<u32, AgentError> {
        let id = self.send(r)?;
        self.unflushed += 1;
        if self.unflushed >= FLUSH_GROUP {
            self.flush()?;
        }
        Ok(id)
    }

    /// Put `item` into a pipeline's window: a bounded channel that the reading side empties as
    /// answers come. When it is full, what was queued is flushed before waiting (the answers
    /// that would make room must be asked for first). False when the reading side is gone.
    pub fn enter_window<T>(
        &mut self,
        window: &std::sync::mpsc::SyncSender<T>,
        item: T,
    ) -> Result<bool, AgentError> {
        match window.try_send(item) {
            Ok(()) => Ok(true),
            Err(std::sync::mpsc::TrySendError::Full(item)) => {
                self.flush()?;
                Ok(window.send(item).is_ok())
            }
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => Ok(false),
        }
    }

    /// Close the agent's stdin: after the answers to what was sent, it exits.
    pub fn close(mut self) -> Result<(), AgentError> {
        let r = self.flush();
        self.writer = None;
        r
    }

    /// What the agent said in the handshake.
    pub fn welcome(&self) -> Welcome {
        self.link
            .welcome
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn write(
        &mut self,
        f: impl FnOnce(&mut BufWriter<Box<dyn Write + Send>>) -> io::Result<()>,
    ) -> Result<(), AgentError> {
        let r = match self.writer.as_mut() {
            Some(w) => f(w),
            None => Err(io::Error::new(io::ErrorKind::BrokenPipe, "closed")),
        };
        r.map_err(|e| self.link.broken(format!("sending to the agent: {e}")))
    }
}

impl AgentReceiver {
    /// The next frame from the agent, with the id of the request it answers. An `Error` for a
    /// request is returned as `Response::Error` (the connection goes on; see [`failed`]); an
    /// `Error` of the connection (id 0), a closed pipe, bytes that are not a frame or an id
    /// never sent are [`AgentError::Broken`]. A `Data` chunk comes as the agent sent it
    /// (possibly compressed: see [`decompress`]).
    pub fn recv(&mut self) -> Result<(u32, Response), AgentError> {
        let f = match self.reader.read_frame() {
            Ok(Some(f)) => f,
            Ok(None) => {
                let e = self.link.broken("the agent closed the connection".into());
                return Err(self.link.with_stderr(e));
            }
            Err(ReadError::Frame(e)) => {
                let pending = self.reader.pending();
                let shown = String::from_utf8_lossy(&pending[..pending.len().min(80)]).into_owned();
                return Err(self.link.broken(format!(
                    "the agent sent bytes that are not a frame ({e}): {shown:?} \
                     (does a login script print to stdout?)"
                )));
            }
            Err(e) => {
                let e = self.link.broken(format!("reading from the agent: {e}"));
                return Err(self.link.with_stderr(e));
            }
        };
        if f.id == 0 {
            if f.kind == Kind::Error {
                let e = self.link.remote_fatal(&f);
                return Err(self.link.with_stderr(e));
            }
            return Err(self.link.broken(format!("a {:?} frame with id 0", f.kind)));
        }
        let sent = self.link.sent.load(Ordering::Acquire);
        if sent < u32::MAX as u64 && f.id as u64 > sent {
            return Err(self.link.broken(format!(
                "a {:?} frame for request {}, which was never sent",
                f.kind, f.id
            )));
        }
        let id = f.id;
        match Response::from_owned(f) {
            Ok(r) => Ok((id, r)),
            Err(e) => Err(self.link.broken(format!("bad response: {e}"))),
        }
    }

    /// What the agent said in the handshake.
    pub fn welcome(&self) -> Welcome {
        self.link
            .welcome
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The last lines the agent wrote to stderr.
    pub fn stderr_tail(&self) -> Vec<String> {
        self.link.stderr_tail()
    }
}

/// An `Error` response as [`AgentError::Failed`]; any other response as it is.
pub fn failed(r: Response) -> Result<Response, AgentError> {
    match r {
        Response::Error {
            code,
            message,
            path,
        } => Err(AgentError::Failed {
            code,
            message,
            path,
        }),
        r => Ok(r),
    }
}

/// The file bytes of a compressed `Data` chunk (at most [`MAX_CHUNK`] of them: a chunk that
/// would be larger is refused, so a zstd bomb from a compromised source costs nothing).
pub fn decompress(chunk: &[u8]) -> Result<Vec<u8>, AgentError> {
    zstd::bulk::decompress(chunk, MAX_CHUNK).map_err(|e| AgentError::Broken {
        what: format!("a compressed chunk is not a zstd frame of at most {MAX_CHUNK} bytes: {e}"),
        stderr: Vec::new(),
    })
}

/// A connection to one agent.
pub struct AgentClient {
    tx: AgentSender,
    rx: AgentReceiver,
    /// How long the handshake took, from sending `Hello` to reading `Welcome`.
    pub handshake_time: Duration,
    /// Scans asked ahead ([`AgentClient::ask_scan`]), oldest first, with their request ids.
    asked: VecDeque<(Target, u32)>,
}

impl AgentClient {
    /// The local process behind the connection: the ssh client, or the agent itself on a local
    /// side.
    pub fn process_id(&self) -> Option<u32> {
        let child = self.rx.link.child.lock().unwrap_or_else(|p| p.into_inner());
        child.as_ref().map(Child::id)
    }

    /// Take over a spawned agent (stdin, stdout and stderr piped) and do a read-only handshake.
    /// `expected_exe` is the BLAKE3 of the binary deployed, checked against the agent's own.
    pub fn from_child(
        label: &str,
        child: Child,
        roots: Vec<Vec<u8>>,
        expected_exe: Option<[u8; 32]>,
    ) -> Result<AgentClient, AgentError> {
        AgentClient::from_child_with(label, child, roots, expected_exe, false)
    }

    /// Like [`AgentClient::from_child`]; with `writable`, the `Hello` asks for write requests,
    /// and an agent that does not grant them (not started `agent --writable`, which only
    /// `TargetHost` does) is an error.
    pub fn from_child_with(
        label: &str,
        mut child: Child,
        roots: Vec<Vec<u8>>,
        expected_exe: Option<[u8; 32]>,
        writable: bool,
    ) -> Result<AgentClient, AgentError> {
        let stdin = child.stdin.take().expect("agent stdin piped");
        let stdout = child.stdout.take().expect("agent stdout piped");
        let tail: Tail = Arc::default();
        let stderr_thread = child.stderr.take().map(|err| {
            let tail = tail.clone();
            // Drain stderr on its own thread: a noisy agent must not block on a full pipe.
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines() {
                    let Ok(line) = line else { break };
                    let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
                    if t.len() == STDERR_LINES {
                        t.remove(0);
                    }
                    t.push(line);
                }
            })
        });
        let mut c = AgentClient::new(
            label,
            Box::new(stdout),
            Box::new(stdin),
            tail,
            Some(child),
            stderr_thread,
        );
        match c.handshake(roots, expected_exe, writable) {
            Ok(()) => Ok(c),
            Err(e) => Err(c.rx.link.with_stderr(e)),
        }
    }

    /// Do the handshake over any streams (tests connect it to an in-process server).
    pub fn connect(
        label: &str,
        input: Box<dyn Read + Send>,
        output: Box<dyn Write + Send>,
        roots: Vec<Vec<u8>>,
        writable: bool,
    ) -> Result<AgentClient, AgentError> {
        let mut c = AgentClient::new(label, input, output, Arc::default(), None, None);
        c.handshake(roots, None, writable)?;
        Ok(c)
    }

    fn new(
        label: &str,
        input: Box<dyn Read + Send>,
        output: Box<dyn Write + Send>,
        stderr: Tail,
        child: Option<Child>,
        stderr_thread: Option<std::thread::JoinHandle<()>>,
    ) -> AgentClient {
        let link = Arc::new(Link {
            label: label.to_string(),
            stderr,
            child: Mutex::new(child),
            stderr_thread: Mutex::new(stderr_thread),
            welcome: Mutex::new(Welcome {
                proto: 0,
                version: String::new(),
                exe_hash: [0; 32],
                pid: 0,
                uid: 0,
                writable: false,
                roots: Vec::new(),
            }),
            sent: AtomicU64::new(0),
            kill_on_drop: AtomicBool::new(false),
        });
        AgentClient {
            tx: AgentSender {
                link: link.clone(),
                writer: Some(BufWriter::with_capacity(256 * 1024, output)),
                next_id: 1,
                unflushed: 0,
            },
            rx: AgentReceiver {
                link,
                reader: FrameReader::new(input),
            },
            handshake_time: Duration::ZERO,
            asked: VecDeque::new(),
        }
    }

    fn handshake(
        &mut self,
        roots: Vec<Vec<u8>>,
        expected_exe: Option<[u8; 32]>,
        writable: bool,
    ) -> Result<(), AgentError> {
        let t0 = Instant::now();
        let mut hello = Hello::ours(roots);
        hello.writable = writable;
        let link = self.rx.link.clone();
        self.tx
            .write(|w| frame::write_frame(w, &hello.into_frame()))?;
        let f = match self.rx.reader.read_frame() {
            Ok(Some(f)) => f,
            Ok(None) => return Err(link.broken("the agent closed the connection".into())),
            Err(ReadError::Frame(e)) => {
                let pending = self.rx.reader.pending();
                let shown = String::from_utf8_lossy(&pending[..pending.len().min(80)]).into_owned();
                return Err(link.broken(format!(
                    "the agent sent bytes that are not a frame ({e}): {shown:?} \
                     (does a login script print to stdout?)"
                )));
            }
            Err(e) => return Err(link.broken(format!("reading from the agent: {e}"))),
        };
        let w = match Welcome::from_frame(&f) {
            Ok(w) => w,
            Err(frame::Error::VersionMismatch {
                theirs, version, ..
            }) => {
                return Err(AgentError::Mismatch {
                    proto: theirs,
                    version,
                })
            }
            Err(_) if f.kind == Kind::Error => return Err(link.remote_fatal(&f)),
            Err(e) => return Err(link.broken(format!("bad Welcome: {e}"))),
        };
        self.handshake_time = t0.elapsed();
        if w.version != BINARY_VERSION {
            return Err(AgentError::Mismatch {
                proto: w.proto,
                version: w.version,
            });
        }
        if let Some(exp) = expected_exe {
            if w.exe_hash != exp {
                return Err(AgentError::WrongBinary {
                    expected: hex(&exp),
                    found: hex(&w.exe_hash),
                });
            }
        }
        if w.writable != writable {
            return Err(link.broken(format!(
                "asked for a {} connection, the agent granted a {} one",
                if writable { "writable" } else { "read-only" },
                if w.writable { "writable" } else { "read-only" },
            )));
        }
        *link.welcome.lock().unwrap_or_else(|p| p.into_inner()) = w;
        Ok(())
    }

    /// Split into a sender and a receiver, for pipelining from two threads: one sends requests
    /// (and `Put` data) without waiting, the other reads the answers. The agent answers in the
    /// order of the requests (a `Put` when its `PutEnd` arrives). Both halves must keep moving:
    /// the agent stops reading when its answers are not read, so a single thread must not send
    /// an unbounded number of requests before it reads. The agent exits when the sender is
    /// closed or dropped; its process is reaped when both halves are gone.
    pub fn into_split(self) -> (AgentSender, AgentReceiver) {
        debug_assert!(self.asked.is_empty(), "scans asked ahead and never read");
        (self.tx, self.rx)
    }

    /// Both halves, borrowed, for one pipelined exchange (one thread sends, another reads, as
    /// with [`AgentClient::into_split`]); the connection is whole again when they are given back,
    /// once every answer was read.
    pub fn halves_mut(&mut self) -> (&mut AgentSender, &mut AgentReceiver) {
        (&mut self.tx, &mut self.rx)
    }

    /// The halves of [`AgentClient::into_split`] together again, once no request is in flight
    /// (every answer read), for more calls on the same agent.
    pub fn from_halves(tx: AgentSender, rx: AgentReceiver) -> AgentClient {
        AgentClient {
            tx,
            rx,
            handshake_time: Duration::ZERO,
            asked: VecDeque::new(),
        }
    }

    /// What the agent said in the handshake.
    pub fn welcome(&self) -> Welcome {
        self.rx.welcome()
    }

    pub fn label(&self) -> &str {
        &self.rx.link.label
    }

    /// The last lines the agent wrote to stderr.
    pub fn stderr_tail(&self) -> Vec<String> {
        self.rx.link.stderr_tail()
    }

    fn broken(&self, what: String) -> AgentError {
        self.rx.link.broken(what)
    }

    /// Send a request and return its id.
    fn request(&mut self, r: &Request) -> Result<u32, AgentError> {
        if !self.asked.is_empty() && !matches!(r, Request::Scan(_)) {
            // Its answers would come after the scans', which nobody would have read.
            return Err(self.broken(format!("{r:?} sent while scans asked ahead are unread")));
        }
        let id = self.tx.send(r)?;
        self.tx.flush()?;
        Ok(id)
    }

    /// The next response to request `id`; `Error` frames become [`AgentError::Failed`].
    fn response(&mut self, id: u32) -> Result<Response, AgentError> {
        let (got, r) = self.rx.recv()?;
        if got != id {
            return Err(self.broken(format!(
                "an answer for request {got} while waiting for {id}"
            )));
        }
        failed(r)
    }

    fn unexpected(&self, r: &Response) -> AgentError {
        self.broken(format!("unexpected response {r:?}"))
    }

    /// Send one request whose answer is a single frame (`Stat`, `Hash`, `Mkdir`, `Symlink`,
    /// `Link`, `SetMeta`, `Remove`, `Cleanup`, `Sync`, `Accounts`) and return that answer;
    /// `Error` is [`AgentError::Failed`].
    pub fn call(&mut self, r: &Request) -> Result<Response, AgentError> {
        if matches!(
            r,
            Request::Scan(_) | Request::ReadFile { .. } | Request::Put { .. } | Request::PutEnd
        ) {
            return Err(self.broken(format!("call() cannot carry a streaming request {r:?}")));
        }
        let id = self.request(r)?;
        self.response(id)
    }

    /// Write a whole file (`Put`): the bytes of `data`, which must be exactly `size` long, sent
    /// raw. Returns the size written.
    #[allow(clippy::too_many_arguments)]
    pub fn put(
        &mut self,
        target: Target,
        size: u64,
        mode: u32,
        uid: u32,
        gid: u32,
        mtime: Time,
        data: &mut dyn Read,
    ) -> Result<u64, AgentError> {
        let id = self.tx.send(&Request::Put {
            target,
            size,
            mode,
            uid,
            gid,
            mtime,
        })?;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match data.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.broken(format!("reading the data to put: {e}"))),
            };
            self.tx.send_data(id, &buf[..n], false)?;
        }
        self.tx.send_end(id)?;
        self.tx.flush()?;
        match self.response(id)? {
            Response::Done { bytes, .. } => Ok(bytes),
            r => Err(self.unexpected(&r)),
        }
    }

    /// The host's users and groups.
    pub fn accounts(&mut self) -> Result<(Vec<Account>, Vec<Account>), AgentError> {
        match self.call(&Request::Accounts)? {
            Response::AccountList { users, groups } => Ok((users, groups)),
            r => Err(self.unexpected(&r)),
        }
    }

    /// The entry at a path (`lstat`).
    pub fn stat(&mut self, t: Target) -> Result<Entry, AgentError> {
        match self.call(&Request::Stat(t))? {
            Response::Meta(e) => Ok(e),
            r => Err(self.unexpected(&r)),
        }
    }

    /// Everything under a path, each item given to `on` in the agent's order.
    pub fn scan(
        &mut self,
        t: Target,
        mut on: impl FnMut(ScanItem),
    ) -> Result<ScanDone, AgentError> {
        let id = match self.asked.pop_front() {
            None => self.request(&Request::Scan(t))?,
            Some((asked, id)) if asked == t => id,
            Some((asked, _)) => {
                return Err(self.broken(format!(
                    "a scan of {t:?} asked while the answers of {asked:?}, asked ahead, come first"
                )))
            }
        };
        let r = self.scan_answers(id, &mut on);
        // The last scan asked ahead has ended (done, or refused with an error answer): the
        // agent can be let exit again.
        if self.asked.is_empty() && matches!(r, Ok(_) | Err(AgentError::Failed { .. })) {
            self.rx.link.kill_on_drop.store(false, Ordering::Release);
        }
        r
    }

    fn scan_answers(
        &mut self,
        id: u32,
        on: &mut impl FnMut(ScanItem),
    ) -> Result<ScanDone, AgentError> {
        loop {
            match self.response(id)? {
                Response::Entries(es) => es.into_iter().for_each(|e| on(ScanItem::Entry(e))),
                Response::Skipped {
                    path,
                    code,
                    message,
                } => on(ScanItem::Skipped {
                    path,
                    code,
                    message,
                }),
                Response::Done {
                    entries, skipped, ..
                } => return Ok(ScanDone { entries, skipped }),
                r => return Err(self.unexpected(&r)),
            }
        }
    }

    /// Ask for the scan of `t` now, and read its answers later with [`AgentClient::scan`] of the
    /// same target (scans asked ahead are read in the order they were asked, before any other
    /// request is sent). The agent works meanwhile; when nobody reads, it waits on the full pipe.
    pub fn ask_scan(&mut self, t: Target) -> Result<(), AgentError> {
        let id = self.request(&Request::Scan(t.clone()))?;
        self.asked.push_back((t, id));
        self.rx.link.kill_on_drop.store(true, Ordering::Release);
        Ok(())
    }

    /// [`AgentClient::ask_scan`] of each of `targets`, behind a `Stat` of the first, whose answer
    /// is read here: the time it took is one round trip to the agent (the stat of a root it
    /// has open costs it nothing), free of the disk and of process starts. `None` without
    /// targets.
    pub fn ask_scans_timed(
        &mut self,
        targets: Vec<Target>,
    ) -> Result<Option<Duration>, AgentError> {
        let Some(first) = targets.first() else {
            return Ok(None);
        };
        let t0 = Instant::now();
        let stat = self.tx.send(&Request::Stat(first.clone()))?;
        for t in targets {
            let id = self.tx.send(&Request::Scan(t.clone()))?;
            self.asked.push_back((t, id));
        }
        self.rx.link.kill_on_drop.store(true, Ordering::Release);
        self.tx.flush()?;
        match self.response(stat)? {
            Response::Meta(_) => Ok(Some(t0.elapsed())),
            r => Err(self.unexpected(&r)),
        }
    }

    /// Stop the agent now, whatever it was asked (an agent whose answers nobody will read:
    /// [`AgentClient::exit`] would wait behind them).
    pub fn kill(self) {
        self.rx.link.kill_on_drop.store(true, Ordering::Release);
    }

    /// Bytes of a regular file from `offset`, at most `len` (`u64::MAX`: to the end), written to
    /// `out` as they arrive (compressed on the wire when `compress`, decompressed here). On an
    /// error part of the bytes may already be in `out`.
    pub fn read_file(
        &mut self,
        t: Target,
        offset: u64,
        len: u64,
        out: &mut dyn Write,
    ) -> Result<ReadDone, AgentError> {
        self.read_file_with(t, offset, len, false, out)
    }

    /// [`AgentClient::read_file`], with compression on the wire when `compress`.
    pub fn read_file_with(
        &mut self,
        t: Target,
        offset: u64,
        len: u64,
        compress: bool,
        out: &mut dyn Write,
    ) -> Result<ReadDone, AgentError> {
        let id = self.request(&Request::ReadFile {
            target: t,
            offset,
            len,
            compress,
        })?;
        let meta = match self.response(id)? {
            Response::Opened(e) => e,
            r => return Err(self.unexpected(&r)),
        };
        let mut got = 0u64;
        loop {
            match self.response(id)? {
                Response::Data { bytes, compressed } => {
                    let bytes = if compressed {
                        decompress(&bytes)?
                    } else {
                        bytes
                    };
                    got += bytes.len() as u64;
                    out.write_all(&bytes)
                        .map_err(|e| self.broken(format!("writing file data: {e}")))?;
                }
                Response::Done { bytes, changed, .. } => {
                    if bytes != got {
                        return Err(self.broken(format!("agent sent {got} bytes, said {bytes}")));
                    }
                    return Ok(ReadDone {
                        meta,
                        bytes,
                        changed,
                    });
                }
                r => return Err(self.unexpected(&r)),
            }
        }
    }

    /// BLAKE3 of a regular file, computed by the agent.
    pub fn hash(&mut self, t: Target) -> Result<Hashed, AgentError> {
        match self.call(&Request::Hash(t))? {
            Response::Hashed {
                hash,
                size,
                changed,
            } => Ok(Hashed {
                hash,
                size,
                changed,
            }),
            r => Err(self.unexpected(&r)),
        }
    }

    /// Ask the agent to exit and wait for it.
    pub fn exit(mut self) -> Result<(), AgentError> {
        if !self.asked.is_empty() {
            // Their answers would come before the goodbye: nobody will read them.
            self.kill();
            return Ok(());
        }
        let id = self.request(&Request::Exit)?;
        let r = self.response(id)?;
        if r != Response::Bye {
            return Err(self.unexpected(&r));
        }
        Ok(())
    }
}

/// Lower-case hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::server::serve;
    use std::os::unix::net::UnixStream;

    /// A client wired to an in-process server over a socket pair.
    fn pair(roots: Vec<Vec<u8>>) -> (AgentClient, std::thread::JoinHandle<()>) {
        let (a, b) = UnixStream::pair().unwrap();
        let b2 = b.try_clone().unwrap();
        let srv = std::thread::spawn(move || {
            let _ = serve(b, b2);
        });
        let a2 = a.try_clone().unwrap();
        let c = AgentClient::connect("test", Box::new(a), Box::new(a2), roots, false).unwrap();
        (c, srv)
    }

    #[test]
    fn in_process_round_trip() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("a/b")).unwrap();
        std::fs::write(t.path().join("a/b/f"), vec![7u8; 600_000]).unwrap();
        let root = t.path().as_os_str().as_encoded_bytes().to_vec();
        let (mut c, srv) = pair(vec![root, b"/nonexistent-root".to_vec()]);
        assert_eq!(c.welcome().roots[0], Ok(()));
        assert_eq!(
            c.welcome().roots[1].as_ref().unwrap_err().0,
            ErrorCode::NotFound
        );
        let p = |s: &str| Target::new(0, RelPath::new(s).unwrap());
        let mut items = Vec::new();
        let done = c.scan(p(""), |i| items.push(i)).unwrap();
        assert_eq!(done.entries, 4);
        let mut out = Vec::new();
        let r = c.read_file(p("a/b/f"), 100, u64::MAX, &mut out).unwrap();
        assert_eq!((r.bytes, out.len(), r.changed), (599_900, 599_900, false));
        let h = c.hash(p("a/b/f")).unwrap();
        assert_eq!(h.hash, *blake3::hash(&vec![7u8; 600_000]).as_bytes());
        // a failed request leaves the connection usable
        let e = c.stat(p("missing")).unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::NotFound));
        let e = c.stat(Target::new(1, RelPath::root())).unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::NoSuchRoot));
        assert_eq!(
            c.stat(p("a")).unwrap().file_type,
            crate::agent::proto::FileType::Dir
        );
        c.exit().unwrap();
        srv.join().unwrap();
    }

    #[test]
    fn scans_asked_ahead_are_read_in_the_order_asked() {
        let t = tempfile::tempdir().unwrap();
        for d in ["x/1", "y/2/3"] {
            std::fs::create_dir_all(t.path().join(d)).unwrap();
        }
        let root = |d: &str| t.path().join(d).as_os_str().as_encoded_bytes().to_vec();
        let scan_of = |c: &mut AgentClient, i: u16| {
            let mut paths = Vec::new();
            c.scan(Target::new(i, RelPath::root()), |it| {
                if let ScanItem::Entry(e) = it {
                    paths.push(e.path.to_string());
                }
            })
            .map(|_| paths)
        };
        let (mut c, srv) = pair(vec![root("x"), root("y")]);
        let (asked_x, asked_y) = (scan_of(&mut c, 0).unwrap(), scan_of(&mut c, 1).unwrap());
        for i in [0, 1] {
            c.ask_scan(Target::new(i, RelPath::root())).unwrap();
        }
        let killed_if_dropped = |c: &AgentClient| c.rx.link.kill_on_drop.load(Ordering::Acquire);
        assert!(killed_if_dropped(&c));
        // The answers wait; each scan of the same target reads its own, in order.
        assert_eq!(scan_of(&mut c, 0).unwrap(), asked_x);
        assert!(
            killed_if_dropped(&c),
            "one scan asked ahead is still unread"
        );
        assert_eq!(scan_of(&mut c, 1).unwrap(), asked_y);
        assert_eq!(asked_y.len(), 3, "{asked_y:?}");
        assert!(
            !killed_if_dropped(&c),
            "every answer read: the agent may exit"
        );
        // A scan asked ahead that the agent refuses (no such root) ends with its error.
        c.ask_scan(Target::new(2, RelPath::root())).unwrap();
        let e = scan_of(&mut c, 2).unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::NoSuchRoot), "{e}");
        assert!(
            !killed_if_dropped(&c),
            "the refused scan ended: the agent may exit"
        );
        // Another request before the answers asked ahead, or a scan of another target than
        // the one asked first, is a broken exchange.
        c.ask_scan(Target::new(0, RelPath::root())).unwrap();
        let e = c.stat(Target::new(0, RelPath::root())).unwrap_err();
        assert!(e.to_string().contains("asked ahead are unread"), "{e}");
        let e = scan_of(&mut c, 1).unwrap_err();
        assert!(e.to_string().contains("asked ahead"), "{e}");
        drop(c);
        srv.join().unwrap();
        // With scans asked and never read, `exit` does not wait behind their answers.
        let (mut c, srv) = pair(vec![root("x")]);
        c.ask_scan(Target::new(0, RelPath::root())).unwrap();
        c.exit().unwrap();
        srv.join().unwrap();
    }

    #[test]
    fn server_answers_garbage_with_an_error_frame() {
        let (mut a, b) = UnixStream::pair().unwrap();
        let b2 = b.try_clone().unwrap();
        let srv = std::thread::spawn(move || serve(b, b2));
        a.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        let mut r = FrameReader::new(a.try_clone().unwrap());
        let f = r.read_frame().unwrap().unwrap();
        assert_eq!((f.kind, f.id), (Kind::Error, 0));
        assert!(srv.join().unwrap().is_err());
        drop(a);
    }

    #[test]
    fn server_refuses_requests_before_hello_and_bad_payloads_after() {
        // a request before the handshake ends the connection
        let (mut a, b) = UnixStream::pair().unwrap();
        let b2 = b.try_clone().unwrap();
        let srv = std::thread::spawn(move || serve(b, b2));
        frame::write_frame(&mut a, &Request::Exit.into_frame(1)).unwrap();
        let f = FrameReader::new(a.try_clone().unwrap())
            .read_frame()
            .unwrap()
            .unwrap();
        assert_eq!((f.kind, f.id), (Kind::Error, 0));
        assert!(srv.join().unwrap().is_err());

        // after it, a bad payload is an Error for that id and the connection goes on
        let (mut a, b) = UnixStream::pair().unwrap();
        let b2 = b.try_clone().unwrap();
        let srv = std::thread::spawn(move || serve(b, b2));
        frame::write_frame(&mut a, &Hello::ours(vec![b"/".to_vec()]).into_frame()).unwrap();
        let mut r = FrameReader::new(a.try_clone().unwrap());
        assert_eq!(r.read_frame().unwrap().unwrap().kind, Kind::Welcome);
        let mut w = super::super::wire::Put::new();
        w.u16(0).bytes(b"../etc");
        frame::write_frame(&mut a, &Frame::new(Kind::Stat, 5, w.0)).unwrap();
        let f = r.read_frame().unwrap().unwrap();
        assert_eq!((f.kind, f.id), (Kind::Error, 5));
        frame::write_frame(&mut a, &Request::Exit.into_frame(6)).unwrap();
        assert_eq!(r.read_frame().unwrap().unwrap().kind, Kind::Bye);
        srv.join().unwrap().unwrap();

        // a second Hello (id 0) after the handshake ends the connection
        let (mut a, b) = UnixStream::pair().unwrap();
        let b2 = b.try_clone().unwrap();
        let srv = std::thread::spawn(move || serve(b, b2));
        let hello = Hello::ours(vec![]).into_frame();
        frame::write_frame(&mut a, &hello).unwrap();
        let mut r = FrameReader::new(a.try_clone().unwrap());
        assert_eq!(r.read_frame().unwrap().unwrap().kind, Kind::Welcome);
        frame::write_frame(&mut a, &hello).unwrap();
        let f = r.read_frame().unwrap().unwrap();
        assert_eq!((f.kind, f.id), (Kind::Error, 0));
        assert!(srv.join().unwrap().is_err());
    }

    #[test]
    fn version_mismatch_gets_a_welcome_then_close() {
        let (mut a, b) = UnixStream::pair().unwrap();
        let b2 = b.try_clone().unwrap();
        let srv = std::thread::spawn(move || serve(b, b2));
        let mut h = Hello::ours(vec![]).into_frame();
        h.payload[8..10].copy_from_slice(&99u16.to_be_bytes());
        frame::write_frame(&mut a, &h).unwrap();
        let mut r = FrameReader::new(a.try_clone().unwrap());
        let w = Welcome::from_frame(&r.read_frame().unwrap().unwrap()).unwrap();
        assert_eq!(w.proto, PROTOCOL_VERSION);
        assert!(matches!(
            srv.join().unwrap(),
            Err(super::super::server::ServeError::Protocol(
                frame::Error::VersionMismatch { theirs: 99, .. }
            ))
        ));
        assert!(r.read_frame().unwrap().is_none());
    }
}
