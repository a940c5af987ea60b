//! `/api/v1/templates` (D6, A1–A6, A8): template layouts, their copies and
//! their approval.
//!
//! Rules:
//! - a template is a content item of kind `template`; its document is
//!   validated on every write ([`Template::validate`], 400
//!   `invalid_template` with the exact reason), and every zone `source`
//!   must name a media item the caller sees that is usable at the
//!   template's node (T2);
//! - Contributor+ create and save templates at nodes inside their domain,
//!   subject to the restricted-node rule (A1); callers see templates inside
//!   their domain and above it (T2);
//! - a save classifies the change (A3, A4): layout or content → the
//!   approval state follows the saver's profile; feed-only → the state is
//!   kept and a `template.feed_change` audit entry written (in strict mode a
//!   feed-URL change counts as content); nothing changed → nothing written;
//! - the stored bytes (served to devices by hash) always hold the current
//!   document, feeds included; the approval hash leaves feeds out (A8);
//! - `copy`, `request-approval`, `approve` and `reject` follow
//!   [`super::approval`].

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use signet_common::approval::{ApprovalEvent, Change, ItemApproval, Template, classify_change};
use signet_common::digest::Sha256;
use signet_common::documents::ItemKind;
use signet_common::ids::{ItemId, NodeId};
use signet_common::permissions::Role;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::approval::{
    self, ApproveRequest, CopyRequest, Items, RejectRequest, load_item, node_of, profile,
};
use super::content::{ContentView, blob_error, check_name, check_restriction, visible};
use super::{ApiError, ApiJson, AppState, Caller};
use crate::content::detect::MAX_TEMPLATE_BYTES;
use crate::content::templates::{
    APPROVAL_REQUESTS, TEMPLATES, load_template, sources_of, template_bytes,
};
use crate::content::{BlobStore, CONTENT, CONTENT_BY_HASH, ContentItem, hash_key, items_with_hash};
use crate::identity::new_id;
use crate::store::WriteBatch;
use crate::tenancy::restricted::ItemChange;
use crate::tenancy::{NODES, Node};

/// The template routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_templates, create_template))
        .routes(routes!(get_template, save_template, delete_template))
        .routes(routes!(copy_template))
        .routes(routes!(request_template_approval))
        .routes(routes!(approve_template))
        .routes(routes!(reject_template))
}

/// A new template.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTemplate {
    /// The node it belongs to (inside the caller's domain).
    #[schema(value_type = String)]
    pub node: NodeId,
    /// Display name (1 to 256 bytes).
    pub name: String,
    /// The layout: `{canvas: {width, height}, zones: [...]}`.
    #[schema(value_type = Object)]
    pub template: Template,
}

/// A save of a template.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SaveTemplate {
    /// A new name; unchanged when absent.
    pub name: Option<String>,
    /// The whole new layout.
    #[schema(value_type = Object)]
    pub template: Template,
}

/// A template as the API shows it: the item and its current document.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct TemplateView {
    /// The item: id, node, approval state, hashes, revision, source.
    #[serde(flatten)]
    pub item: ContentView,
    /// The current layout, feeds included.
    #[schema(value_type = Object)]
    pub template: Template,
}

fn view(item: ContentItem, template: Template) -> TemplateView {
    TemplateView {
        item: item.into(),
        template,
    }
}

fn document(state: &AppState, item: &ContentItem) -> Result<Template, ApiError> {
    load_template(&state.store, &item.id)?
        .ok_or_else(|| ApiError::internal(&format!("template {} has no document", item.id)))
}

/// Validates `template` for the node `node`: its own rules, and every zone
/// source a media item the caller sees, usable at `node` (T2).
fn check_template(
    state: &AppState,
    caller: &Caller,
    node: &NodeId,
    template: &Template,
) -> Result<(), ApiError> {
    template
        .validate()
        .map_err(|e| ApiError::bad_request("invalid_template", e.to_string()))?;
    for source in sources_of(template) {
        let usable = state
            .store
            .get::<ContentItem>(CONTENT, source.as_str())?
            .filter(|item| visible(caller, item) && caller.tree.is_within(node, &item.node));
        match usable {
            None => {
                return Err(ApiError::bad_request(
                    "invalid_template",
                    format!(
                        "zone source {source} is not a content item usable at node {node} (T2)"
                    ),
                ));
            }
            Some(item) if item.kind == ItemKind::Template => {
                return Err(ApiError::bad_request(
                    "invalid_template",
                    format!("zone source {source} is a template; zones show media"),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Stores the template's bytes as a blob; returns their hash and size.
async fn store_bytes(state: &AppState, template: &Template) -> Result<(Sha256, u64), ApiError> {
    let bytes = template_bytes(template).map_err(|e| ApiError::internal(&e))?;
    if bytes.len() > MAX_TEMPLATE_BYTES {
        return Err(ApiError::bad_request(
            "invalid_template",
            format!("the template encodes to more than {MAX_TEMPLATE_BYTES} bytes"),
        ));
    }
    let blobs = BlobStore::new(&state.config.data);
    let body =
        futures_util::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(bytes)) });
    let staged = blobs
        .stage(body, MAX_TEMPLATE_BYTES as u64)
        .await
        .map_err(blob_error)?;
    let stored = (staged.sha256, staged.size);
    blobs.commit(staged).await.map_err(blob_error)?;
    Ok(stored)
}

/// Removes the blob `sha256` when no item uses it any more.
async fn drop_unused_blob(state: &AppState, sha256: &Sha256) -> Result<(), ApiError> {
    if items_with_hash(&state.store, sha256)?.is_empty() {
        BlobStore::new(&state.config.data)
            .remove(sha256)
            .await
            .map_err(blob_error)?;
    }
    Ok(())
}

/// Templates the caller sees: inside its domain and above it (T2).
#[utoipa::path(get, path = "/api/v1/templates", tag = "templates", security(("bearer" = [])),
    responses((status = 200, description = "Visible templates", body = Vec<TemplateView>),
        (status = 401, description = "No valid token", body = super::ErrorBody)))]
pub async fn list_templates(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<TemplateView>>, ApiError> {
    let items: Vec<ContentItem> = state.store.scan(CONTENT, "")?;
    let mut views = Vec::new();
    for item in items {
        if item.kind == ItemKind::Template && visible(&caller, &item) {
            let template = document(&state, &item)?;
            views.push(view(item, template));
        }
    }
    Ok(Json(views))
}

/// Creates a template (Contributor+). Its approval state follows the
/// creator's profile (A3).
#[utoipa::path(post, path = "/api/v1/templates", tag = "templates", request_body = CreateTemplate,
    security(("bearer" = [])),
    responses((status = 201, description = "Created", body = TemplateView),
        (status = 400, description = "Invalid name or template", body = super::ErrorBody),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Below Contributor, or a restricted node (A1)", body = super::ErrorBody),
        (status = 404, description = "Node absent or not visible", body = super::ErrorBody)))]
pub async fn create_template(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<CreateTemplate>,
) -> Result<(StatusCode, Json<TemplateView>), ApiError> {
    caller.require(Role::Contributor)?;
    check_name(&request.name)?;
    let _write = state.store.write_lock().await;
    let node = state
        .store
        .get::<Node>(NODES, request.node.as_str())?
        .filter(|node| caller.sees(&node.id))
        .ok_or_else(|| ApiError::not_found("node"))?;
    check_restriction(&caller, &node, ItemChange::Add)?;
    check_template(&state, &caller, &node.id, &request.template)?;
    let (sha256, size) = store_bytes(&state, &request.template).await?;
    let approval_hash = request.template.content_hash();
    let now = state.clock.now();
    let item = ContentItem {
        id: ItemId::new(new_id("c-")),
        node: node.id.clone(),
        name: request.name.trim().to_owned(),
        kind: ItemKind::Template,
        sha256,
        size,
        media_type: "application/json".into(),
        created_by: caller.user.id.clone(),
        created_at: now,
        duration_ms: None,
        width: Some(request.template.canvas.width),
        height: Some(request.template.canvas.height),
        approval: ItemApproval::created(profile(&caller), approval_hash),
        approval_hash,
        revision: 1,
        source: None,
        updated_at: now,
        updated_by: caller.user.id.clone(),
        thumbnail: false,
    };
    let mut batch = WriteBatch::new();
    batch.put(CONTENT, item.id.as_str(), &item)?;
    batch.put(CONTENT_BY_HASH, &hash_key(&item.sha256, &item.id), &item.id)?;
    batch.put(TEMPLATES, item.id.as_str(), &request.template)?;
    caller
        .audit(
            &state,
            "template.create",
            item.id.as_str(),
            Some(item.node.clone()),
            serde_json::json!({"name": item.name, "sha256": item.sha256,
                "approval_hash": item.approval_hash, "state": item.approval.state()}),
        )
        .record(&mut batch)?;
    state.store.apply(batch).await?;
    Ok((StatusCode::CREATED, Json(view(item, request.template))))
}

/// One template the caller sees, with its current document.
#[utoipa::path(get, path = "/api/v1/templates/{id}", tag = "templates",
    params(("id" = String, Path, description = "Template item id")), security(("bearer" = [])),
    responses((status = 200, description = "The template", body = TemplateView),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 404, description = "Absent, not a template, or not visible", body = super::ErrorBody)))]
pub async fn get_template(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<TemplateView>, ApiError> {
    let item = load_item(&state, &caller, &id, Items::Templates)?;
    let template = document(&state, &item)?;
    Ok(Json(view(item, template)))
}

/// The feed settings that differ between two versions, per zone (A4 audit).
fn feed_changes(old: &Template, new: &Template) -> Vec<serde_json::Value> {
    new.zones
        .iter()
        .filter_map(|zone| {
            let before = old.zones.iter().find(|z| z.id == zone.id)?;
            (before.feed != zone.feed).then(|| {
                serde_json::json!({
                    "zone": zone.id,
                    "url": {"from": before.feed.as_ref().map(|f| &f.url),
                            "to": zone.feed.as_ref().map(|f| &f.url)},
                    "refresh_secs": {"from": before.feed.as_ref().map(|f| f.refresh_secs),
                                     "to": zone.feed.as_ref().map(|f| f.refresh_secs)},
                    "json_pointer": {"from": before.feed.as_ref().map(|f| &f.json_pointer),
                                     "to": zone.feed.as_ref().map(|f| &f.json_pointer)},
                    "value_changed": before.feed.as_ref().map(|f| &f.last_value)
                        != zone.feed.as_ref().map(|f| &f.last_value),
                })
            })
        })
        .collect()
}

/// Saves a new version of a template (Contributor+, inside the caller's
/// domain, A1). The approval state follows A3/A4 (see the module rules).
#[utoipa::path(put, path = "/api/v1/templates/{id}", tag = "templates", request_body = SaveTemplate,
    params(("id" = String, Path, description = "Template item id")), security(("bearer" = [])),
    responses((status = 200, description = "Saved (or unchanged)", body = TemplateView),
        (status = 400, description = "Invalid name or template", body = super::ErrorBody),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Below Contributor, above the caller's domain, or a restricted node (A1)", body = super::ErrorBody),
        (status = 404, description = "Absent, not a template, or not visible", body = super::ErrorBody)))]
pub async fn save_template(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<SaveTemplate>,
) -> Result<Json<TemplateView>, ApiError> {
    caller.require(Role::Contributor)?;
    if let Some(name) = &request.name {
        check_name(name)?;
    }
    let _write = state.store.write_lock().await;
    let mut item = load_item(&state, &caller, &id, Items::Templates)?;
    if !caller.sees(&item.node) {
        return Err(ApiError::forbidden(
            "a template above the caller's domain is changed from there (T2)",
        ));
    }
    let node = node_of(&state, &item)?;
    check_restriction(&caller, &node, ItemChange::Edit)?;
    check_template(&state, &caller, &item.node, &request.template)?;
    let old = document(&state, &item)?;
    let change = classify_change(&old, &request.template);
    let name = request
        .name
        .as_deref()
        .map_or_else(|| item.name.clone(), |name| name.trim().to_owned());
    if change == Change::None && name == item.name {
        return Ok(Json(view(item, old)));
    }
    let approval_hash = request.template.content_hash();
    let transition = item
        .approval
        .apply(
            &ApprovalEvent::Saved {
                change,
                content_hash: approval_hash,
                strict_mode: node.strict_feeds,
            },
            profile(&caller),
        )
        .map_err(|e| approval::approval_error(&e))?;
    let old_sha = item.sha256;
    let mut batch = WriteBatch::new();
    if change != Change::None {
        let (sha256, size) = store_bytes(&state, &request.template).await?;
        if sha256 != old_sha {
            batch.delete(CONTENT_BY_HASH, &hash_key(&old_sha, &item.id));
            batch.put(CONTENT_BY_HASH, &hash_key(&sha256, &item.id), &item.id)?;
        }
        item.sha256 = sha256;
        item.size = size;
        item.width = Some(request.template.canvas.width);
        item.height = Some(request.template.canvas.height);
        batch.put(TEMPLATES, item.id.as_str(), &request.template)?;
    }
    let from = transition.from;
    item.approval = transition.approval;
    if !matches!(item.approval, ItemApproval::Pending { .. }) {
        batch.delete(APPROVAL_REQUESTS, item.id.as_str());
    }
    item.name = name;
    item.approval_hash = approval_hash;
    item.revision = item.revision.saturating_add(1);
    item.updated_at = state.clock.now();
    item.updated_by = caller.user.id.clone();
    batch.put(CONTENT, item.id.as_str(), &item)?;
    caller
        .audit(
            &state,
            "template.save",
            item.id.as_str(),
            Some(item.node.clone()),
            serde_json::json!({"change": change, "revision": item.revision,
                "approval": {"from": from, "to": item.approval.state()},
                "sha256": item.sha256, "approval_hash": item.approval_hash}),
        )
        .record(&mut batch)?;
    if transition.audit_feed_change {
        caller
            .audit(
                &state,
                "template.feed_change",
                item.id.as_str(),
                Some(item.node.clone()),
                serde_json::json!({"revision": item.revision,
                    "strict_mode": node.strict_feeds,
                    "feeds": feed_changes(&old, &request.template)}),
            )
            .record(&mut batch)?;
    }
    state.store.apply(batch).await?;
    if item.sha256 != old_sha {
        drop_unused_blob(&state, &old_sha).await?;
    }
    Ok(Json(view(item, request.template)))
}

/// Deletes a template inside the caller's domain (Contributor+, A1).
#[utoipa::path(delete, path = "/api/v1/templates/{id}", tag = "templates",
    params(("id" = String, Path, description = "Template item id")), security(("bearer" = [])),
    responses((status = 204, description = "Deleted"),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Below Contributor, above the caller's domain, or a restricted node (A1)", body = super::ErrorBody),
        (status = 404, description = "Absent, not a template, or not visible", body = super::ErrorBody),
        (status = 409, description = "Still used by a template, access group or playlist", body = super::ErrorBody)))]
pub async fn delete_template(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Contributor)?;
    load_item(&state, &caller, &id, Items::Templates)?;
    super::content::delete_item(&state, &caller, &id).await
}

/// Copies a template of a restricted node into a non-restricted node below
/// it (A2); the copy is active and names its source and revision.
#[utoipa::path(post, path = "/api/v1/templates/{id}/copy", tag = "templates", request_body = CopyRequest,
    params(("id" = String, Path, description = "Template item id")), security(("bearer" = [])),
    responses((status = 201, description = "Copied", body = ContentView),
        (status = 400, description = "Destination restricted or not below the source", body = super::ErrorBody),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Below Contributor", body = super::ErrorBody),
        (status = 404, description = "Template or destination absent or not visible", body = super::ErrorBody),
        (status = 409, description = "Source not in a restricted node, or not approved", body = super::ErrorBody)))]
pub async fn copy_template(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<CopyRequest>,
) -> Result<(StatusCode, Json<ContentView>), ApiError> {
    approval::copy(&state, &caller, &id, Items::Templates, request).await
}

/// Requests approval of the template's current version (A5): one e-mail to
/// the node's content manager; asking again re-sends the same request.
#[utoipa::path(post, path = "/api/v1/templates/{id}/request-approval", tag = "templates",
    params(("id" = String, Path, description = "Template item id")), security(("bearer" = [])),
    responses((status = 200, description = "Pending", body = ContentView),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Below Contributor or above the caller's domain", body = super::ErrorBody),
        (status = 404, description = "Absent, not a template, or not visible", body = super::ErrorBody),
        (status = 409, description = "Already active, or no content-manager address", body = super::ErrorBody)))]
pub async fn request_template_approval(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ContentView>, ApiError> {
    approval::request_approval(&state, &caller, &id, Items::Templates).await
}

/// Approves the pending version (A6: `approve_content` on the node or above).
#[utoipa::path(post, path = "/api/v1/templates/{id}/approve", tag = "templates",
    request_body = ApproveRequest,
    params(("id" = String, Path, description = "Template item id")), security(("bearer" = [])),
    responses((status = 200, description = "Active", body = ContentView),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Without approve_content here", body = super::ErrorBody),
        (status = 404, description = "Absent, not a template, or not visible", body = super::ErrorBody),
        (status = 409, description = "Not pending, or another version", body = super::ErrorBody)))]
pub async fn approve_template(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<ApproveRequest>,
) -> Result<Json<ContentView>, ApiError> {
    approval::approve(&state, &caller, &id, Items::Templates, request).await
}

/// Rejects the pending version with a reason (A6).
#[utoipa::path(post, path = "/api/v1/templates/{id}/reject", tag = "templates",
    request_body = RejectRequest,
    params(("id" = String, Path, description = "Template item id")), security(("bearer" = [])),
    responses((status = 200, description = "Inactive, with the reason", body = ContentView),
        (status = 400, description = "Blank or overlong reason", body = super::ErrorBody),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Without approve_content here", body = super::ErrorBody),
        (status = 404, description = "Absent, not a template, or not visible", body = super::ErrorBody),
        (status = 409, description = "Not pending", body = super::ErrorBody)))]
pub async fn reject_template(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<RejectRequest>,
) -> Result<Json<ContentView>, ApiError> {
    approval::reject(&state, &caller, &id, Items::Templates, request).await
}
