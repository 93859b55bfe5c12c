//! `drain = "auto"`: which sync clients have noticed maintenance mode, read from the source web
//! server's access log (read-only).
//!
//! A client is an address and a user agent that made requests in the hour before maintenance was
//! seen (ocmigrate's own probes left out). It has noticed once a request of it after that moment
//! got a 503. Desktop clients poll about every 62 s, so a drain normally ends a minute or two in,
//! instead of the fixed 7 minutes; it is still bounded by the configured maximum.

use std::collections::{BTreeMap, BTreeSet};

/// One access log line (common or combined format), as far as the drain needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub client: String,
    pub time: f64,
    pub status: u16,
}

/// Parse `IP - user [25/Nov/2026:21:20:59 +0000] "GET /x HTTP/1.1" 503 12 "ref" "agent"`.
/// The client is the address plus the user agent (when the line has one).
pub fn parse(line: &str) -> Option<Hit> {
    let ip = line.split_whitespace().next()?;
    let time = super::rollback::access_log_time(line)?;
    // The request is the first quoted string; the status follows it.
    let q1 = line.find('"')?;
    let q2 = q1 + 1 + line[q1 + 1..].find('"')?;
    let rest = &line[q2 + 1..];
    let status: u16 = rest.split_whitespace().next()?.parse().ok()?;
    // Combined format: "referer" "user agent" at the end.
    let quoted: Vec<&str> = rest.split('"').collect();
    let agent = if quoted.len() >= 4 {
        quoted[quoted.len() - 2]
    } else {
        ""
    };
    Some(Hit {
        client: format!("{ip} {agent}"),
        time,
        status,
    })
}

/// What the log says at one moment: the clients active in the hour before `seen`, and those of
/// them that got a 503 since.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Drained {
    pub clients: BTreeSet<String>,
    pub noticed: BTreeSet<String>,
}

impl Drained {
    pub fn waiting_for(&self) -> Vec<&String> {
        self.clients.difference(&self.noticed).collect()
    }
    pub fn done(&self) -> bool {
        self.waiting_for().is_empty()
    }
}

/// Read the log's lines against the moment maintenance was seen (seconds since the epoch).
pub fn assess(log: &str, seen: f64) -> Drained {
    // Log times have whole seconds: a line of the same second as `seen` counts as after it.
    let seen_s = seen.floor();
    let mut last_503: BTreeMap<String, f64> = BTreeMap::new();
    let mut d = Drained::default();
    for h in log.lines().filter_map(parse) {
        if h.client.contains("ocmigrate/") {
            continue;
        }
        if h.time < seen_s && h.time >= seen_s - 3600.0 {
            d.clients.insert(h.client.clone());
        }
        if h.time >= seen_s && h.status == 503 {
            last_503.insert(h.client, h.time);
        }
    }
    d.noticed = last_503
        .into_keys()
        .filter(|c| d.clients.contains(c))
        .collect();
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEEN: f64 = 1_795_641_659.4; // 25/Nov/2026:21:20:59 UTC

    fn line(ip: &str, hms: &str, status: u16, agent: &str) -> String {
        format!(
            "{ip} - - [25/Nov/2026:{hms} +0000] \"PROPFIND /remote.php/dav/files/a/ HTTP/1.1\" {status} 12 \"-\" \"{agent}\""
        )
    }

    #[test]
    fn parses_combined_and_common_lines() {
        let h = parse(&line(
            "10.0.0.1",
            "21:20:59",
            503,
            "Mozilla/5.0 (Linux) mirall/2.11.0",
        ))
        .unwrap();
        assert_eq!(h.status, 503);
        assert_eq!(h.time, 1_795_641_659.0);
        assert_eq!(h.client, "10.0.0.1 Mozilla/5.0 (Linux) mirall/2.11.0");
        let c = parse(
            r#"10.0.0.2 - bob [25/Nov/2026:21:20:59 +0000] "GET /status.php HTTP/1.1" 200 80"#,
        )
        .unwrap();
        assert_eq!((c.client.as_str(), c.status), ("10.0.0.2 ", 200));
        assert_eq!(parse("garbage"), None);
    }

    #[test]
    fn a_client_has_noticed_after_a_503_following_maintenance() {
        let log = [
            line("10.0.0.1", "20:30:00", 207, "mirall/2.11"), // active before
            line("10.0.0.2", "21:00:00", 207, "mirall/3.0"),  // active before
            line("10.0.0.3", "19:00:00", 207, "mirall/3.0"),  // more than an hour before
            line("127.0.0.1", "21:10:00", 207, "ocmigrate/0.1.0"), // ourselves
            line("10.0.0.1", "21:20:58", 503, "mirall/2.11"), // before maintenance was seen
        ]
        .join("\n");
        let d = assess(&log, SEEN);
        assert_eq!(d.clients.len(), 2, "{d:?}");
        assert!(!d.done());
        let log2 = format!(
            "{log}\n{}",
            line("10.0.0.1", "21:21:30", 503, "mirall/2.11")
        );
        let d = assess(&log2, SEEN);
        assert_eq!(d.waiting_for(), vec!["10.0.0.2 mirall/3.0"]);
        // A 200 (status.php) does not count; a 503 does.
        let log3 = format!(
            "{log2}\n{}\n{}",
            line("10.0.0.2", "21:21:40", 200, "mirall/3.0"),
            line("10.0.0.2", "21:22:40", 503, "mirall/3.0")
        );
        assert!(assess(&log3, SEEN).done());
        // No client in the hour before: nothing to wait for.
        assert!(assess("", SEEN).done());
    }
}
