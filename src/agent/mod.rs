//! The agent: `ocmigrate agent`, the same binary run on a remote host over the SSH channel,
//! answering typed requests in a framed, versioned binary protocol on its stdin/stdout. The
//! transfer engine (scan, send, hash) and the database leg build on it.
//!
//! What this module owns, and what it must never do:
//! * It never follows a symlink and never resolves a path outside a root it was given at the
//!   handshake ([`fs`]).
//! * It writes only on a writable connection: the process started `agent --writable` (only the
//!   target's spawn does that) *and* the `Hello` asking for it. Every connection to the source is
//!   read-only, so the source is never written (doc/design.md, invariant 1). Writes go under a
//!   temporary name and are renamed into place ([`write`]). Deployment ([`deploy`]) writes one
//!   file, the agent itself, into the login user's cache folder, through the host layer.
//! * No input panics it, and no input makes it allocate more than [`frame::MAX_PAYLOAD`] beyond
//!   its buffers: hostile bytes give an `Error` frame and, when frame bounds are lost, the end of
//!   the connection.
//!
//! # Layout (like mini-redis)
//! * [`frame`]: the 12-byte header, kinds, the size limit, `check`/`decode` (pure, fuzzable) and
//!   the stream reader (`Incomplete` is normal; a clean close is not a close mid-frame).
//! * [`wire`]: primitive payload encoding with bounds-checked reads and `finish()`.
//! * [`proto`]: the typed messages (`Hello`/`Welcome`, `Request`, `Response`, `Entry`,
//!   `RelPath`) with their `# Format` blocks.
//! * [`fs`]: file access beneath a root, one component at a time, `O_NOFOLLOW`.
//! * [`write`]: the write requests on top of the same walk (temporary name, then rename).
//! * [`readahead`]: the disk asked for the files already requested, ahead of their reads.
//! * [`scan`]: the ordered walk behind `Scan`, listing directories ahead on a few threads.
//! * [`server`]: `serve(stdin, stdout)`, the agent's loop.
//! * [`client`]: `AgentClient`, the operator's typed calls, and its halves for pipelining
//!   ([`client::AgentSender`], [`client::AgentReceiver`]).
//! * [`deploy`]: which binary, copying it to a side, starting it.
//!
//! # Conversation
//! The operator sends `Hello` (magic, protocol version, binary version, roots); the agent answers
//! `Welcome` (magic, protocol version, binary version, BLAKE3 of its executable, per-root status).
//! Then each request carries an id chosen by the operator; the agent answers with zero or more
//! stream frames of that id and exactly one terminal frame (`Meta`, `Hashed`, `Done`,
//! `AccountList`, `Error`, `Bye`). Requests are answered in order, one at a time, except that a
//! `Put` is answered when its `PutEnd` (or its first failure) arrives. The operator may send
//! many requests before reading the answers (pipelining), from one thread while another reads.

pub mod client;
pub mod deploy;
pub mod frame;
pub mod fs;
pub mod proto;
pub mod readahead;
pub mod scan;
pub mod server;
pub mod wire;
pub mod write;

pub use client::{AgentClient, AgentReceiver, AgentSender};
pub use frame::{decode, Frame, Kind};
pub use proto::{Entry, RelPath, Request, Response, Target};
