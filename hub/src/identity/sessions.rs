//! The sessions service (S8, S12): logging in and out, and the session
//! repository.
//!
//! Owns: the session records and their per-user index ([`USER_SESSIONS`]),
//! written only here; the login rules — a name under attack from one source
//! is refused for a while (429), every attempt at it is delayed, an unknown
//! name costs the same hash as a known one, a disabled account cannot log
//! in — and the login and logout audit entries; a user's own sessions,
//! listed and revoked one by one ([`own_sessions`], [`revoke_own_session`]). The password check (slow,
//! bounded) happens before the transaction that stores the session. Must
//! not: know HTTP (cookies are the API's).

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use signet_common::digest::Sha256;
use signet_common::ids::UserId;

use super::users::user_by_name;
use super::{
    Actor, IdentityError, MAX_NAME_LEN, MAX_PASSWORD_LEN, SESSIONS, Session, User, name_key,
    new_token,
};
use crate::app::Hub;
use crate::audit::AuditEntry;
use crate::store::{StoreError, Tx, WriteBatch};

/// Tree of a user's sessions, keyed `{user}/{session key}`, so all of them
/// can be revoked at once.
pub const USER_SESSIONS: &str = "user_sessions";

/// Stores `session` under `key` with its per-user index.
///
/// # Errors
/// Never in practice (a session always encodes).
pub fn put_session(tx: &mut Tx, key: &str, session: &Session) -> Result<(), StoreError> {
    tx.put(SESSIONS, key, session)?;
    tx.put(USER_SESSIONS, &format!("{}/{key}", session.user_id), &key)
}

/// Deletes the session under `key` of `user` and its index entry.
pub fn delete_session(tx: &mut Tx, user: &UserId, key: &str) {
    tx.delete(SESSIONS, key);
    tx.delete(USER_SESSIONS, &format!("{user}/{key}"));
}

/// Deletes every session of `user` in `tx`; returns how many.
///
/// # Errors
/// When the store fails.
pub fn revoke_all_in(tx: &mut Tx, user: &UserId) -> Result<usize, StoreError> {
    let keys: Vec<String> = tx.scan(USER_SESSIONS, &format!("{user}/"))?;
    for key in &keys {
        delete_session(tx, user, key);
    }
    Ok(keys.len())
}

/// The audit action of aggregated failed logins.
pub const LOGIN_FAILED: &str = "session.login_failed";

/// Audits a failed login for `name` from `from` at `now`: one entry per
/// source per minute, rewritten with the count and the names tried as
/// failures come ([`crate::login::LoginThrottle::failed_logins`]).
///
/// # Errors
/// When the store fails.
async fn audit_failed_login(
    hub: &Hub,
    name: &str,
    from: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let failures = hub.throttle.failed_logins(name, from, now).await;
    let first_name = failures.names.first().cloned().unwrap_or_default();
    let entry = AuditEntry {
        id: failures.id.clone(),
        actor_name: Some(first_name.clone()),
        from: from.to_owned(),
        detail: serde_json::json!({
            "failures": failures.count,
            "names": failures.names,
            "first_at": failures.first,
            "last_at": now,
        }),
        ..AuditEntry::new(failures.first, LOGIN_FAILED, &first_name)
    };
    let mut batch = WriteBatch::new();
    entry.record(&mut batch)?;
    // Written while `failures` holds the throttle's lock: updates of one
    // entry land in order.
    hub.store.apply(batch).await
}

/// The throttle's shared counts failed: the store did (500).
fn counts(e: crate::login::throttle::CountError) -> IdentityError {
    IdentityError::Store(StoreError::Storage(e.to_string()))
}

/// A new login: the bearer token, its session and who logged in.
#[derive(Debug)]
pub struct Login {
    /// The bearer token (only its SHA-256 is stored).
    pub token: String,
    /// How long the session lives.
    pub ttl: TimeDelta,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// Who logged in.
    pub user: User,
}

/// Logs `name` in with `password` from the client address `from` (S8,
/// S12); see the module doc for the rules.
///
/// # Errors
/// [`IdentityError::WrongCredentials`], [`IdentityError::Throttled`],
/// [`IdentityError::Hash`] when every hash slot stays busy, or the store's.
pub async fn login(
    hub: &Hub,
    name: &str,
    password: String,
    from: &str,
) -> Result<Login, IdentityError> {
    if password.len() > MAX_PASSWORD_LEN || name.len() > MAX_NAME_LEN {
        return Err(IdentityError::WrongCredentials);
    }
    let name = name_key(name);
    let now = hub.now();
    if let Some(until) = hub
        .throttle
        .locked_until(&name, from, now)
        .map_err(counts)?
    {
        let retry_after = u64::try_from((until - now).num_seconds().max(1)).unwrap_or(1);
        return Err(IdentityError::Throttled { until, retry_after });
    }
    let delay = hub.throttle.delay(&name, now).map_err(counts)?;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let user = user_by_name(&hub.store, &name)?;
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let matches = hub.hashing.verify(password, hash).await?;
    let user = match user {
        Some(user) if matches && !user.disabled => user,
        _ => {
            hub.throttle
                .record_failure(&name, from, now)
                .map_err(counts)?;
            audit_failed_login(hub, &name, from, now).await?;
            return Err(IdentityError::WrongCredentials);
        }
    };
    hub.throttle.record_success(&name, from).map_err(counts)?;
    let (token, key) = new_token();
    let ttl = i64::try_from(hub.config.token_ttl_secs)
        .ok()
        .and_then(TimeDelta::try_seconds)
        .unwrap_or(TimeDelta::hours(12));
    let session = Session {
        user_id: user.id.clone(),
        created_at: now,
        expires_at: now + ttl,
        from: Some(from.to_owned()),
    };
    hub.store
        .transact(|tx| {
            put_session(tx, &key, &session)?;
            AuditEntry {
                actor: Some(user.id.clone()),
                actor_name: Some(user.name.clone()),
                from: from.to_owned(),
                ..AuditEntry::new(now, "session.login", user.id.as_str())
            }
            .put(tx)
        })
        .await?;
    Ok(Login {
        token,
        ttl,
        expires_at: session.expires_at,
        user,
    })
}

/// Revokes the actor's session stored under `session_key`.
///
/// # Errors
/// When the store fails.
pub async fn logout(hub: &Hub, actor: &Actor, session_key: &str) -> Result<(), IdentityError> {
    let now = hub.now();
    hub.store
        .transact(|tx| {
            delete_session(tx, &actor.user.id, session_key);
            actor
                .audit(
                    now,
                    "session.logout",
                    actor.user.id.as_str(),
                    None,
                    serde_json::Value::Null,
                )
                .put(tx)
        })
        .await?;
    Ok(())
}

/// One of the caller's own sessions (C2, S8).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OwnSession {
    /// Its public id (derived from the stored key; never the token).
    pub id: String,
    /// When it logged in.
    pub created_at: DateTime<Utc>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// The client address it logged in from, when recorded.
    pub from: Option<String>,
    /// Whether it is the session of this request.
    pub current: bool,
}

/// The public id of the session stored under `key`: 16 hex digits of a
/// labelled SHA-256 of the key, so it names the session without being the
/// key a bearer token hashes to.
#[must_use]
pub fn session_id(key: &str) -> String {
    let mut hasher = Sha256::hasher();
    hasher.update(b"signet-session-id\0");
    hasher.update(key.as_bytes());
    hasher.finish().to_string()[..16].to_owned()
}

/// The actor's unexpired sessions, newest first; `current_key` marks the
/// one of this request.
///
/// # Errors
/// When the store fails.
pub fn own_sessions(
    hub: &Hub,
    actor: &Actor,
    current_key: &str,
) -> Result<Vec<OwnSession>, IdentityError> {
    let now = hub.now();
    let keys: Vec<String> = hub
        .store
        .scan(USER_SESSIONS, &format!("{}/", actor.user.id))?;
    let mut sessions = Vec::new();
    for key in keys {
        let Some(session) = hub.store.get::<Session>(SESSIONS, &key)? else {
            continue;
        };
        if session.expires_at <= now {
            continue;
        }
        sessions.push(OwnSession {
            id: session_id(&key),
            created_at: session.created_at,
            expires_at: session.expires_at,
            from: session.from,
            current: key == current_key,
        });
    }
    sessions.sort_by_key(|s| std::cmp::Reverse(s.created_at));
    Ok(sessions)
}

/// Revokes the actor's own session `id` (as [`own_sessions`] names it): it
/// stops working at once, for the next request made with it.
///
/// # Errors
/// [`IdentityError::SessionNotFound`] when it is not a session of the actor.
pub async fn revoke_own_session(hub: &Hub, actor: &Actor, id: &str) -> Result<(), IdentityError> {
    let now = hub.now();
    hub.store
        .transact(|tx| {
            let keys: Vec<String> = tx.scan(USER_SESSIONS, &format!("{}/", actor.user.id))?;
            let key = keys
                .into_iter()
                .find(|key| session_id(key) == id)
                .ok_or(IdentityError::SessionNotFound)?;
            delete_session(tx, &actor.user.id, &key);
            let detail = serde_json::json!({"session": id});
            actor
                .audit(now, "session.revoke", actor.user.id.as_str(), None, detail)
                .put(tx)?;
            Ok(())
        })
        .await
}
