//! Devices and pairing (S7, T1, T4, Deliver 4 and 7).
//!
//! Device-facing, without an operator token:
//! - `POST /api/v1/device/pairings`: an agent asks to pair and gets a code
//!   to show and a secret ticket to poll with. Open pairings are bounded
//!   ([`MAX_OPEN_PAIRINGS`], 503) and so are those of one client address
//!   ([`MAX_OPEN_PAIRINGS_PER_ADDRESS`], 429): each address may hold at most
//!   that many open codes, which bounds how fast it can make new ones.
//! - `GET /api/v1/device/pairings/{ticket}`: pending, approved (the
//!   credentials, exactly once) or closed with a reason.
//!
//! Operator routes: any logged-in user reads the devices attached inside
//! their domain; pairing, moving, unpairing, setting feed variables (D6)
//! and commands need the `manage_devices` permission (P7, Manager and
//! above by default, or a permission group) — 403 without it, checked
//! first — and the nodes and devices involved inside the caller's domain
//! (404 otherwise, T4).
//! Open pairings belong to no tenant yet: only root-level callers list
//! them; everyone else approves by typing the code from the screen, the
//! proof of standing in front of it (listing codes to every tenant would let
//! one tenant claim another's screen).
//!
//! Every change is one [`WriteBatch`] with its audit record, durable before
//! the answer (S8, S9). After a device is approved, moved or given new
//! feed variables its node is published, so it gets its signed assignment
//! at once; broker access is granted before an approval is stored (a
//! broker failure is 502 and changes nothing) and revoked before an unpair
//! is stored.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use signet_common::documents::{Command, CommandAction, validate_variables};
use signet_common::envelope::sign_document;
use signet_common::ids::{DeviceId, NodeId, UserId};
use signet_common::permissions::Permission;
use signet_common::sync::{
    BrokerAccess, PairingRequest, PairingStatus, PairingTicket, commands_topic,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, ApiJson, AppState, Caller, ClientAddress};
use crate::access_groups::{self, AccessGroup, MemberRef};
use crate::audit::AuditEntry;
use crate::devices::{
    self, COLLECT_TTL_SECS, COMMAND_TTL_SECS, DEVICE_COMMANDS, DEVICES, Device, MAX_COMMANDS_KEPT,
    MAX_DEVICE_NAME_LEN, MAX_OPEN_PAIRINGS, MAX_OPEN_PAIRINGS_PER_ADDRESS, PAIRING_CODES,
    PAIRING_TTL_SECS, PAIRINGS, POLL_SECS, Pairing, PairingState, StoredCommand,
};
use crate::groups::GroupRef;
use crate::identity::{new_id, new_token, token_key};
use crate::publish::{self, Actor, PublicationRun, TransientMessage};
use crate::store::WriteBatch;
use crate::tenancy::NODE_DEVICES;

/// This concern's routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(request_pairing))
        .routes(routes!(poll_pairing))
        .routes(routes!(list_pairings))
        .routes(routes!(approve_pairing))
        .routes(routes!(reject_pairing))
        .routes(routes!(list_devices))
        .routes(routes!(get_device, update_device, delete_device))
        .routes(routes!(send_command))
        .routes(routes!(set_variables))
}

// ---------------------------------------------------------------- views

/// A paired device as the API shows it (never its secret).
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeviceView {
    /// Stable id (`d-…`).
    #[schema(value_type = String)]
    pub id: DeviceId,
    /// Display name.
    pub name: String,
    /// The leaf node it is attached to.
    #[schema(value_type = String)]
    pub node: NodeId,
    /// The agent's Ed25519 public key (standard base64).
    pub public_key: String,
    /// Operating system reported at pairing.
    pub os: String,
    /// Agent version reported at pairing.
    pub agent_version: String,
    /// When it was paired.
    pub paired_at: DateTime<Utc>,
    /// Who approved it.
    #[schema(value_type = String)]
    pub paired_by: UserId,
    /// Its feed-URL variable values by number (D6); empty when none are set.
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, String>)]
    pub variables: BTreeMap<u8, String>,
}

impl From<&Device> for DeviceView {
    fn from(d: &Device) -> Self {
        Self {
            id: d.id.clone(),
            name: d.name.clone(),
            node: d.node.clone(),
            public_key: d.public_key.clone(),
            os: d.os.clone(),
            agent_version: d.agent_version.clone(),
            paired_at: d.paired_at,
            paired_by: d.paired_by.clone(),
            variables: d.variables.clone(),
        }
    }
}

/// An open pairing as operators see it (never its ticket).
#[derive(Serialize, utoipa::ToSchema)]
pub struct PairingView {
    /// The code the screen shows.
    pub code: String,
    /// The device's operating system.
    pub os: String,
    /// The agent's version.
    pub agent_version: String,
    /// When it was requested.
    pub requested_at: DateTime<Utc>,
    /// Until when it may be approved.
    pub expires_at: DateTime<Utc>,
}

/// A device and the publication that sent it its assignment.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DeviceChanged {
    /// The device as stored now.
    pub device: DeviceView,
    /// The run that signed its node's documents and its assignment.
    pub publication: Option<PublicationRun>,
    /// Why that publication failed, when it did: the device is stored and
    /// gets its assignment with the node's next publication.
    pub publication_error: Option<String>,
    /// Why updating its broker access failed, when it did (moves only).
    pub broker_error: Option<String>,
}

/// A command accepted for a device (Deliver 7).
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct CommandAccepted {
    /// The device.
    #[schema(value_type = String)]
    pub device: DeviceId,
    /// The command's version (its id: strictly increasing per device).
    pub version: u64,
    /// Its nonce.
    pub nonce: String,
    /// What it asks.
    #[schema(value_type = String)]
    pub action: CommandAction,
    /// Until when the device may run it.
    pub expires_at: DateTime<Utc>,
    /// Whether it was handed to the broker connection.
    pub delivered: bool,
    /// Why not, when it was not (the device did not get it; send again).
    pub delivery_error: Option<String>,
}

// ------------------------------------------------------------- requests

/// Approving a pairing.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovePairing {
    /// The leaf node to attach the device to (T1), inside the caller's domain.
    #[schema(value_type = String)]
    pub node: NodeId,
    /// Display name (1 to 128 bytes).
    pub name: String,
}

/// Changes to a device; absent fields stay as they are.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateDevice {
    /// New display name.
    pub name: Option<String>,
    /// Another leaf node inside the caller's domain to move it to.
    #[schema(value_type = Option<String>)]
    pub node: Option<NodeId>,
}

/// A device's feed variables (D6), replacing the ones it had.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetVariables {
    /// Values by variable number (`"1"` to `"25"`), each at most 256 bytes
    /// without control characters; `{}` clears them all.
    #[schema(value_type = BTreeMap<String, String>)]
    pub variables: BTreeMap<u8, String>,
}

/// A command for a device.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandRequest {
    /// `screenshot`, `resync`, `restart_player` or `purge_cache`.
    #[schema(value_type = String)]
    pub action: CommandAction,
}

// -------------------------------------------------------------- helpers

fn require_manage_devices(state: &AppState, caller: &Caller) -> Result<(), ApiError> {
    if crate::permission_groups::effective_permissions_of(&state.store, &caller.user)?
        .contains(Permission::ManageDevices)
    {
        Ok(())
    } else {
        Err(ApiError::forbidden("needs the manage_devices permission"))
    }
}

fn check_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.len() > MAX_DEVICE_NAME_LEN || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_name",
            format!("a device name is 1 to {MAX_DEVICE_NAME_LEN} bytes without control characters"),
        ));
    }
    Ok(name.to_owned())
}

/// The node `node`, which must be inside the caller's domain (404) and
/// have no children (T1: 409).
fn leaf_for_devices(caller: &Caller, node: &NodeId) -> Result<(), ApiError> {
    if !caller.tree.contains(node) || !caller.sees(node) {
        return Err(ApiError::not_found("node"));
    }
    if !caller.tree.is_leaf(node) {
        return Err(ApiError::conflict(
            "node_not_leaf",
            "devices attach only to leaf nodes; this node has children",
        ));
    }
    Ok(())
}

/// The device `id`, visible to the caller (404 otherwise, T4).
fn visible_device(state: &AppState, caller: &Caller, id: &str) -> Result<Device, ApiError> {
    devices::device(&state.store, id)?
        .filter(|d| caller.sees(&d.node))
        .ok_or_else(|| ApiError::not_found("device"))
}

/// `mqtt://{broker_listen}`, an unspecified address as `127.0.0.1`.
/// The broker address devices use; the MQTT configuration may name a
/// different public one.
fn broker_url(state: &AppState) -> String {
    state.config.device_broker_url()
}

/// Publishes `node`'s subtree so devices there get their assignment now.
async fn publish_node(
    state: &AppState,
    caller: &Caller,
    node: &NodeId,
) -> (Option<PublicationRun>, Option<String>) {
    let actor = Actor::user(&caller.user, &caller.from);
    match publish::publish(state, &GroupRef::Node(node.clone()), actor).await {
        Ok(published) => (Some(published.run), None),
        Err(e) => {
            tracing::warn!(%node, error = %e, "publishing after a device change failed");
            (None, Some(e.to_string()))
        }
    }
}

fn device_audit(
    state: &AppState,
    caller: &Caller,
    action: &str,
    device: &Device,
    detail: serde_json::Value,
) -> AuditEntry {
    caller.audit(
        state,
        action,
        device.id.as_str(),
        Some(device.node.clone()),
        detail,
    )
}

// -------------------------------------------------------- device-facing

/// An agent asks to pair (S7): answers the code to show and the secret
/// ticket to poll with.
#[utoipa::path(post, path = "/api/v1/device/pairings", tag = "device",
    request_body(content = super::schemas::PairingRequestSchema, description = "The agent's key, version and OS"),
    responses((status = 201, description = "The code and the ticket", body = super::schemas::PairingTicketSchema),
        (status = 400, description = "Not a valid pairing request", body = super::ErrorBody),
        (status = 429, description = "Too many open pairings from this address", body = super::ErrorBody),
        (status = 503, description = "Too many open pairings", body = super::ErrorBody)))]
pub async fn request_pairing(
    State(state): State<AppState>,
    ClientAddress(from): ClientAddress,
    body: Bytes,
) -> Result<(StatusCode, Json<PairingTicket>), ApiError> {
    let request: PairingRequest = signet_common::sync::parse(&body)
        .map_err(|e| ApiError::bad_request("invalid_pairing_request", e.to_string()))?;
    let (ticket, ticket_hash) = new_token();
    let _write = state.store.write_lock().await;
    let now = state.clock.now();
    let mut batch = WriteBatch::new();
    devices::prune_pairings(&state.store, &mut batch, now)?;
    let open: Vec<Pairing> = state
        .store
        .scan::<Pairing>(PAIRINGS, "")?
        .into_iter()
        .filter(|p| p.is_open(now))
        .collect();
    if open.len() >= MAX_OPEN_PAIRINGS {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_pairings",
            format!("the hub holds at most {MAX_OPEN_PAIRINGS} open pairings; try again later"),
        ));
    }
    let mine = open.iter().filter(|p| p.from == from);
    if let Some(first_expiry) = mine.clone().map(|p| p.expires_at).min()
        && mine.count() >= MAX_OPEN_PAIRINGS_PER_ADDRESS
    {
        let mut error = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_pairings_from_address",
            format!(
                "at most {MAX_OPEN_PAIRINGS_PER_ADDRESS} open pairings per client address; \
                 approve or let some expire"
            ),
        );
        error.retry_after = Some(
            u64::try_from((first_expiry - now).num_seconds())
                .unwrap_or(0)
                .max(1),
        );
        return Err(error);
    }
    // A code unique among open pairings (bounded tries; 31^8 codes).
    let mut code = None;
    for _ in 0..16 {
        let candidate = devices::new_code();
        if devices::open_pairing_by_code(&state.store, &candidate, now)?.is_none() {
            code = Some(candidate);
            break;
        }
    }
    let code = code.ok_or_else(|| ApiError::internal(&"no free pairing code after 16 tries"))?;
    let expires_at = now + TimeDelta::seconds(PAIRING_TTL_SECS);
    let pairing = Pairing {
        ticket_hash: ticket_hash.clone(),
        code: code.clone(),
        public_key: request.public_key,
        agent_version: request.agent_version,
        os: request.os,
        from: from.clone(),
        requested_at: now,
        expires_at,
        state: PairingState::Pending,
    };
    batch.put(PAIRINGS, &ticket_hash, &pairing)?;
    batch.put(PAIRING_CODES, &code, &ticket_hash)?;
    AuditEntry {
        from,
        detail: serde_json::json!({"os": pairing.os, "agent_version": pairing.agent_version}),
        ..AuditEntry::new(now, "device.pairing_request", &code)
    }
    .record(&mut batch)?;
    state.store.apply(batch).await?;
    Ok((
        StatusCode::CREATED,
        Json(PairingTicket {
            ticket,
            code,
            expires_at,
            poll_secs: POLL_SECS,
        }),
    ))
}

/// An agent polls its pairing: pending; approved with its credentials,
/// answered exactly once (the plain secret is deleted in the same durable
/// write); or closed with a reason (rejected, expired, collected).
#[utoipa::path(get, path = "/api/v1/device/pairings/{ticket}", tag = "device",
    params(("ticket" = String, Path, description = "The secret ticket")),
    responses((status = 200, description = "Pending, approved (once, with credentials) or closed", body = super::schemas::PairingStatusSchema),
        (status = 404, description = "No such ticket", body = super::ErrorBody)))]
pub async fn poll_pairing(
    State(state): State<AppState>,
    Path(ticket): Path<String>,
) -> Result<Json<PairingStatus>, ApiError> {
    if ticket.is_empty() || ticket.len() > 128 {
        return Err(ApiError::not_found("pairing"));
    }
    let key = token_key(&ticket);
    let _write = state.store.write_lock().await;
    let now = state.clock.now();
    let mut pairing: Pairing = state
        .store
        .get(PAIRINGS, &key)?
        .ok_or_else(|| ApiError::not_found("pairing"))?;
    let closed = |reason: &str| {
        Ok(Json(PairingStatus::Closed {
            reason: reason.to_owned(),
        }))
    };
    let (device_id, secret) = match &mut pairing.state {
        PairingState::Pending if now < pairing.expires_at => {
            return Ok(Json(PairingStatus::Pending {
                expires_at: pairing.expires_at,
            }));
        }
        PairingState::Pending => return closed("expired: nobody approved the code in time"),
        PairingState::Rejected { .. } => return closed("rejected by an operator"),
        PairingState::Approved {
            collected_at: Some(_),
            ..
        } => return closed("the credentials were already collected"),
        PairingState::Approved {
            device,
            secret,
            collect_by,
            collected_at,
            ..
        } => {
            let plain = secret.take();
            if now < *collect_by {
                *collected_at = Some(now);
            }
            (device.clone(), plain.filter(|_| now < *collect_by))
        }
    };
    let mut batch = WriteBatch::new();
    let Some(secret) = secret else {
        // Too late: the plain secret is dropped now, not at the next prune.
        batch.put(PAIRINGS, &key, &pairing)?;
        state.store.apply(batch).await?;
        return closed("the credentials were not collected in time; pair again");
    };
    if devices::device(&state.store, device_id.as_str())?.is_none() {
        // Nothing to hand out: drop the secret of the unpaired device.
        if let PairingState::Approved { collected_at, .. } = &mut pairing.state {
            *collected_at = None;
        }
        batch.put(PAIRINGS, &key, &pairing)?;
        state.store.apply(batch).await?;
        return closed("the device was unpaired before its credentials were collected");
    }
    batch.put(PAIRINGS, &key, &pairing)?;
    // Read before the secret is spent: a failure leaves it for the next poll.
    let ca_pem = state
        .config
        .device_ca_pem()
        .map_err(|e| ApiError::internal(&format!("mqtt.device_ca_file: {e}")))?;
    AuditEntry {
        from: "device".to_owned(),
        detail: serde_json::json!({"code": pairing.code}),
        ..AuditEntry::new(now, "device.credentials_collected", device_id.as_str())
    }
    .record(&mut batch)?;
    state.store.apply(batch).await?;
    Ok(Json(PairingStatus::Approved {
        broker: BrokerAccess {
            url: broker_url(&state),
            username: device_id.to_string(),
            password: secret,
            ca_pem,
        },
        device_id,
        root_public_key: state.keys.root.to_base64(),
        hub_url: state.config.public_base_url(),
    }))
}

// ------------------------------------------------------------- pairings

/// Open pairings (manage_devices, root-level callers; others get an empty
/// list and approve by the code on the screen).
#[utoipa::path(get, path = "/api/v1/devices/pairings", tag = "devices", security(("bearer" = [])),
    responses((status = 200, description = "Open pairings", body = Vec<PairingView>),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "No manage_devices permission", body = super::ErrorBody)))]
pub async fn list_pairings(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<PairingView>>, ApiError> {
    require_manage_devices(&state, &caller)?;
    if !caller.is_root_level() {
        return Ok(Json(Vec::new()));
    }
    let now = state.clock.now();
    let mut open: Vec<PairingView> = state
        .store
        .scan::<Pairing>(PAIRINGS, "")?
        .into_iter()
        .filter(|p| p.is_open(now))
        .map(|p| PairingView {
            code: p.code,
            os: p.os,
            agent_version: p.agent_version,
            requested_at: p.requested_at,
            expires_at: p.expires_at,
        })
        .collect();
    open.sort_by_key(|p| p.requested_at);
    Ok(Json(open))
}

/// Approves the pairing with `code` (manage_devices): makes the device at
/// a leaf node inside the caller's domain, grants it on the broker, stores
/// it, then publishes the node so it gets its assignment at once.
#[utoipa::path(post, path = "/api/v1/devices/pairings/{code}/approve", tag = "devices",
    request_body = ApprovePairing,
    params(("code" = String, Path, description = "The code on the screen")), security(("bearer" = [])),
    responses((status = 201, description = "Paired", body = DeviceChanged),
        (status = 400, description = "Invalid name", body = super::ErrorBody),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "No manage_devices permission", body = super::ErrorBody),
        (status = 404, description = "No open pairing with this code, or the node is not visible", body = super::ErrorBody),
        (status = 409, description = "The node has children (T1)", body = super::ErrorBody),
        (status = 502, description = "The broker refused the device's credentials", body = super::ErrorBody)))]
pub async fn approve_pairing(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
    ApiJson(request): ApiJson<ApprovePairing>,
) -> Result<(StatusCode, Json<DeviceChanged>), ApiError> {
    require_manage_devices(&state, &caller)?;
    let name = check_name(&request.name)?;
    let code = devices::normalize_code(&code).ok_or_else(|| ApiError::not_found("pairing"))?;
    let write = state.store.write_lock().await;
    let now = state.clock.now();
    let mut pairing = devices::open_pairing_by_code(&state.store, &code, now)?
        .ok_or_else(|| ApiError::not_found("pairing"))?;
    let (tree, _) = crate::tenancy::load_tree(&state.store)?;
    let caller = Caller { tree, ..caller };
    leaf_for_devices(&caller, &request.node)?;
    let (secret, secret_hash) = new_token();
    let device = Device {
        id: DeviceId::new(new_id("d-")),
        name,
        node: request.node.clone(),
        public_key: pairing.public_key.clone(),
        os: pairing.os.clone(),
        agent_version: pairing.agent_version.clone(),
        paired_at: now,
        paired_by: caller.user.id.clone(),
        secret_hash,
        last_command_version: 0,
        variables: BTreeMap::new(),
    };
    pairing.state = PairingState::Approved {
        device: device.id.clone(),
        secret: Some(secret.clone()),
        approved_at: now,
        approved_by: caller.user.id.clone(),
        collect_by: now + TimeDelta::seconds(COLLECT_TTL_SECS),
        collected_at: None,
    };
    let mut batch = WriteBatch::new();
    batch.put(DEVICES, device.id.as_str(), &device)?;
    batch.put(
        NODE_DEVICES,
        &devices::node_device_key(&device.node, &device.id),
        &serde_json::json!({"device": device.id}),
    )?;
    batch.put(PAIRINGS, &pairing.ticket_hash, &pairing)?;
    batch.delete(PAIRING_CODES, &code);
    device_audit(
        &state,
        &caller,
        "device.pair",
        &device,
        serde_json::json!({"code": code, "name": device.name, "node": device.node,
            "os": device.os, "agent_version": device.agent_version}),
    )
    .record(&mut batch)?;
    // A new device is in no access group yet: it reads its node chain.
    let groups: Vec<String> = caller
        .tree
        .path_to_root(&device.node)
        .into_iter()
        .map(ToString::to_string)
        .collect();
    state
        .broker_admin
        .grant(&device.id, Some(&secret), &groups)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "broker_unavailable",
                format!("the broker refused the device's credentials: {e}"),
            )
        })?;
    if let Err(e) = state.store.apply(batch).await {
        if let Err(revoked) = state.broker_admin.revoke(&device.id).await {
            tracing::warn!(device = %device.id, error = %revoked, "stray broker credential not revoked");
        }
        return Err(e.into());
    }
    drop(write);
    state.fleet_feed.device_changed(&state, &device.id);
    let (publication, publication_error) = publish_node(&state, &caller, &device.node).await;
    Ok((
        StatusCode::CREATED,
        Json(DeviceChanged {
            device: DeviceView::from(&device),
            publication,
            publication_error,
            broker_error: None,
        }),
    ))
}

/// Rejects the pairing with `code` (manage_devices): its agent's next poll
/// is closed.
#[utoipa::path(post, path = "/api/v1/devices/pairings/{code}/reject", tag = "devices",
    params(("code" = String, Path, description = "The code on the screen")), security(("bearer" = [])),
    responses((status = 204, description = "Rejected"),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "No manage_devices permission", body = super::ErrorBody),
        (status = 404, description = "No open pairing with this code", body = super::ErrorBody)))]
pub async fn reject_pairing(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_manage_devices(&state, &caller)?;
    let code = devices::normalize_code(&code).ok_or_else(|| ApiError::not_found("pairing"))?;
    let _write = state.store.write_lock().await;
    let now = state.clock.now();
    let mut pairing = devices::open_pairing_by_code(&state.store, &code, now)?
        .ok_or_else(|| ApiError::not_found("pairing"))?;
    pairing.state = PairingState::Rejected {
        at: now,
        by: caller.user.id.clone(),
    };
    let mut batch = WriteBatch::new();
    batch.put(PAIRINGS, &pairing.ticket_hash, &pairing)?;
    batch.delete(PAIRING_CODES, &code);
    caller
        .audit(
            &state,
            "device.pairing_reject",
            &code,
            None,
            serde_json::json!({"os": pairing.os, "agent_version": pairing.agent_version}),
        )
        .record(&mut batch)?;
    state.store.apply(batch).await?;
    Ok(StatusCode::NO_CONTENT)
}

// -------------------------------------------------------------- devices

/// Devices attached inside the caller's domain.
#[utoipa::path(get, path = "/api/v1/devices", tag = "devices", security(("bearer" = [])),
    responses((status = 200, description = "Visible devices", body = Vec<DeviceView>),
        (status = 401, description = "No valid token", body = super::ErrorBody)))]
pub async fn list_devices(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<DeviceView>>, ApiError> {
    let all: Vec<Device> = state.store.scan(DEVICES, "")?;
    Ok(Json(
        all.iter()
            .filter(|d| caller.sees(&d.node))
            .map(DeviceView::from)
            .collect(),
    ))
}

/// One device attached inside the caller's domain.
#[utoipa::path(get, path = "/api/v1/devices/{id}", tag = "devices",
    params(("id" = String, Path, description = "Device id")), security(("bearer" = [])),
    responses((status = 200, description = "The device", body = DeviceView),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody)))]
pub async fn get_device(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<DeviceView>, ApiError> {
    Ok(Json(DeviceView::from(&visible_device(
        &state, &caller, &id,
    )?)))
}

/// Renames a device or moves it to another leaf node inside the caller's
/// domain (manage_devices). A device that is a member of access groups not
/// usable at the new node must leave them first (409). A move updates its
/// broker access and publishes the new node (its assignment changes).
#[utoipa::path(patch, path = "/api/v1/devices/{id}", tag = "devices", request_body = UpdateDevice,
    params(("id" = String, Path, description = "Device id")), security(("bearer" = [])),
    responses((status = 200, description = "Updated", body = DeviceChanged),
        (status = 400, description = "Invalid name", body = super::ErrorBody),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "No manage_devices permission", body = super::ErrorBody),
        (status = 404, description = "Device or node absent or not visible", body = super::ErrorBody),
        (status = 409, description = "The node has children, or access groups do not reach it", body = super::ErrorBody)))]
pub async fn update_device(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<UpdateDevice>,
) -> Result<Json<DeviceChanged>, ApiError> {
    require_manage_devices(&state, &caller)?;
    let name = request.name.as_deref().map(check_name).transpose()?;
    let write = state.store.write_lock().await;
    let (tree, _) = crate::tenancy::load_tree(&state.store)?;
    let caller = Caller { tree, ..caller };
    let mut device = visible_device(&state, &caller, &id)?;
    let before = device.clone();
    let mut batch = WriteBatch::new();
    if let Some(name) = name {
        device.name = name;
    }
    let moved = request.node.as_ref().is_some_and(|n| n != &device.node);
    if let Some(node) = request.node.filter(|n| n != &device.node) {
        leaf_for_devices(&caller, &node)?;
        let member = MemberRef::Device {
            device_id: device.id.clone(),
        };
        let stranded: Vec<String> = access_groups::memberships_of(&state.store, &member)?
            .into_iter()
            .filter(|(group, record)| {
                record.is_current() && !access_groups::usable_at(&caller.tree, &group.node, &node)
            })
            .map(|(group, _)| group.id.to_string())
            .collect();
        if !stranded.is_empty() {
            return Err(ApiError::conflict(
                "device_in_access_groups",
                format!(
                    "remove the device from access groups {} first: they are not usable at the \
                     new node",
                    stranded.join(", ")
                ),
            ));
        }
        batch.delete(
            NODE_DEVICES,
            &devices::node_device_key(&device.node, &device.id),
        );
        batch.put(
            NODE_DEVICES,
            &devices::node_device_key(&node, &device.id),
            &serde_json::json!({"device": device.id}),
        )?;
        device.node = node;
    }
    batch.put(DEVICES, device.id.as_str(), &device)?;
    device_audit(
        &state,
        &caller,
        "device.update",
        &device,
        serde_json::json!({"name": device.name, "node": device.node,
            "previous_name": before.name, "previous_node": before.node}),
    )
    .record(&mut batch)?;
    state.store.apply(batch).await?;
    drop(write);
    state.fleet_feed.device_changed(&state, &device.id);
    let (mut publication, mut publication_error, mut broker_error) = (None, None, None);
    if moved {
        broker_error = devices::refresh_broker_access(&state, &device.id)
            .await
            .err();
        (publication, publication_error) = publish_node(&state, &caller, &device.node).await;
    }
    Ok(Json(DeviceChanged {
        device: DeviceView::from(&device),
        publication,
        publication_error,
        broker_error,
    }))
}

/// Unpairs a device (manage_devices): revokes it on the broker, then
/// deletes its record, its node entry, its commands and its last
/// screenshot, and ends its
/// access-group memberships (L4). Its credentials stop working at once.
#[utoipa::path(delete, path = "/api/v1/devices/{id}", tag = "devices",
    params(("id" = String, Path, description = "Device id")), security(("bearer" = [])),
    responses((status = 204, description = "Unpaired"),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "No manage_devices permission", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody),
        (status = 502, description = "The broker did not revoke the device; nothing changed", body = super::ErrorBody)))]
pub async fn delete_device(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_manage_devices(&state, &caller)?;
    let write = state.store.write_lock().await;
    let device = visible_device(&state, &caller, &id)?;
    let now = state.clock.now();
    let mut batch = WriteBatch::new();
    let ended = devices::unpair(&state.store, &mut batch, &device, now)?;
    batch.delete(crate::screenshots::SCREENSHOTS, device.id.as_str());
    let member = MemberRef::Device {
        device_id: device.id.clone(),
    };
    let groups: Vec<AccessGroup> = access_groups::memberships_of(&state.store, &member)?
        .into_iter()
        .filter(|(_, record)| record.is_current())
        .map(|(group, _)| group)
        .collect();
    device_audit(
        &state,
        &caller,
        "device.unpair",
        &device,
        serde_json::json!({"name": device.name, "memberships_ended": ended}),
    )
    .record(&mut batch)?;
    state.broker_admin.revoke(&device.id).await.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "broker_unavailable",
            format!("the broker did not revoke the device; nothing changed: {e}"),
        )
    })?;
    state.store.apply(batch).await?;
    drop(write);
    state.fleet_feed.device_changed(&state, &device.id);
    // Its last screenshot goes with it (the record went in the batch).
    if let Ok(path) =
        crate::screenshots::ScreenshotStore::new(&state.config.data).path_of(&device.id)
        && let Err(e) = tokio::fs::remove_file(&path).await
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(device = %device.id, error = %e, "could not remove the unpaired device's screenshot");
    }
    // The groups it left re-sign without it (L4); its node's documents stand.
    let actor = Actor::user(&caller.user, &caller.from);
    for group in groups {
        if let Err(e) = publish::publish(
            &state,
            &GroupRef::AccessGroup(group.id.clone()),
            actor.clone(),
        )
        .await
        {
            tracing::warn!(group = %group.id, error = %e, "publishing after an unpair failed");
        }
    }
    let _ = publish_node(&state, &caller, &device.node).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Replaces a device's feed variables `[1]`…`[25]` (manage_devices, D6):
/// stored with an audit record, then its node is published so the device's
/// signed assignment carries them at once. A bad number or value is 400 and
/// changes nothing.
#[utoipa::path(put, path = "/api/v1/devices/{id}/variables", tag = "devices", request_body = SetVariables,
    params(("id" = String, Path, description = "Device id")), security(("bearer" = [])),
    responses((status = 200, description = "Stored and published", body = DeviceChanged),
        (status = 400, description = "A variable number outside 1 to 25, or a bad value", body = super::ErrorBody),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "No manage_devices permission", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody)))]
pub async fn set_variables(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<SetVariables>,
) -> Result<Json<DeviceChanged>, ApiError> {
    require_manage_devices(&state, &caller)?;
    validate_variables(&request.variables)
        .map_err(|e| ApiError::bad_request("invalid_variables", e.to_string()))?;
    let write = state.store.write_lock().await;
    let mut device = visible_device(&state, &caller, &id)?;
    let previous = std::mem::replace(&mut device.variables, request.variables);
    let mut batch = WriteBatch::new();
    batch.put(DEVICES, device.id.as_str(), &device)?;
    device_audit(
        &state,
        &caller,
        "device.variables",
        &device,
        serde_json::json!({"variables": device.variables, "previous": previous}),
    )
    .record(&mut batch)?;
    state.store.apply(batch).await?;
    drop(write);
    let (publication, publication_error) = publish_node(&state, &caller, &device.node).await;
    Ok(Json(DeviceChanged {
        device: DeviceView::from(&device),
        publication,
        publication_error,
        broker_error: None,
    }))
}

// ------------------------------------------------------------- commands

/// Sends a signed command to a device (manage_devices, Deliver 7): version
/// strictly increasing per device, a random nonce, valid for five minutes;
/// stored, then published not retained with QoS 1 on
/// `signet/v1/devices/{id}/commands`.
#[utoipa::path(post, path = "/api/v1/devices/{id}/commands", tag = "devices", request_body = CommandRequest,
    params(("id" = String, Path, description = "Device id")), security(("bearer" = [])),
    responses((status = 202, description = "Signed, stored and handed to the broker connection", body = CommandAccepted),
        (status = 400, description = "Unknown action", body = super::ErrorBody),
        (status = 401, description = "No valid token", body = super::ErrorBody),
        (status = 403, description = "No manage_devices permission", body = super::ErrorBody),
        (status = 404, description = "Absent or not visible", body = super::ErrorBody)))]
pub async fn send_command(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<CommandRequest>,
) -> Result<(StatusCode, Json<CommandAccepted>), ApiError> {
    require_manage_devices(&state, &caller)?;
    let write = state.store.write_lock().await;
    let mut device = visible_device(&state, &caller, &id)?;
    let now = state.clock.now();
    let version = device.last_command_version.saturating_add(1);
    let command = Command {
        version,
        issued_at: now,
        expires_at: now + TimeDelta::seconds(COMMAND_TTL_SECS),
        device_id: device.id.clone(),
        nonce: devices::new_nonce(),
        action: request.action,
    };
    let envelope =
        sign_document(&command, &state.keys.signing).map_err(|e| ApiError::internal(&e))?;
    let envelope = String::from_utf8(envelope).map_err(|e| ApiError::internal(&e))?;
    device.last_command_version = version;
    let mut batch = WriteBatch::new();
    batch.put(DEVICES, device.id.as_str(), &device)?;
    batch.put(
        DEVICE_COMMANDS,
        &devices::command_key(&device.id, version),
        &StoredCommand {
            device: device.id.clone(),
            version,
            action: command.action,
            nonce: command.nonce.clone(),
            issued_at: now,
            expires_at: command.expires_at,
            issued_by: caller.user.id.clone(),
            envelope: envelope.clone(),
        },
    )?;
    let kept = state
        .store
        .scan_keys(DEVICE_COMMANDS, &format!("{}/", device.id))?;
    let excess = (kept.len() + 1).saturating_sub(MAX_COMMANDS_KEPT);
    for key in kept.iter().take(excess) {
        batch.delete(DEVICE_COMMANDS, key);
    }
    device_audit(
        &state,
        &caller,
        "device.command",
        &device,
        serde_json::json!({"action": command.action, "version": version, "nonce": command.nonce}),
    )
    .record(&mut batch)?;
    state.store.apply(batch).await?;
    drop(write);
    let delivery = state
        .publisher
        .send(TransientMessage {
            topic: commands_topic(&device.id),
            payload: envelope.into_bytes(),
        })
        .await;
    if let Err(e) = &delivery {
        tracing::warn!(device = %device.id, error = %e, "command not delivered");
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(CommandAccepted {
            device: device.id,
            version,
            nonce: command.nonce,
            action: command.action,
            expires_at: command.expires_at,
            delivered: delivery.is_ok(),
            delivery_error: delivery.err().map(|e| e.to_string()),
        }),
    ))
}
