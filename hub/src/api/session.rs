//! `/api/v1/session`: log in (S8), log out, who am I.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, TimeDelta};
use serde::{Deserialize, Serialize};
use signet_common::ids::UserId;

use super::users::UserView;
use super::{ApiError, ApiJson, AppState, Caller, ClientAddress};
use crate::audit::AuditEntry;
use crate::identity::{
    MAX_PASSWORD_LEN, SESSIONS, Session, USER_NAMES, USERS, User, name_key, new_token,
};
use crate::store::WriteBatch;

/// Tree of a user's sessions, keyed `{user}/{session key}`, so all of them
/// can be revoked at once.
pub const USER_SESSIONS: &str = "user_sessions";

/// Login request.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Login name.
    pub name: String,
    /// Password.
    pub password: String,
}

/// A new session.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LoginResponse {
    /// The bearer token: send it as `Authorization: Bearer <token>`.
    pub token: String,
    /// When it stops working.
    pub expires_at: DateTime<chrono::Utc>,
    /// Who logged in.
    pub user: UserView,
}

/// Logs in with name and password (S8, S12). One source that fails
/// repeatedly for one name is refused for a while (429 with
/// `Retry-After`); other sources are not, but every attempt at a name under
/// attack is delayed. An unknown name costs the same hash as a known one.
/// When every password-hash slot stays busy: 503 with `Retry-After`.
#[utoipa::path(post, path = "/api/v1/session", tag = "session", request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = LoginResponse),
        (status = 400, description = "Malformed request", body = super::ErrorBody),
        (status = 401, description = "Wrong name or password", body = super::ErrorBody),
        (status = 429, description = "Too many failed logins or requests from this source", body = super::ErrorBody),
        (status = 503, description = "Too many password checks running; retry", body = super::ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    ClientAddress(from): ClientAddress,
    ApiJson(request): ApiJson<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    if request.password.len() > MAX_PASSWORD_LEN
        || request.name.len() > crate::identity::MAX_NAME_LEN
    {
        return Err(ApiError::unauthorized("wrong name or password"));
    }
    let name = name_key(&request.name);
    let now = state.clock.now();
    if let Some(until) = state.throttle.locked_until(&name, &from, now) {
        let mut error = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "login_throttled",
            format!("too many failed logins for this name from this address; retry after {until}"),
        );
        error.retry_after = u64::try_from((until - now).num_seconds().max(1)).ok();
        return Err(error);
    }
    let delay = state.throttle.delay(&name, now);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let user: Option<User> = match state.store.get::<UserId>(USER_NAMES, &name)? {
        Some(id) => state.store.get(USERS, id.as_str())?,
        None => None,
    };
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let matches = state
        .hashing
        .verify(request.password, hash)
        .await
        .map_err(|e| super::users::hash_error(&e))?;
    let user = match user {
        Some(user) if matches && !user.disabled => user,
        _ => {
            state.throttle.record_failure(&name, &from, now);
            state
                .throttle
                .audit_failure(&state.store, &name, &from, now)
                .await?;
            return Err(ApiError::unauthorized("wrong name or password"));
        }
    };
    state.throttle.record_success(&name, &from);
    let (token, key) = new_token();
    let ttl = i64::try_from(state.config.token_ttl_secs)
        .ok()
        .and_then(TimeDelta::try_seconds)
        .unwrap_or(TimeDelta::hours(12));
    let session = Session {
        user_id: user.id.clone(),
        created_at: now,
        expires_at: now + ttl,
    };
    let mut batch = WriteBatch::new();
    batch.put(SESSIONS, &key, &session)?;
    batch.put(USER_SESSIONS, &format!("{}/{key}", user.id), &key)?;
    AuditEntry {
        actor: Some(user.id.clone()),
        actor_name: Some(user.name.clone()),
        from,
        ..AuditEntry::new(now, "session.login", user.id.as_str())
    }
    .record(&mut batch)?;
    state.store.apply(batch).await?;
    Ok(Json(LoginResponse {
        token,
        expires_at: session.expires_at,
        user: UserView::from(&user),
    }))
}

/// Revokes the token this request carries.
#[utoipa::path(delete, path = "/api/v1/session", tag = "session", security(("bearer" = [])),
    responses((status = 204, description = "Logged out"),
        (status = 401, description = "No valid token", body = super::ErrorBody)))]
pub async fn logout(State(state): State<AppState>, caller: Caller) -> Result<StatusCode, ApiError> {
    let mut batch = WriteBatch::new();
    batch.delete(SESSIONS, &caller.session_key);
    batch.delete(
        USER_SESSIONS,
        &format!("{}/{}", caller.user.id, caller.session_key),
    );
    caller
        .audit(
            &state,
            "session.logout",
            caller.user.id.as_str(),
            None,
            serde_json::Value::Null,
        )
        .record(&mut batch)?;
    state.store.apply(batch).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The logged-in user.
#[utoipa::path(get, path = "/api/v1/session", tag = "session", security(("bearer" = [])),
    responses((status = 200, description = "The caller", body = UserView),
        (status = 401, description = "No valid token", body = super::ErrorBody)))]
pub async fn whoami(caller: Caller) -> Json<UserView> {
    Json(UserView::from(&caller.user))
}

/// Adds the deletion of every session of `user` to `batch`.
///
/// # Errors
/// When the store fails.
pub fn revoke_all(
    state: &AppState,
    user: &UserId,
    batch: &mut WriteBatch,
) -> Result<usize, ApiError> {
    let keys: Vec<String> = state.store.scan(USER_SESSIONS, &format!("{user}/"))?;
    for key in &keys {
        batch.delete(SESSIONS, key);
        batch.delete(USER_SESSIONS, &format!("{user}/{key}"));
    }
    Ok(keys.len())
}
