//! Self-signup (L6): an enabled group, an exactly matching e-mail domain,
//! a mailed confirmation, at most one confirmation mail per address per
//! hour (S12).
//!
//! Owns: those rules, the pending-signup records' lifecycle, their audit
//! entries, and waking the mailer after a confirmation is queued. Must
//! not: hold a transaction while the password is hashed, nor know HTTP.

use chrono::{DateTime, TimeDelta, Utc};

use super::checks::{self, seconds};
use super::error::AccessGroupError;
use super::joining::{Joiner, enqueue, hash};
use super::repo::{self, anonymous_audit};
use super::service::joined;
use super::types::{ConfirmSignup, Joined, SignupPending, SignupRequest};
use super::{
    AccessGroup, GROUPS, MAX_PENDING_SIGNUPS, MemberSource, PendingSignup,
    SIGNUP_MAIL_INTERVAL_SECS, SIGNUP_MAILS, SIGNUP_TOKENS, SIGNUP_TTL_SECS, SIGNUPS,
    email_domain_allowed, email_key, group_prefix,
};
use crate::app::Hub;
use crate::config::Config;
use crate::identity::{new_token, token_key};
use crate::mail::Mail;
use crate::mail::links::{SIGNUP_CONFIRM_PAGE, action};
use crate::store::Tx;

/// The group `id` when it takes self-signups from `email` (L6): else 404
/// for a closed group, 403 `domain_not_allowed` for another domain.
fn signup_group(group: Option<AccessGroup>, email: &str) -> Result<AccessGroup, AccessGroupError> {
    let group = group
        .filter(|g| g.self_signup)
        .ok_or(AccessGroupError::NotFound("access group with self-signup"))?;
    if !email_domain_allowed(email, &group.signup_domains) {
        return Err(AccessGroupError::Refused {
            code: "domain_not_allowed",
            message: "this group does not allow self-signup from that e-mail domain".into(),
        });
    }
    Ok(group)
}

/// Refuses (429) a signup for `email` when a confirmation mail went to it
/// less than [`SIGNUP_MAIL_INTERVAL_SECS`] ago (S12): the earlier mail's
/// token stays the one that works. `sent` is when the last one went.
///
/// # Errors
/// [`AccessGroupError::MailedRecently`].
pub fn check_signup_mail_interval(
    sent: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), AccessGroupError> {
    let Some(sent) = sent else {
        return Ok(());
    };
    let next = sent + TimeDelta::seconds(SIGNUP_MAIL_INTERVAL_SECS);
    if now >= next {
        return Ok(());
    }
    let retry_after = u64::try_from((next - now).num_seconds().max(1)).unwrap_or(1);
    Err(AccessGroupError::MailedRecently {
        sent,
        next,
        retry_after,
    })
}

/// Asks to join a group by self-signup (no login, L6): mails a
/// confirmation token; nothing else happens until it is confirmed (within
/// 24 hours). Asking again replaces the earlier request. The caller has
/// checked the password's length.
///
/// # Errors
/// `Invalid`, `NotFound`, `Refused` (`domain_not_allowed`),
/// `MailedRecently`, `Conflict` (`too_many_signups`), `Hashing`, or the
/// store's error.
pub async fn request_signup(
    hub: &Hub,
    from: &str,
    id: &str,
    request: SignupRequest,
) -> Result<SignupPending, AccessGroupError> {
    checks::email(&request.email)?;
    checks::display_name(request.name.as_deref())?;
    let email = request.email.trim().to_owned();
    signup_group(hub.store.get(GROUPS, id)?, &email)?;
    // S12: one mail per address per hour, checked before the costly hash
    // and again inside the transaction.
    check_signup_mail_interval(hub.store.get(SIGNUP_MAILS, &email_key(&email))?, hub.now())?;
    let password_hash = hash(hub, request.password).await?;
    let (token, token_hash) = new_token();
    let signup = hub
        .store
        .transact(|tx| {
            let now = hub.now();
            check_signup_mail_interval(tx.get(SIGNUP_MAILS, &email_key(&email))?, now)?;
            let group = signup_group(tx.get(GROUPS, id)?, &email)
                .map_err(|_| AccessGroupError::NotFound("access group with self-signup"))?;
            clear_signups(tx, &group, &email, now)?;
            let signup = PendingSignup {
                group: group.id.clone(),
                email: email.clone(),
                display_name: request.name.as_deref().map(|n| n.trim().to_owned()),
                password_hash: password_hash.clone(),
                token_hash: token_hash.clone(),
                created_at: now,
                expires_at: now + seconds(SIGNUP_TTL_SECS),
            };
            repo::put_signup(tx, &signup)?;
            tx.put(SIGNUP_MAILS, &email_key(&email), &now)?;
            enqueue(tx, signup_mail(&hub.config, &group, &signup, &token), now)?;
            let detail = serde_json::json!({"email": email});
            let entry = anonymous_audit(
                now,
                from,
                (None, &email),
                "access_group.signup_request",
                &group,
                detail,
            );
            repo::record(tx, entry)?;
            Ok::<_, AccessGroupError>(signup)
        })
        .await?;
    hub.mail_wake.notify_one();
    Ok(SignupPending {
        status: "confirmation_sent",
        expires_at: signup.expires_at,
    })
}

/// Drops `email`'s earlier signup and every expired one of `group`; then
/// refuses (409 `too_many_signups`) when too many still wait.
fn clear_signups(
    tx: &mut Tx,
    group: &AccessGroup,
    email: &str,
    now: DateTime<Utc>,
) -> Result<(), AccessGroupError> {
    let mut pending = 0usize;
    for old in tx.scan::<PendingSignup>(SIGNUPS, &group_prefix(&group.id))? {
        if email_key(&old.email) == email_key(email) || now >= old.expires_at {
            repo::delete_signup(tx, &old);
        } else {
            pending += 1;
        }
    }
    if pending >= MAX_PENDING_SIGNUPS {
        return Err(AccessGroupError::conflict(
            "too_many_signups",
            "too many signups wait for confirmation; try again later",
        ));
    }
    Ok(())
}

/// The confirmation mail, carrying the token.
fn signup_mail(config: &Config, group: &AccessGroup, signup: &PendingSignup, token: &str) -> Mail {
    let fallback = format!(
        "POST /api/v1/access-groups/signup/confirm with the JSON body \
         {{\"token\": \"{token}\"}}\n\ntoken: {token}\n"
    );
    Mail {
        to: signup.email.clone(),
        subject: format!("Confirm your signup to {}", group.name),
        body: format!(
            "Someone (we hope you) asked to join the access group \"{}\" with this address.\n\n\
             To confirm, before {} (if it was not you, ignore this mail):\n\n{}",
            group.name,
            signup.expires_at.to_rfc3339(),
            action(
                config,
                "Confirm your signup",
                (SIGNUP_CONFIRM_PAGE, token),
                fallback
            ),
        ),
    }
}

/// Confirms a self-signup (no login; the mailed token is the credential,
/// L6): makes the account if the address has none, and the membership.
///
/// # Errors
/// `Invalid`, `Unknown` (`signup_not_found`), `Gone` (`signup_expired`),
/// `Conflict` (`signup_closed`, `name_taken`, `group_full`), or the
/// store's error.
pub async fn confirm_signup(
    hub: &Hub,
    from: &str,
    request: ConfirmSignup,
) -> Result<Joined, AccessGroupError> {
    checks::token(&request.token)?;
    let token_hash = token_key(&request.token);
    hub.store
        .transact(|tx| {
            let now = hub.now();
            let signup = pending_signup(tx, &token_hash, now)?;
            let group = tx
                .get::<AccessGroup>(GROUPS, signup.group.as_str())?
                .filter(|g| g.self_signup && email_domain_allowed(&signup.email, &g.signup_domains))
                .ok_or_else(|| {
                    AccessGroupError::conflict(
                        "signup_closed",
                        "this group no longer takes self-signups",
                    )
                })?;
            // A new account takes the password chosen at signup; an
            // existing one keeps its own.
            let password = (Some(&signup.password_hash), false);
            let joiner = Joiner::find_or_make(tx, &group, &signup.email, password, now)?;
            repo::delete_signup(tx, &signup);
            let name = signup.display_name.clone();
            let action = ("access_group.signup_confirm", serde_json::json!({}));
            joiner.join(tx, (&group, now, from), action, |who| {
                joined(&group, who, now, None, name, MemberSource::SelfSignup)
            })
        })
        .await
}

/// The pending signup whose token hashes to `token_hash`, unexpired at `now`.
fn pending_signup(
    tx: &mut Tx,
    token_hash: &str,
    now: DateTime<Utc>,
) -> Result<PendingSignup, AccessGroupError> {
    let unknown = || AccessGroupError::Unknown {
        code: "signup_not_found",
        message: "unknown signup".into(),
    };
    let key: String = tx.get(SIGNUP_TOKENS, token_hash)?.ok_or_else(unknown)?;
    let signup: PendingSignup = tx.get(SIGNUPS, &key)?.ok_or_else(unknown)?;
    if signup.token_hash != token_hash {
        return Err(unknown());
    }
    if now >= signup.expires_at {
        return Err(AccessGroupError::gone(
            "signup_expired",
            "this signup expired; sign up again",
        ));
    }
    Ok(signup)
}
