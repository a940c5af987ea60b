//! The sync core end to end: the real `signet-agent run` against a real
//! mosquitto, fed documents signed the way the hub signs them (S1, S3, S4,
//! S5, S6, S9, U4).
#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;

use chrono::{TimeDelta, Utc};
use signet_common::documents::CommandAction;
use signet_common::sync::signed::verify_report;
use signet_common::sync::{DeviceState, assignment_topic, commands_topic};
use support::{
    Agent, Broker, DEVICE, Hub, Keys, device, device_public_key, new_key, paired_dir,
    publish_world, version,
};

const SITE: &str = "group_manifest/n-site";
const ROOT: &str = "group_manifest/n-root";

/// S4, U4, S1, S3: a paired agent converges from retained messages alone,
/// reports what it applied, and refuses an older manifest and a manifest
/// signed by a key the trust document does not certify, keeping the newer
/// state; a newer manifest is then applied.
#[tokio::test]
async fn s4_u4_s1_s3_retained_state_is_verified_applied_reported_and_rollback_refused() {
    let broker = Broker::start();
    let keys = Keys::new();
    let mut hub = Hub::connect(&broker).await;
    publish_world(&mut hub, &keys, 3).await;
    let data = paired_dir(&keys, &broker.url());
    let agent = Agent::start(data.path());

    let state = hub
        .wait_state("both manifests at v3", |s| {
            s.online && version(s, SITE) == Some(3) && version(s, ROOT) == Some(3)
        })
        .await;
    assert_eq!(state.device_id, device());
    assert_eq!(state.agent_version, env!("CARGO_PKG_VERSION"));
    assert_eq!(
        version(&state, &format!("device_assignment/{DEVICE}")),
        Some(1)
    );
    assert_eq!(version(&state, "trust/trust"), Some(1));
    assert_eq!(version(&state, "hub_time/hub"), Some(1));
    let site_hash = state.applied[SITE].sha256;

    // S3: an older retained manifest is refused; the newer one stays.
    hub.publish_manifest("n-site", keys.manifest("n-site", 2))
        .await;
    let state = hub
        .wait_state("the rollback refusal", |s| {
            s.last_error.as_deref().is_some_and(|e| e.contains("older"))
        })
        .await;
    assert_eq!(version(&state, SITE), Some(3));
    assert_eq!(state.applied[SITE].sha256, site_hash);
    // U4: the refusal is kept by document key, with the version it claimed.
    let refused = &state.refused[SITE];
    assert_eq!(refused.version, Some(2), "{refused:?}");
    assert!(refused.reason.contains("older"), "{refused:?}");

    // S1: a manifest signed by an uncertified key is refused.
    let rogue = new_key();
    hub.publish_manifest("n-site", keys.manifest_by(&rogue, "n-site", 9))
        .await;
    let state = hub
        .wait_state("the unknown-key refusal", |s| {
            s.last_error
                .as_deref()
                .is_some_and(|e| e.contains("not certified"))
        })
        .await;
    assert_eq!(version(&state, SITE), Some(3));
    // What does not verify claims no version.
    assert_eq!(state.refused[SITE].version, None);

    // S1: garbage is refused with a reason and changes nothing.
    hub.publish_manifest("n-site", b"{not json".to_vec()).await;
    let state = hub
        .wait_state("the malformed refusal", |s| {
            s.last_error
                .as_deref()
                .is_some_and(|e| e.contains("malformed"))
        })
        .await;
    assert_eq!(version(&state, SITE), Some(3));

    // `status` while the agent holds the database: the report it keeps.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let out = Command::new(env!("CARGO_BIN_EXE_signet-agent"))
            .arg("status")
            .env("SIGNET_AGENT_DATA_DIR", data.path())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{text}");
        assert!(text.contains("the agent is running"), "{text}");
        if text.contains("n-site: version 3") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "status never showed the playing manifest:\n{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    // A newer manifest is applied.
    hub.publish_manifest("n-site", keys.manifest("n-site", 4))
        .await;
    let state = hub
        .wait_state("n-site at v4", |s| version(s, SITE) == Some(4))
        .await;
    // Accepted again: its refusal is gone.
    assert!(!state.refused.contains_key(SITE), "{:?}", state.refused);
    agent
        .wait_log("refused a document; keeping the last good state")
        .await;
}

/// S5, S9, U4, S11: killing the agent with SIGKILL loses nothing it
/// acknowledged (the state on disk keeps the accepted versions), the
/// broker's last will marks it offline, and a restarted agent reports the
/// same state online; every state message, the will included, is signed by
/// the device key.
#[tokio::test]
async fn s5_s9_u4_sigkill_keeps_accepted_state_and_the_last_will_marks_offline() {
    let broker = Broker::start();
    let keys = Keys::new();
    let mut hub = Hub::connect(&broker).await;
    publish_world(&mut hub, &keys, 5).await;
    let data = paired_dir(&keys, &broker.url());
    let agent = Agent::start(data.path());
    hub.wait_state("v5 applied", |s| s.online && version(s, SITE) == Some(5))
        .await;
    hub.publish_manifest("n-site", keys.manifest("n-site", 6))
        .await;
    hub.wait_state("v6 applied", |s| version(s, SITE) == Some(6))
        .await;

    agent.kill();
    let will = hub.wait_state("the last will", |s| !s.online).await;
    assert_eq!(will.device_id, device());

    // Offline, from the state dir alone.
    let out = Command::new(env!("CARGO_BIN_EXE_signet-agent"))
        .arg("status")
        .env("SIGNET_AGENT_DATA_DIR", data.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(&format!("device: {DEVICE}")), "{text}");
    assert!(text.contains(&format!("{SITE}  version 6")), "{text}");
    assert!(text.contains("within the offline grace"), "{text}");

    // A stale retained copy must not win after the restart either.
    let _agent = Agent::start(data.path());
    let state = hub.wait_state("online again", |s| s.online).await;
    assert_eq!(version(&state, SITE), Some(6));

    // S11: every state message, the last will included, is signed by the
    // device key the agent registered at pairing, and by nothing else.
    let key = device_public_key(data.path());
    assert!(hub.seen_signed.len() >= 4);
    for signed in &hub.seen_signed {
        let verified: DeviceState = verify_report(signed, &device(), &key).unwrap();
        assert_eq!(verified.device_id, device());
        let stranger = new_key().public_key();
        assert!(verify_report::<DeviceState>(signed, &device(), &stranger).is_err());
    }
}

/// S3, S4, S5: while the agent is offline, three manifest versions are
/// published; on reconnect (persistent session: the broker delivers its
/// queue) it applies only the newest and never reports an older one.
#[tokio::test]
async fn s3_s5_offline_backlog_applies_only_the_newest() {
    let broker = Broker::start();
    let keys = Keys::new();
    let mut hub = Hub::connect(&broker).await;
    publish_world(&mut hub, &keys, 1).await;
    let data = paired_dir(&keys, &broker.url());
    let agent = Agent::start(data.path());
    hub.wait_state("v1 applied", |s| s.online && version(s, SITE) == Some(1))
        .await;
    assert_eq!(agent.stop().code(), Some(0), "clean stop on SIGTERM");
    hub.wait_state("offline", |s| !s.online).await;

    for v in 2..=4 {
        hub.publish_manifest("n-site", keys.manifest("n-site", v))
            .await;
    }
    let agent = Agent::start(data.path());
    let start = hub.seen.len();
    hub.wait_state("v4 applied", |s| s.online && version(s, SITE) == Some(4))
        .await;
    for state in &hub.seen[start..] {
        let v = version(state, SITE);
        assert!(
            v == Some(1) || v == Some(4),
            "an intermediate version was applied: {v:?}"
        );
    }
    let log = agent.log_text();
    assert!(log.contains("group_manifest n-site version 4"), "{log}");
    // The broker did deliver the queued older versions (persistent
    // session); they were refused after the newest was held.
    assert!(log.contains("session_present=true"), "{log}");
    assert!(
        log.contains("version 3 is older than the held version 4"),
        "{log}"
    );
    for v in 2..=3 {
        assert!(
            !log.contains(&format!("group_manifest n-site version {v} (")),
            "version {v} was applied:\n{log}"
        );
    }
}

/// S1, S3: commands are verified, must be for this device, unexpired in
/// trusted time, and are refused when replayed (same version, or a nonce
/// seen before), even across a restart.
#[tokio::test]
async fn s1_s3_commands_replays_and_expired_are_refused() {
    let broker = Broker::start();
    let keys = Keys::new();
    let mut hub = Hub::connect(&broker).await;
    publish_world(&mut hub, &keys, 1).await;
    let data = paired_dir(&keys, &broker.url());
    let agent = Agent::start(data.path());
    hub.wait_state("online", |s| s.online && version(s, SITE) == Some(1))
        .await;
    let topic = commands_topic(&device());
    let later = Utc::now() + TimeDelta::minutes(10);

    let resync = keys.command(1, "nonce-a", CommandAction::Resync, later);
    hub.publish(&topic, resync.clone(), false).await;
    agent.wait_log("command resync: subscribing again").await;
    hub.wait_state("command applied", |s| {
        version(s, &format!("command/{DEVICE}")) == Some(1)
    })
    .await;

    hub.publish(&topic, resync.clone(), false).await;
    hub.wait_state("replay refused", |s| {
        s.last_error
            .as_deref()
            .is_some_and(|e| e.contains("version 1 replayed"))
    })
    .await;

    hub.publish(
        &topic,
        keys.command(2, "nonce-a", CommandAction::Screenshot, later),
        false,
    )
    .await;
    hub.wait_state("nonce replay refused", |s| {
        s.last_error
            .as_deref()
            .is_some_and(|e| e.contains("nonce \"nonce-a\" replayed"))
    })
    .await;

    hub.publish(
        &topic,
        keys.command(
            3,
            "nonce-b",
            CommandAction::Screenshot,
            Utc::now() - TimeDelta::minutes(1),
        ),
        false,
    )
    .await;
    hub.wait_state("expired refused", |s| {
        s.last_error
            .as_deref()
            .is_some_and(|e| e.contains("expired"))
    })
    .await;

    hub.publish(
        &topic,
        keys.command(4, "nonce-c", CommandAction::PurgeCache, later),
        false,
    )
    .await;
    agent
        .wait_log("command purge_cache: the content task purges what nothing needs")
        .await;

    // Across a restart the replay is still refused (persisted).
    agent.kill();
    let agent = Agent::start(data.path());
    hub.wait_state("online again", |s| s.online).await;
    hub.publish(&topic, resync, false).await;
    agent.wait_log("replayed").await;
    assert!(
        !agent
            .log_text()
            .contains("command resync: subscribing again")
    );
}

/// S3: an assignment floor above the offered manifest version refuses it;
/// removing a group from the assignment unsubscribes it.
#[tokio::test]
async fn s3_assignment_floors_refuse_lower_manifests() {
    let broker = Broker::start();
    let keys = Keys::new();
    let mut hub = Hub::connect(&broker).await;
    publish_world(&mut hub, &keys, 1).await;
    let data = paired_dir(&keys, &broker.url());
    let agent = Agent::start(data.path());
    hub.wait_state("v1", |s| s.online && version(s, SITE) == Some(1))
        .await;
    hub.publish(
        &assignment_topic(&device()),
        keys.assignment(2, &["n-root", "n-site"], &[("n-site", 5)]),
        true,
    )
    .await;
    hub.wait_state("assignment v2", |s| {
        version(s, &format!("device_assignment/{DEVICE}")) == Some(2)
    })
    .await;
    hub.publish_manifest("n-site", keys.manifest("n-site", 4))
        .await;
    hub.wait_state("below-floor refusal", |s| {
        s.last_error
            .as_deref()
            .is_some_and(|e| e.contains("below the assigned floor 5"))
    })
    .await;
    hub.publish_manifest("n-site", keys.manifest("n-site", 5))
        .await;
    hub.wait_state("v5", |s| version(s, SITE) == Some(5)).await;

    hub.publish(
        &assignment_topic(&device()),
        keys.assignment(3, &["n-root"], &[]),
        true,
    )
    .await;
    let state = hub
        .wait_state("n-site dropped", |s| version(s, SITE).is_none())
        .await;
    assert_eq!(version(&state, ROOT), Some(1));
    agent.wait_log("no longer assigned: unsubscribing").await;
}

/// S10, X1, U4: the broker refuses a group's manifest topic because the
/// device's grant has not landed yet (the hub's outbox grants after the
/// assignment went out). The agent keeps asking with back-off, says so in
/// its state, and once the grant lands it receives the retained manifest
/// and a later publication on that topic, without reconnecting: mosquitto
/// 2.0.11 does not disconnect a client created holding a role when that
/// role's ACLs change, so only the agent's re-subscription brings the
/// topic.
#[tokio::test]
async fn s10_x1_a_refused_subscription_is_retried_until_the_grant_lands() {
    use serde_json::json;
    use signet_common::sync::{
        HUB_TIME_TOPIC, TRUST_TOPIC, events_topic, manifest_topic, state_topic,
    };
    use support::dynsec::{Admin, allow, read};

    let broker = Broker::start_dynsec();
    let mut admin = Admin::connect(&broker).await;
    let deny = [
        "publishClientSend",
        "publishClientReceive",
        "subscribe",
        "unsubscribe",
    ]
    .map(|acl| json!({"acltype": acl, "allow": false}));
    let mut device_acls = Vec::new();
    for topic in [
        TRUST_TOPIC.to_owned(),
        HUB_TIME_TOPIC.to_owned(),
        assignment_topic(&device()),
        commands_topic(&device()),
        manifest_topic("n-root"),
    ] {
        device_acls.extend(read(&topic));
    }
    device_acls.push(allow("publishClientSend", &state_topic(&device())));
    device_acls.push(allow("publishClientSend", &events_topic(&device())));
    admin
        .run(vec![
            json!({"command": "setDefaultACLAccess", "acls": deny}),
            json!({"command": "createRole", "rolename": "hub", "acls": [
                allow("publishClientSend", "signet/v1/#"),
                allow("subscribePattern", "signet/v1/#"),
                allow("publishClientReceive", "signet/v1/#"),
            ]}),
            json!({"command": "createClient", "username": "hub", "password": "hub password",
                "roles": [{"rolename": "hub"}]}),
            // The device may read everything but n-site's manifest yet.
            json!({"command": "createRole", "rolename": DEVICE, "acls": device_acls}),
            json!({"command": "createClient", "username": DEVICE, "password": "device-secret",
                "clientid": DEVICE, "roles": [{"rolename": DEVICE}]}),
        ])
        .await;
    let keys = Keys::new();
    let mut hub = Hub::connect_as(&broker, Some(("hub", "hub password"))).await;
    publish_world(&mut hub, &keys, 1).await;
    let data = paired_dir(&keys, &broker.url());
    let agent = Agent::start(data.path());

    let site_topic = manifest_topic("n-site");
    let state = hub
        .wait_state("n-root applied and n-site's topic refused", |s| {
            version(s, ROOT) == Some(1)
                && s.last_error.as_deref().is_some_and(|e| {
                    e.contains("refused the subscription") && e.contains(&site_topic)
                })
        })
        .await;
    assert_eq!(version(&state, SITE), None, "n-site is not readable yet");
    agent.wait_log("the broker refused the subscription").await;
    // Retried with back-off (100 ms doubling to 1 s here) while refused.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;

    // The grant lands (one control message, as the hub sends it).
    let [subscribe, receive] = read(&site_topic);
    let mut grant = Vec::new();
    for mut acl in [subscribe, receive] {
        acl["command"] = json!("addRoleACL");
        acl["rolename"] = json!(DEVICE);
        grant.push(acl);
    }
    admin.run(grant).await;
    let state = hub
        .wait_state("n-site's retained manifest arrived", |s| {
            version(s, SITE) == Some(1)
        })
        .await;
    assert_eq!(
        agent.log_text().matches("connected to the broker").count(),
        1,
        "the topic came without a reconnect"
    );
    assert!(
        state.last_error.is_none(),
        "the refusal is gone from the state: {:?}",
        state.last_error
    );
    hub.publish_manifest("n-site", keys.manifest("n-site", 2))
        .await;
    hub.wait_state("a later n-site manifest arrived", |s| {
        version(s, SITE) == Some(2)
    })
    .await;
    agent
        .wait_log("the broker now accepts the subscription")
        .await;
    let log = agent.log_text();
    assert_eq!(
        log.matches("the broker refused the subscription (no grant yet)")
            .count(),
        1,
        "logged once per change, not once per retry:\n{log}"
    );
}
