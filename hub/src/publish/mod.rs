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
//! new record and the run's record are written in one [`WriteBatch`] under
//! the store's write lock, so versions strictly increase across restarts and
//! concurrent runs.
//!
//! # Scopes
//! A run's scope is a [`GroupRef`]: a node means that node's subtree (its
//! nodes, the access groups living at them, and the devices attached to
//! them); an access group means it and its member devices (current or
//! removed, so a removal reaches the device: L4) attached inside its node's
//! subtree. Nodes above the scope are not re-signed: a tenant never signs
//! its parent's content.
//!
//! # Storage
//! | tree | key | value |
//! |---|---|---|
//! | [`SIGNED_DOCUMENTS`] | `{kind}/{subject}` | [`SignedDocument`] |
//! | [`SIGNED_ENVELOPES`] | `{kind}/{subject}` | the envelope (JSON text) |
//! | [`PUBLICATION_JOBS`] | job id | [`PublicationJob`] |
//! | [`PUBLICATION_RUNS`] | time-ordered run id | [`PublicationRun`] |

pub mod build;
pub mod jobs;
mod publisher;
mod runner;

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use signet_common::digest::Sha256;
use signet_common::envelope::{DocumentKind, MAX_DOCUMENT_BYTES, sign_document};
use signet_common::ids::{AccessGroupId, DeviceId, ItemId, NodeId, UserId};
use signet_common::permissions::{Domain, NodeTree, Permission};

pub use jobs::{JobSchedule, When, WhenError};
pub use publisher::{
    LogPublisher, PublishFailed, Publisher, RecordingPublisher, RetainedMessage, TransientMessage,
};
pub use runner::{LoopOptions, PublishLoop};
/// The contract topics (DESIGN §5), defined once in `signet-common`.
pub use signet_common::sync::{TRUST_TOPIC, assignment_topic, manifest_topic};

use crate::access_groups::{self, AccessGroup, GROUPS, MemberRef};
use crate::app::Hub;
use crate::audit::{AuditEntry, audit_id};
use crate::groups::GroupRef;
use crate::identity::{USERS, User};
use crate::store::{Store, StoreError, WriteBatch};
use crate::tenancy::{NODE_DEVICES, load_tree};

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

/// What a run touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Targets {
    /// The node whose subtree holds all of it.
    pub scope_node: NodeId,
    /// The groups whose manifests are built.
    pub groups: Vec<GroupRef>,
    /// The devices whose assignments are built, with their nodes.
    pub devices: Vec<(DeviceId, NodeId)>,
}

/// What `scope` touches (see the module doc), with the tree as stored now.
///
/// # Errors
/// [`PublishError::UnknownGroup`] when the scope does not exist; store errors.
pub fn targets_of(store: &Store, scope: &GroupRef) -> Result<Targets, PublishError> {
    let (tree, nodes) = load_tree(store)?;
    let attached = attached_devices(store)?;
    match scope {
        GroupRef::Node(node) => {
            if !tree.contains(node) {
                return Err(PublishError::UnknownGroup(scope.clone()));
            }
            let mut groups: Vec<GroupRef> = nodes
                .iter()
                .filter(|n| tree.is_within(&n.id, node))
                .map(|n| GroupRef::Node(n.id.clone()))
                .collect();
            let access: Vec<AccessGroup> = store.scan(GROUPS, "")?;
            groups.extend(
                access
                    .into_iter()
                    .filter(|g| tree.is_within(&g.node, node))
                    .map(|g| GroupRef::AccessGroup(g.id)),
            );
            groups.sort();
            let devices = attached
                .into_iter()
                .filter(|(_, at)| tree.is_within(at, node))
                .collect();
            Ok(Targets {
                scope_node: node.clone(),
                groups,
                devices,
            })
        }
        GroupRef::AccessGroup(id) => {
            let group: AccessGroup = store
                .get(GROUPS, id.as_str())?
                .ok_or_else(|| PublishError::UnknownGroup(scope.clone()))?;
            let mut devices = Vec::new();
            for (device, at) in attached {
                let member = MemberRef::Device {
                    device_id: device.clone(),
                };
                if tree.is_within(&at, &group.node)
                    && access_groups::member_of(store, id, &member)?.is_some()
                {
                    devices.push((device, at));
                }
            }
            Ok(Targets {
                scope_node: group.node,
                groups: vec![scope.clone()],
                devices,
            })
        }
    }
}

/// Every attached device with its node (`NODE_DEVICES`), by device id.
fn attached_devices(store: &Store) -> Result<Vec<(DeviceId, NodeId)>, StoreError> {
    let mut devices: Vec<(DeviceId, NodeId)> = store
        .scan_keys(NODE_DEVICES, "")?
        .into_iter()
        .filter_map(|key| {
            key.split_once('/')
                .map(|(node, device)| (DeviceId::from(device), NodeId::from(node)))
        })
        .collect();
    devices.sort();
    Ok(devices)
}

/// Why a user may not publish a scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// They lack the `publish` permission (P7): 403.
    NoPermission,
    /// The scope lies outside their domain (T4): 404.
    OutsideDomain,
}

/// Whether `user` may publish a scope living at `scope_node`: `publish` in
/// their effective permissions (P7) and the node inside their domain.
///
/// # Errors
/// When the store fails.
pub fn authorize(
    store: &Store,
    user: &User,
    tree: &NodeTree,
    scope_node: &NodeId,
) -> Result<Result<(), Refused>, StoreError> {
    if !may_publish(store, user)? {
        return Ok(Err(Refused::NoPermission));
    }
    if !Domain::new(user.domain.iter().cloned()).contains(tree, scope_node) {
        return Ok(Err(Refused::OutsideDomain));
    }
    Ok(Ok(()))
}

/// Whether `user` holds `publish` (P7) and is enabled.
///
/// # Errors
/// When the store fails.
pub fn may_publish(store: &Store, user: &User) -> Result<bool, StoreError> {
    Ok(!user.disabled
        && crate::permission_groups::effective_permissions_of(store, user)?
            .contains(Permission::Publish))
}

/// A run ready to apply: its record, the new signed documents and the batch
/// that stores both.
struct Prepared {
    /// The run's record (already in `batch`).
    run: PublicationRun,
    /// The documents this run signed (already in `batch`), as messages.
    signed: Vec<RetainedMessage>,
    /// Each device whose assignment this run signed, with the groups it now
    /// follows: the broker's ACLs follow ([`follow_assignments`]).
    assigned: Vec<(DeviceId, Vec<String>)>,
    /// Everything to write.
    batch: WriteBatch,
}

/// Builds, validates and signs every changed document of `targets`.
/// Nothing is written; the caller holds the write lock, adds its own
/// records to the batch and applies it.
fn prepare(
    state: &Hub,
    targets: &Targets,
    scope: Option<GroupRef>,
    actor: Actor,
    trigger: Trigger,
    now: DateTime<Utc>,
) -> Result<Prepared, PublishError> {
    let store = &state.store;
    let config = &state.config;
    let base_url = config.public_base_url();
    let mut floors: BTreeMap<String, u64> = store
        .scan::<SignedDocument>(
            SIGNED_DOCUMENTS,
            &format!("{}/", DocumentKind::GroupManifest.as_str()),
        )?
        .into_iter()
        .map(|d| (d.subject, d.version))
        .collect();
    let mut batch = WriteBatch::new();
    let mut documents = Vec::new();
    let mut signed = Vec::new();
    let mut assigned = Vec::new();
    let mut dropped_items = Vec::new();
    for group in &targets.groups {
        let built = build::manifest(store, &base_url, group)?;
        dropped_items.extend(built.dropped.iter().map(|item| DroppedItem {
            group: group.id().to_owned(),
            item: item.clone(),
        }));
        let previous = latest(store, DocumentKind::GroupManifest, group.id())?;
        if let Some(previous) = previous.as_ref().filter(|p| {
            p.content_hash == built.content_hash
                && p.expires_at
                    .is_some_and(|e| e - config.manifest_resign_before() > now)
        }) {
            documents.push(unchanged(previous));
            continue;
        }
        let mut manifest = built.document;
        manifest.version = previous.as_ref().map_or(1, |p| p.version + 1);
        manifest.issued_at = now;
        manifest.expires_at = now + config.manifest_lifetime();
        manifest
            .validate()
            .map_err(|e| PublishError::InvalidManifest {
                group: group.id().to_owned(),
                reason: e.to_string(),
            })?;
        let envelope = sign(&manifest, state, group.id())?;
        let record = SignedDocument {
            kind: DocumentKind::GroupManifest,
            subject: group.id().to_owned(),
            version: manifest.version,
            issued_at: now,
            expires_at: Some(manifest.expires_at),
            sha256: Sha256::of(envelope.as_bytes()),
            content_hash: built.content_hash,
            group: Some(group.clone()),
        };
        floors.insert(record.subject.clone(), record.version);
        documents.push(signed_view(&record));
        stage(&mut batch, &mut signed, &record, envelope)?;
    }
    if !targets.devices.is_empty() {
        let (tree, nodes) = load_tree(store)?;
        let inputs = build::AssignmentInputs {
            tree: &tree,
            nodes: &nodes,
            floors: &floors,
            offline_grace_secs: config.device_offline_grace_secs,
        };
        for (device, node) in &targets.devices {
            let built = build::assignment(store, &inputs, device, node)?;
            let previous = latest(store, DocumentKind::DeviceAssignment, device.as_str())?;
            if let Some(previous) = previous
                .as_ref()
                .filter(|p| p.content_hash == built.content_hash)
            {
                documents.push(unchanged(previous));
                continue;
            }
            let mut assignment = built.document;
            assignment.version = previous.as_ref().map_or(1, |p| p.version + 1);
            assignment.issued_at = now;
            assignment
                .validate_for(device)
                .map_err(|e| PublishError::InvalidAssignment {
                    device: device.to_string(),
                    reason: e.to_string(),
                })?;
            let envelope = sign(&assignment, state, device.as_str())?;
            let record = SignedDocument {
                kind: DocumentKind::DeviceAssignment,
                subject: device.to_string(),
                version: assignment.version,
                issued_at: now,
                expires_at: None,
                sha256: Sha256::of(envelope.as_bytes()),
                content_hash: built.content_hash,
                group: None,
            };
            documents.push(signed_view(&record));
            stage(&mut batch, &mut signed, &record, envelope)?;
            assigned.push((
                device.clone(),
                assignment.group_ids().map(str::to_owned).collect(),
            ));
        }
    }
    let run = PublicationRun {
        id: audit_id(now),
        at: now,
        actor,
        trigger,
        scope,
        scope_node: targets.scope_node.clone(),
        documents,
        dropped_items,
        error: None,
    };
    batch.put(PUBLICATION_RUNS, &run.id, &run)?;
    Ok(Prepared {
        run,
        signed,
        assigned,
        batch,
    })
}

/// Adds a newly signed document and its envelope to `batch`, and its
/// retained message to `messages`.
fn stage(
    batch: &mut WriteBatch,
    messages: &mut Vec<RetainedMessage>,
    record: &SignedDocument,
    envelope: String,
) -> Result<(), StoreError> {
    let key = document_key(record.kind, &record.subject);
    batch.put(SIGNED_DOCUMENTS, &key, record)?;
    batch.put(SIGNED_ENVELOPES, &key, &envelope)?;
    if let Some(topic) = record.topic() {
        messages.push(RetainedMessage {
            topic,
            payload: envelope.into_bytes(),
        });
    }
    Ok(())
}

fn unchanged(previous: &SignedDocument) -> PublishedDocument {
    PublishedDocument {
        signed: false,
        ..signed_view(previous)
    }
}

fn signed_view(record: &SignedDocument) -> PublishedDocument {
    PublishedDocument {
        kind: record.kind,
        subject: record.subject.clone(),
        version: record.version,
        sha256: record.sha256,
        signed: true,
    }
}

/// Signs `document` with the hub's signing key and checks the size bound.
fn sign<D>(document: &D, state: &Hub, subject: &str) -> Result<String, PublishError>
where
    D: signet_common::envelope::Document + Serialize,
{
    let bytes = sign_document(document, &state.keys.signing)
        .map_err(|e| PublishError::Sign(e.to_string()))?;
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(PublishError::TooLarge {
            kind: D::KIND,
            subject: subject.to_owned(),
            size: bytes.len(),
        });
    }
    String::from_utf8(bytes).map_err(|e| PublishError::Sign(e.to_string()))
}

/// The audit record of a run.
fn audit_of(run: &PublicationRun) -> AuditEntry {
    let documents: Vec<serde_json::Value> = run
        .documents
        .iter()
        .filter(|d| d.signed)
        .map(|d| serde_json::json!({"kind": d.kind, "subject": d.subject, "version": d.version}))
        .collect();
    AuditEntry {
        actor: run.actor.user.clone(),
        actor_name: run.actor.name.clone(),
        scope: Some(run.scope_node.clone()),
        from: run.actor.from.clone(),
        detail: serde_json::json!({"trigger": run.trigger, "scope": run.scope,
            "signed": documents, "error": run.error}),
        ..AuditEntry::new(run.at, "publish.run", &run.id)
    }
}

/// A finished run: its record and the documents the publisher refused.
#[derive(Debug)]
pub struct Published {
    /// The stored record.
    pub run: PublicationRun,
    /// Signed and stored, but not handed to the transport; they go out with
    /// the next publish of their subject or [`republish_all`].
    pub undelivered: Vec<PublishFailed>,
    /// Devices whose broker access could not follow their new assignment
    /// (`device: reason`); their signed documents are stored and sent all
    /// the same.
    pub broker_refused: Vec<String>,
}

/// Hands `messages` to `publisher`, in order; returns the failures.
pub async fn deliver(
    publisher: &dyn Publisher,
    messages: Vec<RetainedMessage>,
) -> Vec<PublishFailed> {
    let mut failed = Vec::new();
    for message in messages {
        if let Err(e) = publisher.publish(message).await {
            tracing::warn!(error = %e, "retained message not delivered; it stays stored");
            failed.push(e);
        }
    }
    failed
}

/// Makes the broker's ACLs follow newly signed assignments (S7): each
/// device may read the manifests of exactly the groups its assignment
/// lists (the same rule as [`crate::devices::broker_groups`]). Writes one
/// broker-outbox entry per device ([`crate::devices::outbox`]) and applies
/// them, waiting at most [`crate::devices::outbox::PUBLISH_WAIT`]. Runs
/// after the documents are durable and before they are delivered, so a
/// device never sees an assignment naming a group it may not yet read.
/// Never fails the run: a refusal is logged and returned as
/// `device: reason`; after the first one the rest are left to the outbox
/// worker (an unreachable broker would otherwise cost one timeout per
/// device) and reported as skipped.
async fn follow_assignments(state: &Hub, assigned: Vec<(DeviceId, Vec<String>)>) -> Vec<String> {
    use crate::devices::outbox;
    if assigned.is_empty() {
        return Vec::new();
    }
    let now = state.now();
    let queued = state
        .store
        .transact(|tx| {
            assigned.iter().try_for_each(|(device, groups)| {
                outbox::enqueue_assignment_in(tx, device, groups, now)
            })
        })
        .await;
    let devices: Vec<DeviceId> = assigned.into_iter().map(|(device, _)| device).collect();
    if let Err(e) = queued {
        tracing::warn!(error = %e, "broker access changes not queued");
        return devices.iter().map(|d| format!("{d}: {e}")).collect();
    }
    outbox::settle(state, &devices, outbox::PUBLISH_WAIT).await
}

/// Sends what a run signed, once it is durable: broker access follows the
/// new assignments ([`follow_assignments`]), then the documents are
/// delivered; when the run signed anything, the time since `started` is the
/// publish latency `/metrics` shows. Returns the broker refusals and the
/// undelivered documents.
async fn send_run(
    state: &Hub,
    started: std::time::Instant,
    assigned: Vec<(DeviceId, Vec<String>)>,
    signed: Vec<RetainedMessage>,
) -> (Vec<String>, Vec<PublishFailed>) {
    let any = !signed.is_empty();
    let broker_refused = follow_assignments(state, assigned).await;
    let undelivered = deliver(state.publisher.as_ref(), signed).await;
    if any {
        state.metrics.observe_publish(started.elapsed());
    }
    (broker_refused, undelivered)
}

/// Publishes what `targets` picks from the store now: builds and signs what
/// changed, stores it with the run's record and its audit record in one
/// batch, then delivers the new documents. Takes the write lock.
async fn run_targets(
    state: &Hub,
    targets: impl FnOnce(&Store) -> Result<Targets, PublishError>,
    scope: Option<GroupRef>,
    actor: Actor,
    trigger: Trigger,
    resend_unchanged: bool,
) -> Result<Published, PublishError> {
    let started = std::time::Instant::now();
    let signed;
    let run;
    let assigned;
    let resent;
    {
        let _write = state.store.write_lock().await;
        let now = state.clock.now();
        let targets = targets(&state.store)?;
        let prepared = prepare(state, &targets, scope, actor, trigger, now)?;
        let mut batch = prepared.batch;
        audit_of(&prepared.run).record(&mut batch)?;
        state.store.apply(batch).await?;
        signed = prepared.signed;
        assigned = prepared.assigned;
        run = prepared.run;
        resent = if resend_unchanged {
            stored_messages(&state.store, run.documents.iter().filter(|d| !d.signed))?
        } else {
            Vec::new()
        };
    }
    let (broker_refused, mut undelivered) = send_run(state, started, assigned, signed).await;
    undelivered.extend(deliver(state.publisher.as_ref(), resent).await);
    Ok(Published {
        run,
        undelivered,
        broker_refused,
    })
}

/// The stored envelopes of `documents` as retained messages, byte for byte
/// as they were signed.
fn stored_messages<'a>(
    store: &Store,
    documents: impl Iterator<Item = &'a PublishedDocument>,
) -> Result<Vec<RetainedMessage>, StoreError> {
    let mut messages = Vec::new();
    for document in documents {
        if let (Some(topic), Some(envelope)) = (
            topic_of(document.kind, &document.subject),
            envelope_of(store, document.kind, &document.subject)?,
        ) {
            messages.push(RetainedMessage {
                topic,
                payload: envelope.into_bytes(),
            });
        }
    }
    Ok(messages)
}

/// Publishes `scope` now on behalf of `actor` (U5 immediate): every
/// affected manifest and assignment is built, the changed ones signed with
/// the next version, stored with the run's record and audit entry, and
/// then published; unchanged ones are not sent again (a change made by the
/// hub itself, e.g. a device's variables, reaches only what it changed).
/// The caller checks authorization ([`authorize`]).
///
/// # Errors
/// [`PublishError`]; then nothing was stored or published.
pub async fn publish(
    state: &Hub,
    scope: &GroupRef,
    actor: Actor,
) -> Result<Published, PublishError> {
    run_targets(
        state,
        |store| targets_of(store, scope),
        Some(scope.clone()),
        actor,
        Trigger::Immediate,
        false,
    )
    .await
}

/// An operator's `POST /api/v1/publish` with `when: immediate`: as
/// [`publish`], and the unchanged documents are sent again as stored, so
/// an operator's publish always leaves the broker holding the hub's
/// documents (S4: a retained message someone else replaced or cleared is
/// restored).
///
/// # Errors
/// [`PublishError`]; then nothing was stored or published.
pub async fn publish_requested(
    state: &Hub,
    scope: &GroupRef,
    actor: Actor,
) -> Result<Published, PublishError> {
    run_targets(
        state,
        |store| targets_of(store, scope),
        Some(scope.clone()),
        actor,
        Trigger::Immediate,
        true,
    )
    .await
}

/// Publishes an access group after its item list changed (L3: content
/// added to a group appears on every member device at its next sync,
/// content removed stops being playable): the group's manifest and its
/// member devices' assignments, as `actor`, recorded with the
/// [`Trigger::GroupItems`] trigger. The caller has authorized the change;
/// this does not check `publish`.
///
/// # Errors
/// [`PublishError`]; then nothing was stored or published.
pub async fn publish_group_items(
    state: &Hub,
    group: &AccessGroupId,
    actor: Actor,
) -> Result<Published, PublishError> {
    let scope = GroupRef::AccessGroup(group.clone());
    run_targets(
        state,
        |store| targets_of(store, &scope),
        Some(scope.clone()),
        actor,
        Trigger::GroupItems,
        false,
    )
    .await
}

/// What one [`run_due`] pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DueReport {
    /// Job runs, successful or failed.
    pub jobs_run: usize,
    /// Of those, how many failed (their run records say why).
    pub jobs_failed: usize,
    /// Manifests re-signed because they neared expiry (S3).
    pub resigned: usize,
    /// Run records pruned.
    pub pruned: usize,
}

/// Runs every job due at `now` once, re-signs every manifest within the
/// re-sign window of its expiry (S3) and prunes old run records. The loop
/// calls it; tests call it with a manual clock. A job publishes as the user
/// who scheduled it, if that user still holds `publish` and the scope is
/// still inside their domain; otherwise its run fails and says why. A
/// deferred job runs once; a daily job then waits for its next local time
/// (days missed while the hub was down are not caught up).
///
/// # Errors
/// When the store fails (a job's own failure is recorded, not returned).
pub async fn run_due(state: &Hub, now: DateTime<Utc>) -> Result<DueReport, PublishError> {
    let mut report = DueReport::default();
    let jobs: Vec<PublicationJob> = state.store.scan(PUBLICATION_JOBS, "")?;
    for job in jobs {
        if is_due(&job, now) {
            report.jobs_run += 1;
            if !run_job(state, &job.id, now).await? {
                report.jobs_failed += 1;
            }
        }
    }
    report.resigned = resign_expiring(state, now).await?;
    report.pruned = prune_runs(state, now).await?;
    Ok(report)
}

fn is_due(job: &PublicationJob, now: DateTime<Utc>) -> bool {
    job.state == JobState::Pending && job.next_run.is_some_and(|t| t <= now)
}

/// Runs one due job; `Ok(false)` when its run failed (recorded).
async fn run_job(state: &Hub, id: &str, now: DateTime<Utc>) -> Result<bool, PublishError> {
    let started = std::time::Instant::now();
    let store = &state.store;
    let write = store.write_lock().await;
    // Re-read under the lock: another pass or a cancel may have got here first.
    let Some(mut job) = store.get::<PublicationJob>(PUBLICATION_JOBS, id)? else {
        return Ok(true);
    };
    if !is_due(&job, now) {
        return Ok(true);
    }
    let trigger = match job.schedule {
        JobSchedule::At { .. } => Trigger::Deferred {
            job: job.id.clone(),
        },
        JobSchedule::Daily { .. } => Trigger::Daily {
            job: job.id.clone(),
        },
    };
    let actor = Actor {
        user: Some(job.created_by.clone()),
        name: Some(job.created_by_name.clone()),
        from: "scheduler".to_owned(),
    };
    let outcome = job_targets(store, &job).and_then(|targets| {
        prepare(
            state,
            &targets,
            Some(job.scope.clone()),
            actor.clone(),
            trigger.clone(),
            now,
        )
    });
    job.runs = job.runs.saturating_add(1);
    job.next_run = job.schedule.next_after(now);
    let (mut batch, run, signed, assigned) = match outcome {
        Ok(prepared) => {
            job.last_error = None;
            if matches!(job.schedule, JobSchedule::At { .. }) {
                job.state = JobState::Done;
            }
            (
                prepared.batch,
                prepared.run,
                prepared.signed,
                prepared.assigned,
            )
        }
        Err(PublishError::Store(e)) => return Err(PublishError::Store(e)),
        Err(e) => {
            let reason = e.to_string();
            tracing::warn!(job = %job.id, %reason, "publication job failed");
            job.last_error = Some(reason.clone());
            if matches!(job.schedule, JobSchedule::At { .. }) {
                job.state = JobState::Failed;
            }
            let run = PublicationRun {
                id: audit_id(now),
                at: now,
                actor,
                trigger,
                scope: Some(job.scope.clone()),
                scope_node: job.scope_node.clone(),
                documents: Vec::new(),
                dropped_items: Vec::new(),
                error: Some(reason),
            };
            let mut batch = WriteBatch::new();
            batch.put(PUBLICATION_RUNS, &run.id, &run)?;
            (batch, run, Vec::new(), Vec::new())
        }
    };
    if job.state == JobState::Pending && job.next_run.is_none() {
        job.state = JobState::Failed;
        job.last_error = Some("no next run time within the calendar".to_owned());
    }
    job.last_run = Some(run.id.clone());
    batch.put(PUBLICATION_JOBS, &job.id, &job)?;
    audit_of(&run).record(&mut batch)?;
    store.apply(batch).await?;
    drop(write);
    // Broker ACLs follow the new assignments (S7); failures are logged.
    send_run(state, started, assigned, signed).await;
    Ok(run.error.is_none())
}

/// A job's targets, if its creator may still publish its scope.
fn job_targets(store: &Store, job: &PublicationJob) -> Result<Targets, PublishError> {
    let targets = targets_of(store, &job.scope)?;
    let refused = |why: &str| PublishError::NotAuthorized(why.to_owned());
    let Some(user) = store.get::<User>(USERS, job.created_by.as_str())? else {
        return Err(refused("the user who scheduled it no longer exists"));
    };
    let (tree, _) = load_tree(store)?;
    match authorize(store, &user, &tree, &targets.scope_node)? {
        Ok(()) => Ok(targets),
        Err(Refused::NoPermission) => Err(refused(
            "the user who scheduled it no longer holds the publish permission",
        )),
        Err(Refused::OutsideDomain) => Err(refused(
            "the scope is no longer inside the domain of the user who scheduled it",
        )),
    }
}

/// Re-signs every stored manifest within the re-sign window of its expiry
/// whose group still exists; returns how many.
async fn resign_expiring(state: &Hub, now: DateTime<Utc>) -> Result<usize, PublishError> {
    let window = state.config.manifest_resign_before();
    let due: Vec<SignedDocument> = state
        .store
        .scan::<SignedDocument>(
            SIGNED_DOCUMENTS,
            &format!("{}/", DocumentKind::GroupManifest.as_str()),
        )?
        .into_iter()
        .filter(|d| d.expires_at.is_some_and(|e| e - window <= now))
        .collect();
    let mut resigned = 0;
    for document in due {
        let Some(group) = document.group else {
            continue;
        };
        let Some(scope_node) = build::node_of_group(&state.store, &group)? else {
            continue;
        };
        let targets = Targets {
            scope_node,
            groups: vec![group.clone()],
            devices: Vec::new(),
        };
        match run_targets(
            state,
            |_| Ok(targets),
            None,
            Actor::hub(),
            Trigger::Resign,
            false,
        )
        .await
        {
            Ok(_) => resigned += 1,
            Err(PublishError::Store(e)) => return Err(PublishError::Store(e)),
            Err(e) => tracing::error!(group = %group, error = %e, "re-signing a manifest failed"),
        }
    }
    Ok(resigned)
}

/// Deletes run records older than [`RUN_RETENTION`], at most
/// [`PRUNE_BATCH`] per pass.
async fn prune_runs(state: &Hub, now: DateTime<Utc>) -> Result<usize, StoreError> {
    let cutoff = audit_id(now - RUN_RETENTION);
    // Keys are time-ordered: the oldest come first.
    let old: Vec<String> = state
        .store
        .scan_keys(PUBLICATION_RUNS, "")?
        .into_iter()
        .take_while(|key| key.as_str() < cutoff.as_str())
        .take(PRUNE_BATCH)
        .collect();
    if old.is_empty() {
        return Ok(0);
    }
    let _write = state.store.write_lock().await;
    let mut batch = WriteBatch::new();
    for key in &old {
        batch.delete(PUBLICATION_RUNS, key);
    }
    state.store.apply(batch).await?;
    Ok(old.len())
}

/// What [`republish_all`] sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepublishReport {
    /// Messages handed to the publisher.
    pub sent: usize,
    /// Messages it refused.
    pub failed: usize,
}

/// Sends the trust document and every stored latest signed document again
/// (S4: the MQTT link calls it on every connect, so a broker that lost its
/// store converges). `trust` is `keys/signing.trust`.
///
/// # Errors
/// When the store fails.
pub async fn republish_all(
    store: &Store,
    trust: &[u8],
    publisher: &dyn Publisher,
) -> Result<RepublishReport, StoreError> {
    let mut report = RepublishReport::default();
    let trust = RetainedMessage {
        topic: TRUST_TOPIC.to_owned(),
        payload: trust.to_vec(),
    };
    match publisher.publish(trust).await {
        Ok(()) => report.sent += 1,
        Err(e) => {
            tracing::warn!(error = %e, "trust document not republished");
            report.failed += 1;
        }
    }
    let documents: Vec<SignedDocument> = store.scan(SIGNED_DOCUMENTS, "")?;
    let mut messages = Vec::with_capacity(documents.len());
    for document in &documents {
        let (Some(topic), Some(envelope)) = (
            document.topic(),
            envelope_of(store, document.kind, &document.subject)?,
        ) else {
            continue;
        };
        messages.push(RetainedMessage {
            topic,
            payload: envelope.into_bytes(),
        });
    }
    let count = messages.len();
    let failed = deliver(publisher, messages).await.len();
    report.sent += count.saturating_sub(failed);
    report.failed += failed;
    Ok(report)
}
