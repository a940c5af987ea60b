//! Signed hub time (S6, DESIGN §4/§5): the `hub_time` document the hub
//! publishes retained on `signet/v1/hub/time` at every connect and every
//! minute, which raises each device's trusted clock.
//!
//! Owns: the [`HUB_TIME`] tree (one record: the last version signed and
//! its envelope, which the retained-state watch restores and the device
//! documents route serves).
//!
//! # Versions
//! A device refuses a `hub_time` whose version is not above the one it
//! holds (S3), so the version must strictly increase across restarts, clock
//! steps and data-directory restores. Each new version is
//! `max(last stored + 1, issued_at in Unix milliseconds)`, and it is stored
//! durably before the document is returned for publishing: the stored
//! counter covers a wall clock stepped back, and the time part covers a data
//! directory restored from an older backup.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use signet_common::documents::HubTime;
use signet_common::envelope::sign_document;

use crate::app::Hub;
use crate::store::StoreError;

/// The last `hub_time` version signed, under [`LAST_KEY`].
pub const HUB_TIME: &str = "hub_time";
/// The key of the one record in [`HUB_TIME`].
pub const LAST_KEY: &str = "last";

/// The last `hub_time` signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastHubTime {
    /// Its version.
    pub version: u64,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
    /// The signed envelope, byte for byte as published (absent in records
    /// written before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envelope: Option<String>,
}

/// Why no `hub_time` was signed.
#[derive(Debug, thiserror::Error)]
pub enum HubTimeError {
    /// The store failed; nothing was signed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Encoding failed (never for this type).
    #[error("signing hub_time failed: {0}")]
    Sign(String),
}

/// The next version after `last` for a document issued at `now`.
#[must_use]
pub fn next_version(last: Option<u64>, now: DateTime<Utc>) -> u64 {
    let from_time = u64::try_from(now.timestamp_millis()).unwrap_or(0);
    last.map_or(0, |v| v.saturating_add(1))
        .max(from_time)
        .max(1)
}

/// Signs the next `hub_time` at the state's clock with the signing key,
/// after storing its version durably; returns the envelope.
///
/// # Errors
/// [`HubTimeError`]; then nothing is published.
pub async fn sign_next(state: &Hub) -> Result<Vec<u8>, HubTimeError> {
    let now = state.clock.now();
    let text = state
        .store
        .transact(|tx| {
            let last: Option<LastHubTime> = tx.get(HUB_TIME, LAST_KEY)?;
            let version = next_version(last.map(|l| l.version), now);
            let document = HubTime {
                version,
                issued_at: now,
                time: now,
            };
            let envelope = sign_document(&document, &state.keys.current().signing)
                .map_err(|e| HubTimeError::Sign(e.to_string()))?;
            let text =
                String::from_utf8(envelope).map_err(|e| HubTimeError::Sign(e.to_string()))?;
            let record = LastHubTime {
                version,
                issued_at: now,
                envelope: Some(text.clone()),
            };
            tx.put(HUB_TIME, LAST_KEY, &record)?;
            Ok::<_, HubTimeError>(text)
        })
        .await?;
    Ok(text.into_bytes())
}

/// The envelope of the last `hub_time` signed, if the hub kept one.
///
/// # Errors
/// When the store fails.
pub fn latest_envelope(store: &crate::store::Store) -> Result<Option<String>, StoreError> {
    Ok(store
        .get::<LastHubTime>(HUB_TIME, LAST_KEY)?
        .and_then(|last| last.envelope))
}

/// The latest `hub_time` envelope: the one last signed, or a new one when
/// none was kept yet.
///
/// # Errors
/// [`HubTimeError`] when the store fails or signing fails.
pub async fn latest_or_sign(state: &Hub) -> Result<String, HubTimeError> {
    if let Some(envelope) = latest_envelope(&state.store)? {
        return Ok(envelope);
    }
    let bytes = sign_next(state).await?;
    String::from_utf8(bytes).map_err(|e| HubTimeError::Sign(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s6_versions_strictly_increase_through_clock_steps_and_restores() {
        let t: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let first = next_version(None, t);
        assert_eq!(first, u64::try_from(t.timestamp_millis()).unwrap());
        // Clock stepped back an hour: the stored counter wins.
        let back = t - chrono::TimeDelta::hours(1);
        assert_eq!(next_version(Some(first), back), first + 1);
        // Data dir restored from an old backup: time wins.
        let later = t + chrono::TimeDelta::minutes(1);
        assert!(next_version(Some(5), later) > first);
        assert_eq!(next_version(Some(u64::MAX), t), u64::MAX);
    }
}
