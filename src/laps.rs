//! Phase timings inside a step: where a step's seconds go, written into its journal figures as
//! `phases_s` (name → seconds), so the report and `bench/downtime` can show them.

use std::collections::BTreeMap;
use std::time::Instant;

/// A stopwatch with named laps; a lap's time runs from the previous lap (or the start).
#[derive(Debug)]
pub struct Laps {
    last: Instant,
    phases: BTreeMap<String, f64>,
}

impl Default for Laps {
    fn default() -> Self {
        Laps::start()
    }
}

impl Laps {
    pub fn start() -> Laps {
        Laps {
            last: Instant::now(),
            phases: BTreeMap::new(),
        }
    }

    /// Close the current phase under `name` (times of the same name add up).
    pub fn lap(&mut self, name: &str) {
        let now = Instant::now();
        *self.phases.entry(name.to_string()).or_default() += (now - self.last).as_secs_f64();
        self.last = now;
    }

    /// Record a phase measured elsewhere (e.g. in a thread running beside this one).
    pub fn put(&mut self, name: &str, seconds: f64) {
        self.phases.insert(name.to_string(), seconds);
    }

    /// The phases, rounded to milliseconds, as a JSON object.
    pub fn figure(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.phases
                .iter()
                .map(|(k, v)| (k.clone(), ((v * 1000.0).round() / 1000.0).into()))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn laps_add_up_and_round() {
        let mut l = Laps::start();
        std::thread::sleep(std::time::Duration::from_millis(5));
        l.lap("a");
        l.lap("a");
        l.put("b", 0.12345);
        let f = l.figure();
        assert!(f["a"].as_f64().unwrap() >= 0.005);
        assert_eq!(f["b"].as_f64().unwrap(), 0.123);
    }
}
