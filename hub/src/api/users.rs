//! `/api/v1/users` (S8, T3): accounts, roles and domains.
//!
//! Who may do what:
//! - everyone reads and updates their own email and password;
//! - Manager and above list, create, update, disable and delete users whose
//!   whole domain lies inside their own, never granting a role above their
//!   own, and never changing their own role or domain;
//! - a role or domain change applies to the user's next request (T3), and
//!   disabling or deleting a user revokes their sessions at once.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use signet_common::ids::{NodeId, UserId};
use signet_common::permissions::Role;

use super::session::revoke_all;
use super::{ApiError, ApiJson, ApiQuery, AppState, Caller};
use crate::identity::names::{self, check_login_name};
use crate::identity::{
    HashError, MAX_PASSWORD_LEN, MIN_PASSWORD_LEN, USER_NAMES, USERS, User,
    check_name_unlike_others, name_key, new_id,
};
use crate::store::WriteBatch;

/// The most nodes one user's domain may hold.
pub const MAX_DOMAIN_NODES: usize = 32;

/// A user as the API shows it (never the password hash).
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserView {
    /// Stable id.
    #[schema(value_type = String)]
    pub id: UserId,
    /// Login name.
    pub name: String,
    /// Contact address.
    pub email: String,
    /// Role: viewer, contributor, moderator, manager or admin.
    #[schema(value_type = String)]
    pub role: Role,
    /// Node ids whose subtrees the user works in.
    #[schema(value_type = Vec<String>)]
    pub domain: Vec<NodeId>,
    /// Whether the user's saves need approval (A3).
    pub requires_approval: bool,
    /// Whether the account is disabled.
    pub disabled: bool,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

impl From<&User> for UserView {
    fn from(user: &User) -> Self {
        Self {
            id: user.id.clone(),
            name: user.name.clone(),
            email: user.email.clone(),
            role: user.role,
            domain: user.domain.clone(),
            requires_approval: user.requires_approval,
            disabled: user.disabled,
            created_at: user.created_at,
        }
    }
}

/// A new user.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// Login name, unique (case-insensitive).
    pub name: String,
    /// Contact address.
    pub email: String,
    /// Initial password (12 to 1024 bytes).
    pub password: String,
    /// Role.
    #[schema(value_type = String)]
    pub role: Role,
    /// Domain node ids (1 to 32), each inside the creator's domain.
    #[schema(value_type = Vec<String>)]
    pub domain: Vec<NodeId>,
    /// Whether the user's saves need approval.
    #[serde(default)]
    pub requires_approval: bool,
}

/// Changes to a user; absent fields stay as they are.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    /// New contact address.
    pub email: Option<String>,
    /// New password.
    pub password: Option<String>,
    /// New role (Manager and above, not for oneself).
    #[schema(value_type = Option<String>)]
    pub role: Option<Role>,
    /// New domain (Manager and above, not for oneself).
    #[schema(value_type = Option<Vec<String>>)]
    pub domain: Option<Vec<NodeId>>,
    /// Approval requirement (Manager and above).
    pub requires_approval: Option<bool>,
    /// Disable or enable (Manager and above, not oneself).
    pub disabled: Option<bool>,
}

/// List filter.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UserFilter {
    /// Case-insensitive substring of the name or email.
    pub q: Option<String>,
}

/// A login name (S13): NFC, the safe alphabet, one script; returns it
/// normalized.
pub(super) fn check_name(name: &str) -> Result<String, ApiError> {
    check_login_name(name).map_err(|e| ApiError::bad_request("invalid_name", e.to_string()))
}

/// Refuses (409 `name_confusable`) a login name that looks like an existing
/// one (S13, UTS 39 skeletons). Call it under the store's write lock.
pub(super) fn check_unlike_others(state: &AppState, name: &str) -> Result<(), ApiError> {
    check_name_unlike_others(&state.store, name)?
        .map_err(|e| ApiError::conflict("name_confusable", e.to_string()))
}

/// An e-mail address, parsed (S13).
pub fn check_email(email: &str) -> Result<(), ApiError> {
    names::check_email(email).map_err(|e| ApiError::bad_request("invalid_email", e.to_string()))
}

pub(super) fn check_password(password: &str) -> Result<(), ApiError> {
    if (MIN_PASSWORD_LEN..=MAX_PASSWORD_LEN).contains(&password.len()) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "weak_password",
            format!("password must be {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} bytes"),
        ))
    }
}

/// A domain must be 1 to 32 existing nodes, each inside the caller's domain.
fn check_domain(caller: &Caller, domain: &[NodeId]) -> Result<(), ApiError> {
    if domain.is_empty() || domain.len() > MAX_DOMAIN_NODES {
        return Err(ApiError::bad_request(
            "invalid_domain",
            format!("domain must list 1 to {MAX_DOMAIN_NODES} nodes"),
        ));
    }
    if let Some(node) = domain
        .iter()
        .find(|n| !caller.tree.contains(n) || !caller.sees(n))
    {
        return Err(ApiError::bad_request(
            "invalid_domain",
            format!("node {node} is not in your domain"),
        ));
    }
    Ok(())
}

/// Whether the caller may see `target`: themselves, or (Manager+) a user
/// whose whole domain lies inside the caller's. The one rule for every
/// route that reaches a user.
pub(super) fn sees_user(caller: &Caller, target: &User) -> bool {
    target.id == caller.user.id
        || (caller.user.role >= Role::Manager
            && !target.domain.is_empty()
            && target.domain.iter().all(|n| caller.sees(n)))
}

fn load_visible(state: &AppState, caller: &Caller, id: &str) -> Result<User, ApiError> {
    state
        .store
        .get::<User>(USERS, id)?
        .filter(|user| sees_user(caller, user))
        .ok_or_else(|| ApiError::not_found("user"))
}

/// Hashes a password off the async runtime, within the hub's bound on
/// concurrent hashes (S12: 503 with `Retry-After` when it stays busy).
pub(super) async fn hash(state: &AppState, password: String) -> Result<String, ApiError> {
    state
        .hashing
        .hash(password)
        .await
        .map_err(|e| hash_error(&e))
}

/// The answer to a hash that did not happen: 503 `busy` with `Retry-After`
/// when every slot stayed taken, else 500.
pub(super) fn hash_error(e: &HashError) -> ApiError {
    match e {
        HashError::Busy => ApiError::busy("busy", e.to_string(), 1),
        HashError::Failed(cause) => ApiError::internal(cause),
    }
}

/// Users the caller may see.
#[utoipa::path(get, path = "/api/v1/users", tag = "users", params(UserFilter), security(("bearer" = [])),
    responses((status = 200, description = "Visible users", body = Vec<UserView>),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Below Manager", body = super::ErrorBody)))]
pub async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(filter): ApiQuery<UserFilter>,
) -> Result<Json<Vec<UserView>>, ApiError> {
    caller.require(Role::Manager)?;
    let needle = filter.q.map(|q| q.to_lowercase());
    let users: Vec<User> = state.store.scan(USERS, "")?;
    Ok(Json(
        users
            .iter()
            .filter(|u| sees_user(&caller, u))
            .filter(|u| {
                needle.as_ref().is_none_or(|q| {
                    u.name.to_lowercase().contains(q) || u.email.to_lowercase().contains(q)
                })
            })
            .map(UserView::from)
            .collect(),
    ))
}

/// Creates a user inside the caller's domain, with a role no higher than
/// the caller's.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = CreateUser, security(("bearer" = [])),
    responses((status = 201, description = "Created", body = UserView),
        (status = 400, description = "Invalid field", body = super::ErrorBody),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Not allowed", body = super::ErrorBody),
        (status = 409, description = "Name taken, or confusable with an existing name", body = super::ErrorBody),
        (status = 503, description = "Too many password hashes running; retry", body = super::ErrorBody)))]
pub async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<CreateUser>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    caller.require(Role::Manager)?;
    let name = check_name(&request.name)?;
    check_email(&request.email)?;
    check_password(&request.password)?;
    check_domain(&caller, &request.domain)?;
    if request.role > caller.user.role {
        return Err(ApiError::forbidden("cannot grant a role above your own"));
    }
    let password_hash = hash(&state, request.password).await?;
    let _write = state.store.write_lock().await;
    let key = name_key(&name);
    if state.store.get::<UserId>(USER_NAMES, &key)?.is_some() {
        return Err(ApiError::conflict(
            "name_taken",
            format!("the name {name:?} is taken"),
        ));
    }
    check_unlike_others(&state, &name)?;
    let user = User {
        id: UserId::new(new_id("u-")),
        name,
        email: request.email,
        role: request.role,
        domain: request.domain,
        requires_approval: request.requires_approval,
        disabled: false,
        password_hash,
        created_at: state.clock.now(),
        created_by: Some(caller.user.id.clone()),
    };
    let mut batch = WriteBatch::new();
    batch.put(USERS, user.id.as_str(), &user)?;
    batch.put(USER_NAMES, &key, &user.id)?;
    caller
        .audit(
            &state,
            "user.create",
            user.id.as_str(),
            user.domain.first().cloned(),
            serde_json::json!({"name": user.name, "role": user.role, "domain": user.domain}),
        )
        .record(&mut batch)?;
    state.store.apply(batch).await?;
    Ok((StatusCode::CREATED, Json(UserView::from(&user))))
}

/// One user the caller may see.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", params(("id" = String, Path, description = "User id")),
    security(("bearer" = [])),
    responses((status = 200, description = "The user", body = UserView),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody)))]
pub async fn get_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json(UserView::from(&load_visible(&state, &caller, &id)?)))
}

/// Changes a user. Email and password: oneself or Manager+; role, domain,
/// approval and disabled: Manager+ on others, within their own role and domain.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", request_body = UpdateUser,
    params(("id" = String, Path, description = "User id")), security(("bearer" = [])),
    responses((status = 200, description = "Updated", body = UserView),
        (status = 400, description = "Invalid field", body = super::ErrorBody),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Not allowed", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody),
        (status = 503, description = "Too many password hashes running; retry", body = super::ErrorBody)))]
pub async fn update_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<UpdateUser>,
) -> Result<Json<UserView>, ApiError> {
    if let Some(email) = &request.email {
        check_email(email)?;
    }
    let password_hash = match request.password {
        Some(password) => {
            check_password(&password)?;
            Some(hash(&state, password).await?)
        }
        None => None,
    };
    let _write = state.store.write_lock().await;
    let mut user = load_visible(&state, &caller, &id)?;
    let is_self = user.id == caller.user.id;
    let manages = !is_self && caller.user.role >= Role::Manager && user.role <= caller.user.role;
    let wants_admin_fields = request.role.is_some()
        || request.domain.is_some()
        || request.requires_approval.is_some()
        || request.disabled.is_some();
    if wants_admin_fields && !manages {
        return Err(ApiError::forbidden(if is_self {
            "you cannot change your own role, domain, approval or disabled state"
        } else {
            "needs the Manager role or above, over a user whose role is not above yours"
        }));
    }
    if !is_self && !manages {
        return Err(ApiError::forbidden("cannot change this user"));
    }
    if let Some(role) = request.role {
        if role > caller.user.role {
            return Err(ApiError::forbidden("cannot grant a role above your own"));
        }
        user.role = role;
    }
    if let Some(domain) = request.domain {
        check_domain(&caller, &domain)?;
        user.domain = domain;
    }
    if let Some(email) = request.email {
        user.email = email;
    }
    if let Some(hash) = password_hash {
        user.password_hash = hash;
    }
    if let Some(requires_approval) = request.requires_approval {
        user.requires_approval = requires_approval;
    }
    let mut batch = WriteBatch::new();
    let mut revoked = 0;
    if let Some(disabled) = request.disabled {
        user.disabled = disabled;
        if disabled {
            revoked = revoke_all(&state, &user.id, &mut batch)?;
        }
    }
    batch.put(USERS, user.id.as_str(), &user)?;
    caller
        .audit(
            &state,
            "user.update",
            user.id.as_str(),
            user.domain.first().cloned(),
            serde_json::json!({"role": user.role, "domain": user.domain, "disabled": user.disabled,
                "requires_approval": user.requires_approval, "sessions_revoked": revoked}),
        )
        .record(&mut batch)?;
    state.store.apply(batch).await?;
    Ok(Json(UserView::from(&user)))
}

/// Deletes a user (Manager+, not oneself) and revokes their sessions.
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users", params(("id" = String, Path, description = "User id")),
    security(("bearer" = [])),
    responses((status = 204, description = "Deleted"),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Not allowed", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody)))]
pub async fn delete_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Manager)?;
    let _write = state.store.write_lock().await;
    let user = load_visible(&state, &caller, &id)?;
    if user.id == caller.user.id {
        return Err(ApiError::forbidden("you cannot delete yourself"));
    }
    if user.role > caller.user.role {
        return Err(ApiError::forbidden(
            "cannot delete a user whose role is above yours",
        ));
    }
    let mut batch = WriteBatch::new();
    revoke_all(&state, &user.id, &mut batch)?;
    batch.delete(USERS, user.id.as_str());
    batch.delete(USER_NAMES, &name_key(&user.name));
    caller
        .audit(
            &state,
            "user.delete",
            user.id.as_str(),
            user.domain.first().cloned(),
            serde_json::json!({"name": user.name}),
        )
        .record(&mut batch)?;
    state.store.apply(batch).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes every session of a user (oneself, or Manager+ over others).
#[utoipa::path(post, path = "/api/v1/users/{id}/revoke-sessions", tag = "users",
    params(("id" = String, Path, description = "User id")), security(("bearer" = [])),
    responses((status = 204, description = "Revoked"),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Not allowed", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody)))]
pub async fn revoke_sessions(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let _write = state.store.write_lock().await;
    let user = load_visible(&state, &caller, &id)?;
    if user.id != caller.user.id && user.role > caller.user.role {
        return Err(ApiError::forbidden(
            "cannot revoke sessions of a user whose role is above yours",
        ));
    }
    let mut batch = WriteBatch::new();
    let revoked = revoke_all(&state, &user.id, &mut batch)?;
    caller
        .audit(
            &state,
            "user.revoke_sessions",
            user.id.as_str(),
            user.domain.first().cloned(),
            serde_json::json!({"revoked": revoked}),
        )
        .record(&mut batch)?;
    state.store.apply(batch).await?;
    Ok(StatusCode::NO_CONTENT)
}
