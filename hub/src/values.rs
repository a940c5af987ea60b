//! Parsers for the value types operators type: one per type, used by every
//! service. Login names and e-mail addresses are parsed in
//! [`crate::identity::names`]; this module holds the rest.

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
