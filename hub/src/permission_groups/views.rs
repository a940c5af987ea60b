//! The permission-group service's inputs and views: the API's request and
//! response bodies (their schema names are the API contract).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use signet_common::ids::{NodeId, PermissionGroupId, UserId};
use signet_common::permissions::{Permission, PermissionSet, Role, role_defaults};

use super::PlacedGroup;

/// A permission group as the API shows it.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PermissionGroupView {
    /// Stable id.
    #[schema(value_type = String)]
    pub id: PermissionGroupId,
    /// The node the group belongs to.
    #[schema(value_type = String)]
    pub node: NodeId,
    /// Name (1 to 128 characters).
    pub name: String,
    /// Contact address, searchable like the name.
    pub email: Option<String>,
    /// What the group is for.
    pub description: Option<String>,
    /// Catalogue names (P7) of the permissions every member receives.
    #[schema(value_type = Vec<String>)]
    pub permissions: PermissionSet,
    /// How many users are direct members.
    pub member_users: usize,
    /// How many groups are direct members.
    pub member_groups: usize,
    /// Who created it.
    #[schema(value_type = Option<String>)]
    pub created_by: Option<UserId>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl From<&PlacedGroup> for PermissionGroupView {
    fn from(record: &PlacedGroup) -> Self {
        let group = &record.group;
        Self {
            id: record.id.clone(),
            node: record.placement.node.clone(),
            name: group.details.name.clone(),
            email: group.details.email.clone(),
            description: group.details.description.clone(),
            permissions: group.permissions,
            member_users: group.member_users.len(),
            member_groups: group.member_groups.len(),
            created_by: record.placement.created_by.clone(),
            created_at: record.placement.created_at,
        }
    }
}

/// A new permission group.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePermissionGroup {
    /// The node it belongs to (inside the caller's domain).
    #[schema(value_type = String)]
    pub node: NodeId,
    /// Name (1 to 128 characters, unique at the node ignoring case).
    pub name: String,
    /// Contact address.
    pub email: Option<String>,
    /// What the group is for (at most 1024 characters).
    pub description: Option<String>,
    /// Catalogue names (P7) of the permissions it grants; none by default.
    #[serde(default)]
    pub permissions: Vec<String>,
}

/// Changes to a permission group; absent fields stay as they are.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePermissionGroup {
    /// New name.
    pub name: Option<String>,
    /// New contact address; `""` clears it.
    pub email: Option<String>,
    /// New description; `""` clears it.
    pub description: Option<String>,
    /// The new complete list of granted permissions (replaces the old one).
    pub permissions: Option<Vec<String>>,
}

/// List filter.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PermissionGroupFilter {
    /// Case-insensitive substring of the name or e-mail (P8).
    pub q: Option<String>,
}

/// A user to add as a member.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMemberUser {
    /// The user's id (visible to the caller).
    #[schema(value_type = String)]
    pub user: UserId,
}

/// A group to add as a member.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMemberGroup {
    /// The member group's id (visible to the caller).
    #[schema(value_type = String)]
    pub group: PermissionGroupId,
}

/// A direct member user; name and e-mail only when the caller sees the user.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MemberUserView {
    /// User id.
    #[schema(value_type = String)]
    pub id: UserId,
    /// Login name, if the caller sees the user.
    pub name: Option<String>,
    /// E-mail, if the caller sees the user.
    pub email: Option<String>,
}

/// A direct member group; name and node only when the caller sees it.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MemberGroupView {
    /// Group id.
    #[schema(value_type = String)]
    pub id: PermissionGroupId,
    /// Name, if the caller sees the group.
    pub name: Option<String>,
    /// Node, if the caller sees the group.
    #[schema(value_type = Option<String>)]
    pub node: Option<NodeId>,
}

/// A group's direct members.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MembersView {
    /// Users who are direct members (deleted users are left out).
    pub users: Vec<MemberUserView>,
    /// Groups that are direct members; their members belong here too (P3).
    pub groups: Vec<MemberGroupView>,
}

/// One group a user belongs to.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserGroupView {
    /// Group id.
    #[schema(value_type = String)]
    pub id: PermissionGroupId,
    /// Name.
    pub name: String,
    /// The node it belongs to.
    #[schema(value_type = String)]
    pub node: NodeId,
    /// Whether the user is a direct member (otherwise through member groups).
    pub direct: bool,
    /// What the group grants.
    #[schema(value_type = Vec<String>)]
    pub permissions: PermissionSet,
}

/// A user's effective permissions and where they come from (P4).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EffectivePermissionsView {
    /// The user.
    #[schema(value_type = String)]
    pub user: UserId,
    /// The user's role.
    #[schema(value_type = String)]
    pub role: Role,
    /// What the role grants by itself (P1).
    #[schema(value_type = Vec<String>)]
    pub role_defaults: PermissionSet,
    /// Groups the user belongs to, directly or transitively, that the caller
    /// sees.
    pub groups: Vec<UserGroupView>,
    /// How many more groups the user belongs to outside the caller's domain
    /// (their grants are in `effective`; their names are not shown, T4).
    pub hidden_groups: usize,
    /// E(u): the role defaults united with every group's permissions.
    #[schema(value_type = Vec<String>)]
    pub effective: PermissionSet,
}

/// One entry of the permission catalogue (P7), as the console lists it.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CatalogueEntry {
    /// The catalogue name, as granted (e.g. `comment.add`).
    pub name: String,
    /// The family it is listed under (`Media`, `Annotations`, `Comments`,
    /// `Collections`, `Screens`).
    pub family: String,
    /// What it lets a user do.
    pub description: String,
    /// The lowest role whose defaults hold it (P1); absent when only
    /// groups grant it.
    #[schema(value_type = Option<String>)]
    pub default_from: Option<Role>,
}

/// The whole catalogue, in catalogue order.
#[must_use]
pub fn catalogue() -> Vec<CatalogueEntry> {
    Permission::ALL
        .into_iter()
        .map(|p| CatalogueEntry {
            name: p.as_str().to_owned(),
            family: p.family().to_owned(),
            description: p.description().to_owned(),
            default_from: Role::ALL
                .into_iter()
                .find(|role| role_defaults(*role).contains(p)),
        })
        .collect()
}
