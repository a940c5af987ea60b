//! The access-group repository: every write of a group's records, each
//! with its indexes, in exactly one place, and the reads a decision rests
//! on, all inside a [`Tx`].
//!
//! Owns: how a member, an item, an invite, a signup and a shop order are
//! keyed and indexed (see the storage table in [`super`]), and the audit
//! records the service adds. Must not: decide anything — the service
//! decides and calls these.

use std::collections::{BTreeSet, HashMap};

use signet_common::ids::{AccessGroupId, ItemId, NodeId, UserId};
use signet_common::permissions::NodeTree;

use super::error::AccessGroupError;
use super::{
    AccessGroup, GROUPS, GroupItem, INVITE_TOKENS, INVITES, ITEMS, Invite, MEMBER_GROUPS, MEMBERS,
    Member, MemberRef, PendingSignup, SHOP_ORDERS, SIGNUP_TOKENS, SIGNUPS, ShopOrder, email_key,
    group_prefix, member_index_key, member_key,
};
use crate::audit::AuditEntry;
use crate::content::refs::{self, Referrer};
use crate::identity::{Actor, USERS, User};
use crate::store::{StoreError, Tx, WriteBatch};

/// The group `id` and the tenancy tree, when the actor sees the group's
/// node (T2–T4); else [`AccessGroupError::NotFound`].
///
/// # Errors
/// `NotFound("access group")`, or the store's error.
pub fn visible_group(
    tx: &mut Tx,
    actor: &Actor,
    id: &str,
) -> Result<(AccessGroup, NodeTree), AccessGroupError> {
    let (tree, _) = crate::tenancy::load_tree_in(tx)?;
    let group = tx
        .get::<AccessGroup>(GROUPS, id)?
        .filter(|group| actor.sees(&tree, &group.node))
        .ok_or(AccessGroupError::NotFound("access group"))?;
    Ok((group, tree))
}

/// Stores `group`.
///
/// # Errors
/// When it does not encode.
pub fn put_group(tx: &mut Tx, group: &AccessGroup) -> Result<(), StoreError> {
    tx.put(GROUPS, group.id.as_str(), group)
}

/// Every member record of `group` (removed ones included).
///
/// # Errors
/// When the store fails.
pub fn members(tx: &mut Tx, group: &AccessGroupId) -> Result<Vec<Member>, StoreError> {
    tx.scan(MEMBERS, &group_prefix(group))
}

/// How many current (not removed) members `group` has.
///
/// # Errors
/// When the store fails.
pub fn current_members(tx: &mut Tx, group: &AccessGroupId) -> Result<usize, StoreError> {
    Ok(members(tx, group)?
        .iter()
        .filter(|m| m.is_current())
        .count())
}

/// `who`'s record in `group`, if any.
///
/// # Errors
/// When the store fails.
pub fn member(
    tx: &mut Tx,
    group: &AccessGroupId,
    who: &MemberRef,
) -> Result<Option<Member>, StoreError> {
    tx.get(MEMBERS, &member_key(group, who))
}

/// Stores `member` with its reverse index.
///
/// # Errors
/// When it does not encode.
pub fn put_member(tx: &mut Tx, member: &Member) -> Result<(), StoreError> {
    tx.put(MEMBERS, &member_key(&member.group, &member.member), member)?;
    tx.put(
        MEMBER_GROUPS,
        &member_index_key(&member.group, &member.member),
        &member.group,
    )
}

/// `group`'s items.
///
/// # Errors
/// When the store fails.
pub fn items(tx: &mut Tx, group: &AccessGroupId) -> Result<Vec<GroupItem>, StoreError> {
    tx.scan(ITEMS, &group_prefix(group))
}

/// Stores `item` in `group` with its reference in content's
/// item-references index ([`refs`]).
///
/// # Errors
/// When it does not encode.
pub fn put_item(tx: &mut Tx, group: &AccessGroupId, item: &GroupItem) -> Result<(), StoreError> {
    let mut batch = WriteBatch::new();
    batch.put(ITEMS, &format!("{}{}", group_prefix(group), item.id), item)?;
    refs::add(&mut batch, Referrer::AccessGroup, &item.id, group.as_str())?;
    tx.include(batch);
    Ok(())
}

/// Removes `item` from `group` with its reference in [`refs`].
pub fn delete_item(tx: &mut Tx, group: &AccessGroupId, item: &ItemId) {
    let mut batch = WriteBatch::new();
    batch.delete(ITEMS, &format!("{}{item}", group_prefix(group)));
    refs::remove(&mut batch, Referrer::AccessGroup, item, group.as_str());
    tx.include(batch);
}

/// Replaces `group`'s item list with `items` (ids unique), indexes
/// included. Returns how many items were added and removed.
///
/// # Errors
/// When the store fails.
pub fn replace_items(
    tx: &mut Tx,
    group: &AccessGroupId,
    items: &[GroupItem],
) -> Result<(usize, usize), StoreError> {
    let old = self::items(tx, group)?;
    let new: BTreeSet<&ItemId> = items.iter().map(|i| &i.id).collect();
    let held: BTreeSet<&ItemId> = old.iter().map(|i| &i.id).collect();
    let gone: Vec<&ItemId> = held.difference(&new).copied().collect();
    for item in &gone {
        delete_item(tx, group, item);
    }
    let added = new.difference(&held).count();
    for item in items {
        put_item(tx, group, item)?;
    }
    Ok((added, gone.len()))
}

/// The key of an invite record.
#[must_use]
pub fn invite_key(group: &AccessGroupId, invite: &str) -> String {
    format!("{}{invite}", group_prefix(group))
}

/// Stores `invite` with its token index.
///
/// # Errors
/// When it does not encode.
pub fn put_invite(tx: &mut Tx, invite: &Invite) -> Result<(), StoreError> {
    let key = invite_key(&invite.group, &invite.id);
    tx.put(INVITES, &key, invite)?;
    tx.put(INVITE_TOKENS, &invite.token_hash, &key)
}

/// Removes `invite` with its token index.
pub fn delete_invite(tx: &mut Tx, invite: &Invite) {
    tx.delete(INVITES, &invite_key(&invite.group, &invite.id));
    tx.delete(INVITE_TOKENS, &invite.token_hash);
}

/// The key of a pending signup.
#[must_use]
pub fn signup_key(group: &AccessGroupId, email: &str) -> String {
    format!("{}{}", group_prefix(group), email_key(email))
}

/// Stores `signup` with its token index.
///
/// # Errors
/// When it does not encode.
pub fn put_signup(tx: &mut Tx, signup: &PendingSignup) -> Result<(), StoreError> {
    let key = signup_key(&signup.group, &signup.email);
    tx.put(SIGNUPS, &key, signup)?;
    tx.put(SIGNUP_TOKENS, &signup.token_hash, &key)
}

/// Removes `signup` with its token index.
pub fn delete_signup(tx: &mut Tx, signup: &PendingSignup) {
    tx.delete(SIGNUPS, &signup_key(&signup.group, &signup.email));
    tx.delete(SIGNUP_TOKENS, &signup.token_hash);
}

/// The key of a shop order.
#[must_use]
pub fn order_key(group: &AccessGroupId, order_id: &str) -> String {
    format!("{}{order_id}", group_prefix(group))
}

/// Stores a handled shop order.
///
/// # Errors
/// When it does not encode.
pub fn put_order(tx: &mut Tx, order: &ShopOrder) -> Result<(), StoreError> {
    tx.put(
        SHOP_ORDERS,
        &order_key(&order.group, &order.order_id),
        order,
    )
}

/// Deletes `group` with every record of this module that hangs on it —
/// members, items, invites, signups, orders, each with its indexes (its
/// schedule is the schedules module's: the service has it removed in the
/// same transaction). Returns how many member records it had.
///
/// # Errors
/// When the store fails.
pub fn delete_group(tx: &mut Tx, group: &AccessGroupId) -> Result<usize, StoreError> {
    let prefix = group_prefix(group);
    let members = members(tx, group)?;
    for member in &members {
        tx.delete(MEMBERS, &member_key(group, &member.member));
        tx.delete(MEMBER_GROUPS, &member_index_key(group, &member.member));
    }
    for item in items(tx, group)? {
        delete_item(tx, group, &item.id);
    }
    for invite in tx.scan::<Invite>(INVITES, &prefix)? {
        delete_invite(tx, &invite);
    }
    for signup in tx.scan::<PendingSignup>(SIGNUPS, &prefix)? {
        delete_signup(tx, &signup);
    }
    for order in tx.scan::<ShopOrder>(SHOP_ORDERS, &prefix)? {
        tx.delete(SHOP_ORDERS, &order_key(group, &order.order_id));
    }
    tx.delete(GROUPS, group.as_str());
    Ok(members.len())
}

/// Every user by id (for member views).
///
/// # Errors
/// When the store fails.
pub fn users_by_id(store: &crate::store::Store) -> Result<HashMap<UserId, User>, StoreError> {
    let users: Vec<User> = store.scan(USERS, "")?;
    Ok(users.into_iter().map(|u| (u.id.clone(), u)).collect())
}

/// The user whose e-mail is `email` (case-insensitive), if any.
///
/// # Errors
/// When the store fails.
pub fn user_by_email(tx: &mut Tx, email: &str) -> Result<Option<User>, StoreError> {
    let wanted = email_key(email);
    let users: Vec<User> = tx.scan(USERS, "")?;
    Ok(users.into_iter().find(|u| email_key(&u.email) == wanted))
}

/// Adds `entry` to the transaction.
///
/// # Errors
/// Never in practice (the entry always encodes).
pub fn record(tx: &mut Tx, entry: AuditEntry) -> Result<(), StoreError> {
    let mut batch = WriteBatch::new();
    entry.record(&mut batch)?;
    tx.include(batch);
    Ok(())
}

/// An audit entry for a change made without a user login (invite, signup,
/// shop), scoped to the group's node.
#[must_use]
pub fn anonymous_audit(
    at: chrono::DateTime<chrono::Utc>,
    from: &str,
    (actor, actor_name): (Option<&UserId>, &str),
    action: &str,
    group: &AccessGroup,
    detail: serde_json::Value,
) -> AuditEntry {
    AuditEntry {
        actor: actor.cloned(),
        actor_name: Some(actor_name.to_owned()),
        scope: Some(group.node.clone()),
        from: from.to_owned(),
        detail,
        ..AuditEntry::new(at, action, group.id.as_str())
    }
}

/// Records `action` by `actor` at `at` on `group` in the transaction.
///
/// # Errors
/// Never in practice (the entry always encodes).
pub fn audit(
    tx: &mut Tx,
    (actor, at): (&Actor, chrono::DateTime<chrono::Utc>),
    action: &str,
    group: &AccessGroup,
    detail: serde_json::Value,
) -> Result<(), StoreError> {
    record(tx, group_audit(actor, at, action, group, detail))
}

/// The audit entry of `action` by `actor` on `group`.
#[must_use]
pub fn group_audit(
    actor: &Actor,
    at: chrono::DateTime<chrono::Utc>,
    action: &str,
    group: &AccessGroup,
    detail: serde_json::Value,
) -> AuditEntry {
    let scope: Option<NodeId> = Some(group.node.clone());
    actor.audit(at, action, group.id.as_str(), scope, detail)
}
