//! TSIG key files: the formats written by knot's `keymgr -t NAME ALG` (a YAML `key:` block) and
//! BIND's `tsig-keygen -a ALG NAME` (a `key "NAME" { algorithm ...; secret "..."; };` clause), plus
//! nsupdate's one-line `ALG:NAME:SECRET`.
//!
//! The secret never leaves this module in text form: it is not in `Debug`, not in any error
//! message, and only handed to hickory's signer as bytes.

use crate::exit::Failure;
use base64::Engine;
use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
use hickory_proto::rr::{Name, TSigner};
use std::fmt;
use std::path::Path;

/// The fudge (allowed clock difference, seconds) put in every signature; BIND and knot use 300.
const FUDGE: u16 = 300;

/// A TSIG key: its name, algorithm and secret.
#[derive(Clone)]
pub struct TsigKey {
    pub name: Name,
    pub algorithm: TsigAlgorithm,
    secret: Vec<u8>,
}

impl fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TsigKey")
            .field("name", &self.name.to_ascii())
            .field("algorithm", &algorithm_name(&self.algorithm))
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl TsigKey {
    /// Read and parse a key file. Errors are usage errors (exit 2) that name the file, never the
    /// secret.
    pub fn load(path: &Path) -> Result<TsigKey, Failure> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Failure::usage(format!("cannot read the TSIG key file {}: {e}", path.display()))
                .hint("[dns] tsig_key_file must name a file written by `keymgr -t NAME hmac-sha256` or `tsig-keygen -a hmac-sha256 NAME`")
        })?;
        TsigKey::parse(&text).map_err(|e| {
            Failure::usage(format!("TSIG key file {}: {e}", path.display())).hint(
                "write it with `keymgr -t NAME hmac-sha256` (knot) or `tsig-keygen -a hmac-sha256 NAME` (BIND); \
                 the name and secret must be the ones the DNS server knows",
            )
        })
    }

    /// Parse the text of a key file in any of the supported formats.
    pub fn parse(text: &str) -> Result<TsigKey, String> {
        let raw = if text.contains('{') {
            parse_bind(text)?
        } else if text
            .lines()
            .any(|l| strip_hash_comment(l).trim_start().starts_with("key:"))
        {
            parse_knot(text)?
        } else {
            parse_colon(text)?
        };
        let mut keys = raw.into_iter();
        let first = keys
            .next()
            .ok_or_else(|| "no key found (expected a knot `key:` block or a BIND `key \"NAME\" { ... };` clause)".to_string())?;
        let rest: Vec<RawKey> = keys.collect();
        if !rest.is_empty() {
            let names: Vec<String> = std::iter::once(&first)
                .chain(rest.iter())
                .map(|k| k.name.clone().unwrap_or_default())
                .collect();
            return Err(format!(
                "holds {} keys ({}); keep only the one ocmigrate should use",
                names.len(),
                names.join(", ")
            ));
        }
        first.finish()
    }

    /// The signer hickory uses to sign requests and verify responses.
    pub fn signer(&self) -> Result<TSigner, String> {
        TSigner::new(
            self.secret.clone(),
            self.algorithm.clone(),
            self.name.clone(),
            FUDGE,
        )
        .map_err(|e| format!("cannot use TSIG key {}: {e}", self.name))
    }
}

/// A warning when the key file can be read by users other than its owner and group.
pub fn readable_by_others(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o004 != 0).then(|| {
        format!(
            "the TSIG key file {} is readable by every user on this machine (mode {:o}): `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        )
    })
}

/// The name of an algorithm as key files and servers write it.
pub fn algorithm_name(a: &TsigAlgorithm) -> &'static str {
    match a {
        TsigAlgorithm::HmacSha256 => "hmac-sha256",
        TsigAlgorithm::HmacSha384 => "hmac-sha384",
        TsigAlgorithm::HmacSha512 => "hmac-sha512",
        _ => "unsupported",
    }
}

fn parse_algorithm(s: &str) -> Result<TsigAlgorithm, String> {
    let a = s.trim().trim_end_matches('.').to_ascii_lowercase();
    match a.as_str() {
        "hmac-sha256" => Ok(TsigAlgorithm::HmacSha256),
        "hmac-sha384" => Ok(TsigAlgorithm::HmacSha384),
        "hmac-sha512" => Ok(TsigAlgorithm::HmacSha512),
        "hmac-md5" | "hmac-md5.sig-alg.reg.int" | "hmac-sha1" | "hmac-sha224" => Err(format!(
            "algorithm {a} is not supported (weak or rare); make a hmac-sha256 or hmac-sha512 key"
        )),
        _ => Err(format!(
            "unknown algorithm {a:?} (supported: hmac-sha256, hmac-sha384, hmac-sha512)"
        )),
    }
}

/// A key as found in a file, before it is checked.
#[derive(Default)]
struct RawKey {
    name: Option<String>,
    algorithm: Option<String>,
    secret: Option<String>,
}

impl RawKey {
    fn finish(self) -> Result<TsigKey, String> {
        let name = self
            .name
            .ok_or("the key has no name (`id:` / `key \"NAME\"`)")?;
        let label = name.clone();
        let mut name = Name::from_ascii(name.trim())
            .map_err(|e| format!("key name {label:?} is not a DNS name: {e}"))?;
        name.set_fqdn(true);
        let algorithm = parse_algorithm(
            self.algorithm
                .as_deref()
                .ok_or_else(|| format!("key {label}: no algorithm"))?,
        )
        .map_err(|e| format!("key {label}: {e}"))?;
        let secret_text: String = self
            .secret
            .ok_or_else(|| format!("key {label}: no secret"))?
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        // The decode error of the base64 crate can quote a character of the secret: not shown.
        let secret = base64::engine::general_purpose::STANDARD
            .decode(secret_text.as_bytes())
            .map_err(|_| format!("key {label}: the secret is not valid base64"))?;
        if secret.is_empty() {
            return Err(format!("key {label}: the secret is empty"));
        }
        Ok(TsigKey {
            name,
            algorithm,
            secret,
        })
    }
}

fn strip_hash_comment(line: &str) -> &str {
    match line.find('#') {
        Some(i) => &line[..i],
        None => line,
    }
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    if s.len() >= 2
        && ((s.starts_with('"') && s.ends_with('"')) || (s.starts_with('\'') && s.ends_with('\'')))
    {
        s[1..s.len() - 1].to_string()
    } else {
        s.to_string()
    }
}

/// knot's YAML:
/// ```text
/// key:
///   - id: oc-migrate.
///     algorithm: hmac-sha256
///     secret: BASE64
/// ```
fn parse_knot(text: &str) -> Result<Vec<RawKey>, String> {
    let mut keys: Vec<RawKey> = Vec::new();
    let mut in_key_section = false;
    for line in text.lines() {
        let line = strip_hash_comment(line);
        if line.trim().is_empty() {
            continue;
        }
        let indented = line.starts_with(' ') || line.starts_with('\t') || line.starts_with('-');
        if !indented {
            in_key_section = line.trim_end() == "key:";
            continue;
        }
        if !in_key_section {
            continue;
        }
        let mut item = line.trim();
        if let Some(rest) = item.strip_prefix('-') {
            keys.push(RawKey::default());
            item = rest.trim();
            if item.is_empty() {
                continue;
            }
        }
        let Some((k, v)) = item.split_once(':') else {
            return Err(format!("cannot read the line {:?}", line.trim()));
        };
        let key = keys
            .last_mut()
            .ok_or("`key:` must be a list (`- id: NAME`)")?;
        let v = unquote(v);
        match k.trim() {
            "id" => key.name = Some(v),
            "algorithm" => key.algorithm = Some(v),
            "secret" => key.secret = Some(v),
            _ => {}
        }
    }
    Ok(keys)
}

#[derive(Debug, PartialEq)]
enum Tok {
    Word(String),
    Quoted(String),
    Open,
    Close,
    Semi,
}

fn tokenize_bind(text: &str) -> Result<Vec<Tok>, String> {
    let mut toks = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                let mut closed = false;
                for c in chars.by_ref() {
                    if prev == '*' && c == '/' {
                        closed = true;
                        break;
                    }
                    prev = c;
                }
                if !closed {
                    return Err("a /* comment is not closed".into());
                }
            }
            '{' => toks.push(Tok::Open),
            '}' => toks.push(Tok::Close),
            ';' => toks.push(Tok::Semi),
            '"' => {
                let mut s = String::new();
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == '"' {
                        closed = true;
                        break;
                    }
                    s.push(c);
                }
                if !closed {
                    return Err("a quoted string is not closed".into());
                }
                toks.push(Tok::Quoted(s));
            }
            c => {
                let mut s = String::from(c);
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace() || matches!(n, '{' | '}' | ';' | '"') {
                        break;
                    }
                    s.push(n);
                    chars.next();
                }
                toks.push(Tok::Word(s));
            }
        }
    }
    Ok(toks)
}

/// BIND's `key "NAME" { algorithm ALG; secret "BASE64"; };` (other clauses in the file, e.g. a
/// whole named.conf fragment, are skipped).
fn parse_bind(text: &str) -> Result<Vec<RawKey>, String> {
    let toks = tokenize_bind(text)?;
    let mut keys = Vec::new();
    let mut i = 0;
    let mut depth = 0usize;
    while i < toks.len() {
        match &toks[i] {
            Tok::Open => depth += 1,
            Tok::Close => depth = depth.saturating_sub(1),
            Tok::Word(w) if depth == 0 && w == "key" => {
                let name = match toks.get(i + 1) {
                    Some(Tok::Quoted(n)) | Some(Tok::Word(n)) => n.clone(),
                    _ => return Err("`key` must be followed by the key's name".into()),
                };
                if toks.get(i + 2) != Some(&Tok::Open) {
                    return Err(format!("key {name}: `{{` expected after the name"));
                }
                let mut key = RawKey {
                    name: Some(name.clone()),
                    ..RawKey::default()
                };
                let mut j = i + 3;
                loop {
                    match toks.get(j) {
                        None => return Err(format!("key {name}: `}};` is missing")),
                        Some(Tok::Close) => break,
                        Some(Tok::Semi) => j += 1,
                        Some(Tok::Word(stmt)) => {
                            let value = match toks.get(j + 1) {
                                Some(Tok::Quoted(v)) | Some(Tok::Word(v)) => v.clone(),
                                _ => return Err(format!("key {name}: `{stmt}` has no value")),
                            };
                            match stmt.as_str() {
                                "algorithm" => key.algorithm = Some(value),
                                "secret" => key.secret = Some(value),
                                _ => {}
                            }
                            j += 2;
                        }
                        Some(_) => return Err(format!("key {name}: cannot read the clause")),
                    }
                }
                keys.push(key);
                i = j + 1;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    Ok(keys)
}

/// nsupdate's `-y` form: `[ALG:]NAME:SECRET` on one line (ALG defaults to hmac-sha256 here, as
/// the RFC 8945 mandatory algorithm; nsupdate's own default is hmac-md5, which is not supported).
fn parse_colon(text: &str) -> Result<Vec<RawKey>, String> {
    let lines: Vec<&str> = text
        .lines()
        .map(|l| strip_hash_comment(l).trim())
        .filter(|l| !l.is_empty())
        .collect();
    let mut keys = Vec::new();
    for line in lines {
        let parts: Vec<&str> = line.split(':').collect();
        let key = match parts.as_slice() {
            [alg, name, secret] => RawKey {
                name: Some(name.to_string()),
                algorithm: Some(alg.to_string()),
                secret: Some(secret.to_string()),
            },
            [name, secret] => RawKey {
                name: Some(name.to_string()),
                algorithm: Some("hmac-sha256".into()),
                secret: Some(secret.to_string()),
            },
            _ => return Err("not a key file in a known format (knot keymgr, BIND tsig-keygen, or ALG:NAME:SECRET)".into()),
        };
        keys.push(key);
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Not real secrets: 32 and 64 bytes of a pattern, base64.
    const S256: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const S512: &str =
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==";

    #[test]
    fn knot_keymgr_format() {
        // As `keymgr -t oc-migrate. hmac-sha256` writes it.
        let text = format!(
            "# hmac-sha256:oc-migrate.:{S256}\nkey:\n  - id: oc-migrate.\n    algorithm: hmac-sha256\n    secret: {S256}\n"
        );
        let k = TsigKey::parse(&text).unwrap();
        assert_eq!(k.name.to_ascii(), "oc-migrate.");
        assert_eq!(k.algorithm, TsigAlgorithm::HmacSha256);
        assert_eq!(k.secret, (0u8..32).collect::<Vec<_>>());
        k.signer().unwrap();
    }

    #[test]
    fn knot_format_inside_a_larger_config() {
        let text = format!(
            "server:\n    listen: 127.0.0.1@53\nkey:\n  - id: \"k1\"\n    secret: \"{S512}\"\n    algorithm: hmac-sha512\nacl:\n  - id: x\n    key: k1\n"
        );
        let k = TsigKey::parse(&text).unwrap();
        assert_eq!(k.name.to_ascii(), "k1.");
        assert_eq!(k.algorithm, TsigAlgorithm::HmacSha512);
        assert_eq!(k.secret.len(), 64);
    }

    #[test]
    fn bind_tsig_keygen_format() {
        // As `tsig-keygen -a hmac-sha512 test.key.` writes it (BIND 9.18).
        let text =
            format!("key \"test.key.\" {{\n\talgorithm hmac-sha512;\n\tsecret \"{S512}\";\n}};\n");
        let k = TsigKey::parse(&text).unwrap();
        assert_eq!(k.name.to_ascii(), "test.key.");
        assert_eq!(k.algorithm, TsigAlgorithm::HmacSha512);
        assert_eq!(k.secret.len(), 64);
    }

    #[test]
    fn bind_format_with_comments_and_other_clauses() {
        let text = format!(
            "// made by hand\n/* block\n comment */ options {{ directory \"/x\"; }};\n# hash\nkey oc-migrate {{ secret \"{S256}\"; algorithm HMAC-SHA256; }};\n"
        );
        let k = TsigKey::parse(&text).unwrap();
        assert_eq!(k.name.to_ascii(), "oc-migrate.");
        assert_eq!(k.algorithm, TsigAlgorithm::HmacSha256);
    }

    #[test]
    fn nsupdate_colon_format() {
        let k = TsigKey::parse(&format!("hmac-sha512:k.example.:{S512}\n")).unwrap();
        assert_eq!(k.algorithm, TsigAlgorithm::HmacSha512);
        assert_eq!(k.name.to_ascii(), "k.example.");
    }

    #[test]
    fn weak_algorithms_are_refused() {
        let e = TsigKey::parse(&format!(
            "key \"k\" {{ algorithm hmac-md5; secret \"{S256}\"; }};"
        ))
        .unwrap_err();
        assert!(e.contains("not supported"), "{e}");
    }

    #[test]
    fn two_keys_are_refused_by_name() {
        let text = format!(
            "key \"a\" {{ algorithm hmac-sha256; secret \"{S256}\"; }};\nkey \"b\" {{ algorithm hmac-sha256; secret \"{S256}\"; }};\n"
        );
        let e = TsigKey::parse(&text).unwrap_err();
        assert!(e.contains("2 keys") && e.contains("a, b"), "{e}");
        assert!(!e.contains(S256));
    }

    #[test]
    fn errors_and_debug_never_show_the_secret() {
        let bad = "c2VjcmV0c2VjcmV0!!!";
        let e = TsigKey::parse(&format!(
            "key:\n  - id: k\n    algorithm: hmac-sha256\n    secret: {bad}\n"
        ))
        .unwrap_err();
        assert!(e.contains("not valid base64"), "{e}");
        assert!(!e.contains("c2VjcmV0"), "{e}");
        let k = TsigKey::parse(&format!("hmac-sha256:k:{S256}")).unwrap();
        let dbg = format!("{k:?}");
        assert!(!dbg.contains(S256) && dbg.contains("redacted"), "{dbg}");
    }

    #[test]
    fn missing_parts() {
        assert!(TsigKey::parse("").unwrap_err().contains("no key"));
        assert!(TsigKey::parse("key \"k\" { algorithm hmac-sha256; };")
            .unwrap_err()
            .contains("no secret"));
        assert!(TsigKey::parse("key:\n  - id: k\n    secret: AAAA\n")
            .unwrap_err()
            .contains("no algorithm"));
    }

    #[test]
    fn load_names_the_file_and_is_a_usage_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tsig.key");
        std::fs::write(&p, "nonsense").unwrap();
        let e = TsigKey::load(&p).unwrap_err();
        assert_eq!(e.kind, crate::exit::ExitKind::Usage);
        assert!(e.message.contains("tsig.key"), "{}", e.message);
        let e = TsigKey::load(&dir.path().join("missing")).unwrap_err();
        assert_eq!(e.kind, crate::exit::ExitKind::Usage);
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(readable_by_others(&p).unwrap().contains("chmod 600"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(readable_by_others(&p).is_none());
    }
}
