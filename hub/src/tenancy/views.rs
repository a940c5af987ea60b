//! The tenancy service's inputs and its view of a node: the API's request
//! and response bodies (their schema names are the API contract).

use serde::Deserialize;
use signet_common::ids::{NodeId, UserId};

use super::Node;

/// A new node.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateNode {
    /// The parent node (inside the caller's domain).
    #[schema(value_type = String)]
    pub parent: NodeId,
    /// Display name (1 to 128 bytes).
    pub name: String,
    /// Restricted: its content can be copied but never edited (A1).
    #[serde(default)]
    pub restricted: bool,
    /// Where approval requests for content here go (A5).
    pub content_manager_email: Option<String>,
    /// Strict mode: a feed-URL change deactivates a template (A4).
    #[serde(default)]
    pub strict_feeds: bool,
    /// IANA time zone of devices here and below (e.g. `Europe/Berlin`);
    /// absent: inherited from the nearest ancestor that sets one, else UTC.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// ISO 3166-1 alpha-2 country of devices here and below; absent: inherited.
    #[serde(default)]
    pub country: Option<String>,
    /// Region or state of devices here and below (1 to 128 bytes); absent: inherited.
    #[serde(default)]
    pub region: Option<String>,
}

/// Changes to a node; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateNode {
    /// New display name.
    pub name: Option<String>,
    /// New content-manager address; `""` clears it.
    pub content_manager_email: Option<String>,
    /// New strict mode.
    pub strict_feeds: Option<bool>,
    /// New IANA time zone; `""` clears it (inherit again).
    #[serde(default)]
    pub time_zone: Option<String>,
    /// New country code; `""` clears it.
    #[serde(default)]
    pub country: Option<String>,
    /// New region; `""` clears it.
    #[serde(default)]
    pub region: Option<String>,
    /// Move the node (with its subtree) under this parent, inside the
    /// caller's domain; never below itself, under a node holding devices
    /// (T1), or away from nodes holding what its subtree may use (T2).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub parent: Option<NodeId>,
    /// Mark the node restricted or not (A1): a node made by a root-level
    /// user only from the root; otherwise by its owner or from above it.
    #[serde(default)]
    pub restricted: Option<bool>,
}

/// A node as the API shows it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct NodeView {
    /// Stable id.
    #[schema(value_type = String)]
    pub id: NodeId,
    /// Parent id; absent for the root.
    #[schema(value_type = Option<String>)]
    pub parent: Option<NodeId>,
    /// Display name.
    pub name: String,
    /// Restricted node (A1).
    pub restricted: bool,
    /// Creator's user id: the owner of a restricted node.
    #[schema(value_type = Option<String>)]
    pub created_by: Option<UserId>,
    /// Approval-request address (A5).
    pub content_manager_email: Option<String>,
    /// Strict feed mode (A4).
    pub strict_feeds: bool,
    /// Whether the node has no children.
    pub leaf: bool,
    /// Its own IANA time zone, if it sets one (else inherited).
    pub time_zone: Option<String>,
    /// Its own country code, if it sets one (else inherited).
    pub country: Option<String>,
    /// Its own region, if it sets one (else inherited).
    pub region: Option<String>,
}

impl NodeView {
    /// The view of `node`; `leaf` when it has no children.
    #[must_use]
    pub fn of(node: &Node, leaf: bool) -> Self {
        Self {
            id: node.id.clone(),
            parent: node.parent.clone(),
            name: node.name.clone(),
            restricted: node.restricted,
            created_by: node.created_by.clone(),
            content_manager_email: node.content_manager_email.clone(),
            strict_feeds: node.strict_feeds,
            leaf,
            time_zone: node.locale.time_zone.map(|tz| tz.name().to_owned()),
            country: node.locale.country.clone(),
            region: node.locale.region.clone(),
        }
    }
}
