//! The migration file (`ocmigrate.toml`): parsing and validation only.
//!
//! `Config::from_toml` checks every value and touches nothing: no file besides the one given, no
//! network, no ssh. Resolving the config into live hosts happens later, elsewhere. Unknown keys are
//! errors (a typo in a safety setting must not be silently ignored). Secrets are never stored here:
//! only the paths of the files that hold them.

mod side;

pub use side::Side;

use crate::exit::Failure;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The whole migration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub source: SourceConfig,
    pub target: TargetConfig,
    #[serde(default)]
    pub web: WebConfig,
    #[serde(default)]
    pub cutover: CutoverConfig,
    #[serde(default)]
    pub database: DatabaseConfig,
    #[serde(default)]
    pub dns: DnsConfig,
    #[serde(default)]
    pub transfer: TransferConfig,
}

/// `[transfer]`: how the file trees are copied (the transfer engine, `crate::transfer`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferConfig {
    /// Go on (exit 0, go live) even when some source files could not be read; they are listed.
    #[serde(default)]
    pub accept_unreadable: bool,
    /// Parallel streams (each its own ssh connection per side); default: from the core count.
    pub streams: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub side: Side,
    /// Where the source answers HTTP for the public name; default: the side's host.
    pub address: Option<String>,
    /// Default: the owner of `config/config.php`.
    pub web_user: Option<String>,
    /// Default: detected (apache2, or nginx + php-fpm).
    pub stop: Option<Vec<String>>,
    pub start: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    pub side: Side,
    /// Where the target answers HTTP before DNS points to it (IP address or name).
    pub address: Option<String>,
    pub web_user: Option<String>,
    pub stop: Option<Vec<String>>,
    pub start: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// Default: `overwrite.cli.url` of the source.
    pub public_url: Option<String>,
    pub admin_user: Option<String>,
    pub admin_password_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CutoverConfig {
    #[serde(default = "default_drain")]
    pub drain: Drain,
}

impl Default for CutoverConfig {
    fn default() -> Self {
        CutoverConfig {
            drain: default_drain(),
        }
    }
}

fn default_drain() -> Drain {
    Drain::Fixed(Duration::from_secs(7 * 60))
}

/// How long to wait after maintenance mode is seen before the source web server is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    Fixed(Duration),
    /// End as soon as every recently active client has seen a 503, at most this long.
    Auto {
        max: Duration,
    },
}

impl<'de> Deserialize<'de> for Drain {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s == "auto" {
            return Ok(Drain::Auto {
                max: Duration::from_secs(7 * 60),
            });
        }
        parse_duration(&s)
            .map(Drain::Fixed)
            .map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// How ocmigrate creates the database and its user on the target: "socket" (root through the
    /// unix socket / peer authentication).
    #[serde(default = "default_target_admin")]
    pub target_admin: String,
    /// Import even when the target database already has tables (they are dropped first).
    #[serde(default)]
    pub replace_target: bool,
    /// MariaDB/MySQL: copy the database during `migrate`'s online sync, so that the window only
    /// refreshes what changed since (row by row, verified as a whole copy is).
    #[serde(default = "yes")]
    pub precopy: bool,
}

fn yes() -> bool {
    true
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            target_admin: default_target_admin(),
            replace_target: false,
            precopy: true,
        }
    }
}

fn default_target_admin() -> String {
    "socket".into()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DnsMode {
    #[default]
    None,
    Manual,
    Rfc2136,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsConfig {
    #[serde(default)]
    pub mode: DnsMode,
    /// `host:port` of the server that takes updates (and answers first).
    pub server: Option<String>,
    pub zone: Option<String>,
    /// The public name, e.g. `cloud.example.com.`
    pub name: Option<String>,
    /// What the name must point to after the switch, e.g. `new.example.com.`
    pub target: Option<String>,
    /// What the name points to before the switch; default: asked from the server at `check`.
    pub source: Option<String>,
    pub tsig_key_file: Option<PathBuf>,
    /// How long to wait for every authoritative server to answer the new record (default 10m).
    pub propagation_timeout: Option<String>,
    /// The authoritative servers to poll (`host:port`), when the zone's NS records are not the
    /// whole story (hidden primary, servers on another port). Default: the zone's NS records, at
    /// the port of `server` (53 without one).
    pub servers: Option<Vec<String>>,
    /// How often the authoritative servers are asked while waiting (default 2s).
    pub poll_interval: Option<String>,
}

impl Config {
    /// Parse and check a migration file's text. `origin` names it in messages.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Config, Failure> {
        let cfg: Config = toml::from_str(text).map_err(|e| {
            Failure::usage(format!("{}: {}", origin.display(), e.message().trim_end())).hint(
                toml_location(text, &e).unwrap_or_else(|| {
                    "fix the migration file; `ocmigrate init` writes a commented one".into()
                }),
            )
        })?;
        cfg.check(origin)?;
        Ok(cfg)
    }

    /// Read and check a migration file.
    pub fn load(path: &Path) -> Result<Config, Failure> {
        let bytes = std::fs::read(path).map_err(|e| {
            Failure::usage(format!("cannot read the migration file {}: {e}", path.display())).hint(
                "give it with -c FILE, or create one with `ocmigrate init --source SIDE --target SIDE`",
            )
        })?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let at = e.utf8_error().valid_up_to();
            let line = e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
            Failure::usage(format!(
                "{} is not UTF-8 text (line {line})",
                path.display()
            ))
            .hint("save it as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)")
        })?;
        Config::from_toml(&text, path)
    }

    fn check(&self, origin: &Path) -> Result<(), Failure> {
        let bad = |what: String, hint: &str| {
            Err(Failure::usage(format!("{}: {what}", origin.display())).hint(hint.to_string()))
        };
        if self.source.side == self.target.side {
            return bad(
                format!("source and target are the same side ({})", self.source.side),
                "the target must be another machine (or another path)",
            );
        }
        if let Some(url) = &self.web.public_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return bad(
                    format!("[web] public_url {url:?} is not an http:// or https:// URL"),
                    "write it as the clients use it, e.g. https://cloud.example.com",
                );
            }
        }
        if self.database.target_admin != "socket" {
            return bad(
                format!(
                    "[database] target_admin {:?} is not supported",
                    self.database.target_admin
                ),
                "use \"socket\" (root through the database server's unix socket)",
            );
        }
        if self.dns.mode != DnsMode::None {
            for (key, v) in [("name", &self.dns.name), ("target", &self.dns.target)] {
                if v.is_none() {
                    return bad(
                        format!("[dns] {key} is missing (needed when mode is not \"none\")"),
                        "see `ocmigrate init` for an example [dns] section",
                    );
                }
            }
        }
        if self.dns.mode == DnsMode::Rfc2136 {
            for (key, v) in [
                ("server", self.dns.server.is_some()),
                ("zone", self.dns.zone.is_some()),
            ] {
                if !v {
                    return bad(
                        format!("[dns] {key} is missing (needed for mode \"rfc2136\")"),
                        "set it, or use mode = \"manual\"",
                    );
                }
            }
            if self.dns.tsig_key_file.is_none() {
                return bad(
                    "[dns] tsig_key_file is missing (updates are signed with TSIG)".into(),
                    "point it to a key file written by `keymgr -t NAME hmac-sha256` or `tsig-keygen`",
                );
            }
        }
        if let Some(t) = &self.dns.propagation_timeout {
            if let Err(e) = parse_duration(t) {
                return bad(
                    format!("[dns] propagation_timeout: {e}"),
                    "e.g. \"5m\" or \"90s\"",
                );
            }
        }
        if let Some(t) = &self.dns.poll_interval {
            match parse_duration(t) {
                Err(e) => {
                    return bad(
                        format!("[dns] poll_interval: {e}"),
                        "e.g. \"2s\" or \"500ms\"",
                    )
                }
                Ok(d) if d.is_zero() => {
                    return bad(
                        "[dns] poll_interval must be more than 0".into(),
                        "e.g. \"2s\" or \"500ms\"",
                    )
                }
                Ok(_) => {}
            }
        }
        for s in self
            .dns
            .server
            .iter()
            .chain(self.dns.servers.iter().flatten())
        {
            if s.rsplit_once(':')
                .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
            {
                return bad(
                    format!("[dns] server {s:?} is not host:port"),
                    "write it as \"ns1.example.com:53\" or \"192.0.2.1:53\" (\"[2001:db8::1]:53\" for IPv6)",
                );
            }
        }
        Ok(())
    }
}

/// "line N: `the line`" for a TOML error, when the parser knows where (the parser's messages do
/// not name the key; the line does). The file holds no secrets, only the paths of secret files.
fn toml_location(text: &str, e: &toml::de::Error) -> Option<String> {
    let span = e.span()?;
    let line = text.as_bytes()[..span.start.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1;
    let content = text.lines().nth(line - 1).unwrap_or("").trim();
    if content.is_empty() {
        return Some(format!("look at line {line} of the migration file"));
    }
    let shown: String = content.chars().take(80).collect();
    let more = if shown.len() < content.len() {
        "…"
    } else {
        ""
    };
    Some(format!(
        "look at line {line} of the migration file: `{shown}{more}`"
    ))
}

/// Parse durations written as `90s`, `7m`, `1h`, `500ms`, or combined (`1m30s`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!(
                "{s:?} is not a duration (write e.g. \"7m\", \"90s\", \"1h\")"
            ));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("{s:?}: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        total += match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n * 60),
            "h" => Duration::from_secs(n * 3600),
            "" => return Err(format!("{s:?}: a unit is missing (ms, s, m or h)")),
            u => return Err(format!("{s:?}: unknown unit {u:?} (use ms, s, m or h)")),
        };
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[source]
side = "ssh://root@old.example.test/var/www/owncloud"
[target]
side = "ssh://root@new.example.test/var/www/owncloud"
"#;

    fn parse(text: &str) -> Result<Config, Failure> {
        Config::from_toml(text, Path::new("ocmigrate.toml"))
    }

    #[test]
    fn minimal_file_gets_defaults() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.cutover.drain, Drain::Fixed(Duration::from_secs(420)));
        assert_eq!(c.dns.mode, DnsMode::None);
        assert!(!c.database.replace_target);
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let e = parse(&format!("{MINIMAL}\n[cutover]\ndrian = \"1m\"\n")).unwrap_err();
        assert!(e.message.contains("drian"), "{}", e.message);
        assert_eq!(e.kind, crate::exit::ExitKind::Usage);
    }

    #[test]
    fn same_side_twice_is_refused() {
        let t = "[source]\nside = \"/var/www/owncloud\"\n[target]\nside = \"/var/www/owncloud\"\n";
        assert!(parse(t).unwrap_err().message.contains("same side"));
    }

    #[test]
    fn rfc2136_needs_a_key_file() {
        let t = format!(
            "{MINIMAL}[dns]\nmode = \"rfc2136\"\nserver = \"127.0.0.1:5353\"\nzone = \"example.test.\"\nname = \"cloud.example.test.\"\ntarget = \"new.example.test.\"\n"
        );
        assert!(parse(&t).unwrap_err().message.contains("tsig_key_file"));
    }

    #[test]
    fn dns_servers_and_poll_interval() {
        let dns = "[dns]\nmode = \"manual\"\nname = \"cloud.example.test.\"\ntarget = \"new.example.test.\"\n";
        let c = parse(&format!(
            "{MINIMAL}{dns}servers = [\"127.0.0.1:5353\", \"[::1]:53\"]\npoll_interval = \"200ms\"\n"
        ))
        .unwrap();
        assert_eq!(c.dns.servers.as_ref().unwrap().len(), 2);
        assert_eq!(c.dns.poll_interval.as_deref(), Some("200ms"));
        let e = parse(&format!("{MINIMAL}{dns}servers = [\"ns1.example.test\"]\n")).unwrap_err();
        assert!(e.message.contains("host:port"), "{}", e.message);
        let e = parse(&format!("{MINIMAL}{dns}poll_interval = \"0s\"\n")).unwrap_err();
        assert!(e.message.contains("poll_interval"), "{}", e.message);
        let e = parse(&format!("{MINIMAL}{dns}poll = \"1s\"\n")).unwrap_err();
        assert!(e.message.contains("poll"), "{}", e.message);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("7m").unwrap(), Duration::from_secs(420));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("7").is_err());
        assert!(parse_duration("7d").is_err());
        assert!(parse_duration("m").is_err());
    }

    #[test]
    fn drain_auto() {
        let c = parse(&format!("{MINIMAL}[cutover]\ndrain = \"auto\"\n")).unwrap();
        assert!(matches!(c.cutover.drain, Drain::Auto { .. }));
    }
}
