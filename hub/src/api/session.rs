//! `/api/v1/session`: log in (S8), log out, the current session (C2).
//!
//! A login answers the bearer token and sets two cookies for the console:
//! [`SESSION_COOKIE`] (the same token, `HttpOnly; SameSite=Strict`, out of
//! reach of scripts) and [`CSRF_COOKIE`] (the session's CSRF token, which
//! the console's scripts read and repeat in `X-CSRF-Token` on writes; see
//! [`Caller`]). Both are `Secure` when `public_url` is `https://` (the hub
//! is reached over TLS) and expire with the session. Logging out revokes
//! the session and clears both cookies. The login rules are
//! [`crate::identity::sessions`]'s; errors map as in `users.rs`.

use axum::http::{HeaderValue, header};
use axum::response::AppendHeaders;

use super::extract::{CSRF_COOKIE, SESSION_COOKIE};
use super::prelude::*;
use crate::config::Config;
use crate::identity::sessions::OwnSession;
use crate::identity::views::{LoginRequest, LoginResponse, SessionView};
use crate::identity::{UserView, csrf_token, sessions};

/// The two `Set-Cookie` headers a login or logout answers with.
type SessionCookies = AppendHeaders<[(header::HeaderName, HeaderValue); 2]>;

/// `Set-Cookie` for the session and CSRF cookies: `values` with `max_age`
/// seconds to live (0 clears them); `Secure` when `config` says the hub is
/// reached over TLS.
fn session_cookies(config: &Config, values: [&str; 2], max_age: i64) -> SessionCookies {
    let secure = config
        .public_url
        .as_deref()
        .is_some_and(|url| url.starts_with("https://"));
    let cookie = |name: &str, value: &str, http_only: bool| {
        let mut cookie = format!("{name}={value}; Path=/; SameSite=Strict; Max-Age={max_age}");
        if http_only {
            cookie.push_str("; HttpOnly");
        }
        if secure {
            cookie.push_str("; Secure");
        }
        // Tokens are URL-safe base64: always a valid header value.
        HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
    };
    AppendHeaders([
        (header::SET_COOKIE, cookie(SESSION_COOKIE, values[0], true)),
        (header::SET_COOKIE, cookie(CSRF_COOKIE, values[1], false)),
    ])
}

/// Logs in with name and password (S8, S12). One source that fails
/// repeatedly for one name is refused for a while (429 with
/// `Retry-After`); other sources are not, but every attempt at a name under
/// attack is delayed. An unknown name costs the same hash as a known one.
/// When every password-hash slot stays busy: 503 with `Retry-After`.
/// Sets the session cookie (`signet_session`, HttpOnly) and the CSRF
/// cookie (`signet_csrf`) for the console (C2).
#[utoipa::path(post, path = "/api/v1/session", tag = "session", request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in; sets the signet_session and signet_csrf cookies", body = LoginResponse,
            headers(("Set-Cookie" = String, description = "signet_session (HttpOnly) and signet_csrf"))),
        (status = 400, description = "Malformed request", body = ErrorBody), (status = 401, description = "Wrong name or password", body = ErrorBody),
        (status = 429, description = "Too many failed logins or requests from this source", body = ErrorBody),
        (status = 503, description = "Too many password checks running; retry", body = ErrorBody)))]
pub async fn login(
    State(state): Ctx,
    ClientAddress(from): ClientAddress,
    ApiJson(request): ApiJson<LoginRequest>,
) -> Result<(SessionCookies, Json<LoginResponse>), ApiError> {
    let login = sessions::login(&state, &request.name, request.password, &from).await?;
    let csrf = csrf_token(&login.token);
    let cookies = session_cookies(
        &state.config,
        [&login.token, &csrf],
        login.ttl.num_seconds(),
    );
    Ok((
        cookies,
        Json(LoginResponse {
            token: login.token,
            expires_at: login.expires_at,
            user: UserView::from(&login.user),
            csrf_token: csrf,
        }),
    ))
}

/// Revokes the session this request carries (token or cookie) and clears
/// the session and CSRF cookies.
#[utoipa::path(delete, path = "/api/v1/session", tag = "session", security(("bearer" = [])),
    responses((status = 204, description = "Logged out; both cookies cleared",
            headers(("Set-Cookie" = String, description = "signet_session and signet_csrf, expired"))),
        (status = 403, description = "Cookie session without its X-CSRF-Token", body = ErrorBody)))]
pub async fn logout(
    State(state): Ctx,
    caller: Caller,
) -> Result<(StatusCode, SessionCookies), ApiError> {
    sessions::logout(&state, &caller.actor(), &caller.session_key).await?;
    let cookies = session_cookies(&state.config, ["", ""], 0);
    Ok((StatusCode::NO_CONTENT, cookies))
}

/// The current session: who, until when, and its CSRF token (C2).
#[utoipa::path(get, path = "/api/v1/session", tag = "session", security(("bearer" = [])),
    responses((status = 200, description = "The session", body = SessionView), (status = 401, description = "No valid session", body = ErrorBody)))]
pub async fn whoami(caller: Caller) -> Json<SessionView> {
    Json(SessionView {
        user: UserView::from(&caller.user),
        expires_at: caller.expires_at,
        csrf_token: caller.csrf_token,
    })
}

/// The caller's own unexpired sessions, newest first; the one of this
/// request is marked `current` (C2, S8).
#[utoipa::path(get, path = "/api/v1/me/sessions", tag = "session", security(("bearer" = [])),
    responses((status = 200, description = "Own sessions", body = Vec<OwnSession>)))]
pub async fn own_sessions(State(state): Ctx, caller: Caller) -> Answer<Vec<OwnSession>> {
    let list = sessions::own_sessions(&state, &caller.actor(), &caller.session_key)?;
    Ok(Json(list))
}

/// Revokes one of the caller's own sessions: it stops working at once.
#[utoipa::path(delete, path = "/api/v1/me/sessions/{id}", tag = "session",
    params(("id" = String, Path, description = "Session id, as listed")), security(("bearer" = [])),
    responses((status = 204, description = "Revoked"), (status = 404, description = "Not a session of the caller", body = ErrorBody)))]
pub async fn revoke_own_session(State(state): Ctx, caller: Caller, Path(id): Id) -> Done {
    sessions::revoke_own_session(&state, &caller.actor(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
