//! The hub's key files (DESIGN §4, contract).
//!
//! Owns: creating `keys/root.pub`, `keys/root.key`, `keys/signing.key` and
//! `keys/signing.trust` at `init`, loading what `serve` needs, the history
//! of every trust document issued (`keys/trust-history/`), rotating the
//! signing key and the root ([`rotate`], S2) and the [`KeyRing`] a running
//! hub reloads them through. The hub runs with the root's public half only:
//! `root.key` is written once, for the operator to move offline, and read
//! only from the file a rotation command is given. Must not: sign
//! documents other than trust documents (the publisher does that).

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeDelta, Utc};
use signet_common::envelope::{self, PublicKey, SigningKey};
use signet_common::trust::{CertifiedKey, TrustDocument};

mod ring;
pub mod rotate;

pub use ring::KeyRing;

/// How long the first signing key is certified for.
pub const SIGNING_KEY_LIFETIME: TimeDelta = TimeDelta::days(2 * 365);

/// Why key files could not be made or read. Messages name the file.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// A key file already exists: `init` never overwrites keys.
    #[error("{0} already exists: refusing to overwrite keys")]
    Exists(PathBuf),
    /// A rotation was given a root key that is not the hub's root.
    #[error(
        "{file} holds key {found}, not the hub's root {root} (keys/root.pub): \
         nothing was changed; give the offline root key"
    )]
    WrongRoot {
        /// The file given.
        file: PathBuf,
        /// The id of the key it holds.
        found: signet_common::envelope::KeyId,
        /// The id of the hub's root.
        root: signet_common::envelope::KeyId,
    },
    /// Reading or writing a file failed.
    #[error("{file}: {reason}")]
    Io {
        /// The file.
        file: PathBuf,
        /// Why.
        reason: String,
    },
    /// A file's contents are not what it should hold.
    #[error("{file}: {reason}")]
    Invalid {
        /// The file.
        file: PathBuf,
        /// Why.
        reason: String,
    },
}

/// What `serve` needs: the pinned root, the online signing key and the
/// trust document that certifies it.
#[derive(Debug)]
pub struct HubKeys {
    /// The root's public half, as devices pin it.
    pub root: PublicKey,
    /// The online key that signs every document but `trust`.
    pub signing: SigningKey,
    /// The root-signed `trust` document, as published on `signet/v1/trust`.
    pub trust: Vec<u8>,
    /// Its version.
    pub version: u64,
    /// The earlier trust documents an agent holding an older one needs
    /// first (each root rotation and the one before it, oldest first, at
    /// most [`signet_common::sync::documents::MAX_TRUST_CHAIN`]); empty
    /// until the root was rotated.
    pub chain: Vec<Vec<u8>>,
}

/// The key directory inside a data directory.
#[must_use]
pub fn key_dir(data: &Path) -> PathBuf {
    data.join("keys")
}

/// Creates the root and signing keys and the first trust document in
/// `data/keys`. Returns the root's public key (its id is the fingerprint
/// `init` prints).
///
/// # Errors
/// [`KeyFileError::Exists`] if any key file exists; I/O errors naming the file.
pub fn create(data: &Path, now: DateTime<Utc>) -> Result<PublicKey, KeyFileError> {
    let dir = key_dir(data);
    fs::create_dir_all(&dir).map_err(|e| io(&dir, &e))?;
    for name in ["root.pub", "root.key", "signing.key", "signing.trust"] {
        let path = dir.join(name);
        if path.exists() {
            return Err(KeyFileError::Exists(path));
        }
    }
    let keygen = |file: &str| {
        SigningKey::generate_pkcs8().map_err(|e| KeyFileError::Io {
            file: dir.join(file),
            reason: e.to_string(),
        })
    };
    let root_pkcs8 = keygen("root.key")?;
    let signing_pkcs8 = keygen("signing.key")?;
    let root = parse_key(&dir.join("root.key"), &root_pkcs8)?;
    let signing = parse_key(&dir.join("signing.key"), &signing_pkcs8)?;
    let trust = TrustDocument {
        version: 1,
        issued_at: now,
        root_key_id: root.key_id(),
        root_public_key: Some(root.public_key()),
        signing_keys: vec![CertifiedKey {
            key_id: signing.key_id(),
            public_key: signing.public_key(),
            not_before: now - TimeDelta::hours(1),
            not_after: now + SIGNING_KEY_LIFETIME,
        }],
    };
    let trust = envelope::sign_document(&trust, &root).map_err(|e| KeyFileError::Invalid {
        file: dir.join("signing.trust"),
        reason: e.to_string(),
    })?;
    write_new(&dir.join("root.key"), &root_pkcs8, 0o600)?;
    write_new(&dir.join("signing.key"), &signing_pkcs8, 0o600)?;
    write_new(&dir.join("signing.trust"), &trust, 0o644)?;
    rotate::keep_in_history(&dir, 1, &trust)?;
    let public_line = format!("{}\n", root.public_key().to_base64());
    write_new(&dir.join("root.pub"), public_line.as_bytes(), 0o644)?;
    sync_dir(&dir)?;
    Ok(root.public_key())
}

/// Loads `root.pub`, `signing.key` and `signing.trust`, and checks that the
/// trust document is signed by that root and certifies that signing key.
/// A rotation interrupted before its last rename left `root.pub.next` or
/// `signing.key.next` ([`rotate`]): each counts when `signing.trust`
/// (renamed first) names it, and is ignored otherwise, so what loads is
/// the keys before the rotation or after it, never a mix. Nothing is
/// written ([`rotate::recover`] tidies the files).
///
/// # Errors
/// A [`KeyFileError`] naming the file that is missing or wrong.
pub fn load(data: &Path) -> Result<HubKeys, KeyFileError> {
    let dir = key_dir(data);
    let trust_file = dir.join("signing.trust");
    let trust = read_bounded(&trust_file)?;
    let (root, store) = rotate::root_of(&dir, &trust)?;
    let signing = rotate::signing_of(&dir, &store)?;
    let version = store.version().unwrap_or_default();
    let chain = rotate::chain(&dir, version);
    Ok(HubKeys {
        root,
        signing,
        trust,
        version,
        chain,
    })
}

/// The most bytes a key or trust file may hold.
const MAX_KEY_FILE_BYTES: u64 = envelope::MAX_DOCUMENT_BYTES as u64;

/// Reads a key or trust file, refusing one over [`MAX_KEY_FILE_BYTES`].
fn read_bounded(file: &Path) -> Result<Vec<u8>, KeyFileError> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    File::open(file)
        .and_then(|f| f.take(MAX_KEY_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| io(file, &e))?;
    if bytes.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(KeyFileError::Invalid {
            file: file.to_owned(),
            reason: format!("over {MAX_KEY_FILE_BYTES} bytes"),
        });
    }
    Ok(bytes)
}

fn parse_key(file: &Path, pkcs8: &[u8]) -> Result<SigningKey, KeyFileError> {
    SigningKey::from_pkcs8(pkcs8).map_err(|e| invalid(file, &e))
}

/// Writes a new file (never an existing one) with `mode`, and fsyncs it.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyFileError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| io(path, &e))?;
    file.write_all(bytes).map_err(|e| io(path, &e))?;
    file.sync_all().map_err(|e| io(path, &e))
}

/// Makes the directory's entries durable (after creating files in it).
///
/// # Errors
/// An I/O error naming the directory.
pub fn sync_dir(dir: &Path) -> Result<(), KeyFileError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(dir, &e))
}

fn io(file: &Path, e: &std::io::Error) -> KeyFileError {
    KeyFileError::Io {
        file: file.to_owned(),
        reason: e.to_string(),
    }
}

fn invalid(file: &Path, e: &dyn std::fmt::Display) -> KeyFileError {
    KeyFileError::Invalid {
        file: file.to_owned(),
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use signet_common::documents::HubTime;
    use signet_common::trust::TrustStore;

    #[test]
    fn s2_init_writes_the_contract_key_files_and_serve_loads_them() {
        let data = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let root = create(data.path(), now).unwrap();
        let dir = key_dir(data.path());
        let root_pub = fs::read_to_string(dir.join("root.pub")).unwrap();
        assert_eq!(root_pub, format!("{}\n", root.to_base64()));
        let mode = |name: &str| {
            use std::os::unix::fs::PermissionsExt as _;
            fs::metadata(dir.join(name)).unwrap().permissions().mode() & 0o777
        };
        assert_eq!(mode("root.key"), 0o600);
        assert_eq!(mode("signing.key"), 0o600);
        // root.key is PKCS#8 of the key whose public half is root.pub.
        let root_key = SigningKey::from_pkcs8(&fs::read(dir.join("root.key")).unwrap()).unwrap();
        assert_eq!(root_key.public_key(), root);

        let keys = load(data.path()).unwrap();
        assert_eq!(keys.root, root);
        // A device pinning root.pub accepts the trust document and then
        // documents the signing key signs.
        let mut device = TrustStore::new(root);
        device.apply_trust(&keys.trust).unwrap();
        let doc = envelope::sign_document(
            &HubTime {
                version: 1,
                issued_at: now,
                time: now,
            },
            &keys.signing,
        )
        .unwrap();
        assert!(device.verify::<HubTime>(&doc, now).is_ok());
    }

    #[test]
    fn init_never_overwrites_keys() {
        let data = tempfile::tempdir().unwrap();
        let root = create(data.path(), Utc::now()).unwrap();
        assert!(matches!(
            create(data.path(), Utc::now()),
            Err(KeyFileError::Exists(_))
        ));
        assert_eq!(load(data.path()).unwrap().root, root);
    }

    #[test]
    fn load_names_the_bad_file() {
        let data = tempfile::tempdir().unwrap();
        create(data.path(), Utc::now()).unwrap();
        let other = tempfile::tempdir().unwrap();
        create(other.path(), Utc::now()).unwrap();
        // A trust document from another installation.
        fs::remove_file(key_dir(data.path()).join("signing.trust")).unwrap();
        fs::copy(
            key_dir(other.path()).join("signing.trust"),
            key_dir(data.path()).join("signing.trust"),
        )
        .unwrap();
        let err = load(data.path()).unwrap_err().to_string();
        assert!(err.contains("signing.trust"), "{err}");
    }
}
