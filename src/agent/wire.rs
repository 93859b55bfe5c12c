//! Primitive payload encoding: big-endian integers and length-prefixed byte strings, read through
//! a cursor that checks every length against what is left before it copies anything.
//!
//! Only [`super::proto`] uses this. It never panics and never allocates more than the payload it
//! was given already holds; [`Parse::finish`] makes trailing bytes an error.

use super::frame::{Error, Kind};

/// A cursor over one frame's payload.
pub struct Parse<'a> {
    kind: Kind,
    rest: &'a [u8],
}

impl<'a> Parse<'a> {
    pub fn new(kind: Kind, payload: &'a [u8]) -> Self {
        Parse {
            kind,
            rest: payload,
        }
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Error> {
        if self.rest.len() < n {
            return Err(Error::Truncated {
                kind: self.kind,
                what,
                wanted: n - self.rest.len(),
            });
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8, Error> {
        Ok(self.take(1, what)?[0])
    }
    pub fn u16(&mut self, what: &'static str) -> Result<u16, Error> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    pub fn u32(&mut self, what: &'static str) -> Result<u32, Error> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn u64(&mut self, what: &'static str) -> Result<u64, Error> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
    pub fn i64(&mut self, what: &'static str) -> Result<i64, Error> {
        Ok(self.u64(what)? as i64)
    }
    /// Exactly `n` bytes, borrowed.
    pub fn fixed(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Error> {
        self.take(n, what)
    }
    /// A `u32` length, then that many bytes, borrowed (the length is checked against what is
    /// left, so a hostile length cannot cause an allocation).
    pub fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], Error> {
        let n = self.u32(what)? as usize;
        self.take(n, what)
    }
    /// Like [`Parse::bytes`], and the bytes must be UTF-8.
    pub fn string(&mut self, what: &'static str) -> Result<String, Error> {
        let kind = self.kind;
        let b = self.bytes(what)?;
        std::str::from_utf8(b)
            .map(str::to_string)
            .map_err(|e| Error::Invalid {
                kind,
                what,
                why: e.to_string(),
            })
    }
    /// An error about a value of this payload.
    pub fn invalid(&self, what: &'static str, why: impl Into<String>) -> Error {
        Error::Invalid {
            kind: self.kind,
            what,
            why: why.into(),
        }
    }
    /// Bytes left, to bound a count before looping over it.
    pub fn remaining(&self) -> usize {
        self.rest.len()
    }
    /// The payload must be used up: trailing bytes are an error, not ignored.
    pub fn finish(self) -> Result<(), Error> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(Error::Trailing {
                kind: self.kind,
                extra: self.rest.len(),
            })
        }
    }
}

/// Appends primitives to a payload.
#[derive(Default)]
pub struct Put(pub Vec<u8>);

impl Put {
    pub fn new() -> Self {
        Put(Vec::new())
    }
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.u64(v as u64)
    }
    pub fn fixed(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    /// A `u32` length and the bytes. Byte strings in this protocol are far below 4 GiB (paths,
    /// messages); a longer one is cut, which the receiver then sees as a wrong value, never as
    /// a panic here.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        let n = b.len().min(u32::MAX as usize);
        self.u32(n as u32);
        self.0.extend_from_slice(&b[..n]);
        self
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitives_round_trip_and_finish() {
        let mut p = Put::new();
        p.u8(1)
            .u16(0xBEEF)
            .u32(7)
            .u64(u64::MAX)
            .i64(-5)
            .bytes(b"ab")
            .bytes(b"");
        let mut r = Parse::new(Kind::Data, &p.0);
        assert_eq!(r.u8("a").unwrap(), 1);
        assert_eq!(r.u16("b").unwrap(), 0xBEEF);
        assert_eq!(r.u32("c").unwrap(), 7);
        assert_eq!(r.u64("d").unwrap(), u64::MAX);
        assert_eq!(r.i64("e").unwrap(), -5);
        assert_eq!(r.bytes("f").unwrap(), b"ab");
        assert_eq!(r.bytes("g").unwrap(), b"");
        r.finish().unwrap();
    }

    #[test]
    fn hostile_lengths_and_trailing_bytes() {
        // a length of 4 GiB with 3 bytes behind it: truncated, nothing allocated
        let mut p = Put::new();
        p.u32(u32::MAX).fixed(b"abc");
        let mut r = Parse::new(Kind::Data, &p.0);
        assert!(matches!(r.bytes("path"), Err(Error::Truncated { .. })));
        let mut r = Parse::new(Kind::Data, &[1, 2]);
        assert_eq!(r.u8("x").unwrap(), 1);
        assert_eq!(
            r.finish(),
            Err(Error::Trailing {
                kind: Kind::Data,
                extra: 1
            })
        );
        let mut p = Put::new();
        p.bytes(&[0xff, 0xfe]);
        let mut r = Parse::new(Kind::Data, &p.0);
        assert!(matches!(r.string("s"), Err(Error::Invalid { .. })));
    }
}
