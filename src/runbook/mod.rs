//! The runbook: the cut-over procedure as steps that check, act, verify and write the journal.
//! (The journal is here; the steps land as the transfer engine and the database leg do.)

pub mod journal;

pub use journal::{Journal, State, Step};
