//! The `group_manifest` payload: everything one group gives its devices.

use std::borrow::Cow;
use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::approval::{ApprovalState, ContentHash};
use crate::envelope::{Document, DocumentKind};
use crate::ids::{ItemId, MAX_ID_LEN};
use crate::license::{LicenseError, LicenseTerms};
use crate::schedule::{Schedule, ScheduleError};

use super::rendition::{MAX_RENDITIONS, Rendition};

/// The most items one manifest may list.
pub const MAX_MANIFEST_ITEMS: usize = 10_000;
/// The longest download URL, in bytes.
pub const MAX_URL_LEN: usize = 2048;
/// The most categories one item may carry.
pub const MAX_CATEGORIES: usize = 32;
/// The longest category name, in bytes.
pub const MAX_CATEGORY_LEN: usize = 64;

/// Which kind of group a manifest belongs to (DESIGN §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupKind {
    /// A node of the tenancy tree: its content reaches every device below it.
    Node,
    /// An access group: licensed content for its member devices.
    AccessGroup,
}

/// What an item's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    /// A video file.
    Video,
    /// A still image.
    Image,
    /// An audio file.
    Audio,
    /// A template layout document ([`crate::approval::Template`] as JSON).
    Template,
}

/// One content item as a device needs it: where to fetch it, how to check
/// it, and whether it may play.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestItem {
    /// The item.
    pub id: ItemId,
    /// What its bytes are.
    pub kind: ItemKind,
    /// SHA-256 of the bytes to download; the cache refuses anything else (D2).
    pub sha256: ContentHash,
    /// The exact size of those bytes; downloads stop there (DESIGN §7).
    pub size: u64,
    /// Where to fetch them: the hub's device content route or a mirror.
    pub url: String,
    /// Its approval state when the hub signed this manifest (A3).
    pub approval: ApprovalState,
    /// The approved content hash (A8): for media, the SHA-256 of the bytes;
    /// for templates, [`crate::approval::Template::content_hash`], which
    /// leaves data feeds out so feed edits keep it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_hash: Option<ContentHash>,
    /// Categories, for players that group content (L1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    /// Re-encoded copies of the original the hub made (M3), for devices
    /// that cannot decode it smoothly ([`super::rendition`]); absent when
    /// there are none, so manifests without any are unchanged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub renditions: Vec<Rendition>,
}

/// Why an item may not play although it is scheduled (A7, A8).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unapproved {
    /// It is inactive or pending approval.
    #[error("item is {0:?}, not approved")]
    NotActive(ApprovalState),
    /// Its bytes are not the approved version.
    #[error("content hash {actual} is not the approved {approved}")]
    NotTheApprovedVersion {
        /// The approved hash.
        approved: ContentHash,
        /// The hash of what the device holds.
        actual: ContentHash,
    },
}

impl ManifestItem {
    /// A7/A8: whether content whose approval hash is `content_hash` (the
    /// SHA-256 of media bytes, or the template's content hash) may play.
    ///
    /// # Errors
    /// [`Unapproved::NotActive`] unless the item is active with an approved
    /// hash; [`Unapproved::NotTheApprovedVersion`] when the hashes differ.
    pub fn check_approved(&self, content_hash: &ContentHash) -> Result<(), Unapproved> {
        let approved = match (self.approval, self.approved_hash) {
            (ApprovalState::Active, Some(approved)) => approved,
            (state, _) => return Err(Unapproved::NotActive(state)),
        };
        if &approved == content_hash {
            Ok(())
        } else {
            Err(Unapproved::NotTheApprovedVersion {
                approved,
                actual: *content_hash,
            })
        }
    }
}

/// The signed manifest of one group on `signet/v1/groups/{group_id}/manifest`.
/// Self-contained (S3): items, schedule and license terms travel in one
/// document, so parts of different versions can never be mixed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupManifest {
    /// Strictly increasing per group.
    pub version: u64,
    /// When the hub signed it.
    pub issued_at: DateTime<Utc>,
    /// After this the device stops acting on it (S3 freeze bound); the hub
    /// re-signs well before.
    pub expires_at: DateTime<Utc>,
    /// The group (node or access group id); unique across both kinds.
    pub group_id: String,
    /// Which kind of group it is.
    pub group_kind: GroupKind,
    /// Every item the group's schedule may play.
    pub items: Vec<ManifestItem>,
    /// What plays when (D5).
    pub schedule: Schedule,
    /// The access group's license terms (L2); none for a node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<LicenseTerms>,
}

/// Why a manifest is refused although its signature is good.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// The group id is empty or too long.
    #[error("group id must be 1 to {MAX_ID_LEN} bytes")]
    BadGroupId,
    /// It expires no later than it was issued.
    #[error("expires_at must be after issued_at")]
    ExpiresBeforeIssued,
    /// More items than [`MAX_MANIFEST_ITEMS`].
    #[error("{0} items, over the limit of {MAX_MANIFEST_ITEMS}")]
    TooManyItems(usize),
    /// An item id is empty or too long.
    #[error("item id {0:?} must be 1 to {MAX_ID_LEN} bytes")]
    BadItemId(ItemId),
    /// Two items share an id.
    #[error("item {0} is listed twice")]
    DuplicateItem(ItemId),
    /// An item's URL is empty or too long.
    #[error("item {0}: url must be 1 to {MAX_URL_LEN} bytes")]
    BadUrl(ItemId),
    /// An item has too many or too long categories.
    #[error("item {0}: at most {MAX_CATEGORIES} categories of at most {MAX_CATEGORY_LEN} bytes")]
    BadCategories(ItemId),
    /// An item lists too many renditions, or one out of bounds, or a
    /// template lists any (M3).
    #[error(
        "item {0}: at most {MAX_RENDITIONS} renditions of media, each with a url and codec in bounds and a picture size"
    )]
    BadRenditions(ItemId),
    /// An active media item whose approved hash is not its bytes' hash (A8).
    #[error("item {0}: an active media item's approved hash must be its sha256")]
    ApprovedHashMismatch(ItemId),
    /// An active item without an approved hash.
    #[error("item {0}: active without an approved hash")]
    ActiveWithoutApprovedHash(ItemId),
    /// The schedule names an item the manifest does not list.
    #[error("schedule names item {0}, which the manifest does not list")]
    UnknownScheduledItem(ItemId),
    /// The schedule is invalid.
    #[error("schedule: {0}")]
    Schedule(#[from] ScheduleError),
    /// The license terms are invalid.
    #[error("license: {0}")]
    License(#[from] LicenseError),
    /// A node's manifest carries license terms, or an access group's lacks them.
    #[error("license terms belong to access groups, and every access group has one")]
    LicenseMismatch,
}

impl GroupManifest {
    /// Checks what the signature cannot: bounds, unique ids, approval
    /// consistency, that the schedule names only listed items, and the
    /// schedule's and license's own rules. The hub runs it before signing;
    /// the agent after verifying.
    ///
    /// # Errors
    /// The first [`ManifestError`] found.
    pub fn validate(&self) -> Result<(), ManifestError> {
        if self.group_id.is_empty() || self.group_id.len() > MAX_ID_LEN {
            return Err(ManifestError::BadGroupId);
        }
        if self.expires_at <= self.issued_at {
            return Err(ManifestError::ExpiresBeforeIssued);
        }
        if self.items.len() > MAX_MANIFEST_ITEMS {
            return Err(ManifestError::TooManyItems(self.items.len()));
        }
        let mut ids = BTreeSet::new();
        for item in &self.items {
            validate_item(item)?;
            if !ids.insert(&item.id) {
                return Err(ManifestError::DuplicateItem(item.id.clone()));
            }
        }
        self.schedule.validate()?;
        let scheduled = self
            .schedule
            .entries
            .iter()
            .flat_map(|entry| entry.items.iter())
            .chain(self.schedule.default_item.iter());
        for playlist_item in scheduled {
            if !ids.contains(&playlist_item.item) {
                return Err(ManifestError::UnknownScheduledItem(
                    playlist_item.item.clone(),
                ));
            }
        }
        match (self.group_kind, &self.license) {
            (GroupKind::AccessGroup, Some(terms)) => terms.validate()?,
            (GroupKind::Node, None) => {}
            _ => return Err(ManifestError::LicenseMismatch),
        }
        Ok(())
    }

    /// The item with id `id`.
    #[must_use]
    pub fn item(&self, id: &ItemId) -> Option<&ManifestItem> {
        self.items.iter().find(|item| &item.id == id)
    }
}

fn validate_item(item: &ManifestItem) -> Result<(), ManifestError> {
    if item.id.as_str().is_empty() || item.id.as_str().len() > MAX_ID_LEN {
        return Err(ManifestError::BadItemId(item.id.clone()));
    }
    if item.url.is_empty() || item.url.len() > MAX_URL_LEN {
        return Err(ManifestError::BadUrl(item.id.clone()));
    }
    if item.categories.len() > MAX_CATEGORIES
        || item
            .categories
            .iter()
            .any(|c| c.is_empty() || c.len() > MAX_CATEGORY_LEN)
    {
        return Err(ManifestError::BadCategories(item.id.clone()));
    }
    if item.renditions.len() > MAX_RENDITIONS
        || (item.kind == ItemKind::Template && !item.renditions.is_empty())
        || item.renditions.iter().any(|r| !r.is_valid())
    {
        return Err(ManifestError::BadRenditions(item.id.clone()));
    }
    if item.approval == ApprovalState::Active {
        match item.approved_hash {
            None => return Err(ManifestError::ActiveWithoutApprovedHash(item.id.clone())),
            Some(approved) if item.kind != ItemKind::Template && approved != item.sha256 => {
                return Err(ManifestError::ApprovedHashMismatch(item.id.clone()));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

impl Document for GroupManifest {
    const KIND: DocumentKind = DocumentKind::GroupManifest;

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
        Cow::Borrowed(&self.group_id)
    }

    /// The hub's plain form by [`super::plain`], anything else by
    /// `serde_json` (issue 20: 2.4–2.9× less time than `serde_json` for
    /// a 100-item manifest).
    fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        super::plain::parse(text).map_or_else(|| serde_json::from_str(text), Ok)
    }
}
