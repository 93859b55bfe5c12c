//! `ocmigrate dns check|switch`: the CNAME step on its own (runbook step 12), from the `[dns]`
//! section of the migration file. The work is in `crate::dns`.

use crate::cli::FileArgs;
use crate::config::{Config, DnsMode};
use crate::dns::{self, DnsState, Event};
use crate::exit::{ExitKind, Failure, HELP_FOOTER};
use std::io::{BufRead, IsTerminal, Write};
use std::time::{Duration, Instant};

const EXAMPLE: &str = "Example:
  # ocmigrate.toml
  [dns]
  mode = \"rfc2136\"                      # or \"manual\": print the change, wait for it
  server = \"ns1.example.com:53\"         # the zone's primary (takes the update)
  zone = \"example.com.\"
  name = \"cloud.example.com.\"
  source = \"old.example.com.\"           # optional: what it must point to before
  target = \"new.example.com.\"
  tsig_key_file = \"/etc/ocmigrate/tsig.key\"  # keymgr -t NAME hmac-sha256, or tsig-keygen
  propagation_timeout = \"10m\"

  ocmigrate dns check                   # each authoritative server's answer and TTL
  ocmigrate dns switch                  # asks, updates, waits for every server
  ocmigrate dns switch --yes --json     # for scripts: one JSON event a line";

/// The CNAME step on its own: check where the public name points, or switch it to the target.
#[derive(Debug, clap::Args)]
#[command(after_help = format!("{EXAMPLE}\n\n{HELP_FOOTER}"))]
pub struct DnsArgs {
    #[command(subcommand)]
    pub action: DnsAction,
}

#[derive(Debug, clap::Subcommand)]
pub enum DnsAction {
    /// Ask every authoritative server what the name points to now, and its TTL (read-only).
    #[command(
        long_about = "Ask every authoritative server of the zone (from its NS records, or [dns] servers) what the \
                      name points to now, and with which TTL. Read-only. Warns when the TTL is over 300 s: lower it \
                      one old TTL ahead of the migration.\n\nExit 0 when all servers agree on the source or the \
                      target, 1 when they disagree or the name is not the expected CNAME, 3 when a server does not answer.",
        after_help = format!("{EXAMPLE}\n\n{HELP_FOOTER}")
    )]
    Check(CheckArgs),
    /// Point the name at the target (signed RFC 2136 update, or a manual change) and wait until
    /// every authoritative server answers it.
    #[command(
        long_about = "Point the name at the target, then wait until every authoritative server answers it.\n\n\
                      mode = \"rfc2136\": one update signed with TSIG, as a compare-and-swap: it applies only while \
                      the CNAME still points at the source (or at what `check` saw), so a record changed by someone \
                      else is never overwritten. mode = \"manual\": prints the exact change to make, then waits for it.\n\n\
                      Asks for confirmation on a terminal; --yes answers it (required without a terminal). Safe to \
                      run again: when the name already points at the target, only the propagation is checked.",
        after_help = format!("{EXAMPLE}\n\n{HELP_FOOTER}")
    )]
    Switch(SwitchArgs),
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// One JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct SwitchArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// Change DNS without asking.
    #[arg(long)]
    pub yes: bool,
    /// One JSON event a line instead of text; the last line is the report.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: DnsArgs) -> anyhow::Result<ExitKind> {
    match args.action {
        DnsAction::Check(a) => check(a),
        DnsAction::Switch(a) => switch(a),
    }
}

fn load(file: &FileArgs) -> Result<Config, Failure> {
    let cfg = Config::load(&file.config)?;
    if cfg.dns.mode == DnsMode::None && cfg.dns.name.is_none() {
        return Err(Failure::usage(format!(
            "{}: the [dns] section is not set (mode = \"none\")",
            file.config.display()
        ))
        .hint("add a [dns] section with name, target, and mode = \"rfc2136\" or \"manual\" (see `ocmigrate dns --help`)"));
    }
    Ok(cfg)
}

fn state_text(st: &dns::DnsStatus) -> String {
    let cur = st.current.as_deref().unwrap_or("(no CNAME)");
    match st.state {
        DnsState::AtTarget => format!("points at the target {}: switched", st.target),
        DnsState::AtSource => format!(
            "points at {cur}, not yet at the target {}: ready to switch",
            st.target
        ),
        DnsState::Elsewhere => format!(
            "points at {cur}, which is neither the source {} nor the target {}",
            st.source.as_deref().unwrap_or("?"),
            st.target
        ),
        DnsState::Mixed => {
            "the authoritative servers disagree (a change is propagating, or a secondary is stale)"
                .into()
        }
        DnsState::NotCname => format!("{} is not a CNAME", st.name),
    }
}

fn check(args: CheckArgs) -> anyhow::Result<ExitKind> {
    let cfg = load(&args.file)?;
    let st = dns::check(&cfg.dns)?;
    let kind = if st.any_unreachable() {
        ExitKind::Unreachable
    } else {
        match st.state {
            DnsState::AtTarget | DnsState::AtSource => ExitKind::Ok,
            _ => ExitKind::CheckFailed,
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&st)?);
        return Ok(kind);
    }
    println!("{} in zone {}", st.name, st.zone);
    let width = st.servers.iter().map(|s| s.server.len()).max().unwrap_or(0);
    for s in &st.servers {
        println!("  {:<width$}  {}", s.server, s.answer);
    }
    if let Some(ttl) = st.ttl {
        println!("TTL: {ttl} s");
    }
    println!("State: {}", state_text(&st));
    for w in &st.warnings {
        eprintln!("warning: {w}");
    }
    if let Some(w) = &st.ttl_warning {
        eprintln!("warning: {w}");
    }
    Ok(kind)
}

fn confirm(question: &str) -> Result<bool, Failure> {
    let mut err = std::io::stderr();
    let _ = write!(err, "{question} [y/N] ");
    let _ = err.flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Failure::usage(format!("cannot read the answer: {e}")))?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "Yes" | "YES"))
}

fn switch(args: SwitchArgs) -> anyhow::Result<ExitKind> {
    let cfg = load(&args.file)?;
    let mut dns_cfg = cfg.dns.clone();
    if dns_cfg.mode == DnsMode::Rfc2136 && !args.yes {
        if !std::io::stdin().is_terminal() {
            return Err(Failure::usage(
                "refusing to change DNS without a confirmation: there is no terminal to ask on",
            )
            .hint("run `ocmigrate dns switch --yes` to confirm on the command line (check first with `ocmigrate dns check`)")
            .into());
        }
        // Show what would change, ask, and hold the switch to exactly what was shown.
        let st = dns::check(&dns_cfg)?;
        println!("{} in zone {}", st.name, st.zone);
        for s in &st.servers {
            println!("  {}  {}", s.server, s.answer);
        }
        if let Some(w) = &st.ttl_warning {
            eprintln!("warning: {w}");
        }
        if st.state != DnsState::AtTarget {
            let from = st.current.clone().unwrap_or_else(|| "(no CNAME)".into());
            let q = format!(
                "Change {} from CNAME {from} to CNAME {} at {}?",
                st.name,
                st.target,
                st.primary.as_deref().unwrap_or("the primary")
            );
            if !confirm(&q)? {
                eprintln!("Nothing changed.");
                return Ok(ExitKind::CheckFailed);
            }
            if dns_cfg.source.is_none() {
                dns_cfg.source = st.current.clone();
            }
        }
    }
    let json = args.json;
    let mut printer = Printer::new(json);
    let report = dns::switch(&dns_cfg, &mut |e| printer.event(e))?;
    if json {
        let mut v = serde_json::to_value(&report)?;
        v["event"] = "report".into();
        println!("{}", serde_json::to_string(&v)?);
    } else {
        let secs = |ms: u64| format!("{:.1} s", ms as f64 / 1000.0);
        if report.already {
            println!(
                "Done: {} already pointed at {}; all {} authoritative server(s) answer it ({}).",
                report.name,
                report.to,
                report.servers.len(),
                secs(report.total_ms)
            );
        } else {
            println!(
                "Done: {} now points at {} on all {} authoritative server(s){}; propagation {}, total {}.",
                report.name,
                report.to,
                report.servers.len(),
                report
                    .update_ms
                    .map(|u| format!(" (update accepted in {} ms)", u))
                    .unwrap_or_default(),
                secs(report.propagation_ms),
                secs(report.total_ms)
            );
        }
        if let Some(ttl) = report.ttl {
            println!("Resolvers that cached the old answer may keep it for up to {ttl} s more.");
        }
    }
    Ok(ExitKind::Ok)
}

/// Turns switch events into lines: JSON, or text (the waiting line at most every 10 s in both).
struct Printer {
    json: bool,
    last_wait: Option<Instant>,
}

impl Printer {
    fn new(json: bool) -> Self {
        Printer {
            json,
            last_wait: None,
        }
    }

    fn event(&mut self, e: Event) {
        if let Event::Waiting { .. } = e {
            // Every poll emits one; a line every 10 s is enough, in text and in JSON.
            if self
                .last_wait
                .is_some_and(|t| t.elapsed() < Duration::from_secs(10))
            {
                return;
            }
            self.last_wait = Some(Instant::now());
        }
        if self.json {
            if let Ok(line) = serde_json::to_string(&e) {
                println!("{line}");
            }
            return;
        }
        match e {
            Event::Servers { zone, servers } => {
                println!("Zone {zone}, authoritative servers: {}", servers.join(", "))
            }
            Event::Current { server, answer } => println!("  {server}: {answer}"),
            Event::Warning { message } => eprintln!("warning: {message}"),
            Event::AlreadyAtTarget { name, target } => {
                println!("{name} already points at {target}: nothing to change.")
            }
            Event::Updating {
                server,
                name,
                from,
                to,
                ttl,
            } => println!(
                "Updating {name} at {server}: CNAME {from} -> {to} (TTL {ttl} s, signed, only if it still points at {from})"
            ),
            Event::Updated { server, elapsed_ms } => {
                println!("{server} accepted the update ({elapsed_ms} ms).")
            }
            Event::ManualChange { instructions, .. } => {
                println!("{instructions}");
                println!("Waiting for every authoritative server to answer the new record...");
            }
            Event::Waiting {
                pending,
                elapsed_ms,
                timeout_ms,
            } => println!(
                "  waiting for {} ({} s of {} s)",
                pending.join(", "),
                elapsed_ms / 1000,
                timeout_ms / 1000
            ),
            Event::Unexpected { server, answer } => {
                eprintln!("warning: {server} answers {answer}, which is not the target")
            }
            Event::Propagated { server, elapsed_ms } => {
                println!("  {server} answers the target ({elapsed_ms} ms)")
            }
        }
    }
}
