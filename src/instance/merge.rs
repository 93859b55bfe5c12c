//! The merged system config, as ownCloud builds it from `config/config.php` and
//! `config/*.config.php`, by either of two roads that must agree:
//!
//! * without PHP: the files are parsed by [`super::phpconfig`], ordered like PHP's `natsort`
//!   ([`config_file_order`], [`strnatcmp`]) and folded with `array_merge` ([`merge_config`]);
//! * with PHP on the host: [`MERGE_SNIPPET`] runs there (`php -r`), includes the files exactly as
//!   ownCloud's `Config::readData()` does and prints JSON, which [`parse_merge_output`] reads.
//!
//! Nothing here touches a file or runs a process; callers fetch the bytes and run the snippet.

use super::value::{Key, PhpArray, PhpValue};
use std::cmp::Ordering;
use std::fmt;

/// ownCloud's fold: start from an empty array, then `array_merge` every file's `$CONFIG` that is
/// an array, in the order given (`config.php` first, then the extra files in
/// [`config_file_order`]). Files whose value is not an array (no `$CONFIG`) are skipped, as
/// ownCloud skips them. Later string keys replace earlier ones in place; integer keys (unusual at
/// the top level) are renumbered and appended, as `array_merge` does.
pub fn merge_config(files: &[(String, PhpValue)]) -> PhpValue {
    PhpValue::Array(PhpArray::array_merge(
        files.iter().filter_map(|(_, v)| v.as_array()),
    ))
}

/// True for a name `glob('config/*.config.php')` matches: ends in `.config.php`, and does not
/// start with a dot (glob's `*` skips hidden files, so `.config.php` itself is not read).
pub fn is_extra_config_name(name: &str) -> bool {
    name.ends_with(".config.php") && !name.starts_with('.') && !name.contains('/')
}

/// Sort extra config file names the way ownCloud includes them: `glob` returns them in byte
/// order, then `natsort` (stable since PHP 8; insertion sort, equally stable, for the few files of
/// PHP 7) orders them naturally. ownCloud sorts full paths, which all share the config directory,
/// so a file name is compared as if something preceded it ([`strnatcmp_ex`] with
/// `leading = false`).
pub fn config_file_order(names: &mut [String]) {
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    names.sort_by(|a, b| strnatcmp_ex(a.as_bytes(), b.as_bytes(), false));
}

/// PHP's `strnatcmp` (case-sensitive natural order), byte for byte.
pub fn strnatcmp(a: &[u8], b: &[u8]) -> Ordering {
    strnatcmp_ex(a, b, true)
}

/// PHP's `strnatcmp_ex` (ext/standard/strnatcmp.c, PHP 7 and 8). `leading` is true at the start
/// of a string: only there are leading zeros skipped. Bytes past the end read as NUL, as in C.
pub fn strnatcmp_ex(a: &[u8], b: &[u8], leading: bool) -> Ordering {
    if a.is_empty() || b.is_empty() {
        return a.len().cmp(&b.len());
    }
    let at = |s: &[u8], i: usize| s.get(i).copied().unwrap_or(0);
    let isspace = |c: u8| matches!(c, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r');
    let (mut ai, mut bi) = (0usize, 0usize);
    let mut leading = leading;
    loop {
        let mut ca = at(a, ai);
        let mut cb = at(b, bi);
        // Skip over leading zeros.
        while leading && ca == b'0' && ai + 1 < a.len() && a[ai + 1].is_ascii_digit() {
            ai += 1;
            ca = at(a, ai);
        }
        while leading && cb == b'0' && bi + 1 < b.len() && b[bi + 1].is_ascii_digit() {
            bi += 1;
            cb = at(b, bi);
        }
        leading = false;
        // Skip consecutive whitespace.
        while isspace(ca) {
            ai += 1;
            ca = at(a, ai);
        }
        while isspace(cb) {
            bi += 1;
            cb = at(b, bi);
        }
        // Process a run of digits.
        if ca.is_ascii_digit() && cb.is_ascii_digit() {
            let fractional = ca == b'0' || cb == b'0';
            let result = if fractional {
                compare_left(a, &mut ai, b, &mut bi)
            } else {
                compare_right(a, &mut ai, b, &mut bi)
            };
            if result != Ordering::Equal {
                return result;
            }
            match (ai >= a.len(), bi >= b.len()) {
                (true, true) => return Ordering::Equal,
                (true, false) => return Ordering::Less,
                (false, true) => return Ordering::Greater,
                (false, false) => {
                    ca = at(a, ai);
                    cb = at(b, bi);
                }
            }
        }
        match ca.cmp(&cb) {
            Ordering::Equal => {}
            other => return other,
        }
        ai += 1;
        bi += 1;
        match (ai >= a.len(), bi >= b.len()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            (false, false) => {}
        }
    }
}

/// Right-aligned numbers: the longest run wins, else the first difference.
fn compare_right(a: &[u8], ai: &mut usize, b: &[u8], bi: &mut usize) -> Ordering {
    let mut bias = Ordering::Equal;
    loop {
        let da = a.get(*ai).is_some_and(u8::is_ascii_digit);
        let db = b.get(*bi).is_some_and(u8::is_ascii_digit);
        match (da, db) {
            (false, false) => return bias,
            (false, true) => return Ordering::Less,
            (true, false) => return Ordering::Greater,
            (true, true) => {
                if bias == Ordering::Equal {
                    bias = a[*ai].cmp(&b[*bi]);
                }
            }
        }
        *ai += 1;
        *bi += 1;
    }
}

/// Left-aligned numbers (a leading zero): the first difference wins.
fn compare_left(a: &[u8], ai: &mut usize, b: &[u8], bi: &mut usize) -> Ordering {
    loop {
        let da = a.get(*ai).is_some_and(u8::is_ascii_digit);
        let db = b.get(*bi).is_some_and(u8::is_ascii_digit);
        match (da, db) {
            (false, false) => return Ordering::Equal,
            (false, true) => return Ordering::Less,
            (true, false) => return Ordering::Greater,
            (true, true) => match a[*ai].cmp(&b[*bi]) {
                Ordering::Equal => {}
                other => return other,
            },
        }
        *ai += 1;
        *bi += 1;
    }
}

/// PHP code (for `php -r`, no `<?php` tag) that prints a config directory's merged config as
/// JSON, exactly as ownCloud's `Config::readData()` builds it: `merge.php`'s `ocm_merge_config`
/// (the one PHP merge; the host programs' prelude uses the same file), then JSON. Works on PHP
/// 7.0 to 8.x.
///
/// Run it as the web user: `php -r "$MERGE_SNIPPET" -- /var/www/owncloud/config` (or pipe
/// [`merge_snippet_file`] to `php -- <dir>`). On success it prints one JSON object and exits 0:
/// `{"files":["config.php","zz.config.php"],"output":{"config.php":3},"config":{…}}` where
/// `output` counts the bytes a file echoed (a BOM or blank lines outside `<?php`). Exit 2: a file
/// failed in PHP (message on stderr); exit 3: a file could not be opened, or the config cannot be
/// JSON (a string that is not UTF-8, INF or NAN; read it with the Rust reader instead).
pub const MERGE_SNIPPET: &str = concat!(
    include_str!("merge.php"),
    r#"
ini_set('display_errors', 'stderr');
error_reporting(E_ALL);
try {
    $merged = ocm_merge_config(isset($argv[1]) ? $argv[1] : '');
} catch (OcmConfigError $e) {
    fwrite(STDERR, "ocmigrate: " . $e->getMessage() . "\n");
    exit($e->getCode());
}
$json = json_encode(
    array('files' => $merged['files'], 'output' => (object)$merged['output'], 'config' => $merged['config']),
    JSON_PRESERVE_ZERO_FRACTION | JSON_UNESCAPED_SLASHES
);
if ($json === false) {
    fwrite(STDERR, "ocmigrate: the merged config cannot be printed as JSON: " . json_last_error_msg() . "\n");
    exit(3);
}
echo $json, "\n";
exit(0);
"#
);

/// [`MERGE_SNIPPET`] as a whole PHP file, for `php -- <config dir> < file` (standard input).
pub fn merge_snippet_file() -> String {
    format!("<?php\n{MERGE_SNIPPET}")
}

/// The merged config and where it came from.
#[derive(Clone, PartialEq)]
pub struct MergedConfig {
    /// File names read, in order (`config.php` first when it exists).
    pub files: Vec<String>,
    /// Files that would echo output (bytes outside `<?php … ?>`), with the byte count.
    pub output: Vec<(String, usize)>,
    /// The merged `$CONFIG`, always an array.
    pub config: PhpValue,
}

/// The config holds secrets, so `Debug` shows only the file names and the keys.
impl fmt::Debug for MergedConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<String> = self
            .config
            .as_array()
            .map(|a| a.keys().map(|k| k.to_string()).collect())
            .unwrap_or_default();
        f.debug_struct("MergedConfig")
            .field("files", &self.files)
            .field("output", &self.output)
            .field("keys", &keys)
            .finish()
    }
}

/// Why the output of [`MERGE_SNIPPET`] could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeOutputError(pub String);

impl fmt::Display for MergeOutputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the PHP config reader printed something unexpected: {}",
            self.0
        )
    }
}

impl std::error::Error for MergeOutputError {}

/// Read what [`MERGE_SNIPPET`] printed. Integer-looking object keys become integer keys, as they
/// were in PHP; JSON lists become arrays keyed 0, 1, 2, …; nesting is limited like the PHP reader.
pub fn parse_merge_output(stdout: &[u8]) -> Result<MergedConfig, MergeOutputError> {
    let bad = |m: String| MergeOutputError(m);
    if stdout.len() > 4 * super::phpconfig::MAX_INPUT {
        return Err(bad(format!("{} bytes is too much", stdout.len())));
    }
    let mut de = serde_json::Deserializer::from_slice(stdout);
    let root = serde::de::DeserializeSeed::deserialize(Seed { depth: 0 }, &mut de)
        .map_err(|e| bad(e.to_string()))?;
    de.end().map_err(|e| bad(e.to_string()))?;
    let PhpValue::Array(root) = root else {
        return Err(bad("not a JSON object".into()));
    };
    let files = match root.get_key("files") {
        Some(PhpValue::Array(a)) => a
            .values()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad("`files` holds something other than names".into()))?,
        _ => return Err(bad("no `files` list".into())),
    };
    let output = match root.get_key("output") {
        Some(PhpValue::Array(a)) => a
            .iter()
            .map(|(k, v)| match v {
                PhpValue::Int(n) if *n >= 0 => Some((k.to_string(), *n as usize)),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad("`output` holds something other than byte counts".into()))?,
        None => Vec::new(),
        Some(_) => return Err(bad("`output` is not an object".into())),
    };
    let config = match root.get_key("config") {
        Some(v @ PhpValue::Array(_)) => v.clone(),
        _ => return Err(bad("no `config` object".into())),
    };
    Ok(MergedConfig {
        files,
        output,
        config,
    })
}

/// Builds a [`PhpValue`] straight from JSON, keeping object order, with a depth limit.
struct Seed {
    depth: usize,
}

/// JSON nesting allowed: the PHP reader's limit plus the envelope.
const JSON_MAX_DEPTH: usize = super::phpconfig::MAX_DEPTH + 2;

impl<'de> serde::de::DeserializeSeed<'de> for Seed {
    type Value = PhpValue;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<PhpValue, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Seed {
    type Value = PhpValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<PhpValue, E> {
        Ok(PhpValue::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<PhpValue, E> {
        Ok(PhpValue::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<PhpValue, E> {
        Ok(PhpValue::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<PhpValue, E> {
        Ok(i64::try_from(v).map_or(PhpValue::Float(v as f64), PhpValue::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<PhpValue, E> {
        Ok(PhpValue::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<PhpValue, E> {
        Ok(PhpValue::str(v))
    }
    fn visit_string<E>(self, v: String) -> Result<PhpValue, E> {
        Ok(PhpValue::Str(v.into_bytes()))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<PhpValue, A::Error> {
        let depth = self.depth + 1;
        if depth > JSON_MAX_DEPTH {
            return Err(serde::de::Error::custom("nested too deeply"));
        }
        let mut a = PhpArray::new();
        while let Some(v) = seq.next_element_seed(Seed { depth })? {
            a.push(v).map_err(serde::de::Error::custom)?;
        }
        Ok(PhpValue::Array(a))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<PhpValue, A::Error> {
        let depth = self.depth + 1;
        if depth > JSON_MAX_DEPTH {
            return Err(serde::de::Error::custom("nested too deeply"));
        }
        let mut a = PhpArray::new();
        while let Some(k) = map.next_key::<String>()? {
            let v = map.next_value_seed(Seed { depth })?;
            a.insert(Key::from_bytes(k.as_bytes()), v);
        }
        Ok(PhpValue::Array(a))
    }
}

#[cfg(test)]
mod tests;
