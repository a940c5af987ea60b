//! Pairing (S7): `signet-agent pair --hub URL`.
//!
//! Owns: the device side of the pairing exchange — make the device key once,
//! `POST {hub}/api/v1/device/pairings` with a
//! [`PairingRequest`], print the code, poll
//! `GET {hub}/api/v1/device/pairings/{ticket}` until the hub answers
//! `approved` (record the identity, pin the root key) or `closed` (fail with
//! the hub's reason). May call: [`crate::state`] to record the result,
//! [`crate::clock`] to start the trusted clock. Must not: talk MQTT.
//!
//! Every wait is bounded: each request by [`REQUEST_TIMEOUT`], the whole
//! exchange by the ticket's `expires_at` plus [`EXPIRY_MARGIN`].

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use signet_common::clock::TrustedClock;
use signet_common::envelope::PublicKey;
use signet_common::sync::{PAIRING_CODE_LEN, PairingRequest, PairingStatus, PairingTicket};

use crate::clock::DeviceClock;
use crate::config::{BrokerUrl, check_http_url};
use crate::state::{Identity, StateError, Store};

/// The longest one HTTP request to the hub may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long past the ticket's expiry the agent keeps polling (clock skew).
pub const EXPIRY_MARGIN: TimeDelta = TimeDelta::seconds(30);
/// The largest answer read from the hub.
const MAX_ANSWER_BYTES: usize = 256 * 1024;
/// The most consecutive failed polls before giving up.
const MAX_POLL_FAILURES: u32 = 20;

/// Why pairing failed.
#[derive(Debug, thiserror::Error)]
pub enum PairingError {
    /// The state could not be read or written, or the device is paired.
    #[error(transparent)]
    State(#[from] StateError),
    /// The hub URL is not usable.
    #[error("hub URL: {0}")]
    BadHubUrl(String),
    /// The hub could not be reached or answered with an HTTP error.
    #[error("hub request {url}: {message}")]
    Http {
        /// The URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The hub answered something that is not the contract shape.
    #[error("hub answer from {url} is not valid: {message}")]
    BadAnswer {
        /// The URL.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// The hub closed the pairing (refused, expired or already collected).
    #[error("pairing closed by the hub: {0}")]
    Closed(String),
    /// The code expired before an operator approved it.
    #[error("the pairing code expired before it was approved")]
    Expired,
}

/// The result of a successful pairing.
#[derive(Debug, Clone)]
pub struct Paired {
    /// What was recorded.
    pub identity: Identity,
}

/// Pairs this device with the hub at `hub_url`, writing progress lines
/// (the `pairing code: …` line first) to `out`.
///
/// # Errors
/// [`PairingError`] saying what failed; nothing is recorded unless approved.
pub async fn pair(
    store: &Store,
    hub_url: &str,
    os: &str,
    out: &mut (dyn std::io::Write + Send),
) -> Result<Paired, PairingError> {
    check_http_url(hub_url).map_err(PairingError::BadHubUrl)?;
    if let Some(existing) = store.identity()? {
        return Err(StateError::AlreadyPaired(existing.device_id).into());
    }
    let base = hub_url.trim_end_matches('/');
    let key = store.device_key()?;
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| PairingError::Http {
            url: base.to_owned(),
            message: e.to_string(),
        })?;

    let request = PairingRequest {
        public_key: key.public_key().to_base64(),
        agent_version: crate::VERSION.to_owned(),
        os: os.to_owned(),
    };
    let url = format!("{base}/api/v1/device/pairings");
    let response = client
        .post(&url)
        .json(&request)
        .send()
        .await
        .map_err(|e| http(&url, &e))?;
    let ticket: PairingTicket = read_json(&url, response).await?;
    if ticket.code.len() != PAIRING_CODE_LEN
        || !ticket.code.bytes().all(|b| b.is_ascii_alphanumeric())
        || ticket.ticket.is_empty()
        || ticket.ticket.len() > 256
        || !ticket
            .ticket
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(PairingError::BadAnswer {
            url,
            message: "the code or ticket is not in the contract form".into(),
        });
    }
    let _ = writeln!(out, "pairing code: {}", ticket.code);
    let _ = writeln!(
        out,
        "waiting for an operator to approve it (until {})",
        ticket.expires_at.to_rfc3339()
    );
    let _ = out.flush();

    let poll = Duration::from_secs(u64::from(ticket.poll_secs.clamp(1, 60)));
    let deadline = ticket.expires_at + EXPIRY_MARGIN;
    let poll_url = format!("{base}/api/v1/device/pairings/{}", ticket.ticket);
    let mut failures = 0u32;
    loop {
        if Utc::now() > deadline {
            return Err(PairingError::Expired);
        }
        let answer = match client.get(&poll_url).send().await {
            Ok(response) => read_json::<PairingStatus>(&poll_url, response).await,
            Err(e) => Err(http(&poll_url, &e)),
        };
        match answer {
            Ok(PairingStatus::Pending { .. }) => failures = 0,
            Ok(PairingStatus::Closed { reason }) => return Err(PairingError::Closed(reason)),
            Ok(PairingStatus::Approved {
                device_id,
                broker,
                root_public_key,
                hub_url: approved_hub,
            }) => {
                let bad = |message: String| PairingError::BadAnswer {
                    url: poll_url.clone(),
                    message,
                };
                let root = PublicKey::from_base64(&root_public_key)
                    .map_err(|e| bad(format!("root_public_key: {e}")))?;
                BrokerUrl::parse(&broker.url).map_err(|e| bad(format!("broker url: {e}")))?;
                check_http_url(&approved_hub).map_err(|e| bad(format!("hub_url: {e}")))?;
                let id_ok = !device_id.as_str().is_empty()
                    && device_id.as_str().len() <= signet_common::ids::MAX_ID_LEN
                    && !device_id.as_str().contains(['/', '+', '#', '\0']);
                if !id_ok || broker.password.is_empty() || broker.password.len() > 1024 {
                    return Err(bad("device id or credentials out of bounds".into()));
                }
                let identity = Identity {
                    device_id,
                    hub_url: approved_hub,
                    broker_url: broker.url,
                    username: broker.username,
                    ca_pem: broker.ca_pem,
                    paired_at: Utc::now(),
                };
                let clock = TrustedClock::new(&DeviceClock::new().read());
                store.record_pairing(identity.clone(), root, &broker.password, clock)?;
                let _ = writeln!(
                    out,
                    "paired as device {} (root key {})",
                    identity.device_id,
                    root.key_id()
                );
                let _ = out.flush();
                return Ok(Paired { identity });
            }
            Err(e @ PairingError::BadAnswer { .. }) => return Err(e),
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %e, failures, "pairing poll failed; retrying");
                if failures >= MAX_POLL_FAILURES {
                    return Err(e);
                }
            }
        }
        tokio::time::sleep(poll).await;
    }
}

fn http(url: &str, e: &reqwest::Error) -> PairingError {
    PairingError::Http {
        url: url.to_owned(),
        message: e.to_string(),
    }
}

/// Reads a bounded JSON answer; an HTTP error status is a
/// [`PairingError::Http`] carrying the hub's `{"error", "message"}` text.
async fn read_json<T: serde::de::DeserializeOwned>(
    url: &str,
    mut response: reqwest::Response,
) -> Result<T, PairingError> {
    let status = response.status();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| http(url, &e))? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(PairingError::BadAnswer {
                url: url.to_owned(),
                message: format!("answer over {MAX_ANSWER_BYTES} bytes"),
            });
        }
        body.extend_from_slice(&chunk);
    }
    if !status.is_success() {
        let text: String = String::from_utf8_lossy(&body).chars().take(300).collect();
        return Err(PairingError::Http {
            url: url.to_owned(),
            message: format!("HTTP {status}: {text}"),
        });
    }
    serde_json::from_slice(&body).map_err(|e| PairingError::BadAnswer {
        url: url.to_owned(),
        message: e.to_string(),
    })
}
