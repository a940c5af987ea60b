//! Devices and pairing over HTTP (S7, T1, T4, D6, Deliver 4 and 7): routes of
//! [`crate::devices::service`]; publishing after a change (it sits above devices).

use axum::body::Bytes;
use serde::Serialize;
use signet_common::sync::{PairingStatus, PairingTicket, commands_topic};

use super::prelude::*;
use crate::devices::service::{self, Changed, DeviceError};
use crate::devices::views::*;
use crate::groups::GroupRef;
use crate::publish::{self, PublicationRun, TransientMessage};

concern_routes! { request_pairing; poll_pairing; list_pairings; approve_pairing; reject_pairing;
list_devices; get_device, update_device, delete_device; send_command; set_variables }

const UNAVAILABLE: StatusCode = StatusCode::SERVICE_UNAVAILABLE;

impl From<DeviceError> for ApiError {
    fn from(e: DeviceError) -> Self {
        let message = e.to_string();
        match e {
            DeviceError::NotFound(what) => Self::not_found(what),
            DeviceError::Forbidden => Self::forbidden(message),
            DeviceError::Invalid { code, message } => Self::bad_request(code, message),
            DeviceError::Conflict { code, message } => Self::conflict(code, message),
            DeviceError::TooManyPairings => Self::new(UNAVAILABLE, "too_many_pairings", message),
            DeviceError::TooManyFromAddress { retry_after } => {
                Self::too_many("too_many_pairings_from_address", message, retry_after)
            }
            DeviceError::Internal(cause) => Self::internal(&cause),
            DeviceError::Store(e) => e.into(),
        }
    }
}

/// A device and the publication that sent it its assignment.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DeviceChanged {
    /// The device as stored now.
    pub device: DeviceView,
    /// The run that signed its node's documents and its assignment.
    pub publication: Option<PublicationRun>,
    /// Why that publication failed (the node's next publication sends it).
    pub publication_error: Option<String>,
    /// Why its broker access is not updated yet (the hub keeps trying).
    pub broker_error: Option<String>,
}

/// Publishes `scope` after a device change: the run, or why it failed (logged).
async fn publish_after(
    state: &AppState,
    caller: &Caller,
    scope: GroupRef,
) -> (Option<PublicationRun>, Option<String>) {
    let actor = publish::Actor::user(&caller.user, &caller.from);
    match publish::publish(state, &scope, actor).await {
        Ok(published) => (Some(published.run), None),
        Err(e) => {
            tracing::warn!(?scope, error = %e, "publishing after a device change failed");
            (None, Some(e.to_string()))
        }
    }
}

/// The answer to a change: its node published when it changed or `always`.
async fn changed(state: &AppState, caller: &Caller, c: Changed, always: bool) -> DeviceChanged {
    let mut answer = DeviceChanged {
        device: DeviceView::from(&c.device),
        publication: None,
        publication_error: None,
        broker_error: c.broker_error,
    };
    if c.node_changed || always {
        let node = GroupRef::Node(c.device.node);
        (answer.publication, answer.publication_error) = publish_after(state, caller, node).await;
    }
    answer
}

/// The answer to an approval: the device's node documents and its own
/// assignment published ([`publish::publish_new_device`]: not every other
/// device's at the node, so pairing a fleet is O(1) per approval).
async fn paired(state: &AppState, caller: &Caller, c: Changed) -> DeviceChanged {
    let actor = publish::Actor::user(&caller.user, &caller.from);
    let (node, device) = (&c.device.node, &c.device.id);
    let (publication, publication_error) =
        match publish::publish_new_device(state, node, device, actor).await {
            Ok(published) => (Some(published.run), None),
            Err(e) => {
                tracing::warn!(%node, %device, error = %e, "publishing a paired device failed");
                (None, Some(e.to_string()))
            }
        };
    DeviceChanged {
        device: DeviceView::from(&c.device),
        publication,
        publication_error,
        broker_error: c.broker_error,
    }
}

/// An agent asks to pair (S7): the code to show and the ticket to poll with.
#[utoipa::path(post, path = "/api/v1/device/pairings", tag = "device",
    description = "Answers the code to show on the screen and the secret ticket to poll with.",
    request_body(content = PairingRequestSchema, description = "The agent's key, version and OS"),
    responses((status = 201, description = "The code and the ticket", body = PairingTicketSchema),
        (status = 400, description = "Not a valid pairing request", body = ErrorBody), (status = 429, description = "Too many open pairings from this address", body = ErrorBody),
        (status = 503, description = "Too many open pairings", body = ErrorBody)))]
pub async fn request_pairing(
    State(state): Ctx,
    ClientAddress(from): ClientAddress,
    body: Bytes,
) -> WithStatus<PairingTicket> {
    let ticket = service::request_pairing(&state, &body, &from).await?;
    Ok((StatusCode::CREATED, Json(ticket)))
}

/// An agent polls its pairing: pending, approved (credentials once) or closed.
#[utoipa::path(get, path = "/api/v1/device/pairings/{ticket}", tag = "device",
    description = "Pending; approved with the device's credentials, answered exactly once (the plain secret is deleted in the same durable write); or closed with a reason (rejected, expired, collected).",
    params(("ticket" = String, Path, description = "The secret ticket")),
    responses((status = 200, description = "Pending, approved (once, with credentials) or closed", body = PairingStatusSchema),
        (status = 404, description = "No such ticket", body = ErrorBody)))]
pub async fn poll_pairing(State(state): Ctx, Path(ticket): Id) -> Answer<PairingStatus> {
    Ok(Json(service::poll_pairing(&state, &ticket).await?))
}

/// Open pairings (manage_devices; root-level callers only).
#[utoipa::path(get, path = "/api/v1/devices/pairings", tag = "devices", security(("bearer" = [])),
    description = "Oldest first. Callers whose domain is not root-level get an empty list and approve by the code on the screen.",
    responses((status = 200, description = "Open pairings", body = Vec<PairingView>),
        (status = 403, description = "No manage_devices permission", body = ErrorBody)))]
pub async fn list_pairings(State(state): Ctx, caller: Caller) -> Answer<Vec<PairingView>> {
    Ok(Json(service::open_pairings(&state, &caller.actor())?))
}

/// Approves a pairing (manage_devices), then publishes the device's node.
#[utoipa::path(post, path = "/api/v1/devices/pairings/{code}/approve", tag = "devices",
    description = "Makes the device at a leaf node inside the caller's domain, stored with the outbox entry granting it on the broker, then publishes the node so it gets its assignment at once. A broker that is down delays the grant (retried; `broker_error` says why), not the approval.",
    request_body = ApprovePairing,
    params(("code" = String, Path, description = "The code on the screen")), security(("bearer" = [])),
    responses((status = 201, description = "Paired", body = DeviceChanged), (status = 400, description = "Invalid name", body = ErrorBody),
        (status = 403, description = "No manage_devices permission", body = ErrorBody), (status = 404, description = "No open pairing with this code, or the node is not visible", body = ErrorBody),
        (status = 409, description = "The node has children (T1)", body = ErrorBody)))]
pub async fn approve_pairing(
    State(state): Ctx,
    caller: Caller,
    Path(code): Id,
    ApiJson(request): ApiJson<ApprovePairing>,
) -> WithStatus<DeviceChanged> {
    let approved = service::approve(&state, &caller.actor(), &code, &request).await?;
    let answer = paired(&state, &caller, approved).await;
    Ok((StatusCode::CREATED, Json(answer)))
}

/// Rejects the pairing with `code` (manage_devices).
#[utoipa::path(post, path = "/api/v1/devices/pairings/{code}/reject", tag = "devices",
    description = "Its agent's next poll is closed.",
    params(("code" = String, Path, description = "The code on the screen")), security(("bearer" = [])),
    responses((status = 204, description = "Rejected"), (status = 403, description = "No manage_devices permission", body = ErrorBody),
        (status = 404, description = "No open pairing with this code", body = ErrorBody)))]
pub async fn reject_pairing(State(state): Ctx, caller: Caller, Path(code): Id) -> Done {
    service::reject(&state, &caller.actor(), &code).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Devices attached inside the caller's domain.
#[utoipa::path(get, path = "/api/v1/devices", tag = "devices", security(("bearer" = [])),
    responses((status = 200, description = "Visible devices", body = Vec<DeviceView>)))]
pub async fn list_devices(State(state): Ctx, caller: Caller) -> Answer<Vec<DeviceView>> {
    Ok(Json(service::visible_devices(&state, &caller.actor())?))
}

/// One device attached inside the caller's domain.
#[utoipa::path(get, path = "/api/v1/devices/{id}", tag = "devices",
    params(("id" = String, Path, description = "Device id")), security(("bearer" = [])),
    responses((status = 200, description = "The device", body = DeviceView), (status = 404, description = "Absent or not visible", body = ErrorBody)))]
pub async fn get_device(State(state): Ctx, caller: Caller, Path(id): Id) -> Answer<DeviceView> {
    let device = service::visible_device(&state, &caller.actor(), &id)?;
    Ok(Json(DeviceView::from(&device)))
}

/// Renames or moves a device (manage_devices); a move publishes the new node.
#[utoipa::path(patch, path = "/api/v1/devices/{id}", tag = "devices", request_body = UpdateDevice,
    description = "A move goes to a leaf node inside the caller's domain; a member of access groups not usable there must leave them first (409). A move updates the broker access (durable outbox) and publishes the new node (the assignment changes).",
    params(("id" = String, Path, description = "Device id")), security(("bearer" = [])),
    responses((status = 200, description = "Updated", body = DeviceChanged), (status = 400, description = "Invalid name", body = ErrorBody),
        (status = 403, description = "No manage_devices permission", body = ErrorBody), (status = 404, description = "Device or node absent or not visible", body = ErrorBody),
        (status = 409, description = "The node has children, or access groups do not reach it", body = ErrorBody)))]
pub async fn update_device(
    State(state): Ctx,
    caller: Caller,
    Path(id): Id,
    ApiJson(request): ApiJson<UpdateDevice>,
) -> Answer<DeviceChanged> {
    let updated = service::update(&state, &caller.actor(), &id, &request).await?;
    Ok(Json(changed(&state, &caller, updated, false).await))
}

/// Unpairs a device (manage_devices), then re-signs the groups it left (L4), its node.
#[utoipa::path(delete, path = "/api/v1/devices/{id}", tag = "devices",
    description = "Deletes its record, node entry, commands and last screenshot, ends its access-group memberships (L4) and revokes it on the broker (durable outbox), in one transaction. Its credentials stop working over HTTP at once, on the broker once it confirms.",
    params(("id" = String, Path, description = "Device id")), security(("bearer" = [])),
    responses((status = 204, description = "Unpaired"), (status = 403, description = "No manage_devices permission", body = ErrorBody),
        (status = 404, description = "Absent or not visible", body = ErrorBody)))]
pub async fn delete_device(State(state): Ctx, caller: Caller, Path(id): Id) -> Done {
    let unpaired = service::unpair(&state, &caller.actor(), &id).await?;
    for group in unpaired.groups {
        publish_after(&state, &caller, GroupRef::AccessGroup(group)).await;
    }
    publish_after(&state, &caller, GroupRef::Node(unpaired.device.node)).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Replaces a device's feed variables (manage_devices, D6), then publishes its node.
#[utoipa::path(put, path = "/api/v1/devices/{id}/variables", tag = "devices", request_body = SetVariables,
    description = "Variables `[1]`…`[25]`, stored with an audit record; then the node is published so the device's signed assignment carries them at once. A bad number or value is 400 and changes nothing.",
    params(("id" = String, Path, description = "Device id")), security(("bearer" = [])),
    responses((status = 200, description = "Stored and published", body = DeviceChanged),
        (status = 400, description = "A variable number outside 1 to 25, or a bad value", body = ErrorBody),
        (status = 403, description = "No manage_devices permission", body = ErrorBody), (status = 404, description = "Absent or not visible", body = ErrorBody)))]
pub async fn set_variables(
    State(state): Ctx,
    caller: Caller,
    Path(id): Id,
    ApiJson(request): ApiJson<SetVariables>,
) -> Answer<DeviceChanged> {
    let device = service::set_variables(&state, &caller.actor(), &id, &request).await?;
    Ok(Json(changed(&state, &caller, device, true).await))
}

/// Signs and stores a command (manage_devices, Deliver 7), then sends it not retained.
#[utoipa::path(post, path = "/api/v1/devices/{id}/commands", tag = "devices", request_body = CommandRequest,
    description = "Version strictly increasing per device, a random nonce, valid for five minutes; stored, then published not retained with QoS 1 on `signet/v1/devices/{id}/commands`.",
    params(("id" = String, Path, description = "Device id")), security(("bearer" = [])),
    responses((status = 202, description = "Signed, stored and handed to the broker connection", body = CommandAccepted),
        (status = 400, description = "Unknown action", body = ErrorBody),
        (status = 403, description = "No manage_devices permission", body = ErrorBody), (status = 404, description = "Absent or not visible", body = ErrorBody)))]
pub async fn send_command(
    State(state): Ctx,
    caller: Caller,
    Path(id): Id,
    ApiJson(request): ApiJson<CommandRequest>,
) -> WithStatus<CommandAccepted> {
    let signed = service::send_command(&state, &caller.actor(), &id, &request).await?;
    let mut accepted = signed.accepted;
    let message = TransientMessage {
        topic: commands_topic(&accepted.device),
        payload: signed.envelope.into_bytes(),
    };
    if let Err(e) = state.publisher.send(message).await {
        tracing::warn!(device = %accepted.device, error = %e, "command not delivered");
        accepted.delivery_error = Some(e.to_string());
    }
    accepted.delivered = accepted.delivery_error.is_none();
    Ok((StatusCode::ACCEPTED, Json(accepted)))
}
