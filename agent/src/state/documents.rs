//! The accepted signed documents as the rest of the agent reads them:
//! their storage keys (`{kind}/{subject}`), their payloads, and the typed
//! [`Documents`] view (assignment, newest accepted and playing manifest of
//! each group) that the content task, the play decision and the status
//! report act on.
//!
//! Owns: the key scheme of accepted documents and reading them back. Must
//! not: verify or accept anything (sync does, before it commits here).

use std::collections::{BTreeMap, BTreeSet};

use signet_common::documents::{DecodeLimit, DeviceAssignment, GroupManifest};
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

    /// These documents as a device that decodes `limit` acts on them (M3):
    /// each manifest item that has a fitting rendition names the
    /// rendition's bytes instead of the original's
    /// ([`signet_common::documents::ManifestItem::for_device`]), so the
    /// cache fetches and verifies, and the player plays, exactly that file.
    /// The stored envelopes are untouched.
    #[must_use]
    pub fn for_device(mut self, limit: Option<&DecodeLimit>) -> Self {
        if limit.is_none() {
            return self;
        }
        for held in self.accepted.values_mut().chain(self.playing.values_mut()) {
            for item in &mut held.manifest.items {
                *item = item.for_device(limit);
            }
        }
        self
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

    /// M3, D2, A8: a device with a decode limit fetches, verifies and plays
    /// the fitting rendition of an approved video in place of the original
    /// (its hash, size and URL); without a limit, or for an item that is
    /// not approved as it is, the original stays.
    #[test]
    fn m3_a_decode_limit_makes_the_fitting_rendition_the_file_to_play() {
        use signet_common::approval::ApprovalState;
        use signet_common::digest::Sha256;
        use signet_common::documents::{GroupKind, ItemKind, ManifestItem, Rendition};
        use signet_common::ids::ItemId;

        let original = Sha256::of(b"original 4k");
        let rendition = Rendition {
            sha256: Sha256::of(b"rendition"),
            size: 7,
            url: "http://hub/api/v1/device/content/r".into(),
            codec: "h264".into(),
            width: 1920,
            height: 1080,
            fps: 30,
        };
        let item = |id: &str, approval| ManifestItem {
            id: ItemId::from(id),
            kind: ItemKind::Video,
            sha256: original,
            size: 100,
            url: "http://hub/api/v1/device/content/o".into(),
            approval,
            approved_hash: Some(original),
            categories: Vec::new(),
            renditions: vec![rendition.clone()],
        };
        let manifest = GroupManifest {
            version: 1,
            issued_at: chrono::DateTime::UNIX_EPOCH,
            expires_at: chrono::DateTime::UNIX_EPOCH,
            group_id: "node-1".into(),
            group_kind: GroupKind::Node,
            items: vec![
                item("c-approved", ApprovalState::Active),
                item("c-pending", ApprovalState::Pending),
            ],
            schedule: signet_common::schedule::Schedule {
                entries: Vec::new(),
                merge: signet_common::schedule::MergeMode::default(),
                default_item: None,
            },
            license: None,
        };
        let held = HeldManifest {
            manifest,
            envelope: b"as stored".to_vec(),
        };
        let mut documents = Documents::default();
        documents.playing.insert("node-1".into(), held.clone());
        documents.accepted.insert("node-1".into(), held);

        let unlimited = documents.clone().for_device(None);
        assert_eq!(
            unlimited.playing["node-1"].manifest.items[0].sha256,
            original
        );

        let pi: DecodeLimit = "1080p30-h264".parse().unwrap();
        let resolved = documents.for_device(Some(&pi));
        for held in [&resolved.playing["node-1"], &resolved.accepted["node-1"]] {
            let [approved, pending] = &held.manifest.items[..] else {
                panic!("two items");
            };
            assert_eq!(
                (approved.sha256, approved.size, approved.url.as_str()),
                (rendition.sha256, rendition.size, rendition.url.as_str())
            );
            assert_eq!(approved.check_approved(&rendition.sha256), Ok(()));
            assert_eq!(pending.sha256, original, "not approved: the original");
            assert_eq!(
                held.envelope, b"as stored",
                "the stored envelope is untouched"
            );
        }
    }
}
