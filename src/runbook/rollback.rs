//! Rollback: the source back in service; the target left as it is.
//!
//! Before the target went live this is always safe: start the source's web server, switch its
//! maintenance mode off, and wait until it serves. After go-live, users may have written to the
//! target, and a sync client pointed back at the source would silently revert their edits and
//! delete their new files. So rollback first looks for changes on the target since go-live: every
//! user's files-root ETag (an ETag changes up the folder chain on every write), the highest file
//! id, and write requests in the target's access log. With a change it refuses and names the safe
//! way back: a migration in the other direction.

use super::steps::{roots, Roots};
use super::{Events, Journal, Step};
use crate::exit::Failure;
use crate::host::Probe;
use crate::migration::Migration;
use crate::web::WebProbe;
use std::time::{Duration, Instant};

/// What rollback found and did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RollbackReport {
    pub after_go_live: bool,
    pub changes: Vec<String>,
    pub source_serving: bool,
}

const WRITE_METHODS: [&str; 7] = [
    "\"PUT ",
    "\"MKCOL ",
    "\"DELETE ",
    "\"MOVE ",
    "\"COPY ",
    "\"PROPPATCH ",
    "\"POST /remote.php",
];

/// What changed on the target since go-live (empty when nothing did).
pub fn changes_since_live(
    m: &Migration,
    j: &Journal,
    tgt_user: &str,
) -> Result<Vec<String>, Failure> {
    let at_live: Roots = j
        .entry(Step::LiveCheck)
        .and_then(|e| e.figures.get("at_live"))
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    let now = roots(&m.target, tgt_user)?;
    let mut out = Vec::new();
    for (user, r) in &now.roots {
        match at_live.roots.get(user) {
            None => out.push(format!("user {user} was created on the target")),
            Some(before) if before.etag != r.etag => out.push(format!(
                "{user}'s files changed on the target (root ETag {} → {})",
                before.etag, r.etag
            )),
            _ => {}
        }
    }
    if now.max_fileid > at_live.max_fileid {
        out.push(format!(
            "{} new file cache entries on the target",
            now.max_fileid - at_live.max_fileid
        ));
    }
    // Write requests in the target's access log since go-live.
    if let Some(live) = j.marks.get("target_live") {
        let inv = crate::inventory::source_like_target(&m.target, tgt_user)?;
        let (access_log, _) = super::steps::web_logs(&inv);
        let r = m.target.probe(&Probe::ReadFrom(access_log, 0))?;
        let text = r.stdout_text();
        let writes = text
            .lines()
            .skip(1)
            .filter(|l| WRITE_METHODS.iter().any(|w| l.contains(w)))
            .filter(|l| access_log_time(l).is_some_and(|t| t >= *live))
            .count();
        if writes > 0 {
            out.push(format!(
                "{writes} write request(s) in the target's access log since go-live"
            ));
        }
    }
    Ok(out)
}

/// The time of a common/combined log line: `[25/Nov/2026:21:20:59 +0000]`.
pub(super) fn access_log_time(line: &str) -> Option<f64> {
    let s = &line[line.find('[')? + 1..];
    let s = &s[..s.find(']')?];
    let (date, zone) = s.split_once(' ')?;
    let mut it = date.split([':', '/']);
    let d: i64 = it.next()?.parse().ok()?;
    let name = it.next()?;
    let mon = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|x| *x == name)? as i64
        + 1;
    let y: i64 = it.next()?.parse().ok()?;
    let (hh, mm, ss): (i64, i64, i64) = (
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
    );
    let sign = if zone.starts_with('-') { -1 } else { 1 };
    let off =
        zone.get(1..3)?.parse::<i64>().ok()? * 3600 + zone.get(3..5)?.parse::<i64>().ok()? * 60;
    // Days from the civil date (proleptic Gregorian).
    let (y2, m2) = if mon <= 2 {
        (y - 1, mon + 9)
    } else {
        (y, mon - 3)
    };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * m2 + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some((days * 86400 + hh * 3600 + mm * 60 + ss - sign * off) as f64)
}

/// Put the source back in service.
pub fn rollback(
    m: &Migration,
    force_check_only: bool,
    ev: &mut dyn Events,
) -> Result<RollbackReport, Failure> {
    let state_dir = m.state_dir();
    let mut j = Journal::load(&state_dir)?.ok_or_else(|| {
        Failure::usage(format!(
            "no migration has started here (no journal in {})",
            state_dir.display()
        ))
        .hint("rollback undoes a `migrate` run of this migration file; the source was not touched")
    })?;
    let src = crate::inventory::source(&m.source, m.config.source.web_user.as_deref())?;
    let src_user = m
        .config
        .source
        .web_user
        .clone()
        .or(src.config_owner.clone())
        .unwrap_or_else(|| "www-data".into());
    let tgt_user = m
        .config
        .target
        .web_user
        .clone()
        .unwrap_or_else(|| src_user.clone());
    let after_live = j.marks.contains_key("target_live");
    let mut changes = Vec::new();
    if after_live {
        changes = changes_since_live(m, &j, &tgt_user)?;
        if !changes.is_empty() {
            return Err(Failure::check(format!(
                "the target has changed since it went live, and going back would lose that: {}",
                changes.join("; ")
            ))
            .hint(format!(
                "the safe way back is a migration in the other direction: ocmigrate init --source {} --target {} -o back.toml",
                m.config.target.side, m.config.source.side
            )));
        }
        if force_check_only {
            ev.warning(
                "the target went live, but nothing changed on it since: going back loses nothing",
            );
        }
    }
    if force_check_only {
        return Ok(RollbackReport {
            after_go_live: after_live,
            changes,
            source_serving: false,
        });
    }
    let start = m
        .config
        .source
        .start
        .clone()
        .unwrap_or_else(|| crate::cmd::init::service_commands(&src).1);
    ev.info(&format!(
        "starting the source's web server: {}",
        start.join("; ")
    ));
    let r = m.source.run_service_commands(&start)?;
    if !r.ok() {
        return Err(Failure::check(format!(
            "{}: `{}` failed: {}",
            m.source.label(),
            start.join("; "),
            r.stderr_text()
        )));
    }
    ev.info("switching the source's maintenance mode off");
    let r = m.source.set_maintenance(&src_user, false)?;
    if !r.ok() {
        return Err(Failure::check(format!(
            "{}: occ maintenance:mode --off failed: {}",
            m.source.label(),
            r.stderr_text()
        )));
    }
    let public_url = m
        .config
        .web
        .public_url
        .clone()
        .or_else(|| src.cfg_str("overwrite.cli.url").map(String::from))
        .unwrap_or_default();
    let addr = match (&m.config.source.address, &m.config.source.side) {
        (Some(a), _) => a.clone(),
        (None, crate::config::Side::Ssh { host, .. }) => host.clone(),
        (None, _) => "127.0.0.1".into(),
    };
    let web = WebProbe::new(&public_url, Some(&addr))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(s) = web.status() {
            if !s.maintenance {
                break;
            }
        }
        if Instant::now() > deadline {
            return Err(Failure::check(format!(
                "{}: the source does not serve out of maintenance a minute after rollback",
                web.label
            )));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    // The target is left as it is, but for the log probe of a target-up check that was cut
    // short (a run killed in its middle): that file is ocmigrate's, not the instance's.
    let probe = m.target.root().join(super::steps::PROBE_CONFIG);
    let r = m.target.run(&format!(
        "rm -f {}",
        crate::host::shell_quote(&probe.to_string_lossy())
    ))?;
    if !r.ok() {
        ev.warning(&format!(
            "could not remove {} on the target: {}",
            probe.display(),
            r.stderr_text()
        ));
    }
    // A new migrate run starts again from maintenance mode (the online copy stays done).
    j.entries.retain(|e| e.step < Step::MaintenanceOn);
    j.marks.retain(|k, _| k == "rolled_back");
    j.mark("rolled_back");
    j.save(&state_dir)?;
    if after_live && m.config.dns.mode != crate::config::DnsMode::None {
        ev.warning("the public name may point to the target: point it back to the source");
    }
    Ok(RollbackReport {
        after_go_live: after_live,
        changes,
        source_serving: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_log_times() {
        let l = r#"127.0.0.1 - admin [25/Nov/2026:21:20:59 +0000] "PUT /remote.php/dav/files/admin/a.txt HTTP/1.1" 201 0"#;
        assert_eq!(access_log_time(l), Some(1_795_641_659.0));
        let l2 = r#"1.2.3.4 - - [25/Nov/2026:22:20:59 +0100] "GET / HTTP/1.1" 200 1"#;
        assert_eq!(access_log_time(l2), Some(1_795_641_659.0));
        assert_eq!(access_log_time("garbage"), None);
    }
}
