//! Request extractors: JSON bodies with JSON errors, and the authenticated
//! caller (bearer token or session cookie with CSRF, C2, S8).

use std::net::SocketAddr;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use signet_common::permissions::NodeTree;

use super::{ApiError, AppState};
use crate::identity::{Actor, SESSIONS, Session, USERS, User, csrf_matches, csrf_token, token_key};
use crate::tenancy::load_tree;

/// A JSON body; malformed JSON, unknown fields, a wrong content type and an
/// oversized body become JSON errors (400, 400, 415, 413).
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

fn json_rejection(rejection: &JsonRejection) -> ApiError {
    let status = rejection.status();
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        _ => "invalid_body",
    };
    let status = if status == StatusCode::UNPROCESSABLE_ENTITY {
        StatusCode::BAD_REQUEST
    } else {
        status
    };
    ApiError::new(status, code, rejection.body_text())
}

/// A query string; unknown or malformed parameters become a JSON 400
/// (`invalid_query`).
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Self(value))
            .map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))
    }
}

/// The client address, for the audit log and the login throttle: the
/// request's [`super::limits::Source`] (the peer, or what a trusted proxy
/// reports), else the peer.
pub fn client_address(parts: &Parts) -> String {
    if let Some(super::limits::Source(source)) = parts.extensions.get() {
        return source.to_string();
    }
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(
            || "unknown".to_owned(),
            |ConnectInfo(addr)| addr.ip().to_string(),
        )
}

/// The session cookie (C2): the bearer token, `HttpOnly`, so scripts in
/// the console's pages cannot read it.
pub const SESSION_COOKIE: &str = "signet_session";
/// The CSRF cookie (C2): the session's CSRF token, readable by the
/// console's scripts, which repeat it in [`CSRF_HEADER`].
pub const CSRF_COOKIE: &str = "signet_csrf";
/// The header a cookie-authenticated write repeats the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The longest token accepted, bearer or cookie.
const MAX_TOKEN_LEN: usize = 128;

/// How a request proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// `Authorization: Bearer <token>`: no CSRF check (a browser never
    /// adds it by itself).
    Bearer,
    /// The [`SESSION_COOKIE`]: writes need [`CSRF_HEADER`].
    Cookie,
}

/// The token a request carries and how: the `Authorization` header when
/// there is one (a malformed one is refused, never passed over for a
/// cookie), else the session cookie.
fn presented_token(parts: &Parts) -> Result<(&str, Credential), ApiError> {
    if let Some(value) = parts.headers.get(axum::http::header::AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .filter(|t| !t.is_empty() && t.len() <= MAX_TOKEN_LEN)
            .ok_or_else(|| ApiError::unauthorized("expected 'Authorization: Bearer <token>'"))?;
        return Ok((token, Credential::Bearer));
    }
    cookie(parts, SESSION_COOKIE)
        .filter(|t| !t.is_empty() && t.len() <= MAX_TOKEN_LEN)
        .map(|token| (token, Credential::Cookie))
        .ok_or_else(|| {
            ApiError::unauthorized(
                "log in first: send 'Authorization: Bearer <token>' or the session cookie",
            )
        })
}

/// The value of the cookie `name` in the request's `Cookie` headers, if any.
fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(key, value)| (key == name).then(|| value.trim_matches('"')))
}

/// Whether a method changes nothing (no CSRF token needed).
fn is_safe(method: &axum::http::Method) -> bool {
    use axum::http::Method;
    [Method::GET, Method::HEAD, Method::OPTIONS].contains(method)
}

/// The authenticated user of a request, read fresh from the store (T3: a
/// role or domain change applies to the next request), with the tenancy tree.
///
/// The request proves who it is with a bearer token or with the session
/// cookie (C2); a cookie-authenticated request with any method but `GET`,
/// `HEAD` or `OPTIONS` must also send the session's CSRF token in
/// [`CSRF_HEADER`], else 403 `csrf_failed` and nothing happens. No valid
/// session: 401 `unauthorized`.
pub struct Caller {
    /// The user, as stored now.
    pub user: User,
    /// The key of the session this request used.
    pub session_key: String,
    /// When that session ends.
    pub expires_at: chrono::DateTime<chrono::Utc>,
    /// That session's CSRF token.
    pub csrf_token: String,
    /// How the request proved who it is.
    pub credential: Credential,
    /// The tenancy tree, as stored now.
    pub tree: NodeTree,
    /// The client address.
    pub from: String,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let (token, credential) = presented_token(parts)?;
        let session_key = token_key(token);
        let session: Session = state
            .store
            .get(SESSIONS, &session_key)?
            .ok_or_else(|| ApiError::unauthorized("unknown or revoked token"))?;
        if state.clock.now() >= session.expires_at {
            return Err(ApiError::unauthorized("token expired"));
        }
        let user: User = state
            .store
            .get(USERS, session.user_id.as_str())?
            .ok_or_else(|| ApiError::unauthorized("unknown or revoked token"))?;
        if user.disabled {
            return Err(ApiError::unauthorized("account disabled"));
        }
        if credential == Credential::Cookie && !is_safe(&parts.method) {
            let presented = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if !csrf_matches(token, presented) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "csrf_failed",
                    format!(
                        "a request authenticated by the session cookie must send the session's \
                         CSRF token (the {CSRF_COOKIE} cookie) in the X-CSRF-Token header"
                    ),
                ));
            }
        }
        let csrf_token = csrf_token(token);
        let (tree, _) = load_tree(&state.store)?;
        Ok(Self {
            user,
            session_key,
            expires_at: session.expires_at,
            csrf_token,
            credential,
            tree,
            from: client_address(parts),
        })
    }
}

impl Caller {
    /// The caller as the services see it.
    pub fn actor(&self) -> Actor {
        Actor {
            user: self.user.clone(),
            from: self.from.clone(),
        }
    }
}

/// The client address extractor for unauthenticated routes (login).
pub struct ClientAddress(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(client_address(parts)))
    }
}
