//! Uploading the proof-of-play queue to the hub (U2, S9).
//!
//! Owns: `POST {hub}/api/v1/device/events` with the device's credentials
//! and each batch signed by the device key (S11, the same signed
//! `device_events` envelope the MQTT events topic carries: proof of play is
//! attributable to the key that never left the device, whichever way it
//! travels), and the loop that drains the [`EventLog`] through it. An event leaves the
//! queue only after the hub answered 200 for the batch holding it (the hub
//! answers only once the events are durable); a crash between the answer
//! and the removal sends the batch again and the hub, storing by event id,
//! counts it as duplicates. A batch the hub refuses (400, 413) is split in
//! halves until the one event it refuses is found; that event is moved to
//! `events_refused` with the hub's reason, so one bad event never blocks the
//! others and none is lost silently. Must not: write events (the player
//! records them) nor decide what the hub stores.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use signet_common::envelope::SigningKey;
use signet_common::sync::signed::{ReportError, sign_report};
use signet_common::sync::{EventBatch, MAX_EVENTS_PER_BATCH, MAX_MESSAGE_BYTES, PlayEvent};
use tokio::sync::Notify;

use super::{EventError, EventLog};
use crate::retry::Backoff;

/// The hub's route for event uploads.
const EVENTS_PATH: &str = "/api/v1/device/events";
/// How long connecting to the hub may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one upload may take, answer included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The most of an answer body read (a refusal's reason, the counts).
const MAX_ANSWER_BYTES: usize = 4096;
/// Room left in [`MAX_MESSAGE_BYTES`] for `{"events":[` … `]}`.
const BATCH_OVERHEAD: usize = 16;

/// Why an upload did not go through.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
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
    /// Worth retrying later: no connection, a timeout, a 5xx, a 401 (the
    /// hub may be restarting), a 403 (the hub does not take the device
    /// key's signature: the events stay queued until it does), or an
    /// answer that does not parse.
    #[error("event upload failed, will retry: {0}")]
    Transient(String),
    /// The hub refused the batch (400 or 413), or it could not be signed;
    /// sending it again will not help.
    #[error("hub refused the event batch ({status}): {body}")]
    Refused {
        /// The HTTP status; 0 when the batch was never sent because it could
        /// not be signed (over the report size bound).
        status: u16,
        /// The hub's answer body (at most 4 KiB of it), or why it could not
        /// be signed.
        body: String,
    },
}

/// What the hub answered to an accepted batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct IngestAnswer {
    /// Events stored for the first time.
    pub stored: u64,
    /// Events the hub already held (same id), ignored.
    pub duplicates: u64,
}

/// Sends event batches to the hub.
#[derive(Debug, Clone)]
pub struct Uploader {
    /// The HTTP client (with its timeouts).
    client: reqwest::Client,
    /// `{hub}/api/v1/device/events`.
    url: reqwest::Url,
    /// The device id, the Basic auth user.
    device_id: String,
    /// The device secret, the Basic auth password.
    secret: String,
    /// The device key from pairing, which signs every batch (S11).
    key: Arc<SigningKey>,
}

impl Uploader {
    /// An uploader to the hub at `hub_url` (its base URL, as given at
    /// pairing) with the device's credentials and its device key.
    ///
    /// # Errors
    /// [`UploadError::BadUrl`] or [`UploadError::Client`].
    pub fn new(
        hub_url: &str,
        device_id: &str,
        secret: &str,
        key: Arc<SigningKey>,
    ) -> Result<Self, UploadError> {
        let url = crate::config::hub_route(hub_url, EVENTS_PATH).map_err(|reason| {
            UploadError::BadUrl {
                url: hub_url.to_owned(),
                reason,
            }
        })?;
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(UploadError::Client)?;
        Ok(Self {
            client,
            url,
            device_id: device_id.to_owned(),
            secret: secret.to_owned(),
            key,
        })
    }

    /// Signs one batch (at most [`MAX_EVENTS_PER_BATCH`] events) with the
    /// device key and sends it.
    ///
    /// # Errors
    /// [`UploadError::Refused`] on 400 or 413, or when the batch cannot be
    /// signed; [`UploadError::Transient`] on anything else that is not a
    /// 200 with the hub's counts.
    pub async fn send(&self, batch: &EventBatch) -> Result<IngestAnswer, UploadError> {
        let transient = |e: reqwest::Error| UploadError::Transient(e.to_string());
        let signed =
            sign_report(batch, &self.key).map_err(|e: ReportError| UploadError::Refused {
                status: 0,
                body: e.to_string(),
            })?;
        let mut response = self
            .client
            .post(self.url.clone())
            .basic_auth(&self.device_id, Some(&self.secret))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(signed)
            .send()
            .await
            .map_err(transient)?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transient)? {
            let room = MAX_ANSWER_BYTES.saturating_sub(body.len());
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if room <= chunk.len() {
                break;
            }
        }
        let text = || String::from_utf8_lossy(&body).into_owned();
        match status.as_u16() {
            200 => serde_json::from_slice(&body).map_err(|e| {
                UploadError::Transient(format!("hub answered 200 with {:?}: {e}", text()))
            }),
            400 | 413 => Err(UploadError::Refused {
                status: status.as_u16(),
                body: text(),
            }),
            _ => Err(UploadError::Transient(format!(
                "hub answered {status}: {}",
                text()
            ))),
        }
    }
}

/// Drains `log` to the hub until `shutdown` completes: right at start, when
/// `wake` is notified (use `notify_one`, so a wake during an upload is not
/// lost) and every `interval`. A transient failure waits
/// `backoff.delay(failures)` (consecutive failures, reset by a success)
/// before retrying. Returns promptly on shutdown; a batch in flight then
/// stays queued and is sent again next time.
pub async fn run(
    log: EventLog,
    uploader: Uploader,
    wake: Arc<Notify>,
    interval: Duration,
    backoff: Backoff,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut failures: u32 = 0;
    loop {
        let outcome = tokio::select! {
            () = &mut shutdown => return,
            outcome = drain(&log, &uploader, &mut failures) => outcome,
        };
        if let Err(e) = outcome {
            failures = failures.saturating_add(1);
            let delay = backoff.delay(failures);
            tracing::warn!(failures, ?delay, "proof-of-play upload: {e}");
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(delay) => continue,
            }
        }
        tokio::select! {
            () = &mut shutdown => return,
            () = wake.notified() => {}
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// Why one drain stopped before the queue was empty.
#[derive(Debug, thiserror::Error)]
enum DrainError {
    /// The hub could not be reached or did not confirm.
    #[error(transparent)]
    Upload(#[from] UploadError),
    /// The queue could not be read or changed.
    #[error(transparent)]
    Queue(#[from] EventError),
    /// A blocking queue task did not finish.
    #[error("event queue task: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Runs a blocking queue operation off the async threads.
async fn blocking<T: Send + 'static>(
    log: &EventLog,
    op: impl FnOnce(&EventLog) -> Result<T, EventError> + Send + 'static,
) -> Result<T, DrainError> {
    let log = log.clone();
    Ok(tokio::task::spawn_blocking(move || op(&log)).await??)
}

/// Uploads the queue until it is empty or an upload fails transiently.
async fn drain(log: &EventLog, uploader: &Uploader, failures: &mut u32) -> Result<(), DrainError> {
    loop {
        let queued = blocking(log, |log| log.oldest(MAX_EVENTS_PER_BATCH)).await?;
        if queued.is_empty() {
            return Ok(());
        }
        let mut parts = vec![fit(queued)];
        while let Some(part) = parts.pop() {
            let seqs: Vec<u64> = part.iter().map(|(seq, _)| *seq).collect();
            let batch = EventBatch {
                events: part.iter().map(|(_, event)| event.clone()).collect(),
            };
            match uploader.send(&batch).await {
                Ok(answer) => {
                    *failures = 0;
                    let count = seqs.len();
                    blocking(log, move |log| log.remove(&seqs)).await?;
                    tracing::info!(
                        count,
                        stored = answer.stored,
                        duplicates = answer.duplicates,
                        remaining = log.len(),
                        "uploaded proof-of-play events"
                    );
                }
                Err(UploadError::Refused { status, body }) if part.len() == 1 => {
                    let Some((seq, event)) = part.into_iter().next() else {
                        continue;
                    };
                    tracing::error!(
                        id = %event.id,
                        seq,
                        status,
                        "the hub refused a proof-of-play event; kept in events_refused: {body}"
                    );
                    blocking(log, move |log| log.refuse(seq, &event, status, &body)).await?;
                }
                Err(UploadError::Refused { status, body }) => {
                    tracing::warn!(
                        count = part.len(),
                        status,
                        "the hub refused a batch of proof-of-play events; splitting it: {body}"
                    );
                    let mut first = part;
                    let second = first.split_off(first.len() / 2);
                    parts.push(second);
                    parts.push(first);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// The longest prefix of `queued` whose batch fits in
/// [`MAX_MESSAGE_BYTES`] (always at least one event: a checked event is far
/// smaller).
fn fit(mut queued: Vec<(u64, PlayEvent)>) -> Vec<(u64, PlayEvent)> {
    let mut size = BATCH_OVERHEAD;
    let mut keep = 0;
    for (_, event) in &queued {
        let len = serde_json::to_vec(event).map_or(MAX_MESSAGE_BYTES, |b| b.len()) + 1;
        if keep > 0 && size + len > MAX_MESSAGE_BYTES {
            break;
        }
        size += len;
        keep += 1;
    }
    queued.truncate(keep);
    queued
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::HashSet;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

    use std::sync::LazyLock;

    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Response};
    use signet_common::ids::DeviceId;
    use signet_common::sync::signed::verify_report;

    use super::*;
    use crate::events::tests::events;
    use crate::state::Store;

    /// A misbehaving hub: stores events by id, can fail requests before or
    /// after storing, refuses batches holding a chosen id.
    #[derive(Default)]
    struct TestHub {
        /// Event ids stored.
        stored: Mutex<HashSet<String>>,
        /// Events answered as duplicates, over all requests.
        duplicates: AtomicU64,
        /// Requests received.
        requests: AtomicU64,
        /// The next this-many requests fail with 503 before storing.
        fail_before: AtomicU32,
        /// The next this-many requests store, then fail with 503.
        fail_after: AtomicU32,
        /// A batch holding this id is refused with 400.
        poison: Mutex<Option<String>>,
        /// Every Authorization header seen.
        auth: Mutex<Vec<String>>,
        /// The largest batch seen.
        largest: AtomicU64,
    }

    /// The device key the test hub registered for `d-1`.
    static DEVICE_KEY: LazyLock<Arc<SigningKey>> = LazyLock::new(|| Arc::new(new_key()));

    fn new_key() -> SigningKey {
        SigningKey::from_pkcs8(&SigningKey::generate_pkcs8().unwrap()).unwrap()
    }

    fn uploader(url: &str) -> Uploader {
        Uploader::new(url, "d-1", "s3cret", Arc::clone(&DEVICE_KEY)).unwrap()
    }

    fn take_one(counter: &AtomicU32) -> bool {
        counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    async fn ingest(
        State(hub): State<Arc<TestHub>>,
        headers: HeaderMap,
        body: axum::body::Bytes,
    ) -> Response {
        hub.requests.fetch_add(1, Ordering::SeqCst);
        if let Some(auth) = headers.get("authorization") {
            hub.auth
                .lock()
                .unwrap()
                .push(auth.to_str().unwrap().to_owned());
        }
        if take_one(&hub.fail_before) {
            return (StatusCode::SERVICE_UNAVAILABLE, "restarting").into_response();
        }
        // As the hub does (S11): only a batch signed by the device's
        // registered key counts; a signature problem is a 403.
        let batch: EventBatch =
            match verify_report(&body, &DeviceId::new("d-1"), &DEVICE_KEY.public_key()) {
                Ok(batch) => batch,
                Err(e) if matches!(e.reason(), "unsigned" | "wrong_key" | "bad_signature") => {
                    return (StatusCode::FORBIDDEN, e.to_string()).into_response();
                }
                Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
            };
        hub.largest
            .fetch_max(batch.events.len() as u64, Ordering::SeqCst);
        if let Some(poison) = hub.poison.lock().unwrap().as_ref()
            && batch.events.iter().any(|e| &e.id == poison)
        {
            return (StatusCode::BAD_REQUEST, format!("event {poison} is bad")).into_response();
        }
        let (mut stored, mut duplicates) = (0u64, 0u64);
        {
            let mut set = hub.stored.lock().unwrap();
            for event in &batch.events {
                if set.insert(event.id.clone()) {
                    stored += 1;
                } else {
                    duplicates += 1;
                }
            }
        }
        hub.duplicates.fetch_add(duplicates, Ordering::SeqCst);
        if take_one(&hub.fail_after) {
            return (StatusCode::SERVICE_UNAVAILABLE, "stored, then crashed").into_response();
        }
        axum::Json(serde_json::json!({"stored": stored, "duplicates": duplicates})).into_response()
    }

    /// Starts the test hub on a loopback port; returns its base URL.
    async fn start_hub(hub: Arc<TestHub>) -> String {
        let app = axum::Router::new()
            .route(EVENTS_PATH, axum::routing::post(ingest))
            .with_state(hub);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}/")
    }

    struct Running {
        log: EventLog,
        wake: Arc<Notify>,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        task: tokio::task::JoinHandle<()>,
        _dir: tempfile::TempDir,
    }

    async fn start_agent(url: &str, interval: Duration) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let log = EventLog::open(&store).unwrap();
        let wake = Arc::new(Notify::new());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let uploader = uploader(url);
        let backoff = Backoff {
            base: Duration::from_millis(2),
            cap: Duration::from_millis(20),
        };
        let task = tokio::spawn(run(
            log.clone(),
            uploader,
            Arc::clone(&wake),
            interval,
            backoff,
            async move {
                let _ = stopped.await;
            },
        ));
        Running {
            log,
            wake,
            stop: Some(stop),
            task,
            _dir: dir,
        }
    }

    impl Running {
        async fn record(&self, events: Vec<PlayEvent>) {
            let log = self.log.clone();
            tokio::task::spawn_blocking(move || log.record(&events))
                .await
                .unwrap()
                .unwrap();
            self.wake.notify_one();
        }

        /// Waits (bounded) until the queue is empty.
        async fn drained(&self) {
            tokio::time::timeout(Duration::from_secs(60), async {
                while !self.log.is_empty() {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
            .await
            .expect("the queue drains");
        }

        async fn stop(mut self) {
            let _ = self.stop.take().unwrap().send(());
            tokio::time::timeout(Duration::from_secs(5), self.task)
                .await
                .expect("run returns promptly on shutdown")
                .unwrap();
        }
    }

    fn ids(events: &[PlayEvent]) -> HashSet<String> {
        events.iter().map(|e| e.id.clone()).collect()
    }

    /// U2: 10 000 recorded events reach the hub, each id exactly once, in
    /// batches of at most 500, with the device's Basic credentials; the
    /// queue is empty after.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn u2_ten_thousand_events_are_uploaded_exactly_once() {
        let hub = Arc::new(TestHub::default());
        let url = start_hub(Arc::clone(&hub)).await;
        let agent = start_agent(&url, Duration::from_secs(3600)).await;
        let recorded = events(10_000);
        for chunk in recorded.chunks(1000) {
            agent.record(chunk.to_vec()).await;
        }
        agent.drained().await;
        assert_eq!(*hub.stored.lock().unwrap(), ids(&recorded));
        assert_eq!(hub.duplicates.load(Ordering::SeqCst), 0);
        assert!(hub.largest.load(Ordering::SeqCst) <= MAX_EVENTS_PER_BATCH as u64);
        assert!(hub.requests.load(Ordering::SeqCst) >= 20);
        // base64("d-1:s3cret")
        let auth = hub.auth.lock().unwrap().clone();
        assert!(!auth.is_empty());
        assert!(
            auth.iter().all(|a| a == "Basic ZC0xOnMzY3JldA=="),
            "{auth:?}"
        );
        agent.stop().await;
    }

    /// U2: a storm of 503s, then recovery: nothing is lost, nothing
    /// removed before the hub confirmed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn u2_a_503_storm_then_recovery_loses_nothing() {
        let hub = Arc::new(TestHub::default());
        hub.fail_before.store(15, Ordering::SeqCst);
        let url = start_hub(Arc::clone(&hub)).await;
        let agent = start_agent(&url, Duration::from_secs(3600)).await;
        let recorded = events(1200);
        agent.record(recorded.clone()).await;
        agent.drained().await;
        assert_eq!(
            hub.fail_before.load(Ordering::SeqCst),
            0,
            "every 503 was hit"
        );
        assert_eq!(*hub.stored.lock().unwrap(), ids(&recorded));
        assert_eq!(hub.duplicates.load(Ordering::SeqCst), 0);
        agent.stop().await;
    }

    /// U2, S9: the hub stores a batch and then fails before the agent
    /// hears the answer (as if the agent died between send and remove): the
    /// batch is sent again, the hub counts duplicates, and still stores
    /// each id once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn u2_a_failure_after_the_hub_stored_resends_and_dedupes() {
        let hub = Arc::new(TestHub::default());
        hub.fail_after.store(2, Ordering::SeqCst);
        let url = start_hub(Arc::clone(&hub)).await;
        let agent = start_agent(&url, Duration::from_secs(3600)).await;
        let recorded = events(700);
        agent.record(recorded.clone()).await;
        agent.drained().await;
        assert_eq!(*hub.stored.lock().unwrap(), ids(&recorded));
        // The first batch (500) was stored twice before its 200 got through.
        assert_eq!(hub.duplicates.load(Ordering::SeqCst), 1000);
        agent.stop().await;
    }

    /// U2: one event the hub refuses is moved to `events_refused` with the
    /// hub's reason; every other event is uploaded.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn u2_a_poison_event_is_set_aside_and_the_rest_uploaded() {
        let hub = Arc::new(TestHub::default());
        let recorded = events(600);
        let poison = recorded[137].clone();
        *hub.poison.lock().unwrap() = Some(poison.id.clone());
        let url = start_hub(Arc::clone(&hub)).await;
        let agent = start_agent(&url, Duration::from_secs(3600)).await;
        agent.record(recorded.clone()).await;
        agent.drained().await;
        let mut expected = ids(&recorded);
        expected.remove(&poison.id);
        assert_eq!(*hub.stored.lock().unwrap(), expected);
        let refused = agent.log.refused().unwrap();
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].1.event, poison);
        assert_eq!(refused[0].1.status, 400);
        assert!(refused[0].1.reason.contains("is bad"), "{:?}", refused[0].1);
        // About log2(500) splits, not one request per event.
        assert!(hub.requests.load(Ordering::SeqCst) < 40);
        agent.stop().await;
    }

    /// U2: the interval alone (no wake) uploads what was recorded; run
    /// returns promptly on shutdown while the hub is unreachable.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn u2_interval_uploads_and_shutdown_is_prompt() {
        let hub = Arc::new(TestHub::default());
        let url = start_hub(Arc::clone(&hub)).await;
        let agent = start_agent(&url, Duration::from_millis(50)).await;
        let recorded = events(3);
        let log = agent.log.clone();
        let batch = recorded.clone();
        tokio::task::spawn_blocking(move || log.record(&batch))
            .await
            .unwrap()
            .unwrap();
        agent.drained().await;
        assert_eq!(*hub.stored.lock().unwrap(), ids(&recorded));
        agent.stop().await;

        // Nothing listens on this port: every upload fails transiently.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let agent = start_agent(&url, Duration::from_secs(3600)).await;
        agent.record(events(2)).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(agent.log.len(), 2, "nothing removed without an answer");
        agent.stop().await;
    }

    /// U2: how answers are classified.
    #[tokio::test]
    async fn u2_send_classifies_the_hubs_answers() {
        let hub = Arc::new(TestHub::default());
        let url = start_hub(Arc::clone(&hub)).await;
        let uploader = uploader(&url);
        let batch = EventBatch { events: events(2) };
        assert_eq!(
            uploader.send(&batch).await.unwrap(),
            IngestAnswer {
                stored: 2,
                duplicates: 0
            }
        );
        assert_eq!(
            uploader.send(&batch).await.unwrap(),
            IngestAnswer {
                stored: 0,
                duplicates: 2
            }
        );
        hub.fail_before.store(1, Ordering::SeqCst);
        assert!(matches!(
            uploader.send(&batch).await,
            Err(UploadError::Transient(_))
        ));
        *hub.poison.lock().unwrap() = Some(batch.events[0].id.clone());
        assert!(matches!(
            uploader.send(&batch).await,
            Err(UploadError::Refused { status: 400, .. })
        ));
        // S11: signed by a key the hub does not hold for the device: a 403,
        // retried later (the events stay queued), nothing stored.
        let stored = hub.stored.lock().unwrap().len();
        let stranger = Uploader::new(&url, "d-1", "s3cret", Arc::new(new_key())).unwrap();
        let fresh = EventBatch { events: events(3) };
        assert!(matches!(
            stranger.send(&fresh).await,
            Err(UploadError::Transient(reason)) if reason.contains("403")
        ));
        assert_eq!(hub.stored.lock().unwrap().len(), stored);
        for bad in ["ftp://hub", "not a url"] {
            assert!(matches!(
                Uploader::new(bad, "d-1", "s", Arc::clone(&DEVICE_KEY)),
                Err(UploadError::BadUrl { .. })
            ));
        }
    }

    /// A batch never exceeds the hub's message limit, whatever the events
    /// carry.
    #[test]
    fn batches_fit_the_message_limit() {
        let mut big = events(MAX_EVENTS_PER_BATCH);
        for event in &mut big {
            event.outcome = signet_common::sync::Outcome::Skipped;
            event.skip_reason = Some("r".repeat(signet_common::sync::MAX_TEXT_LEN));
            event.os = "o".repeat(signet_common::sync::MAX_TEXT_LEN);
            event.agent_version = "v".repeat(signet_common::sync::MAX_TEXT_LEN);
        }
        let queued: Vec<(u64, PlayEvent)> = big
            .into_iter()
            .enumerate()
            .map(|(i, e)| (i as u64, e))
            .collect();
        let kept = fit(queued);
        assert!(!kept.is_empty() && kept.len() < MAX_EVENTS_PER_BATCH);
        let batch = EventBatch {
            events: kept.into_iter().map(|(_, e)| e).collect(),
        };
        assert!(serde_json::to_vec(&batch).unwrap().len() <= MAX_MESSAGE_BYTES);
    }
}
