//! Devices (S7): pairing, device records, their credentials and the signed
//! commands sent to them (DESIGN §5).
//!
//! Owns: the device records, open and recent pairings with their code
//! index, the per-device command log, the broker outbox, and the facts the
//! broker and the device routes ask ("are these a device's credentials?",
//! "which group manifests may this device read?", "which key signs this
//! device's reports?"). [`service`] holds the rules of pairing, moving,
//! unpairing, feed variables and commands (who may: `manage_devices`, P7,
//! and the actor's domain, T3, T4), each change one transaction; [`repo`]
//! writes each record with its indexes; [`outbox`] makes the broker follow
//! (S7, S10) without a transaction held across a broker call. May call: the
//! store, [`crate::tenancy`] and [`crate::access_groups`] to read (and to
//! end a device's memberships when it is unpaired, L4), the
//! [`crate::mqtt::admin::BrokerAdmin`] seam. Must not: publish (publishing
//! reads devices; the API publishes after a change) or import `crate::api`.
//!
//! # Secrets
//! The pairing ticket and the device secret are 32 random bytes each
//! ([`crate::identity::new_token`]); only their SHA-256 is stored, so a copy
//! of the store can neither collect a pairing nor log in as a device. One
//! window is deliberate: the device secret is made when an operator
//! approves, and its plain text waits in the pairing record until the agent
//! collects it at its next poll (seconds later); collection deletes it in
//! the same durable write that answers the poll, and an uncollected secret
//! is deleted [`COLLECT_TTL_SECS`] after approval (then the operator unpairs
//! and pairs again). The plain text is never logged or listed.
//!
//! # Storage
//! | tree | key | value |
//! |---|---|---|
//! | [`DEVICES`] | device id | [`Device`] |
//! | [`PAIRINGS`] | SHA-256 of the ticket | [`Pairing`] |
//! | [`PAIRING_CODES`] | code | SHA-256 of the ticket (open pairings only) |
//! | [`PAIRING_SLOTS`] | `all/{n:04}`, `from/{address}/{n:02}`, [`PRUNED_AT`] | [`PairingSlot`]; the last prune's time |
//! | [`DEVICE_COMMANDS`] | `{device}/{version:020}` | [`StoredCommand`] |
//! | [`crate::tenancy::NODE_DEVICES`] | `{node}/{device}` | `{"device": id}` |
//! | [`outbox::BROKER_OUTBOX`] | device id | [`outbox::OutboxEntry`] |

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use ring::rand::{SecureRandom as _, SystemRandom};
use serde::{Deserialize, Serialize};
use signet_common::documents::CommandAction;
use signet_common::envelope::PublicKey;
use signet_common::ids::{DeviceId, NodeId, UserId};

use crate::access_groups::{self, MemberRef};
use crate::app::Hub;
use crate::identity::token_key;
use crate::store::{Store, StoreError};
use crate::tenancy::load_tree;

pub mod documents;
mod error;
pub mod outbox;
pub mod repo;
pub mod service;
pub mod views;

#[cfg(test)]
mod testing;

pub use outbox::{reconcile_broker_access, retire_group};
pub use service::DeviceError;

/// Tree of paired devices by id (named in [`crate::tenancy`], whose
/// attachment look-up reads it by key).
pub use crate::tenancy::DEVICES;
/// Tree of pairings by the SHA-256 of their ticket.
pub const PAIRINGS: &str = "pairings";
/// Tree of open pairings' ticket hashes by code.
pub const PAIRING_CODES: &str = "pairing_codes";
/// Tree of the slots open pairings hold (the S7 bounds): [`MAX_OPEN_PAIRINGS`]
/// keys `all/{n:04}` and [`MAX_OPEN_PAIRINGS_PER_ADDRESS`] keys
/// `from/{address}/{n:02}` per client address. A request takes a free slot
/// of each by point reads, so requests neither scan every pairing nor
/// conflict unless they probe the same slot.
pub const PAIRING_SLOTS: &str = "pairing_slots";
/// The key in [`PAIRING_SLOTS`] of the time closed pairings were last pruned.
pub const PRUNED_AT: &str = "pruned_at";
/// Tree of signed commands, keyed `{device}/{version:020}`.
pub const DEVICE_COMMANDS: &str = "device_commands";

/// How long a pairing code may be approved, in seconds.
pub const PAIRING_TTL_SECS: i64 = 15 * 60;
/// How long an approved pairing's credentials wait for the agent, in seconds.
pub const COLLECT_TTL_SECS: i64 = 15 * 60;
/// How long a closed pairing (expired, rejected, collected) still answers
/// its agent's poll with the reason before it is deleted, in seconds.
pub const CLOSED_RETENTION_SECS: i64 = 60 * 60;
/// How often (at most) a pairing request prunes closed pairings, in seconds.
pub const PRUNE_INTERVAL_SECS: i64 = 60;
/// How long an agent waits between polls, in seconds.
pub const POLL_SECS: u32 = 5;
/// The most open (pending, unexpired) pairings the hub holds.
pub const MAX_OPEN_PAIRINGS: usize = 1000;
/// The most open pairings requested from one client address: a site
/// behind one NAT address may pair this many screens at once.
pub const MAX_OPEN_PAIRINGS_PER_ADDRESS: usize = 32;
/// The alphabet of pairing codes: digits and upper-case letters without
/// the look-alikes 0/O, 1/I/L.
pub const CODE_ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
/// The longest device name, in bytes.
pub const MAX_DEVICE_NAME_LEN: usize = 128;
/// How long a command may still run after it was signed, in seconds.
pub const COMMAND_TTL_SECS: i64 = 5 * 60;
/// The most commands kept per device (older ones are pruned).
pub const MAX_COMMANDS_KEPT: usize = 50;

/// A paired screen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// Stable id (`d-…`), also its MQTT user name.
    pub id: DeviceId,
    /// Display name.
    pub name: String,
    /// The leaf node it is attached to (T1).
    pub node: NodeId,
    /// The agent's own Ed25519 public key (standard base64), from pairing.
    pub public_key: String,
    /// Operating system, as the agent reported at pairing.
    pub os: String,
    /// Agent version, as reported at pairing.
    pub agent_version: String,
    /// When it was approved.
    pub paired_at: DateTime<Utc>,
    /// Who approved it.
    pub paired_by: UserId,
    /// SHA-256 (hex) of its secret: broker password and HTTP credential.
    pub secret_hash: String,
    /// The version of the newest command signed for it (S3: strictly
    /// increasing per device).
    #[serde(default)]
    pub last_command_version: u64,
    /// Its values for the feed-URL variables `[1]`…`[25]` (D6), carried in
    /// its signed assignment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<u8, String>,
}

/// Where a pairing stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum PairingState {
    /// Waiting for an operator until the pairing's `expires_at`.
    Pending,
    /// Approved: the device exists; its secret waits for collection.
    Approved {
        /// The device made.
        device: DeviceId,
        /// The plain secret until the agent collects it (see the module
        /// doc); `None` once collected or expired.
        secret: Option<String>,
        /// When it was approved.
        approved_at: DateTime<Utc>,
        /// Who approved it.
        approved_by: UserId,
        /// Until when the agent may collect the credentials.
        collect_by: DateTime<Utc>,
        /// When the agent collected them.
        collected_at: Option<DateTime<Utc>>,
    },
    /// Refused by an operator.
    Rejected {
        /// When.
        at: DateTime<Utc>,
        /// Who.
        by: UserId,
    },
}

/// One pairing request of an agent (S7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pairing {
    /// SHA-256 (hex) of the ticket: also the key.
    pub ticket_hash: String,
    /// The code shown on the screen.
    pub code: String,
    /// The agent's public key (standard base64).
    pub public_key: String,
    /// The agent's version.
    pub agent_version: String,
    /// The device's operating system.
    pub os: String,
    /// The client address it came from (per-address bound).
    pub from: String,
    /// When it was requested.
    pub requested_at: DateTime<Utc>,
    /// Until when the code may be approved.
    pub expires_at: DateTime<Utc>,
    /// Where it stands.
    pub state: PairingState,
    /// The [`PAIRING_SLOTS`] keys it holds while pending (freed when it
    /// is approved or rejected, or by time when it expires).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slots: Vec<String>,
}

/// A slot of [`PAIRING_SLOTS`]: held by the pairing `ticket_hash` until it
/// leaves pending or `expires_at` passes, whichever comes first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairingSlot {
    /// The pairing holding it.
    pub ticket_hash: String,
    /// When it is free again at the latest.
    pub expires_at: DateTime<Utc>,
}

impl PairingSlot {
    /// Whether it still holds a pairing at `now`.
    #[must_use]
    pub fn is_held(&self, now: DateTime<Utc>) -> bool {
        now < self.expires_at
    }
}

impl Pairing {
    /// Whether an operator may still approve or reject it at `now`.
    #[must_use]
    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        matches!(self.state, PairingState::Pending) && now < self.expires_at
    }

    /// When it stopped being useful to anyone: expiry, collection (or the
    /// end of the collection window) or rejection; `None` while still in use.
    #[must_use]
    pub fn closed_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.state {
            PairingState::Pending => (now >= self.expires_at).then_some(self.expires_at),
            PairingState::Approved {
                collect_by,
                collected_at,
                ..
            } => collected_at.or_else(|| (now >= *collect_by).then_some(*collect_by)),
            PairingState::Rejected { at, .. } => Some(*at),
        }
    }
}

/// A signed command as stored (Deliver 7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCommand {
    /// The device.
    pub device: DeviceId,
    /// Its version (per device).
    pub version: u64,
    /// What it asks.
    pub action: CommandAction,
    /// Its nonce.
    pub nonce: String,
    /// When it was signed.
    pub issued_at: DateTime<Utc>,
    /// When it stops being valid.
    pub expires_at: DateTime<Utc>,
    /// Who asked.
    pub issued_by: UserId,
    /// The signed envelope, byte for byte as published.
    pub envelope: String,
}

/// The key of a command record.
#[must_use]
pub fn command_key(device: &DeviceId, version: u64) -> String {
    format!("{device}/{version:020}")
}

/// The key of a device's [`crate::tenancy::NODE_DEVICES`] entry.
#[must_use]
pub fn node_device_key(node: &NodeId, device: &DeviceId) -> String {
    format!("{node}/{device}")
}

/// A fresh pairing code: [`signet_common::sync::PAIRING_CODE_LEN`]
/// characters of [`CODE_ALPHABET`], uniformly drawn (rejection sampling).
#[must_use]
pub fn new_code() -> String {
    let len = signet_common::sync::PAIRING_CODE_LEN;
    let mut code = String::with_capacity(len);
    // 31 symbols: accept bytes below 248 (8 × 31) so every symbol is equally likely.
    let limit = u8::try_from(256 / CODE_ALPHABET.len() * CODE_ALPHABET.len()).unwrap_or(248);
    while code.len() < len {
        let mut bytes = [0u8; 16];
        random_fill(&mut bytes);
        for b in bytes {
            if b < limit && code.len() < len {
                code.push(char::from(
                    CODE_ALPHABET[usize::from(b) % CODE_ALPHABET.len()],
                ));
            }
        }
    }
    code
}

/// A fresh random hex nonce (16 bytes).
#[must_use]
pub fn new_nonce() -> String {
    let mut bytes = [0u8; 16];
    random_fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A random index below `n` (`0` when `n` is 0): where a slot probe starts.
#[must_use]
pub fn random_below(n: usize) -> usize {
    let mut bytes = [0u8; 8];
    random_fill(&mut bytes);
    usize::try_from(u64::from_le_bytes(bytes) % u64::try_from(n.max(1)).unwrap_or(1)).unwrap_or(0)
}

fn random_fill(bytes: &mut [u8]) {
    #[allow(clippy::expect_used)] // no safe fallback exists for a broken OS RNG
    SystemRandom::new()
        .fill(bytes)
        .expect("the operating system's random source failed");
}

/// A code as an operator typed it, normalized: trimmed, upper case, dashes
/// and spaces dropped; `None` when it cannot be a code.
#[must_use]
pub fn normalize_code(code: &str) -> Option<String> {
    let code: String = code
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.len() == signet_common::sync::PAIRING_CODE_LEN
        && code.bytes().all(|b| CODE_ALPHABET.contains(&b)))
    .then_some(code)
}

/// Whether two equal-length byte strings are equal, in time that does not
/// depend on where they differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether `username` / `password` are a paired device's broker
/// credentials (the device id and its secret): one store read and one
/// SHA-256, compared in constant time.
///
/// # Errors
/// When the store fails.
pub fn broker_login(store: &Store, username: &str, password: &str) -> Result<bool, StoreError> {
    if username.is_empty()
        || username.len() > signet_common::ids::MAX_ID_LEN
        || password.is_empty()
        || password.len() > 256
    {
        return Ok(false);
    }
    let Some(device) = store.get::<Device>(DEVICES, username)? else {
        return Ok(false);
    };
    let offered = token_key(password);
    Ok(constant_time_eq(
        offered.as_bytes(),
        device.secret_hash.as_bytes(),
    ))
}

/// The device `id`, if paired.
///
/// # Errors
/// When the store fails.
pub fn device(store: &Store, id: &str) -> Result<Option<Device>, StoreError> {
    if id.is_empty() || id.len() > signet_common::ids::MAX_ID_LEN {
        return Ok(None);
    }
    store.get(DEVICES, id)
}

/// The public key registered for device `id` at pairing: the only key its
/// reports may be signed with (S11). `None` when no such device is paired,
/// or when its stored key does not parse (logged: the record was written
/// from a checked pairing request, so that is corruption).
///
/// # Errors
/// When the store fails.
pub fn registered_key(store: &Store, id: &DeviceId) -> Result<Option<PublicKey>, StoreError> {
    let Some(record) = device(store, id.as_str())? else {
        return Ok(None);
    };
    match PublicKey::from_base64(&record.public_key) {
        Ok(key) => Ok(Some(key)),
        Err(error) => {
            tracing::error!(device = %id, %error, "the device's registered public key is unusable");
            Ok(None)
        }
    }
}

/// The group ids whose manifests `device` may read on the broker (S7): the
/// node chain root → its node, and the access groups it is a current,
/// active member of — what its assignment lists.
///
/// # Errors
/// When the store fails.
pub fn broker_groups(store: &Store, device: &Device) -> Result<Vec<String>, StoreError> {
    let (tree, _) = load_tree(store)?;
    let mut groups: Vec<String> = tree
        .path_to_root(&device.node)
        .into_iter()
        .map(ToString::to_string)
        .collect();
    let member = MemberRef::Device {
        device_id: device.id.clone(),
    };
    groups.extend(
        access_groups::memberships_of(store, &member)?
            .into_iter()
            .filter(|(_, record)| record.is_current() && record.active)
            .map(|(group, _)| group.id.to_string()),
    );
    groups.sort();
    groups.dedup();
    Ok(groups)
}

/// Makes `device`'s broker access follow the store (its current group
/// list, password unchanged) through the outbox: one transaction writes
/// the entry, then it is applied ([`outbox::settle`]); what the broker
/// refuses stays in the outbox, which retries.
///
/// # Errors
/// The store's failure or the broker's refusal, as text.
pub async fn refresh_broker_access(state: &Hub, device: &DeviceId) -> Result<(), String> {
    let now = state.now();
    state
        .store
        .transact(|tx| outbox::enqueue_in(tx, device, None, now))
        .await
        .map_err(|e| e.to_string())?;
    match outbox::settle(state, std::slice::from_ref(device), outbox::PUBLISH_WAIT)
        .await
        .into_iter()
        .next()
    {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s7_codes_use_the_unambiguous_alphabet() {
        for _ in 0..200 {
            let code = new_code();
            assert_eq!(code.len(), signet_common::sync::PAIRING_CODE_LEN);
            assert!(code.bytes().all(|b| CODE_ALPHABET.contains(&b)), "{code}");
            assert!(!code.contains(['0', 'O', '1', 'I', 'L']), "{code}");
            assert_eq!(normalize_code(&code.to_lowercase()), Some(code.clone()));
        }
        assert_eq!(normalize_code("abcd-efgh"), Some("ABCDEFGH".into()));
        assert_eq!(normalize_code("ABCDEFG0"), None);
        assert_eq!(normalize_code("ABC"), None);
    }

    #[test]
    fn constant_time_eq_compares_whole_strings() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
