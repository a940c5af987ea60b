//! `/api/v1/playlists` and `/api/v1/schedules` (D5, T2, T4, A1, A7): what
//! plays where, as operators write it. The rules live in
//! [`crate::schedules::service`]; handlers extract, call it and map its
//! [`SchedulesError`] (404 not found, 403 forbidden or role too low, 400
//! invalid, 409 conflict).

use super::prelude::*;
use crate::schedules::service::{
    self, CreatePlaylist, CreateSchedule, Preview, PreviewQuery, ReplaceSchedule, UpdatePlaylist,
};
use crate::schedules::{GroupSchedule, Playlist, SchedulesError};

concern_routes! { list_playlists, create_playlist; get_playlist, update_playlist, delete_playlist;
list_schedules, create_schedule; get_schedule, replace_schedule, delete_schedule;
preview_schedule }

impl From<SchedulesError> for ApiError {
    fn from(e: SchedulesError) -> Self {
        match e {
            SchedulesError::NotFound(what) => Self::not_found(&what),
            SchedulesError::Forbidden(message) => Self::forbidden(message),
            SchedulesError::RoleTooLow(e) => e.into(),
            SchedulesError::InvalidName(e) => e.into(),
            SchedulesError::Invalid { code, message } => Self::bad_request(code, message),
            SchedulesError::Conflict { code, message } => Self::conflict(code, message),
            SchedulesError::Store(e) => e.into(),
        }
    }
}

/// Playlists the caller sees: inside its domain and above it (T2).
#[utoipa::path(get, path = "/api/v1/playlists", tag = "playlists", security(("bearer" = [])),
    responses((status = 200, description = "Visible playlists", body = Vec<Playlist>)))]
pub async fn list_playlists(State(state): Ctx, caller: Caller) -> Answer<Vec<Playlist>> {
    Ok(Json(service::playlists(&state, &caller.actor()).await?))
}

/// Creates a playlist at a node inside the caller's domain (Contributor+).
#[utoipa::path(post, path = "/api/v1/playlists", tag = "playlists", request_body = CreatePlaylist,
    security(("bearer" = [])),
    responses((status = 201, description = "Created", body = Playlist),
        (status = 400, description = "Invalid name, item id or duration; too many items; an item not usable at the node (T2)", body = ErrorBody),
        (status = 403, description = "Below Contributor, or a restricted node (A1)", body = ErrorBody),
        (status = 404, description = "Node or an item absent or not visible", body = ErrorBody)))]
pub async fn create_playlist(
    State(state): Ctx,
    caller: Caller,
    ApiJson(request): ApiJson<CreatePlaylist>,
) -> WithStatus<Playlist> {
    let playlist = service::create_playlist(&state, &caller.actor(), request).await?;
    Ok((StatusCode::CREATED, Json(playlist)))
}

/// One playlist the caller sees.
#[utoipa::path(get, path = "/api/v1/playlists/{id}", tag = "playlists",
    params(("id" = String, Path, description = "Playlist id")), security(("bearer" = [])),
    responses((status = 200, description = "The playlist", body = Playlist), (status = 404, description = "Absent or not visible", body = ErrorBody)))]
pub async fn get_playlist(State(state): Ctx, caller: Caller, Path(id): Id) -> Answer<Playlist> {
    Ok(Json(service::playlist(&state, &caller.actor(), &id).await?))
}

/// Changes a playlist's name or items (Contributor+, inside the caller's
/// domain). Schedules using it keep using it; the new items must satisfy
/// the playlist's own rules, and every schedule using it must stay within
/// its size bound (409 otherwise).
#[utoipa::path(patch, path = "/api/v1/playlists/{id}", tag = "playlists", request_body = UpdatePlaylist,
    params(("id" = String, Path, description = "Playlist id")), security(("bearer" = [])),
    responses((status = 200, description = "Updated", body = Playlist),
        (status = 400, description = "Invalid name, item id or duration; too many items; an item not usable at the node (T2)", body = ErrorBody),
        (status = 403, description = "Below Contributor, above the caller's domain, or a restricted node (A1)", body = ErrorBody),
        (status = 404, description = "Playlist or an item absent or not visible", body = ErrorBody),
        (status = 409, description = "A schedule using it would outgrow its bound", body = ErrorBody)))]
pub async fn update_playlist(
    State(state): Ctx,
    caller: Caller,
    Path(id): Id,
    ApiJson(request): ApiJson<UpdatePlaylist>,
) -> Answer<Playlist> {
    let answer = service::update_playlist(&state, &caller.actor(), &id, request).await?;
    Ok(Json(answer))
}

/// Deletes a playlist no schedule uses (Contributor+, inside the caller's domain).
#[utoipa::path(delete, path = "/api/v1/playlists/{id}", tag = "playlists",
    params(("id" = String, Path, description = "Playlist id")), security(("bearer" = [])),
    responses((status = 204, description = "Deleted"),
        (status = 403, description = "Below Contributor, above the caller's domain, or a restricted node (A1)", body = ErrorBody),
        (status = 404, description = "Absent or not visible", body = ErrorBody), (status = 409, description = "A schedule uses it", body = ErrorBody)))]
pub async fn delete_playlist(State(state): Ctx, caller: Caller, Path(id): Id) -> Done {
    service::delete_playlist(&state, &caller.actor(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Schedules the caller sees: their group's node is inside its domain or
/// above it (T2).
#[utoipa::path(get, path = "/api/v1/schedules", tag = "schedules", security(("bearer" = [])),
    responses((status = 200, description = "Visible schedules", body = Vec<GroupSchedule>)))]
pub async fn list_schedules(State(state): Ctx, caller: Caller) -> Answer<Vec<GroupSchedule>> {
    Ok(Json(service::schedules(&state, &caller.actor())?))
}

/// Attaches a schedule to a group whose node is inside the caller's domain
/// (Contributor+); a group has at most one.
#[utoipa::path(post, path = "/api/v1/schedules", tag = "schedules", request_body = CreateSchedule,
    security(("bearer" = [])),
    responses((status = 201, description = "Created", body = GroupSchedule),
        (status = 400, description = "Invalid schedule (common's rules), entry or item id, duration; a playlist or item not usable at the group's node (T2); too large", body = ErrorBody),
        (status = 403, description = "Below Contributor", body = ErrorBody),
        (status = 404, description = "Group, a playlist or the default item absent or not visible", body = ErrorBody),
        (status = 409, description = "The group already has a schedule", body = ErrorBody)))]
pub async fn create_schedule(
    State(state): Ctx,
    caller: Caller,
    ApiJson(request): ApiJson<CreateSchedule>,
) -> WithStatus<GroupSchedule> {
    let schedule = service::create_schedule(&state, &caller.actor(), request).await?;
    Ok((StatusCode::CREATED, Json(schedule)))
}

/// One schedule the caller sees, as written (entries name playlists).
#[utoipa::path(get, path = "/api/v1/schedules/{id}", tag = "schedules",
    params(("id" = String, Path, description = "Schedule id")), security(("bearer" = [])),
    responses((status = 200, description = "The schedule", body = GroupSchedule), (status = 404, description = "Absent or not visible", body = ErrorBody)))]
pub async fn get_schedule(
    State(state): Ctx,
    caller: Caller,
    Path(id): Id,
) -> Answer<GroupSchedule> {
    Ok(Json(service::schedule(&state, &caller.actor(), &id)?))
}

/// Replaces a schedule's entries, merge mode and default item; its target
/// stays (Contributor+, inside the caller's domain).
#[utoipa::path(put, path = "/api/v1/schedules/{id}", tag = "schedules", request_body = ReplaceSchedule,
    params(("id" = String, Path, description = "Schedule id")), security(("bearer" = [])),
    responses((status = 200, description = "Replaced", body = GroupSchedule),
        (status = 400, description = "Invalid schedule (common's rules), entry or item id, duration; a playlist or item not usable at the group's node (T2); too large", body = ErrorBody),
        (status = 403, description = "Below Contributor, or above the caller's domain", body = ErrorBody),
        (status = 404, description = "Schedule, a playlist or the default item absent or not visible", body = ErrorBody)))]
pub async fn replace_schedule(
    State(state): Ctx,
    caller: Caller,
    Path(id): Id,
    ApiJson(request): ApiJson<ReplaceSchedule>,
) -> Answer<GroupSchedule> {
    let answer = service::replace_schedule(&state, &caller.actor(), &id, request).await?;
    Ok(Json(answer))
}

/// Detaches and deletes a schedule (Contributor+, inside the caller's
/// domain); its playlists stay.
#[utoipa::path(delete, path = "/api/v1/schedules/{id}", tag = "schedules",
    params(("id" = String, Path, description = "Schedule id")), security(("bearer" = [])),
    responses((status = 204, description = "Deleted"), (status = 403, description = "Below Contributor, or above the caller's domain", body = ErrorBody),
        (status = 404, description = "Absent or not visible", body = ErrorBody)))]
pub async fn delete_schedule(State(state): Ctx, caller: Caller, Path(id): Id) -> Done {
    service::delete_schedule(&state, &caller.actor(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What a schedule plays at an instant in a time zone, by common's
/// `evaluate` on its resolved form, every item treated as playable (the
/// device also skips unapproved, unlicensed or uncached items, A7, D4).
#[utoipa::path(get, path = "/api/v1/schedules/{id}/preview", tag = "schedules",
    params(("id" = String, Path, description = "Schedule id"), PreviewQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "What plays and until when", body = Preview),
        (status = 400, description = "Unknown time zone or bad instant", body = ErrorBody),
        (status = 404, description = "Absent or not visible", body = ErrorBody)))]
pub async fn preview_schedule(
    State(state): Ctx,
    caller: Caller,
    Path(id): Id,
    ApiQuery(query): ApiQuery<PreviewQuery>,
) -> Answer<Preview> {
    Ok(Json(
        service::preview(&state, &caller.actor(), &id, query).await?,
    ))
}
