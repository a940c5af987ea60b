//! The fleet fixture for the console's 10,000-device bench (C3):
//! `signet-hub dev-seed-fleet` seeds fake devices into a test data
//! directory, which a real hub then serves; a data directory with a real
//! device is refused and left as it was.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use reqwest::StatusCode;
use serde_json::{Value, json};
use signet_common::ids::{DeviceId, NodeId, UserId};
use signet_hub::devices::{DEVICES, Device};
use signet_hub::fleet::fixture::{FixtureError, seed};
use signet_hub::store::WriteBatch;
use signet_hub::tenancy::NODE_DEVICES;
use support::TestHub;

async fn summary(hub: &TestHub) -> Value {
    let (status, summary) = hub.get(&hub.admin, "/api/v1/fleet/summary").await;
    assert_eq!(status, StatusCode::OK);
    summary
}

/// C3, U4: seeded devices are paired devices at leaf sites with every
/// kind of state; seeding again replaces them; a store with a real device
/// is refused whole.
#[tokio::test]
async fn c3_fixture_seeds_a_fleet_and_refuses_real_devices() {
    let hub = TestHub::start().await;
    let now = signet_hub::app::Clock::now(&*hub.clock);
    let seeded = seed(&hub.state.store, 250, now).await.unwrap();
    assert_eq!((seeded.devices, seeded.sites, seeded.regions), (250, 3, 1));

    let counts = summary(&hub).await;
    assert_eq!(counts["attached"], 250, "{counts}");
    assert_eq!(counts["online"], seeded.online, "{counts}");
    let online = u64::try_from(seeded.online).unwrap();
    assert!(online > 200 && online < 250, "{counts}");
    assert!(counts["playing"].as_u64().unwrap() > 150, "{counts}");
    assert!(counts["with_errors"].as_u64().unwrap() >= 10, "{counts}");
    let (_, devices) = hub.get(&hub.admin, "/api/v1/devices").await;
    let devices = devices.as_array().unwrap();
    assert_eq!(devices.len(), 250);
    assert!(devices.iter().any(|d| d["name"] == "Screen 00001"));
    let (_, fleet) = hub.get(&hub.admin, "/api/v1/fleet?limit=1000").await;
    let fleet = fleet.as_array().unwrap();
    assert_eq!(fleet.len(), 250);
    let never = fleet
        .iter()
        .filter(|d| d["connection"] == "never_reported")
        .count();
    assert_eq!(never, seeded.never_reported);
    assert!(fleet.iter().any(|d| d["connection"] == "offline"));
    // U4, issue 20: the list is joined from each device's view serialized
    // in the fleet index; it is JSON, and every row equals the device's
    // view read from the store (`GET /api/v1/fleet/{id}`), field for field.
    let response = hub
        .client
        .get(format!("{}/api/v1/fleet?limit=1000", hub.base))
        .bearer_auth(&hub.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "application/json");
    let listed: Vec<Value> = response.json().await.unwrap();
    assert_eq!(listed, *fleet);
    for row in fleet {
        let id = row["device_id"].as_str().unwrap();
        let (status, one) = hub.get(&hub.admin, &format!("/api/v1/fleet/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(one, *row, "{id}");
    }

    // Seeding again replaces the fixture.
    seed(&hub.state.store, 120, now).await.unwrap();
    assert_eq!(summary(&hub).await["attached"], 120);

    // A real device: refused, nothing changed.
    let real = Device {
        id: DeviceId::from("d-0123456789abcdef"),
        name: "Lobby".into(),
        node: NodeId::from(hub.root.as_str()),
        public_key: String::new(),
        os: "Debian 12".into(),
        agent_version: "0.1.0".into(),
        paired_at: now,
        paired_by: UserId::from("u-admin"),
        secret_hash: String::new(),
        last_command_version: 0,
        variables: BTreeMap::new(),
    };
    let mut batch = WriteBatch::new();
    batch.put(DEVICES, real.id.as_str(), &real).unwrap();
    batch
        .put(
            NODE_DEVICES,
            &format!("{}/{}", hub.root, real.id),
            &json!({}),
        )
        .unwrap();
    hub.state.store.apply(batch).await.unwrap();
    let refused = seed(&hub.state.store, 500, now).await;
    assert!(
        matches!(refused, Err(FixtureError::RealDevices { count: 1, .. })),
        "{refused:?}"
    );
    assert_eq!(summary(&hub).await["attached"], 121, "nothing changed");
}

/// C3: the hidden `signet-hub dev-seed-fleet --devices 10000` seeds a test
/// data directory that a real hub then serves: 10,000 devices in the
/// summary and in ten pages of the fleet list. Prints how long seeding and
/// reading took (figures, not assertions). Refuses a directory `init` did
/// not make.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c3_dev_seed_fleet_makes_10000_devices_a_hub_serves() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let bin = env!("CARGO_BIN_EXE_signet-hub");

    let refused = std::process::Command::new(bin)
        .args(["dev-seed-fleet", "--devices", "10"])
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        !refused.status.success(),
        "an uninitialized directory is refused"
    );

    let made = signet_hub::init::init(&data, chrono::Utc::now())
        .await
        .unwrap();
    let started = Instant::now();
    let output = std::process::Command::new(bin)
        .args(["dev-seed-fleet", "--devices", "10000"])
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    let seeding = started.elapsed();
    assert!(output.status.success(), "{output:?}");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        printed.starts_with("seeded 10000 fake devices"),
        "{printed}"
    );

    let config = signet_hub::config::Config {
        data: data.clone(),
        http_listen: "127.0.0.1:0".parse().unwrap(),
        ..signet_hub::config::Config::default()
    };
    let state = signet_hub::serve::open(config, Arc::new(signet_hub::app::SystemClock)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(signet_hub::serve::run(listener, state, async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let login: Value = client
        .post(format!("{base}/api/v1/session"))
        .json(&json!({"name": "admin", "password": made.admin_password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"].as_str().unwrap();
    let get = |path: String| {
        let request = client.get(format!("{base}{path}")).bearer_auth(token);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            response.json::<Value>().await.unwrap()
        }
    };
    let started = Instant::now();
    let counts = get("/api/v1/fleet/summary".into()).await;
    let summary_took = started.elapsed();
    assert_eq!(counts["attached"], 10_000, "{counts}");

    let started = Instant::now();
    let mut listed = 0;
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(after) => format!("/api/v1/fleet?limit=1000&after={after}"),
            None => "/api/v1/fleet?limit=1000".to_owned(),
        };
        let page = get(path).await;
        let page = page.as_array().unwrap();
        if page.is_empty() {
            break;
        }
        listed += page.len();
        after = page.last().unwrap()["device_id"]
            .as_str()
            .map(str::to_owned);
    }
    let list_took = started.elapsed();
    assert_eq!(listed, 10_000);
    eprintln!(
        "10,000-device fixture: seeding {seeding:.2?}; GET /api/v1/fleet/summary {summary_took:.2?}; \
         all of GET /api/v1/fleet in pages of 1000 {list_took:.2?} (debug build)"
    );
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
