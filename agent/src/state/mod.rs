//! The agent's durable state (S5, S9): one sled database in the data dir,
//! plus the two secret files.
//!
//! Owns: the on-disk layout — the device identity (device id, hub and broker
//! addresses, the pinned root key), the trust store, the rollback guard, the
//! trusted clock, the accepted signed documents (envelope bytes per
//! `{kind}/{subject}`), the playing manifest of each group (`active/{group}`,
//! D3), the seen command nonces, the device's own Ed25519 key
//! (`device.key`, PKCS#8, 0600) and its broker secret (`device.secret`,
//! 0600). Every [`Commit`] is one atomic sled batch followed by a flush, so a
//! caller that acknowledges after [`Store::commit`] returns acknowledges only
//! what a power cut cannot take back; commits at the same moment share a
//! flush ([`flush::FlushGate`], X2). Must not: decide what to accept — the
//! sync module decides, this module only records.

pub mod documents;
pub mod flush;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use signet_common::clock::TrustedClock;
use signet_common::envelope::{PublicKey, SigningKey};
use signet_common::ids::DeviceId;
use signet_common::rollback::RollbackGuard;
use signet_common::trust::TrustStore;

pub use documents::{Documents, HeldManifest, document_key, stored_payload};
pub use flush::{FlushGate, SharedDb};

/// The sled database's directory inside the data dir.
const DB_DIR: &str = "state";
/// The device's own Ed25519 key (PKCS#8).
pub const DEVICE_KEY_FILE: &str = "device.key";
/// The device's broker (and HTTP) secret.
pub const SECRET_FILE: &str = "device.secret";
/// The largest secret file read back.
const MAX_SECRET_BYTES: u64 = 4096;

const IDENTITY: &str = "identity";
const TRUST: &str = "trust";
const ROLLBACK: &str = "rollback";
const CLOCK: &str = "clock";
const DOC_PREFIX: &str = "doc/";
const NONCE_PREFIX: &str = "nonce/";
const ACTIVE_PREFIX: &str = "active/";

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A file or directory operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// sled failed (including: another agent process holds the database).
    #[error("state database {path}: {source}")]
    Db {
        /// The database path.
        path: PathBuf,
        /// sled's error.
        source: sled::Error,
    },
    /// A stored record does not decode.
    #[error("stored {key} is corrupt: {reason}")]
    Corrupt {
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
    /// The device is not paired yet.
    #[error("this device is not paired yet: run `signet-agent pair --hub URL` first")]
    NotPaired,
    /// The device is paired already.
    #[error("this device is already paired as {0}; remove the data dir to pair it again")]
    AlreadyPaired(DeviceId),
}

/// What a paired device knows about itself (the secret lives in its own
/// file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// The device id the hub gave at pairing.
    pub device_id: DeviceId,
    /// The hub's public base URL.
    pub hub_url: String,
    /// The broker URL given at pairing.
    pub broker_url: String,
    /// The MQTT user name.
    pub username: String,
    /// The CA PEM for `mqtts://`, if the hub gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    /// When the pairing was approved (wall clock of the device).
    pub paired_at: DateTime<Utc>,
}

/// One atomic, durable change.
#[derive(Debug, Default)]
pub struct Commit {
    /// The identity, written at pairing.
    pub identity: Option<Identity>,
    /// The trust store to hold from now on.
    pub trust: Option<TrustStore>,
    /// The rollback guard to hold from now on.
    pub guard: Option<RollbackGuard>,
    /// The trusted clock state to hold from now on.
    pub clock: Option<TrustedClock>,
    /// Envelope bytes to store, by `{kind}/{subject}`.
    pub put_documents: Vec<(String, Vec<u8>)>,
    /// Documents to drop, by `{kind}/{subject}`.
    pub remove_documents: Vec<String>,
    /// Command nonces seen, with the command's expiry.
    pub add_nonces: Vec<(String, DateTime<Utc>)>,
    /// Nonces to forget (their commands expired long ago).
    pub remove_nonces: Vec<String>,
    /// Manifests that become the playing ones (D3), envelope bytes by group.
    pub put_active: Vec<(String, Vec<u8>)>,
    /// Groups whose playing manifest stops (left the assignment, L4).
    pub remove_active: Vec<String>,
}

/// The open state of one agent.
#[derive(Debug, Clone)]
pub struct Store {
    /// The data dir.
    dir: PathBuf,
    /// The sled database (cheap to clone: an `Arc` inside); its flush
    /// makes every tree durable.
    db: sled::Db,
    /// Shared by every store of `db`: concurrent commits share flushes.
    gate: std::sync::Arc<FlushGate>,
    /// The tree holding this agent's records: the database's default tree,
    /// or this agent's own tree of a database shared by simulated screens
    /// ([`Self::open_in`]).
    records: sled::Tree,
    /// Put before the names of this agent's other trees ([`Self::tree`]).
    prefix: String,
}

/// How long [`Store::open`] waits for another holder of the state's lock.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether sled refused to open because another process holds the lock
/// (sled reports it only as an I/O error wrapping `EWOULDBLOCK`).
fn is_lock_held(e: &sled::Error) -> bool {
    match e {
        sled::Error::Io(io) => {
            io.kind() == std::io::ErrorKind::WouldBlock
                || io
                    .get_ref()
                    .is_some_and(|inner| inner.to_string().contains("could not acquire lock"))
        }
        _ => false,
    }
}

impl Store {
    /// Opens (creating if needed) the state in `dir`. Fails if another
    /// process holds it for longer than [`LOCK_WAIT`]: the lock of an
    /// instance that just died can outlive it for a moment, while a child
    /// it was starting (`df`, or any process forked from a thread while the
    /// store was open) still holds the inherited descriptor until its
    /// `exec` closes it; a restart right after a kill must not fail on that.
    ///
    /// # Errors
    /// [`StateError::Io`] or [`StateError::Db`].
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        create_private_dir(dir)?;
        let path = dir.join(DB_DIR);
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        let db = loop {
            match sled::Config::new().path(&path).open() {
                Err(e) if is_lock_held(&e) && std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                other => break other.map_err(|source| StateError::Db { path, source })?,
            }
        };
        let records = sled::Tree::clone(&db);
        Ok(Self {
            dir: dir.to_owned(),
            db,
            gate: std::sync::Arc::default(),
            records,
            prefix: String::new(),
        })
    }

    /// The state of one agent kept in trees named `{name}/…` of `db`, a
    /// database several agents share (X1: the fleet simulator runs
    /// thousands of screens in one process, one tree each, where one
    /// database per screen would cost a flusher thread and a log each).
    /// Its secret files live in `dir`. Each commit is still one atomic
    /// batch, flushed before [`Self::commit`] returns; the screens'
    /// concurrent commits share flushes through `shared`'s gate.
    ///
    /// # Errors
    /// [`StateError::Io`] or [`StateError::Db`].
    pub fn open_in(shared: &SharedDb, dir: &Path, name: &str) -> Result<Self, StateError> {
        create_private_dir(dir)?;
        let store = Self {
            dir: dir.to_owned(),
            db: shared.db.clone(),
            gate: shared.gate.clone(),
            records: sled::Tree::clone(&shared.db),
            prefix: format!("{name}/"),
        };
        let records = store.tree("state")?;
        Ok(Self { records, ..store })
    }

    /// As [`Self::open`], but waits up to `patience` while another process
    /// holds the database briefly (`signet-agent status` reading it as the
    /// service starts).
    ///
    /// # Errors
    /// As [`Self::open`], once `patience` has passed.
    pub fn open_patiently(dir: &Path, patience: std::time::Duration) -> Result<Self, StateError> {
        let deadline = std::time::Instant::now() + patience;
        loop {
            match Self::open(dir) {
                // sled reports a held lock as an `Other` I/O error.
                Err(StateError::Db {
                    source: sled::Error::Io(e),
                    ..
                }) if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                other => return other,
            }
        }
    }

    /// The data dir.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn db_error(&self, source: sled::Error) -> StateError {
        StateError::Db {
            path: self.dir.join(DB_DIR),
            source,
        }
    }

    fn get_json<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StateError> {
        let Some(bytes) = self.records.get(key).map_err(|e| self.db_error(e))? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StateError::Corrupt {
                key: key.to_owned(),
                reason: e.to_string(),
            })
    }

    /// The identity, if paired.
    ///
    /// # Errors
    /// On a database or decode failure.
    pub fn identity(&self) -> Result<Option<Identity>, StateError> {
        self.get_json(IDENTITY)
    }

    /// The identity; [`StateError::NotPaired`] when there is none.
    ///
    /// # Errors
    /// As [`Self::identity`], or not paired.
    pub fn require_identity(&self) -> Result<Identity, StateError> {
        self.identity()?.ok_or(StateError::NotPaired)
    }

    /// The trust store (pinned root and held trust document).
    ///
    /// # Errors
    /// On a database or decode failure, or when not paired.
    pub fn trust(&self) -> Result<TrustStore, StateError> {
        self.get_json(TRUST)?.ok_or(StateError::NotPaired)
    }

    /// The rollback guard (empty before the first document).
    ///
    /// # Errors
    /// On a database or decode failure.
    pub fn guard(&self) -> Result<RollbackGuard, StateError> {
        Ok(self.get_json(ROLLBACK)?.unwrap_or_default())
    }

    /// The trusted clock state, if one was persisted.
    ///
    /// # Errors
    /// On a database or decode failure.
    pub fn clock(&self) -> Result<Option<TrustedClock>, StateError> {
        self.get_json(CLOCK)
    }

    /// Every accepted document's envelope bytes, by `{kind}/{subject}`.
    ///
    /// # Errors
    /// On a database failure.
    pub fn documents(&self) -> Result<BTreeMap<String, Vec<u8>>, StateError> {
        let mut out = BTreeMap::new();
        for entry in self.records.scan_prefix(DOC_PREFIX) {
            let (key, value) = entry.map_err(|e| self.db_error(e))?;
            let key = String::from_utf8_lossy(&key[DOC_PREFIX.len()..]).into_owned();
            out.insert(key, value.to_vec());
        }
        Ok(out)
    }

    /// One accepted document's envelope bytes.
    ///
    /// # Errors
    /// On a database failure.
    pub fn document(&self, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self
            .records
            .get(format!("{DOC_PREFIX}{key}"))
            .map_err(|e| self.db_error(e))?
            .map(|v| v.to_vec()))
    }

    /// A named sled tree of the same database, for a subsystem that keeps
    /// its own records (the cache index, the event queue). Writes to it
    /// are durable after [`Self::flush`].
    ///
    /// # Errors
    /// On a database failure.
    pub fn tree(&self, name: &str) -> Result<sled::Tree, StateError> {
        self.db
            .open_tree(format!("{}{name}", self.prefix))
            .map_err(|e| self.db_error(e))
    }

    /// Flushes every tree of the database to disk (blocking): returns once
    /// a flush that began after the call has finished, shared with the
    /// commits and flushes made at the same moment ([`FlushGate`]).
    ///
    /// # Errors
    /// On a database failure.
    pub fn flush(&self) -> Result<(), StateError> {
        self.gate
            .flush_after(|| self.db.flush().map(|_| ()))
            .map_err(|e| self.db_error(e))
    }

    /// The playing manifests' envelope bytes, by group (D3): each became
    /// playing only once all the content it needs was present and verified.
    ///
    /// # Errors
    /// On a database failure.
    pub fn active_manifests(&self) -> Result<BTreeMap<String, Vec<u8>>, StateError> {
        let mut out = BTreeMap::new();
        for entry in self.records.scan_prefix(ACTIVE_PREFIX) {
            let (key, value) = entry.map_err(|e| self.db_error(e))?;
            let key = String::from_utf8_lossy(&key[ACTIVE_PREFIX.len()..]).into_owned();
            out.insert(key, value.to_vec());
        }
        Ok(out)
    }

    /// Whether a command nonce was seen before.
    ///
    /// # Errors
    /// On a database failure.
    pub fn nonce_seen(&self, nonce: &str) -> Result<bool, StateError> {
        self.records
            .contains_key(format!("{NONCE_PREFIX}{nonce}"))
            .map_err(|e| self.db_error(e))
    }

    /// Seen nonces whose command expired before `before`.
    ///
    /// # Errors
    /// On a database failure.
    pub fn nonces_expired_before(&self, before: DateTime<Utc>) -> Result<Vec<String>, StateError> {
        let mut out = Vec::new();
        for entry in self.records.scan_prefix(NONCE_PREFIX) {
            let (key, value) = entry.map_err(|e| self.db_error(e))?;
            let expired = std::str::from_utf8(&value)
                .ok()
                .and_then(|t| t.parse::<DateTime<Utc>>().ok())
                .is_none_or(|t| t < before);
            if expired {
                out.push(String::from_utf8_lossy(&key[NONCE_PREFIX.len()..]).into_owned());
            }
        }
        Ok(out)
    }

    /// Writes `commit` as one atomic batch and flushes it to disk. Blocking:
    /// call it from `spawn_blocking` in async code.
    ///
    /// # Errors
    /// On a database failure; then nothing of the commit is durable.
    pub fn commit(&self, commit: &Commit) -> Result<(), StateError> {
        let mut batch = sled::Batch::default();
        if let Some(identity) = &commit.identity {
            batch.insert(IDENTITY, json(identity));
        }
        if let Some(trust) = &commit.trust {
            batch.insert(TRUST, json(trust));
        }
        if let Some(guard) = &commit.guard {
            batch.insert(ROLLBACK, json(guard));
        }
        if let Some(clock) = &commit.clock {
            batch.insert(CLOCK, json(clock));
        }
        for (key, bytes) in &commit.put_documents {
            batch.insert(format!("{DOC_PREFIX}{key}").as_bytes(), bytes.as_slice());
        }
        for key in &commit.remove_documents {
            batch.remove(format!("{DOC_PREFIX}{key}").as_bytes());
        }
        for (nonce, expires_at) in &commit.add_nonces {
            batch.insert(
                format!("{NONCE_PREFIX}{nonce}").as_bytes(),
                expires_at.to_rfc3339().as_bytes(),
            );
        }
        for nonce in &commit.remove_nonces {
            batch.remove(format!("{NONCE_PREFIX}{nonce}").as_bytes());
        }
        for (group, bytes) in &commit.put_active {
            batch.insert(
                format!("{ACTIVE_PREFIX}{group}").as_bytes(),
                bytes.as_slice(),
            );
        }
        for group in &commit.remove_active {
            batch.remove(format!("{ACTIVE_PREFIX}{group}").as_bytes());
        }
        self.records
            .apply_batch(batch)
            .map_err(|e| self.db_error(e))?;
        self.flush()
    }

    /// Records a completed pairing: the identity, the pinned root and the
    /// broker secret (written first, 0600, so an identity never exists
    /// without its secret).
    ///
    /// # Errors
    /// [`StateError::AlreadyPaired`], or an I/O or database failure.
    pub fn record_pairing(
        &self,
        identity: Identity,
        root: PublicKey,
        secret: &str,
        clock: TrustedClock,
    ) -> Result<(), StateError> {
        if let Some(existing) = self.identity()? {
            return Err(StateError::AlreadyPaired(existing.device_id));
        }
        write_private_file(&self.dir.join(SECRET_FILE), secret.as_bytes(), true)?;
        self.commit(&Commit {
            identity: Some(identity),
            trust: Some(TrustStore::new(root)),
            guard: Some(RollbackGuard::new()),
            clock: Some(clock),
            ..Commit::default()
        })
    }

    /// The broker secret.
    ///
    /// # Errors
    /// When the file is missing, unreadable or too large.
    pub fn secret(&self) -> Result<String, StateError> {
        let path = self.dir.join(SECRET_FILE);
        let io = |source| StateError::Io {
            what: "read secret",
            path: path.clone(),
            source,
        };
        let len = std::fs::metadata(&path).map_err(io)?.len();
        if len > MAX_SECRET_BYTES {
            return Err(StateError::Corrupt {
                key: SECRET_FILE.to_owned(),
                reason: format!("over {MAX_SECRET_BYTES} bytes"),
            });
        }
        Ok(std::fs::read_to_string(&path)
            .map_err(io)?
            .trim()
            .to_owned())
    }

    /// The device's own key, generated once on first use (PKCS#8, 0600).
    ///
    /// # Errors
    /// On an I/O failure, or when the stored key is not a PKCS#8 Ed25519 key.
    pub fn device_key(&self) -> Result<SigningKey, StateError> {
        let path = self.dir.join(DEVICE_KEY_FILE);
        let pkcs8 = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let pkcs8 = SigningKey::generate_pkcs8().map_err(|e| StateError::Corrupt {
                    key: DEVICE_KEY_FILE.to_owned(),
                    reason: e.to_string(),
                })?;
                write_private_file(&path, &pkcs8, false)?;
                pkcs8
            }
            Err(source) => {
                return Err(StateError::Io {
                    what: "read device key",
                    path,
                    source,
                });
            }
        };
        SigningKey::from_pkcs8(&pkcs8).map_err(|e| StateError::Corrupt {
            key: DEVICE_KEY_FILE.to_owned(),
            reason: e.to_string(),
        })
    }
}

/// A stored record's JSON. The records are plain data (maps of strings,
/// numbers and times), whose serialization cannot fail.
fn json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// Creates `dir` (and parents) with mode 0700 where it is created.
fn create_private_dir(dir: &Path) -> Result<(), StateError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|source| StateError::Io {
        what: "create data dir",
        path: dir.to_owned(),
        source,
    })
}

/// Writes a file readable only by its owner (0600), durably: the file is
/// synced, then renamed into place, then its directory synced.
/// `replace` false refuses to overwrite an existing file.
fn write_private_file(path: &Path, bytes: &[u8], replace: bool) -> Result<(), StateError> {
    let io = |what, source| StateError::Io {
        what,
        path: path.to_owned(),
        source,
    };
    if !replace && path.exists() {
        return Err(io(
            "refuse to overwrite",
            std::io::Error::from(std::io::ErrorKind::AlreadyExists),
        ));
    }
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).map_err(|e| io("create", e))?;
    file.write_all(bytes).map_err(|e| io("write", e))?;
    file.sync_all().map_err(|e| io("sync", e))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(|e| io("rename", e))?;
    if let Some(parent) = path.parent()
        && let Ok(dir) = std::fs::File::open(parent)
    {
        dir.sync_all().map_err(|e| io("sync dir of", e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// D2, D3: a restart right after a kill opens the state once the last
    /// holder of its lock lets go, instead of failing on it.
    #[test]
    fn d2_open_waits_for_the_lock_a_previous_holder_releases() {
        let dir = tempfile::tempdir().unwrap();
        let held = Store::open(dir.path()).unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            drop(held);
        });
        let started = std::time::Instant::now();
        let reopened = Store::open(dir.path());
        release.join().unwrap();
        assert!(reopened.is_ok(), "{:?}", reopened.err());
        assert!(
            started.elapsed() >= std::time::Duration::from_millis(250),
            "the second open waited for the first holder"
        );
    }

    /// S7: the device key and the secret are readable by their owner only.
    #[cfg(unix)]
    #[test]
    fn s7_key_and_secret_files_are_0600() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = store.device_key().unwrap();
        assert_eq!(
            store.device_key().unwrap().key_id(),
            key.key_id(),
            "generated once"
        );
        let clock = TrustedClock::new(&signet_common::clock::ClockReading {
            wall: Utc::now(),
            boot_id: "b".into(),
            since_boot_ms: 1,
        });
        let identity = Identity {
            device_id: DeviceId::from("d-1"),
            hub_url: "http://127.0.0.1:1".into(),
            broker_url: "mqtt://127.0.0.1:1".into(),
            username: "d-1".into(),
            ca_pem: None,
            paired_at: Utc::now(),
        };
        store
            .record_pairing(identity.clone(), key.public_key(), "s3cret", clock.clone())
            .unwrap();
        for file in [DEVICE_KEY_FILE, SECRET_FILE] {
            let mode = std::fs::metadata(dir.path().join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
        assert_eq!(store.secret().unwrap(), "s3cret");
        assert!(matches!(
            store.record_pairing(identity, key.public_key(), "x", clock),
            Err(StateError::AlreadyPaired(_))
        ));
    }

    /// X2, S5: screens sharing one database (the fleet simulator) commit
    /// through one flush gate: every commit is counted by it and readable
    /// by its own store, in its own tree, when `commit` returns.
    #[test]
    fn x2_stores_of_a_shared_database_commit_through_one_gate() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new()
            .path(dir.path().join("shared"))
            .open()
            .unwrap();
        let shared = SharedDb::new(db);
        let screens = 8_usize;
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(screens));
        let threads: Vec<_> = (0..screens)
            .map(|i| {
                let store =
                    Store::open_in(&shared, &dir.path().join(format!("s{i}")), &format!("s{i}"))
                        .unwrap();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    let commit = Commit {
                        put_documents: vec![(
                            "group_manifest/g".into(),
                            vec![u8::try_from(i).unwrap()],
                        )],
                        ..Commit::default()
                    };
                    store.commit(&commit).unwrap();
                    store.document("group_manifest/g").unwrap()
                })
            })
            .collect();
        for (i, thread) in threads.into_iter().enumerate() {
            assert_eq!(thread.join().unwrap(), Some(vec![u8::try_from(i).unwrap()]));
        }
        assert_eq!(shared.gate().writes(), 8);
        let flushes = shared.gate().flushes();
        assert!((1..=8).contains(&flushes), "{flushes} flushes");
    }
}
