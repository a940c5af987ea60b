//! Verification of the cache's blobs (D9, A8): handing the player only a
//! file still as it was hashed, hashing the blobs that wait for it (those
//! the player waits for first), re-hashing a blob the file watcher saw
//! change, and quarantining one that no longer matches.
//!
//! Owns: the hashing claims and the quarantine's bound. Must not: decide
//! what is needed or touch the network.

use super::*;

impl Cache {
    /// Opens the verified blob of `sha256` for playing (A8): `Some` only if
    /// it was verified in this run and the file at its path is still the
    /// one hashed (same inode, size, mtime and ctime). Reading through the
    /// returned handle reads that file even if the path is replaced later.
    /// A blob that changed since it was hashed goes back to verification
    /// (and is not played until it hashed to its name again).
    #[must_use]
    pub fn open_verified(&self, sha256: &Sha256) -> Option<File> {
        let record = *self.read_contents().blobs.get(sha256)?;
        let path = self.blob_path(sha256);
        if let Ok(file) = File::open(&path)
            && let Ok(meta) = file.metadata()
            && meta.is_file()
            && Stamp::of(&meta) == record.stamp()
        {
            return Some(file);
        }
        tracing::warn!(
            %sha256,
            "cache: the file changed since it was hashed; it is hashed again before it may play (A8, D9)"
        );
        let _files = self.lock_files();
        let mut contents = self.write_contents();
        if let Some(record) = contents.blobs.remove(sha256) {
            contents.unverified.insert(
                *sha256,
                Unverified {
                    record,
                    indexed: true,
                },
            );
            contents.urgent.insert(*sha256);
            self.inner.unverified_added.notify_one();
        }
        None
    }

    /// Hashes the next blob waiting for verification: first those the
    /// player waits for ([`Self::prioritize`]), then the most recently
    /// needed (the current manifests mark what they need, D10). `None`
    /// when none waits.
    ///
    /// # Errors
    /// As [`Self::reverify`]; the blob then stops waiting and is dropped
    /// from the index (it is not played, and fetched again when needed).
    pub fn verify_next(&self) -> Result<Option<(Sha256, Reverified)>, CacheError> {
        loop {
            let next = {
                let contents = self.read_contents();
                let hashing = self
                    .inner
                    .hashing
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                // One another thread hashes now is left to it, unless it
                // is the last one waiting.
                let free = |sha: &Sha256| !hashing.contains(sha);
                contents
                    .urgent
                    .iter()
                    .find(|sha| contents.unverified.contains_key(sha) && free(sha))
                    .or_else(|| {
                        contents
                            .unverified
                            .iter()
                            .filter(|(sha, _)| free(sha))
                            .max_by_key(|(sha, u)| (u.record.last_needed, std::cmp::Reverse(**sha)))
                            .map(|(sha, _)| sha)
                    })
                    .or_else(|| contents.unverified.keys().next())
                    .copied()
            };
            let Some(sha) = next else {
                return Ok(None);
            };
            match self.verify_waiting(&sha) {
                Ok(Some(outcome)) => return Ok(Some((sha, outcome))),
                // Another thread hashed it meanwhile.
                Ok(None) => {}
                Err(error) => {
                    let _files = self.lock_files();
                    if let Err(e) = self.forget(&sha) {
                        tracing::warn!(%sha, "cache: dropping an unverifiable blob: {e}");
                    }
                    return Err(error);
                }
            }
        }
    }

    /// Hashes `sha256` if it waits for verification (waiting for another
    /// thread hashing it first); `None` when it no longer waits.
    ///
    /// # Errors
    /// As [`Self::reverify`].
    pub fn verify_waiting(&self, sha256: &Sha256) -> Result<Option<Reverified>, CacheError> {
        let _claim = self.claim(sha256);
        if !self.awaits_verification(sha256) {
            return Ok(None);
        }
        self.reverify_claimed(sha256).map(Some)
    }

    /// Claims the hashing of `sha256`, waiting while another thread holds
    /// the claim.
    pub(super) fn claim(&self, sha256: &Sha256) -> HashClaim<'_> {
        let mut hashing = self
            .inner
            .hashing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while hashing.contains(sha256) {
            hashing = self
                .inner
                .hashed
                .wait(hashing)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        hashing.insert(*sha256);
        HashClaim {
            inner: &self.inner,
            sha256: *sha256,
        }
    }

    /// Re-hashes the blob of `sha256` (D9, A8). Matching: it is (or stays)
    /// verified, with the file's current stamp. Not matching: a file the
    /// index listed is moved to quarantine, an unlisted one is deleted, and
    /// it is dropped from the index and the sets, durably, so it is fetched
    /// again. Missing: its record is dropped. A file that changes while it
    /// is hashed is hashed again; one that keeps changing is quarantined.
    ///
    /// # Errors
    /// On a file, index or flush failure.
    pub fn reverify(&self, sha256: &Sha256) -> Result<Reverified, CacheError> {
        let _claim = self.claim(sha256);
        self.reverify_claimed(sha256)
    }

    /// [`Self::reverify`] under the claim on `sha256`.
    pub(super) fn reverify_claimed(&self, sha256: &Sha256) -> Result<Reverified, CacheError> {
        let path = self.blob_path(sha256);
        for _ in 0..REVERIFY_TRIES {
            let before = on_disk(&path)?;
            let hashed = match before {
                OnDisk::File(_) => Some(hash_file(&path)),
                OnDisk::Missing | OnDisk::NotAFile => None,
            };
            let _files = self.lock_files();
            let now = on_disk(&path)?;
            if now != before {
                continue;
            }
            let stamp = match now {
                OnDisk::Missing => {
                    self.forget(sha256)?;
                    return Ok(Reverified::Absent);
                }
                OnDisk::NotAFile => {
                    tracing::warn!(path = %path.display(), "cache: removing a non-file in place of a blob");
                    remove_any(&path)?;
                    self.forget(sha256)?;
                    return Ok(Reverified::Absent);
                }
                OnDisk::File(stamp) => stamp,
            };
            let (actual, len) = match hashed {
                Some(Ok(hashed)) => hashed,
                Some(Err(CacheError::Io { source, .. }))
                    if source.kind() == io::ErrorKind::NotFound =>
                {
                    continue;
                }
                Some(Err(e)) => return Err(e),
                None => continue,
            };
            if actual == *sha256 && len == stamp.size {
                let last_needed = {
                    let contents = self.read_contents();
                    contents
                        .blobs
                        .get(sha256)
                        .or_else(|| contents.unverified.get(sha256).map(|u| &u.record))
                        .and_then(|r| r.last_needed)
                };
                self.record(sha256, IndexRecord::new(stamp, last_needed))?;
                return Ok(Reverified::Intact);
            }
            self.reject(sha256, &path, &format!("it hashes to {actual}"))?;
            return Ok(Reverified::Quarantined);
        }
        let _files = self.lock_files();
        self.reject(sha256, &path, "it kept changing while it was hashed")?;
        Ok(Reverified::Quarantined)
    }

    /// Takes a blob that does not match out of play, under the files lock:
    /// quarantined if the index listed it, else deleted; forgotten.
    pub(super) fn reject(&self, sha256: &Sha256, path: &Path, why: &str) -> Result<(), CacheError> {
        let listed = self
            .read_contents()
            .unverified
            .get(sha256)
            .is_none_or(|u| u.indexed);
        if listed {
            match self.quarantine_file(sha256, path)? {
                Some(kept) => tracing::warn!(
                    %sha256,
                    kept = %kept.display(),
                    "cache: a cached file no longer matches its hash ({why}); not played, kept in quarantine, fetched again (A8, D9)"
                ),
                None => tracing::warn!(
                    %sha256,
                    "cache: a cached file no longer matches its hash ({why}); not played, deleted (over the quarantine bound), fetched again (A8, D9)"
                ),
            }
        } else {
            tracing::warn!(%sha256, "cache: removing an unindexed file that does not match its name ({why})");
            remove_any(path)?;
        }
        self.forget(sha256)
    }

    /// Handles a file-watcher event on `path` (D9): a blob's path is
    /// re-verified (`Some`); anything else directly in `blobs/` (a stray
    /// file, an editor's temp file) is removed (`None`); paths elsewhere are
    /// ignored (`None`).
    ///
    /// # Errors
    /// As [`Self::reverify`], or when removing a stray file fails.
    pub fn reverify_path(&self, path: &Path) -> Result<Option<(Sha256, Reverified)>, CacheError> {
        let blobs_dir = self.blobs_dir();
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Ok(None);
        };
        let in_blobs =
            parent == blobs_dir || fs::canonicalize(parent).is_ok_and(|p| p == blobs_dir);
        if !in_blobs {
            return Ok(None);
        }
        if let Some(sha) = name.to_str().and_then(|n| n.parse::<Sha256>().ok()) {
            return self.reverify(&sha).map(|r| Some((sha, r)));
        }
        let _files = self.lock_files();
        if fs::symlink_metadata(path).is_ok() {
            tracing::warn!(path = %path.display(), "cache: removing a stray file from the blobs");
            remove_any(path)?;
        }
        Ok(None)
    }

    /// Moves `path` to `quarantine/{sha}.{unix millis}` (durably) and keeps
    /// only the newest quarantined files: at most [`QUARANTINE_KEEP`] of
    /// them and [`QUARANTINE_MAX_BYTES`] in all. Returns where the file is
    /// kept, or `None` when it was deleted for the bound.
    pub(super) fn quarantine_file(
        &self,
        sha256: &Sha256,
        path: &Path,
    ) -> Result<Option<PathBuf>, CacheError> {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let dir = self.quarantine_dir();
        let target = dir.join(format!("{sha256}.{millis}"));
        fs::rename(path, &target).map_err(io_error("quarantining", path))?;
        sync_dir(&dir)?;
        sync_dir(&self.blobs_dir())?;
        let mut files = list_dir(&dir)?
            .into_iter()
            .map(|(name, path, _)| {
                let millis = name
                    .rsplit_once('.')
                    .and_then(|(_, m)| m.parse::<u128>().ok())
                    .unwrap_or(0);
                let len = fs::symlink_metadata(&path).map_or(0, |m| m.len());
                (millis, path, len)
            })
            .collect::<Vec<_>>();
        // Newest first; the new file sorts first among equal millis.
        files.sort_by(|a, b| {
            b.0.cmp(&a.0)
                .then_with(|| (b.1 == target).cmp(&(a.1 == target)))
        });
        let mut count = 0usize;
        let mut bytes = 0u64;
        let mut kept = None;
        for (_, file, len) in files {
            bytes = bytes.saturating_add(len);
            count += 1;
            if count > QUARANTINE_KEEP || bytes > QUARANTINE_MAX_BYTES {
                remove_any(&file)?;
                bytes = bytes.saturating_sub(len);
                count -= 1;
            } else if file == target {
                kept = Some(file);
            }
        }
        sync_dir(&dir)?;
        Ok(kept)
    }
}
