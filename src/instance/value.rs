//! PHP values as a config file holds them: null, bool, int, float, byte string, ordered array.
//!
//! This module owns the value model and PHP's array rules (key casting, the next-index rule,
//! `array_merge`). It reads and prints nothing; [`PhpValue`]'s `Debug` shows values as they are,
//! so a whole config must never be debug-printed where a log could keep it (use
//! [`redact_sensitive`] first).

use std::collections::HashMap;
use std::fmt;

/// A PHP value. Strings are bytes, as in PHP; [`PhpValue::as_str`] gives them as UTF-8 when they
/// are.
#[derive(Clone, PartialEq)]
pub enum PhpValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Vec<u8>),
    Array(PhpArray),
}

/// An array key. PHP stores `"12"` as the integer 12 but keeps `"012"`, `"-0"` and `"1.5"` as
/// strings; [`Key::from_bytes`] applies that rule.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    Int(i64),
    Str(Vec<u8>),
}

/// Why a value could not be appended to an array with `[]` or an implicit key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// The next index would be past `PHP_INT_MAX` (PHP: "Cannot add element to the array as the
    /// next element is already occupied").
    Occupied,
    /// The largest integer key is below -1: PHP 7 appends at 0, PHP 8 at the largest key + 1.
    NegativeKeys,
}

impl fmt::Display for PushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PushError::Occupied => {
                f.write_str("cannot append: the next integer key would pass PHP_INT_MAX")
            }
            PushError::NegativeKeys => f.write_str(
                "an implicit key after negative integer keys is 0 in PHP 7 but the largest key + 1 \
                 in PHP 8",
            ),
        }
    }
}

/// A PHP array: entries in insertion order, with a hash index so lookups and duplicate keys stay
/// cheap on hostile input.
#[derive(Clone, Default)]
pub struct PhpArray {
    entries: Vec<(Key, PhpValue)>,
    index: HashMap<Key, usize>,
    max_int: Option<i64>,
}

impl PartialEq for PhpArray {
    /// Same keys, same values, same order (PHP's `===`).
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl Key {
    /// PHP's rule for a string used as a key: a canonical decimal integer within `i64` becomes an
    /// integer key; anything else stays a string.
    pub fn from_bytes(b: &[u8]) -> Key {
        match canonical_int(b) {
            Some(i) => Key::Int(i),
            None => Key::Str(b.to_vec()),
        }
    }

    /// The key PHP makes of a value written before `=>`. Floats are truncated (PHP 8.1 warns when
    /// that loses a fraction); arrays cannot be keys.
    pub fn from_value(v: &PhpValue) -> Result<Key, String> {
        match v {
            PhpValue::Null => Ok(Key::Str(Vec::new())),
            PhpValue::Bool(b) => Ok(Key::Int(i64::from(*b))),
            PhpValue::Int(i) => Ok(Key::Int(*i)),
            PhpValue::Float(f) => {
                // 2^63 is exactly representable; anything at or past it does not fit.
                if f.is_finite() && *f >= i64::MIN as f64 && *f < -(i64::MIN as f64) {
                    Ok(Key::Int(f.trunc() as i64))
                } else {
                    Err(format!(
                        "the float {f} cannot be an array key (PHP versions disagree on what it becomes)"
                    ))
                }
            }
            PhpValue::Str(s) => Ok(Key::from_bytes(s)),
            PhpValue::Array(_) => Err("an array cannot be an array key".to_string()),
        }
    }

    /// The key as text, if it is a string key holding UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Key::Str(s) => std::str::from_utf8(s).ok(),
            Key::Int(_) => None,
        }
    }
}

impl From<&str> for Key {
    fn from(s: &str) -> Key {
        Key::from_bytes(s.as_bytes())
    }
}

impl From<i64> for Key {
    fn from(i: i64) -> Key {
        Key::Int(i)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Int(i) => write!(f, "{i}"),
            Key::Str(s) => debug_bytes(s, f),
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Int(i) => write!(f, "{i}"),
            Key::Str(s) => f.write_str(&String::from_utf8_lossy(s)),
        }
    }
}

/// `Some(i)` if `b` is how PHP writes the integer `i` (`0`, `-7`, `42`; not `07`, `-0`, `+1`).
fn canonical_int(b: &[u8]) -> Option<i64> {
    let digits = b.strip_prefix(b"-").unwrap_or(b);
    if digits.is_empty() || digits.len() > 20 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if digits[0] == b'0' && (digits.len() > 1 || b.len() > 1) {
        return None; // "01", "-0", "-01"
    }
    std::str::from_utf8(b).ok()?.parse::<i64>().ok()
}

fn debug_bytes(s: &[u8], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match std::str::from_utf8(s) {
        Ok(t) => write!(f, "{t:?}"),
        Err(_) => write!(f, "b\"{}\"", s.escape_ascii()),
    }
}

impl PhpArray {
    pub fn new() -> Self {
        PhpArray::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Set `key` to `value`. An existing key keeps its place (PHP overwrites in place).
    pub fn insert(&mut self, key: Key, value: PhpValue) {
        if let Key::Int(i) = key {
            self.max_int = Some(self.max_int.map_or(i, |m| m.max(i)));
        }
        match self.index.get(&key) {
            Some(&at) => self.entries[at].1 = value,
            None => {
                self.index.insert(key.clone(), self.entries.len());
                self.entries.push((key, value));
            }
        }
    }

    /// The key `$a[] = …` would use: one past the largest integer key, or 0.
    pub fn next_key(&self) -> Result<i64, PushError> {
        match self.max_int {
            None => Ok(0),
            Some(m) if m < -1 => Err(PushError::NegativeKeys),
            Some(m) => m.checked_add(1).ok_or(PushError::Occupied),
        }
    }

    /// `$a[] = value`.
    pub fn push(&mut self, value: PhpValue) -> Result<(), PushError> {
        let k = self.next_key()?;
        self.insert(Key::Int(k), value);
        Ok(())
    }

    pub fn get(&self, key: &Key) -> Option<&PhpValue> {
        self.index.get(key).map(|&at| &self.entries[at].1)
    }

    pub fn get_mut(&mut self, key: &Key) -> Option<&mut PhpValue> {
        match self.index.get(key) {
            Some(&at) => Some(&mut self.entries[at].1),
            None => None,
        }
    }

    /// Look a key up as PHP would look up `$a['…']` (so `"3"` finds the integer key 3).
    pub fn get_key(&self, key: &str) -> Option<&PhpValue> {
        self.get(&Key::from(key))
    }

    /// The value at `key`, inserting `null` there first if the key is absent.
    pub fn entry_or_null(&mut self, key: Key) -> &mut PhpValue {
        if !self.index.contains_key(&key) {
            self.insert(key.clone(), PhpValue::Null);
        }
        let at = self.index[&key];
        &mut self.entries[at].1
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Key, &PhpValue)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        self.entries.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl Iterator<Item = &PhpValue> {
        self.entries.iter().map(|(_, v)| v)
    }

    /// True if the keys are 0, 1, 2, … in order (what `json_encode` prints as a JSON list).
    pub fn is_list(&self) -> bool {
        self.entries
            .iter()
            .enumerate()
            .all(|(i, (k, _))| *k == Key::Int(i as i64))
    }

    /// PHP's `array_merge($a, $b, …)`: string keys of later arrays replace earlier ones in place;
    /// integer keys of every array are renumbered from 0 and appended.
    pub fn array_merge<'a>(arrays: impl IntoIterator<Item = &'a PhpArray>) -> PhpArray {
        let mut out = PhpArray::new();
        let mut next: i64 = 0;
        for a in arrays {
            for (k, v) in a.iter() {
                match k {
                    Key::Int(_) => {
                        out.insert(Key::Int(next), v.clone());
                        next += 1; // bounded by the number of entries, far below i64::MAX
                    }
                    Key::Str(_) => out.insert(k.clone(), v.clone()),
                }
            }
        }
        out
    }
}

impl fmt::Debug for PhpArray {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl FromIterator<(Key, PhpValue)> for PhpArray {
    fn from_iter<T: IntoIterator<Item = (Key, PhpValue)>>(iter: T) -> Self {
        let mut a = PhpArray::new();
        for (k, v) in iter {
            a.insert(k, v);
        }
        a
    }
}

impl PhpValue {
    /// A string value from text.
    pub fn str(s: &str) -> PhpValue {
        PhpValue::Str(s.as_bytes().to_vec())
    }

    /// PHP's name for the type, as `gettype` would say it in short: `null`, `bool`, `int`,
    /// `float`, `string`, `array`.
    pub fn type_name(&self) -> &'static str {
        match self {
            PhpValue::Null => "null",
            PhpValue::Bool(_) => "bool",
            PhpValue::Int(_) => "int",
            PhpValue::Float(_) => "float",
            PhpValue::Str(_) => "string",
            PhpValue::Array(_) => "array",
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, PhpValue::Null)
    }

    /// PHP's truth test (`if ($v)`): false for null, false, 0, 0.0, "", "0" and the empty array.
    pub fn truthy(&self) -> bool {
        match self {
            PhpValue::Null => false,
            PhpValue::Bool(b) => *b,
            PhpValue::Int(i) => *i != 0,
            PhpValue::Float(f) => *f != 0.0,
            PhpValue::Str(s) => !(s.is_empty() || s == b"0"),
            PhpValue::Array(a) => !a.is_empty(),
        }
    }

    /// The string, if this is a string holding UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            PhpValue::Str(s) => std::str::from_utf8(s).ok(),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            PhpValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The bool, if this is a bool (no conversion; see [`PhpValue::truthy`] for PHP's).
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            PhpValue::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            PhpValue::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_float(&self) -> Option<f64> {
        match self {
            PhpValue::Float(f) => Some(*f),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&PhpArray> {
        match self {
            PhpValue::Array(a) => Some(a),
            _ => None,
        }
    }

    /// `$this[key]` if this is an array holding `key`.
    pub fn get(&self, key: &str) -> Option<&PhpValue> {
        self.as_array()?.get_key(key)
    }

    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key)?.as_str()
    }

    pub fn get_bytes(&self, key: &str) -> Option<&[u8]> {
        self.get(key)?.as_bytes()
    }

    pub fn get_bool(&self, key: &str) -> Option<bool> {
        self.get(key)?.as_bool()
    }

    pub fn get_int(&self, key: &str) -> Option<i64> {
        self.get(key)?.as_int()
    }

    pub fn get_array(&self, key: &str) -> Option<&PhpArray> {
        self.get(key)?.as_array()
    }
}

impl fmt::Debug for PhpValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PhpValue::Null => f.write_str("null"),
            PhpValue::Bool(b) => write!(f, "{b}"),
            PhpValue::Int(i) => write!(f, "{i}"),
            PhpValue::Float(x) => write!(f, "{x:?}"),
            PhpValue::Str(s) => debug_bytes(s, f),
            PhpValue::Array(a) => a.fmt(f),
        }
    }
}

/// JSON as `json_encode` would write it: lists as arrays, other arrays as objects; strings that
/// are not UTF-8 are written lossily. Serialize a [`redact_sensitive`] copy, never a raw config.
impl serde::Serialize for PhpValue {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self {
            PhpValue::Null => ser.serialize_unit(),
            PhpValue::Bool(b) => ser.serialize_bool(*b),
            PhpValue::Int(i) => ser.serialize_i64(*i),
            PhpValue::Float(f) => ser.serialize_f64(*f),
            PhpValue::Str(s) => ser.serialize_str(&String::from_utf8_lossy(s)),
            PhpValue::Array(a) if a.is_list() => {
                let mut seq = ser.serialize_seq(Some(a.len()))?;
                for v in a.values() {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            PhpValue::Array(a) => {
                let mut map = ser.serialize_map(Some(a.len()))?;
                for (k, v) in a.iter() {
                    map.serialize_entry(&k.to_string(), v)?;
                }
                map.end()
            }
        }
    }
}

/// A typed, exact text of a value, the same as PHP's `ocm_dump` (`src/instance/dump.php`): `N`,
/// `T`/`F`, `i<int>`, `f<hex of the big-endian double>`, `s<hex of the bytes>`, and
/// `a[<key>=<value>,…]` in order. PHP and Rust fingerprint non-string config values over it, and
/// tests compare values byte for byte with it. It shows every byte: never print it for a config.
pub fn typed_dump(v: &PhpValue) -> String {
    fn hex(out: &mut String, b: &[u8]) {
        for x in b {
            out.push_str(&format!("{x:02x}"));
        }
    }
    fn walk(v: &PhpValue, o: &mut String) {
        match v {
            PhpValue::Null => o.push('N'),
            PhpValue::Bool(b) => o.push(if *b { 'T' } else { 'F' }),
            PhpValue::Int(i) => o.push_str(&format!("i{i}")),
            PhpValue::Float(f) => {
                o.push('f');
                hex(o, &f.to_be_bytes());
            }
            PhpValue::Str(s) => {
                o.push('s');
                hex(o, s);
            }
            PhpValue::Array(a) => {
                o.push_str("a[");
                for (k, x) in a.iter() {
                    match k {
                        Key::Int(i) => o.push_str(&format!("i{i}")),
                        Key::Str(s) => {
                            o.push('s');
                            hex(o, s);
                        }
                    }
                    o.push('=');
                    walk(x, o);
                    o.push(',');
                }
                o.push(']');
            }
        }
    }
    let mut o = String::new();
    walk(v, &mut o);
    o
}

/// What `occ config:list` prints instead of a secret.
pub const REDACTED: &str = "***REMOVED SENSITIVE VALUE***";

/// A copy of a config with every secret replaced by [`REDACTED`], safe to print or diff.
///
/// Masks what ownCloud's `SystemConfig` masks (`dbpassword`, `dbuser`, `passwordsalt`, `secret`,
/// `mail_smtpname`, `mail_smtppassword`, `updater.secret`, `ldap_agent_password`, `proxyuserpwd`,
/// `license-key`, `instanceid`) and, at any depth, every key whose name contains `password`,
/// `passwd`, `secret`, `credentials`, `token` or `key` as a word of its own (`key`, `api_key`).
pub fn redact_sensitive(v: &PhpValue) -> PhpValue {
    const TOP: &[&str] = &[
        "dbpassword",
        "dbuser",
        "mail_smtpname",
        "mail_smtppassword",
        "passwordsalt",
        "secret",
        "updater.secret",
        "ldap_agent_password",
        "proxyuserpwd",
        "license-key",
        "instanceid",
    ];
    fn sensitive_name(k: &Key) -> bool {
        let Key::Str(s) = k else { return false };
        let s = String::from_utf8_lossy(s).to_ascii_lowercase();
        ["password", "passwd", "secret", "credentials", "token"]
            .iter()
            .any(|w| s.contains(w))
            || s.split(|c: char| !c.is_ascii_alphanumeric())
                .any(|w| w == "key")
    }
    fn walk(v: &PhpValue, top: bool) -> PhpValue {
        match v {
            PhpValue::Array(a) => PhpValue::Array(
                a.iter()
                    .map(|(k, x)| {
                        let hide = sensitive_name(k)
                            || (top && k.as_str().is_some_and(|s| TOP.contains(&s)));
                        let x = if hide && !x.is_null() {
                            PhpValue::str(REDACTED)
                        } else {
                            walk(x, false)
                        };
                        (k.clone(), x)
                    })
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    walk(v, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_casting_follows_php() {
        assert_eq!(Key::from("12"), Key::Int(12));
        assert_eq!(Key::from("-7"), Key::Int(-7));
        assert_eq!(Key::from("0"), Key::Int(0));
        for s in [
            "012",
            "-0",
            "+1",
            "1.5",
            " 1",
            "1 ",
            "",
            "-",
            "9223372036854775808",
        ] {
            assert_eq!(Key::from(s), Key::Str(s.as_bytes().to_vec()), "{s:?}");
        }
        assert_eq!(Key::from("-9223372036854775808"), Key::Int(i64::MIN));
        assert_eq!(Key::from_value(&PhpValue::Bool(true)).unwrap(), Key::Int(1));
        assert_eq!(Key::from_value(&PhpValue::Null).unwrap(), Key::Str(vec![]));
        assert_eq!(Key::from_value(&PhpValue::Float(1.7)).unwrap(), Key::Int(1));
        assert_eq!(
            Key::from_value(&PhpValue::Float(-1.7)).unwrap(),
            Key::Int(-1)
        );
        assert!(Key::from_value(&PhpValue::Float(f64::NAN)).is_err());
        assert!(Key::from_value(&PhpValue::Float(9.3e18)).is_err());
        assert!(Key::from_value(&PhpValue::Array(PhpArray::new())).is_err());
    }

    #[test]
    fn next_index_rule() {
        let mut a = PhpArray::new();
        a.push(PhpValue::Int(0)).unwrap();
        a.insert(Key::Int(10), PhpValue::Null);
        a.push(PhpValue::Int(11)).unwrap();
        assert_eq!(
            a.keys().cloned().collect::<Vec<_>>(),
            [Key::Int(0), Key::Int(10), Key::Int(11)]
        );
        let mut b = PhpArray::new();
        b.insert(Key::Int(-1), PhpValue::Null);
        assert_eq!(b.next_key(), Ok(0));
        b.insert(Key::Int(-5), PhpValue::Null);
        assert_eq!(b.next_key(), Ok(0)); // max is still -1
        let mut c = PhpArray::new();
        c.insert(Key::Int(-5), PhpValue::Null);
        assert_eq!(c.push(PhpValue::Null), Err(PushError::NegativeKeys));
        let mut d = PhpArray::new();
        d.insert(Key::Int(i64::MAX), PhpValue::Null);
        assert_eq!(d.push(PhpValue::Null), Err(PushError::Occupied));
    }

    #[test]
    fn overwrite_keeps_position() {
        let mut a = PhpArray::new();
        a.insert(Key::from("a"), PhpValue::Int(1));
        a.insert(Key::from("b"), PhpValue::Int(2));
        a.insert(Key::from("a"), PhpValue::Int(3));
        let got: Vec<_> = a.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        assert_eq!(
            got,
            [
                ("a".to_string(), PhpValue::Int(3)),
                ("b".to_string(), PhpValue::Int(2))
            ]
        );
    }

    #[test]
    fn array_merge_semantics() {
        let a: PhpArray = [
            (Key::from("x"), PhpValue::Int(1)),
            (Key::Int(5), PhpValue::str("five")),
            (Key::from("y"), PhpValue::Int(2)),
        ]
        .into_iter()
        .collect();
        let b: PhpArray = [
            (Key::Int(5), PhpValue::str("other five")),
            (Key::from("x"), PhpValue::Int(9)),
        ]
        .into_iter()
        .collect();
        let m = PhpArray::array_merge([&a, &b]);
        let got: Vec<_> = m.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        assert_eq!(
            got,
            [
                (Key::from("x"), PhpValue::Int(9)),
                (Key::Int(0), PhpValue::str("five")),
                (Key::from("y"), PhpValue::Int(2)),
                (Key::Int(1), PhpValue::str("other five")),
            ]
        );
    }

    #[test]
    fn serializes_like_json_encode() {
        let mut a = PhpArray::new();
        a.insert(
            Key::from("list"),
            PhpValue::Array(
                [
                    (Key::Int(0), PhpValue::Int(1)),
                    (Key::Int(1), PhpValue::Float(0.5)),
                ]
                .into_iter()
                .collect(),
            ),
        );
        a.insert(
            Key::from("map"),
            PhpValue::Array(
                [
                    (Key::Int(3), PhpValue::Null),
                    (Key::from("x"), PhpValue::Bool(true)),
                ]
                .into_iter()
                .collect(),
            ),
        );
        a.insert(Key::from("s"), PhpValue::str("é"));
        let json = serde_json::to_string(&PhpValue::Array(a)).unwrap();
        assert_eq!(
            json,
            r#"{"list":[1,0.5],"map":{"3":null,"x":true},"s":"é"}"#
        );
    }

    #[test]
    fn truthiness() {
        for v in [
            PhpValue::Null,
            PhpValue::Bool(false),
            PhpValue::Int(0),
            PhpValue::Float(0.0),
            PhpValue::str(""),
            PhpValue::str("0"),
            PhpValue::Array(PhpArray::new()),
        ] {
            assert!(!v.truthy(), "{v:?}");
        }
        for v in [
            PhpValue::str("false"),
            PhpValue::str("0.0"),
            PhpValue::Int(-1),
        ] {
            assert!(v.truthy(), "{v:?}");
        }
    }

    #[test]
    fn redaction_masks_secrets_at_any_depth() {
        let mut redis = PhpArray::new();
        redis.insert(Key::from("host"), PhpValue::str("localhost"));
        redis.insert(Key::from("password"), PhpValue::str("hunter2"));
        let mut cfg = PhpArray::new();
        cfg.insert(Key::from("secret"), PhpValue::str("s3cr3t-value"));
        cfg.insert(Key::from("dbpassword"), PhpValue::str("dbpw-value"));
        cfg.insert(Key::from("instanceid"), PhpValue::str("ocabc123"));
        cfg.insert(Key::from("redis"), PhpValue::Array(redis));
        cfg.insert(Key::from("datadirectory"), PhpValue::str("/srv/data"));
        let r = redact_sensitive(&PhpValue::Array(cfg));
        let shown = format!("{r:?}");
        for s in ["s3cr3t-value", "dbpw-value", "ocabc123", "hunter2"] {
            assert!(!shown.contains(s), "{s} leaked: {shown}");
        }
        assert!(shown.contains("/srv/data") && shown.contains("localhost"));
    }
}
