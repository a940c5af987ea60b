//! Versioning and signing a run's documents (U5, S1, S3): what
//! [`super::build`] made becomes a new signed version only when its content
//! changed or a manifest nears expiry, inside the run's transaction.
//! A group's new manifest is one document whatever the number of its
//! devices (DESIGN §4: an assignment's floors are not its content); the
//! assignments a run does re-issue are signed over the cores.
//!
//! Owns: the version rule (the latest record of each subject is read in
//! the transaction, so concurrent runs never sign one version twice), the
//! size bound, the records a run writes and its audit entry. Must not:
//! deliver anything (see [`super::run`]).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Serialize;
use signet_common::digest::Sha256;
use signet_common::documents::DeviceAssignment;
use signet_common::envelope::{
    DocumentKind, KeyId, MAX_DOCUMENT_BYTES, SigningKey, open, sign_document,
};
use signet_common::ids::DeviceId;

use super::targets::Targets;
use super::{
    Actor, DroppedItem, PUBLICATION_RUNS, PublicationRun, PublishError, PublishedDocument,
    RetainedMessage, SIGNED_DOCUMENTS, SIGNED_ENVELOPES, SignedDocument, Trigger, build,
    document_key,
};
use crate::app::Hub;
use crate::audit::{AuditEntry, audit_id};
use crate::groups::GroupRef;
use crate::store::{StoreError, Tx, WriteBatch};
use crate::tenancy::load_tree_in;

/// A run ready to apply: its record, the new signed documents and the batch
/// that stores both.
pub(super) struct Prepared {
    /// The run's record (written by [`Prepared::write`]).
    pub(super) run: PublicationRun,
    /// The documents this run signed (already in `batch`), as messages.
    pub(super) signed: Vec<RetainedMessage>,
    /// Each device whose assignment this run signed with other groups than
    /// its previous version, with the groups it now follows: the broker's
    /// ACLs follow (`super::run::follow_assignments`). An assignment
    /// re-issued with the same groups needs no broker change.
    pub(super) assigned: Vec<(DeviceId, Vec<String>)>,
    /// Every target device, with the groups its assignment follows: the
    /// run's progress records ([`super::publications`]).
    pub(super) reach: Vec<(DeviceId, Vec<String>)>,
    /// Everything to write.
    pub(super) batch: WriteBatch,
}

impl Prepared {
    /// A run that signed nothing, e.g. a job's failed run.
    pub(super) fn nothing_signed(run: PublicationRun) -> Self {
        Self {
            run,
            signed: Vec::new(),
            assigned: Vec::new(),
            reach: Vec::new(),
            batch: WriteBatch::new(),
        }
    }

    /// Adds the run's writes, its record, its targets' progress records
    /// ([`super::publications`]), its audit entry and one
    /// broker-outbox entry per device whose groups changed
    /// ([`crate::devices::outbox`]) to `tx`, so the documents and the
    /// broker access they need commit together (S7); returns what is sent
    /// once it commits.
    pub(super) fn write(self, tx: &mut Tx) -> Result<ToSend, StoreError> {
        let Self {
            run,
            signed,
            assigned,
            reach,
            mut batch,
        } = self;
        batch.put(PUBLICATION_RUNS, &run.id, &run)?;
        audit_of(&run).record(&mut batch)?;
        tx.include(batch);
        for (device, groups) in &assigned {
            crate::devices::outbox::enqueue_assignment_in(tx, device, groups, run.at)?;
        }
        super::publications::record_in(tx, &run, &reach)?;
        Ok(ToSend {
            run,
            signed,
            assigned,
        })
    }
}

/// What a committed run sends: its record, the signed documents and the
/// assignments broker access follows.
pub(super) struct ToSend {
    /// The run's record.
    pub(super) run: PublicationRun,
    /// The documents it signed, as messages.
    pub(super) signed: Vec<RetainedMessage>,
    /// Each device whose assignment it signed with other groups, with the
    /// groups it follows.
    pub(super) assigned: Vec<(DeviceId, Vec<String>)>,
}

/// Builds, validates and signs every changed document of `targets`. The
/// latest version of each document is read through `tx` (the decision to
/// sign version + 1 rests on it); the payloads are built from the store as
/// it is (a change committed meanwhile publishes again). Nothing is
/// written; the caller adds its own records to the batch and includes it
/// in `tx`.
pub(super) fn prepare(
    state: &Hub,
    tx: &mut Tx,
    targets: &Targets,
    scope: Option<GroupRef>,
    actor: Actor,
    trigger: Trigger,
    now: DateTime<Utc>,
) -> Result<Prepared, PublishError> {
    let store = &state.store;
    let config = &state.config;
    let base_url = config.public_base_url();
    // One snapshot of the keys for the whole run (a rotation may swap them).
    let keys = state.keys.current();
    let signer = keys.signing.key_id();
    // Floors are lower bounds: the versions committed now serve, unchecked.
    let mut floors: BTreeMap<String, u64> = if targets.devices.is_empty() {
        BTreeMap::new()
    } else {
        store
            .scan::<SignedDocument>(
                SIGNED_DOCUMENTS,
                &format!("{}/", DocumentKind::GroupManifest.as_str()),
            )?
            .into_iter()
            .map(|d| (d.subject, d.version))
            .collect()
    };
    let mut batch = WriteBatch::new();
    let mut documents = Vec::new();
    let mut signed = Vec::new();
    let mut assigned = Vec::new();
    let mut reach = Vec::new();
    let mut dropped_items = Vec::new();
    for group in &targets.groups {
        let built = build::manifest(store, &base_url, group)?;
        dropped_items.extend(built.dropped.iter().map(|item| DroppedItem {
            group: group.id().to_owned(),
            item: item.clone(),
        }));
        let previous = latest_in(tx, DocumentKind::GroupManifest, group.id())?;
        if let Some(previous) = previous.as_ref().filter(|p| {
            p.content_hash == built.content_hash
                && p.key_id == Some(signer)
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
        let envelope = sign(&manifest, &keys.signing, group.id())?;
        let record = SignedDocument {
            kind: DocumentKind::GroupManifest,
            subject: group.id().to_owned(),
            version: manifest.version,
            issued_at: now,
            expires_at: Some(manifest.expires_at),
            sha256: Sha256::of(envelope.as_bytes()),
            content_hash: built.content_hash,
            group: Some(group.clone()),
            key_id: Some(signer),
        };
        floors.insert(record.subject.clone(), record.version);
        documents.push(signed_view(&record));
        stage(&mut batch, &mut signed, &record, envelope)?;
    }
    // Followers receive the run's manifests; their assignments stand.
    let manifests: Vec<String> = targets.groups.iter().map(|g| g.id().to_owned()).collect();
    reach.extend((targets.followers.iter()).map(|device| (device.clone(), manifests.clone())));
    if !targets.devices.is_empty() {
        let (tree, nodes) = load_tree_in(tx)?;
        let inputs = build::AssignmentInputs {
            tree: &tree,
            nodes: &nodes,
            floors: &floors,
            offline_grace_secs: config.device_offline_grace_secs,
        };
        let mut decided = Vec::with_capacity(targets.devices.len());
        for (device, node) in &targets.devices {
            let built = build::assignment(store, &inputs, device, node)?;
            let follows: Vec<String> = built.document.group_ids().map(str::to_owned).collect();
            reach.push((device.clone(), follows.clone()));
            decided.push(decide_assignment(tx, device, built, follows, signer, now)?);
        }
        let mut envelopes = sign_all(&keys.signing, &decided)?.into_iter();
        for decision in decided {
            let Decision::Sign(new) = decision else {
                if let Decision::Unchanged(previous) = decision {
                    documents.push(previous);
                }
                continue;
            };
            let envelope = envelopes
                .next()
                .ok_or_else(|| PublishError::Sign("an assignment was left unsigned".to_owned()))?;
            let record = SignedDocument {
                kind: DocumentKind::DeviceAssignment,
                subject: new.device.to_string(),
                version: new.assignment.version,
                issued_at: now,
                expires_at: None,
                sha256: Sha256::of(envelope.as_bytes()),
                content_hash: new.content_hash,
                group: None,
                key_id: Some(signer),
            };
            documents.push(signed_view(&record));
            stage(&mut batch, &mut signed, &record, envelope)?;
            if new.regrant {
                assigned.push((new.device, new.follows));
            }
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
    Ok(Prepared {
        run,
        signed,
        assigned,
        reach,
        batch,
    })
}

/// What a run does with one device's assignment.
enum Decision {
    /// Its content is what the latest version says: that version stands.
    Unchanged(PublishedDocument),
    /// A new version to sign.
    Sign(Box<NewAssignment>),
}

/// An assignment to sign, with what follows from it.
struct NewAssignment {
    /// The device.
    device: DeviceId,
    /// The payload, versioned and dated.
    assignment: DeviceAssignment,
    /// Its content hash (without the floors).
    content_hash: Sha256,
    /// The groups it follows.
    follows: Vec<String>,
    /// Whether those differ from the groups of its latest version, so the
    /// broker's access must follow before it is sent (S7); the same groups
    /// need no broker change.
    regrant: bool,
}

/// Whether `device`'s freshly built assignment needs a new version, as the
/// latest version `tx` reads says; a new one is versioned, dated and
/// validated.
fn decide_assignment(
    tx: &mut Tx,
    device: &DeviceId,
    built: build::Built<DeviceAssignment>,
    follows: Vec<String>,
    signer: KeyId,
    now: DateTime<Utc>,
) -> Result<Decision, PublishError> {
    let previous = latest_in(tx, DocumentKind::DeviceAssignment, device.as_str())?;
    if let Some(previous) = previous
        .as_ref()
        .filter(|p| p.content_hash == built.content_hash && p.key_id == Some(signer))
    {
        return Ok(Decision::Unchanged(unchanged(previous)));
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
    let regrant = match previous {
        None => true,
        Some(_) => previous_groups(tx, device)?
            .is_none_or(|held| held != follows.iter().cloned().collect::<BTreeSet<_>>()),
    };
    Ok(Decision::Sign(Box::new(NewAssignment {
        device: device.clone(),
        assignment,
        content_hash: built.content_hash,
        follows,
        regrant,
    })))
}

/// The groups `device`'s latest signed assignment follows, from its stored
/// envelope; `None` when there is none or it does not read.
fn previous_groups(tx: &mut Tx, device: &DeviceId) -> Result<Option<BTreeSet<String>>, StoreError> {
    let key = document_key(DocumentKind::DeviceAssignment, device.as_str());
    let Some(envelope) = tx.get::<String>(SIGNED_ENVELOPES, &key)? else {
        return Ok(None);
    };
    let Ok(opened) = open(envelope.as_bytes()) else {
        return Ok(None);
    };
    Ok(serde_json::from_slice::<DeviceAssignment>(opened.payload())
        .ok()
        .map(|held| held.group_ids().map(str::to_owned).collect()))
}

/// The fewest assignments worth spreading over the cores.
const PARALLEL_FROM: usize = 64;

/// Signs the assignments `decided` holds to sign, in order: over the cores
/// (one scoped thread per core, each a contiguous share) when there are at
/// least [`PARALLEL_FROM`], else here.
fn sign_all(key: &SigningKey, decided: &[Decision]) -> Result<Vec<String>, PublishError> {
    let pending: Vec<&NewAssignment> = decided
        .iter()
        .filter_map(|d| match d {
            Decision::Sign(new) => Some(new.as_ref()),
            Decision::Unchanged(_) => None,
        })
        .collect();
    let sign_one = |new: &&NewAssignment| sign(&new.assignment, key, new.device.as_str());
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    if pending.len() < PARALLEL_FROM || cores < 2 {
        return pending.iter().map(sign_one).collect();
    }
    let share = pending.len().div_ceil(cores);
    std::thread::scope(|scope| {
        let workers: Vec<_> = pending
            .chunks(share)
            .map(|chunk| scope.spawn(move || chunk.iter().map(sign_one).collect::<Vec<_>>()))
            .collect();
        let mut envelopes = Vec::with_capacity(pending.len());
        for worker in workers {
            let signed = worker
                .join()
                .map_err(|_| PublishError::Sign("a signing thread failed".to_owned()))?;
            for envelope in signed {
                envelopes.push(envelope?);
            }
        }
        Ok(envelopes)
    })
}

/// Adds a newly signed document and its envelope to `batch`, and its
/// retained message to `messages`.
pub(super) fn stage(
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
fn sign<D>(document: &D, key: &SigningKey, subject: &str) -> Result<String, PublishError>
where
    D: signet_common::envelope::Document + Serialize,
{
    let bytes = sign_document(document, key).map_err(|e| PublishError::Sign(e.to_string()))?;
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
pub(super) fn audit_of(run: &PublicationRun) -> AuditEntry {
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

/// The latest signed document of (`kind`, `subject`) as `tx` reads it.
fn latest_in(
    tx: &mut Tx,
    kind: DocumentKind,
    subject: &str,
) -> Result<Option<SignedDocument>, StoreError> {
    tx.get(SIGNED_DOCUMENTS, &document_key(kind, subject))
}
