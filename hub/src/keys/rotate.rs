//! Rotating the signing key and the root (S2, DESIGN §4), and the history
//! of every trust document the hub issued.
//!
//! Owns: `signet-hub keys rotate-signing` and `keys rotate-root` (the
//! documents they sign and the order their files are written in), the
//! history `keys/trust-history/{version}.trust`, the chain an agent that
//! missed root rotations needs ([`chain`]), and finishing or undoing a
//! rotation a crash interrupted ([`recover`]). Must not: keep a root
//! private key anywhere but in the file the operator names.
//!
//! # Files and crash safety
//! A rotation writes, each durably (temporary file, fsync, rename, fsync
//! of the directory): the new trust documents into the history, the new
//! key as `signing.key.next` or the new root as `root.pub.next`, then
//! `signing.trust` — the one rename that commits the rotation — and last
//! renames the `.next` file over its contract name. [`super::load`] takes a
//! `.next` file only when `signing.trust` names it, so a process killed at
//! any point leaves the keys of before or of after, never half.
//!
//! # Documents
//! - Signing key: version N+1 from the same root lists the new key and the
//!   earlier ones with their windows cut to `now + overlap`, so documents
//!   signed before stay valid while the hub re-signs them.
//! - Root: version N+1 signed by the *old* root carries the new root
//!   (`root_key_id`, `root_public_key`; agents accept it only at exactly
//!   N+1), and N+2, the same keys signed by the *new* root, is what the hub
//!   publishes and serves: agents paired after the rotation pin the new root
//!   (`keys/root.pub`) and accept it directly; older agents reach it
//!   through N+1 (see [`chain`]).

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeDelta, Utc};
use signet_common::envelope::{self, KeyId, PublicKey, SigningKey};
use signet_common::sync::documents::MAX_TRUST_CHAIN;
use signet_common::trust::{CertifiedKey, MAX_SIGNING_KEYS, TrustDocument, TrustStore};

use super::{
    KeyFileError, SIGNING_KEY_LIFETIME, invalid, io, key_dir, parse_key, read_bounded, sync_dir,
};

/// The history directory inside `keys/`.
pub const HISTORY_DIR: &str = "trust-history";
/// How long the keys a signing rotation replaces stay valid by default.
pub const DEFAULT_OVERLAP: TimeDelta = TimeDelta::days(1);
/// A new signing key counts from this long before it is made, so devices
/// whose clock is a little behind accept it.
const CLOCK_SLACK: TimeDelta = TimeDelta::hours(1);

/// What a rotation did, for the command's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotated {
    /// The trust version before.
    pub from_version: u64,
    /// The trust version the hub now publishes.
    pub to_version: u64,
    /// The new signing key (signing rotation) or the new root (root
    /// rotation).
    pub new_key: KeyId,
}

/// The file of trust version `version` in the history.
fn history_file(dir: &Path, version: u64) -> PathBuf {
    dir.join(HISTORY_DIR).join(format!("{version:020}.trust"))
}

/// Keeps trust document `bytes` (version `version`) in the history,
/// durably; replaces a file of that version an interrupted rotation left
/// (it was never published: [`chain`] serves only versions below the
/// current one).
///
/// # Errors
/// I/O errors naming the file.
pub fn keep_in_history(dir: &Path, version: u64, bytes: &[u8]) -> Result<(), KeyFileError> {
    let history = dir.join(HISTORY_DIR);
    fs::create_dir_all(&history).map_err(|e| io(&history, &e))?;
    let file = history_file(dir, version);
    if fs::read(&file).is_ok_and(|held| held == bytes) {
        return Ok(());
    }
    replace(&file, bytes, 0o644)?;
    sync_dir(&history)
}

/// Writes `bytes` to `path` through a temporary file: written, fsynced,
/// then renamed over `path`. The caller fsyncs the directory.
fn replace(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyFileError> {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".tmp");
    let temp = path.with_file_name(name);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&temp)
        .map_err(|e| io(&temp, &e))?;
    file.write_all(bytes).map_err(|e| io(&temp, &e))?;
    file.sync_all().map_err(|e| io(&temp, &e))?;
    drop(file);
    fs::rename(&temp, path).map_err(|e| io(path, &e))
}

/// The root `trust` verifies against and the store holding it: `root.pub`,
/// or `root.pub.next` when an interrupted root rotation already committed
/// `signing.trust`.
pub(super) fn root_of(dir: &Path, trust: &[u8]) -> Result<(PublicKey, TrustStore), KeyFileError> {
    let root_file = dir.join("root.pub");
    let root = read_root(&root_file)?;
    let mut store = TrustStore::new(root);
    let first = match store.apply_trust(trust) {
        Ok(_) => return Ok((root, store)),
        Err(e) => e,
    };
    let next_file = dir.join("root.pub.next");
    if next_file.exists()
        && let Ok(next) = read_root(&next_file)
    {
        let mut store = TrustStore::new(next);
        if store.apply_trust(trust).is_ok() {
            return Ok((next, store));
        }
    }
    Err(invalid(&dir.join("signing.trust"), &first))
}

fn read_root(file: &Path) -> Result<PublicKey, KeyFileError> {
    let text = read_bounded(file)?;
    let text = String::from_utf8(text).map_err(|e| invalid(file, &e))?;
    PublicKey::from_base64(&text).map_err(|e| invalid(file, &e))
}

/// The signing key `store` certifies: `signing.key.next` when an
/// interrupted signing rotation already committed `signing.trust`, else
/// `signing.key`.
pub(super) fn signing_of(dir: &Path, store: &TrustStore) -> Result<SigningKey, KeyFileError> {
    let certified = |key: &SigningKey| {
        store
            .signing_keys()
            .iter()
            .any(|k| k.key_id == key.key_id())
    };
    let next_file = dir.join("signing.key.next");
    if next_file.exists()
        && let Ok(bytes) = read_bounded(&next_file)
        && let Ok(next) = parse_key(&next_file, &bytes)
        && certified(&next)
    {
        return Ok(next);
    }
    let file = dir.join("signing.key");
    let signing = parse_key(&file, &read_bounded(&file)?)?;
    if !certified(&signing) {
        return Err(KeyFileError::Invalid {
            file: dir.join("signing.trust"),
            reason: format!("does not certify the signing key {}", signing.key_id()),
        });
    }
    Ok(signing)
}

/// The payload of a trust envelope, unverified (the hub's own files; agents
/// verify what they receive).
fn payload_of(bytes: &[u8]) -> Option<(KeyId, TrustDocument)> {
    let opened = envelope::open(bytes).ok()?;
    let doc = serde_json::from_slice::<TrustDocument>(opened.payload()).ok()?;
    Some((opened.key_id(), doc))
}

/// The earlier trust documents an agent holding any older version needs
/// before version `current` (S2): each root rotation in the history below
/// `current` and the document before it (a rotation is accepted only at
/// exactly the held version + 1), oldest first, the newest
/// [`MAX_TRUST_CHAIN`] of them. A history file that does not read is left
/// out (and logged).
#[must_use]
pub fn chain(dir: &Path, current: u64) -> Vec<Vec<u8>> {
    let history = dir.join(HISTORY_DIR);
    let Ok(entries) = fs::read_dir(&history) else {
        return Vec::new();
    };
    let mut versions: Vec<u64> = entries
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_suffix(".trust")?
                .parse()
                .ok()
        })
        .filter(|v| *v < current)
        .collect();
    versions.sort_unstable();
    let mut wanted = Vec::new();
    for version in versions {
        let Ok(bytes) = read_bounded(&history_file(dir, version)) else {
            tracing::warn!(version, "a trust document of the history does not read");
            continue;
        };
        let Some((signer, doc)) = payload_of(&bytes) else {
            tracing::warn!(version, "a trust document of the history does not parse");
            continue;
        };
        if doc.root_key_id != signer {
            if let Some(previous) = version.checked_sub(1)
                && !wanted.iter().any(|(v, _)| *v == previous)
                && let Ok(before) = read_bounded(&history_file(dir, previous))
            {
                wanted.push((previous, before));
            }
            wanted.push((version, bytes));
        }
    }
    let skip = wanted.len().saturating_sub(MAX_TRUST_CHAIN);
    wanted.into_iter().skip(skip).map(|(_, b)| b).collect()
}

/// Finishes or undoes a rotation a crash interrupted: a `.next` file that
/// `signing.trust` names is renamed over its contract name, any other is
/// removed; leftover temporary files go. Nothing happens when none is
/// there. `serve` and the rotation commands call it first.
///
/// # Errors
/// I/O errors naming the file.
pub fn recover(data: &Path) -> Result<(), KeyFileError> {
    let dir = key_dir(data);
    let staged = ["root.pub.next", "signing.key.next"]
        .iter()
        .any(|name| dir.join(name).exists());
    if staged {
        let trust = read_bounded(&dir.join("signing.trust"))?;
        let (root, store) = root_of(&dir, &trust)?;
        let root_next = dir.join("root.pub.next");
        if root_next.exists() {
            if read_root(&root_next).is_ok_and(|next| next == root) {
                rename(&root_next, &dir.join("root.pub"))?;
            } else {
                remove(&root_next)?;
            }
        }
        let signing_next = dir.join("signing.key.next");
        if signing_next.exists() {
            let named = read_bounded(&signing_next)
                .ok()
                .and_then(|b| SigningKey::from_pkcs8(&b).ok())
                .is_some_and(|k| store.signing_keys().iter().any(|c| c.key_id == k.key_id()));
            if named {
                rename(&signing_next, &dir.join("signing.key"))?;
            } else {
                remove(&signing_next)?;
            }
        }
    }
    for name in [
        "signing.trust.tmp",
        "signing.key.next.tmp",
        "root.pub.next.tmp",
    ] {
        let path = dir.join(name);
        if path.exists() {
            remove(&path)?;
        }
    }
    sync_dir(&dir)
}

fn rename(from: &Path, to: &Path) -> Result<(), KeyFileError> {
    fs::rename(from, to).map_err(|e| io(to, &e))
}

fn remove(path: &Path) -> Result<(), KeyFileError> {
    fs::remove_file(path).map_err(|e| io(path, &e))
}

/// Reads the offline root key the operator named and checks it is the
/// hub's current root; nothing is stored.
fn offline_root(file: &Path, current: PublicKey) -> Result<SigningKey, KeyFileError> {
    let bytes = read_bounded(file)?;
    let key = SigningKey::from_pkcs8(&bytes).map_err(|e| KeyFileError::Invalid {
        file: file.to_owned(),
        reason: format!("not a PKCS#8 Ed25519 private key ({e})"),
    })?;
    if key.public_key() != current {
        return Err(KeyFileError::WrongRoot {
            file: file.to_owned(),
            found: key.key_id(),
            root: current.key_id(),
        });
    }
    Ok(key)
}

/// What a rotation starts from: the keys as loaded and the current trust
/// payload.
struct Current {
    keys: super::HubKeys,
    doc: TrustDocument,
}

fn current(data: &Path) -> Result<Current, KeyFileError> {
    recover(data)?;
    let keys = super::load(data)?;
    let dir = key_dir(data);
    let (_, doc) = payload_of(&keys.trust).ok_or_else(|| KeyFileError::Invalid {
        file: dir.join("signing.trust"),
        reason: "does not parse".into(),
    })?;
    // Installations made before the history existed start it here.
    keep_in_history(&dir, doc.version, &keys.trust)?;
    Ok(Current { keys, doc })
}

/// The keys of `doc` still valid at `now`, each ending by `until` at the
/// latest.
fn kept_keys(doc: &TrustDocument, now: DateTime<Utc>, until: DateTime<Utc>) -> Vec<CertifiedKey> {
    doc.signing_keys
        .iter()
        .map(|k| CertifiedKey {
            not_after: k.not_after.min(until),
            ..k.clone()
        })
        .filter(|k| k.not_after > now && k.not_after > k.not_before)
        .collect()
}

/// Checks that an agent holding `from` accepts each of `next` in order
/// (the rules of [`TrustStore`]), before anything is written.
fn check_chain(root: PublicKey, from: &[u8], next: &[&[u8]]) -> Result<(), KeyFileError> {
    let mut store = TrustStore::new(root);
    let mut all = vec![from];
    all.extend_from_slice(next);
    for bytes in all {
        store
            .apply_trust(bytes)
            .map_err(|e| KeyFileError::Invalid {
                file: PathBuf::from("signing.trust"),
                reason: format!("the new trust document would be refused: {e}"),
            })?;
    }
    Ok(())
}

fn sign_trust(doc: &TrustDocument, key: &SigningKey) -> Result<Vec<u8>, KeyFileError> {
    envelope::sign_document(doc, key).map_err(|e| KeyFileError::Invalid {
        file: PathBuf::from("signing.trust"),
        reason: e.to_string(),
    })
}

/// Where a rotation stops, for the crash tests: after this many of its
/// write steps (`usize::MAX`: all of them).
type StopAfter = usize;

/// `signet-hub keys rotate-signing` (S2): a new signing key certified by
/// the root in `root_key_file` (read, checked against `keys/root.pub`,
/// never stored) in trust version N+1, which keeps the earlier keys until
/// `now + overlap`. A running hub picks the files up by itself
/// (`publish::keys_watch`).
///
/// # Errors
/// [`KeyFileError::WrongRoot`] (nothing changed) when the file holds
/// another key; other [`KeyFileError`]s naming the file.
pub fn rotate_signing(
    data: &Path,
    root_key_file: &Path,
    overlap: TimeDelta,
    now: DateTime<Utc>,
) -> Result<Rotated, KeyFileError> {
    rotate_signing_until(data, root_key_file, overlap, now, usize::MAX)
}

fn rotate_signing_until(
    data: &Path,
    root_key_file: &Path,
    overlap: TimeDelta,
    now: DateTime<Utc>,
    stop: StopAfter,
) -> Result<Rotated, KeyFileError> {
    let Current { keys, doc } = current(data)?;
    let root = offline_root(root_key_file, keys.root)?;
    let dir = key_dir(data);
    let pkcs8 = SigningKey::generate_pkcs8().map_err(|e| invalid(&dir.join("signing.key"), &e))?;
    let signing = parse_key(&dir.join("signing.key"), &pkcs8)?;
    let mut signing_keys = kept_keys(&doc, now, now + overlap);
    signing_keys.push(CertifiedKey {
        key_id: signing.key_id(),
        public_key: signing.public_key(),
        not_before: now - CLOCK_SLACK,
        not_after: now + SIGNING_KEY_LIFETIME,
    });
    if signing_keys.len() > MAX_SIGNING_KEYS {
        signing_keys.drain(..signing_keys.len() - MAX_SIGNING_KEYS);
    }
    let next = TrustDocument {
        version: doc.version + 1,
        issued_at: now,
        root_key_id: root.key_id(),
        root_public_key: Some(root.public_key()),
        signing_keys,
    };
    let trust = sign_trust(&next, &root)?;
    check_chain(keys.root, &keys.trust, &[&trust])?;
    let steps: [&dyn Fn() -> Result<(), KeyFileError>; 4] = [
        &|| keep_in_history(&dir, next.version, &trust),
        &|| {
            replace(&dir.join("signing.key.next"), &pkcs8, 0o600)?;
            sync_dir(&dir)
        },
        &|| {
            replace(&dir.join("signing.trust"), &trust, 0o644)?;
            sync_dir(&dir)
        },
        &|| {
            rename(&dir.join("signing.key.next"), &dir.join("signing.key"))?;
            sync_dir(&dir)
        },
    ];
    for step in steps.iter().take(stop) {
        step()?;
    }
    Ok(Rotated {
        from_version: doc.version,
        to_version: next.version,
        new_key: signing.key_id(),
    })
}

/// `signet-hub keys rotate-root` (S2): a new root key pair; trust version
/// N+1 signed by the old root (from `old_root_file`, checked against
/// `keys/root.pub`) carries it, N+2 signed by the new root follows with the
/// same signing keys, `keys/root.pub` becomes the new root, and the new
/// private key is written to `new_root_out` (mode 0600, never an existing
/// file) for the operator to take offline.
///
/// # Errors
/// [`KeyFileError::WrongRoot`] or [`KeyFileError::Exists`] (nothing
/// changed); other [`KeyFileError`]s naming the file.
pub fn rotate_root(
    data: &Path,
    old_root_file: &Path,
    new_root_out: &Path,
    now: DateTime<Utc>,
) -> Result<Rotated, KeyFileError> {
    rotate_root_until(data, old_root_file, new_root_out, now, usize::MAX)
}

fn rotate_root_until(
    data: &Path,
    old_root_file: &Path,
    new_root_out: &Path,
    now: DateTime<Utc>,
    stop: StopAfter,
) -> Result<Rotated, KeyFileError> {
    let Current { keys, doc } = current(data)?;
    let old_root = offline_root(old_root_file, keys.root)?;
    if new_root_out.exists() {
        return Err(KeyFileError::Exists(new_root_out.to_owned()));
    }
    let dir = key_dir(data);
    let pkcs8 = SigningKey::generate_pkcs8().map_err(|e| invalid(new_root_out, &e))?;
    let new_root = parse_key(new_root_out, &pkcs8)?;
    let signing_keys = kept_keys(&doc, now, DateTime::<Utc>::MAX_UTC);
    let rotation = TrustDocument {
        version: doc.version + 1,
        issued_at: now,
        root_key_id: new_root.key_id(),
        root_public_key: Some(new_root.public_key()),
        signing_keys,
    };
    let settled = TrustDocument {
        version: doc.version + 2,
        ..rotation.clone()
    };
    let rotation_bytes = sign_trust(&rotation, &old_root)?;
    let settled_bytes = sign_trust(&settled, &new_root)?;
    check_chain(keys.root, &keys.trust, &[&rotation_bytes, &settled_bytes])?;
    let public_line = format!("{}\n", new_root.public_key().to_base64());
    let steps: [&dyn Fn() -> Result<(), KeyFileError>; 6] = [
        &|| {
            super::write_new(new_root_out, &pkcs8, 0o600)?;
            let parent = new_root_out
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            sync_dir(parent)
        },
        &|| keep_in_history(&dir, rotation.version, &rotation_bytes),
        &|| keep_in_history(&dir, settled.version, &settled_bytes),
        &|| {
            replace(&dir.join("root.pub.next"), public_line.as_bytes(), 0o644)?;
            sync_dir(&dir)
        },
        &|| {
            replace(&dir.join("signing.trust"), &settled_bytes, 0o644)?;
            sync_dir(&dir)
        },
        &|| {
            rename(&dir.join("root.pub.next"), &dir.join("root.pub"))?;
            sync_dir(&dir)
        },
    ];
    for step in steps.iter().take(stop) {
        step()?;
    }
    Ok(Rotated {
        from_version: doc.version,
        to_version: settled.version,
        new_key: new_root.key_id(),
    })
}

/// Parses an overlap such as `30m`, `24h`, `7d` or `0s`.
///
/// # Errors
/// A message saying what is accepted.
pub fn parse_overlap(text: &str) -> Result<TimeDelta, String> {
    let bad = || format!("{text:?}: expected a number and a unit, e.g. 30m, 24h, 7d or 0s");
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let number: i64 = number.parse().map_err(|_| bad())?;
    let delta = match unit {
        "s" => TimeDelta::try_seconds(number),
        "m" => TimeDelta::try_minutes(number),
        "h" => TimeDelta::try_hours(number),
        "d" => TimeDelta::try_days(number),
        _ => None,
    }
    .ok_or_else(bad)?;
    if delta > TimeDelta::days(366) {
        return Err(format!("{text:?}: at most 366 days"));
    }
    Ok(delta)
}

#[cfg(test)]
mod tests;
