//! The permission catalogue (P7) and compact sets of permissions.
//!
//! Owns: the names of the permissions, how each one is classified (media,
//! publish-gated, own-uploaded-media) and [`PermissionSet`]. Must not: decide
//! who holds a permission — that is [`super::role_defaults`] and the groups.

use std::fmt;
use std::str::FromStr;

use serde::de::{SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::PermissionError;

/// One entry of the P7 permission catalogue; serialized by its catalogue name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Permission {
    /// Download a media file (gated by the media's `allow_download`).
    Download,
    /// Like or dislike media.
    Rate,
    /// Report or comment on the suitability of media to its owners.
    Feedback,
    /// Add media to the user's favourites.
    Favorite,
    /// Share a media link (gated by the media's `allow_share`).
    Share,
    /// Set values of custom attributes on media.
    UpdateCustomAttributes,
    /// Start on-demand processing (transcoding, insights) of media.
    ProcessMedia,
    /// View and add annotations on media the user uploaded (own-media, P9).
    AnnotationViewOwn,
    /// View and add annotations on every media the user can view.
    AnnotationViewAll,
    /// Edit the user's own annotations.
    AnnotationEditOwn,
    /// Edit annotations written by others.
    AnnotationEditOthers,
    /// Delete the user's own annotations.
    AnnotationDeleteOwn,
    /// Delete annotations written by others.
    AnnotationDeleteOthers,
    /// Read comments (gated by the media's `allow_comments`).
    CommentView,
    /// Write comments (gated by `allow_comments`).
    CommentAdd,
    /// Edit the user's own comments (gated by `allow_comments`).
    CommentEditOwn,
    /// Delete the user's own comments (gated by `allow_comments`).
    CommentDeleteOwn,
    /// Delete comments written by others (gated by `allow_comments`).
    CommentDeleteOthers,
    /// Create and manage learning plans.
    LearningPlans,
    /// Create and manage private playlists.
    PrivatePlaylists,
    /// Create and manage private collections.
    PrivateCollections,
    /// Approve or reject content waiting for approval (A6).
    ApproveContent,
    /// Publish content and schedules to screens (U5).
    Publish,
    /// Pair, configure and retire devices.
    ManageDevices,
}

/// Which of a media item's publish settings must allow a permission (P5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PublishGate {
    /// The media's `allow_download` setting.
    Download,
    /// The media's `allow_share` setting.
    Share,
    /// The media's `allow_comments` setting.
    Comments,
    /// The media's `allow_rating` setting (M2).
    Rating,
}

impl Permission {
    /// Every permission, in catalogue order.
    pub const ALL: [Permission; 24] = [
        Permission::Download,
        Permission::Rate,
        Permission::Feedback,
        Permission::Favorite,
        Permission::Share,
        Permission::UpdateCustomAttributes,
        Permission::ProcessMedia,
        Permission::AnnotationViewOwn,
        Permission::AnnotationViewAll,
        Permission::AnnotationEditOwn,
        Permission::AnnotationEditOthers,
        Permission::AnnotationDeleteOwn,
        Permission::AnnotationDeleteOthers,
        Permission::CommentView,
        Permission::CommentAdd,
        Permission::CommentEditOwn,
        Permission::CommentDeleteOwn,
        Permission::CommentDeleteOthers,
        Permission::LearningPlans,
        Permission::PrivatePlaylists,
        Permission::PrivateCollections,
        Permission::ApproveContent,
        Permission::Publish,
        Permission::ManageDevices,
    ];

    /// The catalogue name, as used in documents and the API.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Permission::Download => "download",
            Permission::Rate => "rate",
            Permission::Feedback => "feedback",
            Permission::Favorite => "favorite",
            Permission::Share => "share",
            Permission::UpdateCustomAttributes => "update_custom_attributes",
            Permission::ProcessMedia => "process_media",
            Permission::AnnotationViewOwn => "annotation.view_own",
            Permission::AnnotationViewAll => "annotation.view_all",
            Permission::AnnotationEditOwn => "annotation.edit_own",
            Permission::AnnotationEditOthers => "annotation.edit_others",
            Permission::AnnotationDeleteOwn => "annotation.delete_own",
            Permission::AnnotationDeleteOthers => "annotation.delete_others",
            Permission::CommentView => "comment.view",
            Permission::CommentAdd => "comment.add",
            Permission::CommentEditOwn => "comment.edit_own",
            Permission::CommentDeleteOwn => "comment.delete_own",
            Permission::CommentDeleteOthers => "comment.delete_others",
            Permission::LearningPlans => "learning_plans",
            Permission::PrivatePlaylists => "private_playlists",
            Permission::PrivateCollections => "private_collections",
            Permission::ApproveContent => "approve_content",
            Permission::Publish => "publish",
            Permission::ManageDevices => "manage_devices",
        }
    }

    /// Whether this permission acts on a media item (P2: Moderator and above
    /// hold all of these). Learning plans, private playlists and collections,
    /// approval, publishing and device management are not media permissions.
    #[must_use]
    pub const fn is_media_permission(self) -> bool {
        matches!(
            self,
            Permission::Download
                | Permission::Rate
                | Permission::Feedback
                | Permission::Favorite
                | Permission::Share
                | Permission::UpdateCustomAttributes
                | Permission::ProcessMedia
                | Permission::AnnotationViewOwn
                | Permission::AnnotationViewAll
                | Permission::AnnotationEditOwn
                | Permission::AnnotationEditOthers
                | Permission::AnnotationDeleteOwn
                | Permission::AnnotationDeleteOthers
                | Permission::CommentView
                | Permission::CommentAdd
                | Permission::CommentEditOwn
                | Permission::CommentDeleteOwn
                | Permission::CommentDeleteOthers
        )
    }

    /// The publish setting that must also allow this permission (P5, M2):
    /// share, download, every `comment.*` and rate; `None` for every other
    /// permission.
    #[must_use]
    pub const fn publish_gate(self) -> Option<PublishGate> {
        match self {
            Permission::Download => Some(PublishGate::Download),
            Permission::Share => Some(PublishGate::Share),
            Permission::CommentView
            | Permission::CommentAdd
            | Permission::CommentEditOwn
            | Permission::CommentDeleteOwn
            | Permission::CommentDeleteOthers => Some(PublishGate::Comments),
            Permission::Rate => Some(PublishGate::Rating),
            _ => None,
        }
    }

    /// Whether this permission is about the user's own *uploaded media* (P9),
    /// so it applies only to roles that can upload and only to media the user
    /// owns.
    ///
    /// Only `annotation.view_own` ("annotate the media I uploaded") is one.
    /// `annotation.{edit,delete}_own` and `comment.{edit,delete}_own` are about
    /// the user's own annotations and comments, on any media they can view, so
    /// they are not restricted by who uploaded the media.
    #[must_use]
    pub const fn is_own_media_permission(self) -> bool {
        matches!(self, Permission::AnnotationViewOwn)
    }

    const fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Permission {
    type Err = PermissionError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Permission::ALL
            .into_iter()
            .find(|permission| permission.as_str() == name)
            .ok_or_else(|| PermissionError::UnknownPermission {
                name: name.chars().take(64).collect(),
            })
    }
}

impl Serialize for Permission {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Permission {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<str>::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// A set of permissions, stored as one bit per catalogue entry; serialized as
/// a list of catalogue names in catalogue order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PermissionSet(u32);

impl PermissionSet {
    /// The set with no permission.
    #[must_use]
    pub const fn empty() -> Self {
        Self(0)
    }

    /// The set with every permission of the catalogue.
    #[must_use]
    pub fn all() -> Self {
        Permission::ALL.into_iter().collect()
    }

    /// The set holding exactly `permissions`.
    #[must_use]
    pub fn of(permissions: &[Permission]) -> Self {
        permissions.iter().copied().collect()
    }

    /// Whether `permission` is in the set.
    #[must_use]
    pub const fn contains(self, permission: Permission) -> bool {
        self.0 & permission.bit() != 0
    }

    /// Adds `permission`; returns whether it was new.
    pub fn insert(&mut self, permission: Permission) -> bool {
        let new = !self.contains(permission);
        self.0 |= permission.bit();
        new
    }

    /// Removes `permission`; returns whether it was present.
    pub fn remove(&mut self, permission: Permission) -> bool {
        let present = self.contains(permission);
        self.0 &= !permission.bit();
        present
    }

    /// Every permission in either set.
    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Whether every permission of `other` is also in this set.
    #[must_use]
    pub const fn is_superset(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether the set is empty.
    #[must_use]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// How many permissions the set holds.
    #[must_use]
    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The permissions in the set, in catalogue order.
    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL
            .into_iter()
            .filter(move |permission| self.contains(*permission))
    }
}

impl fmt::Debug for PermissionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(Permission::as_str))
            .finish()
    }
}

impl FromIterator<Permission> for PermissionSet {
    fn from_iter<I: IntoIterator<Item = Permission>>(permissions: I) -> Self {
        let mut set = Self::empty();
        set.extend(permissions);
        set
    }
}

impl Extend<Permission> for PermissionSet {
    fn extend<I: IntoIterator<Item = Permission>>(&mut self, permissions: I) {
        for permission in permissions {
            self.insert(permission);
        }
    }
}

impl Serialize for PermissionSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.len()))?;
        for permission in self.iter() {
            seq.serialize_element(permission.as_str())?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for PermissionSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NamesVisitor;

        impl<'de> Visitor<'de> for NamesVisitor {
            type Value = PermissionSet;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of permission names")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut set = PermissionSet::empty();
                while let Some(permission) = seq.next_element::<Permission>()? {
                    set.insert(permission);
                }
                Ok(set)
            }
        }

        deserializer.deserialize_seq(NamesVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_order_matches_bits_and_fits_the_set() {
        assert!(Permission::ALL.len() <= 32);
        for (index, permission) in Permission::ALL.into_iter().enumerate() {
            assert_eq!(permission as usize, index);
        }
        let set = PermissionSet::all();
        assert_eq!(set.iter().collect::<Vec<_>>(), Permission::ALL);
    }

    #[test]
    fn insert_remove_union() {
        let mut set = PermissionSet::empty();
        assert!(set.insert(Permission::Rate));
        assert!(!set.insert(Permission::Rate));
        assert!(set.contains(Permission::Rate));
        let other = PermissionSet::of(&[Permission::Publish]);
        let both = set.union(other);
        assert!(both.is_superset(set) && both.is_superset(other));
        assert_eq!(both.len(), 2);
        assert!(set.remove(Permission::Rate));
        assert!(!set.remove(Permission::Rate));
        assert!(set.is_empty());
    }
}
