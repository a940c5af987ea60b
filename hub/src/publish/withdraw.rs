//! Withdrawing the manifest of a group that no longer exists (L4, S4, S7).
//!
//! Owns: [`forget_group`] (a group or node was just deleted: its manifest
//! and its broker role go), [`withdraw_manifest`] and [`withdraw_orphans`]
//! (the leader's sweep on every connect, for groups a hub deleted before it
//! withdrew their manifest, e.g. killed in between).
//! Withdrawing forgets the group's signed manifest — its record and its
//! envelope — and clears the retained message on its topic with an empty
//! retained message. From then on the retained-state watch
//! ([`crate::mqtt::retained`]) expects the topic empty and clears it again
//! whenever something is found there, so a clear the broker missed is made
//! at the next connect. No device may read the topic any more (its access
//! followed the delete), but a stale retained manifest would stay on the
//! broker, and republished to it after every restart, for ever.
//!
//! Must not: withdraw a manifest whose group exists (every withdraw
//! re-checks the group in the transaction that forgets it).

use signet_common::envelope::DocumentKind;

use super::{
    Publisher, RetainedMessage, SIGNED_DOCUMENTS, SIGNED_ENVELOPES, SignedDocument, document_key,
    topic_of,
};
use crate::schedules::group_exists as exists;
use crate::store::{Store, StoreError};

/// After `group` (an access group, or a node no device is below any more)
/// was deleted: withdraws its manifest ([`withdraw_manifest`], S4) and asks
/// the broker to forget its shared role (S7). Failures are logged: the
/// leader's sweep ([`withdraw_orphans`]) and the start's broker
/// reconciliation finish what is left.
pub async fn forget_group(hub: &crate::app::Hub, group: &str) {
    if let Err(e) = withdraw_manifest(&hub.store, hub.publisher.as_ref(), group).await {
        tracing::warn!(group, error = %e, "a deleted group's manifest not withdrawn");
    }
    crate::devices::retire_group(hub, group).await;
}

/// Forgets `group`'s signed manifest and clears its retained topic through
/// `publisher`, if the group no longer exists. Returns whether a manifest
/// was withdrawn. A failed clear is logged: the watch clears the topic at
/// the next connect.
///
/// # Errors
/// When the store fails.
pub async fn withdraw_manifest(
    store: &Store,
    publisher: &dyn Publisher,
    group: &str,
) -> Result<bool, StoreError> {
    let key = document_key(DocumentKind::GroupManifest, group);
    let withdrawn = store
        .transact(|tx| {
            if exists(&mut *tx, group)? {
                return Ok::<_, StoreError>(false);
            }
            let held = tx.get::<SignedDocument>(SIGNED_DOCUMENTS, &key)?.is_some()
                || tx.get::<String>(SIGNED_ENVELOPES, &key)?.is_some();
            tx.delete(SIGNED_DOCUMENTS, &key);
            tx.delete(SIGNED_ENVELOPES, &key);
            Ok(held)
        })
        .await?;
    if withdrawn && let Some(topic) = topic_of(DocumentKind::GroupManifest, group) {
        tracing::info!(group, %topic, "withdrew the manifest of a deleted group");
        let clear = RetainedMessage {
            topic,
            payload: Vec::new(),
        };
        if let Err(e) = publisher.publish(clear).await {
            tracing::warn!(group, error = %e, "a deleted group's retained manifest not cleared; \
                the next connect clears it");
        }
    }
    Ok(withdrawn)
}

/// Withdraws the manifest of every group the store still holds one for but
/// no longer has (see the module). Returns how many were withdrawn.
///
/// # Errors
/// When the store fails.
pub async fn withdraw_orphans(
    store: &Store,
    publisher: &dyn Publisher,
) -> Result<usize, StoreError> {
    let prefix = document_key(DocumentKind::GroupManifest, "");
    let held: Vec<String> = store
        .scan_keys(SIGNED_DOCUMENTS, &prefix)?
        .into_iter()
        .filter_map(|key| key.strip_prefix(&prefix).map(str::to_owned))
        .collect();
    let mut withdrawn = 0;
    for group in held {
        // A cheap filter without a transaction per existing group; the
        // check that decides is `withdraw_manifest`'s own, in the
        // transaction that forgets the manifest.
        if !exists(store, &group)? && withdraw_manifest(store, publisher, &group).await? {
            withdrawn += 1;
        }
    }
    Ok(withdrawn)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;
    use crate::groups::GroupRef;
    use crate::publish::service::{self, PublishRequest, Requested};
    use crate::publish::{RecordingPublisher, When, envelope_of, republish_all};

    /// S4, L4: a manifest the store holds for a group that no longer
    /// exists (its hub stopped between the delete and the withdraw) is
    /// forgotten and its retained topic cleared by the leader's sweep, and
    /// not republished after it; an existing group's manifest stays.
    #[tokio::test]
    async fn s4_l4_the_manifest_of_a_group_that_no_longer_exists_is_withdrawn() {
        let (_dir, hub, actor, root) = crate::publish::tests::test_hub().await;
        let request = PublishRequest {
            scope: GroupRef::Node(root.clone()),
            when: When::Immediate,
        };
        let Requested::Published(_) = service::request(&hub, &actor, request).await.unwrap() else {
            panic!("not published at once");
        };
        let kept = envelope_of(&hub.store, DocumentKind::GroupManifest, root.as_str())
            .unwrap()
            .unwrap();
        // A group deleted by a hub that stopped before withdrawing it.
        let (ghost, key) = (
            "ag-ghost",
            document_key(DocumentKind::GroupManifest, "ag-ghost"),
        );
        let root_key = document_key(DocumentKind::GroupManifest, root.as_str());
        let mut record: SignedDocument =
            hub.store.get(SIGNED_DOCUMENTS, &root_key).unwrap().unwrap();
        record.subject = ghost.to_owned();
        hub.store
            .transact(|tx| {
                tx.put(SIGNED_DOCUMENTS, &key, &record)?;
                tx.put(SIGNED_ENVELOPES, &key, &kept)?;
                Ok::<_, StoreError>(())
            })
            .await
            .unwrap();

        let publisher = RecordingPublisher::new();
        assert!(
            !withdraw_manifest(&hub.store, &publisher, root.as_str())
                .await
                .unwrap(),
            "an existing group's manifest is never withdrawn"
        );
        assert_eq!(withdraw_orphans(&hub.store, &publisher).await.unwrap(), 1);
        let sent = publisher.take();
        let ghost_topic = topic_of(DocumentKind::GroupManifest, ghost).unwrap();
        assert_eq!(
            sent,
            [RetainedMessage {
                topic: ghost_topic.clone(),
                payload: Vec::new()
            }],
            "only the ghost's topic is cleared"
        );
        assert!(
            envelope_of(&hub.store, DocumentKind::GroupManifest, ghost)
                .unwrap()
                .is_none()
        );
        assert!(
            hub.store
                .get::<SignedDocument>(SIGNED_DOCUMENTS, &key)
                .unwrap()
                .is_none()
        );
        assert_eq!(
            envelope_of(&hub.store, DocumentKind::GroupManifest, root.as_str()).unwrap(),
            Some(kept.clone())
        );
        assert_eq!(
            withdraw_orphans(&hub.store, &publisher).await.unwrap(),
            0,
            "once"
        );

        republish_all(&hub.store, b"trust", &publisher)
            .await
            .unwrap();
        let topics: Vec<String> = publisher.take().into_iter().map(|m| m.topic).collect();
        assert!(
            !topics.contains(&ghost_topic),
            "not republished: {topics:?}"
        );
        assert!(topics.contains(&topic_of(DocumentKind::GroupManifest, root.as_str()).unwrap()));
    }
}
