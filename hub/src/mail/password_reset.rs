//! The password-reset mail (S8, M5): a Manager or above sends a user they
//! manage a mail with an expiring, single-use set-password link, the same
//! token a welcome mail carries ([`crate::identity::password_tokens`]).
//!
//! Owns: who may send it — Manager and above, to a user they see whose role
//! is not above theirs, never to themselves (they change their own password
//! instead) — its text, and its audit entry. The token, the mail and the
//! entry are written in one transaction; the sender is woken after it.
//! Must not: redeem the token or change the password; the user's old
//! password keeps working until the link is used.

use chrono::{DateTime, SecondsFormat, Utc};
use signet_common::permissions::Role;

use super::links::set_password_action;
use super::{Mail, enqueue_in};
use crate::app::Hub;
use crate::config::Config;
use crate::identity::password_tokens::{PASSWORD_TOKEN_TTL, issue_in};
use crate::identity::{Actor, IdentityError, USERS, User};
use crate::tenancy::load_tree_in;

/// Mails user `id` a set-password link (see the module doc for who may).
///
/// # Errors
/// [`IdentityError::NotFound`] for a user the actor does not see;
/// `RoleTooLow` or `Forbidden`; the store's.
pub async fn send(hub: &Hub, actor: &Actor, id: &str) -> Result<(), IdentityError> {
    actor.require(Role::Manager)?;
    let now = hub.now();
    hub.store
        .transact(|tx| {
            let (tree, _) = load_tree_in(tx)?;
            let user = tx
                .get::<User>(USERS, id)?
                .filter(|user| actor.sees_user(&tree, user))
                .ok_or(IdentityError::NotFound)?;
            if user.id == actor.user.id {
                return Err(IdentityError::Forbidden(
                    "change your own password on your profile instead",
                ));
            }
            if user.role > actor.user.role {
                return Err(IdentityError::Forbidden(
                    "cannot reset the password of a user whose role is above yours",
                ));
            }
            let token = issue_in(tx, &user.id, now)?;
            let mail = reset_mail(&hub.config, &user, &token, now + PASSWORD_TOKEN_TTL);
            let queued = enqueue_in(tx, mail, now)?;
            let detail = serde_json::json!({"mail": queued});
            let scope = user.domain.first().cloned();
            actor
                .audit(now, "user.password_reset", user.id.as_str(), scope, detail)
                .put(tx)?;
            Ok(())
        })
        .await?;
    hub.mail_wake.notify_one();
    Ok(())
}

fn reset_mail(config: &Config, user: &User, token: &str, expires_at: DateTime<Utc>) -> Mail {
    let expires = expires_at.to_rfc3339_opts(SecondsFormat::Secs, true);
    Mail {
        to: user.email.clone(),
        subject: "Signet: set a new password".to_owned(),
        body: format!(
            "An administrator asked for a new password for your account {}.\n\n\
             The link works once, until {expires}; your old password works until \
             you use it.\n\n{}",
            user.name,
            set_password_action(config, "Set your new password", token),
        ),
    }
}
