//! OpenAPI schemas of bodies whose Rust types the API does not own: the
//! device wire types of `signet-common` (which stays free of `utoipa`), the
//! raw byte bodies, and the OpenAPI document itself.
//!
//! Owns: schema-only mirrors, used as `body = …` / `value_type = …` in the
//! `#[utoipa::path]` annotations. Must not: be used to (de)serialize
//! anything — the handlers parse the real `signet-common` types; a field
//! added there must be added here (the `openapi` tests in `hub/tests` check
//! the document, not this correspondence).

use std::borrow::Cow;

use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{RefOr, Schema};

/// Raw bytes (`application/octet-stream`, `image/png`): an OpenAPI
/// `string` of format `binary`.
pub struct Binary;

impl utoipa::PartialSchema for Binary {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .into()
    }
}

impl utoipa::ToSchema for Binary {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Binary")
    }
}

/// An OpenAPI 3.1 document (what `GET /api/v1/openapi.json` answers).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // schema only
pub struct OpenApiDocument {
    /// The OpenAPI version, `3.1.0`.
    openapi: String,
    /// Title, version and description of the API.
    #[schema(value_type = Object)]
    info: serde_json::Value,
    /// Every route and its operations.
    #[schema(value_type = Object)]
    paths: serde_json::Value,
    /// Reusable schemas and security schemes.
    #[schema(value_type = Option<Object>)]
    components: Option<serde_json::Value>,
}

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

/// `signet_common::sync::signed`: a report signed by the device key
/// registered at pairing (S11) — the signed envelope of DESIGN §4.
#[derive(utoipa::ToSchema)]
#[schema(as = SignedReport)]
#[allow(dead_code)] // schema only
pub struct SignedReportSchema {
    /// `device_events` (an `EventBatch`) or `device_state` (a device state).
    #[schema(pattern = "^device_(events|state)$")]
    kind: String,
    /// The device key's id: the first 16 hex digits of SHA-256 of its 32
    /// raw public-key bytes.
    #[schema(pattern = "^[0-9a-f]{16}$")]
    key_id: String,
    /// Standard base64 of the report's JSON (for `device_events`, an
    /// `EventBatch`).
    payload: String,
    /// Standard base64 of the 64-byte Ed25519 signature over
    /// `kind || 0x00 || payload bytes`.
    sig: String,
}
