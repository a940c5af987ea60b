//! The devices' repository: one function per record that writes the record
//! and its indexes, inside a transaction.
//!
//! Owns: the writes of [`DEVICES`] with its [`NODE_DEVICES`] entry,
//! [`PAIRINGS`] with its [`PAIRING_CODES`] entry and [`DEVICE_COMMANDS`];
//! the reads the devices service decides on. Must not: decide anything
//! (the service does) or call out of the store.

use chrono::{DateTime, TimeDelta, Utc};
use signet_common::ids::{DeviceId, NodeId};

use super::{
    CLOSED_RETENTION_SECS, DEVICE_COMMANDS, DEVICES, Device, MAX_COMMANDS_KEPT, PAIRING_CODES,
    PAIRINGS, Pairing, PairingState, StoredCommand, command_key, node_device_key,
};
use crate::access_groups::{self, AccessGroup, Member, MemberRef};
use crate::store::{StoreError, Tx};
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
/// it is pending, deleted (if it still points at it) once it is not.
///
/// # Errors
/// When the store fails.
pub fn put_pairing(tx: &mut Tx, pairing: &Pairing) -> Result<(), StoreError> {
    if matches!(pairing.state, PairingState::Pending) {
        tx.put(PAIRING_CODES, &pairing.code, &pairing.ticket_hash)?;
    } else {
        drop_code(tx, pairing)?;
    }
    tx.put(PAIRINGS, &pairing.ticket_hash, pairing)
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

/// Every pairing still open at `now`.
///
/// # Errors
/// When the store fails.
pub fn open_pairings(tx: &mut Tx, now: DateTime<Utc>) -> Result<Vec<Pairing>, StoreError> {
    Ok(tx
        .scan::<Pairing>(PAIRINGS, "")?
        .into_iter()
        .filter(|p| p.is_open(now))
        .collect())
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

/// Deletes pairings closed for longer than [`CLOSED_RETENTION_SECS`] (and
/// their code entries), and drops the plain secret of approved pairings
/// whose collection window passed.
///
/// # Errors
/// When the store fails.
pub fn prune_pairings(tx: &mut Tx, now: DateTime<Utc>) -> Result<(), StoreError> {
    let retention = TimeDelta::seconds(CLOSED_RETENTION_SECS);
    for mut pairing in tx.scan::<Pairing>(PAIRINGS, "")? {
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
    Ok(())
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
