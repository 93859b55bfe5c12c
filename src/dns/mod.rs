//! The DNS cut-over (runbook step 12): pointing the public name's CNAME from the source to the
//! target, and proving that every authoritative server answers the target.
//!
//! This module owns:
//! * [`check`]: what each authoritative server of the zone answers for the name now, its TTL,
//!   whether it already points at the target, and the long-TTL warning;
//! * [`switch`]: in mode `rfc2136` an RFC 2136 update signed with TSIG, as a compare-and-swap
//!   (it applies only while the CNAME still points at the source, so a record changed by someone
//!   else is never overwritten); in mode `manual` the exact change for the admin to make; then, in
//!   both, polling every authoritative server until it answers the target, within a timeout;
//! * TSIG key files ([`key`]), in knot's and BIND's formats. The secret is never printed.
//!
//! The API is synchronous (each call runs its own small tokio runtime); `*_async` variants exist
//! for callers already inside a runtime. Errors are [`Failure`]s with an exit kind and a hint.

pub mod key;
mod query;
mod update;
mod wire;

use crate::config::{parse_duration, DnsConfig, DnsMode};
use crate::exit::Failure;
use hickory_proto::rr::Name;
use key::TsigKey;
use serde::Serialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A TTL above this gets the "lower it ahead of the migration" warning.
pub const TTL_WARN_ABOVE: u32 = 300;
const DEFAULT_PROPAGATION_TIMEOUT: Duration = Duration::from_secs(600);
const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(2);

/// An authoritative server: how it is shown, and where it is asked.
#[derive(Debug, Clone, Serialize)]
pub struct Server {
    pub label: String,
    pub addr: SocketAddr,
}

/// What one server answers for the name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Answer {
    Cname {
        target: String,
        ttl: u32,
    },
    /// Address records instead of a CNAME.
    Records {
        records: Vec<String>,
        ttl: u32,
    },
    /// The name exists without a CNAME or address.
    NoData,
    NxDomain,
    /// An error code or a non-authoritative answer.
    Error {
        error: String,
    },
    Unreachable {
        error: String,
    },
}

impl Answer {
    pub fn cname(&self) -> Option<&str> {
        match self {
            Answer::Cname { target, .. } => Some(target),
            _ => None,
        }
    }
    pub fn ttl(&self) -> Option<u32> {
        match self {
            Answer::Cname { ttl, .. } | Answer::Records { ttl, .. } => Some(*ttl),
            _ => None,
        }
    }
    /// The same CNAME (names compared without case), or the same kind of non-CNAME answer.
    fn same_value(&self, other: &Answer) -> bool {
        match (self.cname(), other.cname()) {
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
            (None, None) => std::mem::discriminant(self) == std::mem::discriminant(other),
            _ => false,
        }
    }
    fn is(&self, name: &Name) -> bool {
        self.cname()
            .and_then(|c| Name::from_ascii(c).ok())
            .is_some_and(|c| c == *name)
    }
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Cname { target, ttl } => write!(f, "CNAME {target} (TTL {ttl} s)"),
            Answer::Records { records, ttl } => {
                write!(f, "{} (TTL {ttl} s, no CNAME)", records.join(", "))
            }
            Answer::NoData => write!(f, "no CNAME and no address"),
            Answer::NxDomain => write!(f, "NXDOMAIN (the name does not exist)"),
            Answer::Error { error } => write!(f, "{error}"),
            Answer::Unreachable { error } => write!(f, "unreachable: {error}"),
        }
    }
}

/// One server's answer.
#[derive(Debug, Clone, Serialize)]
pub struct ServerAnswer {
    pub server: String,
    pub address: SocketAddr,
    pub answer: Answer,
}

/// Where the name stands, taken over all authoritative servers that answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DnsState {
    /// Every server answers the target.
    AtTarget,
    /// Every server answers the same CNAME, the source (or, with no source configured, anything
    /// but the target): ready to switch.
    AtSource,
    /// Every server answers a CNAME that is neither the configured source nor the target.
    Elsewhere,
    /// The servers disagree (a change is propagating, or a secondary is stale).
    Mixed,
    /// The name is not a CNAME (missing, or address records).
    NotCname,
}

/// The result of [`check`].
#[derive(Debug, Clone, Serialize)]
pub struct DnsStatus {
    pub name: String,
    pub zone: String,
    pub target: String,
    /// `[dns] source`, when configured.
    pub source: Option<String>,
    /// The configured server, which takes the update.
    pub primary: Option<String>,
    pub servers: Vec<ServerAnswer>,
    /// The CNAME the primary (else the first answering server) gives.
    pub current: Option<String>,
    pub state: DnsState,
    /// The longest TTL seen.
    pub ttl: Option<u32>,
    pub ttl_warning: Option<String>,
    /// Servers that did not answer, NS names that could not be resolved...
    pub warnings: Vec<String>,
}

impl DnsStatus {
    /// Whether a server could not be asked.
    pub fn any_unreachable(&self) -> bool {
        self.servers
            .iter()
            .any(|s| matches!(s.answer, Answer::Unreachable { .. }))
    }
}

/// What [`switch`] reports as it goes (for progress output and the journal).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The authoritative servers that will be asked.
    Servers {
        zone: String,
        servers: Vec<String>,
    },
    /// A server's answer before the change.
    Current {
        server: String,
        answer: Answer,
    },
    Warning {
        message: String,
    },
    /// Nothing to change: the primary already answers the target.
    AlreadyAtTarget {
        name: String,
        target: String,
    },
    /// The signed update is being sent.
    Updating {
        server: String,
        name: String,
        from: String,
        to: String,
        ttl: u32,
    },
    /// The primary accepted it.
    Updated {
        server: String,
        elapsed_ms: u64,
    },
    /// Manual mode: the change for the admin to make (`instructions` is ready to print).
    ManualChange {
        zone: String,
        name: String,
        from: Option<String>,
        to: String,
        ttl: u32,
        instructions: String,
    },
    /// Still waiting for these servers.
    Waiting {
        pending: Vec<String>,
        elapsed_ms: u64,
        timeout_ms: u64,
    },
    /// A server answers something that is neither the old value nor the target.
    Unexpected {
        server: String,
        answer: Answer,
    },
    /// A server now answers the target.
    Propagated {
        server: String,
        elapsed_ms: u64,
    },
}

/// The result of [`switch`].
#[derive(Debug, Clone, Serialize)]
pub struct SwitchReport {
    pub mode: &'static str,
    pub name: String,
    pub zone: String,
    /// What the name pointed to before (None when it already pointed at the target).
    pub from: Option<String>,
    pub to: String,
    pub ttl: Option<u32>,
    /// ocmigrate sent the update and the primary accepted it.
    pub updated: bool,
    /// The name already pointed at the target; nothing was sent.
    pub already: bool,
    pub servers: Vec<String>,
    /// Time from sending the update to its acceptance.
    pub update_ms: Option<u64>,
    /// Time from the change (or from the start of waiting, in manual mode) until every
    /// authoritative server answered the target.
    pub propagation_ms: u64,
    pub total_ms: u64,
    pub ttl_warning: Option<String>,
}

/// The `[dns]` section, checked and parsed.
struct Settings {
    mode: DnsMode,
    name: Name,
    target: Name,
    source: Option<Name>,
    zone: Option<Name>,
    server: Option<String>,
    servers: Vec<String>,
    key: Option<(TsigKey, PathBuf)>,
    propagation_timeout: Duration,
    poll_interval: Duration,
}

fn fqdn(value: &str, key: &str) -> Result<Name, Failure> {
    let mut n = Name::from_ascii(value.trim()).map_err(|e| {
        Failure::usage(format!("[dns] {key} {value:?} is not a DNS name: {e}"))
            .hint("write it as a full name, e.g. \"cloud.example.com.\"")
    })?;
    n.set_fqdn(true);
    Ok(n)
}

fn settings(cfg: &DnsConfig, load_key: bool) -> Result<Settings, Failure> {
    let need = |v: &Option<String>, key: &str| {
        v.clone().ok_or_else(|| {
            Failure::usage(format!("[dns] {key} is missing"))
                .hint("the [dns] section needs name and target, e.g. name = \"cloud.example.com.\", target = \"new.example.com.\"")
        })
    };
    let name = fqdn(&need(&cfg.name, "name")?, "name")?;
    let target = fqdn(&need(&cfg.target, "target")?, "target")?;
    let source = cfg
        .source
        .as_deref()
        .map(|s| fqdn(s, "source"))
        .transpose()?;
    let zone = cfg.zone.as_deref().map(|s| fqdn(s, "zone")).transpose()?;
    if let Some(z) = &zone {
        if !z.zone_of(&name) {
            return Err(
                Failure::usage(format!("[dns] name {name} is not inside zone {z}"))
                    .hint("[dns] zone must be the zone that holds the name, e.g. \"example.com.\" for \"cloud.example.com.\""),
            );
        }
    }
    if source.as_ref() == Some(&target) {
        return Err(Failure::usage(format!(
            "[dns] source and target are the same name ({target})"
        ))
        .hint("source is what the name points to before the migration, target what it points to after"));
    }
    let dur = |v: &Option<String>, key: &str, default: Duration| -> Result<Duration, Failure> {
        match v {
            None => Ok(default),
            Some(s) => parse_duration(s).map_err(|e| {
                Failure::usage(format!("[dns] {key}: {e}")).hint("e.g. \"10m\" or \"90s\"")
            }),
        }
    };
    let propagation_timeout = dur(
        &cfg.propagation_timeout,
        "propagation_timeout",
        DEFAULT_PROPAGATION_TIMEOUT,
    )?;
    let poll_interval = dur(&cfg.poll_interval, "poll_interval", DEFAULT_POLL_INTERVAL)?
        .max(Duration::from_millis(50));
    let key = if load_key {
        let path = cfg.tsig_key_file.clone().ok_or_else(|| {
            Failure::usage("[dns] tsig_key_file is missing (updates are signed with TSIG)").hint(
                "point it to a key file written by `keymgr -t NAME hmac-sha256` or `tsig-keygen -a hmac-sha256 NAME`",
            )
        })?;
        Some((TsigKey::load(&path)?, path))
    } else {
        None
    };
    Ok(Settings {
        mode: cfg.mode,
        name,
        target,
        source,
        zone,
        server: cfg.server.clone(),
        servers: cfg.servers.clone().unwrap_or_default(),
        key,
        propagation_timeout,
        poll_interval,
    })
}

/// A response code as DNS tools print it (NXRRSET, NOTAUTH, ...).
pub(crate) fn rcode_name(rc: hickory_proto::op::ResponseCode) -> String {
    use hickory_proto::op::ResponseCode as R;
    match rc {
        R::NoError => "NOERROR".into(),
        R::FormErr => "FORMERR".into(),
        R::ServFail => "SERVFAIL".into(),
        R::NXDomain => "NXDOMAIN".into(),
        R::NotImp => "NOTIMP".into(),
        R::Refused => "REFUSED".into(),
        R::YXDomain => "YXDOMAIN".into(),
        R::YXRRSet => "YXRRSET".into(),
        R::NXRRSet => "NXRRSET".into(),
        R::NotAuth => "NOTAUTH".into(),
        R::NotZone => "NOTZONE".into(),
        other => format!("{other:?}").to_uppercase(),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::check(format!("cannot start the DNS client: {e}")))
}

fn ms(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}

/// The long-TTL warning, when the TTL deserves one.
pub fn ttl_warning(name: &str, ttl: u32) -> Option<String> {
    (ttl > TTL_WARN_ABOVE).then(|| {
        format!(
            "the TTL of {name} is {ttl} s (over {TTL_WARN_ABOVE} s): resolvers may keep answering the old address for up to {ttl} s after the switch. \
             Lower it to {TTL_WARN_ABOVE} s or less at least {ttl} s (one old TTL) before the migration, so that every cache has dropped the long TTL when the CNAME changes"
        )
    })
}

/// Ask every authoritative server what the name is now. Read-only.
pub fn check(cfg: &DnsConfig) -> Result<DnsStatus, Failure> {
    runtime()?.block_on(check_async(cfg))
}

/// [`check`] for callers inside a tokio runtime.
pub async fn check_async(cfg: &DnsConfig) -> Result<DnsStatus, Failure> {
    let s = settings(cfg, false)?;
    let (status, _) = status(&s).await?;
    Ok(status)
}

async fn answers(servers: &[Server], name: &Name) -> Vec<ServerAnswer> {
    let mut set = tokio::task::JoinSet::new();
    for (i, srv) in servers.iter().enumerate() {
        let (addr, name) = (srv.addr, name.clone());
        set.spawn(async move { (i, query::answer_at(addr, &name).await) });
    }
    let mut got: Vec<Option<Answer>> = vec![None; servers.len()];
    while let Some(r) = set.join_next().await {
        if let Ok((i, a)) = r {
            got[i] = Some(a);
        }
    }
    servers
        .iter()
        .zip(got)
        .map(|(srv, a)| ServerAnswer {
            server: srv.label.clone(),
            address: srv.addr,
            answer: a.unwrap_or(Answer::Error {
                error: "the question failed".into(),
            }),
        })
        .collect()
}

async fn status(s: &Settings) -> Result<(DnsStatus, query::Authority), Failure> {
    let auth = query::discover(s).await?;
    let servers = answers(&auth.servers, &s.name).await;
    let mut warnings = auth.warnings.clone();
    let answered: Vec<&ServerAnswer> = servers
        .iter()
        .filter(|a| !matches!(a.answer, Answer::Unreachable { .. }))
        .collect();
    for a in servers
        .iter()
        .filter(|a| matches!(a.answer, Answer::Unreachable { .. }))
    {
        warnings.push(format!("{} did not answer: {}", a.server, a.answer));
    }
    if answered.is_empty() {
        return Err(Failure::unreachable(format!(
            "no authoritative server of {} answered: {}",
            auth.zone,
            servers
                .iter()
                .map(|a| format!("{}: {}", a.server, a.answer))
                .collect::<Vec<_>>()
                .join("; ")
        ))
        .hint(
            "check [dns] server, and that the DNS servers run and are reachable from this machine",
        ));
    }
    // The primary's answer counts first: it is where the update goes.
    let current = answered
        .iter()
        .find(|a| auth.primary.as_ref().is_some_and(|p| p.addr == a.address))
        .or(answered.first())
        .map(|a| a.answer.clone())
        .expect("answered is not empty");
    let all_same = answered.iter().all(|a| a.answer.cname() == current.cname());
    let state = if current.cname().is_none() || answered.iter().any(|a| a.answer.cname().is_none())
    {
        if answered.iter().all(|a| a.answer.cname().is_none()) {
            DnsState::NotCname
        } else {
            DnsState::Mixed
        }
    } else if !all_same {
        DnsState::Mixed
    } else if current.is(&s.target) {
        DnsState::AtTarget
    } else if s.source.as_ref().is_none_or(|src| current.is(src)) {
        DnsState::AtSource
    } else {
        DnsState::Elsewhere
    };
    let ttl = answered.iter().filter_map(|a| a.answer.ttl()).max();
    let name = s.name.to_ascii();
    let status = DnsStatus {
        ttl_warning: ttl.and_then(|t| ttl_warning(&name, t)),
        name,
        zone: auth.zone.to_ascii(),
        target: s.target.to_ascii(),
        source: s.source.as_ref().map(|n| n.to_ascii()),
        primary: auth.primary.as_ref().map(|p| p.label.clone()),
        current: current.cname().map(str::to_string),
        state,
        ttl,
        servers,
        warnings,
    };
    Ok((status, auth))
}

/// Point the name at the target (mode `rfc2136`: a signed compare-and-swap; mode `manual`: print
/// the change and wait for it), then wait until every authoritative server answers the target.
///
/// Safe to repeat: when the primary already answers the target nothing is sent, and only the
/// propagation is checked.
pub fn switch(cfg: &DnsConfig, on_event: &mut impl FnMut(Event)) -> Result<SwitchReport, Failure> {
    runtime()?.block_on(switch_async(cfg, on_event))
}

/// [`switch`] for callers inside a tokio runtime.
pub async fn switch_async(
    cfg: &DnsConfig,
    on_event: &mut impl FnMut(Event),
) -> Result<SwitchReport, Failure> {
    let start = Instant::now();
    if cfg.mode == DnsMode::None {
        return Err(Failure::usage(
            "[dns] mode is \"none\": ocmigrate does not change DNS",
        )
        .hint("set mode = \"rfc2136\" (signed dynamic update) or \"manual\" (ocmigrate prints the change and waits for it) in [dns]"));
    }
    let s = settings(cfg, cfg.mode == DnsMode::Rfc2136)?;
    let (status, auth) = status(&s).await?;
    on_event(Event::Servers {
        zone: status.zone.clone(),
        servers: auth.servers.iter().map(|s| s.label.clone()).collect(),
    });
    for a in &status.servers {
        on_event(Event::Current {
            server: a.server.clone(),
            answer: a.answer.clone(),
        });
    }
    for w in &status.warnings {
        on_event(Event::Warning { message: w.clone() });
    }
    if let Some(w) = &status.ttl_warning {
        on_event(Event::Warning { message: w.clone() });
    }
    if let Some((_, path)) = &s.key {
        if let Some(w) = key::readable_by_others(path) {
            on_event(Event::Warning { message: w });
        }
    }
    let name_s = s.name.to_ascii();
    let target_s = s.target.to_ascii();

    // The value at the primary (else the first answering server) is what the update swaps.
    let primary_answer = status
        .servers
        .iter()
        .find(|a| auth.primary.as_ref().is_some_and(|p| p.addr == a.address))
        .or_else(|| {
            status
                .servers
                .iter()
                .find(|a| !matches!(a.answer, Answer::Unreachable { .. }))
        })
        .map(|a| (a.server.clone(), a.answer.clone()))
        .expect("status has an answering server");
    if let Answer::Unreachable { error } = &primary_answer.1 {
        return Err(Failure::unreachable(format!(
            "the primary {} did not answer: {error}",
            primary_answer.0
        ))
        .hint("check [dns] server and that the DNS server runs"));
    }
    let already = primary_answer.1.is(&s.target);
    let ttl = primary_answer.1.ttl();
    let mut from: Option<Name> = None;
    let mut updated = false;
    let mut update_ms = None;
    let mut changed_at = Instant::now();

    if already {
        on_event(Event::AlreadyAtTarget {
            name: name_s.clone(),
            target: target_s.clone(),
        });
    } else {
        let read = primary_answer
            .1
            .cname()
            .map(|c| fqdn(c, "current answer"))
            .transpose()?;
        if let (Some(src), Some(read)) = (&s.source, &read) {
            if read != src {
                on_event(Event::Warning {
                    message: format!(
                        "{name_s} points to {read} at {}, not to the source {src} ([dns] source)",
                        primary_answer.0
                    ),
                });
            }
        }
        // The prerequisite of the swap: [dns] source when configured (the server judges it),
        // else what was just read. Manual mode shows what is there now.
        let current = match s.mode {
            DnsMode::Manual => read.clone(),
            _ => s.source.clone().or(read.clone()),
        };
        if current.is_none() && s.mode == DnsMode::Rfc2136 {
            return Err(Failure::check(format!(
                "{name_s} is not a CNAME at {} (it answers {}); nothing was changed",
                primary_answer.0, primary_answer.1
            ))
            .hint("ocmigrate swaps a CNAME from the source to the target: make the name a CNAME of the source first, or use mode = \"manual\""));
        }
        let ttl = ttl.unwrap_or(300);
        match s.mode {
            DnsMode::Rfc2136 => {
                let (key, key_file) = s.key.as_ref().expect("rfc2136 loads the key");
                let current = current
                    .as_ref()
                    .expect("rfc2136 needs a CNAME, checked above");
                let primary = auth.primary.as_ref().ok_or_else(|| {
                    Failure::usage("[dns] server is missing (needed for mode \"rfc2136\")")
                        .hint("set it to the zone's primary server, e.g. \"ns1.example.com:53\"")
                })?;
                on_event(Event::Updating {
                    server: primary.label.clone(),
                    name: name_s.clone(),
                    from: current.to_ascii(),
                    to: target_s.clone(),
                    ttl,
                });
                let t0 = Instant::now();
                let u = update::Update {
                    server: primary,
                    zone: &auth.zone,
                    name: &s.name,
                    from: current,
                    to: &s.target,
                    ttl,
                    key,
                    key_file,
                };
                match update::compare_and_swap(&u).await {
                    Ok(()) => {}
                    Err(update::Rejection::Failure(f)) => return Err(f),
                    Err(update::Rejection::Prerequisite(rc)) => {
                        // Either someone changed the record since we read it, or an earlier
                        // try of this very update was applied and its answer lost.
                        let now = query::answer_at(primary.addr, &s.name).await;
                        if !now.is(&s.target) {
                            return Err(Failure::check(format!(
                                "prerequisite failed ({}): {name_s} does not point to {current} at {} (it answers {now}): \
                                 someone changed the record; nothing was changed",
                                rcode_name(rc),
                                primary.label
                            ))
                            .hint("run `ocmigrate dns check` to see the record, find out who changed it, then run the switch again"));
                        }
                        on_event(Event::Warning {
                            message: format!(
                                "the prerequisite failed ({}) but {name_s} already points to {target_s} at {}: the change was made (by an earlier try, or by someone else)",
                                rcode_name(rc),
                                primary.label
                            ),
                        });
                    }
                }
                update_ms = Some(ms(t0.elapsed()));
                on_event(Event::Updated {
                    server: primary.label.clone(),
                    elapsed_ms: ms(t0.elapsed()),
                });
                updated = true;
            }
            DnsMode::Manual => {
                let from_txt = primary_answer.1.cname().map(str::to_string);
                on_event(Event::ManualChange {
                    zone: auth.zone.to_ascii(),
                    name: name_s.clone(),
                    from: from_txt.clone(),
                    to: target_s.clone(),
                    ttl,
                    instructions: manual_instructions(
                        &auth.zone.to_ascii(),
                        &name_s,
                        from_txt.as_deref(),
                        &primary_answer.1,
                        &target_s,
                        ttl,
                    ),
                });
            }
            DnsMode::None => unreachable!("checked above"),
        }
        changed_at = Instant::now();
        from = current;
    }

    wait_for_target(&s, &auth.servers, &primary_answer.1, on_event).await?;
    Ok(SwitchReport {
        mode: match s.mode {
            DnsMode::Rfc2136 => "rfc2136",
            DnsMode::Manual => "manual",
            DnsMode::None => "none",
        },
        name: name_s,
        zone: auth.zone.to_ascii(),
        from: from.map(|f| f.to_ascii()),
        to: target_s,
        ttl,
        updated,
        already,
        servers: auth.servers.iter().map(|s| s.label.clone()).collect(),
        update_ms,
        propagation_ms: ms(changed_at.elapsed()),
        total_ms: ms(start.elapsed()),
        ttl_warning: status.ttl_warning,
    })
}

/// The text for manual mode: the record change as a zone-file line and as an nsupdate script.
pub fn manual_instructions(
    zone: &str,
    name: &str,
    from: Option<&str>,
    current: &Answer,
    to: &str,
    ttl: u32,
) -> String {
    let mut t = format!("In zone {zone}, make this change at your DNS provider:\n");
    match from {
        Some(f) => t.push_str(&format!("  before:  {name} {ttl} IN CNAME {f}\n")),
        None => t.push_str(&format!("  before:  {name} {current}\n")),
    }
    t.push_str(&format!("  after:   {name} {ttl} IN CNAME {to}\n"));
    t.push_str("or, with nsupdate on the zone's primary:\n");
    t.push_str(&format!("  zone {zone}\n"));
    if let Some(f) = from {
        t.push_str(&format!("  prereq yxrrset {name} CNAME {f}\n"));
        t.push_str(&format!("  update delete {name} CNAME\n"));
    } else {
        t.push_str(&format!("  update delete {name}\n"));
    }
    t.push_str(&format!("  update add {name} {ttl} CNAME {to}\n  send"));
    t
}

/// Poll every server until it answers the target, or fail after the propagation timeout.
async fn wait_for_target(
    s: &Settings,
    servers: &[Server],
    old: &Answer,
    on_event: &mut impl FnMut(Event),
) -> Result<(), Failure> {
    let start = Instant::now();
    let mut pending: Vec<Server> = servers.to_vec();
    let mut last: Vec<(String, Answer)> = Vec::new();
    let mut reported_unexpected: Vec<(String, Answer)> = Vec::new();
    loop {
        let got = answers(&pending, &s.name).await;
        last.clear();
        let mut still = Vec::new();
        for (srv, a) in pending.iter().zip(got) {
            if a.answer.is(&s.target) {
                on_event(Event::Propagated {
                    server: srv.label.clone(),
                    elapsed_ms: ms(start.elapsed()),
                });
            } else {
                let expected_old =
                    a.answer.same_value(old) || matches!(a.answer, Answer::Unreachable { .. });
                let seen = (srv.label.clone(), a.answer.clone());
                if !expected_old && !reported_unexpected.contains(&seen) {
                    on_event(Event::Unexpected {
                        server: srv.label.clone(),
                        answer: a.answer.clone(),
                    });
                    reported_unexpected.push(seen);
                }
                last.push((srv.label.clone(), a.answer));
                still.push(srv.clone());
            }
        }
        pending = still;
        if pending.is_empty() {
            return Ok(());
        }
        let elapsed = start.elapsed();
        if elapsed >= s.propagation_timeout {
            let list = last
                .iter()
                .map(|(srv, a)| format!("{srv}: {a}"))
                .collect::<Vec<_>>()
                .join("; ");
            let msg = format!(
                "timed out after {} s: {} of {} authoritative servers still do not answer {}: {list}",
                elapsed.as_secs(),
                pending.len(),
                servers.len(),
                s.target
            );
            let hint = if s.mode == DnsMode::Manual {
                "make the change shown above at your DNS provider, then run `ocmigrate dns switch` again (it waits again); raise [dns] propagation_timeout to wait longer"
            } else {
                "the primary took the update; a secondary that lags usually misses NOTIFY or zone transfers from the primary. \
                 Run `ocmigrate dns check` to see each server; `ocmigrate dns switch` again only waits (it is safe to repeat); raise [dns] propagation_timeout to wait longer"
            };
            // Exit 3 either way: the change did not reach these servers in time.
            return Err(Failure::unreachable(msg).hint(hint));
        }
        on_event(Event::Waiting {
            pending: pending.iter().map(|p| p.label.clone()).collect(),
            elapsed_ms: ms(elapsed),
            timeout_ms: ms(s.propagation_timeout),
        });
        let left = s.propagation_timeout.saturating_sub(start.elapsed());
        tokio::time::sleep(s.poll_interval.min(left).max(Duration::from_millis(10))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> DnsConfig {
        DnsConfig {
            mode: DnsMode::Manual,
            name: Some("cloud.example.test".into()),
            target: Some("new.example.test.".into()),
            zone: Some("example.test.".into()),
            ..DnsConfig::default()
        }
    }

    #[test]
    fn settings_make_names_fully_qualified() {
        let s = settings(&cfg(), false).unwrap();
        assert_eq!(s.name.to_ascii(), "cloud.example.test.");
        assert_eq!(s.propagation_timeout, DEFAULT_PROPAGATION_TIMEOUT);
        assert_eq!(s.poll_interval, DEFAULT_POLL_INTERVAL);
    }

    #[test]
    fn name_outside_zone_is_a_usage_error() {
        let mut c = cfg();
        c.zone = Some("example.org.".into());
        let e = settings(&c, false).err().unwrap();
        assert_eq!(e.kind, crate::exit::ExitKind::Usage);
        assert!(e.message.contains("not inside zone"), "{}", e.message);
    }

    #[test]
    fn missing_key_file_is_a_usage_error() {
        let mut c = cfg();
        c.mode = DnsMode::Rfc2136;
        c.tsig_key_file = Some("/nonexistent/tsig.key".into());
        let e = settings(&c, true).err().unwrap();
        assert_eq!(e.kind, crate::exit::ExitKind::Usage);
        assert!(e.message.contains("/nonexistent/tsig.key"), "{}", e.message);
    }

    #[test]
    fn mode_none_refuses_to_switch() {
        let mut c = cfg();
        c.mode = DnsMode::None;
        let e = switch(&c, &mut |_| {}).unwrap_err();
        assert_eq!(e.kind, crate::exit::ExitKind::Usage);
    }

    #[test]
    fn ttl_warning_only_over_300() {
        assert!(ttl_warning("cloud.example.test.", 300).is_none());
        let w = ttl_warning("cloud.example.test.", 3600).unwrap();
        assert!(w.contains("3600 s") && w.contains("Lower it"), "{w}");
    }

    #[test]
    fn manual_instructions_name_the_exact_change() {
        let t = manual_instructions(
            "example.test.",
            "cloud.example.test.",
            Some("old.example.test."),
            &Answer::NoData,
            "new.example.test.",
            60,
        );
        assert!(
            t.contains("cloud.example.test. 60 IN CNAME old.example.test."),
            "{t}"
        );
        assert!(
            t.contains("cloud.example.test. 60 IN CNAME new.example.test."),
            "{t}"
        );
        assert!(
            t.contains("update add cloud.example.test. 60 CNAME new.example.test."),
            "{t}"
        );
    }
}
