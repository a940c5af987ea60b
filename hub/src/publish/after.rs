//! What follows a committed access-group change (L3, L4, L5, S7): the
//! access-group service sits below devices and publishing, so it returns
//! what changed and the caller above both (the API) calls these once the
//! change is durable — as it does after a device change.
//!
//! Owns: broker access and publication after a device member changed (one,
//! or many at once: [`device_members_changed`]), and publication after a
//! group's item list changed, with the answers that report them
//! ([`ItemsSaved`], [`MembersSaved`]). Must not: change access-group records, or
//! fail the change it follows (it is stored; a failed publication is
//! logged and reported, and goes out with the group's next one).

use serde::{Deserialize, Serialize};
use signet_common::ids::AccessGroupId;

use std::collections::BTreeSet;

use signet_common::envelope::DocumentKind;
use signet_common::ids::DeviceId;

use super::{Actor, PublicationRun, publish, publish_devices, publish_group_items};
use crate::access_groups::bulk::DeviceMembersChanged;
use crate::access_groups::service::{DeviceMemberChanged, GroupDeleted};
use crate::access_groups::{GroupItem, items_of};
use crate::app::Hub;
use crate::groups::GroupRef;
use crate::identity;
use crate::store::StoreError;

/// A group's new item list and the publication it caused (L3).
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct ItemsSaved {
    /// The items now held.
    pub items: Vec<GroupItem>,
    /// The run that signed the group's new manifest (one document whatever
    /// the number of members; their assignments stand), when it succeeded.
    pub publication: Option<PublicationRun>,
    /// Why that publication failed, when it did: the list is saved and goes
    /// out with the next publication of the group.
    pub publication_error: Option<String>,
}

/// After a device member changed (added, activated, deactivated, removed,
/// new end date): its broker access follows its groups (S7) and the group
/// is published, so the device's assignment changes at once (L4, L5).
/// Failures are logged: the change is stored, and the group's next
/// publish (`POST /publish`, or a member change; an items change re-signs
/// no assignment) sends it. Nothing to do for a user member (`None`).
pub async fn device_member_changed(
    hub: &Hub,
    actor: &identity::Actor,
    change: Option<DeviceMemberChanged>,
) {
    let Some(DeviceMemberChanged { group, device }) = change else {
        return;
    };
    let _ = crate::devices::refresh_broker_access(hub, &device).await;
    let by = Actor::user(&actor.user, &actor.from);
    if let Err(e) = publish(hub, &GroupRef::AccessGroup(group.clone()), by).await {
        tracing::warn!(%group, %device, error = %e, "publishing after a device member change failed");
    }
}

/// After a group was deleted (L4, S7): each device that was a member gets
/// its assignment re-signed without the group (one run per node they are
/// attached at), and its broker access follows, as if it had been removed
/// — else it would play on what its last assignment licensed until the
/// windows end. Then its manifest is withdrawn (and cleared from the
/// broker) and the broker forgets the group's role. Failures are
/// logged: the delete is stored, and the devices' next publication sends
/// it.
pub async fn group_deleted(hub: &Hub, actor: &identity::Actor, deleted: GroupDeleted) {
    let GroupDeleted { group, devices } = deleted;
    let mut at: std::collections::BTreeMap<_, Vec<DeviceId>> = std::collections::BTreeMap::new();
    for device in devices {
        match hub
            .store
            .get::<crate::devices::Device>(crate::devices::DEVICES, device.as_str())
        {
            Ok(Some(record)) => at.entry(record.node).or_default().push(device),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(%group, %device, error = %e, "device of a deleted group not read")
            }
        }
    }
    for (node, devices) in at {
        let by = Actor::user(&actor.user, &actor.from);
        if let Err(e) = publish_devices(hub, &node, &devices, by).await {
            tracing::warn!(%group, %node, error = %e, "publishing after a group delete failed");
        }
    }
    // Its manifest goes too (S4): the broker would keep it retained, and
    // the hub republish it after every restart; so does its role (S7).
    super::forget_group(hub, group.as_str()).await;
}

/// After `group`'s item list was stored: publishes the group's manifest
/// (L3: the change reaches member devices at their next sync; DESIGN §4:
/// one signed document, no assignment read or re-signed) and answers with
/// the list and the run, or why the run failed.
///
/// # Errors
/// When the store fails reading the list back.
pub async fn group_items_set(
    hub: &Hub,
    actor: &identity::Actor,
    group: &AccessGroupId,
) -> Result<ItemsSaved, StoreError> {
    let by = Actor::user(&actor.user, &actor.from);
    let (publication, publication_error) = match publish_group_items(hub, group, by).await {
        Ok(published) => (Some(published.run), None),
        Err(e) => {
            tracing::warn!(%group, error = %e, "publishing the group's new items failed");
            (None, Some(e.to_string()))
        }
    };
    Ok(ItemsSaved {
        items: items_of(&hub.store, group)?,
        publication,
        publication_error,
    })
}

/// A bulk change of a group's device members and the one publication it
/// caused (L4, L5).
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct MembersSaved {
    /// What changed.
    pub change: DeviceMembersChanged,
    /// The id of the run that re-signed the changed devices' assignments
    /// (`GET /api/v1/publications/{id}` shows how far it reached), when
    /// there was one and it succeeded.
    pub publication: Option<String>,
    /// How many documents that run signed.
    pub signed: usize,
    /// Why that publication failed, when it did: the change is stored and
    /// goes out with the group's next publish (`POST /publish`) or member
    /// change.
    pub publication_error: Option<String>,
    /// Devices whose broker access could not follow yet (`device: reason`);
    /// the outbox keeps trying.
    pub broker_refused: Vec<String>,
}

/// After many device members of one group changed at once: the group is
/// published once (its changed devices' assignments are signed together,
/// and their broker access follows before they are sent, S7); a changed
/// device that run did not re-sign (attached outside the group's node
/// since) has its broker access follow too. Never fails: the change is
/// stored, and what did not go out goes with the group's next publish or
/// member change (an items change re-signs no assignment).
pub async fn device_members_changed(
    hub: &Hub,
    actor: &identity::Actor,
    change: DeviceMembersChanged,
) -> MembersSaved {
    let mut saved = MembersSaved {
        publication: None,
        signed: 0,
        publication_error: None,
        broker_refused: Vec::new(),
        change,
    };
    if saved.change.changed().next().is_none() {
        return saved;
    }
    let group = GroupRef::AccessGroup(saved.change.group.clone());
    let by = Actor::user(&actor.user, &actor.from);
    let mut reassigned = BTreeSet::new();
    match publish(hub, &group, by).await {
        Ok(published) => {
            let signed = published.run.documents.iter().filter(|d| d.signed);
            for document in signed.clone() {
                if document.kind == DocumentKind::DeviceAssignment {
                    reassigned.insert(document.subject.clone());
                }
            }
            saved.signed = signed.count();
            saved.publication = Some(published.run.id);
            saved.broker_refused = published.broker_refused;
        }
        Err(e) => {
            tracing::warn!(%group, error = %e, "publishing after a bulk member change failed");
            saved.publication_error = Some(e.to_string());
        }
    }
    let rest: Vec<DeviceId> = saved
        .change
        .changed()
        .filter(|device| !reassigned.contains(device.as_str()))
        .cloned()
        .collect();
    saved.broker_refused.extend(follow_broker(hub, &rest).await);
    saved
}

/// Makes the broker's access of `devices` follow the store: one outbox
/// entry each, written together, then applied (S7). Returns the refusals
/// as `device: reason`.
async fn follow_broker(hub: &Hub, devices: &[DeviceId]) -> Vec<String> {
    use crate::devices::outbox;
    if devices.is_empty() {
        return Vec::new();
    }
    let now = hub.now();
    let queued = hub
        .store
        .transact(|tx| {
            for device in devices {
                outbox::enqueue_in(tx, device, None, now)?;
            }
            Ok::<_, StoreError>(())
        })
        .await;
    if let Err(e) = queued {
        return devices.iter().map(|d| format!("{d}: {e}")).collect();
    }
    outbox::settle(hub, devices, outbox::PUBLISH_WAIT).await
}
