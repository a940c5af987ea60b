//! Changing an item's name, audience and publish settings (T2, A1, M1, M2),
//! and the media actions' one check ([`act`], [`act_in`]): the download
//! route and every action of [`super::actions`] use it. Turning sharing off
//! revokes the item's live share links (M2).
//!
//! Rules: Contributor and above change items inside their domain (A1
//! applies: a name, an audience or a setting is an edit); the groups are
//! checked by [`check_groups_in`]; a change that would hide the item from
//! the caller itself is refused ([`Viewer::keeps_sight`]); none of these is a content
//! change for approval (A3). Everything is checked and written in one
//! transaction, with its audit entry; a refusal changes nothing.
//!
//! Owns: these decisions. Must not: know HTTP.

use signet_common::digest::Sha256;
use signet_common::permissions::{NodeTree, Permission, Role};

use super::ContentItem;
use super::repo::{self, Items};
use super::service::{CHANGED_FROM_ABOVE, ContentError, changeable_in, item_name};
use super::subjects::Subjects;
use super::view::UpdateContent;
use super::visibility::{Holders, Viewer, check_groups_in};
use crate::app::Hub;
use crate::identity::Actor;
use crate::store::Tx;
use crate::tenancy::load_tree_in;
use crate::tenancy::restricted::ItemChange;

/// Changes item `id`'s name, allowed groups or publish settings
/// (Contributor+, inside the actor's domain, A1). The same values change
/// nothing.
///
/// # Errors
/// [`ContentError`]; the item is unchanged then.
pub async fn update(
    hub: &Hub,
    actor: &Actor,
    id: &str,
    request: &UpdateContent,
) -> Result<ContentItem, ContentError> {
    actor.require(Role::Contributor)?;
    let name = request.name.as_deref().map(item_name).transpose()?;
    let (now, viewer) = (hub.now(), Viewer::load(hub, actor)?);
    hub.store
        .transact(|tx| {
            let (tree, _) = load_tree_in(tx)?;
            let who = (actor, &viewer);
            let (old, _) = changeable_in(
                tx,
                &tree,
                who,
                id,
                Items::Any,
                ItemChange::Edit,
                CHANGED_FROM_ABOVE,
            )?;
            let mut item = old.clone();
            if let Some(name) = &name {
                item.name.clone_from(name);
            }
            if let Some(groups) = &request.allowed_groups {
                item.allowed_groups = check_groups_in(tx, &tree, actor, &item.node, groups)?;
            }
            if let Some(change) = &request.settings {
                item.settings = item.settings.with(change);
            }
            if item == old {
                return Ok(old);
            }
            let holders = viewer.holders_of_in(tx, &item.id)?;
            viewer.keeps_sight(&tree, &item, &holders)?;
            item.updated_at = now;
            item.updated_by = actor.user.id.clone();
            repo::put_item(tx, &item, Some(&old))?;
            if old.settings.allow_share && !item.settings.allow_share {
                // M2: links shared before are revoked (410), and stay so.
                super::actions::share::revoke_all_in(tx, &item.id, &actor.user.id, now)?;
            }
            let detail = serde_json::json!({
                "name": {"from": old.name, "to": item.name},
                "allowed_groups": {"from": old.allowed_groups, "to": item.allowed_groups},
                "settings": {"from": old.settings, "to": item.settings}});
            let node = Some(item.node.clone());
            let entry = actor.audit(now, "content.update", item.id.as_str(), node, detail);
            repo::record(tx, entry)?;
            Ok(item)
        })
        .await
}

/// Item `id` if `actor` may use `action` on it (P5, M2): viewable (404
/// otherwise, as for other tenants), `action` held (403
/// `permission_not_held`) and allowed by the item's publish settings (403
/// `disabled_by_publish_settings`). The one check of every media action.
///
/// # Errors
/// [`ContentError`] as above; store failures.
pub async fn act(
    hub: &Hub,
    actor: &Actor,
    id: &str,
    action: Permission,
) -> Result<ContentItem, ContentError> {
    let viewer = Viewer::load(hub, actor)?;
    hub.store
        .transact(|tx| {
            let (tree, _) = load_tree_in(tx)?;
            Ok(act_in(tx, &tree, &viewer, id, action)?.0)
        })
        .await
}

/// [`act`] inside `tx`, for an action that writes with the check: the item
/// and the access groups holding it.
///
/// # Errors
/// As [`act`].
pub fn act_in(
    tx: &mut Tx,
    tree: &NodeTree,
    viewer: &Viewer,
    id: &str,
    action: Permission,
) -> Result<(ContentItem, Holders), ContentError> {
    let (subject, holders) = Subjects::Content.acting_in(tx, tree, viewer, (id, action))?;
    let item = subject
        .content
        .ok_or(ContentError::NotFound(Items::Any.what()))?;
    Ok((item, holders))
}

/// The bytes' hash of item `id` for a download by `actor` ([`act`] with
/// `download`).
///
/// # Errors
/// As [`act`].
pub async fn download(hub: &Hub, actor: &Actor, id: &str) -> Result<Sha256, ContentError> {
    Ok(act(hub, actor, id, Permission::Download).await?.sha256)
}
