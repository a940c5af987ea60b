//! `/api/v1/mail/outbox` (A5, L6): the mail outbox, for root-level admins.
//!
//! Without SMTP configured, mail stays here and this is where an operator
//! reads it. The rules are [`crate::mail::outbox`]'s; this file extracts,
//! calls and maps.

use axum::Json;
use axum::extract::{Path, State};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, ApiQuery, AppState, Caller};
use crate::mail::outbox::{self, MailError, OutboxFilter, OutboxView};

/// This concern's routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_outbox))
        .routes(routes!(retry_mail))
}

impl From<MailError> for ApiError {
    fn from(e: MailError) -> Self {
        match e {
            MailError::RoleTooLow(e) => e.into(),
            MailError::NotRootLevel => ApiError::forbidden(e.to_string()),
            MailError::NotFound => ApiError::not_found("message"),
            MailError::AlreadySent => ApiError::conflict("already_sent", e.to_string()),
            MailError::Store(e) => e.into(),
        }
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
    Ok(Json(outbox::list_outbox(&state, &caller.actor(), &filter)?))
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
    Ok(Json(outbox::retry(&state, &caller.actor(), &id).await?))
}
