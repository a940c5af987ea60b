//! What a login needs before identity reads a user (S8, S12): argon2id
//! password hashing, bounded in concurrency and memory
//! ([`PasswordHashing`]), and the failed-login throttle ([`LoginThrottle`]),
//! both held by [`crate::app::Hub`].
//!
//! Owns: the hashing and the in-memory failure counts. Must not: read or
//! write the store (identity checks the password of the user it read, and
//! writes the failed-login audit entry the throttle aggregates). A leaf:
//! imports nothing of the crate but [`crate::values`].

mod password;
pub mod throttle;

use base64::Engine as _;

pub use password::{HashError, PasswordError, PasswordHashing, hash_password, verify_password};
pub use throttle::{FailedLogins, LoginThrottle};

/// A random password (24 URL-safe characters): the first admin's, and the
/// decoy the hashing checks when no user has the name.
#[must_use]
pub fn new_password() -> String {
    let mut bytes = [0u8; 18];
    crate::values::random_fill(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
