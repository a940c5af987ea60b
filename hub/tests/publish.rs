//! Publishing (U5, L3, S1, S3, S4, P7, T4): signed manifests and
//! assignments, their versions, deferred and daily jobs, the record of who
//! published what, and republishing. Every emitted document is verified the
//! way an agent verifies it: with `signet_common::trust::TrustStore` pinned
//! to `keys/root.pub` after applying `keys/signing.trust`.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{TimeDelta, Timelike as _};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use signet_common::approval::ApprovalState;
use signet_common::envelope::DocumentKind;
use signet_common::ids::DeviceId;
use signet_hub::access_groups::{MEMBERS, Member, MemberRef};
use signet_hub::app::Clock as _;
use signet_hub::config::Config;
use signet_hub::publish::{
    self, Actor, RecordingPublisher, TRUST_TOPIC, manifest_topic, republish_all, run_due,
};
use signet_hub::store::WriteBatch;
use signet_hub::tenancy::NODE_DEVICES;
use support::signed::{device_trust, verify_all};
use support::{ManualClock, TestHub, assert_error};

/// A structurally whole PNG of `len` bytes (S13: uploads are checked).
fn png(len: usize, seed: u8) -> Vec<u8> {
    support::png(len, seed)
}

/// Uploads an image at `node` as the admin; returns the item's JSON.
async fn upload(hub: &TestHub, node: &str, name: &str, seed: u8) -> Value {
    let response = hub
        .client
        .post(format!("{}/api/v1/content", hub.base))
        .query(&[("node", node), ("name", name)])
        .bearer_auth(&hub.admin)
        .body(png(2_000, seed))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.unwrap()
}

/// An access group at `node` with category `news`; returns its id.
async fn access_group(hub: &TestHub, node: &str) -> String {
    let (status, body) = hub
        .post(
            &hub.admin,
            "/api/v1/access-groups",
            json!({"node": node, "name": format!("AG at {node}"), "categories": ["news"],
                "license": {"allow_offline": true, "offline_grace_secs": 3600, "allow_export": false}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

/// Sets the items of an access group (all in category `news`).
async fn set_items(hub: &TestHub, group: &str, items: &[&str]) {
    let items: Vec<Value> = items
        .iter()
        .map(|id| json!({"id": id, "categories": ["news"]}))
        .collect();
    let (status, body) = hub
        .call(
            Method::PUT,
            &format!("/api/v1/access-groups/{group}/items"),
            Some(&hub.admin),
            Some(json!({"items": items})),
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
}

/// A hub whose tokens outlive the days these tests move the clock by.
async fn long_sessions() -> TestHub {
    TestHub::start_with(|config| config.token_ttl_secs = 30 * 86_400).await
}

async fn publish_now(hub: &TestHub, token: &str, scope: Value) -> (StatusCode, Value) {
    hub.post(token, "/api/v1/publish", json!({"scope": scope}))
        .await
}

fn version_of(run: &Value, subject: &str) -> (u64, bool) {
    let document = run["documents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["subject"] == subject)
        .unwrap_or_else(|| panic!("{subject} not in {run}"));
    (
        document["version"].as_u64().unwrap(),
        document["signed"].as_bool().unwrap(),
    )
}

/// Attaches a device under `node` (as pairing will) and makes it an active
/// member of `group`.
async fn attach_device(hub: &TestHub, node: &str, device: &str, group: Option<&str>) {
    let mut batch = WriteBatch::new();
    batch
        .put(NODE_DEVICES, &format!("{node}/{device}"), &json!({}))
        .unwrap();
    if let Some(group) = group {
        support::put_member(
            &mut batch,
            hub,
            group,
            MemberRef::Device {
                device_id: DeviceId::from(device),
            },
            TimeDelta::hours(1),
        );
    }
    hub.state.store.apply(batch).await.unwrap();
}

#[tokio::test]
async fn u5_l3_s1_immediate_publish_signs_manifests_every_agent_verifies() {
    let hub = TestHub::start().await;
    let tenant = hub.node(&hub.admin, &hub.root, "Tenant").await;
    let site = hub.node(&hub.admin, &tenant, "Site").await;
    let group = access_group(&hub, &tenant).await;
    let item = upload(&hub, &tenant, "Poster", 1).await;
    let item_id = item["id"].as_str().unwrap();
    set_items(&hub, &group, &[item_id]).await;

    let (status, answer) =
        publish_now(&hub, &hub.admin, json!({"kind": "node", "id": tenant})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["undelivered"], json!([]));
    let run = &answer["run"];
    for subject in [&tenant, &site] {
        assert_eq!(version_of(run, subject), (1, true));
    }
    // Setting the group's items published it already (L3).
    assert_eq!(version_of(run, &group), (1, false));
    assert_eq!(run["actor"]["name"], "admin");
    assert_eq!(run["trigger"]["type"], "immediate");

    // Retained messages for every group, on the exact contract topics (the
    // group's unchanged manifest, published when its items were set, is
    // sent again byte for byte by the publish: S4).
    let messages = hub.publisher.messages();
    let mut topics: Vec<&str> = messages.iter().map(|m| m.topic.as_str()).collect();
    topics.sort_unstable();
    topics.dedup();
    let mut expected = vec![
        format!("signet/v1/groups/{tenant}/manifest"),
        format!("signet/v1/groups/{site}/manifest"),
        format!("signet/v1/groups/{group}/manifest"),
    ];
    expected.sort();
    assert_eq!(topics, expected);

    let trust = device_trust(&hub.data);
    let (manifests, _) = verify_all(&trust, &messages, hub.clock.now());
    let licensed = &manifests[&group];
    assert_eq!(licensed.version, 1);
    assert!(licensed.license.is_some());
    assert_eq!(licensed.items.len(), 1);
    let listed = &licensed.items[0];
    assert_eq!(listed.id.as_str(), item_id);
    assert_eq!(listed.sha256.to_string(), item["sha256"].as_str().unwrap());
    assert_eq!(listed.size, item["size"].as_u64().unwrap());
    assert_eq!(listed.approval, ApprovalState::Active);
    assert_eq!(listed.approved_hash, Some(listed.sha256));
    assert_eq!(listed.categories, vec!["news".to_owned()]);
    assert_eq!(
        listed.url,
        format!(
            "{}/api/v1/device/content/{}",
            hub.state.config.public_base_url(),
            listed.sha256
        )
    );
    // S3: it expires, after the configured lifetime.
    assert_eq!(
        licensed.expires_at - licensed.issued_at,
        hub.state.config.manifest_lifetime()
    );
    // Nodes carry no license and, with nothing scheduled, no items.
    assert!(manifests[&tenant].license.is_none());
    assert!(manifests[&site].items.is_empty());

    // The stored record is what was sent, byte for byte.
    let stored = publish::latest(&hub.state.store, DocumentKind::GroupManifest, &group)
        .unwrap()
        .unwrap();
    let envelope = publish::envelope_of(&hub.state.store, DocumentKind::GroupManifest, &group)
        .unwrap()
        .unwrap();
    let sent = messages
        .iter()
        .find(|m| m.topic == manifest_topic(&group))
        .unwrap();
    assert_eq!(envelope.as_bytes(), sent.payload.as_slice());
    assert_eq!(
        stored.sha256,
        signet_common::digest::Sha256::of(&sent.payload)
    );
}

#[tokio::test]
async fn s3_versions_strictly_increase_with_a_change_and_not_without() {
    let hub = TestHub::start().await;
    let tenant = hub.node(&hub.admin, &hub.root, "Tenant").await;
    let group = access_group(&hub, &tenant).await;
    let first = upload(&hub, &tenant, "One", 1).await;
    let first_id = first["id"].as_str().unwrap();
    let scope = json!({"kind": "access_group", "id": group});

    let (_, answer) = publish_now(&hub, &hub.admin, scope.clone()).await;
    assert_eq!(version_of(&answer["run"], &group), (1, true));
    let first = hub.publisher.take();
    assert_eq!(first.len(), 1);

    // Unchanged: the version stands, and the stored document is sent again
    // byte for byte (S4: a publish puts back what someone else replaced or
    // cleared on the broker).
    let (status, answer) = publish_now(&hub, &hub.admin, scope.clone()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(version_of(&answer["run"], &group), (1, false));
    assert_eq!(hub.publisher.take(), first);

    // L3: content added to the group is published with the next version
    // at once.
    set_items(&hub, &group, &[first_id]).await;
    let (manifests, _) = verify_all(
        &device_trust(&hub.data),
        &hub.publisher.take(),
        hub.clock.now(),
    );
    assert_eq!(manifests[&group].version, 2);
    assert_eq!(manifests[&group].items.len(), 1);

    // New bytes of a listed item wait for the next publication (U5), which
    // signs the next version with them.
    let response = hub
        .client
        .put(format!("{}/api/v1/content/{first_id}", hub.base))
        .bearer_auth(&hub.admin)
        .body(png(4000, 9))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(hub.publisher.take().is_empty());
    let (_, answer) = publish_now(&hub, &hub.admin, scope.clone()).await;
    assert_eq!(version_of(&answer["run"], &group), (3, true));
    let (manifests, _) = verify_all(
        &device_trust(&hub.data),
        &hub.publisher.take(),
        hub.clock.now(),
    );
    assert_eq!(
        manifests[&group].items[0].sha256,
        signet_common::digest::Sha256::of(&png(4000, 9))
    );

    // L3: content removed is gone from the next version.
    set_items(&hub, &group, &[]).await;
    let (manifests, _) = verify_all(
        &device_trust(&hub.data),
        &hub.publisher.take(),
        hub.clock.now(),
    );
    assert_eq!(manifests[&group].version, 4);
    assert!(manifests[&group].items.is_empty());
}

#[tokio::test]
async fn u5_deferred_publish_runs_exactly_once_when_due() {
    let hub = long_sessions().await;
    let tenant = hub.node(&hub.admin, &hub.root, "Tenant").await;
    let at = hub.clock.now() + TimeDelta::hours(1);
    let (status, job) = hub.publish_node_at(&hub.admin, &tenant, at).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert_eq!(job["state"], "pending");
    let job_id = job["id"].as_str().unwrap().to_owned();

    let report = run_due(&hub.state, hub.clock.now()).await.unwrap();
    assert_eq!(report.jobs_run, 0);
    hub.clock.advance(TimeDelta::minutes(59));
    assert_eq!(
        run_due(&hub.state, hub.clock.now()).await.unwrap().jobs_run,
        0
    );
    assert!(hub.publisher.messages().is_empty());

    hub.clock.advance(TimeDelta::minutes(2));
    let report = run_due(&hub.state, hub.clock.now()).await.unwrap();
    assert_eq!((report.jobs_run, report.jobs_failed), (1, 0));
    let messages = hub.publisher.take();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].topic, manifest_topic(&tenant));
    verify_all(&device_trust(&hub.data), &messages, hub.clock.now());

    // Never again.
    hub.clock.advance(TimeDelta::days(1));
    assert_eq!(
        run_due(&hub.state, hub.clock.now()).await.unwrap().jobs_run,
        0
    );

    // The record: who, when, what.
    let (status, list) = hub.get(&hub.admin, "/api/v1/publications").await;
    assert_eq!(status, StatusCode::OK);
    let runs = list["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{list}");
    assert_eq!(
        runs[0]["trigger"],
        json!({"type": "deferred", "job": job_id})
    );
    assert_eq!(runs[0]["actor"]["name"], "admin");
    assert_eq!(runs[0]["scope"], json!({"kind": "node", "id": tenant}));
    assert_eq!(runs[0]["documents"][0]["kind"], "group_manifest");
    assert_eq!(runs[0]["documents"][0]["subject"], tenant.as_str());
    assert_eq!(runs[0]["documents"][0]["version"], 1);
    let job = list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["id"] == job_id.as_str())
        .unwrap();
    assert_eq!(job["state"], "done");
    assert_eq!(job["runs"], 1);
    // A job that ran cannot be cancelled.
    assert_error(
        &hub.delete(&hub.admin, &format!("/api/v1/publications/{job_id}"))
            .await,
        StatusCode::CONFLICT,
        "job_not_pending",
    );
}

#[tokio::test]
async fn u5_daily_publish_runs_once_per_day_until_cancelled() {
    let hub = long_sessions().await;
    let tenant = hub.node(&hub.admin, &hub.root, "Tenant").await;
    let local = (hub.clock.now() + TimeDelta::hours(2)).with_timezone(&chrono_tz::Asia::Tokyo);
    let time = format!("{:02}:{:02}", local.hour(), local.minute());
    let (status, job) = hub
        .post(
            &hub.admin,
            "/api/v1/publish",
            json!({"scope": {"kind": "node", "id": tenant},
                "when": {"type": "daily", "time": time, "time_zone": "Asia/Tokyo"}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let job_id = job["id"].as_str().unwrap().to_owned();
    let next: chrono::DateTime<chrono::Utc> = job["next_run"].as_str().unwrap().parse().unwrap();
    assert!(next > hub.clock.now() && next <= hub.clock.now() + TimeDelta::hours(2));

    let mut runs = 0;
    for _ in 0..4 {
        runs += run_due(&hub.state, hub.clock.now()).await.unwrap().jobs_run;
        hub.clock.advance(TimeDelta::minutes(45));
    }
    assert_eq!(runs, 1, "once on the first day");
    for _ in 0..32 {
        runs += run_due(&hub.state, hub.clock.now()).await.unwrap().jobs_run;
        hub.clock.advance(TimeDelta::minutes(45));
    }
    assert_eq!(runs, 2, "once more on the next day");
    let (_, list) = hub.get(&hub.admin, "/api/v1/publications").await;
    let daily: Vec<&Value> = list["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["trigger"]["type"] == "daily" && r["trigger"]["job"] == job_id.as_str())
        .collect();
    assert_eq!(daily.len(), 2);

    let (status, cancelled) = hub
        .delete(&hub.admin, &format!("/api/v1/publications/{job_id}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["state"], "cancelled");
    hub.clock.advance(TimeDelta::days(2));
    assert_eq!(
        run_due(&hub.state, hub.clock.now()).await.unwrap().jobs_run,
        0
    );
}

#[tokio::test]
async fn u5_bad_requests_are_refused_and_change_nothing() {
    let hub = TestHub::start().await;
    let tenant = hub.node(&hub.admin, &hub.root, "Tenant").await;
    let scope = json!({"kind": "node", "id": tenant});
    let past = (hub.clock.now() - TimeDelta::minutes(1)).to_rfc3339();
    for (when, code) in [
        (json!({"type": "at", "at": past}), "invalid_when"),
        (
            json!({"type": "daily", "time": "25:00", "time_zone": "UTC"}),
            "invalid_when",
        ),
        (
            json!({"type": "daily", "time": "06:00", "time_zone": "Nowhere/City"}),
            "invalid_when",
        ),
        (json!({"type": "weekly"}), "invalid_body"),
        // A field the timing does not have is refused, for every type.
        (json!({"type": "immediate", "at": past}), "invalid_body"),
        (
            json!({"type": "at", "at": past, "time": "06:00"}),
            "invalid_body",
        ),
    ] {
        let answer = hub
            .post(
                &hub.admin,
                "/api/v1/publish",
                json!({"scope": scope, "when": when}),
            )
            .await;
        assert_error(&answer, StatusCode::BAD_REQUEST, code);
    }
    assert_error(
        &publish_now(
            &hub,
            &hub.admin,
            json!({"kind": "access_group", "id": "ag-nope"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let (_, list) = hub.get(&hub.admin, "/api/v1/publications").await;
    assert_eq!(list, json!({"runs": [], "progress": {}, "jobs": []}));
    assert!(hub.publisher.messages().is_empty());
}

#[tokio::test]
async fn p7_t4_publishing_needs_the_permission_and_the_domain() {
    let hub = TestHub::start().await;
    let a = hub.node(&hub.admin, &hub.root, "Tenant A").await;
    let b = hub.node(&hub.admin, &hub.root, "Tenant B").await;
    let (_, viewer) = hub.user("a-viewer", "viewer", &[&a]).await;
    let (_, contributor) = hub.user("a-contributor", "contributor", &[&a]).await;
    let (_, moderator) = hub.user("a-moderator", "moderator", &[&a]).await;
    let (_, b_moderator) = hub.user("b-moderator", "moderator", &[&b]).await;
    let own = json!({"kind": "node", "id": a});
    for token in [&viewer, &contributor] {
        assert_error(
            &publish_now(&hub, token, own.clone()).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        );
    }
    assert_error(
        &publish_now(&hub, &moderator, json!({"kind": "node", "id": b})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &publish_now(&hub, &moderator, json!({"kind": "node", "id": hub.root})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert!(hub.publisher.messages().is_empty());
    let (status, answer) = publish_now(&hub, &moderator, own).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // Tenant B sees nothing of tenant A's publications; tenant A sees its own.
    let (_, list) = hub.get(&b_moderator, "/api/v1/publications").await;
    assert_eq!(list["runs"], json!([]));
    let (_, list) = hub.get(&viewer, "/api/v1/publications").await;
    assert_eq!(list["runs"].as_array().unwrap().len(), 1);
    assert_eq!(list["runs"][0]["actor"]["name"], "a-moderator");
}

#[tokio::test]
async fn s3_device_assignment_floors_are_the_manifest_versions() {
    let hub = TestHub::start().await;
    let tenant = hub.node(&hub.admin, &hub.root, "Tenant").await;
    let site = hub.node(&hub.admin, &tenant, "Site").await;
    let (status, body) = hub
        .patch(
            &hub.admin,
            &format!("/api/v1/nodes/{tenant}"),
            json!({"time_zone": "Europe/Berlin", "country": "de"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["time_zone"], "Europe/Berlin");
    assert_eq!(body["country"], "DE");
    assert_error(
        &hub.patch(
            &hub.admin,
            &format!("/api/v1/nodes/{site}"),
            json!({"time_zone": "Berlin"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_time_zone",
    );
    let (status, _) = hub
        .patch(
            &hub.admin,
            &format!("/api/v1/nodes/{site}"),
            json!({"region": "Bavaria"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let group = access_group(&hub, &tenant).await;
    let item = upload(&hub, &tenant, "Poster", 1).await;
    set_items(&hub, &group, &[item["id"].as_str().unwrap()]).await;
    attach_device(&hub, &site, "d-1", Some(&group)).await;

    let scope = json!({"kind": "node", "id": tenant});
    let (status, answer) = publish_now(&hub, &hub.admin, scope.clone()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(version_of(&answer["run"], "d-1"), (1, true));
    let (manifests, assignments) = verify_all(
        &device_trust(&hub.data),
        &hub.publisher.take(),
        hub.clock.now(),
    );
    let assignment = &assignments["d-1"];
    let chain: Vec<&str> = assignment.node_chain.iter().map(|n| n.as_str()).collect();
    assert_eq!(chain, vec![hub.root.as_str(), &tenant, &site]);
    assert_eq!(assignment.access_groups.len(), 1);
    assert_eq!(assignment.access_groups[0].group_id.as_str(), group);
    assert_eq!(assignment.time_zone, chrono_tz::Europe::Berlin);
    assert_eq!(assignment.location.country.as_deref(), Some("DE"));
    assert_eq!(assignment.location.region.as_deref(), Some("Bavaria"));
    assert_eq!(
        assignment.offline_grace_secs,
        hub.state.config.device_offline_grace_secs
    );
    // The root was never published (outside the scope): no floor for it.
    let expected: BTreeMap<String, u64> = manifests
        .iter()
        .map(|(id, m)| (id.clone(), m.version))
        .collect();
    assert_eq!(assignment.min_manifest_versions, expected);
    assert_eq!(expected.len(), 3);

    // A group change is one signed manifest (DESIGN §4): setting the items
    // publishes the group's new version alone, and the device's assignment
    // stands with its floor.
    let other = upload(&hub, &tenant, "Other", 2).await;
    set_items(&hub, &group, &[other["id"].as_str().unwrap()]).await;
    let (manifests, assignments) = verify_all(
        &device_trust(&hub.data),
        &hub.publisher.take(),
        hub.clock.now(),
    );
    assert_eq!(manifests[&group].version, 2);
    assert!(assignments.is_empty(), "{assignments:?}");
    let (_, answer) = publish_now(&hub, &hub.admin, scope.clone()).await;
    assert_eq!(version_of(&answer["run"], &group), (2, false));
    assert_eq!(version_of(&answer["run"], &tenant), (1, false));
    assert_eq!(version_of(&answer["run"], "d-1"), (1, false));
    hub.publisher.take();

    // Re-issued for another reason, the assignment raises its floors.
    let (status, _) = hub
        .patch(
            &hub.admin,
            &format!("/api/v1/nodes/{site}"),
            json!({"region": "Upper Bavaria"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, answer) = publish_now(&hub, &hub.admin, scope.clone()).await;
    assert_eq!(version_of(&answer["run"], "d-1"), (2, true));
    let (_, assignments) = verify_all(
        &device_trust(&hub.data),
        &hub.publisher.take(),
        hub.clock.now(),
    );
    assert_eq!(assignments["d-1"].min_manifest_versions[&group], 2);
    assert_eq!(assignments["d-1"].version, 2);

    // Unchanged: neither is re-signed; both are sent again as stored (S4).
    let (_, answer) = publish_now(&hub, &hub.admin, scope).await;
    assert_eq!(version_of(&answer["run"], "d-1"), (2, false));
    let (manifests, assignments) = verify_all(
        &device_trust(&hub.data),
        &hub.publisher.take(),
        hub.clock.now(),
    );
    assert_eq!(assignments["d-1"].version, 2);
    assert_eq!(manifests[&group].version, 2);
}

#[tokio::test]
async fn s4_republish_all_resends_trust_and_every_stored_document() {
    let hub = TestHub::start().await;
    let tenant = hub.node(&hub.admin, &hub.root, "Tenant").await;
    let site = hub.node(&hub.admin, &tenant, "Site").await;
    attach_device(&hub, &site, "d-1", None).await;
    publish_now(&hub, &hub.admin, json!({"kind": "node", "id": tenant})).await;
    let first = hub.publisher.take();
    assert_eq!(first.len(), 3);

    let broker = RecordingPublisher::new();
    let report = republish_all(&hub.state.store, &hub.state.keys.current().trust, &broker)
        .await
        .unwrap();
    assert_eq!((report.sent, report.failed), (4, 0));
    let again = broker.messages();
    assert_eq!(again[0].topic, TRUST_TOPIC);
    assert_eq!(again[0].payload, hub.state.keys.current().trust);
    for message in &first {
        assert!(again.contains(message), "{} not republished", message.topic);
    }
    verify_all(&device_trust(&hub.data), &again, hub.clock.now());

    // A failing transport loses nothing: the documents stay stored.
    broker.fail_with(Some("broker down"));
    let report = republish_all(&hub.state.store, &hub.state.keys.current().trust, &broker)
        .await
        .unwrap();
    assert_eq!((report.sent, report.failed), (0, 4));
}

#[tokio::test]
async fn s3_manifests_are_resigned_before_expiry_and_versions_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let start = chrono::Utc::now();
    signet_hub::init::init(&data, start).await.unwrap();
    let open = |clock: Arc<ManualClock>| {
        let config = Config {
            data: data.clone(),
            ..Config::default()
        };
        let mut state = signet_hub::serve::open(config, clock).unwrap();
        let publisher = Arc::new(RecordingPublisher::new());
        state.publisher = publisher.clone();
        (state, publisher)
    };
    let clock = Arc::new(ManualClock::at(start));
    let (state, publisher) = open(clock.clone());
    let (tree, _) = signet_hub::tenancy::load_tree(&state.store).unwrap();
    let root = signet_hub::groups::GroupRef::Node(tree.root().clone());
    let published = publish::publish(&state, &root, Actor::hub()).await.unwrap();
    assert_eq!(published.run.documents[0].version, 1);
    assert_eq!(publisher.take().len(), 1);

    // Nothing to re-sign until the window before expiry opens (S3).
    let lifetime = state.config.manifest_lifetime();
    let window = state.config.manifest_resign_before();
    clock.advance(lifetime - window - TimeDelta::minutes(1));
    assert_eq!(run_due(&state, clock.now()).await.unwrap().resigned, 0);
    clock.advance(TimeDelta::minutes(2));
    assert_eq!(run_due(&state, clock.now()).await.unwrap().resigned, 1);
    let messages = publisher.take();
    let (manifests, _) = verify_all(&device_trust(&data), &messages, clock.now());
    assert_eq!(manifests[tree.root().as_str()].version, 2);
    assert!(manifests[tree.root().as_str()].expires_at > clock.now() + window);
    assert_eq!(run_due(&state, clock.now()).await.unwrap().resigned, 0);
    drop(state);

    // A real restart: reopen the data directory; the version goes on from 2.
    let (state, publisher) = open(clock.clone());
    let report = republish_all(
        &state.store,
        &state.keys.current().trust,
        publisher.as_ref(),
    )
    .await
    .unwrap();
    assert_eq!(report.sent, 2);
    assert_eq!(publisher.take()[1].payload, messages[0].payload);
    clock.advance(lifetime);
    assert_eq!(run_due(&state, clock.now()).await.unwrap().resigned, 1);
    let (manifests, _) = verify_all(&device_trust(&data), &publisher.take(), clock.now());
    assert_eq!(manifests[tree.root().as_str()].version, 3);
}

#[tokio::test]
async fn u5_p7_a_job_publishes_only_while_its_author_still_may() {
    let hub = long_sessions().await;
    let tenant = hub.node(&hub.admin, &hub.root, "Tenant").await;
    let (moderator_id, moderator) = hub.user("a-moderator", "moderator", &[&tenant]).await;
    let at = hub.clock.now() + TimeDelta::hours(1);
    let (status, job) = hub.publish_node_at(&moderator, &tenant, at).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let (status, body) = hub
        .patch(
            &hub.admin,
            &format!("/api/v1/users/{moderator_id}"),
            json!({"role": "viewer"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    hub.clock.advance(TimeDelta::hours(2));
    let report = run_due(&hub.state, hub.clock.now()).await.unwrap();
    assert_eq!((report.jobs_run, report.jobs_failed), (1, 1));
    assert!(hub.publisher.messages().is_empty());
    let (_, list) = hub.get(&hub.admin, "/api/v1/publications").await;
    let run = &list["runs"][0];
    assert_eq!(run["documents"], json!([]));
    assert!(
        run["error"]
            .as_str()
            .unwrap()
            .contains("publish permission"),
        "{run}"
    );
    assert_eq!(list["jobs"][0]["state"], "failed");
    assert!(
        publish::latest(&hub.state.store, DocumentKind::GroupManifest, &tenant)
            .unwrap()
            .is_none()
    );
}

/// L3: changing an access group's items publishes the group at once (the
/// change reaches member devices at their next sync): the new manifest
/// lists what was added and not what was removed. Items deleted since they
/// were scheduled drop out of the manifest, listed in the run, rather than
/// blocking every other change.
#[tokio::test]
async fn l3_group_item_changes_publish_at_once_and_deleted_items_drop_out() {
    let hub = TestHub::start().await;
    let tenant = hub.node(&hub.admin, &hub.root, "Tenant").await;
    let group = access_group(&hub, &tenant).await;
    let kept = upload(&hub, &tenant, "Kept", 1).await;
    let added = upload(&hub, &tenant, "Added", 2).await;
    let kept_id = kept["id"].as_str().unwrap();
    let added_id = added["id"].as_str().unwrap();
    let trust = device_trust(&hub.data);

    set_items(&hub, &group, &[kept_id]).await;
    let (manifests, _) = verify_all(&trust, &hub.publisher.take(), hub.clock.now());
    let first = &manifests[&group];
    assert_eq!(first.version, 1);
    assert_eq!(first.items.len(), 1);
    assert_eq!(first.items[0].id.as_str(), kept_id);

    set_items(&hub, &group, &[added_id]).await;
    let (manifests, _) = verify_all(&trust, &hub.publisher.take(), hub.clock.now());
    let second = &manifests[&group];
    assert_eq!(second.version, 2);
    let ids: Vec<&str> = second.items.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, [added_id], "removed content is no longer listed");
    let (_, list) = hub.get(&hub.admin, "/api/v1/publications").await;
    assert_eq!(list["runs"][0]["trigger"]["type"], "group_items");
    assert_eq!(list["runs"][0]["actor"]["name"], "admin");

    // Items deleted behind the API's back (the API refuses to delete items
    // in use) drop out: a held one is listed in the run, a scheduled one
    // leaves its entry empty.
    let (status, playlist) = hub
        .post(
            &hub.admin,
            "/api/v1/playlists",
            json!({"node": tenant, "name": "Loop",
                "items": [{"item": kept_id, "duration_ms": 1000}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{playlist}");
    let (status, body) = hub
        .post(
            &hub.admin,
            "/api/v1/schedules",
            json!({"target": {"kind": "access_group", "id": group},
                "entries": [{"id": "all-day", "playlist": playlist["id"], "priority": 0}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mut batch = WriteBatch::new();
    batch.delete(signet_hub::content::CONTENT, kept_id);
    batch.delete(signet_hub::content::CONTENT, added_id);
    hub.state.store.apply(batch).await.unwrap();
    let (status, run) = publish_now(
        &hub,
        &hub.admin,
        json!({"kind": "access_group", "id": group}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!(run["run"]["dropped_items"][0]["item"], added_id, "{run}");
    let (manifests, _) = verify_all(&trust, &hub.publisher.take(), hub.clock.now());
    let third = &manifests[&group];
    assert!(third.version > second.version);
    assert!(third.items.is_empty());
    assert!(third.schedule.entries[0].items.is_empty());
}

/// POSTs a bulk change of `group`'s device members as the admin.
async fn device_members(hub: &TestHub, group: &str, body: Value) -> (StatusCode, Value) {
    hub.post(
        &hub.admin,
        &format!("/api/v1/access-groups/{group}/members/devices"),
        body,
    )
    .await
}

fn device_members_of(hub: &TestHub, group: &str) -> Vec<Member> {
    hub.state.store.scan(MEMBERS, &format!("{group}/")).unwrap()
}

#[tokio::test]
async fn l4_l5_u5_device_members_in_bulk_are_one_change_and_one_publication() {
    let hub = TestHub::start().await;
    let tenant = hub.node(&hub.admin, &hub.root, "Tenant").await;
    let site = hub.node(&hub.admin, &tenant, "Site").await;
    let outside = hub.node(&hub.admin, &hub.root, "Outside").await;
    let (status, body) = hub
        .post(
            &hub.admin,
            "/api/v1/access-groups",
            json!({"node": tenant, "name": "Bulk", "categories": ["news"], "license": {"max_active_devices": 3,
                "allow_offline": true, "offline_grace_secs": 3600, "allow_export": false}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let group = body["id"].as_str().unwrap().to_owned();
    for device in ["d-1", "d-2", "d-3", "d-4"] {
        attach_device(&hub, &site, device, None).await;
    }
    attach_device(&hub, &outside, "d-x", None).await;

    // Any refusal refuses the whole request and stores nothing.
    let refusals = [
        (
            json!({"add": ["d-1", "d-2", "d-3", "d-4"]}),
            StatusCode::CONFLICT,
            "too_many_devices",
        ),
        (
            json!({"add": ["d-1", "d-x"]}),
            StatusCode::BAD_REQUEST,
            "device_outside_group",
        ),
        (
            json!({"add": ["d-1", "nope"]}),
            StatusCode::NOT_FOUND,
            "device_not_found",
        ),
        (
            json!({"add": ["d-1"], "remove": ["d-1"]}),
            StatusCode::BAD_REQUEST,
            "invalid_devices",
        ),
        (json!({}), StatusCode::BAD_REQUEST, "invalid_devices"),
        (
            json!({"add": ["d-1"], "extra": 1}),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
    ];
    for (body, status, code) in refusals {
        assert_error(&device_members(&hub, &group, body).await, status, code);
    }
    assert!(device_members_of(&hub, &group).is_empty());
    assert!(hub.publisher.take().is_empty());

    // Three devices join in one change: one run signs their assignments.
    let (status, saved) = device_members(&hub, &group, json!({"add": ["d-1", "d-2", "d-3"]})).await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(saved["change"]["added"], json!(["d-1", "d-2", "d-3"]));
    assert_eq!(saved["broker_refused"], json!([]));
    let (_, assignments) = verify_all(
        &device_trust(&hub.data),
        &hub.publisher.take(),
        hub.clock.now(),
    );
    assert_eq!(assignments.len(), 3);
    for assignment in assignments.values() {
        assert_eq!(assignment.access_groups[0].group_id.as_str(), group);
    }
    let members = device_members_of(&hub, &group);
    assert_eq!(members.len(), 3);
    assert!(members.iter().all(|m| m.active && m.is_current()));
    let run = saved["publication"].as_str().unwrap();
    let (status, publication) = hub
        .get(&hub.admin, &format!("/api/v1/publications/{run}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{publication}");
    assert_eq!(publication["progress"]["targets"], 3);

    // Asking again changes nothing and publishes nothing.
    let (status, saved) =
        device_members(&hub, &group, json!({"add": ["d-1"], "remove": ["d-4"]})).await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(saved["change"]["unchanged"], json!(["d-1", "d-4"]));
    assert!(saved["publication"].is_null(), "{saved}");
    assert!(hub.publisher.take().is_empty());

    // A group change is one signed manifest, whatever the number of devices
    // (DESIGN §4): no assignment is re-signed.
    let item = upload(&hub, &tenant, "Poster", 1).await;
    set_items(&hub, &group, &[item["id"].as_str().unwrap()]).await;
    let messages = hub.publisher.take();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0].topic, manifest_topic(&group));

    // Two leave in one change: their assignments no longer name the group.
    let (status, saved) = device_members(&hub, &group, json!({"remove": ["d-1", "d-2"]})).await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(saved["change"]["removed"], json!(["d-1", "d-2"]));
    let (_, assignments) = verify_all(
        &device_trust(&hub.data),
        &hub.publisher.take(),
        hub.clock.now(),
    );
    assert_eq!(
        assignments.keys().map(String::as_str).collect::<Vec<_>>(),
        ["d-1", "d-2"]
    );
    assert!(assignments.values().all(|a| a.access_groups.is_empty()));
    let current = device_members_of(&hub, &group)
        .into_iter()
        .filter(Member::is_current)
        .count();
    assert_eq!(current, 1);
    // A freed slot takes a new device.
    let (status, saved) = device_members(&hub, &group, json!({"add": ["d-4", "d-1"]})).await;
    assert_eq!(status, StatusCode::OK, "{saved}");
}

/// Issue 20 (X2, U5, S7): a change of every device's assignment at a node
/// of more devices than one core signs (the run builds, compares and signs
/// them over the cores, on a multi-threaded runtime as the hub runs) re-signs
/// each one exactly once, in the run's order, each verifying as its own
/// device's with the new time zone and its own groups; the run's progress
/// records name every device with its new version; the same publish again
/// signs nothing; a membership change re-signs exactly the devices it
/// touches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x2_u5_s7_a_change_of_every_assignment_re_signs_each_once_over_the_cores() {
    const DEVICES: usize = 150;
    let hub = TestHub::start().await;
    let tenant = hub.node(&hub.admin, &hub.root, "Tenant").await;
    let group = access_group(&hub, &tenant).await;
    let names: Vec<String> = (0..DEVICES).map(|i| format!("d-{i:03}")).collect();
    for (i, device) in names.iter().enumerate() {
        let member = i.is_multiple_of(2).then_some(group.as_str());
        attach_device(&hub, &tenant, device, member).await;
    }
    let scope = json!({"kind": "node", "id": tenant});
    let (status, answer) = publish_now(&hub, &hub.admin, scope.clone()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    for device in &names {
        assert_eq!(version_of(&answer["run"], device), (1, true));
    }
    hub.publisher.take();

    let path = format!("/api/v1/nodes/{tenant}");
    let (status, body) = hub
        .patch(&hub.admin, &path, json!({"time_zone": "Europe/Berlin"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, answer) = publish_now(&hub, &hub.admin, scope.clone()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let order: Vec<&str> = answer["run"]["documents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["kind"] == "device_assignment")
        .map(|d| d["subject"].as_str().unwrap())
        .collect();
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(order, sorted, "the run lists the devices in order");
    assert_eq!(order.len(), DEVICES);
    for device in &names {
        assert_eq!(version_of(&answer["run"], device), (2, true));
    }
    let messages = hub.publisher.take();
    let assignment_messages = messages
        .iter()
        .filter(|m| m.topic.ends_with("/assignment"))
        .count();
    assert_eq!(assignment_messages, DEVICES, "each sent once");
    let (_, assignments) = verify_all(&device_trust(&hub.data), &messages, hub.clock.now());
    assert_eq!(assignments.len(), DEVICES);
    for (i, device) in names.iter().enumerate() {
        let assignment = &assignments[device];
        assert_eq!(assignment.device_id.as_str(), device);
        assert_eq!(assignment.version, 2);
        assert_eq!(assignment.time_zone, chrono_tz::Europe::Berlin);
        let groups: Vec<&str> = assignment
            .access_groups
            .iter()
            .map(|m| m.group_id.as_str())
            .collect();
        let expected: Vec<&str> = if i.is_multiple_of(2) {
            vec![&group]
        } else {
            vec![]
        };
        assert_eq!(groups, expected, "{device}");
    }

    // U5: every device's progress record names its new version.
    let run = answer["run"]["id"].as_str().unwrap();
    let (status, publication) = hub
        .get(&hub.admin, &format!("/api/v1/publications/{run}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{publication}");
    assert_eq!(publication["progress"]["targets"], DEVICES);
    for progress in publication["devices"].as_array().unwrap() {
        let device = progress["device"].as_str().unwrap();
        let key = format!("device_assignment/{device}");
        assert_eq!(progress["documents"][&key], 2, "{progress}");
        let follows_group = !progress["documents"][&format!("group_manifest/{group}")].is_null();
        let index: usize = device[2..].parse().unwrap();
        assert_eq!(follows_group, index.is_multiple_of(2), "{progress}");
    }

    // Nothing changed: nothing signed.
    let (_, answer) = publish_now(&hub, &hub.admin, scope.clone()).await;
    for device in &names {
        assert_eq!(version_of(&answer["run"], device), (2, false));
    }

    // A membership change re-signs exactly the devices it touches.
    for device in names.iter().skip(1).step_by(2) {
        attach_device(&hub, &tenant, device, Some(&group)).await;
    }
    hub.publisher.take();
    let (_, answer) = publish_now(&hub, &hub.admin, scope).await;
    for (i, device) in names.iter().enumerate() {
        let expected = if i.is_multiple_of(2) {
            (2, false)
        } else {
            (3, true)
        };
        assert_eq!(version_of(&answer["run"], device), expected, "{device}");
    }
    let (_, assignments) = verify_all(
        &device_trust(&hub.data),
        &hub.publisher.take(),
        hub.clock.now(),
    );
    // The unchanged ones are sent again as stored (S4).
    assert_eq!(assignments.len(), DEVICES);
    for (i, device) in names.iter().enumerate() {
        let assignment = &assignments[device];
        let version = if i.is_multiple_of(2) { 2 } else { 3 };
        assert_eq!(assignment.version, version, "{device}");
        assert_eq!(assignment.access_groups.len(), 1, "{device}");
        assert_eq!(assignment.time_zone, chrono_tz::Europe::Berlin);
    }
}
