//! The comments repository: the one writer of the `comments` tree, inside
//! the caller's transaction.
//!
//! Owns: the record keys (`{item}/{comment id}`) and the reads the
//! comments service's decisions rest on. Must not: decide who may write.

use signet_common::ids::ItemId;

use super::{COMMENTS, Comment};
use crate::store::{StoreError, Tx};

fn key(item: &ItemId, id: &str) -> String {
    format!("{item}/{id}")
}

fn prefix(item: &ItemId) -> String {
    format!("{item}/")
}

/// The comment `id` on `item`, read in `tx`.
///
/// # Errors
/// When the store fails.
pub fn get_in(tx: &mut Tx, item: &ItemId, id: &str) -> Result<Option<Comment>, StoreError> {
    tx.get(COMMENTS, &key(item, id))
}

/// Every comment on `item`, oldest first, read in `tx`.
///
/// # Errors
/// When the store fails.
pub fn all_in(tx: &mut Tx, item: &ItemId) -> Result<Vec<Comment>, StoreError> {
    tx.scan(COMMENTS, &prefix(item))
}

/// How many comments `item` has and the id of its newest, read in `tx`.
///
/// # Errors
/// When the store fails.
pub fn count_in(tx: &mut Tx, item: &ItemId) -> Result<(usize, Option<String>), StoreError> {
    let keys = tx.scan_keys(COMMENTS, &prefix(item))?;
    let newest = keys
        .last()
        .and_then(|key| key.rsplit_once('/'))
        .map(|(_, id)| id.to_owned());
    Ok((keys.len(), newest))
}

/// Writes `comment`.
///
/// # Errors
/// Never in practice (the record always encodes).
pub fn put_in(tx: &mut Tx, comment: &Comment) -> Result<(), StoreError> {
    tx.put(COMMENTS, &key(&comment.item, &comment.id), comment)
}

/// Removes `comment`.
pub fn remove_in(tx: &mut Tx, comment: &Comment) {
    tx.delete(COMMENTS, &key(&comment.item, &comment.id));
}

/// Removes every comment on `item` (the item is being deleted).
///
/// # Errors
/// When the store fails.
pub fn remove_all_in(tx: &mut Tx, item: &ItemId) -> Result<(), StoreError> {
    for key in tx.scan_keys(COMMENTS, &prefix(item))? {
        tx.delete(COMMENTS, &key);
    }
    Ok(())
}
