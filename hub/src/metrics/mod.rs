//! The hub's Prometheus metrics (issue 8; U4, U5): the counters and the
//! histogram behind `/metrics`, and their text exposition (format 0.0.4).
//!
//! Owns: [`Metrics`] — HTTP requests by method, matched route and status;
//! MQTT messages by direction and topic kind; publish-run latency — and
//! [`Metrics::render`], which adds the fleet gauges it is handed. Must not:
//! compute fleet status ([`crate::fleet::counts`] does), label anything
//! with a raw URL or topic (device and group ids would make the label sets
//! unbounded: routes are axum's matched templates, topics are reduced to
//! their contract kind), or block: every update is a short lock on a small
//! map.
//!
//! Written by hand rather than with the `prometheus-client` crate: eight
//! families, one histogram, and the exact 0.0.4 text that Prometheus'
//! scrapers expect (the crate writes OpenMetrics, whose `_total` naming and
//! `# EOF` differ), at no dependency cost.
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

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use signet_common::sync::TOPIC_PREFIX;

use crate::fleet::FleetCounts;

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
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

/// Refused device reports of one reason, and the pacing of their log lines.
#[derive(Debug, Default)]
struct RefusalTally {
    /// Refused so far.
    count: u64,
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

/// One HTTP counter's labels.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct HttpLabels {
    /// The matched route template, or [`UNMATCHED_ROUTE`].
    route: String,
    /// The method label.
    method: &'static str,
    /// The status code.
    status: u16,
}

/// A histogram's running state.
#[derive(Debug, Default)]
struct Histogram {
    /// Observations per bucket of [`PUBLISH_BUCKETS`] (not cumulative); the
    /// last slot counts those above every bound.
    buckets: [u64; PUBLISH_BUCKETS.len() + 1],
    /// The sum of every observation, in seconds.
    sum: f64,
    /// How many observations.
    count: u64,
}

/// The hub's counters and histogram, shared by the router, the MQTT link
/// and publishing through [`crate::app::Hub::metrics`].
#[derive(Debug, Default)]
pub struct Metrics {
    /// HTTP requests answered, by labels.
    http: Mutex<BTreeMap<HttpLabels, u64>>,
    /// MQTT messages, by direction and topic kind.
    mqtt: Mutex<BTreeMap<(Direction, &'static str), u64>>,
    /// Publish-run latency.
    publish: Mutex<Histogram>,
    /// Retained messages restored by the watch, by topic kind.
    restored: Mutex<BTreeMap<&'static str, u64>>,
    /// Device reports refused (S11), by reason.
    refused_reports: Mutex<BTreeMap<&'static str, RefusalTally>>,
}

/// The guarded value, also after a panic elsewhere poisoned the lock (a
/// counter is never left half-written).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
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
            route: route.unwrap_or(UNMATCHED_ROUTE).to_owned(),
            method: method_label(method),
            status: status.as_u16(),
        };
        *lock(&self.http).entry(labels).or_default() += 1;
    }

    /// Counts one MQTT message on `topic` (labelled by its kind only).
    pub fn count_mqtt(&self, direction: Direction, topic: &str) {
        *lock(&self.mqtt)
            .entry((direction, topic_kind(topic)))
            .or_default() += 1;
    }

    /// Counts one retained message on `topic` the hub restored or cleared
    /// after someone else changed it (S4; labelled by its kind only).
    pub fn count_restored(&self, topic: &str) {
        *lock(&self.restored).entry(topic_kind(topic)).or_default() += 1;
    }

    /// How many retained messages of topic kind `kind` the hub restored.
    #[must_use]
    pub fn restored(&self, kind: &str) -> u64 {
        lock(&self.restored).get(kind).copied().unwrap_or(0)
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
        let now = Instant::now();
        let unlogged = {
            let mut refused = lock(&self.refused_reports);
            let tally = refused.entry(reason).or_default();
            tally.count += 1;
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
        lock(&self.refused_reports)
            .get(reason)
            .map_or(0, |tally| tally.count)
    }

    /// Records the latency of one publish run that signed documents.
    pub fn observe_publish(&self, latency: Duration) {
        let seconds = latency.as_secs_f64();
        let slot = PUBLISH_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(PUBLISH_BUCKETS.len());
        let mut histogram = lock(&self.publish);
        if let Some(bucket) = histogram.buckets.get_mut(slot) {
            *bucket += 1;
        }
        histogram.sum += seconds;
        histogram.count += 1;
    }

    /// Every metric in the Prometheus text exposition format 0.0.4, with
    /// the fleet gauges from `fleet`.
    #[must_use]
    pub fn render(&self, fleet: &FleetCounts) -> String {
        let mut out = String::new();
        family(
            &mut out,
            "signet_build_info",
            "gauge",
            "Always 1; the version label is the hub's version.",
        );
        sample(
            &mut out,
            "signet_build_info",
            &[("version", crate::VERSION)],
            "1",
        );
        for (name, help, value) in [
            (
                "signet_devices",
                "Devices attached to a leaf node.",
                fleet.attached,
            ),
            (
                "signet_devices_online",
                "Attached devices whose latest message said online (the MQTT last will says offline) and whose last heartbeat is within heartbeat_timeout_secs.",
                fleet.online,
            ),
            (
                "signet_devices_in_sync",
                "Attached devices that activated the newest signed version of every document they should have (U4), online or not.",
                fleet.in_sync,
            ),
            (
                "signet_devices_playing",
                "Attached devices online and reporting something playing.",
                fleet.playing,
            ),
        ] {
            family(&mut out, name, "gauge", help);
            sample(&mut out, name, &[], &value.to_string());
        }
        self.render_publish(&mut out);
        family(
            &mut out,
            "signet_mqtt_messages_total",
            "counter",
            "MQTT messages the hub handed to its client (published) or received from the broker, by topic kind.",
        );
        for ((direction, kind), count) in lock(&self.mqtt).iter() {
            sample(
                &mut out,
                "signet_mqtt_messages_total",
                &[("direction", direction.label()), ("kind", kind)],
                &count.to_string(),
            );
        }
        family(
            &mut out,
            "signet_retained_restored_total",
            "counter",
            "Retained messages on the hub's own topics that someone else replaced or cleared, restored (or, with no document of the hub's, cleared) by the hub, by topic kind (S4).",
        );
        for (kind, count) in lock(&self.restored).iter() {
            sample(
                &mut out,
                "signet_retained_restored_total",
                &[("kind", kind)],
                &count.to_string(),
            );
        }
        family(
            &mut out,
            "signet_device_reports_refused_total",
            "counter",
            "Device reports (state, events; over MQTT or HTTP) refused without effect, by reason: not signed by the key registered at pairing for the device their topic or HTTP identity names, about another device, or malformed (S11).",
        );
        for (reason, tally) in lock(&self.refused_reports).iter() {
            sample(
                &mut out,
                "signet_device_reports_refused_total",
                &[("reason", reason)],
                &tally.count.to_string(),
            );
        }
        family(
            &mut out,
            "signet_http_requests_total",
            "counter",
            "HTTP requests answered, by method, matched route template (\"unmatched\" when none) and status.",
        );
        for (labels, count) in lock(&self.http).iter() {
            sample(
                &mut out,
                "signet_http_requests_total",
                &[
                    ("method", labels.method),
                    ("route", &labels.route),
                    ("status", &labels.status.to_string()),
                ],
                &count.to_string(),
            );
        }
        out
    }

    fn render_publish(&self, out: &mut String) {
        let name = "signet_publish_duration_seconds";
        family(
            out,
            name,
            "histogram",
            "Seconds from the start of a publish run that signed documents (build, sign, store durably, \
             broker access) until its last retained message was queued to the MQTT client; the hub \
             does not wait for the broker's acknowledgement (S5).",
        );
        let histogram = lock(&self.publish);
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0_u64;
        for (bound, count) in PUBLISH_BUCKETS.iter().zip(histogram.buckets.iter()) {
            cumulative += count;
            sample(
                out,
                &bucket,
                &[("le", &bound.to_string())],
                &cumulative.to_string(),
            );
        }
        sample(
            out,
            &bucket,
            &[("le", "+Inf")],
            &histogram.count.to_string(),
        );
        sample(out, &format!("{name}_sum"), &[], &histogram.sum.to_string());
        sample(
            out,
            &format!("{name}_count"),
            &[],
            &histogram.count.to_string(),
        );
    }
}

/// The `# HELP` and `# TYPE` lines of a family.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let help = help.replace('\\', "\\\\").replace('\n', "\\n");
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// One sample line.
fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: &str) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (label, text)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let escaped = text
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            let _ = write!(out, "{label}=\"{escaped}\"");
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_become_bounded_kinds() {
        for (topic, kind) in [
            ("signet/v1/trust", "trust"),
            ("signet/v1/hub/time", "hub_time"),
            ("signet/v1/groups/n-1/manifest", "group_manifest"),
            ("signet/v1/devices/d-1/assignment", "device_assignment"),
            ("signet/v1/devices/d-1/commands", "command"),
            ("signet/v1/devices/d-1/state", "device_state"),
            ("signet/v1/devices/d-1/events", "device_events"),
            ("signet/v1/devices//state", "other"),
            ("signet/v1/devices/d-1/state/x", "other"),
            ("signet/v2/trust", "other"),
            ("$SYS/broker", "other"),
        ] {
            assert_eq!(topic_kind(topic), kind, "{topic}");
        }
    }

    /// S11: refused device reports are counted by reason, and a flood of
    /// them is logged once per reason per interval, not once each.
    #[test]
    fn s11_refused_reports_are_counted_and_their_log_lines_paced() {
        let metrics = Metrics::default();
        for _ in 0..1000 {
            metrics.count_refused_report("unsigned", "mqtt", "signet/v1/devices/d-1/state", &"x");
        }
        metrics.count_refused_report("wrong_key", "http", "d-1", &"y");
        assert_eq!(metrics.refused_reports("unsigned"), 1000);
        assert_eq!(metrics.refused_reports("wrong_key"), 1);
        assert_eq!(metrics.refused_reports("bad_signature"), 0);
        {
            let tallies = lock(&metrics.refused_reports);
            assert_eq!(
                tallies["unsigned"].unlogged, 999,
                "one line for 1000 refusals"
            );
            assert_eq!(tallies["wrong_key"].unlogged, 0);
        }
        let text = metrics.render(&FleetCounts::default());
        assert!(text.contains("# TYPE signet_device_reports_refused_total counter\n"));
        assert!(text.contains("signet_device_reports_refused_total{reason=\"unsigned\"} 1000\n"));
        assert!(text.contains("signet_device_reports_refused_total{reason=\"wrong_key\"} 1\n"));
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_labels_escaped() {
        let metrics = Metrics::default();
        metrics.observe_publish(Duration::from_millis(3));
        metrics.observe_publish(Duration::from_millis(70));
        metrics.observe_publish(Duration::from_secs(60));
        metrics.count_http(
            &axum::http::Method::GET,
            Some("/a\"b"),
            axum::http::StatusCode::OK,
        );
        let text = metrics.render(&FleetCounts::default());
        assert!(text.contains("signet_publish_duration_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("signet_publish_duration_seconds_bucket{le=\"0.1\"} 2\n"));
        assert!(text.contains("signet_publish_duration_seconds_bucket{le=\"30\"} 2\n"));
        assert!(text.contains("signet_publish_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("signet_publish_duration_seconds_count 3\n"));
        assert!(text.contains("route=\"/a\\\"b\""), "{text}");
    }
}
