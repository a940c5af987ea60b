//! S7, O3 (issue 21): the hub answers a clustered broker's HTTP
//! authentication and authorization hooks (EMQX's `http` authenticator and
//! authorizer) from its store, over HTTP, with the broker's bearer token;
//! and what it allows a device and the hub's own user to subscribe to is
//! exactly what the managed broker (a real mosquitto with the hub's
//! dynamic-security rights) allows them.
#![allow(clippy::unwrap_used)]

mod support;

use reqwest::StatusCode;
use rumqttc::SubscribeReasonCode;
use serde_json::{Value, json};
use signet_common::ids::DeviceId;
use signet_hub::mqtt::admin::BrokerAdmin;
use signet_hub::mqtt::dynsec::DynsecAdmin;
use support::TestHub;
use support::mosquitto::Mosquitto;
use support::session::Session;

const TOKEN: &str = "broker-hook-token-0123456789abcdef0123456789";
const HUB_USER: &str = "signet-hub";
const HUB_PASSWORD: &str = "hub password";

async fn hub() -> TestHub {
    TestHub::start_with(|config| {
        config.mqtt.auth_hook_token = Some(TOKEN.to_owned());
        config.mqtt.username = Some(HUB_USER.to_owned());
        config.mqtt.password = Some(HUB_PASSWORD.to_owned());
    })
    .await
}

/// Calls hook `which` as the broker would (`token`: its bearer token).
async fn ask(hub: &TestHub, which: &str, token: Option<&str>, body: &Value) -> (StatusCode, Value) {
    let mut request = hub
        .client
        .post(format!("{}/api/v1/broker/{which}", hub.base))
        .json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

/// The verdict of hook `which` for `body`.
async fn verdict(hub: &TestHub, which: &str, body: Value) -> String {
    let (status, answer) = ask(hub, which, Some(TOKEN), &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["is_superuser"], false, "{answer}");
    answer["result"].as_str().unwrap().to_owned()
}

async fn login(hub: &TestHub, user: &str, password: &str, client: &str) -> String {
    let body = json!({"username": user, "password": password, "clientid": client});
    verdict(hub, "authenticate", body).await
}

async fn may(hub: &TestHub, user: &str, client: &str, action: &str, topic: &str) -> String {
    let body = json!({"username": user, "clientid": client, "action": action, "topic": topic});
    verdict(hub, "authorize", body).await
}

/// S7, O3: without `mqtt.auth_hook_token` the hooks do not exist; with it,
/// only the broker's token is answered, and a malformed question is a
/// clear JSON error.
#[tokio::test]
async fn s7_o3_the_hooks_answer_only_the_broker() {
    let login = json!({"username": "d-x", "password": "p", "clientid": "d-x"});
    let off = TestHub::start().await;
    let (status, body) = ask(&off, "authenticate", Some(TOKEN), &login).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );

    let hub = hub().await;
    for token in [None, Some("wrong"), Some(&TOKEN[1..])] {
        for which in ["authenticate", "authorize"] {
            let (status, body) = ask(&hub, which, token, &login).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{which} {token:?}: {body}"
            );
            assert_eq!(body["error"], "unauthorized");
        }
    }
    let (status, body) = ask(&hub, "authorize", Some(TOKEN), &json!({"username": "d-x"})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_body"))
    );
    let question = json!({"username": "d-x", "clientid": "d-x", "action": "delete", "topic": "t"});
    let (status, _) = ask(&hub, "authorize", Some(TOKEN), &question).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// S7: a paired device logs in with its secret under its own id as user
/// name and client id only; the hub's user with `mqtt.password`; a user the
/// hub does not know is left to the broker's next source.
#[tokio::test]
async fn s7_o3_a_device_logs_in_as_itself_with_its_secret() {
    let hub = hub().await;
    let site = hub.node(&hub.admin, &hub.root, "Site").await;
    let (device, secret) = hub.pair_device(&site, 1).await;
    let (other, other_secret) = hub.pair_device(&site, 2).await;

    assert_eq!(login(&hub, &device, &secret, &device).await, "allow");
    assert_eq!(
        login(&hub, &device, "not the secret", &device).await,
        "deny"
    );
    assert_eq!(login(&hub, &device, &other_secret, &device).await, "deny");
    assert_eq!(
        login(&hub, &device, &secret, &other).await,
        "deny",
        "another client id"
    );
    assert_eq!(
        login(&hub, &device, &"x".repeat(300), &device).await,
        "deny"
    );
    assert_eq!(
        login(&hub, HUB_USER, HUB_PASSWORD, "any-hub-client").await,
        "allow"
    );
    assert_eq!(
        login(&hub, HUB_USER, "guess", "any-hub-client").await,
        "deny"
    );
    assert_eq!(login(&hub, "d-unknown", "p", "d-unknown").await, "ignore");

    // Unpaired: no longer a device.
    let (status, body) = hub
        .delete(&hub.admin, &format!("/api/v1/devices/{other}"))
        .await;
    assert!(status.is_success(), "{body}");
    assert_eq!(login(&hub, &other, &other_secret, &other).await, "ignore");
}

/// S7, O3: what the hook lets a device and the hub's user subscribe to is
/// what a real mosquitto given the hub's rights for the same groups lets
/// them; a device publishes only its own state and events, the hub on
/// Signet's topics; a client the hub does not know gets nothing of
/// Signet's, and membership changes show in the next answer.
#[tokio::test]
async fn s7_o3_the_hook_gives_exactly_the_managed_brokers_rights() {
    let hub = hub().await;
    let site = hub.node(&hub.admin, &hub.root, "Site").await;
    let (device, secret) = hub.pair_device(&site, 1).await;
    let (other, _) = hub.pair_device(&site, 2).await;
    let mut groups = Vec::new();
    for name in ["Member", "Not member"] {
        let license =
            json!({"allow_offline": false, "offline_grace_secs": 0, "allow_export": false});
        let (status, group) = hub
            .post(
                &hub.admin,
                "/api/v1/access-groups",
                json!({"node": site, "name": name, "license": license}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{group}");
        groups.push(group["id"].as_str().unwrap().to_owned());
    }
    let (member_of, not_member_of) = (&groups[0], &groups[1]);
    let member = json!({"member": {"type": "device", "device_id": device}});
    let path = format!("/api/v1/access-groups/{member_of}/members");
    let (status, body) = hub.post(&hub.admin, &path, member).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // The managed broker's view of the same device and groups.
    let record = signet_hub::devices::device(&hub.state.store, &device)
        .unwrap()
        .unwrap();
    let follows = signet_hub::devices::broker_groups(&hub.state.store, &record).unwrap();
    assert!(
        follows.contains(member_of) && follows.contains(&site),
        "{follows:?}"
    );
    let broker = Mosquitto::start().await;
    let admin = DynsecAdmin::connect(broker.admin_settings()).unwrap();
    admin.bootstrap(HUB_USER, Some(HUB_PASSWORD)).await.unwrap();
    admin
        .grant(&DeviceId::from(device.as_str()), Some(&secret), &follows)
        .await
        .unwrap();

    let t = |rest: &str| format!("signet/v1/{rest}");
    let device_filters = [
        t(&format!("devices/{device}/assignment")),
        t(&format!("devices/{device}/commands")),
        t(&format!("devices/{device}/state")),
        t(&format!("devices/{device}/+")),
        t(&format!("devices/{other}/assignment")),
        t("hub/time"),
        t("trust"),
        t(&format!("groups/{member_of}/manifest")),
        t(&format!("groups/{site}/manifest")),
        t(&format!("groups/{}/manifest", hub.root)),
        t(&format!("groups/{not_member_of}/manifest")),
        t("groups/+/manifest"),
        t("#"),
        "#".to_owned(),
        "elsewhere/topic".to_owned(),
    ];
    let hub_filters = [
        t("devices/+/state"),
        t("devices/+/events"),
        format!("$share/signet-hub/{}", t("devices/+/events")),
        t("groups/+/manifest"),
        t("devices/+/assignment"),
        t("trust"),
        t("hub/time"),
        t("devices/+/+"),
        t("#"),
        "#".to_owned(),
    ];
    for (user, password, client, filters) in [
        (
            device.as_str(),
            secret.as_str(),
            device.clone(),
            &device_filters[..],
        ),
        (
            HUB_USER,
            HUB_PASSWORD,
            "hub-check".to_owned(),
            &hub_filters[..],
        ),
    ] {
        let mut session = Session::connect(broker.addr.port(), &client, Some((user, password)))
            .await
            .unwrap();
        for filter in filters {
            let on_broker = match session.subscribe(filter).await {
                SubscribeReasonCode::Failure => "deny",
                SubscribeReasonCode::Success(_) => "allow",
            };
            let answer = may(&hub, user, &client, "subscribe", filter).await;
            assert_eq!(answer, on_broker, "{user} subscribing to {filter}");
        }
    }

    for (user, client, topic, expected) in [
        (
            device.as_str(),
            device.as_str(),
            t(&format!("devices/{device}/state")),
            "allow",
        ),
        (
            device.as_str(),
            device.as_str(),
            t(&format!("devices/{device}/events")),
            "allow",
        ),
        (
            device.as_str(),
            device.as_str(),
            t(&format!("devices/{other}/state")),
            "deny",
        ),
        (
            device.as_str(),
            device.as_str(),
            t(&format!("groups/{member_of}/manifest")),
            "deny",
        ),
        (
            device.as_str(),
            device.as_str(),
            t(&format!("devices/{device}/+")),
            "deny",
        ),
        (
            device.as_str(),
            other.as_str(),
            t(&format!("devices/{device}/state")),
            "deny",
        ),
        (
            HUB_USER,
            "hub-1",
            t(&format!("groups/{member_of}/manifest")),
            "allow",
        ),
        (
            HUB_USER,
            "hub-1",
            t(&format!("devices/{device}/commands")),
            "allow",
        ),
        (HUB_USER, "hub-1", "elsewhere/topic".to_owned(), "deny"),
        ("stranger", "stranger", t("trust"), "deny"),
        (
            "stranger",
            "stranger",
            "elsewhere/topic".to_owned(),
            "ignore",
        ),
    ] {
        assert_eq!(
            may(&hub, user, client, "publish", &topic).await,
            expected,
            "{user} publishing on {topic}"
        );
    }
    assert_eq!(
        may(&hub, "stranger", "stranger", "subscribe", &t("trust")).await,
        "deny"
    );
    assert_eq!(
        may(&hub, "stranger", "stranger", "subscribe", "#").await,
        "deny"
    );
    // Shared or not, Signet's topics are not a stranger's.
    for filter in [
        format!("$share/any/{}", t("trust")),
        "$share/any/#".to_owned(),
    ] {
        assert_eq!(
            may(&hub, "stranger", "stranger", "subscribe", &filter).await,
            "deny"
        );
    }
    let elsewhere = may(
        &hub,
        "stranger",
        "stranger",
        "subscribe",
        "$share/any/elsewhere/t",
    )
    .await;
    assert_eq!(elsewhere, "ignore");

    // Leaving the group takes its manifest away at the next question.
    let manifest = t(&format!("groups/{member_of}/manifest"));
    assert_eq!(
        may(&hub, &device, &device, "subscribe", &manifest).await,
        "allow"
    );
    let (status, body) = hub
        .delete(
            &hub.admin,
            &format!("/api/v1/access-groups/{member_of}/members/device/{device}"),
        )
        .await;
    assert!(status.is_success(), "{body}");
    assert_eq!(
        may(&hub, &device, &device, "subscribe", &manifest).await,
        "deny"
    );
}
