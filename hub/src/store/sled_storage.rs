//! [`Storage`] on sled: one sled tree per named tree, batches as sled
//! transactions over every tree they touch, `flush` before returning.

use std::collections::BTreeMap;
use std::path::Path;

use sled::Transactional as _;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use super::{Entry, Storage, StoreError, Write, WriteBatch};

/// The sled-backed engine.
pub struct SledStorage {
    /// The open database.
    db: sled::Db,
}

impl SledStorage {
    /// Opens (or creates) the database in `dir`.
    ///
    /// # Errors
    /// When sled cannot open it (missing permissions, another process holds
    /// its lock, corruption).
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .open()
            .map_err(|e| StoreError::Storage(format!("opening {}: {e}", dir.display())))?;
        Ok(Self { db })
    }

    fn tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        self.db.open_tree(name).map_err(storage_error)
    }
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

    fn apply(&self, batch: &WriteBatch) -> Result<(), StoreError> {
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
        self.db.flush().map_err(storage_error)?;
        Ok(())
    }
}
