//! The `hub_time` payload: the hub's clock, signed (S6).

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::envelope::{Document, DocumentKind};

/// The hub's clock, republished every minute on `signet/v1/hub/time`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubTime {
    /// Strictly increasing.
    pub version: u64,
    /// When the hub signed it.
    pub issued_at: DateTime<Utc>,
    /// The hub's time, which raises the device's trusted clock.
    pub time: DateTime<Utc>,
}

impl Document for HubTime {
    const KIND: DocumentKind = DocumentKind::HubTime;

    fn version(&self) -> u64 {
        self.version
    }

    fn issued_at(&self) -> DateTime<Utc> {
        self.issued_at
    }

    fn subject(&self) -> Cow<'_, str> {
        Cow::Borrowed("hub")
    }
}
