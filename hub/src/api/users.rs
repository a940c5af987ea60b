//! `/api/v1/users` (S8, T3): accounts, roles and domains. The rules are
//! [`crate::identity::users`]'s; this file extracts, calls and maps, and
//! holds the one `IdentityError` mapping (also for the session routes).

use super::prelude::*;
use crate::identity::password_tokens::{self, PasswordSet, PasswordTokenInfo, SetPassword};
use crate::identity::users as service;
use crate::identity::{CreateUser, HashError, IdentityError, UpdateUser, UserFilter, UserView};

impl From<IdentityError> for ApiError {
    fn from(e: IdentityError) -> Self {
        use IdentityError as E;
        let message = e.to_string();
        match e {
            E::NotFound => Self::not_found("user"),
            E::SessionNotFound => Self::not_found("session"),
            E::RoleTooLow(e) => e.into(),
            E::Invalid { code, message } => Self::bad_request(code, message),
            E::Forbidden(message) => Self::forbidden(message),
            E::NameTaken(_) => Self::conflict("name_taken", message),
            E::Confusable(_) => Self::conflict("name_confusable", message),
            E::Hash(HashError::Busy) => Self::busy("busy", message, 1),
            E::Hash(HashError::Failed(cause)) => Self::internal(&cause),
            E::WrongCredentials => Self::unauthorized(message),
            E::Throttled { retry_after, .. } => {
                Self::too_many("login_throttled", message, retry_after)
            }
            E::TokenUnknown => Self::new(StatusCode::NOT_FOUND, "token_not_found", message),
            E::TokenUsed(_) => Self::conflict("token_used", message),
            E::TokenExpired(_) => Self::gone("token_expired", message),
            E::Store(e) => e.into(),
        }
    }
}

// What the access-groups API still calls.
pub(super) use crate::identity::users::check_password;

/// Users the caller may see.
#[utoipa::path(get, path = "/api/v1/users", tag = "users", params(UserFilter), security(("bearer" = [])),
    responses((status = 200, description = "Visible users", body = Vec<UserView>), (status = 403, description = "Below Manager", body = ErrorBody)))]
pub async fn list_users(
    State(state): Ctx,
    caller: Caller,
    ApiQuery(filter): ApiQuery<UserFilter>,
) -> Answer<Vec<UserView>> {
    let users = service::list_users(&state, &caller.actor(), filter.q.as_deref())?;
    Ok(Json(users.iter().map(UserView::from).collect()))
}

/// Creates a user inside the caller's domain, with a role no higher than
/// the caller's.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = CreateUser, security(("bearer" = [])),
    responses((status = 201, description = "Created", body = UserView),
        (status = 400, description = "Invalid field", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody),
        (status = 409, description = "Name taken, or confusable with an existing name", body = ErrorBody),
        (status = 503, description = "Too many password hashes running; retry", body = ErrorBody)))]
pub async fn create_user(
    State(state): Ctx,
    caller: Caller,
    ApiJson(request): ApiJson<CreateUser>,
) -> WithStatus<UserView> {
    let user = service::create_user(&state, &caller.actor(), request).await?;
    Ok((StatusCode::CREATED, Json(UserView::from(&user))))
}

/// One user the caller may see.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", params(("id" = String, Path, description = "User id")),
    security(("bearer" = [])),
    responses((status = 200, description = "The user", body = UserView), (status = 404, description = "Absent or not visible", body = ErrorBody)))]
pub async fn get_user(State(state): Ctx, caller: Caller, Path(id): Id) -> Answer<UserView> {
    let user = service::get_user(&state, &caller.actor(), &id)?;
    Ok(Json(UserView::from(&user)))
}

/// Changes a user. Email and password: oneself or Manager+; role, domain,
/// approval and disabled: Manager+ on others, within their own role and domain.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", request_body = UpdateUser,
    params(("id" = String, Path, description = "User id")), security(("bearer" = [])),
    responses((status = 200, description = "Updated", body = UserView),
        (status = 400, description = "Invalid field", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody),
        (status = 404, description = "Absent or not visible", body = ErrorBody),
        (status = 503, description = "Too many password hashes running; retry", body = ErrorBody)))]
pub async fn update_user(
    State(state): Ctx,
    caller: Caller,
    Path(id): Id,
    ApiJson(request): ApiJson<UpdateUser>,
) -> Answer<UserView> {
    let user = service::update_user(&state, &caller.actor(), &id, request).await?;
    Ok(Json(UserView::from(&user)))
}

/// Deletes a user (Manager+, not oneself) and revokes their sessions.
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users", params(("id" = String, Path, description = "User id")),
    security(("bearer" = [])),
    responses((status = 204, description = "Deleted"),
        (status = 403, description = "Not allowed", body = ErrorBody), (status = 404, description = "Absent or not visible", body = ErrorBody)))]
pub async fn delete_user(State(state): Ctx, caller: Caller, Path(id): Id) -> Done {
    service::delete_user(&state, &caller.actor(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes every session of a user (oneself, or Manager+ over others).
#[utoipa::path(post, path = "/api/v1/users/{id}/revoke-sessions", tag = "users",
    params(("id" = String, Path, description = "User id")), security(("bearer" = [])),
    responses((status = 204, description = "Revoked"),
        (status = 403, description = "Not allowed", body = ErrorBody), (status = 404, description = "Absent or not visible", body = ErrorBody)))]
pub async fn revoke_sessions(State(state): Ctx, caller: Caller, Path(id): Id) -> Done {
    service::revoke_sessions(&state, &caller.actor(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Mails a user a set-password link (S8, M5): Manager+ over a user they
/// see whose role is not above theirs, not oneself. The link works once,
/// for 7 days; the old password works until it is used.
#[utoipa::path(post, path = "/api/v1/users/{id}/password-reset", tag = "users",
    params(("id" = String, Path, description = "User id")), security(("bearer" = [])),
    responses((status = 204, description = "The mail is in the outbox"),
        (status = 403, description = "Below Manager, oneself, or a role above the caller's", body = ErrorBody),
        (status = 404, description = "Absent or not visible", body = ErrorBody)))]
pub async fn reset_password(State(state): Ctx, caller: Caller, Path(id): Id) -> Done {
    crate::mail::password_reset::send(&state, &caller.actor(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets a password with the token a welcome mail links to (M5; no login).
/// Works once, before the token expires; then log in with the login name.
#[utoipa::path(post, path = "/api/v1/password/set", tag = "users", request_body = SetPassword,
    responses((status = 200, description = "Password set", body = PasswordSet),
        (status = 400, description = "Malformed token or weak password", body = ErrorBody), (status = 404, description = "Unknown token", body = ErrorBody),
        (status = 409, description = "Already used", body = ErrorBody), (status = 410, description = "Expired", body = ErrorBody),
        (status = 429, description = "Too many requests from this source", body = ErrorBody),
        (status = 503, description = "Too many password hashes running; retry", body = ErrorBody)))]
pub async fn set_password(
    State(state): Ctx,
    ClientAddress(from): ClientAddress,
    ApiJson(request): ApiJson<SetPassword>,
) -> Answer<PasswordSet> {
    let answer = password_tokens::set_password(&state, &from, request).await?;
    Ok(Json(answer))
}

/// The account a set-password token names, before it is used (M5, C11;
/// no login, nothing changes): what the public page shows. The same
/// refusals as setting the password.
#[utoipa::path(get, path = "/api/v1/password/tokens/{token}", tag = "users",
    params(("token" = String, Path, description = "The token from the welcome mail")),
    responses((status = 200, description = "The account", body = PasswordTokenInfo),
        (status = 400, description = "Malformed token", body = ErrorBody), (status = 404, description = "Unknown token", body = ErrorBody),
        (status = 409, description = "Already used", body = ErrorBody), (status = 410, description = "Expired", body = ErrorBody),
        (status = 429, description = "Too many requests from this source", body = ErrorBody)))]
pub async fn describe_password_token(
    State(state): Ctx,
    Path(token): Id,
) -> Answer<PasswordTokenInfo> {
    Ok(Json(password_tokens::describe(&state, &token).await?))
}
