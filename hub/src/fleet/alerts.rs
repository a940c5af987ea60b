//! Fleet alerts (U4): a device offline, or online but out of sync, for
//! longer than its threshold (its node's, [`super::alert_settings`]) raises one alert per incident; it is cleared
//! when the device recovers (or is detached), with a recovery notice.
//! Offline and in sync are the fleet view's own ([`device_view`] as of the
//! pass's time): a device whose heartbeats stopped is offline since its
//! last heartbeat plus `heartbeat_timeout_secs`, exactly as after a last
//! will; a refused or unfinished document keeps a device out of sync.
//!
//! Owns: the [`ALERTS`] and [`OPEN_ALERTS`] trees, the alert loop
//! ([`spawn_loop`]) and webhook delivery ([`Webhook`]). Notices go out by
//! e-mail through the durable outbox (enqueued in the same batch as the
//! alert record, S9) and, when configured, as a JSON POST to a webhook in
//! the background (bounded retries with back-off; never blocking the loop).
//! Must not: change device records, or send mail itself.
//!
//! # Storage
//! | tree | key | value |
//! |---|---|---|
//! | [`ALERTS`] | time-ordered alert id | [`Alert`] |
//! | [`OPEN_ALERTS`] | `{device}/{kind}` | the open alert's id |

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use signet_common::ids::{DeviceId, NodeId};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::alert_settings::Thresholds;
use super::index::{FleetIndex, Page};
use super::{Connection, FleetDevice, Liveness, device_view, events};
use crate::app::Hub;
use crate::audit::audit_id;
use crate::background::{self, Background};
use crate::config::Config;
use crate::mail::{self, Mail};
use crate::store::{StoreError, WriteBatch};

/// Every alert, open or cleared, by time-ordered id.
pub const ALERTS: &str = "fleet_alerts";
/// The open alert per `{device}/{kind}`: at most one per incident.
pub const OPEN_ALERTS: &str = "fleet_open_alerts";
/// How long cleared alerts are kept.
pub const CLEARED_RETENTION: TimeDelta = TimeDelta::days(180);
/// The most cleared alerts one pass prunes.
pub const PRUNE_ALERTS: usize = 256;
/// The longest webhook error kept, in bytes.
const MAX_ERROR_LEN: usize = 500;

/// What an alert is about.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// Offline (MQTT last will, or no heartbeat for
    /// `heartbeat_timeout_secs`) longer than `alert_offline_secs`.
    Offline,
    /// Online but out of sync longer than `alert_out_of_sync_secs`.
    OutOfSync,
}

impl AlertKind {
    /// The name in keys and messages.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Offline => "offline",
            Self::OutOfSync => "out_of_sync",
        }
    }
}

/// Which notice a webhook delivery carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Notice {
    /// The alert was raised.
    Raised,
    /// The device recovered; the alert was cleared.
    Cleared,
}

/// How the latest webhook delivery of an alert went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookOutcome {
    /// Which notice it carried.
    pub notice: Notice,
    /// When the webhook answered 2xx; `None` when it never did.
    pub delivered_at: Option<DateTime<Utc>>,
    /// Attempts made.
    pub attempts: u32,
    /// The last failure, if any.
    pub last_error: Option<String>,
}

/// One alert (U4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Alert {
    /// Time-ordered id (also the key).
    pub id: String,
    /// The device.
    #[schema(value_type = String)]
    pub device: DeviceId,
    /// Its node when the alert was raised (who may read the alert, T4).
    #[schema(value_type = String)]
    pub node: NodeId,
    /// Offline or out of sync.
    pub kind: AlertKind,
    /// Since when the condition held.
    pub since: DateTime<Utc>,
    /// When the alert was raised.
    pub raised_at: DateTime<Utc>,
    /// When it was cleared; `None` while open.
    pub cleared_at: Option<DateTime<Utc>>,
    /// Why it was cleared.
    pub cleared_because: Option<String>,
    /// What happened, for a human.
    pub message: String,
    /// Outbox ids of the mail it sent (alert, then recovery).
    pub mail: Vec<String>,
    /// The latest webhook delivery, when a webhook is configured.
    pub webhook: Option<WebhookOutcome>,
}

impl Alert {
    /// Whether it is still open.
    #[must_use]
    pub fn is_open(&self) -> bool {
        self.cleared_at.is_none()
    }
}

/// The key of an open alert in [`OPEN_ALERTS`].
#[must_use]
pub fn open_key(device: &DeviceId, kind: AlertKind) -> String {
    format!("{device}/{}", kind.as_str())
}

/// `secs` seconds as a duration, saturating.
fn secs(secs: u64) -> TimeDelta {
    i64::try_from(secs)
        .ok()
        .and_then(TimeDelta::try_seconds)
        .unwrap_or(TimeDelta::MAX)
}

/// A condition holding now for a device past its `(offline,
/// out_of_sync)` thresholds in seconds, with since when.
fn conditions(
    view: &FleetDevice,
    (offline, out_of_sync): (u64, u64),
    now: DateTime<Utc>,
) -> Vec<(AlertKind, DateTime<Utc>)> {
    let mut found = Vec::new();
    if view.connection == Connection::Offline
        && let Some(since) = view.since
        && now - since > secs(offline)
    {
        found.push((AlertKind::Offline, since));
    }
    if let Some(since) = view.out_of_sync_since
        && now - since > secs(out_of_sync)
    {
        found.push((AlertKind::OutOfSync, since));
    }
    found
}

/// Whether the device recovered from `kind`.
fn recovered(view: &FleetDevice, kind: AlertKind) -> bool {
    match kind {
        AlertKind::Offline => view.online,
        AlertKind::OutOfSync => view.in_sync,
    }
}

fn minutes(delta: TimeDelta) -> i64 {
    delta.num_minutes().max(0)
}

/// What one [`check`] pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertReport {
    /// Alerts raised.
    pub raised: usize,
    /// Alerts cleared.
    pub cleared: usize,
}

/// Looks at every attached device at `now`: raises an alert for each
/// condition past its threshold that has no open alert, clears each open
/// alert whose device recovered or was detached. Records, mail (when
/// `alert_email` is set) and the open index are written in one batch; the
/// mail sender is woken; webhook notices go to `webhook` in the background.
///
/// # Errors
/// When the store fails; then nothing was written.
pub async fn check(
    state: &Hub,
    now: DateTime<Utc>,
    webhook: Option<&Webhook>,
) -> Result<AlertReport, StoreError> {
    let store = &state.store;
    let config = &state.config;
    let liveness = Liveness {
        now,
        heartbeat_timeout: config.heartbeat_timeout(),
    };
    let thresholds = Thresholds::load(store, config)?;
    let hub = state.clone();
    let views = tokio::task::spawn_blocking(move || views_to_judge(&hub, liveness))
        .await
        .map_err(|e| StoreError::Storage(format!("the alert pass's views: {e}")))??;
    // The views are this pass's snapshot (the next pass judges again); the
    // open-alert index and the alerts it names are read inside the
    // transaction, so an incident is raised or cleared exactly once.
    let (report, notices, mailed) = store
        .transact(|tx| {
            let mut batch = WriteBatch::new();
            let mut report = AlertReport::default();
            let mut notices: Vec<(Notice, Alert)> = Vec::new();
            let open: BTreeMap<String, String> = tx
                .scan_keyed::<String>(OPEN_ALERTS, "")?
                .into_iter()
                .collect();
            for (key, id) in &open {
                let Some(alert) = tx.get::<Alert>(ALERTS, id)? else {
                    batch.delete(OPEN_ALERTS, key);
                    continue;
                };
                let view = views.get(&alert.device);
                if let Some(cleared) = clear(alert, view, config, now, &mut batch)? {
                    batch.delete(OPEN_ALERTS, key);
                    report.cleared += 1;
                    notices.push((Notice::Cleared, cleared));
                }
            }
            for (device, view) in &views {
                for (kind, since) in conditions(view, thresholds.at(&view.node), now) {
                    let key = open_key(device, kind);
                    if open.contains_key(&key) {
                        continue;
                    }
                    let alert = raise(device, view, (kind, since), config, now, &mut batch)?;
                    batch.put(OPEN_ALERTS, &key, &alert.id)?;
                    report.raised += 1;
                    notices.push((Notice::Raised, alert));
                }
            }
            let mailed = config.alert_email.is_some() && !notices.is_empty();
            tx.include(batch);
            Ok::<_, StoreError>((report, notices, mailed))
        })
        .await?;
    if mailed {
        state.mail_wake.notify_one();
    }
    for (notice, alert) in notices {
        tracing::warn!(device = %alert.device, kind = alert.kind.as_str(), ?notice, "fleet alert");
        if let Some(webhook) = webhook {
            webhook.dispatch(state.clone(), notice, alert);
        }
    }
    Ok(report)
}

/// The views an alert pass judges (X3, issue 20: no read of every device
/// per pass): from the fleet's in-memory [`FleetIndex`], exact as a scan,
/// every attached device offline or out of sync (a device online and in
/// sync meets no condition); and, read alone, each device with an open
/// alert (it may have recovered; not attached: no view). Off the runtime:
/// the index reads the devices that changed since its last answer.
fn views_to_judge(
    state: &Hub,
    liveness: Liveness,
) -> Result<BTreeMap<DeviceId, FleetDevice>, StoreError> {
    let store = &state.store;
    let index = FleetIndex::of(state);
    let mut views = BTreeMap::new();
    let all = Page {
        limit: usize::MAX,
        ..Page::default()
    };
    for page in [
        Page {
            online: Some(false),
            ..all
        },
        Page {
            in_sync: Some(false),
            ..all
        },
    ] {
        for view in index.list(store, |_| true, page, liveness)? {
            views.insert(view.device_id.clone(), view);
        }
    }
    for key in store.scan_keys(OPEN_ALERTS, "")? {
        let Some((device, _)) = key.rsplit_once('/') else {
            continue;
        };
        let device = DeviceId::from(device);
        if views.contains_key(&device) {
            continue;
        }
        if let Some(node) = super::node_of(store, &device)? {
            let view = device_view(store, &device, &node, liveness)?;
            views.insert(device, view);
        }
    }
    Ok(views)
}

/// Clears `alert` into `batch` when its device recovered or is no longer
/// attached (`view` is `None`), with a recovery mail when `alert_email` is
/// set; returns it cleared, or `None` while the condition holds.
fn clear(
    mut alert: Alert,
    view: Option<&FleetDevice>,
    config: &Config,
    now: DateTime<Utc>,
    batch: &mut WriteBatch,
) -> Result<Option<Alert>, StoreError> {
    let because = match view {
        None => "the device is no longer attached".to_owned(),
        Some(view) if recovered(view, alert.kind) => match alert.kind {
            AlertKind::Offline => "the device is online again".to_owned(),
            AlertKind::OutOfSync => "the device activated every desired document".to_owned(),
        },
        Some(_) => return Ok(None),
    };
    alert.cleared_at = Some(now);
    alert.cleared_because = Some(because.clone());
    if let Some(to) = &config.alert_email {
        let mail = Mail {
            to: to.clone(),
            subject: format!(
                "Signet: device {} recovered ({})",
                alert.device,
                alert.kind.as_str()
            ),
            body: format!(
                "Device {} at node {}: {because} at {}.\nThe alert \"{}\" raised at {} is cleared.\n",
                alert.device,
                alert.node,
                now.to_rfc3339(),
                alert.message,
                alert.raised_at.to_rfc3339()
            ),
        };
        alert.mail.push(mail::enqueue(batch, mail, now)?);
    }
    batch.put(ALERTS, &alert.id, &alert)?;
    Ok(Some(alert))
}

/// Raises an alert of `kind` about `device` (condition holding since
/// `since`) into `batch`, with a mail when `alert_email` is set.
fn raise(
    device: &DeviceId,
    view: &FleetDevice,
    (kind, since): (AlertKind, DateTime<Utc>),
    config: &Config,
    now: DateTime<Utc>,
    batch: &mut WriteBatch,
) -> Result<Alert, StoreError> {
    let message = match kind {
        AlertKind::Offline => format!(
            "device {device} has been offline for {} minutes (since {})",
            minutes(now - since),
            since.to_rfc3339()
        ),
        AlertKind::OutOfSync => format!(
            "device {device} has been out of sync for {} minutes (since {})",
            minutes(now - since),
            since.to_rfc3339()
        ),
    };
    let mut alert = Alert {
        id: audit_id(now),
        device: device.clone(),
        node: view.node.clone(),
        kind,
        since,
        raised_at: now,
        cleared_at: None,
        cleared_because: None,
        message: message.clone(),
        mail: Vec::new(),
        webhook: None,
    };
    if let Some(to) = &config.alert_email {
        let mail = Mail {
            to: to.clone(),
            subject: format!("Signet alert: device {device} {}", kind.as_str()),
            body: format!(
                "{message}.\nNode: {}\nRaised at: {}\nA recovery notice follows when it recovers.\n",
                view.node,
                now.to_rfc3339()
            ),
        };
        alert.mail.push(mail::enqueue(batch, mail, now)?);
    }
    batch.put(ALERTS, &alert.id, &alert)?;
    Ok(alert)
}

/// Deletes cleared alerts older than [`CLEARED_RETENTION`], at most
/// [`PRUNE_ALERTS`] per call; returns how many.
///
/// # Errors
/// When the store fails.
pub async fn prune(state: &Hub, now: DateTime<Utc>) -> Result<usize, StoreError> {
    let cutoff = audit_id(now - CLEARED_RETENTION);
    let old: Vec<(String, Alert)> = state
        .store
        .scan_keyed::<Alert>(ALERTS, "")?
        .into_iter()
        .take_while(|(key, _)| key.as_str() < cutoff.as_str())
        .filter(|(_, alert)| !alert.is_open())
        .take(PRUNE_ALERTS)
        .collect();
    if old.is_empty() {
        return Ok(0);
    }
    state
        .store
        .transact(|tx| {
            for (key, _) in &old {
                tx.delete(ALERTS, key);
            }
            Ok::<_, StoreError>(())
        })
        .await?;
    Ok(old.len())
}

// ------------------------------------------------------------------ webhook

/// How webhook notices are delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookOptions {
    /// How long one POST may take.
    pub timeout: Duration,
    /// Attempts per notice.
    pub attempts: u32,
    /// The wait before the first retry; it doubles per retry.
    pub first_retry: Duration,
    /// The longest wait between attempts.
    pub max_retry: Duration,
    /// Deliveries in flight at most; a notice beyond that is dropped and
    /// recorded as failed (mail is the durable channel).
    pub max_in_flight: usize,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            attempts: 5,
            first_retry: Duration::from_secs(2),
            max_retry: Duration::from_secs(60),
            max_in_flight: 32,
        }
    }
}

/// The JSON a webhook receives.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookPayload {
    /// `raised` or `cleared`.
    pub notice: Notice,
    /// The alert as stored.
    pub alert: Alert,
}

/// Delivers alert notices to `alert_webhook_url` in background tasks.
pub struct Webhook {
    /// The HTTP client (no redirects, bounded timeout).
    client: reqwest::Client,
    /// Where notices go.
    url: String,
    /// Pacing.
    options: WebhookOptions,
    /// Bounds the deliveries in flight.
    permits: Arc<Semaphore>,
    /// The delivery tasks, so stopping waits for them.
    tracker: TaskTracker,
    /// Abandons deliveries when the hub stops.
    cancel: CancellationToken,
}

impl Webhook {
    /// A webhook posting to `url`; deliveries stop when `cancel` is cancelled.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(
        url: &str,
        options: WebhookOptions,
        cancel: CancellationToken,
    ) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(options.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("webhook client: {e}"))?;
        Ok(Self {
            client,
            url: url.to_owned(),
            permits: Arc::new(Semaphore::new(options.max_in_flight.max(1))),
            options,
            tracker: TaskTracker::new(),
            cancel,
        })
    }

    /// Starts delivering `notice` of `alert` in the background; its outcome
    /// is recorded on the alert.
    pub fn dispatch(&self, state: Hub, notice: Notice, alert: Alert) {
        let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
            tracing::warn!(alert = %alert.id, "too many webhook deliveries in flight; notice dropped");
            let outcome = WebhookOutcome {
                notice,
                delivered_at: None,
                attempts: 0,
                last_error: Some("too many webhook deliveries in flight".to_owned()),
            };
            self.tracker.spawn(async move {
                record_outcome(&state, &alert.id, outcome).await;
            });
            return;
        };
        let client = self.client.clone();
        let url = self.url.clone();
        let options = self.options.clone();
        let cancel = self.cancel.clone();
        self.tracker.spawn(async move {
            let _permit = permit;
            let id = alert.id.clone();
            let payload = WebhookPayload { notice, alert };
            let mut outcome = WebhookOutcome {
                notice,
                delivered_at: None,
                attempts: 0,
                last_error: None,
            };
            let mut wait = options.first_retry;
            while outcome.attempts < options.attempts.max(1) {
                outcome.attempts += 1;
                let sent = tokio::select! {
                    () = cancel.cancelled() => return,
                    sent = client.post(&url).json(&payload).send() => sent,
                };
                match sent {
                    Ok(response) if response.status().is_success() => {
                        outcome.delivered_at = Some(state.clock.now());
                        outcome.last_error = None;
                        break;
                    }
                    Ok(response) => {
                        outcome.last_error = Some(format!("answered {}", response.status()));
                    }
                    Err(e) => outcome.last_error = Some(bounded(e.to_string())),
                }
                if outcome.attempts < options.attempts {
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = tokio::time::sleep(wait) => {}
                    }
                    wait = wait.saturating_mul(2).min(options.max_retry);
                }
            }
            if outcome.delivered_at.is_none() {
                tracing::warn!(alert = %id, error = ?outcome.last_error, "webhook notice not delivered");
            }
            record_outcome(&state, &id, outcome).await;
        });
    }

    /// Waits until every delivery started so far has finished (tests, and
    /// stopping).
    pub async fn idle(&self) {
        self.tracker.close();
        self.tracker.wait().await;
        self.tracker.reopen();
    }
}

fn bounded(mut text: String) -> String {
    if text.len() > MAX_ERROR_LEN {
        let mut end = MAX_ERROR_LEN;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// Writes a webhook outcome onto the alert, as stored now.
async fn record_outcome(state: &Hub, id: &str, outcome: WebhookOutcome) {
    let result = state
        .store
        .transact(|tx| {
            let Some(mut alert) = tx.get::<Alert>(ALERTS, id)? else {
                return Ok(());
            };
            alert.webhook = Some(outcome.clone());
            tx.put(ALERTS, id, &alert)
        })
        .await;
    if let Err(e) = result {
        tracing::error!(alert = id, error = %e, "recording a webhook outcome failed");
    }
}

// --------------------------------------------------------------------- loop

/// How the alert loop paces itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertOptions {
    /// Real time between passes (`alert_poll_secs`).
    pub poll_interval: Duration,
    /// The longest wait after repeated store failures.
    pub max_backoff: Duration,
    /// Webhook delivery.
    pub webhook: WebhookOptions,
}

impl AlertOptions {
    /// The options `config` asks for.
    #[must_use]
    pub fn from_config(config: &Config) -> Self {
        Self {
            poll_interval: Duration::from_secs(config.alert_poll_secs.max(1)),
            max_backoff: Duration::from_secs(300),
            webhook: WebhookOptions::default(),
        }
    }
}

/// Starts the alert loop: every poll it runs [`check`], prunes cleared
/// alerts and proof-of-play events past `usage_retention_days`. Stopping
/// it ([`Background::stop`], or cancelling `cancel`) also stops its webhook
/// deliveries (one in flight is abandoned).
pub fn spawn_loop(state: Hub, options: AlertOptions, cancel: CancellationToken) -> Background {
    let task = run(state, options, cancel.clone());
    Background::spawn("alert loop", cancel, task)
}

async fn run(state: Hub, options: AlertOptions, cancel: CancellationToken) {
    let webhook = state.config.alert_webhook_url.as_deref().and_then(|url| {
        Webhook::new(url, options.webhook.clone(), cancel.child_token())
            .map_err(|e| tracing::error!(error = %e, "alert webhook disabled"))
            .ok()
    });
    let retention = secs(state.config.usage_retention_days.saturating_mul(86_400));
    let mut failures: u32 = 0;
    loop {
        let pass = async {
            let now = state.clock.now();
            let report = check(&state, now, webhook.as_ref()).await?;
            prune(&state, now).await?;
            events::prune(&state, now, retention).await?;
            Ok::<_, StoreError>(report)
        };
        let wait = tokio::select! {
            () = cancel.cancelled() => break,
            result = pass => match result {
                Ok(report) => {
                    failures = 0;
                    if report.raised > 0 || report.cleared > 0 {
                        tracing::info!(raised = report.raised, cleared = report.cleared, "alert pass");
                    }
                    options.poll_interval
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::error!(error = %e, "alert pass failed");
                    background::backoff(options.poll_interval, failures, options.max_backoff)
                }
            },
        };
        tokio::select! {
            () = cancel.cancelled() => break,
            () = tokio::time::sleep(wait) => {}
        }
    }
    if let Some(webhook) = webhook {
        // Deliveries see the same cancellation; wait for them to wind down.
        webhook.idle().await;
    }
    tracing::info!("alert loop stopped");
}
