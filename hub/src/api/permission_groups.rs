//! `/api/v1/permission-groups` (P1–P9, T2–T4, S8): permission groups, their
//! members, and `/api/v1/users/{id}/permissions`, a user's effective
//! permissions. The rules are [`crate::permission_groups::service`]'s; this
//! file extracts, calls and maps.

use signet_common::ids::{PermissionGroupId, UserId};

use super::prelude::*;
use crate::permission_groups::PermissionGroupError;
use crate::permission_groups::service::{self, Member};
use crate::permission_groups::views::{
    AddMemberGroup, AddMemberUser, CatalogueEntry, CreatePermissionGroup, EffectivePermissionsView,
    MembersView, PermissionGroupFilter, PermissionGroupView, UpdatePermissionGroup,
};

concern_routes! { list_groups, create_group; get_group, update_group, delete_group; list_members;
add_member_user; remove_member_user; add_member_group; remove_member_group; user_permissions;
permission_catalogue }

impl From<PermissionGroupError> for ApiError {
    fn from(e: PermissionGroupError) -> Self {
        match e {
            PermissionGroupError::Forbidden(message) => ApiError::forbidden(message),
            PermissionGroupError::NotFound(what) => ApiError::not_found(what),
            PermissionGroupError::InvalidName(e) => e.into(),
            PermissionGroupError::Invalid { code, message } => ApiError::bad_request(code, message),
            PermissionGroupError::Conflict { code, message } => ApiError::conflict(code, message),
            PermissionGroupError::Internal(cause) => ApiError::internal(&cause),
            PermissionGroupError::Store(e) => e.into(),
        }
    }
}

/// Permission groups the caller sees, optionally filtered by name or e-mail.
#[utoipa::path(get, path = "/api/v1/permission-groups", operation_id = "list_permission_groups", tag = "permission-groups",
    params(PermissionGroupFilter), security(("bearer" = [])),
    responses((status = 200, description = "Visible groups", body = Vec<PermissionGroupView>),
        (status = 400, description = "Invalid filter", body = ErrorBody), (status = 403, description = "Below Manager", body = ErrorBody)))]
pub async fn list_groups(
    State(state): Ctx,
    caller: Caller,
    ApiQuery(query): ApiQuery<PermissionGroupFilter>,
) -> Answer<Vec<PermissionGroupView>> {
    let groups = service::list_groups(&state, &caller.actor(), query.q.as_deref())?;
    Ok(Json(groups))
}

/// Creates a permission group at a node inside the caller's domain.
#[utoipa::path(post, path = "/api/v1/permission-groups", operation_id = "create_permission_group", tag = "permission-groups",
    request_body = CreatePermissionGroup, security(("bearer" = [])),
    responses((status = 201, description = "Created", body = PermissionGroupView),
        (status = 400, description = "Invalid field or unknown permission", body = ErrorBody), (status = 403, description = "Below Manager", body = ErrorBody),
        (status = 404, description = "Node absent or not visible", body = ErrorBody),
        (status = 409, description = "Name taken at the node, or too many groups", body = ErrorBody)))]
pub async fn create_group(
    State(state): Ctx,
    caller: Caller,
    ApiJson(request): ApiJson<CreatePermissionGroup>,
) -> WithStatus<PermissionGroupView> {
    let group = service::create_group(&state, &caller.actor(), request).await?;
    Ok((StatusCode::CREATED, Json(group)))
}

/// One permission group the caller sees.
#[utoipa::path(get, path = "/api/v1/permission-groups/{id}", operation_id = "get_permission_group", tag = "permission-groups",
    params(("id" = String, Path, description = "Permission group id")), security(("bearer" = [])),
    responses((status = 200, description = "The group", body = PermissionGroupView),
        (status = 403, description = "Below Manager", body = ErrorBody), (status = 404, description = "Absent or not visible", body = ErrorBody)))]
pub async fn get_group(
    State(state): Ctx,
    caller: Caller,
    Path(id): Path<PermissionGroupId>,
) -> Answer<PermissionGroupView> {
    Ok(Json(service::get_group(&state, &caller.actor(), &id)?))
}

/// Renames a group, changes its e-mail or description, or replaces the
/// permissions it grants; members stay (P8).
#[utoipa::path(patch, path = "/api/v1/permission-groups/{id}", operation_id = "update_permission_group", tag = "permission-groups",
    request_body = UpdatePermissionGroup,
    params(("id" = String, Path, description = "Permission group id")), security(("bearer" = [])),
    responses((status = 200, description = "Updated", body = PermissionGroupView),
        (status = 400, description = "Invalid field or unknown permission", body = ErrorBody), (status = 403, description = "Below Manager", body = ErrorBody),
        (status = 404, description = "Absent or not visible", body = ErrorBody), (status = 409, description = "Name taken at the node", body = ErrorBody)))]
pub async fn update_group(
    State(state): Ctx,
    caller: Caller,
    Path(id): Path<PermissionGroupId>,
    ApiJson(request): ApiJson<UpdatePermissionGroup>,
) -> Answer<PermissionGroupView> {
    let group = service::update_group(&state, &caller.actor(), &id, request).await?;
    Ok(Json(group))
}

/// Deletes a group and removes it from every group it was a member of, in
/// one write: its grants end at once (P8).
#[utoipa::path(delete, path = "/api/v1/permission-groups/{id}", operation_id = "delete_permission_group", tag = "permission-groups",
    params(("id" = String, Path, description = "Permission group id")), security(("bearer" = [])),
    responses((status = 204, description = "Deleted"),
        (status = 403, description = "Below Manager", body = ErrorBody), (status = 404, description = "Absent or not visible", body = ErrorBody)))]
pub async fn delete_group(
    State(state): Ctx,
    caller: Caller,
    Path(id): Path<PermissionGroupId>,
) -> Done {
    service::delete_group(&state, &caller.actor(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A group's direct members.
#[utoipa::path(get, path = "/api/v1/permission-groups/{id}/members", operation_id = "list_permission_group_members", tag = "permission-groups",
    params(("id" = String, Path, description = "Permission group id")), security(("bearer" = [])),
    responses((status = 200, description = "Direct members", body = MembersView),
        (status = 403, description = "Below Manager", body = ErrorBody), (status = 404, description = "Absent or not visible", body = ErrorBody)))]
pub async fn list_members(
    State(state): Ctx,
    caller: Caller,
    Path(id): Path<PermissionGroupId>,
) -> Answer<MembersView> {
    Ok(Json(service::members(&state, &caller.actor(), &id)?))
}

/// Adds a user the caller sees as a direct member; adding a member twice
/// changes nothing.
#[utoipa::path(post, path = "/api/v1/permission-groups/{id}/members/users", tag = "permission-groups",
    request_body = AddMemberUser,
    params(("id" = String, Path, description = "Permission group id")), security(("bearer" = [])),
    responses((status = 204, description = "The user is a direct member"),
        (status = 400, description = "Malformed body", body = ErrorBody), (status = 403, description = "Below Manager", body = ErrorBody),
        (status = 404, description = "Group or user absent or not visible", body = ErrorBody),
        (status = 409, description = "Too many members", body = ErrorBody)))]
pub async fn add_member_user(
    State(state): Ctx,
    caller: Caller,
    Path(id): Path<PermissionGroupId>,
    ApiJson(request): ApiJson<AddMemberUser>,
) -> Done {
    let member = Member::User(request.user);
    service::add_member(&state, &caller.actor(), &id, member).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a direct member user.
#[utoipa::path(delete, path = "/api/v1/permission-groups/{id}/members/users/{user}", tag = "permission-groups",
    params(("id" = String, Path, description = "Permission group id"),
        ("user" = String, Path, description = "User id")), security(("bearer" = [])),
    responses((status = 204, description = "Removed"), (status = 403, description = "Below Manager", body = ErrorBody),
        (status = 404, description = "Group not visible, or the user is not a direct member", body = ErrorBody)))]
pub async fn remove_member_user(
    State(state): Ctx,
    caller: Caller,
    Path((id, user)): Path<(PermissionGroupId, UserId)>,
) -> Done {
    let member = Member::User(user);
    service::remove_member(&state, &caller.actor(), &id, member).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Makes a group the caller sees a direct member: its members then belong
/// to this group too (P3). A change that would make a cycle is refused (409).
#[utoipa::path(post, path = "/api/v1/permission-groups/{id}/members/groups", tag = "permission-groups",
    request_body = AddMemberGroup,
    params(("id" = String, Path, description = "Permission group id")), security(("bearer" = [])),
    responses((status = 204, description = "The group is a direct member"),
        (status = 400, description = "Malformed body", body = ErrorBody), (status = 403, description = "Below Manager", body = ErrorBody),
        (status = 404, description = "A group absent or not visible", body = ErrorBody),
        (status = 409, description = "Would make a cycle (membership_cycle), or too many members", body = ErrorBody)))]
pub async fn add_member_group(
    State(state): Ctx,
    caller: Caller,
    Path(id): Path<PermissionGroupId>,
    ApiJson(request): ApiJson<AddMemberGroup>,
) -> Done {
    let member = Member::Group(request.group);
    service::add_member(&state, &caller.actor(), &id, member).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a direct member group.
#[utoipa::path(delete, path = "/api/v1/permission-groups/{id}/members/groups/{group}", tag = "permission-groups",
    params(("id" = String, Path, description = "Permission group id"),
        ("group" = String, Path, description = "Member group id")), security(("bearer" = [])),
    responses((status = 204, description = "Removed"), (status = 403, description = "Below Manager", body = ErrorBody),
        (status = 404, description = "Group not visible, or not a direct member", body = ErrorBody)))]
pub async fn remove_member_group(
    State(state): Ctx,
    caller: Caller,
    Path((id, child)): Path<(PermissionGroupId, PermissionGroupId)>,
) -> Done {
    let member = Member::Group(child);
    service::remove_member(&state, &caller.actor(), &id, member).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A user's effective permissions (P4): role defaults, the groups the user
/// belongs to (transitively), and their union. Oneself, or Manager+ for a
/// user they see.
#[utoipa::path(get, path = "/api/v1/users/{id}/permissions", tag = "users",
    params(("id" = String, Path, description = "User id")), security(("bearer" = [])),
    responses((status = 200, description = "Effective permissions", body = EffectivePermissionsView),
        (status = 404, description = "Absent or not visible", body = ErrorBody)))]
pub async fn user_permissions(
    State(state): Ctx,
    caller: Caller,
    Path(id): Id,
) -> Answer<EffectivePermissionsView> {
    let view = service::user_permissions(&state, &caller.actor(), &id)?;
    Ok(Json(view))
}

/// The permission catalogue (P7): every permission a group may grant, with
/// its family, what it lets a user do, and the lowest role holding it by
/// default (P1). Any logged-in user.
#[utoipa::path(get, path = "/api/v1/permissions", tag = "permission-groups", security(("bearer" = [])),
    responses((status = 200, description = "The catalogue, in order", body = Vec<CatalogueEntry>)))]
pub async fn permission_catalogue(_caller: Caller) -> Json<Vec<CatalogueEntry>> {
    Json(crate::permission_groups::views::catalogue())
}
