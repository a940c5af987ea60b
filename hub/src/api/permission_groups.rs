//! `/api/v1/permission-groups` (P1–P9, T2–T4, S8): permission groups, their
//! members, and `/api/v1/users/{id}/permissions`, a user's effective
//! permissions.
//!
//! Who may do what:
//! - every group belongs to a node; only callers whose domain covers that
//!   node learn it exists — anyone else gets 404 (T3, T4);
//! - Manager and above (`Role::can_manage_permission_groups`, P2) list,
//!   filter, read, create, edit and delete groups and add or remove members;
//!   lower roles get 403 on every group route, reads included, because a
//!   group's member list says who holds which extra permissions;
//! - every user reads their own effective permissions (role defaults, the
//!   groups they belong to, the effective set); Manager and above read those
//!   of users they see. Groups outside the caller's domain count in the
//!   effective set but are shown only as a number (`hidden_groups`, T4);
//! - a member user or member group must itself be visible to the caller
//!   (no cross-tenant membership); removing a member needs only the group;
//! - a membership that would make a cycle is refused with 409
//!   `membership_cycle` (P3), by the graph rules of `signet-common`;
//! - deleting a group removes it from every group it was a member of, in the
//!   same batch, so its grants end at once (P8).
//!
//! Every write takes the store's write lock, loads the groups, decides, and
//! applies one batch holding the change and its audit record (S8, S9).

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use signet_common::ids::{NodeId, PermissionGroupId, UserId};
use signet_common::permissions::{
    GroupDetails, MAX_GROUP_EMAIL_CHARS, MAX_GROUP_NAME_CHARS, Permission, PermissionError,
    PermissionSet, Role, effective_permissions, role_defaults,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::users::{check_email, sees_user};
use super::{ApiError, ApiJson, ApiQuery, AppState, Caller};
use crate::identity::{USERS, User, new_id};
use crate::permission_groups::{
    LoadedGroups, MAX_GROUP_MEMBERS, MAX_PERMISSION_GROUPS, PERMISSION_GROUPS, PlacedGroup,
    Placement, counted_groups, load_groups,
};
use crate::store::WriteBatch;
use crate::tenancy::{NODES, Node};

/// The most permission names one request may list.
pub const MAX_PERMISSION_NAMES: usize = 64;

/// This concern's routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_groups, create_group))
        .routes(routes!(get_group, update_group, delete_group))
        .routes(routes!(list_members))
        .routes(routes!(add_member_user))
        .routes(routes!(remove_member_user))
        .routes(routes!(add_member_group))
        .routes(routes!(remove_member_group))
        .routes(routes!(user_permissions))
}

/// A permission group as the API shows it.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Deserialize, utoipa::ToSchema)]
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
#[derive(Deserialize, utoipa::ToSchema)]
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
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PermissionGroupFilter {
    /// Case-insensitive substring of the name or e-mail (P8).
    pub q: Option<String>,
}

/// A user to add as a member.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMemberUser {
    /// The user's id (visible to the caller).
    #[schema(value_type = String)]
    pub user: UserId,
}

/// A group to add as a member.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMemberGroup {
    /// The member group's id (visible to the caller).
    #[schema(value_type = String)]
    pub group: PermissionGroupId,
}

/// A direct member user; name and e-mail only when the caller sees the user.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct MembersView {
    /// Users who are direct members (deleted users are left out).
    pub users: Vec<MemberUserView>,
    /// Groups that are direct members; their members belong here too (P3).
    pub groups: Vec<MemberGroupView>,
}

/// One group a user belongs to.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
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

/// 403 unless the caller's role manages permission groups (P2).
fn require_manager(caller: &Caller) -> Result<(), ApiError> {
    if caller.user.role.can_manage_permission_groups() {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "permission groups need the Manager role or above",
        ))
    }
}

/// Whether the caller's domain covers the node `id` lives at.
fn sees_group(caller: &Caller, groups: &LoadedGroups, id: &PermissionGroupId) -> bool {
    groups
        .placement(id)
        .is_some_and(|placement| caller.sees(&placement.node))
}

/// The record of a group the caller sees, or 404.
fn visible_group(
    caller: &Caller,
    groups: &LoadedGroups,
    id: &PermissionGroupId,
) -> Result<PlacedGroup, ApiError> {
    groups
        .record(id)
        .filter(|_| sees_group(caller, groups, id))
        .ok_or_else(|| ApiError::not_found("permission group"))
}

fn filter_query(filter: PermissionGroupFilter) -> Result<PermissionGroupFilter, ApiError> {
    let max = MAX_GROUP_NAME_CHARS.max(MAX_GROUP_EMAIL_CHARS);
    if filter.q.as_ref().is_some_and(|q| q.chars().count() > max) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("q is longer than {max} characters"),
        ));
    }
    Ok(filter)
}

/// Parses catalogue names (P7); an unknown name is 400.
fn parse_permissions(names: &[String]) -> Result<PermissionSet, ApiError> {
    if names.len() > MAX_PERMISSION_NAMES {
        return Err(ApiError::bad_request(
            "invalid_permissions",
            format!("at most {MAX_PERMISSION_NAMES} permission names"),
        ));
    }
    names
        .iter()
        .map(|name| {
            name.parse::<Permission>()
                .map_err(|e| ApiError::bad_request("unknown_permission", e.to_string()))
        })
        .collect()
}

/// Checks and normalizes details: trimmed name without control characters,
/// a plausible e-mail, every field within its bound.
fn check_details(details: GroupDetails) -> Result<GroupDetails, ApiError> {
    let details = GroupDetails {
        name: details.name.trim().to_owned(),
        ..details
    };
    if details.name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_name",
            "name must not contain control characters",
        ));
    }
    if let Some(email) = &details.email {
        check_email(email)?;
    }
    details.validate().map_err(details_error)?;
    Ok(details)
}

/// Maps a refused group change to an API error.
fn details_error(e: PermissionError) -> ApiError {
    match &e {
        PermissionError::EmptyGroupName => ApiError::bad_request("invalid_name", e.to_string()),
        PermissionError::FieldTooLong { field, .. } => {
            let code = match *field {
                "name" => "invalid_name",
                "email" => "invalid_email",
                "description" => "invalid_description",
                _ => "invalid_body",
            };
            ApiError::bad_request(code, e.to_string())
        }
        PermissionError::Cycle { .. } => ApiError::conflict("membership_cycle", e.to_string()),
        PermissionError::UnknownGroup { .. } => ApiError::not_found("permission group"),
        _ => ApiError::internal(&e),
    }
}

/// 409 if another group at `node` already has `name` (ignoring case).
fn check_name_free(
    groups: &LoadedGroups,
    node: &NodeId,
    name: &str,
    except: Option<&PermissionGroupId>,
) -> Result<(), ApiError> {
    let wanted = name.to_lowercase();
    let taken = groups.at_node(node).any(|id| {
        Some(id) != except
            && groups
                .graph()
                .group(id)
                .is_some_and(|g| g.details.name.to_lowercase() == wanted)
    });
    if taken {
        return Err(ApiError::conflict(
            "name_taken",
            format!("a permission group named {name:?} exists at this node"),
        ));
    }
    Ok(())
}

/// 409 if `id` already has the most direct members allowed.
fn check_room(groups: &LoadedGroups, id: &PermissionGroupId) -> Result<(), ApiError> {
    let count = groups
        .graph()
        .group(id)
        .map_or(0, |g| g.member_users.len() + g.member_groups.len());
    if count >= MAX_GROUP_MEMBERS {
        return Err(ApiError::conflict(
            "too_many_members",
            format!("a permission group has at most {MAX_GROUP_MEMBERS} direct members"),
        ));
    }
    Ok(())
}

/// Writes group `id` back with the caller's audit record for `action` in
/// one batch, durable before this returns (S8, S9).
async fn save(
    state: &AppState,
    caller: &Caller,
    groups: &mut LoadedGroups,
    id: &PermissionGroupId,
    action: &str,
    detail: serde_json::Value,
) -> Result<PlacedGroup, ApiError> {
    let mut batch = WriteBatch::new();
    groups.put(&state.store, &mut batch, id)?;
    let record = groups
        .record(id)
        .ok_or_else(|| ApiError::internal(&"a saved group vanished"))?;
    caller
        .audit(
            state,
            action,
            id.as_str(),
            Some(record.placement.node.clone()),
            detail,
        )
        .record(&mut batch)?;
    state.store.apply(batch).await?;
    Ok(record)
}

/// A direct member of a group.
enum Member {
    /// A user.
    User(UserId),
    /// A group, whose members belong too.
    Group(PermissionGroupId),
}

/// Adds a direct member, itself visible to the caller, to a group the caller
/// sees; adding a member twice changes nothing. The graph refuses cycles (P3).
async fn add_member(
    state: &AppState,
    caller: &Caller,
    id: PermissionGroupId,
    member: Member,
) -> Result<StatusCode, ApiError> {
    require_manager(caller)?;
    let _write = state.store.write_lock().await;
    let mut groups = load_groups(&state.store)?;
    let record = visible_group(caller, &groups, &id)?;
    let (already, detail) = match &member {
        Member::User(user) => {
            let found = state
                .store
                .get::<User>(USERS, user.as_str())?
                .filter(|found| sees_user(caller, found))
                .ok_or_else(|| ApiError::not_found("user"))?;
            (
                record.group.member_users.contains(user),
                serde_json::json!({"user": found.id, "user_name": found.name}),
            )
        }
        Member::Group(child) => {
            let found = visible_group(caller, &groups, child)?;
            (
                record.group.member_groups.contains(child),
                serde_json::json!({"group": found.id, "group_name": found.group.details.name}),
            )
        }
    };
    if already {
        return Ok(StatusCode::NO_CONTENT);
    }
    check_room(&groups, &id)?;
    let graph = groups.graph_mut();
    match member {
        Member::User(user) => graph.add_member_user(&id, user),
        Member::Group(child) => graph.add_member_group(&id, &child),
    }
    .map_err(details_error)?;
    save(
        state,
        caller,
        &mut groups,
        &id,
        "permission_group.member_add",
        detail,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a direct member of a group the caller sees; 404 unless it is one.
/// Removing needs only the group: taking a grant away never crosses a tenant.
async fn remove_member(
    state: &AppState,
    caller: &Caller,
    id: PermissionGroupId,
    member: Member,
) -> Result<StatusCode, ApiError> {
    require_manager(caller)?;
    let _write = state.store.write_lock().await;
    let mut groups = load_groups(&state.store)?;
    visible_group(caller, &groups, &id)?;
    let graph = groups.graph_mut();
    let (removed, detail) = match &member {
        Member::User(user) => (
            graph.remove_member_user(&id, user),
            serde_json::json!({"user": user}),
        ),
        Member::Group(child) => (
            graph.remove_member_group(&id, child),
            serde_json::json!({"group": child}),
        ),
    };
    if !removed.map_err(details_error)? {
        return Err(ApiError::not_found("member"));
    }
    save(
        state,
        caller,
        &mut groups,
        &id,
        "permission_group.member_remove",
        detail,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn group_id(id: String) -> PermissionGroupId {
    PermissionGroupId::new(id)
}

/// Permission groups the caller sees, optionally filtered by name or e-mail.
#[utoipa::path(get, path = "/api/v1/permission-groups", operation_id = "list_permission_groups", tag = "permission-groups",
    params(PermissionGroupFilter), security(("bearer" = [])),
    responses((status = 200, description = "Visible groups", body = Vec<PermissionGroupView>),
        (status = 400, description = "Invalid filter", body = super::ErrorBody),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Below Manager", body = super::ErrorBody)))]
pub async fn list_groups(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<PermissionGroupFilter>,
) -> Result<Json<Vec<PermissionGroupView>>, ApiError> {
    require_manager(&caller)?;
    let filter = filter_query(query)?;
    let groups = load_groups(&state.store)?;
    let needle = filter.q.unwrap_or_default();
    Ok(Json(
        groups
            .graph()
            .filter(&needle)
            .filter(|(id, _)| sees_group(&caller, &groups, id))
            .filter_map(|(id, _)| groups.record(id))
            .map(|record| PermissionGroupView::from(&record))
            .collect(),
    ))
}

/// Creates a permission group at a node inside the caller's domain.
#[utoipa::path(post, path = "/api/v1/permission-groups", operation_id = "create_permission_group", tag = "permission-groups",
    request_body = CreatePermissionGroup, security(("bearer" = [])),
    responses((status = 201, description = "Created", body = PermissionGroupView),
        (status = 400, description = "Invalid field or unknown permission", body = super::ErrorBody),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Below Manager", body = super::ErrorBody),
        (status = 404, description = "Node absent or not visible", body = super::ErrorBody),
        (status = 409, description = "Name taken at the node, or too many groups", body = super::ErrorBody)))]
pub async fn create_group(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<CreatePermissionGroup>,
) -> Result<(StatusCode, Json<PermissionGroupView>), ApiError> {
    require_manager(&caller)?;
    let details = check_details(GroupDetails {
        name: request.name,
        email: request.email,
        description: request.description,
    })?;
    let permissions = parse_permissions(&request.permissions)?;
    let _write = state.store.write_lock().await;
    if !caller.sees(&request.node)
        || state
            .store
            .get::<Node>(NODES, request.node.as_str())?
            .is_none()
    {
        return Err(ApiError::not_found("node"));
    }
    let mut groups = load_groups(&state.store)?;
    if groups.len() >= MAX_PERMISSION_GROUPS {
        return Err(ApiError::conflict(
            "too_many_groups",
            format!("the hub holds at most {MAX_PERMISSION_GROUPS} permission groups"),
        ));
    }
    check_name_free(&groups, &request.node, &details.name, None)?;
    let id = PermissionGroupId::new(new_id("pg-"));
    let detail = serde_json::json!({"name": details.name, "email": details.email,
        "permissions": permissions});
    groups
        .create(
            id.clone(),
            Placement {
                node: request.node.clone(),
                created_by: Some(caller.user.id.clone()),
                created_at: state.clock.now(),
            },
            details,
            permissions,
        )
        .map_err(details_error)?;
    let record = save(
        &state,
        &caller,
        &mut groups,
        &id,
        "permission_group.create",
        detail,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(PermissionGroupView::from(&record)),
    ))
}

/// One permission group the caller sees.
#[utoipa::path(get, path = "/api/v1/permission-groups/{id}", operation_id = "get_permission_group", tag = "permission-groups",
    params(("id" = String, Path, description = "Permission group id")), security(("bearer" = [])),
    responses((status = 200, description = "The group", body = PermissionGroupView),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Below Manager", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody)))]
pub async fn get_group(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<PermissionGroupView>, ApiError> {
    require_manager(&caller)?;
    let groups = load_groups(&state.store)?;
    let record = visible_group(&caller, &groups, &group_id(id))?;
    Ok(Json(PermissionGroupView::from(&record)))
}

/// Renames a group, changes its e-mail or description, or replaces the
/// permissions it grants; members stay (P8).
#[utoipa::path(patch, path = "/api/v1/permission-groups/{id}", operation_id = "update_permission_group", tag = "permission-groups",
    request_body = UpdatePermissionGroup,
    params(("id" = String, Path, description = "Permission group id")), security(("bearer" = [])),
    responses((status = 200, description = "Updated", body = PermissionGroupView),
        (status = 400, description = "Invalid field or unknown permission", body = super::ErrorBody),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Below Manager", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody),
        (status = 409, description = "Name taken at the node", body = super::ErrorBody)))]
pub async fn update_group(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<UpdatePermissionGroup>,
) -> Result<Json<PermissionGroupView>, ApiError> {
    require_manager(&caller)?;
    let new_permissions = request
        .permissions
        .as_deref()
        .map(parse_permissions)
        .transpose()?;
    let id = group_id(id);
    let _write = state.store.write_lock().await;
    let mut groups = load_groups(&state.store)?;
    let old = visible_group(&caller, &groups, &id)?;
    let mut details = old.group.details.clone();
    if let Some(name) = request.name {
        details.name = name;
    }
    if let Some(email) = request.email {
        details.email = (!email.is_empty()).then_some(email);
    }
    if let Some(description) = request.description {
        details.description = (!description.is_empty()).then_some(description);
    }
    let details = check_details(details)?;
    check_name_free(&groups, &old.placement.node, &details.name, Some(&id))?;
    let permissions = new_permissions.unwrap_or(old.group.permissions);
    let detail = serde_json::json!({"name": details.name, "email": details.email,
        "permissions": permissions, "permissions_before": old.group.permissions});
    groups
        .graph_mut()
        .edit_group(&id, details, permissions)
        .map_err(details_error)?;
    let record = save(
        &state,
        &caller,
        &mut groups,
        &id,
        "permission_group.update",
        detail,
    )
    .await?;
    Ok(Json(PermissionGroupView::from(&record)))
}

/// Deletes a group and removes it from every group it was a member of, in
/// one write: its grants end at once (P8).
#[utoipa::path(delete, path = "/api/v1/permission-groups/{id}", operation_id = "delete_permission_group", tag = "permission-groups",
    params(("id" = String, Path, description = "Permission group id")), security(("bearer" = [])),
    responses((status = 204, description = "Deleted"),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Below Manager", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody)))]
pub async fn delete_group(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_manager(&caller)?;
    let id = group_id(id);
    let _write = state.store.write_lock().await;
    let mut groups = load_groups(&state.store)?;
    let old = visible_group(&caller, &groups, &id)?;
    let parents = groups.delete(&id).map_err(details_error)?;
    let mut batch = WriteBatch::new();
    batch.delete(PERMISSION_GROUPS, id.as_str());
    for parent in &parents {
        groups.put(&state.store, &mut batch, parent)?;
    }
    caller
        .audit(
            &state,
            "permission_group.delete",
            id.as_str(),
            Some(old.placement.node.clone()),
            serde_json::json!({"name": old.group.details.name,
                "permissions": old.group.permissions,
                "removed_from": parents}),
        )
        .record(&mut batch)?;
    state.store.apply(batch).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A group's direct members.
#[utoipa::path(get, path = "/api/v1/permission-groups/{id}/members", operation_id = "list_permission_group_members", tag = "permission-groups",
    params(("id" = String, Path, description = "Permission group id")), security(("bearer" = [])),
    responses((status = 200, description = "Direct members", body = MembersView),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Below Manager", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody)))]
pub async fn list_members(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<MembersView>, ApiError> {
    require_manager(&caller)?;
    let id = group_id(id);
    let groups = load_groups(&state.store)?;
    let record = visible_group(&caller, &groups, &id)?;
    let users = groups
        .existing_member_users(&state.store, &id)?
        .into_iter()
        .map(|user| {
            let seen = sees_user(&caller, &user);
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
                .filter(|_| sees_group(&caller, &groups, child));
            MemberGroupView {
                id: child.clone(),
                name: shown.as_ref().map(|c| c.group.details.name.clone()),
                node: shown.map(|c| c.placement.node),
            }
        })
        .collect();
    Ok(Json(MembersView {
        users,
        groups: member_groups,
    }))
}

/// Adds a user the caller sees as a direct member; adding a member twice
/// changes nothing.
#[utoipa::path(post, path = "/api/v1/permission-groups/{id}/members/users", tag = "permission-groups",
    request_body = AddMemberUser,
    params(("id" = String, Path, description = "Permission group id")), security(("bearer" = [])),
    responses((status = 204, description = "The user is a direct member"),
        (status = 400, description = "Malformed body", body = super::ErrorBody),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Below Manager", body = super::ErrorBody),
        (status = 404, description = "Group or user absent or not visible", body = super::ErrorBody),
        (status = 409, description = "Too many members", body = super::ErrorBody)))]
pub async fn add_member_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<AddMemberUser>,
) -> Result<StatusCode, ApiError> {
    add_member(&state, &caller, group_id(id), Member::User(request.user)).await
}

/// Removes a direct member user.
#[utoipa::path(delete, path = "/api/v1/permission-groups/{id}/members/users/{user}", tag = "permission-groups",
    params(("id" = String, Path, description = "Permission group id"),
        ("user" = String, Path, description = "User id")), security(("bearer" = [])),
    responses((status = 204, description = "Removed"),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Below Manager", body = super::ErrorBody),
        (status = 404, description = "Group not visible, or the user is not a direct member", body = super::ErrorBody)))]
pub async fn remove_member_user(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    remove_member(
        &state,
        &caller,
        group_id(id),
        Member::User(UserId::new(user)),
    )
    .await
}

/// Makes a group the caller sees a direct member: its members then belong
/// to this group too (P3). A change that would make a cycle is refused (409).
#[utoipa::path(post, path = "/api/v1/permission-groups/{id}/members/groups", tag = "permission-groups",
    request_body = AddMemberGroup,
    params(("id" = String, Path, description = "Permission group id")), security(("bearer" = [])),
    responses((status = 204, description = "The group is a direct member"),
        (status = 400, description = "Malformed body", body = super::ErrorBody),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Below Manager", body = super::ErrorBody),
        (status = 404, description = "A group absent or not visible", body = super::ErrorBody),
        (status = 409, description = "Would make a cycle (membership_cycle), or too many members", body = super::ErrorBody)))]
pub async fn add_member_group(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<AddMemberGroup>,
) -> Result<StatusCode, ApiError> {
    add_member(&state, &caller, group_id(id), Member::Group(request.group)).await
}

/// Removes a direct member group.
#[utoipa::path(delete, path = "/api/v1/permission-groups/{id}/members/groups/{group}", tag = "permission-groups",
    params(("id" = String, Path, description = "Permission group id"),
        ("group" = String, Path, description = "Member group id")), security(("bearer" = [])),
    responses((status = 204, description = "Removed"),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Below Manager", body = super::ErrorBody),
        (status = 404, description = "Group not visible, or not a direct member", body = super::ErrorBody)))]
pub async fn remove_member_group(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, child)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    remove_member(
        &state,
        &caller,
        group_id(id),
        Member::Group(group_id(child)),
    )
    .await
}

/// A user's effective permissions (P4): role defaults, the groups the user
/// belongs to (transitively), and their union. Oneself, or Manager+ for a
/// user they see.
#[utoipa::path(get, path = "/api/v1/users/{id}/permissions", tag = "users",
    params(("id" = String, Path, description = "User id")), security(("bearer" = [])),
    responses((status = 200, description = "Effective permissions", body = EffectivePermissionsView),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody)))]
pub async fn user_permissions(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<EffectivePermissionsView>, ApiError> {
    let user = state
        .store
        .get::<User>(USERS, &id)?
        .filter(|user| sees_user(&caller, user))
        .ok_or_else(|| ApiError::not_found("user"))?;
    let groups = load_groups(&state.store)?;
    let member_of: BTreeSet<PermissionGroupId> = counted_groups(&groups, &caller.tree, &user);
    let effective = effective_permissions(user.role, &member_of, groups.graph());
    let mut shown = Vec::new();
    let mut hidden_groups = 0;
    for id in &member_of {
        match groups
            .record(id)
            .filter(|_| sees_group(&caller, &groups, id))
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
    Ok(Json(EffectivePermissionsView {
        user: user.id,
        role: user.role,
        role_defaults: role_defaults(user.role),
        groups: shown,
        hidden_groups,
        effective,
    }))
}
