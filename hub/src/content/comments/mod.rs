//! Comments on items — content items (media, templates) and playlists,
//! the latter read through [`super::subjects`] (M4, P5, P7, M1, M2): view, add, edit own,
//! delete own, delete others', each by its permission (`comment.view`,
//! `comment.add`, `comment.edit_own`, `comment.delete_own`,
//! `comment.delete_others`), the item's `allow_comments` publish setting,
//! and only on items the caller can view (404 otherwise, as for other
//! tenants).
//!
//! Owns: the `comments` tree (written only by [`repo`]), the comment
//! record and its bounds, and the comments service ([`service`]) with its
//! audit entries (`comment.add`, `comment.edit`, `comment.delete`). Must
//! not: know HTTP. Deleting an item deletes its comments in the same
//! transaction ([`repo::remove_all_in`], called by
//! [`super::repo::remove_item`] and by the playlist delete).

pub mod repo;
pub mod service;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use signet_common::ids::{ItemId, UserId};

pub use service::CommentError;

/// Tree of comments, keyed `{item}/{comment id}`; comment ids are
/// time-ordered, so an item's comments scan oldest first.
pub const COMMENTS: &str = "comments";
/// The longest comment body, in characters.
pub const MAX_COMMENT_CHARS: usize = 2000;
/// The most comments one item holds; more are refused (409
/// `too_many_comments`), so an item's listing stays bounded.
pub const MAX_COMMENTS_PER_ITEM: usize = 1000;
/// The most comments one page lists, and the default.
pub const MAX_COMMENT_PAGE: usize = 100;

/// A comment on an item (a content item or a playlist).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Comment {
    /// Stable, time-ordered id (`cm-…`).
    pub id: String,
    /// The item it is about: a content item's id, or a playlist's.
    #[schema(value_type = String)]
    pub item: ItemId,
    /// Who wrote it.
    #[schema(value_type = String)]
    pub author: UserId,
    /// The author's login name when it was written.
    pub author_name: String,
    /// The text (1 to 2000 characters, trimmed).
    pub body: String,
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// When its author last edited it, if ever.
    pub edited_at: Option<DateTime<Utc>>,
}

/// The text of a new or edited comment.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentBody {
    /// The text: 1 to 2000 characters once trimmed.
    pub body: String,
}

/// Which page of an item's comments to list, newest first.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CommentPageQuery {
    /// The `next` of the previous page: comments older than this one.
    pub before: Option<String>,
    /// Comments per page, 1 to 100 (default 100).
    pub limit: Option<usize>,
}

/// One page of an item's comments, newest first.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CommentPage {
    /// The comments, newest first.
    pub comments: Vec<Comment>,
    /// Pass as `before` for the next (older) page; `None` on the last.
    pub next: Option<String>,
}
