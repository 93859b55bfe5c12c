//! Timing marks for measuring where a pass spends its time: with `OCMIGRATE_TIMING=1` in the
//! environment, each [`mark`] prints `ocmigrate: timing +S.SSS s WHAT` (seconds since the first
//! mark of the process) on stderr; otherwise it does nothing. For benchmarks and tuning, not a
//! user interface (bench/README.md).

use std::sync::OnceLock;
use std::time::Instant;

fn state() -> Option<Instant> {
    static S: OnceLock<Option<Instant>> = OnceLock::new();
    *S.get_or_init(|| {
        std::env::var_os("OCMIGRATE_TIMING")
            .is_some_and(|v| !v.is_empty() && v != "0")
            .then(Instant::now)
    })
}

/// Note that `what` just finished (or started), when timing is on.
pub fn mark(what: &str) {
    if let Some(t0) = state() {
        eprintln!(
            "ocmigrate: timing +{:.3} s {what}",
            t0.elapsed().as_secs_f64()
        );
    }
}
