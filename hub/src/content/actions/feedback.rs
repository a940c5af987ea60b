//! Feedback (M3, P7): users report an item with a reason into the
//! moderators' queue; a Moderator resolves a report with a note.
//!
//! Rules: reporting needs `feedback` on an item the user views (P5; there
//! is no publish setting for it); a user has at most one open report per
//! item (409 `feedback_open`). The queue is for Moderator and above: each
//! sees the reports on items whose node lies inside their domain (T3, T4;
//! others' reports are not found). Resolving closes a report once (409
//! `feedback_resolved`). Reports and resolutions are audited
//! (`content.feedback`, `feedback.resolve`). A deleted item's open reports
//! go with it; resolved ones stay, for the record.
//!
//! Owns: these decisions. Must not: know HTTP.

use signet_common::permissions::{Permission, Role};

use super::service::acting_in;
use super::view::{Feedback, FeedbackQuery, FeedbackRequest, FeedbackStatus, Resolution};
use super::{ActionError, repo, text};
use crate::app::Hub;
use crate::content::visibility::Viewer;
use crate::identity::Actor;
use crate::tenancy::load_tree_in;
use crate::values::ordered_id;

/// The longest comment or note, in characters.
pub const MAX_TEXT: usize = 2000;
/// The most reports one listing answers.
pub const MAX_LIST: usize = 1000;
/// The reports one listing answers by default.
pub const DEFAULT_LIST: usize = 200;

/// Files `actor`'s report on item `id`.
///
/// # Errors
/// As [`acting_in`] with `feedback`; 400 `invalid_comment`; 409
/// `feedback_open`.
pub async fn report(
    hub: &Hub,
    actor: &Actor,
    id: &str,
    request: &FeedbackRequest,
) -> Result<Feedback, ActionError> {
    let comment = text(&request.comment, MAX_TEXT, ("comment", "invalid_comment"))?;
    let viewer = Viewer::load(hub, actor)?;
    let now = hub.now();
    let feedback_id = ordered_id(now);
    hub.store
        .transact(|tx| {
            let (tree, _) = load_tree_in(tx)?;
            let (item, _) = acting_in(tx, &tree, &viewer, id, Permission::Feedback)?;
            let open = repo::open_feedback_in(tx, &item.id)?;
            if let Some((held, _)) = open.iter().find(|(_, user)| *user == actor.user.id) {
                return Err(ActionError::conflict(
                    "feedback_open",
                    format!("your report {held} on this item is still open"),
                ));
            }
            let feedback = Feedback {
                id: feedback_id.clone(),
                item: item.id.clone(),
                item_name: item.name.clone(),
                node: item.node.clone(),
                reporter: actor.user.id.clone(),
                reporter_name: actor.user.name.clone(),
                reason: request.reason,
                comment: comment.clone(),
                created_at: now,
                resolution: None,
            };
            repo::put_feedback(tx, &feedback)?;
            let detail = serde_json::json!({"feedback": feedback.id, "reason": feedback.reason});
            let node = Some(item.node.clone());
            let entry = actor.audit(now, "content.feedback", item.id.as_str(), node, detail);
            crate::content::repo::record(tx, entry)?;
            Ok(feedback)
        })
        .await
}

/// The moderators' queue as `actor` (Moderator+) sees it: reports on items
/// inside their domain, newest first.
///
/// # Errors
/// 403 below Moderator; 400 `invalid_limit`.
pub async fn queue(
    hub: &Hub,
    actor: &Actor,
    query: &FeedbackQuery,
) -> Result<Vec<Feedback>, ActionError> {
    actor.require(Role::Moderator)?;
    let limit = query.limit.unwrap_or(DEFAULT_LIST);
    if !(1..=MAX_LIST).contains(&limit) {
        return Err(ActionError::invalid(
            "invalid_limit",
            format!("limit must be 1 to {MAX_LIST}"),
        ));
    }
    let status = query.status.unwrap_or_default();
    hub.store
        .transact(|tx| {
            let (tree, _) = load_tree_in(tx)?;
            let all = repo::all_feedback_in(tx)?;
            Ok::<_, ActionError>(
                all.into_iter()
                    .rev()
                    .filter(|f| actor.sees(&tree, &f.node))
                    .filter(|f| match status {
                        FeedbackStatus::Open => f.resolution.is_none(),
                        FeedbackStatus::Resolved => f.resolution.is_some(),
                        FeedbackStatus::All => true,
                    })
                    .take(limit)
                    .collect(),
            )
        })
        .await
}

/// Resolves report `id` with `note` (Moderator+, inside their domain).
///
/// # Errors
/// 403 below Moderator; 404 outside the domain; 400 `invalid_note`; 409
/// `feedback_resolved`.
pub async fn resolve(
    hub: &Hub,
    actor: &Actor,
    id: &str,
    note: &str,
) -> Result<Feedback, ActionError> {
    actor.require(Role::Moderator)?;
    let note = if note.trim().is_empty() {
        String::new()
    } else {
        text(note, MAX_TEXT, ("note", "invalid_note"))?
    };
    let now = hub.now();
    hub.store
        .transact(|tx| {
            let (tree, _) = load_tree_in(tx)?;
            let mut feedback = repo::feedback_in(tx, id)?
                .filter(|f| actor.sees(&tree, &f.node))
                .ok_or(ActionError::NotFound("feedback"))?;
            if let Some(done) = &feedback.resolution {
                return Err(ActionError::conflict(
                    "feedback_resolved",
                    format!("resolved by {} at {}", done.by_name, done.at),
                ));
            }
            feedback.resolution = Some(Resolution {
                by: actor.user.id.clone(),
                by_name: actor.user.name.clone(),
                at: now,
                note: note.clone(),
            });
            repo::put_feedback(tx, &feedback)?;
            let detail = serde_json::json!({"item": feedback.item, "note": note});
            let node = Some(feedback.node.clone());
            let entry = actor.audit(now, "feedback.resolve", &feedback.id, node, detail);
            crate::content::repo::record(tx, entry)?;
            Ok(feedback)
        })
        .await
}
