//! The content repository: the one place the item records and their
//! indexes are written, inside a write transaction (S9).
//!
//! Owns: writes to the `content`, `content_by_hash`, `templates` and
//! `approval_requests` trees — an item record and its hash index are
//! written together by [`put_item`] and removed together (with its
//! comments) by [`remove_item`] — and the transactional reads the
//! content services' decisions rest on ([`node_in`], [`users_of_in`],
//! which reads only content's own trees and its [`super::refs`] index;
//! which items a caller views is [`super::visibility`]'s).
//! Must not: decide who may write (the services do) or touch blob files.

use chrono::{DateTime, Utc};
use signet_common::approval::Template;
use signet_common::documents::ItemKind;
use signet_common::ids::{ItemId, NodeId};

use super::refs::{self, Referrer};
use super::templates::{APPROVAL_REQUESTS, ApprovalRequest, TEMPLATES};
use super::{CONTENT, CONTENT_BY_HASH, ContentItem, hash_key};
use crate::audit::AuditEntry;
use crate::identity::Actor;
use crate::store::{StoreError, Tx, WriteBatch};
use crate::tenancy::{NODES, Node};

/// Which items a route acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Items {
    /// Any content item (`/api/v1/content/…`).
    Any,
    /// Templates only (`/api/v1/templates/…`); other items are absent there.
    Templates,
}

impl Items {
    /// What an absent item is called in a 404.
    #[must_use]
    pub fn what(self) -> &'static str {
        match self {
            Items::Any => "content item",
            Items::Templates => "template",
        }
    }

    /// Whether `item` is one of these items.
    #[must_use]
    pub fn holds(self, item: &ContentItem) -> bool {
        self == Items::Any || item.kind == ItemKind::Template
    }
}

/// The node `id`, if it exists.
///
/// # Errors
/// When the store fails.
pub fn node_in(tx: &mut Tx, id: &NodeId) -> Result<Option<Node>, StoreError> {
    tx.get(NODES, id.as_str())
}

/// Writes `item` and its hash index; `previous` is the record it replaces
/// (its index entry goes when the bytes changed).
///
/// # Errors
/// Never in practice (the records always encode).
pub fn put_item(
    tx: &mut Tx,
    item: &ContentItem,
    previous: Option<&ContentItem>,
) -> Result<(), StoreError> {
    if let Some(previous) = previous
        && previous.sha256 != item.sha256
    {
        tx.delete(CONTENT_BY_HASH, &hash_key(&previous.sha256, &previous.id));
    }
    tx.put(CONTENT, item.id.as_str(), item)?;
    tx.put(CONTENT_BY_HASH, &hash_key(&item.sha256, &item.id), &item.id)
}

/// Writes the current document of the template item `item`.
///
/// # Errors
/// Never in practice.
pub fn put_template(tx: &mut Tx, item: &ItemId, template: &Template) -> Result<(), StoreError> {
    tx.put(TEMPLATES, item.as_str(), template)
}

/// The current document of the template item `item`, read in `tx`.
///
/// # Errors
/// When the store fails.
pub fn template_in(tx: &mut Tx, item: &ItemId) -> Result<Option<Template>, StoreError> {
    tx.get(TEMPLATES, item.as_str())
}

/// The open approval request of `item`, read in `tx` (A5).
///
/// # Errors
/// When the store fails.
pub fn request_in(tx: &mut Tx, item: &ItemId) -> Result<Option<ApprovalRequest>, StoreError> {
    tx.get(APPROVAL_REQUESTS, item.as_str())
}

/// Opens (or re-sends) the approval request of `item` (A5).
///
/// # Errors
/// Never in practice.
pub fn put_request(
    tx: &mut Tx,
    item: &ItemId,
    request: &ApprovalRequest,
) -> Result<(), StoreError> {
    tx.put(APPROVAL_REQUESTS, item.as_str(), request)
}

/// Closes the open approval request of `item`, if any.
pub fn close_request(tx: &mut Tx, item: &ItemId) {
    tx.delete(APPROVAL_REQUESTS, item.as_str());
}

/// Removes `item` with its hash index, its template document, its open
/// approval request, its comments (M4) and what the media actions hold
/// about it (ratings, favorites, attribute values, share links, open
/// reports: M3).
///
/// # Errors
/// When the store fails.
pub fn remove_item(tx: &mut Tx, item: &ContentItem) -> Result<(), StoreError> {
    tx.delete(CONTENT, item.id.as_str());
    tx.delete(CONTENT_BY_HASH, &hash_key(&item.sha256, &item.id));
    tx.delete(TEMPLATES, item.id.as_str());
    close_request(tx, &item.id);
    super::comments::repo::remove_all_in(tx, &item.id)?;
    super::actions::repo::remove_of_item_in(tx, &item.id)
}

/// What still refers to `item`, as `kind id` strings, read in `tx`:
/// templates that show it in a zone, and every referrer in the
/// item-references index ([`refs`]: access groups that hold it, playlists
/// that play it, schedules whose default item it is). An item in use is
/// not deleted, so nothing is left pointing at a missing item.
///
/// # Errors
/// When the store fails.
pub fn users_of_in(tx: &mut Tx, item: &ItemId) -> Result<Vec<String>, StoreError> {
    let mut users = Vec::new();
    for (template_id, template) in tx.scan_keyed::<Template>(TEMPLATES, "")? {
        if template_id != item.as_str() && super::templates::sources_of(&template).contains(item) {
            users.push(format!("template {template_id}"));
        }
    }
    for referrer in Referrer::ALL {
        for id in refs::referrers_in::<String>(tx, referrer, item)? {
            users.push(referrer.describe(&id));
        }
    }
    Ok(users)
}

/// Writes the audit entry of a content action in `tx`.
///
/// # Errors
/// Never in practice (the entry always encodes).
pub fn record(tx: &mut Tx, entry: AuditEntry) -> Result<(), StoreError> {
    let mut batch = WriteBatch::new();
    entry.record(&mut batch)?;
    tx.include(batch);
    Ok(())
}

/// Writes the audit entry of `action` by `actor` on `item` (its id, in its
/// node's scope) in `tx`.
///
/// # Errors
/// Never in practice (the entry always encodes).
pub fn record_on(
    tx: &mut Tx,
    actor: &Actor,
    at: DateTime<Utc>,
    action: &str,
    item: &ContentItem,
    detail: serde_json::Value,
) -> Result<(), StoreError> {
    let entry = actor.audit(
        at,
        action,
        item.id.as_str(),
        Some(item.node.clone()),
        detail,
    );
    record(tx, entry)
}
