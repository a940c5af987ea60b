//! "My content" and playbacks (M6): what a member may play, starting a
//! playback in a registered browser — inside the licence window (L2, L4)
//! and the device limit (L5) — with a short-lived signed media URL, the
//! play event it records (U1, L8), and the first use it may start (L2).
//!
//! Owns: [`my_content`], [`start`], [`progress`], [`media`], the media
//! URL's signature (HMAC-SHA256 with [`super::SIGNING_KEY`]). Must not:
//! serve the bytes (the API streams them) or decide a window itself.

use chrono::{DateTime, TimeDelta, Utc};
use signet_common::digest::Sha256;
use signet_common::documents::ItemKind;
use signet_common::ids::ItemId;
use signet_common::license::{LicenseError, check_access};
use signet_common::sync::{Outcome, PlayEvent};

use super::browsers::{browsers_in, by_token_in, groups_in, put_browser, slot};
use super::types::{
    MediaSignature, MyContent, MyGroup, MyItem, PlayGranted, PlayProgress, StartPlay,
};
use super::{
    BROWSERS, MAX_MEDIA_URL_TTL_SECS, MEDIA_URL_TTL_SECS, MemberError, PLAYS, Play, SIGNING_KEY,
    browser_key, thumbnails,
};
use crate::access_groups::{
    self, AccessGroup, GroupItem, ITEMS, MemberRef, first_use, group_prefix, window,
};
use crate::app::Hub;
use crate::content::refs::{Referrer, referrers_in};
use crate::content::{CONTENT, ContentItem};
use crate::fleet::events::{StoredEvent, insert_in, set_duration_in};
use crate::identity::{Actor, new_id, new_token};
use crate::store::{StoreError, Tx};

/// The one key of [`SIGNING_KEY`].
const KEY: &str = "hmac";

/// The caller's current groups with the items a browser can play, by
/// group name (M6).
///
/// # Errors
/// The store's.
pub async fn my_content(hub: &Hub, actor: &Actor) -> Result<MyContent, MemberError> {
    let user = &actor.user.id;
    let now = hub.now();
    let fresh_key = new_token().0;
    let expires = thumbnails::expiry(now);
    let mut groups = hub
        .store
        .transact(|tx| {
            let key = key_in(tx, &fresh_key)?;
            let mut groups = Vec::new();
            for (group, member) in groups_in(tx, user)? {
                let items = items_in(tx, &group, &key, expires)?;
                let window = window(&group, &member);
                groups.push(MyGroup {
                    id: group.id.to_string(),
                    in_window_now: check_access(&group.license, &member.membership, None, now)
                        .is_ok(),
                    name: group.name,
                    categories: group.categories,
                    window,
                    max_devices: group.license.max_active_devices,
                    items,
                });
            }
            Ok::<_, MemberError>(groups)
        })
        .await?;
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(MyContent { groups })
}

/// `group`'s items a browser can play (video, audio, images), by name,
/// each with its thumbnail's URL signed under `key` until `expires`.
fn items_in(
    tx: &mut Tx,
    group: &AccessGroup,
    key: &str,
    expires: i64,
) -> Result<Vec<MyItem>, MemberError> {
    let mut items = Vec::new();
    for held in tx.scan::<GroupItem>(ITEMS, &group_prefix(&group.id))? {
        let Some(item) = tx.get::<ContentItem>(CONTENT, held.id.as_str())? else {
            continue;
        };
        let kind = match item.kind {
            ItemKind::Video => "video",
            ItemKind::Audio => "audio",
            ItemKind::Image => "image",
            ItemKind::Template => continue,
        };
        items.push(MyItem {
            thumbnail_url: item
                .thumbnail
                .then(|| thumbnails::url(key, item.id.as_str(), expires)),
            id: item.id.to_string(),
            name: item.name,
            kind: kind.to_owned(),
            media_type: item.media_type,
            duration_ms: item.duration_ms,
            categories: held.categories,
        });
    }
    items.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(items)
}

/// What [`start`] did: the grant, and whether this playback was the
/// member's first use of a licence that counts from it (then the group's
/// documents must be signed again: [`crate::publish::after_first_use`]).
#[derive(Debug)]
pub struct Started {
    /// The signed URL and its bounds.
    pub granted: PlayGranted,
    /// Whether a first use was recorded (L2).
    pub first_use: bool,
}

/// Starts playing item `id` in the caller's browser named by its token
/// (M6): in the first group holding the item whose licence lets the caller
/// play now (L2, L4) and has a device slot for the browser (L5). Records
/// the play event (U1) under the caller and the browser, and the caller's
/// first use of the group (L2).
///
/// # Errors
/// `BrowserUnknown`, `NotFound` (the item is in none of the caller's
/// groups), `OutsideWindow`, `TooManyDevices`, `NotApproved`, the store's.
pub async fn start(
    hub: &Hub,
    actor: &Actor,
    id: &str,
    request: StartPlay,
) -> Result<Started, MemberError> {
    if !access_groups::is_valid_id(id) {
        return Err(MemberError::NotFound("item"));
    }
    let user = &actor.user.id;
    let item_id = ItemId::from(id);
    let fresh_key = new_token().0;
    let play_id = format!("{}{}", new_id(""), new_id(""));
    let (play, key, window_ends_at, first) = hub
        .store
        .transact(|tx| {
            let now = hub.now();
            let mut browser = by_token_in(tx, user, &request.device_token)?;
            let item = tx
                .get::<ContentItem>(CONTENT, item_id.as_str())?
                .ok_or(MemberError::NotFound("item"))?;
            let group = choose_group(tx, actor, &item, &browser, now)?;
            if item.approval.approved_hash() != Some(&item.approval_hash) {
                return Err(MemberError::NotApproved);
            }
            let member = MemberRef::user(user);
            let first = first_use::note_use(tx, &group.id, &member, now, now)?.is_some();
            let record = access_groups::repo::member(tx, &group.id, &member)?
                .ok_or(MemberError::NotFound("item"))?;
            let ends = window(&group, &record).ends_at;
            browser.slots.insert(group.id.clone());
            browser.last_played_at = Some(now);
            put_browser(tx, &browser)?;
            let play = Play {
                id: play_id.clone(),
                user: user.clone(),
                browser: browser.id.clone(),
                item: item.id.clone(),
                group: group.id.clone(),
                sha256: item.sha256,
                media_type: item.media_type.clone(),
                started_at: now,
                expires_at: url_expiry(now, item.duration_ms, ends),
            };
            tx.put(PLAYS, &play.id, &play)?;
            insert_in(tx, &play_event(&play, &group))?;
            let key = key_in(tx, &fresh_key)?;
            Ok((play, key, ends, first))
        })
        .await?;
    let expires = play.expires_at.timestamp();
    let signature = sign(&key, &play.id, expires);
    Ok(Started {
        granted: PlayGranted {
            url: format!(
                "/api/v1/my/media/{}?expires={expires}&signature={signature}",
                play.id
            ),
            play_id: play.id,
            expires_at: play.expires_at,
            group: play.group.to_string(),
            window_ends_at,
        },
        first_use: first,
    })
}

/// The first of the caller's groups holding `item` that lets them play at
/// `now` and has a device slot for `browser`; else why not: the item in
/// none of them (404), every slot taken (L5), or the licence's reason.
fn choose_group(
    tx: &mut Tx,
    actor: &Actor,
    item: &ContentItem,
    browser: &super::Browser,
    now: DateTime<Utc>,
) -> Result<AccessGroup, MemberError> {
    let holding: Vec<String> = referrers_in(tx, Referrer::AccessGroup, &item.id)?;
    let browsers = browsers_in(tx, &actor.user.id)?;
    let (mut full, mut denied) = (None, None);
    let mut any = false;
    for (group, member) in groups_in(tx, &actor.user.id)? {
        if !holding.iter().any(|g| g == group.id.as_str()) {
            continue;
        }
        any = true;
        if let Err(reason) = check_access(&group.license, &member.membership, None, now) {
            denied = Some(reason.to_string());
            continue;
        }
        match slot(&group, &browsers, &browser.id) {
            Ok(()) => return Ok(group),
            Err(LicenseError::TooManyDevices { max }) => full = Some(max),
            Err(other) => denied = Some(other.to_string()),
        }
    }
    match (any, full, denied) {
        (false, _, _) => Err(MemberError::NotFound("item")),
        (true, Some(max), _) => Err(MemberError::TooManyDevices { max }),
        (true, None, reason) => Err(MemberError::OutsideWindow(reason.unwrap_or_default())),
    }
}

/// When a media URL made at `now` stops working: the item's playing time
/// plus [`MEDIA_URL_TTL_SECS`], at most [`MAX_MEDIA_URL_TTL_SECS`], and
/// never after the member's window ends.
fn url_expiry(
    now: DateTime<Utc>,
    duration_ms: Option<u64>,
    window_ends: Option<DateTime<Utc>>,
) -> DateTime<Utc> {
    let playing = i64::try_from(duration_ms.unwrap_or(0) / 1000).unwrap_or(i64::MAX);
    let ttl = playing
        .saturating_add(MEDIA_URL_TTL_SECS)
        .min(MAX_MEDIA_URL_TTL_SECS);
    let at = now + TimeDelta::seconds(ttl);
    window_ends.map_or(at, |end| at.min(end))
}

/// The play event of `play` (U1): the browser as its device, the group's
/// node as where it happened (who may see it in reports), the user.
fn play_event(play: &Play, group: &AccessGroup) -> StoredEvent {
    StoredEvent {
        event: PlayEvent {
            id: play.id.clone(),
            device_id: play.browser.clone(),
            item: play.item.clone(),
            access_group: Some(group.id.clone()),
            license_version: None,
            start: play.started_at,
            duration_ms: 0,
            outcome: Outcome::Played,
            skip_reason: None,
            country: None,
            region: None,
            os: "web browser".to_owned(),
            agent_version: concat!("signet-console ", env!("CARGO_PKG_VERSION")).to_owned(),
        },
        node: Some(group.node.clone()),
        received_at: play.started_at,
        user: Some(play.user.clone()),
    }
}

/// Records how far the caller's playback `id` got: its play event's
/// duration becomes `played_ms`, at most the time since it started (U1).
///
/// # Errors
/// `NotFound` (not the caller's playback), the store's.
pub async fn progress(
    hub: &Hub,
    actor: &Actor,
    id: &str,
    request: PlayProgress,
) -> Result<(), MemberError> {
    hub.store
        .transact(|tx| {
            let play = tx
                .get::<Play>(PLAYS, id)?
                .filter(|p| p.user == actor.user.id)
                .ok_or(MemberError::NotFound("playback"))?;
            let since = (hub.now() - play.started_at).num_milliseconds();
            let played = request.played_ms.min(u64::try_from(since).unwrap_or(0));
            set_duration_in(tx, &play.id, played)?;
            Ok(())
        })
        .await
}

/// The playback a signed media URL names, when its signature matches, it
/// has not expired, its browser is still registered and its member may
/// still play under the group's licence (no login: the signature is the
/// credential).
///
/// # Errors
/// `BadSignature`, `LinkExpired`, `NotFound`, `BrowserUnknown`,
/// `OutsideWindow`, the store's.
pub fn media(hub: &Hub, id: &str, signature: &MediaSignature) -> Result<Play, MemberError> {
    let store = &hub.store;
    let now = check_link(hub, |key| sign(key, id, signature.expires), signature)?;
    let play: Play = store
        .get(PLAYS, id)?
        .ok_or(MemberError::NotFound("playback"))?;
    if store
        .get::<super::Browser>(BROWSERS, &browser_key(&play.user, &play.browser))?
        .is_none()
    {
        return Err(MemberError::BrowserUnknown);
    }
    let member = MemberRef::user(&play.user);
    if let Err(reason) = access_groups::entitlement(store, &play.group, &member, None, now)? {
        return Err(MemberError::OutsideWindow(reason.to_string()));
    }
    Ok(play)
}

/// The key URLs are signed with, made (as `fresh`) at its first use, in
/// `tx`.
///
/// # Errors
/// When the store fails.
fn key_in(tx: &mut Tx, fresh: &str) -> Result<String, StoreError> {
    if let Some(key) = tx.get::<String>(SIGNING_KEY, KEY)? {
        return Ok(key);
    }
    tx.put(SIGNING_KEY, KEY, &fresh.to_owned())?;
    Ok(fresh.to_owned())
}

/// Checks a signed link of the member player: `signed` gives, under the
/// player's key, the signature the link must carry; then the expiry, by
/// the hub's clock, which it returns.
///
/// # Errors
/// `BadSignature` (no key made yet, or another signature), `LinkExpired`,
/// the store's.
pub(super) fn check_link(
    hub: &Hub,
    signed: impl FnOnce(&str) -> String,
    signature: &MediaSignature,
) -> Result<DateTime<Utc>, MemberError> {
    let key: Option<String> = hub.store.get(SIGNING_KEY, KEY)?;
    let key = key.ok_or(MemberError::BadSignature)?;
    if !same(&signed(&key), &signature.signature) {
        return Err(MemberError::BadSignature);
    }
    let now = hub.now();
    if now.timestamp() >= signature.expires {
        let at = DateTime::from_timestamp(signature.expires, 0).unwrap_or(now);
        return Err(MemberError::LinkExpired(at));
    }
    Ok(now)
}

/// The hex HMAC-SHA256 under `key` of a media URL for play `id` that
/// expires at Unix second `expires`.
pub(super) fn sign(key: &str, id: &str, expires: i64) -> String {
    hmac(key.as_bytes(), format!("{id}\n{expires}").as_bytes()).to_string()
}

/// HMAC-SHA256 (RFC 2104, by `ring`) of `message` under `key`.
pub(super) fn hmac(key: &[u8], message: &[u8]) -> Sha256 {
    let tag = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key), message);
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(tag.as_ref()); // an HMAC-SHA256 tag is 32 bytes
    Sha256::from_bytes(bytes)
}

/// Whether `a` and `b` are equal, in time independent of where they differ.
pub(super) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231 test cases 2 and 6 (a key longer than a block).
    #[test]
    fn m6_media_urls_are_signed_with_rfc_2104_hmac_sha256() {
        assert_eq!(
            hmac(b"Jefe", b"what do ya want for nothing?").to_string(),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hmac(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )
            .to_string(),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
        assert_ne!(sign("k", "p", 1), sign("k", "p", 2));
        assert_ne!(sign("k", "p", 1), sign("k", "q", 1));
        assert!(same(&sign("k", "p", 1), &sign("k", "p", 1)));
        assert!(!same("ab", "ac") && !same("ab", "abc"));
    }
}
