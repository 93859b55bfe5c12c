//! How commands show a run: plain lines for people (a countdown on one line when stderr is a
//! terminal), or one JSON event a line with `--json`.

use crate::runbook::{Events, State, Step};
use std::io::{IsTerminal, Write};
use std::time::Duration;

pub struct Console {
    pub json: bool,
    pub progress: bool,
}

impl Console {
    pub fn new(json: bool, no_progress: bool) -> Console {
        Console {
            json,
            progress: !no_progress && std::io::stderr().is_terminal(),
        }
    }
    fn emit(&self, v: serde_json::Value) {
        println!("{v}");
    }
}

impl Events for Console {
    fn step_started(&mut self, step: Step) {
        if self.json {
            self.emit(
                serde_json::json!({"event": "step", "step": step.name(), "state": "running"}),
            );
        } else {
            eprintln!("==> {}: {}", step.name(), step.what());
        }
    }
    fn step_ended(&mut self, step: Step, state: State, outcome: &str) {
        if self.json {
            self.emit(serde_json::json!({"event": "step", "step": step.name(), "state": state, "outcome": outcome}));
        } else {
            let tag = match state {
                State::Done => "done",
                State::Skipped => "skipped",
                State::Failed => "FAILED",
                State::Running => "running",
                State::Interrupted => "INTERRUPTED",
            };
            eprintln!("    {tag}: {outcome}");
        }
    }
    fn info(&mut self, message: &str) {
        if self.json {
            self.emit(serde_json::json!({"event": "info", "message": message}));
        } else {
            eprintln!("    {message}");
        }
    }
    fn warning(&mut self, message: &str) {
        if self.json {
            self.emit(serde_json::json!({"event": "warning", "message": message}));
        } else {
            eprintln!("    warning: {message}");
        }
    }
    fn waiting(&mut self, what: &str, left: Duration) {
        let secs = left.as_secs_f64().ceil() as u64;
        if self.json {
            self.emit(serde_json::json!({"event": "waiting", "what": what, "left_s": secs}));
        } else if self.progress {
            eprint!("\r    {what}: {}:{:02} left ", secs / 60, secs % 60);
            let _ = std::io::stderr().flush();
            if secs <= 1 {
                eprintln!();
            }
        } else if secs.is_multiple_of(30) || secs <= 5 {
            eprintln!("    {what}: {secs} s left");
        }
    }
    fn confirm(&mut self, question: &str) -> bool {
        if !std::io::stdin().is_terminal() {
            eprintln!(
                "    {question}\n    No terminal to ask on: run again with --yes to answer yes."
            );
            return false;
        }
        eprint!("    {question} [y/N] ");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes")
    }
}
