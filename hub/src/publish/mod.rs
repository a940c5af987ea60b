//! Publishing (U5, L3, S3, S4): builds and signs the `group_manifest` of
//! every affected group and the `device_assignment` of every affected
//! device, stores each signed document durably with its version, then hands
//! it to a [`Publisher`] as a retained message.
//!
//! Owns: the [`SIGNED_DOCUMENTS`] and [`SIGNED_ENVELOPES`] trees (the
//! latest signed document per (kind, subject) — a small record, and its
//! envelope byte for byte, which is what gets republished), the per-subject
//! version counters that live in those records, publication jobs
//! ([`PUBLICATION_JOBS`]) and the record of every run
//! ([`PUBLICATION_RUNS`]). May call: the store, [`crate::schedules`],
//! [`crate::content`], [`crate::access_groups`], [`crate::tenancy`] and
//! [`crate::permission_groups`] to read; `signet-common` to validate and
//! sign. Must not: change any record it does not own, or call a publisher
//! before the documents it sends are durable.
//!
//! # Versions
//! Each (kind, subject) has one record holding its latest version; a run
//! signs version + 1 only when the content (items, schedule, license — or
//! for an assignment everything but version and time) differs from what the
//! latest version says, or when a manifest is within
//! [`crate::config::Config::manifest_resign_before_secs`] of expiry (S3). The
//! new record and the run's record are written in one transaction that read
//! each subject's latest record ([`sign`]), so versions strictly increase
//! across restarts and concurrent runs; documents are delivered after it
//! commits ([`run`]).
//!
//! # Layout
//! [`build`] makes the unsigned payloads, [`sign`] versions and signs them,
//! [`targets`] picks what a scope touches, [`run`] runs a publication and
//! delivers it, `rekey` reloads rotated keys and re-signs what another key
//! signed (S2), [`after`] follows a committed access-group change, [`due`] is one pass of the loop (jobs, re-signing,
//! pruning), [`jobs`] is a job's timing and [`service`] the operators'
//! requests (publish now or later, list, cancel).
//!
//! # Scopes
//! A run's scope is a [`GroupRef`]: a node means that node's subtree (its
//! nodes, the access groups living at them, and the devices attached to
//! them); an access group means it and its member devices (current or
//! removed, so a removal reaches the device: L4) attached inside its node's
//! subtree. Nodes above the scope are not re-signed: a tenant never signs
//! its parent's content. An access group's items change
//! ([`run::publish_group_items`]) signs that group's manifest alone (DESIGN
//! §4): no member's assignment is built or re-signed, and the run's
//! progress records name its current, active member devices.
//!
//! # Storage
//! | tree | key | value |
//! |---|---|---|
//! | [`SIGNED_DOCUMENTS`] | `{kind}/{subject}` | [`SignedDocument`] |
//! | [`SIGNED_ENVELOPES`] | `{kind}/{subject}` | the envelope (JSON text) |
//! | [`PUBLICATION_JOBS`] | job id | [`PublicationJob`] |
//! | [`PUBLICATION_RUNS`] | time-ordered run id | [`PublicationRun`] |
//!
//! Each run's targets and how far each got are [`publications`]'s.

pub mod after;
pub mod build;
mod due;
mod first_use;
pub mod jobs;
pub mod publications;
pub mod receivers;
mod rekey;
pub mod run;
mod runner;
pub mod service;
pub mod sign;
pub mod targets;
#[cfg(test)]
pub(crate) mod tests;
mod withdraw;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use signet_common::digest::Sha256;
use signet_common::envelope::{DocumentKind, MAX_DOCUMENT_BYTES};
use signet_common::ids::{DeviceId, ItemId, NodeId, UserId};

pub use due::{DueReport, next_due, run_due};
pub use first_use::after_first_use;
pub use jobs::{JobSchedule, When, WhenError};
// The publisher port lives in the application core (below the domains);
// re-exported here so `crate::publish::Publisher` keeps working.
pub use crate::app::publisher::{
    LogPublisher, PublishFailed, Publisher, RecordingPublisher, RetainedMessage, TransientMessage,
};
pub use rekey::{KEY_WATCH_EVERY, spawn_watch as spawn_key_watch};
pub use run::{
    Published, Publishing, RepublishReport, deliver, publish, publish_devices, publish_group_items,
    publish_new_device, republish_all,
};
pub use runner::{LoopOptions, spawn_loop};
pub use service::{
    ListQuery, PublicationError, Publications, PublishAnswer, PublishRequest, Requested,
};
/// The contract topics (DESIGN §5), defined once in `signet-common`.
pub use signet_common::sync::{TRUST_TOPIC, assignment_topic, manifest_topic};
pub use targets::{Refused, Targets, authorize, may_publish, targets_of};
pub use withdraw::{forget_group, withdraw_manifest, withdraw_orphans};

use crate::groups::GroupRef;
use crate::identity::User;
use crate::store::{Store, StoreError, Tx};

/// The latest signed document per `{kind}/{subject}`: version, hashes,
/// expiry (small, scanned by every run and by the re-sign pass).
pub const SIGNED_DOCUMENTS: &str = "signed_documents";
/// The envelope of each [`SIGNED_DOCUMENTS`] record, under the same key,
/// written in the same batch.
pub const SIGNED_ENVELOPES: &str = "signed_envelopes";
/// Deferred and daily publications, by id.
pub const PUBLICATION_JOBS: &str = "publication_jobs";
/// Every publication run, keyed by a time-ordered id.
pub const PUBLICATION_RUNS: &str = "publication_runs";
/// How long run records are kept.
pub const RUN_RETENTION: TimeDelta = TimeDelta::days(180);
/// The most run records one pass of [`run_due`] prunes.
pub const PRUNE_BATCH: usize = 256;
/// The most pending jobs the hub holds, over every tenant.
pub const MAX_PENDING_JOBS: usize = 1000;

/// Why a publication did not happen. Nothing was stored when it fails.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The scope or a group names nothing that exists.
    #[error("{} {} does not exist", kind_name(.0), .0.id())]
    UnknownGroup(GroupRef),
    /// A group's manifest breaks a rule of `GroupManifest::validate`.
    #[error("the manifest of group {group} is invalid: {reason}")]
    InvalidManifest {
        /// The group id.
        group: String,
        /// Why.
        reason: String,
    },
    /// A device's assignment breaks a rule of `DeviceAssignment::validate_for`.
    #[error("the assignment of device {device} is invalid: {reason}")]
    InvalidAssignment {
        /// The device id.
        device: String,
        /// Why.
        reason: String,
    },
    /// A signed document would exceed [`MAX_DOCUMENT_BYTES`] (S1).
    #[error(
        "the signed {kind} of {subject} would be {size} bytes, over the \
         {MAX_DOCUMENT_BYTES}-byte limit: split the group"
    )]
    TooLarge {
        /// The document kind.
        kind: DocumentKind,
        /// Its subject.
        subject: String,
        /// Its size.
        size: usize,
    },
    /// The user a job publishes as may no longer publish its scope.
    #[error("not published: {0}")]
    NotAuthorized(String),
    /// Encoding a payload failed (never for the hub's own types).
    #[error("signing failed: {0}")]
    Sign(String),
}

fn kind_name(group: &GroupRef) -> &'static str {
    match group {
        GroupRef::Node(_) => "node",
        GroupRef::AccessGroup(_) => "access group",
    }
}

/// The latest signed document of one (kind, subject).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedDocument {
    /// The document kind.
    pub kind: DocumentKind,
    /// The group id or device id it is about.
    pub subject: String,
    /// Its version: strictly increasing per (kind, subject).
    pub version: u64,
    /// When it was signed.
    pub issued_at: DateTime<Utc>,
    /// When it expires (manifests).
    pub expires_at: Option<DateTime<Utc>>,
    /// SHA-256 of the envelope bytes (what the agent's rollback guard keeps).
    pub sha256: Sha256,
    /// SHA-256 of the payload without version and times: unchanged content
    /// is not re-signed.
    pub content_hash: Sha256,
    /// The group, for manifests.
    pub group: Option<GroupRef>,
    /// The signing key that signed it (S2: after a rotation, documents of
    /// another key are re-signed). Absent in records written before it
    /// was kept; the re-sign pass fills it in from the envelope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<signet_common::envelope::KeyId>,
}

impl SignedDocument {
    /// The contract topic it is published on; `None` for kinds publishing
    /// does not store.
    #[must_use]
    pub fn topic(&self) -> Option<String> {
        topic_of(self.kind, &self.subject)
    }
}

/// The contract topic a stored document of (`kind`, `subject`) is published
/// on; `None` for kinds publishing does not store.
#[must_use]
pub fn topic_of(kind: DocumentKind, subject: &str) -> Option<String> {
    match kind {
        DocumentKind::GroupManifest => Some(manifest_topic(subject)),
        DocumentKind::DeviceAssignment => Some(assignment_topic(&DeviceId::new(subject))),
        DocumentKind::Trust => Some(TRUST_TOPIC.to_owned()),
        DocumentKind::Command
        | DocumentKind::HubTime
        | DocumentKind::DeviceState
        | DocumentKind::DeviceEvents => None,
    }
}

/// The key of a signed document's record.
#[must_use]
pub fn document_key(kind: DocumentKind, subject: &str) -> String {
    format!("{}/{subject}", kind.as_str())
}

/// The latest signed document of (`kind`, `subject`), if any.
///
/// # Errors
/// When the store fails.
pub fn latest(
    store: &Store,
    kind: DocumentKind,
    subject: &str,
) -> Result<Option<SignedDocument>, StoreError> {
    store.get(SIGNED_DOCUMENTS, &document_key(kind, subject))
}

/// The stored envelope of (`kind`, `subject`)'s latest version, byte for
/// byte as it was signed and published.
///
/// # Errors
/// When the store fails.
pub fn envelope_of(
    store: &Store,
    kind: DocumentKind,
    subject: &str,
) -> Result<Option<String>, StoreError> {
    store.get(SIGNED_ENVELOPES, &document_key(kind, subject))
}

/// Who started a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Actor {
    /// The user; `None` for the hub itself (re-signing before expiry).
    #[schema(value_type = Option<String>)]
    pub user: Option<UserId>,
    /// Their login name.
    pub name: Option<String>,
    /// Where the request came from (`scheduler` for jobs, `hub` for the hub).
    pub from: String,
}

impl Actor {
    /// `user`, calling from `from`.
    #[must_use]
    pub fn user(user: &User, from: &str) -> Self {
        Self {
            user: Some(user.id.clone()),
            name: Some(user.name.clone()),
            from: from.to_owned(),
        }
    }

    /// The hub itself.
    #[must_use]
    pub fn hub() -> Self {
        Self {
            user: None,
            name: None,
            from: "hub".to_owned(),
        }
    }
}

/// What started a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Trigger {
    /// `POST /api/v1/publish` with `when: immediate`.
    Immediate,
    /// A deferred job reached its time.
    Deferred {
        /// The job.
        job: String,
    },
    /// A daily job reached its time.
    Daily {
        /// The job.
        job: String,
    },
    /// The hub re-signed a manifest before it expired (S3).
    Resign,
    /// An access group's item list changed: its content reaches member
    /// devices at once (L3).
    GroupItems,
}

/// One document of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PublishedDocument {
    /// `group_manifest` or `device_assignment`.
    #[schema(value_type = String)]
    pub kind: DocumentKind,
    /// The group or device id.
    pub subject: String,
    /// Its version after the run.
    pub version: u64,
    /// SHA-256 of its envelope.
    #[schema(value_type = String)]
    pub sha256: Sha256,
    /// Whether this run signed it (false: unchanged, the stored version stands).
    pub signed: bool,
}

/// A scheduled item that no longer exists, left out of a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DroppedItem {
    /// The group.
    pub group: String,
    /// The missing item.
    #[schema(value_type = String)]
    pub item: ItemId,
}

/// The record of one run (U5): who published what, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PublicationRun {
    /// Time-ordered id (also the key).
    pub id: String,
    /// When it ran.
    pub at: DateTime<Utc>,
    /// Who published (for a job: who scheduled it).
    pub actor: Actor,
    /// What started it.
    pub trigger: Trigger,
    /// The scope asked for; `None` for hub-initiated runs over single groups.
    #[schema(value_type = Option<Object>)]
    pub scope: Option<GroupRef>,
    /// The node whose subtree the run belongs to: who may read the record.
    #[schema(value_type = String)]
    pub scope_node: NodeId,
    /// Every document considered, signed or unchanged.
    pub documents: Vec<PublishedDocument>,
    /// Scheduled items that no longer exist and were left out.
    pub dropped_items: Vec<DroppedItem>,
    /// Why a job's run published nothing, if it failed.
    pub error: Option<String>,
}

/// A job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Will run at `next_run`.
    Pending,
    /// A deferred job that ran.
    Done,
    /// A deferred job whose run failed (see `last_error`).
    Failed,
    /// Cancelled before it ran.
    Cancelled,
}

/// A deferred or daily publication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PublicationJob {
    /// Stable id (`pj-…`).
    pub id: String,
    /// What to publish.
    #[schema(value_type = Object)]
    pub scope: GroupRef,
    /// The scope's node (visibility, T4).
    #[schema(value_type = String)]
    pub scope_node: NodeId,
    /// When it runs.
    pub schedule: JobSchedule,
    /// Its next run, while pending.
    pub next_run: Option<DateTime<Utc>>,
    /// Pending, done, failed or cancelled.
    pub state: JobState,
    /// Who scheduled it: runs publish as this user, if they still may.
    #[schema(value_type = String)]
    pub created_by: UserId,
    /// Their login name.
    pub created_by_name: String,
    /// When it was scheduled.
    pub created_at: DateTime<Utc>,
    /// How many times it ran.
    pub runs: u32,
    /// The id of its latest run record.
    pub last_run: Option<String>,
    /// Why its latest run failed, if it did.
    pub last_error: Option<String>,
}

/// Writes `job` in `tx`: the one place a job record is written (it has no
/// index).
///
/// # Errors
/// When the record cannot be encoded (never for this type).
pub fn put_job(tx: &mut Tx, job: &PublicationJob) -> Result<(), StoreError> {
    tx.put(PUBLICATION_JOBS, &job.id, job)
}
