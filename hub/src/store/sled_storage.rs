//! [`Storage`] on sled: one sled tree per named tree, batches as sled
//! transactions over every tree they touch, `flush` before returning.

use std::collections::BTreeMap;
use std::path::Path;

use sled::Transactional as _;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use super::{Check, Entry, Storage, StoreError, Write, WriteBatch, holds};

/// The sled-backed engine.
pub struct SledStorage {
    /// The open database.
    pub(super) db: sled::Db,
    /// Makes a commit's checks and its writes one step. Held only while
    /// they run in memory; the flush that makes a commit durable runs
    /// after it is released, so commits waiting for the disk share one
    /// flush (group commit) rather than queueing behind each other.
    commit_lock: std::sync::Mutex<()>,
}

impl SledStorage {
    /// Opens (or creates) the database in `dir`.
    ///
    /// # Errors
    /// When sled cannot open it (missing permissions, another process holds
    /// its lock, corruption).
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        // sled releases its file lock from a background thread after the last
        // handle is dropped, so a reopen in the same process (init, then
        // serve) can briefly find it held. Wait a bounded time; a lock held
        // longer belongs to another process using the same data directory.
        const ATTEMPTS: u32 = 50;
        let mut attempt = 0;
        loop {
            match sled::Config::new().path(dir).open() {
                Ok(db) => {
                    return Ok(Self {
                        db,
                        commit_lock: std::sync::Mutex::new(()),
                    });
                }
                Err(sled::Error::Io(e)) if is_lock_held(&e) && attempt < ATTEMPTS => {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(sled::Error::Io(e)) if is_lock_held(&e) => {
                    return Err(StoreError::Storage(format!(
                        "{} is locked: is another signet-hub using this data directory?",
                        dir.display()
                    )));
                }
                Err(e) => {
                    return Err(StoreError::Storage(format!(
                        "opening {}: {e}",
                        dir.display()
                    )));
                }
            }
        }
    }

    fn tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        self.db.open_tree(name).map_err(storage_error)
    }
}

/// Whether sled failed because another handle holds the database's file
/// lock (sled reports it as `Other` with this message, not `WouldBlock`).
fn is_lock_held(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock || e.to_string().contains("could not acquire lock")
}

fn storage_error(e: sled::Error) -> StoreError {
    StoreError::Storage(e.to_string())
}

impl Storage for SledStorage {
    fn get(&self, tree: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .tree(tree)?
            .get(key)
            .map_err(storage_error)?
            .map(|v| v.to_vec()))
    }

    fn scan(&self, tree: &'static str, prefix: &[u8]) -> Result<Vec<Entry>, StoreError> {
        self.tree(tree)?
            .scan_prefix(prefix)
            .map(|entry| {
                entry
                    .map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .map_err(storage_error)
            })
            .collect()
    }

    fn commit(&self, checks: &[Check], batch: &WriteBatch) -> Result<(), StoreError> {
        {
            let _commit = self
                .commit_lock
                .lock()
                .map_err(|_| StoreError::Storage("a commit panicked".into()))?;
            for check in checks {
                if !holds(self, check)? {
                    return Err(StoreError::Conflict);
                }
            }
            self.write(batch)?;
        }
        self.db.flush().map_err(storage_error)?;
        Ok(())
    }
}

impl SledStorage {
    /// Applies `batch` as one sled transaction over the trees it touches.
    fn write(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        let mut names: BTreeMap<&'static str, usize> = BTreeMap::new();
        for write in &batch.writes {
            let (Write::Put { tree, .. } | Write::Delete { tree, .. }) = write;
            let next = names.len();
            names.entry(tree).or_insert(next);
        }
        let mut trees = vec![None; names.len()];
        for (name, index) in &names {
            trees[*index] = Some(self.tree(name)?);
        }
        let trees: Vec<sled::Tree> = trees.into_iter().flatten().collect();
        trees
            .as_slice()
            .transaction(|tx| {
                for write in &batch.writes {
                    match write {
                        Write::Put { tree, key, value } => {
                            tx[names[tree]].insert(key.as_slice(), value.as_slice())?;
                        }
                        Write::Delete { tree, key } => {
                            tx[names[tree]].remove(key.as_slice())?;
                        }
                    }
                }
                Ok::<(), ConflictableTransactionError<()>>(())
            })
            .map_err(|e: TransactionError<()>| {
                StoreError::Storage(format!("transaction: {e:?}"))
            })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s9_a_second_hub_on_the_same_data_directory_is_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let first = SledStorage::open(dir.path()).unwrap();
        let Err(second) = SledStorage::open(dir.path()) else {
            panic!("opened a locked store twice");
        };
        assert!(second.to_string().contains("is locked"), "{second}");
        drop(first);
        // Once the holder is gone, the store opens again.
        assert!(SledStorage::open(dir.path()).is_ok());
    }

    #[test]
    fn s9_a_batch_applies_atomically_across_trees() {
        let dir = tempfile::tempdir().unwrap();
        let storage = SledStorage::open(dir.path()).unwrap();
        let mut batch = WriteBatch::new();
        batch.put("a", "k", &1).unwrap();
        batch.put("b", "k", &2).unwrap();
        storage.apply(&batch).unwrap();
        assert_eq!(storage.get("a", b"k").unwrap(), Some(b"1".to_vec()));
        assert_eq!(storage.get("b", b"k").unwrap(), Some(b"2".to_vec()));
        let mut batch = WriteBatch::new();
        batch.delete("a", "k");
        batch.put("b", "k", &3).unwrap();
        storage.apply(&batch).unwrap();
        assert_eq!(storage.get("a", b"k").unwrap(), None);
        assert_eq!(
            storage.scan("b", b"").unwrap(),
            vec![(b"k".to_vec(), b"3".to_vec())]
        );
    }
}
