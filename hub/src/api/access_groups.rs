//! `/api/v1/access-groups` (L1–L2, L4–L7, L9): license, members, items,
//! invites, self-signup, CSV import and the shop hook.
//!
//! Who may do what:
//! - a group belongs to a node; callers see it, and everything in it, only
//!   when that node is inside their domain — anything else is 404 (T2–T4);
//! - any role reads groups and items; Manager and above list members and
//!   invites and make every change;
//! - three routes take no login: accepting an invite and confirming a
//!   self-signup (the token is the credential, mailed to the address), and
//!   asking for a self-signup (only for groups that enable it, only from an
//!   allowed e-mail domain); the shop hook authenticates with the group's
//!   shop key instead of a user token.
//!
//! Every change is one [`WriteBatch`] holding the change, its audit record
//! and any mail it sends, applied durably before the answer (S8, S9).
//!
//! Accounts made here (invite, self-signup, import, shop) are Viewers whose
//! login name is their lowercase e-mail address and whose domain is the
//! group's node. Self-signup sets the password chosen at signup; accepting
//! an invite sets the password it carries when the account has none yet;
//! import and shop accounts have none until then (they cannot log in).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use signet_common::ids::{AccessGroupId, DeviceId, NodeId, UserId};
use signet_common::license::{AccessWindow, LicenseError, LicenseTerms, Membership};
use signet_common::members_csv::{self, ImportError};
use signet_common::permissions::Role;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::users::{check_email, check_password, hash, sees_user};
use super::{ApiError, ApiJson, AppState, Caller, ClientAddress};
use crate::access_groups::{
    AccessGroup, DEFAULT_INVITE_TTL_SECS, GROUPS, GroupItem, INVITE_TOKENS, INVITES, ITEM_GROUPS,
    ITEMS, Invite, MAX_CATEGORIES, MAX_CATEGORY_LEN, MAX_GROUP_NAME_LEN, MAX_INVITE_TTL_SECS,
    MAX_ITEM_CATEGORIES, MAX_ITEMS, MAX_MEMBERS, MAX_OPEN_INVITES, MAX_ORDER_ID_LEN,
    MAX_PENDING_SIGNUPS, MAX_SIGNUP_DOMAINS, MEMBER_GROUPS, MEMBERS, MIN_INVITE_TTL_SECS, Member,
    MemberRef, MemberSource, NO_PASSWORD, PendingSignup, SHOP_ORDERS, SIGNUP_MAIL_INTERVAL_SECS,
    SIGNUP_MAILS, SIGNUP_TOKENS, SIGNUP_TTL_SECS, SIGNUPS, ShopOrder, email_domain_allowed,
    email_key, group_prefix, is_valid_id, items_of, member_index_key, member_key, normalize_domain,
    window,
};
use crate::audit::AuditEntry;
use crate::content::{CONTENT, ContentItem};
use crate::groups::GroupRef;
use crate::identity::{
    MAX_NAME_LEN, USER_NAMES, USERS, User, name_key, new_id, new_token, token_key,
};
use crate::mail::{self, Mail};
use crate::publish::{self, Actor, PublicationRun};
use crate::store::WriteBatch;

/// This concern's routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_groups, create_group))
        .routes(routes!(get_group, update_group, delete_group))
        .routes(routes!(list_members, add_member))
        .routes(routes!(update_member, remove_member))
        .routes(routes!(import_members))
        .routes(routes!(list_items, set_items))
        .routes(routes!(list_invites, create_invite))
        .routes(routes!(revoke_invite))
        .routes(routes!(accept_invite))
        .routes(routes!(request_signup))
        .routes(routes!(confirm_signup))
        .routes(routes!(create_shop_key, delete_shop_key))
        .routes(routes!(shop_member))
}

// ---------------------------------------------------------------- views

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
    #[schema(value_type = Object)]
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
    #[schema(value_type = Object)]
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
    #[schema(value_type = Object)]
    pub window: AccessWindow,
    /// Whether the hub's current time lies inside the window.
    pub in_window_now: bool,
}

fn member_view(
    group: &AccessGroup,
    member: &Member,
    users: &HashMap<UserId, User>,
    now: DateTime<Utc>,
) -> MemberView {
    let user = match &member.member {
        MemberRef::User { user_id } => users.get(user_id),
        MemberRef::Device { .. } => None,
    };
    let window = window(group, member);
    MemberView {
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
    #[schema(value_type = Object)]
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
    #[schema(value_type = Option<Object>)]
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
    #[schema(value_type = Object)]
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

/// A group's new item list and the publication it caused (L3).
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct ItemsSaved {
    /// The items now held.
    pub items: Vec<GroupItem>,
    /// The run that re-signed the group's manifest and its member devices'
    /// assignments, when it succeeded.
    pub publication: Option<PublicationRun>,
    /// Why that publication failed, when it did: the list is saved and goes
    /// out with the next publication of the group.
    pub publication_error: Option<String>,
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

fn invite_view(invite: &Invite, now: DateTime<Utc>) -> InviteView {
    InviteView {
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
    #[schema(value_type = Object)]
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
    #[schema(value_type = Object)]
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

// -------------------------------------------------------------- checks

fn check_group_name(name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty()
        || name.len() > MAX_GROUP_NAME_LEN
        || name.chars().any(char::is_control)
    {
        return Err(ApiError::bad_request(
            "invalid_name",
            format!("name must be 1 to {MAX_GROUP_NAME_LEN} bytes of text"),
        ));
    }
    Ok(())
}

/// The terms are coherent and the hub may sign them (S6: no offline grace
/// below [`signet_common::license::MIN_OFFLINE_GRACE_SECS`], which a device
/// would honour and go dark between two `hub_time`s).
fn check_license(license: &LicenseTerms) -> Result<(), ApiError> {
    license.check_issuable().map_err(|e| match e {
        LicenseError::OfflineGraceTooShort { secs, min } => ApiError::bad_request(
            "offline_grace_too_short",
            format!(
                "license.offline_grace_secs is {secs}: it must be at least {min} seconds \
                 (three hub_time intervals) when license.allow_offline is true"
            ),
        ),
        e => ApiError::bad_request("invalid_license", e.to_string()),
    })
}

fn check_categories(categories: &[String]) -> Result<Vec<String>, ApiError> {
    if categories.len() > MAX_CATEGORIES {
        return Err(ApiError::bad_request(
            "invalid_categories",
            format!("at most {MAX_CATEGORIES} categories"),
        ));
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(categories.len());
    for category in categories {
        let category = category.trim();
        if category.is_empty()
            || category.len() > MAX_CATEGORY_LEN
            || category.chars().any(char::is_control)
        {
            return Err(ApiError::bad_request(
                "invalid_categories",
                format!("a category must be 1 to {MAX_CATEGORY_LEN} bytes of text"),
            ));
        }
        if !seen.insert(category.to_owned()) {
            return Err(ApiError::bad_request(
                "invalid_categories",
                format!("category {category:?} is listed twice"),
            ));
        }
        out.push(category.to_owned());
    }
    Ok(out)
}

fn check_domains(domains: &[String]) -> Result<Vec<String>, ApiError> {
    if domains.len() > MAX_SIGNUP_DOMAINS {
        return Err(ApiError::bad_request(
            "invalid_signup_domains",
            format!("at most {MAX_SIGNUP_DOMAINS} signup domains"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(domains.len());
    for domain in domains {
        let normalized = normalize_domain(domain).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_signup_domains",
                format!(
                    "{:?} is not a domain name",
                    domain.chars().take(64).collect::<String>()
                ),
            )
        })?;
        if !out.contains(&normalized) {
            out.push(normalized);
        }
    }
    Ok(out)
}

fn check_signup_settings(self_signup: bool, domains: &[String]) -> Result<(), ApiError> {
    if self_signup && domains.is_empty() {
        return Err(ApiError::bad_request(
            "signup_domains_required",
            "self-signup needs at least one allowed e-mail domain (L6)",
        ));
    }
    Ok(())
}

fn check_display_name(name: Option<&str>) -> Result<(), ApiError> {
    if let Some(name) = name
        && (name.len() > MAX_NAME_LEN || name.chars().any(char::is_control))
    {
        return Err(ApiError::bad_request(
            "invalid_name",
            format!("a display name must be at most {MAX_NAME_LEN} bytes of text"),
        ));
    }
    Ok(())
}

fn check_end_date(
    joined_at: DateTime<Utc>,
    end_date: Option<DateTime<Utc>>,
) -> Result<(), ApiError> {
    match end_date {
        Some(end) if end <= joined_at => Err(ApiError::bad_request(
            "invalid_end_date",
            format!("the end date {end} is not after the join date {joined_at}"),
        )),
        _ => Ok(()),
    }
}

fn check_token(token: &str) -> Result<(), ApiError> {
    if token.is_empty() || token.len() > 128 {
        return Err(ApiError::bad_request(
            "invalid_token",
            "a token is 1 to 128 bytes",
        ));
    }
    Ok(())
}

fn seconds(secs: u64) -> TimeDelta {
    i64::try_from(secs)
        .ok()
        .and_then(TimeDelta::try_seconds)
        .unwrap_or(TimeDelta::MAX)
}

// ------------------------------------------------------------- loading

fn load_group(state: &AppState, caller: &Caller, id: &str) -> Result<AccessGroup, ApiError> {
    state
        .store
        .get::<AccessGroup>(GROUPS, id)?
        .filter(|group| caller.sees(&group.node))
        .ok_or_else(|| ApiError::not_found("access group"))
}

fn load_members(state: &AppState, group: &AccessGroupId) -> Result<Vec<Member>, ApiError> {
    Ok(state.store.scan(MEMBERS, &group_prefix(group))?)
}

fn current_member_count(state: &AppState, group: &AccessGroupId) -> Result<usize, ApiError> {
    Ok(load_members(state, group)?
        .iter()
        .filter(|m| m.is_current())
        .count())
}

fn all_users(state: &AppState) -> Result<HashMap<UserId, User>, ApiError> {
    let users: Vec<User> = state.store.scan(USERS, "")?;
    Ok(users.into_iter().map(|u| (u.id.clone(), u)).collect())
}

/// The user whose e-mail is `email` (case-insensitive), if any.
fn user_by_email(state: &AppState, email: &str) -> Result<Option<User>, ApiError> {
    let wanted = email_key(email);
    let users: Vec<User> = state.store.scan(USERS, "")?;
    Ok(users.into_iter().find(|u| email_key(&u.email) == wanted))
}

/// Whether the whole of `user`'s domain lies inside `node`'s subtree.
fn within_node(state: &AppState, user: &User, node: &NodeId) -> Result<bool, ApiError> {
    let (tree, _) = crate::tenancy::load_tree(&state.store)?;
    let scope = signet_common::permissions::Domain::new([node.clone()]);
    Ok(!user.domain.is_empty() && user.domain.iter().all(|n| scope.contains(&tree, n)))
}

/// A new Viewer account for `email` at the group's node; refused (409)
/// when its login name is taken.
fn new_member_user(
    state: &AppState,
    group: &AccessGroup,
    email: &str,
    password_hash: Option<String>,
    now: DateTime<Utc>,
    created_by: Option<UserId>,
) -> Result<User, ApiError> {
    let name = super::users::check_name(&email_key(email))?;
    if state
        .store
        .get::<UserId>(USER_NAMES, &name_key(&name))?
        .is_some()
    {
        return Err(ApiError::conflict(
            "name_taken",
            format!("the login name {name:?} is taken by another account"),
        ));
    }
    super::users::check_unlike_others(state, &name)?;
    Ok(User {
        id: UserId::new(new_id("u-")),
        name,
        email: email.trim().to_owned(),
        role: Role::Viewer,
        domain: vec![group.node.clone()],
        requires_approval: false,
        disabled: false,
        password_hash: password_hash.unwrap_or_else(|| NO_PASSWORD.to_owned()),
        created_at: now,
        created_by,
    })
}

fn put_user(batch: &mut WriteBatch, user: &User) -> Result<(), ApiError> {
    batch.put(USERS, user.id.as_str(), user)?;
    batch.put(USER_NAMES, &name_key(&user.name), &user.id)?;
    Ok(())
}

fn put_member(batch: &mut WriteBatch, member: &Member) -> Result<(), ApiError> {
    batch.put(MEMBERS, &member_key(&member.group, &member.member), member)?;
    batch.put(
        MEMBER_GROUPS,
        &member_index_key(&member.group, &member.member),
        &member.group,
    )?;
    Ok(())
}

/// `who`'s current membership of `group`, or a new one made by `join`
/// (refused with 409 when the group is full) and added to `batch`. Returns
/// the membership and whether it was already current.
fn keep_or_join(
    state: &AppState,
    batch: &mut WriteBatch,
    group: &AccessGroup,
    who: MemberRef,
    join: impl FnOnce(MemberRef) -> Member,
) -> Result<(Member, bool), ApiError> {
    let existing = crate::access_groups::member_of(&state.store, &group.id, &who)?;
    if let Some(member) = existing.filter(Member::is_current) {
        return Ok((member, true));
    }
    if current_member_count(state, &group.id)? >= MAX_MEMBERS {
        return Err(ApiError::conflict(
            "group_full",
            format!("a group holds at most {MAX_MEMBERS} members"),
        ));
    }
    let member = join(who);
    put_member(batch, &member)?;
    Ok((member, false))
}

/// A fresh membership of `member` in `group` from `now`.
fn joined(
    group: &AccessGroup,
    member: MemberRef,
    now: DateTime<Utc>,
    end_date: Option<DateTime<Utc>>,
    display_name: Option<String>,
    source: MemberSource,
) -> Member {
    let mut membership = Membership::joined(now);
    membership.end_date = end_date;
    Member {
        group: group.id.clone(),
        member,
        membership,
        display_name,
        source,
        active: false,
    }
}

/// An audit entry for a request without a user login.
fn anonymous_audit(
    state: &AppState,
    from: &str,
    actor: Option<UserId>,
    actor_name: &str,
    action: &str,
    group: &AccessGroup,
    detail: serde_json::Value,
) -> AuditEntry {
    AuditEntry {
        actor,
        actor_name: Some(actor_name.to_owned()),
        scope: Some(group.node.clone()),
        from: from.to_owned(),
        detail,
        ..AuditEntry::new(state.clock.now(), action, group.id.as_str())
    }
}

/// Refuses (409 `too_many_devices`) when `device` may not take one of
/// `group`'s active-device slots (L5).
fn activate_device(
    state: &AppState,
    group: &AccessGroup,
    device: &DeviceId,
) -> Result<(), ApiError> {
    crate::access_groups::check_device_activation(&state.store, group, device)?
        .map_err(|e| ApiError::conflict("too_many_devices", e.to_string()))
}

/// After a device member changed (added, activated, deactivated, removed,
/// new end date): its broker access follows its groups (S7) and the group
/// is published, so the device's assignment changes at once (L4, L5).
/// Failures are logged: the change is stored, and the group's next
/// publication sends it.
async fn device_member_changed(
    state: &AppState,
    caller: &Caller,
    group: &AccessGroupId,
    member: &MemberRef,
) {
    let MemberRef::Device { device_id } = member else {
        return;
    };
    let _ = crate::devices::refresh_broker_access(state, device_id).await;
    let actor = Actor::user(&caller.user, &caller.from);
    if let Err(e) = publish::publish(state, &GroupRef::AccessGroup(group.clone()), actor).await {
        tracing::warn!(%group, device = %device_id, error = %e, "publishing after a device member change failed");
    }
}

fn member_ref(kind: &str, id: &str) -> Result<MemberRef, ApiError> {
    match kind {
        "user" => Ok(MemberRef::User {
            user_id: UserId::from(id),
        }),
        "device" => Ok(MemberRef::Device {
            device_id: DeviceId::from(id),
        }),
        _ => Err(ApiError::not_found("member")),
    }
}

// -------------------------------------------------------------- groups

/// Access groups whose node is inside the caller's domain.
#[utoipa::path(get, path = "/api/v1/access-groups", tag = "access-groups", security(("bearer" = [])),
    responses((status = 200, description = "Visible groups", body = Vec<GroupView>),
        (status = 401, description = "No valid token", body = super::ErrorBody)))]
pub async fn list_groups(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<GroupView>>, ApiError> {
    let groups: Vec<AccessGroup> = state.store.scan(GROUPS, "")?;
    Ok(Json(
        groups
            .iter()
            .filter(|g| caller.sees(&g.node))
            .map(GroupView::from)
            .collect(),
    ))
}

/// Creates an access group at a node inside the caller's domain (Manager+).
#[utoipa::path(post, path = "/api/v1/access-groups", tag = "access-groups", request_body = CreateGroup,
    security(("bearer" = [])),
    responses((status = 201, description = "Created", body = GroupView),
        (status = 400, description = "Invalid field or license", body = super::ErrorBody),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Below Manager", body = super::ErrorBody),
        (status = 404, description = "Node absent or not visible", body = super::ErrorBody)))]
pub async fn create_group(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<CreateGroup>,
) -> Result<(StatusCode, Json<GroupView>), ApiError> {
    caller.require(Role::Manager)?;
    check_group_name(&request.name)?;
    check_license(&request.license)?;
    let categories = check_categories(&request.categories)?;
    let signup_domains = check_domains(&request.signup_domains)?;
    check_signup_settings(request.self_signup, &signup_domains)?;
    if !caller.sees(&request.node) {
        return Err(ApiError::not_found("node"));
    }
    let _write = state.store.write_lock().await;
    let group = AccessGroup {
        id: AccessGroupId::new(new_id("ag-")),
        node: request.node,
        name: request.name.trim().to_owned(),
        license: request.license,
        categories,
        self_signup: request.self_signup,
        signup_domains,
        shop_key_hash: None,
        created_at: state.clock.now(),
        created_by: caller.user.id.clone(),
    };
    let mut batch = WriteBatch::new();
    batch.put(GROUPS, group.id.as_str(), &group)?;
    caller
        .audit(
            &state,
            "access_group.create",
            group.id.as_str(),
            Some(group.node.clone()),
            serde_json::json!({"name": group.name, "license": group.license,
                "categories": group.categories, "self_signup": group.self_signup,
                "signup_domains": group.signup_domains}),
        )
        .record(&mut batch)?;
    state.store.apply(batch).await?;
    Ok((StatusCode::CREATED, Json(GroupView::from(&group))))
}

/// One access group.
#[utoipa::path(get, path = "/api/v1/access-groups/{id}", tag = "access-groups",
    params(("id" = String, Path, description = "Group id")), security(("bearer" = [])),
    responses((status = 200, description = "The group", body = GroupView),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody)))]
pub async fn get_group(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<GroupView>, ApiError> {
    Ok(Json(GroupView::from(&load_group(&state, &caller, &id)?)))
}

/// Changes a group's name, license, categories or self-signup (Manager+).
#[utoipa::path(patch, path = "/api/v1/access-groups/{id}", tag = "access-groups", request_body = UpdateGroup,
    params(("id" = String, Path, description = "Group id")), security(("bearer" = [])),
    responses((status = 200, description = "Updated", body = GroupView),
        (status = 400, description = "Invalid field or license", body = super::ErrorBody),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Below Manager", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody),
        (status = 409, description = "A removed category is in use", body = super::ErrorBody)))]
pub async fn update_group(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<UpdateGroup>,
) -> Result<Json<GroupView>, ApiError> {
    caller.require(Role::Manager)?;
    if let Some(name) = &request.name {
        check_group_name(name)?;
    }
    if let Some(license) = &request.license {
        check_license(license)?;
    }
    let categories = request
        .categories
        .as_deref()
        .map(check_categories)
        .transpose()?;
    let domains = request
        .signup_domains
        .as_deref()
        .map(check_domains)
        .transpose()?;
    let _write = state.store.write_lock().await;
    let mut group = load_group(&state, &caller, &id)?;
    if let Some(categories) = categories {
        let items = items_of(&state.store, &group.id)?;
        if let Some((item, category)) = items.iter().find_map(|item| {
            item.categories
                .iter()
                .find(|c| !categories.contains(c))
                .map(|c| (&item.id, c))
        }) {
            return Err(ApiError::conflict(
                "category_in_use",
                format!("item {item} carries category {category:?}"),
            ));
        }
        group.categories = categories;
    }
    if let Some(name) = request.name {
        group.name = name.trim().to_owned();
    }
    if let Some(license) = request.license {
        group.license = license;
    }
    if let Some(domains) = domains {
        group.signup_domains = domains;
    }
    if let Some(open) = request.self_signup {
        group.self_signup = open;
    }
    check_signup_settings(group.self_signup, &group.signup_domains)?;
    let mut batch = WriteBatch::new();
    batch.put(GROUPS, group.id.as_str(), &group)?;
    caller
        .audit(
            &state,
            "access_group.update",
            group.id.as_str(),
            Some(group.node.clone()),
            serde_json::json!({"name": group.name, "license": group.license,
                "categories": group.categories, "self_signup": group.self_signup,
                "signup_domains": group.signup_domains}),
        )
        .record(&mut batch)?;
    state.store.apply(batch).await?;
    Ok(Json(GroupView::from(&group)))
}

/// Deletes a group with its members, items, invites, signups and orders
/// (Manager+). Every member loses access at once (L4).
#[utoipa::path(delete, path = "/api/v1/access-groups/{id}", tag = "access-groups",
    params(("id" = String, Path, description = "Group id")), security(("bearer" = [])),
    responses((status = 204, description = "Deleted"),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Below Manager", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody)))]
pub async fn delete_group(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Manager)?;
    let _write = state.store.write_lock().await;
    let group = load_group(&state, &caller, &id)?;
    let prefix = group_prefix(&group.id);
    let mut batch = WriteBatch::new();
    let members = load_members(&state, &group.id)?;
    for member in &members {
        batch.delete(MEMBERS, &member_key(&group.id, &member.member));
        batch.delete(MEMBER_GROUPS, &member_index_key(&group.id, &member.member));
    }
    for item in items_of(&state.store, &group.id)? {
        batch.delete(ITEMS, &format!("{prefix}{}", item.id));
        batch.delete(ITEM_GROUPS, &format!("{}/{}", item.id, group.id));
    }
    for invite in state.store.scan::<Invite>(INVITES, &prefix)? {
        batch.delete(INVITES, &format!("{prefix}{}", invite.id));
        batch.delete(INVITE_TOKENS, &invite.token_hash);
    }
    for signup in state.store.scan::<PendingSignup>(SIGNUPS, &prefix)? {
        batch.delete(SIGNUPS, &format!("{prefix}{}", email_key(&signup.email)));
        batch.delete(SIGNUP_TOKENS, &signup.token_hash);
    }
    for order in state.store.scan::<ShopOrder>(SHOP_ORDERS, &prefix)? {
        batch.delete(SHOP_ORDERS, &format!("{prefix}{}", order.order_id));
    }
    // The group's schedule belongs to it and goes with it.
    let schedule =
        crate::schedules::schedule_of(&state.store, &GroupRef::AccessGroup(group.id.clone()))?;
    if let Some(schedule) = &schedule {
        crate::schedules::delete_schedule(&mut batch, schedule);
    }
    batch.delete(GROUPS, group.id.as_str());
    caller
        .audit(
            &state,
            "access_group.delete",
            group.id.as_str(),
            Some(group.node.clone()),
            serde_json::json!({"name": group.name, "members": members.len(),
                "schedule": schedule.as_ref().map(|s| s.id.to_string())}),
        )
        .record(&mut batch)?;
    state.store.apply(batch).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ------------------------------------------------------------- members

/// A group's members (removed ones included) with their access windows (Manager+).
#[utoipa::path(get, path = "/api/v1/access-groups/{id}/members", tag = "access-groups",
    params(("id" = String, Path, description = "Group id")), security(("bearer" = [])),
    responses((status = 200, description = "Members", body = Vec<MemberView>),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Below Manager", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody)))]
pub async fn list_members(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<MemberView>>, ApiError> {
    caller.require(Role::Manager)?;
    let group = load_group(&state, &caller, &id)?;
    let members = load_members(&state, &group.id)?;
    let users = all_users(&state)?;
    let now = state.clock.now();
    Ok(Json(
        members
            .iter()
            .map(|m| member_view(&group, m, &users, now))
            .collect(),
    ))
}

/// Adds a user or device member (Manager+). A user must be one the caller
/// manages; a device must be paired, attached inside the caller's domain
/// and below the group's node, and is activated (L5: 409 when the license's
/// active devices are all taken). A device member's group is published at
/// once, so its assignment changes (L4).
#[utoipa::path(post, path = "/api/v1/access-groups/{id}/members", tag = "access-groups", request_body = AddMember,
    params(("id" = String, Path, description = "Group id")), security(("bearer" = [])),
    responses((status = 201, description = "Added", body = MemberView),
        (status = 400, description = "Invalid field, or a device not below the group's node", body = super::ErrorBody),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Below Manager", body = super::ErrorBody),
        (status = 404, description = "Group, user or device absent or not visible", body = super::ErrorBody),
        (status = 409, description = "Already a member, the group is full, or no active-device slot is free", body = super::ErrorBody)))]
pub async fn add_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<AddMember>,
) -> Result<(StatusCode, Json<MemberView>), ApiError> {
    caller.require(Role::Manager)?;
    check_display_name(request.display_name.as_deref())?;
    let now = state.clock.now();
    let joined_at = request.joined_at.unwrap_or(now);
    check_end_date(joined_at, request.end_date)?;
    let write = state.store.write_lock().await;
    let group = load_group(&state, &caller, &id)?;
    let mut users = HashMap::new();
    let label = match &request.member {
        MemberRef::User { user_id } => {
            let user = state
                .store
                .get::<User>(USERS, user_id.as_str())?
                .filter(|u| sees_user(&caller, u))
                .ok_or_else(|| ApiError::not_found("user"))?;
            let label = format!("user {}", user.name);
            users.insert(user.id.clone(), user);
            label
        }
        MemberRef::Device { device_id } => {
            let device = crate::devices::device(&state.store, device_id.as_str())?
                .filter(|d| caller.sees(&d.node))
                .ok_or_else(|| ApiError::not_found("device"))?;
            if !crate::access_groups::usable_at(&caller.tree, &group.node, &device.node) {
                return Err(ApiError::bad_request(
                    "device_outside_group",
                    format!(
                        "device {} is attached at {}, which is not below the group's node {}",
                        device.id, device.node, group.node
                    ),
                ));
            }
            format!("device {}", device.id)
        }
    };
    if crate::access_groups::member_of(&state.store, &group.id, &request.member)?
        .is_some_and(|m| m.is_current())
    {
        return Err(ApiError::conflict(
            "already_member",
            format!("{label} is already a member"),
        ));
    }
    if current_member_count(&state, &group.id)? >= MAX_MEMBERS {
        return Err(ApiError::conflict(
            "group_full",
            format!("a group holds at most {MAX_MEMBERS} members"),
        ));
    }
    let mut member = joined(
        &group,
        request.member,
        joined_at,
        request.end_date,
        request.display_name,
        MemberSource::Operator {
            by: caller.user.id.clone(),
        },
    );
    if let MemberRef::Device { device_id } = &member.member {
        activate_device(&state, &group, device_id)?;
        member.active = true;
    }
    let mut batch = WriteBatch::new();
    put_member(&mut batch, &member)?;
    caller
        .audit(
            &state,
            "access_group.member_add",
            group.id.as_str(),
            Some(group.node.clone()),
            serde_json::json!({"member": member.member, "joined_at": joined_at,
                "end_date": member.membership.end_date, "active": member.active}),
        )
        .record(&mut batch)?;
    state.store.apply(batch).await?;
    drop(write);
    device_member_changed(&state, &caller, &group.id, &member.member).await;
    Ok((
        StatusCode::CREATED,
        Json(member_view(&group, &member, &users, now)),
    ))
}

/// Changes a member's end date or display name (Manager+).
#[utoipa::path(patch, path = "/api/v1/access-groups/{id}/members/{kind}/{member_id}", tag = "access-groups",
    request_body = UpdateMember,
    params(("id" = String, Path, description = "Group id"),
        ("kind" = String, Path, description = "`user` or `device`"),
        ("member_id" = String, Path, description = "User or device id")),
    security(("bearer" = [])),
    responses((status = 200, description = "Updated", body = MemberView),
        (status = 400, description = "Invalid field", body = super::ErrorBody),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Below Manager", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody),
        (status = 409, description = "The member was removed", body = super::ErrorBody)))]
pub async fn update_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, kind, member_id)): Path<(String, String, String)>,
    ApiJson(request): ApiJson<UpdateMember>,
) -> Result<Json<MemberView>, ApiError> {
    caller.require(Role::Manager)?;
    if let Some(Some(name)) = &request.display_name {
        check_display_name(Some(name))?;
    }
    let who = member_ref(&kind, &member_id)?;
    if request.active.is_some() && !matches!(who, MemberRef::Device { .. }) {
        return Err(ApiError::bad_request(
            "not_a_device",
            "only device members hold active-device slots",
        ));
    }
    let write = state.store.write_lock().await;
    let group = load_group(&state, &caller, &id)?;
    let mut member = crate::access_groups::member_of(&state.store, &group.id, &who)?
        .ok_or_else(|| ApiError::not_found("member"))?;
    if !member.is_current() {
        return Err(ApiError::conflict(
            "member_removed",
            "the member was removed; add it again instead",
        ));
    }
    if let (Some(active), MemberRef::Device { device_id }) = (request.active, &member.member) {
        if active {
            activate_device(&state, &group, device_id)?;
        }
        member.active = active;
    }
    if let Some(end_date) = request.end_date {
        check_end_date(member.membership.joined_at, end_date)?;
        member.membership.end_date = end_date;
    }
    if let Some(name) = request.display_name {
        member.display_name = name;
    }
    let mut batch = WriteBatch::new();
    put_member(&mut batch, &member)?;
    caller
        .audit(
            &state,
            "access_group.member_update",
            group.id.as_str(),
            Some(group.node.clone()),
            serde_json::json!({"member": member.member, "end_date": member.membership.end_date,
                "display_name": member.display_name, "active": member.active}),
        )
        .record(&mut batch)?;
    state.store.apply(batch).await?;
    drop(write);
    device_member_changed(&state, &caller, &group.id, &member.member).await;
    let users = all_users(&state)?;
    Ok(Json(member_view(
        &group,
        &member,
        &users,
        state.clock.now(),
    )))
}

/// Removes a member: its access ends at once (L4). The record stays, with
/// `removed_at`, for usage reports; removing again changes nothing.
#[utoipa::path(delete, path = "/api/v1/access-groups/{id}/members/{kind}/{member_id}", tag = "access-groups",
    params(("id" = String, Path, description = "Group id"),
        ("kind" = String, Path, description = "`user` or `device`"),
        ("member_id" = String, Path, description = "User or device id")),
    security(("bearer" = [])),
    responses((status = 204, description = "Removed"),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Below Manager", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody)))]
pub async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, kind, member_id)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Manager)?;
    let who = member_ref(&kind, &member_id)?;
    let write = state.store.write_lock().await;
    let group = load_group(&state, &caller, &id)?;
    let mut member = crate::access_groups::member_of(&state.store, &group.id, &who)?
        .ok_or_else(|| ApiError::not_found("member"))?;
    if !member.is_current() {
        return Ok(StatusCode::NO_CONTENT);
    }
    let now = state.clock.now();
    member.membership.removed_at = Some(now);
    member.active = false;
    let mut batch = WriteBatch::new();
    put_member(&mut batch, &member)?;
    caller
        .audit(
            &state,
            "access_group.member_remove",
            group.id.as_str(),
            Some(group.node.clone()),
            serde_json::json!({"member": member.member}),
        )
        .record(&mut batch)?;
    state.store.apply(batch).await?;
    drop(write);
    device_member_changed(&state, &caller, &group.id, &member.member).await;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------- items

/// A group's items with their categories.
#[utoipa::path(get, path = "/api/v1/access-groups/{id}/items", tag = "access-groups",
    params(("id" = String, Path, description = "Group id")), security(("bearer" = [])),
    responses((status = 200, description = "Items", body = ItemList),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody)))]
pub async fn list_items(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ItemList>, ApiError> {
    let group = load_group(&state, &caller, &id)?;
    Ok(Json(ItemList {
        items: items_of(&state.store, &group.id)?,
    }))
}

/// Replaces a group's item list (Manager+). Every item must be a content
/// item usable at the group's node (T2: stored there or above). Once the
/// list is durable, the group is published (L3): its manifest and its
/// member devices' assignments are re-signed and sent.
#[utoipa::path(put, path = "/api/v1/access-groups/{id}/items", tag = "access-groups", request_body = ItemList,
    params(("id" = String, Path, description = "Group id")), security(("bearer" = [])),
    responses((status = 200, description = "The new list and its publication", body = ItemsSaved),
        (status = 400, description = "Invalid id, category or count, or an item not usable at the group's node", body = super::ErrorBody),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Below Manager", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody)))]
pub async fn set_items(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<ItemList>,
) -> Result<Json<ItemsSaved>, ApiError> {
    caller.require(Role::Manager)?;
    if request.items.len() > MAX_ITEMS {
        return Err(ApiError::bad_request(
            "too_many_items",
            format!("a group holds at most {MAX_ITEMS} items"),
        ));
    }
    let mut seen = BTreeSet::new();
    for item in &request.items {
        if !is_valid_id(item.id.as_str()) {
            return Err(ApiError::bad_request(
                "invalid_item",
                format!(
                    "{:?} is not an item id",
                    item.id.as_str().chars().take(64).collect::<String>()
                ),
            ));
        }
        if !seen.insert(item.id.clone()) {
            return Err(ApiError::bad_request(
                "invalid_item",
                format!("item {} is listed twice", item.id),
            ));
        }
        if item.categories.len() > MAX_ITEM_CATEGORIES {
            return Err(ApiError::bad_request(
                "invalid_item",
                format!(
                    "item {} has more than {MAX_ITEM_CATEGORIES} categories",
                    item.id
                ),
            ));
        }
    }
    let write = state.store.write_lock().await;
    let group = load_group(&state, &caller, &id)?;
    for item in &request.items {
        let usable = state
            .store
            .get::<ContentItem>(CONTENT, item.id.as_str())?
            .is_some_and(|content| caller.tree.is_within(&group.node, &content.node));
        if !usable {
            return Err(ApiError::bad_request(
                "invalid_item",
                format!(
                    "item {} is not a content item usable at the group's node {} (T2)",
                    item.id, group.node
                ),
            ));
        }
        if let Some(category) = item
            .categories
            .iter()
            .find(|c| !group.categories.contains(c))
        {
            return Err(ApiError::bad_request(
                "invalid_item",
                format!(
                    "item {}: {category:?} is not one of the group's categories",
                    item.id
                ),
            ));
        }
    }
    let prefix = group_prefix(&group.id);
    let old = items_of(&state.store, &group.id)?;
    let mut batch = WriteBatch::new();
    let mut removed = 0usize;
    for item in old.iter().filter(|i| !seen.contains(&i.id)) {
        batch.delete(ITEMS, &format!("{prefix}{}", item.id));
        batch.delete(ITEM_GROUPS, &format!("{}/{}", item.id, group.id));
        removed += 1;
    }
    let added = request
        .items
        .iter()
        .filter(|i| !old.iter().any(|o| o.id == i.id))
        .count();
    for item in &request.items {
        batch.put(ITEMS, &format!("{prefix}{}", item.id), item)?;
        batch.put(ITEM_GROUPS, &format!("{}/{}", item.id, group.id), &group.id)?;
    }
    caller
        .audit(
            &state,
            "access_group.items_set",
            group.id.as_str(),
            Some(group.node.clone()),
            serde_json::json!({"items": request.items.len(), "added": added, "removed": removed}),
        )
        .record(&mut batch)?;
    state.store.apply(batch).await?;
    drop(write);
    // L3: the change reaches member devices at their next sync.
    let actor = Actor::user(&caller.user, &caller.from);
    let (publication, publication_error) = match publish::publish_group_items(
        &state, &group.id, actor,
    )
    .await
    {
        Ok(published) => (Some(published.run), None),
        Err(e) => {
            tracing::warn!(group = %group.id, error = %e, "publishing the group's new items failed");
            (None, Some(e.to_string()))
        }
    };
    Ok(Json(ItemsSaved {
        items: items_of(&state.store, &group.id)?,
        publication,
        publication_error,
    }))
}

// -------------------------------------------------------------- invites

/// A group's invites, open, used and expired (Manager+).
#[utoipa::path(get, path = "/api/v1/access-groups/{id}/invites", tag = "access-groups",
    params(("id" = String, Path, description = "Group id")), security(("bearer" = [])),
    responses((status = 200, description = "Invites", body = Vec<InviteView>),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Below Manager", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody)))]
pub async fn list_invites(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<InviteView>>, ApiError> {
    caller.require(Role::Manager)?;
    let group = load_group(&state, &caller, &id)?;
    let now = state.clock.now();
    let invites: Vec<Invite> = state.store.scan(INVITES, &group_prefix(&group.id))?;
    Ok(Json(invites.iter().map(|i| invite_view(i, now)).collect()))
}

/// Invites an address (Manager+, L6): mails a one-click, single-use token
/// that expires (60 s to 30 days; default 7 days). Only the token's SHA-256
/// is stored; the token is in the mail and nowhere else.
#[utoipa::path(post, path = "/api/v1/access-groups/{id}/invites", tag = "access-groups", request_body = CreateInvite,
    params(("id" = String, Path, description = "Group id")), security(("bearer" = [])),
    responses((status = 201, description = "Invited; the mail is in the outbox", body = InviteView),
        (status = 400, description = "Invalid field", body = super::ErrorBody),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Below Manager", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody),
        (status = 409, description = "Too many open invites", body = super::ErrorBody)))]
pub async fn create_invite(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<CreateInvite>,
) -> Result<(StatusCode, Json<InviteView>), ApiError> {
    caller.require(Role::Manager)?;
    check_email(&request.email)?;
    let ttl = request.expires_in_secs.unwrap_or(DEFAULT_INVITE_TTL_SECS);
    if !(MIN_INVITE_TTL_SECS..=MAX_INVITE_TTL_SECS).contains(&ttl) {
        return Err(ApiError::bad_request(
            "invalid_expiry",
            format!(
                "expires_in_secs must be {MIN_INVITE_TTL_SECS} to {MAX_INVITE_TTL_SECS} seconds"
            ),
        ));
    }
    let now = state.clock.now();
    check_end_date(now, request.end_date)?;
    let _write = state.store.write_lock().await;
    let group = load_group(&state, &caller, &id)?;
    let prefix = group_prefix(&group.id);
    let open = state
        .store
        .scan::<Invite>(INVITES, &prefix)?
        .iter()
        .filter(|i| i.used_at.is_none() && now < i.expires_at)
        .count();
    if open >= MAX_OPEN_INVITES {
        return Err(ApiError::conflict(
            "too_many_invites",
            format!("a group may have at most {MAX_OPEN_INVITES} open invites"),
        ));
    }
    let (token, token_hash) = new_token();
    let invite = Invite {
        id: new_id("inv-"),
        group: group.id.clone(),
        email: request.email.trim().to_owned(),
        end_date: request.end_date,
        token_hash,
        created_at: now,
        created_by: caller.user.id.clone(),
        expires_at: now + seconds(ttl),
        used_at: None,
        used_by: None,
    };
    let key = format!("{prefix}{}", invite.id);
    let mut batch = WriteBatch::new();
    batch.put(INVITES, &key, &invite)?;
    batch.put(INVITE_TOKENS, &invite.token_hash, &key)?;
    mail::enqueue(
        &mut batch,
        Mail {
            to: invite.email.clone(),
            subject: format!("Invitation to {}", group.name),
            body: format!(
                "{} invites you to the access group \"{}\".\n\n\
                 To join, accept the invitation before {} (it works once):\n\
                 POST /api/v1/access-groups/invites/accept with the JSON body \
                 {{\"token\": \"{token}\"}} (add \"password\" to set one for a new account).\n\n\
                 token: {token}\n",
                caller.user.name,
                group.name,
                invite.expires_at.to_rfc3339(),
            ),
        },
        now,
    )?;
    caller
        .audit(
            &state,
            "access_group.invite",
            group.id.as_str(),
            Some(group.node.clone()),
            serde_json::json!({"invite": invite.id, "email": invite.email,
                "expires_at": invite.expires_at, "end_date": invite.end_date}),
        )
        .record(&mut batch)?;
    state.store.apply(batch).await?;
    state.mail_wake.notify_one();
    Ok((StatusCode::CREATED, Json(invite_view(&invite, now))))
}

/// Withdraws an invite (Manager+): its token stops working.
#[utoipa::path(delete, path = "/api/v1/access-groups/{id}/invites/{invite_id}", tag = "access-groups",
    params(("id" = String, Path, description = "Group id"),
        ("invite_id" = String, Path, description = "Invite id")),
    security(("bearer" = [])),
    responses((status = 204, description = "Withdrawn"),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Below Manager", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody)))]
pub async fn revoke_invite(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, invite_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Manager)?;
    let _write = state.store.write_lock().await;
    let group = load_group(&state, &caller, &id)?;
    let key = format!("{}{invite_id}", group_prefix(&group.id));
    let invite = state
        .store
        .get::<Invite>(INVITES, &key)?
        .ok_or_else(|| ApiError::not_found("invite"))?;
    let mut batch = WriteBatch::new();
    batch.delete(INVITES, &key);
    batch.delete(INVITE_TOKENS, &invite.token_hash);
    caller
        .audit(
            &state,
            "access_group.invite_revoke",
            group.id.as_str(),
            Some(group.node.clone()),
            serde_json::json!({"invite": invite.id, "email": invite.email}),
        )
        .record(&mut batch)?;
    state.store.apply(batch).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Accepts an invite (no login; the mailed token is the credential, L6).
/// Makes a Viewer account for the address if none exists. Works once and
/// only before it expires; otherwise nothing changes.
#[utoipa::path(post, path = "/api/v1/access-groups/invites/accept", tag = "access-groups", request_body = AcceptInvite,
    responses((status = 200, description = "Joined", body = Joined),
        (status = 400, description = "Malformed request or weak password", body = super::ErrorBody),
        (status = 404, description = "Unknown token", body = super::ErrorBody),
        (status = 409, description = "Already used, or the login name is taken", body = super::ErrorBody),
        (status = 410, description = "Expired", body = super::ErrorBody),
        (status = 429, description = "Too many requests from this source", body = super::ErrorBody),
        (status = 503, description = "Too many password hashes running; retry", body = super::ErrorBody)))]
pub async fn accept_invite(
    State(state): State<AppState>,
    ClientAddress(from): ClientAddress,
    ApiJson(request): ApiJson<AcceptInvite>,
) -> Result<Json<Joined>, ApiError> {
    check_token(&request.token)?;
    let password_hash = match request.password {
        Some(password) => {
            check_password(&password)?;
            Some(hash(&state, password).await?)
        }
        None => None,
    };
    let _write = state.store.write_lock().await;
    let now = state.clock.now();
    let unknown = || ApiError::new(StatusCode::NOT_FOUND, "invite_not_found", "unknown invite");
    let key: String = state
        .store
        .get(INVITE_TOKENS, &token_key(&request.token))?
        .ok_or_else(unknown)?;
    let mut invite: Invite = state.store.get(INVITES, &key)?.ok_or_else(unknown)?;
    if invite.used_at.is_some() {
        return Err(ApiError::conflict(
            "invite_used",
            "this invite was already accepted",
        ));
    }
    if now >= invite.expires_at {
        return Err(ApiError::new(
            StatusCode::GONE,
            "invite_expired",
            format!("this invite expired at {}", invite.expires_at.to_rfc3339()),
        ));
    }
    if invite.end_date.is_some_and(|end| end <= now) {
        return Err(ApiError::new(
            StatusCode::GONE,
            "invite_expired",
            "the membership this invite grants has already ended",
        ));
    }
    let group: AccessGroup = state
        .store
        .get(GROUPS, invite.group.as_str())?
        .ok_or_else(unknown)?;
    let mut batch = WriteBatch::new();
    let (user, user_created, password_set) = match user_by_email(&state, &invite.email)? {
        Some(mut user) => {
            let set = password_hash.is_some() && user.password_hash == NO_PASSWORD;
            if let (true, Some(hash)) = (set, password_hash) {
                user.password_hash = hash;
                batch.put(USERS, user.id.as_str(), &user)?;
            }
            (user, false, set)
        }
        None => {
            let set = password_hash.is_some();
            let user = new_member_user(&state, &group, &invite.email, password_hash, now, None)?;
            put_user(&mut batch, &user)?;
            (user, true, set)
        }
    };
    let (member, already_member) = keep_or_join(
        &state,
        &mut batch,
        &group,
        MemberRef::user(&user.id),
        |who| {
            joined(
                &group,
                who,
                now,
                invite.end_date,
                None,
                MemberSource::Invite {
                    invite_id: invite.id.clone(),
                },
            )
        },
    )?;
    invite.used_at = Some(now);
    invite.used_by = Some(user.id.clone());
    batch.put(INVITES, &key, &invite)?;
    anonymous_audit(
        &state,
        &from,
        Some(user.id.clone()),
        &user.name,
        "access_group.invite_accept",
        &group,
        serde_json::json!({"invite": invite.id, "user": user.id, "user_created": user_created,
            "already_member": already_member}),
    )
    .record(&mut batch)?;
    state.store.apply(batch).await?;
    Ok(Json(Joined {
        group: group.id.clone(),
        user_id: user.id,
        login_name: user.name,
        user_created,
        password_set,
        already_member,
        window: window(&group, &member),
    }))
}

// ---------------------------------------------------------- self-signup

/// Asks to join a group by self-signup (no login, L6). The group must
/// enable it and the address's domain must exactly match one it allows; a
/// confirmation token is mailed, and nothing else happens until it is
/// confirmed (within 24 hours). Asking again replaces the earlier request.
#[utoipa::path(post, path = "/api/v1/access-groups/{id}/signup", tag = "access-groups", request_body = SignupRequest,
    params(("id" = String, Path, description = "Group id")),
    responses((status = 202, description = "Confirmation mailed", body = SignupPending),
        (status = 400, description = "Invalid field", body = super::ErrorBody),
        (status = 403, description = "The e-mail domain is not allowed", body = super::ErrorBody),
        (status = 404, description = "No such group with self-signup", body = super::ErrorBody),
        (status = 409, description = "Too many pending signups", body = super::ErrorBody),
        (status = 429, description = "A confirmation went to this address less than an hour ago, or too many requests from this source", body = super::ErrorBody),
        (status = 503, description = "Too many password hashes running; retry", body = super::ErrorBody)))]
pub async fn request_signup(
    State(state): State<AppState>,
    ClientAddress(from): ClientAddress,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<SignupRequest>,
) -> Result<(StatusCode, Json<SignupPending>), ApiError> {
    check_email(&request.email)?;
    check_display_name(request.name.as_deref())?;
    check_password(&request.password)?;
    let closed = || ApiError::not_found("access group with self-signup");
    let group = state
        .store
        .get::<AccessGroup>(GROUPS, &id)?
        .filter(|g| g.self_signup)
        .ok_or_else(closed)?;
    if !email_domain_allowed(request.email.trim(), &group.signup_domains) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "domain_not_allowed",
            "this group does not allow self-signup from that e-mail domain",
        ));
    }
    // S12: one mail per address per hour, checked before the costly hash
    // and again under the write lock.
    check_signup_mail_interval(&state, request.email.trim(), state.clock.now())?;
    let password_hash = hash(&state, request.password).await?;
    let _write = state.store.write_lock().await;
    let now = state.clock.now();
    check_signup_mail_interval(&state, request.email.trim(), now)?;
    let group = state
        .store
        .get::<AccessGroup>(GROUPS, &id)?
        .filter(|g| g.self_signup && email_domain_allowed(request.email.trim(), &g.signup_domains))
        .ok_or_else(closed)?;
    let prefix = group_prefix(&group.id);
    let email = request.email.trim().to_owned();
    let key = format!("{prefix}{}", email_key(&email));
    let mut batch = WriteBatch::new();
    let mut pending = 0usize;
    for old in state.store.scan::<PendingSignup>(SIGNUPS, &prefix)? {
        let old_key = format!("{prefix}{}", email_key(&old.email));
        if old_key == key || now >= old.expires_at {
            batch.delete(SIGNUPS, &old_key);
            batch.delete(SIGNUP_TOKENS, &old.token_hash);
        } else {
            pending += 1;
        }
    }
    if pending >= MAX_PENDING_SIGNUPS {
        return Err(ApiError::conflict(
            "too_many_signups",
            "too many signups wait for confirmation; try again later",
        ));
    }
    let (token, token_hash) = new_token();
    let signup = PendingSignup {
        group: group.id.clone(),
        email: email.clone(),
        display_name: request.name.map(|n| n.trim().to_owned()),
        password_hash,
        token_hash,
        created_at: now,
        expires_at: now + seconds(SIGNUP_TTL_SECS),
    };
    batch.put(SIGNUPS, &key, &signup)?;
    batch.put(SIGNUP_TOKENS, &signup.token_hash, &key)?;
    batch.put(SIGNUP_MAILS, &email_key(&email), &now)?;
    mail::enqueue(
        &mut batch,
        Mail {
            to: email.clone(),
            subject: format!("Confirm your signup to {}", group.name),
            body: format!(
                "Someone (we hope you) asked to join the access group \"{}\" with this address.\n\n\
                 To confirm, before {}:\n\
                 POST /api/v1/access-groups/signup/confirm with the JSON body \
                 {{\"token\": \"{token}\"}}\n\n\
                 If it was not you, ignore this mail.\n\ntoken: {token}\n",
                group.name,
                signup.expires_at.to_rfc3339(),
            ),
        },
        now,
    )?;
    anonymous_audit(
        &state,
        &from,
        None,
        &email,
        "access_group.signup_request",
        &group,
        serde_json::json!({"email": email}),
    )
    .record(&mut batch)?;
    state.store.apply(batch).await?;
    state.mail_wake.notify_one();
    Ok((
        StatusCode::ACCEPTED,
        Json(SignupPending {
            status: "confirmation_sent",
            expires_at: signup.expires_at,
        }),
    ))
}

/// Refuses (429 with `Retry-After`) a signup for `email` when a
/// confirmation mail went to it less than [`SIGNUP_MAIL_INTERVAL_SECS`]
/// ago (S12): the earlier mail's token stays the one that works.
fn check_signup_mail_interval(
    state: &AppState,
    email: &str,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let Some(sent) = state
        .store
        .get::<DateTime<Utc>>(SIGNUP_MAILS, &email_key(email))?
    else {
        return Ok(());
    };
    let next = sent + TimeDelta::seconds(SIGNUP_MAIL_INTERVAL_SECS);
    if now >= next {
        return Ok(());
    }
    let mut error = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "signup_mail_recently_sent",
        format!(
            "a confirmation was mailed to this address at {}; use it, or ask again after {}",
            sent.to_rfc3339(),
            next.to_rfc3339()
        ),
    );
    error.retry_after = u64::try_from((next - now).num_seconds().max(1)).ok();
    Err(error)
}

/// Confirms a self-signup (no login; the mailed token is the credential,
/// L6): makes the account if the address has none, and the membership.
#[utoipa::path(post, path = "/api/v1/access-groups/signup/confirm", tag = "access-groups", request_body = ConfirmSignup,
    responses((status = 200, description = "Joined", body = Joined),
        (status = 400, description = "Malformed request", body = super::ErrorBody),
        (status = 404, description = "Unknown or already used token", body = super::ErrorBody),
        (status = 409, description = "Self-signup closed meanwhile, or the login name is taken", body = super::ErrorBody),
        (status = 410, description = "Expired", body = super::ErrorBody),
        (status = 429, description = "Too many requests from this source", body = super::ErrorBody)))]
pub async fn confirm_signup(
    State(state): State<AppState>,
    ClientAddress(from): ClientAddress,
    ApiJson(request): ApiJson<ConfirmSignup>,
) -> Result<Json<Joined>, ApiError> {
    check_token(&request.token)?;
    let _write = state.store.write_lock().await;
    let now = state.clock.now();
    let unknown = || ApiError::new(StatusCode::NOT_FOUND, "signup_not_found", "unknown signup");
    let token_hash = token_key(&request.token);
    let key: String = state
        .store
        .get(SIGNUP_TOKENS, &token_hash)?
        .ok_or_else(unknown)?;
    let signup: PendingSignup = state.store.get(SIGNUPS, &key)?.ok_or_else(unknown)?;
    if signup.token_hash != token_hash {
        return Err(unknown());
    }
    if now >= signup.expires_at {
        return Err(ApiError::new(
            StatusCode::GONE,
            "signup_expired",
            "this signup expired; sign up again",
        ));
    }
    let group = state
        .store
        .get::<AccessGroup>(GROUPS, signup.group.as_str())?
        .filter(|g| g.self_signup && email_domain_allowed(&signup.email, &g.signup_domains))
        .ok_or_else(|| {
            ApiError::conflict("signup_closed", "this group no longer takes self-signups")
        })?;
    let mut batch = WriteBatch::new();
    let (user, user_created) = match user_by_email(&state, &signup.email)? {
        Some(user) => (user, false),
        None => {
            let user = new_member_user(
                &state,
                &group,
                &signup.email,
                Some(signup.password_hash.clone()),
                now,
                None,
            )?;
            put_user(&mut batch, &user)?;
            (user, true)
        }
    };
    let (member, already_member) = keep_or_join(
        &state,
        &mut batch,
        &group,
        MemberRef::user(&user.id),
        |who| {
            joined(
                &group,
                who,
                now,
                None,
                signup.display_name.clone(),
                MemberSource::SelfSignup,
            )
        },
    )?;
    batch.delete(SIGNUPS, &key);
    batch.delete(SIGNUP_TOKENS, &token_hash);
    anonymous_audit(
        &state,
        &from,
        Some(user.id.clone()),
        &user.name,
        "access_group.signup_confirm",
        &group,
        serde_json::json!({"user": user.id, "user_created": user_created,
            "already_member": already_member}),
    )
    .record(&mut batch)?;
    state.store.apply(batch).await?;
    Ok(Json(Joined {
        group: group.id.clone(),
        user_id: user.id,
        login_name: user.name,
        user_created,
        password_set: user_created,
        already_member,
        window: window(&group, &member),
    }))
}

// ----------------------------------------------------------- CSV import

/// One row that passed the checks and what it will do.
enum Planned {
    /// A new user (maybe) and a new membership.
    Create(Option<User>, Member),
    /// A changed membership.
    Update(Member),
}

/// Imports members from CSV (Manager+, L7): `text/csv` with columns email,
/// name, end date (`YYYY-MM-DD` = through that day, UTC, or RFC 3339;
/// empty = none), with or without a header line naming them. Idempotent by
/// e-mail: a known member's end date and name are updated, nothing is
/// duplicated. Each row is checked on its own; the valid rows are stored in
/// one batch; the answer reports every row. At most 1 MiB and 5000 rows.
#[utoipa::path(post, path = "/api/v1/access-groups/{id}/members/import", tag = "access-groups",
    request_body(content = String, content_type = "text/csv"),
    params(("id" = String, Path, description = "Group id")), security(("bearer" = [])),
    responses((status = 200, description = "Per-row report", body = ImportReport),
        (status = 400, description = "Not CSV, bad header, or too many rows", body = super::ErrorBody),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Below Manager", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody),
        (status = 413, description = "File too large", body = super::ErrorBody),
        (status = 415, description = "Not text/csv", body = super::ErrorBody)))]
pub async fn import_members(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ImportReport>, ApiError> {
    caller.require(Role::Manager)?;
    let is_csv = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("text/csv"));
    if !is_csv {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the file as Content-Type: text/csv",
        ));
    }
    let body = body.map_err(|e| ApiError::new(e.status(), "body_too_large", e.body_text()))?;
    let records = members_csv::parse(&body).map_err(|e| match e {
        ImportError::TooLarge => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            e.to_string(),
        ),
        ImportError::TooManyRows => ApiError::bad_request("too_many_rows", e.to_string()),
        _ => ApiError::bad_request("invalid_csv", e.to_string()),
    })?;

    let _write = state.store.write_lock().await;
    let group = load_group(&state, &caller, &id)?;
    let now = state.clock.now();
    let users: Vec<User> = state.store.scan(USERS, "")?;
    let by_email: HashMap<String, &User> = users.iter().map(|u| (email_key(&u.email), u)).collect();
    let members: BTreeMap<String, Member> = load_members(&state, &group.id)?
        .into_iter()
        .map(|m| (m.member.key(), m))
        .collect();
    let mut current = members.values().filter(|m| m.is_current()).count();
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut rows = Vec::with_capacity(records.len());
    let mut planned = Vec::new();
    for record in records {
        let line = record.line;
        let email = record.email;
        let refuse = |reason: String| ImportRow {
            row: line,
            email: email.chars().take(MAX_NAME_LEN).collect(),
            status: "refused",
            reason: Some(reason),
            user_id: None,
        };
        if let Err(reason) = record.shape {
            rows.push(refuse(reason));
            continue;
        }
        if let Err(e) = check_email(&email) {
            rows.push(refuse(e.message));
            continue;
        }
        let name = record.name;
        if let Err(e) = check_display_name(name.as_deref()) {
            rows.push(refuse(e.message));
            continue;
        }
        let end_date = match record.end_date {
            Ok(end) => end,
            Err(reason) => {
                rows.push(refuse(reason));
                continue;
            }
        };
        let key = email_key(&email);
        if let Some(first) = seen.get(&key) {
            rows.push(refuse(format!("the same address as row {first}")));
            continue;
        }
        seen.insert(key.clone(), line);
        let existing_user = by_email.get(&key).copied();
        if let Some(user) = existing_user
            && !sees_user(&caller, user)
        {
            rows.push(refuse(
                "the address belongs to an account outside your domain".into(),
            ));
            continue;
        }
        let existing = existing_user.and_then(|u| members.get(&MemberRef::user(&u.id).key()));
        match (existing_user, existing) {
            (Some(user), Some(member)) if member.is_current() => {
                if let Err(e) = check_end_date(member.membership.joined_at, end_date) {
                    rows.push(refuse(e.message));
                    continue;
                }
                let mut changed = member.clone();
                changed.membership.end_date = end_date;
                if name.is_some() {
                    changed.display_name = name;
                }
                let status = if &changed == member {
                    "unchanged"
                } else {
                    planned.push(Planned::Update(changed));
                    "updated"
                };
                rows.push(ImportRow {
                    row: line,
                    email,
                    status,
                    reason: None,
                    user_id: Some(user.id.clone()),
                });
            }
            _ => {
                if let Err(e) = check_end_date(now, end_date) {
                    rows.push(refuse(e.message));
                    continue;
                }
                if current >= MAX_MEMBERS {
                    rows.push(refuse(format!("the group is full ({MAX_MEMBERS} members)")));
                    continue;
                }
                let (user_id, new_user) = match existing_user {
                    Some(user) => (user.id.clone(), None),
                    None => match new_member_user(
                        &state,
                        &group,
                        &email,
                        None,
                        now,
                        Some(caller.user.id.clone()),
                    ) {
                        Ok(user) => (user.id.clone(), Some(user)),
                        Err(e) => {
                            rows.push(refuse(e.message));
                            continue;
                        }
                    },
                };
                current += 1;
                let member = joined(
                    &group,
                    MemberRef::user(&user_id),
                    now,
                    end_date,
                    name,
                    MemberSource::Import {
                        by: caller.user.id.clone(),
                    },
                );
                planned.push(Planned::Create(new_user, member));
                rows.push(ImportRow {
                    row: line,
                    email,
                    status: "created",
                    reason: None,
                    user_id: Some(user_id),
                });
            }
        }
    }
    let count = |status: &str| rows.iter().filter(|r| r.status == status).count();
    let (created, updated, unchanged, refused) = (
        count("created"),
        count("updated"),
        count("unchanged"),
        count("refused"),
    );
    let applied = !planned.is_empty();
    if applied {
        let mut batch = WriteBatch::new();
        for plan in &planned {
            match plan {
                Planned::Create(user, member) => {
                    if let Some(user) = user {
                        put_user(&mut batch, user)?;
                    }
                    put_member(&mut batch, member)?;
                }
                Planned::Update(member) => put_member(&mut batch, member)?,
            }
        }
        caller
            .audit(
                &state,
                "access_group.import",
                group.id.as_str(),
                Some(group.node.clone()),
                serde_json::json!({"rows": rows.len(), "created": created, "updated": updated,
                    "unchanged": unchanged, "refused": refused}),
            )
            .record(&mut batch)?;
        state.store.apply(batch).await?;
    }
    Ok(Json(ImportReport {
        applied,
        created,
        updated,
        unchanged,
        refused,
        rows,
    }))
}

// ------------------------------------------------------------ shop hook

/// Makes a new shop key for a group (Manager+, L9), replacing any earlier
/// one. The key is shown once; only its SHA-256 is stored.
#[utoipa::path(post, path = "/api/v1/access-groups/{id}/shop-key", tag = "access-groups",
    params(("id" = String, Path, description = "Group id")), security(("bearer" = [])),
    responses((status = 201, description = "The new key", body = ShopKey),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Below Manager", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody)))]
pub async fn create_shop_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<ShopKey>), ApiError> {
    caller.require(Role::Manager)?;
    let _write = state.store.write_lock().await;
    let mut group = load_group(&state, &caller, &id)?;
    let (key, key_hash) = new_token();
    let replaced = group.shop_key_hash.replace(key_hash).is_some();
    let mut batch = WriteBatch::new();
    batch.put(GROUPS, group.id.as_str(), &group)?;
    caller
        .audit(
            &state,
            "access_group.shop_key_create",
            group.id.as_str(),
            Some(group.node.clone()),
            serde_json::json!({"replaced": replaced}),
        )
        .record(&mut batch)?;
    state.store.apply(batch).await?;
    Ok((StatusCode::CREATED, Json(ShopKey { shop_key: key })))
}

/// Deletes a group's shop key (Manager+): the shop hook stops working.
#[utoipa::path(delete, path = "/api/v1/access-groups/{id}/shop-key", tag = "access-groups",
    params(("id" = String, Path, description = "Group id")), security(("bearer" = [])),
    responses((status = 204, description = "Deleted"),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Below Manager", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody)))]
pub async fn delete_shop_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Manager)?;
    let _write = state.store.write_lock().await;
    let mut group = load_group(&state, &caller, &id)?;
    if group.shop_key_hash.take().is_none() {
        return Ok(StatusCode::NO_CONTENT);
    }
    let mut batch = WriteBatch::new();
    batch.put(GROUPS, group.id.as_str(), &group)?;
    caller
        .audit(
            &state,
            "access_group.shop_key_delete",
            group.id.as_str(),
            Some(group.node.clone()),
            serde_json::Value::Null,
        )
        .record(&mut batch)?;
    state.store.apply(batch).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The shop hook (L9): adds a paid member. Authenticated by the group's
/// shop key (`Authorization: Bearer <shop key>`), not a user token.
/// Idempotent by order id: a repeated order is answered (200) and not
/// applied again; the same order id for another address is 409. A new
/// order for a current member starts its membership afresh (a renewal).
#[utoipa::path(post, path = "/api/v1/access-groups/{id}/members/shop", tag = "access-groups",
    request_body = ShopOrderRequest,
    params(("id" = String, Path, description = "Group id")), security(("bearer" = [])),
    responses((status = 201, description = "Member added", body = ShopResult),
        (status = 200, description = "Order already handled", body = ShopResult),
        (status = 400, description = "Invalid field", body = super::ErrorBody),
        (status = 401, description = "Wrong or missing shop key", body = super::ErrorBody),
        (status = 409, description = "Order id reused for another address, login name taken, or group full", body = super::ErrorBody)))]
pub async fn shop_member(
    State(state): State<AppState>,
    ClientAddress(from): ClientAddress,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<ShopOrderRequest>,
) -> Result<(StatusCode, Json<ShopResult>), ApiError> {
    let key = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .filter(|k| !k.is_empty() && k.len() <= 128)
        .ok_or_else(|| ApiError::unauthorized("expected 'Authorization: Bearer <shop key>'"))?;
    let key_hash = token_key(key);
    let wrong_key = || ApiError::unauthorized("wrong shop key");
    let order_id = request.order_id.trim().to_owned();
    let valid_order = !order_id.is_empty()
        && order_id.len() <= MAX_ORDER_ID_LEN
        && !order_id.chars().any(char::is_control)
        && !order_id.contains('/');
    let _write = state.store.write_lock().await;
    let group = state
        .store
        .get::<AccessGroup>(GROUPS, &id)?
        .filter(|g| g.shop_key_hash.as_deref() == Some(key_hash.as_str()))
        .ok_or_else(wrong_key)?;
    if !valid_order {
        return Err(ApiError::bad_request(
            "invalid_order_id",
            format!("an order id is 1 to {MAX_ORDER_ID_LEN} bytes of text without '/'"),
        ));
    }
    check_email(&request.email)?;
    check_display_name(request.name.as_deref())?;
    let now = state.clock.now();
    check_end_date(now, request.end_date)?;
    let order_key = format!("{}{order_id}", group_prefix(&group.id));
    if let Some(order) = state.store.get::<ShopOrder>(SHOP_ORDERS, &order_key)? {
        if email_key(&order.email) != email_key(&request.email) {
            return Err(ApiError::conflict(
                "order_conflict",
                "this order id was already used for another address",
            ));
        }
        let member = crate::access_groups::member_of(
            &state.store,
            &group.id,
            &MemberRef::user(&order.user_id),
        )?
        .ok_or_else(|| ApiError::not_found("member"))?;
        return Ok((
            StatusCode::OK,
            Json(ShopResult {
                order_id,
                user_id: order.user_id,
                replayed: true,
                window: window(&group, &member),
            }),
        ));
    }
    let mut batch = WriteBatch::new();
    let (user, user_created) = match user_by_email(&state, &request.email)? {
        // The shop acts for the group's tenant: an account elsewhere in the
        // tree is not its to enrol (T4), just as a CSV import refuses it.
        Some(user) if !within_node(&state, &user, &group.node)? => {
            return Err(ApiError::conflict(
                "account_outside_tenant",
                "the address belongs to an account outside this group's node",
            ));
        }
        Some(user) => (user, false),
        None => {
            let user = new_member_user(&state, &group, &request.email, None, now, None)?;
            put_user(&mut batch, &user)?;
            (user, true)
        }
    };
    let who = MemberRef::user(&user.id);
    let renewal = crate::access_groups::member_of(&state.store, &group.id, &who)?
        .is_some_and(|m| m.is_current());
    if !renewal && current_member_count(&state, &group.id)? >= MAX_MEMBERS {
        return Err(ApiError::conflict(
            "group_full",
            format!("a group holds at most {MAX_MEMBERS} members"),
        ));
    }
    let member = joined(
        &group,
        who,
        now,
        request.end_date,
        request.name.map(|n| n.trim().to_owned()),
        MemberSource::Shop {
            order_id: order_id.clone(),
        },
    );
    put_member(&mut batch, &member)?;
    batch.put(
        SHOP_ORDERS,
        &order_key,
        &ShopOrder {
            order_id: order_id.clone(),
            group: group.id.clone(),
            email: request.email.trim().to_owned(),
            user_id: user.id.clone(),
            at: now,
        },
    )?;
    anonymous_audit(
        &state,
        &from,
        None,
        "shop",
        "access_group.shop_member",
        &group,
        serde_json::json!({"order_id": order_id, "user": user.id, "user_created": user_created,
            "renewal": renewal}),
    )
    .record(&mut batch)?;
    state.store.apply(batch).await?;
    Ok((
        StatusCode::CREATED,
        Json(ShopResult {
            order_id,
            user_id: user.id,
            replayed: false,
            window: window(&group, &member),
        }),
    ))
}
