//! The HTTP path to the device's signed documents (S4, DESIGN §1: the
//! broker is an accelerator, never the only path).
//!
//! Owns: [`DocumentFetcher`] — `GET {hub}/api/v1/device/documents` with the
//! device's credentials (HTTP Basic, like the event and screenshot
//! uploads), the answer read up to its bound and checked
//! ([`signet_common::sync::documents`]) — and [`FetchSchedule`], which
//! decides when to fetch: when a needed document is missing (after
//! connecting and letting the retained backlog settle, or a while after
//! start when no broker answers), when a document on a retained topic was
//! refused (poisoned, cleared or stale), and as a slow anti-entropy check;
//! repeated fetches back off ([`Backoff`]). Must not: verify or apply
//! anything — the verifier takes every fetched envelope through the same
//! verify → rollback guard → durable commit path as an MQTT message
//! ([`super::apply::decide`]); nor wait inside the verifier: the request
//! runs in its own task.

use std::time::Duration;

use signet_common::sync::documents::{
    DOCUMENTS_PATH, DeviceDocuments, MAX_DOCUMENTS_ANSWER_BYTES, parse_documents,
};
use signet_common::trust::TrustDocument;
use tokio::time::Instant;

use super::apply::Route;
use crate::retry::Backoff;

/// How long connecting to the hub may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one fetch may take, answer included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The most of a refusal's body kept for the log.
const MAX_REASON_BYTES: usize = 512;
/// How long after start the agent checks for missing documents when no
/// broker connection brought them (the broker may be down).
pub const START_CHECK: Duration = Duration::from_secs(5);
/// The anti-entropy period: the documents are fetched this often even
/// when nothing seems missing (a broker that silently lost or withheld a
/// retained message is caught).
pub const ANTI_ENTROPY: Duration = Duration::from_secs(15 * 60);

/// Why a fetch did not bring documents.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The hub URL is not an `http://` or `https://` URL.
    #[error("hub URL {url:?}: {reason}")]
    BadUrl {
        /// The URL as configured.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Client(reqwest::Error),
    /// No answer, a timeout, or an answer other than 200.
    #[error("fetching documents from the hub failed: {0}")]
    Failed(String),
    /// The answer is larger than its bound, malformed or out of bounds.
    #[error("the hub's documents answer is refused: {0}")]
    Malformed(String),
}

/// Fetches the device's current signed documents from the hub.
#[derive(Debug, Clone)]
pub struct DocumentFetcher {
    /// The HTTP client (with its timeouts).
    client: reqwest::Client,
    /// `{hub}/api/v1/device/documents`.
    url: reqwest::Url,
    /// The device id, the Basic auth user.
    device_id: String,
    /// The device secret, the Basic auth password.
    secret: String,
}

impl DocumentFetcher {
    /// A fetcher from the hub at `hub_url` (its base URL) with the device's
    /// credentials.
    ///
    /// # Errors
    /// [`FetchError::BadUrl`] or [`FetchError::Client`].
    pub fn new(hub_url: &str, device_id: &str, secret: &str) -> Result<Self, FetchError> {
        let url = crate::config::hub_route(hub_url, DOCUMENTS_PATH).map_err(|reason| {
            FetchError::BadUrl {
                url: hub_url.to_owned(),
                reason,
            }
        })?;
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(FetchError::Client)?;
        Ok(Self {
            client,
            url,
            device_id: device_id.to_owned(),
            secret: secret.to_owned(),
        })
    }

    /// Fetches the documents; the answer is read only up to
    /// [`MAX_DOCUMENTS_ANSWER_BYTES`] and checked before it is returned.
    ///
    /// # Errors
    /// [`FetchError::Failed`] or [`FetchError::Malformed`].
    pub async fn fetch(&self) -> Result<DeviceDocuments, FetchError> {
        let failed = |e: reqwest::Error| FetchError::Failed(e.to_string());
        let mut response = self
            .client
            .get(self.url.clone())
            .basic_auth(&self.device_id, Some(&self.secret))
            .send()
            .await
            .map_err(failed)?;
        let status = response.status();
        if response
            .content_length()
            .is_some_and(|n| n > MAX_DOCUMENTS_ANSWER_BYTES as u64)
        {
            return Err(FetchError::Malformed(format!(
                "declares more than {MAX_DOCUMENTS_ANSWER_BYTES} bytes"
            )));
        }
        let limit = if status.is_success() {
            MAX_DOCUMENTS_ANSWER_BYTES
        } else {
            MAX_REASON_BYTES
        };
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(failed)? {
            if body.len() + chunk.len() > limit {
                if status.is_success() {
                    return Err(FetchError::Malformed(format!(
                        "more than {MAX_DOCUMENTS_ANSWER_BYTES} bytes"
                    )));
                }
                body.extend_from_slice(&chunk[..limit - body.len()]);
                break;
            }
            body.extend_from_slice(&chunk);
        }
        if status.as_u16() != 200 {
            return Err(FetchError::Failed(format!(
                "hub answered {status}: {}",
                String::from_utf8_lossy(&body)
            )));
        }
        parse_documents(&body).map_err(|e| FetchError::Malformed(e.to_string()))
    }
}

/// The envelopes of `documents` in the order they must be applied, each
/// with the route its topic would have: the earlier trust documents of
/// the chain newer than `held_trust` (the version held; a root rotation is
/// accepted only at exactly that + 1, S2), then trust (it decides which
/// keys count), hub time (it decides the time), the assignment (it decides
/// the groups and floors), then the manifests. Skipping a chain document
/// by the version it claims is safe: each one applied is verified as any
/// other.
#[must_use]
pub fn in_order(documents: DeviceDocuments, held_trust: Option<u64>) -> Vec<(Route, Vec<u8>)> {
    let mut ordered = Vec::new();
    for earlier in documents.trust_chain {
        let claimed = signet_common::envelope::open(earlier.as_bytes())
            .ok()
            .and_then(|o| serde_json::from_slice::<TrustDocument>(o.payload()).ok())
            .map(|doc| doc.version);
        if claimed.is_some_and(|v| held_trust.is_none_or(|held| v > held)) {
            ordered.push((Route::Trust, earlier.into_bytes()));
        }
    }
    if let Some(trust) = documents.trust {
        ordered.push((Route::Trust, trust.into_bytes()));
    }
    if let Some(time) = documents.hub_time {
        ordered.push((Route::HubTime, time.into_bytes()));
    }
    if let Some(assignment) = documents.assignment {
        ordered.push((Route::Assignment, assignment.into_bytes()));
    }
    for (group, manifest) in documents.manifests {
        ordered.push((Route::Manifest(group), manifest.into_bytes()));
    }
    ordered
}

/// When the next fetch is due. Time is passed in, so the rules are tested
/// without waiting.
#[derive(Debug, Clone)]
pub struct FetchSchedule {
    /// Spaces repeated fetches.
    backoff: Backoff,
    /// When the next fetch (or, unless `forced`, check) is due.
    due: Option<Instant>,
    /// Whether the due fetch happens even when nothing is missing (a
    /// refusal, a failed fetch to retry, the anti-entropy check).
    forced: bool,
    /// Whether a fetch is running now.
    in_flight: bool,
    /// Whether a reason to fetch arose while one was running.
    again: bool,
    /// Fetches in a row, each started within a quiet gap of the previous.
    streak: u32,
    /// When the last fetch started.
    last_started: Option<Instant>,
}

impl FetchSchedule {
    /// A schedule whose first check is [`START_CHECK`] after `now`.
    #[must_use]
    pub fn new(backoff: Backoff, now: Instant) -> Self {
        Self {
            backoff,
            due: Some(now + START_CHECK),
            forced: false,
            in_flight: false,
            again: false,
            streak: 0,
            last_started: None,
        }
    }

    /// The gap after which a new fetch counts as the first of a streak
    /// again.
    fn quiet_gap(&self) -> Duration {
        self.backoff.cap.saturating_mul(2)
    }

    /// The streak a fetch started at `now` continues.
    fn streak_at(&self, now: Instant) -> u32 {
        match self.last_started {
            Some(last) if now.saturating_duration_since(last) < self.quiet_gap() => self.streak,
            _ => 0,
        }
    }

    /// A reason to fetch arose at `now`: `force` for a refused document or
    /// the anti-entropy check (fetch even when nothing is missing), not
    /// forced for "check whether something is missing". The fetch is due
    /// after the back-off of the current streak.
    pub fn want(&mut self, now: Instant, force: bool) {
        self.forced |= force;
        if self.in_flight {
            self.again = true;
            return;
        }
        let at = now + self.backoff.delay(self.streak_at(now));
        self.due = Some(self.due.map_or(at, |due| due.min(at)));
    }

    /// When the next fetch or check is due, unless one is running.
    #[must_use]
    pub fn due(&self) -> Option<Instant> {
        if self.in_flight { None } else { self.due }
    }

    /// Whether the due fetch must happen even when nothing is missing.
    #[must_use]
    pub fn forced(&self) -> bool {
        self.forced
    }

    /// The due check found nothing to do.
    pub fn skip(&mut self) {
        self.due = None;
    }

    /// A fetch starts at `now`.
    pub fn started(&mut self, now: Instant) {
        self.streak = self.streak_at(now).saturating_add(1);
        self.last_started = Some(now);
        self.in_flight = true;
        self.due = None;
        self.forced = false;
    }

    /// The fetch that started last ended at `now`: `failed` when it brought
    /// nothing, `missing` when a needed document is still missing after
    /// applying what it brought. A failure is retried (forced) after the
    /// back-off; a missing document is checked for again after it.
    pub fn finished(&mut self, now: Instant, failed: bool, missing: bool) {
        self.in_flight = false;
        let again = std::mem::take(&mut self.again);
        if failed || missing || again {
            self.forced |= failed || again;
            self.due = Some(now + self.backoff.delay(self.streak_at(now)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff() -> Backoff {
        Backoff {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(10),
        }
    }

    /// S4: the first check comes soon after start; a refusal fetches at
    /// once (within the base delay); repeated fetches back off up to the
    /// cap; a quiet gap starts afresh.
    #[test]
    fn s4_fetches_are_timely_and_back_off() {
        let start = Instant::now();
        let mut schedule = FetchSchedule::new(backoff(), start);
        assert_eq!(schedule.due(), Some(start + START_CHECK));
        assert!(!schedule.forced());

        // A refusal right away: due within the base delay, forced.
        schedule.want(start, true);
        let due = schedule.due().unwrap();
        assert!(due <= start + Duration::from_millis(500));
        assert!(schedule.forced());
        schedule.started(due);
        assert_eq!(schedule.due(), None);
        // Reasons while it runs fetch again once it ended.
        schedule.want(due, true);
        assert_eq!(schedule.due(), None);
        schedule.finished(due, false, false);
        assert!(schedule.forced());
        assert!(schedule.due().is_some());

        // Failures in a row: the delay ceiling grows to the cap.
        let mut now = due;
        for _ in 0..10 {
            let next = schedule.due().unwrap();
            assert!(next.saturating_duration_since(now) <= backoff().cap);
            now = next;
            schedule.started(now);
            schedule.finished(now, true, false);
            assert!(schedule.forced());
        }
        assert!(schedule.streak >= 10);

        // Success with nothing missing: nothing more is due.
        let next = schedule.due().unwrap();
        schedule.started(next);
        schedule.finished(next, false, false);
        assert_eq!(schedule.due(), None);

        // After a quiet gap, the next reason starts a new streak.
        let later = next + Duration::from_secs(60);
        schedule.want(later, false);
        assert!(schedule.due().unwrap() <= later + Duration::from_millis(500));
        schedule.skip();
        assert_eq!(schedule.due(), None);
    }

    /// S2: the earlier trust documents come first, oldest first, without
    /// those the agent holds already (a rotation must follow its N).
    #[test]
    fn s2_the_trust_chain_comes_before_trust_without_what_is_held() {
        use signet_common::envelope::{SigningKey, sign_document};
        let root = SigningKey::from_pkcs8(&SigningKey::generate_pkcs8().unwrap()).unwrap();
        let doc = |version| {
            let payload = TrustDocument {
                version,
                issued_at: chrono::Utc::now(),
                root_key_id: root.key_id(),
                root_public_key: None,
                signing_keys: Vec::new(),
            };
            String::from_utf8(sign_document(&payload, &root).unwrap()).unwrap()
        };
        let (two, three, five) = (doc(2), doc(3), doc(5));
        let documents = DeviceDocuments {
            trust: Some(five.clone()),
            trust_chain: vec![two.clone(), three.clone(), "not an envelope".into()],
            ..DeviceDocuments::default()
        };
        let bytes = |ordered: Vec<(Route, Vec<u8>)>| -> Vec<Vec<u8>> {
            ordered.into_iter().map(|(_, b)| b).collect()
        };
        assert_eq!(
            bytes(in_order(documents.clone(), Some(2))),
            vec![three.clone().into_bytes(), five.clone().into_bytes()]
        );
        assert_eq!(
            bytes(in_order(documents, None)),
            vec![two.into_bytes(), three.into_bytes(), five.into_bytes()]
        );
    }

    /// S4: the answer's documents are applied trust first, then hub time,
    /// the assignment, and the manifests.
    #[test]
    fn s4_fetched_documents_apply_in_dependency_order() {
        let documents = DeviceDocuments {
            trust: Some("t".into()),
            hub_time: Some("h".into()),
            assignment: Some("a".into()),
            manifests: [
                ("g-2".to_owned(), "m2".to_owned()),
                ("g-1".to_owned(), "m1".to_owned()),
            ]
            .into(),
            omitted: Vec::new(),
            trust_chain: Vec::new(),
        };
        let routes: Vec<Route> = in_order(documents, None)
            .into_iter()
            .map(|(r, _)| r)
            .collect();
        assert_eq!(
            routes,
            vec![
                Route::Trust,
                Route::HubTime,
                Route::Assignment,
                Route::Manifest("g-1".into()),
                Route::Manifest("g-2".into()),
            ]
        );
    }
}
