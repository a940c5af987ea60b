//! `/api/v1/audit` (S8): the audit log, for admins, within their domain.
//! The rules are [`crate::audit::query`]'s.

use super::prelude::*;
use crate::audit::{AuditEntry, AuditError, AuditFilter};

impl From<AuditError> for ApiError {
    fn from(e: AuditError) -> Self {
        match e {
            AuditError::RoleTooLow(e) => e.into(),
            AuditError::Store(e) => e.into(),
        }
    }
}

/// Audit entries the caller may read: Admin role; entries scoped inside the
/// caller's domain (root-level admins also see unscoped entries: logins).
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditFilter), security(("bearer" = [])),
    responses((status = 200, description = "Matching entries, oldest first", body = Vec<AuditEntry>),
        (status = 403, description = "Not an admin", body = ErrorBody)))]
pub async fn list_audit(
    State(state): Ctx,
    caller: Caller,
    ApiQuery(filter): ApiQuery<AuditFilter>,
) -> Answer<Vec<AuditEntry>> {
    let actor = caller.actor();
    let entries = crate::audit::query(&state.store, actor.user.role, &actor.domain(), &filter)?;
    Ok(Json(entries))
}
