//! Roles (P1) and the permissions each role holds by default.
//!
//! Owns: the role order and the default-permission table. Must not: consult
//! permission groups — [`super::effective_permissions`] adds those.

use serde::{Deserialize, Serialize};

use super::{Permission, PermissionSet};

/// A user's role, ordered from least to most powerful (P1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Looks at content, schedules and fleet status.
    Viewer,
    /// Also uploads content and builds templates and playlists.
    Contributor,
    /// Also holds every media permission, approves and publishes content.
    Moderator,
    /// Also manages permission groups (P2) and devices.
    Manager,
    /// Holds every permission.
    Admin,
}

impl Role {
    /// Every role, from least to most powerful.
    pub const ALL: [Role; 5] = [
        Role::Viewer,
        Role::Contributor,
        Role::Moderator,
        Role::Manager,
        Role::Admin,
    ];

    /// Whether the role may upload media (Contributor and above); the P9
    /// own-uploaded-media permissions apply only to these roles.
    #[must_use]
    pub fn can_upload(self) -> bool {
        self >= Role::Contributor
    }

    /// Whether the role may create, edit, delete and filter permission groups
    /// and add their members (Manager and above, P2).
    #[must_use]
    pub fn can_manage_permission_groups(self) -> bool {
        self >= Role::Manager
    }
}

/// What each role adds to the role below it; `role_defaults` unions these up
/// to the role asked for, so each role's set includes every lower role's (P1).
fn added_by(role: Role) -> PermissionSet {
    use Permission as P;
    match role {
        Role::Viewer => PermissionSet::of(&[P::Rate, P::Feedback, P::Favorite, P::CommentView]),
        Role::Contributor => PermissionSet::of(&[
            P::Download,
            P::Share,
            P::AnnotationViewOwn,
            P::AnnotationEditOwn,
            P::AnnotationDeleteOwn,
            P::CommentAdd,
            P::CommentEditOwn,
            P::CommentDeleteOwn,
            P::PrivatePlaylists,
            P::PrivateCollections,
        ]),
        Role::Moderator => {
            let media: PermissionSet = Permission::ALL
                .into_iter()
                .filter(|permission| permission.is_media_permission())
                .collect();
            media.union(PermissionSet::of(&[P::ApproveContent, P::Publish]))
        }
        Role::Manager => PermissionSet::of(&[P::ManageDevices, P::LearningPlans]),
        Role::Admin => PermissionSet::all(),
    }
}

/// The permissions `role` holds without any permission group.
///
/// | Role | Adds to the role below |
/// |---|---|
/// | Viewer | `rate`, `feedback`, `favorite`, `comment.view` |
/// | Contributor | `download`, `share`, `annotation.view_own`, `annotation.edit_own`, `annotation.delete_own`, `comment.add`, `comment.edit_own`, `comment.delete_own`, `private_playlists`, `private_collections` |
/// | Moderator | every other media permission (`update_custom_attributes`, `process_media`, `annotation.view_all`, `annotation.edit_others`, `annotation.delete_others`, `comment.delete_others`), `approve_content`, `publish` |
/// | Manager | `manage_devices`, `learning_plans` |
/// | Admin | everything |
///
/// With that, Manager already holds the whole catalogue; what sets Admin
/// apart (managing users, nodes and tenants) lies outside P7.
///
/// Publishing is a Moderator permission: the people who approve content for
/// screens (A6) can also put it on them, so approval never waits on a second
/// person. Device management stays with Managers. Download, share and comments
/// remain subject to each media item's publish settings (P5).
#[must_use]
pub fn role_defaults(role: Role) -> PermissionSet {
    Role::ALL
        .into_iter()
        .filter(|lower| *lower <= role)
        .fold(PermissionSet::empty(), |set, lower| {
            set.union(added_by(lower))
        })
}
