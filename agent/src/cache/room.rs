//! Room in the cache (D10, L3): marking what the current manifests need,
//! refusing content over the limit, evicting what no manifest needs (least
//! recently needed first) and purging what no held manifest lists.
//!
//! Owns: the eviction order and the space computation. Must not: decide
//! what is needed (callers pass it).

use super::*;

impl Cache {
    /// Makes room for the needed content (D10). Marks the needed blobs'
    /// `last_needed = now`. If the needed total (present or not) exceeds the
    /// limit: [`CacheFull`], nothing evicted. Otherwise removes partial
    /// downloads not needed, then evicts blobs not needed, least recently
    /// needed first, until the used bytes plus the needed bytes still
    /// missing fit the limit. Returns what was evicted. A failure to delete
    /// or record is logged (and the blob stays counted), never hidden as
    /// success of the space computation.
    ///
    /// # Errors
    /// [`CacheFull`] when the needed content alone exceeds the limit.
    pub fn make_room(
        &self,
        needed: &BTreeMap<Sha256, u64>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Sha256>, CacheFull> {
        let _files = self.lock_files();
        let limit = self.limit();
        let needed_bytes = needed.values().fold(0u64, |sum, s| sum.saturating_add(*s));

        let mut marked = Vec::new();
        {
            let mut contents = self.write_contents();
            contents.pending_marks.clear();
            let contents = &mut *contents;
            for sha in needed.keys() {
                let record = contents
                    .blobs
                    .get_mut(sha)
                    .or_else(|| contents.unverified.get_mut(sha).map(|u| &mut u.record));
                if let Some(record) = record {
                    record.last_needed = Some(now);
                    marked.push((*sha, *record));
                } else {
                    contents.pending_marks.insert(*sha, now);
                }
            }
        }
        for (sha, record) in &marked {
            if let Err(e) = self
                .inner
                .index
                .insert(sha.to_string(), encode_record(record))
            {
                tracing::warn!(%sha, "cache: recording last_needed failed: {e}");
            }
        }
        if needed_bytes > limit {
            self.flush_logged();
            return Err(CacheFull {
                needed_bytes,
                limit_bytes: limit,
            });
        }

        let mut partials = self.partials();
        partials.retain(|sha, _| {
            if needed.contains_key(sha) {
                return true;
            }
            let path = self.partial_path(sha);
            match remove_any(&path) {
                Ok(()) => false,
                Err(e) => {
                    tracing::warn!("cache: removing an unneeded partial: {e}");
                    true
                }
            }
        });
        let (mut used, mut candidates, on_disk) = {
            let contents = self.read_contents();
            let all = || {
                contents
                    .blobs
                    .iter()
                    .chain(contents.unverified.iter().map(|(sha, u)| (sha, &u.record)))
            };
            let used: u64 = all().map(|(_, r)| r.size).sum();
            let candidates: Vec<(Option<DateTime<Utc>>, Sha256, u64)> = all()
                .filter(|(sha, _)| !needed.contains_key(sha))
                .map(|(sha, r)| (r.last_needed, *sha, r.size))
                .collect();
            let on_disk: BTreeSet<Sha256> = all().map(|(sha, _)| *sha).collect();
            (used, candidates, on_disk)
        };
        used = used.saturating_add(partials.values().sum());
        let missing: u64 = needed
            .iter()
            .filter(|(sha, _)| !on_disk.contains(sha))
            .map(|(sha, size)| size.saturating_sub(partials.get(sha).copied().unwrap_or(0)))
            .fold(0, u64::saturating_add);
        // Never-needed (None) sorts first, then the oldest mark.
        candidates.sort();

        let mut evicted = Vec::new();
        for (_, sha, size) in candidates {
            if used.saturating_add(missing) <= limit {
                break;
            }
            match self.remove_blob(&sha) {
                Ok(()) => {
                    used = used.saturating_sub(size);
                    evicted.push(sha);
                }
                Err(e) => tracing::warn!(%sha, "cache: evicting failed: {e}"),
            }
        }
        self.flush_logged();
        if !evicted.is_empty() {
            tracing::info!(
                count = evicted.len(),
                used,
                limit,
                "cache: evicted unneeded blobs (D10)"
            );
        }
        Ok(evicted)
    }

    /// Removes every blob, partial download and quarantined file not of an
    /// item in `needed` (the `purge_cache` command; L3 when licenses end).
    /// Returns the blobs removed.
    ///
    /// # Errors
    /// On a file, index or flush failure (what was removed before it stays
    /// removed).
    pub fn purge_unneeded(&self, needed: &BTreeSet<Sha256>) -> Result<Vec<Sha256>, CacheError> {
        let _files = self.lock_files();
        let unneeded: Vec<Sha256> = {
            let contents = self.read_contents();
            contents
                .blobs
                .keys()
                .chain(contents.unverified.keys())
                .filter(|sha| !needed.contains(sha))
                .copied()
                .collect()
        };
        let mut removed = Vec::new();
        for sha in unneeded {
            self.remove_blob(&sha)?;
            removed.push(sha);
        }
        for sha in self.partials().keys() {
            if !needed.contains(sha) {
                remove_any(&self.partial_path(sha))?;
            }
        }
        // Quarantined copies of needed items stay for the operator (D9);
        // those of anything else go with it.
        for (name, path, _) in list_dir(&self.quarantine_dir())? {
            let of_needed = name
                .split_once('.')
                .and_then(|(sha, _)| sha.parse::<Sha256>().ok())
                .is_some_and(|sha| needed.contains(&sha));
            if !of_needed {
                remove_any(&path)?;
            }
        }
        self.inner.store.flush()?;
        tracing::info!(count = removed.len(), "cache: purged unneeded blobs");
        Ok(removed)
    }
}
