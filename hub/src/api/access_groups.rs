//! `/api/v1/access-groups` (L1–L2, L4–L7, L9): license, members, items,
//! invites, self-signup, CSV import and the shop hook — over HTTP.
//!
//! Owns: extracting requests, the one mapping of [`AccessGroupError`] to
//! answers, and the OpenAPI description of the routes. Must not: decide
//! anything — who may do what, every rule, every write, audit entry and
//! after-commit effect is the access-group service's
//! ([`crate::access_groups::service`], [`crate::access_groups::invites`], [`crate::access_groups::signup`],
//! [`crate::access_groups::shop`],
//! [`crate::access_groups::import`]).
//!
//! Who may do what (enforced there): a group belongs to a node; callers
//! see it, and everything in it, only when that node is inside their
//! domain — anything else is 404 (T2–T4); any role reads groups and items;
//! Manager and above list members and invites and make every change; three
//! routes take no login (accepting an invite, asking for and confirming a
//! self-signup); the shop hook authenticates with the group's shop key.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, header};
use signet_common::members_csv::ImportError;

use super::prelude::*;
use super::users::check_password;
use crate::access_groups::bulk::{self, DeviceMembers};
use crate::access_groups::public::{self, InviteInfo, SignupForm};
use crate::access_groups::types::{
    AcceptInvite, AddMember, ConfirmSignup, CreateGroup, CreateInvite, GroupView, ImportReport,
    InviteView, ItemList, Joined, MemberView, ShopKey, ShopOrderRequest, ShopResult, SignupPending,
    SignupRequest, UpdateGroup, UpdateMember,
};
use crate::access_groups::{AccessGroupError, import, invites, service, shop, signup};
use crate::publish::{self, after::ItemsSaved, after::MembersSaved};

concern_routes! { list_groups, create_group; get_group, update_group, delete_group;
list_members, add_member; update_member, remove_member; import_members; change_device_members;
list_items, set_items; list_invites, create_invite; revoke_invite; accept_invite;
describe_invite; signup_form, request_signup; confirm_signup; create_shop_key, delete_shop_key;
shop_member }

impl From<AccessGroupError> for ApiError {
    fn from(e: AccessGroupError) -> Self {
        use {AccessGroupError as E, StatusCode as S};
        let message = e.to_string();
        match e {
            E::NotFound(what) => Self::not_found(what),
            E::Unknown { code, .. } => Self::new(S::NOT_FOUND, code, message),
            E::Invalid { code, .. } => Self::bad_request(code, message),
            E::Conflict { code, .. } => Self::conflict(code, message),
            E::Gone { code, .. } => Self::gone(code, message),
            E::Refused { code, .. } => Self::new(S::FORBIDDEN, code, message),
            E::WrongKey(_) => Self::unauthorized(message),
            E::MailedRecently { retry_after, .. } => {
                Self::too_many("signup_mail_recently_sent", message, retry_after)
            }
            E::Csv(ImportError::TooLarge) => {
                Self::new(S::PAYLOAD_TOO_LARGE, "body_too_large", message)
            }
            E::Csv(ImportError::TooManyRows) => Self::bad_request("too_many_rows", message),
            E::Csv(_) => Self::bad_request("invalid_csv", message),
            E::InvalidName(e) => e.into(),
            E::RoleTooLow(e) => e.into(),
            E::Hashing(e) => crate::identity::IdentityError::Hash(e).into(),
            E::Store(e) => e.into(),
        }
    }
}

/// Access groups whose node is inside the caller's domain.
#[utoipa::path(get, path = "/api/v1/access-groups", tag = "access-groups", security(("bearer" = [])),
    responses((status = 200, description = "Visible groups", body = Vec<GroupView>)))]
pub async fn list_groups(State(state): Ctx, caller: Caller) -> Answer<Vec<GroupView>> {
    let groups = service::list_groups(&state, &caller.actor()).await?;
    Ok(Json(groups.iter().map(GroupView::from).collect()))
}

/// Creates an access group at a node inside the caller's domain (Manager+).
#[utoipa::path(post, path = "/api/v1/access-groups", tag = "access-groups", request_body = CreateGroup,
    security(("bearer" = [])),
    responses((status = 201, description = "Created", body = GroupView),
        (status = 400, description = "Invalid field or license", body = ErrorBody), (status = 403, description = "Below Manager", body = ErrorBody),
        (status = 404, description = "Node absent or not visible", body = ErrorBody)))]
pub async fn create_group(
    State(state): Ctx,
    caller: Caller,
    ApiJson(request): ApiJson<CreateGroup>,
) -> WithStatus<GroupView> {
    let group = service::create_group(&state, &caller.actor(), request).await?;
    Ok((StatusCode::CREATED, Json(GroupView::from(&group))))
}

/// One access group.
#[utoipa::path(get, path = "/api/v1/access-groups/{id}", tag = "access-groups",
    params(("id" = String, Path, description = "Group id")), security(("bearer" = [])),
    responses((status = 200, description = "The group", body = GroupView), (status = 404, description = "Absent or not visible", body = ErrorBody)))]
pub async fn get_group(State(state): Ctx, caller: Caller, Path(id): Id) -> Answer<GroupView> {
    let group = service::group(&state, &caller.actor(), &id).await?;
    Ok(Json(GroupView::from(&group)))
}

/// Changes a group's name, license, categories or self-signup (Manager+).
#[utoipa::path(patch, path = "/api/v1/access-groups/{id}", tag = "access-groups", request_body = UpdateGroup,
    params(("id" = String, Path, description = "Group id")), security(("bearer" = [])),
    responses((status = 200, description = "Updated", body = GroupView),
        (status = 400, description = "Invalid field or license", body = ErrorBody), (status = 403, description = "Below Manager", body = ErrorBody),
        (status = 404, description = "Absent or not visible", body = ErrorBody),
        (status = 409, description = "A removed category is in use", body = ErrorBody)))]
pub async fn update_group(
    State(state): Ctx,
    caller: Caller,
    Path(id): Id,
    ApiJson(request): ApiJson<UpdateGroup>,
) -> Answer<GroupView> {
    let group = service::update_group(&state, &caller.actor(), &id, request).await?;
    Ok(Json(GroupView::from(&group)))
}

/// Deletes a group with its members, items, invites, signups and orders
/// (Manager+). Every member loses access at once (L4).
#[utoipa::path(delete, path = "/api/v1/access-groups/{id}", tag = "access-groups",
    params(("id" = String, Path, description = "Group id")), security(("bearer" = [])),
    responses((status = 204, description = "Deleted"),
        (status = 403, description = "Below Manager", body = ErrorBody), (status = 404, description = "Absent or not visible", body = ErrorBody)))]
pub async fn delete_group(State(state): Ctx, caller: Caller, Path(id): Id) -> Done {
    let schedule = crate::schedules::delete_group_schedule_in;
    let actor = caller.actor();
    let deleted = service::delete_group(&state, &actor, &id, schedule).await?;
    publish::after::group_deleted(&state, &actor, deleted).await;
    Ok(StatusCode::NO_CONTENT)
}

/// A group's members (removed ones included) with their access windows (Manager+).
#[utoipa::path(get, path = "/api/v1/access-groups/{id}/members", tag = "access-groups",
    params(("id" = String, Path, description = "Group id")), security(("bearer" = [])),
    responses((status = 200, description = "Members", body = Vec<MemberView>),
        (status = 403, description = "Below Manager", body = ErrorBody), (status = 404, description = "Absent or not visible", body = ErrorBody)))]
pub async fn list_members(
    State(state): Ctx,
    caller: Caller,
    Path(id): Id,
) -> Answer<Vec<MemberView>> {
    Ok(Json(service::members(&state, &caller.actor(), &id).await?))
}

/// Adds a user or device member (Manager+). A user must be one the caller
/// manages; a device must be paired, attached inside the caller's domain
/// and below the group's node, and is activated (L5: 409 when the license's
/// active devices are all taken). A device member's group is published at
/// once, so its assignment changes (L4).
#[utoipa::path(post, path = "/api/v1/access-groups/{id}/members", tag = "access-groups", request_body = AddMember,
    params(("id" = String, Path, description = "Group id")), security(("bearer" = [])),
    responses((status = 201, description = "Added", body = MemberView),
        (status = 400, description = "Invalid field, or a device not below the group's node", body = ErrorBody),
        (status = 403, description = "Below Manager", body = ErrorBody),
        (status = 404, description = "Group, user or device absent or not visible", body = ErrorBody),
        (status = 409, description = "Already a member, the group is full, or no active-device slot is free", body = ErrorBody)))]
pub async fn add_member(
    State(state): Ctx,
    caller: Caller,
    Path(id): Id,
    ApiJson(request): ApiJson<AddMember>,
) -> WithStatus<MemberView> {
    let actor = caller.actor();
    let (view, change) = service::add_member(&state, &actor, &id, request).await?;
    publish::after::device_member_changed(&state, &actor, change).await;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Changes a member's end date or display name (Manager+).
#[utoipa::path(patch, path = "/api/v1/access-groups/{id}/members/{kind}/{member_id}", tag = "access-groups",
    request_body = UpdateMember,
    params(("id" = String, Path, description = "Group id"),
        ("kind" = String, Path, description = "`user` or `device`"),
        ("member_id" = String, Path, description = "User or device id")),
    security(("bearer" = [])),
    responses((status = 200, description = "Updated", body = MemberView),
        (status = 400, description = "Invalid field", body = ErrorBody), (status = 403, description = "Below Manager", body = ErrorBody),
        (status = 404, description = "Absent or not visible", body = ErrorBody), (status = 409, description = "The member was removed", body = ErrorBody)))]
pub async fn update_member(
    State(state): Ctx,
    caller: Caller,
    Path((id, kind, member_id)): Path<(String, String, String)>,
    ApiJson(request): ApiJson<UpdateMember>,
) -> Answer<MemberView> {
    let (actor, member) = (
        caller.actor(),
        (id.as_str(), kind.as_str(), member_id.as_str()),
    );
    let (view, change) = service::update_member(&state, &actor, member, request).await?;
    publish::after::device_member_changed(&state, &actor, change).await;
    Ok(Json(view))
}

/// Removes a member: its access ends at once (L4). The record stays, with
/// `removed_at`, for usage reports; removing again changes nothing.
#[utoipa::path(delete, path = "/api/v1/access-groups/{id}/members/{kind}/{member_id}", tag = "access-groups",
    params(("id" = String, Path, description = "Group id"),
        ("kind" = String, Path, description = "`user` or `device`"),
        ("member_id" = String, Path, description = "User or device id")),
    security(("bearer" = [])),
    responses((status = 204, description = "Removed"),
        (status = 403, description = "Below Manager", body = ErrorBody), (status = 404, description = "Absent or not visible", body = ErrorBody)))]
pub async fn remove_member(
    State(state): Ctx,
    caller: Caller,
    Path((id, kind, member_id)): Path<(String, String, String)>,
) -> Done {
    let (actor, member) = (
        caller.actor(),
        (id.as_str(), kind.as_str(), member_id.as_str()),
    );
    let change = service::remove_member(&state, &actor, member).await?;
    publish::after::device_member_changed(&state, &actor, change).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Adds and removes many device members at once (Manager+), as one change
/// with the rules of adding one (all refused when any device is); the
/// group is then published once (L4, L5).
#[utoipa::path(post, path = "/api/v1/access-groups/{id}/members/devices", tag = "access-groups",
    request_body = DeviceMembers, params(("id" = String, Path, description = "Group id")),
    security(("bearer" = [])),
    responses((status = 200, description = "What changed and its publication", body = MembersSaved),
        (status = 400, description = "No, too many or repeated ids, or a device not below the group's node", body = super::ErrorBody),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Below Manager", body = super::ErrorBody),
        (status = 404, description = "Group or device absent or not visible", body = super::ErrorBody),
        (status = 409, description = "The group is full, or no active-device slot is free", body = super::ErrorBody)))]
pub async fn change_device_members(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<DeviceMembers>,
) -> Result<Json<MembersSaved>, ApiError> {
    let actor = caller.actor();
    let change = bulk::change_device_members(&state, &actor, &id, request).await?;
    let saved = publish::after::device_members_changed(&state, &actor, change).await;
    Ok(Json(saved))
}

/// A group's items with their categories.
#[utoipa::path(get, path = "/api/v1/access-groups/{id}/items", tag = "access-groups",
    params(("id" = String, Path, description = "Group id")), security(("bearer" = [])),
    responses((status = 200, description = "Items", body = ItemList), (status = 404, description = "Absent or not visible", body = ErrorBody)))]
pub async fn list_items(State(state): Ctx, caller: Caller, Path(id): Id) -> Answer<ItemList> {
    let items = service::items(&state, &caller.actor(), &id).await?;
    Ok(Json(ItemList { items }))
}

/// Replaces a group's item list (Manager+). Every item must be a content
/// item usable at the group's node (T2: stored there or above). Once the
/// list is durable, the group is published (L3): its manifest is signed
/// and sent once, whatever the number of member devices (their assignments
/// do not change).
#[utoipa::path(put, path = "/api/v1/access-groups/{id}/items", tag = "access-groups", request_body = ItemList,
    params(("id" = String, Path, description = "Group id")), security(("bearer" = [])),
    responses((status = 200, description = "The new list and its publication", body = ItemsSaved),
        (status = 400, description = "Invalid id, category or count, or an item not usable at the group's node", body = ErrorBody),
        (status = 403, description = "Below Manager", body = ErrorBody), (status = 404, description = "Absent or not visible", body = ErrorBody)))]
pub async fn set_items(
    State(state): Ctx,
    caller: Caller,
    Path(id): Id,
    ApiJson(request): ApiJson<ItemList>,
) -> Answer<ItemsSaved> {
    let actor = caller.actor();
    let group = service::set_items(&state, &actor, &id, request).await?;
    let answer = publish::after::group_items_set(&state, &actor, &group).await?;
    Ok(Json(answer))
}

/// A group's invites, open, used and expired (Manager+).
#[utoipa::path(get, path = "/api/v1/access-groups/{id}/invites", tag = "access-groups",
    params(("id" = String, Path, description = "Group id")), security(("bearer" = [])),
    responses((status = 200, description = "Invites", body = Vec<InviteView>),
        (status = 403, description = "Below Manager", body = ErrorBody), (status = 404, description = "Absent or not visible", body = ErrorBody)))]
pub async fn list_invites(
    State(state): Ctx,
    caller: Caller,
    Path(id): Id,
) -> Answer<Vec<InviteView>> {
    Ok(Json(invites::invites(&state, &caller.actor(), &id).await?))
}

/// Invites an address (Manager+, L6): mails a one-click, single-use token
/// that expires (60 s to 30 days; default 7 days). Only the token's SHA-256
/// is stored; the token is in the mail and nowhere else.
#[utoipa::path(post, path = "/api/v1/access-groups/{id}/invites", tag = "access-groups", request_body = CreateInvite,
    params(("id" = String, Path, description = "Group id")), security(("bearer" = [])),
    responses((status = 201, description = "Invited; the mail is in the outbox", body = InviteView),
        (status = 400, description = "Invalid field", body = ErrorBody), (status = 403, description = "Below Manager", body = ErrorBody),
        (status = 404, description = "Absent or not visible", body = ErrorBody), (status = 409, description = "Too many open invites", body = ErrorBody)))]
pub async fn create_invite(
    State(state): Ctx,
    caller: Caller,
    Path(id): Id,
    ApiJson(request): ApiJson<CreateInvite>,
) -> WithStatus<InviteView> {
    let view = invites::create_invite(&state, &caller.actor(), &id, request).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Withdraws an invite (Manager+): its token stops working.
#[utoipa::path(delete, path = "/api/v1/access-groups/{id}/invites/{invite_id}", tag = "access-groups",
    params(("id" = String, Path, description = "Group id"),
        ("invite_id" = String, Path, description = "Invite id")),
    security(("bearer" = [])),
    responses((status = 204, description = "Withdrawn"),
        (status = 403, description = "Below Manager", body = ErrorBody), (status = 404, description = "Absent or not visible", body = ErrorBody)))]
pub async fn revoke_invite(
    State(state): Ctx,
    caller: Caller,
    Path((id, invite_id)): Path<(String, String)>,
) -> Done {
    invites::revoke_invite(&state, &caller.actor(), &id, &invite_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Accepts an invite (no login; the mailed token is the credential, L6).
/// Makes a Viewer account for the address if none exists. Works once and
/// only before it expires; otherwise nothing changes.
#[utoipa::path(post, path = "/api/v1/access-groups/invites/accept", tag = "access-groups", request_body = AcceptInvite,
    responses((status = 200, description = "Joined", body = Joined),
        (status = 400, description = "Malformed request or weak password", body = ErrorBody), (status = 404, description = "Unknown token", body = ErrorBody),
        (status = 409, description = "Already used, or the login name is taken", body = ErrorBody), (status = 410, description = "Expired", body = ErrorBody),
        (status = 429, description = "Too many requests from this source", body = ErrorBody),
        (status = 503, description = "Too many password hashes running; retry", body = ErrorBody)))]
pub async fn accept_invite(
    State(state): Ctx,
    ClientAddress(from): ClientAddress,
    ApiJson(request): ApiJson<AcceptInvite>,
) -> Answer<Joined> {
    if let Some(password) = &request.password {
        check_password(password)?;
    }
    Ok(Json(invites::accept_invite(&state, &from, request).await?))
}

/// The invite a mailed token names, before accepting it (M5, C11; no
/// login, nothing changes): the group's name, the address, and whether
/// accepting makes an account. The same refusals as accepting.
#[utoipa::path(get, path = "/api/v1/access-groups/invites/{token}", tag = "access-groups",
    params(("token" = String, Path, description = "The token from the invite mail")),
    responses((status = 200, description = "The open invite", body = InviteInfo),
        (status = 400, description = "Malformed token", body = ErrorBody), (status = 404, description = "Unknown token", body = ErrorBody),
        (status = 409, description = "Already used", body = ErrorBody), (status = 410, description = "Expired", body = ErrorBody),
        (status = 429, description = "Too many requests from this source", body = ErrorBody)))]
pub async fn describe_invite(State(state): Ctx, Path(token): Id) -> Answer<InviteInfo> {
    Ok(Json(public::describe_invite(&state, &token).await?))
}

/// A group's self-signup form (L6, C11; no login): its name and the
/// e-mail domains that may sign up. 404 unless the group takes self-signups.
#[utoipa::path(get, path = "/api/v1/access-groups/{id}/signup", tag = "access-groups",
    params(("id" = String, Path, description = "Group id")),
    responses((status = 200, description = "The form", body = SignupForm), (status = 404, description = "No such group with self-signup", body = ErrorBody),
        (status = 429, description = "Too many requests from this source", body = ErrorBody)))]
pub async fn signup_form(State(state): Ctx, Path(id): Id) -> Answer<SignupForm> {
    Ok(Json(public::signup_form(&state, &id)?))
}

/// Asks to join a group by self-signup (no login, L6). The group must
/// enable it and the address's domain must exactly match one it allows; a
/// confirmation token is mailed, and nothing else happens until it is
/// confirmed (within 24 hours). Asking again replaces the earlier request.
#[utoipa::path(post, path = "/api/v1/access-groups/{id}/signup", tag = "access-groups", request_body = SignupRequest,
    params(("id" = String, Path, description = "Group id")),
    responses((status = 202, description = "Confirmation mailed", body = SignupPending),
        (status = 400, description = "Invalid field", body = ErrorBody), (status = 403, description = "The e-mail domain is not allowed", body = ErrorBody),
        (status = 404, description = "No such group with self-signup", body = ErrorBody),
        (status = 409, description = "Too many pending signups", body = ErrorBody),
        (status = 429, description = "A confirmation went to this address less than an hour ago, or too many requests from this source", body = ErrorBody),
        (status = 503, description = "Too many password hashes running; retry", body = ErrorBody)))]
pub async fn request_signup(
    State(state): Ctx,
    ClientAddress(from): ClientAddress,
    Path(id): Id,
    ApiJson(request): ApiJson<SignupRequest>,
) -> WithStatus<SignupPending> {
    check_password(&request.password)?;
    let pending = signup::request_signup(&state, &from, &id, request).await?;
    Ok((StatusCode::ACCEPTED, Json(pending)))
}

/// Confirms a self-signup (no login; the mailed token is the credential,
/// L6): makes the account if the address has none, and the membership.
#[utoipa::path(post, path = "/api/v1/access-groups/signup/confirm", tag = "access-groups", request_body = ConfirmSignup,
    responses((status = 200, description = "Joined", body = Joined),
        (status = 400, description = "Malformed request", body = ErrorBody), (status = 404, description = "Unknown or already used token", body = ErrorBody),
        (status = 409, description = "Self-signup closed meanwhile, or the login name is taken", body = ErrorBody),
        (status = 410, description = "Expired", body = ErrorBody), (status = 429, description = "Too many requests from this source", body = ErrorBody)))]
pub async fn confirm_signup(
    State(state): Ctx,
    ClientAddress(from): ClientAddress,
    ApiJson(request): ApiJson<ConfirmSignup>,
) -> Answer<Joined> {
    Ok(Json(signup::confirm_signup(&state, &from, request).await?))
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
        (status = 400, description = "Not CSV, bad header, or too many rows", body = ErrorBody),
        (status = 403, description = "Below Manager", body = ErrorBody), (status = 404, description = "Absent or not visible", body = ErrorBody),
        (status = 413, description = "File too large", body = ErrorBody), (status = 415, description = "Not text/csv", body = ErrorBody)))]
pub async fn import_members(
    State(state): Ctx,
    caller: Caller,
    Path(id): Id,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer<ImportReport> {
    let actor = caller.actor();
    actor.require(signet_common::permissions::Role::Manager)?;
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
    let answer = import::import_members(&state, &actor, &id, &body).await?;
    Ok(Json(answer))
}

/// Makes a new shop key for a group (Manager+, L9), replacing any earlier
/// one. The key is shown once; only its SHA-256 is stored.
#[utoipa::path(post, path = "/api/v1/access-groups/{id}/shop-key", tag = "access-groups",
    params(("id" = String, Path, description = "Group id")), security(("bearer" = [])),
    responses((status = 201, description = "The new key", body = ShopKey),
        (status = 403, description = "Below Manager", body = ErrorBody), (status = 404, description = "Absent or not visible", body = ErrorBody)))]
pub async fn create_shop_key(
    State(state): Ctx,
    caller: Caller,
    Path(id): Id,
) -> WithStatus<ShopKey> {
    let shop_key = shop::create_shop_key(&state, &caller.actor(), &id).await?;
    Ok((StatusCode::CREATED, Json(ShopKey { shop_key })))
}

/// Deletes a group's shop key (Manager+): the shop hook stops working.
#[utoipa::path(delete, path = "/api/v1/access-groups/{id}/shop-key", tag = "access-groups",
    params(("id" = String, Path, description = "Group id")), security(("bearer" = [])),
    responses((status = 204, description = "Deleted"),
        (status = 403, description = "Below Manager", body = ErrorBody), (status = 404, description = "Absent or not visible", body = ErrorBody)))]
pub async fn delete_shop_key(State(state): Ctx, caller: Caller, Path(id): Id) -> Done {
    shop::delete_shop_key(&state, &caller.actor(), &id).await?;
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
        (status = 200, description = "Order already handled", body = ShopResult), (status = 400, description = "Invalid field", body = ErrorBody),
        (status = 401, description = "Wrong or missing shop key", body = ErrorBody),
        (status = 409, description = "Order id reused for another address, login name taken, or group full", body = ErrorBody)))]
pub async fn shop_member(
    State(state): Ctx,
    ClientAddress(from): ClientAddress,
    Path(id): Id,
    headers: HeaderMap,
    ApiJson(request): ApiJson<ShopOrderRequest>,
) -> WithStatus<ShopResult> {
    let key = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let result = shop::shop_member(&state, &from, &id, key, request).await?;
    Ok((super::created_if(!result.replayed), Json(result)))
}
