//! One module per command: load what the command needs, call the library, print, and return the
//! exit kind. No migration logic lives here.

pub mod agent;
pub mod db;
pub mod dns;
pub mod init;
pub mod plan;
