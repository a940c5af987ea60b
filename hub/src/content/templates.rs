//! Template documents (D6) and the approval requests of items (A5).
//!
//! A template is a content item of kind `template` whose bytes are the JSON
//! of its [`Template`] document, kept in the blob store like media so devices
//! fetch it by hash (A8). This module owns the `templates` tree (the current
//! document of each template item), the bytes a document is stored as, the
//! media a template shows, and the `approval_requests` tree with the A5
//! request mail. Must not: decide who may save, request or approve — the API
//! does that.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use signet_common::approval::{ContentHash, Template};
use signet_common::ids::{ItemId, UserId};

use crate::config::Config;
use crate::mail::Mail;
use crate::mail::links::{CONTENT_PAGE, action, zoned_and_utc};
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
/// user and the date and time sent — in the node's time zone with its
/// offset, and in UTC — and one link to the item's console page under
/// `public_url` (M5), where it is approved. A re-send is the same mail:
/// same fields, same time.
#[must_use]
pub fn request_mail(
    request: &ApprovalRequest,
    (item_id, item_name): (&str, &str),
    (node_name, zone): (&str, Tz),
    config: &Config,
) -> Mail {
    let sent = zoned_and_utc(request.requested_at, zone);
    let open = action(
        config,
        "Review it, then approve or reject it",
        (CONTENT_PAGE, item_id),
        "Review it, then approve or reject it in Signet.\n".to_owned(),
    );
    Mail {
        to: request.to.clone(),
        subject: format!("Approval requested: {item_name}"),
        body: format!(
            "{requester} asks you to approve content.\n\n\
             Item: {item_name}\n\
             Node: {node_name}\n\
             Requested by: {requester}\n\
             Sent: {sent}\n\
             Version: {hash}\n\n{open}",
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
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let config = Config {
            public_url: Some("https://signage.example.com".into()),
            ..Config::default()
        };
        let about = ("c-7", "Lobby menu");
        let mail = request_mail(&request, about, ("Store 12", berlin), &config);
        assert_eq!(mail.to, "cm@example.com");
        assert!(mail.body.contains("Item: Lobby menu\n"));
        assert!(mail.body.contains("Node: Store 12\n"));
        assert!(mail.body.contains("Requested by: editor\n"));
        assert!(
            mail.body.contains(
                "Sent: 2026-11-23T11:15:00+01:00 (Europe/Berlin), 2026-11-23T10:15:00Z (UTC)\n"
            ),
            "{}",
            mail.body
        );
        // M5: one link, to the item's page under public_url.
        assert_eq!(mail.body.matches("https://").count(), 1, "{}", mail.body);
        assert!(
            mail.body
                .contains("https://signage.example.com/content/c-7\n")
        );
        assert!(mail.check().is_ok());
    }
}
