//! What comments, ratings and favorites are about (M3, M4, M1, M2, P7): a
//! content item (media or template, also as `/api/v1/templates/{id}/…`),
//! or an item of a domain above content
//! — a playlist — that content reads through a look-up port the upper
//! domain fills ([`Lookup`], as [`super::refs`] and the group-delete
//! `Dependents` do), so content never imports it.
//!
//! Rules: whatever the kind, the item must be one the caller views
//! ([`Viewer::may_view`], else not found, as for other tenants, T4), the
//! action's permission held and the item's publish settings allowing it
//! ([`Viewer::may_act`]); [`Subjects::acting_in`] is that one check.
//!
//! Owns: the [`Subject`] shape and the check. Must not: write, or know the
//! domains above (their records come in through [`Lookup`]).

use std::collections::BTreeSet;

use signet_common::ids::{ItemId, MAX_ID_LEN, NodeId, PermissionGroupId, UserId};
use signet_common::permissions::{Access, Denial, NodeTree, Permission};

use super::repo::Items;
use super::service::ContentError;
use super::visibility::{Holders, Settings, Viewable, Viewer};
use super::{CONTENT, ContentItem};
use crate::store::{StoreError, Tx};

/// An item comments, ratings and favorites are about, as the view rule
/// needs it.
#[derive(Debug, Clone)]
pub struct Subject {
    /// Its id (content items `c-…`, playlists `pl-…`: they never collide,
    /// so the comment, rating and favorite trees key both alike).
    pub id: ItemId,
    /// Its name.
    pub name: String,
    /// Its node.
    pub node: NodeId,
    /// Who made it.
    pub owner: UserId,
    /// The permission groups it is restricted to; empty: open to all.
    pub allowed_groups: BTreeSet<PermissionGroupId>,
    /// Its publish settings (M2).
    pub settings: Settings,
    /// The content item itself, when it is one (access groups hold it).
    pub content: Option<ContentItem>,
}

impl From<ContentItem> for Subject {
    fn from(item: ContentItem) -> Self {
        Self {
            id: item.id.clone(),
            name: item.name.clone(),
            node: item.node.clone(),
            owner: item.created_by.clone(),
            allowed_groups: item.allowed_groups.clone(),
            settings: item.settings,
            content: Some(item),
        }
    }
}

impl Viewable for Subject {
    fn node(&self) -> &NodeId {
        &self.node
    }
    fn owner(&self) -> &UserId {
        &self.owner
    }
    fn allowed_groups(&self) -> &BTreeSet<PermissionGroupId> {
        &self.allowed_groups
    }
    fn settings(&self) -> Settings {
        self.settings
    }
    fn held_as(&self) -> Option<&ItemId> {
        self.content.as_ref().map(|item| &item.id)
    }
}

/// The port a domain above content fills: its item `id` as a [`Subject`],
/// if it exists, read in the caller's transaction (who may view it is
/// decided here, by the view rule).
pub type Lookup = fn(&mut Tx, &str) -> Result<Option<Subject>, StoreError>;

/// Which kind of item a route acts on.
#[derive(Debug, Clone, Copy)]
pub enum Subjects {
    /// Content items, media and templates (`/api/v1/content/{id}/…`).
    Content,
    /// Templates only (`/api/v1/templates/{id}/…`); other items are absent.
    Templates,
    /// Items of a domain above content (`/api/v1/playlists/{id}/…`).
    Above {
        /// What an absent one is called in a 404.
        what: &'static str,
        /// Reads one.
        lookup: Lookup,
    },
}

impl Subjects {
    /// What an absent item is called in a 404.
    #[must_use]
    pub fn what(self) -> &'static str {
        match self {
            Subjects::Content => Items::Any.what(),
            Subjects::Templates => Items::Templates.what(),
            Subjects::Above { what, .. } => what,
        }
    }

    /// The item `id` as it is stored, whoever asks (no view rule): for the
    /// checks that run over every item holding a value (M3).
    ///
    /// # Errors
    /// When the store fails.
    pub fn record_in(self, tx: &mut Tx, id: &str) -> Result<Option<Subject>, StoreError> {
        match self {
            Subjects::Content | Subjects::Templates => {
                let items = match self {
                    Subjects::Templates => Items::Templates,
                    _ => Items::Any,
                };
                let item: Option<ContentItem> = tx.get(CONTENT, id)?;
                Ok(item.filter(|i| items.holds(i)).map(Subject::from))
            }
            Subjects::Above { lookup, .. } => lookup(tx, id),
        }
    }

    /// The item `id` if the viewer views it (M1), with the access groups
    /// holding it; read in `tx`.
    ///
    /// # Errors
    /// When the store fails.
    pub fn viewed_in(
        self,
        tx: &mut Tx,
        tree: &NodeTree,
        viewer: &Viewer,
        id: &str,
    ) -> Result<Option<(Subject, Holders)>, StoreError> {
        if id.is_empty() || id.len() > MAX_ID_LEN {
            return Ok(None);
        }
        let items = match self {
            Subjects::Content => Items::Any,
            Subjects::Templates => Items::Templates,
            Subjects::Above { lookup, .. } => {
                return Ok(lookup(tx, id)?
                    .filter(|item| viewer.may_view(tree, item, &Holders::new()))
                    .map(|item| (item, Holders::new())));
            }
        };
        Ok(viewer
            .item_in(tx, tree, id, items)?
            .map(|(item, holders)| (item.into(), holders)))
    }

    /// The item `id` if the viewer may use `action` on it now, read in `tx`
    /// (P5): not found when not viewable, `permission_not_held` or
    /// `disabled_by_publish_settings` (403) otherwise.
    ///
    /// # Errors
    /// [`ContentError::NotFound`] and [`ContentError::NotAllowed`] as
    /// above; store failures.
    pub fn acting_in(
        self,
        tx: &mut Tx,
        tree: &NodeTree,
        viewer: &Viewer,
        (id, action): (&str, Permission),
    ) -> Result<(Subject, Holders), ContentError> {
        let (item, holders) = self
            .viewed_in(tx, tree, viewer, id)?
            .ok_or(ContentError::NotFound(self.what()))?;
        match viewer.may_act(tree, &item, &holders, action) {
            Access::Granted => Ok((item, holders)),
            Access::Denied(Denial::BlockedByPublishSettings) => Err(ContentError::NotAllowed {
                code: "disabled_by_publish_settings",
                message: format!("the item's publish settings do not allow {action} (M2)"),
            }),
            Access::Denied(
                Denial::OutsideDomain | Denial::NotInAllowedGroup | Denial::NoEntitlement,
            ) => Err(ContentError::NotFound(self.what())),
            Access::Denied(denial) => Err(ContentError::NotAllowed {
                code: "permission_not_held",
                message: format!("{action} is not allowed here ({denial:?})"),
            }),
        }
    }
}
