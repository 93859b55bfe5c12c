//! The report: Markdown for people and JSON for scripts, written into the state folder from the
//! journal (so it never holds a secret: the journal holds none).

use super::journal::{Journal, State, Step};
use crate::exit::Failure;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn stamp(t: f64) -> String {
    // UTC, to the second, without a date crate: days since the epoch → civil date.
    let secs = t as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The downtime window: from maintenance seen on the source to the target live.
pub fn downtime(j: &Journal) -> Option<f64> {
    Some(j.marks.get("target_live")? - j.marks.get("maintenance_seen")?)
}

/// Write `report.md` and `report.json`; returns their paths.
pub fn write_report(state_dir: &Path, j: &Journal) -> Result<(PathBuf, PathBuf), Failure> {
    let mut md = String::new();
    let _ = writeln!(md, "# ocmigrate report\n\n{} → {}\n", j.source, j.target);
    let _ = writeln!(md, "Started {}.", stamp(j.created));
    match downtime(j) {
        Some(d) => {
            let _ = writeln!(
                md,
                "**Downtime** (maintenance seen on the source → target live): **{d:.1} s**.\n"
            );
        }
        None => {
            let _ = writeln!(md, "The target has not gone live yet.\n");
        }
    }
    let _ = writeln!(md, "| step | state | time | outcome |\n|---|---|---|---|");
    for step in Step::ALL {
        let (state, secs, outcome) = match j.entry(step) {
            Some(e) => (
                format!("{:?}", e.state).to_lowercase(),
                e.ended
                    .map(|x| format!("{:.1} s", x - e.started))
                    .unwrap_or_default(),
                e.outcome.replace('|', "\\|"),
            ),
            None => ("not run".into(), String::new(), String::new()),
        };
        let _ = writeln!(md, "| {} | {state} | {secs} | {outcome} |", step.name());
    }
    let _ = writeln!(md, "\n## Not verified\n");
    let mut not = vec![
        "File contents byte by byte (run `ocmigrate verify --content`); files are compared by size and mtime.".to_string(),
        "Sync clients themselves: ETags and file ids are checked for the admin's root and the file cache rows.".to_string(),
    ];
    for step in Step::ALL {
        match j.entry(step).map(|e| e.state) {
            Some(State::Skipped) => not.push(format!(
                "{}: skipped ({})",
                step.name(),
                j.entry(step).map(|e| e.outcome.as_str()).unwrap_or("")
            )),
            Some(State::Done) => {}
            _ => not.push(format!("{}: not done", step.name())),
        }
    }
    for n in not {
        let _ = writeln!(md, "* {n}");
    }
    let _ = writeln!(
        md,
        "\n## Left on the hosts\n\n\
         * ocmigrate's agent binary, `~/.cache/ocmigrate/agent-<sha256>` of the ssh user on the source \
         and on the target (nothing ownCloud reads). `ocmigrate migrate --remove-agents` takes it off \
         both once the migration is complete.\n\
         * On the source: `maintenance` in `config/config.php` (on while the target serves), and its \
         web server stopped; `ocmigrate rollback` undoes both."
    );
    let mut v = serde_json::to_value(j).expect("journal serializes");
    v["downtime_s"] = downtime(j).into();
    let mdp = state_dir.join("report.md");
    let jsp = state_dir.join("report.json");
    crate::cmd::init::write_atomically(&mdp, md.as_bytes())?;
    crate::cmd::init::write_atomically(
        &jsp,
        serde_json::to_string_pretty(&v).expect("json").as_bytes(),
    )?;
    Ok((mdp, jsp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_utc_dates() {
        assert_eq!(stamp(0.0), "1970-01-01 00:00:00 UTC");
        assert_eq!(stamp(1_795_644_059.0), "2026-11-25 22:00:59 UTC");
    }
}
