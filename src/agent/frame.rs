//! Frames: the unit on the wire between the operator and an agent, and nothing above it.
//!
//! A frame is a 12-byte header and a payload. This module knows the header, the frame kinds and
//! the size limit; it does not know what a payload means (that is [`super::proto`]). It never
//! allocates for a frame before the whole frame is buffered and its declared length has been
//! checked against [`MAX_PAYLOAD`], and it never panics on any input: hostile bytes give an
//! [`Error`]. [`decode`] is a pure function of a byte slice, so it can be fuzzed as it is.
//!
//! # Format
//!
//! ```text
//! offset size  field
//! 0      1     kind      (see Kind; an unknown value is an error)
//! 1      1     flags     (must be 0 in protocol versions 1 and 2)
//! 2      2     reserved  (must be 0)
//! 4      4     id        u32 big-endian: the request id this frame belongs to (0: the connection)
//! 8      4     len       u32 big-endian: payload length, at most MAX_PAYLOAD
//! 12     len   payload
//! ```
//!
//! The header layout and the start of the `Hello`/`Welcome` payloads (magic, protocol version)
//! must never change between protocol versions: they are how two different versions find out
//! that they differ.

use std::io::{self, Read, Write};

/// Bytes in a frame header.
pub const HEADER_LEN: usize = 12;

/// The largest payload a frame may declare (16 MiB). Checked before anything is allocated.
pub const MAX_PAYLOAD: usize = 16 << 20;

macro_rules! kinds {
    ($( $(#[$doc:meta])* $name:ident = $val:literal, terminal = $term:literal; )*) => {
        /// What a frame is. Requests go from the operator to the agent (values below 0x80),
        /// responses from the agent to the operator (0x80 and up); `Data` goes both ways.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum Kind {
            $( $(#[$doc])* $name = $val, )*
        }

        impl Kind {
            /// The kind for a byte, or `None` if this protocol version does not know it.
            pub fn from_u8(b: u8) -> Option<Kind> {
                match b {
                    $( $val => Some(Kind::$name), )*
                    _ => None,
                }
            }

            /// Returns true if and only if this kind ends the response to a request: after it,
            /// no more frames with the same id follow.
            pub fn is_terminal(self) -> bool {
                match self {
                    $( Kind::$name => $term, )*
                }
            }
        }
    };
}

kinds! {
    /// Operator → agent: the handshake, always the first frame.
    Hello = 0x01, terminal = false;
    /// Operator → agent: metadata of one path.
    Stat = 0x02, terminal = false;
    /// Operator → agent: every entry under a path.
    Scan = 0x03, terminal = false;
    /// Operator → agent: the bytes of a regular file.
    ReadFile = 0x04, terminal = false;
    /// Operator → agent: the BLAKE3 of a regular file.
    Hash = 0x05, terminal = false;
    /// Operator → agent: write a regular file (its bytes follow as `Data` frames of the same id).
    Put = 0x06, terminal = false;
    /// Operator → agent: the end of a `Put`'s data (same id as the `Put`).
    PutEnd = 0x07, terminal = false;
    /// Operator → agent: create a directory (or set an existing one's owner and mode).
    Mkdir = 0x08, terminal = false;
    /// Operator → agent: create a symlink.
    Symlink = 0x09, terminal = false;
    /// Operator → agent: create a hard link to an existing file.
    Link = 0x0A, terminal = false;
    /// Operator → agent: change owner, mode or mtime of an entry.
    SetMeta = 0x0B, terminal = false;
    /// Operator → agent: remove an entry (a directory with everything in it).
    Remove = 0x0C, terminal = false;
    /// Operator → agent: remove temporary files left by an interrupted run.
    Cleanup = 0x0D, terminal = false;
    /// Operator → agent: flush every root's file system to disk.
    Sync = 0x0E, terminal = false;
    /// Operator → agent: the host's users and groups.
    Accounts = 0x10, terminal = false;
    /// Operator → agent: finish and exit.
    Exit = 0x0F, terminal = false;
    /// Agent → operator: the answer to `Hello`.
    Welcome = 0x81, terminal = true;
    /// Agent → operator: one entry, the answer to `Stat`.
    Meta = 0x82, terminal = true;
    /// Agent → operator: a batch of entries within a `Scan`.
    Entries = 0x83, terminal = false;
    /// Agent → operator: an `Entries` payload compressed with zstd (protocol 3; sent by an
    /// agent started by sshd when it saves a tenth).
    EntriesZstd = 0x8A, terminal = false;
    /// Both ways: a chunk of file bytes, within a `ReadFile` (agent → operator) or a `Put`
    /// (operator → agent).
    Data = 0x84, terminal = false;
    /// Agent → operator: one item of a stream that could not be read; the stream goes on.
    Skipped = 0x85, terminal = false;
    /// Agent → operator: the metadata of the file a `ReadFile` opened, before its data.
    Opened = 0x86, terminal = false;
    /// Agent → operator: the answer to `Hash`.
    Hashed = 0x87, terminal = true;
    /// Agent → operator: the end of a stream (`Scan`, `ReadFile`) or a write request, with its
    /// totals.
    Done = 0x88, terminal = true;
    /// Agent → operator: the answer to `Accounts`.
    AccountList = 0x89, terminal = true;
    /// Agent → operator: the request failed (or, with id 0, the connection).
    Error = 0x8E, terminal = true;
    /// Agent → operator: the answer to `Exit`; the agent exits after sending it.
    Bye = 0x8F, terminal = true;
}

/// One frame: kind, request id and payload bytes (not yet interpreted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: Kind,
    pub id: u32,
    pub payload: Vec<u8>,
}

/// Why bytes are not a frame (or a payload not the message its kind promises).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not a whole frame yet. A normal state while reading a stream: read more and try again.
    #[error("incomplete frame")]
    Incomplete,
    #[error("frame of {0} bytes is larger than the limit of {MAX_PAYLOAD} bytes")]
    TooLarge(u64),
    #[error("unknown frame kind 0x{0:02x}")]
    UnknownKind(u8),
    #[error("frame flags 0x{0:02x} / reserved 0x{1:04x} are not zero")]
    BadHeader(u8, u16),
    #[error("payload of a {kind:?} frame is truncated (wanted {wanted} more bytes for {what})")]
    Truncated {
        kind: Kind,
        what: &'static str,
        wanted: usize,
    },
    #[error("payload of a {kind:?} frame has {extra} trailing bytes")]
    Trailing { kind: Kind, extra: usize },
    #[error("invalid {what} in a {kind:?} frame: {why}")]
    Invalid {
        kind: Kind,
        what: &'static str,
        why: String,
    },
    #[error("a {kind:?} frame was not expected here")]
    Unexpected { kind: Kind },
    #[error("bad magic: this is not an ocmigrate agent speaking (first bytes: {0:?})")]
    BadMagic(String),
    #[error(
        "protocol version mismatch: we speak {ours}, the other side {theirs} (version {version})"
    )]
    VersionMismatch {
        ours: u16,
        theirs: u16,
        version: String,
    },
}

/// Is a whole frame at the start of `buf`? Returns its total length (header and payload) if so.
/// Rejects a bad header as soon as the header is there, without waiting for the payload.
pub fn check(buf: &[u8]) -> Result<usize, Error> {
    if buf.len() < HEADER_LEN {
        // Even a partial header can be judged by its first byte: garbage (a login script
        // printing to stdout) is rejected at once instead of waiting for 12 bytes that may never
        // come.
        if let Some(&b) = buf.first() {
            if Kind::from_u8(b).is_none() {
                return Err(Error::UnknownKind(b));
            }
        }
        return Err(Error::Incomplete);
    }
    let kind = buf[0];
    if Kind::from_u8(kind).is_none() {
        return Err(Error::UnknownKind(kind));
    }
    let flags = buf[1];
    let reserved = u16::from_be_bytes([buf[2], buf[3]]);
    if flags != 0 || reserved != 0 {
        return Err(Error::BadHeader(flags, reserved));
    }
    let len = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]) as usize;
    if len > MAX_PAYLOAD {
        return Err(Error::TooLarge(len as u64));
    }
    let total = HEADER_LEN + len;
    if buf.len() < total {
        return Err(Error::Incomplete);
    }
    Ok(total)
}

/// Decode one frame from the start of `buf`: `Ok(None)` if more bytes are needed, else the frame
/// and how many bytes it took. Pure: no I/O, no allocation beyond the (checked) payload.
pub fn decode(buf: &[u8]) -> Result<Option<(Frame, usize)>, Error> {
    let total = match check(buf) {
        Ok(n) => n,
        Err(Error::Incomplete) => return Ok(None),
        Err(e) => return Err(e),
    };
    // check() validated the kind and the length.
    let kind = Kind::from_u8(buf[0]).ok_or(Error::UnknownKind(buf[0]))?;
    let id = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let payload = buf[HEADER_LEN..total].to_vec();
    Ok(Some((Frame { kind, id, payload }, total)))
}

impl Frame {
    pub fn new(kind: Kind, id: u32, payload: Vec<u8>) -> Frame {
        Frame { kind, id, payload }
    }

    /// The frame's bytes: header then payload. Panics never; a payload over the limit is an
    /// error (callers chunk their data well below it).
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.payload.len());
        self.encode_into(&mut out)?;
        Ok(out)
    }

    /// Append the frame's bytes to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        if self.payload.len() > MAX_PAYLOAD {
            return Err(Error::TooLarge(self.payload.len() as u64));
        }
        out.push(self.kind as u8);
        out.push(0);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(&(self.payload.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.payload);
        Ok(())
    }
}

/// Reads frames from a byte stream (an agent's stdout, or the agent's own stdin).
///
/// Like mini-redis's `Connection::read_frame`: on `Incomplete` it reads more; end of stream with
/// an empty buffer is a clean close (`Ok(None)`), end of stream inside a frame is an error.
pub struct FrameReader<R> {
    inner: R,
    buf: Vec<u8>,
    /// Start of the unconsumed bytes in `buf`.
    start: usize,
    /// End of the frames [`FrameReader::look_ahead`] has shown (at least `start`).
    seen: usize,
    /// Where each read lands before it is appended to `buf`.
    chunk: Box<[u8]>,
}

/// Why reading a frame from a stream failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Frame(#[from] Error),
    #[error("the stream ended inside a frame ({0} bytes of it received)")]
    Truncated(usize),
    #[error("reading: {0}")]
    Io(#[from] io::Error),
}

impl<R: Read> FrameReader<R> {
    pub fn new(inner: R) -> Self {
        FrameReader {
            inner,
            buf: Vec::with_capacity(64 * 1024),
            start: 0,
            seen: 0,
            chunk: vec![0u8; 64 * 1024].into_boxed_slice(),
        }
    }

    /// The bytes received but not yet consumed (for error messages about garbage).
    pub fn pending(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Returns true if and only if a whole frame (or bytes that are not one) is already
    /// buffered, so the next `read_frame` will not block: the agent flushes its answers only
    /// when this is false, so a pipeline of small requests gets its answers in few writes.
    pub fn has_buffered_frame(&self) -> bool {
        !matches!(check(&self.buf[self.start..]), Err(Error::Incomplete))
    }

    /// Call `f` with the kind, id and payload of every whole frame already buffered and not read
    /// yet that no earlier call was shown: what the other side has sent ahead, for the agent's
    /// read-ahead. Consumes nothing; stops at the first incomplete or bad frame (the
    /// next `read_frame` reports a bad one).
    pub fn look_ahead(&mut self, mut f: impl FnMut(Kind, u32, &[u8])) {
        let mut pos = self.seen.max(self.start);
        while let Ok(total) = check(&self.buf[pos..]) {
            let b = &self.buf[pos..pos + total];
            if let Some(kind) = Kind::from_u8(b[0]) {
                let id = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
                f(kind, id, &b[HEADER_LEN..]);
            }
            pos += total;
        }
        self.seen = pos;
    }

    /// The next frame, or `None` on a clean close.
    pub fn read_frame(&mut self) -> Result<Option<Frame>, ReadError> {
        loop {
            if let Some((frame, used)) = decode(&self.buf[self.start..])? {
                self.start += used;
                self.seen = self.seen.max(self.start);
                if self.start == self.buf.len() {
                    self.buf.clear();
                    self.start = 0;
                    self.seen = 0;
                }
                return Ok(Some(frame));
            }
            // Incomplete: make room and read more. The buffer never holds more than one frame
            // plus one read, because a complete frame is always consumed first.
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.seen -= self.start;
                self.start = 0;
            }
            let n = loop {
                match self.inner.read(&mut self.chunk) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(ReadError::Io(e)),
                }
            };
            self.buf.extend_from_slice(&self.chunk[..n]);
            if n == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(ReadError::Truncated(self.buf.len()))
                };
            }
        }
    }
}

/// Write one frame from its parts (the payload is the concatenation of `parts`) without
/// flushing and without copying the parts into a frame first: how file data goes out.
pub fn write_parts<W: Write>(w: &mut W, kind: Kind, id: u32, parts: &[&[u8]]) -> io::Result<()> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    if len > MAX_PAYLOAD {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            Error::TooLarge(len as u64),
        ));
    }
    let mut h = [0u8; HEADER_LEN];
    h[0] = kind as u8;
    h[4..8].copy_from_slice(&id.to_be_bytes());
    h[8..12].copy_from_slice(&(len as u32).to_be_bytes());
    w.write_all(&h)?;
    for p in parts {
        w.write_all(p)?;
    }
    Ok(())
}

/// Write one frame without flushing.
pub fn write_frame_buffered<W: Write>(w: &mut W, frame: &Frame) -> io::Result<()> {
    write_parts(w, frame.kind, frame.id, &[&frame.payload])
}

/// Write one frame and flush it.
pub fn write_frame<W: Write>(w: &mut W, frame: &Frame) -> io::Result<()> {
    let bytes = frame
        .encode()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    w.write_all(&bytes)?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: u8, flags: u8, reserved: u16, id: u32, len: u32) -> Vec<u8> {
        let mut v = vec![kind, flags];
        v.extend_from_slice(&reserved.to_be_bytes());
        v.extend_from_slice(&id.to_be_bytes());
        v.extend_from_slice(&len.to_be_bytes());
        v
    }

    #[test]
    fn round_trip_and_consumed_length() {
        let f = Frame::new(Kind::Data, 7, b"hello".to_vec());
        let mut bytes = f.encode().unwrap();
        assert_eq!(bytes.len(), HEADER_LEN + 5);
        bytes.extend_from_slice(&[0x81]); // the start of the next frame stays
        let (g, used) = decode(&bytes).unwrap().unwrap();
        assert_eq!(g, f);
        assert_eq!(used, HEADER_LEN + 5);
        // every strict prefix is incomplete, not an error
        for cut in 0..used {
            assert_eq!(decode(&bytes[..cut]), Ok(None), "prefix {cut}");
        }
        // empty payload
        let e = Frame::new(Kind::Exit, 0, vec![]);
        assert_eq!(decode(&e.encode().unwrap()).unwrap().unwrap().0, e);
    }

    #[test]
    fn every_kind_round_trips() {
        for b in 0..=255u8 {
            if let Some(k) = Kind::from_u8(b) {
                assert_eq!(k as u8, b);
                let f = Frame::new(k, u32::MAX, vec![b]);
                assert_eq!(decode(&f.encode().unwrap()).unwrap().unwrap().0, f);
            }
        }
    }

    #[test]
    fn oversized_is_rejected_from_the_header_alone() {
        let h = header(Kind::Data as u8, 0, 0, 1, (MAX_PAYLOAD + 1) as u32);
        assert_eq!(decode(&h), Err(Error::TooLarge(MAX_PAYLOAD as u64 + 1)));
        let h = header(Kind::Data as u8, 0, 0, 1, u32::MAX);
        assert_eq!(decode(&h), Err(Error::TooLarge(u32::MAX as u64)));
        // exactly the limit is fine (and incomplete here)
        let h = header(Kind::Data as u8, 0, 0, 1, MAX_PAYLOAD as u32);
        assert_eq!(decode(&h), Ok(None));
        let big = Frame::new(Kind::Data, 1, vec![0; MAX_PAYLOAD + 1]);
        assert!(matches!(big.encode(), Err(Error::TooLarge(_))));
    }

    #[test]
    fn unknown_kind_and_bad_header() {
        assert_eq!(
            decode(&header(0x42, 0, 0, 0, 0)),
            Err(Error::UnknownKind(0x42))
        );
        // garbage is rejected by its first byte, without waiting for a whole header
        assert_eq!(decode(b"b"), Err(Error::UnknownKind(b'b')));
        assert_eq!(
            decode(&header(Kind::Data as u8, 1, 0, 0, 0)),
            Err(Error::BadHeader(1, 0))
        );
        assert_eq!(
            decode(&header(Kind::Data as u8, 0, 9, 0, 0)),
            Err(Error::BadHeader(0, 9))
        );
    }

    #[test]
    fn reader_clean_close_versus_mid_frame_close() {
        let mut bytes = Frame::new(Kind::Bye, 3, vec![]).encode().unwrap();
        let mut r = FrameReader::new(&bytes[..]);
        assert_eq!(r.read_frame().unwrap().unwrap().kind, Kind::Bye);
        assert!(r.read_frame().unwrap().is_none());

        bytes.extend_from_slice(&header(Kind::Data as u8, 0, 0, 1, 10));
        bytes.extend_from_slice(b"abc");
        let mut r = FrameReader::new(&bytes[..]);
        assert!(r.read_frame().unwrap().is_some());
        match r.read_frame() {
            Err(ReadError::Truncated(n)) => assert_eq!(n, HEADER_LEN + 3),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn look_ahead_shows_each_buffered_frame_once_and_consumes_nothing() {
        // Reads of at most `step` bytes.
        struct Reads<'a>(&'a [u8], usize);
        impl Read for Reads<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(buf.len()).min(self.1);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut bytes = Vec::new();
        for i in 1..=10u32 {
            Frame::new(Kind::Stat, i, vec![i as u8; 20])
                .encode_into(&mut bytes)
                .unwrap();
        }
        // ('r', id) when read, ('s', id) when shown.
        let events = |step| {
            let mut r = FrameReader::new(Reads(&bytes, step));
            let mut events = Vec::new();
            while let Some(f) = r.read_frame().unwrap() {
                events.push(('r', f.id));
                r.look_ahead(|kind, id, payload| {
                    assert_eq!(kind, Kind::Stat);
                    assert_eq!(payload, vec![id as u8; 20]);
                    events.push(('s', id));
                });
            }
            events
        };
        let of = |ev: &[(char, u32)], c| {
            ev.iter()
                .filter(|e| e.0 == c)
                .map(|e| e.1)
                .collect::<Vec<_>>()
        };
        // All at once: every frame after the first is shown, once, before it is read.
        let ev = events(1 << 20);
        assert_eq!(of(&ev, 'r'), (1..=10).collect::<Vec<_>>());
        assert_eq!(of(&ev, 's'), (2..=10).collect::<Vec<_>>());
        assert_eq!(ev[..2], [('r', 1), ('s', 2)]);
        // 100 bytes at a time (frames of 32): a frame completed by the read that returns it is
        // not ahead of anything; the others are shown once, in order, before their read.
        let ev = events(100);
        assert_eq!(of(&ev, 'r'), (1..=10).collect::<Vec<_>>());
        let shown = of(&ev, 's');
        assert!(shown.windows(2).all(|w| w[0] < w[1]), "{ev:?}");
        assert!(shown.len() >= 5, "{ev:?}");
        for id in shown {
            let at = |c| ev.iter().position(|e| *e == (c, id)).unwrap();
            assert!(at('s') < at('r'), "{id}: {ev:?}");
        }
    }

    #[test]
    fn reader_reassembles_byte_by_byte() {
        struct OneByte<'a>(&'a [u8]);
        impl Read for OneByte<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0.is_empty() || buf.is_empty() {
                    return Ok(0);
                }
                buf[0] = self.0[0];
                self.0 = &self.0[1..];
                Ok(1)
            }
        }
        let mut bytes = Vec::new();
        for i in 0..3u32 {
            Frame::new(Kind::Data, i, vec![i as u8; 70_000])
                .encode_into(&mut bytes)
                .unwrap();
        }
        let mut r = FrameReader::new(OneByte(&bytes));
        for i in 0..3u32 {
            let f = r.read_frame().unwrap().unwrap();
            assert_eq!((f.id, f.payload.len()), (i, 70_000));
        }
        assert!(r.read_frame().unwrap().is_none());
    }
}
