//! `/api/v1/publish` and `/api/v1/publications` (U5): publish a scope now,
//! at a time or daily; list who published what and when; cancel a pending
//! job.
//!
//! Who may do what:
//! - publishing and cancelling need the `publish` permission (P7) in the
//!   caller's effective permissions (403 without it, checked first), and
//!   the scope's node inside the caller's domain (404 otherwise, T4);
//! - any logged-in user lists the runs and jobs whose scope node is inside
//!   their domain.
//!
//! Every change is one [`WriteBatch`] with its audit record, durable
//! before the answer (S8, S9); an immediate publication stores its signed
//! documents before any is handed to the publisher.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, ApiJson, ApiQuery, AppState, Caller};
use crate::groups::GroupRef;
use crate::identity::new_id;
use crate::publish::{
    self, Actor, JobState, MAX_PENDING_JOBS, PUBLICATION_JOBS, PUBLICATION_RUNS, PublicationJob,
    PublicationRun, PublishError, When, build::node_of_group, jobs::schedule_of,
};
use crate::store::WriteBatch;

/// This concern's routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(publish_scope))
        .routes(routes!(list_publications))
        .routes(routes!(cancel_job))
}

/// The most runs one listing returns.
pub const MAX_LIST_LIMIT: usize = 1000;

/// A publication request.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    /// `{"kind": "node", "id": …}` (that node's subtree) or
    /// `{"kind": "access_group", "id": …}` (it and its member devices).
    #[schema(value_type = Object)]
    pub scope: GroupRef,
    /// `{"type": "immediate"}` (default), `{"type": "at", "at": RFC 3339}`
    /// or `{"type": "daily", "time": "HH:MM", "time_zone": IANA name}`.
    #[serde(default)]
    pub when: When,
}

/// The answer to an immediate publication.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PublishAnswer {
    /// The stored record: every document with its version.
    pub run: PublicationRun,
    /// Topics whose new document is stored but was not handed to the
    /// transport; it is sent with the next publication or at the next start.
    pub undelivered: Vec<String>,
}

/// Runs and jobs visible to the caller.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Publications {
    /// Runs, newest first.
    pub runs: Vec<PublicationRun>,
    /// Jobs (pending, done, failed, cancelled), newest first.
    pub jobs: Vec<PublicationJob>,
}

/// The listing's query.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// The most runs to return (1 to 1000, default 100).
    pub limit: Option<usize>,
}

fn publish_error(e: PublishError) -> ApiError {
    match e {
        PublishError::Store(e) => ApiError::from(e),
        PublishError::Sign(_) => ApiError::internal(&e),
        PublishError::UnknownGroup(_) => ApiError::not_found("scope"),
        PublishError::InvalidManifest { .. } => {
            ApiError::conflict("manifest_invalid", e.to_string())
        }
        PublishError::InvalidAssignment { .. } => {
            ApiError::conflict("assignment_invalid", e.to_string())
        }
        PublishError::TooLarge { .. } => ApiError::conflict("document_too_large", e.to_string()),
        PublishError::NotAuthorized(_) => ApiError::forbidden(e.to_string()),
    }
}

/// Refuses (403) unless the caller holds `publish` (P7).
fn require_publish(state: &AppState, caller: &Caller) -> Result<(), ApiError> {
    if publish::may_publish(&state.store, &caller.user)? {
        Ok(())
    } else {
        Err(ApiError::forbidden("needs the publish permission"))
    }
}

/// Publishes a scope now, or schedules it (U5).
#[utoipa::path(post, path = "/api/v1/publish", tag = "publish", request_body = PublishRequest,
    security(("bearer" = [])),
    responses((status = 200, description = "Published now: the run with every document and version", body = PublishAnswer),
        (status = 202, description = "Scheduled: the stored job", body = PublicationJob),
        (status = 400, description = "Invalid body, time in the past, bad HH:MM or time zone", body = super::ErrorBody),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Without the publish permission", body = super::ErrorBody),
        (status = 404, description = "Scope absent or not visible", body = super::ErrorBody),
        (status = 409, description = "A document would be invalid or over 1 MiB; too many pending jobs", body = super::ErrorBody)))]
pub async fn publish_scope(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<PublishRequest>,
) -> Result<Response, ApiError> {
    require_publish(&state, &caller)?;
    let scope_node = node_of_group(&state.store, &request.scope)
        .map_err(publish_error)?
        .filter(|node| caller.sees(node))
        .ok_or_else(|| ApiError::not_found("scope"))?;
    let now = state.clock.now();
    let schedule = schedule_of(&request.when, now)
        .map_err(|e| ApiError::bad_request("invalid_when", e.to_string()))?;
    let Some(schedule) = schedule else {
        let published = publish::publish_requested(
            &state,
            &request.scope,
            Actor::user(&caller.user, &caller.from),
        )
        .await
        .map_err(publish_error)?;
        let answer = PublishAnswer {
            run: published.run,
            undelivered: published.undelivered.into_iter().map(|f| f.topic).collect(),
        };
        return Ok((StatusCode::OK, Json(answer)).into_response());
    };
    let next_run = schedule
        .first_run(now)
        .ok_or_else(|| ApiError::bad_request("invalid_when", "no run time within the calendar"))?;
    let job = PublicationJob {
        id: new_id("pj-"),
        scope: request.scope.clone(),
        scope_node: scope_node.clone(),
        schedule,
        next_run: Some(next_run),
        state: JobState::Pending,
        created_by: caller.user.id.clone(),
        created_by_name: caller.user.name.clone(),
        created_at: now,
        runs: 0,
        last_run: None,
        last_error: None,
    };
    {
        let _write = state.store.write_lock().await;
        let pending = state
            .store
            .scan::<PublicationJob>(PUBLICATION_JOBS, "")?
            .into_iter()
            .filter(|j| j.state == JobState::Pending)
            .count();
        if pending >= MAX_PENDING_JOBS {
            return Err(ApiError::conflict(
                "too_many_jobs",
                format!("{MAX_PENDING_JOBS} publications are pending: cancel some first"),
            ));
        }
        let mut batch = WriteBatch::new();
        batch.put(PUBLICATION_JOBS, &job.id, &job)?;
        caller
            .audit(
                &state,
                "publish.schedule",
                &job.id,
                Some(scope_node),
                serde_json::json!({"scope": job.scope, "schedule": job.schedule, "next_run": job.next_run}),
            )
            .record(&mut batch)?;
        state.store.apply(batch).await?;
    }
    state.publish_wake.notify_one();
    Ok((StatusCode::ACCEPTED, Json(job)).into_response())
}

/// Who published what and when (U5): runs and jobs whose scope node is
/// inside the caller's domain.
#[utoipa::path(get, path = "/api/v1/publications", tag = "publish", params(ListQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "Runs and jobs, newest first", body = Publications),
        (status = 400, description = "Invalid query", body = super::ErrorBody),
        (status = 401, description = "No valid token", body = super::ErrorBody)))]
pub async fn list_publications(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<Publications>, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_LIST_LIMIT {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("limit must be 1 to {MAX_LIST_LIMIT}"),
        ));
    }
    let runs: Vec<PublicationRun> = state.store.scan(PUBLICATION_RUNS, "")?;
    let runs = runs
        .into_iter()
        .rev()
        .filter(|r| caller.sees(&r.scope_node))
        .take(limit)
        .collect();
    let mut jobs: Vec<PublicationJob> = state
        .store
        .scan::<PublicationJob>(PUBLICATION_JOBS, "")?
        .into_iter()
        .filter(|j| caller.sees(&j.scope_node))
        .collect();
    jobs.sort_by_key(|j| std::cmp::Reverse(j.created_at));
    Ok(Json(Publications { runs, jobs }))
}

/// Cancels a pending deferred or daily publication.
#[utoipa::path(delete, path = "/api/v1/publications/{id}", tag = "publish",
    params(("id" = String, Path, description = "Job id")), security(("bearer" = [])),
    responses((status = 200, description = "Cancelled", body = PublicationJob),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Without the publish permission", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody),
        (status = 409, description = "Not pending (already ran or cancelled)", body = super::ErrorBody)))]
pub async fn cancel_job(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<PublicationJob>, ApiError> {
    require_publish(&state, &caller)?;
    let _write = state.store.write_lock().await;
    let mut job = state
        .store
        .get::<PublicationJob>(PUBLICATION_JOBS, &id)?
        .filter(|j| caller.sees(&j.scope_node))
        .ok_or_else(|| ApiError::not_found("publication job"))?;
    if job.state != JobState::Pending {
        return Err(ApiError::conflict(
            "job_not_pending",
            format!("the job is {:?}, not pending", job.state).to_lowercase(),
        ));
    }
    job.state = JobState::Cancelled;
    job.next_run = None;
    let mut batch = WriteBatch::new();
    batch.put(PUBLICATION_JOBS, &job.id, &job)?;
    caller
        .audit(
            &state,
            "publish.cancel",
            &job.id,
            Some(job.scope_node.clone()),
            serde_json::json!({"scope": job.scope}),
        )
        .record(&mut batch)?;
    state.store.apply(batch).await?;
    state.publish_wake.notify_one();
    Ok(Json(job))
}
