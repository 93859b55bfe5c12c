//! The database an instance uses, as ownCloud's and Nextcloud's `ConnectionFactory` derive it from
//! the config (`dbtype`, `dbname`, `dbhost` with its `:port` or `:socket`, `dbuser`,
//! `dbpassword`, `dbtableprefix`, `mysql.utf8mb4`).
//!
//! Only derivation: nothing here connects to a database or prints the password.

use super::secret::Secret;
use super::value::PhpValue;
use super::version::Flavor;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The database engines ocmigrate moves (`oci` is ownCloud Enterprise only and not supported).
/// Serialized as the `dbtype` (`sqlite`, `mysql`, `pgsql`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DbKind {
    Sqlite,
    Mysql,
    Pgsql,
}

impl DbKind {
    /// A `dbtype` value: `sqlite` and `sqlite3` are the same engine (ownCloud normalizes).
    pub fn from_dbtype(t: &str) -> Option<DbKind> {
        match t {
            "sqlite" | "sqlite3" => Some(DbKind::Sqlite),
            "mysql" => Some(DbKind::Mysql),
            "pgsql" => Some(DbKind::Pgsql),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DbKind::Sqlite => "SQLite",
            DbKind::Mysql => "MySQL/MariaDB",
            DbKind::Pgsql => "PostgreSQL",
        }
    }
}

/// Connection parameters. `host`, `port` and `socket` are what the config says after the
/// `dbhost` split; [`DbParams::endpoint`] says where a client actually connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbParams {
    pub kind: DbKind,
    /// `dbname` (default `owncloud`, on Nextcloud too).
    pub name: String,
    /// The host part of `dbhost` (empty for SQLite, or when not set).
    pub host: String,
    pub port: Option<u16>,
    /// A Unix socket path given as `dbhost` = `host:/path/to/socket`.
    pub socket: Option<String>,
    pub user: String,
    pub password: Secret,
    /// `dbtableprefix` (default `oc_`).
    pub table_prefix: String,
    /// `mysql.utf8mb4` is set (4-byte UTF-8 tables).
    pub utf8mb4: bool,
    /// SQLite only: `<datadirectory>/<dbname>.db`.
    pub sqlite_file: Option<PathBuf>,
}

/// Where a database client connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbEndpoint<'a> {
    /// SQLite: the database file (with `-wal`/`-shm` beside it in WAL mode).
    File(&'a Path),
    /// TCP to `host`, on the engine's default port when `port` is `None`.
    Tcp { host: &'a str, port: Option<u16> },
    /// A Unix socket: a socket file for MySQL, a socket directory for PostgreSQL.
    Socket(&'a str),
    /// The client library's default socket: MySQL with host `localhost` or empty (the port is
    /// then ignored by the client), PostgreSQL with no host.
    DefaultSocket,
}

impl DbParams {
    /// Derive the parameters. `lookup` gives a config value the way ownCloud's `getValue` does
    /// (absent or `null` → `None`); `datadirectory` is the effective data directory (bytes, as
    /// configured). The error message names the key that is wrong.
    pub fn from_config<'c>(
        lookup: &dyn Fn(&str) -> Option<&'c PhpValue>,
        flavor: Flavor,
        datadirectory: &[u8],
    ) -> Result<DbParams, String> {
        let text = |key: &str, default: &str| -> Result<String, String> {
            match lookup(key) {
                None => Ok(default.to_string()),
                Some(PhpValue::Str(s)) => {
                    String::from_utf8(s.clone()).map_err(|_| format!("`{key}` is not valid UTF-8"))
                }
                Some(PhpValue::Int(i)) => Ok(i.to_string()),
                Some(other) => Err(format!("`{key}` is a {}, not a string", other.type_name())),
            }
        };
        let dbtype = text("dbtype", "sqlite")?;
        let kind = DbKind::from_dbtype(&dbtype).ok_or_else(|| {
            format!(
                "`dbtype` is {dbtype:?}; ocmigrate moves \"sqlite\"/\"sqlite3\", \"mysql\" and \"pgsql\""
            )
        })?;
        let name = text("dbname", "owncloud")?;
        let user = text("dbuser", "")?;
        let password = match lookup("dbpassword") {
            None => Secret::new(Vec::new()),
            Some(PhpValue::Str(s)) => Secret::new(s.clone()),
            Some(PhpValue::Int(i)) => Secret::new(i.to_string()),
            Some(other) => {
                return Err(format!(
                    "`dbpassword` is a {}, not a string",
                    other.type_name()
                ))
            }
        };
        let table_prefix = text("dbtableprefix", "oc_")?;
        let utf8mb4 = lookup("mysql.utf8mb4").is_some_and(PhpValue::truthy);
        let (mut host, mut port, mut socket) = (String::new(), None, None);
        let mut sqlite_file = None;
        if kind == DbKind::Sqlite {
            let mut p = datadirectory.to_vec();
            p.push(b'/');
            p.extend_from_slice(name.as_bytes());
            p.extend_from_slice(b".db");
            sqlite_file = Some(PathBuf::from(OsStr::from_bytes(&p)));
        } else {
            let dbhost = text("dbhost", "")?;
            let split = match flavor {
                Flavor::OwnCloud => split_dbhost_owncloud(&dbhost),
                Flavor::Nextcloud => split_dbhost_nextcloud(&dbhost),
            };
            host = split.0;
            match split.1 {
                PortOrSocket::None => {}
                PortOrSocket::Port(p) => {
                    port = Some(u16::try_from(p).ok().filter(|p| *p > 0).ok_or_else(|| {
                        format!("`dbhost` {dbhost:?} has the port {p}, which is not a TCP port")
                    })?)
                }
                PortOrSocket::Socket(s) if s.is_empty() => {}
                PortOrSocket::Socket(s) => socket = Some(s),
            }
            // Nextcloud's `dbport` counts when `dbhost` names no port or socket (ownCloud 10's
            // ConnectionFactory does not read it).
            if flavor == Flavor::Nextcloud && port.is_none() && socket.is_none() {
                port = match text("dbport", "")?.trim() {
                    "" => None,
                    p => Some(
                        p.parse::<u16>()
                            .ok()
                            .filter(|p| *p > 0)
                            .ok_or_else(|| format!("`dbport` {p:?} is not a TCP port"))?,
                    ),
                };
            }
        }
        Ok(DbParams {
            kind,
            name,
            host,
            port,
            socket,
            user,
            password,
            table_prefix,
            utf8mb4,
            sqlite_file,
        })
    }

    /// Where a client connects, following the client libraries' rules for `localhost` and empty
    /// hosts.
    pub fn endpoint(&self) -> DbEndpoint<'_> {
        if let Some(f) = &self.sqlite_file {
            return DbEndpoint::File(f);
        }
        if let Some(s) = &self.socket {
            return DbEndpoint::Socket(s);
        }
        match self.kind {
            DbKind::Mysql if self.host.is_empty() || self.host == "localhost" => {
                DbEndpoint::DefaultSocket
            }
            DbKind::Pgsql if self.host.is_empty() => DbEndpoint::DefaultSocket,
            DbKind::Pgsql if self.host.starts_with('/') => DbEndpoint::Socket(&self.host),
            _ => DbEndpoint::Tcp {
                host: &self.host,
                port: self.port,
            },
        }
    }
}

/// What follows the host in `dbhost`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortOrSocket {
    None,
    Port(i64),
    Socket(String),
}

/// ownCloud 10: `if (strpos($host, ':'))` (so a colon at position 0 does not count), split at
/// the first colon; all digits → port, anything else → socket.
pub fn split_dbhost_owncloud(dbhost: &str) -> (String, PortOrSocket) {
    match dbhost.find(':') {
        Some(i) if i > 0 => {
            let (h, rest) = (&dbhost[..i], &dbhost[i + 1..]);
            let tail = if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) {
                rest.parse::<i64>()
                    .map_or(PortOrSocket::Port(i64::MAX), PortOrSocket::Port)
            } else {
                PortOrSocket::Socket(rest.to_string())
            };
            (h.to_string(), tail)
        }
        _ => (dbhost.to_string(), PortOrSocket::None),
    }
}

/// Nextcloud: `preg_match('/^(.*):([^\]:]+)$/')` (split at the last colon unless what follows
/// holds `]`, so `[::1]` stays whole); `is_numeric` → `(int)` port, else socket.
pub fn split_dbhost_nextcloud(dbhost: &str) -> (String, PortOrSocket) {
    if dbhost.contains('\n') {
        return (dbhost.to_string(), PortOrSocket::None);
    }
    match dbhost.rfind(':') {
        Some(i) if i + 1 < dbhost.len() && !dbhost[i + 1..].contains(']') => {
            let (h, rest) = (&dbhost[..i], &dbhost[i + 1..]);
            let tail = match php_numeric_to_int(rest) {
                Some(p) => PortOrSocket::Port(p),
                None => PortOrSocket::Socket(rest.to_string()),
            };
            (h.to_string(), tail)
        }
        _ => (dbhost.to_string(), PortOrSocket::None),
    }
}

/// `is_numeric($s) ? (int)$s : None`, for the forms a port can take (surrounding whitespace, a
/// sign, a fraction, an exponent).
fn php_numeric_to_int(s: &str) -> Option<i64> {
    let ws = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c');
    let t = s.trim_start_matches(ws).trim_end_matches(ws);
    let body = t.strip_prefix(['+', '-']).unwrap_or(t);
    let (mant, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (int, frac) = match mant.find('.') {
        Some(i) => (&mant[..i], Some(&mant[i + 1..])),
        None => (mant, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let ok = digits(int)
        && frac.is_none_or(digits)
        && !(int.is_empty() && frac.is_none_or(str::is_empty))
        && exp.is_none_or(|e| {
            let e = e.strip_prefix(['+', '-']).unwrap_or(e);
            !e.is_empty() && digits(e)
        });
    if !ok {
        return None;
    }
    if frac.is_none() && exp.is_none() {
        if let Ok(i) = t.parse::<i64>() {
            return Some(i);
        }
    }
    let f: f64 = t.parse().ok()?;
    (f.is_finite() && f.abs() < 9.2e18).then_some(f.trunc() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instance::value::PhpArray;

    fn params(flavor: Flavor, pairs: &[(&str, PhpValue)]) -> Result<DbParams, String> {
        let cfg: PhpArray = pairs
            .iter()
            .map(|(k, v)| ((*k).into(), v.clone()))
            .collect();
        let lookup = |k: &str| cfg.get_key(k).filter(|v| !v.is_null());
        DbParams::from_config(&lookup, flavor, b"/srv/oc/data")
    }

    #[test]
    fn owncloud_dbhost_split() {
        let s = |h: &str| split_dbhost_owncloud(h);
        assert_eq!(s("db.example"), ("db.example".into(), PortOrSocket::None));
        assert_eq!(
            s("127.0.0.1:3307"),
            ("127.0.0.1".into(), PortOrSocket::Port(3307))
        );
        assert_eq!(
            s("localhost:/run/mysqld/mysqld.sock"),
            (
                "localhost".into(),
                PortOrSocket::Socket("/run/mysqld/mysqld.sock".into())
            )
        );
        assert_eq!(s(":3306"), (":3306".into(), PortOrSocket::None)); // strpos() === 0 is falsy
        assert_eq!(s("h:"), ("h".into(), PortOrSocket::Socket(String::new())));
        // ownCloud splits an IPv6 literal at its first colon: broken there too, kept as is.
        assert_eq!(
            s("[::1]:5432"),
            ("[".into(), PortOrSocket::Socket(":1]:5432".into()))
        );
    }

    #[test]
    fn nextcloud_dbhost_split() {
        let s = |h: &str| split_dbhost_nextcloud(h);
        assert_eq!(
            s("127.0.0.1:3307"),
            ("127.0.0.1".into(), PortOrSocket::Port(3307))
        );
        assert_eq!(s("[::1]:5432"), ("[::1]".into(), PortOrSocket::Port(5432)));
        assert_eq!(s("[::1]"), ("[::1]".into(), PortOrSocket::None));
        assert_eq!(
            s("localhost:/var/run/mysqld/mysqld.sock"),
            (
                "localhost".into(),
                PortOrSocket::Socket("/var/run/mysqld/mysqld.sock".into())
            )
        );
        assert_eq!(s("h:"), ("h:".into(), PortOrSocket::None));
        assert_eq!(s("h: 3306 "), ("h".into(), PortOrSocket::Port(3306)));
        assert_eq!(s("h:3306.9"), ("h".into(), PortOrSocket::Port(3306)));
    }

    #[test]
    fn sqlite_file_in_data_directory() {
        let p = params(Flavor::Nextcloud, &[("dbtype", PhpValue::str("sqlite3"))]).unwrap();
        assert_eq!(p.kind, DbKind::Sqlite);
        assert_eq!(
            p.sqlite_file.as_deref(),
            Some(Path::new("/srv/oc/data/owncloud.db"))
        );
        assert_eq!(
            p.endpoint(),
            DbEndpoint::File(Path::new("/srv/oc/data/owncloud.db"))
        );
        assert_eq!(p.table_prefix, "oc_");
        let p = params(
            Flavor::OwnCloud,
            &[
                ("dbtype", PhpValue::str("sqlite")),
                ("dbname", PhpValue::str("oc")),
            ],
        )
        .unwrap();
        assert_eq!(
            p.sqlite_file.as_deref(),
            Some(Path::new("/srv/oc/data/oc.db"))
        );
        // No dbtype at all: SQLite, as ownCloud defaults.
        assert_eq!(params(Flavor::OwnCloud, &[]).unwrap().kind, DbKind::Sqlite);
    }

    #[test]
    fn mysql_endpoints() {
        let p = params(
            Flavor::Nextcloud,
            &[
                ("dbtype", PhpValue::str("mysql")),
                ("dbhost", PhpValue::str("127.0.0.1:3307")),
                ("dbname", PhpValue::str("nextcloud")),
                ("dbuser", PhpValue::str("nc")),
                ("dbpassword", PhpValue::str("pw-SECRET")),
                ("mysql.utf8mb4", PhpValue::Bool(true)),
            ],
        )
        .unwrap();
        assert_eq!(
            p.endpoint(),
            DbEndpoint::Tcp {
                host: "127.0.0.1",
                port: Some(3307)
            }
        );
        assert!(p.utf8mb4);
        assert_eq!(p.password.expose(), b"pw-SECRET");
        assert!(!format!("{p:?}").contains("pw-SECRET"));
        let local = params(
            Flavor::OwnCloud,
            &[
                ("dbtype", PhpValue::str("mysql")),
                ("dbhost", PhpValue::str("localhost")),
            ],
        )
        .unwrap();
        assert_eq!(local.endpoint(), DbEndpoint::DefaultSocket);
        let sock = params(
            Flavor::OwnCloud,
            &[
                ("dbtype", PhpValue::str("mysql")),
                ("dbhost", PhpValue::str("localhost:/run/mysqld/mysqld.sock")),
            ],
        )
        .unwrap();
        assert_eq!(
            sock.endpoint(),
            DbEndpoint::Socket("/run/mysqld/mysqld.sock")
        );
        let pg = params(Flavor::OwnCloud, &[("dbtype", PhpValue::str("pgsql"))]).unwrap();
        assert_eq!(pg.endpoint(), DbEndpoint::DefaultSocket);
    }

    #[test]
    fn bad_values_are_named() {
        let e = params(Flavor::OwnCloud, &[("dbtype", PhpValue::str("oci"))]).unwrap_err();
        assert!(e.contains("oci"), "{e}");
        let e = params(
            Flavor::OwnCloud,
            &[
                ("dbtype", PhpValue::str("mysql")),
                ("dbhost", PhpValue::str("h:99999")),
            ],
        )
        .unwrap_err();
        assert!(e.contains("99999"), "{e}");
        let e = params(Flavor::OwnCloud, &[("dbname", PhpValue::Bool(true))]).unwrap_err();
        assert!(e.contains("dbname"), "{e}");
    }
}
