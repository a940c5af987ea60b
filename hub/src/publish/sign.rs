//! Versioning and signing a run's documents (U5, S1, S3): what
//! [`super::build`] made becomes a new signed version only when its content
//! changed or a manifest nears expiry, inside the run's transaction.
//! A group's new manifest is one document whatever the number of its
//! devices (DESIGN §4: an assignment's floors are not its content); a run's
//! assignments are built, compared and the changed ones signed over the
//! cores (issue 20), after their latest versions are read in the
//! transaction.
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
use signet_common::ids::{DeviceId, NodeId};

use super::targets::Targets;
use super::{
    Actor, DroppedItem, PUBLICATION_RUNS, PublicationRun, PublishError, PublishedDocument,
    RetainedMessage, SIGNED_DOCUMENTS, SIGNED_ENVELOPES, SignedDocument, Trigger, build,
    document_key,
};
use crate::app::Hub;
use crate::audit::{AuditEntry, audit_id};
use crate::groups::GroupRef;
use crate::store::{Store, StoreError, Tx, WriteBatch};
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
        // The latest version of each, read through `tx`: the decision to
        // sign version + 1 rests on these reads.
        let mut jobs = Vec::with_capacity(targets.devices.len());
        for (device, node) in &targets.devices {
            let previous = latest_in(tx, DocumentKind::DeviceAssignment, device.as_str())?;
            jobs.push((device, node, previous));
        }
        let assess = |(device, node, previous): &(&DeviceId, &NodeId, Option<SignedDocument>)| {
            let built = build::assignment(store, &inputs, device, node)?;
            let signing = Signing {
                key: &keys.signing,
                signer,
                now,
            };
            decide_assignment(store, device, built, previous.as_ref(), &signing)
        };
        for (follows, decision) in over_cores(&jobs, assess)? {
            match decision {
                Decision::Unchanged(previous) => {
                    reach.push((DeviceId::new(previous.subject.as_str()), follows));
                    documents.push(previous);
                }
                Decision::Sign(new) => {
                    let NewAssignment {
                        record,
                        envelope,
                        regrant,
                    } = *new;
                    let device = DeviceId::new(record.subject.as_str());
                    documents.push(signed_view(&record));
                    stage(&mut batch, &mut signed, &record, envelope)?;
                    if regrant {
                        assigned.push((device.clone(), follows.clone()));
                    }
                    reach.push((device, follows));
                }
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
    /// A new version, signed.
    Sign(Box<NewAssignment>),
}

/// A newly signed assignment, with what follows from it.
struct NewAssignment {
    /// Its record (the device is its subject).
    record: SignedDocument,
    /// Its envelope.
    envelope: String,
    /// Whether the groups it follows differ from those of its latest
    /// version, so the broker's access must follow before it is sent (S7);
    /// the same groups need no broker change.
    regrant: bool,
}

/// The run's key and time, for [`decide_assignment`].
struct Signing<'a> {
    /// The signing key of the run's snapshot.
    key: &'a SigningKey,
    /// Its id.
    signer: KeyId,
    /// The run's time.
    now: DateTime<Utc>,
}

/// Whether `device`'s freshly built assignment needs a new version, as its
/// `previous` latest version (read through the run's transaction) says; a
/// new one is versioned, dated, validated and signed. Returns the groups
/// it follows with the decision. Runs on any thread ([`over_cores`]): it
/// reads `store`, never the transaction.
fn decide_assignment(
    store: &Store,
    device: &DeviceId,
    built: build::Built<DeviceAssignment>,
    previous: Option<&SignedDocument>,
    signing: &Signing<'_>,
) -> Result<(Vec<String>, Decision), PublishError> {
    let follows: Vec<String> = built.document.group_ids().map(str::to_owned).collect();
    if let Some(previous) = previous
        .filter(|p| p.content_hash == built.content_hash && p.key_id == Some(signing.signer))
    {
        return Ok((follows, Decision::Unchanged(unchanged(previous))));
    }
    let mut assignment = built.document;
    assignment.version = previous.map_or(1, |p| p.version + 1);
    assignment.issued_at = signing.now;
    assignment
        .validate_for(device)
        .map_err(|e| PublishError::InvalidAssignment {
            device: device.to_string(),
            reason: e.to_string(),
        })?;
    let regrant = match previous {
        None => true,
        Some(_) => previous_groups(store, device)?
            .is_none_or(|held| held != follows.iter().cloned().collect::<BTreeSet<_>>()),
    };
    let envelope = sign(&assignment, signing.key, device.as_str())?;
    let record = SignedDocument {
        kind: DocumentKind::DeviceAssignment,
        subject: device.to_string(),
        version: assignment.version,
        issued_at: signing.now,
        expires_at: None,
        sha256: Sha256::of(envelope.as_bytes()),
        content_hash: built.content_hash,
        group: None,
        key_id: Some(signing.signer),
    };
    let new = NewAssignment {
        record,
        envelope,
        regrant,
    };
    Ok((follows, Decision::Sign(Box::new(new))))
}

/// The groups `device`'s latest signed assignment follows, from its stored
/// envelope; `None` when there is none or it does not read. Read from the
/// store, not the run's transaction: the envelope is written in one batch
/// with its record, which the transaction read, so a newer envelope
/// committed meanwhile fails the run's commit and the run decides again.
fn previous_groups(
    store: &Store,
    device: &DeviceId,
) -> Result<Option<BTreeSet<String>>, StoreError> {
    let key = document_key(DocumentKind::DeviceAssignment, device.as_str());
    let Some(envelope) = store.get::<String>(SIGNED_ENVELOPES, &key)? else {
        return Ok(None);
    };
    let Ok(opened) = open(envelope.as_bytes()) else {
        return Ok(None);
    };
    Ok(serde_json::from_slice::<HeldGroups>(opened.payload())
        .ok()
        .map(|held| {
            (held.node_chain.into_iter())
                .chain(held.access_groups.into_iter().map(|m| m.group_id))
                .collect()
        }))
}

/// What [`previous_groups`] reads of a stored assignment: the ids
/// [`DeviceAssignment::group_ids`] lists (its node chain, then its access
/// groups), without decoding the rest.
#[derive(serde::Deserialize)]
struct HeldGroups {
    node_chain: Vec<String>,
    access_groups: Vec<HeldMembership>,
}

/// An access group [`HeldGroups`] lists.
#[derive(serde::Deserialize)]
struct HeldMembership {
    group_id: String,
}

/// The fewest assignments worth spreading over the cores.
const PARALLEL_FROM: usize = 64;

/// `work` applied to each of `items`, results in order: over the cores (one
/// scoped thread per core, each a contiguous share) when there are at
/// least [`PARALLEL_FROM`], else here. A run's assignments are built,
/// compared and signed this way (issue 20: each is independent of the
/// others; only their versions, read before, come from the transaction).
/// The first error in order wins.
fn over_cores<T, R, W>(items: &[T], work: W) -> Result<Vec<R>, PublishError>
where
    T: Sync,
    R: Send,
    W: Fn(&T) -> Result<R, PublishError> + Sync,
{
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    if items.len() < PARALLEL_FROM || cores < 2 {
        return items.iter().map(&work).collect();
    }
    let share = items.len().div_ceil(cores);
    let work = &work;
    std::thread::scope(|scope| {
        let workers: Vec<_> = items
            .chunks(share)
            .map(|chunk| scope.spawn(move || chunk.iter().map(work).collect::<Vec<_>>()))
            .collect();
        let mut results = Vec::with_capacity(items.len());
        for worker in workers {
            let done = worker
                .join()
                .map_err(|_| PublishError::Sign("a publishing thread failed".to_owned()))?;
            for result in done {
                results.push(result?);
            }
        }
        Ok(results)
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;
    use signet_common::documents::{AccessMembership, Location};
    use signet_common::ids::AccessGroupId;
    use signet_common::license::AccessWindow;

    /// S7: the groups read from a stored assignment without decoding all
    /// of it are the ones `DeviceAssignment::group_ids` lists, in order.
    #[test]
    fn s7_held_groups_are_the_assignments_group_ids() {
        let assignment = DeviceAssignment {
            version: 3,
            issued_at: DateTime::<Utc>::UNIX_EPOCH,
            device_id: DeviceId::new("d-1"),
            node_chain: vec![NodeId::from("root"), NodeId::from("n-1")],
            access_groups: vec![AccessMembership {
                group_id: AccessGroupId::from("ag-1"),
                window: AccessWindow {
                    starts_at: DateTime::<Utc>::UNIX_EPOCH,
                    ends_at: None,
                    ended_by: None,
                },
            }],
            min_manifest_versions: BTreeMap::from([("root".to_owned(), 2)]),
            time_zone: chrono_tz::Europe::Berlin,
            location: Location::default(),
            offline_grace_secs: 60,
            variables: BTreeMap::new(),
        };
        let bytes = serde_json::to_vec(&assignment).unwrap();
        let held: HeldGroups = serde_json::from_slice(&bytes).unwrap();
        let read: Vec<String> = (held.node_chain.into_iter())
            .chain(held.access_groups.into_iter().map(|m| m.group_id))
            .collect();
        let listed: Vec<&str> = assignment.group_ids().collect();
        assert_eq!(read, listed);
    }
}
