//! The content-addressed blob store under `<shared_dir>/content/` (D2, A8, S9;
//! `shared_dir` is `data` unless configured: a directory every hub replica
//! mounts, X5, so a blob uploaded through one replica serves from all).
//!
//! An upload streams into `tmp/`, hashed with SHA-256 as it arrives and cut
//! off at the size limit; the bytes are never all in memory. A finished
//! upload is `sync_all`ed and held as a [`StagedBlob`]; committing it renames
//! it to its lowercase-hex hash and syncs the directory, or drops it when
//! that blob already exists (identical bytes are stored once). A temporary
//! file is deleted whenever the upload does not finish: size overflow,
//! unknown type, body error, client disconnect (the future is dropped) or a
//! staged blob that is never committed.
//!
//! Blobs are written before the record that names them, outside any store
//! transaction; an upload holds a [`Pin`] on its blob from before the commit
//! until its record is written or refused, and [`BlobStore::remove_unused`]
//! leaves pinned blobs alone, so a concurrent deletion of the last item
//! with the same bytes cannot take the blob from under the new record.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex, PoisonError};

use axum::body::Bytes;
use futures_util::{Stream, StreamExt as _};
use signet_common::digest::Sha256;
use tokio::io::AsyncWriteExt as _;

use super::detect::{self, Detected, HEAD_LEN, MAX_TEMPLATE_BYTES};
use crate::identity::new_id;

/// Why an upload or a blob operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The body is larger than the limit.
    #[error("the upload is larger than {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// The bytes are none of the accepted types.
    #[error("the bytes are not a known media type or a JSON template")]
    Unsupported,
    /// The body ended with an error (truncated, client gone).
    #[error("the upload did not complete: {0}")]
    Body(String),
    /// The hub's disk failed.
    #[error("content store: {0}")]
    Io(String),
}

fn io(what: &str, path: &Path, e: &std::io::Error) -> BlobError {
    BlobError::Io(format!("{what} {}: {e}", path.display()))
}

/// The blob directory of a data directory.
#[derive(Debug, Clone)]
pub struct BlobStore {
    /// `<shared_dir>/content`.
    dir: PathBuf,
}

/// Deletes a temporary file when dropped, unless disarmed (its path taken
/// out). The content store and the screenshot store stage through it.
pub(crate) struct TempFile(pub(crate) Option<PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.0.take()
            && let Err(e) = std::fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), error = %e, "temporary file not removed");
        }
    }
}

/// A complete, synced upload in `tmp/`, not yet in the store; deleted when
/// dropped uncommitted.
pub struct StagedBlob {
    /// The temporary file.
    temp: TempFile,
    /// The SHA-256 of its bytes.
    pub sha256: Sha256,
    /// Its size in bytes.
    pub size: u64,
    /// What the bytes are.
    pub detected: Detected,
}

impl StagedBlob {
    /// The temporary file (for probing it before it is committed).
    #[must_use]
    pub fn path(&self) -> Option<&Path> {
        self.temp.0.as_deref()
    }
}

impl BlobStore {
    /// The blob store of the data directory `data`.
    #[must_use]
    pub fn new(data: &Path) -> Self {
        Self {
            dir: data.join("content"),
        }
    }

    /// Where the blob with `sha256` lives (whether or not it exists).
    #[must_use]
    pub fn path_of(&self, sha256: &Sha256) -> PathBuf {
        self.dir.join(sha256.to_string())
    }

    /// The temporary directory of unfinished uploads.
    #[must_use]
    pub fn tmp_dir(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    /// Streams `body` into a temporary file, hashing as it goes, refusing
    /// more than `limit` bytes and bytes of no known type; the file is
    /// synced before this returns.
    ///
    /// # Errors
    /// [`BlobError`]; the temporary file is gone then.
    pub async fn stage<S, E>(&self, body: S, limit: u64) -> Result<StagedBlob, BlobError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        let tmp = self.tmp_dir();
        tokio::fs::create_dir_all(&tmp)
            .await
            .map_err(|e| io("create", &tmp, &e))?;
        let path = tmp.join(new_id("upload-"));
        let mut file = tokio::fs::File::create_new(&path)
            .await
            .map_err(|e| io("create", &path, &e))?;
        let temp = TempFile(Some(path.clone()));
        let mut hasher = Sha256::hasher();
        let mut size: u64 = 0;
        let mut head: Vec<u8> = Vec::with_capacity(HEAD_LEN);
        // Kept only for a body that opens like a JSON object (a template).
        let mut json: Option<Vec<u8>> = None;
        let mut magic: Option<Detected> = None;
        let mut body = std::pin::pin!(body);
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| BlobError::Body(e.to_string()))?;
            size = size.saturating_add(chunk.len() as u64);
            if size > limit {
                return Err(BlobError::TooLarge { limit });
            }
            let mut rest: &[u8] = &chunk;
            if head.len() < HEAD_LEN {
                let take = (HEAD_LEN - head.len()).min(chunk.len());
                head.extend_from_slice(&chunk[..take]);
                rest = &chunk[take..];
                if head.len() == HEAD_LEN {
                    magic = detect::detect_magic(&head);
                    if magic.is_none() {
                        if !detect::looks_like_json(&head) {
                            return Err(BlobError::Unsupported);
                        }
                        json = Some(head.clone());
                    }
                }
            }
            if let Some(kept) = json.as_mut() {
                if kept.len() + rest.len() > MAX_TEMPLATE_BYTES {
                    return Err(BlobError::Unsupported);
                }
                kept.extend_from_slice(rest);
            }
            hasher.update(&chunk);
            file.write_all(&chunk)
                .await
                .map_err(|e| io("write", &path, &e))?;
        }
        // Bodies shorter than the head are judged when they end.
        let detected = match (magic, json) {
            (Some(found), _) => Some(found),
            (None, Some(kept)) => detect::is_template(&kept),
            (None, None) if head.len() < HEAD_LEN => {
                detect::detect_magic(&head).or_else(|| detect::is_template(&head))
            }
            (None, None) => None,
        }
        .ok_or(BlobError::Unsupported)?;
        file.flush().await.map_err(|e| io("write", &path, &e))?;
        file.sync_all().await.map_err(|e| io("sync", &path, &e))?;
        drop(file);
        Ok(StagedBlob {
            temp,
            sha256: hasher.finish(),
            size,
            detected,
        })
    }

    /// Pins the blob `sha256` until the returned guard is dropped. Hold it
    /// from before [`Self::commit`] until the record that names the blob is
    /// written or refused (see the module doc). The pin is seen by this
    /// process and, as a file under `pins/`, by every replica sharing the
    /// directory (X5); a pin file a killed process left behind only keeps
    /// that blob until the next removal finds it unpinned.
    #[must_use]
    pub fn pin(&self, sha256: &Sha256) -> Pin {
        let path = self.path_of(sha256);
        let mut pinned = PINNED.lock().unwrap_or_else(PoisonError::into_inner);
        *pinned.entry(path.clone()).or_default() += 1;
        let pins = self.dir.join(PINS);
        let file = pins.join(format!("{sha256}.{}", new_id("pin-")));
        let made = std::fs::create_dir_all(&pins).and_then(|()| std::fs::File::create(&file));
        match made {
            Ok(_) => Pin {
                path,
                file: Some(file),
            },
            Err(e) => {
                tracing::warn!(path = %file.display(), error = %e,
                    "blob pin file not made: other replicas may remove the blob meanwhile");
                Pin { path, file: None }
            }
        }
    }

    /// Moves a staged upload into the store under its hash (or drops it when
    /// that blob exists already) and makes the move durable. Hold a [`Pin`]
    /// on the hash until the record that uses it is written.
    ///
    /// # Errors
    /// [`BlobError::Io`]; the temporary file is gone then.
    pub async fn commit(&self, mut staged: StagedBlob) -> Result<(), BlobError> {
        let Some(temp) = staged.temp.0.take() else {
            return Err(BlobError::Io("staged blob without a file".into()));
        };
        let target = self.path_of(&staged.sha256);
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = TempFile(Some(temp.clone()));
            if target.exists() {
                return Ok(()); // identical bytes: the guard deletes the copy
            }
            std::fs::rename(&temp, &target).map_err(|e| io("rename", &temp, &e))?;
            guard.0 = None;
            crate::keys::sync_dir(&dir).map_err(|e| BlobError::Io(e.to_string()))
        })
        .await
        .map_err(|e| BlobError::Io(format!("commit task failed: {e}")))?
    }

    /// Deletes the blob with `sha256` (absent is fine) and its thumbnail
    /// ([`super::thumbnail`]) when no upload holds a [`Pin`] on it and
    /// `unused` (which reads the records) says no record names it. Across
    /// replicas sharing the directory (X5) the blob is first moved aside,
    /// then the pins and `unused` are checked, and it is put back when
    /// either says it is needed: an upload elsewhere either pinned it
    /// before it found the blob in place (its pin is seen, or its record),
    /// or found it gone and stored its own copy. Syncs the directory.
    ///
    /// # Errors
    /// `unused`'s error, or [`BlobError::Io`].
    pub async fn remove_unused<E>(
        &self,
        sha256: &Sha256,
        unused: impl FnOnce() -> Result<bool, E> + Send + 'static,
    ) -> Result<(), E>
    where
        E: From<BlobError> + Send + 'static,
    {
        let target = self.path_of(sha256);
        let dir = self.dir.clone();
        let sha = sha256.to_string();
        let removed = tokio::task::spawn_blocking(move || -> Result<bool, E> {
            let pinned = PINNED.lock().unwrap_or_else(PoisonError::into_inner);
            if pinned.contains_key(&target) || pinned_elsewhere(&dir, &sha)? {
                return Ok(false);
            }
            let aside = dir.join("tmp").join(new_id(&format!("removing-{sha}-")));
            std::fs::create_dir_all(dir.join("tmp")).map_err(|e| io("create", &dir, &e))?;
            match std::fs::rename(&target, &aside) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(io("move", &target, &e).into()),
            }
            let needed = match pinned_elsewhere(&dir, &sha).map_err(E::from) {
                Ok(true) => Ok(true),
                Ok(false) => unused().map(|unused| !unused),
                Err(e) => Err(e),
            };
            if !matches!(needed, Ok(false)) {
                // Back (over an identical copy an upload may have stored).
                std::fs::rename(&aside, &target).map_err(|e| io("restore", &target, &e))?;
                return needed.map(|_| false);
            }
            std::fs::remove_file(&aside).map_err(|e| io("remove", &aside, &e))?;
            drop(pinned);
            crate::keys::sync_dir(&dir).map_err(|e| BlobError::Io(e.to_string()))?;
            Ok(true)
        })
        .await
        .map_err(|e| BlobError::Io(format!("remove task failed: {e}")))??;
        // Its thumbnail goes with it (derived data: no sync needed).
        if removed && let Some(data) = self.dir.parent() {
            let thumbnails = super::thumbnail::dir(data);
            for format in super::thumbnail::Format::ALL {
                let path = super::thumbnail::path_of(&thumbnails, sha256, format);
                if let Err(e) = tokio::fs::remove_file(&path).await
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    tracing::warn!(path = %path.display(), error = %e, "thumbnail not removed");
                }
            }
        }
        Ok(())
    }
}

/// The blobs uploads hold a [`Pin`] on, by path, with how many pins each.
static PINNED: LazyLock<Mutex<HashMap<PathBuf, usize>>> = LazyLock::new(Default::default);

/// Where pin files live under the blob directory: `{sha256}.{unique}`.
const PINS: &str = "pins";

/// Whether any process holds a pin file on blob `sha` (X5).
fn pinned_elsewhere(dir: &Path, sha: &str) -> Result<bool, BlobError> {
    let pins = dir.join(PINS);
    let entries = match std::fs::read_dir(&pins) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io("read", &pins, &e)),
    };
    let prefix = format!("{sha}.");
    for entry in entries {
        let entry = entry.map_err(|e| io("read", &pins, &e))?;
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A blob an upload is about to name in a record ([`BlobStore::pin`]):
/// [`BlobStore::remove_unused`] leaves it until this guard is dropped.
#[derive(Debug)]
pub struct Pin {
    /// The blob.
    path: PathBuf,
    /// Its pin file, seen by other replicas.
    file: Option<PathBuf>,
}

impl Drop for Pin {
    fn drop(&mut self) {
        if let Some(file) = self.file.take()
            && let Err(e) = std::fs::remove_file(&file)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %file.display(), error = %e, "blob pin file not removed");
        }
        let mut pinned = PINNED.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = pinned.get_mut(&self.path) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                pinned.remove(&self.path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;

    /// S9, D2: an upload's pinned blob survives the removal of an unused
    /// blob with the same bytes; unpinned, it goes.
    #[tokio::test]
    async fn s9_a_pinned_blob_is_not_removed_until_its_pin_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::new(dir.path());
        let body = futures_util::stream::once(async {
            Ok::<_, std::io::Error>(Bytes::from_static(b"{\"canvas\": {}}"))
        });
        let staged = blobs.stage(body, 1024).await.unwrap();
        let sha256 = staged.sha256;
        let pin = blobs.pin(&sha256);
        blobs.commit(staged).await.unwrap();
        let unused = || Ok::<_, BlobError>(true);
        blobs.remove_unused(&sha256, unused).await.unwrap();
        assert!(blobs.path_of(&sha256).exists(), "pinned: kept");
        drop(pin);
        blobs
            .remove_unused(&sha256, || Ok::<_, BlobError>(false))
            .await
            .unwrap();
        assert!(blobs.path_of(&sha256).exists(), "named by a record: kept");
        blobs.remove_unused(&sha256, unused).await.unwrap();
        assert!(
            !blobs.path_of(&sha256).exists(),
            "unpinned and unused: removed"
        );
    }

    /// X5: a pin another replica holds (its pin file in the shared
    /// directory) keeps the blob, as does a record written meanwhile.
    #[tokio::test]
    async fn x5_a_pin_file_of_another_replica_keeps_the_blob() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::new(dir.path());
        let body = futures_util::stream::once(async {
            Ok::<_, std::io::Error>(Bytes::from_static(b"{\"canvas\": {\"w\": 1}}"))
        });
        let staged = blobs.stage(body, 1024).await.unwrap();
        let sha256 = staged.sha256;
        blobs.commit(staged).await.unwrap();
        let other = dir
            .path()
            .join("content/pins")
            .join(format!("{sha256}.other-replica"));
        std::fs::create_dir_all(dir.path().join("content/pins")).unwrap();
        std::fs::write(&other, b"").unwrap();
        let unused = || Ok::<_, BlobError>(true);
        blobs.remove_unused(&sha256, unused).await.unwrap();
        assert!(blobs.path_of(&sha256).exists(), "pinned elsewhere: kept");
        std::fs::remove_file(&other).unwrap();
        blobs
            .remove_unused(&sha256, || Ok::<_, BlobError>(false))
            .await
            .unwrap();
        assert!(
            blobs.path_of(&sha256).exists(),
            "named by a record: put back"
        );
        blobs.remove_unused(&sha256, unused).await.unwrap();
        assert!(
            !blobs.path_of(&sha256).exists(),
            "unpinned and unused: removed"
        );
        let left: Vec<_> = std::fs::read_dir(blobs.tmp_dir()).unwrap().collect();
        assert!(left.is_empty(), "nothing left aside");
    }
}
