//! Write transactions: optimistic, checked at commit, retried on conflict.
//!
//! A [`Tx`] reads through the store and remembers a digest of everything
//! it read (each record, each prefix range). Its writes are buffered, and
//! its own reads see them. At commit the engine checks, atomically with
//! applying the writes, that everything read is still as it was; if not,
//! [`Store::transact`] runs the closure again on the new state. So a
//! decision and the reads it rests on are one atomic step, without a lock
//! held while the decision is made — and the closure is synchronous, so no
//! network I/O can happen inside a transaction: effects on the outside
//! (broker grants, mail, publishing) go after the commit, or into a
//! durable outbox written by the transaction.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Entry, Storage, Store, StoreError, Write, WriteBatch, decode};

/// A SHA-256 digest of what a transaction read.
pub type Digest = [u8; 32];

/// A read a transaction's decision rests on, checked again at commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// The record under `key` in `tree` had this digest (`None`: absent).
    Record {
        /// The tree.
        tree: &'static str,
        /// The key.
        key: Vec<u8>,
        /// [`digest_record`] of the value read, or `None` when absent.
        digest: Option<Digest>,
    },
    /// The records of `tree` whose keys start with `prefix` had this digest.
    Range {
        /// The tree.
        tree: &'static str,
        /// The key prefix.
        prefix: Vec<u8>,
        /// [`digest_range`] of the entries read.
        digest: Digest,
    },
}

/// The digest of one stored value.
#[must_use]
pub fn digest_record(value: &[u8]) -> Digest {
    let hash = ring::digest::digest(&ring::digest::SHA256, value);
    let mut out = [0; 32];
    out.copy_from_slice(hash.as_ref());
    out
}

/// The digest of a key-ordered range of entries.
#[must_use]
pub fn digest_range(entries: &[Entry]) -> Digest {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for (key, value) in entries {
        context.update(&(key.len() as u64).to_le_bytes());
        context.update(key);
        context.update(&(value.len() as u64).to_le_bytes());
        context.update(value);
    }
    let mut out = [0; 32];
    out.copy_from_slice(context.finish().as_ref());
    out
}

/// Whether `check` still holds on `storage`: what an engine calls for each
/// check under its commit lock.
///
/// # Errors
/// When the engine fails.
pub fn holds(storage: &dyn Storage, check: &Check) -> Result<bool, StoreError> {
    Ok(match check {
        Check::Record { tree, key, digest } => {
            storage.get(tree, key)?.as_deref().map(digest_record) == *digest
        }
        Check::Range {
            tree,
            prefix,
            digest,
        } => digest_range(&storage.scan(tree, prefix)?) == *digest,
    })
}

/// How many times [`Store::transact`] runs a closure whose reads keep
/// changing under it before it gives up with [`StoreError::Conflict`].
const MAX_ATTEMPTS: u32 = 64;

/// One write transaction; see the module doc.
pub struct Tx {
    storage: Arc<dyn Storage>,
    checks: Vec<Check>,
    batch: WriteBatch,
    /// This transaction's writes by (tree, key): `None` is a delete.
    pending: BTreeMap<(&'static str, Vec<u8>), Option<Vec<u8>>>,
    /// What it read from the engine by (tree, key) (`None`: absent), each
    /// with its check: a key is read once, whether by [`Tx::prefetch`] or
    /// a `get`.
    read: BTreeMap<(&'static str, Vec<u8>), Option<Vec<u8>>>,
}

impl Tx {
    fn new(storage: Arc<dyn Storage>) -> Self {
        Self {
            storage,
            checks: Vec::new(),
            batch: WriteBatch::new(),
            pending: BTreeMap::new(),
            read: BTreeMap::new(),
        }
    }

    /// Notes `value`, read from the engine under `key`, and its check.
    fn note_read(&mut self, tree: &'static str, key: Vec<u8>, value: Option<Vec<u8>>) {
        self.checks.push(Check::Record {
            tree,
            key: key.clone(),
            digest: value.as_deref().map(digest_record),
        });
        self.read.insert((tree, key), value);
    }

    fn get_raw(&mut self, tree: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let at = (tree, key.to_vec());
        if let Some(value) = self.pending.get(&at).or_else(|| self.read.get(&at)) {
            return Ok(value.clone());
        }
        let value = self.storage.get(tree, key)?;
        self.note_read(tree, at.1, value.clone());
        Ok(value)
    }

    /// Reads `keys` of `tree` with one call to the engine (one query on
    /// PostgreSQL), so this transaction's later `get` and `contains` of
    /// them cost no further round trip; each is checked at commit as a
    /// `get` is. Keys this transaction wrote or read already are skipped.
    ///
    /// # Errors
    /// When the engine fails.
    pub fn prefetch<'k>(
        &mut self,
        tree: &'static str,
        keys: impl IntoIterator<Item = &'k str>,
    ) -> Result<(), StoreError> {
        let mut wanted: Vec<&[u8]> = Vec::new();
        for key in keys {
            let at = (tree, key.as_bytes().to_vec());
            if !self.pending.contains_key(&at) && !self.read.contains_key(&at) {
                wanted.push(key.as_bytes());
            }
        }
        wanted.sort_unstable();
        wanted.dedup();
        if wanted.is_empty() {
            return Ok(());
        }
        let values = self.storage.get_many(tree, &wanted)?;
        if values.len() != wanted.len() {
            return Err(StoreError::Storage(format!(
                "the engine answered {} of {} keys",
                values.len(),
                wanted.len()
            )));
        }
        for (key, value) in wanted.into_iter().zip(values) {
            self.note_read(tree, key.to_vec(), value);
        }
        Ok(())
    }

    fn scan_raw(&mut self, tree: &'static str, prefix: &[u8]) -> Result<Vec<Entry>, StoreError> {
        let stored = self.storage.scan(tree, prefix)?;
        self.checks.push(Check::Range {
            tree,
            prefix: prefix.to_vec(),
            digest: digest_range(&stored),
        });
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = stored.into_iter().collect();
        for ((pending_tree, key), value) in &self.pending {
            if *pending_tree != tree || !key.starts_with(prefix) {
                continue;
            }
            match value {
                Some(value) => merged.insert(key.clone(), value.clone()),
                None => merged.remove(key),
            };
        }
        Ok(merged.into_iter().collect())
    }

    /// The record under `key` in `tree`, as this transaction sees it.
    ///
    /// # Errors
    /// When the engine fails or the record does not decode.
    pub fn get<T: DeserializeOwned>(
        &mut self,
        tree: &'static str,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        self.get_raw(tree, key.as_bytes())?
            .map(|bytes| decode(tree, key.as_bytes(), &bytes))
            .transpose()
    }

    /// Whether `tree` holds `key`, as this transaction sees it.
    ///
    /// # Errors
    /// When the engine fails.
    pub fn contains(&mut self, tree: &'static str, key: &str) -> Result<bool, StoreError> {
        Ok(self.get_raw(tree, key.as_bytes())?.is_some())
    }

    /// Every record in `tree` whose key starts with `prefix`, in key order.
    ///
    /// # Errors
    /// When the engine fails or a record does not decode.
    pub fn scan<T: DeserializeOwned>(
        &mut self,
        tree: &'static str,
        prefix: &str,
    ) -> Result<Vec<T>, StoreError> {
        self.scan_raw(tree, prefix.as_bytes())?
            .into_iter()
            .map(|(key, bytes)| decode(tree, &key, &bytes))
            .collect()
    }

    /// Every record in `tree` whose key starts with `prefix`, with its key.
    ///
    /// # Errors
    /// When the engine fails or a record does not decode.
    pub fn scan_keyed<T: DeserializeOwned>(
        &mut self,
        tree: &'static str,
        prefix: &str,
    ) -> Result<Vec<(String, T)>, StoreError> {
        self.scan_raw(tree, prefix.as_bytes())?
            .into_iter()
            .map(|(key, bytes)| {
                let value = decode(tree, &key, &bytes)?;
                Ok((String::from_utf8_lossy(&key).into_owned(), value))
            })
            .collect()
    }

    /// Every key in `tree` that starts with `prefix`, in key order.
    ///
    /// # Errors
    /// When the engine fails.
    pub fn scan_keys(
        &mut self,
        tree: &'static str,
        prefix: &str,
    ) -> Result<Vec<String>, StoreError> {
        Ok(self
            .scan_raw(tree, prefix.as_bytes())?
            .into_iter()
            .map(|(key, _)| String::from_utf8_lossy(&key).into_owned())
            .collect())
    }

    /// Stores `value` under `key` in `tree`, encoded as JSON.
    ///
    /// # Errors
    /// When `value` cannot be encoded (never for the hub's record types).
    pub fn put<T: Serialize>(
        &mut self,
        tree: &'static str,
        key: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        let mut batch = WriteBatch::new();
        batch.put(tree, key, value)?;
        self.include(batch);
        Ok(())
    }

    /// Removes the record under `key` in `tree`.
    pub fn delete(&mut self, tree: &'static str, key: &str) {
        let mut batch = WriteBatch::new();
        batch.delete(tree, key);
        self.include(batch);
    }

    /// Adds every write of `batch` to this transaction (for code that
    /// builds a [`WriteBatch`]); later reads see them.
    pub fn include(&mut self, batch: WriteBatch) {
        for write in batch.writes {
            match &write {
                Write::Put { tree, key, value } => {
                    self.pending
                        .insert((tree, key.clone()), Some(value.clone()));
                }
                Write::Delete { tree, key } => {
                    self.pending.insert((tree, key.clone()), None);
                }
            }
            self.batch.writes.push(write);
        }
    }

    /// Whether this transaction writes nothing.
    #[must_use]
    pub fn is_read_only(&self) -> bool {
        self.batch.is_empty()
    }
}

impl Store {
    /// Runs `decide` in a write transaction and commits what it wrote,
    /// atomically and durably, if everything it read is unchanged; else
    /// runs it again on the new state (see the module doc). An `Err` from
    /// `decide` commits nothing.
    ///
    /// # Errors
    /// `decide`'s error; a [`StoreError`] when the engine fails, or
    /// [`StoreError::Conflict`] when its reads kept changing under it.
    pub async fn transact<T, E>(
        &self,
        mut decide: impl FnMut(&mut Tx) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut tx = Tx::new(Arc::clone(&self.storage));
            let value = decide(&mut tx)?;
            if tx.is_read_only() {
                return Ok(value);
            }
            match self.commit(tx.checks, tx.batch).await {
                Ok(()) => return Ok(value),
                Err(StoreError::Conflict) if attempt < MAX_ATTEMPTS => {
                    tokio::task::yield_now().await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn commit(&self, checks: Vec<Check>, batch: WriteBatch) -> Result<(), StoreError> {
        let storage = Arc::clone(&self.storage);
        tokio::task::spawn_blocking(move || storage.commit(&checks, &batch))
            .await
            .map_err(|e| StoreError::Storage(format!("write task failed: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SledStorage;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let storage = SledStorage::open(dir.path()).unwrap();
        (dir, Store::new(Arc::new(storage)))
    }

    #[tokio::test]
    async fn s9_a_transaction_sees_its_own_writes_and_commits_them_together() {
        let (_dir, store) = store();
        let seen = store
            .transact(|tx| {
                tx.put("t", "a/1", &1_u32)?;
                tx.put("t", "a/2", &2_u32)?;
                tx.delete("t", "a/1");
                let seen: Vec<u32> = tx.scan("t", "a/")?;
                Ok::<_, StoreError>((seen, tx.get::<u32>("t", "a/1")?))
            })
            .await
            .unwrap();
        assert_eq!(seen, (vec![2], None));
        assert_eq!(store.scan::<u32>("t", "a/").unwrap(), vec![2]);
    }

    #[tokio::test]
    async fn s9_an_error_commits_nothing() {
        let (_dir, store) = store();
        let result = store
            .transact(|tx| {
                tx.put("t", "k", &1_u32)?;
                Err::<(), _>(StoreError::Storage("refused".into()))
            })
            .await;
        assert!(result.is_err());
        assert_eq!(store.get::<u32>("t", "k").unwrap(), None);
    }

    /// Two transactions that each read a count and write count + 1: with
    /// checks at commit no increment is lost, however they interleave.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn s9_concurrent_read_modify_writes_lose_no_update() {
        let (_dir, store) = store();
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..10 {
                    store
                        .transact(|tx| {
                            let n: u32 = tx.get("t", "count")?.unwrap_or(0);
                            tx.put("t", "count", &(n + 1))
                        })
                        .await
                        .unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(store.get::<u32>("t", "count").unwrap(), Some(80));
    }

    /// Keys read with `prefetch` are answered from the transaction and
    /// checked at commit like a `get`: a prefetched id another commit
    /// stored in between makes the closure run again, which then sees it.
    #[tokio::test]
    async fn s9_prefetched_reads_are_checked_at_commit() {
        let (_dir, store) = store();
        store
            .apply({
                let mut batch = WriteBatch::new();
                batch.put("ids", "a", &1_u32).unwrap();
                batch
            })
            .await
            .unwrap();
        let mut runs = 0;
        let seen = store
            .transact(|tx| {
                runs += 1;
                tx.prefetch("ids", ["a", "b", "a"])?;
                let seen = (tx.get::<u32>("ids", "a")?, tx.contains("ids", "b")?);
                if runs == 1 {
                    // Another writer stores `b` after this one read it.
                    let mut batch = WriteBatch::new();
                    batch.put("ids", "b", &2_u32)?;
                    store.storage.apply(&batch)?;
                }
                tx.put("out", "seen", &seen)?;
                Ok::<_, StoreError>(seen)
            })
            .await
            .unwrap();
        assert_eq!(runs, 2);
        assert_eq!(seen, (Some(1), true));
    }

    /// A range read is a check too: a slot counted by a scan cannot be
    /// given twice (the group-full rule's shape).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn s9_a_scanned_range_that_changed_is_read_again() {
        let (_dir, store) = store();
        let mut tasks = Vec::new();
        for i in 0..12 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .transact(|tx| {
                        let taken = tx.scan_keys("slots", "g/")?.len();
                        if taken >= 5 {
                            return Ok(false);
                        }
                        tx.put("slots", &format!("g/{i:02}"), &i)?;
                        Ok::<_, StoreError>(true)
                    })
                    .await
                    .unwrap()
            }));
        }
        let mut granted = 0;
        for task in tasks {
            granted += usize::from(task.await.unwrap());
        }
        assert_eq!(granted, 5);
        assert_eq!(store.scan_keys("slots", "g/").unwrap().len(), 5);
    }
}
