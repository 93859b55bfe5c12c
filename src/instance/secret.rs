//! [`Secret`]: a value from `config.php` that must never be printed (`secret`, `passwordsalt`,
//! `instanceid`, `dbpassword`).
//!
//! Its `Debug` and `Display` print `***`; it has no `Serialize`; the bytes come out only through
//! [`Secret::expose`], whose name shows at every call site; they are wiped when it is dropped. [`Secret::fingerprint`] lets two hosts'
//! values be compared, or recorded, without showing them.

use std::fmt;

/// A value that must not be printed. Comparing two secrets (`==`) takes the same time wherever
/// they differ.
#[derive(Clone)]
pub struct Secret(Box<[u8]>);

impl Secret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Secret {
        Secret(bytes.into().into_boxed_slice())
    }

    /// The bytes. Only for handing the value to where it is used (a database client's option
    /// file, a comparison): never for a message, a log or a report.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// 16 hex digits of a keyed BLAKE3 hash (key derived from a fixed ocmigrate context): equal
    /// values give equal fingerprints, on any host, in any run. Safe to print for long random
    /// values (`secret`, `passwordsalt`, `instanceid`); for a weak password it still allows a
    /// dictionary guess, so reports should prefer "same"/"differs".
    pub fn fingerprint(&self) -> String {
        let hash = blake3::Hasher::new_derive_key("ocmigrate 2026 config secret fingerprint v1")
            .update(&self.0)
            .finalize();
        hash.to_hex()[..16].to_string()
    }
}

/// The bytes are overwritten when the value is dropped.
impl Drop for Secret {
    fn drop(&mut self) {
        for b in self.0.iter_mut() {
            // A volatile write, so the wipe is not optimised away.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        constant_time_eq(&self.0, &other.0)
    }
}

impl Eq for Secret {}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_printed() {
        let s = Secret::new("oc-very-secret-VALUE-123");
        for shown in [
            format!("{s:?}"),
            format!("{s:#?}"),
            format!("{s}"),
            format!("{:>40}", s),
            format!("{:?}", Some(&s)),
            format!("{:?}", vec![s.clone()]),
        ] {
            assert!(!shown.contains("VALUE"), "leaked: {shown}");
            assert!(shown.contains("***"), "{shown}");
        }
        assert!(!s.fingerprint().contains("VALUE"));
    }

    #[test]
    fn fingerprint_compares_without_showing() {
        let a = Secret::new("abc");
        let b = Secret::new("abc");
        let c = Secret::new("abd");
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
        assert_eq!(a.fingerprint().len(), 16);
        assert!(a.fingerprint().chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, Secret::new("ab"));
    }
}
