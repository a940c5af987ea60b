//! A group change is one signed message whatever the fleet size (X1–X3,
//! L3, DESIGN §4): setting an access group's items signs and publishes the
//! group's one manifest and neither reads nor re-signs a member's
//! assignment, while a change of what an assignment says (the license's
//! window) still re-signs every member. Publishes are counted through the
//! hub's recording publisher; every document is verified as an agent does.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use signet_common::envelope::DocumentKind;
use signet_common::ids::DeviceId;
use signet_hub::access_groups::MemberRef;
use signet_hub::app::Clock as _;
use signet_hub::publish::{self, SIGNED_DOCUMENTS, assignment_topic, manifest_topic};
use signet_hub::store::WriteBatch;
use signet_hub::tenancy::NODE_DEVICES;
use support::TestHub;
use support::signed::{device_trust, verify_all};

const MEMBERS: [&str; 3] = ["d-1", "d-2", "d-3"];

/// A tenant with an access group, `MEMBERS` attached at a site below it as
/// active members, one more device there that is no member, and the
/// group's first publication (every member's assignment at version 1)
/// taken from the publisher. Returns the tenant and the group.
async fn fleet(hub: &TestHub) -> (String, String) {
    let tenant = hub.node(&hub.admin, &hub.root, "Tenant").await;
    let site = hub.node(&hub.admin, &tenant, "Site").await;
    let group = hub.news_group(&tenant, "Lobby").await;
    let mut batch = WriteBatch::new();
    for device in MEMBERS.iter().chain(&["d-other"]) {
        batch
            .put(NODE_DEVICES, &format!("{site}/{device}"), &json!({}))
            .unwrap();
    }
    for device in MEMBERS {
        let member = MemberRef::Device {
            device_id: DeviceId::from(device),
        };
        support::put_member(&mut batch, hub, &group, member, TimeDelta::hours(1));
    }
    hub.state.store.apply(batch).await.unwrap();
    let (status, answer) = publish_group(hub, &group).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (_, assignments) = verify_all(
        &device_trust(&hub.data),
        &hub.publisher.take(),
        hub.clock.now(),
    );
    assert_eq!(assignments.keys().collect::<Vec<_>>(), MEMBERS);
    (tenant, group)
}

async fn publish_group(hub: &TestHub, group: &str) -> (StatusCode, Value) {
    let scope = json!({"kind": "access_group", "id": group});
    hub.post(&hub.admin, "/api/v1/publish", json!({"scope": scope}))
        .await
}

/// Uploads an image at `node`; its id.
async fn item(hub: &TestHub, node: &str, name: &str, seed: u8) -> String {
    let (status, body) = hub
        .upload(&hub.admin, node, name, support::png(2_000, seed))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

/// `PUT /access-groups/{group}/items`; the answer, which must say the
/// change was published.
async fn set_items(hub: &TestHub, group: &str, items: &[&str]) -> Value {
    let body = hub.set_news_items(group, items).await;
    assert!(body["publication_error"].is_null(), "{body}");
    body
}

fn assignment_version(hub: &TestHub, device: &str) -> u64 {
    publish::latest(&hub.state.store, DocumentKind::DeviceAssignment, device)
        .unwrap()
        .unwrap()
        .version
}

/// X1, L3, DESIGN §4: an items change signs and publishes exactly one
/// document — the group's manifest, verified as an agent verifies it —
/// and no assignment: the run considers none (its record lists the
/// manifest alone), no assignment's version moves, and a member's stored
/// assignment the run cannot even read does not stop it. Its progress
/// record still names every member that receives the manifest (U5).
#[tokio::test]
async fn x1_l3_an_items_change_publishes_one_manifest_and_no_assignment() {
    let hub = TestHub::start().await;
    let (tenant, group) = fleet(&hub).await;
    let poster = item(&hub, &tenant, "Poster", 1).await;

    let saved = set_items(&hub, &group, &[&poster]).await;
    let messages = hub.publisher.take();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0].topic, manifest_topic(&group));
    for device in MEMBERS {
        assert!(
            messages
                .iter()
                .all(|m| m.topic != assignment_topic(&DeviceId::from(device)))
        );
    }
    let (manifests, assignments) = verify_all(&device_trust(&hub.data), &messages, hub.clock.now());
    assert!(assignments.is_empty());
    let manifest = &manifests[&group];
    assert_eq!(manifest.version, 2);
    assert_eq!(manifest.items[0].id.as_str(), poster);
    let run = &saved["publication"];
    assert_eq!(run["trigger"]["type"], "group_items");
    assert_eq!(
        run["documents"],
        json!([{"kind": "group_manifest", "subject": group, "version": 2,
            "sha256": run["documents"][0]["sha256"], "signed": true}])
    );
    for device in MEMBERS {
        assert_eq!(assignment_version(&hub, device), 1, "{device}");
    }
    let id = run["id"].as_str().unwrap();
    let (status, publication) = hub
        .get(&hub.admin, &format!("/api/v1/publications/{id}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{publication}");
    assert_eq!(publication["progress"]["targets"], MEMBERS.len());
    let followed: Vec<&str> = (publication["devices"].as_array().unwrap().iter())
        .map(|d| d["device"].as_str().unwrap())
        .collect();
    assert_eq!(followed, MEMBERS, "members only, not d-other");
    assert_eq!(
        publication["devices"][0]["documents"],
        json!({format!("group_manifest/{group}"): 2})
    );

    // A member's assignment record that no longer decodes would fail any
    // run that reads it; an items change does not read it.
    let mut batch = WriteBatch::new();
    batch
        .put(
            SIGNED_DOCUMENTS,
            "device_assignment/d-3",
            &json!({"unreadable": true}),
        )
        .unwrap();
    hub.state.store.apply(batch).await.unwrap();
    let other = item(&hub, &tenant, "Other", 2).await;
    let saved = set_items(&hub, &group, &[&poster, &other]).await;
    assert_eq!(
        saved["publication"]["documents"].as_array().unwrap().len(),
        1
    );
    let messages = hub.publisher.take();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let (manifests, _) = verify_all(&device_trust(&hub.data), &messages, hub.clock.now());
    assert_eq!(manifests[&group].version, 3);
    assert_eq!(manifests[&group].items.len(), 2);
    // The operator's publish of the group does read every assignment.
    let (status, body) = publish_group(&hub, &group).await;
    assert!(status.is_server_error(), "{status} {body}");
}

/// X1, L1, L2: a license change alters what every member's assignment says
/// (its access window), so publishing the group re-signs exactly the
/// members' assignments, each with the new window and its floor at the
/// group's latest manifest; the device that is no member is untouched.
#[tokio::test]
async fn x1_l2_a_license_change_still_re_signs_every_member() {
    let hub = TestHub::start().await;
    let (tenant, group) = fleet(&hub).await;
    let poster = item(&hub, &tenant, "Poster", 1).await;
    set_items(&hub, &group, &[&poster]).await;
    hub.publisher.take();

    let end: DateTime<Utc> = (hub.clock.now() + TimeDelta::days(30))
        .to_rfc3339()
        .parse()
        .unwrap();
    let (status, body) = hub
        .patch(
            &hub.admin,
            &format!("/api/v1/access-groups/{group}"),
            json!({"license": {"fixed_end": end.to_rfc3339(), "allow_offline": true,
                "offline_grace_secs": 3600, "allow_export": false}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, answer) = publish_group(&hub, &group).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let messages = hub.publisher.take();
    let (manifests, assignments) = verify_all(&device_trust(&hub.data), &messages, hub.clock.now());
    // The manifest carries the license terms too: one new manifest.
    assert_eq!(manifests.len(), 1);
    assert_eq!(manifests[&group].version, 3);
    assert_eq!(
        manifests[&group].license.as_ref().unwrap().fixed_end,
        Some(end)
    );
    assert_eq!(assignments.keys().collect::<Vec<_>>(), MEMBERS);
    for (device, assignment) in &assignments {
        assert_eq!(assignment.version, 2, "{device}");
        assert_eq!(assignment.access_groups[0].group_id.as_str(), group);
        assert_eq!(assignment.access_groups[0].window.ends_at, Some(end));
        assert_eq!(assignment.min_manifest_versions[&group], 3);
    }
    assert!(
        publish::latest(&hub.state.store, DocumentKind::DeviceAssignment, "d-other")
            .unwrap()
            .is_none()
    );
    assert_eq!(messages.len(), 1 + MEMBERS.len());
}
