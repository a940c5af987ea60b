//! Parsers for the value types operators type: one per type, used by every
//! service. Login names and e-mail addresses are parsed in
//! [`crate::identity::names`]; this module holds the rest, and the fresh
//! ids records are stored under ([`new_id`], [`ordered_id`]), and the
//! role check's refusal ([`RoleTooLow`]); [`mail`]: an e-mail message and its
//! check.
//!
//! A leaf: imports nothing of the crate.

pub mod mail;

use chrono::{DateTime, Utc};
use ring::rand::{SecureRandom as _, SystemRandom};
use signet_common::permissions::Role;

/// A role is below what an action needs (403).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("needs the {needs:?} role or above")]
pub struct RoleTooLow {
    /// The role the action needs.
    pub needs: Role,
}

impl RoleTooLow {
    /// Refuses unless `role` is at least `needs`.
    ///
    /// # Errors
    /// [`RoleTooLow`] naming the role needed.
    pub fn check(role: Role, needs: Role) -> Result<(), Self> {
        if role >= needs {
            Ok(())
        } else {
            Err(Self { needs })
        }
    }
}

/// A fresh random id with a kind prefix (`u-`, `n-`, …): 16 hex digits of
/// randomness, so ids of different kinds never collide.
///
/// # Panics
/// Never in practice: only if the operating system's random source fails,
/// which leaves nothing safe to do.
#[must_use]
pub fn new_id(prefix: &str) -> String {
    let mut bytes = [0u8; 8];
    random_fill(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{hex}")
}

/// A time-ordered id (audit entries, runs): zero-padded microseconds of
/// `at`, then randomness, so ids sort by time.
#[must_use]
pub fn ordered_id(at: DateTime<Utc>) -> String {
    format!("{:020}-{}", at.timestamp_micros().max(0), new_id(""))
}

/// Fills `bytes` from the operating system's random source.
///
/// # Panics
/// Only if that source fails, which leaves nothing safe to do.
pub fn random_fill(bytes: &mut [u8]) {
    #[allow(clippy::expect_used)] // no safe fallback exists for a broken OS RNG
    SystemRandom::new()
        .fill(bytes)
        .expect("the operating system's random source failed");
}

/// A display name (a node's, a group's, a content item's, a playlist's, a
/// device's): 1 to `max` bytes of text, not only white space, without
/// control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(String);

/// Why a [`Name`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("name must be 1 to {max} bytes of text without control characters")]
pub struct InvalidName {
    /// The longest name allowed, in bytes.
    pub max: usize,
}

impl Name {
    /// `raw` as a name of at most `max` bytes. `raw` is kept as typed.
    ///
    /// # Errors
    /// When it is empty or only white space, longer than `max` bytes, or
    /// holds a control character.
    pub fn parse(raw: &str, max: usize) -> Result<Self, InvalidName> {
        if raw.trim().is_empty() || raw.len() > max || raw.chars().any(char::is_control) {
            return Err(InvalidName { max });
        }
        Ok(Self(raw.to_owned()))
    }

    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name, owned.
    #[must_use]
    pub fn into_string(self) -> String {
        self.0
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s13_names_are_text_of_bounded_length() {
        assert_eq!(Name::parse("Lobby", 8).unwrap().as_str(), "Lobby");
        assert_eq!(Name::parse(" Lobby ", 8).unwrap().as_str(), " Lobby ");
        assert_eq!(Name::parse("Zürich", 7).unwrap().as_str(), "Zürich");
        for bad in ["", "   ", "a\u{0}b", "line\nbreak", "123456789", "Zürich!!"] {
            assert_eq!(
                Name::parse(bad, 8).err(),
                Some(InvalidName { max: 8 }),
                "{bad:?}"
            );
        }
    }
}
