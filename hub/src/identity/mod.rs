//! Identity (S8, T3): users, passwords, login tokens and login throttling.
//!
//! Owns: the user and session records, bearer tokens (only their SHA-256
//! is stored, so a copy of the store cannot log in), the sessions' CSRF
//! tokens ([`csrf_token`], C2), and the failed-login audit entries (the
//! hashing and the throttle's counts are [`crate::login`]'s, below the
//! domains); set-password tokens ([`password_tokens`], M5); the [`users`] and [`sessions`] services (who may change which
//! user, logging in and out) with their repositories. Must not: know HTTP;
//! the user record is read fresh on every request so a role or domain
//! change applies to the next request (T3).

mod actor;
mod error;
pub mod names;
pub mod password_tokens;
pub mod sessions;
#[cfg(test)]
pub(crate) mod testing;
pub mod users;
pub mod views;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use signet_common::digest::Sha256;
use signet_common::ids::{NodeId, UserId};
use signet_common::permissions::Role;

pub use actor::Actor;
pub use error::IdentityError;
// Moved below the domains (ids to `values`, hashing and the throttle to the
// `login` leaf, which `app::Hub` holds); re-exported so `crate::identity::…`
// paths keep working.
pub use crate::login::{
    HashError, LoginThrottle, PasswordError, PasswordHashing, hash_password, new_password,
    verify_password,
};
use crate::values::random_fill;
pub use crate::values::{RoleTooLow, new_id};
pub use users::{insert_user, put_user, users_in};
pub use views::{CreateUser, UpdateUser, UserFilter, UserView};

/// Tree of users by id.
pub const USERS: &str = "users";
/// Tree of user ids by login name (lowercase): login names are unique.
pub const USER_NAMES: &str = "user_names";
/// Tree of sessions by the hex SHA-256 of their token.
pub const SESSIONS: &str = "sessions";

/// The longest login name, e-mail or display name, in bytes.
pub const MAX_NAME_LEN: usize = 254;
/// The shortest password a user may set.
pub const MIN_PASSWORD_LEN: usize = 12;
/// The longest password accepted (argon2 input bound).
pub const MAX_PASSWORD_LEN: usize = 1024;

/// An operator or viewer account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Stable id.
    pub id: UserId,
    /// Login name, unique (compared lowercase).
    pub name: String,
    /// Contact address (approval and alert mail).
    pub email: String,
    /// The user's role (P1).
    pub role: Role,
    /// The nodes whose subtrees the user sees and acts in (T3).
    pub domain: Vec<NodeId>,
    /// Whether content this user saves needs approval (A3).
    pub requires_approval: bool,
    /// A disabled user cannot log in and their tokens stop working.
    pub disabled: bool,
    /// The argon2id PHC string.
    pub password_hash: String,
    /// When the account was made.
    pub created_at: DateTime<Utc>,
    /// Who made it (`None` for the admin `init` creates).
    pub created_by: Option<UserId>,
}

/// A login: who, and until when. Stored under the SHA-256 of its token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Whose session it is.
    pub user_id: UserId,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// The client address it logged in from (absent in sessions stored
    /// before it was recorded).
    #[serde(default)]
    pub from: Option<String>,
}

/// A fresh bearer token (32 random bytes, URL-safe base64) and the key its
/// session is stored under.
#[must_use]
pub fn new_token() -> (String, String) {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    random_fill(&mut bytes);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let key = token_key(&token);
    (token, key)
}

/// The key a token's session is stored under.
#[must_use]
pub fn token_key(token: &str) -> String {
    Sha256::of(token.as_bytes()).to_string()
}

/// The CSRF token of the session whose bearer token is `token` (C2): what
/// a request authenticated by the session cookie must repeat in
/// `X-CSRF-Token` to change anything. Derived from the token (SHA-256 with
/// its own label, URL-safe base64), so it needs no storage, differs from
/// the key the session is stored under, and tells nothing about the token
/// (scripts may read it; they cannot read the HttpOnly token).
#[must_use]
pub fn csrf_token(token: &str) -> String {
    use base64::Engine as _;
    let mut hasher = Sha256::hasher();
    hasher.update(b"signet-csrf\0");
    hasher.update(token.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hasher.finish().as_bytes())
}

/// Whether `presented` is the CSRF token of the session of `token`,
/// compared in constant time (C2).
#[must_use]
pub fn csrf_matches(token: &str, presented: &str) -> bool {
    let expected = csrf_token(token);
    expected.len() == presented.len()
        && expected
            .bytes()
            .zip(presented.bytes())
            .fold(0u8, |differ, (a, b)| differ | (a ^ b))
            == 0
}

/// The login-name index key: trimmed, NFC-normalized, lowercase (S13: the
/// NFC and NFD spellings of `josé` are one name).
#[must_use]
pub fn name_key(name: &str) -> String {
    names::normalize(name).to_lowercase()
}
