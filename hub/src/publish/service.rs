//! The publishing service (U5, P7, T4): what operators ask for — publish a
//! scope now, at a time or daily; list who published what and when;
//! cancel a pending job.
//!
//! Owns: the rules of those requests, each decision inside one transaction
//! with its audit entry, and their after-commit effect (waking the
//! publishing loop, [`Hub::publish_wake`]); the request and answer types of
//! the API. Must not: know HTTP (handlers map [`PublicationError`]).
//!
//! Who may do what:
//! - publishing and cancelling need the `publish` permission (P7) in the
//!   actor's effective permissions (forbidden without it, checked first),
//!   and the scope's node inside the actor's domain (not found otherwise,
//!   T4);
//! - anyone logged in lists the runs and jobs whose scope node is inside
//!   their domain.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::jobs::schedule_of;
use super::publications::{self, Progress, Publication};
use super::{
    Actor, JobSchedule, JobState, MAX_PENDING_JOBS, PUBLICATION_JOBS, PUBLICATION_RUNS,
    PublicationJob, PublicationRun, PublishError, Publishing, Trigger, When, WhenError,
    may_publish, publish, put_job,
};
use crate::app::Hub;
use crate::groups::GroupRef;
use crate::identity::{self, new_id};
use crate::schedules::node_of_group;
use crate::store::{StoreError, WriteBatch};
use crate::tenancy::{load_tree, load_tree_in};

/// The most runs one listing returns.
pub const MAX_LIST_LIMIT: usize = 1000;

/// Why a publication request was refused. Nothing was stored.
#[derive(Debug, thiserror::Error)]
pub enum PublicationError {
    /// The actor lacks the `publish` permission (P7).
    #[error("needs the publish permission")]
    NoPermission,
    /// Absent, or outside the actor's domain (T4); names what.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// `when` is in the past, not `HH:MM`, or names no time zone.
    #[error("{0}")]
    InvalidWhen(String),
    /// The listing's limit is out of range.
    #[error("limit must be 1 to {MAX_LIST_LIMIT}")]
    InvalidLimit,
    /// [`MAX_PENDING_JOBS`] jobs are pending already.
    #[error("{MAX_PENDING_JOBS} publications are pending: cancel some first")]
    TooManyJobs,
    /// The job already ran or was cancelled.
    #[error("{}", format!("the job is {:?}, not pending", .0).to_lowercase())]
    NotPending(JobState),
    /// The run failed; nothing was stored or published.
    #[error(transparent)]
    Run(#[from] PublishError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A publication request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PublishAnswer {
    /// The stored record: every document with its version.
    pub run: PublicationRun,
    /// Topics whose new document is stored but was not handed to the
    /// transport; it is sent with the next publication or at the next start.
    pub undelivered: Vec<String>,
}

/// Runs and jobs visible to the caller.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Publications {
    /// Runs, newest first.
    pub runs: Vec<PublicationRun>,
    /// How far each run got, by run id: devices targeted, accepted,
    /// activated ("312 of 320 screens have it").
    pub progress: BTreeMap<String, Progress>,
    /// Jobs (pending, done, failed, cancelled), newest first.
    pub jobs: Vec<PublicationJob>,
}

/// The listing's query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// The most runs to return (1 to 1000, default 100).
    pub limit: Option<usize>,
}

/// What a publication request did.
#[derive(Debug)]
pub enum Requested {
    /// Published now.
    Published(PublishAnswer),
    /// Stored as a deferred or daily job.
    Scheduled(PublicationJob),
}

/// Publishes a scope now as `actor`, or stores a job that does later (U5).
/// Now: as [`publish`], the unchanged documents sent again (S4). Later:
/// the job runs as `actor` if they still may ([`super::run_due`]).
///
/// # Errors
/// [`PublicationError`]; then nothing was stored or published.
pub async fn request(
    hub: &Hub,
    actor: &identity::Actor,
    request: PublishRequest,
) -> Result<Requested, PublicationError> {
    require_publish(hub, actor)?;
    let now = hub.now();
    let timing = match schedule_of(&request.when, now) {
        Ok(None) => {
            let by = Publishing {
                actor: Actor::user(&actor.user, &actor.from),
                trigger: Trigger::Immediate,
                resend_unchanged: true,
                within: Some(actor.domain()),
            };
            let published = publish(hub, &request.scope, by).await?;
            return Ok(Requested::Published(PublishAnswer {
                run: published.run,
                undelivered: published.undelivered.into_iter().map(|f| f.topic).collect(),
            }));
        }
        Ok(Some(schedule)) => Ok(schedule),
        Err(e) => Err(e),
    };
    let job = schedule_job(hub, actor, request.scope, timing, now).await?;
    hub.publish_wake.notify_one();
    Ok(Requested::Scheduled(job))
}

/// Stores a pending job publishing `scope` by `timing`, as `actor`: the
/// scope visible to them (checked first), a first run within the calendar,
/// fewer than [`MAX_PENDING_JOBS`] pending.
async fn schedule_job(
    hub: &Hub,
    actor: &identity::Actor,
    scope: GroupRef,
    timing: Result<JobSchedule, WhenError>,
    now: DateTime<Utc>,
) -> Result<PublicationJob, PublicationError> {
    let id = new_id("pj-");
    hub.store
        .transact(|tx| {
            let (tree, _) = load_tree_in(tx)?;
            let scope_node = node_of_group(&mut *tx, &scope)?
                .filter(|node| actor.sees(&tree, node))
                .ok_or(PublicationError::NotFound("scope"))?;
            let schedule = timing
                .clone()
                .map_err(|e| PublicationError::InvalidWhen(e.to_string()))?;
            let next_run = schedule.first_run(now).ok_or_else(|| {
                PublicationError::InvalidWhen("no run time within the calendar".to_owned())
            })?;
            let jobs: Vec<PublicationJob> = tx.scan(PUBLICATION_JOBS, "")?;
            if jobs.iter().filter(|j| j.state == JobState::Pending).count() >= MAX_PENDING_JOBS {
                return Err(PublicationError::TooManyJobs);
            }
            let job = PublicationJob {
                id: id.clone(),
                scope: scope.clone(),
                scope_node: scope_node.clone(),
                schedule,
                next_run: Some(next_run),
                state: JobState::Pending,
                created_by: actor.user.id.clone(),
                created_by_name: actor.user.name.clone(),
                created_at: now,
                runs: 0,
                last_run: None,
                last_error: None,
            };
            let detail = serde_json::json!({"scope": job.scope, "schedule": job.schedule,
                "next_run": job.next_run});
            save_job(
                tx,
                &job,
                actor.audit(now, "publish.schedule", &id, Some(scope_node), detail),
            )?;
            Ok(job)
        })
        .await
}

/// Who published what and when (U5): the newest `limit` runs (default 100)
/// and every job whose scope node is inside the actor's domain.
///
/// # Errors
/// [`PublicationError::InvalidLimit`]; store failures.
pub fn publications(
    hub: &Hub,
    actor: &identity::Actor,
    limit: Option<usize>,
) -> Result<Publications, PublicationError> {
    let limit = limit.unwrap_or(100);
    if limit == 0 || limit > MAX_LIST_LIMIT {
        return Err(PublicationError::InvalidLimit);
    }
    let (tree, _) = load_tree(&hub.store)?;
    let runs: Vec<PublicationRun> = hub.store.scan(PUBLICATION_RUNS, "")?;
    let runs: Vec<PublicationRun> = runs
        .into_iter()
        .rev()
        .filter(|r| actor.sees(&tree, &r.scope_node))
        .take(limit)
        .collect();
    let mut progress = BTreeMap::new();
    for run in &runs {
        let devices = publications::devices_of(hub, &run.id)?;
        progress.insert(run.id.clone(), publications::progress_of(&devices));
    }
    let mut jobs: Vec<PublicationJob> = hub
        .store
        .scan::<PublicationJob>(PUBLICATION_JOBS, "")?
        .into_iter()
        .filter(|j| actor.sees(&tree, &j.scope_node))
        .collect();
    jobs.sort_by_key(|j| std::cmp::Reverse(j.created_at));
    Ok(Publications {
        runs,
        progress,
        jobs,
    })
}

/// One run with its target devices and when each accepted and activated
/// its documents (U5); `id` is a run id or a job id (its latest run).
///
/// # Errors
/// [`PublicationError::NotFound`] when absent or outside the actor's
/// domain (T4); store failures.
pub fn publication(
    hub: &Hub,
    actor: &identity::Actor,
    id: &str,
) -> Result<Publication, PublicationError> {
    publications::publication(hub, actor, id)?.ok_or(PublicationError::NotFound("publication"))
}

/// Cancels a pending deferred or daily publication.
///
/// # Errors
/// [`PublicationError`]; then nothing was stored.
pub async fn cancel(
    hub: &Hub,
    actor: &identity::Actor,
    id: &str,
) -> Result<PublicationJob, PublicationError> {
    require_publish(hub, actor)?;
    let now = hub.now();
    let job = hub
        .store
        .transact(|tx| {
            let (tree, _) = load_tree_in(tx)?;
            let mut job = tx
                .get::<PublicationJob>(PUBLICATION_JOBS, id)?
                .filter(|j| actor.sees(&tree, &j.scope_node))
                .ok_or(PublicationError::NotFound("publication job"))?;
            if job.state != JobState::Pending {
                return Err(PublicationError::NotPending(job.state));
            }
            job.state = JobState::Cancelled;
            job.next_run = None;
            let detail = serde_json::json!({"scope": job.scope});
            let audit = actor.audit(
                now,
                "publish.cancel",
                id,
                Some(job.scope_node.clone()),
                detail,
            );
            save_job(tx, &job, audit)?;
            Ok(job)
        })
        .await?;
    hub.publish_wake.notify_one();
    Ok(job)
}

/// Writes `job` ([`put_job`]) and `audit` in `tx`.
fn save_job(
    tx: &mut crate::store::Tx,
    job: &PublicationJob,
    audit: crate::audit::AuditEntry,
) -> Result<(), StoreError> {
    put_job(tx, job)?;
    let mut batch = WriteBatch::new();
    audit.record(&mut batch)?;
    tx.include(batch);
    Ok(())
}

/// Refuses unless the actor holds `publish` (P7).
fn require_publish(hub: &Hub, actor: &identity::Actor) -> Result<(), PublicationError> {
    if may_publish(&hub.store, &actor.user)? {
        Ok(())
    } else {
        Err(PublicationError::NoPermission)
    }
}
