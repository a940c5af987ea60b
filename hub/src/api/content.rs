//! `/api/v1/content` (T2, D2, A8) and `/api/v1/device/content/{sha256}`
//! (S7, D2).
//!
//! Rules:
//! - an upload is the raw request body, streamed to disk and hashed as it
//!   arrives (never held in memory), cut off at `max_upload_bytes` (413);
//!   its type comes from the bytes, not a name (415 for unknown types); a
//!   refused or broken upload leaves no file and no record; duration and
//!   resolution come from GStreamer's discoverer where the media has them;
//! - identical bytes are stored once; each upload still gets its own item;
//! - Contributor and above upload and delete items at nodes inside their
//!   domain; callers see items inside their domain and items at the nodes
//!   above it, which are usable there (T2) but changed only from above;
//!   anything else is 404 (T4);
//! - replacing an item's bytes (`PUT`) is a content change for approval
//!   (A3); a rename (`PATCH`) is not; every write to an item obeys the
//!   restricted-node rule (A1); templates are written at `/api/v1/templates`;
//! - an item a template shows or an access group holds is not deleted (409);
//! - a deleted item's blob goes when no other item uses it;
//! - copy-down and the approval actions (`copy`, `request-approval`,
//!   `approve`, `reject`) follow [`super::approval`];
//! - the device route serves a blob, whole or one `Range` (206, 416), only
//!   to a device [`device_may_fetch`] allows, authenticated by its pairing
//!   credentials ([`DeviceAuth`], 401 otherwise).

use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use signet_common::approval::{
    ApprovalEvent, ApprovalProfile, ApprovalState, Change, ItemApproval,
};
use signet_common::digest::Sha256;
use signet_common::documents::ItemKind;
use signet_common::ids::{DeviceId, ItemId, NodeId, UserId};
use signet_common::permissions::Role;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::approval::{self, ApproveRequest, CopyRequest, Items, RejectRequest};
use super::{ApiError, ApiJson, ApiQuery, AppState, Caller};
use crate::content::inspect::{InspectError, inspect};
use crate::content::media::{self, MediaInfo};
use crate::content::range::{self, RangeAnswer};
use crate::content::templates::{APPROVAL_REQUESTS, TEMPLATES};
use crate::content::thumbnail;
use crate::content::{
    BlobError, BlobStore, CONTENT, CONTENT_BY_HASH, ContentItem, CopySource, MAX_ITEM_NAME_LEN,
    StagedBlob, device_may_fetch, hash_key, items_with_hash, users_of,
};
use crate::identity::new_id;
use crate::store::WriteBatch;
use crate::tenancy::restricted::{self, ItemChange};
use crate::tenancy::{NODES, Node};

/// The content routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_content, upload_content))
        .routes(routes!(
            get_content,
            replace_content,
            rename_content,
            delete_content
        ))
        .routes(routes!(copy_content))
        .routes(routes!(request_content_approval))
        .routes(routes!(approve_content))
        .routes(routes!(reject_content))
        .routes(routes!(content_thumbnail))
        .routes(routes!(device_content))
}

/// Where an upload goes and what it is called.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    /// The node (inside the caller's domain).
    #[param(value_type = String)]
    pub node: NodeId,
    /// Display name (1 to 256 bytes).
    pub name: String,
}

/// A content item as the API shows it.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct ContentView {
    /// Stable id.
    #[schema(value_type = String)]
    pub id: ItemId,
    /// The node it belongs to.
    #[schema(value_type = String)]
    pub node: NodeId,
    /// Display name.
    pub name: String,
    /// `video`, `image`, `audio` or `template`.
    #[schema(value_type = String)]
    pub kind: ItemKind,
    /// SHA-256 of the bytes, lowercase hex.
    #[schema(value_type = String)]
    pub sha256: Sha256,
    /// Size in bytes.
    pub size: u64,
    /// Detected media type.
    pub media_type: String,
    /// Uploader's user id.
    #[schema(value_type = String)]
    pub created_by: UserId,
    /// Upload time.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Playing time in milliseconds, when known.
    pub duration_ms: Option<u64>,
    /// Width in pixels, when known.
    pub width: Option<u32>,
    /// Height in pixels, when known.
    pub height: Option<u32>,
    /// `active`, `inactive` or `pending` (A3); only active items play (A7).
    #[schema(value_type = String)]
    pub approval_state: ApprovalState,
    /// The approved version's hash, when active (A8).
    #[schema(value_type = Option<String>)]
    pub approved_hash: Option<Sha256>,
    /// Why the last approval request was rejected, while the item is inactive.
    pub rejection_reason: Option<String>,
    /// The hash approval is about: the bytes' SHA-256 for media, the layout
    /// hash (feeds left out) for templates.
    #[schema(value_type = String)]
    pub approval_hash: Sha256,
    /// Counts saves, from 1.
    pub revision: u64,
    /// The item and revision this one was copied from (A2).
    pub source: Option<CopySource>,
    /// Last save.
    pub updated_at: chrono::DateTime<chrono::Utc>,
    /// Who saved it last.
    #[schema(value_type = String)]
    pub updated_by: UserId,
    /// Whether `GET /api/v1/content/{id}/thumbnail` answers an image (C5).
    pub thumbnail: bool,
}

impl From<ContentItem> for ContentView {
    fn from(item: ContentItem) -> Self {
        Self {
            id: item.id,
            node: item.node,
            name: item.name,
            kind: item.kind,
            sha256: item.sha256,
            size: item.size,
            media_type: item.media_type,
            created_by: item.created_by,
            created_at: item.created_at,
            duration_ms: item.duration_ms,
            width: item.width,
            height: item.height,
            approval_state: item.approval.state(),
            approved_hash: item.approval.approved_hash().copied(),
            rejection_reason: match &item.approval {
                ItemApproval::Inactive { rejection_reason } => rejection_reason.clone(),
                _ => None,
            },
            approval_hash: item.approval_hash,
            revision: item.revision,
            source: item.source,
            updated_at: item.updated_at,
            updated_by: item.updated_by,
            thumbnail: item.thumbnail,
        }
    }
}

/// Whether the caller sees `item`: its node is inside the caller's domain,
/// or above it, where the item is usable in the domain (T2).
pub(super) fn visible(caller: &Caller, item: &ContentItem) -> bool {
    caller.sees_at_or_above(&item.node)
}

pub(super) fn load_visible(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<ContentItem, ApiError> {
    state
        .store
        .get::<ContentItem>(CONTENT, id)?
        .filter(|item| visible(caller, item))
        .ok_or_else(|| ApiError::not_found("content item"))
}

pub(super) fn blob_error(e: BlobError) -> ApiError {
    match e {
        BlobError::TooLarge { .. } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "upload_too_large",
            e.to_string(),
        ),
        BlobError::Unsupported => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_content_type",
            e.to_string(),
        ),
        BlobError::Body(_) => ApiError::bad_request("upload_incomplete", e.to_string()),
        BlobError::Io(_) => ApiError::internal(&e),
    }
}

/// The answer to an upload [`inspect`] refused: 400 `image_too_large` or
/// `unreadable_media`.
fn inspect_error(e: &InspectError) -> ApiError {
    match e {
        InspectError::TooManyPixels { .. } => {
            ApiError::bad_request("image_too_large", e.to_string())
        }
        InspectError::Unreadable { .. } => ApiError::bad_request("unreadable_media", e.to_string()),
        InspectError::Io(_) => ApiError::internal(e),
    }
}

/// A1: refuses (403) a change the restricted node does not allow.
pub(super) fn check_restriction(
    caller: &Caller,
    node: &Node,
    change: ItemChange,
) -> Result<(), ApiError> {
    restricted::check_item_change(
        &caller.tree,
        node,
        &caller.user.id,
        &caller.domain(),
        change,
    )
    .map_err(|e| ApiError::forbidden(e.to_string()))
}

pub(super) fn check_name(name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty()
        || name.len() > MAX_ITEM_NAME_LEN
        || name.chars().any(char::is_control)
    {
        return Err(ApiError::bad_request(
            "invalid_name",
            format!("name must be 1 to {MAX_ITEM_NAME_LEN} bytes of text"),
        ));
    }
    Ok(())
}

/// Content items the caller sees: inside its domain and above it (T2).
#[utoipa::path(get, path = "/api/v1/content", tag = "content", security(("bearer" = [])),
    responses((status = 200, description = "Visible items", body = Vec<ContentView>),
        (status = 401, description = "No valid token", body = super::ErrorBody)))]
pub async fn list_content(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<ContentView>>, ApiError> {
    let items: Vec<ContentItem> = state.store.scan(CONTENT, "")?;
    Ok(Json(
        items
            .into_iter()
            .filter(|item| visible(&caller, item))
            .map(ContentView::from)
            .collect(),
    ))
}

/// Uploads a content item: the raw body, streamed (Contributor+).
#[utoipa::path(post, path = "/api/v1/content", tag = "content", params(UploadQuery),
    request_body(content = super::schemas::Binary, content_type = "application/octet-stream",
        description = "The item's bytes; the type is detected from them"),
    security(("bearer" = [])),
    responses((status = 201, description = "Stored", body = ContentView),
        (status = 400, description = "Invalid name, incomplete body, an image over max_image_pixels or media that cannot be read", body = super::ErrorBody),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Below Contributor", body = super::ErrorBody),
        (status = 404, description = "Node absent or not visible", body = super::ErrorBody),
        (status = 413, description = "Larger than max_upload_bytes", body = super::ErrorBody),
        (status = 415, description = "Not a known media type or template", body = super::ErrorBody)))]
pub async fn upload_content(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<ContentView>), ApiError> {
    caller.require(Role::Contributor)?;
    check_name(&query.name)?;
    if !caller.sees(&query.node) {
        return Err(ApiError::not_found("node"));
    }
    let blobs = BlobStore::new(&state.config.data);
    let (staged, media) = stage_media(&state, &blobs, &headers, body).await?;
    let thumbnail = render_thumbnail(&state, &staged, &media).await;
    let _write = state.store.write_lock().await;
    let node = state
        .store
        .get::<Node>(NODES, query.node.as_str())?
        .ok_or_else(|| ApiError::not_found("node"))?;
    check_restriction(&caller, &node, ItemChange::Add)?;
    let now = state.clock.now();
    let item = ContentItem {
        id: ItemId::new(new_id("c-")),
        node: query.node,
        name: query.name.trim().to_owned(),
        kind: staged.detected.kind,
        sha256: staged.sha256,
        size: staged.size,
        media_type: staged.detected.media_type.to_owned(),
        created_by: caller.user.id.clone(),
        created_at: now,
        duration_ms: media.duration_ms,
        width: media.width,
        height: media.height,
        approval: ItemApproval::created(
            ApprovalProfile {
                requires_approval: caller.user.requires_approval,
            },
            staged.sha256,
        ),
        approval_hash: staged.sha256,
        revision: 1,
        source: None,
        updated_at: now,
        updated_by: caller.user.id.clone(),
        thumbnail: false,
    };
    blobs.commit(staged).await.map_err(blob_error)?;
    let item = ContentItem {
        thumbnail: thumbnail::store(&state.config.data, &item.sha256, thumbnail).await,
        ..item
    };
    let mut batch = WriteBatch::new();
    batch.put(CONTENT, item.id.as_str(), &item)?;
    batch.put(CONTENT_BY_HASH, &hash_key(&item.sha256, &item.id), &item.id)?;
    caller
        .audit(
            &state,
            "content.upload",
            item.id.as_str(),
            Some(item.node.clone()),
            serde_json::json!({"name": item.name, "sha256": item.sha256, "size": item.size,
                "media_type": item.media_type}),
        )
        .record(&mut batch)?;
    state.store.apply(batch).await?;
    Ok((StatusCode::CREATED, Json(item.into())))
}

/// Streams a media body into a staged blob (D2): refused early when its
/// declared length is over `max_upload_bytes` (413), cut off there when it
/// lies, refused when it is no known media type or a template (415: those
/// are written at `/api/v1/templates`, where they are validated, D6); then
/// its duration and resolution are read where the type has them. A refusal
/// leaves no file.
async fn stage_media(
    state: &AppState,
    blobs: &BlobStore,
    headers: &HeaderMap,
    body: Body,
) -> Result<(StagedBlob, MediaInfo), ApiError> {
    let limit = state.config.max_upload_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(blob_error(BlobError::TooLarge { limit }));
    }
    let staged = blobs
        .stage(body.into_data_stream(), limit)
        .await
        .map_err(blob_error)?;
    if staged.detected.kind == ItemKind::Template {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "templates are created and saved at /api/v1/templates, where they are validated (D6)",
        ));
    }
    // S13: the pixel count from the header and the container structure,
    // before the discoverer decodes anything.
    if let Some(path) = staged.path() {
        let (path, media_type) = (path.to_owned(), staged.detected.media_type);
        let max_pixels = state.config.max_image_pixels;
        tokio::task::spawn_blocking(move || inspect(&path, media_type, max_pixels))
            .await
            .map_err(|e| ApiError::internal(&e))?
            .map_err(|e| inspect_error(&e))?;
    }
    let media = match staged.path() {
        Some(path) => media::probe(path, staged.detected.kind, staged.size).await,
        None => MediaInfo::default(),
    };
    Ok((staged, media))
}

/// The thumbnail of a staged upload (C5), rendered before the store's
/// write lock is taken (it may take seconds); `None` when there is none.
async fn render_thumbnail(
    state: &AppState,
    staged: &StagedBlob,
    media: &MediaInfo,
) -> Option<thumbnail::Thumbnail> {
    let path = staged.path()?;
    thumbnail::render(
        &state.config.data,
        &staged.sha256,
        path,
        staged.size,
        staged.detected.kind,
        staged.detected.media_type,
        media,
    )
    .await
}

/// A new name for an item.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameContent {
    /// Display name (1 to 256 bytes).
    pub name: String,
}

/// Replaces an item's bytes (Contributor+, inside the caller's domain, A1):
/// the raw body, streamed like an upload. New bytes are a content change
/// (A3): the item becomes inactive if the caller's profile requires
/// approval, else active with the new hash. The same bytes change nothing.
#[utoipa::path(put, path = "/api/v1/content/{id}", tag = "content",
    params(("id" = String, Path, description = "Item id")),
    request_body(content = super::schemas::Binary, content_type = "application/octet-stream",
        description = "The new bytes; the type is detected from them"),
    security(("bearer" = [])),
    responses((status = 200, description = "Saved (or unchanged)", body = ContentView),
        (status = 400, description = "Incomplete body, an image over max_image_pixels or media that cannot be read", body = super::ErrorBody),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Below Contributor, above the caller's domain, or a restricted node (A1)", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody),
        (status = 413, description = "Larger than max_upload_bytes", body = super::ErrorBody),
        (status = 415, description = "Not a known media type, or a template", body = super::ErrorBody)))]
pub async fn replace_content(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<ContentView>, ApiError> {
    caller.require(Role::Contributor)?;
    {
        let item = load_visible(&state, &caller, &id)?;
        if item.kind == ItemKind::Template {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "templates are saved at /api/v1/templates/{id}, where they are validated (D6)",
            ));
        }
    }
    let blobs = BlobStore::new(&state.config.data);
    let (staged, media) = stage_media(&state, &blobs, &headers, body).await?;
    let thumbnail = render_thumbnail(&state, &staged, &media).await;
    let _write = state.store.write_lock().await;
    let mut item = load_visible(&state, &caller, &id)?;
    if !caller.sees(&item.node) {
        return Err(ApiError::forbidden(
            "an item above the caller's domain is changed from there (T2)",
        ));
    }
    let node = state
        .store
        .get::<Node>(NODES, item.node.as_str())?
        .ok_or_else(|| ApiError::not_found("node"))?;
    check_restriction(&caller, &node, ItemChange::Edit)?;
    if staged.sha256 == item.sha256 {
        return Ok(Json(item.into()));
    }
    let transition = item
        .approval
        .apply(
            &ApprovalEvent::Saved {
                change: Change::Content,
                content_hash: staged.sha256,
                strict_mode: node.strict_feeds,
            },
            ApprovalProfile {
                requires_approval: caller.user.requires_approval,
            },
        )
        .map_err(|e| approval::approval_error(&e))?;
    let old_sha = item.sha256;
    let from = transition.from;
    item.approval = transition.approval;
    item.kind = staged.detected.kind;
    item.media_type = staged.detected.media_type.to_owned();
    item.sha256 = staged.sha256;
    item.approval_hash = staged.sha256;
    item.size = staged.size;
    item.duration_ms = media.duration_ms;
    item.width = media.width;
    item.height = media.height;
    item.revision = item.revision.saturating_add(1);
    item.updated_at = state.clock.now();
    item.updated_by = caller.user.id.clone();
    blobs.commit(staged).await.map_err(blob_error)?;
    item.thumbnail = thumbnail::store(&state.config.data, &item.sha256, thumbnail).await;
    let mut batch = WriteBatch::new();
    batch.put(CONTENT, item.id.as_str(), &item)?;
    batch.delete(CONTENT_BY_HASH, &hash_key(&old_sha, &item.id));
    batch.put(CONTENT_BY_HASH, &hash_key(&item.sha256, &item.id), &item.id)?;
    batch.delete(APPROVAL_REQUESTS, item.id.as_str());
    caller
        .audit(
            &state,
            "content.replace",
            item.id.as_str(),
            Some(item.node.clone()),
            serde_json::json!({"sha256": {"from": old_sha, "to": item.sha256},
                "size": item.size, "media_type": item.media_type, "revision": item.revision,
                "approval": {"from": from, "to": item.approval.state()}}),
        )
        .record(&mut batch)?;
    state.store.apply(batch).await?;
    if items_with_hash(&state.store, &old_sha)?.is_empty() {
        blobs.remove(&old_sha).await.map_err(blob_error)?;
    }
    Ok(Json(item.into()))
}

/// Renames an item (Contributor+, inside the caller's domain, A1). A name
/// is not content: the approval state stays.
#[utoipa::path(patch, path = "/api/v1/content/{id}", tag = "content", request_body = RenameContent,
    params(("id" = String, Path, description = "Item id")), security(("bearer" = [])),
    responses((status = 200, description = "Renamed", body = ContentView),
        (status = 400, description = "Invalid name", body = super::ErrorBody),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Below Contributor, above the caller's domain, or a restricted node (A1)", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody)))]
pub async fn rename_content(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<RenameContent>,
) -> Result<Json<ContentView>, ApiError> {
    caller.require(Role::Contributor)?;
    check_name(&request.name)?;
    let _write = state.store.write_lock().await;
    let mut item = load_visible(&state, &caller, &id)?;
    if !caller.sees(&item.node) {
        return Err(ApiError::forbidden(
            "an item above the caller's domain is changed from there (T2)",
        ));
    }
    let node = state
        .store
        .get::<Node>(NODES, item.node.as_str())?
        .ok_or_else(|| ApiError::not_found("node"))?;
    check_restriction(&caller, &node, ItemChange::Edit)?;
    let name = request.name.trim().to_owned();
    if name == item.name {
        return Ok(Json(item.into()));
    }
    let old = std::mem::replace(&mut item.name, name);
    item.updated_at = state.clock.now();
    item.updated_by = caller.user.id.clone();
    let mut batch = WriteBatch::new();
    batch.put(CONTENT, item.id.as_str(), &item)?;
    caller
        .audit(
            &state,
            "content.rename",
            item.id.as_str(),
            Some(item.node.clone()),
            serde_json::json!({"name": {"from": old, "to": item.name}}),
        )
        .record(&mut batch)?;
    state.store.apply(batch).await?;
    Ok(Json(item.into()))
}

/// One content item the caller sees.
#[utoipa::path(get, path = "/api/v1/content/{id}", tag = "content",
    params(("id" = String, Path, description = "Item id")), security(("bearer" = [])),
    responses((status = 200, description = "The item", body = ContentView),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody)))]
pub async fn get_content(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ContentView>, ApiError> {
    Ok(Json(load_visible(&state, &caller, &id)?.into()))
}

/// The thumbnail of a content item the caller sees (C5): JPEG or PNG, at
/// most 320 pixels wide; 404 when the item has none (audio, templates,
/// media GStreamer could not render) or is not visible (T4).
#[utoipa::path(get, path = "/api/v1/content/{id}/thumbnail", tag = "content",
    params(("id" = String, Path, description = "Item id")), security(("bearer" = [])),
    responses((status = 200, description = "The thumbnail",
            content((super::schemas::Binary = "image/jpeg"), (super::schemas::Binary = "image/png"))),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 404, description = "No thumbnail, or the item is absent or not visible", body = super::ErrorBody)))]
pub async fn content_thumbnail(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let item = load_visible(&state, &caller, &id)?;
    let found = if item.thumbnail {
        thumbnail::find(&state.config.data, &item.sha256).await
    } else {
        None
    };
    let (path, format) = found.ok_or_else(|| ApiError::not_found("thumbnail"))?;
    let bytes = match tokio::fs::read(&path).await {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::not_found("thumbnail"));
        }
        Err(e) => return Err(ApiError::internal(&e)),
    };
    let mut response = (StatusCode::OK, bytes).into_response();
    insert(&mut response, header::CONTENT_TYPE, format.media_type());
    insert(
        &mut response,
        header::CACHE_CONTROL,
        "private, max-age=3600",
    );
    insert(&mut response, header::ETAG, &format!("\"{}\"", item.sha256));
    insert(&mut response, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    Ok(response)
}

/// Deletes a content item inside the caller's domain (Contributor+); its
/// blob goes when no other item uses it.
#[utoipa::path(delete, path = "/api/v1/content/{id}", tag = "content",
    params(("id" = String, Path, description = "Item id")), security(("bearer" = [])),
    responses((status = 204, description = "Deleted"),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Below Contributor, or above the caller's domain", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody),
        (status = 409, description = "Still used by a template, access group or playlist", body = super::ErrorBody)))]
pub async fn delete_content(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    delete_item(&state, &caller, &id).await
}

/// Deletes the item `id` (media or template) for `caller`: Contributor+,
/// inside the caller's domain, allowed by A1; the blob goes when no other
/// item uses it.
pub(super) async fn delete_item(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Contributor)?;
    let _write = state.store.write_lock().await;
    let item = load_visible(state, caller, id)?;
    if !caller.sees(&item.node) {
        return Err(ApiError::forbidden(
            "an item above the caller's domain can only be deleted from there (T2)",
        ));
    }
    let node = state
        .store
        .get::<Node>(NODES, item.node.as_str())?
        .ok_or_else(|| ApiError::not_found("node"))?;
    check_restriction(caller, &node, ItemChange::Delete)?;
    let users = users_of(&state.store, &item.id)?;
    if !users.is_empty() {
        return Err(ApiError::conflict(
            "item_in_use",
            format!(
                "{} is still used by {}: remove it there first",
                item.id,
                users.join(", ")
            ),
        ));
    }
    let mut batch = WriteBatch::new();
    batch.delete(CONTENT, item.id.as_str());
    batch.delete(CONTENT_BY_HASH, &hash_key(&item.sha256, &item.id));
    batch.delete(TEMPLATES, item.id.as_str());
    batch.delete(APPROVAL_REQUESTS, item.id.as_str());
    caller
        .audit(
            state,
            "content.delete",
            item.id.as_str(),
            Some(item.node.clone()),
            serde_json::json!({"name": item.name, "sha256": item.sha256}),
        )
        .record(&mut batch)?;
    state.store.apply(batch).await?;
    if items_with_hash(&state.store, &item.sha256)?.is_empty() {
        BlobStore::new(&state.config.data)
            .remove(&item.sha256)
            .await
            .map_err(blob_error)?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Copies an item of a restricted node into a non-restricted node below it
/// (A2); the copy is active and names its source and revision.
#[utoipa::path(post, path = "/api/v1/content/{id}/copy", tag = "content", request_body = CopyRequest,
    params(("id" = String, Path, description = "Item id")), security(("bearer" = [])),
    responses((status = 201, description = "Copied", body = ContentView),
        (status = 400, description = "Destination restricted or not below the source", body = super::ErrorBody),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Below Contributor", body = super::ErrorBody),
        (status = 404, description = "Item or destination absent or not visible", body = super::ErrorBody),
        (status = 409, description = "Source not in a restricted node, or not approved", body = super::ErrorBody)))]
pub async fn copy_content(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<CopyRequest>,
) -> Result<(StatusCode, Json<ContentView>), ApiError> {
    approval::copy(&state, &caller, &id, Items::Any, request).await
}

/// Requests approval of the item's current version (A5): one e-mail to the
/// node's content manager; asking again re-sends the same request.
#[utoipa::path(post, path = "/api/v1/content/{id}/request-approval", tag = "content",
    params(("id" = String, Path, description = "Item id")), security(("bearer" = [])),
    responses((status = 200, description = "Pending", body = ContentView),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Below Contributor or above the caller's domain", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody),
        (status = 409, description = "Already active, or no content-manager address", body = super::ErrorBody)))]
pub async fn request_content_approval(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ContentView>, ApiError> {
    approval::request_approval(&state, &caller, &id, Items::Any).await
}

/// Approves the pending version (A6: `approve_content` on the node or above).
#[utoipa::path(post, path = "/api/v1/content/{id}/approve", tag = "content",
    request_body = ApproveRequest,
    params(("id" = String, Path, description = "Item id")), security(("bearer" = [])),
    responses((status = 200, description = "Active", body = ContentView),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Without approve_content here", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody),
        (status = 409, description = "Not pending, or another version", body = super::ErrorBody)))]
pub async fn approve_content(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<ApproveRequest>,
) -> Result<Json<ContentView>, ApiError> {
    approval::approve(&state, &caller, &id, Items::Any, request).await
}

/// Rejects the pending version with a reason (A6).
#[utoipa::path(post, path = "/api/v1/content/{id}/reject", tag = "content",
    request_body = RejectRequest,
    params(("id" = String, Path, description = "Item id")), security(("bearer" = [])),
    responses((status = 200, description = "Inactive, with the reason", body = ContentView),
        (status = 400, description = "Blank or overlong reason", body = super::ErrorBody),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Without approve_content here", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody),
        (status = 409, description = "Not pending", body = super::ErrorBody)))]
pub async fn reject_content(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<RejectRequest>,
) -> Result<Json<ContentView>, ApiError> {
    approval::reject(&state, &caller, &id, Items::Any, request).await
}

/// The device a device-route request comes from (S7):
/// `Authorization: Basic base64(device_id:secret)` with the secret the
/// device collected at pairing, checked like its broker login
/// ([`crate::devices::broker_login`]). Anything else is 401
/// `device_credentials_required`.
pub struct DeviceAuth {
    /// The authenticated device.
    pub device: DeviceId,
}

/// The longest `Authorization` header a device may send, in bytes.
const MAX_DEVICE_AUTH_LEN: usize = 512;

impl FromRequestParts<AppState> for DeviceAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        use base64::Engine as _;
        let refused = || {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "device_credentials_required",
                "expected 'Authorization: Basic base64(device_id:secret)' of a paired device",
            )
        };
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.len() <= MAX_DEVICE_AUTH_LEN)
            .ok_or_else(refused)?;
        let encoded = header
            .strip_prefix("Basic ")
            .or_else(|| header.strip_prefix("basic "))
            .ok_or_else(refused)?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| refused())?;
        let decoded = String::from_utf8(decoded).map_err(|_| refused())?;
        let (id, secret) = decoded.split_once(':').ok_or_else(refused)?;
        if !crate::devices::broker_login(&state.store, id, secret)? {
            return Err(refused());
        }
        Ok(Self {
            device: DeviceId::from(id),
        })
    }
}

/// A blob for a device, whole or one `Range` (D2), only if the device is
/// entitled to an item with those bytes (S7).
#[utoipa::path(get, path = "/api/v1/device/content/{sha256}", tag = "device",
    params(("sha256" = String, Path, description = "SHA-256 of the bytes, lowercase hex")),
    responses((status = 200, description = "The whole blob", body = super::schemas::Binary, content_type = "application/octet-stream"),
        (status = 206, description = "The requested range", body = super::schemas::Binary, content_type = "application/octet-stream"),
        (status = 400, description = "Not a SHA-256", body = super::ErrorBody),
        (status = 401, description = "No device credentials", body = super::ErrorBody),
        (status = 404, description = "Absent or not entitled", body = super::ErrorBody),
        (status = 416, description = "Range outside the blob", body = super::ErrorBody)))]
pub async fn device_content(
    State(state): State<AppState>,
    device: DeviceAuth,
    Path(sha256): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let sha256: Sha256 = sha256
        .parse()
        .map_err(|e: signet_common::digest::BadDigest| {
            ApiError::bad_request("invalid_sha256", e.to_string())
        })?;
    if !device_may_fetch(&state.store, &device.device, &sha256, state.clock.now())? {
        return Err(ApiError::not_found("content"));
    }
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    blob_response(&BlobStore::new(&state.config.data), &sha256, range).await
}

/// The answer for blob `sha256` and an optional `Range` header value: 200
/// with the whole blob, 206 with `Content-Range` and exactly the requested
/// bytes, 416 with `Content-Range: bytes */size`, 404 when absent. The
/// bytes are streamed from the file.
///
/// # Errors
/// 404 when the blob is absent, 416, or 500 when the disk fails.
pub async fn blob_response(
    blobs: &BlobStore,
    sha256: &Sha256,
    range: Option<&str>,
) -> Result<Response, ApiError> {
    let path = blobs.path_of(sha256);
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::not_found("content"));
        }
        Err(e) => return Err(ApiError::internal(&e)),
    };
    let size = file
        .metadata()
        .await
        .map_err(|e| ApiError::internal(&e))?
        .len();
    let (status, start, len) = match range::answer(range, size) {
        RangeAnswer::Full => (StatusCode::OK, 0, size),
        RangeAnswer::Partial { start, end } => {
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        RangeAnswer::Unsatisfiable => {
            let mut response = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                format!("the blob has {size} bytes"),
            )
            .into_response();
            insert(
                &mut response,
                header::CONTENT_RANGE,
                &format!("bytes */{size}"),
            );
            return Ok(response);
        }
    };
    if start > 0 {
        file.seek(std::io::SeekFrom::Start(start))
            .await
            .map_err(|e| ApiError::internal(&e))?;
    }
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file.take(len)));
    let mut response = (status, body).into_response();
    insert(&mut response, header::CONTENT_LENGTH, &len.to_string());
    insert(
        &mut response,
        header::CONTENT_TYPE,
        "application/octet-stream",
    );
    insert(&mut response, header::ACCEPT_RANGES, "bytes");
    insert(&mut response, header::ETAG, &format!("\"{sha256}\""));
    if status == StatusCode::PARTIAL_CONTENT {
        let last = start + len - 1;
        insert(
            &mut response,
            header::CONTENT_RANGE,
            &format!("bytes {start}-{last}/{size}"),
        );
    }
    Ok(response)
}

fn insert(response: &mut Response, name: header::HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}
