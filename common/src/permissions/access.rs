//! Who may view a media item and use a permission on it (P5, P6, P9).
//!
//! Owns: the view and permission decisions and the reason for each denial.
//! Must not: compute license entitlements (the caller passes the access
//! groups in which the user currently holds a valid entitlement, from
//! [`crate::license`]) or load anything.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{
    Domain, NodeTree, Permission, PermissionGroups, PermissionSet, PublishGate, Role,
    effective_permissions,
};
use crate::ids::{AccessGroupId, NodeId, PermissionGroupId, UserId};

/// A media item's publish settings: what its owner lets viewers do with it.
#[allow(clippy::struct_excessive_bools)] // four independent switches (M2), not a state machine
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishSettings {
    /// Whether anyone may download the file (gates `download`).
    pub allow_download: bool,
    /// Whether anyone may share a link to it (gates `share`).
    pub allow_share: bool,
    /// Whether comments are enabled (gates every `comment.*`).
    pub allow_comments: bool,
    /// Whether likes and dislikes are enabled (gates `rate`, M2).
    pub allow_rating: bool,
}

impl PublishSettings {
    /// Whether these settings let `permission` act (P5); always true for
    /// permissions without a publish gate.
    #[must_use]
    pub fn allows(self, permission: Permission) -> bool {
        match permission.publish_gate() {
            None => true,
            Some(PublishGate::Download) => self.allow_download,
            Some(PublishGate::Share) => self.allow_share,
            Some(PublishGate::Comments) => self.allow_comments,
            Some(PublishGate::Rating) => self.allow_rating,
        }
    }
}

/// What the access rules need to know about one media item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaAccess {
    /// The node the media is stored at; usable there and below (T2).
    pub node: NodeId,
    /// The user who uploaded it (P9).
    pub owner: UserId,
    /// Whether everyone whose domain covers the node may view it.
    pub open_to_all: bool,
    /// Otherwise, the permission groups whose members may view it.
    pub allowed_groups: BTreeSet<PermissionGroupId>,
    /// The access groups the media belongs to; if any, viewing needs a valid
    /// entitlement in one of them (P6, L4).
    pub access_groups: BTreeSet<AccessGroupId>,
    /// What its owner lets viewers do with it.
    pub publish: PublishSettings,
}

/// The user a decision is made for, resolved for one request (T3: a domain
/// change applies from the next request, so nothing here is cached longer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Who the user is.
    user: UserId,
    /// The user's role.
    role: Role,
    /// Where the user may look and act.
    domain: Domain,
    /// Every permission group the user belongs to, transitively.
    groups: BTreeSet<PermissionGroupId>,
    /// E(u): role defaults united with the groups' permissions (P4).
    permissions: PermissionSet,
    /// Access groups in which the user holds a valid entitlement now.
    entitled_access_groups: BTreeSet<AccessGroupId>,
}

impl Principal {
    /// Resolves a user's groups and effective permissions from `graph`.
    #[must_use]
    pub fn resolve(
        user: UserId,
        role: Role,
        domain: Domain,
        graph: &PermissionGroups,
        entitled_access_groups: BTreeSet<AccessGroupId>,
    ) -> Self {
        Self::resolve_counting(user, role, domain, graph, entitled_access_groups, |_| true)
    }

    /// As [`Self::resolve`], counting only the groups (of the user's
    /// transitive memberships) for which `counts` is true — the caller's
    /// tenancy rule decides which groups govern this user (T4).
    #[must_use]
    pub fn resolve_counting(
        user: UserId,
        role: Role,
        domain: Domain,
        graph: &PermissionGroups,
        entitled_access_groups: BTreeSet<AccessGroupId>,
        counts: impl Fn(&PermissionGroupId) -> bool,
    ) -> Self {
        let groups: BTreeSet<PermissionGroupId> = graph
            .groups_of(&user)
            .into_iter()
            .filter(|g| counts(g))
            .collect();
        let permissions = effective_permissions(role, &groups, graph);
        Self {
            user,
            role,
            domain,
            groups,
            permissions,
            entitled_access_groups,
        }
    }

    /// Who the user is.
    #[must_use]
    pub fn user(&self) -> &UserId {
        &self.user
    }

    /// The user's role.
    #[must_use]
    pub fn role(&self) -> Role {
        self.role
    }

    /// Where the user may look and act.
    #[must_use]
    pub fn domain(&self) -> &Domain {
        &self.domain
    }

    /// Every permission group the user belongs to, transitively.
    #[must_use]
    pub fn groups(&self) -> &BTreeSet<PermissionGroupId> {
        &self.groups
    }

    /// The user's effective permissions E(u) (P4).
    #[must_use]
    pub fn permissions(&self) -> PermissionSet {
        self.permissions
    }

    /// Access groups in which the user holds a valid entitlement now.
    #[must_use]
    pub fn entitled_access_groups(&self) -> &BTreeSet<AccessGroupId> {
        &self.entitled_access_groups
    }
}

/// Why a view or a permission was refused; for audit records and API errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Denial {
    /// The media's node is outside the user's domain (T2, T3).
    OutsideDomain,
    /// The media is not open to all and the user is in none of its groups.
    NotInAllowedGroup,
    /// The media belongs to access groups and the user holds no valid
    /// entitlement in any of them (L4).
    NoEntitlement,
    /// The permission is not in the user's effective permissions.
    PermissionNotHeld,
    /// The user's role cannot upload, so own-media permissions do not apply (P9).
    RoleCannotUpload,
    /// An own-media permission on media someone else uploaded (P9).
    NotOwnMedia,
    /// The media's publish settings do not allow this permission (P5).
    BlockedByPublishSettings,
}

/// The outcome of an access decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// The action may go ahead.
    Granted,
    /// The action is refused, and why.
    Denied(Denial),
}

impl Access {
    /// Whether the action may go ahead.
    #[must_use]
    pub fn is_granted(self) -> bool {
        self == Access::Granted
    }
}

/// Whether `principal` may view `media`, and if not why (P6, M1): the
/// media's node is reached by the domain (inside it, or above it where it is
/// usable, T2); then Moderator and above view it (M1, P2); below them the
/// media is open to all or the user is (transitively) in one of its allowed
/// groups, and if it belongs to access groups the user is entitled in one of
/// them. Checked in that order.
#[must_use]
pub fn view_access(principal: &Principal, media: &MediaAccess, tree: &NodeTree) -> Access {
    if !principal.domain.reaches(tree, &media.node) {
        return Access::Denied(Denial::OutsideDomain);
    }
    if principal.role >= Role::Moderator {
        return Access::Granted;
    }
    if !media.open_to_all && media.allowed_groups.is_disjoint(&principal.groups) {
        return Access::Denied(Denial::NotInAllowedGroup);
    }
    if !media.access_groups.is_empty()
        && media
            .access_groups
            .is_disjoint(&principal.entitled_access_groups)
    {
        return Access::Denied(Denial::NoEntitlement);
    }
    Access::Granted
}

/// Whether `principal` may view `media` (P6). Listings show only what this
/// allows.
#[must_use]
pub fn view(principal: &Principal, media: &MediaAccess, tree: &NodeTree) -> bool {
    view_access(principal, media, tree).is_granted()
}

/// Whether `principal` may use `permission` on `media`, and if not why:
/// view (P6), then `permission` ∈ E(u) (P4), then for own-media permissions a
/// role that can upload and media the user owns (P9), then the publish gate
/// (P5). A permission never reaches media the user cannot view.
#[must_use]
pub fn permission_access(
    principal: &Principal,
    permission: Permission,
    media: &MediaAccess,
    tree: &NodeTree,
) -> Access {
    let viewing = view_access(principal, media, tree);
    if !viewing.is_granted() {
        return viewing;
    }
    if !principal.permissions.contains(permission) {
        return Access::Denied(Denial::PermissionNotHeld);
    }
    if permission.is_own_media_permission() {
        if !principal.role.can_upload() {
            return Access::Denied(Denial::RoleCannotUpload);
        }
        if media.owner != principal.user {
            return Access::Denied(Denial::NotOwnMedia);
        }
    }
    if !media.publish.allows(permission) {
        return Access::Denied(Denial::BlockedByPublishSettings);
    }
    Access::Granted
}

/// Whether `principal` may use `permission` on `media` (P5, P9).
#[must_use]
pub fn can(
    principal: &Principal,
    permission: Permission,
    media: &MediaAccess,
    tree: &NodeTree,
) -> bool {
    permission_access(principal, permission, media, tree).is_granted()
}
