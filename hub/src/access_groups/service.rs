//! The access-group service (L1–L5): groups, members and items, as an
//! operator changes them.
//!
//! Owns: who may change a group (Manager+, inside the actor's domain,
//! T2–T4), the rules of a change — licence terms the hub may sign, the
//! group-full rule, the device-slot rule (L5), items usable at the group's
//! node (T2) — and its audit entry. Every write is one [`Tx`] holding the
//! reads its decision rests on. What follows the commit — broker access and
//! publication after a device member changes (L4, L5, S7), publication
//! after the item list changes (L3) — is returned ([`DeviceMemberChanged`],
//! the group of [`set_items`]) for the caller above devices and publishing
//! to do ([`crate::publish::after`]). Must not: import devices or
//! publishing (they read access groups), hold a transaction across network
//! I/O, or know HTTP. Invites, self-signup and the shop are in [`super::joining`], CSV
//! import in [`super::import`].

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use signet_common::ids::{AccessGroupId, DeviceId, UserId};
use signet_common::license::Membership;
use signet_common::permissions::{NodeTree, Role};

use super::checks;
use super::error::AccessGroupError;
use super::repo;
use super::types::{AddMember, CreateGroup, ItemList, MemberView, UpdateGroup, UpdateMember};
use super::{AccessGroup, GROUPS, GroupItem, Member, MemberRef, MemberSource, device_slot};
use crate::app::Hub;
use crate::content::{CONTENT, ContentItem};
use crate::identity::{Actor, USERS, User, new_id};
use crate::store::{StoreError, Tx};

/// Access groups whose node is inside the actor's domain.
///
/// # Errors
/// When the store fails.
pub async fn list_groups(hub: &Hub, actor: &Actor) -> Result<Vec<AccessGroup>, AccessGroupError> {
    let (tree, _) = crate::tenancy::load_tree(&hub.store)?;
    let groups: Vec<AccessGroup> = hub.store.scan(GROUPS, "")?;
    Ok(groups
        .into_iter()
        .filter(|g| actor.sees(&tree, &g.node))
        .collect())
}

/// The group `id`, when the actor sees it.
///
/// # Errors
/// `NotFound`, or the store's error.
pub async fn group(hub: &Hub, actor: &Actor, id: &str) -> Result<AccessGroup, AccessGroupError> {
    hub.store
        .transact(|tx| Ok(repo::visible_group(tx, actor, id)?.0))
        .await
}

/// Creates an access group at a node inside the actor's domain (Manager+).
///
/// # Errors
/// `RoleTooLow`, `Invalid` (name, license, categories, domains),
/// `NotFound("node")`, or the store's error.
pub async fn create_group(
    hub: &Hub,
    actor: &Actor,
    request: CreateGroup,
) -> Result<AccessGroup, AccessGroupError> {
    actor.require(Role::Manager)?;
    let name = checks::group_name(&request.name)?;
    checks::license(&request.license)?;
    let categories = checks::categories(&request.categories)?;
    let signup_domains = checks::signup_domains(&request.signup_domains)?;
    checks::signup_settings(request.self_signup, &signup_domains)?;
    let group = AccessGroup {
        id: AccessGroupId::new(new_id("ag-")),
        node: request.node,
        name,
        license: request.license,
        categories,
        self_signup: request.self_signup,
        signup_domains,
        shop_key_hash: None,
        created_at: hub.now(),
        created_by: actor.user.id.clone(),
    };
    hub.store
        .transact(|tx| {
            let (tree, _) = crate::tenancy::load_tree_in(tx)?;
            if !actor.sees(&tree, &group.node) {
                return Err(AccessGroupError::NotFound("node"));
            }
            repo::put_group(tx, &group)?;
            let detail = settings_detail(&group);
            let by = (actor, hub.now());
            repo::audit(tx, by, "access_group.create", &group, detail)?;
            Ok(())
        })
        .await?;
    Ok(group)
}

/// What a group's settings audit entry says.
fn settings_detail(group: &AccessGroup) -> serde_json::Value {
    serde_json::json!({"name": group.name, "license": group.license,
        "categories": group.categories, "self_signup": group.self_signup,
        "signup_domains": group.signup_domains})
}

/// Changes a group's name, license, categories or self-signup (Manager+).
/// A category an item carries cannot be removed (409 `category_in_use`).
///
/// # Errors
/// `RoleTooLow`, `Invalid`, `NotFound`, `Conflict`, or the store's error.
pub async fn update_group(
    hub: &Hub,
    actor: &Actor,
    id: &str,
    request: UpdateGroup,
) -> Result<AccessGroup, AccessGroupError> {
    actor.require(Role::Manager)?;
    let update = CheckedUpdate::check(request)?;
    hub.store
        .transact(|tx| {
            let (mut group, _) = repo::visible_group(tx, actor, id)?;
            update.apply(tx, &mut group)?;
            repo::put_group(tx, &group)?;
            let detail = settings_detail(&group);
            let by = (actor, hub.now());
            repo::audit(tx, by, "access_group.update", &group, detail)?;
            Ok(group)
        })
        .await
}

/// A group update whose fields passed their checks.
struct CheckedUpdate {
    /// The new name, trimmed.
    name: Option<String>,
    /// The new license terms.
    license: Option<signet_common::license::LicenseTerms>,
    /// The new categories.
    categories: Option<Vec<String>>,
    /// The new self-signup domains, normalized.
    domains: Option<Vec<String>>,
    /// Open or close self-signup.
    self_signup: Option<bool>,
}

impl CheckedUpdate {
    /// Checks every field given.
    fn check(request: UpdateGroup) -> Result<Self, AccessGroupError> {
        let name = request.name.as_deref().map(checks::group_name);
        let name = name.transpose()?;
        if let Some(license) = &request.license {
            checks::license(license)?;
        }
        let categories = request.categories.as_deref().map(checks::categories);
        let domains = request
            .signup_domains
            .as_deref()
            .map(checks::signup_domains);
        Ok(Self {
            name,
            license: request.license,
            categories: categories.transpose()?,
            domains: domains.transpose()?,
            self_signup: request.self_signup,
        })
    }

    /// Applies the update to `group`: a category an item carries must stay
    /// (409), and self-signup needs a domain (L6).
    fn apply(&self, tx: &mut Tx, group: &mut AccessGroup) -> Result<(), AccessGroupError> {
        if let Some(categories) = &self.categories {
            check_categories_kept(&repo::items(tx, &group.id)?, categories)?;
            group.categories.clone_from(categories);
        }
        if let Some(name) = &self.name {
            group.name.clone_from(name);
        }
        if let Some(license) = &self.license {
            group.license = license.clone();
        }
        if let Some(domains) = &self.domains {
            group.signup_domains.clone_from(domains);
        }
        if let Some(open) = self.self_signup {
            group.self_signup = open;
        }
        checks::signup_settings(group.self_signup, &group.signup_domains)
    }
}

/// Refuses (409 `category_in_use`) new categories that drop one an item carries.
fn check_categories_kept(
    items: &[GroupItem],
    categories: &[String],
) -> Result<(), AccessGroupError> {
    let in_use = items.iter().find_map(|item| {
        item.categories
            .iter()
            .find(|c| !categories.contains(c))
            .map(|c| (&item.id, c))
    });
    match in_use {
        Some((item, category)) => Err(AccessGroupError::conflict(
            "category_in_use",
            format!("item {item} carries category {category:?}"),
        )),
        None => Ok(()),
    }
}

/// What hangs on an access group in a module above this one (its
/// schedule), removed by that module inside the group's delete
/// transaction; returns the id of what it removed, if anything. The caller
/// passes [`crate::schedules::delete_group_schedule_in`].
pub type Dependents = fn(&mut Tx, &AccessGroupId) -> Result<Option<String>, StoreError>;

/// A committed group delete: the devices that were its current members,
/// whose assignments must be re-signed without it and whose broker access
/// must drop it (L4, S7) — [`crate::publish::after::group_deleted`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDeleted {
    /// The deleted group.
    pub group: AccessGroupId,
    /// Its current device members at the delete.
    pub devices: Vec<DeviceId>,
}

/// Deletes a group with its members, items, invites, signups, orders and
/// (through `dependents`) its schedule (Manager+). Every member loses
/// access at once (L4): the caller passes the returned [`GroupDeleted`] to
/// [`crate::publish::after::group_deleted`].
///
/// # Errors
/// `RoleTooLow`, `NotFound`, or the store's error.
pub async fn delete_group(
    hub: &Hub,
    actor: &Actor,
    id: &str,
    dependents: Dependents,
) -> Result<GroupDeleted, AccessGroupError> {
    actor.require(Role::Manager)?;
    hub.store
        .transact(|tx| {
            let (group, _) = repo::visible_group(tx, actor, id)?;
            let devices = repo::members(tx, &group.id)?
                .into_iter()
                .filter(Member::is_current)
                .filter_map(|m| match m.member {
                    MemberRef::Device { device_id } => Some(device_id),
                    MemberRef::User { .. } => None,
                })
                .collect();
            let members = repo::delete_group(tx, &group.id)?;
            let schedule = dependents(tx, &group.id)?;
            let detail = serde_json::json!({"name": group.name, "members": members,
                "schedule": schedule});
            let by = (actor, hub.now());
            repo::audit(tx, by, "access_group.delete", &group, detail)?;
            Ok(GroupDeleted {
                group: group.id,
                devices,
            })
        })
        .await
}

/// A group's members (removed ones included) with their access windows (Manager+).
///
/// # Errors
/// `RoleTooLow`, `NotFound`, or the store's error.
pub async fn members(
    hub: &Hub,
    actor: &Actor,
    id: &str,
) -> Result<Vec<MemberView>, AccessGroupError> {
    actor.require(Role::Manager)?;
    let (group, members) = hub
        .store
        .transact(|tx| {
            let (group, _) = repo::visible_group(tx, actor, id)?;
            let members = repo::members(tx, &group.id)?;
            Ok::<_, AccessGroupError>((group, members))
        })
        .await?;
    let users = repo::users_by_id(&hub.store)?;
    let now = hub.now();
    Ok(members
        .iter()
        .map(|m| MemberView::new(&group, m, &users, now))
        .collect())
}

/// Whether `actor` may see `target`: themselves, or (Manager+) a user whose
/// whole domain lies inside the actor's (the rule `api::users` applies).
#[must_use]
pub fn sees_user(actor: &Actor, tree: &NodeTree, target: &User) -> bool {
    target.id == actor.user.id
        || (actor.user.role >= Role::Manager
            && !target.domain.is_empty()
            && target.domain.iter().all(|n| actor.sees(tree, n)))
}

/// A fresh membership of `member` in `group` from `joined_at`.
#[must_use]
pub fn joined(
    group: &AccessGroup,
    member: MemberRef,
    joined_at: DateTime<Utc>,
    end_date: Option<DateTime<Utc>>,
    display_name: Option<String>,
    source: MemberSource,
) -> Member {
    let mut membership = Membership::joined(joined_at);
    membership.end_date = end_date;
    Member {
        group: group.id.clone(),
        member,
        membership,
        display_name,
        source,
        active: false,
    }
}

/// Refuses (409 `too_many_devices`) when `device` may not take one of
/// `group`'s active-device slots (L5), counted inside the transaction.
fn take_device_slot(
    tx: &mut Tx,
    group: &AccessGroup,
    device: &DeviceId,
) -> Result<(), AccessGroupError> {
    let members = repo::members(tx, &group.id)?;
    device_slot(group, &members, device)
        .map_err(|e| AccessGroupError::conflict("too_many_devices", e.to_string()))
}

/// Who a new member is, for messages: the user (visible to the actor) or
/// the device (visible, and attached below the group's node, T2).
fn check_new_member(
    tx: &mut Tx,
    actor: &Actor,
    tree: &NodeTree,
    group: &AccessGroup,
    who: &MemberRef,
) -> Result<(String, Option<User>), AccessGroupError> {
    match who {
        MemberRef::User { user_id } => {
            let user = tx
                .get::<User>(USERS, user_id.as_str())?
                .filter(|u| sees_user(actor, tree, u))
                .ok_or(AccessGroupError::NotFound("user"))?;
            Ok((format!("user {}", user.name), Some(user)))
        }
        MemberRef::Device { device_id } => {
            let node = crate::tenancy::node_of_device_in(tx, device_id)?
                .filter(|node| actor.sees(tree, node))
                .ok_or(AccessGroupError::NotFound("device"))?;
            if !super::usable_at(tree, &group.node, &node) {
                return Err(AccessGroupError::invalid(
                    "device_outside_group",
                    format!(
                        "device {device_id} is attached at {node}, which is not below the group's node {}",
                        group.node
                    ),
                ));
            }
            Ok((format!("device {device_id}"), None))
        }
    }
}

/// A committed change of a device member (added, activated, deactivated,
/// removed, new end date): its broker access must follow its groups (S7)
/// and the group be published, so the device's assignment changes at once
/// (L4, L5) — [`crate::publish::after::device_member_changed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceMemberChanged {
    /// The group whose member changed.
    pub group: AccessGroupId,
    /// The device.
    pub device: DeviceId,
}

impl DeviceMemberChanged {
    /// The change to follow when `member` of `group` changed: `None` for a user.
    fn of(group: &AccessGroupId, member: &MemberRef) -> Option<Self> {
        match member {
            MemberRef::Device { device_id } => Some(Self {
                group: group.clone(),
                device: device_id.clone(),
            }),
            MemberRef::User { .. } => None,
        }
    }
}

/// Adds a user or device member (Manager+). A device is activated (L5:
/// 409 `too_many_devices` when every slot is taken); after the commit its
/// broker access must follow and the group be published (L4): the
/// returned change, for the caller.
///
/// # Errors
/// `RoleTooLow`, `Invalid`, `NotFound`, `Conflict` (`already_member`,
/// `group_full`, `too_many_devices`), or the store's error.
pub async fn add_member(
    hub: &Hub,
    actor: &Actor,
    id: &str,
    request: AddMember,
) -> Result<(MemberView, Option<DeviceMemberChanged>), AccessGroupError> {
    actor.require(Role::Manager)?;
    checks::display_name(request.display_name.as_deref())?;
    let now = hub.now();
    let joined_at = request.joined_at.unwrap_or(now);
    checks::end_date(joined_at, request.end_date)?;
    let (group, member, user) = hub
        .store
        .transact(|tx| {
            let (group, tree) = repo::visible_group(tx, actor, id)?;
            let (label, user) = check_new_member(tx, actor, &tree, &group, &request.member)?;
            if repo::member(tx, &group.id, &request.member)?.is_some_and(|m| m.is_current()) {
                let message = format!("{label} is already a member");
                return Err(AccessGroupError::conflict("already_member", message));
            }
            checks::check_room(repo::current_members(tx, &group.id)?)?;
            let by = actor.user.id.clone();
            let mut member = joined(
                &group,
                request.member.clone(),
                joined_at,
                request.end_date,
                request.display_name.clone(),
                MemberSource::Operator { by },
            );
            if let MemberRef::Device { device_id } = &member.member {
                take_device_slot(tx, &group, device_id)?;
                member.active = true;
            }
            repo::put_member(tx, &member)?;
            let detail = serde_json::json!({"member": member.member, "joined_at": joined_at,
                "end_date": member.membership.end_date, "active": member.active});
            repo::audit(tx, (actor, now), "access_group.member_add", &group, detail)?;
            Ok((group, member, user))
        })
        .await?;
    let users: HashMap<UserId, User> = user.map(|u| (u.id.clone(), u)).into_iter().collect();
    let change = DeviceMemberChanged::of(&group.id, &member.member);
    Ok((MemberView::new(&group, &member, &users, now), change))
}

/// `user` or `device` and an id as a member reference; any other kind is 404.
fn member_ref(kind: &str, id: &str) -> Result<MemberRef, AccessGroupError> {
    match kind {
        "user" => Ok(MemberRef::User {
            user_id: UserId::from(id),
        }),
        "device" => Ok(MemberRef::Device {
            device_id: DeviceId::from(id),
        }),
        _ => Err(AccessGroupError::NotFound("member")),
    }
}

/// Changes a member's end date, display name or (devices) active slot
/// (Manager+, L5). A removed member is 409 `member_removed`. Returns the
/// change to follow after the commit, as [`add_member`].
///
/// # Errors
/// `RoleTooLow`, `Invalid`, `NotFound`, `Conflict`, or the store's error.
pub async fn update_member(
    hub: &Hub,
    actor: &Actor,
    (id, kind, member_id): (&str, &str, &str),
    request: UpdateMember,
) -> Result<(MemberView, Option<DeviceMemberChanged>), AccessGroupError> {
    actor.require(Role::Manager)?;
    if let Some(Some(name)) = &request.display_name {
        checks::display_name(Some(name))?;
    }
    let who = member_ref(kind, member_id)?;
    if request.active.is_some() && !matches!(who, MemberRef::Device { .. }) {
        return Err(AccessGroupError::invalid(
            "not_a_device",
            "only device members hold active-device slots",
        ));
    }
    let (group, member) = hub
        .store
        .transact(|tx| {
            let (group, _) = repo::visible_group(tx, actor, id)?;
            let mut member =
                repo::member(tx, &group.id, &who)?.ok_or(AccessGroupError::NotFound("member"))?;
            if !member.is_current() {
                return Err(AccessGroupError::conflict(
                    "member_removed",
                    "the member was removed; add it again instead",
                ));
            }
            apply_member_update(tx, &group, &mut member, &request)?;
            repo::put_member(tx, &member)?;
            let detail = serde_json::json!({"member": member.member,
                "end_date": member.membership.end_date, "display_name": member.display_name,
                "active": member.active});
            let by = (actor, hub.now());
            repo::audit(tx, by, "access_group.member_update", &group, detail)?;
            Ok((group, member))
        })
        .await?;
    let users = repo::users_by_id(&hub.store)?;
    let change = DeviceMemberChanged::of(&group.id, &member.member);
    Ok((MemberView::new(&group, &member, &users, hub.now()), change))
}

/// Applies `request` to a current `member` of `group`: the device-slot rule
/// when a device is activated (L5), the end-date rule (L2).
fn apply_member_update(
    tx: &mut Tx,
    group: &AccessGroup,
    member: &mut Member,
    request: &UpdateMember,
) -> Result<(), AccessGroupError> {
    if let (Some(active), MemberRef::Device { device_id }) = (request.active, &member.member) {
        if active {
            take_device_slot(tx, group, device_id)?;
        }
        member.active = active;
    }
    if let Some(end_date) = request.end_date {
        checks::end_date(member.membership.joined_at, end_date)?;
        member.membership.end_date = end_date;
    }
    if let Some(name) = &request.display_name {
        member.display_name.clone_from(name);
    }
    Ok(())
}

/// Removes a member: its access ends at once (L4). The record stays, with
/// `removed_at`, for usage reports; removing again changes nothing.
/// Returns the change to follow after the commit, as [`add_member`].
///
/// # Errors
/// `RoleTooLow`, `NotFound`, or the store's error.
pub async fn remove_member(
    hub: &Hub,
    actor: &Actor,
    (id, kind, member_id): (&str, &str, &str),
) -> Result<Option<DeviceMemberChanged>, AccessGroupError> {
    actor.require(Role::Manager)?;
    let who = member_ref(kind, member_id)?;
    let removed = hub
        .store
        .transact(|tx| {
            let (group, _) = repo::visible_group(tx, actor, id)?;
            let mut member =
                repo::member(tx, &group.id, &who)?.ok_or(AccessGroupError::NotFound("member"))?;
            if !member.is_current() {
                return Ok::<_, AccessGroupError>(None);
            }
            let now = hub.now();
            member.membership.removed_at = Some(now);
            member.active = false;
            repo::put_member(tx, &member)?;
            let detail = serde_json::json!({"member": member.member});
            repo::audit(
                tx,
                (actor, now),
                "access_group.member_remove",
                &group,
                detail,
            )?;
            Ok(Some(group.id))
        })
        .await?;
    Ok(removed.and_then(|group| DeviceMemberChanged::of(&group, &who)))
}

/// A group's items with their categories.
///
/// # Errors
/// `NotFound`, or the store's error.
pub async fn items(hub: &Hub, actor: &Actor, id: &str) -> Result<Vec<GroupItem>, AccessGroupError> {
    hub.store
        .transact(|tx| {
            let (group, _) = repo::visible_group(tx, actor, id)?;
            Ok(repo::items(tx, &group.id)?)
        })
        .await
}

/// Refuses an item that is not a content item usable at the group's node
/// (T2), or that carries a category the group does not define.
fn check_item(
    tx: &mut Tx,
    tree: &NodeTree,
    group: &AccessGroup,
    item: &GroupItem,
) -> Result<(), AccessGroupError> {
    let usable = tx
        .get::<ContentItem>(CONTENT, item.id.as_str())?
        .is_some_and(|content| tree.is_within(&group.node, &content.node));
    if !usable {
        return Err(AccessGroupError::invalid(
            "invalid_item",
            format!(
                "item {} is not a content item usable at the group's node {} (T2)",
                item.id, group.node
            ),
        ));
    }
    if let Some(category) = item
        .categories
        .iter()
        .find(|c| !group.categories.contains(c))
    {
        return Err(AccessGroupError::invalid(
            "invalid_item",
            format!(
                "item {}: {category:?} is not one of the group's categories",
                item.id
            ),
        ));
    }
    Ok(())
}

/// Replaces a group's item list (Manager+). Returns the group: once the
/// list is durable the caller publishes it (L3,
/// [`crate::publish::after::group_items_set`]).
///
/// # Errors
/// `RoleTooLow`, `Invalid`, `NotFound`, or the store's error.
pub async fn set_items(
    hub: &Hub,
    actor: &Actor,
    id: &str,
    request: ItemList,
) -> Result<AccessGroupId, AccessGroupError> {
    actor.require(Role::Manager)?;
    checks::item_list(&request.items)?;
    hub.store
        .transact(|tx| {
            let (group, tree) = repo::visible_group(tx, actor, id)?;
            for item in &request.items {
                check_item(tx, &tree, &group, item)?;
            }
            let (added, removed) = repo::replace_items(tx, &group.id, &request.items)?;
            let detail = serde_json::json!({"items": request.items.len(), "added": added,
                "removed": removed});
            let by = (actor, hub.now());
            repo::audit(tx, by, "access_group.items_set", &group, detail)?;
            Ok::<_, AccessGroupError>(group.id)
        })
        .await
}

#[cfg(test)]
mod tests;
