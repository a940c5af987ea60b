//! The `command` payload: a one-off instruction to one device.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::envelope::{Document, DocumentKind};
use crate::ids::DeviceId;

/// The longest nonce, in bytes.
pub const MAX_NONCE_LEN: usize = 64;

/// What a command asks the device to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandAction {
    /// Capture the screen and upload it (D8).
    Screenshot,
    /// Drop the MQTT session and fetch all retained state again.
    Resync,
    /// Restart the player pipeline.
    RestartPlayer,
    /// Delete cached content no current manifest needs.
    PurgeCache,
}

/// A signed command on `signet/v1/devices/{device_id}/commands`. Its version
/// counts per device, so the rollback guard refuses a replayed command; the
/// nonce makes every command's bytes unique and `expires_at` bounds how late
/// it may still run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Command {
    /// Strictly increasing per device.
    pub version: u64,
    /// When the hub signed it.
    pub issued_at: DateTime<Utc>,
    /// After this the device refuses it.
    pub expires_at: DateTime<Utc>,
    /// The one device it is for; any other device refuses it.
    pub device_id: DeviceId,
    /// Random, unique per command.
    pub nonce: String,
    /// What to do.
    pub action: CommandAction,
}

impl Document for Command {
    const KIND: DocumentKind = DocumentKind::Command;

    fn version(&self) -> u64 {
        self.version
    }

    fn issued_at(&self) -> DateTime<Utc> {
        self.issued_at
    }

    fn expires_at(&self) -> Option<DateTime<Utc>> {
        Some(self.expires_at)
    }

    fn subject(&self) -> Cow<'_, str> {
        Cow::Borrowed(self.device_id.as_str())
    }
}

/// Why a verified command is still refused by the device it reached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// It names another device.
    #[error("command is for device {0}, not this one")]
    OtherDevice(DeviceId),
    /// Its nonce is empty or longer than [`MAX_NONCE_LEN`].
    #[error("command nonce must be 1 to {MAX_NONCE_LEN} bytes")]
    BadNonce,
}

impl Command {
    /// Checks what signature and version checks cannot: that the command is
    /// for `device` and carries a sane nonce.
    ///
    /// # Errors
    /// [`CommandError::OtherDevice`] or [`CommandError::BadNonce`].
    pub fn check_for(&self, device: &DeviceId) -> Result<(), CommandError> {
        if &self.device_id != device {
            return Err(CommandError::OtherDevice(self.device_id.clone()));
        }
        if self.nonce.is_empty() || self.nonce.len() > MAX_NONCE_LEN {
            return Err(CommandError::BadNonce);
        }
        Ok(())
    }
}
