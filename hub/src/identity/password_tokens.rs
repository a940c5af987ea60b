//! Set-password tokens (M5, L7, L9): members made by CSV import or a shop
//! order get a welcome mail with an expiring, single-use token; presenting
//! it with a new password sets the account's password (no login).
//!
//! Owns: the [`PASSWORD_TOKENS`] tree (only each token's SHA-256 is
//! stored), issuing a token inside the caller's transaction
//! ([`issue_in`]), and redeeming it ([`set_password`]): once, before it
//! expires. Must not: send mail itself (the caller queues it in the same
//! transaction), nor know HTTP.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use signet_common::ids::UserId;

use super::users::{check_password, put_user};
use super::{IdentityError, MAX_NAME_LEN, USERS, User, new_token, token_key};
use crate::app::Hub;
use crate::audit::AuditEntry;
use crate::store::{StoreError, Tx, WriteBatch};

/// Tree of set-password tokens by the SHA-256 of the token.
pub const PASSWORD_TOKENS: &str = "password_tokens";
/// How long a set-password token works.
pub const PASSWORD_TOKEN_TTL: TimeDelta = TimeDelta::days(7);

/// A set-password token as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordToken {
    /// The account whose password it sets.
    pub user: UserId,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// When it was used; it works once.
    pub used_at: Option<DateTime<Utc>>,
}

/// `POST /api/v1/password/set`: a mailed token and the new password.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPassword {
    /// The token from the welcome mail's link.
    pub token: String,
    /// The new password (12 to 1024 bytes).
    pub password: String,
}

/// The account whose password was set.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PasswordSet {
    /// Its id.
    #[schema(value_type = String)]
    pub user_id: UserId,
    /// The login name to log in with.
    pub login_name: String,
}

/// Issues a set-password token for `user` inside `tx` (stored as its
/// SHA-256, valid for [`PASSWORD_TOKEN_TTL`]); returns the token for the
/// mail the caller queues in the same transaction.
///
/// # Errors
/// Never in practice (the record always encodes).
pub fn issue_in(tx: &mut Tx, user: &UserId, now: DateTime<Utc>) -> Result<String, StoreError> {
    let (token, key) = new_token();
    let record = PasswordToken {
        user: user.clone(),
        created_at: now,
        expires_at: now + PASSWORD_TOKEN_TTL,
        used_at: None,
    };
    tx.put(PASSWORD_TOKENS, &key, &record)?;
    Ok(token)
}

/// The account a set-password token names, before it is used (no login;
/// nothing changes): what the public page shows. The same refusals as
/// [`set_password`].
///
/// # Errors
/// `Invalid` (`invalid_token`), `TokenUnknown`, `TokenUsed`,
/// `TokenExpired`, the store's.
pub async fn describe(hub: &Hub, token: &str) -> Result<PasswordTokenInfo, IdentityError> {
    check_token(token)?;
    let key = token_key(token);
    hub.store
        .transact(|tx| {
            let (token, user) = usable_in(tx, &key, hub.now())?;
            Ok(PasswordTokenInfo {
                login_name: user.name,
                expires_at: token.expires_at,
            })
        })
        .await
}

/// What [`describe`] answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PasswordTokenInfo {
    /// The login name of the account whose password the token sets.
    pub login_name: String,
    /// When the token stops working.
    pub expires_at: DateTime<Utc>,
}

/// A token's length bounds (400 `invalid_token`).
fn check_token(token: &str) -> Result<(), IdentityError> {
    if token.is_empty() || token.len() > MAX_NAME_LEN {
        return Err(IdentityError::invalid("invalid_token", "malformed token"));
    }
    Ok(())
}

/// The token stored under `key` and its account, when it may still be used
/// at `now`.
fn usable_in(
    tx: &mut Tx,
    key: &str,
    now: DateTime<Utc>,
) -> Result<(PasswordToken, User), IdentityError> {
    let token = usable(tx.get::<PasswordToken>(PASSWORD_TOKENS, key)?, now)?;
    let user = tx
        .get::<User>(USERS, token.user.as_str())?
        .ok_or(IdentityError::TokenUnknown)?;
    Ok((token, user))
}

/// Sets the password of the account a mailed token names (no login): the
/// token works once (409 `token_used` after), before it expires (410
/// `token_expired`); an unknown token is 404 `token_not_found`. The token
/// and the password are checked before the password is hashed (a costly
/// step no unusable token may trigger), and the token again inside the
/// transaction that uses it. The change is audited as
/// `user.password_set`, by the user, from `from`.
///
/// # Errors
/// As above; `Invalid` for a bad token or password; `Hash`; the store's.
pub async fn set_password(
    hub: &Hub,
    from: &str,
    request: SetPassword,
) -> Result<PasswordSet, IdentityError> {
    check_token(&request.token)?;
    check_password(&request.password)?;
    let key = token_key(&request.token);
    usable(
        hub.store.get::<PasswordToken>(PASSWORD_TOKENS, &key)?,
        hub.now(),
    )?;
    let hash = hub.hashing.hash(request.password).await?;
    hub.store
        .transact(|tx| {
            let now = hub.now();
            let (mut token, mut user) = usable_in(tx, &key, now)?;
            user.password_hash.clone_from(&hash);
            put_user(tx, &user)?;
            token.used_at = Some(now);
            tx.put(PASSWORD_TOKENS, &key, &token)?;
            let entry = AuditEntry {
                actor: Some(user.id.clone()),
                actor_name: Some(user.name.clone()),
                scope: user.domain.first().cloned(),
                from: from.to_owned(),
                detail: serde_json::json!({"with": "set-password token"}),
                ..AuditEntry::new(now, "user.password_set", user.id.as_str())
            };
            let mut batch = WriteBatch::new();
            entry.record(&mut batch)?;
            tx.include(batch);
            Ok(PasswordSet {
                user_id: user.id,
                login_name: user.name,
            })
        })
        .await
}

/// The token, when it can still be used at `now`.
fn usable(
    token: Option<PasswordToken>,
    now: DateTime<Utc>,
) -> Result<PasswordToken, IdentityError> {
    let token = token.ok_or(IdentityError::TokenUnknown)?;
    if let Some(at) = token.used_at {
        return Err(IdentityError::TokenUsed(at));
    }
    if now >= token.expires_at {
        return Err(IdentityError::TokenExpired(token.expires_at));
    }
    Ok(token)
}
