//! Hub replicas (X5, DESIGN §10): the leader election and the work only
//! the leader does.
//!
//! Owns:
//! - [`election`] — on PostgreSQL, each replica keeps one dedicated
//!   connection (outside the store's pool) and tries a session-level
//!   advisory lock ([`election::LEADER_LOCK`]) on it every
//!   [`election::TICK`]; the replica holding it leads and pings the
//!   connection every tick. A ping that fails or takes longer than
//!   [`election::PROBE_WAIT`], or a connection that closes, ends the
//!   leadership at once ([`crate::app::replica::Replica::set_leader`]) and
//!   the connection is dropped, which releases the lock on the server.
//!   When a leader dies (SIGKILL, power), its connection closes and
//!   PostgreSQL releases the lock; another replica takes it at its next
//!   try, within a second. The same connection carries wake-ups between
//!   replicas (`LISTEN`/`NOTIFY` on [`election::WAKE_CHANNEL`]): a
//!   follower that stored a publication job or a mail wakes the leader's
//!   loop instead of its own. On sled there is one hub: always the leader.
//! - [`lead`] — runs a loop (the mail sender, the publishing loop,
//!   the alert loop, the broker outbox worker and reconciliation, the
//!   rendition worker) only while this replica leads: started when it
//!   becomes leader, cancelled — and awaited — as soon as it stops being
//!   one.
//!
//! What runs on every replica: the HTTP API, the MQTT link and device
//! report ingest (through a shared subscription with an external broker,
//! so each report reaches one replica), settling the broker outbox after a
//! replica's own writes. What runs on the leader only: the loops above,
//! `hub_time`, republishing retained state (on every connect and when
//! leadership is taken) and the retained-state watch (in
//! [`crate::mqtt`]'s link).
//!
//! Must not: decide what any of that work does; the work stays correct if
//! two replicas briefly both believe they lead (a leader frozen past its
//! ping), because every once-only step is a store transaction that
//! re-checks what it changes (a job runs once, a mail is marked sent
//! once); only the SMTP send itself can then repeat (mail is
//! at-least-once, see [`crate::mail::sender`]).

pub mod election;
mod work;

pub use work::{StartWork, lead};
