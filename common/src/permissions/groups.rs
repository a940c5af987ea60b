//! Permission groups (P3, P8): users and other groups that receive extra
//! permissions, with transitive membership.
//!
//! Owns: the group graph and its invariants — every member group exists, no
//! group is (transitively) a member of itself, and a deleted group is gone
//! from every member list. Must not: know roles or media; combining groups
//! with role defaults is [`super::effective_permissions`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use super::{PermissionError, PermissionSet, Role, role_defaults};
use crate::ids::{PermissionGroupId, UserId};

/// The longest group name, in characters.
pub const MAX_GROUP_NAME_CHARS: usize = 128;
/// The longest group e-mail address, in characters.
pub const MAX_GROUP_EMAIL_CHARS: usize = 254;
/// The longest group description, in characters.
pub const MAX_GROUP_DESCRIPTION_CHARS: usize = 1024;

/// What operators see of a group and filter by (P8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupDetails {
    /// The name operators know the group by; not empty.
    pub name: String,
    /// A contact address for the group, searchable like the name.
    pub email: Option<String>,
    /// Free text explaining what the group is for.
    pub description: Option<String>,
}

impl GroupDetails {
    /// Details with just a name.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            email: None,
            description: None,
        }
    }

    /// Checks the name is not blank and every field is within its bound.
    ///
    /// # Errors
    /// [`PermissionError::EmptyGroupName`] or [`PermissionError::FieldTooLong`].
    pub fn validate(&self) -> Result<(), PermissionError> {
        if self.name.trim().is_empty() {
            return Err(PermissionError::EmptyGroupName);
        }
        check_len("name", &self.name, MAX_GROUP_NAME_CHARS)?;
        if let Some(email) = &self.email {
            check_len("email", email, MAX_GROUP_EMAIL_CHARS)?;
        }
        if let Some(description) = &self.description {
            check_len("description", description, MAX_GROUP_DESCRIPTION_CHARS)?;
        }
        Ok(())
    }

    fn matches(&self, needle_lower: &str) -> bool {
        self.name.to_lowercase().contains(needle_lower)
            || self
                .email
                .as_ref()
                .is_some_and(|email| email.to_lowercase().contains(needle_lower))
    }
}

fn check_len(field: &'static str, text: &str, max: usize) -> Result<(), PermissionError> {
    if text.chars().count() > max {
        return Err(PermissionError::FieldTooLong { field, max });
    }
    Ok(())
}

/// One permission group as stored: what it grants and who belongs to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermissionGroup {
    /// Name, e-mail and description.
    pub details: GroupDetails,
    /// The permissions every member, direct or transitive, receives.
    pub permissions: PermissionSet,
    /// Users who are direct members.
    pub member_users: BTreeSet<UserId>,
    /// Groups that are direct members; their members belong here too.
    pub member_groups: BTreeSet<PermissionGroupId>,
}

/// Every permission group of a tenancy, kept acyclic and closed (no member
/// group that does not exist). Changed only through its methods, each of which
/// changes nothing when it returns an error.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, try_from = "UncheckedGroups")]
pub struct PermissionGroups {
    /// The groups by id.
    groups: BTreeMap<PermissionGroupId, PermissionGroup>,
}

/// The stored form before its invariants are checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UncheckedGroups {
    /// The groups by id.
    groups: BTreeMap<PermissionGroupId, PermissionGroup>,
}

impl TryFrom<UncheckedGroups> for PermissionGroups {
    type Error = PermissionError;

    fn try_from(unchecked: UncheckedGroups) -> Result<Self, Self::Error> {
        let graph = Self {
            groups: unchecked.groups,
        };
        for (id, group) in &graph.groups {
            group.details.validate()?;
            for child in &group.member_groups {
                if !graph.groups.contains_key(child) {
                    return Err(PermissionError::UnknownGroup {
                        group: child.clone(),
                    });
                }
                // A cycle through `id -> child` exists iff `id` is reachable from `child`.
                if child == id || graph.reaches(child, id) {
                    return Err(PermissionError::Cycle {
                        parent: id.clone(),
                        child: child.clone(),
                    });
                }
            }
        }
        Ok(graph)
    }
}

impl PermissionGroups {
    /// A tenancy without groups.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The group `id`, if it exists.
    #[must_use]
    pub fn group(&self, id: &PermissionGroupId) -> Option<&PermissionGroup> {
        self.groups.get(id)
    }

    /// Every group, by id.
    pub fn iter(&self) -> impl Iterator<Item = (&PermissionGroupId, &PermissionGroup)> {
        self.groups.iter()
    }

    /// How many groups exist.
    #[must_use]
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether no group exists.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The groups whose name or e-mail contains `text`, ignoring case (P8).
    /// An empty `text` matches every group.
    pub fn filter<'a>(
        &'a self,
        text: &str,
    ) -> impl Iterator<Item = (&'a PermissionGroupId, &'a PermissionGroup)> + 'a {
        let needle = text.to_lowercase();
        self.groups
            .iter()
            .filter(move |(_, group)| group.details.matches(&needle))
    }

    /// Creates an empty group.
    ///
    /// # Errors
    /// [`PermissionError::DuplicateGroup`] or invalid details.
    pub fn create_group(
        &mut self,
        id: PermissionGroupId,
        details: GroupDetails,
        permissions: PermissionSet,
    ) -> Result<(), PermissionError> {
        details.validate()?;
        if self.groups.contains_key(&id) {
            return Err(PermissionError::DuplicateGroup { group: id });
        }
        self.groups.insert(
            id,
            PermissionGroup {
                details,
                permissions,
                member_users: BTreeSet::new(),
                member_groups: BTreeSet::new(),
            },
        );
        Ok(())
    }

    /// Replaces a group's details and permissions; members stay (P8).
    ///
    /// # Errors
    /// [`PermissionError::UnknownGroup`] or invalid details.
    pub fn edit_group(
        &mut self,
        id: &PermissionGroupId,
        details: GroupDetails,
        permissions: PermissionSet,
    ) -> Result<(), PermissionError> {
        details.validate()?;
        let group = self.group_mut(id)?;
        group.details = details;
        group.permissions = permissions;
        Ok(())
    }

    /// Deletes a group and removes it from every other group's members, so
    /// its grants end at once for everyone who held them through it (P8).
    ///
    /// # Errors
    /// [`PermissionError::UnknownGroup`].
    pub fn delete_group(
        &mut self,
        id: &PermissionGroupId,
    ) -> Result<PermissionGroup, PermissionError> {
        let removed = self
            .groups
            .remove(id)
            .ok_or_else(|| PermissionError::UnknownGroup { group: id.clone() })?;
        for group in self.groups.values_mut() {
            group.member_groups.remove(id);
        }
        Ok(removed)
    }

    /// Adds `user` as a direct member of `group`; returns whether it was new.
    ///
    /// # Errors
    /// [`PermissionError::UnknownGroup`].
    pub fn add_member_user(
        &mut self,
        group: &PermissionGroupId,
        user: UserId,
    ) -> Result<bool, PermissionError> {
        Ok(self.group_mut(group)?.member_users.insert(user))
    }

    /// Removes `user` as a direct member of `group`; returns whether it was one.
    ///
    /// # Errors
    /// [`PermissionError::UnknownGroup`].
    pub fn remove_member_user(
        &mut self,
        group: &PermissionGroupId,
        user: &UserId,
    ) -> Result<bool, PermissionError> {
        Ok(self.group_mut(group)?.member_users.remove(user))
    }

    /// Makes `child` a direct member of `parent`; returns whether it was new.
    ///
    /// # Errors
    /// [`PermissionError::UnknownGroup`] if either group does not exist;
    /// [`PermissionError::Cycle`] if `child` is `parent` or already contains
    /// `parent`, transitively (P3, 409). Nothing changes on error.
    pub fn add_member_group(
        &mut self,
        parent: &PermissionGroupId,
        child: &PermissionGroupId,
    ) -> Result<bool, PermissionError> {
        self.require(parent)?;
        self.require(child)?;
        if parent == child || self.reaches(child, parent) {
            return Err(PermissionError::Cycle {
                parent: parent.clone(),
                child: child.clone(),
            });
        }
        Ok(self.group_mut(parent)?.member_groups.insert(child.clone()))
    }

    /// Removes `child` as a direct member of `parent`; returns whether it was one.
    ///
    /// # Errors
    /// [`PermissionError::UnknownGroup`] if `parent` does not exist.
    pub fn remove_member_group(
        &mut self,
        parent: &PermissionGroupId,
        child: &PermissionGroupId,
    ) -> Result<bool, PermissionError> {
        Ok(self.group_mut(parent)?.member_groups.remove(child))
    }

    /// Every group `user` belongs to, directly or through member groups (P3):
    /// if `user` is in B and B is a member of A, `user` is in A. A user no
    /// group knows belongs to none.
    #[must_use]
    pub fn groups_of(&self, user: &UserId) -> BTreeSet<PermissionGroupId> {
        let mut parents: BTreeMap<&PermissionGroupId, Vec<&PermissionGroupId>> = BTreeMap::new();
        for (id, group) in &self.groups {
            for child in &group.member_groups {
                parents.entry(child).or_default().push(id);
            }
        }
        let mut found: BTreeSet<&PermissionGroupId> = BTreeSet::new();
        let mut queue: VecDeque<&PermissionGroupId> = self
            .groups
            .iter()
            .filter(|(_, group)| group.member_users.contains(user))
            .map(|(id, _)| id)
            .collect();
        // Each group enters `found` once, so the walk ends after at most
        // `self.groups.len()` steps.
        while let Some(id) = queue.pop_front() {
            if found.insert(id) {
                queue.extend(parents.get(id).into_iter().flatten().copied());
            }
        }
        found.into_iter().cloned().collect()
    }

    /// Whether `user` belongs to `group`, directly or transitively.
    ///
    /// # Errors
    /// [`PermissionError::UnknownGroup`].
    pub fn is_member(
        &self,
        user: &UserId,
        group: &PermissionGroupId,
    ) -> Result<bool, PermissionError> {
        self.require(group)?;
        Ok(self.groups_of(user).contains(group))
    }

    /// Every user who belongs to `group`, directly or through member groups.
    ///
    /// # Errors
    /// [`PermissionError::UnknownGroup`].
    pub fn members_of(
        &self,
        group: &PermissionGroupId,
    ) -> Result<BTreeSet<UserId>, PermissionError> {
        self.require(group)?;
        let mut users = BTreeSet::new();
        for id in self.descendants(group) {
            if let Some(found) = self.groups.get(id) {
                users.extend(found.member_users.iter().cloned());
            }
        }
        Ok(users)
    }

    /// The permissions granted by `group` alone; a group that does not exist
    /// (for example one just deleted) grants nothing.
    #[must_use]
    pub fn permissions_of(&self, group: &PermissionGroupId) -> PermissionSet {
        self.groups
            .get(group)
            .map_or_else(PermissionSet::empty, |found| found.permissions)
    }

    fn require(&self, id: &PermissionGroupId) -> Result<(), PermissionError> {
        if self.groups.contains_key(id) {
            Ok(())
        } else {
            Err(PermissionError::UnknownGroup { group: id.clone() })
        }
    }

    fn group_mut(
        &mut self,
        id: &PermissionGroupId,
    ) -> Result<&mut PermissionGroup, PermissionError> {
        self.groups
            .get_mut(id)
            .ok_or_else(|| PermissionError::UnknownGroup { group: id.clone() })
    }

    /// `start` and every group that is a member of it, transitively; each
    /// group is visited once.
    fn descendants<'a>(&'a self, start: &'a PermissionGroupId) -> BTreeSet<&'a PermissionGroupId> {
        let mut seen = BTreeSet::new();
        let mut queue = VecDeque::from([start]);
        while let Some(id) = queue.pop_front() {
            if seen.insert(id)
                && let Some(group) = self.groups.get(id)
            {
                queue.extend(group.member_groups.iter());
            }
        }
        seen
    }

    /// Whether `target` is `start` or a member of it, transitively.
    fn reaches(&self, start: &PermissionGroupId, target: &PermissionGroupId) -> bool {
        self.descendants(start).contains(target)
    }
}

/// A user's effective permissions (P4): the role's defaults united with the
/// permissions of every group in `groups_of_user` (which should be
/// [`PermissionGroups::groups_of`], i.e. already transitive). There are no
/// deny rules, so no group can remove a role default; ids of groups that no
/// longer exist grant nothing (P8).
#[must_use]
pub fn effective_permissions(
    role: Role,
    groups_of_user: &BTreeSet<PermissionGroupId>,
    graph: &PermissionGroups,
) -> PermissionSet {
    groups_of_user
        .iter()
        .fold(role_defaults(role), |set, group| {
            set.union(graph.permissions_of(group))
        })
}
