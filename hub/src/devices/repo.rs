//! The devices' repository: one function per record that writes the record
//! and its indexes, inside a transaction.
//!
//! Owns: the writes of [`DEVICES`] with its [`NODE_DEVICES`] entry,
//! [`PAIRINGS`] with its [`PAIRING_CODES`] entry and its
//! [`PAIRING_SLOTS`], and [`DEVICE_COMMANDS`];
//! the reads the devices service decides on. Must not: decide anything
//! (the service does) or call out of the store.

use chrono::{DateTime, TimeDelta, Utc};
use signet_common::ids::{DeviceId, NodeId};

use super::{
    CLOSED_RETENTION_SECS, DEVICE_COMMANDS, DEVICES, Device, MAX_COMMANDS_KEPT, MAX_OPEN_PAIRINGS,
    MAX_OPEN_PAIRINGS_PER_ADDRESS, PAIRING_CODES, PAIRING_SLOTS, PAIRINGS, PRUNE_INTERVAL_SECS,
    PRUNED_AT, Pairing, PairingSlot, PairingState, StoredCommand, command_key, node_device_key,
};
use crate::access_groups::{self, AccessGroup, Member, MemberRef};
use crate::store::{Store, StoreError, Tx};
use crate::tenancy::NODE_DEVICES;

/// Stores `device` and its [`NODE_DEVICES`] entry; `previous_node` is the
/// node it was attached to before (its entry there is deleted).
///
/// # Errors
/// When the store fails.
pub fn put_device(
    tx: &mut Tx,
    device: &Device,
    previous_node: Option<&NodeId>,
) -> Result<(), StoreError> {
    if let Some(previous) = previous_node.filter(|n| **n != device.node) {
        tx.delete(NODE_DEVICES, &node_device_key(previous, &device.id));
    }
    tx.put(
        NODE_DEVICES,
        &node_device_key(&device.node, &device.id),
        &serde_json::json!({"device": device.id}),
    )?;
    tx.put(DEVICES, device.id.as_str(), device)
}

/// Deletes `device`, its [`NODE_DEVICES`] entry and its command log.
///
/// # Errors
/// When the store fails.
pub fn delete_device(tx: &mut Tx, device: &Device) -> Result<(), StoreError> {
    tx.delete(DEVICES, device.id.as_str());
    tx.delete(NODE_DEVICES, &node_device_key(&device.node, &device.id));
    for key in tx.scan_keys(DEVICE_COMMANDS, &format!("{}/", device.id))? {
        tx.delete(DEVICE_COMMANDS, &key);
    }
    Ok(())
}

/// The device `id`, if paired.
///
/// # Errors
/// When the store fails.
pub fn device(tx: &mut Tx, id: &str) -> Result<Option<Device>, StoreError> {
    if id.is_empty() || id.len() > signet_common::ids::MAX_ID_LEN {
        return Ok(None);
    }
    tx.get(DEVICES, id)
}

/// Stores `command` and prunes the device's log to [`MAX_COMMANDS_KEPT`].
///
/// # Errors
/// When the store fails.
pub fn put_command(tx: &mut Tx, command: &StoredCommand) -> Result<(), StoreError> {
    let kept = tx.scan_keys(DEVICE_COMMANDS, &format!("{}/", command.device))?;
    let excess = (kept.len() + 1).saturating_sub(MAX_COMMANDS_KEPT);
    for key in kept.iter().take(excess) {
        tx.delete(DEVICE_COMMANDS, key);
    }
    tx.put(
        DEVICE_COMMANDS,
        &command_key(&command.device, command.version),
        command,
    )
}

/// Stores `pairing` and keeps its [`PAIRING_CODES`] entry: present while
/// it is pending, deleted (if it still points at it) once it is not; once
/// it is not pending, its [`PAIRING_SLOTS`] are freed too.
///
/// # Errors
/// When the store fails.
pub fn put_pairing(tx: &mut Tx, pairing: &Pairing) -> Result<(), StoreError> {
    if matches!(pairing.state, PairingState::Pending) {
        tx.put(PAIRING_CODES, &pairing.code, &pairing.ticket_hash)?;
        return tx.put(PAIRINGS, &pairing.ticket_hash, pairing);
    }
    drop_code(tx, pairing)?;
    for key in &pairing.slots {
        if tx
            .get::<PairingSlot>(PAIRING_SLOTS, key)?
            .is_some_and(|slot| slot.ticket_hash == pairing.ticket_hash)
        {
            tx.delete(PAIRING_SLOTS, key);
        }
    }
    let mut stored = pairing.clone();
    stored.slots.clear();
    tx.put(PAIRINGS, &pairing.ticket_hash, &stored)
}

/// Deletes `pairing`'s code entry if it still points at it.
fn drop_code(tx: &mut Tx, pairing: &Pairing) -> Result<(), StoreError> {
    if tx
        .get::<String>(PAIRING_CODES, &pairing.code)?
        .is_some_and(|hash| hash == pairing.ticket_hash)
    {
        tx.delete(PAIRING_CODES, &pairing.code);
    }
    Ok(())
}

/// The pairing whose ticket hashes to `key`.
///
/// # Errors
/// When the store fails.
pub fn pairing(tx: &mut Tx, key: &str) -> Result<Option<Pairing>, StoreError> {
    tx.get(PAIRINGS, key)
}

/// Why a pairing request got no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoSlot {
    /// The hub holds [`MAX_OPEN_PAIRINGS`] open pairings.
    Hub,
    /// The address holds [`MAX_OPEN_PAIRINGS_PER_ADDRESS`]; the first of
    /// them expires at this time.
    Address(DateTime<Utc>),
}

/// The [`PAIRING_SLOTS`] key of slot `n` of client address `from`.
#[must_use]
pub fn address_slot_key(from: &str, n: usize) -> String {
    format!("from/{from}/{n:02}")
}

/// The first key of `keys` whose slot is free at `now`, or the earliest
/// time one of them frees up.
fn free_slot(
    tx: &mut Tx,
    keys: impl Iterator<Item = String>,
    now: DateTime<Utc>,
) -> Result<Result<String, DateTime<Utc>>, StoreError> {
    let mut first_free: Option<DateTime<Utc>> = None;
    for key in keys {
        match tx.get::<PairingSlot>(PAIRING_SLOTS, &key)? {
            Some(slot) if slot.is_held(now) => {
                first_free = Some(first_free.map_or(slot.expires_at, |t| t.min(slot.expires_at)));
            }
            _ => return Ok(Ok(key)),
        }
    }
    Ok(Err(first_free.unwrap_or(now)))
}

/// Takes a free slot of each S7 bound for the pending pairing
/// `ticket_hash` from `from`, until `expires_at`: one of the hub's
/// [`MAX_OPEN_PAIRINGS`] and one of the address's
/// [`MAX_OPEN_PAIRINGS_PER_ADDRESS`], each probed by point reads from a
/// random start (`starts`), so concurrent requests rarely read the same
/// slot. Returns the keys taken, or why none was free.
///
/// # Errors
/// When the store fails.
pub fn take_slots(
    tx: &mut Tx,
    ticket_hash: &str,
    from: &str,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
    starts: (usize, usize),
) -> Result<Result<Vec<String>, NoSlot>, StoreError> {
    let all =
        (0..MAX_OPEN_PAIRINGS).map(|i| format!("all/{:04}", (starts.0 + i) % MAX_OPEN_PAIRINGS));
    let Ok(hub_slot) = free_slot(tx, all, now)? else {
        return Ok(Err(NoSlot::Hub));
    };
    let mine = (0..MAX_OPEN_PAIRINGS_PER_ADDRESS)
        .map(|i| address_slot_key(from, (starts.1 + i) % MAX_OPEN_PAIRINGS_PER_ADDRESS));
    let address_slot = match free_slot(tx, mine, now)? {
        Ok(key) => key,
        Err(first_free) => return Ok(Err(NoSlot::Address(first_free))),
    };
    let slot = PairingSlot {
        ticket_hash: ticket_hash.to_owned(),
        expires_at,
    };
    tx.put(PAIRING_SLOTS, &hub_slot, &slot)?;
    tx.put(PAIRING_SLOTS, &address_slot, &slot)?;
    Ok(Ok(vec![hub_slot, address_slot]))
}

/// The open pairing with `code` at `now`, if any.
///
/// # Errors
/// When the store fails.
pub fn open_pairing_by_code(
    tx: &mut Tx,
    code: &str,
    now: DateTime<Utc>,
) -> Result<Option<Pairing>, StoreError> {
    let Some(hash) = tx.get::<String>(PAIRING_CODES, code)? else {
        return Ok(None);
    };
    Ok(pairing(tx, &hash)?.filter(|p| p.is_open(now)))
}

/// Whether pruning at `now` changes `pairing`: closed longer than
/// [`CLOSED_RETENTION_SECS`], an approved one still holding a plain
/// secret, or an expired one still holding its code.
fn needs_pruning(pairing: &Pairing, code_held: bool, now: DateTime<Utc>) -> bool {
    let Some(closed) = pairing.closed_at(now) else {
        return false;
    };
    now >= closed + TimeDelta::seconds(CLOSED_RETENTION_SECS)
        || matches!(
            &pairing.state,
            PairingState::Approved {
                secret: Some(_),
                ..
            }
        )
        || (matches!(pairing.state, PairingState::Pending) && code_held)
}

/// The pairings that pruning at `now` would change (read outside any
/// transaction: [`prune_pairings`] reads each again inside its own).
///
/// # Errors
/// When the store fails.
pub fn prune_candidates(store: &Store, now: DateTime<Utc>) -> Result<Vec<String>, StoreError> {
    let mut found = Vec::new();
    for pairing in store.scan::<Pairing>(PAIRINGS, "")? {
        let code_held = matches!(pairing.state, PairingState::Pending)
            && store
                .get::<String>(PAIRING_CODES, &pairing.code)?
                .is_some_and(|hash| hash == pairing.ticket_hash);
        if needs_pruning(&pairing, code_held, now) {
            found.push(pairing.ticket_hash);
        }
    }
    Ok(found)
}

/// Of the pairings `candidates`, deletes those closed for longer than
/// [`CLOSED_RETENTION_SECS`] (and their code entries), and drops the plain
/// secret of approved pairings whose collection window passed; records
/// `now` as [`PRUNED_AT`]. Reads only these pairings (by key), so it does
/// not conflict with pairing requests.
///
/// # Errors
/// When the store fails.
pub fn prune_pairings(
    tx: &mut Tx,
    candidates: &[String],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let retention = TimeDelta::seconds(CLOSED_RETENTION_SECS);
    for hash in candidates {
        let Some(mut pairing) = pairing(tx, hash)? else {
            continue;
        };
        let Some(closed) = pairing.closed_at(now) else {
            continue;
        };
        if matches!(pairing.state, PairingState::Pending) {
            drop_code(tx, &pairing)?;
        }
        if now >= closed + retention {
            tx.delete(PAIRINGS, &pairing.ticket_hash);
        } else if let PairingState::Approved { secret, .. } = &mut pairing.state
            && secret.is_some()
        {
            *secret = None;
            tx.put(PAIRINGS, &pairing.ticket_hash.clone(), &pairing)?;
        }
    }
    tx.put(PAIRING_SLOTS, PRUNED_AT, &now)
}

/// `device`'s access-group memberships (removed ones included), read in
/// `tx` through the access groups' member index.
///
/// # Errors
/// When the store fails.
pub fn memberships(
    tx: &mut Tx,
    device: &DeviceId,
) -> Result<Vec<(AccessGroup, Member)>, StoreError> {
    let member = MemberRef::Device {
        device_id: device.clone(),
    };
    let ids: Vec<signet_common::ids::AccessGroupId> =
        tx.scan(access_groups::MEMBER_GROUPS, &format!("{}/", member.key()))?;
    let mut found = Vec::with_capacity(ids.len());
    for id in ids {
        let group = tx.get::<AccessGroup>(access_groups::GROUPS, id.as_str())?;
        let record = tx.get::<Member>(
            access_groups::MEMBERS,
            &access_groups::member_key(&id, &member),
        )?;
        if let (Some(group), Some(record)) = (group, record) {
            found.push((group, record));
        }
    }
    Ok(found)
}

/// Ends `device`'s current access-group memberships at `now` (L4; the
/// records stay for usage reports, L8). Returns the groups it left.
///
/// # Errors
/// When the store fails.
pub fn end_memberships(
    tx: &mut Tx,
    device: &DeviceId,
    now: DateTime<Utc>,
) -> Result<Vec<AccessGroup>, StoreError> {
    let member = MemberRef::Device {
        device_id: device.clone(),
    };
    let mut left = Vec::new();
    for (group, mut record) in memberships(tx, device)? {
        if record.is_current() {
            record.membership.removed_at = Some(now);
            record.active = false;
            tx.put(
                access_groups::MEMBERS,
                &access_groups::member_key(&group.id, &member),
                &record,
            )?;
            left.push(group);
        }
    }
    Ok(left)
}

/// Prunes closed pairings ([`prune_pairings`]) when the last prune is
/// [`PRUNE_INTERVAL_SECS`] old (or in the future: the clock went back), in
/// a transaction of its own that reads only the pairings it changes.
///
/// # Errors
/// When the store fails.
pub async fn prune_if_due(store: &Store, now: DateTime<Utc>) -> Result<(), StoreError> {
    let interval = TimeDelta::seconds(PRUNE_INTERVAL_SECS);
    let recent = |at: Option<DateTime<Utc>>| at.is_some_and(|at| at <= now && now < at + interval);
    if recent(store.get(PAIRING_SLOTS, PRUNED_AT)?) {
        return Ok(());
    }
    let candidates = prune_candidates(store, now)?;
    store
        .transact(|tx| {
            if recent(tx.get(PAIRING_SLOTS, PRUNED_AT)?) {
                return Ok(());
            }
            prune_pairings(tx, &candidates, now)
        })
        .await
}
