//! The media actions' repository: the one writer of ratings, favorites,
//! feedback, attribute definitions and values, share links and their
//! indexes, inside the caller's transaction.
//!
//! Owns: writes to the trees of [`super`]; each record is written with its
//! index by one function here. Must not: decide who may write.

use signet_common::ids::{ItemId, NodeId, UserId};

use super::view::{AttributeDef, AttributeValue, Favorite, Feedback, Rating, RatingValue, Share};
use super::{
    ATTRIBUTE_DEFS, ATTRIBUTE_VALUES, FAVORITES, FAVORITES_BY_ITEM, FEEDBACK, OPEN_FEEDBACK,
    RATINGS, SHARES, SHARES_BY_ITEM,
};
use crate::store::{StoreError, Tx};

fn pair(a: &str, b: &str) -> String {
    format!("{a}/{b}")
}

/// The like and dislike counts of `item` and `user`'s own rating.
///
/// # Errors
/// When the store fails.
pub fn ratings_in(
    tx: &mut Tx,
    item: &ItemId,
    user: &UserId,
) -> Result<(u64, u64, Option<RatingValue>), StoreError> {
    let (mut likes, mut dislikes, mut mine) = (0, 0, None);
    let prefix = format!("{item}/");
    for (key, rating) in tx.scan_keyed::<Rating>(RATINGS, &prefix)? {
        match rating.value {
            RatingValue::Like => likes += 1,
            RatingValue::Dislike => dislikes += 1,
        }
        if key.strip_prefix(&prefix) == Some(user.as_str()) {
            mine = Some(rating.value);
        }
    }
    Ok((likes, dislikes, mine))
}

/// Sets (`Some`) or clears `user`'s rating of `item`.
///
/// # Errors
/// Never in practice.
pub fn put_rating(
    tx: &mut Tx,
    item: &ItemId,
    user: &UserId,
    rating: Option<&Rating>,
) -> Result<(), StoreError> {
    let key = pair(item.as_str(), user.as_str());
    match rating {
        Some(rating) => tx.put(RATINGS, &key, rating),
        None => {
            tx.delete(RATINGS, &key);
            Ok(())
        }
    }
}

/// Whether `item` is among `user`'s favorites.
///
/// # Errors
/// When the store fails.
pub fn is_favorite_in(tx: &mut Tx, user: &UserId, item: &ItemId) -> Result<bool, StoreError> {
    tx.contains(FAVORITES, &pair(user.as_str(), item.as_str()))
}

/// Adds (`Some`) or removes `user`'s favorite with its index.
///
/// # Errors
/// Never in practice.
pub fn put_favorite(
    tx: &mut Tx,
    user: &UserId,
    item: &ItemId,
    favorite: Option<&Favorite>,
) -> Result<(), StoreError> {
    let (key, index) = (
        pair(user.as_str(), item.as_str()),
        pair(item.as_str(), user.as_str()),
    );
    match favorite {
        Some(favorite) => {
            tx.put(FAVORITES, &key, favorite)?;
            tx.put(FAVORITES_BY_ITEM, &index, user)
        }
        None => {
            tx.delete(FAVORITES, &key);
            tx.delete(FAVORITES_BY_ITEM, &index);
            Ok(())
        }
    }
}

/// `user`'s favorites, in key order.
///
/// # Errors
/// When the store fails.
pub fn favorites_in(tx: &mut Tx, user: &UserId) -> Result<Vec<Favorite>, StoreError> {
    tx.scan(FAVORITES, &format!("{user}/"))
}

/// The open reports of `item`: (feedback id, reporter).
///
/// # Errors
/// When the store fails.
pub fn open_feedback_in(tx: &mut Tx, item: &ItemId) -> Result<Vec<(String, UserId)>, StoreError> {
    let prefix = format!("{item}/");
    Ok(tx
        .scan_keyed::<UserId>(OPEN_FEEDBACK, &prefix)?
        .into_iter()
        .filter_map(|(key, user)| Some((key.strip_prefix(&prefix)?.to_owned(), user)))
        .collect())
}

/// Writes `feedback`, indexed as open while it has no resolution.
///
/// # Errors
/// Never in practice.
pub fn put_feedback(tx: &mut Tx, feedback: &Feedback) -> Result<(), StoreError> {
    tx.put(FEEDBACK, &feedback.id, feedback)?;
    let index = pair(feedback.item.as_str(), &feedback.id);
    if feedback.resolution.is_none() {
        tx.put(OPEN_FEEDBACK, &index, &feedback.reporter)
    } else {
        tx.delete(OPEN_FEEDBACK, &index);
        Ok(())
    }
}

/// The report `id`.
///
/// # Errors
/// When the store fails.
pub fn feedback_in(tx: &mut Tx, id: &str) -> Result<Option<Feedback>, StoreError> {
    tx.get(FEEDBACK, id)
}

/// Every report, oldest first.
///
/// # Errors
/// When the store fails.
pub fn all_feedback_in(tx: &mut Tx) -> Result<Vec<Feedback>, StoreError> {
    tx.scan(FEEDBACK, "")
}

/// Every attribute definition.
///
/// # Errors
/// When the store fails.
pub fn attribute_defs_in(tx: &mut Tx) -> Result<Vec<AttributeDef>, StoreError> {
    tx.scan(ATTRIBUTE_DEFS, "")
}

/// Writes (`Some`) or removes the definition of `key` at `node`.
///
/// # Errors
/// Never in practice.
pub fn put_attribute_def(
    tx: &mut Tx,
    node: &NodeId,
    key: &str,
    def: Option<&AttributeDef>,
) -> Result<(), StoreError> {
    let id = pair(node.as_str(), key);
    match def {
        Some(def) => tx.put(ATTRIBUTE_DEFS, &id, def),
        None => {
            tx.delete(ATTRIBUTE_DEFS, &id);
            Ok(())
        }
    }
}

/// Removes every attribute definition made at `node` (the node is being
/// deleted, in the same transaction); how many.
///
/// # Errors
/// When the store fails.
pub fn remove_defs_at_in(tx: &mut Tx, node: &NodeId) -> Result<usize, StoreError> {
    let keys = tx.scan_keys(ATTRIBUTE_DEFS, &pair(node.as_str(), ""))?;
    for key in &keys {
        tx.delete(ATTRIBUTE_DEFS, key);
    }
    Ok(keys.len())
}

/// The attribute values of `item` by key.
///
/// # Errors
/// When the store fails.
pub fn attribute_values_in(
    tx: &mut Tx,
    item: &ItemId,
) -> Result<Vec<(String, AttributeValue)>, StoreError> {
    let prefix = format!("{item}/");
    Ok(tx
        .scan_keyed::<AttributeValue>(ATTRIBUTE_VALUES, &prefix)?
        .into_iter()
        .filter_map(|(key, value)| Some((key.strip_prefix(&prefix)?.to_owned(), value)))
        .collect())
}

/// Every attribute value named `key`: (item, value).
///
/// # Errors
/// When the store fails.
pub fn values_of_key_in(
    tx: &mut Tx,
    key: &str,
) -> Result<Vec<(ItemId, AttributeValue)>, StoreError> {
    Ok(tx
        .scan_keyed::<AttributeValue>(ATTRIBUTE_VALUES, "")?
        .into_iter()
        .filter_map(|(id, value)| {
            let (item, k) = id.split_once('/')?;
            (k == key).then(|| (ItemId::from(item), value))
        })
        .collect())
}

/// Sets (`Some`) or clears the value of `key` on `item`.
///
/// # Errors
/// Never in practice.
pub fn put_attribute_value(
    tx: &mut Tx,
    item: &ItemId,
    key: &str,
    value: Option<&AttributeValue>,
) -> Result<(), StoreError> {
    let id = pair(item.as_str(), key);
    match value {
        Some(value) => tx.put(ATTRIBUTE_VALUES, &id, value),
        None => {
            tx.delete(ATTRIBUTE_VALUES, &id);
            Ok(())
        }
    }
}

/// The share link `id`.
///
/// # Errors
/// When the store fails.
pub fn share_in(tx: &mut Tx, id: &str) -> Result<Option<Share>, StoreError> {
    tx.get(SHARES, id)
}

/// Writes `share` with its index.
///
/// # Errors
/// Never in practice.
pub fn put_share(tx: &mut Tx, share: &Share) -> Result<(), StoreError> {
    tx.put(SHARES, &share.id, share)?;
    tx.put(
        SHARES_BY_ITEM,
        &pair(share.item.as_str(), &share.id),
        &share.id,
    )
}

/// Every share link of `item` (live, expired or revoked), in id order.
///
/// # Errors
/// When the store fails.
pub fn shares_of_in(tx: &mut Tx, item: &ItemId) -> Result<Vec<Share>, StoreError> {
    let ids: Vec<String> = tx.scan(SHARES_BY_ITEM, &format!("{item}/"))?;
    let mut shares = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(share) = tx.get::<Share>(SHARES, &id)? {
            shares.push(share);
        }
    }
    Ok(shares)
}

/// Removes the share links of `item` for which `drop` holds.
///
/// # Errors
/// When the store fails.
pub fn remove_shares_in(
    tx: &mut Tx,
    item: &ItemId,
    drop: impl Fn(&Share) -> bool,
) -> Result<usize, StoreError> {
    let ids: Vec<String> = tx.scan(SHARES_BY_ITEM, &format!("{item}/"))?;
    let mut removed = 0;
    for id in ids {
        let share: Option<Share> = tx.get(SHARES, &id)?;
        if share.as_ref().is_none_or(&drop) {
            tx.delete(SHARES, &id);
            tx.delete(SHARES_BY_ITEM, &pair(item.as_str(), &id));
            removed += 1;
        }
    }
    Ok(removed)
}

/// Removes what the media actions hold about `item` as it is deleted: its
/// ratings, favorites, attribute values, share links and open reports
/// (resolved reports stay, for the record).
///
/// # Errors
/// When the store fails.
pub fn remove_of_item_in(tx: &mut Tx, item: &ItemId) -> Result<(), StoreError> {
    let prefix = format!("{item}/");
    for key in tx.scan_keys(RATINGS, &prefix)? {
        tx.delete(RATINGS, &key);
    }
    for (key, user) in tx.scan_keyed::<UserId>(FAVORITES_BY_ITEM, &prefix)? {
        tx.delete(FAVORITES, &pair(user.as_str(), item.as_str()));
        tx.delete(FAVORITES_BY_ITEM, &key);
    }
    for key in tx.scan_keys(ATTRIBUTE_VALUES, &prefix)? {
        tx.delete(ATTRIBUTE_VALUES, &key);
    }
    remove_shares_in(tx, item, |_| true)?;
    for (id, _) in open_feedback_in(tx, item)? {
        tx.delete(FEEDBACK, &id);
        tx.delete(OPEN_FEEDBACK, &pair(item.as_str(), &id));
    }
    Ok(())
}
