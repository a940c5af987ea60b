//! A member's browsers (M6, L5): each counts as a device. The user names a
//! browser once; registering it takes one of the user's device slots in
//! each of their groups with room, and is refused (`too_many_devices`)
//! when every group the user may play in is full. Removing it frees them.
//!
//! Owns: [`register`], [`list`], [`remove`], the per-user slot rule
//! ([`slot`]) and finding a browser by its token. Must not: store the
//! token itself (only its SHA-256), or count screens (their slots are the
//! group's, [`crate::access_groups::device_slot`]).

use chrono::{DateTime, Utc};
use signet_common::ids::{AccessGroupId, DeviceId, UserId};
use signet_common::license::{LicenseError, check_access, check_activation};

use super::types::{BrowserRegistered, BrowserView, RegisterBrowser};
use super::{BROWSER_TOKENS, BROWSERS, Browser, MAX_BROWSER_NAME_LEN, MAX_BROWSERS, MemberError};
use crate::access_groups::{AccessGroup, GROUPS, MEMBER_GROUPS, MEMBERS, Member, MemberRef};
use crate::app::Hub;
use crate::audit::AuditEntry;
use crate::identity::{Actor, new_id, new_token, token_key};
use crate::store::{StoreError, Tx, WriteBatch};
use crate::values::Name;

/// The groups `user` is a current member of, with the membership, read in
/// `tx`.
///
/// # Errors
/// When the store fails.
pub fn groups_in(tx: &mut Tx, user: &UserId) -> Result<Vec<(AccessGroup, Member)>, StoreError> {
    let member = MemberRef::user(user);
    let ids: Vec<AccessGroupId> = tx.scan(MEMBER_GROUPS, &format!("{}/", member.key()))?;
    let mut found = Vec::with_capacity(ids.len());
    for id in ids {
        let group = tx.get::<AccessGroup>(GROUPS, id.as_str())?;
        let record = tx.get::<Member>(MEMBERS, &crate::access_groups::member_key(&id, &member))?;
        if let (Some(group), Some(record)) = (group, record.filter(Member::is_current)) {
            found.push((group, record));
        }
    }
    Ok(found)
}

/// `user`'s browsers, read in `tx`.
///
/// # Errors
/// When the store fails.
pub fn browsers_in(tx: &mut Tx, user: &UserId) -> Result<Vec<Browser>, StoreError> {
    tx.scan(BROWSERS, &format!("{user}/"))
}

/// The per-user device rule (L5) in `group`: `browser` may hold a slot
/// when it already does, or when fewer of the user's `browsers` than the
/// licence's `max_active_devices` hold one.
///
/// # Errors
/// [`LicenseError::TooManyDevices`] when every slot is taken.
pub fn slot(
    group: &AccessGroup,
    browsers: &[Browser],
    browser: &DeviceId,
) -> Result<(), LicenseError> {
    let holding: Vec<&Browser> = browsers
        .iter()
        .filter(|b| b.slots.contains(&group.id))
        .collect();
    let already = holding.iter().any(|b| &b.id == browser);
    check_activation(&group.license, holding.len(), already)
}

/// The caller's browser whose token is `token`, read in `tx`.
///
/// # Errors
/// [`MemberError::BrowserUnknown`]; the store's.
pub fn by_token_in(tx: &mut Tx, user: &UserId, token: &str) -> Result<Browser, MemberError> {
    if token.is_empty() || token.len() > 128 {
        return Err(MemberError::BrowserUnknown);
    }
    let key: String = tx
        .get(BROWSER_TOKENS, &token_key(token))?
        .ok_or(MemberError::BrowserUnknown)?;
    tx.get::<Browser>(BROWSERS, &key)?
        .filter(|b| &b.user == user)
        .ok_or(MemberError::BrowserUnknown)
}

/// Registers a browser of the caller, named `request.name` (M6): it takes
/// a slot in each of the caller's groups that allows playing now and has
/// room. Refused when such groups exist and none has room (L5).
///
/// # Errors
/// `InvalidName`, `TooManyBrowsers`, `TooManyDevices`, the store's.
pub async fn register(
    hub: &Hub,
    actor: &Actor,
    request: RegisterBrowser,
) -> Result<BrowserRegistered, MemberError> {
    let name = Name::parse(&request.name, MAX_BROWSER_NAME_LEN)?.into_string();
    let (token, token_hash) = new_token();
    let id = DeviceId::new(new_id("web-"));
    let user = &actor.user.id;
    let browser = hub
        .store
        .transact(|tx| {
            let now = hub.now();
            let browsers = browsers_in(tx, user)?;
            if browsers.len() >= MAX_BROWSERS {
                return Err(MemberError::TooManyBrowsers(browsers.len()));
            }
            let mut browser = Browser {
                id: id.clone(),
                user: user.clone(),
                name: name.clone(),
                token_hash: token_hash.clone(),
                created_at: now,
                last_played_at: None,
                slots: std::collections::BTreeSet::new(),
            };
            let mut full = None;
            for (group, member) in groups_in(tx, user)? {
                if check_access(&group.license, &member.membership, None, now).is_err() {
                    continue;
                }
                match slot(&group, &browsers, &id) {
                    Ok(()) => {
                        browser.slots.insert(group.id);
                    }
                    Err(LicenseError::TooManyDevices { max }) => full = Some(max),
                    Err(_) => {}
                }
            }
            if let (Some(max), true) = (full, browser.slots.is_empty()) {
                return Err(MemberError::TooManyDevices { max });
            }
            put_browser(tx, &browser)?;
            tx.put(BROWSER_TOKENS, &token_hash, &super::browser_key(user, &id))?;
            audit(tx, actor, now, "member.browser_register", &browser)?;
            Ok(browser)
        })
        .await?;
    Ok(BrowserRegistered {
        browser: BrowserView::from(&browser),
        token,
    })
}

/// The caller's browsers, oldest first.
///
/// # Errors
/// The store's.
pub fn list(hub: &Hub, actor: &Actor) -> Result<Vec<BrowserView>, MemberError> {
    let mut browsers: Vec<Browser> = hub.store.scan(BROWSERS, &format!("{}/", actor.user.id))?;
    browsers.sort_by_key(|b| b.created_at);
    Ok(browsers.iter().map(BrowserView::from).collect())
}

/// Removes the caller's browser `id`: its token stops working and its
/// slots are free (L5).
///
/// # Errors
/// `NotFound`, the store's.
pub async fn remove(hub: &Hub, actor: &Actor, id: &str) -> Result<(), MemberError> {
    let user = &actor.user.id;
    let key = super::browser_key(user, &DeviceId::from(id));
    hub.store
        .transact(|tx| {
            let browser = tx
                .get::<Browser>(BROWSERS, &key)?
                .ok_or(MemberError::NotFound("device"))?;
            tx.delete(BROWSERS, &key);
            tx.delete(BROWSER_TOKENS, &browser.token_hash);
            audit(tx, actor, hub.now(), "member.browser_remove", &browser)?;
            Ok(())
        })
        .await
}

/// Stores `browser` (its token index is written by [`register`]).
///
/// # Errors
/// The store's.
pub fn put_browser(tx: &mut Tx, browser: &Browser) -> Result<(), StoreError> {
    tx.put(
        BROWSERS,
        &super::browser_key(&browser.user, &browser.id),
        browser,
    )
}

/// Records `action` on `browser` by `actor` in the audit log.
fn audit(
    tx: &mut Tx,
    actor: &Actor,
    now: DateTime<Utc>,
    action: &str,
    browser: &Browser,
) -> Result<(), StoreError> {
    let entry = AuditEntry {
        actor: Some(actor.user.id.clone()),
        actor_name: Some(actor.user.name.clone()),
        scope: actor.user.domain.first().cloned(),
        from: actor.from.clone(),
        detail: serde_json::json!({"name": browser.name, "groups": browser.slots}),
        ..AuditEntry::new(now, action, browser.id.as_str())
    };
    let mut batch = WriteBatch::new();
    entry.record(&mut batch)?;
    tx.include(batch);
    Ok(())
}
