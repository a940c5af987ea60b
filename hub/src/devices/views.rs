//! The devices' own data as the API shows and takes it (views and
//! requests; schema names are part of the API contract).
//!
//! Owns: [`DeviceView`], [`PairingView`], [`CommandAccepted`] and the
//! request bodies. Must not: decide anything.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use signet_common::documents::CommandAction;
use signet_common::ids::{DeviceId, NodeId, UserId};

use super::{Device, Pairing};

/// A paired device as the API shows it (never its secret).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Serialize, utoipa::ToSchema)]
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

impl From<&Pairing> for PairingView {
    fn from(p: &Pairing) -> Self {
        Self {
            code: p.code.clone(),
            os: p.os.clone(),
            agent_version: p.agent_version.clone(),
            requested_at: p.requested_at,
            expires_at: p.expires_at,
        }
    }
}

/// A command accepted for a device (Deliver 7).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
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

/// Approving a pairing.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovePairing {
    /// The leaf node to attach the device to (T1), inside the caller's domain.
    #[schema(value_type = String)]
    pub node: NodeId,
    /// Display name (1 to 128 bytes).
    pub name: String,
}

/// Changes to a device; absent fields stay as they are.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateDevice {
    /// New display name.
    pub name: Option<String>,
    /// Another leaf node inside the caller's domain to move it to.
    #[schema(value_type = Option<String>)]
    pub node: Option<NodeId>,
}

/// A device's feed variables (D6), replacing the ones it had.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetVariables {
    /// Values by variable number (`"1"` to `"25"`), each at most 256 bytes
    /// without control characters; `{}` clears them all.
    #[schema(value_type = BTreeMap<String, String>)]
    pub variables: BTreeMap<u8, String>,
}

/// A command for a device.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandRequest {
    /// `screenshot`, `resync`, `restart_player` or `purge_cache`.
    #[schema(value_type = String)]
    pub action: CommandAction,
}

// Schema-only mirrors of the `signet-common` pairing wire types (which stay
// free of `utoipa`), for the OpenAPI document: never used to (de)serialize
// anything; a field added there must be added here.

/// `signet_common::sync::PairingRequest`: what an unpaired agent sends (S7).
#[derive(utoipa::ToSchema)]
#[schema(as = PairingRequest)]
#[allow(dead_code)] // schema only
pub struct PairingRequestSchema {
    /// The agent's own Ed25519 public key, standard base64 of 32 bytes.
    public_key: String,
    /// The agent's version.
    agent_version: String,
    /// The device's operating system, e.g. `Raspberry Pi OS 12 (aarch64)`.
    os: String,
}

/// `signet_common::sync::PairingTicket`: the code to show and the ticket
/// to poll with.
#[derive(utoipa::ToSchema)]
#[schema(as = PairingTicket)]
#[allow(dead_code)] // schema only
pub struct PairingTicketSchema {
    /// Secret: only the agent knows it; it polls
    /// `GET /api/v1/device/pairings/{ticket}`.
    ticket: String,
    /// The short code the agent shows and an operator approves.
    code: String,
    /// Until when the code may be approved.
    expires_at: chrono::DateTime<chrono::Utc>,
    /// How long to wait between polls, in seconds.
    poll_secs: u32,
}

/// `signet_common::sync::BrokerAccess`: where and how a paired device
/// connects to the broker.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = BrokerAccess)]
#[allow(dead_code)] // schema only
pub struct BrokerAccessSchema {
    /// `mqtt://host:port` or `mqtts://host:port`.
    url: String,
    /// The MQTT user name: the device id.
    username: String,
    /// The device's own secret (also its HTTP Basic password).
    password: String,
    /// PEM of the CA that signs the broker's certificate, for `mqtts://`.
    ca_pem: Option<String>,
}

/// `signet_common::sync::PairingStatus`: what a poll of a pairing ticket
/// answers, tagged by `status`.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = PairingStatus)]
#[serde(tag = "status", rename_all = "snake_case")]
#[allow(dead_code)] // schema only
pub enum PairingStatusSchema {
    /// Not approved yet; poll again.
    Pending {
        /// Until when the code may be approved.
        expires_at: chrono::DateTime<chrono::Utc>,
    },
    /// Approved: the device's identity and credentials, returned once.
    Approved {
        /// The device id.
        device_id: String,
        /// The broker and the device's credentials for it.
        broker: BrokerAccessSchema,
        /// The root public key to pin (standard base64 of 32 bytes).
        root_public_key: String,
        /// The hub's public base URL, for content and event uploads.
        hub_url: String,
    },
    /// Refused by an operator, expired, or already collected.
    Closed {
        /// Why.
        reason: String,
    },
}
