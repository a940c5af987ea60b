//! How the approval service's refusals answer (A2–A6), for the
//! `/api/v1/content/{id}/…` and `/api/v1/templates/{id}/…` routes, and the
//! approval queue; the transitions and who may make them are
//! [`crate::content::approval`]'s.

use signet_common::approval::ApprovalError as TransitionError;

use super::prelude::*;
use crate::content::approval::{ApprovalError, queue};
use crate::content::view::ApprovalQueue;

/// This concern's routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(approval_queue))
}

/// The pending items the caller may approve or reject now (A6, C8): by the
/// `approve_content` permission (role or permission group), not by role.
#[utoipa::path(get, path = "/api/v1/approvals", tag = "content", security(("bearer" = [])),
    responses((status = 200, description = "The caller's queue, oldest save first", body = ApprovalQueue)))]
pub async fn approval_queue(State(state): Ctx, caller: Caller) -> Answer<ApprovalQueue> {
    Ok(Json(queue(&state, &caller.actor()).await?))
}

impl From<ApprovalError> for ApiError {
    fn from(e: ApprovalError) -> Self {
        use {ApprovalError as E, TransitionError as T};
        let message = e.to_string();
        match e {
            E::NotFound(what) => Self::not_found(what),
            E::Forbidden(_) | E::RoleTooLow(_) => Self::forbidden(message),
            E::Transition(T::EmptyRejectionReason | T::RejectionReasonTooLong { .. }) => {
                Self::bad_request("invalid_reason", message)
            }
            E::Transition(T::InvalidTransition { .. }) => {
                Self::conflict("invalid_transition", message)
            }
            E::Transition(T::VersionMismatch { .. }) => Self::conflict("version_mismatch", message),
            E::NoContentManager(_) => Self::conflict("no_content_manager", message),
            E::InvalidContentManager(_) => Self::conflict("invalid_content_manager", message),
            E::Store(e) => e.into(),
        }
    }
}
