//! The hub's Prometheus metrics (issue 8; U4, U5): the counters and the
//! histogram behind `/metrics`, and their text exposition (format 0.0.4).
//!
//! Owns: [`Metrics`] — HTTP requests by method, matched route and status;
//! MQTT messages by direction and topic kind; publish-run latency — and
//! [`Metrics::render`], which adds the fleet gauges it is handed. Must not:
//! compute fleet status ([`crate::fleet::counts`] does), label anything
//! with a raw URL or topic (device and group ids would make the label sets
//! unbounded: routes are axum's matched templates, topics are reduced to
//! their contract kind), or block: every update is an atomic add on a
//! series of a `prometheus-client` family.
//!
//! The families, their samples and the text are the `prometheus-client`
//! crate's (the Prometheus project's Rust client): its registry holds them
//! and its `prometheus_text` encoder writes the 0.0.4 text scrapers read
//! (counters named `…_total` in `HELP`, `TYPE` and samples alike, no
//! OpenMetrics `# EOF`). The crate appends the full stop to each help text.
//!
//! Metric names are stable (operators' dashboards and alerts use them):
//!
//! | name | type | meaning |
//! |---|---|---|
//! | `signet_build_info{version}` | gauge | always 1; the hub's version |
//! | `signet_devices` | gauge | devices attached to a leaf node |
//! | `signet_devices_online` | gauge | of those, online: latest message said online, last heartbeat within `heartbeat_timeout_secs` |
//! | `signet_devices_in_sync` | gauge | of those, that activated every desired document |
//! | `signet_devices_playing` | gauge | of those, online and reporting something playing |
//! | `signet_publish_duration_seconds` | histogram | publish run start → its last retained message queued to MQTT |
//! | `signet_mqtt_messages_total{direction,kind}` | counter | MQTT messages the hub published or received |
//! | `signet_http_requests_total{method,route,status}` | counter | HTTP requests answered |
//! | `signet_retained_restored_total{kind}` | counter | retained messages on hub topics someone else changed, restored (or cleared) by the hub (S4) |
//! | `signet_device_reports_refused_total{reason}` | counter | device reports (state, events; MQTT or HTTP) refused because they are not signed by the key registered for the device they are about, or are malformed (S11) |
//!
//! A refused device report is also logged, at most once per reason every
//! [`REFUSAL_LOG_INTERVAL`] (with how many went unlogged meanwhile), so a
//! flood of forgeries cannot flood the log.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use prometheus_client::encoding::{EncodeLabelSet, prometheus_text};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use signet_common::sync::TOPIC_PREFIX;

#[cfg(test)]
mod tests;

/// The fleet's totals one scrape shows (the fleet counts them: U4).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FleetGauges {
    /// Devices attached to a leaf node.
    pub attached: u64,
    /// Of those, online.
    pub online: u64,
    /// Of those, in sync, online or not.
    pub in_sync: u64,
    /// Of those, online and reporting something playing.
    pub playing: u64,
    /// This replica and whether it leads (X5); `None`: not shown.
    pub replica: Option<ReplicaGauge>,
}

/// `signet_replica_leader{replica="…"}`: 1 on the leader, else 0.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicaGauge {
    /// The replica's id.
    pub id: String,
    /// Whether it leads.
    pub leader: bool,
}

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;
/// The `route` label of a request no route matched.
pub const UNMATCHED_ROUTE: &str = "unmatched";
/// The upper bounds of the publish latency buckets, in seconds.
pub const PUBLISH_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The shortest time between two log lines about refused device reports
/// of one reason (S11).
pub const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(30);

/// The most characters of a refused report's topic that are logged.
const MAX_LOGGED_SOURCE_CHARS: usize = 160;

/// The pacing of the log lines about refused device reports of one reason
/// (their count is [`Metrics::refused`]).
#[derive(Debug, Default)]
struct RefusalTally {
    /// When the last line about this reason was logged.
    logged_at: Option<Instant>,
    /// Refused since that line without a line of their own.
    unlogged: u64,
}

/// Which way an MQTT message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Direction {
    /// The hub handed it to its MQTT client (queued for the broker).
    Published,
    /// The hub's client received it from the broker.
    Received,
}

impl Direction {
    fn label(self) -> &'static str {
        match self {
            Self::Published => "published",
            Self::Received => "received",
        }
    }
}

/// The contract kind of `topic` (DESIGN §5) — `group_manifest`,
/// `device_assignment`, `command`, `hub_time`, `trust`, `device_state`,
/// `device_events` — or `other`: a bounded label, never an id.
#[must_use]
pub fn topic_kind(topic: &str) -> &'static str {
    let Some(rest) = topic
        .strip_prefix(TOPIC_PREFIX)
        .and_then(|t| t.strip_prefix('/'))
    else {
        return "other";
    };
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        ["trust"] => "trust",
        ["hub", "time"] => "hub_time",
        ["groups", id, "manifest"] if !id.is_empty() => "group_manifest",
        ["devices", id, kind] if !id.is_empty() => match *kind {
            "assignment" => "device_assignment",
            "commands" => "command",
            "state" => "device_state",
            "events" => "device_events",
            _ => "other",
        },
        _ => "other",
    }
}

/// The `method` label: the standard methods by name, anything else
/// `other` (extension methods would make the label set unbounded).
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The labels of `signet_http_requests_total`, in their text order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct HttpLabels {
    /// The method label ([`method_label`]).
    method: &'static str,
    /// The matched route template, or [`UNMATCHED_ROUTE`].
    route: String,
    /// The status code.
    status: u16,
}

/// The labels of `signet_mqtt_messages_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct MqttLabels {
    /// [`Direction::label`].
    direction: &'static str,
    /// [`topic_kind`].
    kind: &'static str,
}

/// The labels of `signet_retained_restored_total` (a [`topic_kind`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KindLabel {
    /// The topic kind.
    kind: Cow<'static, str>,
}

/// The labels of `signet_device_reports_refused_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabel {
    /// Why the report was refused (a bounded set, S11).
    reason: Cow<'static, str>,
}

/// The hub's counters and histogram, shared by the router, the MQTT link
/// and publishing through [`crate::app::Hub::metrics`].
#[derive(Debug)]
pub struct Metrics {
    /// Every family below, in the order `/metrics` lists them (after the
    /// build and fleet gauges).
    registry: Registry,
    /// HTTP requests answered.
    http: Family<HttpLabels, Counter>,
    /// MQTT messages, by direction and topic kind.
    mqtt: Family<MqttLabels, Counter>,
    /// Publish-run latency.
    publish: Histogram,
    /// Retained messages restored by the watch, by topic kind.
    restored: Family<KindLabel, Counter>,
    /// Device reports refused (S11), by reason.
    refused: Family<ReasonLabel, Counter>,
    /// The pacing of the log lines about refused reports, by reason.
    refused_reports: Mutex<BTreeMap<&'static str, RefusalTally>>,
}

/// The guarded value, also after a panic elsewhere poisoned the lock (a
/// tally is never left half-written).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Default for Metrics {
    fn default() -> Self {
        let http = Family::default();
        let mqtt = Family::default();
        let publish = Histogram::new(PUBLISH_BUCKETS);
        let restored = Family::default();
        let refused = Family::default();
        let mut registry = Registry::default();
        registry.register(
            "signet_publish_duration_seconds",
            "Seconds from the start of a publish run that signed documents (build, sign, store \
             durably, broker access) until its last retained message was queued to the MQTT \
             client; the hub does not wait for the broker's acknowledgement (S5)",
            publish.clone(),
        );
        registry.register(
            "signet_mqtt_messages",
            "MQTT messages the hub handed to its client (published) or received from the broker, \
             by topic kind",
            mqtt.clone(),
        );
        registry.register(
            "signet_retained_restored",
            "Retained messages on the hub's own topics that someone else replaced or cleared, \
             restored (or, with no document of the hub's, cleared) by the hub, by topic kind (S4)",
            restored.clone(),
        );
        registry.register(
            "signet_device_reports_refused",
            "Device reports (state, events; over MQTT or HTTP) refused without effect, by reason: \
             not signed by the key registered at pairing for the device their topic or HTTP \
             identity names, about another device, or malformed (S11)",
            refused.clone(),
        );
        registry.register(
            "signet_http_requests",
            "HTTP requests answered, by method, matched route template (\"unmatched\" when none) \
             and status",
            http.clone(),
        );
        Self {
            registry,
            http,
            mqtt,
            publish,
            restored,
            refused,
            refused_reports: Mutex::default(),
        }
    }
}

impl Metrics {
    /// Counts one answered HTTP request; `route` is axum's matched route
    /// template, `None` when no route matched.
    pub fn count_http(
        &self,
        method: &axum::http::Method,
        route: Option<&str>,
        status: axum::http::StatusCode,
    ) {
        let labels = HttpLabels {
            method: method_label(method),
            route: route.unwrap_or(UNMATCHED_ROUTE).to_owned(),
            status: status.as_u16(),
        };
        self.http.get_or_create(&labels).inc();
    }

    /// Counts one MQTT message on `topic` (labelled by its kind only).
    pub fn count_mqtt(&self, direction: Direction, topic: &str) {
        let labels = MqttLabels {
            direction: direction.label(),
            kind: topic_kind(topic),
        };
        self.mqtt.get_or_create(&labels).inc();
    }

    /// Counts one retained message on `topic` the hub restored or cleared
    /// after someone else changed it (S4; labelled by its kind only).
    pub fn count_restored(&self, topic: &str) {
        let labels = KindLabel {
            kind: Cow::Borrowed(topic_kind(topic)),
        };
        self.restored.get_or_create(&labels).inc();
    }

    /// How many retained messages of topic kind `kind` the hub restored.
    #[must_use]
    pub fn restored(&self, kind: &str) -> u64 {
        let labels = KindLabel {
            kind: Cow::Owned(kind.to_owned()),
        };
        self.restored
            .get(&labels)
            .map_or(0, |counter| counter.get())
    }

    /// Counts one device report refused for `reason` (a bounded label, S11)
    /// and logs it — `via` is `mqtt` or `http`, `from` the topic or the
    /// authenticated device id, `detail` why — unless a line about this
    /// reason went out less than [`REFUSAL_LOG_INTERVAL`] ago.
    pub fn count_refused_report(
        &self,
        reason: &'static str,
        via: &'static str,
        from: &str,
        detail: &dyn std::fmt::Display,
    ) {
        self.refused
            .get_or_create(&ReasonLabel {
                reason: Cow::Borrowed(reason),
            })
            .inc();
        let now = Instant::now();
        let unlogged = {
            let mut refused = lock(&self.refused_reports);
            let tally = refused.entry(reason).or_default();
            let due = tally
                .logged_at
                .is_none_or(|at| now.duration_since(at) >= REFUSAL_LOG_INTERVAL);
            if !due {
                tally.unlogged += 1;
                return;
            }
            tally.logged_at = Some(now);
            std::mem::take(&mut tally.unlogged)
        };
        // A topic is the sender's text, up to 64 KiB: log its start only.
        let from: String = from.chars().take(MAX_LOGGED_SOURCE_CHARS).collect();
        tracing::warn!(
            reason,
            via,
            from,
            %detail,
            unlogged,
            "device report refused, without effect (S11; `unlogged` more of this reason since the last line)"
        );
    }

    /// How many device reports were refused for `reason`.
    #[must_use]
    pub fn refused_reports(&self, reason: &str) -> u64 {
        let labels = ReasonLabel {
            reason: Cow::Owned(reason.to_owned()),
        };
        self.refused.get(&labels).map_or(0, |counter| counter.get())
    }

    /// Records the latency of one publish run that signed documents.
    pub fn observe_publish(&self, latency: Duration) {
        self.publish.observe(latency.as_secs_f64());
    }

    /// Every metric in the Prometheus text exposition format 0.0.4: the
    /// build gauge and the fleet gauges from `fleet` (a registry of this
    /// scrape's values), then the hub's counters and histogram.
    #[must_use]
    pub fn render(&self, fleet: &FleetGauges) -> String {
        let mut gauges = Registry::default();
        gauges.register(
            "signet_build",
            "Always 1; the version label is the hub's version",
            Info::new([("version", crate::VERSION)]),
        );
        for (name, help, value) in [
            (
                "signet_devices",
                "Devices attached to a leaf node",
                fleet.attached,
            ),
            (
                "signet_devices_online",
                "Attached devices whose latest message said online (the MQTT last will says \
                 offline) and whose last heartbeat is within heartbeat_timeout_secs",
                fleet.online,
            ),
            (
                "signet_devices_in_sync",
                "Attached devices that activated the newest signed version of every document they \
                 should have (U4), online or not",
                fleet.in_sync,
            ),
            (
                "signet_devices_playing",
                "Attached devices online and reporting something playing",
                fleet.playing,
            ),
        ] {
            gauges.register(name, help, ConstGauge::new(value));
        }
        if let Some(replica) = &fleet.replica {
            let leader = Family::<Vec<(String, String)>, Gauge>::default();
            leader
                .get_or_create(&vec![("replica".to_owned(), replica.id.clone())])
                .set(i64::from(replica.leader));
            gauges.register(
                "signet_replica_leader",
                "1 when this hub replica leads (runs the once-only work: publishing jobs, \
                 alerts, mail, hub_time, the retained-state watch), else 0 (X5)",
                leader,
            );
        }
        let mut out = String::new();
        // Writing into a String cannot fail, nor can these label sets.
        let _ = prometheus_text::encode(&mut out, &gauges);
        let _ = prometheus_text::encode(&mut out, &self.registry);
        out
    }
}
