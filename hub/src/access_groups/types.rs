//! What the access-group service takes and answers: requests, results and
//! the views of groups, members and invites (OpenAPI schemas, L1–L9).
//!
//! Owns: the shape of the data the access-group routes exchange, and the
//! views built from records (never a token, key or password hash). Must
//! not: decide anything or read the store.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use signet_common::ids::{AccessGroupId, NodeId, UserId};
use signet_common::license::{AccessWindow, LicenseTerms};

use super::{AccessGroup, GroupItem, Invite, Member, MemberRef, MemberSource, window};
use crate::identity::User;

/// An access group as the API shows it (never the shop key).
#[derive(Serialize, utoipa::ToSchema)]
pub struct GroupView {
    /// Stable id.
    #[schema(value_type = String)]
    pub id: AccessGroupId,
    /// The node it belongs to (usable there and below, T2).
    #[schema(value_type = String)]
    pub node: NodeId,
    /// Display name.
    pub name: String,
    /// The license terms (L2).
    #[schema(value_type = super::schemas::LicenseTermsSchema)]
    pub license: LicenseTerms,
    /// Categories its items may carry.
    pub categories: Vec<String>,
    /// Whether self-signup is open (L6).
    pub self_signup: bool,
    /// E-mail domains allowed to self-sign-up (L6).
    pub signup_domains: Vec<String>,
    /// Whether a shop key exists (L9).
    pub has_shop_key: bool,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// Who made it.
    #[schema(value_type = String)]
    pub created_by: UserId,
}

impl From<&AccessGroup> for GroupView {
    fn from(group: &AccessGroup) -> Self {
        Self {
            id: group.id.clone(),
            node: group.node.clone(),
            name: group.name.clone(),
            license: group.license.clone(),
            categories: group.categories.clone(),
            self_signup: group.self_signup,
            signup_domains: group.signup_domains.clone(),
            has_shop_key: group.shop_key_hash.is_some(),
            created_at: group.created_at,
            created_by: group.created_by.clone(),
        }
    }
}

/// A member with its computed access window.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MemberView {
    /// Who: `{"type": "user", "user_id": …}` or `{"type": "device", "device_id": …}`.
    pub member: MemberRef,
    /// The user's login name (users only).
    pub name: Option<String>,
    /// The user's e-mail (users only).
    pub email: Option<String>,
    /// Display name from an import, signup or order.
    pub display_name: Option<String>,
    /// When it joined.
    pub joined_at: DateTime<Utc>,
    /// When it first used the content.
    pub first_used_at: Option<DateTime<Utc>>,
    /// Its own end date.
    pub end_date: Option<DateTime<Utc>>,
    /// When it was removed (access ended then, L4).
    pub removed_at: Option<DateTime<Utc>>,
    /// How it joined.
    pub source: MemberSource,
    /// Devices: holds an active-device slot (L5).
    pub active: bool,
    /// The access window under the group's license: the earliest limit wins (L2).
    #[schema(value_type = super::schemas::AccessWindowSchema)]
    pub window: AccessWindow,
    /// Whether the hub's current time lies inside the window.
    pub in_window_now: bool,
}

impl MemberView {
    /// The view of `member` of `group` at `now`, with the user's name and
    /// e-mail when `users` holds them.
    #[must_use]
    pub fn new(
        group: &AccessGroup,
        member: &Member,
        users: &HashMap<UserId, User>,
        now: DateTime<Utc>,
    ) -> Self {
        let user = match &member.member {
            MemberRef::User { user_id } => users.get(user_id),
            MemberRef::Device { .. } => None,
        };
        let window = window(group, member);
        Self {
            member: member.member.clone(),
            name: user.map(|u| u.name.clone()),
            email: user.map(|u| u.email.clone()),
            display_name: member.display_name.clone(),
            joined_at: member.membership.joined_at,
            first_used_at: member.membership.first_used_at,
            end_date: member.membership.end_date,
            removed_at: member.membership.removed_at,
            source: member.source.clone(),
            active: member.active,
            window,
            in_window_now: window.contains(now),
        }
    }
}

// ------------------------------------------------------------- requests

/// A new access group.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGroup {
    /// The node it belongs to (inside the caller's domain).
    #[schema(value_type = String)]
    pub node: NodeId,
    /// Display name (1 to 128 bytes).
    pub name: String,
    /// The one license (L1, L2).
    #[schema(value_type = super::schemas::LicenseTermsSchema)]
    pub license: LicenseTerms,
    /// Categories (at most 64, each 1 to 64 bytes).
    #[serde(default)]
    pub categories: Vec<String>,
    /// Open self-signup (needs at least one allowed domain).
    #[serde(default)]
    pub self_signup: bool,
    /// E-mail domains allowed to self-sign-up (at most 32).
    #[serde(default)]
    pub signup_domains: Vec<String>,
}

/// Changes to a group; absent fields stay as they are.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateGroup {
    /// New name.
    pub name: Option<String>,
    /// New license terms (replace the old ones whole).
    #[schema(value_type = Option<super::schemas::LicenseTermsSchema>)]
    pub license: Option<LicenseTerms>,
    /// New categories; each one an item carries must stay (409 otherwise).
    pub categories: Option<Vec<String>>,
    /// Open or close self-signup.
    pub self_signup: Option<bool>,
    /// New allowed self-signup domains.
    pub signup_domains: Option<Vec<String>>,
}

/// A new member.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    /// Who: `{"type": "user", "user_id": …}` or `{"type": "device",
    /// "device_id": …}` (a paired device attached inside the caller's domain
    /// and below the group's node; it is activated, L5).
    pub member: MemberRef,
    /// When it joins; default now.
    pub joined_at: Option<DateTime<Utc>>,
    /// Its own end date (after the join).
    pub end_date: Option<DateTime<Utc>>,
    /// A display name (at most 254 bytes).
    pub display_name: Option<String>,
}

/// Changes to a member; absent fields stay as they are.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMember {
    /// New end date; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub end_date: Option<Option<DateTime<Utc>>>,
    /// New display name; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub display_name: Option<Option<String>>,
    /// Devices only: take (true) or give up (false) an active-device slot
    /// of the license (L5); an inactive device loses access.
    pub active: Option<bool>,
}

/// A field that is present (maybe `null`) becomes `Some`; absent stays `None`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// The whole item list of a group (replaces the old one).
#[derive(Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemList {
    /// The items (at most 10 000, ids unique).
    pub items: Vec<GroupItem>,
}

/// A new invite (L6).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInvite {
    /// Who to invite.
    pub email: String,
    /// Lifetime in seconds (60 to 30 days; default 7 days).
    pub expires_in_secs: Option<u64>,
    /// The member end date the invitee gets.
    pub end_date: Option<DateTime<Utc>>,
}

/// An invite as the API shows it (never its token).
#[derive(Serialize, utoipa::ToSchema)]
pub struct InviteView {
    /// Stable id.
    pub id: String,
    /// Who is invited.
    pub email: String,
    /// The end date the invitee gets.
    pub end_date: Option<DateTime<Utc>>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// When it was accepted.
    pub used_at: Option<DateTime<Utc>>,
    /// `open`, `used` or `expired`.
    pub status: &'static str,
}

impl InviteView {
    /// The view of `invite` at `now` (`open`, `used` or `expired`).
    #[must_use]
    pub fn new(invite: &Invite, now: DateTime<Utc>) -> Self {
        Self {
            id: invite.id.clone(),
            email: invite.email.clone(),
            end_date: invite.end_date,
            created_at: invite.created_at,
            expires_at: invite.expires_at,
            used_at: invite.used_at,
            status: if invite.used_at.is_some() {
                "used"
            } else if now >= invite.expires_at {
                "expired"
            } else {
                "open"
            },
        }
    }
}

/// Accepting an invite (no login: the token is the credential).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvite {
    /// The token from the invite mail.
    pub token: String,
    /// A password (12 to 1024 bytes) for an account that has none yet;
    /// ignored when the account already has one.
    pub password: Option<String>,
}

/// What joining did.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Joined {
    /// The group.
    #[schema(value_type = String)]
    pub group: AccessGroupId,
    /// The member's user id.
    #[schema(value_type = String)]
    pub user_id: UserId,
    /// The login name (the lowercase e-mail for accounts made here).
    pub login_name: String,
    /// Whether the account was made by this request.
    pub user_created: bool,
    /// Whether this request set the account's password.
    pub password_set: bool,
    /// Whether the user already was a member (nothing about it changed).
    pub already_member: bool,
    /// The member's access window (L2).
    #[schema(value_type = super::schemas::AccessWindowSchema)]
    pub window: AccessWindow,
}

/// A self-signup request (L6).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupRequest {
    /// The address; its domain must be one the group allows.
    pub email: String,
    /// Display name.
    pub name: Option<String>,
    /// Password for a new account (12 to 1024 bytes); an existing account
    /// keeps its own.
    pub password: String,
}

/// A self-signup waiting for confirmation.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SignupPending {
    /// Always `confirmation_sent`.
    pub status: &'static str,
    /// When the confirmation stops working.
    pub expires_at: DateTime<Utc>,
}

/// Confirming a self-signup.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmSignup {
    /// The token from the confirmation mail.
    pub token: String,
}

/// A new shop key, shown once.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ShopKey {
    /// Send it as `Authorization: Bearer <shop_key>` to the shop hook.
    pub shop_key: String,
}

/// A paid membership from the shop (L9).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShopOrderRequest {
    /// The shop's order id (1 to 128 bytes): a repeat is answered, not re-applied.
    pub order_id: String,
    /// The buyer's address.
    pub email: String,
    /// The buyer's display name.
    pub name: Option<String>,
    /// The member end date, if the product sets one.
    pub end_date: Option<DateTime<Utc>>,
}

/// What the shop hook did.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ShopResult {
    /// The order id.
    pub order_id: String,
    /// The member's user id.
    #[schema(value_type = String)]
    pub user_id: UserId,
    /// Whether this order was already handled (nothing changed now).
    pub replayed: bool,
    /// The member's access window (L2).
    #[schema(value_type = super::schemas::AccessWindowSchema)]
    pub window: AccessWindow,
}

/// One CSV row's outcome (L7).
#[derive(Serialize, utoipa::ToSchema)]
pub struct ImportRow {
    /// The line number in the file (1 is the first line).
    pub row: u64,
    /// The address in the row.
    pub email: String,
    /// `created`, `updated`, `unchanged` or `refused`.
    pub status: &'static str,
    /// Why it was refused.
    pub reason: Option<String>,
    /// The member's user id.
    #[schema(value_type = Option<String>)]
    pub user_id: Option<UserId>,
}

/// The per-row report of an import (L7).
#[derive(Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    /// Whether any change was stored.
    pub applied: bool,
    /// Rows that made a new membership.
    pub created: usize,
    /// Rows that changed an existing membership.
    pub updated: usize,
    /// Rows that matched what is stored.
    pub unchanged: usize,
    /// Rows refused.
    pub refused: usize,
    /// Every row, in file order.
    pub rows: Vec<ImportRow>,
}
