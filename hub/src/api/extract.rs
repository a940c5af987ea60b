//! Request extractors: JSON bodies with JSON errors, and the authenticated
//! caller.

use std::net::SocketAddr;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use signet_common::ids::NodeId;
use signet_common::permissions::{Domain, NodeTree, Role};

use super::{ApiError, AppState};
use crate::audit::AuditEntry;
use crate::identity::{SESSIONS, Session, USERS, User, token_key};
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

/// The authenticated user of a request, read fresh from the store (T3: a
/// role or domain change applies to the next request), with the tenancy tree.
pub struct Caller {
    /// The user, as stored now.
    pub user: User,
    /// The key of the session this request used.
    pub session_key: String,
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
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::unauthorized("missing bearer token"))?;
        let token = header
            .strip_prefix("Bearer ")
            .filter(|t| !t.is_empty() && t.len() <= 128)
            .ok_or_else(|| ApiError::unauthorized("expected 'Authorization: Bearer <token>'"))?;
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
        let (tree, _) = load_tree(&state.store)?;
        Ok(Self {
            user,
            session_key,
            tree,
            from: client_address(parts),
        })
    }
}

impl Caller {
    /// The caller's domain (T3).
    pub fn domain(&self) -> Domain {
        Domain::new(self.user.domain.iter().cloned())
    }

    /// Whether `node` is inside the caller's domain.
    pub fn sees(&self, node: &NodeId) -> bool {
        self.domain().contains(&self.tree, node)
    }

    /// Whether things stored at `node` are visible to the caller: `node` is
    /// inside the caller's domain, or above it, where what is stored is
    /// usable inside the domain (T2) though changed only from there.
    pub fn sees_at_or_above(&self, node: &NodeId) -> bool {
        self.sees(node)
            || self
                .user
                .domain
                .iter()
                .any(|top| self.tree.is_within(top, node))
    }

    /// Whether the caller's domain includes the root (sees the whole tree).
    pub fn is_root_level(&self) -> bool {
        self.domain().is_root_level(&self.tree)
    }

    /// Refuses (403) unless the caller's role is at least `role`.
    ///
    /// # Errors
    /// 403 naming the role needed.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.user.role >= role {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "needs the {role:?} role or above"
            )))
        }
    }

    /// An audit entry for an action of this caller.
    pub fn audit(
        &self,
        state: &AppState,
        action: &str,
        target: &str,
        scope: Option<NodeId>,
        detail: serde_json::Value,
    ) -> AuditEntry {
        AuditEntry {
            actor: Some(self.user.id.clone()),
            actor_name: Some(self.user.name.clone()),
            scope,
            from: self.from.clone(),
            detail,
            ..AuditEntry::new(state.clock.now(), action, target)
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
