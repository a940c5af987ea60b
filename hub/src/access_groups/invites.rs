//! Invites (L6): one-click, expiring, single-use tokens mailed to an
//! address; accepting one makes the member (and, if needed, its account).
//!
//! Owns: the invite rules (bounded open invites, lifetime, single use,
//! expiry of the invite and of the membership it grants), their audit
//! entries, and waking the mailer after an invite is queued. Must not:
//! hold a transaction while a password is hashed, nor know HTTP.

use chrono::{DateTime, Utc};
use signet_common::permissions::Role;

use super::checks::{self, seconds};
use super::error::AccessGroupError;
use super::joining::{Joiner, enqueue, hash};
use super::repo;
use super::service::joined;
use super::types::{AcceptInvite, CreateInvite, InviteView, Joined};
use super::{
    AccessGroup, DEFAULT_INVITE_TTL_SECS, GROUPS, INVITE_TOKENS, INVITES, Invite, MAX_OPEN_INVITES,
    MemberSource, group_prefix,
};
use crate::app::Hub;
use crate::config::Config;
use crate::identity::{Actor, new_id, new_token, token_key};
use crate::mail::Mail;
use crate::mail::links::{INVITE_PAGE, action};
use crate::store::Tx;

/// A group's invites, open, used and expired (Manager+).
///
/// # Errors
/// `RoleTooLow`, `NotFound`, or the store's error.
pub async fn invites(
    hub: &Hub,
    actor: &Actor,
    id: &str,
) -> Result<Vec<InviteView>, AccessGroupError> {
    actor.require(Role::Manager)?;
    let invites: Vec<Invite> = hub
        .store
        .transact(|tx| {
            let (group, _) = repo::visible_group(tx, actor, id)?;
            Ok::<_, AccessGroupError>(tx.scan(INVITES, &group_prefix(&group.id))?)
        })
        .await?;
    let now = hub.now();
    Ok(invites.iter().map(|i| InviteView::new(i, now)).collect())
}

/// Invites an address (Manager+, L6): mails a one-click, single-use token
/// that expires. Only the token's SHA-256 is stored.
///
/// # Errors
/// `RoleTooLow`, `Invalid`, `NotFound`, `Conflict` (`too_many_invites`),
/// or the store's error.
pub async fn create_invite(
    hub: &Hub,
    actor: &Actor,
    id: &str,
    request: CreateInvite,
) -> Result<InviteView, AccessGroupError> {
    actor.require(Role::Manager)?;
    checks::email(&request.email)?;
    let ttl = request.expires_in_secs.unwrap_or(DEFAULT_INVITE_TTL_SECS);
    checks::invite_ttl(ttl)?;
    let now = hub.now();
    checks::end_date(now, request.end_date)?;
    let (token, token_hash) = new_token();
    let invite = hub
        .store
        .transact(|tx| {
            let (group, _) = repo::visible_group(tx, actor, id)?;
            check_open_invites(tx, &group, now)?;
            let invite = Invite {
                id: new_id("inv-"),
                group: group.id.clone(),
                email: request.email.trim().to_owned(),
                end_date: request.end_date,
                token_hash: token_hash.clone(),
                created_at: now,
                created_by: actor.user.id.clone(),
                expires_at: now + seconds(ttl),
                used_at: None,
                used_by: None,
            };
            repo::put_invite(tx, &invite)?;
            let mail = invite_mail(&hub.config, actor, &group, &invite, &token);
            enqueue(tx, mail, now)?;
            let detail = serde_json::json!({"invite": invite.id, "email": invite.email,
                "expires_at": invite.expires_at, "end_date": invite.end_date});
            repo::audit(tx, (actor, now), "access_group.invite", &group, detail)?;
            Ok::<_, AccessGroupError>(invite)
        })
        .await?;
    hub.mail_wake.notify_one();
    Ok(InviteView::new(&invite, now))
}

/// Refuses (409 `too_many_invites`) one more open invite when `group` has
/// [`MAX_OPEN_INVITES`] unused, unexpired ones at `now`.
fn check_open_invites(
    tx: &mut Tx,
    group: &AccessGroup,
    now: DateTime<Utc>,
) -> Result<(), AccessGroupError> {
    let open = tx
        .scan::<Invite>(INVITES, &group_prefix(&group.id))?
        .iter()
        .filter(|i| i.used_at.is_none() && now < i.expires_at)
        .count();
    if open >= MAX_OPEN_INVITES {
        return Err(AccessGroupError::conflict(
            "too_many_invites",
            format!("a group may have at most {MAX_OPEN_INVITES} open invites"),
        ));
    }
    Ok(())
}

/// The invitation mail: one link to the console's accept page under
/// `public_url` (M5), or how to accept through the API without it.
fn invite_mail(
    config: &Config,
    actor: &Actor,
    group: &AccessGroup,
    invite: &Invite,
    token: &str,
) -> Mail {
    let fallback = format!(
        "POST /api/v1/access-groups/invites/accept with the JSON body \
         {{\"token\": \"{token}\"}} (add \"password\" to set one for a new account).\n\n\
         token: {token}\n"
    );
    Mail {
        to: invite.email.clone(),
        subject: format!("Invitation to {}", group.name),
        body: format!(
            "{} invites you to the access group \"{}\".\n\n\
             To join, accept the invitation before {} (it works once).\n\n{}",
            actor.user.name,
            group.name,
            invite.expires_at.to_rfc3339(),
            action(
                config,
                "Accept the invitation",
                (INVITE_PAGE, token),
                fallback
            ),
        ),
    }
}

/// Withdraws an invite (Manager+): its token stops working.
///
/// # Errors
/// `RoleTooLow`, `NotFound`, or the store's error.
pub async fn revoke_invite(
    hub: &Hub,
    actor: &Actor,
    id: &str,
    invite_id: &str,
) -> Result<(), AccessGroupError> {
    actor.require(Role::Manager)?;
    hub.store
        .transact(|tx| {
            let (group, _) = repo::visible_group(tx, actor, id)?;
            let invite = tx
                .get::<Invite>(INVITES, &repo::invite_key(&group.id, invite_id))?
                .ok_or(AccessGroupError::NotFound("invite"))?;
            repo::delete_invite(tx, &invite);
            let detail = serde_json::json!({"invite": invite.id, "email": invite.email});
            let by = (actor, hub.now());
            repo::audit(tx, by, "access_group.invite_revoke", &group, detail)?;
            Ok(())
        })
        .await
}

/// Accepts an invite (no login; the mailed token is the credential, L6).
/// Makes a Viewer account for the address if none exists, and sets the
/// password given on an account that has none. Works once, before it
/// expires. The caller has checked the password's length.
///
/// # Errors
/// `Invalid`, `Unknown` (`invite_not_found`), `Conflict` (`invite_used`,
/// `name_taken`, `group_full`), `Gone` (`invite_expired`), `Hashing`, or
/// the store's error.
pub async fn accept_invite(
    hub: &Hub,
    from: &str,
    request: AcceptInvite,
) -> Result<Joined, AccessGroupError> {
    checks::token(&request.token)?;
    let password_hash = match request.password {
        Some(password) => Some(hash(hub, password).await?),
        None => None,
    };
    let token_hash = token_key(&request.token);
    hub.store
        .transact(|tx| {
            let now = hub.now();
            let mut invite = usable_invite(tx, &token_hash, now)?;
            let unknown = || AccessGroupError::Unknown {
                code: "invite_not_found",
                message: "unknown invite".into(),
            };
            let group: AccessGroup = tx.get(GROUPS, invite.group.as_str())?.ok_or_else(unknown)?;
            let joiner = Joiner::find_or_make(
                tx,
                &group,
                &invite.email,
                (password_hash.as_ref(), true),
                now,
            )?;
            invite.used_at = Some(now);
            invite.used_by = Some(joiner.user.id.clone());
            repo::put_invite(tx, &invite)?;
            let source = MemberSource::Invite {
                invite_id: invite.id.clone(),
            };
            let action = (
                "access_group.invite_accept",
                serde_json::json!({"invite": invite.id}),
            );
            joiner.join(tx, (&group, now, from), action, |who| {
                joined(&group, who, now, invite.end_date, None, source)
            })
        })
        .await
}

/// The invite whose token hashes to `token_hash`, when it may still be
/// accepted at `now` (also what [`super::public::describe_invite`] shows).
pub(super) fn usable_invite(
    tx: &mut Tx,
    token_hash: &str,
    now: DateTime<Utc>,
) -> Result<Invite, AccessGroupError> {
    let unknown = || AccessGroupError::Unknown {
        code: "invite_not_found",
        message: "unknown invite".into(),
    };
    let key: String = tx.get(INVITE_TOKENS, token_hash)?.ok_or_else(unknown)?;
    let invite: Invite = tx.get(INVITES, &key)?.ok_or_else(unknown)?;
    if invite.used_at.is_some() {
        return Err(AccessGroupError::conflict(
            "invite_used",
            "this invite was already accepted",
        ));
    }
    if now >= invite.expires_at {
        return Err(AccessGroupError::gone(
            "invite_expired",
            format!("this invite expired at {}", invite.expires_at.to_rfc3339()),
        ));
    }
    if invite.end_date.is_some_and(|end| end <= now) {
        return Err(AccessGroupError::gone(
            "invite_expired",
            "the membership this invite grants has already ended",
        ));
    }
    Ok(invite)
}
