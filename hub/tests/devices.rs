//! Devices and pairing over real HTTP (S7, T1, T4, L1, L4, L5, Deliver 4
//! and 7): the pairing flow an agent and an operator go through, device
//! credentials on the broker and the content route, device members of
//! access groups, and signed commands.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use base64::Engine as _;
use chrono::TimeDelta;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use signet_common::documents::{Command, CommandAction, DeviceAssignment};
use signet_common::ids::DeviceId;
use signet_hub::devices::{self, DEVICES, PAIRINGS, Pairing};
use signet_hub::tenancy::NODE_DEVICES;
use support::{TestHub, assert_error};

/// A valid agent public key (any 32 bytes, standard base64).
fn public_key(seed: u8) -> String {
    base64::engine::general_purpose::STANDARD.encode([seed; 32])
}

/// An agent asks to pair; returns (ticket, code).
async fn request_pairing(hub: &TestHub, seed: u8) -> (String, String) {
    let (status, body) = hub
        .call(
            Method::POST,
            "/api/v1/device/pairings",
            None,
            Some(
                json!({"public_key": public_key(seed), "agent_version": "0.1.0",
                "os": "Raspberry Pi OS 12 (aarch64)"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (
        body["ticket"].as_str().unwrap().to_owned(),
        body["code"].as_str().unwrap().to_owned(),
    )
}

async fn poll(hub: &TestHub, ticket: &str) -> (StatusCode, Value) {
    hub.call(
        Method::GET,
        &format!("/api/v1/device/pairings/{ticket}"),
        None,
        None,
    )
    .await
}

/// Pairs a device into `node` as `token`; returns (device id, secret).
async fn pair(hub: &TestHub, token: &str, node: &str, name: &str) -> (String, String) {
    let seed = u8::try_from(name.len() % 200).unwrap();
    let (ticket, code) = request_pairing(hub, seed).await;
    let (status, body) = hub
        .post(
            token,
            &format!("/api/v1/devices/pairings/{code}/approve"),
            json!({"node": node, "name": name}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, answer) = poll(hub, &ticket).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["status"], "approved", "{answer}");
    (
        answer["device_id"].as_str().unwrap().to_owned(),
        answer["broker"]["password"].as_str().unwrap().to_owned(),
    )
}

/// GETs a device content URL with optional Basic credentials and Range.
async fn fetch(
    hub: &TestHub,
    sha256: &str,
    credentials: Option<(&str, &str)>,
    range: Option<&str>,
) -> (StatusCode, Vec<u8>) {
    let mut request = hub
        .client
        .get(format!("{}/api/v1/device/content/{sha256}", hub.base));
    if let Some((user, password)) = credentials {
        request = request.basic_auth(user, Some(password));
    }
    if let Some(range) = range {
        request = request.header("range", range);
    }
    let response = request.send().await.unwrap();
    (response.status(), response.bytes().await.unwrap().to_vec())
}

/// Uploads an image at `node` as the admin; returns (id, sha256, bytes).
async fn upload(hub: &TestHub, node: &str, name: &str) -> (String, String, Vec<u8>) {
    let bytes = support::gif(&format!("{name} image bytes"));
    let response = hub
        .client
        .post(format!("{}/api/v1/content", hub.base))
        .query(&[("node", node), ("name", name)])
        .bearer_auth(&hub.admin)
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let answer: Value = response.json().await.unwrap();
    (
        answer["id"].as_str().unwrap().to_owned(),
        answer["sha256"].as_str().unwrap().to_owned(),
        bytes,
    )
}

/// S7: request → code → an operator approves into a leaf → the agent's
/// poll gets its credentials exactly once; they log in on the broker.
#[tokio::test]
async fn s7_full_pairing_flow_credentials_once() {
    let hub = TestHub::start().await;
    let site = hub.node(&hub.admin, &hub.root, "Lobby").await;
    let (ticket, code) = request_pairing(&hub, 1).await;
    assert_eq!(code.len(), signet_common::sync::PAIRING_CODE_LEN);
    assert!(ticket.len() >= 22, "at least 128 bits: {ticket}");

    // Only the ticket's hash is stored.
    let stored: Vec<Pairing> = hub.state.store.scan(PAIRINGS, "").unwrap();
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0].ticket_hash, ticket);
    assert!(!serde_json::to_string(&stored[0]).unwrap().contains(&ticket));

    let (status, pending) = poll(&hub, &ticket).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(pending["status"], "pending", "{pending}");

    // The operator sees the code, never the ticket.
    let (status, open) = hub.get(&hub.admin, "/api/v1/devices/pairings").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(open.as_array().unwrap().len(), 1);
    assert_eq!(open[0]["code"], code);
    assert_eq!(open[0]["os"], "Raspberry Pi OS 12 (aarch64)");
    assert!(!open.to_string().contains(&ticket));

    hub.publisher.take();
    let (status, approved) = hub
        .post(
            &hub.admin,
            &format!("/api/v1/devices/pairings/{}/approve", code.to_lowercase()),
            json!({"node": site, "name": "Lobby screen"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{approved}");
    let device = approved["device"]["id"].as_str().unwrap().to_owned();
    assert!(device.starts_with("d-"), "{device}");
    assert_eq!(approved["device"]["node"], site.as_str());
    assert_eq!(approved["device"]["public_key"], public_key(1));
    assert!(!approved.to_string().contains("secret"));
    assert!(
        hub.state
            .store
            .scan_keys(NODE_DEVICES, &format!("{site}/"))
            .unwrap()
            .contains(&format!("{site}/{device}"))
    );
    // Its signed assignment went out at once.
    let trust = support::signed::device_trust(&hub.data);
    let (_, assignments) =
        support::signed::verify_all(&trust, &hub.publisher.take(), hub.clock_now());
    let assignment: &DeviceAssignment = &assignments[&device];
    assert_eq!(assignment.node_chain.last().unwrap().as_str(), site);
    // The approved code is no longer open.
    let (_, open) = hub.get(&hub.admin, "/api/v1/devices/pairings").await;
    assert!(open.as_array().unwrap().is_empty());

    let (status, answer) = poll(&hub, &ticket).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["status"], "approved", "{answer}");
    assert_eq!(answer["device_id"], device.as_str());
    assert_eq!(answer["broker"]["username"], device.as_str());
    assert!(
        answer["broker"]["url"]
            .as_str()
            .unwrap()
            .starts_with("mqtt://")
    );
    let root_pub = std::fs::read_to_string(hub.data.join("keys/root.pub")).unwrap();
    assert_eq!(answer["root_public_key"], root_pub.trim());
    assert_eq!(answer["hub_url"], hub.state.config.public_base_url());
    let secret = answer["broker"]["password"].as_str().unwrap().to_owned();
    assert!(secret.len() >= 22);

    // Exactly once: the plain secret is gone from the store.
    let (_, again) = poll(&hub, &ticket).await;
    assert_eq!(again["status"], "closed", "{again}");
    let stored: Vec<Pairing> = hub.state.store.scan(PAIRINGS, "").unwrap();
    assert!(!serde_json::to_string(&stored).unwrap().contains(&secret));
    let record: devices::Device = hub.state.store.get(DEVICES, &device).unwrap().unwrap();
    assert_ne!(record.secret_hash, secret);

    // S7: the secret is the device's broker password, and nothing else is.
    let store = &hub.state.store;
    assert!(devices::broker_login(store, &device, &secret).unwrap());
    assert!(!devices::broker_login(store, &device, "wrong").unwrap());
    assert!(!devices::broker_login(store, "d-unknown", &secret).unwrap());
    assert!(!devices::broker_login(store, &device, "").unwrap());
}

/// S7: an unapproved code expires; a rejected one closes; an unknown
/// ticket is 404; bad requests change nothing.
#[tokio::test]
async fn s7_codes_expire_rejections_close_and_bad_input_is_refused() {
    let hub = TestHub::start().await;
    let site = hub.node(&hub.admin, &hub.root, "Site").await;
    let (expiring, code) = request_pairing(&hub, 2).await;
    hub.clock.advance(TimeDelta::minutes(16));
    assert_error(
        &hub.post(
            &hub.admin,
            &format!("/api/v1/devices/pairings/{code}/approve"),
            json!({"node": site, "name": "Late"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let (_, closed) = poll(&hub, &expiring).await;
    assert_eq!(closed["status"], "closed");
    assert!(closed["reason"].as_str().unwrap().contains("expired"));

    let (rejected, code) = request_pairing(&hub, 3).await;
    let (status, _) = hub
        .call(
            Method::POST,
            &format!("/api/v1/devices/pairings/{code}/reject"),
            Some(&hub.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, closed) = poll(&hub, &rejected).await;
    assert_eq!(closed["status"], "closed");
    assert!(closed["reason"].as_str().unwrap().contains("rejected"));
    // A rejected code cannot be approved afterwards.
    assert_eq!(
        hub.post(
            &hub.admin,
            &format!("/api/v1/devices/pairings/{code}/approve"),
            json!({"node": site, "name": "After"}),
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );

    assert_error(
        &poll(&hub, "not-a-ticket").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let before = hub.state.store.scan::<Pairing>(PAIRINGS, "").unwrap().len();
    for body in [
        json!({"public_key": "not base64", "agent_version": "1", "os": "x"}),
        json!({"public_key": public_key(4), "agent_version": "1", "os": "x", "extra": 1}),
        json!({"public_key": public_key(4), "agent_version": "1\u{7}", "os": "x"}),
    ] {
        assert_error(
            &hub.call(Method::POST, "/api/v1/device/pairings", None, Some(body))
                .await,
            StatusCode::BAD_REQUEST,
            "invalid_pairing_request",
        );
    }
    assert_eq!(
        hub.state.store.scan::<Pairing>(PAIRINGS, "").unwrap().len(),
        before
    );
}

/// S7: approved credentials wait a bounded time for their agent, and a
/// device unpaired before collection hands out nothing; either way the
/// plain secret leaves the store.
#[tokio::test]
async fn s7_uncollected_credentials_expire_and_unpaired_devices_hand_out_nothing() {
    let hub = TestHub::start().await;
    let site = hub.node(&hub.admin, &hub.root, "Site").await;
    let secrets_stored = |hub: &TestHub| {
        hub.state
            .store
            .scan::<Pairing>(PAIRINGS, "")
            .unwrap()
            .iter()
            .filter(|p| {
                matches!(
                    &p.state,
                    devices::PairingState::Approved {
                        secret: Some(_),
                        ..
                    }
                )
            })
            .count()
    };
    let (late, code) = request_pairing(&hub, 7).await;
    let (status, _) = hub
        .post(
            &hub.admin,
            &format!("/api/v1/devices/pairings/{code}/approve"),
            json!({"node": site, "name": "Late"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (gone, code) = request_pairing(&hub, 8).await;
    let (status, body) = hub
        .post(
            &hub.admin,
            &format!("/api/v1/devices/pairings/{code}/approve"),
            json!({"node": site, "name": "Gone"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(secrets_stored(&hub), 2);
    let device = body["device"]["id"].as_str().unwrap();
    let (status, _) = hub
        .delete(&hub.admin, &format!("/api/v1/devices/{device}"))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, answer) = poll(&hub, &gone).await;
    assert_eq!(answer["status"], "closed", "{answer}");
    assert!(answer["reason"].as_str().unwrap().contains("unpaired"));
    assert_eq!(secrets_stored(&hub), 1);

    hub.clock.advance(TimeDelta::minutes(16));
    let (_, answer) = poll(&hub, &late).await;
    assert_eq!(answer["status"], "closed", "{answer}");
    assert!(answer["reason"].as_str().unwrap().contains("in time"));
    assert_eq!(secrets_stored(&hub), 0);
    // Closed pairings are deleted after their retention.
    hub.clock.advance(TimeDelta::hours(2));
    request_pairing(&hub, 9).await;
    assert_eq!(
        hub.state.store.scan::<Pairing>(PAIRINGS, "").unwrap().len(),
        1
    );
    assert_error(&poll(&hub, &late).await, StatusCode::NOT_FOUND, "not_found");
}

/// S7: one client address holds a bounded number of open pairings (429).
#[tokio::test]
async fn s7_open_pairings_per_address_are_bounded() {
    let hub = TestHub::start().await;
    for i in 0..devices::MAX_OPEN_PAIRINGS_PER_ADDRESS {
        request_pairing(&hub, u8::try_from(i).unwrap()).await;
    }
    let response = hub
        .client
        .post(format!("{}/api/v1/device/pairings", hub.base))
        .json(&json!({"public_key": public_key(99), "agent_version": "1", "os": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
    // Once they expire, the address may ask again.
    hub.clock.advance(TimeDelta::minutes(16));
    request_pairing(&hub, 100).await;
}

/// T1: devices attach only to leaf nodes; the code stays open.
#[tokio::test]
async fn t1_a_node_with_children_takes_no_device() {
    let hub = TestHub::start().await;
    let region = hub.node(&hub.admin, &hub.root, "Region").await;
    let site = hub.node(&hub.admin, &region, "Site").await;
    let (_, code) = request_pairing(&hub, 5).await;
    assert_error(
        &hub.post(
            &hub.admin,
            &format!("/api/v1/devices/pairings/{code}/approve"),
            json!({"node": region, "name": "Screen"}),
        )
        .await,
        StatusCode::CONFLICT,
        "node_not_leaf",
    );
    assert!(hub.state.store.scan_keys(DEVICES, "").unwrap().is_empty());
    let (status, body) = hub
        .post(
            &hub.admin,
            &format!("/api/v1/devices/pairings/{code}/approve"),
            json!({"node": site, "name": "Screen"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let device = body["device"]["id"].as_str().unwrap().to_owned();
    // T1 the other way round: no child under a node holding a device.
    assert_error(
        &hub.post(
            &hub.admin,
            "/api/v1/nodes",
            json!({"parent": site, "name": "below"}),
        )
        .await,
        StatusCode::CONFLICT,
        "node_has_devices",
    );
    // Moving: to another leaf works, to a node with children does not.
    let other = hub.node(&hub.admin, &hub.root, "Other site").await;
    assert_error(
        &hub.patch(
            &hub.admin,
            &format!("/api/v1/devices/{device}"),
            json!({"node": region}),
        )
        .await,
        StatusCode::CONFLICT,
        "node_not_leaf",
    );
    hub.publisher.take();
    let (status, moved) = hub
        .patch(
            &hub.admin,
            &format!("/api/v1/devices/{device}"),
            json!({"node": other, "name": "Moved"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(moved["device"]["node"], other.as_str());
    assert_eq!(moved["device"]["name"], "Moved");
    let keys = hub.state.store.scan_keys(NODE_DEVICES, "").unwrap();
    assert_eq!(keys, vec![format!("{other}/{device}")]);
    let trust = support::signed::device_trust(&hub.data);
    let (_, assignments) =
        support::signed::verify_all(&trust, &hub.publisher.take(), hub.clock_now());
    assert_eq!(
        assignments[&device].node_chain.last().unwrap().as_str(),
        other
    );
}

/// T4, P7: tenants pair, see and change only their own devices; pairing
/// needs manage_devices; open codes are listed only to root-level callers.
#[tokio::test]
async fn t4_devices_are_tenant_scoped() {
    let hub = TestHub::start().await;
    let a = hub.node(&hub.admin, &hub.root, "Tenant A").await;
    let a_site = hub.node(&hub.admin, &a, "A site").await;
    let b = hub.node(&hub.admin, &hub.root, "Tenant B").await;
    let b_site = hub.node(&hub.admin, &b, "B site").await;
    let (_, a_manager) = hub.user("a-manager", "manager", &[&a]).await;
    let (_, a_viewer) = hub.user("a-viewer", "viewer", &[&a]).await;
    let (b_device, _) = pair(&hub, &hub.admin, &b_site, "B screen").await;

    let (_, code) = request_pairing(&hub, 6).await;
    // Tenants do not see open codes; root-level callers do.
    let (status, open) = hub.get(&a_manager, "/api/v1/devices/pairings").await;
    assert_eq!(status, StatusCode::OK);
    assert!(open.as_array().unwrap().is_empty());
    let approve = format!("/api/v1/devices/pairings/{code}/approve");
    assert_error(
        &hub.post(&a_viewer, &approve, json!({"node": a_site, "name": "x"}))
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert_error(
        &hub.post(&a_manager, &approve, json!({"node": b_site, "name": "x"}))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let (status, body) = hub
        .post(
            &a_manager,
            &approve,
            json!({"node": a_site, "name": "A screen"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let a_device = body["device"]["id"].as_str().unwrap().to_owned();

    let (_, listed) = hub.get(&a_viewer, "/api/v1/devices").await;
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![a_device.as_str()]);
    let (_, all) = hub.get(&hub.admin, "/api/v1/devices").await;
    assert_eq!(all.as_array().unwrap().len(), 2);
    let b_path = format!("/api/v1/devices/{b_device}");
    assert_eq!(hub.get(&a_manager, &b_path).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        hub.patch(&a_manager, &b_path, json!({"name": "mine"}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        hub.delete(&a_manager, &b_path).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        hub.post(
            &a_manager,
            &format!("{b_path}/commands"),
            json!({"action": "resync"})
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    // Moving one's own device into another tenant is 404 too.
    assert_eq!(
        hub.patch(
            &a_manager,
            &format!("/api/v1/devices/{a_device}"),
            json!({"node": b_site})
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        hub.get(&hub.admin, &b_path).await.1["name"],
        "B screen",
        "B's device is unchanged"
    );
    // The viewer reads but does not change.
    assert_eq!(
        hub.get(&a_viewer, &format!("/api/v1/devices/{a_device}"))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        hub.delete(&a_viewer, &format!("/api/v1/devices/{a_device}"))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
}

/// S7: the content route serves only entitled devices with valid
/// credentials (HTTP Basic device_id:secret).
#[tokio::test]
async fn s7_device_content_needs_credentials_and_entitlement() {
    let hub = TestHub::start().await;
    let a = hub.node(&hub.admin, &hub.root, "Tenant A").await;
    let a_site = hub.node(&hub.admin, &a, "A site").await;
    let b = hub.node(&hub.admin, &hub.root, "Tenant B").await;
    let (device, secret) = pair(&hub, &hub.admin, &a_site, "Screen").await;
    let (_, mine, bytes) = upload(&hub, &a, "mine").await;
    let (_, theirs, _) = upload(&hub, &b, "theirs").await;

    assert_error(
        &{
            let (status, body) = fetch(&hub, &mine, None, None).await;
            (status, serde_json::from_slice(&body).unwrap())
        },
        StatusCode::UNAUTHORIZED,
        "device_credentials_required",
    );
    for (user, password) in [
        (device.as_str(), "wrong secret"),
        ("d-unknown", secret.as_str()),
        (device.as_str(), ""),
    ] {
        assert_eq!(
            fetch(&hub, &mine, Some((user, password)), None).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    // A bearer token is not a device credential.
    let response = hub
        .client
        .get(format!("{}/api/v1/device/content/{mine}", hub.base))
        .bearer_auth(&hub.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let (status, body) = fetch(&hub, &mine, Some((&device, &secret)), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, bytes);
    let (status, body) = fetch(&hub, &mine, Some((&device, &secret)), Some("bytes=2-5")).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(body, bytes[2..=5]);
    // Another tenant's content: not entitled, not revealed (404).
    assert_eq!(
        fetch(&hub, &theirs, Some((&device, &secret)), None).await.0,
        StatusCode::NOT_FOUND
    );

    // Unpairing revokes at once: broker login and content both refuse.
    let (status, _) = hub
        .delete(&hub.admin, &format!("/api/v1/devices/{device}"))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(!devices::broker_login(&hub.state.store, &device, &secret).unwrap());
    assert_eq!(
        fetch(&hub, &mine, Some((&device, &secret)), None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert!(
        hub.state
            .store
            .scan_keys(NODE_DEVICES, "")
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        hub.get(&hub.admin, &format!("/api/v1/devices/{device}"))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
}

/// L1, L4, L5: paired devices join access groups; max active devices
/// refuses one more until one is deactivated; the device's assignment
/// follows at once; a device outside the group's subtree is refused.
#[tokio::test]
async fn l5_device_members_and_max_active_devices() {
    let hub = TestHub::start().await;
    let a = hub.node(&hub.admin, &hub.root, "Tenant A").await;
    let site = hub.node(&hub.admin, &a, "Site").await;
    let elsewhere = hub.node(&hub.admin, &hub.root, "Elsewhere").await;
    let (one, one_secret) = pair(&hub, &hub.admin, &site, "One").await;
    let (two, _) = pair(&hub, &hub.admin, &site, "Two!").await;
    let (outside, _) = pair(&hub, &hub.admin, &elsewhere, "Outside").await;
    let (status, group) = hub
        .post(
            &hub.admin,
            "/api/v1/access-groups",
            json!({"node": a, "name": "Licensed", "license": {"allow_offline": false,
                "offline_grace_secs": 0, "allow_export": false, "max_active_devices": 1}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{group}");
    let group = group["id"].as_str().unwrap().to_owned();
    let members = format!("/api/v1/access-groups/{group}/members");
    let (item, sha, _) = upload(&hub, &a, "licensed").await;
    let (status, saved) = hub
        .call(
            Method::PUT,
            &format!("/api/v1/access-groups/{group}/items"),
            Some(&hub.admin),
            Some(json!({"items": [{"id": item, "categories": []}]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    // Not a member yet: the licensed item is not served.
    assert_eq!(
        fetch(&hub, &sha, Some((&one, &one_secret)), None).await.0,
        StatusCode::NOT_FOUND
    );

    hub.publisher.take();
    let (status, added) = hub
        .post(
            &hub.admin,
            &members,
            json!({"member": {"type": "device", "device_id": one}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    assert_eq!(added["active"], true);
    let trust = support::signed::device_trust(&hub.data);
    let (_, assignments) =
        support::signed::verify_all(&trust, &hub.publisher.take(), hub.clock_now());
    assert_eq!(
        assignments[&one].access_groups[0].group_id.as_str(),
        group,
        "L4: the member's assignment changes at once"
    );
    assert_eq!(
        fetch(&hub, &sha, Some((&one, &one_secret)), None).await.0,
        StatusCode::OK
    );

    // L5: the one slot is taken.
    assert_error(
        &hub.post(
            &hub.admin,
            &members,
            json!({"member": {"type": "device", "device_id": two}}),
        )
        .await,
        StatusCode::CONFLICT,
        "too_many_devices",
    );
    assert_error(
        &hub.post(
            &hub.admin,
            &members,
            json!({"member": {"type": "device", "device_id": outside}}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "device_outside_group",
    );
    assert_error(
        &hub.post(
            &hub.admin,
            &members,
            json!({"member": {"type": "device", "device_id": "d-unknown"}}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    // Deactivating one frees the slot; the deactivated device loses access.
    let (status, body) = hub
        .patch(
            &hub.admin,
            &format!("{members}/device/{one}"),
            json!({"active": false}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["active"], false);
    assert_eq!(
        fetch(&hub, &sha, Some((&one, &one_secret)), None).await.0,
        StatusCode::NOT_FOUND
    );
    let (status, body) = hub
        .post(
            &hub.admin,
            &members,
            json!({"member": {"type": "device", "device_id": two}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Re-activating the first is refused again while two holds the slot.
    assert_error(
        &hub.patch(
            &hub.admin,
            &format!("{members}/device/{one}"),
            json!({"active": true}),
        )
        .await,
        StatusCode::CONFLICT,
        "too_many_devices",
    );
    // Removing two frees it; its assignment drops the group (L4).
    hub.publisher.take();
    let (status, _) = hub
        .delete(&hub.admin, &format!("{members}/device/{two}"))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, assignments) =
        support::signed::verify_all(&trust, &hub.publisher.take(), hub.clock_now());
    assert!(assignments[&two].access_groups.is_empty());
    let (status, body) = hub
        .patch(
            &hub.admin,
            &format!("{members}/device/{one}"),
            json!({"active": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A device in the group cannot move where the group does not reach.
    assert_error(
        &hub.patch(
            &hub.admin,
            &format!("/api/v1/devices/{one}"),
            json!({"node": elsewhere}),
        )
        .await,
        StatusCode::CONFLICT,
        "device_in_access_groups",
    );
    // Unpairing ends its memberships (kept for reports, L8).
    let (status, _) = hub
        .delete(&hub.admin, &format!("/api/v1/devices/{one}"))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, listed) = hub.get(&hub.admin, &members).await;
    let record = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["member"]["device_id"] == one.as_str())
        .unwrap();
    assert!(record["removed_at"].is_string());
    assert_eq!(record["active"], false);
}

/// L4, S7: deleting an access group ends its device members' access at
/// once, as removing each member would: every device member's assignment
/// is re-signed without the group (an agent keeps playing what its last
/// assignment licenses, so a group deleted without that would play on
/// until its windows end), and a member that still belongs to another
/// group keeps that one. The group's retained manifest is cleared from
/// the broker (S4).
#[tokio::test]
async fn l4_deleting_a_group_re_signs_its_device_members_assignments_without_it() {
    let hub = TestHub::start().await;
    let site = hub.node(&hub.admin, &hub.root, "Site").await;
    let (one, _) = pair(&hub, &hub.admin, &site, "One").await;
    let (two, _) = pair(&hub, &hub.admin, &site, "Two").await;
    let mut groups = Vec::new();
    for name in ["Deleted", "Kept"] {
        let (status, group) = hub
            .post(
                &hub.admin,
                "/api/v1/access-groups",
                json!({"node": site, "name": name, "license": {"allow_offline": false,
                    "offline_grace_secs": 0, "allow_export": false}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{group}");
        groups.push(group["id"].as_str().unwrap().to_owned());
    }
    let (deleted, kept) = (&groups[0], &groups[1]);
    let (item, _, _) = upload(&hub, &site, "licensed").await;
    let (status, saved) = hub
        .call(
            Method::PUT,
            &format!("/api/v1/access-groups/{deleted}/items"),
            Some(&hub.admin),
            Some(json!({"items": [{"id": item, "categories": []}]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    for (group, device) in [(deleted, &one), (deleted, &two), (kept, &two)] {
        let (status, added) = hub
            .post(
                &hub.admin,
                &format!("/api/v1/access-groups/{group}/members"),
                json!({"member": {"type": "device", "device_id": device}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{added}");
    }

    let manifest_topic = format!("signet/v1/groups/{deleted}/manifest");
    assert!(
        hub.publisher
            .take()
            .iter()
            .any(|m| m.topic == manifest_topic && !m.payload.is_empty()),
        "the group's manifest was published before its delete"
    );
    let (status, body) = hub
        .delete(&hub.admin, &format!("/api/v1/access-groups/{deleted}"))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let trust = support::signed::device_trust(&hub.data);
    let (cleared, signed): (Vec<_>, Vec<_>) = hub
        .publisher
        .take()
        .into_iter()
        .partition(|m| m.payload.is_empty());
    let cleared: Vec<&str> = cleared.iter().map(|m| m.topic.as_str()).collect();
    assert_eq!(
        cleared,
        [manifest_topic.as_str()],
        "S4, L4: the deleted group's retained manifest is cleared, nothing else"
    );
    let (manifests, assignments) = support::signed::verify_all(&trust, &signed, hub.clock_now());
    assert!(
        !manifests.contains_key(deleted.as_str()),
        "no manifest of the deleted group is signed again"
    );
    assert!(
        assignments[&one].access_groups.is_empty(),
        "L4: the deleted group's member is re-signed without it"
    );
    let left: Vec<&str> = assignments[&two]
        .access_groups
        .iter()
        .map(|g| g.group_id.as_str())
        .collect();
    assert_eq!(left, [kept.as_str()], "the other group's membership stays");
}

/// Deliver 7, S1, S3: a command is signed, verifies as a `command` for that
/// device, goes out not retained on its commands topic, and versions
/// strictly increase.
#[tokio::test]
async fn deliver7_commands_are_signed_not_retained_and_versioned() {
    let hub = TestHub::start().await;
    let site = hub.node(&hub.admin, &hub.root, "Site").await;
    let (device, _) = pair(&hub, &hub.admin, &site, "Screen").await;
    let (_, viewer) = hub.user("viewer", "viewer", &[&hub.root]).await;
    let path = format!("/api/v1/devices/{device}/commands");
    assert_error(
        &hub.post(&viewer, &path, json!({"action": "resync"})).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert_error(
        &hub.post(&hub.admin, &path, json!({"action": "reboot_the_world"}))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_body",
    );
    hub.publisher.take();
    let trust = support::signed::device_trust(&hub.data);
    let mut versions = Vec::new();
    let mut nonces = Vec::new();
    for (action, expected) in [
        ("screenshot", CommandAction::Screenshot),
        ("resync", CommandAction::Resync),
        ("restart_player", CommandAction::RestartPlayer),
        ("purge_cache", CommandAction::PurgeCache),
    ] {
        let (status, accepted) = hub.post(&hub.admin, &path, json!({"action": action})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
        assert_eq!(accepted["delivered"], true);
        let messages = hub.publisher.sent();
        assert!(hub.publisher.take().is_empty(), "commands are not retained");
        let message = messages.last().unwrap();
        assert_eq!(
            message.topic,
            signet_common::sync::commands_topic(&DeviceId::from(device.as_str()))
        );
        let command = trust
            .verify::<Command>(&message.payload, hub.clock_now())
            .unwrap()
            .into_payload();
        assert_eq!(command.device_id.as_str(), device);
        assert_eq!(command.action, expected);
        assert_eq!(command.version, accepted["version"].as_u64().unwrap());
        assert!(command.expires_at > hub.clock_now());
        assert!(command.expires_at <= hub.clock_now() + TimeDelta::minutes(5));
        versions.push(command.version);
        nonces.push(command.nonce);
    }
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
    nonces.sort();
    nonces.dedup();
    assert_eq!(nonces.len(), 4, "every nonce is fresh");
    // A failed hand-over is reported; the version is still used up.
    hub.publisher.fail_with(Some("queue full"));
    let (status, accepted) = hub
        .post(&hub.admin, &path, json!({"action": "resync"}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(accepted["delivered"], false);
    assert_eq!(accepted["version"], 5);
}

trait ClockNow {
    fn clock_now(&self) -> chrono::DateTime<chrono::Utc>;
}

impl ClockNow for TestHub {
    fn clock_now(&self) -> chrono::DateTime<chrono::Utc> {
        use signet_hub::app::Clock as _;
        self.clock.now()
    }
}

/// GETs the device documents route with optional Basic credentials.
async fn documents(hub: &TestHub, credentials: Option<(&str, &str)>) -> (StatusCode, Value) {
    let mut request = hub
        .client
        .get(format!("{}/api/v1/device/documents", hub.base));
    if let Some((user, password)) = credentials {
        request = request.basic_auth(user, Some(password));
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let bytes = response.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// S4 (DESIGN §1: the broker is an accelerator, never the only path), S7:
/// `GET /api/v1/device/documents` serves the calling device — and only it,
/// with its own credentials — its current signed documents byte for byte as
/// stored: trust, hub time, its assignment and the manifests of the groups
/// that assignment names; each verifies as an agent verifies it.
#[tokio::test]
async fn s4_s7_device_documents_route_serves_only_the_callers_signed_documents() {
    use signet_common::documents::{GroupManifest, HubTime};
    use signet_common::envelope::DocumentKind;
    use signet_common::sync::documents::parse_documents;

    let hub = TestHub::start().await;
    let a = hub.node(&hub.admin, &hub.root, "Tenant A").await;
    let a_site = hub.node(&hub.admin, &a, "A site").await;
    let b = hub.node(&hub.admin, &hub.root, "Tenant B").await;
    let b_site = hub.node(&hub.admin, &b, "B site").await;
    let (device, secret) = pair(&hub, &hub.admin, &a_site, "Screen A").await;
    let (other, other_secret) = pair(&hub, &hub.admin, &b_site, "Screen BB").await;
    let (status, run) = hub
        .post(
            &hub.admin,
            "/api/v1/publish",
            json!({"scope": {"kind": "node", "id": hub.root}}),
        )
        .await;
    assert!(status.is_success(), "{run}");

    // No credentials, wrong ones, or an operator's token: 401.
    assert_error(
        &documents(&hub, None).await,
        StatusCode::UNAUTHORIZED,
        "device_credentials_required",
    );
    for (user, password) in [
        (device.as_str(), "wrong secret"),
        (device.as_str(), other_secret.as_str()),
        ("d-unknown", secret.as_str()),
    ] {
        assert_eq!(
            documents(&hub, Some((user, password))).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    let response = hub
        .client
        .get(format!("{}/api/v1/device/documents", hub.base))
        .bearer_auth(&hub.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // S13: the route is in the OpenAPI document, under the device tag.
    let (_, openapi) = hub.get(&hub.admin, "/api/v1/openapi.json").await;
    let route = &openapi["paths"]["/api/v1/device/documents"]["get"];
    assert_eq!(route["tags"][0], "device", "{route}");
    assert!(route["responses"]["401"].is_object(), "{route}");

    let trust = support::signed::device_trust(&hub.data);
    let now = hub.clock_now();
    let store = &hub.state.store;
    for (id, secret, site, foreign_site) in [
        (&device, &secret, &a_site, &b_site),
        (&other, &other_secret, &b_site, &a_site),
    ] {
        let (status, body) = documents(&hub, Some((id, secret))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let answer = parse_documents(body.to_string().as_bytes()).unwrap();
        let mut fresh = signet_common::trust::TrustStore::new(trust.root());
        fresh
            .apply_trust(answer.trust.as_ref().unwrap().as_bytes())
            .unwrap();
        trust
            .verify::<HubTime>(answer.hub_time.as_ref().unwrap().as_bytes(), now)
            .unwrap();
        let assignment_bytes = answer.assignment.as_ref().unwrap();
        let assignment = trust
            .verify::<DeviceAssignment>(assignment_bytes.as_bytes(), now)
            .unwrap()
            .into_payload();
        assert_eq!(assignment.device_id.as_str(), id.as_str());
        assert_eq!(
            Some(assignment_bytes.clone()),
            signet_hub::publish::envelope_of(store, DocumentKind::DeviceAssignment, id).unwrap()
        );
        let groups: Vec<&str> = assignment.group_ids().collect();
        assert!(groups.contains(&site.as_str()), "{groups:?}");
        assert!(!groups.contains(&foreign_site.as_str()));
        assert_eq!(
            answer
                .manifests
                .keys()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            {
                let mut sorted = groups.clone();
                sorted.sort_unstable();
                sorted
            }
        );
        for (group, envelope) in &answer.manifests {
            let manifest = trust
                .verify::<GroupManifest>(envelope.as_bytes(), now)
                .unwrap()
                .into_payload();
            assert_eq!(&manifest.group_id, group);
            assert_eq!(
                Some(envelope.clone()),
                signet_hub::publish::envelope_of(store, DocumentKind::GroupManifest, group)
                    .unwrap()
            );
        }
        assert!(!answer.manifests.contains_key(foreign_site.as_str()));
        assert!(answer.omitted.is_empty());
    }
}

/// S7, U5, X1 (issue 20): approving a screen publishes its node's documents
/// and its own assignment only, so the work of one approval does not grow
/// with the screens already paired at that node (before, each approval
/// re-built, checked and recorded every assignment there: O(N) each, O(N²)
/// to pair a fleet). Counted, not timed: after each of K approvals at one
/// node, its run considered exactly one assignment — the new device's,
/// signed — the hub sent exactly one assignment message, its own, and the
/// runs' progress records number K in all (not K(K+1)/2). A publish of the
/// node afterwards still reaches every screen.
#[tokio::test]
async fn s7_u5_x1_an_approval_publishes_only_the_new_devices_documents() {
    const K: usize = 12;
    let hub = TestHub::start().await;
    let tenant = hub.node(&hub.admin, &hub.root, "Tenant").await;
    let site = hub.node(&hub.admin, &tenant, "Site").await;
    let mut devices = Vec::new();
    for i in 0..K {
        let (_ticket, code) = request_pairing(&hub, u8::try_from(i + 1).unwrap()).await;
        let before = hub.publisher.messages().len();
        let (status, body) = hub
            .post(
                &hub.admin,
                &format!("/api/v1/devices/pairings/{code}/approve"),
                json!({"node": site, "name": format!("screen {i}")}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let device = body["device"]["id"].as_str().unwrap().to_owned();
        let considered: Vec<&Value> = body["publication"]["documents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["kind"] == "device_assignment")
            .collect();
        assert_eq!(considered.len(), 1, "approval {i}: {considered:?}");
        assert_eq!(considered[0]["subject"], device.as_str());
        assert_eq!(considered[0]["signed"], true);
        let assignments_sent: Vec<String> = hub.publisher.messages()[before..]
            .iter()
            .map(|m| m.topic.clone())
            .filter(|t| t.ends_with("/assignment"))
            .collect();
        assert_eq!(
            assignments_sent,
            [signet_common::sync::assignment_topic(&DeviceId::from(
                device.as_str()
            ))],
            "approval {i}"
        );
        devices.push(device);
    }
    let progress = hub
        .state
        .store
        .scan_keys(signet_hub::publish::publications::PUBLICATION_DEVICES, "")
        .unwrap();
    assert_eq!(progress.len(), K, "one progress record per approval");
    // The node's manifest went out with the first approval, and a publish
    // of the node reaches every paired screen.
    let (status, answer) = hub
        .post(
            &hub.admin,
            "/api/v1/publish",
            json!({"scope": {"kind": "node", "id": site}}),
        )
        .await;
    assert!(status.is_success(), "{answer}");
    let mut reached: Vec<String> = answer["run"]["documents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["kind"] == "device_assignment")
        .map(|d| d["subject"].as_str().unwrap().to_owned())
        .collect();
    reached.sort();
    devices.sort();
    assert_eq!(reached, devices);
}

/// Adds `device` to access group `group` as the admin.
async fn add_device_member(hub: &TestHub, group: &str, device: &str) -> (StatusCode, Value) {
    let path = format!("/api/v1/access-groups/{group}/members");
    let body = json!({"member": {"type": "device", "device_id": device}});
    hub.post(&hub.admin, &path, body).await
}

/// X3, T2, L4, S7 (issue 20): a device's node is read from its record and
/// its one attachment entry, among devices attached without a record (as
/// tests and the fleet fixture attach them, still found by a scan): a
/// paired device moved to another site joins groups there, is refused at
/// the old one, fetches by its new node chain, and once deleted is found
/// nowhere.
#[tokio::test]
async fn x3_t2_l4_a_device_is_found_at_its_node_by_its_record() {
    use signet_common::digest::Sha256;
    use signet_common::ids::NodeId;
    use signet_hub::access_groups::device_may_fetch;
    use signet_hub::tenancy::node_of_device;

    let hub = TestHub::start().await;
    let tenant = hub.node(&hub.admin, &hub.root, "Tenant").await;
    let a = hub.node(&hub.admin, &tenant, "Site A").await;
    let b = hub.node(&hub.admin, &tenant, "Site B").await;
    let mut batch = signet_hub::store::WriteBatch::new();
    for i in 0..50 {
        batch
            .put(NODE_DEVICES, &format!("{a}/d-bare-{i}"), &json!({}))
            .unwrap();
    }
    hub.state.store.apply(batch).await.unwrap();
    let (device, _) = hub.pair_device(&a, 47).await;
    let id = DeviceId::from(device.as_str());
    let store = &hub.state.store;
    let node_of = |d: &DeviceId| node_of_device(store, d).unwrap();
    assert_eq!(node_of(&id), Some(NodeId::from(a.as_str())));
    let (status, item) = hub
        .upload(&hub.admin, &a, "Open at A", support::png(2000, 47))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{item}");
    let sha: Sha256 = item["sha256"].as_str().unwrap().parse().unwrap();
    let now = hub.state.clock.now();
    assert!(device_may_fetch(store, &id, &sha, now).unwrap());

    let (status, moved) = hub
        .patch(
            &hub.admin,
            &format!("/api/v1/devices/{device}"),
            json!({"node": b}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(node_of(&id), Some(NodeId::from(b.as_str())));
    assert!(
        !device_may_fetch(store, &id, &sha, now).unwrap(),
        "site A's content is off site B's node chain"
    );
    let at_a = hub.news_group(&a, "At A").await;
    let at_b = hub.news_group(&b, "At B").await;
    assert_error(
        &add_device_member(&hub, &at_a, &device).await,
        StatusCode::BAD_REQUEST,
        "device_outside_group",
    );
    let joined = add_device_member(&hub, &at_b, &device).await;
    assert_eq!(joined.0, StatusCode::CREATED, "{}", joined.1);
    // A device attached without a record is found by the scan.
    let bare = add_device_member(&hub, &at_a, "d-bare-7").await;
    assert_eq!(bare.0, StatusCode::CREATED, "{}", bare.1);
    assert_eq!(
        node_of(&DeviceId::from("d-bare-7")),
        Some(NodeId::from(a.as_str()))
    );
    assert_eq!(node_of(&DeviceId::from("d-nowhere")), None);

    let (status, answer) = hub
        .delete(&hub.admin, &format!("/api/v1/devices/{device}"))
        .await;
    assert!(status.is_success(), "{answer}");
    assert_eq!(node_of(&id), None);
    let other = hub.news_group(&b, "Also at B").await;
    assert_error(
        &add_device_member(&hub, &other, &device).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}
