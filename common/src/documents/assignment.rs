//! The `device_assignment` payload: where a device sits and what it may use.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::envelope::{Document, DocumentKind};
use crate::ids::{AccessGroupId, DeviceId, MAX_ID_LEN, NodeId};
use crate::license::AccessWindow;

/// The deepest node chain (root to leaf).
pub const MAX_NODE_CHAIN: usize = 64;
/// The most access groups one device may be a member of.
pub const MAX_MEMBERSHIPS: usize = 1_000;

/// Where the device stands, for proof of play (U1) and license countries (L2).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Location {
    /// ISO 3166-1 alpha-2 country code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Region or state, free text from the device's node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// One access group the device is a member of, with the device's own window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessMembership {
    /// The access group (its manifest carries the license terms).
    pub group_id: AccessGroupId,
    /// This device's access window, computed by the hub from the terms and
    /// the membership (L2): the earliest limit wins.
    pub window: AccessWindow,
}

/// The signed assignment on `signet/v1/devices/{device_id}/assignment`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceAssignment {
    /// Strictly increasing per device.
    pub version: u64,
    /// When the hub signed it.
    pub issued_at: DateTime<Utc>,
    /// The device it is for.
    pub device_id: DeviceId,
    /// The nodes from the root to the device's leaf: each is a group whose
    /// manifest the device follows.
    pub node_chain: Vec<NodeId>,
    /// The access groups the device is a member of (removal = absence, L4).
    pub access_groups: Vec<AccessMembership>,
    /// The lowest manifest version the device may act on, per group id (S3).
    pub min_manifest_versions: BTreeMap<String, u64>,
    /// The IANA time zone schedules are evaluated in (D5).
    pub time_zone: Tz,
    /// Where the device stands.
    #[serde(default)]
    pub location: Location,
    /// The longest the device may play licensed content without hub
    /// contact, in trusted seconds (S6); each license's own grace applies
    /// too, and the smaller wins.
    pub offline_grace_secs: u64,
}

/// Why an assignment is refused although its signature is good.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssignmentError {
    /// It names another device.
    #[error("assignment is for device {0}, not this one")]
    OtherDevice(DeviceId),
    /// The node chain is empty, too deep, or has a bad or repeated id.
    #[error("node chain must hold 1 to {MAX_NODE_CHAIN} distinct ids of 1 to {MAX_ID_LEN} bytes")]
    BadNodeChain,
    /// Too many memberships, or one listed twice, or a bad id.
    #[error("at most {MAX_MEMBERSHIPS} distinct access groups with ids of 1 to {MAX_ID_LEN} bytes")]
    BadMemberships,
    /// A floor names a group that is neither in the chain nor a membership.
    #[error("version floor for unknown group {0:?}")]
    FloorForUnknownGroup(String),
    /// The country is not two ASCII letters.
    #[error("country must be an ISO 3166-1 alpha-2 code")]
    BadCountry,
}

impl DeviceAssignment {
    /// Checks what the signature cannot: that it is for `device`, and its
    /// bounds and internal consistency.
    ///
    /// # Errors
    /// The first [`AssignmentError`] found.
    pub fn validate_for(&self, device: &DeviceId) -> Result<(), AssignmentError> {
        if &self.device_id != device {
            return Err(AssignmentError::OtherDevice(self.device_id.clone()));
        }
        let mut groups = BTreeSet::new();
        if self.node_chain.is_empty() || self.node_chain.len() > MAX_NODE_CHAIN {
            return Err(AssignmentError::BadNodeChain);
        }
        for node in &self.node_chain {
            if !valid_id(node.as_str()) || !groups.insert(node.as_str()) {
                return Err(AssignmentError::BadNodeChain);
            }
        }
        if self.access_groups.len() > MAX_MEMBERSHIPS {
            return Err(AssignmentError::BadMemberships);
        }
        for membership in &self.access_groups {
            let id = membership.group_id.as_str();
            if !valid_id(id) || !groups.insert(id) {
                return Err(AssignmentError::BadMemberships);
            }
        }
        if let Some(group) = self
            .min_manifest_versions
            .keys()
            .find(|group| !groups.contains(group.as_str()))
        {
            return Err(AssignmentError::FloorForUnknownGroup(group.clone()));
        }
        if let Some(country) = &self.location.country
            && (country.len() != 2 || !country.bytes().all(|b| b.is_ascii_alphabetic()))
        {
            return Err(AssignmentError::BadCountry);
        }
        Ok(())
    }

    /// The group ids whose manifests this device follows: its node chain,
    /// then its access groups.
    pub fn group_ids(&self) -> impl Iterator<Item = &str> {
        self.node_chain
            .iter()
            .map(NodeId::as_str)
            .chain(self.access_groups.iter().map(|m| m.group_id.as_str()))
    }

    /// The device-wide offline grace.
    #[must_use]
    pub fn offline_grace(&self) -> TimeDelta {
        i64::try_from(self.offline_grace_secs)
            .ok()
            .and_then(TimeDelta::try_seconds)
            .unwrap_or(TimeDelta::MAX)
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_LEN
}

impl Document for DeviceAssignment {
    const KIND: DocumentKind = DocumentKind::DeviceAssignment;

    fn version(&self) -> u64 {
        self.version
    }

    fn issued_at(&self) -> DateTime<Utc> {
        self.issued_at
    }

    fn subject(&self) -> Cow<'_, str> {
        Cow::Borrowed(self.device_id.as_str())
    }
}
