//! Unit tests of [`super::Metrics`]: bounded labels, paced refusal logs,
//! and the exact text `/metrics` has always written.

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
    let text = metrics.render(&FleetGauges::default());
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
    let text = metrics.render(&FleetGauges::default());
    assert!(text.contains("signet_publish_duration_seconds_bucket{le=\"0.005\"} 1\n"));
    assert!(text.contains("signet_publish_duration_seconds_bucket{le=\"0.1\"} 2\n"));
    assert!(text.contains("signet_publish_duration_seconds_bucket{le=\"30\"} 2\n"));
    assert!(text.contains("signet_publish_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
    assert!(text.contains("signet_publish_duration_seconds_count 3\n"));
    assert!(text.contains("route=\"/a\\\"b\""), "{text}");
}

/// U4, U5: the crate's encoder writes exactly the text the hub's own
/// renderer wrote before it (names, HELP and TYPE lines, label order,
/// bucket bounds, sum format), so dashboards and alerts keep working.
#[test]
fn u5_exposition_is_the_text_dashboards_read() {
    let metrics = Metrics::default();
    metrics.observe_publish(Duration::from_millis(73));
    metrics.count_mqtt(Direction::Published, "signet/v1/trust");
    metrics.count_restored("signet/v1/trust");
    metrics.count_refused_report("unsigned", "mqtt", "x", &"y");
    metrics.count_http(
        &axum::http::Method::GET,
        Some("/healthz"),
        axum::http::StatusCode::OK,
    );
    let expected = include_str!("golden.prom").replace("{VERSION}", crate::VERSION);
    assert_eq!(metrics.render(&FleetGauges::default()), expected);
}
