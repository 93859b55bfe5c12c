//! ocmigrate moves a self-hosted ownCloud (or Nextcloud) server from one machine to another:
//! the admin manual's migration procedure, automated, verified at every step, resumable.
//!
//! # Layout
//! * [`cli`] and [`cmd`]: the command line and one thin module per command.
//! * [`config`]: the migration file, parsed and checked, touching nothing.
//! * [`exit`]: the exit-code table and the error type that carries a code and a hint.
//! * [`agent`]: `ocmigrate agent` on a remote host, its framed protocol, deployment and client.
//! * [`dns`]: the CNAME step (RFC 2136 with TSIG, or manual), and propagation checks.
//!
//! The binary is glue: `main` parses the command line, calls `cmd::<name>::run`, and maps the
//! result to an exit code. See `doc/design.md` for the terms, the invariants and the protocol.

pub mod agent;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod db;
pub mod dns;
pub mod exit;
pub mod host;
pub mod instance;
pub mod inventory;
pub mod laps;
pub mod migration;
pub mod preflight;
pub mod runbook;
pub mod transfer;
pub mod verify;
pub mod web;
