//! `ocmigrate init`: inspect both sides (read-only) and write a commented migration file.

use crate::config::{Config, Side};
use crate::exit::{ExitKind, Failure, HELP_FOOTER};
use crate::inventory::{self, Inventory};
use std::io::Write;
use std::path::PathBuf;

const EXAMPLE: &str = "Example:
  ocmigrate init --source ssh://root@old.example.com/var/www/owncloud \\
                 --target ssh://root@new.example.com/var/www/owncloud
  ocmigrate plan";

/// Inspect both sides (read-only) and write a migration file with what was found.
#[derive(Debug, clap::Args)]
#[command(after_help = format!("{EXAMPLE}\n\n{HELP_FOOTER}"))]
pub struct InitArgs {
    /// The original machine: ssh://[user@]host[:port]/path/to/owncloud, or an absolute path.
    #[arg(long, value_name = "SIDE")]
    pub source: Side,
    /// The new machine, with the same ownCloud release installed (code only).
    #[arg(long, value_name = "SIDE")]
    pub target: Side,
    /// Where to write the migration file.
    #[arg(
        short = 'o',
        long = "output",
        value_name = "FILE",
        default_value = "ocmigrate.toml"
    )]
    pub output: PathBuf,
    /// Replace an existing migration file.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: InitArgs) -> anyhow::Result<ExitKind> {
    if args.output.exists() && !args.force {
        return Err(
            Failure::usage(format!("{} exists already", args.output.display()))
                .hint("give another name with -o FILE, or --force to replace it")
                .into(),
        );
    }
    if args.source == args.target {
        return Err(Failure::usage("the source and the target are the same side").into());
    }
    let (source, target) = crate::migration::connect_both(&args.source, &args.target)?;
    eprintln!("Inspecting {} …", source.label());
    let src = inventory::source(&source, None)?;
    eprintln!("Inspecting {} …", target.label());
    let tgt = inventory::target(&target)?;
    for (side, inv) in [(&source.label(), &src), (&target.label(), &tgt)] {
        if let Some(why) = &inv.without_php {
            eprintln!("note: {side}: PHP could not run ({why}); the config was read by ocmigrate's own reader");
        }
    }
    let text = render(&args.source, &args.target, &src, &tgt);
    // The file must parse as what we promise; a failure here is our bug, not the admin's.
    Config::from_toml(&text, &args.output)
        .map_err(|e| anyhow::anyhow!("internal error: init wrote an invalid file: {e}"))?;
    write_atomically(&args.output, text.as_bytes())?;
    println!(
        "Wrote {}. Check it, then run: ocmigrate plan -c {}",
        args.output.display(),
        args.output.display()
    );
    Ok(ExitKind::Ok)
}

/// Write a file under a temporary name, then rename it (mode 0600: it names secret files).
pub fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> Result<(), Failure> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let res = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    res.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Failure::usage(format!("cannot write {}: {e}", path.display()))
    })
}

fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn list(items: &[String]) -> String {
    format!(
        "[{}]",
        items.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ")
    )
}

/// Debian's apache2 without systemd: what its init script's `stop` does (SIGTERM to the
/// pidfile's apache2, which ends every child, PHP requests included, before it exits), then
/// waiting until it has exited, polled every few milliseconds: the script polls once a second, so
/// `service apache2 stop` takes 1 s more than the stop. `--oknodo`: nothing running is success.
/// A pidfile elsewhere stops nothing, and the runbook's check (the source no longer answers
/// HTTP) fails instead of going on.
pub const APACHE2_STOP: &str = "start-stop-daemon --stop --quiet --oknodo --retry=TERM/60 --pidfile /var/run/apache2/apache2.pid --name apache2";

/// Debian's apache2 without systemd: what its init script's `start` runs (`apache2ctl start` in a
/// clean environment, which parses the configuration and fails on an error), without the
/// script's 1 s poll for the pidfile afterwards; the runbook polls the web server itself.
pub const APACHE2_START: &str = "env -i LANG=C PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin apache2ctl start";

/// The web server stop and start commands, as the host's admin would type them (Debian's apache2
/// without systemd: the init script's own commands, without its 1 s polls; see [`APACHE2_STOP`]).
pub fn service_commands(inv: &Inventory) -> (Vec<String>, Vec<String>, String) {
    let units = &inv.services.units;
    let web: Vec<&String> = units
        .iter()
        .filter(|u| ["apache2", "httpd", "nginx"].contains(&u.as_str()))
        .collect();
    let fpm: Vec<&String> = units.iter().filter(|u| u.ends_with("-fpm")).collect();
    let mut chosen: Vec<&String> = web.into_iter().take(1).collect();
    if chosen.first().is_some_and(|u| *u == "nginx") {
        chosen.extend(fpm);
    }
    let verb = |v: &str, u: &str| {
        if inv.services.systemd {
            format!("systemctl {v} {u}")
        } else if u == "apache2" && v == "stop" {
            APACHE2_STOP.to_string()
        } else if u == "apache2" && v == "start" {
            APACHE2_START.to_string()
        } else {
            format!("service {u} {v}")
        }
    };
    let stop = chosen.iter().map(|u| verb("stop", u)).collect();
    let start = chosen.iter().rev().map(|u| verb("start", u)).collect();
    let what = if chosen.is_empty() {
        "none detected: set them by hand".to_string()
    } else {
        format!(
            "detected: {}{}",
            chosen
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" + "),
            if inv.services.systemd {
                " (systemd)"
            } else if chosen.iter().any(|u| *u == "apache2") {
                " (its init script's commands, without the script's 1 s polls)"
            } else {
                ""
            }
        )
    };
    (stop, start, what)
}

fn render(source: &Side, target: &Side, src: &Inventory, tgt: &Inventory) -> String {
    let mut o = String::new();
    let flavor = src
        .flavor()
        .map(|f| f.to_string())
        .unwrap_or_else(|| "ownCloud".into());
    let (files, bytes) = src.filecache_totals().unwrap_or((0, 0));
    let db = src.db.as_ref();
    o.push_str("# ocmigrate migration file, written by `ocmigrate init`. Check it, then run `ocmigrate plan`.\n#\n");
    o.push_str(&format!(
        "# Source: {flavor} {} (config version {}), database {}{}, {files} file cache rows, {:.1} MiB,\n",
        src.release.as_ref().and_then(|r| r.versionstring.clone()).unwrap_or_default(),
        src.config_version().unwrap_or("?"),
        db.map(|d| d.kind.as_str()).unwrap_or("?"),
        db.and_then(|d| d.server.as_ref()).map(|s| format!(" ({s})")).unwrap_or_default(),
        bytes as f64 / 1048576.0
    ));
    o.push_str(&format!(
        "#         data directory {}, PHP {}.\n",
        src.datadir.as_deref().unwrap_or("?"),
        src.php.version
    ));
    for (side, inv) in [("source", src), ("target", tgt)] {
        if let Some(why) = &inv.without_php {
            o.push_str(&format!(
                "# Note: PHP could not run on the {side} ({why}): its config was read by ocmigrate's own\n#       reader, and its database and PHP modules are unknown. `ocmigrate plan` says what that means.\n"
            ));
        }
    }
    o.push_str(&format!(
        "# Target: release {} {} installed, PHP {}.\n\n",
        tgt.flavor()
            .map(|f| f.to_string())
            .unwrap_or_else(|| "(none found)".into()),
        tgt.code_version().unwrap_or(""),
        tgt.php.version
    ));
    let (sstop, sstart, swhat) = service_commands(src);
    o.push_str("[source]\n");
    o.push_str(&format!("side = {}\n", q(&source.to_string())));
    o.push_str(&format!(
        "web_user = {}    # owner of config/config.php\n",
        q(src.config_owner.as_deref().unwrap_or("www-data"))
    ));
    o.push_str(&format!("stop = {}    # {swhat}\n", list(&sstop)));
    o.push_str(&format!(
        "start = {}    # used by rollback\n\n",
        list(&sstart)
    ));
    let (tstop, tstart, twhat) = service_commands(tgt);
    let address = match target {
        Side::Ssh { host, .. } => host.clone(),
        Side::Local { .. } => "127.0.0.1".into(),
    };
    o.push_str("[target]\n");
    o.push_str(&format!("side = {}\n", q(&target.to_string())));
    o.push_str(&format!(
        "address = {}    # where the target answers HTTP before DNS points to it\n",
        q(&address)
    ));
    o.push_str(&format!("stop = {}    # {twhat}\n", list(&tstop)));
    o.push_str(&format!("start = {}\n\n", list(&tstart)));
    o.push_str("[web]\n");
    match src.cfg_str("overwrite.cli.url").filter(|u| u.starts_with("http")) {
        Some(u) => o.push_str(&format!("public_url = {}    # overwrite.cli.url\n", q(u.trim_end_matches('/')))),
        None => o.push_str("# public_url = \"https://cloud.example.com\"    # overwrite.cli.url is not set: write the URL clients use\n"),
    }
    o.push_str("admin_user = \"admin\"\n");
    o.push_str("# admin_password_file = \"/root/ocmigrate-admin\"    # a file holding the admin's password (an app password works)\n\n");
    o.push_str("[cutover]\ndrain = \"7m\"    # wait after maintenance is seen, so every sync client notices; \"auto\" or \"0s\" allowed\n\n");
    o.push_str("[database]\ntarget_admin = \"socket\"    # create the database and its user as root through the server's socket\nreplace_target = false    # refuse to import into a database that has tables\nprecopy = true            # MariaDB/MySQL: copy the database during the online sync; the window refreshes what changed\n\n");
    o.push_str("[dns]\nmode = \"none\"    # \"rfc2136\" (signed update) or \"manual\" to let ocmigrate do the CNAME step\n");
    let public_host = src
        .cfg_str("overwrite.cli.url")
        .and_then(|u| u.split("://").nth(1))
        .map(|h| h.split(['/', ':']).next().unwrap_or(h).to_string());
    o.push_str("# server = \"ns1.example.com:53\"\n# zone = \"example.com.\"\n");
    o.push_str(&format!(
        "# name = {}\n",
        q(&format!(
            "{}.",
            public_host.as_deref().unwrap_or("cloud.example.com")
        ))
    ));
    o.push_str("# target = \"new.example.com.\"\n# tsig_key_file = \"/etc/ocmigrate/tsig.key\"\n");
    o
}
