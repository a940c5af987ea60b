//! `/api/v1/mail/outbox` (A5, L6): the mail outbox, for root-level admins.
//!
//! Without SMTP configured, mail stays here and this is where an operator
//! reads it. The rules are [`crate::mail::outbox`]'s; this file extracts,
//! calls and maps.

use super::prelude::*;
use crate::mail::outbox::{self, MailError, OutboxFilter, OutboxView};

concern_routes! { list_outbox; retry_mail }

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
        (status = 400, description = "Invalid filter", body = ErrorBody), (status = 403, description = "Not a root-level admin", body = ErrorBody)))]
pub async fn list_outbox(
    State(state): Ctx,
    caller: Caller,
    ApiQuery(filter): ApiQuery<OutboxFilter>,
) -> Answer<Vec<OutboxView>> {
    Ok(Json(outbox::list_outbox(&state, &caller.actor(), &filter)?))
}

/// Makes a queued or failed message due now, with a fresh count of
/// attempts; audited as `mail.retry`. A sent message cannot be retried.
#[utoipa::path(post, path = "/api/v1/mail/outbox/{id}/retry", tag = "mail",
    params(("id" = String, Path, description = "Outbox entry id")), security(("bearer" = [])),
    responses((status = 200, description = "Queued again", body = OutboxView),
        (status = 403, description = "Not a root-level admin", body = ErrorBody), (status = 404, description = "No such entry", body = ErrorBody),
        (status = 409, description = "Already sent", body = ErrorBody)))]
pub async fn retry_mail(State(state): Ctx, caller: Caller, Path(id): Id) -> Answer<OutboxView> {
    Ok(Json(outbox::retry(&state, &caller.actor(), &id).await?))
}
