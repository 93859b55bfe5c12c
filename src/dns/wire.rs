//! One DNS exchange with one server: UDP (TCP when the answer is truncated), optionally signed
//! with TSIG.
//!
//! hickory-proto builds, signs and verifies the messages; the transport is ours, because
//! hickory-net's client turns every unsigned TSIG error answer (BADSIG, BADKEY, BADTIME, which
//! RFC 8945 says are sent unsigned) into one opaque "truncated HMAC" protocol error. Here the
//! answer is read first, so the server's own verdict is reported.

use hickory_proto::op::Message;
use hickory_proto::rr::rdata::tsig::TsigError;
use hickory_proto::rr::TSigner;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// Why an exchange gave no usable answer.
#[derive(Debug)]
pub enum WireError {
    /// No answer in time (after the retries).
    Timeout,
    /// The network said no (connection refused, no route...).
    Io(io::Error),
    /// The answer could not be read.
    Malformed(String),
    /// The request was signed but the answer's signature is missing or wrong.
    Tsig(String),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Timeout => write!(f, "no answer (timed out)"),
            WireError::Io(e) => write!(f, "{e}"),
            WireError::Malformed(e) => write!(f, "unreadable answer: {e}"),
            WireError::Tsig(e) => write!(f, "the answer's TSIG signature did not verify: {e}"),
        }
    }
}

/// An answer, with what TSIG said about it (when the request was signed).
#[derive(Debug)]
pub struct Reply {
    pub msg: Message,
    /// The TSIG error the server put in its (unsigned) TSIG record: BADSIG, BADKEY, BADTIME.
    pub tsig_error: Option<TsigError>,
    /// The request was signed and the answer carried no TSIG at all.
    pub unsigned: bool,
}

/// How long to wait for one datagram, and how many times to send it.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub per_try: Duration,
    pub tries: u32,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            per_try: Duration::from_millis(1500),
            tries: 3,
        }
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Send `msg` to `server` and return its answer.
pub async fn exchange(
    server: SocketAddr,
    mut msg: Message,
    signer: Option<&TSigner>,
    timing: Timing,
) -> Result<Reply, WireError> {
    let mut verifier = None;
    if let Some(signer) = signer {
        verifier = msg
            .finalize(signer, now_unix())
            .map_err(|e| WireError::Malformed(format!("cannot sign the request: {e}")))?;
    }
    let id = msg.metadata.id;
    let bytes = msg
        .to_vec()
        .map_err(|e| WireError::Malformed(format!("cannot encode the request: {e}")))?;
    let mut answer = udp(server, &bytes, id, timing).await?;
    if Message::from_vec(&answer)
        .map(|m| m.metadata.truncation)
        .unwrap_or(false)
    {
        answer = tcp(server, &bytes, id, timing).await?;
    }
    let parsed = Message::from_vec(&answer).map_err(|e| WireError::Malformed(e.to_string()))?;
    if signer.is_none() {
        return Ok(Reply {
            msg: parsed,
            tsig_error: None,
            unsigned: false,
        });
    }
    let Some(sig) = parsed.signature() else {
        return Ok(Reply {
            msg: parsed,
            tsig_error: None,
            unsigned: true,
        });
    };
    if let Some(err) = sig.data.error {
        // RFC 8945 5.3.2: BADSIG/BADKEY answers are unsigned (empty MAC); nothing to verify.
        return Ok(Reply {
            msg: parsed,
            tsig_error: Some(err),
            unsigned: false,
        });
    }
    match verifier {
        Some(mut v) => match v.verify(&answer) {
            Ok(_) => Ok(Reply {
                msg: parsed,
                tsig_error: None,
                unsigned: false,
            }),
            Err(e) => Err(WireError::Tsig(e.to_string())),
        },
        None => Err(WireError::Tsig("no verifier for a signed request".into())),
    }
}

async fn udp(
    server: SocketAddr,
    bytes: &[u8],
    id: u16,
    timing: Timing,
) -> Result<Vec<u8>, WireError> {
    let local: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal")
    } else {
        "[::]:0".parse().expect("literal")
    };
    let sock = UdpSocket::bind(local).await.map_err(WireError::Io)?;
    sock.connect(server).await.map_err(WireError::Io)?;
    let mut buf = vec![0u8; 65535];
    for _ in 0..timing.tries.max(1) {
        sock.send(bytes).await.map_err(WireError::Io)?;
        let deadline = Instant::now() + timing.per_try;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match tokio::time::timeout(left, sock.recv(&mut buf)).await {
                Err(_) => break,
                Ok(Err(e)) => return Err(WireError::Io(e)),
                Ok(Ok(n)) => {
                    // Answers to another (earlier) id are stale: keep waiting.
                    if n >= 12 && u16::from_be_bytes([buf[0], buf[1]]) == id {
                        return Ok(buf[..n].to_vec());
                    }
                }
            }
        }
    }
    Err(WireError::Timeout)
}

async fn tcp(
    server: SocketAddr,
    bytes: &[u8],
    id: u16,
    timing: Timing,
) -> Result<Vec<u8>, WireError> {
    let total = timing.per_try * timing.tries.max(1);
    let work = async {
        let mut s = TcpStream::connect(server).await.map_err(WireError::Io)?;
        let len = u16::try_from(bytes.len())
            .map_err(|_| WireError::Malformed("request too large".into()))?;
        let mut framed = len.to_be_bytes().to_vec();
        framed.extend_from_slice(bytes);
        s.write_all(&framed).await.map_err(WireError::Io)?;
        loop {
            let mut l = [0u8; 2];
            s.read_exact(&mut l).await.map_err(WireError::Io)?;
            let mut body = vec![0u8; u16::from_be_bytes(l) as usize];
            s.read_exact(&mut body).await.map_err(WireError::Io)?;
            if body.len() >= 12 && u16::from_be_bytes([body[0], body[1]]) == id {
                return Ok(body);
            }
        }
    };
    tokio::time::timeout(total, work)
        .await
        .unwrap_or(Err(WireError::Timeout))
}
