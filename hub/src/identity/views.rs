//! The identity service's inputs and its view of a user: the API's request
//! and response bodies (their schema names are the API contract).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use signet_common::ids::{NodeId, UserId};
use signet_common::permissions::Role;

use super::User;

/// A user as the API shows it (never the password hash).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UserFilter {
    /// Case-insensitive substring of the name or email.
    pub q: Option<String>,
}

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
    /// The bearer token: send it as `Authorization: Bearer <token>` (or
    /// rely on the session cookie set with this answer).
    pub token: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// Who logged in.
    pub user: UserView,
    /// The session's CSRF token (also in the `signet_csrf` cookie): send it
    /// as `X-CSRF-Token` with every write authenticated by the session
    /// cookie.
    pub csrf_token: String,
}

/// The current session (C2).
#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionView {
    /// Who is logged in.
    pub user: UserView,
    /// When the session ends.
    pub expires_at: DateTime<Utc>,
    /// The session's CSRF token, for writes authenticated by the cookie.
    pub csrf_token: String,
}
