//! Per-device feed variables over real HTTP (D6): an operator sets a
//! device's `[1]`…`[25]` values, reads them back, bad input is refused with
//! nothing changed, and the device's signed assignment carries them at once.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::collections::BTreeMap;

use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use signet_common::documents::DeviceAssignment;
use signet_hub::app::Clock as _;
use signet_hub::devices::{self, Device};
use support::{TestHub, assert_error};

/// Pairs a device into `node` as the admin; returns its id.
async fn pair(hub: &TestHub, node: &str, seed: u8) -> String {
    let (status, ticket) = hub
        .call(
            Method::POST,
            "/api/v1/device/pairings",
            None,
            Some(json!({
                "public_key": base64::engine::general_purpose::STANDARD.encode([seed; 32]),
                "agent_version": "0.1.0",
                "os": "test"
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ticket}");
    let code = ticket["code"].as_str().unwrap();
    let (status, body) = hub
        .post(
            &hub.admin,
            &format!("/api/v1/devices/pairings/{code}/approve"),
            json!({"node": node, "name": format!("screen {seed}")}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["device"]["id"].as_str().unwrap().to_owned()
}

async fn put_variables(
    hub: &TestHub,
    token: &str,
    device: &str,
    body: Value,
) -> (StatusCode, Value) {
    hub.call(
        Method::PUT,
        &format!("/api/v1/devices/{device}/variables"),
        Some(token),
        Some(body),
    )
    .await
}

/// The assignments the hub published since the last `take`, verified as
/// the agent would.
fn published_assignments(hub: &TestHub) -> BTreeMap<String, DeviceAssignment> {
    let trust = support::signed::device_trust(&hub.data);
    support::signed::verify_all(&trust, &hub.publisher.take(), hub.clock.now()).1
}

fn stored(hub: &TestHub, device: &str) -> Device {
    devices::device(&hub.state.store, device).unwrap().unwrap()
}

/// D6: set, read back, and the device's signed assignment is re-issued at
/// once with the values (and only that device's assignment changes).
#[tokio::test]
async fn d6_variables_set_read_back_and_published() {
    let hub = TestHub::start().await;
    let site = hub.node(&hub.admin, &hub.root, "Store 12").await;
    let device = pair(&hub, &site, 1).await;
    let other = pair(&hub, &site, 2).await;
    let before = published_assignments(&hub);
    let version_before = before[&device].version;
    assert!(before[&device].variables.is_empty());

    let (status, answer) = put_variables(
        &hub,
        &hub.admin,
        &device,
        json!({"variables": {"1": "store-12", "3": "de"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer["device"]["variables"],
        json!({"1": "store-12", "3": "de"})
    );
    assert!(answer["publication"].is_object(), "{answer}");
    assert!(answer["publication_error"].is_null(), "{answer}");

    let (status, read) = hub
        .get(&hub.admin, &format!("/api/v1/devices/{device}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["variables"], json!({"1": "store-12", "3": "de"}));

    let assignments = published_assignments(&hub);
    let assignment = &assignments[&device];
    assert_eq!(assignment.version, version_before + 1);
    let expected: BTreeMap<u8, String> = [(1, "store-12".to_owned()), (3, "de".to_owned())]
        .into_iter()
        .collect();
    assert_eq!(assignment.variables, expected);
    // The other device's assignment did not change, so it was not re-sent.
    assert!(
        !assignments.contains_key(&other),
        "{:?}",
        assignments.keys()
    );

    // Replacing them: absent numbers are gone, `{}` clears them all.
    let (status, answer) =
        put_variables(&hub, &hub.admin, &device, json!({"variables": {"25": "x"}})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(published_assignments(&hub)[&device].variables.len(), 1);
    let (status, answer) = put_variables(&hub, &hub.admin, &device, json!({"variables": {}})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(
        answer["device"]["variables"]
            .as_object()
            .unwrap()
            .is_empty()
    );
    assert!(published_assignments(&hub)[&device].variables.is_empty());
    assert!(stored(&hub, &device).variables.is_empty());
}

/// D6: a bad number or value is 400 and stores and publishes nothing.
#[tokio::test]
async fn d6_bad_variables_refused_nothing_changed() {
    let hub = TestHub::start().await;
    let site = hub.node(&hub.admin, &hub.root, "Store 7").await;
    let device = pair(&hub, &site, 3).await;
    let (status, _) = put_variables(
        &hub,
        &hub.admin,
        &device,
        json!({"variables": {"2": "good"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    hub.publisher.take();
    let record = stored(&hub, &device);

    for body in [
        json!({"variables": {"0": "zero"}}),
        json!({"variables": {"26": "too high"}}),
        json!({"variables": {"2": "x".repeat(257)}}),
        json!({"variables": {"2": "line\nbreak"}}),
        json!({"variables": {"2": "ok", "4": "tab\there"}}),
    ] {
        let result = put_variables(&hub, &hub.admin, &device, body.clone()).await;
        assert_error(&result, StatusCode::BAD_REQUEST, "invalid_variables");
    }
    for body in [
        json!({"variables": {"one": "x"}}),
        json!({"variables": {"300": "x"}}),
        json!({"variables": {"2": 5}}),
        json!({"variables": {"2": "ok"}, "extra": true}),
        json!({}),
    ] {
        let (status, answer) = put_variables(&hub, &hub.admin, &device, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
    }
    // A 256-byte value is the limit, not beyond it.
    let (status, answer) = put_variables(
        &hub,
        &hub.admin,
        &device,
        json!({"variables": {"2": "é".repeat(129)}}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");

    assert_eq!(stored(&hub, &device), record);
    assert!(hub.publisher.take().is_empty());
    let (_, read) = hub
        .get(&hub.admin, &format!("/api/v1/devices/{device}"))
        .await;
    assert_eq!(read["variables"], json!({"2": "good"}));
}

/// D6, P7: a contributor may not set variables (403, nothing stored).
#[tokio::test]
async fn d6_variables_need_manage_devices() {
    let hub = TestHub::start().await;
    let site = hub.node(&hub.admin, &hub.root, "Store 9").await;
    let device = pair(&hub, &site, 4).await;
    let (_, contributor) = hub.user("carla", "contributor", &[&hub.root]).await;
    let result = put_variables(
        &hub,
        &contributor,
        &device,
        json!({"variables": {"1": "x"}}),
    )
    .await;
    assert_eq!(result.0, StatusCode::FORBIDDEN, "{}", result.1);
    assert!(stored(&hub, &device).variables.is_empty());
}
