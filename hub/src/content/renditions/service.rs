//! The rendition service (M3, P5): asking for a rendition and showing how
//! its jobs stand.
//!
//! Rules: `process_media` acts only on an item the caller views (404
//! otherwise) and holds (403 `permission_not_held`), and only on video
//! (400 `not_video`); asking again while a job for the same original is
//! queued, running or done answers that job; a failed job, or one made from
//! bytes the item no longer has, is queued anew; at most
//! [`super::MAX_QUEUED`] jobs wait (429 `queue_full`). Viewing the jobs
//! needs only sight of the item. The request and its audit entry commit
//! together; the worker is woken after.
//!
//! Owns: these decisions. Must not: know HTTP.

use serde::Serialize;
use signet_common::documents::ItemKind;
use signet_common::permissions::Permission;

use super::repo::{self, QueueFull};
use super::{JobState, MAX_QUEUED, PI, RenditionJob, job_key, worker};
use crate::app::Hub;
use crate::content::repo::{self as content_repo, Items};
use crate::content::service::{ContentError, drop_unused_blob, get};
use crate::content::{CONTENT, ContentItem, settings};
use crate::identity::Actor;
use crate::store::StoreError;

/// Why a rendition request was refused; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum RenditionError {
    /// The item's own refusal: not visible (404), permission not held (403).
    #[error(transparent)]
    Content(#[from] ContentError),
    /// Only video has renditions (400 `not_video`).
    #[error("only video items have renditions; this one is {0}")]
    NotVideo(&'static str),
    /// Too many jobs wait (429 `queue_full`).
    #[error("{MAX_QUEUED} rendition jobs are waiting already; ask again when some are done")]
    QueueFull,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A job as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = RenditionJobView)]
pub struct JobView {
    /// The job.
    #[serde(flatten)]
    pub job: RenditionJob,
    /// Whether it is made from the item's current bytes (a manifest lists
    /// only such renditions).
    pub current: bool,
}

fn view(job: RenditionJob, item: &ContentItem) -> JobView {
    let current = job.source == item.sha256;
    JobView { job, current }
}

/// What [`process`] did.
#[derive(Debug, Clone)]
pub struct Requested {
    /// The job.
    pub job: JobView,
    /// Whether it was queued now (else it existed).
    pub queued: bool,
}

/// Queues the rendition of item `id` for `actor` (see the module rules).
///
/// # Errors
/// [`RenditionError`]; nothing changed then.
pub async fn process(hub: &Hub, actor: &Actor, id: &str) -> Result<Requested, RenditionError> {
    let item = settings::act(hub, actor, id, Permission::ProcessMedia).await?;
    if item.kind != ItemKind::Video {
        return Err(RenditionError::NotVideo(kind_name(item.kind)));
    }
    let now = hub.now();
    let (job, replaced) = hub
        .store
        .transact(|tx| {
            let current = tx
                .get::<ContentItem>(CONTENT, item.id.as_str())?
                .ok_or(ContentError::NotFound(Items::Any.what()))?;
            let key = job_key(&current.id, PI.name);
            let existing: Option<RenditionJob> = tx.get(super::RENDITION_JOBS, &key)?;
            if let Some(job) =
                existing.filter(|j| j.source == current.sha256 && j.state != JobState::Failed)
            {
                return Ok((view(job, &current), None));
            }
            let job = RenditionJob {
                item: current.id.clone(),
                profile: PI.name.to_owned(),
                source: current.sha256,
                state: JobState::Queued,
                percent: 0,
                reason: None,
                rendition: None,
                requested_by: actor.user.id.clone(),
                requested_at: now,
                started_at: None,
                finished_at: None,
                queue_key: None,
            };
            let replaced =
                repo::enqueue_in(tx, job, now)?.map_err(|QueueFull| RenditionError::QueueFull)?;
            let detail = serde_json::json!({"profile": PI.name, "source": current.sha256});
            let node = Some(current.node.clone());
            let entry = actor.audit(now, "content.process", current.id.as_str(), node, detail);
            content_repo::record(tx, entry)?;
            let queued: Option<RenditionJob> = tx.get(super::RENDITION_JOBS, &key)?;
            let queued = queued.ok_or(RenditionError::Store(StoreError::Conflict))?;
            Ok::<_, RenditionError>((view(queued, &current), Some(replaced)))
        })
        .await?;
    let queued = replaced.is_some();
    if let Some(Some(old)) = replaced {
        drop_unused_blob(hub, &old).await?;
    }
    if queued {
        worker::wake();
    }
    Ok(Requested { job, queued })
}

/// The rendition jobs of item `id`, which `actor` views.
///
/// # Errors
/// [`RenditionError::Content`] (404) when the item is not visible; store
/// failures.
pub async fn list(hub: &Hub, actor: &Actor, id: &str) -> Result<Vec<JobView>, RenditionError> {
    let item = get(hub, actor, id, Items::Any).await?;
    let jobs = hub
        .store
        .transact(|tx| repo::jobs_of_in(tx, &item.id))
        .await?;
    Ok(jobs.into_iter().map(|job| view(job, &item)).collect())
}

fn kind_name(kind: ItemKind) -> &'static str {
    match kind {
        ItemKind::Video => "video",
        ItemKind::Image => "an image",
        ItemKind::Audio => "audio",
        ItemKind::Template => "a template",
    }
}
