//! After a key rotation (S2): the key watch and the re-sign pass.
//!
//! `signet-hub keys rotate-signing` and `keys rotate-root` only write files
//! (the root's private half never reaches a running hub). Every replica
//! polls them ([`spawn_watch`], every [`KEY_WATCH_EVERY`]): polling, rather
//! than inotify or SIGHUP, because it needs no signal from the operator,
//! works the same on every replica whose keys directory was copied in
//! place (docs/replicas.md), and catches a half-copied set simply by not
//! loading it until it is whole. When the files changed the replica swaps
//! its [`crate::keys::KeyRing`]; the leader publishes the new trust document
//! at once and the publishing loop is woken, whose pass
//! ([`resign_other_keys`]) re-signs every stored manifest and assignment
//! that another key signed, each as version + 1, so they stay valid when the
//! overlap of the old key ends.
//!
//! Owns: when keys are reloaded and what follows. Must not: decide versions
//! (that is [`super::sign`]).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use signet_common::envelope::{DocumentKind, KeyId, open};
use signet_common::ids::{DeviceId, NodeId};
use tokio_util::sync::CancellationToken;

use super::run::{Publishing, run_targets};
use super::targets::Targets;
use super::{
    Actor, PublishError, RetainedMessage, SIGNED_DOCUMENTS, SIGNED_ENVELOPES, SignedDocument,
    TRUST_TOPIC, Trigger,
};
use crate::app::Hub;
use crate::background::Background;
use crate::store::StoreError;

/// How often every replica looks at its key files.
pub const KEY_WATCH_EVERY: Duration = Duration::from_secs(2);

/// Starts the key watch of this replica (every replica, leader or not: each
/// signs and serves with its own copy of the keys).
pub fn spawn_watch(state: Hub, every: Duration, cancel: CancellationToken) -> Background {
    let token = cancel.clone();
    Background::spawn("key watch", cancel, async move {
        let mut last_error = None;
        loop {
            tokio::select! {
                () = token.cancelled() => break,
                () = tokio::time::sleep(every) => {}
            }
            last_error = check_keys(&state, last_error).await;
        }
    })
}

/// Reloads the keys if their files changed; on a change the leader
/// publishes the new trust document and the publishing loop is woken.
/// Returns the load error, logged once until it changes.
async fn check_keys(state: &Hub, last_error: Option<String>) -> Option<String> {
    let keys = match state.keys.reload() {
        Ok(Some(keys)) => keys,
        Ok(None) => return None,
        Err(e) => {
            let error = e.to_string();
            if last_error.as_ref() != Some(&error) {
                tracing::warn!(%error, "the key files changed but do not load (yet); \
                    signing with the keys loaded before");
            }
            return Some(error);
        }
    };
    tracing::info!(trust_version = keys.version, signing_key = %keys.signing.key_id(),
        root = %keys.root.key_id(), "key files changed: signing and serving with the new keys");
    if state.replica.is_leader() {
        let message = RetainedMessage {
            topic: TRUST_TOPIC.to_owned(),
            payload: keys.trust.clone(),
        };
        if let Err(e) = state.publisher.publish(message).await {
            tracing::warn!(error = %e, "the new trust document was not published; \
                the next connect republishes it");
        }
    }
    state.publish_wake.notify_one();
    None
}

/// Re-signs every stored manifest and assignment that a key other than the
/// current signing key signed, when the keys asked for it (at start and
/// after a signing rotation); returns how many runs that took. A pass that
/// fails asks again.
///
/// # Errors
/// When the store fails.
pub(super) async fn resign_other_keys(state: &Hub) -> Result<usize, PublishError> {
    if !state.keys.take_rekey() {
        return Ok(0);
    }
    let signer = state.keys.current().signing.key_id();
    let done = resign(state, signer).await;
    if done.is_err() {
        state.keys.want_rekey();
    }
    done
}

async fn resign(state: &Hub, signer: KeyId) -> Result<usize, PublishError> {
    fill_key_ids(state).await?;
    let stale: Vec<SignedDocument> = state
        .store
        .scan::<SignedDocument>(SIGNED_DOCUMENTS, "")?
        .into_iter()
        .filter(|d| d.key_id != Some(signer))
        .collect();
    if stale.is_empty() {
        return Ok(0);
    }
    tracing::info!(documents = stale.len(), signing_key = %signer,
        "re-signing the documents another key signed");
    let mut runs = 0;
    let mut devices: BTreeSet<String> = BTreeSet::new();
    for document in stale {
        match document.kind {
            DocumentKind::GroupManifest => {
                let Some(group) = document.group else {
                    continue;
                };
                let Some(scope_node) = crate::schedules::node_of_group(&state.store, &group)?
                else {
                    continue;
                };
                let targets = Targets {
                    scope_node,
                    groups: vec![group],
                    devices: Vec::new(),
                    followers: Vec::new(),
                };
                runs += run(state, targets).await?;
            }
            DocumentKind::DeviceAssignment => {
                devices.insert(document.subject);
            }
            _ => {}
        }
    }
    let mut by_node: BTreeMap<NodeId, Vec<(DeviceId, NodeId)>> = BTreeMap::new();
    for (device, node) in crate::tenancy::attached_devices(&state.store)? {
        if devices.contains(device.as_str()) {
            by_node
                .entry(node.clone())
                .or_default()
                .push((device, node));
        }
    }
    for (node, devices) in by_node {
        let targets = Targets {
            scope_node: node,
            groups: Vec::new(),
            devices,
            followers: Vec::new(),
        };
        runs += run(state, targets).await?;
    }
    Ok(runs)
}

/// One re-signing run of `targets` as the hub; a run refused for its own
/// reasons is logged, a store failure returned.
async fn run(state: &Hub, targets: Targets) -> Result<usize, PublishError> {
    let by = Publishing {
        trigger: Trigger::Resign,
        ..Publishing::from(Actor::hub())
    };
    let scope = targets.scope_node.clone();
    // Devices detached meanwhile are left out, as the run's own read says.
    let pick = |tx: &mut crate::store::Tx| {
        let mut targets = targets.clone();
        let mut kept = Vec::with_capacity(targets.devices.len());
        for (device, node) in targets.devices {
            if tx.contains(crate::tenancy::NODE_DEVICES, &format!("{node}/{device}"))? {
                kept.push((device, node));
            }
        }
        targets.devices = kept;
        Ok(targets)
    };
    match run_targets(state, pick, None, by).await {
        Ok(_) => Ok(1),
        Err(PublishError::Store(e)) => Err(PublishError::Store(e)),
        Err(e) => {
            tracing::error!(node = %scope, error = %e, "re-signing with the new key failed");
            Ok(0)
        }
    }
}

/// Records written before [`SignedDocument::key_id`] was kept get it from
/// their envelope, once.
async fn fill_key_ids(state: &Hub) -> Result<(), StoreError> {
    let unknown: Vec<String> = state
        .store
        .scan::<SignedDocument>(SIGNED_DOCUMENTS, "")?
        .into_iter()
        .filter(|d| d.key_id.is_none())
        .map(|d| super::document_key(d.kind, &d.subject))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    state
        .store
        .transact(|tx| {
            for key in &unknown {
                let Some(mut record) = tx.get::<SignedDocument>(SIGNED_DOCUMENTS, key)? else {
                    continue;
                };
                let Some(envelope) = tx.get::<String>(SIGNED_ENVELOPES, key)? else {
                    continue;
                };
                if record.key_id.is_none()
                    && let Ok(opened) = open(envelope.as_bytes())
                {
                    record.key_id = Some(opened.key_id());
                    tx.put(SIGNED_DOCUMENTS, key, &record)?;
                }
            }
            Ok::<_, StoreError>(())
        })
        .await
}
