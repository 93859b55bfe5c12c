//! A side of the migration: where an instance root is, as `ssh://[user@]host[:port]/path` or a
//! plain absolute path on the operator's own machine.

use serde::Deserialize;
use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Side {
    /// The operator's own machine.
    Local { root: PathBuf },
    /// A remote machine reached with the system OpenSSH client.
    Ssh {
        user: Option<String>,
        host: String,
        port: Option<u16>,
        root: PathBuf,
    },
}

impl Side {
    /// The instance root (the folder holding `config/` and `occ`).
    pub fn root(&self) -> &std::path::Path {
        match self {
            Side::Local { root } | Side::Ssh { root, .. } => root,
        }
    }

    /// Parse a side as written on the command line or in the migration file.
    pub fn parse(s: &str) -> Result<Side, String> {
        let hint = "write it as ssh://[user@]host[:port]/path/to/owncloud or as an absolute path";
        if let Some(rest) = s.strip_prefix("ssh://") {
            let slash = rest
                .find('/')
                .ok_or_else(|| format!("{s:?} has no instance path after the host; {hint}"))?;
            let (authority, path) = rest.split_at(slash);
            let (user, hostport) = match authority.rsplit_once('@') {
                Some((u, h)) if !u.is_empty() => (Some(u.to_string()), h),
                Some(_) => return Err(format!("{s:?} has an empty user name; {hint}")),
                None => (None, authority),
            };
            let (host, port) = split_host_port(hostport)
                .filter(|(_, p)| *p != Some(0))
                .ok_or_else(|| {
                    format!("{s:?}: the port must be a number from 1 to 65535; {hint}")
                })?;
            if host.is_empty() {
                return Err(format!("{s:?} has no host; {hint}"));
            }
            let root =
                clean_root(path).ok_or_else(|| format!("{s:?}: bad instance path; {hint}"))?;
            Ok(Side::Ssh {
                user,
                host: host.to_string(),
                port,
                root,
            })
        } else if s.starts_with('/') {
            let root = clean_root(s).ok_or_else(|| format!("{s:?}: bad instance path; {hint}"))?;
            Ok(Side::Local { root })
        } else {
            Err(format!(
                "{s:?} is neither an ssh:// address nor an absolute path; {hint}"
            ))
        }
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`. None when the port is not a number.
fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']')?;
        let host = &rest[..end];
        return match &rest[end + 1..] {
            "" => Some((host, None)),
            p => Some((host, Some(p.strip_prefix(':')?.parse().ok()?))),
        };
    }
    match s.rsplit_once(':') {
        Some((h, p)) => Some((h, Some(p.parse().ok()?))),
        None => Some((s, None)),
    }
}

/// An absolute path without `..`, `.` or empty parts (a trailing slash is dropped).
fn clean_root(p: &str) -> Option<PathBuf> {
    if !p.starts_with('/') {
        return None;
    }
    let parts: Vec<&str> = p.split('/').filter(|c| !c.is_empty()).collect();
    if parts.iter().any(|c| *c == ".." || *c == ".") {
        return None;
    }
    Some(PathBuf::from(format!("/{}", parts.join("/"))))
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Side::Local { root } => write!(f, "{}", root.display()),
            Side::Ssh {
                user,
                host,
                port,
                root,
            } => {
                write!(f, "ssh://")?;
                if let Some(u) = user {
                    write!(f, "{u}@")?;
                }
                if host.contains(':') {
                    write!(f, "[{host}]")?;
                } else {
                    write!(f, "{host}")?;
                }
                if let Some(p) = port {
                    write!(f, ":{p}")?;
                }
                write!(f, "{}", root.display())
            }
        }
    }
}

impl<'de> Deserialize<'de> for Side {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Side::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl std::str::FromStr for Side {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Side::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_forms() {
        let s = Side::parse("ssh://root@old.example.com:2222/var/www/owncloud/").unwrap();
        assert_eq!(
            s,
            Side::Ssh {
                user: Some("root".into()),
                host: "old.example.com".into(),
                port: Some(2222),
                root: "/var/www/owncloud".into()
            }
        );
        assert_eq!(
            s.to_string(),
            "ssh://root@old.example.com:2222/var/www/owncloud"
        );
        let v6 = Side::parse("ssh://[::1]:22/srv/oc").unwrap();
        assert_eq!(v6.to_string(), "ssh://[::1]:22/srv/oc");
        assert!(matches!(
            Side::parse("ssh://old/x").unwrap(),
            Side::Ssh {
                user: None,
                port: None,
                ..
            }
        ));
    }

    #[test]
    fn local_and_bad_forms() {
        assert_eq!(
            Side::parse("/var/www/owncloud").unwrap().root(),
            std::path::Path::new("/var/www/owncloud")
        );
        for bad in [
            "owncloud",
            "ssh://old",
            "ssh://old:x/a",
            "ssh://old:0/a",
            "ssh://old:65536/a",
            "ssh://@old/a",
            "/a/../b",
            "ssh:///a",
            "http://x/y",
        ] {
            assert!(Side::parse(bad).is_err(), "{bad} should be refused");
        }
    }
}
