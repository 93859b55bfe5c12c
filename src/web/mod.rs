//! Web checks: what the instance answers over HTTP, asked the way clients ask.
//!
//! Requests carry the production host name (so `trusted_domains` matches) but can be sent to a
//! chosen address (the target, before DNS points to it), like `curl --resolve`. Nothing here
//! assumes a toggle is instant: callers poll with [`WebProbe::wait_for_maintenance`]. The source
//! is never logged into (a login writes to its database): only `status.php`, `index.php` and
//! unauthenticated requests go to the source.

mod dav;

pub use dav::{DavEntry, Multistatus};

use crate::exit::Failure;
use serde::{Deserialize, Serialize};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

/// `status.php`, as both flavors answer it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusPhp {
    pub installed: bool,
    pub maintenance: bool,
    #[serde(rename = "needsDbUpgrade")]
    pub needs_db_upgrade: bool,
    pub version: String,
    pub versionstring: String,
    pub edition: String,
    pub productname: String,
}

/// An HTTP answer, with what the checks look at.
#[derive(Debug, Clone)]
pub struct Answer {
    pub code: u16,
    pub retry_after: Option<String>,
    pub content_type: Option<String>,
    pub body: String,
}

pub struct WebProbe {
    client: reqwest::blocking::Client,
    base: String,
    /// For messages: `http://cloud.example.com (sent to 203.0.113.7)`.
    pub label: String,
}

fn install_crypto() {
    // reqwest is built without a default TLS provider; ring is already in the tree.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl WebProbe {
    /// Probe `public_url`, sending the requests to `address` (an IP or a name) when given.
    pub fn new(public_url: &str, address: Option<&str>) -> Result<WebProbe, Failure> {
        install_crypto();
        let base = public_url.trim_end_matches('/').to_string();
        let rest = base
            .strip_prefix("https://")
            .map(|r| (r, 443))
            .or_else(|| base.strip_prefix("http://").map(|r| (r, 80)));
        let Some((rest, default_port)) = rest else {
            return Err(Failure::usage(format!(
                "{public_url:?} is not an http:// or https:// URL"
            )));
        };
        let authority = rest.split('/').next().unwrap_or(rest);
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => {
                (h, p.parse().unwrap_or(default_port))
            }
            _ => (authority, default_port),
        };
        let mut builder = reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("ocmigrate/", env!("CARGO_PKG_VERSION")));
        let mut label = base.clone();
        if let Some(addr) = address {
            let sock: SocketAddr = (addr, port)
                .to_socket_addrs()
                .ok()
                .and_then(|mut a| a.next())
                .ok_or_else(|| {
                    Failure::usage(format!("the address {addr:?} cannot be resolved"))
                })?;
            builder = builder.resolve(host, sock);
            label = format!("{base} (sent to {addr})");
        }
        let client = builder
            .build()
            .map_err(|e| Failure::usage(format!("HTTP client: {e}")))?;
        Ok(WebProbe {
            client,
            base,
            label,
        })
    }

    fn failed(&self, what: &str, e: reqwest::Error) -> Failure {
        Failure::unreachable(format!("{}: {what}: {e}", self.label))
            .hint("check that the web server runs and answers for the public name at that address")
    }

    fn answer(&self, what: &str, rb: reqwest::blocking::RequestBuilder) -> Result<Answer, Failure> {
        let resp = rb.send().map_err(|e| self.failed(what, e))?;
        let header = |n: &str| {
            resp.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(String::from)
        };
        let (code, retry_after, content_type) = (
            resp.status().as_u16(),
            header("retry-after"),
            header("content-type"),
        );
        let body = resp.text().map_err(|e| self.failed(what, e))?;
        Ok(Answer {
            code,
            retry_after,
            content_type,
            body,
        })
    }

    /// GET a path (relative to the public URL).
    pub fn get(&self, path: &str) -> Result<Answer, Failure> {
        self.answer(
            &format!("GET {path}"),
            self.client.get(format!("{}{path}", self.base)),
        )
    }

    /// GET `/status.php` and parse it.
    pub fn status(&self) -> Result<StatusPhp, Failure> {
        let a = self.get("/status.php")?;
        if a.code != 200 {
            return Err(Failure::check(format!(
                "{}: status.php answered HTTP {} instead of 200{}",
                self.label,
                a.code,
                if a.code == 400 {
                    " (is the public name in trusted_domains?)"
                } else {
                    ""
                }
            )));
        }
        serde_json::from_str(&a.body).map_err(|e| {
            Failure::check(format!(
                "{}: status.php is not the expected JSON ({e}): {:.200}",
                self.label, a.body
            ))
        })
    }

    /// Poll `status.php` until it reports `maintenance == want`; returns when it was seen.
    /// (PHP's opcache can keep serving the old config.php for a few seconds.)
    pub fn wait_for_maintenance(&self, want: bool, timeout: Duration) -> Result<Instant, Failure> {
        let start = Instant::now();
        loop {
            let s = self.status()?;
            if s.maintenance == want {
                return Ok(Instant::now());
            }
            if start.elapsed() >= timeout {
                return Err(Failure::check(format!(
                    "{}: status.php still says \"maintenance\":{} after {:?}",
                    self.label, s.maintenance, timeout
                ))
                .hint("PHP's opcache may cache config.php: restart PHP (php-fpm or the web server) and run again"));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// PROPFIND with Basic auth; `path` below `/remote.php/dav/files/<user>/`.
    pub fn propfind(
        &self,
        user: &str,
        password: &str,
        path: &str,
        depth: u8,
    ) -> Result<(u16, Multistatus), Failure> {
        let url = format!(
            "{}/remote.php/dav/files/{}/{}",
            self.base,
            dav::encode(user),
            dav::encode_path(path)
        );
        let method = reqwest::Method::from_bytes(b"PROPFIND").expect("valid method");
        let rb = self
            .client
            .request(method, url)
            .basic_auth(user, Some(password))
            .header("Depth", depth.to_string())
            .header("Content-Type", "application/xml")
            .body(dav::PROPFIND_BODY);
        let a = self.answer("PROPFIND", rb)?;
        let ms = if a.code == 207 {
            dav::parse_multistatus(&a.body)?
        } else {
            Multistatus::default()
        };
        Ok((a.code, ms))
    }

    /// An unauthenticated PROPFIND, for the 503-in-maintenance check on the source.
    pub fn propfind_anonymous(&self, user: &str) -> Result<Answer, Failure> {
        let method = reqwest::Method::from_bytes(b"PROPFIND").expect("valid method");
        let url = format!("{}/remote.php/dav/files/{}/", self.base, dav::encode(user));
        self.answer(
            "PROPFIND",
            self.client.request(method, url).header("Depth", "0"),
        )
    }

    /// OCS `cloud/user` as the given user (v1 for ownCloud, v2 for Nextcloud both work).
    pub fn ocs_user(
        &self,
        user: &str,
        password: &str,
    ) -> Result<(u16, serde_json::Value), Failure> {
        let rb = self
            .client
            .get(format!("{}/ocs/v1.php/cloud/user?format=json", self.base))
            .basic_auth(user, Some(password))
            .header("OCS-APIRequest", "true");
        let a = self.answer("OCS cloud/user", rb)?;
        let v = serde_json::from_str(&a.body).unwrap_or(serde_json::Value::Null);
        Ok((a.code, v))
    }
}
