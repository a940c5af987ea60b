//! An e-mail message (A5, L6, U4 alerts) and the rules it must meet before
//! it is handed to SMTP ([`Mail::check`]): what the mail outbox stores and
//! what configuration checks `alert_email` with. Must not: send or store
//! (`mail` does).

use serde::{Deserialize, Serialize};

/// The longest subject, in bytes.
pub const MAX_SUBJECT_LEN: usize = 998;
/// The longest body, in bytes.
pub const MAX_BODY_LEN: usize = 64 * 1024;
/// The longest recipient address, in bytes (RFC 5321's path limit).
pub const MAX_ADDRESS_LEN: usize = 254;

/// One message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Mail {
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
}

/// Why a message can never be sent as it is. The sender marks such an entry
/// failed at once instead of retrying it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidMail {
    /// A header field holds CR or LF: an attempt to inject headers.
    #[error("the {field} contains a line break (header injection refused)")]
    LineBreak {
        /// `recipient` or `subject`.
        field: &'static str,
    },
    /// A header field holds another control character (or the recipient a space).
    #[error("the {field} contains a control character or space")]
    ControlCharacter {
        /// `recipient` or `subject`.
        field: &'static str,
    },
    /// A field is longer than allowed.
    #[error("the {field} is longer than {max} bytes")]
    TooLong {
        /// `recipient`, `subject` or `body`.
        field: &'static str,
        /// The limit.
        max: usize,
    },
    /// The recipient is not an e-mail address.
    #[error("invalid recipient {address:?}: {reason}")]
    Recipient {
        /// The address as given.
        address: String,
        /// Why it does not parse.
        reason: String,
    },
}

impl Mail {
    /// Checks the bounds and the header fields (no CR/LF or other control
    /// characters in `to` and `subject`). Handlers may call it to answer 400
    /// before they enqueue; the sender calls it before every attempt.
    ///
    /// # Errors
    /// [`InvalidMail`] naming the field.
    pub fn check(&self) -> Result<(), InvalidMail> {
        check_header("recipient", &self.to, MAX_ADDRESS_LEN, true)?;
        check_header("subject", &self.subject, MAX_SUBJECT_LEN, false)?;
        if self.body.len() > MAX_BODY_LEN {
            return Err(InvalidMail::TooLong {
                field: "body",
                max: MAX_BODY_LEN,
            });
        }
        let address = self.to.as_str();
        let parsed = if address.is_empty() {
            Err("it is empty".to_owned())
        } else {
            address
                .parse::<lettre::Address>()
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        parsed.map_err(|reason| InvalidMail::Recipient {
            address: address.to_owned(),
            reason,
        })
    }
}

fn check_header(
    field: &'static str,
    value: &str,
    max: usize,
    no_spaces: bool,
) -> Result<(), InvalidMail> {
    if value.contains(['\r', '\n']) {
        return Err(InvalidMail::LineBreak { field });
    }
    if value
        .chars()
        .any(|c| c.is_control() || (no_spaces && c.is_whitespace()))
    {
        return Err(InvalidMail::ControlCharacter { field });
    }
    if value.len() > max {
        return Err(InvalidMail::TooLong { field, max });
    }
    Ok(())
}
