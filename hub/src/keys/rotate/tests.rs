use std::collections::BTreeMap;

use signet_common::documents::HubTime;

use super::*;
use crate::keys::{create, load};

fn installed() -> (tempfile::TempDir, PathBuf) {
    let data = tempfile::tempdir().unwrap();
    create(data.path(), Utc::now()).unwrap();
    let root_key = data.path().join("root.key.offline");
    fs::rename(key_dir(data.path()).join("root.key"), &root_key).unwrap();
    (data, root_key)
}

/// Every file under `keys/`, by path.
fn snapshot(data: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut dirs = vec![key_dir(data)];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.insert(path.clone(), fs::read(&path).unwrap());
            }
        }
    }
    files
}

fn hub_time(key: &SigningKey, at: DateTime<Utc>) -> Vec<u8> {
    envelope::sign_document(
        &HubTime {
            version: 1,
            issued_at: at,
            time: at,
        },
        key,
    )
    .unwrap()
}

/// S2: a signing rotation certifies a new key in version N+1 from the same
/// root; a device holding N accepts it (no re-pairing) and keeps accepting
/// what the old key signed until the overlap ends.
#[test]
fn s2_rotate_signing_certifies_a_new_key_and_keeps_the_old_for_the_overlap() {
    let (data, root_key) = installed();
    let before = load(data.path()).unwrap();
    let now = Utc::now();
    let done = rotate_signing(data.path(), &root_key, TimeDelta::hours(2), now).unwrap();
    assert_eq!((done.from_version, done.to_version), (1, 2));
    let after = load(data.path()).unwrap();
    assert_eq!(after.signing.key_id(), done.new_key);
    assert_ne!(after.signing.key_id(), before.signing.key_id());
    assert_eq!(after.root, before.root);
    assert!(after.chain.is_empty());

    let mut device = TrustStore::new(before.root);
    device.apply_trust(&before.trust).unwrap();
    device.apply_trust(&after.trust).unwrap();
    assert_eq!(device.version(), Some(2));
    let soon = now + TimeDelta::hours(1);
    let later = now + TimeDelta::hours(3);
    let old_doc = hub_time(&before.signing, soon);
    assert!(device.verify::<HubTime>(&old_doc, soon).is_ok());
    assert!(device.verify::<HubTime>(&old_doc, later).is_err());
    let new_doc = hub_time(&after.signing, later);
    assert!(device.verify::<HubTime>(&new_doc, later).is_ok());
    // Both versions are kept in the history.
    for version in [1, 2] {
        assert!(history_file(&key_dir(data.path()), version).exists());
    }
}

/// S2: a rotation given a key that is not the hub's root is refused, names
/// the file and both keys, and changes no file.
#[test]
fn s2_rotate_signing_with_the_wrong_root_key_changes_nothing() {
    let (data, _root_key) = installed();
    let (other, other_key) = installed();
    let before = snapshot(data.path());
    let err = rotate_signing(data.path(), &other_key, DEFAULT_OVERLAP, Utc::now()).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, KeyFileError::WrongRoot { .. }), "{message}");
    assert!(message.contains("root.key.offline"), "{message}");
    assert!(message.contains("nothing was changed"), "{message}");
    assert_eq!(snapshot(data.path()), before);
    let err = rotate_root(
        data.path(),
        &other_key,
        &data.path().join("new.key"),
        Utc::now(),
    )
    .unwrap_err();
    assert!(matches!(err, KeyFileError::WrongRoot { .. }), "{err}");
    assert!(!data.path().join("new.key").exists());
    assert_eq!(snapshot(data.path()), before);
    // Not a key at all.
    let junk = other.path().join("junk");
    fs::write(&junk, b"not a key").unwrap();
    let err = rotate_signing(data.path(), &junk, DEFAULT_OVERLAP, Utc::now()).unwrap_err();
    assert!(err.to_string().contains("not a PKCS#8"), "{err}");
    assert_eq!(snapshot(data.path()), before);
}

/// S2: after signing, root and signing rotations, a device still pinning
/// the first root and holding version 1 catches up through the chain the
/// hub serves: the root rotation at exactly N+1, then the new root's
/// documents. A device paired afterwards pins the new root and accepts
/// the current document directly.
#[test]
fn s2_the_chain_brings_a_device_across_rotations_to_the_new_root() {
    let (data, root_key) = installed();
    let first = load(data.path()).unwrap();
    let now = Utc::now();
    rotate_signing(data.path(), &root_key, DEFAULT_OVERLAP, now).unwrap();
    let new_root_key = data.path().join("root2.key");
    let done = rotate_root(data.path(), &root_key, &new_root_key, now).unwrap();
    assert_eq!((done.from_version, done.to_version), (2, 4));
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = fs::metadata(&new_root_key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Refused: the old root is no longer the hub's.
    assert!(matches!(
        rotate_signing(data.path(), &root_key, DEFAULT_OVERLAP, now),
        Err(KeyFileError::WrongRoot { .. })
    ));
    rotate_signing(data.path(), &new_root_key, DEFAULT_OVERLAP, now).unwrap();
    let keys = load(data.path()).unwrap();
    assert_eq!(keys.version, 5);
    assert_eq!(keys.root.key_id(), done.new_key);
    let root_pub = fs::read_to_string(key_dir(data.path()).join("root.pub")).unwrap();
    assert_eq!(PublicKey::from_base64(&root_pub).unwrap(), keys.root);
    // The chain: the document before the root rotation and the rotation.
    assert_eq!(keys.chain.len(), 2);

    let mut device = TrustStore::new(first.root);
    device.apply_trust(&first.trust).unwrap();
    // The latest alone is refused: it is signed by a root the device does
    // not know yet.
    assert!(device.clone().apply_trust(&keys.trust).is_err());
    for earlier in &keys.chain {
        device.apply_trust(earlier).unwrap();
    }
    device.apply_trust(&keys.trust).unwrap();
    assert_eq!(device.root(), keys.root);
    assert_eq!(device.version(), Some(5));
    let doc = hub_time(&keys.signing, now);
    assert!(device.verify::<HubTime>(&doc, now).is_ok());

    let mut paired_later = TrustStore::new(keys.root);
    paired_later.apply_trust(&keys.trust).unwrap();
    // The new root file must not be overwritten by another rotation.
    assert!(matches!(
        rotate_root(data.path(), &new_root_key, &new_root_key, now),
        Err(KeyFileError::Exists(_))
    ));
}

/// S2: a rotation stopped after any of its writes (as a SIGKILL would)
/// leaves the keys of before or of after — never a set that does not load —
/// and `recover` makes the files say the same; a rotation then works.
#[test]
fn s2_a_rotation_stopped_at_any_step_leaves_the_old_or_the_new_keys() {
    for root in [false, true] {
        for stop in 0..=6 {
            let (data, root_key) = installed();
            let before = load(data.path()).unwrap();
            let now = Utc::now();
            let out = data.path().join("new-root.key");
            if root {
                rotate_root_until(data.path(), &root_key, &out, now, stop).unwrap();
            } else {
                rotate_signing_until(data.path(), &root_key, DEFAULT_OVERLAP, now, stop).unwrap();
            }
            let seen = load(data.path()).unwrap_or_else(|e| panic!("root {root} stop {stop}: {e}"));
            let committed = seen.version != before.version;
            let committed_at = if root { 5 } else { 3 };
            assert_eq!(committed, stop >= committed_at, "root {root} stop {stop}");
            if !committed {
                assert_eq!(seen.trust, before.trust);
                assert_eq!(seen.signing.key_id(), before.signing.key_id());
                assert_eq!(seen.root, before.root);
            }
            recover(data.path()).unwrap();
            let tidy = load(data.path()).unwrap();
            assert_eq!(tidy.trust, seen.trust, "root {root} stop {stop}");
            assert_eq!(tidy.signing.key_id(), seen.signing.key_id());
            assert_eq!(tidy.root, seen.root);
            for name in ["root.pub.next", "signing.key.next"] {
                assert!(!key_dir(data.path()).join(name).exists(), "{name}");
            }
            // The next rotation works from whichever state it is.
            let root_now = if committed && root { &out } else { &root_key };
            rotate_signing(data.path(), root_now, DEFAULT_OVERLAP, now).unwrap();
        }
    }
}

#[test]
fn overlaps_parse_with_a_unit() {
    assert_eq!(parse_overlap("30m"), Ok(TimeDelta::minutes(30)));
    assert_eq!(parse_overlap("24h"), Ok(TimeDelta::hours(24)));
    assert_eq!(parse_overlap("7d"), Ok(TimeDelta::days(7)));
    assert_eq!(parse_overlap("0s"), Ok(TimeDelta::zero()));
    for bad in ["", "5", "h", "-1h", "1.5h", "3w", "400d"] {
        assert!(parse_overlap(bad).is_err(), "{bad}");
    }
}
