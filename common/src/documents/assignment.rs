//! The `device_assignment` payload: where a device sits and what it may use.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::approval::MAX_FEED_VARIABLE;
use crate::envelope::{Document, DocumentKind};
use crate::ids::{AccessGroupId, DeviceId, MAX_ID_LEN, NodeId};
use crate::license::AccessWindow;

/// The deepest node chain (root to leaf).
pub const MAX_NODE_CHAIN: usize = 64;
/// The most access groups one device may be a member of.
pub const MAX_MEMBERSHIPS: usize = 1_000;
/// The longest value of one per-device feed variable, in bytes (D6).
pub const MAX_VARIABLE_VALUE_LEN: usize = 256;

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
    /// The device's values for the feed-URL variables `[1]`…`[25]` (D6),
    /// by number; absent from documents of devices without any.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<u8, String>,
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
    /// A feed variable number outside 1 to [`MAX_FEED_VARIABLE`].
    #[error("feed variable [{0}] is outside [1]..=[{MAX_FEED_VARIABLE}]")]
    BadVariableNumber(u8),
    /// A feed variable value longer than [`MAX_VARIABLE_VALUE_LEN`] bytes or
    /// holding a control character.
    #[error(
        "feed variable [{0}] must be at most {MAX_VARIABLE_VALUE_LEN} bytes without control characters"
    )]
    BadVariableValue(u8),
}

/// Checks per-device feed variables (D6): numbers 1 to
/// [`MAX_FEED_VARIABLE`], values of at most [`MAX_VARIABLE_VALUE_LEN`] bytes
/// without control characters. The hub checks an operator's input with it,
/// the agent a signed assignment.
///
/// # Errors
/// The first [`AssignmentError::BadVariableNumber`] or
/// [`AssignmentError::BadVariableValue`] found.
pub fn validate_variables(variables: &BTreeMap<u8, String>) -> Result<(), AssignmentError> {
    for (number, value) in variables {
        if !(1..=MAX_FEED_VARIABLE).contains(number) {
            return Err(AssignmentError::BadVariableNumber(*number));
        }
        if value.len() > MAX_VARIABLE_VALUE_LEN || value.chars().any(char::is_control) {
            return Err(AssignmentError::BadVariableValue(*number));
        }
    }
    Ok(())
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
        validate_variables(&self.variables)
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn assignment(variables: BTreeMap<u8, String>) -> DeviceAssignment {
        DeviceAssignment {
            version: 1,
            issued_at: DateTime::<Utc>::UNIX_EPOCH,
            device_id: DeviceId::from("d-1"),
            node_chain: vec![NodeId::from("root")],
            access_groups: vec![],
            min_manifest_versions: BTreeMap::new(),
            time_zone: chrono_tz::UTC,
            location: Location::default(),
            offline_grace_secs: 60,
            variables,
        }
    }

    /// D6: variables 1 to 25 with short printable values are accepted and
    /// travel as a JSON object keyed by number.
    #[test]
    fn d6_variables_valid_round_trip() {
        let variables: BTreeMap<u8, String> = [(1, "store-12".to_owned()), (25, "x".repeat(256))]
            .into_iter()
            .collect();
        let a = assignment(variables.clone());
        a.validate_for(&DeviceId::from("d-1")).unwrap();
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(json["variables"]["1"], "store-12");
        let back: DeviceAssignment = serde_json::from_value(json).unwrap();
        assert_eq!(back.variables, variables);
    }

    /// D6: documents without variables do not carry the field, and documents
    /// signed before it existed still parse.
    #[test]
    fn d6_no_variables_no_field() {
        let json = serde_json::to_value(assignment(BTreeMap::new())).unwrap();
        assert!(json.get("variables").is_none(), "{json}");
        let back: DeviceAssignment = serde_json::from_value(json).unwrap();
        assert!(back.variables.is_empty());
    }

    /// D6: numbers outside 1..=25, values over 256 bytes or with control
    /// characters are refused, naming the variable.
    #[test]
    fn d6_bad_variables_refused() {
        let me = DeviceId::from("d-1");
        for (number, value, expected) in [
            (0, "a".to_owned(), AssignmentError::BadVariableNumber(0)),
            (26, "a".to_owned(), AssignmentError::BadVariableNumber(26)),
            (3, "x".repeat(257), AssignmentError::BadVariableValue(3)),
            (4, "a\nb".to_owned(), AssignmentError::BadVariableValue(4)),
            (
                5,
                "a\u{7f}".to_owned(),
                AssignmentError::BadVariableValue(5),
            ),
        ] {
            let a = assignment([(number, value)].into_iter().collect());
            assert_eq!(a.validate_for(&me), Err(expected));
        }
        // 256 bytes of multi-byte characters count as bytes, not characters.
        let a = assignment([(1, "é".repeat(129))].into_iter().collect());
        assert_eq!(
            a.validate_for(&me),
            Err(AssignmentError::BadVariableValue(1))
        );
    }
}
