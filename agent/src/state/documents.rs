//! The accepted signed documents as the rest of the agent reads them:
//! their storage keys (`{kind}/{subject}`), their payloads, and the typed
//! [`Documents`] view (assignment, newest accepted and playing manifest of
//! each group) that the content task, the play decision and the status
//! report act on.
//!
//! Owns: the key scheme of accepted documents and reading them back. Must
//! not: verify or accept anything (sync does, before it commits here).

use std::collections::{BTreeMap, BTreeSet};

use signet_common::documents::{DeviceAssignment, GroupManifest};
use signet_common::envelope::{self, Document, DocumentKind};

use super::{DOC_PREFIX, StateError, Store};

/// The `{kind}/{subject}` key of an accepted document (in the state and in
/// the device state's `applied` and `refused` maps).
#[must_use]
pub fn document_key(kind: DocumentKind, subject: &str) -> String {
    format!("{kind}/{subject}")
}

/// Reads the payload of a document this agent stored after verifying it.
///
/// # Errors
/// When the stored bytes do not open or parse (a corrupt state).
pub fn stored_payload<D: Document>(bytes: &[u8]) -> Result<D, String> {
    let opened = envelope::open(bytes).map_err(|e| e.to_string())?;
    serde_json::from_slice(opened.payload()).map_err(|e| e.to_string())
}

impl Store {
    /// The accepted document of `kind` about `subject`: its envelope bytes.
    ///
    /// # Errors
    /// On a database failure.
    pub fn accepted(
        &self,
        kind: DocumentKind,
        subject: &str,
    ) -> Result<Option<Vec<u8>>, StateError> {
        self.document(&document_key(kind, subject))
    }

    /// Every accepted document of `kind`: envelope bytes by subject.
    ///
    /// # Errors
    /// On a database failure.
    pub fn accepted_of_kind(
        &self,
        kind: DocumentKind,
    ) -> Result<BTreeMap<String, Vec<u8>>, StateError> {
        let prefix = format!("{DOC_PREFIX}{}", document_key(kind, ""));
        let mut out = BTreeMap::new();
        for entry in self.records.scan_prefix(&prefix) {
            let (key, value) = entry.map_err(|e| self.db_error(e))?;
            let subject = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            out.insert(subject, value.to_vec());
        }
        Ok(out)
    }
}

/// One group's manifest as held: the parsed payload and its envelope bytes.
#[derive(Debug, Clone)]
pub struct HeldManifest {
    /// The verified payload.
    pub manifest: GroupManifest,
    /// The envelope bytes as accepted (what the switch stores).
    pub envelope: Vec<u8>,
}

/// The documents the content task and the player act on, read from the
/// state.
#[derive(Debug, Clone, Default)]
pub struct Documents {
    /// The device assignment, if one was accepted.
    pub assignment: Option<DeviceAssignment>,
    /// The newest accepted manifest of each group.
    pub accepted: BTreeMap<String, HeldManifest>,
    /// The playing manifest of each group (D3).
    pub playing: BTreeMap<String, HeldManifest>,
}

impl Documents {
    /// Reads the documents of `device` from `store`. A stored document that
    /// no longer parses is left out with an error log (it was verified when
    /// accepted; only disk corruption gets here).
    ///
    /// # Errors
    /// On a database failure.
    pub fn load(store: &Store, device: &str) -> Result<Self, StateError> {
        let mut out = Self::default();
        if let Some(bytes) = store.accepted(DocumentKind::DeviceAssignment, device)? {
            match stored_payload::<DeviceAssignment>(&bytes) {
                Ok(assignment) => out.assignment = Some(assignment),
                Err(reason) => {
                    let key = document_key(DocumentKind::DeviceAssignment, device);
                    tracing::error!(%key, %reason, "stored assignment unreadable");
                }
            }
        }
        for (group, bytes) in store.accepted_of_kind(DocumentKind::GroupManifest)? {
            let key = document_key(DocumentKind::GroupManifest, &group);
            if let Some(held) = parse_held(&key, bytes) {
                out.accepted.insert(group, held);
            }
        }
        for (group, bytes) in store.active_manifests()? {
            if let Some(held) = parse_held(&format!("active/{group}"), bytes) {
                out.playing.insert(group, held);
            }
        }
        Ok(out)
    }

    /// [`Self::load`] off the async threads (sled reads block).
    ///
    /// # Errors
    /// As [`Self::load`]; a failed task is reported as a corrupt read.
    pub async fn load_blocking(store: Store, device: String) -> Result<Self, StateError> {
        tokio::task::spawn_blocking(move || Self::load(&store, &device))
            .await
            .unwrap_or_else(|e| {
                Err(StateError::Corrupt {
                    key: "documents".into(),
                    reason: e.to_string(),
                })
            })
    }

    /// The assigned groups in view order: node chain root → leaf, then the
    /// access groups in assignment order.
    #[must_use]
    pub fn group_order(&self) -> Vec<String> {
        let Some(assignment) = &self.assignment else {
            return Vec::new();
        };
        let mut seen = BTreeSet::new();
        assignment
            .node_chain
            .iter()
            .map(|n| n.as_str().to_owned())
            .chain(
                assignment
                    .access_groups
                    .iter()
                    .map(|m| m.group_id.as_str().to_owned()),
            )
            .filter(|g| seen.insert(g.clone()))
            .collect()
    }

    /// The playing manifests of the assigned groups, in view order.
    #[must_use]
    pub fn playing_in_order(&self) -> Vec<&GroupManifest> {
        self.group_order()
            .iter()
            .filter_map(|g| self.playing.get(g).map(|h| &h.manifest))
            .collect()
    }

    /// The accepted manifests newer than the playing one of their group
    /// (waiting for their content), in view order: what they withdraw
    /// applies before they are activated (D3, see
    /// [`signet_common::play`]).
    #[must_use]
    pub fn successors_in_order(&self) -> Vec<&GroupManifest> {
        self.group_order()
            .iter()
            .filter_map(|g| {
                let playing = self.playing.get(g)?;
                self.accepted
                    .get(g)
                    .filter(|a| a.manifest.version > playing.manifest.version)
                    .map(|a| &a.manifest)
            })
            .collect()
    }
}

fn parse_held(key: &str, envelope: Vec<u8>) -> Option<HeldManifest> {
    match stored_payload::<GroupManifest>(&envelope) {
        Ok(manifest) => Some(HeldManifest { manifest, envelope }),
        Err(reason) => {
            tracing::error!(%key, %reason, "stored manifest unreadable; left out");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::state::Commit;

    /// S9, D3: the typed accessors read back exactly the documents a commit
    /// stored under their kind and subject, and nothing of another kind.
    #[test]
    fn s9_accepted_documents_are_read_back_by_kind_and_subject() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let manifest = |group: &str| document_key(DocumentKind::GroupManifest, group);
        store
            .commit(&Commit {
                put_documents: vec![
                    (manifest("node-1"), b"m1".to_vec()),
                    (manifest("ag-2"), b"m2".to_vec()),
                    (
                        document_key(DocumentKind::DeviceAssignment, "dev-1"),
                        b"a".to_vec(),
                    ),
                ],
                ..Commit::default()
            })
            .unwrap();
        let manifests = store.accepted_of_kind(DocumentKind::GroupManifest).unwrap();
        assert_eq!(
            manifests.into_iter().collect::<Vec<_>>(),
            vec![
                ("ag-2".to_owned(), b"m2".to_vec()),
                ("node-1".to_owned(), b"m1".to_vec())
            ]
        );
        assert_eq!(
            store
                .accepted(DocumentKind::DeviceAssignment, "dev-1")
                .unwrap(),
            Some(b"a".to_vec())
        );
        assert_eq!(
            store
                .accepted(DocumentKind::DeviceAssignment, "dev-2")
                .unwrap(),
            None
        );
    }
}
