//! `signet-hub migrate --from DIR --to postgres://…` (X4): copies every tree
//! of a sled store into a PostgreSQL one.
//!
//! Owns: the copy and its verification. Copying is idempotent (each record
//! is written with its key, replacing what the target held under it), so a
//! copy that stopped half-way is finished by running it again; afterwards
//! each tree must hold exactly as many records in PostgreSQL as in sled, or
//! the command fails naming the tree. Must not: run while a hub uses the
//! sled store (sled's lock refuses it) or delete anything in the target.

use std::path::{Path, PathBuf};

use super::{Entry, PgStorage, SledStorage, StoreError, store_dir};

/// The most bytes of records one copying transaction carries.
const CHUNK_BYTES: usize = 8 * 1024 * 1024;
/// The most records one copying transaction carries.
const CHUNK_RECORDS: usize = 2000;
/// sled's own default tree, which the hub never writes.
const SLED_DEFAULT_TREE: &str = "__sled__default";

/// What was copied: each tree with its record count, in name order.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Copied {
    /// (tree, records).
    pub trees: Vec<(String, u64)>,
}

impl Copied {
    /// Records copied in all.
    #[must_use]
    pub fn records(&self) -> u64 {
        self.trees.iter().map(|(_, n)| n).sum()
    }
}

/// The sled store `from` names: a data directory (its `store/`) or the
/// store directory itself.
///
/// # Errors
/// When neither exists.
pub fn sled_dir(from: &Path) -> Result<PathBuf, StoreError> {
    let inside = store_dir(from);
    if inside.join("conf").exists() {
        return Ok(inside);
    }
    if from.join("conf").exists() {
        return Ok(from.to_owned());
    }
    Err(StoreError::Storage(format!(
        "{} is neither a Signet data directory nor a sled store (no {} or {})",
        from.display(),
        inside.join("conf").display(),
        from.join("conf").display()
    )))
}

/// Copies every tree of the sled store at `from` into the PostgreSQL
/// store at `to`, then checks that each tree holds as many records there.
///
/// # Errors
/// When either store cannot be opened, a copy fails, or a count differs.
pub fn sled_to_postgres(from: &Path, to: &str) -> Result<Copied, StoreError> {
    let source = SledStorage::open(&sled_dir(from)?)?;
    let target = PgStorage::connect(to)?;
    let mut names: Vec<String> = source
        .db
        .tree_names()
        .iter()
        .map(|name| String::from_utf8_lossy(name).into_owned())
        .collect();
    names.sort();
    let mut copied = Copied::default();
    for name in names {
        let tree = source.db.open_tree(&name).map_err(sled_error)?;
        if name == SLED_DEFAULT_TREE && tree.is_empty() {
            continue;
        }
        let mut chunk: Vec<Entry> = Vec::new();
        let mut bytes = 0;
        let mut records: u64 = 0;
        for entry in &tree {
            let (key, value) = entry.map_err(sled_error)?;
            bytes += key.len() + value.len();
            chunk.push((key.to_vec(), value.to_vec()));
            records += 1;
            if chunk.len() >= CHUNK_RECORDS || bytes >= CHUNK_BYTES {
                target.put_all(&name, std::mem::take(&mut chunk))?;
                bytes = 0;
            }
        }
        if !chunk.is_empty() {
            target.put_all(&name, chunk)?;
        }
        let stored = target.count(&name)?;
        if stored != records {
            return Err(StoreError::Storage(format!(
                "tree {name}: the source holds {records} records but PostgreSQL holds {stored} \
                 (the target has records this store has not: is it another hub's database?)"
            )));
        }
        copied.trees.push((name, records));
    }
    Ok(copied)
}

fn sled_error(e: sled::Error) -> StoreError {
    StoreError::Storage(format!("reading the sled store: {e}"))
}
