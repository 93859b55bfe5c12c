//! The agent protocol's decoders on arbitrary bytes: `frame::decode` frame after frame, the
//! stream reader fed in small pieces, and every message parser (`Hello`, `Welcome`, `Request`,
//! `Response`) on every frame found and on the raw input as the payload of every kind.
//!
//! Besides "never panics", it checks two properties: a decoded frame re-encodes to exactly the
//! bytes it came from, and a parsed message re-encodes to a frame that parses to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocmigrate::agent::frame::{self, Frame, FrameReader, Kind, HEADER_LEN, MAX_PAYLOAD};
use ocmigrate::agent::proto::{Hello, Welcome};
use ocmigrate::agent::{Request, Response};
use std::io::Read;

fn parse_all(f: &Frame) {
    if let Ok(h) = Hello::from_frame(f) {
        let again = Hello::from_frame(&h.into_frame()).expect("a re-encoded Hello parses");
        assert_eq!(again, h);
    }
    if let Ok(w) = Welcome::from_frame(f) {
        let again = Welcome::from_frame(&w.into_frame()).expect("a re-encoded Welcome parses");
        assert_eq!(again, w);
    }
    if let Ok(r) = Request::from_frame(f) {
        let again = Request::from_frame(&r.into_frame(f.id)).expect("a re-encoded Request parses");
        assert_eq!(again, r);
    }
    if let Ok(r) = Response::from_frame(f) {
        let again =
            Response::from_frame(&r.into_frame(f.id)).expect("a re-encoded Response parses");
        assert_eq!(again, r);
    }
}

/// A reader that hands out the input a few bytes at a time, as a pipe may.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.step.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fuzz_target!(|data: &[u8]| {
    // Frame after frame, as a reader with everything buffered sees them.
    let mut rest = data;
    while let Ok(Some((f, used))) = frame::decode(rest) {
        assert!(used >= HEADER_LEN && used <= rest.len());
        assert!(f.payload.len() <= MAX_PAYLOAD);
        assert_eq!(f.encode().expect("a decoded frame encodes"), &rest[..used]);
        parse_all(&f);
        rest = &rest[used..];
    }

    // The stream reader, fed 1 to 16 bytes at a time.
    let step = 1 + data.first().map_or(0, |b| (b & 15) as usize);
    let mut r = FrameReader::new(Trickle { data, step });
    while let Ok(Some(f)) = r.read_frame() {
        parse_all(&f);
    }

    // The whole input as the payload of every kind, with an id of 0 and of 1.
    for b in 0..=255u8 {
        if let Some(kind) = Kind::from_u8(b) {
            parse_all(&Frame::new(kind, 1, data.to_vec()));
            if kind == Kind::Hello || kind == Kind::Welcome {
                parse_all(&Frame::new(kind, 0, data.to_vec()));
            }
        }
    }
});
