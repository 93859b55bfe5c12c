//! The RFC 2136 update: a compare-and-swap of the CNAME, signed with TSIG, and what each way it
//! can fail means for the admin.

use super::key::TsigKey;
use super::wire::{self, Reply, Timing, WireError};
use super::Server;
use crate::exit::Failure;
use hickory_proto::op::{update_message, ResponseCode};
use hickory_proto::rr::rdata::tsig::TsigError;
use hickory_proto::rr::rdata::CNAME;
use hickory_proto::rr::{Name, RData, Record};
use std::path::Path;
use std::time::Duration;

/// What the server said to the update, when it was not a plain success.
#[derive(Debug)]
pub enum Rejection {
    /// The prerequisite failed: the name no longer is `CNAME from` (NXRRSET, YXRRSET...).
    Prerequisite(ResponseCode),
    /// Anything else, already phrased for the admin.
    Failure(Failure),
}

/// The parts of an update the messages need.
pub struct Update<'a> {
    pub server: &'a Server,
    pub zone: &'a Name,
    pub name: &'a Name,
    pub from: &'a Name,
    pub to: &'a Name,
    pub ttl: u32,
    pub key: &'a TsigKey,
    pub key_file: &'a Path,
}

/// Send the compare-and-swap: "if `name` is exactly `CNAME from`, replace it with `CNAME to`".
/// Nothing is written by the server when the prerequisite fails.
pub async fn compare_and_swap(u: &Update<'_>) -> Result<(), Rejection> {
    let signer = u
        .key
        .signer()
        .map_err(|e| Rejection::Failure(Failure::usage(e)))?;
    let current = Record::from_rdata(u.name.clone(), u.ttl, RData::CNAME(CNAME(u.from.clone())));
    let new = Record::from_rdata(u.name.clone(), u.ttl, RData::CNAME(CNAME(u.to.clone())));
    let msg = update_message::compare_and_swap(current.into(), new.into(), u.zone.clone(), false);
    // An update is sent at most twice: a lost answer to an applied update shows up as a failed
    // prerequisite on the second try, which the caller resolves by looking at the record.
    let timing = Timing {
        per_try: Duration::from_secs(3),
        tries: 2,
    };
    let reply = wire::exchange(u.server.addr, msg, Some(&signer), timing)
        .await
        .map_err(|e| Rejection::Failure(wire_failure(u, e)))?;
    judge(u, reply)
}

fn key_hint(u: &Update<'_>) -> String {
    format!(
        "the key in {} (name {}) must be the one the DNS server has, with the same secret and algorithm, \
         and the server must allow it to update zone {} (knot: an acl with `key: {}` and `action: update` on the zone; \
         BIND: allow-update {{ key \"{}\"; }}; or update-policy)",
        u.key_file.display(),
        u.key.name,
        u.zone,
        u.key.name,
        u.key.name
    )
}

fn tsig_failed(u: &Update<'_>, why: String) -> Failure {
    Failure::check(format!(
        "TSIG authentication failed: {why}; nothing was changed"
    ))
    .hint(key_hint(u))
}

fn wire_failure(u: &Update<'_>, e: WireError) -> Failure {
    let server = &u.server.label;
    match e {
        WireError::Timeout => Failure::unreachable(format!(
            "no answer from {server} to the update (timed out); it may or may not have been applied"
        ))
        .hint("check that the DNS server runs and is reachable, then `ocmigrate dns check`; `ocmigrate dns switch` is safe to run again"),
        WireError::Io(err) => Failure::unreachable(format!("cannot reach {server} to send the update: {err}"))
            .hint("check [dns] server and that the DNS server runs and is reachable (UDP and TCP)"),
        WireError::Malformed(err) => Failure::check(format!("{server} sent an unreadable answer to the update: {err}"))
            .hint("check [dns] server: it must be the zone's primary DNS server"),
        // hickory reports an unsigned or wrong-key answer as e.g. "... truncated HMACs with TSIG".
        WireError::Tsig(err) => tsig_failed(
            u,
            format!("the answer from {server} does not verify with key {} ({err})", u.key.name),
        ),
    }
}

fn judge(u: &Update<'_>, reply: Reply) -> Result<(), Rejection> {
    let server = &u.server.label;
    let rc = reply.msg.metadata.response_code;
    if let Some(te) = reply.tsig_error {
        let why = match te {
            TsigError::BadSig => format!(
                "{server} rejected the signature made with key {} (BADSIG): the secret is not the one the server has",
                u.key.name
            ),
            TsigError::BadKey => format!(
                "{server} does not accept key {} for zone {} (BADKEY): it does not know a key of that name and algorithm, \
                 or does not allow it to update this zone",
                u.key.name, u.zone
            ),
            TsigError::BadTime => {
                return Err(Rejection::Failure(
                    Failure::check(format!(
                        "TSIG authentication failed: {server} says this machine's clock is off by more than 300 s (BADTIME); nothing was changed"
                    ))
                    .hint("set the clock right (NTP) on this machine or on the DNS server"),
                ))
            }
            other => format!("{server} answered TSIG error {other:?}"),
        };
        return Err(Rejection::Failure(tsig_failed(u, why)));
    }
    if reply.unsigned && rc == ResponseCode::NoError {
        return Err(Rejection::Failure(tsig_failed(
            u,
            format!("{server} answered the signed update without a signature"),
        )));
    }
    match rc {
        ResponseCode::NoError => Ok(()),
        ResponseCode::NXRRSet
        | ResponseCode::YXRRSet
        | ResponseCode::NXDomain
        | ResponseCode::YXDomain => Err(Rejection::Prerequisite(rc)),
        ResponseCode::NotAuth if reply.unsigned => Err(Rejection::Failure(
            Failure::check(format!(
                "wrong zone or unknown key: {server} is not authoritative for zone {} or did not take the key (NOTAUTH); nothing was changed",
                u.zone
            ))
            .hint("check [dns] zone and [dns] server (the update must go to the zone's primary server), and that the server knows the key"),
        )),
        ResponseCode::NotAuth => Err(Rejection::Failure(
            Failure::check(format!(
                "{server} does not let key {} update zone {} (NOTAUTH); nothing was changed",
                u.key.name, u.zone
            ))
            .hint(key_hint(u)),
        )),
        ResponseCode::NotZone => Err(Rejection::Failure(
            Failure::check(format!(
                "wrong zone: {} is not inside zone {} as {server} sees it (NOTZONE); nothing was changed",
                u.name, u.zone
            ))
            .hint("check [dns] zone: it must be the zone that holds [dns] name"),
        )),
        ResponseCode::Refused => Err(Rejection::Failure(
            Failure::check(format!(
                "{server} refused the update of zone {} (REFUSED); nothing was changed",
                u.zone
            ))
            .hint(format!(
                "the server does not take dynamic updates for this zone from this machine: {}",
                key_hint(u)
            )),
        )),
        ResponseCode::NotImp => Err(Rejection::Failure(
            Failure::check(format!(
                "{server} does not implement dynamic updates (NOTIMP); nothing was changed"
            ))
            .hint("use mode = \"manual\", or point [dns] server to the zone's primary server"),
        )),
        ResponseCode::ServFail => Err(Rejection::Failure(
            Failure::check(format!(
                "{server} failed to apply the update (SERVFAIL); it should not have changed anything"
            ))
            .hint("look at the DNS server's log, then run `ocmigrate dns check`"),
        )),
        other => Err(Rejection::Failure(
            Failure::check(format!(
                "{server} rejected the update ({}); nothing was changed", super::rcode_name(other)
            ))
            .hint("look at the DNS server's log"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::ExitKind;
    use hickory_proto::op::{Message, MessageType, OpCode};
    use hickory_proto::rr::rdata::tsig::{make_tsig_record, TsigAlgorithm, TSIG};

    fn parts() -> (Server, Name, Name, Name, Name, TsigKey) {
        let server = Server {
            label: "127.0.0.1:5353".into(),
            addr: "127.0.0.1:5353".parse().unwrap(),
        };
        let key =
            TsigKey::parse("hmac-sha256:oc-migrate.:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
                .unwrap();
        (
            server,
            Name::from_ascii("example.test.").unwrap(),
            Name::from_ascii("cloud.example.test.").unwrap(),
            Name::from_ascii("old.example.test.").unwrap(),
            Name::from_ascii("new.example.test.").unwrap(),
            key,
        )
    }

    fn reply(rc: ResponseCode, tsig_error: Option<TsigError>, unsigned: bool) -> Reply {
        let mut msg = Message::new(1, MessageType::Response, OpCode::Update);
        msg.metadata.response_code = rc;
        if let Some(e) = tsig_error {
            let t = TSIG::new(
                TsigAlgorithm::HmacSha256,
                0,
                300,
                Vec::new(),
                1,
                Some(e),
                Vec::new(),
            );
            msg.signature = Some(Box::new(make_tsig_record(
                Name::from_ascii("oc-migrate.").unwrap(),
                t,
            )));
        }
        Reply {
            msg,
            tsig_error,
            unsigned,
        }
    }

    fn message(r: Result<(), Rejection>) -> Failure {
        match r {
            Err(Rejection::Failure(f)) => f,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn server_verdicts_become_clear_failures() {
        let (server, zone, name, from, to, key) = parts();
        let u = Update {
            server: &server,
            zone: &zone,
            name: &name,
            from: &from,
            to: &to,
            ttl: 60,
            key: &key,
            key_file: Path::new("/etc/ocmigrate/tsig.key"),
        };
        assert!(judge(&u, reply(ResponseCode::NoError, None, false)).is_ok());

        let f = message(judge(
            &u,
            reply(ResponseCode::NotAuth, Some(TsigError::BadSig), false),
        ));
        assert_eq!(f.kind, ExitKind::CheckFailed);
        assert!(
            f.message.starts_with("TSIG authentication failed") && f.message.contains("BADSIG"),
            "{}",
            f.message
        );
        assert!(f.hint.unwrap().contains("/etc/ocmigrate/tsig.key"));

        let f = message(judge(
            &u,
            reply(ResponseCode::NotAuth, Some(TsigError::BadKey), false),
        ));
        assert!(
            f.message.starts_with("TSIG authentication failed") && f.message.contains("BADKEY"),
            "{}",
            f.message
        );

        let f = message(judge(
            &u,
            reply(ResponseCode::NotAuth, Some(TsigError::BadTime), false),
        ));
        assert!(f.message.contains("BADTIME") && f.hint.unwrap().contains("NTP"));

        let f = message(judge(&u, reply(ResponseCode::NotAuth, None, true)));
        assert!(
            f.message.contains("wrong zone") && f.message.contains("NOTAUTH"),
            "{}",
            f.message
        );

        let f = message(judge(&u, reply(ResponseCode::Refused, None, false)));
        assert!(
            f.message.contains("REFUSED") && f.message.contains("nothing was changed"),
            "{}",
            f.message
        );

        let f = message(judge(&u, reply(ResponseCode::NotZone, None, false)));
        assert!(
            f.message.contains("wrong zone") && f.message.contains("NOTZONE"),
            "{}",
            f.message
        );

        // An unsigned success to a signed request is not trusted.
        let f = message(judge(&u, reply(ResponseCode::NoError, None, true)));
        assert!(
            f.message.starts_with("TSIG authentication failed"),
            "{}",
            f.message
        );

        for rc in [
            ResponseCode::NXRRSet,
            ResponseCode::YXRRSet,
            ResponseCode::NXDomain,
        ] {
            assert!(matches!(
                judge(&u, reply(rc, None, false)),
                Err(Rejection::Prerequisite(_))
            ));
        }
    }

    #[test]
    fn transport_failures_are_unreachable_or_tsig() {
        let (server, zone, name, from, to, key) = parts();
        let u = Update {
            server: &server,
            zone: &zone,
            name: &name,
            from: &from,
            to: &to,
            ttl: 60,
            key: &key,
            key_file: Path::new("k"),
        };
        assert_eq!(
            wire_failure(&u, WireError::Timeout).kind,
            ExitKind::Unreachable
        );
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(
            wire_failure(&u, WireError::Io(refused)).kind,
            ExitKind::Unreachable
        );
        // What hickory says when a wrong key makes the server answer with an empty MAC.
        let f = wire_failure(
            &u,
            WireError::Tsig("Please file an issue with https://github.com/hickory-dns/hickory-dns to support truncated HMACs with TSIG".into()),
        );
        assert_eq!(f.kind, ExitKind::CheckFailed);
        assert!(
            f.message.starts_with("TSIG authentication failed"),
            "{}",
            f.message
        );
    }
}
