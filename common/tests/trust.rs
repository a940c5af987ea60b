//! The key hierarchy (S2) and the rollback guard (S3).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use chrono::TimeDelta;
use proptest::prelude::*;
use signet_common::digest::Sha256;
use signet_common::documents::{Command, HubTime};
use signet_common::envelope::{self, DocumentKind, KeyId, VerifyError};
use signet_common::rollback::{Acceptance, Freshness, Offer, RollbackError, RollbackGuard};
use signet_common::trust::{TrustDocument, TrustStore, TrustUpdate};
use support::*;

fn signed_trust(doc: &TrustDocument, by: &signet_common::envelope::SigningKey) -> Vec<u8> {
    envelope::sign_document(doc, by).unwrap()
}

#[test]
fn s2_signing_key_rotation_needs_no_re_pairing() {
    let mut h = Hierarchy::new();
    let next = new_key();
    // Overlap: both keys certified.
    let v2 = signed_trust(
        &trust_doc(2, &h.root, vec![cert(&h.signing), cert(&next)]),
        &h.root,
    );
    assert_eq!(
        h.store.apply_trust(&v2),
        Ok(TrustUpdate::Updated {
            version: 2,
            new_root: None,
            removed_keys: vec![]
        })
    );
    let by_next = envelope::sign_document(&hub_time(1), &next).unwrap();
    assert!(h.store.verify::<HubTime>(&by_next, t0()).is_ok());
    assert!(h.store.verify::<HubTime>(&h.hub_time(1), t0()).is_ok());
    // Retire the old key: its documents stop verifying, the new key's keep working.
    let v3 = signed_trust(&trust_doc(3, &h.root, vec![cert(&next)]), &h.root);
    assert_eq!(
        h.store.apply_trust(&v3),
        Ok(TrustUpdate::Updated {
            version: 3,
            new_root: None,
            removed_keys: vec![h.signing.key_id()]
        })
    );
    assert_eq!(
        h.store.verify::<HubTime>(&h.hub_time(1), t0()),
        Err(VerifyError::UnknownKey(h.signing.key_id()))
    );
    assert!(h.store.verify::<HubTime>(&by_next, t0()).is_ok());
    assert_eq!(
        h.store.root(),
        h.root.public_key(),
        "the pinned root is unchanged"
    );
}

#[test]
fn s3_trust_rollback_and_conflict_are_refused_and_redelivery_is_harmless() {
    let mut h = Hierarchy::new();
    let v2 = signed_trust(&trust_doc(2, &h.root, vec![cert(&h.signing)]), &h.root);
    h.store.apply_trust(&v2).unwrap();
    let before = h.store.clone();
    let v1 = signed_trust(&trust_doc(1, &h.root, vec![cert(&h.signing)]), &h.root);
    assert_eq!(
        h.store.apply_trust(&v1),
        Err(VerifyError::TrustRollback {
            held: 2,
            offered: 1
        })
    );
    let other_v2 = signed_trust(&trust_doc(2, &h.root, vec![cert(&new_key())]), &h.root);
    assert_eq!(
        h.store.apply_trust(&other_v2),
        Err(VerifyError::TrustConflict { version: 2 })
    );
    assert_eq!(h.store.apply_trust(&v2), Ok(TrustUpdate::Unchanged));
    assert_eq!(h.store, before);
}

#[test]
fn s2_root_rotation_n_to_n_plus_1_signed_by_the_old_root() {
    let mut h = Hierarchy::new();
    let new_root = new_key();
    let signing2 = new_key();
    let mut rotation = trust_doc(2, &new_root, vec![cert(&signing2)]);
    rotation.root_public_key = Some(new_root.public_key());
    let update = h
        .store
        .apply_trust(&signed_trust(&rotation, &h.root))
        .unwrap();
    assert_eq!(
        update,
        TrustUpdate::Updated {
            version: 2,
            new_root: Some(new_root.public_key()),
            removed_keys: vec![h.signing.key_id()]
        }
    );
    assert_eq!(h.store.root(), new_root.public_key());
    // From now on only the new root signs trust documents.
    let by_old = signed_trust(&trust_doc(3, &h.root, vec![cert(&signing2)]), &h.root);
    assert_eq!(
        h.store.apply_trust(&by_old),
        Err(VerifyError::NotSignedByRoot {
            root: new_root.key_id(),
            found: h.root.key_id()
        })
    );
    let by_new = signed_trust(&trust_doc(3, &new_root, vec![cert(&signing2)]), &new_root);
    assert!(h.store.apply_trust(&by_new).is_ok());
    let doc = envelope::sign_document(&hub_time(1), &signing2).unwrap();
    assert!(h.store.verify::<HubTime>(&doc, t0()).is_ok());
}

#[test]
fn s2_root_rotation_is_refused_unless_n_plus_1_by_the_old_root_with_the_new_key() {
    let h = Hierarchy::new();
    let new_root = new_key();
    // Skipping a version.
    let mut skip = trust_doc(3, &new_root, vec![cert(&h.signing)]);
    skip.root_public_key = Some(new_root.public_key());
    let mut store = h.store.clone();
    assert!(matches!(
        store.apply_trust(&signed_trust(&skip, &h.root)),
        Err(VerifyError::InvalidTrust(_))
    ));
    // Self-signed by the new root.
    let mut self_signed = trust_doc(2, &new_root, vec![cert(&h.signing)]);
    self_signed.root_public_key = Some(new_root.public_key());
    assert!(matches!(
        store.apply_trust(&signed_trust(&self_signed, &new_root)),
        Err(VerifyError::NotSignedByRoot { .. })
    ));
    // Naming a new root without its key, or with a key that is not it.
    let no_key = trust_doc(2, &new_root, vec![cert(&h.signing)]);
    assert!(matches!(
        store.apply_trust(&signed_trust(&no_key, &h.root)),
        Err(VerifyError::InvalidTrust(_))
    ));
    let mut wrong_key = trust_doc(2, &new_root, vec![cert(&h.signing)]);
    wrong_key.root_public_key = Some(new_key().public_key());
    assert!(matches!(
        store.apply_trust(&signed_trust(&wrong_key, &h.root)),
        Err(VerifyError::InvalidTrust(_))
    ));
    assert_eq!(store, h.store, "nothing changed");
}

#[test]
fn s2_inconsistent_trust_documents_are_refused() {
    let h = Hierarchy::new();
    let other = new_key();
    let mut mismatched = cert(&h.signing);
    mismatched.public_key = other.public_key();
    let mut empty_window = cert(&h.signing);
    empty_window.not_after = empty_window.not_before;
    let cases = [
        ("key id mismatch", vec![mismatched]),
        ("empty window", vec![empty_window]),
        ("listed twice", vec![cert(&h.signing), cert(&h.signing)]),
        (
            "too many",
            (0..=signet_common::trust::MAX_SIGNING_KEYS)
                .map(|_| cert(&h.signing))
                .collect(),
        ),
    ];
    for (name, keys) in cases {
        let mut store = h.store.clone();
        let result = store.apply_trust(&signed_trust(&trust_doc(2, &h.root, keys), &h.root));
        assert!(
            matches!(result, Err(VerifyError::InvalidTrust(_))),
            "{name}: {result:?}"
        );
        assert_eq!(store, h.store, "{name}: nothing changed");
    }
}

#[test]
fn s2_trust_store_survives_a_json_round_trip() {
    let h = Hierarchy::new();
    let json = serde_json::to_string(&h.store).unwrap();
    let restored: TrustStore = serde_json::from_str(&json).unwrap();
    assert_eq!(restored, h.store);
    assert!(restored.verify::<HubTime>(&h.hub_time(1), t0()).is_ok());
}

fn offer<'a>(
    kind: DocumentKind,
    subject: &'a str,
    version: u64,
    content: &[u8],
    key: KeyId,
) -> Offer<'a> {
    Offer {
        kind,
        subject: subject.into(),
        version,
        hash: Sha256::of(content),
        key_id: key,
        expires_at: None,
    }
}

fn some_key() -> KeyId {
    new_key().key_id()
}

#[test]
fn s3_guard_refuses_older_and_conflicting_versions_and_changes_nothing() {
    let key = some_key();
    let mut guard = RollbackGuard::new();
    let m = DocumentKind::GroupManifest;
    assert_eq!(
        guard.accept(&offer(m, "g1", 5, b"five", key)),
        Ok(Acceptance::New { previous: None })
    );
    let before = guard.clone();
    assert_eq!(
        guard.accept(&offer(m, "g1", 4, b"four", key)),
        Err(RollbackError::Older {
            kind: m,
            subject: "g1".into(),
            held: 5,
            offered: 4
        })
    );
    assert_eq!(
        guard.accept(&offer(m, "g1", 5, b"other five", key)),
        Err(RollbackError::Conflict {
            kind: m,
            subject: "g1".into(),
            version: 5
        })
    );
    assert_eq!(guard, before);
    assert_eq!(
        guard.accept(&offer(m, "g1", 5, b"five", key)),
        Ok(Acceptance::AlreadyHeld)
    );
    assert_eq!(
        guard.accept(&offer(m, "g1", 6, b"six", key)),
        Ok(Acceptance::New { previous: Some(5) })
    );
    // Subjects and kinds count separately.
    assert_eq!(
        guard.accept(&offer(m, "g2", 1, b"x", key)),
        Ok(Acceptance::New { previous: None })
    );
    assert_eq!(
        guard.accept(&offer(DocumentKind::Command, "g1", 1, b"x", key)),
        Ok(Acceptance::New { previous: None })
    );
}

#[test]
fn s3_assignment_floor_refuses_older_manifests_and_stales_the_held_one() {
    let key = some_key();
    let mut guard = RollbackGuard::new();
    let m = DocumentKind::GroupManifest;
    guard.accept(&offer(m, "g1", 3, b"three", key)).unwrap();
    guard.accept(&offer(m, "g2", 9, b"nine", key)).unwrap();
    let stale = guard.set_floors([("g1".to_string(), 5), ("g2".to_string(), 9)]);
    assert_eq!(stale, vec!["g1".to_string()]);
    assert_eq!(
        guard.freshness(m, "g1", t0()),
        Freshness::BelowFloor { held: 3, floor: 5 }
    );
    assert_eq!(guard.freshness(m, "g2", t0()), Freshness::Fresh);
    assert_eq!(
        guard.accept(&offer(m, "g1", 4, b"four", key)),
        Err(RollbackError::BelowFloor {
            subject: "g1".into(),
            floor: 5,
            offered: 4
        })
    );
    assert_eq!(
        guard.accept(&offer(m, "g1", 5, b"five", key)),
        Ok(Acceptance::New { previous: Some(3) })
    );
    assert_eq!(guard.freshness(m, "g1", t0()), Freshness::Fresh);
    assert_eq!(guard.freshness(m, "g3", t0()), Freshness::Missing);
}

#[test]
fn s3_held_manifest_goes_stale_at_its_expiry() {
    let key = some_key();
    let mut guard = RollbackGuard::new();
    let expires_at = t0() + TimeDelta::hours(24);
    let mut o = offer(DocumentKind::GroupManifest, "g1", 1, b"m", key);
    o.expires_at = Some(expires_at);
    guard.accept(&o).unwrap();
    assert_eq!(
        guard.freshness(
            DocumentKind::GroupManifest,
            "g1",
            expires_at - TimeDelta::seconds(1)
        ),
        Freshness::Fresh
    );
    assert_eq!(
        guard.freshness(DocumentKind::GroupManifest, "g1", expires_at),
        Freshness::Expired { expires_at }
    );
}

#[test]
fn s3_fast_forward_recovery_after_signing_key_rotation() {
    // A compromised key signs version u64::MAX; honest documents are then
    // refused until the key is rotated out.
    let mut h = Hierarchy::new();
    let compromised = h.signing.key_id();
    let mut guard = RollbackGuard::new();
    let m = DocumentKind::GroupManifest;
    guard
        .accept(&offer(m, "g1", u64::MAX, b"evil", compromised))
        .unwrap();
    guard
        .accept(&offer(
            DocumentKind::DeviceAssignment,
            "dev-1",
            u64::MAX,
            b"evil",
            compromised,
        ))
        .unwrap();
    guard.set_floors([("g1".to_string(), u64::MAX)]);
    let honest = new_key();
    assert!(matches!(
        guard.accept(&offer(m, "g1", 42, b"honest", honest.key_id())),
        Err(RollbackError::BelowFloor { .. })
    ));

    let v2 = envelope::sign_document(&trust_doc(2, &h.root, vec![cert(&honest)]), &h.root).unwrap();
    let TrustUpdate::Updated { removed_keys, .. } = h.store.apply_trust(&v2).unwrap() else {
        panic!("not updated")
    };
    let mut forgotten = guard.forget_keys(&removed_keys);
    forgotten.sort();
    assert_eq!(
        forgotten,
        vec![
            (DocumentKind::GroupManifest, "g1".to_string()),
            (DocumentKind::DeviceAssignment, "dev-1".to_string())
        ]
    );
    assert_eq!(guard.floor("g1"), None);
    assert_eq!(
        guard.accept(&offer(m, "g1", 42, b"honest", honest.key_id())),
        Ok(Acceptance::New { previous: None })
    );
    // The evil documents no longer verify, so the forgotten records cannot be replayed.
    let evil = envelope::sign_document(&hub_time(u64::MAX), &h.signing).unwrap();
    assert_eq!(
        h.store.verify::<HubTime>(&evil, t0()),
        Err(VerifyError::UnknownKey(compromised))
    );
}

#[test]
fn s3_verified_command_replay_is_caught_by_the_guard() {
    let h = Hierarchy::new();
    let bytes =
        envelope::sign_document(&command(8, t0() + TimeDelta::hours(1)), &h.signing).unwrap();
    let verified = h.store.verify::<Command>(&bytes, t0()).unwrap();
    let mut guard = RollbackGuard::new();
    assert_eq!(
        guard.accept(&Offer::of(&verified)),
        Ok(Acceptance::New { previous: None })
    );
    // The same command delivered again must not run again.
    assert_eq!(
        guard.accept(&Offer::of(&verified)),
        Ok(Acceptance::AlreadyHeld)
    );
    let older =
        envelope::sign_document(&command(7, t0() + TimeDelta::hours(1)), &h.signing).unwrap();
    let older = h.store.verify::<Command>(&older, t0()).unwrap();
    assert!(matches!(
        guard.accept(&Offer::of(&older)),
        Err(RollbackError::Older {
            held: 8,
            offered: 7,
            ..
        })
    ));
}

proptest! {
    /// S3: after any sequence of accepted versions, every earlier version is refused.
    #[test]
    fn s3_guard_refuses_every_earlier_version(versions in prop::collection::vec(0u64..1000, 1..30), probe in 0u64..1000) {
        let key = some_key();
        let mut guard = RollbackGuard::new();
        let mut highest: Option<u64> = None;
        for v in versions {
            let content = v.to_le_bytes();
            let result = guard.accept(&offer(DocumentKind::DeviceAssignment, "d", v, &content, key));
            match highest {
                Some(h) if v < h => prop_assert!(matches!(result, Err(RollbackError::Older { .. })), "accepted older {}", v),
                _ => prop_assert!(result.is_ok()),
            }
            highest = Some(highest.map_or(v, |h| h.max(v)));
        }
        let highest = highest.unwrap_or_default();
        let content = probe.to_le_bytes();
        let result = guard.accept(&offer(DocumentKind::DeviceAssignment, "d", probe, &content, key));
        prop_assert_eq!(result.is_ok(), probe >= highest);
        prop_assert_eq!(guard.held(DocumentKind::DeviceAssignment, "d").unwrap().version, highest.max(probe));
    }
}
