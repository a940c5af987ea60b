//! Renditions of media items (M3 "process media", D2, A8): an H.264 copy
//! of a video, at most 1920×1080 at 30 frames per second (aspect kept,
//! never enlarged, no audio), that a Raspberry Pi decodes smoothly; made
//! by a background job with GStreamer and listed in the group manifest
//! beside the original, where each device picks what it can decode
//! ([`signet_common::documents::DecodeLimit`]).
//!
//! # Jobs
//! `POST /api/v1/content/{id}/process` (permission `process_media`, on an
//! item the caller views) queues one job per item and profile; the
//! [`worker`] runs one job at a time, hub-wide, in queue order, at most
//! [`MAX_QUEUED`] waiting. A job is a record: queued → running (with its
//! percent, from the pipeline's position and duration) → done (with the
//! rendition) or failed (with the reason). Every change is stored before
//! it is shown, so jobs survive a restart: one that was running is queued
//! again when the worker starts ([`repo::requeue_running`]).
//!
//! # Storage
//! | tree | key | value |
//! |---|---|---|
//! | [`RENDITION_JOBS`] | `{item}/{profile}` | [`RenditionJob`] |
//! | [`RENDITION_QUEUE`] | time-ordered id | the job's key |
//! | [`super::CONTENT_BY_HASH`] | `{rendition sha256}/{item}` | the item id |
//!
//! The output is a content blob named by its SHA-256, like an original; its
//! entry in the hash index makes it "used by the item" for the blob store
//! (it is kept while the item lives) and for device fetches (a device may
//! fetch it exactly when it may fetch the item's original,
//! [`crate::access_groups::device_may_fetch`]). Deleting the item removes
//! its jobs, their index entries and then the unused blobs.
//!
//! # Trust
//! Renditions are derived by the hub and signed into the group manifest
//! with their SHA-256 and size, like originals: the hub is already trusted
//! to sign what plays, and the device verifies every byte it plays against
//! the signed hash (D2). A manifest lists a rendition only while its source
//! is the item's current original; the device plays it instead of the
//! original only while that original is the approved version (A8, see
//! [`signet_common::documents::Rendition`]). Approving an item therefore
//! approves the hub's renditions of those exact bytes; a rendition never
//! makes unapproved bytes play. A rendition reaches devices with the next
//! publication of the groups that hold the item (a publish, or the
//! re-signing before expiry).
//!
//! A manifest lists renditions only when every device that receives it
//! declared it reads them ([`readers`]): agents built before renditions
//! refuse such a manifest, and never get one.
//!
//! Owns: the two trees above, the rendition's hash-index entries, the
//! transcoding ([`transcode`]) and its bounds. Must not: know HTTP, hold a
//! transaction across a transcode or a blob write, or import the modules
//! that publish (the manifest builder reads [`manifest_entries`]).

pub mod readers;
pub mod repo;
pub mod service;
pub mod transcode;
pub mod worker;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use signet_common::digest::Sha256;
use signet_common::documents::{ItemKind, Rendition};
use signet_common::ids::{ItemId, UserId};

use super::ContentItem;
use crate::store::{Store, StoreError};

/// Tree of rendition jobs, keyed `{item}/{profile}`.
pub const RENDITION_JOBS: &str = "rendition_jobs";
/// The queue: time-ordered ids, each naming a queued job's key.
pub const RENDITION_QUEUE: &str = "rendition_queue";
/// The most jobs waiting at once, hub-wide; more are refused (429).
pub const MAX_QUEUED: usize = 16;

/// What a profile makes: H.264 within `max_width` × `max_height` at `fps`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    /// Its name, the job key's second part (`1080p30-h264`).
    pub name: &'static str,
    /// The widest picture.
    pub max_width: u32,
    /// The tallest picture.
    pub max_height: u32,
    /// Frames per second.
    pub fps: u32,
    /// The codec devices match against their decode limit.
    pub codec: &'static str,
}

/// The one profile: what a Raspberry Pi plays smoothly.
pub const PI: Profile = Profile {
    name: "1080p30-h264",
    max_width: 1920,
    max_height: 1080,
    fps: 30,
    codec: "h264",
};

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = RenditionJobState)]
pub enum JobState {
    /// Waiting for the worker.
    Queued,
    /// Being transcoded (see `percent`).
    Running,
    /// Finished: the rendition exists.
    Done,
    /// Finished without a rendition (see `reason`).
    Failed,
}

/// A finished rendition: a content blob and what it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RenditionFile {
    /// The SHA-256 of its bytes (its blob's name).
    #[schema(value_type = String)]
    pub sha256: Sha256,
    /// Its size in bytes.
    pub size: u64,
    /// The video codec (`h264`).
    pub codec: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
}

/// One job: the rendition of one item's original in one profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RenditionJob {
    /// The item.
    #[schema(value_type = String)]
    pub item: ItemId,
    /// The profile's name.
    pub profile: String,
    /// The SHA-256 of the original it is made from.
    #[schema(value_type = String)]
    pub source: Sha256,
    /// Where it is.
    pub state: JobState,
    /// How far the transcode got, 0 to 100 (100 when done).
    pub percent: u8,
    /// Why it failed.
    pub reason: Option<String>,
    /// The rendition, once done.
    pub rendition: Option<RenditionFile>,
    /// Who asked for it.
    #[schema(value_type = String)]
    pub requested_by: UserId,
    /// When it was asked for (queued).
    pub requested_at: DateTime<Utc>,
    /// When the worker last started it.
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// Its queue entry while queued.
    #[serde(default)]
    #[schema(ignore)]
    pub queue_key: Option<String>,
}

/// The key of `item`'s job in `profile`.
#[must_use]
pub fn job_key(item: &ItemId, profile: &str) -> String {
    format!("{item}/{profile}")
}

/// The renditions a manifest lists for `item` (M3): each done job whose
/// source is the item's current original; none for templates, images and
/// audio.
///
/// # Errors
/// When the store fails.
pub fn manifest_entries(
    store: &Store,
    item: &ContentItem,
    url_of: impl Fn(&Sha256) -> String,
) -> Result<Vec<Rendition>, StoreError> {
    if item.kind != ItemKind::Video {
        return Ok(Vec::new());
    }
    let jobs: Vec<RenditionJob> = store.scan(RENDITION_JOBS, &format!("{}/", item.id))?;
    Ok(jobs
        .into_iter()
        .filter(|job| job.state == JobState::Done && job.source == item.sha256)
        .filter_map(|job| job.rendition)
        .map(|file| Rendition {
            url: url_of(&file.sha256),
            sha256: file.sha256,
            size: file.size,
            codec: file.codec,
            width: file.width,
            height: file.height,
            fps: file.fps,
        })
        .collect())
}
