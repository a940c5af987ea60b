//! `/api/v1/publish` and `/api/v1/publications` (U5): publish a scope now,
//! at a time or daily; list who published what and when; cancel a pending
//! job. The rules live in [`crate::publish::service`]; handlers extract,
//! call it and map its [`PublicationError`].

use axum::response::{IntoResponse, Response};

use super::prelude::*;
use crate::publish::publications::Publication;
use crate::publish::service::{
    self, ListQuery, Publications, PublishAnswer, PublishRequest, Requested,
};
use crate::publish::{PublicationError, PublicationJob, PublishError};

concern_routes! { publish_scope; list_publications; cancel_job, get_publication }

impl From<PublicationError> for ApiError {
    fn from(e: PublicationError) -> Self {
        let message = e.to_string();
        match e {
            PublicationError::NoPermission => Self::forbidden(message),
            PublicationError::NotFound(what) => Self::not_found(what),
            PublicationError::InvalidWhen(_) => Self::bad_request("invalid_when", message),
            PublicationError::InvalidLimit => Self::bad_request("invalid_query", message),
            PublicationError::TooManyJobs => Self::conflict("too_many_jobs", message),
            PublicationError::NotPending(_) => Self::conflict("job_not_pending", message),
            PublicationError::Store(e) | PublicationError::Run(PublishError::Store(e)) => e.into(),
            PublicationError::Run(e) => match e {
                PublishError::UnknownGroup(_) => Self::not_found("scope"),
                PublishError::InvalidManifest { .. } => Self::conflict("manifest_invalid", message),
                PublishError::InvalidAssignment { .. } => {
                    Self::conflict("assignment_invalid", message)
                }
                PublishError::TooLarge { .. } => Self::conflict("document_too_large", message),
                PublishError::NotAuthorized(_) => Self::forbidden(message),
                PublishError::Sign(_) | PublishError::Store(_) => Self::internal(&e),
            },
        }
    }
}

/// Publishes a scope now, or schedules it (U5).
#[utoipa::path(post, path = "/api/v1/publish", tag = "publish", request_body = PublishRequest,
    security(("bearer" = [])),
    responses((status = 200, description = "Published now: the run with every document and version", body = PublishAnswer),
        (status = 202, description = "Scheduled: the stored job", body = PublicationJob),
        (status = 400, description = "Invalid body, time in the past, bad HH:MM or time zone", body = ErrorBody),
        (status = 403, description = "Without the publish permission", body = ErrorBody),
        (status = 404, description = "Scope absent or not visible", body = ErrorBody),
        (status = 409, description = "A document would be invalid or over 1 MiB; too many pending jobs", body = ErrorBody)))]
pub async fn publish_scope(
    State(state): Ctx,
    caller: Caller,
    ApiJson(request): ApiJson<PublishRequest>,
) -> Result<Response, ApiError> {
    Ok(
        match service::request(&state, &caller.actor(), request).await? {
            Requested::Published(answer) => (StatusCode::OK, Json(answer)).into_response(),
            Requested::Scheduled(job) => (StatusCode::ACCEPTED, Json(job)).into_response(),
        },
    )
}

/// Who published what and when (U5): runs and jobs whose scope node is
/// inside the caller's domain.
#[utoipa::path(get, path = "/api/v1/publications", tag = "publish", params(ListQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "Runs and jobs, newest first", body = Publications),
        (status = 400, description = "Invalid query", body = ErrorBody)))]
pub async fn list_publications(
    State(state): Ctx,
    caller: Caller,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Answer<Publications> {
    let jobs = service::publications(&state, &caller.actor(), query.limit)?;
    Ok(Json(jobs))
}

/// Cancels a pending deferred or daily publication.
#[utoipa::path(delete, path = "/api/v1/publications/{id}", tag = "publish",
    params(("id" = String, Path, description = "Job id")), security(("bearer" = [])),
    responses((status = 200, description = "Cancelled", body = PublicationJob),
        (status = 403, description = "Without the publish permission", body = ErrorBody),
        (status = 404, description = "Absent or not visible", body = ErrorBody),
        (status = 409, description = "Not pending (already ran or cancelled)", body = ErrorBody)))]
pub async fn cancel_job(State(state): Ctx, caller: Caller, Path(id): Id) -> Answer<PublicationJob> {
    Ok(Json(service::cancel(&state, &caller.actor(), &id).await?))
}

/// One run: its record, its target devices and when each accepted and
/// activated the run's documents (U5); a job id gives its latest run.
#[utoipa::path(get, path = "/api/v1/publications/{id}", tag = "publish",
    params(("id" = String, Path, description = "Run id, or job id for its latest run")),
    security(("bearer" = [])),
    responses((status = 200, description = "The run with per-device progress", body = Publication),
        (status = 404, description = "Absent or not visible", body = ErrorBody)))]
pub async fn get_publication(
    State(state): Ctx,
    caller: Caller,
    Path(id): Id,
) -> Answer<Publication> {
    Ok(Json(service::publication(&state, &caller.actor(), &id)?))
}
