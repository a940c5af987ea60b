//! Access groups (L1–L2, L4–L7, L9): one license, content items and members.
//!
//! Owns: the access-group records and their stored indexes — groups, members
//! (users and devices), item lists, invites, pending self-signups and shop
//! orders — their bounds and input checks, who may change them and every
//! rule of a change (the service modules below), and the questions other
//! modules ask ("is this member entitled to group G at t?", "which groups
//! hold item X?"). Must not: compute a license window itself — every window
//! comes from [`signet_common::license`] — nor know HTTP (`api::access_groups`
//! maps [`AccessGroupError`] to answers).
//!
//! | module | what |
//! |---|---|
//! | [`service`] | groups, members, items: who may, the rules, after-commit publication and broker access |
//! | [`invites`], [`signup`], [`shop`] | joining without an operator (L6, L9) |
//! | [`public`] | what the public pages show before they act: an invite, a signup form, whether it may be framed (M5, C11) |
//! | [`import`] | CSV import rows (L7) |
//! | [`bulk`] | device members added and removed in bulk, one change |
//! | [`first_use`] | a member's first play starts the duration from first use (L2) |
//! | [`delivery`] | which licensed content a device is refused, and why (L2, U4) |
//! | [`joining`] | member accounts and the join they share |
//! | [`repo`] | each record written with its indexes, in one place, inside a transaction |
//! | [`checks`] | input checks and the group-full rule |
//! | [`types`] | requests, results and views (OpenAPI schemas) |
//!
//! # Storage
//! | tree | key | value |
//! |---|---|---|
//! | [`GROUPS`] | group id | [`AccessGroup`] |
//! | [`MEMBERS`] | `{group}/{kind}:{member id}` | [`Member`] |
//! | [`MEMBER_GROUPS`] | `{kind}:{member id}/{group}` | group id (reverse index) |
//! | [`ITEMS`] | `{group}/{item}` | [`GroupItem`] |
//! | [`crate::content::refs`] (`access_group_item_index`) | `{item}/{group}` | group id (reverse index, content's) |
//! | [`INVITES`] | `{group}/{invite id}` | [`Invite`] |
//! | [`INVITE_TOKENS`] | SHA-256 of the invite token | `{group}/{invite id}` |
//! | [`SIGNUPS`] | `{group}/{lowercase e-mail}` | [`PendingSignup`] |
//! | [`SIGNUP_TOKENS`] | SHA-256 of the confirmation token | `{group}/{e-mail}` |
//! | [`SHOP_ORDERS`] | `{group}/{order id}` | [`ShopOrder`] |
//! | [`first_use::REPUBLISH`] | group id | when a first use last shortened a window there |
//!
//! Tokens and the shop key are stored only as their SHA-256
//! ([`crate::identity::token_key`]), so a copy of the store cannot accept an
//! invite, confirm a signup or act as the shop.
//!
//! Removing a member keeps its record with `removed_at` set: access ends at
//! once (L4: [`signet_common::license::Limit::Removed`]) and the record
//! remains for usage reports (L8). Adding the member again starts a new
//! membership.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use signet_common::digest::Sha256;
use signet_common::ids::{AccessGroupId, DeviceId, ItemId, MAX_ID_LEN, NodeId, UserId};
use signet_common::license::{
    AccessWindow, Denied, LicenseError, LicenseTerms, Membership, check_access, check_activation,
};
use signet_common::permissions::NodeTree;

use crate::content::refs::{self, Referrer};
use crate::store::{Store, StoreError, Tx};

pub mod bulk;
pub mod checks;
pub mod delivery;
pub mod error;
pub mod first_use;
pub mod import;
pub mod invites;
pub mod joining;
pub mod public;
pub mod repo;
mod schemas;
pub mod service;
pub mod shop;
pub mod signup;
pub mod types;
mod welcome;

pub use error::AccessGroupError;

/// Tree of access groups by id.
pub const GROUPS: &str = "access_groups";
/// Tree of members, keyed `{group}/{kind}:{member id}`.
pub const MEMBERS: &str = "access_group_members";
/// Reverse index of members, keyed `{kind}:{member id}/{group}`.
pub const MEMBER_GROUPS: &str = "access_group_member_index";
/// Tree of a group's content items, keyed `{group}/{item}`.
pub const ITEMS: &str = "access_group_items";
/// Tree of invites, keyed `{group}/{invite id}`.
pub const INVITES: &str = "access_group_invites";
/// Invite keys by the SHA-256 of their token.
pub const INVITE_TOKENS: &str = "access_group_invite_tokens";
/// Pending self-signups, keyed `{group}/{lowercase e-mail}`.
pub const SIGNUPS: &str = "access_group_signups";
/// Pending signup keys by the SHA-256 of their confirmation token.
pub const SIGNUP_TOKENS: &str = "access_group_signup_tokens";
/// When the last signup confirmation mail went to an address, keyed by
/// [`email_key`] (S12: at most one per [`SIGNUP_MAIL_INTERVAL_SECS`]).
pub const SIGNUP_MAILS: &str = "access_group_signup_mails";
/// The shortest time between two signup mails to one address, in seconds.
pub const SIGNUP_MAIL_INTERVAL_SECS: i64 = 3600;
/// Shop orders already handled, keyed `{group}/{order id}` (L9 idempotence).
pub const SHOP_ORDERS: &str = "access_group_shop_orders";

/// The longest group name, in bytes.
pub const MAX_GROUP_NAME_LEN: usize = 128;
/// The most categories a group may define.
pub const MAX_CATEGORIES: usize = 64;
/// The longest category name, in bytes.
pub const MAX_CATEGORY_LEN: usize = 64;
/// The most categories one item may carry.
pub const MAX_ITEM_CATEGORIES: usize = 8;
/// The most content items a group may hold.
pub const MAX_ITEMS: usize = 10_000;
/// The most current (not removed) members a group may hold.
pub const MAX_MEMBERS: usize = 10_000;
/// The most e-mail domains a group may allow for self-signup.
pub const MAX_SIGNUP_DOMAINS: usize = 32;
/// The longest e-mail domain, in bytes (RFC 1035).
pub const MAX_DOMAIN_LEN: usize = 253;
/// The most open (unused, unexpired) invites per group.
pub const MAX_OPEN_INVITES: usize = 1000;
/// The most pending (unconfirmed, unexpired) self-signups per group.
pub const MAX_PENDING_SIGNUPS: usize = 1000;
/// The default lifetime of an invite, in seconds (7 days).
pub const DEFAULT_INVITE_TTL_SECS: u64 = 7 * 24 * 3600;
/// The shortest lifetime an invite may be given, in seconds.
pub const MIN_INVITE_TTL_SECS: u64 = 60;
/// The longest lifetime an invite may be given, in seconds (30 days).
pub const MAX_INVITE_TTL_SECS: u64 = 30 * 24 * 3600;
/// How long a self-signup waits for its confirmation, in seconds (24 hours).
pub const SIGNUP_TTL_SECS: u64 = 24 * 3600;
/// The longest shop order id, in bytes.
pub const MAX_ORDER_ID_LEN: usize = 128;
/// The largest CSV import file in bytes, and the most data rows it may hold.
pub use signet_common::members_csv::{MAX_IMPORT_BYTES, MAX_IMPORT_ROWS};
/// The password hash of an account made without a password (invite, CSV
/// import, shop): it is not a PHC string, so no password ever matches it.
/// Accepting an invite may set a real password on such an account.
pub const NO_PASSWORD: &str = "!no-password";

/// An access group (L1): one license, content items and members. It belongs
/// to a node and is usable at that node and below (T2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessGroup {
    /// Stable id.
    pub id: AccessGroupId,
    /// The node it belongs to; it is usable there and below (T2).
    pub node: NodeId,
    /// Display name.
    pub name: String,
    /// The one license every member's access follows (L1, L2).
    pub license: LicenseTerms,
    /// The categories its items may carry (shown by players).
    pub categories: Vec<String>,
    /// Whether unknown users may join by self-signup (L6).
    pub self_signup: bool,
    /// Lowercase e-mail domains allowed to self-sign-up; exact match (L6).
    pub signup_domains: Vec<String>,
    /// The SHA-256 of the shop key (L9), when one was made.
    pub shop_key_hash: Option<String>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// Who made it.
    pub created_by: UserId,
}

/// Who a member is: a user or a device (L1).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum MemberRef {
    /// A user account.
    User {
        /// The user.
        #[schema(value_type = String)]
        user_id: UserId,
    },
    /// A paired screen (added by the sync issue; counts toward
    /// `max_active_devices`, L5).
    Device {
        /// The device.
        #[schema(value_type = String)]
        device_id: DeviceId,
    },
}

impl MemberRef {
    /// A user member.
    #[must_use]
    pub fn user(id: &UserId) -> Self {
        Self::User {
            user_id: id.clone(),
        }
    }

    /// `user:{id}` or `device:{id}`: the member part of the record keys.
    #[must_use]
    pub fn key(&self) -> String {
        match self {
            Self::User { user_id } => format!("user:{user_id}"),
            Self::Device { device_id } => format!("device:{device_id}"),
        }
    }
}

/// How a member came into the group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MemberSource {
    /// Added by an operator.
    Operator {
        /// Who added it.
        #[schema(value_type = String)]
        by: UserId,
    },
    /// Accepted an invite (L6).
    Invite {
        /// The invite.
        invite_id: String,
    },
    /// Confirmed a self-signup (L6).
    SelfSignup,
    /// A CSV import row (L7).
    Import {
        /// Who imported it.
        #[schema(value_type = String)]
        by: UserId,
    },
    /// A shop order (L9).
    Shop {
        /// The shop's order id.
        order_id: String,
    },
}

/// One member of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Which group.
    pub group: AccessGroupId,
    /// Who.
    pub member: MemberRef,
    /// Its dates: join, first use, own end date, removal (L2).
    pub membership: Membership,
    /// A display name (from an import, signup or order), if any.
    pub display_name: Option<String>,
    /// How it joined.
    pub source: MemberSource,
    /// Devices only: whether the device holds one of the license's active
    /// device slots (L5). Always `false` for users.
    pub active: bool,
}

impl Member {
    /// Whether the member has not been removed.
    #[must_use]
    pub fn is_current(&self) -> bool {
        self.membership.removed_at.is_none()
    }
}

/// A content item in a group, with its categories. The item itself lives
/// in the content store (content issue); here only its id is held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupItem {
    /// The item.
    #[schema(value_type = String)]
    pub id: ItemId,
    /// Categories, each one of the group's.
    #[serde(default)]
    pub categories: Vec<String>,
}

/// A one-click invite (L6): expiring, single use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invite {
    /// Stable id.
    pub id: String,
    /// Which group.
    pub group: AccessGroupId,
    /// Who is invited (as given).
    pub email: String,
    /// The member end date the invitee gets, if any.
    pub end_date: Option<DateTime<Utc>>,
    /// The SHA-256 of the link token.
    pub token_hash: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// Who made it.
    pub created_by: UserId,
    /// The first instant it no longer works.
    pub expires_at: DateTime<Utc>,
    /// When it was accepted; an accepted invite never works again.
    pub used_at: Option<DateTime<Utc>>,
    /// The user it was accepted as.
    pub used_by: Option<UserId>,
}

/// A self-signup waiting for its e-mail confirmation (L6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingSignup {
    /// Which group.
    pub group: AccessGroupId,
    /// The address, as given.
    pub email: String,
    /// The display name given.
    pub display_name: Option<String>,
    /// The argon2id hash of the chosen password (never the password).
    pub password_hash: String,
    /// The SHA-256 of the confirmation token.
    pub token_hash: String,
    /// When it was asked for.
    pub created_at: DateTime<Utc>,
    /// The first instant the confirmation no longer works.
    pub expires_at: DateTime<Utc>,
}

/// A shop order already turned into a membership (L9).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShopOrder {
    /// The shop's order id.
    pub order_id: String,
    /// Which group.
    pub group: AccessGroupId,
    /// The buyer's address, as given.
    pub email: String,
    /// The member it made.
    pub user_id: UserId,
    /// When it was handled.
    pub at: DateTime<Utc>,
}

/// The key of a member record.
#[must_use]
pub fn member_key(group: &AccessGroupId, member: &MemberRef) -> String {
    format!("{group}/{}", member.key())
}

/// The key of a member's reverse-index record.
#[must_use]
pub fn member_index_key(group: &AccessGroupId, member: &MemberRef) -> String {
    format!("{}/{group}", member.key())
}

/// The prefix of every record of `group` in a tree keyed `{group}/…`.
#[must_use]
pub fn group_prefix(group: &AccessGroupId) -> String {
    format!("{group}/")
}

/// The access groups that live at `node`, read in `tx` (a node holding
/// any cannot be deleted: T2).
///
/// # Errors
/// When the store fails.
pub fn groups_at_in(tx: &mut Tx, node: &NodeId) -> Result<Vec<AccessGroupId>, StoreError> {
    let groups: Vec<AccessGroup> = tx.scan(GROUPS, "")?;
    Ok(groups
        .into_iter()
        .filter(|g| &g.node == node)
        .map(|g| g.id)
        .collect())
}

/// Whether a group belonging to `group_node` is usable at `node`: at that
/// node and every node below it (T2).
#[must_use]
pub fn usable_at(tree: &NodeTree, group_node: &NodeId, node: &NodeId) -> bool {
    tree.is_within(node, group_node)
}

/// The access window of a member under its group's license (L2), from
/// [`signet_common::license::access_window`].
#[must_use]
pub fn window(group: &AccessGroup, member: &Member) -> AccessWindow {
    signet_common::license::access_window(&group.license, &member.membership)
}

/// One group's member record for `member`, if any (removed members included).
///
/// # Errors
/// When the store fails.
pub fn member_of(
    store: &Store,
    group: &AccessGroupId,
    member: &MemberRef,
) -> Result<Option<Member>, StoreError> {
    store.get(MEMBERS, &member_key(group, member))
}

/// Every group `member` has a record in, with that record (removed ones
/// included: check the window).
///
/// # Errors
/// When the store fails.
pub fn memberships_of(
    store: &Store,
    member: &MemberRef,
) -> Result<Vec<(AccessGroup, Member)>, StoreError> {
    let groups: Vec<AccessGroupId> = store.scan(MEMBER_GROUPS, &format!("{}/", member.key()))?;
    let mut found = Vec::with_capacity(groups.len());
    for id in groups {
        if let (Some(group), Some(record)) = (
            store.get::<AccessGroup>(GROUPS, id.as_str())?,
            member_of(store, &id, member)?,
        ) {
            found.push((group, record));
        }
    }
    Ok(found)
}

/// Whether `member` may use group `group`'s content at `at` from `country`
/// (L2, L4): `Ok(Ok(window))` when entitled, `Ok(Err(reason))` when not
/// (not a member is [`Denied::Ended`] by removal), `Err` when the store fails.
/// For a device, an inactive device is not entitled (L5).
///
/// # Errors
/// When the store fails.
pub fn entitlement(
    store: &Store,
    group: &AccessGroupId,
    member: &MemberRef,
    country: Option<&str>,
    at: DateTime<Utc>,
) -> Result<Result<AccessWindow, Denied>, StoreError> {
    let not_member = Err(Denied::Ended(signet_common::license::Limit::Removed));
    let Some(record) = member_of(store, group, member)? else {
        return Ok(not_member);
    };
    let Some(group) = store.get::<AccessGroup>(GROUPS, group.as_str())? else {
        return Ok(not_member);
    };
    if matches!(record.member, MemberRef::Device { .. }) && !record.active {
        return Ok(not_member);
    }
    Ok(check_access(
        &group.license,
        &record.membership,
        country,
        at,
    ))
}

/// Whether `device` may be activated in `group` now (L5): counts the
/// group's current, active device members and asks
/// [`signet_common::license::check_activation`]. Re-activating an active
/// device is always fine. For the pairing/sync issue, which sets
/// [`Member::active`] in the same batch as its other changes.
///
/// # Errors
/// `Err` when the store fails; `Ok(Err(_))` with
/// [`LicenseError::TooManyDevices`] when the limit is reached.
pub fn check_device_activation(
    store: &Store,
    group: &AccessGroup,
    device: &DeviceId,
) -> Result<Result<(), LicenseError>, StoreError> {
    let members: Vec<Member> = store.scan(MEMBERS, &group_prefix(&group.id))?;
    Ok(device_slot(group, &members, device))
}

/// The device-slot rule (L5) over `members`, the group's member records:
/// `device` may hold an active slot when it already does, or when fewer
/// current devices than the license's `max_active_devices` are active.
///
/// # Errors
/// [`LicenseError::TooManyDevices`] when every slot is taken.
pub fn device_slot(
    group: &AccessGroup,
    members: &[Member],
    device: &DeviceId,
) -> Result<(), LicenseError> {
    let is_active_device =
        |m: &&Member| m.active && m.is_current() && matches!(m.member, MemberRef::Device { .. });
    let active = members.iter().filter(is_active_device).count();
    let already = members
        .iter()
        .filter(is_active_device)
        .any(|m| matches!(&m.member, MemberRef::Device { device_id } if device_id == device));
    check_activation(&group.license, active, already)
}

/// The groups that hold `item` (P6: an item in access groups is viewable
/// only with an entitlement in one of them).
///
/// # Errors
/// When the store fails.
pub fn groups_holding(store: &Store, item: &ItemId) -> Result<Vec<AccessGroupId>, StoreError> {
    refs::referrers(store, Referrer::AccessGroup, item)
}

/// Whether the hub may serve the blob `sha256` to `device` at `now` (S7:
/// the hub serves content only to devices entitled to it). True iff some
/// item with those bytes is
/// - in one or more access groups, and the device holds a valid
///   entitlement at `now` in one of them (L2, L4, L5:
///   [`entitled_to_item`] with the device as member), judged in the
///   country of the node it is attached to, inherited down the tree
///   ([`crate::tenancy::locale_at`], as its assignment states it); or
/// - in no access group, and belongs to the node the device is attached to
///   or one of its ancestors (T2).
///
/// Licensed content (in an access group) never reaches a device through the
/// node half. The sync issue calls this from the device content route once
/// devices have credentials; it may narrow the node half to items actually
/// placed (scheduled) on the device's node chain.
///
/// # Errors
/// When the store fails.
pub fn device_may_fetch(
    store: &Store,
    device: &DeviceId,
    sha256: &Sha256,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let items = crate::content::items_with_hash(store, sha256)?;
    if items.is_empty() {
        return Ok(false);
    }
    let member = MemberRef::Device {
        device_id: device.clone(),
    };
    let node = crate::tenancy::node_of_device(store, device)?;
    let (tree, nodes) = crate::tenancy::load_tree(store)?;
    let country = node
        .as_ref()
        .and_then(|n| crate::tenancy::locale_at(&tree, &nodes, n).country);
    for item in &items {
        let allowed = if groups_holding(store, &item.id)?.is_empty() {
            node.as_ref().is_some_and(|n| tree.is_within(n, &item.node))
        } else {
            entitled_to_item(store, &member, &item.id, country.as_deref(), now)?
        };
        if allowed {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether `member` holds a valid entitlement at `at` in one of the groups
/// that hold `item` (L4, P6). An item in no group needs none: `true`.
///
/// # Errors
/// When the store fails.
pub fn entitled_to_item(
    store: &Store,
    member: &MemberRef,
    item: &ItemId,
    country: Option<&str>,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let groups = groups_holding(store, item)?;
    if groups.is_empty() {
        return Ok(true);
    }
    for group in &groups {
        if entitlement(store, group, member, country, at)?.is_ok() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The access groups in which `user` holds a valid entitlement at `at`
/// (L4, P6): what [`crate::content::visibility`] needs to decide who views
/// an item held by access groups. Users carry no country, as for
/// [`entitled_to_item`].
///
/// # Errors
/// When the store fails.
pub fn entitled_groups(
    store: &Store,
    user: &UserId,
    at: DateTime<Utc>,
) -> Result<BTreeSet<AccessGroupId>, StoreError> {
    let member = MemberRef::user(user);
    let mut entitled = BTreeSet::new();
    for (group, _) in memberships_of(store, &member)? {
        if entitlement(store, &group.id, &member, None, at)?.is_ok() {
            entitled.insert(group.id);
        }
    }
    Ok(entitled)
}

/// [`entitled_groups`] as the hub's entitlements port, which content's
/// view rule asks (P6, M1).
pub struct Entitled;

impl crate::app::entitlements::Entitlements for Entitled {
    fn entitled(
        &self,
        store: &Store,
        user: &UserId,
        at: DateTime<Utc>,
    ) -> Result<BTreeSet<AccessGroupId>, StoreError> {
        entitled_groups(store, user, at)
    }
}

/// A group's items, in id order.
///
/// # Errors
/// When the store fails.
pub fn items_of(store: &Store, group: &AccessGroupId) -> Result<Vec<GroupItem>, StoreError> {
    store.scan(ITEMS, &group_prefix(group))
}

/// A lowercase e-mail domain, if `domain` is a plausible one: 1 to 253
/// bytes of dot-separated labels of letters, digits and hyphens.
#[must_use]
pub fn normalize_domain(domain: &str) -> Option<String> {
    let domain = domain.trim().to_ascii_lowercase();
    let ok = !domain.is_empty()
        && domain.len() <= MAX_DOMAIN_LEN
        && domain.contains('.')
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    ok.then_some(domain)
}

/// Whether `email`'s domain is exactly (case-insensitively) one of
/// `allowed` (L6): `a@sub.example.com` and `a@evil-example.com` do not match
/// `example.com`.
#[must_use]
pub fn email_domain_allowed(email: &str, allowed: &[String]) -> bool {
    email.rsplit_once('@').is_some_and(|(_, domain)| {
        allowed
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(domain))
    })
}

/// The lowercase form of an e-mail address used for matching and keys.
#[must_use]
pub fn email_key(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Whether `id` is an acceptable item or device id: 1 to
/// [`MAX_ID_LEN`] bytes of ASCII letters, digits, `-`, `_`, `.` and `:`.
#[must_use]
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn l6_domains_match_exactly_and_ignore_case() {
        let allowed = vec!["example.com".to_owned()];
        assert!(email_domain_allowed("a@example.com", &allowed));
        assert!(email_domain_allowed("a@EXAMPLE.Com", &allowed));
        assert!(!email_domain_allowed("a@evil-example.com", &allowed));
        assert!(!email_domain_allowed("a@sub.example.com", &allowed));
        assert!(!email_domain_allowed("a@example.com.evil", &allowed));
        assert!(!email_domain_allowed("example.com", &allowed));
    }

    #[test]
    fn domains_are_normalized_and_bounded() {
        assert_eq!(
            normalize_domain(" Example.COM "),
            Some("example.com".into())
        );
        assert_eq!(normalize_domain("localhost"), None);
        assert_eq!(normalize_domain("a..b"), None);
        assert_eq!(normalize_domain("-a.b"), None);
        assert_eq!(normalize_domain("a_b.c"), None);
        assert_eq!(normalize_domain(&"a.".repeat(200)), None);
    }

    #[test]
    fn member_keys_name_the_kind() {
        let user = MemberRef::user(&UserId::from("u-1"));
        let device = MemberRef::Device {
            device_id: DeviceId::from("u-1"),
        };
        let group = AccessGroupId::from("ag-1");
        assert_eq!(member_key(&group, &user), "ag-1/user:u-1");
        assert_eq!(member_index_key(&group, &device), "device:u-1/ag-1");
    }
}
