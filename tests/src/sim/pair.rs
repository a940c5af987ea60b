//! Pairing simulated screens through the hub's real pairing API (X1).
//!
//! Owns: one pairing exchange per screen, as `signet-agent pair` makes it
//! (the device key made once in the screen's own data dir, `POST
//! /api/v1/device/pairings`, the operator's approval by code, the poll that
//! returns the identity and credentials, recorded with
//! [`Store::record_pairing`]), run with bounded concurrency and retried
//! with backoff when the hub refuses or fails. Must not: start anything
//! that runs (the fleet does).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use signet_agent::clock::DeviceClock;
use signet_agent::state::{Identity, SharedDb, Store};
use signet_common::clock::TrustedClock;
use signet_common::envelope::PublicKey;
use signet_common::ids::DeviceId;
use signet_common::sync::{PairingStatus, PairingTicket};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// How many times one screen's pairing is tried.
const ATTEMPTS: u32 = 8;

/// A paired screen: its identity recorded in its own state.
#[derive(Debug, Clone)]
pub struct Paired {
    /// Its index in the fleet.
    pub index: usize,
    /// Its device id.
    pub device: DeviceId,
    /// Its state (its own tree of the shared database).
    pub store: Store,
    /// The broker URL it was given.
    pub broker_url: String,
    /// Its MQTT user name.
    pub username: String,
    /// Its secret (MQTT and HTTP Basic password).
    pub password: String,
}

/// Where the screens pair and who approves them.
#[derive(Debug, Clone)]
pub struct Approver {
    /// The hub's base URL.
    pub base: String,
    /// The admin's bearer token.
    pub token: String,
    /// The node the screens are approved into.
    pub node: String,
    /// The HTTP client.
    pub client: reqwest::Client,
}

/// Pairs `count` screens with at most `concurrency` exchanges at once; the
/// screen `i` keeps its files in `dir/screen-{i}` and its records in the
/// trees `screen-{i}/…` of `db`.
///
/// # Errors
/// The first screen that could not be paired after [`ATTEMPTS`] tries,
/// with the last reason.
pub async fn pair_fleet(
    approver: &Approver,
    db: &sled::Db,
    dir: &Path,
    count: usize,
    concurrency: usize,
) -> Result<Vec<Paired>, String> {
    let slots = Arc::new(Semaphore::new(concurrency.max(1)));
    // One flush gate for every screen: commits at the same moment share a
    // flush, as one agent's do (X2).
    let db = SharedDb::new(db.clone());
    let mut running = JoinSet::new();
    for index in 0..count {
        let (approver, db, slots) = (approver.clone(), db.clone(), slots.clone());
        let dir = dir.join(format!("screen-{index}"));
        running.spawn(async move {
            let _slot = slots.acquire_owned().await.map_err(|e| e.to_string())?;
            let store = Store::open_in(&db, &dir, &format!("screen-{index}"))
                .map_err(|e| format!("screen {index}: {e}"))?;
            let mut last = String::new();
            for attempt in 0..ATTEMPTS {
                match pair_one(&approver, &store, index).await {
                    Ok(paired) => return Ok(paired),
                    Err(reason) => last = reason,
                }
                tokio::time::sleep(Duration::from_millis(200) * 2_u32.pow(attempt.min(5))).await;
            }
            Err(format!(
                "screen {index} not paired after {ATTEMPTS} tries: {last}"
            ))
        });
    }
    let mut paired = Vec::with_capacity(count);
    while let Some(done) = running.join_next().await {
        paired.push(done.map_err(|e| e.to_string())??);
    }
    paired.sort_by_key(|p| p.index);
    Ok(paired)
}

async fn json_of<T: serde::de::DeserializeOwned>(
    what: &str,
    response: Result<reqwest::Response, reqwest::Error>,
) -> Result<T, String> {
    let response = response.map_err(|e| format!("{what}: {e}"))?;
    let status = response.status();
    let bytes = response.bytes().await.map_err(|e| format!("{what}: {e}"))?;
    if !status.is_success() {
        return Err(format!(
            "{what}: {status} {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
        ));
    }
    serde_json::from_slice(&bytes).map_err(|e| format!("{what}: {e}"))
}

/// One exchange: request, approval, collection, record.
async fn pair_one(approver: &Approver, store: &Store, index: usize) -> Result<Paired, String> {
    let base = &approver.base;
    let key = store.device_key().map_err(|e| e.to_string())?;
    let ticket: PairingTicket = json_of(
        "pairing request",
        approver
            .client
            .post(format!("{base}/api/v1/device/pairings"))
            .json(&json!({"public_key": key.public_key().to_base64(),
                "agent_version": signet_agent::VERSION, "os": "signet-sim"}))
            .send()
            .await,
    )
    .await?;
    let _: serde_json::Value = json_of(
        "approval",
        approver
            .client
            .post(format!(
                "{base}/api/v1/devices/pairings/{}/approve",
                ticket.code
            ))
            .bearer_auth(&approver.token)
            .json(&json!({"node": approver.node, "name": format!("sim-{index}")}))
            .send()
            .await,
    )
    .await?;
    let status: PairingStatus = json_of(
        "pairing poll",
        approver
            .client
            .get(format!("{base}/api/v1/device/pairings/{}", ticket.ticket))
            .send()
            .await,
    )
    .await?;
    let PairingStatus::Approved {
        device_id,
        broker,
        root_public_key,
        hub_url,
    } = status
    else {
        return Err(format!("not approved: {status:?}"));
    };
    let root = PublicKey::from_base64(&root_public_key).map_err(|e| e.to_string())?;
    let identity = Identity {
        device_id: device_id.clone(),
        hub_url,
        broker_url: broker.url.clone(),
        username: broker.username.clone(),
        ca_pem: broker.ca_pem.clone(),
        paired_at: Utc::now(),
    };
    let clock = TrustedClock::new(&DeviceClock::new().read());
    let (record, secret) = (store.clone(), broker.password.clone());
    tokio::task::spawn_blocking(move || record.record_pairing(identity, root, &secret, clock))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    Ok(Paired {
        index,
        device: device_id,
        store: store.clone(),
        broker_url: broker.url,
        username: broker.username,
        password: broker.password,
    })
}
