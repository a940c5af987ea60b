//! A publication run (U5, L3, S3, S4, S7): one transaction builds, signs
//! and stores what changed with the run's record and audit entry; after
//! the commit broker access follows the new assignments and the documents
//! are delivered. No transaction is open while anything is sent.
//!
//! Owns: [`publish`] (every run but a job's goes through [`run_targets`]),
//! delivery ([`deliver`], [`send_run`], [`follow_assignments`]) and
//! republishing ([`republish_all`]). Must not: decide versions (see
//! [`super::sign`]) or which groups and devices a scope touches (see
//! [`super::targets`]).

use signet_common::ids::{AccessGroupId, DeviceId, NodeId};
use signet_common::permissions::Domain;

use super::sign::{ToSend, prepare};
use super::targets::{Targets, targets_of};
use super::{
    Actor, PublicationRun, PublishError, PublishFailed, PublishedDocument, Publisher,
    RetainedMessage, SIGNED_DOCUMENTS, SignedDocument, TRUST_TOPIC, Trigger, envelope_of, topic_of,
};
use crate::app::Hub;
use crate::groups::GroupRef;
use crate::store::{Store, StoreError, Tx};
use crate::tenancy::load_tree_in;

/// How a run is asked for: who publishes, what started it, whether the
/// documents that did not change are sent again, and the domain the scope
/// must lie in. An [`Actor`] alone is an immediate run that sends only
/// what it signed, for callers that authorized the change themselves.
#[derive(Debug, Clone)]
pub struct Publishing {
    /// Who publishes.
    pub actor: Actor,
    /// What started the run.
    pub trigger: Trigger,
    /// Send the unchanged documents again as stored, so the broker holds
    /// the hub's documents afterwards (S4: a retained message someone else
    /// replaced or cleared is restored). An operator's publish does.
    pub resend_unchanged: bool,
    /// When set, the scope's node must lie inside it (T4), checked in the
    /// run's transaction; else the scope is [`PublishError::UnknownGroup`].
    pub within: Option<Domain>,
}

impl From<Actor> for Publishing {
    fn from(actor: Actor) -> Self {
        Self {
            actor,
            trigger: Trigger::Immediate,
            resend_unchanged: false,
            within: None,
        }
    }
}

/// Publishes `scope` now (U5 immediate; L3 for [`Trigger::GroupItems`]):
/// every affected manifest and assignment is built, the changed ones
/// signed with the next version, stored with the run's record and audit
/// entry in one transaction, and then published; unchanged ones are sent
/// again only when [`Publishing::resend_unchanged`] says so (a change made
/// by the hub itself, e.g. a device's variables, reaches only what it
/// changed). Authorization is the caller's, but for
/// [`Publishing::within`].
///
/// # Errors
/// [`PublishError`]; then nothing was stored or published.
pub async fn publish(
    state: &Hub,
    scope: &GroupRef,
    by: impl Into<Publishing>,
) -> Result<Published, PublishError> {
    let by = by.into();
    let within = by.within.clone();
    run_targets(
        state,
        |tx| {
            let (tree, nodes) = load_tree_in(tx)?;
            let targets = targets_of(tx, &tree, &nodes, scope)?;
            match &within {
                Some(domain) if !domain.contains(&tree, &targets.scope_node) => {
                    Err(PublishError::UnknownGroup(scope.clone()))
                }
                _ => Ok(targets),
            }
        },
        Some(scope.clone()),
        by,
    )
    .await
}

/// Publishes what a newly paired `device` at `node` needs (S7): the
/// documents of `node` as [`publish`] of the node signs them, and the
/// device's own assignment — not the assignment of every device attached
/// there ([`super::targets::devices_targets`]), so an approval costs the same
/// whatever the number of screens already paired at the node. The run's
/// scope is the node; its record lists the one assignment it considered.
///
/// # Errors
/// [`PublishError`]; then nothing was stored or published.
pub async fn publish_new_device(
    state: &Hub,
    node: &NodeId,
    device: &DeviceId,
    by: impl Into<Publishing>,
) -> Result<Published, PublishError> {
    publish_devices(state, node, std::slice::from_ref(device), by).await
}

/// Publishes the assignments of `devices` attached at `node` (and the
/// documents of `node`, re-signed only if they changed): what a device
/// needs when its groups changed with no group left to publish — a
/// deleted access group (L4). Devices no longer attached there are
/// skipped. The run's scope is the node.
///
/// # Errors
/// [`PublishError`]; then nothing was stored or published.
pub async fn publish_devices(
    state: &Hub,
    node: &NodeId,
    devices: &[DeviceId],
    by: impl Into<Publishing>,
) -> Result<Published, PublishError> {
    run_targets(
        state,
        |tx| {
            let (tree, nodes) = load_tree_in(tx)?;
            super::targets::devices_targets(tx, &tree, &nodes, node, devices)
        },
        Some(GroupRef::Node(node.clone())),
        by.into(),
    )
    .await
}

/// Publishes an access group after its item list changed (L3: content
/// added to a group appears on every member device at its next sync,
/// content removed stops being playable) as `actor` with the
/// [`Trigger::GroupItems`] trigger: the group's one manifest, signed and
/// sent once whatever the number of members (DESIGN §4,
/// [`super::targets::manifest_targets`]); no member's assignment is read or
/// re-signed, since the items are not part of any. The run's progress
/// records name the member devices that receive the manifest. The caller
/// has authorized the change; this does not check `publish`.
///
/// # Errors
/// [`PublishError`]; then nothing was stored or published.
pub async fn publish_group_items(
    state: &Hub,
    group: &AccessGroupId,
    actor: Actor,
) -> Result<Published, PublishError> {
    let by = Publishing {
        trigger: Trigger::GroupItems,
        ..Publishing::from(actor)
    };
    run_targets(
        state,
        |tx| {
            let (tree, _) = load_tree_in(tx)?;
            super::targets::manifest_targets(tx, &tree, group)
        },
        Some(GroupRef::AccessGroup(group.clone())),
        by,
    )
    .await
}

/// Publishes what `targets` picks inside the run's transaction: builds and
/// signs what changed and stores it with the run's record and its audit
/// record in that transaction; after the commit delivers the new documents
/// (and the unchanged ones, when asked to).
pub(super) async fn run_targets(
    state: &Hub,
    mut targets: impl FnMut(&mut Tx) -> Result<Targets, PublishError>,
    scope: Option<GroupRef>,
    by: Publishing,
) -> Result<Published, PublishError> {
    let started = std::time::Instant::now();
    let now = state.clock.now();
    let ToSend {
        run,
        signed,
        assigned,
    } = state
        .store
        .transact(|tx| {
            let targets = targets(tx)?;
            let trigger = by.trigger.clone();
            let prepared = off_the_runtime(|| {
                prepare(
                    state,
                    tx,
                    &targets,
                    scope.clone(),
                    by.actor.clone(),
                    trigger,
                    now,
                )
            })?;
            Ok::<_, PublishError>(prepared.write(tx)?)
        })
        .await?;
    let resent = if by.resend_unchanged {
        stored_messages(&state.store, run.documents.iter().filter(|d| !d.signed))?
    } else {
        Vec::new()
    };
    let (broker_refused, mut undelivered) = send_run(state, started, assigned, signed).await;
    undelivered.extend(deliver(state.publisher.as_ref(), resent).await);
    Ok(Published {
        run,
        undelivered,
        broker_refused,
    })
}

/// Runs `work` — a run's builds and signatures, CPU-bound for up to a
/// second with thousands of devices — without holding up the tasks of
/// the runtime worker it is called on (the MQTT link, the API): on a
/// multi-threaded runtime they move to another worker meanwhile
/// (`block_in_place`); elsewhere it simply runs.
fn off_the_runtime<R>(work: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
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

/// How long [`deliver`] keeps offering a message the transport refuses
/// (its queue is full while the broker takes the ones before) before it
/// reports it, and every later one it refuses, undelivered.
pub const DELIVERY_STALL: std::time::Duration = std::time::Duration::from_secs(1);

/// Hands `messages` to `publisher`, in order, without waiting for the
/// broker (the MQTT publisher queues each at once): a run of 10,000
/// assignments is pipelined through the client's queue. A refused message
/// is offered again with a short back-off while the queue drains; once
/// nothing was taken for [`DELIVERY_STALL`], the refused ones are
/// reported. Returns the failures.
pub async fn deliver(
    publisher: &dyn Publisher,
    messages: Vec<RetainedMessage>,
) -> Vec<PublishFailed> {
    let mut failed = Vec::new();
    let mut stalled_since: Option<std::time::Instant> = None;
    for message in messages {
        let mut pause = std::time::Duration::from_millis(1);
        loop {
            let refused = match publisher.publish(message.clone()).await {
                Ok(()) => {
                    stalled_since = None;
                    break;
                }
                Err(e) => e,
            };
            let since = *stalled_since.get_or_insert_with(std::time::Instant::now);
            if since.elapsed() >= DELIVERY_STALL {
                tracing::warn!(error = %refused, "retained message not delivered; it stays stored");
                failed.push(refused);
                break;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(std::time::Duration::from_millis(50));
        }
    }
    failed
}

/// Makes the broker's ACLs follow newly signed assignments whose groups
/// changed (S7): each device may read the manifests of exactly the groups
/// its assignment lists (the same rule as [`crate::devices::broker_groups`]).
/// The run's own transaction wrote one broker-outbox entry per such device
/// ([`crate::devices::outbox`], by `super::sign::Prepared::write`); this
/// applies them, waiting at most [`crate::devices::outbox::PUBLISH_WAIT`].
/// Runs after the documents are durable and before they are delivered, so
/// a device never sees an assignment naming a group it may not yet read.
/// Never fails the run: a refusal is logged and returned as
/// `device: reason`; after the first one the rest are left to the outbox
/// worker (an unreachable broker would otherwise cost one timeout per
/// device) and reported as skipped.
async fn follow_assignments(state: &Hub, assigned: Vec<(DeviceId, Vec<String>)>) -> Vec<String> {
    use crate::devices::outbox;
    if assigned.is_empty() {
        return Vec::new();
    }
    let devices: Vec<DeviceId> = assigned.into_iter().map(|(device, _)| device).collect();
    outbox::settle(state, &devices, outbox::PUBLISH_WAIT).await
}

/// Sends what a run signed, once it is durable: broker access follows the
/// new assignments ([`follow_assignments`]), then the documents are
/// delivered; when the run signed anything, the time since `started` is the
/// publish latency `/metrics` shows. Returns the broker refusals and the
/// undelivered documents.
pub(super) async fn send_run(
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
