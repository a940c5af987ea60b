//! `/api/v1/mail/outbox` (A5, L6): the mail outbox, for root-level admins.
//!
//! Without SMTP configured, mail stays here and this is where an operator
//! reads it. Who may do what: only an Admin whose domain includes the root
//! lists entries (bodies included: they may carry invite links) and retries
//! one; a retry is audited. Must not: send mail itself — the sender does.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use signet_common::permissions::Role;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, ApiQuery, AppState, Caller};
use crate::mail::{OUTBOX, OutboxEntry, OutboxStatus, entries};
use crate::store::WriteBatch;

/// The most entries one request returns.
pub const MAX_OUTBOX_PAGE: usize = 1000;

/// The longest id looked up.
const MAX_ID_LEN: usize = 128;

/// This concern's routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_outbox))
        .routes(routes!(retry_mail))
}

/// An outbox entry as the API shows it: the record and where it stands.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct OutboxView {
    /// Queued, sent or failed.
    pub status: OutboxStatus,
    /// The stored record.
    #[serde(flatten)]
    pub entry: OutboxEntry,
}

impl From<OutboxEntry> for OutboxView {
    fn from(entry: OutboxEntry) -> Self {
        Self {
            status: entry.status(),
            entry,
        }
    }
}

/// List filter.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OutboxFilter {
    /// Only entries in this state: `queued`, `sent` or `failed`.
    #[param(value_type = Option<String>)]
    pub status: Option<OutboxStatus>,
    /// At most this many of the newest matches (default and maximum 1000).
    pub limit: Option<usize>,
}

/// Refuses (403) unless the caller is an Admin whose domain includes the root:
/// the outbox holds mail of every tenant.
fn require_root_admin(caller: &Caller) -> Result<(), ApiError> {
    caller.require(Role::Admin)?;
    if caller.is_root_level() {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "needs an Admin whose domain includes the root",
        ))
    }
}

/// Outbox entries, oldest first: the newest `limit` that match.
#[utoipa::path(get, path = "/api/v1/mail/outbox", tag = "mail", params(OutboxFilter), security(("bearer" = [])),
    responses((status = 200, description = "Matching entries, oldest first", body = Vec<OutboxView>),
        (status = 400, description = "Invalid filter", body = super::ErrorBody),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Not a root-level admin", body = super::ErrorBody)))]
pub async fn list_outbox(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(filter): ApiQuery<OutboxFilter>,
) -> Result<Json<Vec<OutboxView>>, ApiError> {
    require_root_admin(&caller)?;
    let limit = filter
        .limit
        .unwrap_or(MAX_OUTBOX_PAGE)
        .clamp(1, MAX_OUTBOX_PAGE);
    let mut matching: Vec<OutboxEntry> = entries(&state.store)?
        .into_iter()
        .filter(|e| filter.status.is_none_or(|s| e.status() == s))
        .collect();
    let skip = matching.len().saturating_sub(limit);
    matching.drain(..skip);
    Ok(Json(matching.into_iter().map(OutboxView::from).collect()))
}

/// Makes a queued or failed message due now, with a fresh count of
/// attempts; audited as `mail.retry`. A sent message cannot be retried.
#[utoipa::path(post, path = "/api/v1/mail/outbox/{id}/retry", tag = "mail",
    params(("id" = String, Path, description = "Outbox entry id")), security(("bearer" = [])),
    responses((status = 200, description = "Queued again", body = OutboxView),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Not a root-level admin", body = super::ErrorBody),
        (status = 404, description = "No such entry", body = super::ErrorBody),
        (status = 409, description = "Already sent", body = super::ErrorBody)))]
pub async fn retry_mail(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<OutboxView>, ApiError> {
    require_root_admin(&caller)?;
    if id.len() > MAX_ID_LEN {
        return Err(ApiError::not_found("message"));
    }
    let _write = state.store.write_lock().await;
    let mut entry: OutboxEntry = state
        .store
        .get(OUTBOX, &id)?
        .ok_or_else(|| ApiError::not_found("message"))?;
    let previous = entry.status();
    if previous == OutboxStatus::Sent {
        return Err(ApiError::conflict(
            "already_sent",
            "the message was already delivered",
        ));
    }
    let detail = serde_json::json!({"to": entry.mail.to, "previous_status": previous,
        "previous_attempts": entry.attempts, "last_error": entry.last_error});
    entry.attempts = 0;
    entry.failed_at = None;
    entry.next_attempt_at = state.clock.now();
    let mut batch = WriteBatch::new();
    batch.put(OUTBOX, &entry.id, &entry)?;
    caller
        .audit(&state, "mail.retry", &entry.id, None, detail)
        .record(&mut batch)?;
    state.store.apply(batch).await?;
    state.mail_wake.notify_one();
    Ok(Json(OutboxView::from(entry)))
}
