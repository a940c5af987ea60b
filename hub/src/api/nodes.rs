//! `/api/v1/nodes` (T1–T4): the tenancy tree.
//!
//! Rules:
//! - one root, made by `init`; every other node has a parent (T1);
//! - a child cannot be added under a node that holds devices (T1, 409);
//! - callers see and change only nodes inside their domain; anything else
//!   is 404, so no tenant learns what exists outside it (T3, T4);
//! - Manager and above create nodes (restricted or not: tenants create their
//!   own restricted nodes, T4) and rename or delete them; a node that is a
//!   root of the caller's own domain can only be deleted from above;
//! - only leaves with no devices, no user's domain and no permission or
//!   access groups can be deleted (409).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono_tz::Tz;
use serde::Deserialize;
use signet_common::ids::NodeId;
use signet_common::permissions::Role;

use super::users::check_email;
use super::{ApiError, ApiJson, AppState, Caller};
use crate::identity::{USERS, User, new_id};
use crate::store::WriteBatch;
use crate::tenancy::{
    MAX_NODE_NAME_LEN, MAX_REGION_LEN, NODES, Node, NodeLocale, holds_devices, normalize_country,
};

/// A new node.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateNode {
    /// The parent node (inside the caller's domain).
    #[schema(value_type = String)]
    pub parent: NodeId,
    /// Display name (1 to 128 bytes).
    pub name: String,
    /// Restricted: its content can be copied but never edited (A1).
    #[serde(default)]
    pub restricted: bool,
    /// Where approval requests for content here go (A5).
    pub content_manager_email: Option<String>,
    /// Strict mode: a feed-URL change deactivates a template (A4).
    #[serde(default)]
    pub strict_feeds: bool,
    /// IANA time zone of devices here and below (e.g. `Europe/Berlin`);
    /// absent: inherited from the nearest ancestor that sets one, else UTC.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// ISO 3166-1 alpha-2 country of devices here and below; absent: inherited.
    #[serde(default)]
    pub country: Option<String>,
    /// Region or state of devices here and below (1 to 128 bytes); absent: inherited.
    #[serde(default)]
    pub region: Option<String>,
}

/// Changes to a node; absent fields stay as they are.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateNode {
    /// New display name.
    pub name: Option<String>,
    /// New content-manager address; `""` clears it.
    pub content_manager_email: Option<String>,
    /// New strict mode.
    pub strict_feeds: Option<bool>,
    /// New IANA time zone; `""` clears it (inherit again).
    #[serde(default)]
    pub time_zone: Option<String>,
    /// New country code; `""` clears it.
    #[serde(default)]
    pub country: Option<String>,
    /// New region; `""` clears it.
    #[serde(default)]
    pub region: Option<String>,
}

/// A node as the API shows it.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct NodeView {
    /// Stable id.
    #[schema(value_type = String)]
    pub id: NodeId,
    /// Parent id; absent for the root.
    #[schema(value_type = Option<String>)]
    pub parent: Option<NodeId>,
    /// Display name.
    pub name: String,
    /// Restricted node (A1).
    pub restricted: bool,
    /// Creator's user id: the owner of a restricted node.
    #[schema(value_type = Option<String>)]
    pub created_by: Option<signet_common::ids::UserId>,
    /// Approval-request address (A5).
    pub content_manager_email: Option<String>,
    /// Strict feed mode (A4).
    pub strict_feeds: bool,
    /// Whether the node has no children.
    pub leaf: bool,
    /// Its own IANA time zone, if it sets one (else inherited).
    pub time_zone: Option<String>,
    /// Its own country code, if it sets one (else inherited).
    pub country: Option<String>,
    /// Its own region, if it sets one (else inherited).
    pub region: Option<String>,
}

fn view(caller: &Caller, node: &Node) -> NodeView {
    NodeView {
        id: node.id.clone(),
        parent: node.parent.clone(),
        name: node.name.clone(),
        restricted: node.restricted,
        created_by: node.created_by.clone(),
        content_manager_email: node.content_manager_email.clone(),
        strict_feeds: node.strict_feeds,
        leaf: caller.tree.is_leaf(&node.id),
        time_zone: node.locale.time_zone.map(|tz| tz.name().to_owned()),
        country: node.locale.country.clone(),
        region: node.locale.region.clone(),
    }
}

/// A time zone as given: an IANA name, or 400.
fn check_time_zone(name: &str) -> Result<Tz, ApiError> {
    name.parse::<Tz>().map_err(|_| {
        ApiError::bad_request(
            "invalid_time_zone",
            format!("{name:?} is not an IANA time zone name (e.g. Europe/Berlin)"),
        )
    })
}

/// A country as given: two ASCII letters (stored upper case), or 400.
fn check_country(country: &str) -> Result<String, ApiError> {
    normalize_country(country).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_country",
            "country must be an ISO 3166-1 alpha-2 code such as DE",
        )
    })
}

/// A region as given: 1 to 128 bytes of text, or 400.
fn check_region(region: &str) -> Result<String, ApiError> {
    let region = region.trim();
    if region.is_empty() || region.len() > MAX_REGION_LEN || region.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_region",
            format!("region must be 1 to {MAX_REGION_LEN} bytes of text"),
        ));
    }
    Ok(region.to_owned())
}

/// A requested locale change: `None` keeps, `Some(None)` clears (`""`),
/// `Some(Some(v))` sets; refuses bad values before anything changes.
fn locale_change<T>(
    value: Option<&str>,
    check: impl Fn(&str) -> Result<T, ApiError>,
) -> Result<Option<Option<T>>, ApiError> {
    value
        .map(|v| {
            if v.is_empty() {
                Ok(None)
            } else {
                check(v).map(Some)
            }
        })
        .transpose()
}

fn check_name(name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty()
        || name.len() > MAX_NODE_NAME_LEN
        || name.chars().any(char::is_control)
    {
        return Err(ApiError::bad_request(
            "invalid_name",
            format!("name must be 1 to {MAX_NODE_NAME_LEN} bytes of text"),
        ));
    }
    Ok(())
}

fn load_visible(state: &AppState, caller: &Caller, id: &str) -> Result<Node, ApiError> {
    let id = NodeId::from(id);
    if !caller.sees(&id) {
        return Err(ApiError::not_found("node"));
    }
    state
        .store
        .get(NODES, id.as_str())?
        .ok_or_else(|| ApiError::not_found("node"))
}

/// Nodes inside the caller's domain.
#[utoipa::path(get, path = "/api/v1/nodes", tag = "nodes", security(("bearer" = [])),
    responses((status = 200, description = "Visible nodes", body = Vec<NodeView>),
        (status = 401, description = "No valid token", body = super::ErrorBody)))]
pub async fn list_nodes(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<NodeView>>, ApiError> {
    let nodes: Vec<Node> = state.store.scan(NODES, "")?;
    Ok(Json(
        nodes
            .iter()
            .filter(|n| caller.sees(&n.id))
            .map(|n| view(&caller, n))
            .collect(),
    ))
}

/// Creates a node under a parent inside the caller's domain (Manager+).
#[utoipa::path(post, path = "/api/v1/nodes", tag = "nodes", request_body = CreateNode, security(("bearer" = [])),
    responses((status = 201, description = "Created", body = NodeView),
        (status = 400, description = "Invalid field", body = super::ErrorBody),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Below Manager", body = super::ErrorBody),
        (status = 404, description = "Parent absent or not visible", body = super::ErrorBody),
        (status = 409, description = "Parent holds devices (T1)", body = super::ErrorBody)))]
pub async fn create_node(
    State(state): State<AppState>,
    mut caller: Caller,
    ApiJson(request): ApiJson<CreateNode>,
) -> Result<(StatusCode, Json<NodeView>), ApiError> {
    caller.require(Role::Manager)?;
    check_name(&request.name)?;
    if let Some(email) = &request.content_manager_email {
        check_email(email)?;
    }
    let locale = NodeLocale {
        time_zone: request
            .time_zone
            .as_deref()
            .map(check_time_zone)
            .transpose()?,
        country: request.country.as_deref().map(check_country).transpose()?,
        region: request.region.as_deref().map(check_region).transpose()?,
    };
    let _write = state.store.write_lock().await;
    let parent = load_visible(&state, &caller, request.parent.as_str())?;
    if holds_devices(&state.store, &parent.id)? {
        return Err(ApiError::conflict(
            "node_has_devices",
            format!(
                "node {} holds devices: devices attach only to leaves (T1)",
                parent.id
            ),
        ));
    }
    let node = Node {
        id: NodeId::new(new_id("n-")),
        parent: Some(parent.id.clone()),
        name: request.name.trim().to_owned(),
        restricted: request.restricted,
        created_by: Some(caller.user.id.clone()),
        created_at: state.clock.now(),
        content_manager_email: request.content_manager_email,
        strict_feeds: request.strict_feeds,
        created_at_root_level: caller.is_root_level(),
        locale,
    };
    let mut batch = WriteBatch::new();
    batch.put(NODES, node.id.as_str(), &node)?;
    caller
        .audit(
            &state,
            "node.create",
            node.id.as_str(),
            Some(node.id.clone()),
            serde_json::json!({"parent": parent.id, "name": node.name, "restricted": node.restricted,
                "time_zone": node.locale.time_zone.map(|tz| tz.name()),
                "country": node.locale.country, "region": node.locale.region}),
        )
        .record(&mut batch)?;
    state.store.apply(batch).await?;
    caller
        .tree
        .add_node(node.id.clone(), &parent.id)
        .map_err(|e| ApiError::internal(&e))?;
    Ok((StatusCode::CREATED, Json(view(&caller, &node))))
}

/// One node inside the caller's domain.
#[utoipa::path(get, path = "/api/v1/nodes/{id}", tag = "nodes", params(("id" = String, Path, description = "Node id")),
    security(("bearer" = [])),
    responses((status = 200, description = "The node", body = NodeView),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody)))]
pub async fn get_node(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<NodeView>, ApiError> {
    let node = load_visible(&state, &caller, &id)?;
    Ok(Json(view(&caller, &node)))
}

/// Renames a node or changes its approval address, strict mode, time zone
/// or location (Manager+).
#[utoipa::path(patch, path = "/api/v1/nodes/{id}", tag = "nodes", request_body = UpdateNode,
    params(("id" = String, Path, description = "Node id")), security(("bearer" = [])),
    responses((status = 200, description = "Updated", body = NodeView),
        (status = 400, description = "Invalid field", body = super::ErrorBody),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Below Manager", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody)))]
pub async fn update_node(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<UpdateNode>,
) -> Result<Json<NodeView>, ApiError> {
    caller.require(Role::Manager)?;
    if let Some(name) = &request.name {
        check_name(name)?;
    }
    if let Some(email) = request
        .content_manager_email
        .as_deref()
        .filter(|e| !e.is_empty())
    {
        check_email(email)?;
    }
    let time_zone = locale_change(request.time_zone.as_deref(), check_time_zone)?;
    let country = locale_change(request.country.as_deref(), check_country)?;
    let region = locale_change(request.region.as_deref(), check_region)?;
    let _write = state.store.write_lock().await;
    let mut node = load_visible(&state, &caller, &id)?;
    if let Some(time_zone) = time_zone {
        node.locale.time_zone = time_zone;
    }
    if let Some(country) = country {
        node.locale.country = country;
    }
    if let Some(region) = region {
        node.locale.region = region;
    }
    if let Some(name) = request.name {
        node.name = name.trim().to_owned();
    }
    if let Some(email) = request.content_manager_email {
        node.content_manager_email = (!email.is_empty()).then_some(email);
    }
    if let Some(strict) = request.strict_feeds {
        node.strict_feeds = strict;
    }
    let mut batch = WriteBatch::new();
    batch.put(NODES, node.id.as_str(), &node)?;
    caller
        .audit(
            &state,
            "node.update",
            node.id.as_str(),
            Some(node.id.clone()),
            serde_json::json!({"name": node.name, "content_manager_email": node.content_manager_email,
                "strict_feeds": node.strict_feeds,
                "time_zone": node.locale.time_zone.map(|tz| tz.name()),
                "country": node.locale.country, "region": node.locale.region}),
        )
        .record(&mut batch)?;
    state.store.apply(batch).await?;
    Ok(Json(view(&caller, &node)))
}

/// Deletes a leaf node with no devices and no users (Manager+, from above).
#[utoipa::path(delete, path = "/api/v1/nodes/{id}", tag = "nodes", params(("id" = String, Path, description = "Node id")),
    security(("bearer" = [])),
    responses((status = 204, description = "Deleted"),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "Not allowed", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody),
        (status = 409, description = "Not empty", body = super::ErrorBody)))]
pub async fn delete_node(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Manager)?;
    let _write = state.store.write_lock().await;
    let node = load_visible(&state, &caller, &id)?;
    if node.parent.is_none() || caller.user.domain.contains(&node.id) {
        return Err(ApiError::forbidden(
            "a domain root can only be deleted from above it",
        ));
    }
    if !caller.tree.is_leaf(&node.id) {
        return Err(ApiError::conflict(
            "node_not_empty",
            "the node has children",
        ));
    }
    if holds_devices(&state.store, &node.id)? {
        return Err(ApiError::conflict(
            "node_not_empty",
            "the node holds devices",
        ));
    }
    if !crate::permission_groups::groups_at(&state.store, &node.id)?.is_empty()
        || !crate::access_groups::groups_at(&state.store, &node.id)?.is_empty()
    {
        return Err(ApiError::conflict(
            "node_in_use",
            "permission or access groups live at the node: delete or move them first",
        ));
    }
    let held = crate::content::items_at(&state.store, &node.id)?.len()
        + crate::schedules::playlists_at(&state.store, &node.id)?.len()
        + crate::schedules::schedules_at(&state.store, &node.id)?.len();
    if held > 0 {
        return Err(ApiError::conflict(
            "node_in_use",
            format!(
                "{held} content items, templates, playlists or schedules live at the node: delete or copy them first"
            ),
        ));
    }
    let users: Vec<User> = state.store.scan(USERS, "")?;
    if let Some(user) = users.iter().find(|u| u.domain.contains(&node.id)) {
        return Err(ApiError::conflict(
            "node_in_use",
            format!("the node is in the domain of user {}", user.name),
        ));
    }
    let mut batch = WriteBatch::new();
    batch.delete(NODES, node.id.as_str());
    caller
        .audit(
            &state,
            "node.delete",
            node.id.as_str(),
            node.parent.clone(),
            serde_json::json!({"name": node.name}),
        )
        .record(&mut batch)?;
    state.store.apply(batch).await?;
    Ok(StatusCode::NO_CONTENT)
}
