//! How the approval service's refusals answer (A2–A6), for the
//! `/api/v1/content/{id}/…` and `/api/v1/templates/{id}/…` routes; the
//! transitions and who may make them are [`crate::content::approval`]'s.

use signet_common::approval::ApprovalError as TransitionError;

use super::ApiError;
use crate::content::approval::ApprovalError;

impl From<ApprovalError> for ApiError {
    fn from(e: ApprovalError) -> Self {
        let message = e.to_string();
        match e {
            ApprovalError::NotFound(what) => Self::not_found(what),
            ApprovalError::Forbidden(_) => Self::forbidden(message),
            ApprovalError::RoleTooLow(e) => e.into(),
            ApprovalError::Transition(
                TransitionError::EmptyRejectionReason
                | TransitionError::RejectionReasonTooLong { .. },
            ) => Self::bad_request("invalid_reason", message),
            ApprovalError::Transition(TransitionError::InvalidTransition { .. }) => {
                Self::conflict("invalid_transition", message)
            }
            ApprovalError::Transition(TransitionError::VersionMismatch { .. }) => {
                Self::conflict("version_mismatch", message)
            }
            ApprovalError::NoContentManager(_) => Self::conflict("no_content_manager", message),
            ApprovalError::InvalidContentManager(_) => {
                Self::conflict("invalid_content_manager", message)
            }
            ApprovalError::Store(e) => e.into(),
        }
    }
}
