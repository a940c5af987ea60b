//! The welcome mail (M5, L7, L9): members whose account was made for them
//! by CSV import or a shop order get a mail with an expiring, single-use
//! set-password link, so they can log in.
//!
//! An existing account without a password that joins by import is
//! welcomed the same way (else it could never log in).
//!
//! Owns: which new accounts are welcomed and the mail's text. Must not:
//! redeem the token ([`crate::identity::password_tokens`] does), nor send
//! mail itself (it is queued in the caller's transaction; the caller wakes
//! the mailer after the commit).

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use signet_common::ids::UserId;

use super::AccessGroup;
use super::error::AccessGroupError;
use super::import::Planned;
use super::joining::{Accounts, enqueue};
use super::{MemberRef, NO_PASSWORD};
use crate::config::Config;
use crate::identity::User;
use crate::identity::password_tokens::{PASSWORD_TOKEN_TTL, issue_in};
use crate::mail::Mail;
use crate::mail::links::set_password_action;

/// Inside `tx`: issues a set-password token for `user`, who just became a
/// member of `group` with an account made for them, and queues the
/// welcome mail carrying its link.
///
/// # Errors
/// The store's.
pub(super) fn welcome_in(
    tx: &mut crate::store::Tx,
    config: &Config,
    group: &AccessGroup,
    user: &User,
    now: DateTime<Utc>,
) -> Result<(), AccessGroupError> {
    let token = issue_in(tx, &user.id, now)?;
    let mail = welcome_mail(config, group, user, &token, now + PASSWORD_TOKEN_TTL);
    enqueue(tx, mail, now)
}

/// Inside the import's transaction: [`welcome_in`] for every account the
/// import made, and for every existing account without a password
/// ([`super::NO_PASSWORD`]: made by an earlier import, invite or shop
/// order and never completed) that the import made a member; `accounts`
/// as the import read them. Disabled accounts and members whose membership
/// only changed get no mail.
///
/// # Errors
/// The store's.
pub(super) fn welcome_imported_in(
    tx: &mut crate::store::Tx,
    config: &Config,
    group: &AccessGroup,
    planned: &[Planned],
    accounts: &Accounts,
    now: DateTime<Utc>,
) -> Result<(), AccessGroupError> {
    let password_less: HashMap<&UserId, &User> = accounts
        .users
        .iter()
        .filter(|u| u.password_hash == NO_PASSWORD && !u.disabled)
        .map(|u| (&u.id, u))
        .collect();
    for change in planned {
        let Planned::Create(made, member) = change else {
            continue;
        };
        let user = match (made, &member.member) {
            (Some(user), _) => Some(user),
            (None, MemberRef::User { user_id }) => password_less.get(user_id).copied(),
            (None, MemberRef::Device { .. }) => None,
        };
        if let Some(user) = user {
            welcome_in(tx, config, group, user, now)?;
        }
    }
    Ok(())
}

fn welcome_mail(
    config: &Config,
    group: &AccessGroup,
    user: &User,
    token: &str,
    expires_at: DateTime<Utc>,
) -> Mail {
    let expires = expires_at.to_rfc3339_opts(SecondsFormat::Secs, true);
    Mail {
        to: user.email.clone(),
        subject: format!("Welcome to {}: set your password", group.name),
        body: format!(
            "You are now a member of the access group \"{}\".\n\n\
             Your login name is {}. To log in, first set your password; \
             this works once, until {expires}.\n\n{}",
            group.name,
            user.name,
            set_password_action(config, "Set your password", token),
        ),
    }
}
