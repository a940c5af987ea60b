//! What the public pages behind mailed links may learn before they act
//! (M5, L6, C11): the invite a token names — without accepting it — and a
//! group's self-signup form; and whether that form may be framed by
//! another site (the Flickrocket seed: self-signup "embedded on any page").
//!
//! Owns: [`describe_invite`], [`signup_form`], [`frames_allowed`] and the
//! views they answer. Must not: change anything (accepting and confirming
//! are [`super::invites`]' and [`super::signup`]'s), nor show a token, a
//! password hash or anything of a group that does not take self-signups.

use chrono::{DateTime, Utc};
use serde::Serialize;
use signet_common::ids::AccessGroupId;

use super::checks;
use super::error::AccessGroupError;
use super::invites::usable_invite;
use super::joining::Accounts;
use super::{AccessGroup, GROUPS, NO_PASSWORD};
use crate::app::Hub;
use crate::identity::token_key;
use crate::store::{Store, StoreError};

/// The account an invite will be accepted as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InviteAccount {
    /// No account has the address: accepting makes one, with the password
    /// chosen on the page.
    New,
    /// The account exists without a password: accepting may set one.
    NeedsPassword,
    /// The account exists with a password: it keeps it.
    Exists,
}

/// An open invite, as its token's holder sees it before accepting.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InviteInfo {
    /// The group's name.
    pub group_name: String,
    /// The invited address.
    pub email: String,
    /// When the invite stops working.
    pub expires_at: DateTime<Utc>,
    /// The member end date accepting grants, if any.
    pub end_date: Option<DateTime<Utc>>,
    /// Whether accepting makes an account, may set a password, or uses an
    /// account with its own password.
    pub account: InviteAccount,
}

/// A group's self-signup form (L6): what the public page shows.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SignupForm {
    /// The group.
    #[schema(value_type = String)]
    pub group: AccessGroupId,
    /// Its name.
    pub group_name: String,
    /// The e-mail domains that may sign up (exact match).
    pub domains: Vec<String>,
}

/// The invite `token` names, when it may still be accepted (no login; the
/// token is the credential). Nothing changes.
///
/// # Errors
/// `Invalid` (`invalid_token`), `Unknown` (`invite_not_found`), `Conflict`
/// (`invite_used`), `Gone` (`invite_expired`): the codes accepting gives.
pub async fn describe_invite(hub: &Hub, token: &str) -> Result<InviteInfo, AccessGroupError> {
    checks::token(token)?;
    let token_hash = token_key(token);
    hub.store
        .transact(|tx| {
            let invite = usable_invite(tx, &token_hash, hub.now())?;
            let group: AccessGroup = tx.get(GROUPS, invite.group.as_str())?.ok_or_else(|| {
                AccessGroupError::Unknown {
                    code: "invite_not_found",
                    message: "unknown invite".into(),
                }
            })?;
            let account = match Accounts::load(tx)?.by_email(&invite.email) {
                None => InviteAccount::New,
                Some(user) if user.password_hash == NO_PASSWORD => InviteAccount::NeedsPassword,
                Some(_) => InviteAccount::Exists,
            };
            Ok(InviteInfo {
                group_name: group.name,
                email: invite.email,
                expires_at: invite.expires_at,
                end_date: invite.end_date,
                account,
            })
        })
        .await
}

/// The self-signup form of group `id` (no login).
///
/// # Errors
/// `NotFound` when there is no such group or it takes no self-signups.
pub fn signup_form(hub: &Hub, id: &str) -> Result<SignupForm, AccessGroupError> {
    let group = open_group(&hub.store, id)?
        .ok_or(AccessGroupError::NotFound("access group with self-signup"))?;
    Ok(SignupForm {
        group: group.id,
        group_name: group.name,
        domains: group.signup_domains,
    })
}

/// Whether the console page `/signup/{id}` may be framed by other sites:
/// only while group `id` takes self-signups.
///
/// # Errors
/// When the store fails.
pub fn frames_allowed(store: &Store, id: &str) -> Result<bool, StoreError> {
    Ok(open_group(store, id)?.is_some())
}

/// Group `id` when it exists and takes self-signups.
fn open_group(store: &Store, id: &str) -> Result<Option<AccessGroup>, StoreError> {
    if !super::is_valid_id(id) {
        return Ok(None);
    }
    Ok(store
        .get::<AccessGroup>(GROUPS, id)?
        .filter(|g| g.self_signup))
}
