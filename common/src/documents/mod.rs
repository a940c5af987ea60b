//! The payloads of signed documents (DESIGN §4–§5).
//!
//! Owns: the typed payload of every document kind but `trust` (which lives
//! with the key hierarchy in [`crate::trust`]), their bounds and their
//! rollback subjects. Must not: sign or verify — [`crate::envelope`] and
//! [`crate::trust`] do that.
//!
//! Payloads are UTF-8 JSON; times are RFC 3339 UTC strings. Unknown payload
//! fields are ignored so an older agent can read a newer hub's documents;
//! the envelope itself accepts no unknown fields.

mod command;
mod hub_time;

pub use command::{Command, CommandAction, CommandError, MAX_NONCE_LEN};
pub use hub_time::HubTime;
