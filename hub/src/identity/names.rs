//! Login names and e-mail addresses (S13): what a name may be made of, when
//! it looks like another, and what an address must look like.
//!
//! A login name is NFC-normalized and trimmed, then every character must be
//! an ASCII letter or digit, one of `. - _ @ +`, or a letter or digit that
//! Unicode's identifier profile allows (UTS 39 `Identifier_Status=Allowed`:
//! no invisible, formatting, compatibility-only or fullwidth characters);
//! its letters must come from one script. Two names clash when their
//! confusable skeletons (UTS 39) match, case aside: `аdmin` with a Cyrillic
//! `а`, fullwidth `ａｄｍｉｎ` or `adrnin` are all `admin`. Addresses are
//! parsed by the `email_address` crate (RFC 5322, no display text, no
//! domain literal, a dotted domain). Must not: look at the store — the
//! callers pass the names that exist.

use unicode_normalization::UnicodeNormalization as _;
use unicode_security::{GeneralSecurityProfile as _, MixedScript as _};

use super::MAX_NAME_LEN;

/// Why a login name or an address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty, or longer than [`MAX_NAME_LEN`] bytes.
    #[error("a login name must be 1 to {MAX_NAME_LEN} bytes")]
    Length,
    /// A character outside the safe alphabet.
    #[error(
        "a login name may hold letters, digits and . - _ @ + only; {0:?} (U+{code:04X}) is not allowed",
        code = u32::from(*.0)
    )]
    Character(char),
    /// Letters of more than one script.
    #[error("a login name must not mix scripts (such as Latin and Cyrillic letters)")]
    MixedScript,
    /// Looks like a name that exists.
    #[error("the login name looks like the existing name {0:?}")]
    Confusable(String),
    /// Not an e-mail address.
    #[error("{0:?} is not an e-mail address")]
    Email(String),
}

/// `name` as stored and compared: trimmed and NFC-normalized.
#[must_use]
pub fn normalize(name: &str) -> String {
    name.trim().nfc().collect()
}

/// Whether `c` belongs to the login-name alphabet.
fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(c, '.' | '-' | '_' | '@' | '+')
        || (!c.is_ascii() && c.is_alphanumeric() && c.identifier_allowed())
}

/// `name`, normalized ([`normalize`]), when it is a safe login name.
///
/// # Errors
/// [`NameError`] saying what is wrong.
pub fn check_login_name(name: &str) -> Result<String, NameError> {
    let name = normalize(name);
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(NameError::Length);
    }
    if let Some(c) = name.chars().find(|c| !allowed(*c)) {
        return Err(NameError::Character(c));
    }
    if !name.as_str().is_single_script() {
        return Err(NameError::MixedScript);
    }
    Ok(name)
}

/// The confusable skeleton of `name`, case aside: two names with the same
/// skeleton look alike.
#[must_use]
pub fn skeleton(name: &str) -> String {
    let lower = normalize(name).to_lowercase();
    unicode_security::skeleton(&lower)
        .collect::<String>()
        .to_lowercase()
}

/// Refuses `name` when it looks like one of `existing` (by [`skeleton`]).
///
/// # Errors
/// [`NameError::Confusable`] naming the existing name.
pub fn check_not_confusable<'a>(
    name: &str,
    existing: impl IntoIterator<Item = &'a str>,
) -> Result<(), NameError> {
    let wanted = skeleton(name);
    match existing.into_iter().find(|other| skeleton(other) == wanted) {
        Some(other) => Err(NameError::Confusable(other.to_owned())),
        None => Ok(()),
    }
}

/// Checks an e-mail address: at most [`MAX_NAME_LEN`] bytes, RFC 5322
/// syntax without display text or a domain literal, and a domain of at
/// least two labels.
///
/// # Errors
/// [`NameError::Email`].
pub fn check_email(email: &str) -> Result<(), NameError> {
    let options = email_address::Options::default()
        .without_display_text()
        .without_domain_literal()
        .with_minimum_sub_domains(2);
    let refused = || NameError::Email(email.to_owned());
    if email.len() > MAX_NAME_LEN || email.trim() != email {
        return Err(refused());
    }
    email_address::EmailAddress::parse_with_options(email, options).map_err(|_| refused())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// S13: look-alikes of `admin` and `josé` are refused or collide.
    #[test]
    fn s13_look_alike_names_are_refused() {
        for ok in [
            "admin",
            "josé",
            "jane.doe+x@example.com",
            "Ärger",
            "иван",
            "山田",
        ] {
            assert!(check_login_name(ok).is_ok(), "{ok}");
        }
        let nfd = "jose\u{301}";
        assert_eq!(check_login_name(nfd).unwrap(), "josé");
        for bad in [
            "ad\u{200b}min", // zero-width space
            "\u{202e}nimda", // right-to-left override
            "ａｄｍｉｎ",    // fullwidth
            "ad min",
            "",
        ] {
            assert!(check_login_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            check_login_name("\u{430}dmin"), // Cyrillic а, Latin rest
            Err(NameError::MixedScript)
        );
        for alike in ["\u{430}dmin", "ADMIN", "adrnin", nfd] {
            let existing = if alike == nfd { "josé" } else { "admin" };
            assert!(
                check_not_confusable(alike, [existing]).is_err(),
                "{alike:?} vs {existing}"
            );
        }
        assert!(check_not_confusable("alice", ["admin", "bob"]).is_ok());
    }

    /// S13: addresses are parsed, not guessed.
    #[test]
    fn s13_email_addresses_are_parsed() {
        for ok in ["a@example.com", "first.last+tag@sub.example.org"] {
            assert!(check_email(ok).is_ok(), "{ok}");
        }
        for bad in [
            "a@exa,mple.com",
            "a@example",
            "Name <a@example.com>",
            "a@[127.0.0.1]",
            "a b@example.com",
            "@example.com",
            "a@",
            " a@example.com",
        ] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
    }
}
