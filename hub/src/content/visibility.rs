//! Who views an item and what they may do with it (P2, P5, P6, M1, M2):
//! the one rule every read path of media, templates and playlists asks.
//!
//! An item (media, template, playlist) is open to everyone whose domain
//! reaches its node (T2), or restricted to chosen permission groups
//! (`allowed_groups`, transitively through nested groups). Moderator and
//! above view every item their domain reaches (M1, P2); below them an item
//! must be open to the user, and an item held by access groups needs a valid
//! entitlement (licence window) in one of them (P6, L4). A permission acts
//! on an item only when the item is viewable, the user holds it (P4) and the
//! item's publish [`Settings`] allow it (P5, M2).
//!
//! The decision itself is signet-common's
//! ([`signet_common::permissions::view_access`] and
//! [`signet_common::permissions::permission_access`]); this module resolves
//! the caller once per request ([`Viewer::load`]), reads which access groups
//! hold an item inside the caller's transaction, and answers
//! [`Viewer::may_view`] and [`Viewer::may_act`] without reading anything.
//!
//! Owns: the stored and shown shape of an item's audience and publish
//! settings ([`Settings`], [`SettingsChange`]), checking the groups an item
//! is restricted to ([`check_groups_in`]), and the view rule's inputs.
//! Must not: write, or decide anything else about items. Every path that
//! shows an item calls it; what it refuses is not found (404), as for other
//! tenants (T4).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use signet_common::ids::{AccessGroupId, ItemId, NodeId, PermissionGroupId, UserId};
use signet_common::permissions::{
    Access, MediaAccess, NodeTree, Permission, Principal, PublishSettings, Role, permission_access,
    view_access,
};

use super::refs::{self, Referrer};
use super::repo::Items;
use super::{CONTENT, ContentItem};
use crate::app::Hub;
use crate::identity::Actor;
use crate::permission_groups::{load_groups_in, principal_of};
use crate::store::{StoreError, Tx};

/// The most permission groups one item may be restricted to.
pub const MAX_ALLOWED_GROUPS: usize = 64;

/// An item's publish settings (M2, P5): what its owner lets viewers do with
/// it. Absent fields (and items stored before settings existed) take the
/// defaults: downloads and share links are off, because they carry the
/// bytes (or a playback link) out of the hub — for licensed content that
/// must be the owner's choice (the VIDIZMO seed: download and share apply
/// "given that the permission ... has been enabled on the media's publish
/// settings"); comments and ratings stay inside the hub and are on.
#[allow(clippy::struct_excessive_bools)] // four independent switches (M2), not a state machine
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Whether users holding `download` may download the original (default false).
    pub allow_download: bool,
    /// Whether users holding `share` may share a playback link (default false).
    pub allow_share: bool,
    /// Whether comments are enabled for the `comment.*` permissions (default true).
    pub allow_comments: bool,
    /// Whether users holding `rate` may like or dislike it (default true).
    pub allow_rating: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            allow_download: false,
            allow_share: false,
            allow_comments: true,
            allow_rating: true,
        }
    }
}

impl From<Settings> for PublishSettings {
    fn from(s: Settings) -> Self {
        Self {
            allow_download: s.allow_download,
            allow_share: s.allow_share,
            allow_comments: s.allow_comments,
            allow_rating: s.allow_rating,
        }
    }
}

/// A change of publish settings: absent fields stay as they are.
#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsChange {
    /// New `allow_download`.
    pub allow_download: Option<bool>,
    /// New `allow_share`.
    pub allow_share: Option<bool>,
    /// New `allow_comments`.
    pub allow_comments: Option<bool>,
    /// New `allow_rating`.
    pub allow_rating: Option<bool>,
}

impl Settings {
    /// These settings with `change` applied.
    #[must_use]
    pub fn with(self, change: &SettingsChange) -> Self {
        Self {
            allow_download: change.allow_download.unwrap_or(self.allow_download),
            allow_share: change.allow_share.unwrap_or(self.allow_share),
            allow_comments: change.allow_comments.unwrap_or(self.allow_comments),
            allow_rating: change.allow_rating.unwrap_or(self.allow_rating),
        }
    }
}

/// What the view rule needs of an item: media, template or playlist.
pub trait Viewable {
    /// The node it is stored at (usable there and below, T2).
    fn node(&self) -> &NodeId;
    /// Who made it (P9).
    fn owner(&self) -> &UserId;
    /// The permission groups it is restricted to; empty: open to all.
    fn allowed_groups(&self) -> &BTreeSet<PermissionGroupId>;
    /// Its publish settings.
    fn settings(&self) -> Settings;
    /// The id access groups hold it by, if it can be held (content items).
    fn held_as(&self) -> Option<&ItemId>;
}

impl Viewable for ContentItem {
    fn node(&self) -> &NodeId {
        &self.node
    }
    fn owner(&self) -> &UserId {
        &self.created_by
    }
    fn allowed_groups(&self) -> &BTreeSet<PermissionGroupId> {
        &self.allowed_groups
    }
    fn settings(&self) -> Settings {
        self.settings
    }
    fn held_as(&self) -> Option<&ItemId> {
        Some(&self.id)
    }
}

/// Who may see an item about to be made: its node, maker and groups (a
/// new item is held by no access group yet).
#[derive(Debug, Clone, Copy)]
pub struct Audience<'a> {
    /// Where it will be stored.
    pub node: &'a NodeId,
    /// Who makes it.
    pub owner: &'a UserId,
    /// The groups it is restricted to.
    pub allowed_groups: &'a BTreeSet<PermissionGroupId>,
}

impl Viewable for Audience<'_> {
    fn node(&self) -> &NodeId {
        self.node
    }
    fn owner(&self) -> &UserId {
        self.owner
    }
    fn allowed_groups(&self) -> &BTreeSet<PermissionGroupId> {
        self.allowed_groups
    }
    fn settings(&self) -> Settings {
        Settings::default()
    }
    fn held_as(&self) -> Option<&ItemId> {
        None
    }
}

/// Which access groups hold which items, read in the caller's transaction
/// (empty for Moderator and above, who need no entitlement).
pub type Holders = BTreeMap<ItemId, BTreeSet<AccessGroupId>>;

/// The caller resolved for one request: role, domain, the permission groups
/// that count for them (transitively, T4) and the access groups in which
/// they hold a valid entitlement now. A change of any of these applies from
/// the next request (T3).
#[derive(Debug, Clone)]
pub struct Viewer {
    principal: Principal,
}

impl Viewer {
    /// Resolves `actor` at the hub's now.
    ///
    /// # Errors
    /// When the store fails.
    pub fn load(hub: &Hub, actor: &Actor) -> Result<Self, StoreError> {
        let entitled = if actor.user.role >= Role::Moderator {
            BTreeSet::new()
        } else {
            hub.entitlements
                .entitled(&hub.store, &actor.user.id, hub.now())?
        };
        Ok(Self::new(principal_of(&hub.store, &actor.user, entitled)?))
    }

    /// A viewer from a resolved principal.
    #[must_use]
    pub fn new(principal: Principal) -> Self {
        Self { principal }
    }

    /// Whether access groups matter to this viewer (below Moderator, M1).
    fn needs_entitlement(&self) -> bool {
        self.principal.role() < Role::Moderator
    }

    fn media<I: Viewable>(item: &I, holders: &Holders) -> MediaAccess {
        MediaAccess {
            node: item.node().clone(),
            owner: item.owner().clone(),
            open_to_all: item.allowed_groups().is_empty(),
            allowed_groups: item.allowed_groups().clone(),
            access_groups: item
                .held_as()
                .and_then(|id| holders.get(id))
                .cloned()
                .unwrap_or_default(),
            publish: item.settings().into(),
        }
    }

    /// Whether the viewer may view `item` (P6, M1); `holders` says which
    /// access groups hold it. Pure.
    #[must_use]
    pub fn may_view<I: Viewable>(&self, tree: &NodeTree, item: &I, holders: &Holders) -> bool {
        view_access(&self.principal, &Self::media(item, holders), tree).is_granted()
    }

    /// Whether the viewer may use `action` on `item` (P5, M2): viewable,
    /// held (P4, P9) and allowed by its publish settings; if not, why.
    /// Pure. The media-action routes (download, share, rate, comments) ask
    /// this and nothing else.
    #[must_use]
    pub fn may_act<I: Viewable>(
        &self,
        tree: &NodeTree,
        item: &I,
        holders: &Holders,
        action: Permission,
    ) -> Access {
        permission_access(&self.principal, action, &Self::media(item, holders), tree)
    }

    /// Refuses an item the viewer writes but would not see (M1), so nobody
    /// locks themselves out of what they just saved.
    ///
    /// # Errors
    /// [`GroupsRefused::WouldHide`].
    pub fn keeps_sight<I: Viewable>(
        &self,
        tree: &NodeTree,
        item: &I,
        holders: &Holders,
    ) -> Result<(), GroupsRefused> {
        if self.may_view(tree, item, holders) {
            Ok(())
        } else {
            Err(GroupsRefused::WouldHide)
        }
    }

    /// Which access groups hold `item`, read in `tx` (nothing for
    /// Moderator and above).
    ///
    /// # Errors
    /// When the store fails.
    pub fn holders_of_in(&self, tx: &mut Tx, item: &ItemId) -> Result<Holders, StoreError> {
        let mut holders = Holders::new();
        if self.needs_entitlement() {
            let groups: Vec<AccessGroupId> = refs::referrers_in(tx, Referrer::AccessGroup, item)?;
            if !groups.is_empty() {
                holders.insert(item.clone(), groups.into_iter().collect());
            }
        }
        Ok(holders)
    }

    /// Which access groups hold every item, read in `tx` (nothing for
    /// Moderator and above).
    ///
    /// # Errors
    /// When the store fails.
    pub fn holders_in(&self, tx: &mut Tx) -> Result<Holders, StoreError> {
        let mut holders = Holders::new();
        if self.needs_entitlement() {
            for (key, group) in refs::all_in::<AccessGroupId>(tx, Referrer::AccessGroup)? {
                if let Some((item, _)) = key.split_once('/') {
                    holders.entry(ItemId::from(item)).or_default().insert(group);
                }
            }
        }
        Ok(holders)
    }

    /// The item `id`, if it is one of `items` and the viewer may view it,
    /// with the access groups holding it; read in `tx`.
    ///
    /// # Errors
    /// When the store fails.
    pub fn item_in(
        &self,
        tx: &mut Tx,
        tree: &NodeTree,
        id: &str,
        items: Items,
    ) -> Result<Option<(ContentItem, Holders)>, StoreError> {
        let Some(item) = tx
            .get::<ContentItem>(CONTENT, id)?
            .filter(|item| items.holds(item))
        else {
            return Ok(None);
        };
        let holders = self.holders_of_in(tx, &item.id)?;
        Ok(self
            .may_view(tree, &item, &holders)
            .then_some((item, holders)))
    }

    /// Every one of `items` the viewer may view, read in `tx`.
    ///
    /// # Errors
    /// When the store fails.
    pub fn items_in(
        &self,
        tx: &mut Tx,
        tree: &NodeTree,
        items: Items,
    ) -> Result<Vec<ContentItem>, StoreError> {
        let holders = self.holders_in(tx)?;
        let all: Vec<ContentItem> = tx.scan(CONTENT, "")?;
        Ok(all
            .into_iter()
            .filter(|item| items.holds(item) && self.may_view(tree, item, &holders))
            .collect())
    }
}

/// Why the groups an item is to be restricted to were refused.
#[derive(Debug, thiserror::Error)]
pub enum GroupsRefused {
    /// Absent, or of another tenant (404, T4).
    #[error("permission group {0} not found")]
    NotFound(String),
    /// In the caller's tenant but on another branch than the item's node:
    /// its members could never reach the item (400 `group_not_usable`).
    #[error(
        "permission group {group} belongs to node {group_node}, which is neither above nor below the item's node {node}"
    )]
    NotUsable {
        /// The group.
        group: String,
        /// Its node.
        group_node: String,
        /// The item's node.
        node: String,
    },
    /// More than [`MAX_ALLOWED_GROUPS`] (400 `too_many_groups`).
    #[error("at most {MAX_ALLOWED_GROUPS} permission groups per item")]
    TooMany,
    /// The caller would not see the item it writes (400 `would_hide_item`).
    #[error(
        "the caller would not see the item: keep one of its own permission groups among allowed_groups (M1)"
    )]
    WouldHide,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The permission groups an item at `node` is to be restricted to, checked
/// in `tx`: each exists, lies where the actor's domain reaches (T4: a group
/// of another tenant is not found) and on the item node's path (above or
/// below it), so its members can see the node.
///
/// # Errors
/// [`GroupsRefused`].
pub fn check_groups_in(
    tx: &mut Tx,
    tree: &NodeTree,
    actor: &Actor,
    node: &NodeId,
    groups: &[PermissionGroupId],
) -> Result<BTreeSet<PermissionGroupId>, GroupsRefused> {
    let wanted: BTreeSet<PermissionGroupId> = groups.iter().cloned().collect();
    if wanted.len() > MAX_ALLOWED_GROUPS {
        return Err(GroupsRefused::TooMany);
    }
    if wanted.is_empty() {
        return Ok(wanted);
    }
    let loaded = load_groups_in(tx)?;
    for group in &wanted {
        let placed = loaded
            .placement(group)
            .filter(|p| actor.sees_at_or_above(tree, &p.node))
            .ok_or_else(|| GroupsRefused::NotFound(group.as_str().chars().take(64).collect()))?;
        if !tree.is_within(node, &placed.node) && !tree.is_within(&placed.node, node) {
            return Err(GroupsRefused::NotUsable {
                group: group.to_string(),
                group_node: placed.node.to_string(),
                node: node.to_string(),
            });
        }
    }
    Ok(wanted)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use signet_common::permissions::{
        Denial, Domain, GroupDetails, PermissionGroups, PermissionSet,
    };

    use super::*;

    struct Item {
        id: ItemId,
        node: NodeId,
        owner: UserId,
        allowed: BTreeSet<PermissionGroupId>,
        settings: Settings,
    }

    impl Viewable for Item {
        fn node(&self) -> &NodeId {
            &self.node
        }
        fn owner(&self) -> &UserId {
            &self.owner
        }
        fn allowed_groups(&self) -> &BTreeSet<PermissionGroupId> {
            &self.allowed
        }
        fn settings(&self) -> Settings {
            self.settings
        }
        fn held_as(&self) -> Option<&ItemId> {
            Some(&self.id)
        }
    }

    /// root → acme → {north, south}; root → globex
    fn tree() -> NodeTree {
        let mut tree = NodeTree::new(NodeId::from("root"));
        for (node, parent) in [
            ("acme", "root"),
            ("north", "acme"),
            ("south", "acme"),
            ("globex", "root"),
        ] {
            tree.add_node(NodeId::from(node), &NodeId::from(parent))
                .unwrap();
        }
        tree
    }

    /// `outer` holds `inner`, which holds user `u`.
    fn graph() -> PermissionGroups {
        let mut graph = PermissionGroups::new();
        for id in ["outer", "inner", "other"] {
            graph
                .create_group(
                    PermissionGroupId::from(id),
                    GroupDetails::named(id),
                    PermissionSet::empty(),
                )
                .unwrap();
        }
        let (outer, inner) = (
            PermissionGroupId::from("outer"),
            PermissionGroupId::from("inner"),
        );
        graph.add_member_group(&outer, &inner).unwrap();
        graph.add_member_user(&inner, UserId::from("u")).unwrap();
        graph
    }

    fn viewer(user: &str, role: Role, domain: &str, entitled: &[&str]) -> Viewer {
        Viewer::new(Principal::resolve(
            UserId::from(user),
            role,
            Domain::new([NodeId::from(domain)]),
            &graph(),
            entitled.iter().map(|g| AccessGroupId::from(*g)).collect(),
        ))
    }

    fn item(node: &str, allowed: &[&str]) -> Item {
        Item {
            id: ItemId::from("c-1"),
            node: NodeId::from(node),
            owner: UserId::from("owner"),
            allowed: allowed
                .iter()
                .map(|g| PermissionGroupId::from(*g))
                .collect(),
            settings: Settings::default(),
        }
    }

    fn held(groups: &[&str]) -> Holders {
        Holders::from([(
            ItemId::from("c-1"),
            groups.iter().map(|g| AccessGroupId::from(*g)).collect(),
        )])
    }

    #[test]
    fn m1_open_item_is_seen_where_its_node_is_usable() {
        let (tree, none) = (tree(), Holders::new());
        let open = item("acme", &[]);
        assert!(viewer("v", Role::Viewer, "north", &[]).may_view(&tree, &open, &none));
        assert!(viewer("v", Role::Viewer, "root", &[]).may_view(&tree, &open, &none));
        assert!(!viewer("g", Role::Admin, "globex", &[]).may_view(&tree, &open, &none));
    }

    #[test]
    fn m1_p6_restricted_item_needs_a_transitive_allowed_group_below_moderator() {
        let (tree, none) = (tree(), Holders::new());
        let restricted = item("acme", &["outer"]);
        assert!(viewer("u", Role::Viewer, "acme", &[]).may_view(&tree, &restricted, &none));
        assert!(!viewer("x", Role::Viewer, "acme", &[]).may_view(&tree, &restricted, &none));
        assert!(!viewer("x", Role::Contributor, "acme", &[]).may_view(&tree, &restricted, &none));
        assert!(viewer("m", Role::Moderator, "acme", &[]).may_view(&tree, &restricted, &none));
        assert!(!viewer("m", Role::Admin, "globex", &[]).may_view(&tree, &restricted, &none));
        let elsewhere = item("acme", &["other"]);
        assert!(!viewer("u", Role::Viewer, "acme", &[]).may_view(&tree, &elsewhere, &none));
    }

    #[test]
    fn m1_p6_item_in_access_groups_needs_an_entitlement_below_moderator() {
        let tree = tree();
        let licensed = item("acme", &[]);
        let holders = held(&["ag-1", "ag-2"]);
        assert!(!viewer("v", Role::Viewer, "acme", &[]).may_view(&tree, &licensed, &holders));
        assert!(!viewer("v", Role::Viewer, "acme", &["ag-9"]).may_view(&tree, &licensed, &holders));
        assert!(viewer("v", Role::Viewer, "acme", &["ag-2"]).may_view(&tree, &licensed, &holders));
        assert!(viewer("m", Role::Moderator, "acme", &[]).may_view(&tree, &licensed, &holders));
        // Held by other items' groups only: open.
        assert!(viewer("v", Role::Viewer, "acme", &[]).may_view(
            &tree,
            &licensed,
            &Holders::from([(
                ItemId::from("c-2"),
                BTreeSet::from([AccessGroupId::from("ag-1")])
            )])
        ));
    }

    #[test]
    fn m2_p5_an_action_needs_view_permission_and_its_setting() {
        let (tree, none) = (tree(), Holders::new());
        let mut media = item("acme", &[]);
        let contributor = viewer("c", Role::Contributor, "acme", &[]);
        let viewer_role = viewer("v", Role::Viewer, "acme", &[]);
        let download = Permission::Download;
        assert_eq!(
            contributor.may_act(&tree, &media, &none, download),
            Access::Denied(Denial::BlockedByPublishSettings),
            "downloads are off by default"
        );
        media.settings.allow_download = true;
        assert!(
            contributor
                .may_act(&tree, &media, &none, download)
                .is_granted()
        );
        assert_eq!(
            viewer_role.may_act(&tree, &media, &none, download),
            Access::Denied(Denial::PermissionNotHeld)
        );
        assert!(
            viewer_role
                .may_act(&tree, &media, &none, Permission::Rate)
                .is_granted()
        );
        media.settings.allow_rating = false;
        assert_eq!(
            viewer("a", Role::Admin, "root", &[]).may_act(&tree, &media, &none, Permission::Rate),
            Access::Denied(Denial::BlockedByPublishSettings)
        );
        media.allowed = BTreeSet::from([PermissionGroupId::from("other")]);
        assert_eq!(
            contributor.may_act(&tree, &media, &none, download),
            Access::Denied(Denial::NotInAllowedGroup),
            "never on an item the user cannot view"
        );
    }

    #[test]
    fn m2_settings_default_and_change() {
        let stored: Settings = serde_json::from_str("{}").unwrap();
        assert_eq!(stored, Settings::default());
        assert!(!stored.allow_download && !stored.allow_share);
        assert!(stored.allow_comments && stored.allow_rating);
        let changed = stored.with(&SettingsChange {
            allow_download: Some(true),
            allow_rating: Some(false),
            ..SettingsChange::default()
        });
        assert!(changed.allow_download && !changed.allow_rating && changed.allow_comments);
        assert!(serde_json::from_str::<Settings>(r#"{"allow_downloads": true}"#).is_err());
    }
}
