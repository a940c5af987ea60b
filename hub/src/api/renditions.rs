//! `/api/v1/content/{id}/process` and `/api/v1/content/{id}/renditions`
//! (M3): extraction and the mapping of [`RenditionError`]; the rules are
//! [`crate::content::renditions::service`]'s.

use super::prelude::*;
use crate::content::renditions::service::{self, JobView, RenditionError};

concern_routes! { process_content; list_renditions }

impl From<RenditionError> for ApiError {
    fn from(e: RenditionError) -> Self {
        let message = e.to_string();
        match e {
            RenditionError::Content(e) => e.into(),
            RenditionError::NotVideo(_) => Self::bad_request("not_video", message),
            RenditionError::QueueFull => {
                Self::new(StatusCode::TOO_MANY_REQUESTS, "queue_full", message)
            }
            RenditionError::Store(e) => e.into(),
        }
    }
}

/// Makes a rendition of a video the caller views that plays smoothly on a
/// Raspberry Pi (H.264, at most 1920×1080, 30 fps, no audio) in a
/// background job (M3): needs `process_media`. Answers the job: 202 when
/// queued now, 200 when a job for the same bytes is queued, running or
/// done already. Devices get the rendition with the item's next
/// publication, when their `max_decode` prefers it.
#[utoipa::path(post, path = "/api/v1/content/{id}/process", tag = "content",
    params(("id" = String, Path, description = "Item id")), security(("bearer" = [])),
    responses((status = 202, description = "Queued", body = JobView),
        (status = 200, description = "A job for these bytes exists", body = JobView), (status = 400, description = "not_video", body = ErrorBody),
        (status = 403, description = "permission_not_held", body = ErrorBody), (status = 404, description = "Absent or not visible", body = ErrorBody),
        (status = 429, description = "queue_full: too many jobs wait", body = ErrorBody)))]
pub async fn process_content(
    State(state): Ctx,
    caller: Caller,
    Path(id): Id,
) -> WithStatus<JobView> {
    let requested = service::process(&state, &caller.actor(), &id).await?;
    let status = if requested.queued {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(requested.job)))
}

/// The rendition jobs of an item the caller views (M3): queued, running
/// with its percent, done with the rendition, or failed with the reason.
#[utoipa::path(get, path = "/api/v1/content/{id}/renditions", tag = "content",
    params(("id" = String, Path, description = "Item id")), security(("bearer" = [])),
    responses((status = 200, description = "Its jobs", body = Vec<JobView>), (status = 404, description = "Absent or not visible", body = ErrorBody)))]
pub async fn list_renditions(
    State(state): Ctx,
    caller: Caller,
    Path(id): Id,
) -> Answer<Vec<JobView>> {
    Ok(Json(service::list(&state, &caller.actor(), &id).await?))
}
