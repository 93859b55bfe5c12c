//! The steps of the runbook, one function each (SPEC.md, "`migrate`: the runbook").

use super::{Events, Gate, Options, Outcome};
use crate::exit::Failure;
use crate::host::Probe;
use crate::instance::Secret;
use crate::inventory::{self, Inventory, PRELUDE_PHP};
use crate::migration::Migration;
use crate::runbook::{Journal, Step};
use crate::web::WebProbe;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const ROOTS_PHP: &str = include_str!("roots.php");

/// The config file target-up puts on the target for the length of its log probe.
pub(super) const PROBE_CONFIG: &str = "config/zz-ocmigrate-probe.config.php";

/// How long a toggle may take to show over HTTP (PHP's opcache keeps config.php ~2 s).
const TOGGLE_TIMEOUT: Duration = Duration::from_secs(60);

/// `systemctl start UNIT` / `service UNIT start` → the same with `reload`; `… apache2ctl start` /
/// `… apachectl start` → the same with `graceful`; `None` when any command is of another form.
fn reload_commands(start: &[String]) -> Option<Vec<String>> {
    if start.is_empty() {
        return None;
    }
    start
        .iter()
        .map(|c| {
            let w: Vec<&str> = c.split_whitespace().collect();
            match w.as_slice() {
                ["systemctl", "start", unit] => Some(format!("systemctl reload {unit}")),
                ["service", unit, "start"] => Some(format!("service {unit} reload")),
                [.., "apache2ctl" | "apachectl", "start"] => c
                    .trim_end()
                    .strip_suffix("start")
                    .map(|head| format!("{head}graceful")),
                _ => None,
            }
        })
        .collect()
}

/// Polling intervals: short at first (a toggle or a stop is often seen within a few
/// milliseconds), doubling up to 250 ms so a slow one costs no more requests than before.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Backoff {
        Backoff(Duration::from_millis(20))
    }
    fn next(&mut self) -> Duration {
        let d = self.0;
        self.0 = (self.0 * 2).min(Duration::from_millis(250));
        d
    }
}

/// What the steps share: the hosts, the source's facts, the web probes.
pub struct Ctx<'a> {
    m: &'a Migration,
    opts: Options,
    src: Inventory,
    src_user: String,
    tgt_user: String,
    public_url: String,
    source_web: WebProbe,
    target_web: WebProbe,
    admin_user: String,
    admin_password: Secret,
    /// The target's inventory as target-up read it (config/ in place): its log paths serve
    /// the live check too.
    target_inventory: std::sync::OnceLock<Inventory>,
    /// Every user's root as target-up read it from the migrated database (nothing writes to it
    /// until the target goes live): the live check compares the admin's with WebDAV's and keeps
    /// them for rollback.
    target_roots: std::sync::OnceLock<Roots>,
    /// The target's trees as the final sync's exit check read them (this run only): target-up
    /// compares the file cache with them instead of reading the disk again.
    /// Taken by target-up, so that they are not held for the rest of the run.
    target_scans: std::sync::Mutex<Option<Vec<crate::transfer::ScannedTree>>>,
    /// The file cache rows read ahead on the source (`read_rows_early`), for target-up to take;
    /// empty when they were not read ahead.
    early_rows: EarlyRows,
}

type RowsRead = Result<(Vec<crate::verify::StorageRows>, f64), Failure>;

/// Rows read ahead by one thread and taken by another (at most once).
#[derive(Default)]
struct EarlyRows {
    /// (promised, answered, the answer until taken)
    slot: std::sync::Mutex<(bool, bool, Option<RowsRead>)>,
    cv: std::sync::Condvar,
}

impl EarlyRows {
    /// Someone reads them: a `take` waits for `put`.
    fn promise(&self) {
        self.slot.lock().unwrap_or_else(|p| p.into_inner()).0 = true;
    }
    /// The answer (the first one counts).
    fn put(&self, r: RowsRead) {
        let mut g = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        if !g.1 {
            (g.1, g.2) = (true, Some(r));
            self.cv.notify_all();
        }
    }
    fn answered(&self) -> bool {
        self.slot.lock().unwrap_or_else(|p| p.into_inner()).1
    }
    /// The rows read ahead, once there; `None` when nobody reads them ahead.
    fn take(&self) -> Option<RowsRead> {
        let mut g = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        while g.0 && !g.1 {
            g = self.cv.wait(g).unwrap_or_else(|p| p.into_inner());
        }
        g.0 = false;
        g.2.take()
    }
}

fn address_of(side: &crate::config::Side, configured: Option<&String>) -> String {
    match (configured, side) {
        (Some(a), _) => a.clone(),
        (None, crate::config::Side::Ssh { host, .. }) => host.clone(),
        (None, crate::config::Side::Local { .. }) => "127.0.0.1".into(),
    }
}

fn hash_text(s: &str) -> String {
    blake3::hash(s.as_bytes()).to_hex()[..16].to_string()
}

impl<'a> Ctx<'a> {
    /// Gather what every step needs; read-only on both hosts.
    pub fn open(m: &'a Migration, opts: &Options) -> Result<Ctx<'a>, Failure> {
        let c = &m.config;
        let src = inventory::source(&m.source, c.source.web_user.as_deref())?;
        let src_user = c
            .source
            .web_user
            .clone()
            .or(src.config_owner.clone())
            .unwrap_or_else(|| "www-data".into());
        let tgt_user = c
            .target
            .web_user
            .clone()
            .unwrap_or_else(|| src_user.clone());
        let public_url = c
            .web
            .public_url
            .clone()
            .or_else(|| src.cfg_str("overwrite.cli.url").map(String::from))
            .ok_or_else(|| {
                Failure::usage("no public URL: set [web] public_url in the migration file (overwrite.cli.url is not set)")
            })?;
        let source_web = WebProbe::new(
            &public_url,
            Some(&address_of(&c.source.side, c.source.address.as_ref())),
        )?;
        let target_web = WebProbe::new(
            &public_url,
            Some(&address_of(&c.target.side, c.target.address.as_ref())),
        )?;
        let admin_user = c.web.admin_user.clone().unwrap_or_else(|| "admin".into());
        let file = c.web.admin_password_file.as_ref().ok_or_else(|| {
            Failure::usage("[web] admin_password_file is not set: the live check logs in to the target as the admin")
                .hint("write the admin's password (or an app password) into a file only root can read, and name it there")
        })?;
        let admin_password = read_secret_file(file)?;
        Ok(Ctx {
            m,
            opts: opts.clone(),
            src,
            src_user,
            tgt_user,
            public_url,
            source_web,
            target_web,
            admin_user,
            admin_password,
            target_inventory: std::sync::OnceLock::new(),
            target_roots: std::sync::OnceLock::new(),
            target_scans: std::sync::Mutex::new(None),
            early_rows: EarlyRows::default(),
        })
    }

    /// A fingerprint of what a done step depends on; a change makes it run again.
    pub fn inputs(&self, step: Step) -> Option<String> {
        match step {
            Step::Preflight => std::fs::read_to_string(&self.m.config_path)
                .ok()
                .map(|t| hash_text(&t)),
            _ => None,
        }
    }

    /// True when the database lives in a database server (MySQL/MariaDB, PostgreSQL): then its
    /// copy runs beside the final sync. SQLite is a file in the data folder, copied after it.
    pub fn database_beside_final_sync(&self) -> bool {
        self.src
            .db
            .as_ref()
            .is_some_and(|d| !matches!(d.kind.as_str(), "sqlite" | "sqlite3" | ""))
    }

    /// Run one of the steps that run side by side with the database copy: the final sync, then
    /// target-config and target-up (which waits for `database` before its checks); or the
    /// database copy itself.
    pub fn run_beside(
        &self,
        step: Step,
        ev: &mut dyn Events,
        database: &Gate,
    ) -> Result<Outcome, Failure> {
        match step {
            Step::FinalSync => self.sync(true, ev),
            Step::Database => self.database(ev, database),
            Step::TargetConfig => self.target_config(ev),
            Step::TargetUp => self.target_up(ev, database),
            _ => Err(Failure::check(format!(
                "{} cannot run beside another step",
                step.name()
            ))),
        }
    }

    pub fn run(
        &mut self,
        step: Step,
        j: &mut Journal,
        ev: &mut dyn Events,
    ) -> Result<Outcome, Failure> {
        match step {
            Step::Preflight => self.preflight(ev),
            Step::Sync => self.sync(false, ev),
            Step::MaintenanceOn => self.maintenance_on(j, ev),
            Step::Drain => self.drain(j, ev),
            Step::StopSourceWeb => self.stop_source_web(ev),
            Step::FinalSync => self.sync(true, ev),
            Step::Database => self.database(ev, &Gate::open()),
            Step::TargetConfig => self.target_config(ev),
            Step::TargetUp => self.target_up(ev, &Gate::open()),
            Step::MaintenanceOff => self.maintenance_off(ev),
            Step::LiveCheck => self.live_check(j, ev),
            Step::Dns => self.dns(ev),
            Step::Report => {
                let (md, _) = super::write_report(&self.m.state_dir(), j)?;
                Ok(Outcome::done(format!("report in {}", md.display())))
            }
        }
    }

    fn preflight(&mut self, ev: &mut dyn Events) -> Result<Outcome, Failure> {
        let plan = crate::preflight::run(&self.m.config, &self.m.source, &self.m.target)?;
        for f in plan
            .findings
            .iter()
            .filter(|f| f.severity == crate::preflight::Severity::Warning)
        {
            ev.warning(&format!("{}: {}", f.code, f.message));
        }
        let blockers: Vec<String> = plan
            .findings
            .iter()
            .filter(|f| f.severity == crate::preflight::Severity::Blocker)
            .map(|f| format!("{} ({})", f.message, f.fix))
            .collect();
        if !blockers.is_empty() {
            return Err(Failure::check(format!(
                "pre-flight found {} blocker(s): {}",
                blockers.len(),
                blockers.join("; ")
            ))
            .hint("fix them (`ocmigrate plan` lists them with the fix), then run migrate again"));
        }
        Ok(Outcome::done(format!(
            "ready, {} warning(s)",
            plan.findings
                .iter()
                .filter(|f| f.severity == crate::preflight::Severity::Warning)
                .count()
        ))
        .figure(
            "warnings",
            plan.findings
                .iter()
                .filter(|f| f.severity == crate::preflight::Severity::Warning)
                .count(),
        ))
    }

    fn sync(&self, final_pass: bool, ev: &mut dyn Events) -> Result<Outcome, Failure> {
        let pass = if final_pass {
            crate::transfer::Pass::Final
        } else {
            crate::transfer::Pass::Online
        };
        let mut laps = crate::laps::Laps::start();
        let mut report = crate::transfer::sync(self.m, pass, &mut |line: &str| ev.info(line))?;
        laps.lap("pass");
        for p in report.problems() {
            ev.warning(&p);
        }
        let mut o = Outcome::done(report.summary());
        if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(&report) {
            o.figures.extend(map);
        }
        if !final_pass {
            // With a database server: copy the database now, while the source is online, so
            // that the window only refreshes what changed since.
            if self.database_beside_final_sync() {
                if let Some(c) = crate::db::precopy(self.m)? {
                    ev.info(&format!(
                        "database copied ahead of the window: {}",
                        c.method
                    ));
                    o.summary =
                        format!("{}; database copied ahead ({:.1} s)", o.summary, c.seconds);
                    o.figures.insert(
                        "database_precopy".into(),
                        serde_json::to_value(&c).unwrap_or_default(),
                    );
                }
                laps.lap("database_precopy");
            }
            o.figures.insert("phases_s".into(), laps.figure());
            return Ok(o);
        }
        // The exit condition of the final sync: both sides' manifests agree on every managed
        // tree (path, type, size, mtime to the nanosecond, mode, owner, links). The pass itself
        // checks on its open agents (`report.check`): the source holds still in the window, so
        // it reads only the target again and compares it with the source manifests it saved
        // (`transfer::Check::Target`; `verify_read` says where it read the source again);
        // else a verification of its own reads both sides.
        let (v, checked) = match report.check.take() {
            Some(mut v) => {
                // Inside the pass's time: how much of it the check took.
                laps.put("pass_check", v.seconds);
                *self.target_scans.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(std::mem::take(&mut v.target_scans));
                let read = v.read.clone();
                (v, read)
            }
            None => (
                crate::transfer::verify_migration(
                    self.m,
                    &crate::transfer::VerifyOptions::default(),
                )?,
                "both sides".to_string(),
            ),
        };
        laps.lap("verify");
        if !v.equal {
            return Err(Failure::check(format!(
                "after the final sync the target's files differ from the source's in {} place(s): {}",
                v.difference_count,
                v.differences
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
            ))
            .hint("run `ocmigrate migrate` again (the final sync is redone); `ocmigrate verify` lists every difference"));
        }
        o.summary = format!(
            "{}; manifests equal ({} entries, {} files, {} bytes)",
            o.summary, v.entries, v.files, v.bytes
        );
        o.figures.insert(
            "verify".into(),
            serde_json::to_value(&v).unwrap_or_default(),
        );
        o.figures.insert("verify_read".into(), checked.into());
        o.figures.insert("phases_s".into(), laps.figure());
        Ok(o)
    }

    fn maintenance_on(&mut self, j: &mut Journal, ev: &mut dyn Events) -> Result<Outcome, Failure> {
        if !self.opts.yes
            && !ev.confirm(
                "The source goes into maintenance mode now: users are locked out until the target is live (or `ocmigrate rollback`). Continue?",
            )
        {
            return Err(Failure::new(crate::exit::ExitKind::Interrupted, "stopped before maintenance mode, as asked")
                .hint("run `ocmigrate migrate` again when ready, or with --yes"));
        }
        let before = self.src.config.clone().unwrap_or_default();
        let r = self.m.source.set_maintenance(&self.src_user, true)?;
        if !r.ok() {
            return Err(Failure::check(format!(
                "{}: occ maintenance:mode --on failed: {} {}",
                self.m.source.label(),
                r.stdout_text().trim(),
                r.stderr_text()
            ))
            .hint(
                "run it by hand as the web user to see why; `config_is_read_only` makes it fail",
            ));
        }
        let t0 = Instant::now();
        self.source_web.wait_for_maintenance(true, TOGGLE_TIMEOUT)?;
        // A client request must be refused as well (opcache can lag per worker): WebDAV on
        // ownCloud. Nextcloud logs every refused WebDAV request as a level-3 "Uncaught
        // exception" in the source's log (observed), and nothing may change on the source but
        // `maintenance`: there the page clients load, index.php, must answer 503 instead.
        let nextcloud = self.src.flavor() == Some(inventory::Flavor::Nextcloud);
        let what = if nextcloud { "index.php" } else { "WebDAV" };
        let deadline = Instant::now() + TOGGLE_TIMEOUT;
        loop {
            let a = if nextcloud {
                self.source_web.get("/index.php")?
            } else {
                self.source_web.propfind_anonymous(&self.admin_user)?
            };
            if a.code == 503 {
                break;
            }
            if Instant::now() > deadline {
                return Err(Failure::check(format!(
                    "{}: {what} still answers {} instead of 503 a minute after maintenance mode was switched on",
                    self.source_web.label, a.code
                ))
                .hint("PHP's opcache may cache config.php: restart PHP on the source, then run migrate again"));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        j.mark("maintenance_seen");
        // What else the toggle changed in the merged config (ownCloud rewrites config.php whole).
        let after = inventory::source(&self.m.source, Some(&self.src_user))?;
        self.src = after;
        let after_cfg = self.src.config.clone().unwrap_or_default();
        let mut changed: Vec<String> = before
            .keys()
            .chain(after_cfg.keys())
            .filter(|k| *k != "maintenance" && before.get(*k) != after_cfg.get(*k))
            .cloned()
            .collect();
        changed.sort();
        changed.dedup();
        for k in &changed {
            ev.warning(&format!(
                "the maintenance toggle also changed the source's config key {k:?}"
            ));
        }
        Ok(Outcome::done(format!(
            "maintenance seen over HTTP (status.php, {what} 503) after {:.1} s",
            t0.elapsed().as_secs_f64()
        ))
        .figure("seen_after_s", t0.elapsed().as_secs_f64())
        .figure("config_keys_changed", changed))
    }

    fn drain(&mut self, j: &mut Journal, ev: &mut dyn Events) -> Result<Outcome, Failure> {
        let (wait, auto) = match self.m.config.cutover.drain {
            crate::config::Drain::Fixed(d) => (d, false),
            crate::config::Drain::Auto { max } => (max, true),
        };
        let seen = j
            .marks
            .get("maintenance_seen")
            .copied()
            .unwrap_or_else(super::journal::now);
        let until = seen + wait.as_secs_f64();
        let (access_log, _) = web_logs(&self.src);
        let mut last_check = 0.0;
        let mut status = super::drain::Drained::default();
        let (mut log_text, mut log_end) = (String::new(), None);
        loop {
            let now = super::journal::now();
            let left = until - now;
            if left <= 0.0 {
                break;
            }
            if auto && now - last_check >= 2.0 {
                last_check = now;
                let (more, end) = self.source_access_log(&access_log, log_end)?;
                log_end = Some(end);
                log_text.push_str(&more);
                status = super::drain::assess(&log_text, seen);
                if status.done() {
                    let waited = now - seen;
                    return Ok(Outcome::done(format!(
                        "auto: all {} client(s) active in the hour before got a 503 after {waited:.0} s",
                        status.clients.len()
                    ))
                    .figure("drain_s", waited)
                    .figure("clients", status.clients.len()));
                }
            }
            let what = if auto {
                format!(
                    "drain: {} of {} client(s) yet to get a 503",
                    status.waiting_for().len(),
                    status.clients.len()
                )
            } else {
                "drain: sync clients notice maintenance mode".to_string()
            };
            ev.waiting(&what, Duration::from_secs_f64(left));
            std::thread::sleep(Duration::from_secs_f64(left.min(1.0)));
        }
        if auto && !status.done() {
            ev.warning(&format!(
                "drain: {} client(s) got no 503 within {} s (switched off, or gone): {}",
                status.waiting_for().len(),
                wait.as_secs(),
                status
                    .waiting_for()
                    .iter()
                    .take(5)
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
        Ok(
            Outcome::done(format!("waited {} s from maintenance seen", wait.as_secs()))
                .figure("drain_s", wait.as_secs())
                .figure("clients", status.clients.len()),
        )
    }

    /// The source's access log (read-only) from `from` on, or its last 4 MiB; and the offset
    /// where what was read ends. A log rotated meanwhile (shorter than `from`) is read anew.
    fn source_access_log(
        &self,
        path: &std::path::Path,
        from: Option<u64>,
    ) -> Result<(String, u64), Failure> {
        let size = size_of(
            &self
                .m
                .source
                .probe(&Probe::ReadFrom(path.to_path_buf(), u64::MAX / 2))?
                .stdout_text(),
        );
        let from = match from {
            Some(f) if f <= size => f,
            _ => size.saturating_sub(4 << 20),
        };
        let r = self
            .m
            .source
            .probe(&Probe::ReadFrom(path.to_path_buf(), from))?;
        let text = r.stdout_text();
        let body = text
            .split_once('\n')
            .map(|(_, rest)| rest.to_string())
            .unwrap_or_default();
        // Only whole lines: a line still being written is read next time.
        let whole = body.rfind('\n').map(|i| i + 1).unwrap_or(0);
        Ok((body[..whole].to_string(), from + whole as u64))
    }

    fn stop_source_web(&mut self, _ev: &mut dyn Events) -> Result<Outcome, Failure> {
        let cmds = self
            .m
            .config
            .source
            .stop
            .clone()
            .unwrap_or_else(|| crate::cmd::init::service_commands(&self.src).0);
        if cmds.is_empty() {
            return Err(Failure::usage("no command to stop the source's web server: set [source] stop in the migration file"));
        }
        let mut laps = crate::laps::Laps::start();
        let r = self.m.source.run_service_commands(&cmds)?;
        if !r.ok() {
            return Err(Failure::check(format!(
                "{}: `{}` failed: {}",
                self.m.source.label(),
                cmds.join("; "),
                r.stderr_text()
            )));
        }
        laps.lap("stop_commands");
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut poll = Backoff::new();
        while Instant::now() < deadline {
            if self.source_web.get("/status.php").is_err() {
                laps.lap("seen_stopped");
                return Ok(Outcome::done(format!("stopped ({})", cmds.join("; ")))
                    .figure("phases_s", laps.figure()));
            }
            std::thread::sleep(poll.next());
        }
        Err(Failure::check(format!("{}: still answers HTTP after `{}`", self.source_web.label, cmds.join("; ")))
            .hint("set [source] stop to the commands that stop every web server and PHP-FPM pool serving the instance"))
    }

    /// The database copy; `gate` is told when the import is done (before the checksums).
    fn database(&self, ev: &mut dyn Events, gate: &Gate) -> Result<Outcome, Failure> {
        let mut opts = crate::db::CopyOptions::for_migration(self.m);
        // Once the rows are in, the target's per-table checksums (below) and target-up's read of
        // its file cache may start: both only read the rows, beside the indexes' build.
        let rows_in = Gate::pending();
        let (imported, rows) = (gate.clone(), rows_in.clone());
        opts.rows_loaded = Some(crate::db::RowsLoaded(std::sync::Arc::new(move || {
            rows.set_imported();
            imported.set_imported();
        })));
        let (src, tgt) = (&self.m.source, &self.m.target);
        let t0 = Instant::now();
        let mut laps = crate::laps::Laps::start();
        let web_user = crate::db::source_web_user(src, opts.web_user.as_deref())?;
        let params = crate::db::read_params(src, &web_user)?;
        laps.lap("read_params");
        // The target holds a copy of ours (the online sync's, or an earlier attempt's): copy
        // only what differs; both sides' figures come with it (every row hashed on each side).
        if let Some(r) =
            crate::db::refresh_with(src, tgt, &opts, &params, crate::laps::Laps::start())?
        {
            gate.set_imported();
            laps.lap("refresh");
            for w in &r.report.warnings {
                ev.warning(w);
            }
            let check = crate::db::compare_sides(&params, r.source, r.target, t0);
            return database_outcome(&r.report, &check, true, t0, &laps);
        }
        // This step is not done in the journal, yet the import marker says an import of ours
        // into this target finished: an earlier attempt (cut short before its journal entry, or
        // undone by `rollback`). The source has been in maintenance since, so import it again.
        if let Some(mk) = crate::db::read_marker(&opts.state_dir) {
            // (SQLite's marker names the database file, not `params.name`: match the target.)
            if mk.state == "done" && mk.target == self.m.target.label() && !opts.replace_target {
                ev.info(&format!(
                    "the target's database '{}' holds an earlier import of this migration: replacing it",
                    mk.database
                ));
                opts.replace_target = true;
            }
        }
        // The source's per-table figures are read while the import runs: its web server is
        // stopped, so nothing writes to it (the same condition the dump relies on). The
        // target's are read as soon as its rows are in (MySQL: beside the indexes' build; else
        // after the copy).
        type Timed<T> = (Result<T, Failure>, Instant, Duration);
        let (copy, source_figures, target_figures) = std::thread::scope(|sc| {
            let h = sc.spawn(|| {
                let t = Instant::now();
                let r = crate::db::source_side(src, tgt, &params);
                (r, t, t.elapsed())
            });
            let tc = sc.spawn(|| -> Option<Timed<_>> {
                if !rows_in.wait_imported() {
                    return None;
                }
                let t = Instant::now();
                let r = crate::db::target_side(tgt, &opts, &params);
                Some((r, t, t.elapsed()))
            });
            // However the copy ends (a panic too), the thread waiting for the rows is told.
            let closer = super::GateCloser(&rows_in);
            let copy = crate::db::copy_with(src, tgt, &opts, &params, crate::laps::Laps::start());
            // Without a call of `rows_loaded` (PostgreSQL, SQLite): the rows are in now.
            rows_in.set(copy.is_ok());
            drop(closer);
            let panicked = |what: &str| Failure::check(format!("reading {what} panicked"));
            let s: Timed<_> = h.join().unwrap_or_else(|_| {
                (
                    Err(panicked("the source's figures")),
                    Instant::now(),
                    Duration::ZERO,
                )
            });
            let t: Option<Timed<_>> = tc.join().unwrap_or_else(|_| {
                Some((
                    Err(panicked("the target's figures")),
                    Instant::now(),
                    Duration::ZERO,
                ))
            });
            (copy, s, t)
        });
        let copy = copy?;
        laps.lap("copy");
        // Target-up's scan of the target's file cache (read-only) may start now (MySQL: it did
        // when the rows were in), beside the checksums; what it read counts only once this
        // step is done.
        gate.set_imported();
        laps.put(
            "source_checksums_beside_copy",
            source_figures.2.as_secs_f64(),
        );
        for w in &copy.warnings {
            ev.warning(w);
        }
        let (target_figures, t_check, target_s) =
            target_figures.ok_or_else(|| Failure::check("the target's figures were not read"))?;
        let target_figures = target_figures?;
        laps.lap("target_checksums_wait");
        laps.put("target_checksums", target_s.as_secs_f64());
        let check = crate::db::compare_sides(&params, source_figures.0?, target_figures, t_check);
        database_outcome(&copy, &check, false, t0, &laps)
    }

    fn target_config(&self, ev: &mut dyn Events) -> Result<Outcome, Failure> {
        let mut laps = crate::laps::Laps::start();
        // One read on the source, one script on the target (`target_config.rs`).
        let copied =
            super::target_config::copy(&self.m.source, &self.m.target, &self.tgt_user, &mut laps)?;
        for name in &copied.removed {
            ev.warning(&format!(
                "removed {} from the target: the source has no such config file",
                self.m.target.root().join("config").join(name).display()
            ));
        }
        let copied_n = copied.files.len();
        let removed = copied.removed;
        // The identity keys must be equal, compared by fingerprint (never printed).
        // Only the config: the database is being imported beside this step.
        let tgt = inventory::target_config(&self.m.target, &self.tgt_user)?;
        laps.lap("check_config");
        let mut differ = Vec::new();
        for key in ["instanceid", "secret", "passwordsalt"] {
            if self.src.fingerprint(key) != tgt.fingerprint(key) {
                differ.push(key);
            }
        }
        for key in ["version", "datadirectory"] {
            if self.src.cfg(key) != tgt.cfg(key) {
                differ.push(key);
            }
        }
        if !differ.is_empty() {
            return Err(Failure::check(format!(
                "the target's config differs from the source's in: {}",
                differ.join(", ")
            ))
            .hint(
                "config/ must be copied verbatim; check that nothing on the target rewrites it",
            ));
        }
        if !tgt.cfg_bool("maintenance") {
            return Err(Failure::check(
                "the target's config is not in maintenance mode after the copy",
            ));
        }
        Ok(Outcome::done(format!("{copied_n} file(s) of config/ copied; instanceid, secret, passwordsalt, version, datadirectory equal"))
            .figure("files", copied_n)
            .figure("removed_on_target", removed)
            .figure("phases_s", laps.figure()))
    }

    fn target_up(&self, ev: &mut dyn Events, database: &Gate) -> Result<Outcome, Failure> {
        // The file cache against the disk, read on the target (read-only, PHP CLI as the web
        // user: nothing that reaches a web server or ownCloud's log) once its database is
        // imported, while the web checks run; the disk as the final sync's exit check just read
        // it, when this run made that check (`target_filecache`). The source is read the same
        // way only when the target shows rows that disagree, to tell those that already
        // disagreed there (the copy keeps every mtime and size, so a row that agrees on the
        // target agreed on the source), and then only those rows when the target listed them.
        let this = self;
        let (up, target) = std::thread::scope(|sc| {
            // The target's scan as soon as its database's rows are imported (the final sync is
            // done: it runs before this step in the same lane), beside the web server's start
            // and the database step's indexes and checksums; its result counts only when that
            // step is done (below).
            let target_scan = sc.spawn(|| {
                if !database.wait_imported() {
                    return None;
                }
                let t = Instant::now();
                let r = this.target_filecache();
                Some((r, t.elapsed().as_secs_f64()))
            });
            // The users' roots for the live check, read here beside the scan (off the window's
            // last steps); kept only once the database step is done (below).
            let roots_read = sc.spawn(|| {
                if !database.wait_imported() {
                    return None;
                }
                roots(&this.m.target, &this.tgt_user).ok()
            });
            // The web server starts first (in maintenance: it answers 503 to everyone, and
            // nothing requests it before the checks), while the database may still be importing.
            let up = this.target_up_start().and_then(|(logs, mut laps)| {
                if !database.wait() {
                    return Err(Failure::check(
                        "target-up stopped before its checks: the database step failed",
                    )
                    .hint(
                        "see the database step; `ocmigrate rollback` puts the source back in service",
                    ));
                }
                laps.lap("wait_database");
                this.target_up_checks(ev, logs, laps)
            });
            let t_ = target_scan.join().unwrap_or_else(|_| {
                Some((
                    Err(Failure::check("scanning the target's file cache panicked")),
                    0.0,
                ))
            });
            if let Some(r) = roots_read.join().ok().flatten() {
                if up.is_ok() {
                    let _ = this.target_roots.set(r);
                }
            }
            (up, t_)
        });
        let (seen, mut laps) = up?;
        // `up` waited for the database step: done, or target-up failed above.
        let (t, target_s) = target.unwrap_or_else(|| {
            (
                Err(Failure::check("the target's file cache was not scanned")),
                0.0,
            )
        });
        let (t, against) = t?;
        laps.put("filecache_target_scan_from_rows_loaded", target_s);
        laps.lap("filecache_wait");
        let s = if t.mismatch_count > 0 {
            let s = crate::verify::scan_source_for(&self.m.source, &self.src_user, &t)?;
            laps.lap("filecache_source_scan");
            s
        } else {
            crate::verify::FileCacheScan::default()
        };
        let fc = crate::verify::compare(&s, &t);
        if fc.preexisting_count > 0 {
            ev.warning(&format!("{} file cache row(s) already disagreed with the disk on the source (not caused by the migration)", fc.preexisting_count));
        }
        if !fc.passed() {
            let first: Vec<String> = fc
                .new_mismatches
                .iter()
                .take(5)
                .map(|m| {
                    format!(
                        "{}:{} ({}: cache {:?}, disk {:?})",
                        m.user, m.path, m.kind, m.cache, m.disk
                    )
                })
                .collect();
            return Err(Failure::check(format!(
                "{} file cache row(s) disagree with the target's disk ({against}): {}",
                fc.new_mismatch_count,
                first.join("; ")
            ))
            .hint("clients would download those files again; run `ocmigrate sync` and migrate again (never `occ files:scan`)"));
        }
        laps.lap("filecache_compare");
        Ok(Outcome::done(format!(
            "up in maintenance; status.php, 503 page, logs ({seen}) and {} file cache rows checked",
            fc.rows
        ))
        .figure("filecache_rows", fc.rows)
        .figure("filecache_preexisting", fc.preexisting_count)
        .figure("filecache_source_rows_read", s.rows)
        .figure("filecache_disk", against)
        .figure("phases_s", laps.figure()))
    }

    /// The target's file cache against its disk: as the final sync's exit check read the disk
    /// moments ago in this run (only the rows read by PHP; those its manifests do not cover are
    /// looked up on the disk), or else (a resumed run) by PHP on the disk. With how it looked.
    fn target_filecache(&self) -> Result<(crate::verify::FileCacheScan, String), Failure> {
        let (tgt, user) = (&self.m.target, &self.tgt_user);
        let scans = self
            .target_scans
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let Some(scans) = scans else {
            let s = crate::verify::scan_target(tgt, user)?;
            return Ok((s, "read on the disk itself".into()));
        };
        // The rows: read ahead on the source (equal to the target's: see `read_rows_early`),
        // or on the target now.
        let (rows, read) = match self.early_rows.take() {
            Some(Ok((rows, s))) => (rows, format!("the source's rows, read ahead in {s:.2} s")),
            // Reading ahead is an optimisation: when it failed, the target is read now.
            ahead => {
                let t = Instant::now();
                let rows = crate::verify::read_rows(tgt, user)?;
                let s = t.elapsed().as_secs_f64();
                let why = match ahead {
                    Some(Err(e)) => {
                        format!(" (reading them ahead on the source failed: {})", e.message)
                    }
                    _ => String::new(),
                };
                (rows, format!("the target's rows, read in {s:.2} s{why}"))
            }
        };
        let (scan, uncovered) = crate::verify::check_rows(&rows, &scans);
        drop((rows, scans));
        let n = uncovered.len();
        if n > crate::verify::UNCOVERED_BY_ID {
            // Too many for a command line: the disk itself, every row.
            let s = crate::verify::scan_target(tgt, user)?;
            return Ok((
                s,
                format!("read on the disk itself ({n} row(s) outside the final sync's manifests)"),
            ));
        }
        let scan = crate::verify::check_uncovered(tgt, user, scan, &uncovered)?;
        Ok((
            scan,
            format!("compared with the final sync's fresh manifests of it ({n} row(s) read on the disk itself; {read})"),
        ))
    }

    /// Say that `read_rows_early` will run: target-up waits for its rows then.
    pub fn expect_rows_early(&self) {
        self.early_rows.promise();
    }

    /// Read the file cache rows ahead, for target-up (`target_filecache`) to take: on the
    /// source, whose database nothing writes to any more (the lanes start once its web server
    /// is stopped), once the database step has its rows in the target (`database` imported;
    /// the target's config/ may not be in place yet: the final sync and target-config bring it). They are the target's rows once
    /// this run's database step has proved both sides' tables equal (row counts and row
    /// hashes, per table), and target-up uses them only then (the lanes read ahead only when
    /// they hold the database step). Runs on a thread of its own beside the lanes, after
    /// `expect_rows_early`; read-only.
    pub fn read_rows_early(&self, database: &Gate) {
        // However this ends (a panic too), a `take` waiting is answered.
        struct Answered<'a>(&'a EarlyRows);
        impl Drop for Answered<'_> {
            fn drop(&mut self) {
                if !self.0.answered() {
                    self.0
                        .put(Err(Failure::check("reading the file cache panicked")));
                }
            }
        }
        let _answered = Answered(&self.early_rows);
        // Once the database step's own reads of the source are done (the rows are in on the
        // target): read beside them, these would slow both lanes more than they save.
        if !database.wait_imported() {
            return self.early_rows.put(Err(Failure::check(
                "the database step failed before the file cache was read",
            )));
        }
        let t = Instant::now();
        let r = crate::verify::read_rows(&self.m.source, &self.src_user)
            .map(|rows| (rows, t.elapsed().as_secs_f64()));
        self.early_rows.put(r);
    }

    /// Target-up's first part: the log sizes before, then the web server started.
    fn target_up_start(&self) -> Result<(LogWatch, crate::laps::Laps), Failure> {
        let mut laps = crate::laps::Laps::start();
        let tgt = inventory::source_like_target(&self.m.target, &self.tgt_user)?;
        laps.lap("inventory");
        let logs = LogWatch::start(self, &tgt)?;
        laps.lap("log_sizes");
        let _ = self.target_inventory.set(tgt.clone());
        let cmds = self
            .m
            .config
            .target
            .start
            .clone()
            .unwrap_or_else(|| crate::cmd::init::service_commands(&tgt).1);
        let r = self.m.target.run(&cmds.join(" && "))?;
        laps.lap("start_web_server");
        if !r.ok() {
            return Err(Failure::check(format!("{}: the web server did not start (`{}`): {}", self.m.target.label(), cmds.join("; "), r.stderr_text()))
                .hint("look at the target's web server error log; the source can go back into service with `ocmigrate rollback`"));
        }
        Ok((logs, laps))
    }

    /// Target-up's web checks: status.php, the 503 page and the logs. Returns what the logs
    /// got, and the phases.
    fn target_up_checks(
        &self,
        ev: &mut dyn Events,
        logs: LogWatch,
        mut laps: crate::laps::Laps,
    ) -> Result<(String, crate::laps::Laps), Failure> {
        // Force a debug line in the target's ownCloud log for our probe, then take it away.
        let secret = format!(
            "ocm{}",
            blake3::hash(format!("{}{:?}", std::process::id(), Instant::now()).as_bytes())
                .to_hex()
                .get(..16)
                .unwrap_or("0")
        );
        let probe_cfg = self.m.target.root().join(PROBE_CONFIG);
        let php = format!("<?php\n$CONFIG = array (\n  'log.condition' => array ('shared_secret' => '{secret}'),\n);\n");
        self.m
            .target
            .write_file(&probe_cfg, php.as_bytes(), 0o640, &self.tgt_user, None)?;
        laps.lap("probe_config");
        let checks = (|| -> Result<(crate::web::StatusPhp, crate::web::Answer), Failure> {
            let s = self.wait_target_status(true)?;
            let idx = self
                .target_web
                .get(&format!("/index.php?log_secret={secret}"))?;
            let _ = self
                .target_web
                .get(&format!("/status.php?log_secret={secret}"))?;
            Ok((s, idx))
        })();
        laps.lap("status_and_503");
        let rm = self.m.target.run(&format!(
            "rm -f {}",
            crate::host::shell_quote(&probe_cfg.to_string_lossy())
        ))?;
        if !rm.ok() {
            ev.warning(&format!(
                "could not remove {}: {}",
                probe_cfg.display(),
                rm.stderr_text()
            ));
        }
        let (status, idx) = checks?;
        let want_version = self.src.config_version().unwrap_or("").to_string();
        if !status.installed || status.needs_db_upgrade || status.version != want_version {
            return Err(Failure::check(format!(
                "the target's status.php says installed={}, needsDbUpgrade={}, version={} (want true, false, {want_version})",
                status.installed, status.needs_db_upgrade, status.version
            ))
            .hint("the target's release must equal the source's; `ocmigrate plan` checks it"));
        }
        if idx.code != 503 || idx.retry_after.as_deref() != Some("120") {
            return Err(Failure::check(format!(
                "the target's index.php answered {} (Retry-After {:?}) instead of the 503 maintenance page",
                idx.code, idx.retry_after
            )));
        }
        let seen = logs.check(self, &secret, true)?;
        laps.lap("log_check");
        Ok((seen, laps))
    }

    fn wait_target_status(&self, maintenance: bool) -> Result<crate::web::StatusPhp, Failure> {
        self.wait_target_status_within(maintenance, TOGGLE_TIMEOUT)?
            .ok_or_else(|| {
                Failure::check(format!(
                    "{}: status.php does not say \"maintenance\":{maintenance} after {:?}",
                    self.target_web.label, TOGGLE_TIMEOUT
                ))
            })
    }

    /// Poll the target's status.php until it says `maintenance`, for at most `timeout`:
    /// `None` when it did not (an HTTP failure at the deadline is an error).
    fn wait_target_status_within(
        &self,
        maintenance: bool,
        timeout: Duration,
    ) -> Result<Option<crate::web::StatusPhp>, Failure> {
        // The web server may need a moment before it answers at all.
        let deadline = Instant::now() + timeout;
        let mut poll = Backoff::new();
        loop {
            match self.target_web.status() {
                Ok(s) if s.maintenance == maintenance => return Ok(Some(s)),
                Ok(_) => {}
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => {}
            }
            if Instant::now() > deadline {
                return Ok(None);
            }
            std::thread::sleep(poll.next());
        }
    }

    fn maintenance_off(&mut self, ev: &mut dyn Events) -> Result<Outcome, Failure> {
        let mut laps = crate::laps::Laps::start();
        let root = crate::host::shell_quote(&self.m.target.root().to_string_lossy());
        let r = self.m.target.run_as(
            &self.tgt_user,
            &format!("cd {root} && php occ maintenance:mode --off --no-interaction"),
            &[],
        )?;
        if !r.ok() {
            return Err(Failure::check(format!(
                "{}: occ maintenance:mode --off failed: {}",
                self.m.target.label(),
                r.stderr_text()
            )));
        }
        laps.lap("occ");
        let t0 = Instant::now();
        // PHP's opcache in the web server keeps the config.php that target-up's probes compiled
        // (maintenance on) until it revalidates it: up to `revalidate_freq` + 1 s (observed:
        // ~2-3 s with the Debian default of 2). When status.php does not agree at once (one request), a reload
        // of the target's web server (not yet live, nobody else uses it) drops that cache.
        let mut how = "";
        let at_once = self.target_web.status().is_ok_and(|s| !s.maintenance);
        if !at_once {
            laps.lap("first_poll");
            if let Some(cmds) = self.target_reload_commands()? {
                let r = self.m.target.run(&cmds.join(" && "))?;
                if r.ok() {
                    how = " (after a reload of the web server for PHP's opcache)";
                } else {
                    ev.warning(&format!(
                        "{}: `{}` failed ({}): waiting for PHP's opcache instead",
                        self.m.target.label(),
                        cmds.join("; "),
                        r.stderr_text().trim()
                    ));
                }
                laps.lap("reload");
            }
            self.wait_target_status(false)?;
        }
        laps.lap("seen_off");
        Ok(Outcome::done(format!(
            "status.php agreed after {:.1} s{how}",
            t0.elapsed().as_secs_f64()
        ))
        .figure("seen_after_s", t0.elapsed().as_secs_f64())
        .figure("reloaded", !how.is_empty())
        .figure("phases_s", laps.figure()))
    }

    /// The commands that reload the target's web server: its start commands (configured, or
    /// derived from its services) with `start` turned into `reload`, when every one of them is
    /// `systemctl start UNIT` or `service UNIT start`; otherwise none (then the opcache is
    /// waited for).
    fn target_reload_commands(&self) -> Result<Option<Vec<String>>, Failure> {
        let start = match &self.m.config.target.start {
            Some(c) => c.clone(),
            None => {
                let tgt = inventory::source_like_target(&self.m.target, &self.tgt_user)?;
                crate::cmd::init::service_commands(&tgt).1
            }
        };
        Ok(reload_commands(&start))
    }
    /// The live check's requests as the admin: PROPFIND of the admin's files (207; its root
    /// ETag is returned), then OCS `cloud/user`.
    fn live_requests(
        &self,
        password: &str,
        laps: &mut crate::laps::Laps,
    ) -> Result<String, Failure> {
        let (code, ms) = self
            .target_web
            .propfind(&self.admin_user, password, "", 0)?;
        if code == 401 {
            return Err(Failure::check(format!("the target refused the admin credentials for {} (401)", self.admin_user))
                .hint("check [web] admin_user and the file named by admin_password_file (an app password works)"));
        }
        if code != 207 {
            return Err(Failure::check(format!(
                "PROPFIND of {}'s files on the target answered {code}, not 207",
                self.admin_user
            )));
        }
        laps.lap("propfind");
        let etag = ms.root().and_then(|e| e.etag.clone()).unwrap_or_default();
        let (ocs_code, v) = self.target_web.ocs_user(&self.admin_user, password)?;
        let meta = v["ocs"]["meta"]["statuscode"].as_u64();
        if ocs_code != 200 || !matches!(meta, Some(100) | Some(200)) {
            return Err(Failure::check(format!(
                "OCS cloud/user on the target answered HTTP {ocs_code}, statuscode {meta:?}"
            )));
        }
        laps.lap("ocs");
        Ok(etag)
    }

    fn live_check(&mut self, j: &mut Journal, _ev: &mut dyn Events) -> Result<Outcome, Failure> {
        let mut laps = crate::laps::Laps::start();
        // The log paths as target-up found them (a resumed run reads them again).
        let tgt = match self.target_inventory.get() {
            Some(t) => t.clone(),
            None => inventory::source_like_target(&self.m.target, &self.tgt_user)?,
        };
        laps.lap("inventory");
        let logs = LogWatch::start(self, &tgt)?;
        laps.lap("log_sizes");
        let password = String::from_utf8_lossy(self.admin_password.expose()).into_owned();
        // Every user's root as the migrated database has it (PHP CLI, read-only): as target-up
        // read them in this run, else read now while the admin's requests run (they read too:
        // target-up proved the file cache agrees with the disk, so nothing is rescanned).
        let (web, roots) = std::thread::scope(|sc| {
            let roots = sc.spawn(|| {
                let t = Instant::now();
                let r = match self.target_roots.get() {
                    // As target-up read them (the target was in maintenance since).
                    Some(r) => Ok((r.clone(), "target-up")),
                    None => roots(&self.m.target, &self.tgt_user).map(|r| (r, "live-check")),
                };
                (r, t.elapsed())
            });
            let web = self.live_requests(&password, &mut laps);
            let r = roots.join().unwrap_or_else(|_| {
                (
                    Err(Failure::check("reading the roots panicked")),
                    Duration::ZERO,
                )
            });
            (web, r)
        });
        let etag = web?;
        let (roots, roots_t) = roots;
        let (roots, roots_from) = roots?;
        laps.put("roots_beside", roots_t.as_secs_f64());
        let db = roots
            .roots
            .get(&self.admin_user)
            .map(|r| r.etag.clone())
            .unwrap_or_default();
        if etag.trim_matches('"') != db.trim_matches('"') {
            return Err(Failure::check(format!(
                "the admin's root ETag over WebDAV is {etag}, the migrated database says \"{db}\""
            )));
        }
        let seen = logs.check(self, "", false)?;
        laps.lap("log_check");
        j.mark("target_live");
        // What rollback compares against: every user's root and the highest file id now.
        let at_live = serde_json::to_value(&roots).unwrap_or_default();
        Ok(Outcome::done(format!(
            "admin PROPFIND 207, root ETag equals the database's, OCS answers, logs clean ({seen})"
        ))
        .figure("root_etag", etag)
        .figure("roots_read_in", roots_from)
        .figure("at_live", at_live)
        .figure("phases_s", laps.figure()))
    }

    fn dns(&mut self, ev: &mut dyn Events) -> Result<Outcome, Failure> {
        if self.m.config.dns.mode == crate::config::DnsMode::None {
            return Ok(Outcome::skipped(format!(
                "[dns] mode is \"none\": point {} to the target yourself",
                self.public_url
            )));
        }
        if !self.opts.yes && !ev.confirm("The public name is switched to the target now. Continue?")
        {
            return Err(Failure::new(crate::exit::ExitKind::Interrupted, "stopped before the DNS change, as asked")
                .hint("the target is live; run `ocmigrate migrate` again (or `ocmigrate dns switch`) to change the record"));
        }
        let report = crate::dns::switch(&self.m.config.dns, &mut |e| {
            if let crate::dns::Event::ManualChange { instructions, .. } = &e {
                ev.info(instructions);
            }
        })?;
        if let Some(w) = &report.ttl_warning {
            ev.warning(w);
        }
        let v = serde_json::to_value(&report).unwrap_or_default();
        let mut o = Outcome::done(format!(
            "{} → {} on {} server(s) in {} ms",
            report.name,
            report.to,
            report.servers.len(),
            report.total_ms
        ));
        o.figures.insert("dns".into(), v);
        Ok(o)
    }
}

/// Every user's files root and the highest file id, read from an instance's database.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Roots {
    pub roots: std::collections::BTreeMap<String, Root>,
    pub max_fileid: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Root {
    pub fileid: u64,
    pub etag: String,
}

/// The database step's verdict: an error naming the tables that differ, or its outcome (how the
/// copy was made, `refreshed` or whole, and where the seconds went since `t0`).
fn database_outcome(
    copy: &crate::db::CopyReport,
    check: &crate::db::DbVerification,
    refreshed: bool,
    t0: Instant,
    laps: &crate::laps::Laps,
) -> Result<Outcome, Failure> {
    let diffs = check.differences();
    if !diffs.is_empty() {
        return Err(Failure::check(format!(
            "the target database differs from the source in {} table(s): {}",
            diffs.len(),
            diffs
                .iter()
                .map(|t| t.table.clone())
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .hint("run `ocmigrate migrate` again (the database step copies what differs again); `ocmigrate verify` shows each table's figures"));
    }
    Ok(Outcome::done(format!(
        "{} in {:.1} s, {} tables verified equal ({:.1} s in all)",
        copy.method,
        copy.seconds,
        check.tables.len(),
        t0.elapsed().as_secs_f64()
    ))
    .figure("method", copy.method.clone())
    .figure("seconds", copy.seconds)
    .figure("bytes_on_wire", copy.bytes_on_wire)
    .figure("tables", check.tables.len())
    .figure("refreshed", refreshed)
    .figure("copy_phases_s", copy.phases_s.clone())
    .figure("phases_s", laps.figure()))
}

pub fn roots(tgt: &crate::host::TargetHost, web_user: &str) -> Result<Roots, Failure> {
    static S: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let snippet: &'static str = S.get_or_init(|| format!("{PRELUDE_PHP}\n{ROOTS_PHP}"));
    let p = Probe::PhpRead {
        snippet,
        args: vec![tgt.root().display().to_string()],
    };
    let r = tgt.probe_as(web_user, &p)?;
    let text = r.stdout_text();
    serde_json::from_str(text.trim()).map_err(|e| {
        Failure::check(format!(
            "{}: cannot read the users' roots from the database ({e}): {} {}",
            tgt.label(),
            text.trim(),
            r.stderr_text()
        ))
    })
}

fn read_secret_file(path: &std::path::Path) -> Result<Secret, Failure> {
    let bytes = std::fs::read(path).map_err(|e| {
        Failure::usage(format!(
            "cannot read the admin password file {}: {e}",
            path.display()
        ))
        .hint("create it (mode 0600) with the admin's password or an app password on one line")
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let line = text.lines().next().unwrap_or("").to_string();
    if line.is_empty() {
        let what = if text.trim().is_empty() {
            "is empty"
        } else {
            "has an empty first line (the password must be on the first line)"
        };
        return Err(Failure::usage(format!(
            "the admin password file {} {what}",
            path.display()
        ))
        .hint("write the admin's password (or an app password) on its first line, in a file only root can read (mode 0600)"));
    }
    Ok(Secret::new(line.into_bytes()))
}

/// Log checks around a probe: the sizes of the target's logs before, then what they got.
struct LogWatch {
    owncloud_log: PathBuf,
    access_log: PathBuf,
    error_log: PathBuf,
    oc_from: u64,
    access_from: u64,
    error_from: u64,
}

fn size_of(text: &str) -> u64 {
    text.lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0)
}

impl LogWatch {
    fn start(ctx: &Ctx, tgt: &Inventory) -> Result<LogWatch, Failure> {
        let datadir = tgt.datadir.clone().unwrap_or_default();
        let default_log = if tgt.flavor() == Some(inventory::Flavor::Nextcloud) {
            "nextcloud.log"
        } else {
            "owncloud.log"
        };
        let owncloud_log = tgt
            .cfg_str("logfile")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(format!("{datadir}/{default_log}")));
        let (access_log, error_log) = web_logs(tgt);
        let size = |p: &PathBuf| -> Result<u64, Failure> {
            Ok(size_of(
                &ctx.m
                    .target
                    .probe(&Probe::ReadFrom(p.clone(), u64::MAX / 2))?
                    .stdout_text(),
            ))
        };
        Ok(LogWatch {
            oc_from: size(&owncloud_log)?,
            access_from: size(&access_log)?,
            error_from: size(&error_log)?,
            owncloud_log,
            access_log,
            error_log,
        })
    }

    fn read(ctx: &Ctx, p: &std::path::Path, from: u64) -> Result<String, Failure> {
        let r = ctx
            .m
            .target
            .probe(&Probe::ReadFrom(p.to_path_buf(), from))?;
        let text = r.stdout_text();
        Ok(text
            .split_once('\n')
            .map(|(_, rest)| rest.to_string())
            .unwrap_or_default())
    }

    /// Check what the logs got since `start`: entries from the probe (when `want_entries`), and
    /// no error lines. Returns a short description.
    fn check(&self, ctx: &Ctx, secret: &str, want_entries: bool) -> Result<String, Failure> {
        let access = Self::read(ctx, &self.access_log, self.access_from)?;
        let oc = Self::read(ctx, &self.owncloud_log, self.oc_from)?;
        let errors = Self::read(ctx, &self.error_log, self.error_from)?;
        let ours = access.lines().filter(|l| l.contains("ocmigrate/")).count();
        if want_entries {
            if ours == 0 {
                return Err(Failure::check(format!("the target's access log {} got no entry from the probe", self.access_log.display()))
                    .hint("set the web server to log requests there (or name the log in the migration file)"));
            }
            let forced = oc
                .lines()
                .filter(|l| l.contains(secret) || l.contains("\"level\":0"))
                .count();
            if forced == 0 {
                return Err(Failure::check(format!("the target's ownCloud log {} got no entry from the probe", self.owncloud_log.display()))
                    .hint("check that the log file is writable by the web user and `log_type` is the file log"));
            }
        }
        let bad: Vec<&str> = oc
            .lines()
            .filter(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .ok()
                    .and_then(|v| v["level"].as_u64())
                    .is_some_and(|lvl| lvl >= 3)
            })
            .collect();
        if let Some(first) = bad.first() {
            return Err(Failure::check(format!("the target's ownCloud log got {} error line(s) during the checks, first: {:.300}", bad.len(), first))
                .hint("fix what it says on the target; `ocmigrate rollback` puts the source back in service meanwhile"));
        }
        let web_errors: Vec<&str> = errors
            .lines()
            .filter(|l| l.contains(":error]") || l.contains("PHP Fatal") || l.contains(":emerg]"))
            .collect();
        if let Some(first) = web_errors.first() {
            return Err(Failure::check(format!(
                "the target's web server logged {} error line(s), first: {:.300}",
                web_errors.len(),
                first
            )));
        }
        Ok(format!(
            "{ours} access log entries, {} ownCloud log lines, no errors",
            oc.lines().count()
        ))
    }
}

/// The web server's access and error logs, by the server the host runs.
pub(super) fn web_logs(inv: &Inventory) -> (PathBuf, PathBuf) {
    let units = &inv.services.units;
    if units.iter().any(|u| u == "nginx") {
        (
            "/var/log/nginx/access.log".into(),
            "/var/log/nginx/error.log".into(),
        )
    } else if units.iter().any(|u| u == "httpd") {
        (
            "/var/log/httpd/access_log".into(),
            "/var/log/httpd/error_log".into(),
        )
    } else {
        (
            "/var/log/apache2/access.log".into(),
            "/var/log/apache2/error.log".into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reload_commands_from_start_commands() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            reload_commands(&v(&["service php8.2-fpm start", "service nginx start"])),
            Some(v(&["service php8.2-fpm reload", "service nginx reload"]))
        );
        assert_eq!(
            reload_commands(&v(&["systemctl start apache2"])),
            Some(v(&["systemctl reload apache2"]))
        );
        assert_eq!(reload_commands(&v(&["/opt/web/bin/start"])), None);
        assert_eq!(
            reload_commands(&v(&["systemctl start apache2", "apachectl -k start"])),
            None
        );
        assert_eq!(reload_commands(&[]), None);
        assert_eq!(
            reload_commands(&v(&[crate::cmd::init::APACHE2_START])),
            Some(v(&[
                &crate::cmd::init::APACHE2_START.replace(" start", " graceful")
            ]))
        );
        assert_eq!(
            reload_commands(&v(&["apachectl start"])),
            Some(v(&["apachectl graceful"]))
        );
    }

    /// Rows read ahead: nobody waits when none were promised; a promised take waits for them.
    #[test]
    fn early_rows_are_waited_for_only_when_promised() {
        let e = EarlyRows::default();
        assert!(e.take().is_none(), "nothing promised: no wait");
        e.promise();
        std::thread::scope(|sc| {
            sc.spawn(|| {
                std::thread::sleep(Duration::from_millis(50));
                e.put(Ok((Vec::new(), 0.5)));
            });
            let got = e.take().expect("promised rows");
            assert_eq!(got.unwrap().1, 0.5);
        });
        assert!(e.take().is_none(), "taken once");
    }

    #[test]
    fn backoff_starts_short_and_caps() {
        let mut b = Backoff::new();
        let d: Vec<u128> = (0..6).map(|_| b.next().as_millis()).collect();
        assert_eq!(d, vec![20, 40, 80, 160, 250, 250]);
    }
}
