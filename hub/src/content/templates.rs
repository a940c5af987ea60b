//! Template documents (D6) and the approval requests of items (A5).
//!
//! A template is a content item of kind `template` whose bytes are the JSON
//! of its [`Template`] document, kept in the blob store like media so devices
//! fetch it by hash (A8). This module owns the `templates` tree (the current
//! document of each template item), the bytes a document is stored as, the
//! media a template shows, and the `approval_requests` tree with the A5
//! request mail. Must not: decide who may save, request or approve — the API
//! does that.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use signet_common::approval::{ContentHash, Template};
use signet_common::ids::{ItemId, UserId};

use crate::mail::Mail;
use crate::store::{Store, StoreError};

/// Tree of template documents by item id.
pub const TEMPLATES: &str = "templates";
/// Tree of open approval requests by item id (one per item version, A5).
pub const APPROVAL_REQUESTS: &str = "approval_requests";

/// The bytes a template is stored and served as: its JSON. Devices hash them
/// against the manifest's `sha256` and parse them as a [`Template`].
///
/// # Errors
/// Never in practice: a template always encodes.
pub fn template_bytes(template: &Template) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(template)
}

/// The current document of the template item `item`, if it is one.
///
/// # Errors
/// When the store fails.
pub fn load_template(store: &Store, item: &ItemId) -> Result<Option<Template>, StoreError> {
    store.get(TEMPLATES, item.as_str())
}

/// The media items `template` shows in its zones, each once, in zone order.
#[must_use]
pub fn sources_of(template: &Template) -> Vec<ItemId> {
    let mut sources: Vec<ItemId> = Vec::new();
    for zone in &template.zones {
        if let Some(source) = &zone.source
            && !sources.contains(source)
        {
            sources.push(source.clone());
        }
    }
    sources
}

/// An open request for approval of one version of an item (A5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRequest {
    /// The version asked about: the item's approval hash then.
    pub content_hash: ContentHash,
    /// Who asked.
    pub requested_by: UserId,
    /// The requester's login name, as the mail shows it.
    pub requested_by_name: String,
    /// When the request was first sent.
    pub requested_at: DateTime<Utc>,
    /// The content manager's address it went to.
    pub to: String,
    /// How many times it was sent (re-sends included).
    pub sent: u32,
}

/// The A5 request mail: the item's name, the node's name, the requesting
/// user and the date and time sent (ISO-8601 with offset). A re-send is the
/// same mail: same fields, same time.
#[must_use]
pub fn request_mail(request: &ApprovalRequest, item_name: &str, node_name: &str) -> Mail {
    let sent = request
        .requested_at
        .to_rfc3339_opts(SecondsFormat::Secs, false);
    Mail {
        to: request.to.clone(),
        subject: format!("Approval requested: {item_name}"),
        body: format!(
            "{requester} asks you to approve content.\n\n\
             Item: {item_name}\n\
             Node: {node_name}\n\
             Requested by: {requester}\n\
             Sent: {sent}\n\
             Version: {hash}\n\n\
             Review it, then approve or reject it in Signet.\n",
            requester = request.requested_by_name,
            hash = request.content_hash,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A5: the mail names the item, the node, the requester and the time
    /// with its offset.
    #[test]
    fn a5_request_mail_carries_the_four_fields() {
        let request = ApprovalRequest {
            content_hash: ContentHash::of(b"v1"),
            requested_by: UserId::new("u-1"),
            requested_by_name: "editor".into(),
            requested_at: "2026-11-23T10:15:00Z".parse().unwrap(),
            to: "cm@example.com".into(),
            sent: 1,
        };
        let mail = request_mail(&request, "Lobby menu", "Store 12");
        assert_eq!(mail.to, "cm@example.com");
        assert!(mail.body.contains("Item: Lobby menu\n"));
        assert!(mail.body.contains("Node: Store 12\n"));
        assert!(mail.body.contains("Requested by: editor\n"));
        assert!(mail.body.contains("Sent: 2026-11-23T10:15:00+00:00\n"));
        assert!(mail.check().is_ok());
    }
}
