//! Progress of a pass: shared counters the workers bump, and sinks that show them: an indicatif
//! bar on a terminal, plain lines otherwise (`--no-progress`, pipes), one JSON event a line
//! (`--json`), or lines handed to a callback (the runbook's journal and console).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Counters shared by the workers of a pass.
#[derive(Debug, Default)]
pub struct Counters {
    pub files_done: AtomicU64,
    pub bytes_done: AtomicU64,
    pub files_total: AtomicU64,
    pub bytes_total: AtomicU64,
}

impl Counters {
    pub fn add(&self, files: u64, bytes: u64) {
        self.files_done.fetch_add(files, Relaxed);
        self.bytes_done.fetch_add(bytes, Relaxed);
    }
    pub fn snapshot(&self, phase: &str, started: Instant) -> Snapshot {
        let elapsed = started.elapsed();
        let bytes_done = self.bytes_done.load(Relaxed);
        let bytes_total = self.bytes_total.load(Relaxed);
        let files_done = self.files_done.load(Relaxed);
        let files_total = self.files_total.load(Relaxed);
        let secs = elapsed.as_secs_f64().max(0.001);
        let rate = bytes_done as f64 / secs;
        let frac = if bytes_total > 0 {
            bytes_done as f64 / bytes_total as f64
        } else if files_total > 0 {
            files_done as f64 / files_total as f64
        } else {
            0.0
        };
        let eta = (frac > 0.01 && frac < 1.0)
            .then(|| Duration::from_secs_f64(secs * (1.0 - frac) / frac));
        Snapshot {
            phase: phase.to_string(),
            files_done,
            files_total,
            bytes_done,
            bytes_total,
            elapsed,
            rate,
            eta,
        }
    }
}

/// Where a pass stands.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub phase: String,
    pub files_done: u64,
    pub files_total: u64,
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub elapsed: Duration,
    /// Bytes per second since the phase started.
    pub rate: f64,
    pub eta: Option<Duration>,
}

/// Bytes for people: `1.5 GiB`.
pub fn human(b: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{v:.0} {}", units[i])
    } else {
        format!("{v:.1} {}", units[i])
    }
}

fn hms(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

impl Snapshot {
    /// One line for people.
    pub fn line(&self) -> String {
        let eta = self
            .eta
            .map(|e| format!(", ETA {}", hms(e)))
            .unwrap_or_default();
        format!(
            "{}: {}/{} files, {}/{} ({}/s){eta}",
            self.phase,
            self.files_done,
            self.files_total,
            human(self.bytes_done as f64),
            human(self.bytes_total as f64),
            human(self.rate)
        )
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "event": "progress",
            "phase": self.phase,
            "files_done": self.files_done,
            "files_total": self.files_total,
            "bytes_done": self.bytes_done,
            "bytes_total": self.bytes_total,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "rate_bps": self.rate,
            "eta_s": self.eta.map(|e| e.as_secs_f64()),
        })
    }
}

/// Something that shows progress. `tick` is called often (every 100-200 ms); a sink decides
/// how often to show something.
pub trait Sink {
    /// A phase starts (`scan`, `send`, …) with a line of detail.
    fn phase(&mut self, name: &str, detail: &str);
    fn tick(&mut self, s: &Snapshot);
    /// A message (a warning, a note) for people.
    fn note(&mut self, msg: &str);
    /// The phase's end.
    fn end(&mut self, s: &Snapshot);
}

/// How to show progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    Bar,
    Plain,
    Json,
    Quiet,
}

impl ProgressMode {
    /// `--json` wins; then a bar when stderr is a terminal and `--no-progress` is not given.
    pub fn choose(json: bool, no_progress: bool) -> ProgressMode {
        if json {
            ProgressMode::Json
        } else if no_progress || !std::io::stderr().is_terminal() {
            ProgressMode::Plain
        } else {
            ProgressMode::Bar
        }
    }

    pub fn sink(self) -> Box<dyn Sink> {
        match self {
            ProgressMode::Bar => Box::new(BarSink { bar: None }),
            ProgressMode::Plain => {
                Box::new(LineSink::new(|l| eprintln!("{l}"), Duration::from_secs(5)))
            }
            ProgressMode::Json => Box::new(JsonSink { last: None }),
            ProgressMode::Quiet => Box::new(Quiet),
        }
    }
}

/// Nothing shown.
pub struct Quiet;
impl Sink for Quiet {
    fn phase(&mut self, _: &str, _: &str) {}
    fn tick(&mut self, _: &Snapshot) {}
    fn note(&mut self, _: &str) {}
    fn end(&mut self, _: &Snapshot) {}
}

/// Plain lines: a phase line, a progress line every `every`, and a closing line.
pub struct LineSink<F: FnMut(&str)> {
    out: F,
    every: Duration,
    last: Option<Instant>,
}

impl<F: FnMut(&str)> LineSink<F> {
    pub fn new(out: F, every: Duration) -> LineSink<F> {
        LineSink {
            out,
            every,
            last: None,
        }
    }
}

impl<F: FnMut(&str)> Sink for LineSink<F> {
    fn phase(&mut self, name: &str, detail: &str) {
        (self.out)(&format!("{name}: {detail}"));
        self.last = Some(Instant::now());
    }
    fn tick(&mut self, s: &Snapshot) {
        if self.last.is_none_or(|t| t.elapsed() >= self.every) {
            (self.out)(&s.line());
            self.last = Some(Instant::now());
        }
    }
    fn note(&mut self, msg: &str) {
        (self.out)(msg);
    }
    fn end(&mut self, s: &Snapshot) {
        (self.out)(&format!("{} in {:.1} s", s.line(), s.elapsed.as_secs_f64()));
    }
}

/// One JSON object a line on stdout, at most one progress event a second.
pub struct JsonSink {
    last: Option<Instant>,
}

impl Sink for JsonSink {
    fn phase(&mut self, name: &str, detail: &str) {
        println!(
            "{}",
            serde_json::json!({"event": "phase", "phase": name, "detail": detail})
        );
    }
    fn tick(&mut self, s: &Snapshot) {
        if self
            .last
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            println!("{}", s.json());
            self.last = Some(Instant::now());
        }
    }
    fn note(&mut self, msg: &str) {
        println!("{}", serde_json::json!({"event": "note", "message": msg}));
    }
    fn end(&mut self, s: &Snapshot) {
        let mut v = s.json();
        v["event"] = "phase_done".into();
        println!("{v}");
    }
}

/// An indicatif bar on stderr.
pub struct BarSink {
    bar: Option<indicatif::ProgressBar>,
}

impl Sink for BarSink {
    fn phase(&mut self, name: &str, detail: &str) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        eprintln!("{name}: {detail}");
        let b = indicatif::ProgressBar::new(0);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{prefix} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        b.set_prefix(name.to_string());
        self.bar = Some(b);
    }
    fn tick(&mut self, s: &Snapshot) {
        if let Some(b) = &self.bar {
            b.set_length(s.bytes_total.max(s.bytes_done));
            b.set_position(s.bytes_done);
            b.set_message(format!("{}/{} files", s.files_done, s.files_total));
        }
    }
    fn note(&mut self, msg: &str) {
        match &self.bar {
            Some(b) => b.println(msg),
            None => eprintln!("{msg}"),
        }
    }
    fn end(&mut self, s: &Snapshot) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        eprintln!("{} in {:.1} s", s.line(), s.elapsed.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_eta() {
        let c = Counters::default();
        c.files_total.store(10, Relaxed);
        c.bytes_total.store(4096, Relaxed);
        c.add(5, 2048);
        let s = c.snapshot("send", Instant::now() - Duration::from_secs(10));
        assert!(
            s.line().starts_with("send: 5/10 files, 2.0 KiB/4.0 KiB"),
            "{}",
            s.line()
        );
        let eta = s.eta.unwrap().as_secs_f64();
        assert!((9.0..11.0).contains(&eta), "{eta}");
        assert_eq!(s.json()["files_done"], 5);
        let mut got = Vec::new();
        {
            let mut l = LineSink::new(|x: &str| got.push(x.to_string()), Duration::from_secs(3600));
            l.phase("send", "10 files");
            l.tick(&s);
            l.end(&s);
        }
        assert_eq!(
            got.len(),
            2,
            "the tick right after the phase line is not shown: {got:?}"
        );
        assert_eq!(human(1536.0), "1.5 KiB");
    }
}
