//! `/metrics` over HTTP against the real router (issue 8; U4, U5): real
//! requests, a real publish, the hub's real MQTT link on the embedded
//! broker and a device reporting its state over it; the text is checked
//! with a strict parser of the Prometheus text format 0.0.4.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use signet_common::ids::DeviceId;
use signet_common::sync::signed::sign_report;
use signet_common::sync::{DeviceState, state_topic};
use signet_hub::mqtt::admin::BrokerAdmin as _;
use signet_hub::mqtt::reports::FleetReports;
use signet_hub::mqtt::{HubLink, LinkOptions};
use support::mosquitto::Managed;
use support::states::device_state;
use support::{TestHub, activated_all, applied_all, register_device};
use tokio_util::sync::CancellationToken;

const DEVICE: &str = "d-metrics";
const DEVICE_SECRET: &str = "the device's secret";
/// The longest the test waits for the broker or the hub.
const WAIT: Duration = Duration::from_secs(20);

/// One parsed exposition: every sample by its series (`name{labels}` as
/// written), and each family's declared type.
#[derive(Debug, Default)]
struct Exposition {
    /// Sample values by series.
    samples: BTreeMap<String, f64>,
    /// Family name → type.
    types: BTreeMap<String, String>,
}

impl Exposition {
    fn value(&self, series: &str) -> f64 {
        *self
            .samples
            .get(series)
            .unwrap_or_else(|| panic!("no series {series} in {:#?}", self.samples.keys()))
    }
}

fn is_name(text: &str, colon: bool) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':'))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':'))
}

/// Parses `{a="x",b="y"}` strictly (escapes `\\`, `\"`, `\n` only);
/// returns the labels and what follows the closing brace.
fn parse_labels(text: &str) -> (Vec<(String, String)>, &str) {
    let mut labels = Vec::new();
    let mut rest = text.strip_prefix('{').unwrap();
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return (labels, after);
        }
        let (name, after) = rest.split_once("=\"").unwrap();
        assert!(is_name(name, false), "bad label name {name:?}");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().unwrap() {
                (_, '\\') => match chars.next().unwrap().1 {
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    'n' => value.push('\n'),
                    other => panic!("bad escape \\{other}"),
                },
                (i, '"') => break i,
                (_, '\n') => panic!("raw newline in a label value"),
                (_, c) => value.push(c),
            }
        };
        assert!(labels.iter().all(|(n, _)| n != name), "label {name} twice");
        labels.push((name.to_owned(), value));
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
        assert!(rest.starts_with('}') || rest.contains("=\""), "{rest}");
    }
}

/// A strict reader of the text format 0.0.4: HELP and TYPE once per family
/// and before its samples, valid names and label syntax, numeric values,
/// no series twice, sample names matching their family's type, cumulative
/// histogram buckets ending in `+Inf` = `_count`.
fn parse_exposition(text: &str) -> Exposition {
    assert!(text.ends_with('\n'), "the text ends with a newline");
    let mut out = Exposition::default();
    let mut helped = std::collections::BTreeSet::new();
    for line in text.lines() {
        assert!(!line.is_empty(), "no empty lines");
        if let Some(help) = line.strip_prefix("# HELP ") {
            let (name, _) = help.split_once(' ').unwrap();
            assert!(is_name(name, true), "{line}");
            assert!(helped.insert(name.to_owned()), "HELP twice: {line}");
            continue;
        }
        if let Some(kind) = line.strip_prefix("# TYPE ") {
            let (name, kind) = kind.split_once(' ').unwrap();
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            assert!(helped.contains(name), "TYPE after HELP: {line}");
            assert!(
                out.types.insert(name.to_owned(), kind.to_owned()).is_none(),
                "TYPE twice: {line}"
            );
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment {line}");
        let name_end = line.find(['{', ' ']).unwrap();
        let name = &line[..name_end];
        assert!(is_name(name, true), "{line}");
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..])
        } else {
            (Vec::new(), &line[name_end..])
        };
        let value = rest.strip_prefix(' ').unwrap();
        assert!(!value.contains(' '), "no timestamps here: {line}");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            other => other
                .parse()
                .unwrap_or_else(|_| panic!("bad value: {line}")),
        };
        let series = if labels.is_empty() {
            name.to_owned()
        } else {
            let joined: Vec<String> = labels.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
            format!("{name}{{{}}}", joined.join(","))
        };
        let family = family_of(&series, &out.types);
        let kind = out
            .types
            .get(&family)
            .unwrap_or_else(|| panic!("sample before its TYPE: {line}"));
        match kind.as_str() {
            "histogram" => assert!(
                [
                    format!("{family}_bucket"),
                    format!("{family}_sum"),
                    format!("{family}_count")
                ]
                .contains(&name.to_owned()),
                "{line}"
            ),
            _ => assert_eq!(name, family, "{line}"),
        }
        if kind == "counter" {
            assert!(value >= 0.0, "{line}");
        }
        assert!(
            out.samples.insert(series, value).is_none(),
            "series twice: {line}"
        );
    }
    for (family, kind) in &out.types {
        if kind != "histogram" {
            continue;
        }
        let prefix = format!("{family}_bucket{{le=");
        let buckets: Vec<f64> = out
            .samples
            .iter()
            .filter(|(s, _)| s.starts_with(&prefix))
            .map(|(_, v)| *v)
            .collect();
        let last = out.value(&format!("{family}_bucket{{le=\"+Inf\"}}"));
        assert_eq!(last, out.value(&format!("{family}_count")));
        let text_order: Vec<f64> = text
            .lines()
            .filter(|l| l.starts_with(&format!("{family}_bucket")))
            .map(|l| l.rsplit_once(' ').unwrap().1.parse().unwrap())
            .collect();
        assert_eq!(text_order.len(), buckets.len());
        assert!(
            text_order.windows(2).all(|w| w[0] <= w[1]),
            "buckets are cumulative: {text_order:?}"
        );
    }
    out
}

/// The family a series belongs to: its name, or for `_bucket`, `_sum` and
/// `_count` the histogram they belong to.
fn family_of(series: &str, types: &BTreeMap<String, String>) -> String {
    let name = series.split('{').next().unwrap();
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && types.get(base).is_some_and(|k| k == "histogram")
        {
            return base.to_owned();
        }
    }
    name.to_owned()
}

async fn scrape(hub: &TestHub) -> (String, Exposition) {
    let response = hub
        .client
        .get(format!("{}/metrics", hub.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    let parsed = parse_exposition(&text);
    (text, parsed)
}

/// U4, U5, issue 8: after real requests, a real publish and a device's
/// state over the real broker, `/metrics` counts requests by matched
/// route template (an unmatched path under a fixed label, no raw ids),
/// MQTT messages by kind, one publish latency observation, and the fleet
/// gauges agree with the fleet view; `/metrics` needs no token and is in
/// the OpenAPI document.
#[tokio::test]
async fn u4_u5_metrics_count_requests_messages_publishes_and_the_fleet() {
    let hub = TestHub::start().await;
    let site = hub.node(&hub.admin, &hub.root, "Site").await;
    let key = register_device(&hub, &site, DEVICE, DEVICE_SECRET).await;

    // Real requests: matched, matched with an id in the path, unmatched.
    for _ in 0..2 {
        let (status, _) = hub.call(reqwest::Method::GET, "/healthz", None, None).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, _) = hub.get(&hub.admin, "/api/v1/fleet/no-such-device-42").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = hub
        .call(reqwest::Method::GET, "/api/v1/no/such/route-42", None, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A real publish: it signs the manifests and the device's assignment.
    let (status, body) = hub
        .post(
            &hub.admin,
            "/api/v1/publish",
            json!({"scope": {"kind": "node", "id": hub.root}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The hub's MQTT link on the managed broker: on connect it publishes
    // trust, hub time and every stored document; device reports reach the
    // fleet through it.
    let broker = Managed::start();
    broker
        .admin()
        .grant(&DeviceId::from(DEVICE), Some(DEVICE_SECRET), &[])
        .await
        .unwrap();
    let link = HubLink::new(
        &broker.broker.hub_connection(),
        LinkOptions::default(),
        hub.state.metrics.clone(),
    );
    let running = link.spawn(
        hub.state.clone(),
        Arc::new(FleetReports {
            state: hub.state.clone(),
        }),
        CancellationToken::new(),
    );
    let mut connections = running.connections();
    tokio::time::timeout(WAIT, connections.wait_for(|c| *c >= 1))
        .await
        .unwrap()
        .unwrap();

    // The device reports itself online with every desired document applied.
    let mut options = rumqttc::MqttOptions::new(DEVICE, "127.0.0.1", broker.port());
    options
        .set_credentials(DEVICE, DEVICE_SECRET)
        .set_keep_alive(Duration::from_secs(5));
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 10);
    tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    let state = DeviceState {
        os: "Debian GNU/Linux 12 (bookworm) (x86_64)".into(),
        applied: applied_all(&hub, DEVICE),
        activated: activated_all(&hub, DEVICE),
        disk_free_bytes: Some(1_000_000),
        temperature_c: Some(48.0),
        ..device_state(DEVICE, chrono::Utc::now())
    };
    client
        .publish(
            state_topic(&DeviceId::from(DEVICE)),
            rumqttc::QoS::AtLeastOnce,
            true,
            sign_report(&state, &key).unwrap(),
        )
        .await
        .unwrap();

    let started = Instant::now();
    let (text, metrics) = loop {
        let (text, metrics) = scrape(&hub).await;
        if metrics.value("signet_devices_online") >= 1.0 {
            break (text, metrics);
        }
        assert!(
            started.elapsed() < WAIT,
            "the device never showed online:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    running.stop().await;

    // The fleet gauges say what the fleet view says.
    let (status, fleet) = hub.get(&hub.admin, "/api/v1/fleet").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fleet[0]["device_id"], DEVICE);
    assert_eq!(fleet[0]["online"], true);
    assert_eq!(fleet[0]["in_sync"], true, "{fleet}");
    assert_eq!(metrics.value("signet_devices"), 1.0);
    assert_eq!(metrics.value("signet_devices_online"), 1.0);
    assert_eq!(metrics.value("signet_devices_in_sync"), 1.0);
    assert_eq!(metrics.types["signet_devices"], "gauge");

    // HTTP requests by method, route template and status.
    let http = |method: &str, route: &str, status: u16| {
        metrics.value(&format!(
            "signet_http_requests_total{{method={method:?},route={route:?},status=\"{status}\"}}"
        ))
    };
    assert_eq!(http("GET", "/healthz", 200), 2.0);
    assert_eq!(http("GET", "/api/v1/fleet/{device}", 404), 1.0);
    assert_eq!(http("GET", "unmatched", 404), 1.0);
    assert_eq!(http("POST", "/api/v1/publish", 200), 1.0);
    assert_eq!(http("POST", "/api/v1/session", 200), 1.0, "the login");
    assert!(
        !text.contains("no-such-device-42") && !text.contains("route-42"),
        "raw URLs never become labels:\n{text}"
    );
    assert!(!text.contains(DEVICE), "no device id in any label:\n{text}");
    assert_eq!(metrics.types["signet_http_requests_total"], "counter");

    // One publish run signed documents: one latency observation.
    assert_eq!(
        metrics.types["signet_publish_duration_seconds"],
        "histogram"
    );
    assert_eq!(metrics.value("signet_publish_duration_seconds_count"), 1.0);
    assert!(metrics.value("signet_publish_duration_seconds_sum") > 0.0);

    // MQTT messages by direction and kind: what the link republished on
    // connect, and the device's state it received.
    let mqtt = |direction: &str, kind: &str| {
        metrics
            .samples
            .get(&format!(
                "signet_mqtt_messages_total{{direction={direction:?},kind={kind:?}}}"
            ))
            .copied()
            .unwrap_or(0.0)
    };
    assert_eq!(mqtt("published", "trust"), 1.0);
    assert!(mqtt("published", "hub_time") >= 1.0);
    assert_eq!(mqtt("published", "group_manifest"), 2.0, "root and site");
    assert_eq!(mqtt("published", "device_assignment"), 1.0);
    assert!(mqtt("received", "device_state") >= 1.0);

    // Listed in the OpenAPI document like /healthz.
    let (_, document) = hub
        .call(reqwest::Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert!(document["paths"]["/metrics"]["get"].is_object());
}
