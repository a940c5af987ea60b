//! A device's current signed documents over HTTP (S4, DESIGN §1: the broker
//! is an accelerator, never the only path): the answer of
//! `GET /api/v1/device/documents`.
//!
//! Owns: the shape of that answer and its bounds. Must not: verify anything
//! — every envelope in it is checked by the agent exactly like one that
//! came over MQTT (signature chain to the pinned root, rollback guard,
//! validation) before it is used. The envelopes are carried as JSON strings
//! so their bytes (and so their hashes) are exactly what the hub signed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Checked, WireError, check_id, field};
use crate::envelope::MAX_DOCUMENT_BYTES;

/// The device route that serves [`DeviceDocuments`].
pub const DOCUMENTS_PATH: &str = "/api/v1/device/documents";
/// The most manifests one answer carries.
pub const MAX_FETCHED_MANIFESTS: usize = 64;
/// The most earlier `trust` envelopes one answer carries in
/// [`DeviceDocuments::trust_chain`]: two per root rotation (S2), so an agent
/// that missed up to 16 root rotations still catches up.
pub const MAX_TRUST_CHAIN: usize = 32;
/// The largest answer, in bytes: a few documents of at most
/// [`MAX_DOCUMENT_BYTES`] each. The hub leaves manifests out (listing them
/// in [`DeviceDocuments::omitted`]) rather than exceed it.
pub const MAX_DOCUMENTS_ANSWER_BYTES: usize = 16 * MAX_DOCUMENT_BYTES;

/// The signed documents a device should hold now, as the hub last signed
/// them: trust, hub time, the device's assignment, and the manifest of each
/// group that assignment names.
///
/// Unlike the signed documents and the reports, this answer does not refuse
/// fields it does not know: it is only the carrier of envelopes that are
/// each verified on their own, and it is bounded before it is decoded
/// ([`parse_documents`]), so a field a newer hub adds costs at most its
/// bytes. An agent older than the hub then keeps fetching over HTTP (D1)
/// instead of failing every fetch — as agents built before
/// [`Self::trust_chain`] did on the first answer that carried it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceDocuments {
    /// The root-signed `trust` envelope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust: Option<String>,
    /// Earlier `trust` envelopes, oldest first, that an agent holding an
    /// older one needs before `trust` (S2): each root rotation (which is
    /// accepted only at exactly the held version + 1) and the document
    /// just before it. Empty (and left out) until the root was rotated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trust_chain: Vec<String>,
    /// The latest `hub_time` envelope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub_time: Option<String>,
    /// The device's latest `device_assignment` envelope, once one was signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignment: Option<String>,
    /// The latest `group_manifest` envelope of each group of the
    /// assignment that has one, by group id.
    #[serde(default)]
    pub manifests: BTreeMap<String, String>,
    /// Groups of the assignment whose manifests were left out to keep the
    /// answer within [`MAX_DOCUMENTS_ANSWER_BYTES`] and
    /// [`MAX_FETCHED_MANIFESTS`] (the broker still carries them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub omitted: Vec<String>,
}

impl DeviceDocuments {
    /// The total bytes of the envelopes it carries.
    #[must_use]
    pub fn envelope_bytes(&self) -> usize {
        [&self.trust, &self.hub_time, &self.assignment]
            .into_iter()
            .flatten()
            .chain(&self.trust_chain)
            .chain(self.manifests.values())
            .map(String::len)
            .sum()
    }
}

impl Checked for DeviceDocuments {
    fn check(&self) -> Result<(), WireError> {
        for (name, envelope) in [
            ("trust", &self.trust),
            ("hub_time", &self.hub_time),
            ("assignment", &self.assignment),
        ] {
            if envelope
                .as_ref()
                .is_some_and(|e| e.len() > MAX_DOCUMENT_BYTES)
            {
                return Err(field(name, format!("over {MAX_DOCUMENT_BYTES} bytes")));
            }
        }
        if self.trust_chain.len() > MAX_TRUST_CHAIN {
            return Err(field(
                "trust_chain",
                format!("at most {MAX_TRUST_CHAIN} documents"),
            ));
        }
        if self
            .trust_chain
            .iter()
            .any(|e| e.len() > MAX_DOCUMENT_BYTES)
        {
            return Err(field(
                "trust_chain",
                format!("over {MAX_DOCUMENT_BYTES} bytes"),
            ));
        }
        if self.manifests.len() > MAX_FETCHED_MANIFESTS || self.omitted.len() > super::MAX_APPLIED {
            return Err(field(
                "manifests",
                format!("at most {MAX_FETCHED_MANIFESTS} manifests"),
            ));
        }
        for (group, envelope) in &self.manifests {
            check_id("manifests", group)?;
            if envelope.len() > MAX_DOCUMENT_BYTES {
                return Err(field(
                    "manifests",
                    format!("over {MAX_DOCUMENT_BYTES} bytes"),
                ));
            }
        }
        for group in &self.omitted {
            check_id("omitted", group)?;
        }
        Ok(())
    }
}

/// Parses and checks an answer of [`DOCUMENTS_PATH`].
///
/// # Errors
/// [`WireError`] when it is over [`MAX_DOCUMENTS_ANSWER_BYTES`], malformed
/// or out of bounds.
pub fn parse_documents(bytes: &[u8]) -> Result<DeviceDocuments, WireError> {
    if bytes.len() > MAX_DOCUMENTS_ANSWER_BYTES {
        return Err(field(
            "answer",
            format!("{} bytes, over {MAX_DOCUMENTS_ANSWER_BYTES}", bytes.len()),
        ));
    }
    let documents: DeviceDocuments =
        serde_json::from_slice(bytes).map_err(|e| WireError::Malformed(e.to_string()))?;
    documents.check()?;
    Ok(documents)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// S4: an answer round-trips; oversized or malformed answers are
    /// refused with a reason before anything in them is used.
    #[test]
    fn s4_device_documents_are_bounded() {
        let mut documents = DeviceDocuments {
            trust: Some("{\"kind\":\"trust\"}".into()),
            manifests: [("g-1".to_owned(), "{}".to_owned())].into(),
            ..DeviceDocuments::default()
        };
        let bytes = serde_json::to_vec(&documents).unwrap();
        assert_eq!(parse_documents(&bytes).unwrap(), documents);
        assert_eq!(documents.envelope_bytes(), 18);

        documents.assignment = Some("x".repeat(MAX_DOCUMENT_BYTES + 1));
        let bytes = serde_json::to_vec(&documents).unwrap();
        assert!(parse_documents(&bytes).is_err());
        documents.assignment = None;
        documents.manifests = (0..=MAX_FETCHED_MANIFESTS)
            .map(|i| (format!("g-{i}"), String::new()))
            .collect();
        assert!(documents.check().is_err());
        documents.manifests.clear();
        documents.trust_chain = vec![String::new(); MAX_TRUST_CHAIN + 1];
        assert!(documents.check().is_err());
        documents.trust_chain = vec!["x".repeat(MAX_DOCUMENT_BYTES + 1)];
        assert!(documents.check().is_err());
        documents.trust_chain = vec!["{}".into(); MAX_TRUST_CHAIN];
        assert!(documents.check().is_ok());
        assert!(parse_documents(b"{\"trust\": 1}").is_err());
        assert!(parse_documents(&vec![b' '; MAX_DOCUMENTS_ANSWER_BYTES + 1]).is_err());
    }

    /// S4, D1: an answer from a newer hub, with a field this agent does not
    /// know, still gives the documents it carries (an agent must not stop
    /// fetching because the hub grew), while what it knows is checked as
    /// ever and the whole answer stays bounded.
    #[test]
    fn s4_d1_a_field_from_a_newer_hub_is_ignored_not_fatal() {
        let answer = br#"{"trust": "{}", "manifests": {"g-1": "{}"},
            "from_a_later_version": {"anything": [1, 2, 3]}}"#;
        let documents = parse_documents(answer).unwrap();
        assert_eq!(documents.trust.as_deref(), Some("{}"));
        assert_eq!(documents.manifests.len(), 1);
        assert!(parse_documents(br#"{"later": 1, "trust": 1}"#).is_err());
        assert!(parse_documents(br#"{"later": 1, "manifests": {"": "{}"}}"#).is_err());
        let mut padded = br#"{"trust": "{}", "later": ""#.to_vec();
        padded.extend(std::iter::repeat_n(b'x', MAX_DOCUMENTS_ANSWER_BYTES));
        padded.extend(br#""}"#);
        assert!(parse_documents(&padded).is_err());
    }
}
