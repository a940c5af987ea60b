//! The comments service (M4, P5, M1, M2): list, add, edit and delete the
//! comments of an item of any [`Subjects`] kind (content item, template,
//! playlist).
//!
//! Rules, each checked in one transaction with the reads it rests on:
//! - the item must be one the caller views ([`Subjects::viewed_in`]); any
//!   other is not found (404), as for other tenants (T4);
//! - each action needs its permission on the item ([`Viewer::may_act`]):
//!   listing `comment.view`, adding `comment.add`, editing the caller's
//!   own comment `comment.edit_own` (nobody edits another's comment),
//!   deleting the caller's own `comment.delete_own` (or
//!   `comment.delete_others`), deleting another's `comment.delete_others`;
//!   with the item's `allow_comments` off every one is refused (403
//!   `disabled_by_publish_settings`), whatever the caller holds (P5);
//! - a body is 1 to [`MAX_COMMENT_CHARS`] characters once trimmed, with
//!   no control characters but line breaks and tabs; an item holds at most
//!   [`MAX_COMMENTS_PER_ITEM`] comments;
//! - adding, editing and deleting write an audit entry with the change.
//!
//! Owns: these decisions and their audit entries. Must not: know HTTP.

use chrono::{DateTime, Utc};
use signet_common::ids::{ItemId, MAX_ID_LEN};
use signet_common::permissions::{Access, Denial, NodeTree, Permission};

use super::{
    Comment, CommentPage, CommentPageQuery, MAX_COMMENT_CHARS, MAX_COMMENT_PAGE,
    MAX_COMMENTS_PER_ITEM, repo,
};
use crate::app::Hub;
use crate::content::repo as items;
use crate::content::subjects::{Subject, Subjects};
use crate::content::visibility::Viewer;
use crate::identity::Actor;
use crate::store::{StoreError, Tx};
use crate::tenancy::load_tree_in;
use crate::values::new_id;

/// Why a comment action was refused; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum CommentError {
    /// The item is absent or not viewable, or the comment absent (404).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The caller does not hold the permission (403 `permission_not_held`).
    #[error("{0} is not held on this item")]
    PermissionNotHeld(Permission),
    /// The item's publish settings turn comments off (403
    /// `disabled_by_publish_settings`).
    #[error("the item's publish settings do not allow comments (M2)")]
    Disabled,
    /// Only a comment's author edits it (403 `not_own_comment`).
    #[error("only its author edits a comment")]
    NotOwn,
    /// A body that is not one (400 `invalid_comment`).
    #[error("{0}")]
    Invalid(String),
    /// A paging value that is not one (400 `invalid_query`).
    #[error("{0}")]
    InvalidQuery(String),
    /// The item holds [`MAX_COMMENTS_PER_ITEM`] comments (409
    /// `too_many_comments`).
    #[error("an item holds at most {MAX_COMMENTS_PER_ITEM} comments: delete some first")]
    TooMany,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A comment body, trimmed and checked.
///
/// # Errors
/// [`CommentError::Invalid`] saying why.
pub fn comment_body(raw: &str) -> Result<String, CommentError> {
    let body = raw.trim();
    let chars = body.chars().count();
    if chars == 0 || chars > MAX_COMMENT_CHARS {
        return Err(CommentError::Invalid(format!(
            "a comment is 1 to {MAX_COMMENT_CHARS} characters, not {chars}"
        )));
    }
    if body
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(CommentError::Invalid(
            "a comment holds no control characters but line breaks and tabs".into(),
        ));
    }
    Ok(body.to_owned())
}

/// A new comment's id, `cm-{microseconds:020}-{random}`: after `newest`
/// (the item's newest comment id) even when the clock reads the same or
/// less, so an item's comments sort by when they were added.
fn comment_id(now: DateTime<Utc>, newest: Option<&str>) -> String {
    let micros = now.timestamp_micros().max(0);
    let after = newest
        .and_then(|id| id.get(3..23))
        .and_then(|digits| digits.parse::<i64>().ok())
        .map_or(0, |last| last.saturating_add(1));
    format!("cm-{:020}-{}", micros.max(after), new_id(""))
}

/// The item `id` of `subjects` if `viewer` may use `action` on it, read
/// in `tx`.
fn item_for(
    tx: &mut Tx,
    tree: &NodeTree,
    viewer: &Viewer,
    (subjects, id): (Subjects, &str),
    action: Permission,
) -> Result<Subject, CommentError> {
    let (item, holders) = subjects
        .viewed_in(tx, tree, viewer, id)?
        .ok_or(CommentError::NotFound(subjects.what()))?;
    match viewer.may_act(tree, &item, &holders, action) {
        Access::Granted => Ok(item),
        Access::Denied(Denial::BlockedByPublishSettings) => Err(CommentError::Disabled),
        Access::Denied(
            Denial::OutsideDomain | Denial::NotInAllowedGroup | Denial::NoEntitlement,
        ) => Err(CommentError::NotFound(subjects.what())),
        Access::Denied(_) => Err(CommentError::PermissionNotHeld(action)),
    }
}

/// The comment `comment` on `item`, read in `tx`.
fn comment_in(tx: &mut Tx, item: &ItemId, comment: &str) -> Result<Comment, CommentError> {
    if comment.is_empty() || comment.len() > MAX_ID_LEN {
        return Err(CommentError::NotFound("comment"));
    }
    repo::get_in(tx, item, comment)?.ok_or(CommentError::NotFound("comment"))
}

/// A page of item `id`'s comments, newest first (`comment.view`).
///
/// # Errors
/// [`CommentError`].
pub async fn list(
    hub: &Hub,
    actor: &Actor,
    which: (Subjects, &str),
    query: &CommentPageQuery,
) -> Result<CommentPage, CommentError> {
    if query
        .before
        .as_ref()
        .is_some_and(|b| b.is_empty() || b.len() > MAX_ID_LEN)
    {
        return Err(CommentError::InvalidQuery(format!(
            "before must be 1 to {MAX_ID_LEN} bytes"
        )));
    }
    let limit = match query.limit {
        None => MAX_COMMENT_PAGE,
        Some(n) if (1..=MAX_COMMENT_PAGE).contains(&n) => n,
        Some(_) => {
            return Err(CommentError::InvalidQuery(format!(
                "limit must be 1 to {MAX_COMMENT_PAGE}"
            )));
        }
    };
    let viewer = Viewer::load(hub, actor)?;
    let all = hub
        .store
        .transact(|tx| {
            let (tree, _) = load_tree_in(tx)?;
            let item = item_for(tx, &tree, &viewer, which, Permission::CommentView)?;
            Ok::<_, CommentError>(repo::all_in(tx, &item.id)?)
        })
        .await?;
    let before = query.before.as_deref();
    let mut older = all
        .into_iter()
        .rev()
        .filter(|c| before.is_none_or(|b| c.id.as_str() < b));
    let comments: Vec<Comment> = older.by_ref().take(limit).collect();
    let next = older.next().and(comments.last().map(|c| c.id.clone()));
    Ok(CommentPage { comments, next })
}

/// Adds a comment to item `id` (`comment.add`).
///
/// # Errors
/// [`CommentError`].
pub async fn add(
    hub: &Hub,
    actor: &Actor,
    which: (Subjects, &str),
    body: &str,
) -> Result<Comment, CommentError> {
    let body = comment_body(body)?;
    let (now, viewer) = (hub.now(), Viewer::load(hub, actor)?);
    hub.store
        .transact(|tx| {
            let (tree, _) = load_tree_in(tx)?;
            let item = item_for(tx, &tree, &viewer, which, Permission::CommentAdd)?;
            let (count, newest) = repo::count_in(tx, &item.id)?;
            if count >= MAX_COMMENTS_PER_ITEM {
                return Err(CommentError::TooMany);
            }
            let comment = Comment {
                id: comment_id(now, newest.as_deref()),
                item: item.id.clone(),
                author: actor.user.id.clone(),
                author_name: actor.user.name.clone(),
                body: body.clone(),
                created_at: now,
                edited_at: None,
            };
            repo::put_in(tx, &comment)?;
            let detail = serde_json::json!({"item": item.id, "body": comment.body});
            let entry = actor.audit(now, "comment.add", &comment.id, Some(item.node), detail);
            items::record(tx, entry)?;
            Ok(comment)
        })
        .await
}

/// Edits the caller's own comment `comment` on item `id`
/// (`comment.edit_own`). The same text changes nothing.
///
/// # Errors
/// [`CommentError`].
pub async fn edit(
    hub: &Hub,
    actor: &Actor,
    (subjects, id, comment): (Subjects, &str, &str),
    body: &str,
) -> Result<Comment, CommentError> {
    let body = comment_body(body)?;
    let (now, viewer) = (hub.now(), Viewer::load(hub, actor)?);
    hub.store
        .transact(|tx| {
            let (tree, _) = load_tree_in(tx)?;
            let item = item_for(
                tx,
                &tree,
                &viewer,
                (subjects, id),
                Permission::CommentEditOwn,
            )?;
            let old = comment_in(tx, &item.id, comment)?;
            if old.author != actor.user.id {
                return Err(CommentError::NotOwn);
            }
            if old.body == body {
                return Ok(old);
            }
            let edited = Comment {
                body: body.clone(),
                edited_at: Some(now),
                ..old.clone()
            };
            repo::put_in(tx, &edited)?;
            let detail = serde_json::json!({"item": item.id,
                "body": {"from": old.body, "to": edited.body}});
            let entry = actor.audit(now, "comment.edit", &edited.id, Some(item.node), detail);
            items::record(tx, entry)?;
            Ok(edited)
        })
        .await
}

/// Deletes comment `comment` on item `id`: the caller's own with
/// `comment.delete_own` (or `comment.delete_others`), another's with
/// `comment.delete_others`.
///
/// # Errors
/// [`CommentError`].
pub async fn delete(
    hub: &Hub,
    actor: &Actor,
    (subjects, id, comment): (Subjects, &str, &str),
) -> Result<(), CommentError> {
    let (now, viewer) = (hub.now(), Viewer::load(hub, actor)?);
    hub.store
        .transact(|tx| {
            let (tree, _) = load_tree_in(tx)?;
            let which = (subjects, id);
            let others = Permission::CommentDeleteOthers;
            let (item, comment) =
                match item_for(tx, &tree, &viewer, which, Permission::CommentDeleteOwn) {
                    Ok(item) => {
                        let found = comment_in(tx, &item.id, comment)?;
                        if found.author == actor.user.id {
                            (item, found)
                        } else {
                            (item_for(tx, &tree, &viewer, which, others)?, found)
                        }
                    }
                    Err(CommentError::PermissionNotHeld(_)) => {
                        let item = item_for(tx, &tree, &viewer, which, others)?;
                        let found = comment_in(tx, &item.id, comment)?;
                        (item, found)
                    }
                    Err(e) => return Err(e),
                };
            repo::remove_in(tx, &comment);
            let detail = serde_json::json!({"item": item.id, "author": comment.author,
                "author_name": comment.author_name, "body": comment.body});
            let entry = actor.audit(now, "comment.delete", &comment.id, Some(item.node), detail);
            items::record(tx, entry)?;
            Ok(())
        })
        .await
}
