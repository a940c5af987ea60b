//! The media actions' records and what the API shows and takes of them
//! (M3): ratings, favorites, feedback, custom attributes and share links.
//!
//! Owns: these types and their OpenAPI schemas (names are part of the API).
//! Must not: decide anything.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use signet_common::ids::{ItemId, NodeId, UserId};

use super::super::ContentView;

/// A like or a dislike (M3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RatingValue {
    /// Likes it.
    Like,
    /// Dislikes it.
    Dislike,
}

/// One user's rating of one item, as stored (key `{item}/{user}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rating {
    /// Like or dislike.
    pub value: RatingValue,
    /// When it was last set.
    pub at: DateTime<Utc>,
}

/// An item among a user's favorites, as stored (key `{user}/{item}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Favorite {
    /// The item.
    pub item: ItemId,
    /// When it was added.
    pub at: DateTime<Utc>,
}

/// What the caller may do with an item and what others did (M3): the
/// counts, the caller's own rating and favorite, and the actions the
/// caller may take now (P5: permission held, publish settings allow);
/// `GET /api/v1/content/{id}/actions` and every rating and favorite answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ItemActions {
    /// How many users like it.
    pub likes: u64,
    /// How many users dislike it.
    pub dislikes: u64,
    /// The caller's own rating, if any.
    pub my_rating: Option<RatingValue>,
    /// Whether it is among the caller's favorites.
    pub favorite: bool,
    /// The actions the caller may take on it now, by permission name:
    /// any of `download`, `share`, `rate`, `favorite`, `feedback`,
    /// `update_custom_attributes`, `process_media`, `comment.view`,
    /// `comment.add`, `comment.edit_own`, `comment.delete_own`,
    /// `comment.delete_others`, `approve_content` (may approve or reject
    /// it while pending: node in the caller's domain and the permission
    /// held, A6) (the console shows only these buttons). A playlist offers
    /// only `rate`, `favorite` and the `comment.*` ones.
    pub allowed: Vec<String>,
}

/// A rating to set.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateRequest {
    /// `like` or `dislike`.
    pub value: RatingValue,
}

/// An item among the caller's favorites.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct FavoriteView {
    /// The item.
    #[serde(flatten)]
    pub item: ContentView,
    /// When the caller added it.
    pub favorited_at: DateTime<Utc>,
}

/// An item of a domain above content (a playlist) among the caller's
/// favorites.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct FavoriteSubjectView {
    /// Its id.
    #[schema(value_type = String)]
    pub id: ItemId,
    /// Its name.
    pub name: String,
    /// Its node.
    #[schema(value_type = String)]
    pub node: NodeId,
    /// When the caller added it.
    pub favorited_at: DateTime<Utc>,
}

/// Why an item is reported (the VIDIZMO seed: inappropriate, offensive or
/// abusive content; questions and suggestions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FeedbackReason {
    /// Inappropriate content.
    Inappropriate,
    /// Offensive content.
    Offensive,
    /// Abusive content.
    Abusive,
    /// A question about it.
    Question,
    /// A suggestion.
    Suggestion,
    /// Anything else.
    Other,
}

/// How a Moderator resolved a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Resolution {
    /// Who resolved it.
    #[schema(value_type = String)]
    pub by: UserId,
    /// Their login name.
    pub by_name: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Their note (may be empty).
    pub note: String,
}

/// A report in the moderators' queue, as stored and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Feedback {
    /// Time-ordered id.
    pub id: String,
    /// The item reported.
    #[schema(value_type = String)]
    pub item: ItemId,
    /// Its name when reported.
    pub item_name: String,
    /// Its node: the moderators of this node's subtree see the report.
    #[schema(value_type = String)]
    pub node: NodeId,
    /// Who reported it.
    #[schema(value_type = String)]
    pub reporter: UserId,
    /// Their login name.
    pub reporter_name: String,
    /// Why.
    pub reason: FeedbackReason,
    /// What they wrote.
    pub comment: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// `None` while open.
    pub resolution: Option<Resolution>,
}

/// A report to file.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    /// Why.
    pub reason: FeedbackReason,
    /// What is wrong, asked or suggested: 1 to 2000 characters.
    pub comment: String,
}

/// How a report is resolved.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    /// A note for the record: at most 2000 characters.
    #[serde(default)]
    pub note: String,
}

/// Which reports to list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FeedbackStatus {
    /// Not resolved yet (the default).
    #[default]
    Open,
    /// Resolved.
    Resolved,
    /// Both.
    All,
}

/// The filter of `GET /api/v1/feedback`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FeedbackQuery {
    /// `open` (default), `resolved` or `all`.
    #[param(inline)]
    pub status: Option<FeedbackStatus>,
    /// At most this many, newest first: 1 to 1000, default 200.
    pub limit: Option<usize>,
}

/// The type of a custom attribute (M3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AttributeType {
    /// Text, at most 1000 characters.
    String,
    /// A finite number.
    Number,
    /// `true` or `false`.
    Bool,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// One of the listed values.
    Enum {
        /// The allowed values: 1 to 100, each 1 to 100 characters, distinct.
        values: Vec<String>,
    },
}

/// A custom attribute defined at a node, for the items there and below.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AttributeDef {
    /// Where it is defined (inherited by every node below).
    #[schema(value_type = String)]
    pub node: NodeId,
    /// Its key: a lowercase letter, then up to 63 lowercase letters, digits
    /// or `_`.
    pub key: String,
    /// What operators read.
    pub label: String,
    /// Its type.
    #[serde(flatten)]
    pub kind: AttributeType,
}

/// A custom attribute to define (or redefine) at a node.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DefineAttribute {
    /// What operators read: 1 to 256 characters.
    pub label: String,
    /// The type and, for `enum`, its values.
    #[serde(rename = "type")]
    pub kind: AttributeKind,
    /// The allowed values of an `enum`; absent for other types.
    pub values: Option<Vec<String>>,
}

/// The name of an attribute type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttributeKind {
    /// Text.
    String,
    /// A finite number.
    Number,
    /// A boolean.
    Bool,
    /// A date.
    Date,
    /// One of the listed values.
    Enum,
}

/// One custom attribute of an item: its definition and value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AttributeView {
    /// The definition (inherited from `node`).
    #[serde(flatten)]
    pub def: AttributeDef,
    /// The item's value; `null` when unset.
    #[schema(value_type = Option<Object>)]
    pub value: Option<serde_json::Value>,
}

/// Values to set: `null` clears one; keys not named stay as they are.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetAttributes {
    /// By key.
    #[schema(value_type = Object)]
    pub values: BTreeMap<String, serde_json::Value>,
}

/// A stored attribute value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributeValue {
    /// The value, of its definition's type.
    pub value: serde_json::Value,
    /// Who set it.
    pub set_by: UserId,
    /// When.
    pub set_at: DateTime<Utc>,
}

/// A share link as stored: the token carries its id and expiry, and a MAC
/// over them and the item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    /// Its id.
    pub id: String,
    /// The item it plays.
    pub item: ItemId,
    /// Who made it.
    pub created_by: UserId,
    /// When.
    pub created_at: DateTime<Utc>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// The maker's login name when it was made (empty for links made
    /// before names were kept).
    #[serde(default)]
    pub created_by_name: String,
    /// How many addresses it was mailed to.
    #[serde(default)]
    pub mailed: usize,
    /// Set once the link was revoked: it answers 410 `share_revoked` from
    /// then until its record is pruned after its expiry.
    #[serde(default)]
    pub revoked: Option<Revocation>,
}

/// Who ended a share link before its expiry, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// Who revoked it (for sharing turned off: who turned it off).
    pub by: UserId,
    /// When.
    pub at: DateTime<Utc>,
}

/// A live share link as its item's page lists it (M3): never its token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ShareLink {
    /// Its id (`DELETE /api/v1/shares/{share}` revokes it).
    pub id: String,
    /// Who made it.
    #[schema(value_type = String)]
    pub created_by: UserId,
    /// Their login name when they made it.
    pub created_by_name: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// How many addresses it was mailed to.
    pub mailed: usize,
}

impl From<Share> for ShareLink {
    fn from(share: Share) -> Self {
        Self {
            id: share.id,
            created_by: share.created_by,
            created_by_name: share.created_by_name,
            created_at: share.created_at,
            expires_at: share.expires_at,
            mailed: share.mailed,
        }
    }
}

/// A share link to make.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareRequest {
    /// How long the link works, in seconds: 60 to 2,592,000 (30 days);
    /// default 604,800 (7 days).
    pub expires_in_secs: Option<u64>,
    /// Addresses to mail the link to (at most 20; needs `public_url`).
    #[serde(default)]
    pub emails: Vec<String>,
    /// A line for the mail: at most 1000 characters.
    pub message: Option<String>,
}

/// A share link made.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ShareView {
    /// Its id, as the item's list of links names it.
    pub id: String,
    /// The token of `GET /api/v1/shared/{token}`.
    pub token: String,
    /// That path.
    pub path: String,
    /// The whole link under `public_url`, when it is set.
    pub url: Option<String>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// How many mails were queued.
    pub mailed: usize,
}
