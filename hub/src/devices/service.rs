//! The devices service (S7, T1, T4, D6, Deliver 4 and 7): pairing, moving,
//! renaming, unpairing, feed variables and commands.
//!
//! Owns: the rules of these operations — who may (`manage_devices`, P7,
//! checked first: 403; the nodes and devices involved inside the actor's
//! domain: 404 otherwise, T4), what is valid, the bounds on open pairings —
//! their audit entries and their after-commit effects (the fleet feed, the
//! broker outbox). Each change is one transaction that reads what it
//! decides on, writes the records through [`super::repo`], its audit entry
//! and, when broker access changes, an outbox entry ([`super::outbox`]).
//! Must not: publish (the caller publishes the node or groups a change
//! names: `crate::publish` reads devices, so it sits above this module) or
//! call the broker inside a transaction.
//!
//! Open pairings belong to no tenant yet: only root-level actors list
//! them; everyone else approves by typing the code from the screen, the
//! proof of standing in front of it (listing codes to every tenant would let
//! one tenant claim another's screen). Pairing requests are bounded: at
//! most [`MAX_OPEN_PAIRINGS`] open ones, and [`MAX_OPEN_PAIRINGS_PER_ADDRESS`]
//! per client address, each counted by the slots a pending pairing holds
//! ([`super::PAIRING_SLOTS`]) rather than by scanning every pairing.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use signet_common::documents::{Command, validate_variables};
use signet_common::envelope::sign_document;
use signet_common::ids::{AccessGroupId, DeviceId, NodeId};
use signet_common::permissions::{NodeTree, Permission};
use signet_common::sync::{BrokerAccess, PairingRequest, PairingStatus, PairingTicket};

use super::views::{
    ApprovePairing, CommandAccepted, CommandRequest, DeviceView, PairingView, SetVariables,
    UpdateDevice,
};
use super::{
    COLLECT_TTL_SECS, COMMAND_TTL_SECS, Device, MAX_DEVICE_NAME_LEN, MAX_OPEN_PAIRINGS,
    MAX_OPEN_PAIRINGS_PER_ADDRESS, PAIRING_TTL_SECS, POLL_SECS, Pairing, PairingState,
    StoredCommand, new_code, new_nonce, normalize_code, outbox, random_below, repo,
};
use crate::app::Hub;
use crate::audit::AuditEntry;
use crate::identity::{Actor, new_id, new_token, token_key};
use crate::store::{StoreError, Tx, WriteBatch};
use crate::tenancy::{load_tree, load_tree_in};
use crate::values::Name;

pub use super::error::DeviceError;

/// A device as stored after a change, and what follows from it.
#[derive(Debug)]
pub struct Changed {
    /// The device as stored now.
    pub device: Device,
    /// Whether its node changed (or it is new): publish that node.
    pub node_changed: bool,
    /// Why its broker access is not updated yet, when it is not (the
    /// outbox keeps trying).
    pub broker_error: Option<String>,
}

/// A command signed and stored, to be sent.
#[derive(Debug)]
pub struct SignedCommand {
    /// What the API answers (`delivered` still false).
    pub accepted: CommandAccepted,
    /// The signed envelope, byte for byte as stored.
    pub envelope: String,
}

/// An unpaired device and the access groups it left (publish them, L4).
#[derive(Debug)]
pub struct Unpaired {
    /// The device as it was.
    pub device: Device,
    /// The groups whose memberships ended.
    pub groups: Vec<AccessGroupId>,
}

/// Refuses (403) an actor without `manage_devices` (P7), before anything
/// is parsed; each change checks again with [`require_manage_devices_in`].
fn require_manage_devices(hub: &Hub, actor: &Actor) -> Result<(), DeviceError> {
    let permissions = crate::permission_groups::effective_permissions_of(&hub.store, &actor.user)?;
    manages_devices(permissions.contains(Permission::ManageDevices))
}

/// [`require_manage_devices`] read in the change's transaction, so the
/// change commits only if the permission it rests on still holds (P8).
fn require_manage_devices_in(tx: &mut Tx, actor: &Actor) -> Result<(), DeviceError> {
    let permissions = crate::permission_groups::effective_permissions_of_in(tx, &actor.user)?;
    manages_devices(permissions.contains(Permission::ManageDevices))
}

fn manages_devices(holds: bool) -> Result<(), DeviceError> {
    if holds {
        Ok(())
    } else {
        Err(DeviceError::Forbidden)
    }
}

/// A device name as typed, trimmed: 1 to [`MAX_DEVICE_NAME_LEN`] bytes
/// without control characters.
fn device_name(raw: &str) -> Result<String, DeviceError> {
    Name::parse(raw.trim(), MAX_DEVICE_NAME_LEN)
        .map(|name| name.as_str().to_owned())
        .map_err(|_| DeviceError::Invalid {
            code: "invalid_name",
            message: format!(
                "a device name is 1 to {MAX_DEVICE_NAME_LEN} bytes without control characters"
            ),
        })
}

/// `node` must be inside the actor's domain (404) and have no children
/// (T1: 409).
fn leaf_for_devices(actor: &Actor, tree: &NodeTree, node: &NodeId) -> Result<(), DeviceError> {
    if !tree.contains(node) || !actor.sees(tree, node) {
        return Err(DeviceError::NotFound("node"));
    }
    if !tree.is_leaf(node) {
        return Err(DeviceError::Conflict {
            code: "node_not_leaf",
            message: "devices attach only to leaf nodes; this node has children".to_owned(),
        });
    }
    Ok(())
}

/// The device `id` as `tx` sees it, visible to the actor (404 otherwise, T4).
fn visible_in(
    tx: &mut Tx,
    actor: &Actor,
    tree: &NodeTree,
    id: &str,
) -> Result<Device, DeviceError> {
    repo::device(tx, id)?
        .filter(|d| actor.sees(tree, &d.node))
        .ok_or(DeviceError::NotFound("device"))
}

/// Records `entry` in `tx`.
fn record(tx: &mut Tx, entry: AuditEntry) -> Result<(), StoreError> {
    let mut batch = WriteBatch::new();
    entry.record(&mut batch)?;
    tx.include(batch);
    Ok(())
}

fn device_audit(
    actor: &Actor,
    at: DateTime<Utc>,
    action: &str,
    device: &Device,
    detail: serde_json::Value,
) -> AuditEntry {
    actor.audit(
        at,
        action,
        device.id.as_str(),
        Some(device.node.clone()),
        detail,
    )
}

/// Applies `device`'s outbox entry now (after the commit that wrote it);
/// the broker's refusal, if any.
async fn settle_one(hub: &Hub, device: &DeviceId) -> Option<String> {
    outbox::settle(hub, std::slice::from_ref(device), outbox::PUBLISH_WAIT)
        .await
        .into_iter()
        .next()
}

// -------------------------------------------------------- device-facing

/// The refusal for a request that found no slot (see [`repo::take_slots`]).
fn refusal(no_slot: repo::NoSlot, now: DateTime<Utc>) -> DeviceError {
    match no_slot {
        repo::NoSlot::Hub => DeviceError::TooManyPairings,
        repo::NoSlot::Address(first_free) => {
            let secs = u64::try_from((first_free - now).num_seconds()).unwrap_or(0);
            DeviceError::TooManyFromAddress {
                retry_after: secs.max(1),
            }
        }
    }
}

/// An agent asks to pair (S7) from address `from` with the pairing request
/// `body`: a code to show and the secret ticket to poll with. Prunes closed
/// pairings on the way (at most every [`super::PRUNE_INTERVAL_SECS`]). Reads by
/// point keys only — a slot of each bound, the candidate codes — so the
/// cost does not grow with the pairings stored and concurrent requests
/// do not conflict.
///
/// # Errors
/// [`DeviceError::Invalid`] for a bad request,
/// [`DeviceError::TooManyPairings`], [`DeviceError::TooManyFromAddress`],
/// or a store failure.
pub async fn request_pairing(
    hub: &Hub,
    body: &[u8],
    from: &str,
) -> Result<PairingTicket, DeviceError> {
    let request: PairingRequest =
        signet_common::sync::parse(body).map_err(|e| DeviceError::Invalid {
            code: "invalid_pairing_request",
            message: e.to_string(),
        })?;
    let (ticket, ticket_hash) = new_token();
    let now = hub.now();
    let expires_at = now + TimeDelta::seconds(PAIRING_TTL_SECS);
    // Candidates and slot probes drawn outside the transaction (its
    // closure stays pure).
    let candidates: Vec<String> = (0..16).map(|_| new_code()).collect();
    let starts = (
        random_below(MAX_OPEN_PAIRINGS),
        random_below(MAX_OPEN_PAIRINGS_PER_ADDRESS),
    );
    repo::prune_if_due(&hub.store, now).await?;
    let code = hub
        .store
        .transact(|tx| {
            let slots = repo::take_slots(tx, &ticket_hash, from, expires_at, now, starts)?
                .map_err(|no_slot| refusal(no_slot, now))?;
            // A code unique among open pairings (31^8 codes).
            let mut code = None;
            for candidate in &candidates {
                if repo::open_pairing_by_code(tx, candidate, now)?.is_none() {
                    code = Some(candidate.clone());
                    break;
                }
            }
            let code = code.ok_or_else(|| {
                DeviceError::Internal("no free pairing code after 16 tries".into())
            })?;
            let pairing = Pairing {
                ticket_hash: ticket_hash.clone(),
                code: code.clone(),
                public_key: request.public_key.clone(),
                agent_version: request.agent_version.clone(),
                os: request.os.clone(),
                from: from.to_owned(),
                requested_at: now,
                expires_at,
                state: PairingState::Pending,
                slots,
            };
            repo::put_pairing(tx, &pairing)?;
            let detail =
                serde_json::json!({"os": pairing.os, "agent_version": pairing.agent_version});
            record(
                tx,
                AuditEntry {
                    from: from.to_owned(),
                    detail,
                    ..AuditEntry::new(now, "device.pairing_request", &code)
                },
            )?;
            Ok::<_, DeviceError>(code)
        })
        .await?;
    Ok(PairingTicket {
        ticket,
        code,
        expires_at,
        poll_secs: POLL_SECS,
    })
}

/// What one poll decided.
enum Poll {
    Answer(PairingStatus),
    Collected(DeviceId, String),
}

fn closed(reason: &str) -> Result<Poll, DeviceError> {
    Ok(Poll::Answer(PairingStatus::Closed {
        reason: reason.to_owned(),
    }))
}

/// One poll of the pairing whose ticket hashes to `key`, in `tx`: the
/// answer, or the credentials collected now (the plain secret deleted in
/// the same write). With `ca_error`, nothing is collected (the secret
/// waits for the next poll).
fn collect(
    tx: &mut Tx,
    key: &str,
    now: DateTime<Utc>,
    ca_error: Option<&str>,
) -> Result<Poll, DeviceError> {
    let mut pairing = repo::pairing(tx, key)?.ok_or(DeviceError::NotFound("pairing"))?;
    let (device_id, secret) = match &mut pairing.state {
        PairingState::Pending if now < pairing.expires_at => {
            return Ok(Poll::Answer(PairingStatus::Pending {
                expires_at: pairing.expires_at,
            }));
        }
        PairingState::Pending => {
            return closed("expired: nobody approved the code in time");
        }
        PairingState::Rejected { .. } => return closed("rejected by an operator"),
        PairingState::Approved {
            collected_at: Some(_),
            ..
        } => return closed("the credentials were already collected"),
        PairingState::Approved {
            device,
            secret,
            collect_by,
            collected_at,
            ..
        } => {
            let plain = secret.take();
            if now < *collect_by {
                *collected_at = Some(now);
            }
            (device.clone(), plain.filter(|_| now < *collect_by))
        }
    };
    let Some(secret) = secret else {
        // Too late: the plain secret is dropped now, not at the next prune.
        repo::put_pairing(tx, &pairing)?;
        return closed("the credentials were not collected in time; pair again");
    };
    if repo::device(tx, device_id.as_str())?.is_none() {
        // Nothing to hand out: drop the secret of the unpaired device.
        if let PairingState::Approved { collected_at, .. } = &mut pairing.state {
            *collected_at = None;
        }
        repo::put_pairing(tx, &pairing)?;
        return closed("the device was unpaired before its credentials were collected");
    }
    if let Some(error) = ca_error {
        return Err(DeviceError::Internal(error.to_owned()));
    }
    repo::put_pairing(tx, &pairing)?;
    record(
        tx,
        AuditEntry {
            from: "device".to_owned(),
            detail: serde_json::json!({"code": pairing.code}),
            ..AuditEntry::new(now, "device.credentials_collected", device_id.as_str())
        },
    )?;
    Ok(Poll::Collected(device_id, secret))
}

/// An agent polls its pairing: pending; approved with its credentials,
/// answered exactly once (the plain secret is deleted in the same durable
/// write); or closed with a reason (rejected, expired, collected).
///
/// # Errors
/// [`DeviceError::NotFound`] for an unknown ticket, or a store failure.
pub async fn poll_pairing(hub: &Hub, ticket: &str) -> Result<PairingStatus, DeviceError> {
    if ticket.is_empty() || ticket.len() > 128 {
        return Err(DeviceError::NotFound("pairing"));
    }
    let key = token_key(ticket);
    // Read before the secret is spent: a failure leaves it for the next poll.
    let ca_pem = hub
        .config
        .device_ca_pem()
        .map_err(|e| DeviceError::Internal(format!("mqtt.device_ca_file: {e}")));
    let now = hub.now();
    let ca_error = ca_pem.as_ref().err().map(ToString::to_string);
    let polled = hub
        .store
        .transact(|tx| collect(tx, &key, now, ca_error.as_deref()))
        .await?;
    match polled {
        Poll::Answer(status) => Ok(status),
        Poll::Collected(device_id, password) => Ok(PairingStatus::Approved {
            broker: BrokerAccess {
                url: hub.config.device_broker_url(),
                username: device_id.to_string(),
                password,
                ca_pem: ca_pem?,
            },
            device_id,
            root_public_key: hub.keys.current().root.to_base64(),
            hub_url: hub.config.public_base_url(),
        }),
    }
}

// ------------------------------------------------------------- pairings

/// Open pairings (manage_devices; root-level actors only, others get an
/// empty list and approve by the code on the screen), oldest first.
///
/// # Errors
/// [`DeviceError::Forbidden`], or a store failure.
pub fn open_pairings(hub: &Hub, actor: &Actor) -> Result<Vec<PairingView>, DeviceError> {
    require_manage_devices(hub, actor)?;
    let (tree, _) = load_tree(&hub.store)?;
    if !actor.is_root_level(&tree) {
        return Ok(Vec::new());
    }
    let now = hub.now();
    let mut open: Vec<PairingView> = hub
        .store
        .scan::<Pairing>(super::PAIRINGS, "")?
        .iter()
        .filter(|p| p.is_open(now))
        .map(PairingView::from)
        .collect();
    open.sort_by_key(|p| p.requested_at);
    Ok(open)
}

/// Approves the pairing with `code` (manage_devices): makes the device at
/// a leaf node inside the actor's domain and stores it with the outbox
/// entry that grants it on the broker, then applies that entry. A broker
/// that is down delays the grant (the outbox retries), not the approval.
///
/// # Errors
/// 403, 400 (name), 404 (code or node), 409 (not a leaf), or a store failure.
pub async fn approve(
    hub: &Hub,
    actor: &Actor,
    code: &str,
    request: &ApprovePairing,
) -> Result<Changed, DeviceError> {
    require_manage_devices(hub, actor)?;
    let name = device_name(&request.name)?;
    let code = normalize_code(code).ok_or(DeviceError::NotFound("pairing"))?;
    let (secret, secret_hash) = new_token();
    let id = DeviceId::new(new_id("d-"));
    let now = hub.now();
    let device = hub
        .store
        .transact(|tx| {
            require_manage_devices_in(tx, actor)?;
            let mut pairing = repo::open_pairing_by_code(tx, &code, now)?
                .ok_or(DeviceError::NotFound("pairing"))?;
            let (tree, _) = load_tree_in(tx)?;
            leaf_for_devices(actor, &tree, &request.node)?;
            let device = Device {
                id: id.clone(),
                name: name.clone(),
                node: request.node.clone(),
                public_key: pairing.public_key.clone(),
                os: pairing.os.clone(),
                agent_version: pairing.agent_version.clone(),
                paired_at: now,
                paired_by: actor.user.id.clone(),
                secret_hash: secret_hash.clone(),
                last_command_version: 0,
                variables: BTreeMap::new(),
            };
            pairing.state = PairingState::Approved {
                device: device.id.clone(),
                secret: Some(secret.clone()),
                approved_at: now,
                approved_by: actor.user.id.clone(),
                collect_by: now + TimeDelta::seconds(COLLECT_TTL_SECS),
                collected_at: None,
            };
            repo::put_device(tx, &device, None)?;
            repo::put_pairing(tx, &pairing)?;
            let detail = serde_json::json!({"code": code, "name": device.name, "node": device.node,
                "os": device.os, "agent_version": device.agent_version});
            record(tx, device_audit(actor, now, "device.pair", &device, detail))?;
            outbox::enqueue_in(tx, &device.id, Some(&secret), now)?;
            Ok::<_, DeviceError>(device)
        })
        .await?;
    hub.fleet_feed.changed(&device.id, Some(&device.node));
    let broker_error = settle_one(hub, &device.id).await;
    Ok(Changed {
        device,
        node_changed: true,
        broker_error,
    })
}

/// Rejects the pairing with `code` (manage_devices): its agent's next poll
/// is closed.
///
/// # Errors
/// 403, 404 (no open pairing with this code), or a store failure.
pub async fn reject(hub: &Hub, actor: &Actor, code: &str) -> Result<(), DeviceError> {
    require_manage_devices(hub, actor)?;
    let code = normalize_code(code).ok_or(DeviceError::NotFound("pairing"))?;
    let now = hub.now();
    hub.store
        .transact(|tx| {
            require_manage_devices_in(tx, actor)?;
            let mut pairing = repo::open_pairing_by_code(tx, &code, now)?
                .ok_or(DeviceError::NotFound("pairing"))?;
            pairing.state = PairingState::Rejected {
                at: now,
                by: actor.user.id.clone(),
            };
            repo::put_pairing(tx, &pairing)?;
            let detail =
                serde_json::json!({"os": pairing.os, "agent_version": pairing.agent_version});
            record(
                tx,
                actor.audit(now, "device.pairing_reject", &code, None, detail),
            )?;
            Ok(())
        })
        .await
}

// -------------------------------------------------------------- devices

/// The devices attached inside the actor's domain.
///
/// # Errors
/// When the store fails.
pub fn visible_devices(hub: &Hub, actor: &Actor) -> Result<Vec<DeviceView>, DeviceError> {
    let (tree, _) = load_tree(&hub.store)?;
    let all: Vec<Device> = hub.store.scan(super::DEVICES, "")?;
    Ok(all
        .iter()
        .filter(|d| actor.sees(&tree, &d.node))
        .map(DeviceView::from)
        .collect())
}

/// The device `id`, attached inside the actor's domain (404 otherwise, T4).
///
/// # Errors
/// [`DeviceError::NotFound`], or a store failure.
pub fn visible_device(hub: &Hub, actor: &Actor, id: &str) -> Result<Device, DeviceError> {
    let (tree, _) = load_tree(&hub.store)?;
    super::device(&hub.store, id)?
        .filter(|d| actor.sees(&tree, &d.node))
        .ok_or(DeviceError::NotFound("device"))
}

/// Renames a device or moves it to another leaf node inside the actor's
/// domain (manage_devices). A device that is a member of access groups not
/// usable at the new node must leave them first (409). A move writes the
/// outbox entry that updates its broker access, then applies it.
///
/// # Errors
/// 403, 400 (name), 404 (device or node), 409, or a store failure.
pub async fn update(
    hub: &Hub,
    actor: &Actor,
    id: &str,
    request: &UpdateDevice,
) -> Result<Changed, DeviceError> {
    require_manage_devices(hub, actor)?;
    let name = request.name.as_deref().map(device_name).transpose()?;
    let now = hub.now();
    let (device, moved) = hub
        .store
        .transact(|tx| {
            require_manage_devices_in(tx, actor)?;
            let (tree, _) = load_tree_in(tx)?;
            let mut device = visible_in(tx, actor, &tree, id)?;
            let before = device.clone();
            if let Some(name) = &name {
                device.name.clone_from(name);
            }
            let target = request.node.as_ref().filter(|n| **n != device.node);
            if let Some(node) = target {
                leaf_for_devices(actor, &tree, node)?;
                check_groups_reach(tx, &tree, &device.id, node)?;
                device.node = node.clone();
            }
            repo::put_device(tx, &device, Some(&before.node))?;
            let detail = serde_json::json!({"name": device.name, "node": device.node,
                "previous_name": before.name, "previous_node": before.node});
            record(
                tx,
                device_audit(actor, now, "device.update", &device, detail),
            )?;
            if target.is_some() {
                outbox::enqueue_in(tx, &device.id, None, now)?;
            }
            Ok::<_, DeviceError>((device, target.is_some()))
        })
        .await?;
    hub.fleet_feed.changed(&device.id, Some(&device.node));
    let broker_error = if moved {
        settle_one(hub, &device.id).await
    } else {
        None
    };
    Ok(Changed {
        device,
        node_changed: moved,
        broker_error,
    })
}

/// Refuses a move of `device` to `node` while it is a current member of
/// access groups not usable there (409).
fn check_groups_reach(
    tx: &mut Tx,
    tree: &NodeTree,
    device: &DeviceId,
    node: &NodeId,
) -> Result<(), DeviceError> {
    let stranded: Vec<String> = repo::memberships(tx, device)?
        .into_iter()
        .filter(|(group, record)| {
            record.is_current() && !crate::access_groups::usable_at(tree, &group.node, node)
        })
        .map(|(group, _)| group.id.to_string())
        .collect();
    if stranded.is_empty() {
        return Ok(());
    }
    Err(DeviceError::Conflict {
        code: "device_in_access_groups",
        message: format!(
            "remove the device from access groups {} first: they are not usable at the new node",
            stranded.join(", ")
        ),
    })
}

/// Unpairs a device (manage_devices): deletes its record, its node entry,
/// its commands and its last screenshot, ends its access-group memberships
/// (L4) and writes the outbox entry that revokes it on the broker, in one
/// transaction; then applies that entry. Its credentials stop working
/// over HTTP at once, and on the broker as soon as the broker confirms.
///
/// # Errors
/// 403, 404, or a store failure.
pub async fn unpair(hub: &Hub, actor: &Actor, id: &str) -> Result<Unpaired, DeviceError> {
    require_manage_devices(hub, actor)?;
    let now = hub.now();
    let (device, groups) = hub
        .store
        .transact(|tx| {
            require_manage_devices_in(tx, actor)?;
            let (tree, _) = load_tree_in(tx)?;
            let device = visible_in(tx, actor, &tree, id)?;
            repo::delete_device(tx, &device)?;
            let groups = repo::end_memberships(tx, &device.id, now)?;
            tx.delete(crate::screenshots::SCREENSHOTS, device.id.as_str());
            let detail =
                serde_json::json!({"name": device.name, "memberships_ended": groups.len()});
            record(
                tx,
                device_audit(actor, now, "device.unpair", &device, detail),
            )?;
            outbox::enqueue_in(tx, &device.id, None, now)?;
            let groups: Vec<AccessGroupId> = groups.into_iter().map(|g| g.id).collect();
            Ok::<_, DeviceError>((device, groups))
        })
        .await?;
    hub.fleet_feed.changed(&device.id, None);
    if let Some(error) = settle_one(hub, &device.id).await {
        tracing::warn!(device = %device.id, %error, "unpaired device not revoked on the broker yet; the outbox retries");
    }
    // Its last screenshot goes with it (the record went in the transaction).
    if let Ok(path) =
        crate::screenshots::ScreenshotStore::new(hub.config.shared_dir()).path_of(&device.id)
        && let Err(e) = tokio::fs::remove_file(&path).await
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(device = %device.id, error = %e, "could not remove the unpaired device's screenshot");
    }
    Ok(Unpaired { device, groups })
}

/// Replaces a device's feed variables `[1]`…`[25]` (manage_devices, D6),
/// with an audit record; the caller publishes its node. A bad number or
/// value is 400 and changes nothing.
///
/// # Errors
/// 403, 400, 404, or a store failure.
pub async fn set_variables(
    hub: &Hub,
    actor: &Actor,
    id: &str,
    request: &SetVariables,
) -> Result<Changed, DeviceError> {
    require_manage_devices(hub, actor)?;
    validate_variables(&request.variables).map_err(|e| DeviceError::Invalid {
        code: "invalid_variables",
        message: e.to_string(),
    })?;
    let now = hub.now();
    let device = hub
        .store
        .transact(|tx| {
            require_manage_devices_in(tx, actor)?;
            let (tree, _) = load_tree_in(tx)?;
            let mut device = visible_in(tx, actor, &tree, id)?;
            let previous = std::mem::replace(&mut device.variables, request.variables.clone());
            repo::put_device(tx, &device, None)?;
            let detail = serde_json::json!({"variables": device.variables, "previous": previous});
            record(
                tx,
                device_audit(actor, now, "device.variables", &device, detail),
            )?;
            Ok::<_, DeviceError>(device)
        })
        .await?;
    Ok(Changed {
        device,
        node_changed: false,
        broker_error: None,
    })
}

/// Signs a command for a device (manage_devices, Deliver 7): version
/// strictly increasing per device, a random nonce, valid for five minutes;
/// stores it (the log keeps the newest ones). The caller hands the
/// envelope to the publisher, not retained, and fills in `delivered`.
///
/// # Errors
/// 403, 404, or a store failure.
pub async fn send_command(
    hub: &Hub,
    actor: &Actor,
    id: &str,
    request: &CommandRequest,
) -> Result<SignedCommand, DeviceError> {
    require_manage_devices(hub, actor)?;
    let now = hub.now();
    let nonce = new_nonce();
    let (device_id, command, envelope) = hub
        .store
        .transact(|tx| {
            require_manage_devices_in(tx, actor)?;
            let (tree, _) = load_tree_in(tx)?;
            let mut device = visible_in(tx, actor, &tree, id)?;
            let version = device.last_command_version.saturating_add(1);
            let command = Command {
                version,
                issued_at: now,
                expires_at: now + TimeDelta::seconds(COMMAND_TTL_SECS),
                device_id: device.id.clone(),
                nonce: nonce.clone(),
                action: request.action,
            };
            let envelope = sign_document(&command, &hub.keys.current().signing)
                .map_err(|e| DeviceError::Internal(e.to_string()))
                .and_then(|e| {
                    String::from_utf8(e).map_err(|e| DeviceError::Internal(e.to_string()))
                })?;
            device.last_command_version = version;
            repo::put_device(tx, &device, None)?;
            repo::put_command(
                tx,
                &StoredCommand {
                    device: device.id.clone(),
                    version,
                    action: command.action,
                    nonce: nonce.clone(),
                    issued_at: now,
                    expires_at: command.expires_at,
                    issued_by: actor.user.id.clone(),
                    envelope: envelope.clone(),
                },
            )?;
            let detail =
                serde_json::json!({"action": command.action, "version": version, "nonce": nonce});
            record(
                tx,
                device_audit(actor, now, "device.command", &device, detail),
            )?;
            Ok::<_, DeviceError>((device.id, command, envelope))
        })
        .await?;
    Ok(SignedCommand {
        accepted: CommandAccepted {
            device: device_id,
            version: command.version,
            nonce: command.nonce,
            action: command.action,
            expires_at: command.expires_at,
            delivered: false,
            delivery_error: None,
        },
        envelope,
    })
}

#[cfg(test)]
mod tests;
