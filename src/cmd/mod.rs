//! One module per command: load what the command needs, call the library, print, and return the
//! exit kind. No migration logic lives here.

pub mod agent;
pub mod db;
pub mod dns;
pub mod events;
pub mod init;
pub mod migrate;
pub mod plan;
pub mod rollback;
pub mod status;
pub mod sync;
pub mod verify;
