//! Rating, favorites and what an item's page shows of the actions (M3, P5,
//! M2, M1).
//!
//! Rules: [`acting_in`] is the check of every action (the item is viewable,
//! the permission held, the publish settings allow it), read in the
//! action's own transaction; a user has at most one rating per item (a new
//! one replaces it) and an item is once among their favorites; the
//! favorites list shows only what the caller can still view.
//!
//! Owns: these decisions. Must not: know HTTP.

use signet_common::permissions::{NodeTree, Permission};

use super::repo;
use super::view::{Favorite, FavoriteSubjectView, FavoriteView, ItemActions, Rating, RatingValue};
use super::{ActionError, ContentError};
use crate::app::Hub;
use crate::content::approval::may_decide;
use crate::content::settings::act_in;
use crate::content::subjects::{Subject, Subjects};
use crate::content::visibility::{Holders, Viewer};
use crate::content::{CONTENT, ContentItem};
use crate::identity::Actor;
use crate::permission_groups::effective_permissions_of_in;
use crate::store::Tx;
use crate::tenancy::load_tree_in;

/// The actions an item's page offers, in this order (`allowed`).
const OFFERED: [Permission; 12] = [
    Permission::Download,
    Permission::Share,
    Permission::Rate,
    Permission::Favorite,
    Permission::Feedback,
    Permission::UpdateCustomAttributes,
    Permission::ProcessMedia,
    Permission::CommentView,
    Permission::CommentAdd,
    Permission::CommentEditOwn,
    Permission::CommentDeleteOwn,
    Permission::CommentDeleteOthers,
];

/// What a playlist's page offers (M3, M4): rating, favorites, custom
/// attributes and comments; the other actions are about media bytes.
const OFFERED_ABOVE: [Permission; 8] = [
    Permission::Rate,
    Permission::Favorite,
    Permission::UpdateCustomAttributes,
    Permission::CommentView,
    Permission::CommentAdd,
    Permission::CommentEditOwn,
    Permission::CommentDeleteOwn,
    Permission::CommentDeleteOthers,
];

/// The item `id` if the viewer may use `action` on it now, read in `tx`
/// (P5): 404 when not viewable, 403 `permission_not_held` or
/// `disabled_by_publish_settings`.
///
/// # Errors
/// [`ActionError::Content`] as above; store failures.
pub fn acting_in(
    tx: &mut Tx,
    tree: &NodeTree,
    viewer: &Viewer,
    id: &str,
    action: Permission,
) -> Result<(ContentItem, Holders), ActionError> {
    Ok(act_in(tx, tree, viewer, id, action)?)
}

/// What `actor` sees of the actions on `item` (viewable, with `holders`).
fn summary_in(
    tx: &mut Tx,
    tree: &NodeTree,
    (actor, viewer): (&Actor, &Viewer),
    item: &Subject,
    holders: &Holders,
) -> Result<ItemActions, ActionError> {
    let (likes, dislikes, my_rating) = repo::ratings_in(tx, &item.id, &actor.user.id)?;
    let favorite = repo::is_favorite_in(tx, &actor.user.id, &item.id)?;
    let offered: &[Permission] = match item.content {
        Some(_) => &OFFERED,
        None => &OFFERED_ABOVE,
    };
    let mut allowed: Vec<String> = offered
        .iter()
        .filter(|p| viewer.may_act(tree, item, holders, **p).is_granted())
        .map(|p| p.as_str().to_owned())
        .collect();
    // Approving follows its own rule (A6): the item's node inside the
    // caller's domain and `approve_content` held, as `approval::decide` checks.
    if let Some(content) = &item.content {
        let approves =
            effective_permissions_of_in(tx, &actor.user)?.contains(Permission::ApproveContent);
        if may_decide(actor, tree, content, approves).is_ok() {
            allowed.push(Permission::ApproveContent.as_str().to_owned());
        }
    }
    Ok(ItemActions {
        likes,
        dislikes,
        my_rating,
        favorite,
        allowed,
    })
}

/// The [`ItemActions`] of item `id` of `subjects` as `actor` sees them
/// (the item page).
///
/// # Errors
/// [`ActionError::Content`] (404) when not viewable; store failures.
pub async fn summary(
    hub: &Hub,
    actor: &Actor,
    (subjects, id): (Subjects, &str),
) -> Result<ItemActions, ActionError> {
    let viewer = Viewer::load(hub, actor)?;
    hub.store
        .transact(|tx| {
            let (tree, _) = load_tree_in(tx)?;
            let (item, holders) = subjects
                .viewed_in(tx, &tree, &viewer, id)?
                .ok_or(ContentError::NotFound(subjects.what()))?;
            summary_in(tx, &tree, (actor, &viewer), &item, &holders)
        })
        .await
}

/// Runs `change` on item `id` of `subjects` after the check of `action`
/// ([`Subjects::acting_in`]) and answers the item's [`ItemActions`] after
/// it, all in one transaction.
async fn change<F>(
    hub: &Hub,
    actor: &Actor,
    (subjects, id): (Subjects, &str),
    action: Permission,
    change: F,
) -> Result<ItemActions, ActionError>
where
    F: Fn(&mut Tx, &Subject) -> Result<(), ActionError>,
{
    let viewer = Viewer::load(hub, actor)?;
    hub.store
        .transact(|tx| {
            let (tree, _) = load_tree_in(tx)?;
            let (item, holders) = subjects.acting_in(tx, &tree, &viewer, (id, action))?;
            change(tx, &item)?;
            summary_in(tx, &tree, (actor, &viewer), &item, &holders)
        })
        .await
}

/// Sets `actor`'s rating of item `id` (`rate`, `allow_rating`); one per
/// user: a new one replaces the old.
///
/// # Errors
/// As [`acting_in`].
pub async fn rate(
    hub: &Hub,
    actor: &Actor,
    which: (Subjects, &str),
    value: RatingValue,
) -> Result<ItemActions, ActionError> {
    let at = hub.now();
    change(hub, actor, which, Permission::Rate, |tx, item| {
        let rating = Rating { value, at };
        Ok(repo::put_rating(
            tx,
            &item.id,
            &actor.user.id,
            Some(&rating),
        )?)
    })
    .await
}

/// Clears `actor`'s rating of item `id` (`rate`, `allow_rating`).
///
/// # Errors
/// As [`acting_in`].
pub async fn unrate(
    hub: &Hub,
    actor: &Actor,
    which: (Subjects, &str),
) -> Result<ItemActions, ActionError> {
    change(hub, actor, which, Permission::Rate, |tx, item| {
        Ok(repo::put_rating(tx, &item.id, &actor.user.id, None)?)
    })
    .await
}

/// Adds item `id` to `actor`'s favorites (`favorite`), or removes it.
///
/// # Errors
/// As [`acting_in`].
pub async fn favorite(
    hub: &Hub,
    actor: &Actor,
    which: (Subjects, &str),
    on: bool,
) -> Result<ItemActions, ActionError> {
    let at = hub.now();
    change(hub, actor, which, Permission::Favorite, |tx, item| {
        let user = &actor.user.id;
        if !on {
            return Ok(repo::put_favorite(tx, user, &item.id, None)?);
        }
        if !repo::is_favorite_in(tx, user, &item.id)? {
            let favorite = Favorite {
                item: item.id.clone(),
                at,
            };
            repo::put_favorite(tx, user, &item.id, Some(&favorite))?;
        }
        Ok(())
    })
    .await
}

/// `actor`'s favorites that they can still view (M1), newest first.
///
/// # Errors
/// Store failures.
pub async fn favorites(hub: &Hub, actor: &Actor) -> Result<Vec<FavoriteView>, ActionError> {
    let viewer = Viewer::load(hub, actor)?;
    hub.store
        .transact(|tx| {
            let (tree, _) = load_tree_in(tx)?;
            let holders = viewer.holders_in(tx)?;
            let mut shown = Vec::new();
            for favorite in repo::favorites_in(tx, &actor.user.id)? {
                let item: Option<ContentItem> = tx.get(CONTENT, favorite.item.as_str())?;
                if let Some(item) = item.filter(|i| viewer.may_view(&tree, i, &holders)) {
                    shown.push(FavoriteView {
                        item: item.into(),
                        favorited_at: favorite.at,
                    });
                }
            }
            shown.sort_by_key(|f| std::cmp::Reverse(f.favorited_at));
            Ok::<_, ActionError>(shown)
        })
        .await
}

/// `actor`'s favorites among the items of `subjects` (the playlists) that
/// they can still view (M1), newest first.
///
/// # Errors
/// Store failures.
pub async fn favorites_of(
    hub: &Hub,
    actor: &Actor,
    subjects: Subjects,
) -> Result<Vec<FavoriteSubjectView>, ActionError> {
    let viewer = Viewer::load(hub, actor)?;
    hub.store
        .transact(|tx| {
            let (tree, _) = load_tree_in(tx)?;
            let mut shown = Vec::new();
            for favorite in repo::favorites_in(tx, &actor.user.id)? {
                let id = favorite.item.as_str();
                if let Some((item, _)) = subjects.viewed_in(tx, &tree, &viewer, id)? {
                    shown.push(FavoriteSubjectView {
                        id: item.id,
                        name: item.name,
                        node: item.node,
                        favorited_at: favorite.at,
                    });
                }
            }
            shown.sort_by_key(|f| std::cmp::Reverse(f.favorited_at));
            Ok::<_, ActionError>(shown)
        })
        .await
}
