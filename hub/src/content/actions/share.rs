//! Share links (M3, M2, P5): a signed, expiring link that plays one media
//! item without a login, optionally mailed through the outbox; the item's
//! live links listed and revoked one by one.
//!
//! Rules: sharing needs `share` and the item's `allow_share` on an item the
//! caller views ([`super::service::acting_in`]); only media play from a link
//! (409 `not_playable` for templates). A link lives 60 s to 30 days (7 days
//! by default); an item holds at most [`MAX_SHARES_PER_ITEM`] links not yet
//! expired (409 `too_many_shares`). Its token is `{share}.{expires}.{mac}`:
//! the MAC is HMAC-SHA256, with the hub's share-link key, over the share
//! id, the item and the expiry, so a token cannot be forged or stretched.
//! Playing checks the MAC and the share record (gone with its item, or
//! pruned after its expiry: 404), then whether the link was revoked (410
//! `share_revoked`), its expiry by the hub's clock (410 `share_expired`) and
//! that the item still allows sharing (410 `share_revoked`). Mail goes only
//! with `public_url` set (the link must be clickable: 409
//! `public_url_unset`), to at most 20 addresses, queued in the share's own
//! transaction; the share is audited (`content.share`).
//!
//! Revoking (P2, P5): a link ends at once, for good, when its maker revokes
//! it, when a Moderator or above whose domain holds the item's node revokes
//! it (P2: Moderator and above hold every media permission on what they
//! view; A6 uses the same "node inside the domain" rule for decisions on an
//! item), or when the item's sharing is turned off ([`revoke_all_in`], M2:
//! every live link at once). Anyone else gets 403 `not_own_share`; a caller
//! who neither made the link nor views its item gets 404, as for other
//! tenants. Revoking is audited (`content.share_revoked`); revoking a
//! revoked link changes nothing. The item's page lists the live links the
//! caller may revoke ([`links`]): all of them for such a Moderator, else the
//! caller's own; never a token.
//!
//! Owns: the share-link key (made on first use, stored in the store), the
//! token format and these decisions. Must not: know HTTP.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeDelta, Utc};
use ring::hmac;
use serde::{Deserialize, Serialize};
use signet_common::digest::Sha256;
use signet_common::documents::ItemKind;
use signet_common::ids::{ItemId, MAX_ID_LEN, UserId};
use signet_common::permissions::{NodeTree, Permission, Role};

use super::service::acting_in;
use super::view::{Revocation, Share, ShareLink, ShareRequest, ShareView};
use super::{ActionError, SHARE_KEY_ID, SHARE_KEYS, repo, text};
use crate::app::Hub;
use crate::content::repo::Items;
use crate::content::service::ContentError;
use crate::content::visibility::Viewer;
use crate::content::{CONTENT, ContentItem};
use crate::identity::Actor;
use crate::identity::names::check_email;
use crate::mail::links::page_link;
use crate::mail::{Mail, enqueue_in};
use crate::store::{StoreError, Tx};
use crate::tenancy::load_tree_in;
use crate::values::{new_id, random_fill};

/// The public path that plays a link: `/api/v1/shared/{token}`.
pub const SHARED_PATH: &str = "/api/v1/shared/";
/// The shortest life of a link, in seconds.
pub const MIN_EXPIRY_SECS: u64 = 60;
/// The longest life of a link, in seconds (30 days).
pub const MAX_EXPIRY_SECS: u64 = 30 * 24 * 3600;
/// The life of a link when none is asked for (7 days).
pub const DEFAULT_EXPIRY_SECS: u64 = 7 * 24 * 3600;
/// The most addresses one share mails.
pub const MAX_RECIPIENTS: usize = 20;
/// The most links not yet expired (revoked ones included) one item holds.
pub const MAX_SHARES_PER_ITEM: usize = 1000;
/// The longest token accepted, in bytes.
const MAX_TOKEN_LEN: usize = 128;

/// The share-link key as stored.
#[derive(Serialize, Deserialize)]
struct ShareKey {
    /// 32 random bytes, base64url.
    secret: String,
    /// When it was made.
    created_at: DateTime<Utc>,
}

/// The share-link key, made from `fresh` on first use, read in `tx`.
fn key_in(tx: &mut Tx, fresh: &[u8; 32], now: DateTime<Utc>) -> Result<hmac::Key, StoreError> {
    let stored = match tx.get::<ShareKey>(SHARE_KEYS, SHARE_KEY_ID)? {
        Some(key) => URL_SAFE_NO_PAD.decode(key.secret).ok(),
        None => None,
    };
    let secret = match stored {
        Some(secret) if secret.len() == 32 => secret,
        _ => {
            let key = ShareKey {
                secret: URL_SAFE_NO_PAD.encode(fresh),
                created_at: now,
            };
            tx.put(SHARE_KEYS, SHARE_KEY_ID, &key)?;
            fresh.to_vec()
        }
    };
    Ok(hmac::Key::new(hmac::HMAC_SHA256, &secret))
}

/// What the MAC of a link covers.
fn signed_message(share: &str, item: &ItemId, expires: i64) -> String {
    format!("signet-share/v1\n{share}\n{item}\n{expires}")
}

/// The checked request: life, addresses and the mail's line.
fn checked(
    hub: &Hub,
    request: &ShareRequest,
) -> Result<(TimeDelta, Vec<String>, Option<String>), ActionError> {
    let secs = request.expires_in_secs.unwrap_or(DEFAULT_EXPIRY_SECS);
    if !(MIN_EXPIRY_SECS..=MAX_EXPIRY_SECS).contains(&secs) {
        return Err(ActionError::invalid(
            "invalid_expiry",
            format!("expires_in_secs must be {MIN_EXPIRY_SECS} to {MAX_EXPIRY_SECS}"),
        ));
    }
    if request.emails.len() > MAX_RECIPIENTS {
        return Err(ActionError::invalid(
            "too_many_recipients",
            format!("at most {MAX_RECIPIENTS} addresses per share"),
        ));
    }
    for email in &request.emails {
        check_email(email).map_err(|e| ActionError::invalid("invalid_email", e.to_string()))?;
    }
    if !request.emails.is_empty() && hub.config.public_url.is_none() {
        return Err(ActionError::conflict(
            "public_url_unset",
            "a shared link is mailed only with public_url set: the mail must carry a link \
             that opens",
        ));
    }
    let message = (request.message.as_deref())
        .map(|m| text(m, 1000, ("message", "invalid_message")))
        .transpose()?;
    let life = TimeDelta::seconds(i64::try_from(secs).unwrap_or(i64::MAX));
    Ok((life, request.emails.clone(), message))
}

/// The mail that hands `link` to a recipient.
fn share_mail(
    to: &str,
    (actor, item): (&Actor, &ContentItem),
    (link, expires_at): (&str, DateTime<Utc>),
    message: Option<&str>,
) -> Mail {
    let name: String = item.name.chars().take(120).collect();
    let note = message.map(|m| format!("{m}\n\n")).unwrap_or_default();
    Mail {
        to: to.to_owned(),
        subject: format!("{} shared \"{name}\" with you", actor.user.name),
        body: format!(
            "{note}{} shared \"{name}\" with you. Play it:\n{link}\n\nThe link works until {} (UTC).\n",
            actor.user.name,
            expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
    }
}

/// Makes a share link to item `id` for `actor` and mails it to the
/// addresses asked for: see the module rules.
///
/// # Errors
/// [`ActionError`]: as [`acting_in`] with `share`; 400 for a bad request;
/// 409 `not_playable`, `public_url_unset`.
pub async fn share(
    hub: &Hub,
    actor: &Actor,
    id: &str,
    request: &ShareRequest,
) -> Result<ShareView, ActionError> {
    let (life, emails, message) = checked(hub, request)?;
    let viewer = Viewer::load(hub, actor)?;
    let mut fresh = [0u8; 32];
    random_fill(&mut fresh);
    let (now, share_id) = (hub.now(), new_id("s-"));
    let view = hub
        .store
        .transact(|tx| {
            let (tree, _) = load_tree_in(tx)?;
            let (item, _) = acting_in(tx, &tree, &viewer, id, Permission::Share)?;
            if !matches!(
                item.kind,
                ItemKind::Image | ItemKind::Video | ItemKind::Audio
            ) {
                return Err(ActionError::conflict(
                    "not_playable",
                    "only media items play from a share link",
                ));
            }
            repo::remove_shares_in(tx, &item.id, |s| s.expires_at <= now)?;
            if repo::shares_of_in(tx, &item.id)?.len() >= MAX_SHARES_PER_ITEM {
                return Err(ActionError::conflict(
                    "too_many_shares",
                    format!(
                        "an item holds at most {MAX_SHARES_PER_ITEM} links not yet expired: \
                         revoke some or wait for them to expire"
                    ),
                ));
            }
            let expires_at = now + life;
            let share = Share {
                id: share_id.clone(),
                item: item.id.clone(),
                created_by: actor.user.id.clone(),
                created_at: now,
                expires_at,
                created_by_name: actor.user.name.clone(),
                mailed: emails.len(),
                revoked: None,
            };
            let key = key_in(tx, &fresh, now)?;
            let message_bytes = signed_message(&share.id, &item.id, expires_at.timestamp());
            let mac = hmac::sign(&key, message_bytes.as_bytes());
            let token = format!(
                "{}.{}.{}",
                share.id,
                expires_at.timestamp(),
                URL_SAFE_NO_PAD.encode(mac.as_ref())
            );
            repo::put_share(tx, &share)?;
            let url = page_link(&hub.config, SHARED_PATH, &token);
            for to in &emails {
                let link = url.as_deref().unwrap_or_default();
                let mail = share_mail(to, (actor, &item), (link, expires_at), message.as_deref());
                mail.check()
                    .map_err(|e| ActionError::invalid("invalid_email", e.to_string()))?;
                enqueue_in(tx, mail, now)?;
            }
            let detail = serde_json::json!({"share": share.id, "expires_at": expires_at,
                "mailed_to": emails});
            let node = Some(item.node.clone());
            let entry = actor.audit(now, "content.share", item.id.as_str(), node, detail);
            crate::content::repo::record(tx, entry)?;
            Ok(ShareView {
                id: share.id.clone(),
                path: format!("{SHARED_PATH}{token}"),
                token,
                url,
                expires_at,
                mailed: emails.len(),
            })
        })
        .await?;
    if view.mailed > 0 {
        hub.mail_wake.notify_one();
    }
    Ok(view)
}

/// What a valid link plays: the blob and its media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shared {
    /// The item's bytes.
    pub sha256: Sha256,
    /// Their media type.
    pub media_type: String,
}

/// The media a share `token` plays now, without a login: see the module
/// rules.
///
/// # Errors
/// 404 for a token that is malformed, forged, unknown or revoked with its
/// record; 410 `share_expired`, `share_revoked`.
pub async fn play(hub: &Hub, token: &str) -> Result<Shared, ActionError> {
    let not_found = || ActionError::NotFound("share link");
    if token.len() > MAX_TOKEN_LEN {
        return Err(not_found());
    }
    let mut parts = token.splitn(3, '.');
    let (Some(share_id), Some(expires), Some(mac)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(not_found());
    };
    let expires: i64 = expires.parse().map_err(|_| not_found())?;
    let mac = URL_SAFE_NO_PAD.decode(mac).map_err(|_| not_found())?;
    let now = hub.now();
    let mut fresh = [0u8; 32];
    random_fill(&mut fresh);
    hub.store
        .transact(|tx| {
            let share = repo::share_in(tx, share_id)?.ok_or_else(not_found)?;
            let key = key_in(tx, &fresh, now)?;
            let signed = signed_message(&share.id, &share.item, expires);
            if share.expires_at.timestamp() != expires
                || hmac::verify(&key, signed.as_bytes(), &mac).is_err()
            {
                return Err(not_found());
            }
            if share.revoked.is_some() {
                return Err(revoked());
            }
            if now >= share.expires_at {
                return Err(ActionError::Gone {
                    code: "share_expired",
                    message: format!("this link expired at {}", share.expires_at),
                });
            }
            let item: ContentItem = tx
                .get(CONTENT, share.item.as_str())?
                .ok_or_else(not_found)?;
            if !item.settings.allow_share {
                return Err(revoked());
            }
            Ok(Shared {
                sha256: item.sha256,
                media_type: item.media_type,
            })
        })
        .await
}

/// 410 `share_revoked`.
fn revoked() -> ActionError {
    ActionError::Gone {
        code: "share_revoked",
        message: "this link was revoked".to_owned(),
    }
}

/// Whether `actor` revokes (and lists) every link of `item`, not only their
/// own: Moderator and above whose domain holds the item's node (P2).
fn manages(actor: &Actor, tree: &NodeTree, item: &ContentItem) -> bool {
    actor.user.role >= Role::Moderator && actor.sees(tree, &item.node)
}

/// Revokes every live link of `item` (its sharing is being turned off, M2)
/// in `tx`, on behalf of `by` at `now`; how many.
///
/// # Errors
/// When the store fails.
pub fn revoke_all_in(
    tx: &mut Tx,
    item: &ItemId,
    by: &UserId,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let mut revoked = 0;
    for mut share in repo::shares_of_in(tx, item)? {
        if share.revoked.is_none() && share.expires_at > now {
            share.revoked = Some(Revocation {
                by: by.clone(),
                at: now,
            });
            repo::put_share(tx, &share)?;
            revoked += 1;
        }
    }
    Ok(revoked)
}

/// The live links of item `id` that `actor` may revoke, newest first: see
/// the module rules.
///
/// # Errors
/// [`ActionError::Content`] (404) when the item is not viewable; store
/// failures.
pub async fn links(hub: &Hub, actor: &Actor, id: &str) -> Result<Vec<ShareLink>, ActionError> {
    let (now, viewer) = (hub.now(), Viewer::load(hub, actor)?);
    hub.store
        .transact(|tx| {
            let (tree, _) = load_tree_in(tx)?;
            let (item, _) = viewer
                .item_in(tx, &tree, id, Items::Any)?
                .ok_or(ContentError::NotFound(Items::Any.what()))?;
            let all = manages(actor, &tree, &item);
            let mut live: Vec<ShareLink> = repo::shares_of_in(tx, &item.id)?
                .into_iter()
                .filter(|s| s.revoked.is_none() && s.expires_at > now)
                .filter(|s| all || s.created_by == actor.user.id)
                .map(ShareLink::from)
                .collect();
            live.sort_by_key(|s| std::cmp::Reverse(s.created_at));
            Ok::<_, ActionError>(live)
        })
        .await
}

/// Revokes the share link `share`: see the module rules.
///
/// # Errors
/// 404 when absent, or neither the caller's nor on an item they view; 403
/// `not_own_share`; store failures.
pub async fn revoke(hub: &Hub, actor: &Actor, share: &str) -> Result<(), ActionError> {
    let not_found = || ActionError::NotFound("share link");
    if share.is_empty() || share.len() > MAX_ID_LEN {
        return Err(not_found());
    }
    let (now, viewer) = (hub.now(), Viewer::load(hub, actor)?);
    hub.store
        .transact(|tx| {
            let (tree, _) = load_tree_in(tx)?;
            let mut link = repo::share_in(tx, share)?.ok_or_else(not_found)?;
            let own = link.created_by == actor.user.id;
            let item = match viewer.item_in(tx, &tree, link.item.as_str(), Items::Any)? {
                Some((item, _)) => item,
                None if own => tx
                    .get::<ContentItem>(CONTENT, link.item.as_str())?
                    .ok_or_else(not_found)?,
                None => return Err(not_found()),
            };
            if !own && !manages(actor, &tree, &item) {
                return Err(ContentError::NotAllowed {
                    code: "not_own_share",
                    message: "only its maker, or a Moderator or above whose domain holds the \
                              item's node, revokes a share link (P2)"
                        .to_owned(),
                }
                .into());
            }
            if link.revoked.is_some() {
                return Ok(());
            }
            link.revoked = Some(Revocation {
                by: actor.user.id.clone(),
                at: now,
            });
            repo::put_share(tx, &link)?;
            let detail = serde_json::json!({"share": link.id, "created_by": link.created_by,
                "expires_at": link.expires_at});
            let node = Some(item.node.clone());
            let entry = actor.audit(now, "content.share_revoked", item.id.as_str(), node, detail);
            crate::content::repo::record(tx, entry)?;
            Ok(())
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn m3_the_mac_covers_share_item_and_expiry() {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &[7; 32]);
        let item = ItemId::from("c-1");
        let mac = hmac::sign(&key, signed_message("s-1", &item, 100).as_bytes());
        let ok = |share: &str, item: &str, expires| {
            let signed = signed_message(share, &ItemId::from(item), expires);
            hmac::verify(&key, signed.as_bytes(), mac.as_ref()).is_ok()
        };
        assert!(ok("s-1", "c-1", 100));
        assert!(!ok("s-1", "c-1", 101), "a stretched expiry is refused");
        assert!(!ok("s-1", "c-2", 100), "another item is refused");
        assert!(!ok("s-2", "c-1", 100), "another share is refused");
    }
}
