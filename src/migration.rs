//! A migration: the migration file resolved into live hosts, and its state folder.
//!
//! `Migration::open` is the first thing that runs ssh. The state folder (journal, manifests,
//! logs, report) sits beside the migration file and is created with mode 0700.

use crate::config::{Config, Side};
use crate::exit::Failure;
use crate::host::{ConnectOptions, Host, SourceHost, TargetHost};
use std::path::{Path, PathBuf};

pub struct Migration {
    pub config: Config,
    pub config_path: PathBuf,
    pub source: SourceHost,
    pub target: TargetHost,
}

/// Connect to one side in a role.
pub fn connect_source(side: &Side) -> Result<SourceHost, Failure> {
    let host = Host::connect("source", side, &connect_options())?;
    Ok(SourceHost::new(host, side.root().to_path_buf()))
}

pub fn connect_target(side: &Side) -> Result<TargetHost, Failure> {
    let host = Host::connect("target", side, &connect_options())?;
    Ok(TargetHost::new(host, side.root().to_path_buf()))
}

/// Connect to both sides at once (each ssh master costs a round trip or more), then
/// [`refuse_same_folder`]. A failure of the source is reported before one of the target.
pub fn connect_both(source: &Side, target: &Side) -> Result<(SourceHost, TargetHost), Failure> {
    crate::transfer::timing::mark("connect");
    // Most commands then start agents: their binary is hashed while the hosts connect.
    crate::agent::deploy::AgentBinary::prewarm();
    let (s, t) = std::thread::scope(|sc| {
        let h = sc.spawn(|| connect_source(source));
        let t = connect_target(target);
        let s = h
            .join()
            .unwrap_or_else(|_| Err(Failure::check("connecting panicked")));
        (s, t)
    });
    let (s, t) = (s?, t?);
    crate::transfer::timing::mark("connected");
    refuse_same_folder(&s, &t)?;
    crate::transfer::timing::mark("same-folder check");
    Ok((s, t))
}

/// Refuse a target that is the source's own folder under another name (a symlink, a bind mount,
/// another address of the same machine): a copy onto it would write the source. Same kernel boot
/// and same device and inode of the root mean the same folder. A target root that does not
/// exist yet cannot be the source.
pub fn refuse_same_folder(source: &SourceHost, target: &TargetHost) -> Result<(), Failure> {
    // Both identities came with the connection (`Host::connect`): no round trip here.
    match (source.root_identity(), target.root_identity()) {
        (Some(a), Some(b)) if a == b => Err(Failure::usage(format!(
            "the target {} is the source's own folder {} (the same folder on the same machine)",
            target.label(),
            source.label()
        ))
        .hint("point [target] side at the new machine's instance folder, not a symlink or another name of the source")),
        _ => Ok(()),
    }
}

/// `OCMIGRATE_SSH_CONFIG` names an extra ssh config file (`ssh -F`); otherwise the user's own
/// `~/.ssh/config` applies as usual.
fn connect_options() -> ConnectOptions {
    ConnectOptions {
        ssh_config: std::env::var_os("OCMIGRATE_SSH_CONFIG").map(PathBuf::from),
        control_dir: None,
    }
}

impl Migration {
    pub fn open(config_path: &Path) -> Result<Migration, Failure> {
        let config = Config::load(config_path)?;
        let (source, target) = connect_both(&config.source.side, &config.target.side)?;
        Ok(Migration {
            config,
            config_path: config_path.to_path_buf(),
            source,
            target,
        })
    }

    /// The state folder beside the migration file: `ocmigrate.toml` → `ocmigrate.state/`.
    pub fn state_dir(&self) -> PathBuf {
        state_dir_for(&self.config_path)
    }
}

pub fn state_dir_for(config_path: &Path) -> PathBuf {
    let stem = config_path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "ocmigrate".into());
    config_path.with_file_name(format!("{stem}.state"))
}
