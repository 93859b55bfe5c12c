//! Read-only DNS: find a zone's authoritative servers and ask each what a name is.
//!
//! Every question is non-recursive and goes straight to an authoritative server, except when no
//! `[dns] server` is configured: then the zone and its NS names are found through the system's
//! resolvers (`/etc/resolv.conf`), and the NS servers are asked directly on port 53.

use super::wire::{self, Timing, WireError};
use super::{Answer, Server, Settings};
use crate::exit::Failure;
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use std::collections::BTreeSet;
use std::net::SocketAddr;

/// One question to one server.
pub async fn ask(
    addr: SocketAddr,
    name: &Name,
    rtype: RecordType,
    recursive: bool,
) -> Result<Message, WireError> {
    let mut msg = Message::query();
    msg.metadata.recursion_desired = recursive;
    msg.add_query(Query::query(name.clone(), rtype));
    Ok(wire::exchange(addr, msg, None, Timing::default())
        .await?
        .msg)
}

/// Resolve `host:port` with the system resolver; all its addresses.
pub async fn resolve(hostport: &str) -> Result<Vec<SocketAddr>, String> {
    match tokio::net::lookup_host(hostport).await {
        Ok(it) => {
            let v: Vec<SocketAddr> = it.collect();
            if v.is_empty() {
                Err(format!("{hostport}: the name has no address"))
            } else {
                Ok(v)
            }
        }
        Err(e) => Err(format!("cannot resolve {hostport}: {e}")),
    }
}

fn join_hostport(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The system's resolvers, from /etc/resolv.conf.
fn system_resolvers() -> Vec<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("nameserver"))
                .then(|| w.next())
                .flatten()
                .and_then(|ip| ip.split('%').next()?.parse::<std::net::IpAddr>().ok())
                .map(|ip| SocketAddr::new(ip, 53))
        })
        .collect()
}

fn unreachable(server: &str, e: &WireError) -> Failure {
    Failure::unreachable(format!("DNS server {server} did not answer: {e}")).hint(format!(
        "check [dns] server ({server}): that the DNS server runs and that UDP and TCP to it are open from this machine"
    ))
}

/// Where questions go: one authoritative server, or the system resolvers.
enum Asker {
    Direct { addr: SocketAddr, label: String },
    Resolvers(Vec<SocketAddr>),
}

impl Asker {
    async fn ask(&self, name: &Name, rtype: RecordType) -> Result<Message, Failure> {
        match self {
            Asker::Direct { addr, label } => ask(*addr, name, rtype, false)
                .await
                .map_err(|e| unreachable(label, &e)),
            Asker::Resolvers(list) => {
                let mut last = None;
                for addr in list {
                    match ask(*addr, name, rtype, true).await {
                        Ok(m) => return Ok(m),
                        Err(e) => last = Some((addr, e)),
                    }
                }
                match last {
                    Some((addr, e)) => Err(unreachable(&format!("{addr} (resolver)"), &e)),
                    None => Err(Failure::usage(
                        "no [dns] server is configured and /etc/resolv.conf names no nameserver",
                    )
                    .hint("set [dns] server = \"ns1.example.com:53\" (an authoritative server of the zone)")),
                }
            }
        }
    }

    fn label(&self) -> String {
        match self {
            Asker::Direct { label, .. } => label.clone(),
            Asker::Resolvers(_) => "the system resolver".into(),
        }
    }
}

/// The zone, its primary (the configured server, if any) and every server to poll.
pub struct Authority {
    pub zone: Name,
    pub primary: Option<Server>,
    pub servers: Vec<Server>,
    pub warnings: Vec<String>,
}

/// Find the zone of `s.name` and its authoritative servers.
pub async fn discover(s: &Settings) -> Result<Authority, Failure> {
    let mut warnings = Vec::new();
    let (asker, primary, port) = match &s.server {
        Some(hp) => {
            let addrs = resolve(hp).await.map_err(|e| {
                Failure::unreachable(e).hint("check [dns] server: it must be host:port of an authoritative server of the zone")
            })?;
            let addr = addrs[0];
            let label = if addr.to_string() == *hp {
                hp.clone()
            } else {
                format!("{hp} ({addr})")
            };
            let port = addr.port();
            let primary = Server {
                label: label.clone(),
                addr,
            };
            (Asker::Direct { addr, label }, Some(primary), port)
        }
        None => (Asker::Resolvers(system_resolvers()), None, 53),
    };

    // The zone: configured (and checked), or the closest enclosing SOA.
    let zone = match &s.zone {
        Some(z) => {
            let m = asker.ask(z, RecordType::SOA).await?;
            let has_soa = m
                .answers
                .iter()
                .any(|r| r.record_type() == RecordType::SOA && r.name == *z);
            let authoritative = matches!(asker, Asker::Resolvers(_)) || m.metadata.authoritative;
            if m.metadata.response_code != ResponseCode::NoError || !has_soa || !authoritative {
                return Err(Failure::check(format!(
                    "wrong zone: {} is not authoritative for zone {z} (it answered {}{})",
                    asker.label(),
                    super::rcode_name(m.metadata.response_code),
                    if has_soa { ", not authoritative" } else { " without its SOA" }
                ))
                .hint("check [dns] zone (the zone that holds the name, e.g. \"example.com.\") and [dns] server (one of that zone's authoritative servers)"));
            }
            z.clone()
        }
        None => find_zone(&asker, &s.name).await?,
    };
    if !zone.zone_of(&s.name) {
        return Err(
            Failure::usage(format!("[dns] name {} is not inside zone {zone}", s.name))
                .hint("[dns] zone must be the zone that holds the name"),
        );
    }

    let mut servers: Vec<Server> = Vec::new();
    let mut seen = BTreeSet::new();
    if let Some(p) = &primary {
        seen.insert(p.addr);
        servers.push(p.clone());
    }
    if !s.servers.is_empty() {
        for hp in &s.servers {
            match resolve(hp).await {
                Ok(addrs) => {
                    for a in addrs {
                        if seen.insert(a) {
                            servers.push(Server {
                                label: if a.to_string() == *hp {
                                    hp.clone()
                                } else {
                                    format!("{hp} ({a})")
                                },
                                addr: a,
                            });
                        }
                    }
                }
                Err(e) => warnings.push(format!("[dns] servers: {e}; not polled")),
            }
        }
    } else {
        let m = asker.ask(&zone, RecordType::NS).await?;
        let ns_names: Vec<Name> = m
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::NS(ns) if r.name == zone => Some(ns.0.clone()),
                _ => None,
            })
            .collect();
        if ns_names.is_empty() {
            warnings.push(format!(
                "{} gave no NS records for {zone}; only the configured server is polled",
                asker.label()
            ));
        }
        for ns in ns_names {
            let mut addrs: Vec<SocketAddr> = m
                .additionals
                .iter()
                .filter(|r| r.name == ns)
                .filter_map(|r| match &r.data {
                    RData::A(a) => Some(SocketAddr::new(a.0.into(), port)),
                    RData::AAAA(a) => Some(SocketAddr::new(a.0.into(), port)),
                    _ => None,
                })
                .collect();
            if addrs.is_empty() {
                addrs = match asker.ask(&ns, RecordType::A).await {
                    Ok(a) if a.metadata.response_code == ResponseCode::NoError => a
                        .answers
                        .iter()
                        .filter_map(|r| match &r.data {
                            RData::A(a) => Some(SocketAddr::new(a.0.into(), port)),
                            _ => None,
                        })
                        .collect(),
                    _ => Vec::new(),
                };
            }
            if addrs.is_empty() {
                let host = ns.to_ascii();
                match resolve(&join_hostport(host.trim_end_matches('.'), port)).await {
                    Ok(a) => addrs = a,
                    Err(e) => {
                        warnings.push(format!(
                            "NS {ns}: {e}; not polled (list the servers in [dns] servers)"
                        ));
                        continue;
                    }
                }
            }
            for a in addrs {
                if seen.insert(a) {
                    servers.push(Server {
                        label: format!("{ns} ({a})"),
                        addr: a,
                    });
                }
            }
        }
    }
    if servers.is_empty() {
        return Err(Failure::unreachable(format!(
            "found no authoritative server to ask for zone {zone}"
        ))
        .hint("set [dns] server, or list the servers in [dns] servers = [\"host:port\", ...]"));
    }
    Ok(Authority {
        zone,
        primary,
        servers,
        warnings,
    })
}

/// The closest enclosing zone of `name`: the first ancestor with its own SOA.
async fn find_zone(asker: &Asker, name: &Name) -> Result<Name, Failure> {
    let mut candidate = name.base_name();
    loop {
        let m = asker.ask(&candidate, RecordType::SOA).await?;
        if m.metadata.response_code == ResponseCode::NoError
            && m.answers
                .iter()
                .any(|r| r.record_type() == RecordType::SOA && r.name == candidate)
        {
            return Ok(candidate);
        }
        if candidate.is_root() || candidate.num_labels() == 0 {
            return Err(Failure::check(match asker {
                Asker::Direct { label, .. } => {
                    format!("wrong zone: {label} is not authoritative for any zone that holds {name}")
                }
                Asker::Resolvers(_) => format!(
                    "the system resolver found no zone that holds {name} (no SOA for any of its parent names)"
                ),
            })
            .hint("set [dns] zone and [dns] server to the zone that holds the name and one of its authoritative servers"));
        }
        candidate = candidate.base_name();
    }
}

/// What one authoritative server says about `name` right now.
pub async fn answer_at(addr: SocketAddr, name: &Name) -> Answer {
    let m = match ask(addr, name, RecordType::CNAME, false).await {
        Ok(m) => m,
        Err(e) => {
            return Answer::Unreachable {
                error: e.to_string(),
            }
        }
    };
    match m.metadata.response_code {
        ResponseCode::NoError => {}
        ResponseCode::NXDomain if m.metadata.authoritative => return Answer::NxDomain,
        rc => {
            return Answer::Error {
                error: format!("answered {}", super::rcode_name(rc)),
            }
        }
    }
    if !m.metadata.authoritative {
        return Answer::Error {
            error: "answered without authority (not authoritative for the zone)".into(),
        };
    }
    if let Some((target, ttl)) = m.answers.iter().find_map(|r| match &r.data {
        RData::CNAME(c) if r.name == *name => Some((c.0.clone(), r.ttl)),
        _ => None,
    }) {
        return Answer::Cname {
            target: target.to_ascii(),
            ttl,
        };
    }
    // No CNAME: say what is there instead.
    let mut records = Vec::new();
    let mut ttl = 0;
    for rt in [RecordType::A, RecordType::AAAA] {
        if let Ok(m) = ask(addr, name, rt, false).await {
            for r in m.answers.iter().filter(|r| r.name == *name) {
                match &r.data {
                    RData::A(a) => records.push(format!("A {}", a.0)),
                    RData::AAAA(a) => records.push(format!("AAAA {}", a.0)),
                    _ => continue,
                }
                ttl = ttl.max(r.ttl);
            }
        }
    }
    if records.is_empty() {
        Answer::NoData
    } else {
        Answer::Records { records, ttl }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostports() {
        assert_eq!(join_hostport("::1", 53), "[::1]:53");
        assert_eq!(join_hostport("ns1.example.com", 53), "ns1.example.com:53");
    }
}
