//! The permission-group service (P1–P9, T2–T4, S8): groups, their members
//! and a user's effective permissions.
//!
//! Owns the rules:
//! - every group belongs to a node; only actors whose domain covers that
//!   node learn it exists — anyone else gets "not found" (T3, T4);
//! - Manager and above (`Role::can_manage_permission_groups`, P2) list,
//!   read, create, edit and delete groups and add or remove members; lower
//!   roles are refused every group operation, reads included, because a
//!   member list says who holds which extra permissions;
//! - every user reads their own effective permissions; Manager and above
//!   those of users they see. Groups outside the actor's domain count in the
//!   effective set but are shown only as a number (`hidden_groups`, T4);
//! - a member user or member group must itself be visible to the actor (no
//!   cross-tenant membership); removing a member needs only the group;
//! - group names are unique at a node (case aside), checked inside the
//!   transaction that writes the name;
//! - a membership that would make a cycle is refused (P3) by the graph rules
//!   of `signet-common`;
//! - deleting a group removes it from every group it was a member of in the
//!   same transaction, so its grants end at once (P8).
//!
//! Every change loads the groups and the tree inside its transaction and
//! commits the change with its audit entry (S8, S9). Must not: know HTTP.

use std::collections::BTreeSet;

use signet_common::ids::{NodeId, PermissionGroupId, UserId};
use signet_common::permissions::{
    GroupDetails, MAX_GROUP_EMAIL_CHARS, MAX_GROUP_NAME_CHARS, Permission, PermissionError,
    PermissionSet, effective_permissions, role_defaults,
};

use super::views::{
    CreatePermissionGroup, EffectivePermissionsView, MemberGroupView, MemberUserView, MembersView,
    PermissionGroupView, UpdatePermissionGroup, UserGroupView,
};
use super::{
    LoadedGroups, MAX_GROUP_MEMBERS, MAX_PERMISSION_GROUPS, PERMISSION_GROUPS, PlacedGroup,
    Placement, counted_groups, load_groups, load_groups_in,
};
use crate::app::Hub;
use crate::identity::{Actor, USERS, User, names, new_id};
use crate::store::{StoreError, Tx};
use crate::tenancy::{NODES, load_tree, load_tree_in};
use crate::values::{InvalidName, Name};
use signet_common::permissions::NodeTree;

/// The most permission names one request may list.
pub const MAX_PERMISSION_NAMES: usize = 64;

/// Why a permission-group operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum PermissionGroupError {
    /// Not allowed (403).
    #[error("{0}")]
    Forbidden(&'static str),
    /// The named thing is absent or not visible to the actor (404).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The name is not a display name (400 `invalid_name`).
    #[error(transparent)]
    InvalidName(#[from] InvalidName),
    /// A field is not acceptable (400 with `code`).
    #[error("{message}")]
    Invalid {
        /// The machine code.
        code: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Conflicts with the groups as they are (409 with `code`).
    #[error("{message}")]
    Conflict {
        /// The machine code.
        code: &'static str,
        /// What conflicts.
        message: String,
    },
    /// A rule of the graph failed where it cannot (500).
    #[error("{0}")]
    Internal(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

type Result<T, E = PermissionGroupError> = std::result::Result<T, E>;

fn invalid(code: &'static str, message: impl Into<String>) -> PermissionGroupError {
    PermissionGroupError::Invalid {
        code,
        message: message.into(),
    }
}

fn conflict(code: &'static str, message: impl Into<String>) -> PermissionGroupError {
    PermissionGroupError::Conflict {
        code,
        message: message.into(),
    }
}

impl From<PermissionError> for PermissionGroupError {
    fn from(e: PermissionError) -> Self {
        match &e {
            PermissionError::EmptyGroupName => invalid("invalid_name", e.to_string()),
            PermissionError::FieldTooLong { field, .. } => {
                let code = match *field {
                    "name" => "invalid_name",
                    "email" => "invalid_email",
                    "description" => "invalid_description",
                    _ => "invalid_body",
                };
                invalid(code, e.to_string())
            }
            PermissionError::Cycle { .. } => conflict("membership_cycle", e.to_string()),
            PermissionError::UnknownGroup { .. } => Self::NotFound("permission group"),
            _ => Self::Internal(e.to_string()),
        }
    }
}

/// A direct member of a group.
#[derive(Debug, Clone)]
pub enum Member {
    /// A user.
    User(UserId),
    /// A group, whose members belong too.
    Group(PermissionGroupId),
}

/// Refused unless the actor's role manages permission groups (P2).
fn require_manager(actor: &Actor) -> Result<()> {
    if actor.user.role.can_manage_permission_groups() {
        Ok(())
    } else {
        Err(PermissionGroupError::Forbidden(
            "permission groups need the Manager role or above",
        ))
    }
}

/// Whether the actor's domain covers the node `id` lives at.
fn sees_group(
    actor: &Actor,
    tree: &NodeTree,
    groups: &LoadedGroups,
    id: &PermissionGroupId,
) -> bool {
    groups
        .placement(id)
        .is_some_and(|placement| actor.sees(tree, &placement.node))
}

/// The record of a group the actor sees.
fn visible_group(
    actor: &Actor,
    tree: &NodeTree,
    groups: &LoadedGroups,
    id: &PermissionGroupId,
) -> Result<PlacedGroup> {
    groups
        .record(id)
        .filter(|_| sees_group(actor, tree, groups, id))
        .ok_or(PermissionGroupError::NotFound("permission group"))
}

/// Parses catalogue names (P7); an unknown name is refused.
fn parse_permissions(names: &[String]) -> Result<PermissionSet> {
    if names.len() > MAX_PERMISSION_NAMES {
        return Err(invalid(
            "invalid_permissions",
            format!("at most {MAX_PERMISSION_NAMES} permission names"),
        ));
    }
    names
        .iter()
        .map(|name| {
            name.parse::<Permission>()
                .map_err(|e| invalid("unknown_permission", e.to_string()))
        })
        .collect()
}

/// Checks and normalizes details: the name a [`Name`] (trimmed; the graph
/// bounds it in characters, so the byte bound here never binds first), a
/// parsed e-mail, every field within its bound.
fn check_details(details: GroupDetails) -> Result<GroupDetails> {
    let name = details.name.trim();
    let name = if name.is_empty() {
        String::new()
    } else {
        Name::parse(name, 4 * MAX_GROUP_NAME_CHARS)?.into_string()
    };
    let details = GroupDetails { name, ..details };
    if let Some(email) = &details.email {
        names::check_email(email).map_err(|e| invalid("invalid_email", e.to_string()))?;
    }
    details.validate()?;
    Ok(details)
}

/// Refused if another group at `node` already has `name` (case aside).
fn check_name_free(
    groups: &LoadedGroups,
    node: &NodeId,
    name: &str,
    except: Option<&PermissionGroupId>,
) -> Result<()> {
    let wanted = name.to_lowercase();
    let taken = groups.at_node(node).any(|id| {
        Some(id) != except
            && groups
                .graph()
                .group(id)
                .is_some_and(|g| g.details.name.to_lowercase() == wanted)
    });
    if taken {
        return Err(conflict(
            "name_taken",
            format!("a permission group named {name:?} exists at this node"),
        ));
    }
    Ok(())
}

/// Refused if `id` already has the most direct members allowed.
fn check_room(groups: &LoadedGroups, id: &PermissionGroupId) -> Result<()> {
    let count = groups
        .graph()
        .group(id)
        .map_or(0, |g| g.member_users.len() + g.member_groups.len());
    if count >= MAX_GROUP_MEMBERS {
        return Err(conflict(
            "too_many_members",
            format!("a permission group has at most {MAX_GROUP_MEMBERS} direct members"),
        ));
    }
    Ok(())
}

/// Writes group `id` back in `tx` with the actor's audit entry for `action`.
fn save(
    hub: &Hub,
    tx: &mut Tx,
    actor: &Actor,
    groups: &mut LoadedGroups,
    id: &PermissionGroupId,
    action: &str,
    detail: serde_json::Value,
) -> Result<PlacedGroup> {
    groups.put(tx, id)?;
    let record = groups
        .record(id)
        .ok_or_else(|| PermissionGroupError::Internal("a saved group vanished".into()))?;
    let scope = Some(record.placement.node.clone());
    actor
        .audit(hub.now(), action, id.as_str(), scope, detail)
        .put(tx)?;
    Ok(record)
}

/// The groups and the tree, as stored now, for a read.
fn read(hub: &Hub) -> Result<(LoadedGroups, NodeTree)> {
    Ok((load_groups(&hub.store)?, load_tree(&hub.store)?.0))
}

/// The groups and the tree inside `tx`, for a change.
fn read_in(tx: &mut Tx) -> Result<(LoadedGroups, NodeTree)> {
    Ok((load_groups_in(tx)?, load_tree_in(tx)?.0))
}

/// Groups the actor sees whose name or e-mail holds `q` (P8).
///
/// # Errors
/// [`PermissionGroupError`].
pub fn list_groups(hub: &Hub, actor: &Actor, q: Option<&str>) -> Result<Vec<PermissionGroupView>> {
    require_manager(actor)?;
    let max = MAX_GROUP_NAME_CHARS.max(MAX_GROUP_EMAIL_CHARS);
    if q.is_some_and(|q| q.chars().count() > max) {
        return Err(invalid(
            "invalid_query",
            format!("q is longer than {max} characters"),
        ));
    }
    let (groups, tree) = read(hub)?;
    Ok(groups
        .graph()
        .filter(q.unwrap_or_default())
        .filter(|(id, _)| sees_group(actor, &tree, &groups, id))
        .filter_map(|(id, _)| groups.record(id))
        .map(|record| PermissionGroupView::from(&record))
        .collect())
}

/// One group the actor sees.
///
/// # Errors
/// [`PermissionGroupError`].
pub fn get_group(hub: &Hub, actor: &Actor, id: &PermissionGroupId) -> Result<PermissionGroupView> {
    require_manager(actor)?;
    let (groups, tree) = read(hub)?;
    Ok(PermissionGroupView::from(&visible_group(
        actor, &tree, &groups, id,
    )?))
}

/// Creates a group at a node inside the actor's domain.
///
/// # Errors
/// [`PermissionGroupError`].
pub async fn create_group(
    hub: &Hub,
    actor: &Actor,
    request: CreatePermissionGroup,
) -> Result<PermissionGroupView> {
    require_manager(actor)?;
    let details = check_details(GroupDetails {
        name: request.name,
        email: request.email,
        description: request.description,
    })?;
    let permissions = parse_permissions(&request.permissions)?;
    let id = PermissionGroupId::new(new_id("pg-"));
    let node = request.node;
    hub.store
        .transact(|tx| {
            let (mut groups, tree) = read_in(tx)?;
            if !actor.sees(&tree, &node) || !tx.contains(NODES, node.as_str())? {
                return Err(PermissionGroupError::NotFound("node"));
            }
            if groups.len() >= MAX_PERMISSION_GROUPS {
                return Err(conflict(
                    "too_many_groups",
                    format!("the hub holds at most {MAX_PERMISSION_GROUPS} permission groups"),
                ));
            }
            check_name_free(&groups, &node, &details.name, None)?;
            let detail = serde_json::json!({"name": details.name, "email": details.email,
                "permissions": permissions});
            let placement = Placement {
                node: node.clone(),
                created_by: Some(actor.user.id.clone()),
                created_at: hub.now(),
            };
            groups.create(id.clone(), placement, details.clone(), permissions)?;
            let record = save(
                hub,
                tx,
                actor,
                &mut groups,
                &id,
                "permission_group.create",
                detail,
            )?;
            Ok(PermissionGroupView::from(&record))
        })
        .await
}

/// Renames a group, changes its e-mail or description, or replaces the
/// permissions it grants; members stay (P8).
///
/// # Errors
/// [`PermissionGroupError`].
pub async fn update_group(
    hub: &Hub,
    actor: &Actor,
    id: &PermissionGroupId,
    request: UpdatePermissionGroup,
) -> Result<PermissionGroupView> {
    require_manager(actor)?;
    let new_permissions = request
        .permissions
        .as_deref()
        .map(parse_permissions)
        .transpose()?;
    hub.store
        .transact(|tx| {
            let (mut groups, tree) = read_in(tx)?;
            let old = visible_group(actor, &tree, &groups, id)?;
            let mut details = old.group.details.clone();
            if let Some(name) = &request.name {
                details.name.clone_from(name);
            }
            if let Some(email) = &request.email {
                details.email = (!email.is_empty()).then(|| email.clone());
            }
            if let Some(description) = &request.description {
                details.description = (!description.is_empty()).then(|| description.clone());
            }
            let details = check_details(details)?;
            check_name_free(&groups, &old.placement.node, &details.name, Some(id))?;
            let permissions = new_permissions.unwrap_or(old.group.permissions);
            let detail = serde_json::json!({"name": details.name, "email": details.email,
                "permissions": permissions, "permissions_before": old.group.permissions});
            groups.graph_mut().edit_group(id, details, permissions)?;
            let record = save(
                hub,
                tx,
                actor,
                &mut groups,
                id,
                "permission_group.update",
                detail,
            )?;
            Ok(PermissionGroupView::from(&record))
        })
        .await
}

/// Deletes a group and removes it from every group it was a member of, in
/// one transaction: its grants end at once (P8).
///
/// # Errors
/// [`PermissionGroupError`].
pub async fn delete_group(hub: &Hub, actor: &Actor, id: &PermissionGroupId) -> Result<()> {
    require_manager(actor)?;
    hub.store
        .transact(|tx| {
            let (mut groups, tree) = read_in(tx)?;
            let old = visible_group(actor, &tree, &groups, id)?;
            let parents = groups.delete(id)?;
            tx.delete(PERMISSION_GROUPS, id.as_str());
            for parent in &parents {
                groups.put(tx, parent)?;
            }
            let detail = serde_json::json!({"name": old.group.details.name,
                "permissions": old.group.permissions, "removed_from": parents});
            let scope = Some(old.placement.node.clone());
            actor
                .audit(
                    hub.now(),
                    "permission_group.delete",
                    id.as_str(),
                    scope,
                    detail,
                )
                .put(tx)?;
            Ok(())
        })
        .await
}

/// A group's direct members; names only of those the actor sees.
///
/// # Errors
/// [`PermissionGroupError`].
pub fn members(hub: &Hub, actor: &Actor, id: &PermissionGroupId) -> Result<MembersView> {
    require_manager(actor)?;
    let (groups, tree) = read(hub)?;
    let record = visible_group(actor, &tree, &groups, id)?;
    let users = groups
        .existing_member_users(&hub.store, id)?
        .into_iter()
        .map(|user| {
            let seen = actor.sees_user(&tree, &user);
            MemberUserView {
                name: seen.then(|| user.name.clone()),
                email: seen.then(|| user.email.clone()),
                id: user.id,
            }
        })
        .collect();
    let member_groups = record
        .group
        .member_groups
        .iter()
        .map(|child| {
            let shown = groups
                .record(child)
                .filter(|_| sees_group(actor, &tree, &groups, child));
            MemberGroupView {
                id: child.clone(),
                name: shown.as_ref().map(|c| c.group.details.name.clone()),
                node: shown.map(|c| c.placement.node),
            }
        })
        .collect();
    Ok(MembersView {
        users,
        groups: member_groups,
    })
}

/// Adds a direct member, itself visible to the actor, to a group the actor
/// sees; adding a member twice changes nothing. The graph refuses cycles (P3).
///
/// # Errors
/// [`PermissionGroupError`].
pub async fn add_member(
    hub: &Hub,
    actor: &Actor,
    id: &PermissionGroupId,
    member: Member,
) -> Result<()> {
    require_manager(actor)?;
    hub.store
        .transact(|tx| {
            let (mut groups, tree) = read_in(tx)?;
            let record = visible_group(actor, &tree, &groups, id)?;
            let (already, detail) = match &member {
                Member::User(user) => {
                    let found = tx
                        .get::<User>(USERS, user.as_str())?
                        .filter(|found| actor.sees_user(&tree, found))
                        .ok_or(PermissionGroupError::NotFound("user"))?;
                    let detail = serde_json::json!({"user": found.id, "user_name": found.name});
                    (record.group.member_users.contains(user), detail)
                }
                Member::Group(child) => {
                    let found = visible_group(actor, &tree, &groups, child)?;
                    let detail = serde_json::json!({"group": found.id,
                        "group_name": found.group.details.name});
                    (record.group.member_groups.contains(child), detail)
                }
            };
            if already {
                return Ok(());
            }
            check_room(&groups, id)?;
            let graph = groups.graph_mut();
            match &member {
                Member::User(user) => graph.add_member_user(id, user.clone()),
                Member::Group(child) => graph.add_member_group(id, child),
            }?;
            save(
                hub,
                tx,
                actor,
                &mut groups,
                id,
                "permission_group.member_add",
                detail,
            )?;
            Ok(())
        })
        .await
}

/// Removes a direct member of a group the actor sees; "not found" unless it
/// is one. Needs only the group: taking a grant away never crosses a tenant.
///
/// # Errors
/// [`PermissionGroupError`].
pub async fn remove_member(
    hub: &Hub,
    actor: &Actor,
    id: &PermissionGroupId,
    member: Member,
) -> Result<()> {
    require_manager(actor)?;
    hub.store
        .transact(|tx| {
            let (mut groups, tree) = read_in(tx)?;
            visible_group(actor, &tree, &groups, id)?;
            let graph = groups.graph_mut();
            let (removed, detail) = match &member {
                Member::User(user) => (
                    graph.remove_member_user(id, user),
                    serde_json::json!({"user": user}),
                ),
                Member::Group(child) => (
                    graph.remove_member_group(id, child),
                    serde_json::json!({"group": child}),
                ),
            };
            if !removed? {
                return Err(PermissionGroupError::NotFound("member"));
            }
            save(
                hub,
                tx,
                actor,
                &mut groups,
                id,
                "permission_group.member_remove",
                detail,
            )?;
            Ok(())
        })
        .await
}

/// A user's effective permissions (P4): role defaults, the groups the user
/// belongs to (transitively), and their union. Oneself, or Manager+ for a
/// user they see.
///
/// # Errors
/// [`PermissionGroupError::NotFound`] for a user the actor does not see.
pub fn user_permissions(hub: &Hub, actor: &Actor, id: &str) -> Result<EffectivePermissionsView> {
    let (groups, tree) = read(hub)?;
    let user = hub
        .store
        .get::<User>(USERS, id)?
        .filter(|user| actor.sees_user(&tree, user))
        .ok_or(PermissionGroupError::NotFound("user"))?;
    let member_of: BTreeSet<PermissionGroupId> = counted_groups(&groups, &tree, &user);
    let effective = effective_permissions(user.role, &member_of, groups.graph());
    let mut shown = Vec::new();
    let mut hidden_groups = 0;
    for id in &member_of {
        match groups
            .record(id)
            .filter(|_| sees_group(actor, &tree, &groups, id))
        {
            Some(record) => shown.push(UserGroupView {
                direct: record.group.member_users.contains(&user.id),
                name: record.group.details.name,
                node: record.placement.node,
                permissions: record.group.permissions,
                id: record.id,
            }),
            None => hidden_groups += 1,
        }
    }
    Ok(EffectivePermissionsView {
        user: user.id,
        role: user.role,
        role_defaults: role_defaults(user.role),
        groups: shown,
        hidden_groups,
        effective,
    })
}

#[cfg(test)]
mod tests;
