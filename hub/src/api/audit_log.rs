//! `/api/v1/audit` (S8): the audit log, for admins, within their domain.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use signet_common::permissions::Role;

use super::{ApiError, ApiQuery, AppState, Caller};
use crate::audit::{AUDIT, AuditEntry};

/// The most entries one request returns.
pub const MAX_AUDIT_PAGE: usize = 1000;

/// Filters; all optional, combined with "and".
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditFilter {
    /// Only actions of this user id.
    pub actor: Option<String>,
    /// Only this action (e.g. `node.create`), or actions starting with it
    /// when it ends in `.` (e.g. `user.`).
    pub action: Option<String>,
    /// Only entries at or after this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Only entries before this time (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    /// At most this many of the newest matches (default and maximum 1000).
    pub limit: Option<usize>,
}

/// Audit entries the caller may read: Admin role; entries scoped inside the
/// caller's domain (root-level admins also see unscoped entries: logins).
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditFilter), security(("bearer" = [])),
    responses((status = 200, description = "Matching entries, oldest first", body = Vec<AuditEntry>),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Not an admin", body = super::ErrorBody)))]
pub async fn list_audit(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(filter): ApiQuery<AuditFilter>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    caller.require(Role::Admin)?;
    let limit = filter
        .limit
        .unwrap_or(MAX_AUDIT_PAGE)
        .clamp(1, MAX_AUDIT_PAGE);
    let root_level = caller.is_root_level();
    let entries: Vec<AuditEntry> = state.store.scan(AUDIT, "")?;
    let mut matching: Vec<AuditEntry> = entries
        .into_iter()
        .filter(|e| match &e.scope {
            Some(node) => caller.sees(node),
            None => root_level,
        })
        .filter(|e| {
            filter
                .actor
                .as_deref()
                .is_none_or(|a| e.actor.as_ref().is_some_and(|x| x.as_str() == a))
        })
        .filter(|e| {
            filter.action.as_deref().is_none_or(|a| {
                if a.ends_with('.') {
                    e.action.starts_with(a)
                } else {
                    e.action == a
                }
            })
        })
        .filter(|e| filter.since.is_none_or(|t| e.at >= t))
        .filter(|e| filter.until.is_none_or(|t| e.at < t))
        .collect();
    let skip = matching.len().saturating_sub(limit);
    matching.drain(..skip);
    Ok(Json(matching))
}
