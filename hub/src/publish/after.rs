//! What follows a committed access-group change (L3, L4, L5, S7): the
//! access-group service sits below devices and publishing, so it returns
//! what changed and the caller above both (the API) calls these once the
//! change is durable — as it does after a device change.
//!
//! Owns: broker access and publication after a device member changed, and
//! publication after a group's item list changed, with the answer that
//! reports it ([`ItemsSaved`]). Must not: change access-group records, or
//! fail the change it follows (it is stored; a failed publication is
//! logged and reported, and goes out with the group's next one).

use serde::{Deserialize, Serialize};
use signet_common::ids::AccessGroupId;

use super::{Actor, PublicationRun, publish, publish_group_items};
use crate::access_groups::service::DeviceMemberChanged;
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
    /// The run that re-signed the group's manifest and its member devices'
    /// assignments, when it succeeded.
    pub publication: Option<PublicationRun>,
    /// Why that publication failed, when it did: the list is saved and goes
    /// out with the next publication of the group.
    pub publication_error: Option<String>,
}

/// After a device member changed (added, activated, deactivated, removed,
/// new end date): its broker access follows its groups (S7) and the group
/// is published, so the device's assignment changes at once (L4, L5).
/// Failures are logged: the change is stored, and the group's next
/// publication sends it. Nothing to do for a user member (`None`).
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

/// After `group`'s item list was stored: publishes the group (L3: the
/// change reaches member devices at their next sync) and answers with the
/// list and the run, or why the run failed.
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
