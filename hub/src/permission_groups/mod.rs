//! Permission groups (P3, P4, P8): where each group lives in the tenancy
//! tree, how groups are stored, and the effective permissions they give.
//!
//! Owns: the group records (one per group, in [`PERMISSION_GROUPS`]), loading
//! them into the [`PermissionGroups`] graph of `signet-common`, writing changed
//! groups back in a transaction ([`LoadedGroups::put`], their one writer), the
//! queries the rest of the hub asks for P5/P6 decisions
//! ([`effective_permissions_of`], [`groups_of`], [`principal_of`]), and the
//! [`service`] that decides who may change a group. Must not: re-implement
//! graph rules (cycle refusal, transitive membership, E(u)) — the graph in
//! `signet-common` decides those — nor know HTTP.
//!
//! Tolerance: deleting a user (in the users service) leaves its id in the member
//! lists of groups. Such ids are harmless — no login can ever hold them, so
//! they grant nothing — and they are dropped from a group the next time that
//! group is written ([`LoadedGroups::put`]) and never shown by
//! [`LoadedGroups::existing_member_users`]. A member-group id without a record
//! (which one-batch writes never produce) is skipped with a warning.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use signet_common::ids::{AccessGroupId, NodeId, PermissionGroupId, UserId};
use signet_common::permissions::{
    Domain, GroupDetails, NodeTree, PermissionError, PermissionGroup, PermissionGroups,
    PermissionSet, Principal, effective_permissions,
};

use crate::identity::{USERS, User};
use crate::store::{Store, StoreError, Tx};
use crate::tenancy::{load_tree, load_tree_in};

pub mod service;
pub mod views;

pub use service::PermissionGroupError;

/// Tree of permission groups by id: one [`PlacedGroup`] each.
pub const PERMISSION_GROUPS: &str = "permission_groups";
/// The most permission groups the hub holds, over every tenant: the whole
/// graph is loaded for each membership decision, so it stays bounded.
pub const MAX_PERMISSION_GROUPS: usize = 4096;
/// The most direct members (users and groups together) one group may have.
pub const MAX_GROUP_MEMBERS: usize = 1024;

/// Where a group lives and who made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Placement {
    /// The node the group belongs to: callers whose domain covers it see and
    /// manage it (T2–T4).
    pub node: NodeId,
    /// Who created it.
    pub created_by: Option<UserId>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// One permission group as stored: its id, where it lives, and the group
/// itself (details, permissions, direct members).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlacedGroup {
    /// The group's id (also the record's key).
    pub id: PermissionGroupId,
    /// Where it lives and who made it.
    pub placement: Placement,
    /// Name, e-mail, description, permissions and direct members.
    pub group: PermissionGroup,
}

/// Every permission group, loaded: the membership graph and each group's
/// placement. Changes go through [`LoadedGroups::graph_mut`] (the
/// `signet-common` rules) and are written back with [`LoadedGroups::put`].
#[derive(Debug, Clone, Default)]
pub struct LoadedGroups {
    /// The groups and their members, acyclic.
    graph: PermissionGroups,
    /// Where each group lives.
    placements: BTreeMap<PermissionGroupId, Placement>,
}

impl LoadedGroups {
    /// The membership graph.
    #[must_use]
    pub fn graph(&self) -> &PermissionGroups {
        &self.graph
    }

    /// The membership graph, to change through its rule-keeping methods.
    pub fn graph_mut(&mut self) -> &mut PermissionGroups {
        &mut self.graph
    }

    /// Where `id` lives, if it exists.
    #[must_use]
    pub fn placement(&self, id: &PermissionGroupId) -> Option<&Placement> {
        self.placements.get(id)
    }

    /// How many groups exist.
    #[must_use]
    pub fn len(&self) -> usize {
        self.graph.len()
    }

    /// Whether no group exists.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.graph.is_empty()
    }

    /// The groups living at `node` exactly.
    pub fn at_node<'a>(
        &'a self,
        node: &'a NodeId,
    ) -> impl Iterator<Item = &'a PermissionGroupId> + 'a {
        self.placements
            .iter()
            .filter(move |(_, placement)| placement.node == *node)
            .map(|(id, _)| id)
    }

    /// Adds a new group, created by the graph's rules, at `placement`.
    ///
    /// # Errors
    /// What [`PermissionGroups::create_group`] refuses (duplicate id, invalid
    /// details); nothing changes then.
    pub fn create(
        &mut self,
        id: PermissionGroupId,
        placement: Placement,
        details: GroupDetails,
        permissions: PermissionSet,
    ) -> Result<(), PermissionError> {
        self.graph.create_group(id.clone(), details, permissions)?;
        self.placements.insert(id, placement);
        Ok(())
    }

    /// Deletes a group through the graph (which also removes it from every
    /// group it was a member of, P8) and returns the ids of the groups that
    /// lost it as a member: the caller writes those back.
    ///
    /// # Errors
    /// [`PermissionError::UnknownGroup`].
    pub fn delete(
        &mut self,
        id: &PermissionGroupId,
    ) -> Result<Vec<PermissionGroupId>, PermissionError> {
        let parents: Vec<PermissionGroupId> = self
            .graph
            .iter()
            .filter(|(_, group)| group.member_groups.contains(id))
            .map(|(parent, _)| parent.clone())
            .collect();
        self.graph.delete_group(id)?;
        self.placements.remove(id);
        Ok(parents)
    }

    /// The record of `id`, if it exists.
    #[must_use]
    pub fn record(&self, id: &PermissionGroupId) -> Option<PlacedGroup> {
        Some(PlacedGroup {
            id: id.clone(),
            placement: self.placements.get(id)?.clone(),
            group: self.graph.group(id)?.clone(),
        })
    }

    /// Writes the record of `id` in `tx`, first dropping member users that no
    /// longer exist (deleted users leave their ids behind): the one writer of
    /// group records.
    ///
    /// # Errors
    /// When the store fails, or `id` is not loaded (a caller bug, reported as
    /// a store error so the request fails and nothing is written).
    pub fn put(&mut self, tx: &mut Tx, id: &PermissionGroupId) -> Result<(), StoreError> {
        let missing = |reason: &str| StoreError::Corrupt {
            tree: PERMISSION_GROUPS,
            key: id.to_string(),
            reason: reason.to_owned(),
        };
        let members: Vec<UserId> = self
            .graph
            .group(id)
            .ok_or_else(|| missing("group not loaded"))?
            .member_users
            .iter()
            .cloned()
            .collect();
        for user in members {
            if !tx.contains(USERS, user.as_str())? {
                self.graph
                    .remove_member_user(id, &user)
                    .map_err(|e| missing(&e.to_string()))?;
            }
        }
        let record = self.record(id).ok_or_else(|| missing("group not loaded"))?;
        tx.put(PERMISSION_GROUPS, id.as_str(), &record)
    }

    /// The direct member users of `id` that still exist, with their records.
    ///
    /// # Errors
    /// When the store fails.
    pub fn existing_member_users(
        &self,
        store: &Store,
        id: &PermissionGroupId,
    ) -> Result<Vec<User>, StoreError> {
        let Some(group) = self.graph.group(id) else {
            return Ok(Vec::new());
        };
        let mut users = Vec::with_capacity(group.member_users.len());
        for member in &group.member_users {
            if let Some(user) = store.get::<User>(USERS, member.as_str())? {
                users.push(user);
            }
        }
        Ok(users)
    }
}

/// Loads every permission group and builds the graph.
///
/// # Errors
/// When the store fails, a record does not decode or is invalid, or the
/// stored memberships form a cycle (which the API never writes).
pub fn load_groups(store: &Store) -> Result<LoadedGroups, StoreError> {
    from_records(store.scan(PERMISSION_GROUPS, "")?)
}

/// [`load_groups`] inside a transaction: a decision on the graph commits
/// only if no group changed meanwhile.
///
/// # Errors
/// As [`load_groups`].
pub fn load_groups_in(tx: &mut Tx) -> Result<LoadedGroups, StoreError> {
    from_records(tx.scan(PERMISSION_GROUPS, "")?)
}

fn from_records(records: Vec<PlacedGroup>) -> Result<LoadedGroups, StoreError> {
    let corrupt = |id: &PermissionGroupId, e: &PermissionError| StoreError::Corrupt {
        tree: PERMISSION_GROUPS,
        key: id.to_string(),
        reason: e.to_string(),
    };
    let mut loaded = LoadedGroups::default();
    for record in &records {
        loaded
            .create(
                record.id.clone(),
                record.placement.clone(),
                record.group.details.clone(),
                record.group.permissions,
            )
            .map_err(|e| corrupt(&record.id, &e))?;
    }
    // Every group exists now, so members can be added in any order; adding
    // the edges of an acyclic graph never meets a cycle.
    for record in records {
        for user in record.group.member_users {
            loaded
                .graph
                .add_member_user(&record.id, user)
                .map_err(|e| corrupt(&record.id, &e))?;
        }
        for child in &record.group.member_groups {
            match loaded.graph.add_member_group(&record.id, child) {
                Ok(_) => {}
                Err(PermissionError::UnknownGroup { group }) => {
                    tracing::warn!(parent = %record.id, missing = %group,
                        "permission group lists a member group that does not exist; skipped");
                }
                Err(e) => return Err(corrupt(&record.id, &e)),
            }
        }
    }
    Ok(loaded)
}

/// Whether the group placed at `group_node` governs `user`: its node is at
/// or above a node of the user's domain. A tenant's groups count only for
/// users working inside that tenant (T4), so a user moved to another tenant
/// keeps no grant from the old one, whatever memberships remain stored.
#[must_use]
pub fn governs(tree: &NodeTree, group_node: &NodeId, user: &User) -> bool {
    user.domain
        .iter()
        .any(|node| tree.is_within(node, group_node))
}

/// Every permission group that counts for `user` (P3, P4 within T4): the
/// user's transitive memberships, limited to groups that [`governs`] them.
///
/// # Errors
/// As [`load_groups`], or when the node tree cannot be loaded.
pub fn groups_of(store: &Store, user: &User) -> Result<BTreeSet<PermissionGroupId>, StoreError> {
    let loaded = load_groups(store)?;
    let (tree, _) = load_tree(store)?;
    Ok(counted_groups(&loaded, &tree, user))
}

/// The user's transitive groups that govern them, from loaded records.
#[must_use]
pub fn counted_groups(
    loaded: &LoadedGroups,
    tree: &NodeTree,
    user: &User,
) -> BTreeSet<PermissionGroupId> {
    loaded
        .graph
        .groups_of(&user.id)
        .into_iter()
        .filter(|id| {
            loaded
                .placement(id)
                .is_some_and(|p| governs(tree, &p.node, user))
        })
        .collect()
}

/// The effective permissions E(u) of `user` (P4): the defaults of the role
/// united with the permissions of every group that counts for the user
/// ([`groups_of`]). A deleted group grants nothing from the moment its
/// delete is durable (P8).
///
/// # Errors
/// As [`groups_of`].
pub fn effective_permissions_of(store: &Store, user: &User) -> Result<PermissionSet, StoreError> {
    let loaded = load_groups(store)?;
    let (tree, _) = load_tree(store)?;
    Ok(effective_of(&loaded, &tree, user))
}

/// [`effective_permissions_of`] read in `tx`: a decision that rests on a
/// permission (approving content, managing devices) commits only if no
/// group, membership or node it was derived from changed meanwhile (P8).
///
/// # Errors
/// As [`groups_of`].
pub fn effective_permissions_of_in(tx: &mut Tx, user: &User) -> Result<PermissionSet, StoreError> {
    let loaded = load_groups_in(tx)?;
    let (tree, _) = load_tree_in(tx)?;
    Ok(effective_of(&loaded, &tree, user))
}

fn effective_of(loaded: &LoadedGroups, tree: &NodeTree, user: &User) -> PermissionSet {
    let groups = counted_groups(loaded, tree, user);
    effective_permissions(user.role, &groups, &loaded.graph)
}

/// `user` resolved for one request's P5/P6 decisions: role, domain,
/// the groups that count for them and E(u), with the access groups in which
/// the caller found a valid entitlement now.
///
/// # Errors
/// As [`groups_of`].
pub fn principal_of(
    store: &Store,
    user: &User,
    entitled_access_groups: BTreeSet<AccessGroupId>,
) -> Result<Principal, StoreError> {
    let loaded = load_groups(store)?;
    let (tree, _) = load_tree(store)?;
    let counted = counted_groups(&loaded, &tree, user);
    Ok(Principal::resolve_counting(
        user.id.clone(),
        user.role,
        Domain::new(user.domain.iter().cloned()),
        &loaded.graph,
        entitled_access_groups,
        |id| counted.contains(id),
    ))
}

/// The ids of the groups living at `node`: a node that holds groups should
/// not be deleted out from under them.
///
/// # Errors
/// When the store fails or a record does not decode.
pub fn groups_at(store: &Store, node: &NodeId) -> Result<Vec<PermissionGroupId>, StoreError> {
    Ok(placed_at(store.scan(PERMISSION_GROUPS, "")?, node))
}

/// [`groups_at`] inside a transaction.
///
/// # Errors
/// When the store fails or a record does not decode.
pub fn groups_at_in(tx: &mut Tx, node: &NodeId) -> Result<Vec<PermissionGroupId>, StoreError> {
    Ok(placed_at(tx.scan(PERMISSION_GROUPS, "")?, node))
}

fn placed_at(records: Vec<PlacedGroup>, node: &NodeId) -> Vec<PermissionGroupId> {
    records
        .into_iter()
        .filter(|record| record.placement.node == *node)
        .map(|record| record.id)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use signet_common::permissions::{GroupDetails, Permission, Role};

    use super::*;
    use crate::store::{SledStorage, WriteBatch};

    fn store(dir: &tempfile::TempDir) -> Store {
        Store::new(Arc::new(SledStorage::open(dir.path()).unwrap()))
    }

    fn record(id: &str, users: &[&str], groups: &[&str], grants: &[Permission]) -> PlacedGroup {
        PlacedGroup {
            id: PermissionGroupId::from(id),
            placement: Placement {
                node: NodeId::from("n-root"),
                created_by: None,
                created_at: DateTime::<Utc>::UNIX_EPOCH,
            },
            group: PermissionGroup {
                details: GroupDetails::named(id),
                permissions: PermissionSet::of(grants),
                member_users: users.iter().map(|u| UserId::from(*u)).collect(),
                member_groups: groups.iter().map(|g| PermissionGroupId::from(*g)).collect(),
            },
        }
    }

    async fn write(store: &Store, records: &[PlacedGroup]) {
        let mut batch = WriteBatch::new();
        // The root node every record is placed at (groups_of reads the tree).
        let root = crate::tenancy::Node {
            id: NodeId::from("n-root"),
            parent: None,
            name: "root".into(),
            restricted: false,
            created_by: None,
            created_at: DateTime::<Utc>::UNIX_EPOCH,
            content_manager_email: None,
            strict_feeds: false,
            created_at_root_level: false,
            locale: crate::tenancy::NodeLocale::default(),
        };
        batch.put(crate::tenancy::NODES, "n-root", &root).unwrap();
        for r in records {
            batch.put(PERMISSION_GROUPS, r.id.as_str(), r).unwrap();
        }
        store.apply(batch).await.unwrap();
    }

    fn user(id: &str, role: Role) -> User {
        User {
            id: UserId::from(id),
            name: id.to_owned(),
            email: format!("{id}@example.test"),
            role,
            domain: vec![NodeId::from("n-root")],
            requires_approval: false,
            disabled: false,
            password_hash: String::new(),
            created_at: DateTime::<Utc>::UNIX_EPOCH,
            created_by: None,
        }
    }

    #[tokio::test]
    async fn p4_effective_permissions_and_groups_come_from_stored_records() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        write(
            &store,
            &[
                record("pg-top", &[], &["pg-mid"], &[Permission::Publish]),
                record("pg-mid", &["u-1"], &[], &[Permission::LearningPlans]),
                record("pg-other", &["u-2"], &[], &[Permission::ManageDevices]),
            ],
        )
        .await;
        let viewer = user("u-1", Role::Viewer);
        let groups = groups_of(&store, &viewer).unwrap();
        assert_eq!(
            groups,
            BTreeSet::from([
                PermissionGroupId::from("pg-top"),
                PermissionGroupId::from("pg-mid")
            ])
        );
        let set = effective_permissions_of(&store, &viewer).unwrap();
        assert!(set.contains(Permission::Publish) && set.contains(Permission::LearningPlans));
        assert!(!set.contains(Permission::ManageDevices));
        assert!(set.contains(Permission::Rate), "role defaults stay");
        let principal = principal_of(&store, &viewer, BTreeSet::new()).unwrap();
        assert_eq!(principal.permissions(), set);
        assert_eq!(principal.groups(), &groups);
        assert_eq!(groups_at(&store, &NodeId::from("n-root")).unwrap().len(), 3);
    }

    #[tokio::test]
    async fn p3_loading_skips_missing_member_groups_and_refuses_stored_cycles() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        write(&store, &[record("pg-a", &["u-gone"], &["pg-missing"], &[])]).await;
        let loaded = load_groups(&store).unwrap();
        let a = loaded
            .graph()
            .group(&PermissionGroupId::from("pg-a"))
            .unwrap();
        assert!(a.member_groups.is_empty());
        write(
            &store,
            &[
                record("pg-a", &[], &["pg-b"], &[]),
                record("pg-b", &[], &["pg-a"], &[]),
            ],
        )
        .await;
        assert!(matches!(
            load_groups(&store),
            Err(StoreError::Corrupt {
                tree: PERMISSION_GROUPS,
                ..
            })
        ));
    }
}
