//! [`KeyRing`]: the keys a running hub signs and serves with, reloaded
//! when a rotation (S2) changed the key files, with no restart.
//!
//! Owns: the current [`HubKeys`], telling whether the files changed since
//! they were loaded, and the flag that asks the publishing loop to re-sign
//! what the previous signing key signed. Must not: watch on its own (the
//! publishing side polls [`KeyRing::reload`]) or publish anything.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::SystemTime;

use super::{HubKeys, KeyFileError, key_dir, load};

/// The files whose change means the keys may have changed.
const WATCHED: [&str; 5] = [
    "root.pub",
    "signing.key",
    "signing.trust",
    "root.pub.next",
    "signing.key.next",
];

/// What the watched files looked like: (modification time, length) each.
type Stamp = Vec<Option<(SystemTime, u64)>>;

/// The hub's keys, swappable while it runs.
#[derive(Debug)]
pub struct KeyRing {
    /// The data directory they are loaded from.
    data: PathBuf,
    /// What signs and is served now.
    current: RwLock<Arc<HubKeys>>,
    /// The files as they were when `current` was loaded.
    stamp: Mutex<Stamp>,
    /// Whether documents signed by another key may need re-signing: set at
    /// start (a rotation may have happened while the hub was down) and on
    /// every reload that changed the signing key.
    rekey: AtomicBool,
}

fn stamp(dir: &Path) -> Stamp {
    WATCHED
        .iter()
        .map(|name| {
            let meta = std::fs::metadata(dir.join(name)).ok()?;
            Some((meta.modified().ok()?, meta.len()))
        })
        .collect()
}

impl KeyRing {
    /// Loads the keys of `data`.
    ///
    /// # Errors
    /// As [`load`].
    pub fn open(data: &Path) -> Result<Self, KeyFileError> {
        let before = stamp(&key_dir(data));
        let keys = load(data)?;
        Ok(Self {
            data: data.to_owned(),
            current: RwLock::new(Arc::new(keys)),
            stamp: Mutex::new(before),
            rekey: AtomicBool::new(true),
        })
    }

    /// The keys now: the same snapshot for everything one signing does.
    #[must_use]
    pub fn current(&self) -> Arc<HubKeys> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Loads the key files again when they changed since the last load;
    /// returns the new keys when the trust document or the signing key
    /// changed. Files caught half written or half copied (a replica's
    /// keys being copied, docs/replicas.md) do not load: the keys in use
    /// stay, and the next call tries again.
    ///
    /// # Errors
    /// As [`load`]; nothing changed then.
    pub fn reload(&self) -> Result<Option<Arc<HubKeys>>, KeyFileError> {
        let dir = key_dir(&self.data);
        let now = stamp(&dir);
        let mut seen = self.stamp.lock().unwrap_or_else(PoisonError::into_inner);
        if *seen == now {
            return Ok(None);
        }
        let keys = load(&self.data)?;
        *seen = now;
        let held = self.current();
        if keys.trust == held.trust && keys.signing.key_id() == held.signing.key_id() {
            return Ok(None);
        }
        let keys = Arc::new(keys);
        if keys.signing.key_id() != held.signing.key_id() {
            self.rekey.store(true, Ordering::SeqCst);
        }
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::clone(&keys);
        Ok(Some(keys))
    }

    /// Takes the request to re-sign what another key signed (the
    /// publishing loop calls it once per pass).
    pub fn take_rekey(&self) -> bool {
        self.rekey.swap(false, Ordering::SeqCst)
    }

    /// Asks again for re-signing (a pass that failed).
    pub fn want_rekey(&self) {
        self.rekey.store(true, Ordering::SeqCst);
    }
}
