//! Sending: parallel streams, each one source agent (read-only) and one target agent (writable)
//! on ssh connections of their own, relayed by the operator; and the pipelined metadata
//! requests (remove, mkdir, symlink, link, set-meta) on one target agent.
//!
//! A stream runs three threads. The *feeder* takes the next file from the shared queue and sends
//! its `ReadFile` to the source agent, keeping up to [`WINDOW`] files in flight (so small files
//! do not wait for a round trip each). The *forwarder* reads the source's answers in order and
//! turns them into `Put` + `Data`* + `PutEnd` for the target agent, chunks forwarded as they
//! came (compressed or not). The *acker* reads the target's answers and settles each file: sent,
//! sent again (it changed while read: up to [`TRIES`] times), vanished, unreadable, failed.
//! Any broken connection ends the pass with an error; what was finished stays (the next pass
//! skips it), and the target's temporary files are removed at the next pass's start.

use super::diff::FileOp;
use super::owners::OwnerMap;
use super::progress::Counters;
use crate::agent::client::{AgentClient, AgentError, AgentReceiver, AgentSender};
use crate::agent::proto::{ErrorCode, RelPath, Request, Response, Target};
use crate::exit::Failure;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Duration;

/// Files in flight per stream (requested from the source, not yet settled by the target).
pub const WINDOW: usize = 64;
/// How often a file that changes while read is sent.
pub const TRIES: u32 = 3;

/// A file to send: which root, and the diff's operation.
#[derive(Debug, Clone)]
pub struct Job {
    pub root: u16,
    pub tree: usize,
    pub op: FileOp,
    pub tries: u32,
}

/// What the streams did.
#[derive(Debug, Default)]
pub struct Sent {
    pub files: u64,
    pub bytes: u64,
    pub wire: u64,
    pub resent: u64,
    pub vanished: u64,
    /// (tree, path, why)
    pub unreadable: Vec<(usize, RelPath, String)>,
    pub gave_up: Vec<(usize, RelPath)>,
    pub failed: Vec<(usize, RelPath, String)>,
    /// (tree, path) of files the streams saw differ from the scan: changed while read (sent
    /// again or given up), vanished, broken off while read, or opened with another size, mtime,
    /// mode or owner than the scan had. Their tree's source manifest of the pass is not current.
    pub moved: Vec<(usize, RelPath)>,
}

/// The files for the streams: given whole ([`Queue::of_trees`]), or fed while the
/// streams run ([`Queue::open`], [`Queue::push`], then [`Queue::close`]: the streams end once it
/// is closed and every file is settled).
pub struct Queue {
    jobs: Mutex<Waiting>,
    /// Jobs not settled yet (queued, in flight, or to be sent again).
    open: AtomicUsize,
    /// No job will be pushed any more.
    closed: AtomicBool,
}

/// The jobs waiting for a stream: those queued one by one (fed, given back, sent again), then
/// the plans' files, each made a [`Job`] only when a stream takes it, so a pass of 100,000 files
/// holds their operations once (the plans' vectors), not twice.
#[derive(Default)]
struct Waiting {
    queued: VecDeque<Job>,
    /// (root, tree, the tree's files not taken yet).
    trees: VecDeque<(u16, usize, std::vec::IntoIter<FileOp>)>,
    /// Files to send again (they changed while read): after every other file, so a file that
    /// keeps changing gets its tries spread over the pass.
    again: VecDeque<Job>,
}

impl Waiting {
    fn pop_front(&mut self) -> Option<Job> {
        if let Some(j) = self.queued.pop_front() {
            return Some(j);
        }
        while let Some((root, tree, files)) = self.trees.front_mut() {
            if let Some(op) = files.next() {
                return Some(Job {
                    root: *root,
                    tree: *tree,
                    op,
                    tries: 0,
                });
            }
            self.trees.pop_front();
        }
        self.again.pop_front()
    }
    fn push_front(&mut self, job: Job) {
        self.queued.push_front(job);
    }
    fn push_back(&mut self, job: Job) {
        self.queued.push_back(job);
    }
    fn send_again(&mut self, job: Job) {
        self.again.push_back(job);
    }
    fn len(&self) -> usize {
        self.queued.len() + self.again.len() + self.trees.iter().map(|t| t.2.len()).sum::<usize>()
    }
}

impl Queue {
    /// Every file of every tree, `(root, tree, files)`, in that order; closed.
    pub fn of_trees(trees: Vec<(u16, usize, Vec<FileOp>)>) -> Queue {
        let n = trees.iter().map(|t| t.2.len()).sum();
        Queue {
            open: AtomicUsize::new(n),
            jobs: Mutex::new(Waiting {
                queued: VecDeque::new(),
                again: VecDeque::new(),
                trees: trees
                    .into_iter()
                    .map(|(root, tree, files)| (root, tree, files.into_iter()))
                    .collect(),
            }),
            closed: AtomicBool::new(true),
        }
    }
    /// Empty, to be fed.
    pub fn open() -> Queue {
        Queue {
            jobs: Mutex::new(Waiting::default()),
            open: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
        }
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }
    /// One more job (before [`Queue::close`]).
    pub fn push(&self, job: Job) {
        self.open.fetch_add(1, Ordering::AcqRel);
        self.lock().push_back(job);
    }
    /// Jobs waiting for a stream (not in flight).
    pub fn waiting(&self) -> usize {
        self.lock().len()
    }
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// Shared between the streams.
struct Shared<'a> {
    queue: &'a Queue,
    abort: AtomicBool,
    out: Mutex<Sent>,
    counters: &'a Counters,
    owners: &'a OwnerMap,
    /// The target agents cannot give files away (not root): owners are left as they come.
    keep_owner: bool,
}

impl Shared<'_> {
    /// The next queued job, without waiting.
    fn try_next(&self) -> Option<Job> {
        if self.abort.load(Ordering::Relaxed) {
            return None;
        }
        self.queue.lock().pop_front()
    }

    fn next(&self) -> Option<Job> {
        loop {
            if self.abort.load(Ordering::Relaxed) {
                return None;
            }
            if let Some(j) = self.queue.lock().pop_front() {
                return Some(j);
            }
            if self.queue.is_closed() && self.queue.open.load(Ordering::Acquire) == 0 {
                return None;
            }
            // Files in flight elsewhere may come back (changed while read); an open queue may
            // get more.
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    fn settle(&self) {
        self.queue.open.fetch_sub(1, Ordering::AcqRel);
    }
    fn with<R>(&self, f: impl FnOnce(&mut Sent) -> R) -> R {
        f(&mut self.out.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// What the forwarder hands the acker, in request order.
enum Step {
    /// A `Put` went to the target; `source_error` when the read broke off after it started.
    Put {
        job: Job,
        changed: bool,
        /// Opened with other attributes than the scan saw.
        differs: bool,
        bytes: u64,
        source_error: Option<String>,
    },
    /// No `Put` was sent: the source could not open the file.
    NoPut {
        job: Job,
        code: ErrorCode,
        message: String,
    },
}

/// Whether zstd is asked for: fixed, or adaptive per stream.
#[derive(Debug, Clone, Copy)]
pub enum Compression {
    Off,
    On,
    /// On, off for a while when the data does not shrink by a tenth.
    Adaptive,
}

struct Adapt {
    mode: Compression,
    on: AtomicBool,
    /// File bytes and wire bytes since the last decision.
    raw: AtomicU64,
    wire: AtomicU64,
    /// File bytes to go before trying compression again.
    pause: AtomicU64,
}

impl Adapt {
    fn new(mode: Compression) -> Adapt {
        Adapt {
            mode,
            on: AtomicBool::new(!matches!(mode, Compression::Off)),
            raw: AtomicU64::new(0),
            wire: AtomicU64::new(0),
            pause: AtomicU64::new(0),
        }
    }
    fn want(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }
    /// Account one file's bytes; decide every 32 MiB.
    fn account(&self, raw: u64, wire: u64) {
        if !matches!(self.mode, Compression::Adaptive) {
            return;
        }
        if !self.want() {
            let left = self.pause.load(Ordering::Relaxed).saturating_sub(raw);
            self.pause.store(left, Ordering::Relaxed);
            if left == 0 {
                self.on.store(true, Ordering::Relaxed);
            }
            return;
        }
        let r = self.raw.fetch_add(raw, Ordering::Relaxed) + raw;
        let w = self.wire.fetch_add(wire, Ordering::Relaxed) + wire;
        if r >= 32 << 20 {
            if w * 10 > r * 9 {
                // Not even a tenth saved: stop asking for the next 512 MiB.
                self.on.store(false, Ordering::Relaxed);
                self.pause.store(512 << 20, Ordering::Relaxed);
            }
            self.raw.store(0, Ordering::Relaxed);
            self.wire.store(0, Ordering::Relaxed);
        }
    }
}

/// Send every file of whole trees, `(root, tree, files)`, over the streams (pairs of source and
/// target agents). Returns what happened; an error when a connection broke.
pub fn send_trees(
    pairs: Vec<Halves<'_>>,
    later: Later<'_>,
    trees: Vec<(u16, usize, Vec<FileOp>)>,
    owners: &OwnerMap,
    counters: &Counters,
    compression: Compression,
    tick: impl FnMut(),
) -> Result<Sent, Failure> {
    let queue = Queue::of_trees(trees);
    send_queue(pairs, later, &queue, owners, counters, compression, tick)
}

/// [`send_trees`] from a queue that may still be fed: returns once it is closed and every job
/// settled (or a connection broke).
pub fn send_queue(
    pairs: Vec<Halves<'_>>,
    later: Later<'_>,
    queue: &Queue,
    owners: &OwnerMap,
    counters: &Counters,
    compression: Compression,
    mut tick: impl FnMut(),
) -> Result<Sent, Failure> {
    let keep_owner = pairs.iter().any(|h| h.ttx.welcome().uid != 0);
    let shared = Shared {
        queue,
        abort: AtomicBool::new(false),
        out: Mutex::new(Sent::default()),
        counters,
        owners,
        keep_owner,
    };
    let errors: Mutex<Vec<Failure>> = Mutex::new(Vec::new());
    let failed = |f: Failure| {
        shared.abort.store(true, Ordering::Relaxed);
        errors.lock().unwrap_or_else(|p| p.into_inner()).push(f);
    };
    let agent_failed = |e: AgentError| {
        failed(
            crate::agent::deploy::failure_of(e)
                .hint("run the same command again: finished files are kept and not sent again"),
        )
    };
    // Each stream's thread drops its end of this channel when it ends (also when it panics):
    // the wait below wakes at once, not at its next tick.
    let (ended_tx, ended_rx) = mpsc::channel::<()>();
    std::thread::scope(|sc| {
        let mut hs = Vec::new();
        for h in pairs {
            let (shared, agent_failed) = (&shared, &agent_failed);
            let ended = ended_tx.clone();
            hs.push(sc.spawn(move || {
                let _ended = ended;
                if let Err(e) = stream(h, shared, compression) {
                    agent_failed(e);
                }
            }));
        }
        // Further streams join as soon as their connections are up: the first ones do not wait.
        for _ in 0..later.count {
            let (shared, failed, agent_failed) = (&shared, &failed, &agent_failed);
            let connect = later.connect;
            let ended = ended_tx.clone();
            hs.push(sc.spawn(move || {
                let _ended = ended;
                match connect() {
                    Ok((mut s, mut t)) => {
                        let r = if shared.abort.load(Ordering::Relaxed) {
                            Ok(())
                        } else {
                            stream(halves(&mut s, &mut t), shared, compression)
                        };
                        s.close();
                        t.close();
                        if let Err(e) = r {
                            agent_failed(e);
                        }
                    }
                    Err(f) => failed(f),
                }
            }));
        }
        drop(ended_tx);
        // Progress every 100 ms until every stream's thread has ended.
        while let Err(mpsc::RecvTimeoutError::Timeout) =
            ended_rx.recv_timeout(Duration::from_millis(100))
        {
            tick();
        }
        for h in hs {
            if h.join().is_err() {
                shared.abort.store(true, Ordering::Relaxed);
            }
        }
    });
    if let Some(f) = errors
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .next()
    {
        return Err(f);
    }
    if shared.queue.open.load(Ordering::Acquire) != 0 {
        return Err(Failure::check(
            "a sending thread ended early (a bug): run again",
        ));
    }
    Ok(shared.out.into_inner().unwrap_or_else(|p| p.into_inner()))
}

/// Streams that start once their connections are made (by `connect`, on the stream's own thread),
/// while the streams already connected send.
#[derive(Clone, Copy)]
pub struct Later<'a> {
    pub count: usize,
    pub connect: &'a (dyn Fn() -> Result<(Conn, Conn), Failure> + Sync),
}

impl Later<'_> {
    /// No further streams.
    pub fn none() -> Later<'static> {
        fn never() -> Result<(Conn, Conn), Failure> {
            Err(Failure::check("no further stream"))
        }
        Later {
            count: 0,
            connect: &never,
        }
    }
}

/// The two halves of a source and a target agent connection, lent to a stream.
pub struct Halves<'a> {
    pub stx: &'a mut AgentSender,
    pub srx: &'a mut AgentReceiver,
    pub ttx: &'a mut AgentSender,
    pub trx: &'a mut AgentReceiver,
}

/// One stream: feeder, forwarder and acker over one source and one target agent.
fn stream(h: Halves<'_>, shared: &Shared, compression: Compression) -> Result<(), AgentError> {
    let Halves { stx, srx, ttx, trx } = h;
    let adapt = Adapt::new(compression);
    let (tok_tx, tok_rx) = mpsc::sync_channel::<()>(WINDOW);
    let (job_tx, job_rx) = mpsc::channel::<Job>();
    let (step_tx, step_rx) = mpsc::channel::<Step>();
    std::thread::scope(|sc| {
        let adapt = &adapt;
        // Feeder: requests to the source.
        let feeder = sc.spawn(move || -> Result<(), AgentError> {
            // Requests are flushed in groups (`send_grouped`), when the window is full
            // (`enter_window`) and before waiting for more work (a write wakes the agent; fewer
            // wake-ups, less CPU).
            loop {
                let job = match shared.try_next() {
                    Some(j) => j,
                    None => {
                        stx.flush()?;
                        match shared.next() {
                            Some(j) => j,
                            None => break,
                        }
                    }
                };
                if !stx.enter_window(&tok_tx, ())? {
                    // The acker is gone (it failed): give the job back and stop.
                    shared.queue.lock().push_front(job);
                    break;
                }
                stx.send_grouped(&Request::ReadFile {
                    target: Target::new(job.root, job.op.path.clone()),
                    offset: 0,
                    len: u64::MAX,
                    compress: adapt.want(),
                })?;
                if job_tx.send(job).is_err() {
                    break;
                }
            }
            drop(job_tx);
            stx.flush()
        });
        // Forwarder: source answers → target Put.
        let forwarder = sc.spawn(move || -> Result<(), AgentError> {
            let r = forward(srx, ttx, job_rx, &step_tx, shared, adapt);
            if r.is_err() {
                // The feeder may be waiting in `Shared::next` for the files in flight to settle;
                // they never will: let it stop (else the pass hangs, found by bench/faults
                // killing the source's agent during a final sync's send).
                shared.abort.store(true, Ordering::Relaxed);
            }
            drop(step_tx);
            r
        });
        // Acker: target answers.
        let acker = acker(trx, step_rx, tok_rx, shared);
        if acker.is_err() {
            shared.abort.store(true, Ordering::Relaxed);
        }
        let f = feeder.join().unwrap_or_else(|_| Err(panicked()));
        let w = forwarder.join().unwrap_or_else(|_| Err(panicked()));
        acker.and(w).and(f)
    })
}

fn panicked() -> AgentError {
    AgentError::Broken {
        what: "a stream thread panicked".into(),
        stderr: Vec::new(),
    }
}

/// Forward the source's answers as `Put`s. When it fails, the `Put` under way is ended and
/// everything queued is sent, so the target answers every `Put` the acker waits for.
fn forward(
    srx: &mut AgentReceiver,
    ttx: &mut AgentSender,
    jobs: mpsc::Receiver<Job>,
    steps: &mpsc::Sender<Step>,
    shared: &Shared,
    adapt: &Adapt,
) -> Result<(), AgentError> {
    let mut open = None;
    let r = forward_all(srx, ttx, jobs, steps, shared, adapt, &mut open);
    if r.is_err() {
        if let Some(id) = open {
            let _ = ttx.send_end(id);
        }
        let _ = ttx.flush();
    }
    r
}

fn forward_all(
    srx: &mut AgentReceiver,
    ttx: &mut AgentSender,
    jobs: mpsc::Receiver<Job>,
    steps: &mpsc::Sender<Step>,
    shared: &Shared,
    adapt: &Adapt,
    open: &mut Option<u32>,
) -> Result<(), AgentError> {
    loop {
        // Puts are flushed when no further file is waiting (or the buffer fills).
        let job = match jobs.try_recv() {
            Ok(j) => j,
            Err(mpsc::TryRecvError::Empty) => {
                ttx.flush()?;
                match jobs.recv() {
                    Ok(j) => j,
                    Err(_) => break,
                }
            }
            Err(mpsc::TryRecvError::Disconnected) => break,
        };
        let (_, first) = srx.recv()?;
        let meta = match first {
            Response::Opened(e) => e,
            Response::Error { code, message, .. } => {
                let _ = steps.send(Step::NoPut { job, code, message });
                continue;
            }
            r => return Err(unexpected(&r)),
        };
        let a = &job.op.attrs;
        let differs = meta.size != job.op.size
            || meta.mtime != a.mtime
            || meta.mode != a.mode
            || shared.owners.uid(meta.uid) != a.uid
            || shared.owners.gid(meta.gid) != a.gid;
        let (uid, gid) = if shared.keep_owner {
            (u32::MAX, u32::MAX)
        } else {
            (shared.owners.uid(meta.uid), shared.owners.gid(meta.gid))
        };
        let id = ttx.send(&Request::Put {
            target: Target::new(job.root, job.op.path.clone()),
            size: meta.size,
            mode: meta.mode,
            uid,
            gid,
            mtime: meta.mtime,
        })?;
        *open = Some(id);
        let mut wire = 0u64;
        let mut source_error = None;
        let (bytes, changed) = loop {
            match srx.recv()?.1 {
                Response::Data { bytes, compressed } => {
                    wire += bytes.len() as u64;
                    ttx.send_data(id, &bytes, compressed)?;
                }
                Response::Done { bytes, changed, .. } => break (bytes, changed),
                Response::Error { message, .. } => {
                    source_error = Some(message);
                    break (0, false);
                }
                r => return Err(unexpected(&r)),
            }
        };
        ttx.send_end(id)?;
        *open = None;
        adapt.account(bytes, wire);
        shared.with(|s| s.wire += wire);
        if steps
            .send(Step::Put {
                job,
                changed,
                differs,
                bytes,
                source_error,
            })
            .is_err()
        {
            break;
        }
    }
    ttx.flush()
}

fn unexpected(r: &Response) -> AgentError {
    AgentError::Broken {
        what: format!("unexpected answer {r:?}"),
        stderr: Vec::new(),
    }
}

fn acker(
    trx: &mut AgentReceiver,
    steps: mpsc::Receiver<Step>,
    tokens: mpsc::Receiver<()>,
    shared: &Shared,
) -> Result<(), AgentError> {
    for step in steps {
        match step {
            Step::NoPut { job, code, message } => {
                match code {
                    // Gone since the scan, or no longer a regular file: the next pass sees it.
                    ErrorCode::NotFound
                    | ErrorCode::NotADirectory
                    | ErrorCode::NotAFile
                    | ErrorCode::Symlink => shared.with(|s| {
                        s.vanished += 1;
                        s.moved.push((job.tree, job.op.path.clone()));
                    }),
                    _ => {
                        shared.with(|s| s.unreadable.push((job.tree, job.op.path.clone(), message)))
                    }
                }
                shared.settle();
            }
            Step::Put {
                mut job,
                changed,
                differs,
                bytes,
                source_error,
            } => {
                let (_, r) = trx.recv()?;
                let path = job.op.path.clone();
                let tree = job.tree;
                if changed || differs || source_error.is_some() {
                    shared.with(|s| s.moved.push((tree, path.clone())));
                }
                match (r, source_error) {
                    (Response::Done { .. }, None) => {
                        shared.counters.add(1, bytes);
                        shared.with(|s| {
                            s.files += 1;
                            s.bytes += bytes;
                        });
                    }
                    (Response::Done { .. } | Response::Error { .. }, Some(why)) => {
                        shared.with(|s| s.unreadable.push((tree, path.clone(), why)));
                    }
                    // The size moved while read (more or fewer bytes than announced).
                    (Response::Error { .. }, None) if changed => {}
                    (Response::Error { message, .. }, None) => {
                        shared.with(|s| s.failed.push((tree, path.clone(), message)));
                    }
                    (r, _) => return Err(unexpected(&r)),
                }
                if changed {
                    // Changed while read: the copy is not current; again, up to TRIES times.
                    job.tries += 1;
                    if job.tries < TRIES {
                        shared.with(|s| s.resent += 1);
                        shared.queue.lock().send_again(job);
                    } else {
                        shared.with(|s| s.gave_up.push((tree, path)));
                        shared.settle();
                    }
                } else {
                    shared.settle();
                }
            }
        }
        // One file less in flight.
        let _ = tokens.recv();
    }
    Ok(())
}

/// One answer of a batch: the response, or the refusal's code and message.
pub type Answer = Result<Response, (ErrorCode, String)>;

/// An agent connection split in halves, kept for its whole life: lent to a stream, used for
/// batches of single-answer requests in between.
pub struct Conn {
    pub tx: AgentSender,
    pub rx: AgentReceiver,
}

impl Conn {
    pub fn new(c: AgentClient) -> Conn {
        let (tx, rx) = c.into_split();
        Conn { tx, rx }
    }

    /// Send every request (single-answer ones: mkdir, symlink, link, set-meta, remove, cleanup,
    /// sync) and return each answer (`Err((code, message))` for a refused one), in order; one
    /// thread sends while this one reads. A broken connection is the error.
    pub fn batch(&mut self, reqs: Vec<Request>) -> Result<Vec<Answer>, AgentError> {
        let n = reqs.len();
        let (tx, rx) = (&mut self.tx, &mut self.rx);
        std::thread::scope(|sc| {
            let sender = sc.spawn(move || -> Result<(), AgentError> {
                for (i, r) in reqs.iter().enumerate() {
                    tx.send(r)?;
                    if i % 256 == 255 {
                        tx.flush()?;
                    }
                }
                tx.flush()
            });
            let mut out = Vec::with_capacity(n);
            let mut err = None;
            for _ in 0..n {
                match rx.recv() {
                    Ok((_, Response::Error { code, message, .. })) => {
                        out.push(Err((code, message)))
                    }
                    Ok((_, r)) => out.push(Ok(r)),
                    Err(e) => {
                        err = Some(e);
                        break;
                    }
                }
            }
            let s = sender.join().unwrap_or_else(|_| Err(panicked()));
            match err {
                Some(e) => Err(e),
                None => s.map(|_| out),
            }
        })
    }

    /// Close the connection: the agent exits after its last answers.
    pub fn close(self) {
        let _ = self.tx.close();
    }

    /// [`Conn::close`] without waiting for the agent's process to end (a round trip to a
    /// distant host): a thread of its own reaps it. For an agent that answered everything it was
    /// asked, at a pass's end.
    pub fn close_in_background(self) {
        let Conn { tx, rx } = self;
        let _ = tx.close();
        std::thread::spawn(move || drop(rx));
    }

    /// The connection as a client again, for calls after the batches and streams.
    pub fn into_client(self) -> AgentClient {
        AgentClient::from_halves(self.tx, self.rx)
    }
}

/// A stream's halves from two connections.
pub fn halves<'a>(s: &'a mut Conn, t: &'a mut Conn) -> Halves<'a> {
    Halves {
        stx: &mut s.tx,
        srx: &mut s.rx,
        ttx: &mut t.tx,
        trx: &mut t.rx,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::proto::Time;
    use crate::transfer::diff::Attrs;

    fn op(p: &str) -> FileOp {
        FileOp {
            path: RelPath::new(p).unwrap(),
            size: 1,
            attrs: Attrs {
                mode: 0o644,
                uid: 0,
                gid: 0,
                mtime: Time { sec: 1, nsec: 2 },
            },
        }
    }

    /// A queue of whole trees hands out every file once, tree by tree in order, with its root
    /// and tree; a job given back or sent again comes before the files not yet taken; the count
    /// of waiting jobs covers both.
    #[test]
    fn a_queue_of_trees_makes_each_file_a_job_once_in_order() {
        let q = Queue::of_trees(vec![
            (0, 0, vec![op("a"), op("b")]),
            (1, 1, vec![]),
            (2, 2, vec![op("c")]),
        ]);
        assert!(q.is_closed());
        assert_eq!(q.open.load(Ordering::Acquire), 3);
        assert_eq!(q.waiting(), 3);
        let a = q.lock().pop_front().unwrap();
        assert_eq!(
            (a.root, a.tree, a.op.path.as_bytes(), a.tries),
            (0, 0, &b"a"[..], 0)
        );
        assert_eq!(q.waiting(), 2);
        q.lock().send_again(Job {
            tries: 1,
            ..a.clone()
        });
        q.lock().push_front(Job { tries: 0, ..a });
        assert_eq!(q.waiting(), 4);
        let got: Vec<(u16, usize, Vec<u8>, u32)> = std::iter::from_fn(|| q.lock().pop_front())
            .map(|j| (j.root, j.tree, j.op.path.as_bytes().to_vec(), j.tries))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, 0, b"a".to_vec(), 0),
                (0, 0, b"b".to_vec(), 0),
                (2, 2, b"c".to_vec(), 0),
                (0, 0, b"a".to_vec(), 1),
            ],
            "given back first, sent again last"
        );
        assert_eq!(q.waiting(), 0);
    }
}
