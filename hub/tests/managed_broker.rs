//! The hub-managed mosquitto's lifecycle (S10, O1, O2; DESIGN §1): what it
//! writes, what it keeps across starts, how it is supervised, and how it
//! refuses to start without its parts. Real mosquitto processes, killed by
//! their pid.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use signet_common::ids::DeviceId;
use signet_hub::mqtt::admin::BrokerAdmin as _;
use signet_hub::mqtt::broker::{BrokerSettings, ManagedBroker};
use support::mosquitto::{MOSQUITTO, Managed};
use support::session::{Session, refused_as_bad_login};

const WITHIN: Duration = Duration::from_secs(15);

fn settings(dir: &std::path::Path) -> BrokerSettings {
    BrokerSettings {
        dir: dir.join("broker"),
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        hub_client_id: "signet-hub".to_owned(),
        mosquitto: MOSQUITTO.into(),
        plugin: None,
    }
}

fn alive(pid: u32) -> bool {
    std::fs::metadata(format!("/proc/{pid}")).is_ok()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

/// S10: the broker's files: no anonymous clients, one loopback listener,
/// the plugin store readable by the hub alone and holding no plain
/// password; the hub's user works only with the hub's client id.
#[tokio::test]
async fn s10_managed_broker_config_refuses_anonymous_and_keeps_secrets_off_disk() {
    let managed = Managed::start();
    let dir = managed.dir.path().join("broker");
    let config = std::fs::read_to_string(dir.join("mosquitto.conf")).unwrap();
    assert!(config.contains("\nallow_anonymous false\n"), "{config}");
    assert!(
        config.contains(&format!("\nlistener {} 127.0.0.1\n", managed.port())),
        "{config}"
    );
    let store_path = dir.join("dynamic-security.json");
    let mode = std::fs::metadata(&store_path).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "the plugin store is private: {mode:o}");
    let store = std::fs::read_to_string(&store_path).unwrap();
    let hub = managed.broker.hub_connection();
    let (hub_user, hub_password) = hub.credentials.clone().unwrap();
    let admin = managed.broker.admin_settings();
    assert!(!store.contains(&hub_password) && !store.contains(&admin.password));
    let port = managed.port();
    // The hub's credential with the hub's client id only.
    Session::connect(port, &hub.client_id, Some((&hub_user, &hub_password)))
        .await
        .unwrap();
    assert!(refused_as_bad_login(
        Session::connect(port, "not-the-hub", Some((&hub_user, &hub_password))).await
    ));
    assert!(refused_as_bad_login(
        Session::connect(port, "anonymous", None).await
    ));
}

/// O2, S4: a broker that dies is started again on the same port with the
/// same plugin store (a granted device logs in again); dropping the handle
/// kills it.
#[tokio::test]
async fn o2_managed_broker_is_restarted_when_it_dies_and_killed_when_dropped() {
    let managed = Managed::start();
    let device = DeviceId::from("d-1");
    managed
        .admin()
        .grant(&device, Some("secret 1"), &[])
        .await
        .unwrap();
    let port = managed.port();
    Session::connect(port, "d-1", Some(("d-1", "secret 1")))
        .await
        .unwrap();
    let first = managed.broker.pid().unwrap();
    let pid = rustix::process::Pid::from_raw(i32::try_from(first).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the broker was not restarted"
        );
        if managed.broker.restarts() == 1
            && let Some(second) = managed.broker.pid()
            && second != first
            && Session::connect(port, "d-1", Some(("d-1", "secret 1")))
                .await
                .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let second = managed.broker.pid().unwrap();
    drop(managed);
    assert!(!alive(second), "the broker outlived its handle");
}

/// A second start on the same directory keeps every device's credential
/// and access (the hub's own are made afresh), and kills a broker an
/// earlier hub left running.
#[tokio::test]
async fn s7_devices_survive_a_hub_restart_and_a_stale_broker_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let first = ManagedBroker::start(&settings(dir.path())).unwrap();
    let admin = signet_hub::mqtt::dynsec::DynsecAdmin::connect(first.admin_settings()).unwrap();
    admin
        .grant(&DeviceId::from("d-1"), Some("secret 1"), &[])
        .await
        .unwrap();
    drop(admin);
    let port = first.addr().port();
    drop(first);
    // As if a hub had been SIGKILLed on a system without the parent-death
    // signal: its broker, with this directory's config, keeps running.
    let broker_dir = dir.path().join("broker");
    let config = broker_dir.join("mosquitto.conf");
    let mut stale = std::process::Command::new(MOSQUITTO)
        .arg("-c")
        .arg(&config)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::fs::write(
        broker_dir.join("mosquitto.pid"),
        format!("{}\n", stale.id()),
    )
    .unwrap();
    let deadline = std::time::Instant::now() + WITHIN;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the stale broker never listened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = ManagedBroker::start(&settings(dir.path())).unwrap();
    // Killed by the new start (and reaped here, its parent).
    let deadline = std::time::Instant::now() + WITHIN;
    while stale.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the stale broker still runs"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Session::connect(second.addr().port(), "d-1", Some(("d-1", "secret 1")))
        .await
        .unwrap();
}

/// O1: without its binary or plugin, or on an address in use, the broker
/// does not start, and the error names the config key to set.
#[test]
fn o1_a_missing_binary_or_plugin_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut missing_binary = settings(dir.path());
    missing_binary.mosquitto = "/nonexistent/mosquitto".into();
    let error = ManagedBroker::start(&missing_binary)
        .unwrap_err()
        .to_string();
    assert!(error.contains("mqtt.mosquitto"), "{error}");
    let mut missing_plugin = settings(dir.path());
    missing_plugin.plugin = Some("/nonexistent/plugin.so".into());
    let error = ManagedBroker::start(&missing_plugin)
        .unwrap_err()
        .to_string();
    assert!(error.contains("mqtt.dynsec_plugin"), "{error}");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut in_use = settings(dir.path());
    in_use.listen = taken.local_addr().unwrap();
    let error = ManagedBroker::start(&in_use).unwrap_err().to_string();
    assert!(error.contains("broker_listen"), "{error}");
}

/// S7, S10: at start the hub revokes the broker access of a device the
/// store no longer knows (e.g. unpaired while the broker was down) and
/// re-grants the paired ones.
#[tokio::test]
async fn s10_reconcile_revokes_devices_no_longer_paired() {
    let managed = Managed::start();
    let admin = std::sync::Arc::new(managed.admin());
    admin
        .grant(&DeviceId::from("d-gone"), Some("secret gone"), &[])
        .await
        .unwrap();
    let port = managed.port();
    Session::connect(port, "d-gone", Some(("d-gone", "secret gone")))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    signet_hub::init::init(&data, chrono::Utc::now())
        .await
        .unwrap();
    let config = signet_hub::config::Config {
        data,
        ..signet_hub::config::Config::default()
    };
    let mut state =
        signet_hub::serve::open(config, std::sync::Arc::new(signet_hub::app::SystemClock)).unwrap();
    state.broker_admin = admin.clone();
    let failed = signet_hub::devices::reconcile_broker_access(&state)
        .await
        .unwrap();
    assert_eq!(failed, 0);
    assert!(refused_as_bad_login(
        Session::connect(port, "d-gone", Some(("d-gone", "secret gone"))).await
    ));
    assert!(
        signet_hub::mqtt::admin::BrokerAdmin::granted(admin.as_ref())
            .await
            .unwrap()
            .is_empty()
    );
}

/// Upgrade path: a device paired before the broker held credentials (under
/// the embedded broker of before, the hub kept only a hash of its secret)
/// cannot log in to the managed broker until it proves its secret over
/// HTTP; then it can, with its own access (S7, S10).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s7_a_device_paired_before_the_managed_broker_gets_its_password_at_its_next_request() {
    // Paired with no broker administration at all (the old default).
    let hub = support::TestHub::start_with(|config| {
        config.broker_listen = SocketAddr::from(([127, 0, 0, 1], 0));
    })
    .await;
    let (device, secret) = hub.pair_device(&hub.root, 7).await;
    // The same store, now with the managed broker, served on a second port.
    let mut state = hub.state.clone();
    let stop = tokio_util::sync::CancellationToken::new();
    let broker = signet_hub::serve::start_managed_broker(&mut state, stop.child_token())
        .await
        .unwrap()
        .unwrap();
    let port = broker.addr().port();
    assert!(refused_as_bad_login(
        Session::connect(port, &device, Some((&device, &secret))).await
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server_stop = stop.clone();
    let server = tokio::spawn(signet_hub::serve::run(listener, state, async move {
        server_stop.cancelled().await;
    }));
    // Its periodic document fetch, with its own credentials.
    let response = reqwest::Client::new()
        .get(format!("{base}/api/v1/device/documents"))
        .basic_auth(&device, Some(&secret))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let mut session = Session::connect(port, &device, Some((&device, &secret)))
        .await
        .unwrap();
    // Its access: given by the start's reconciliation, which may still be
    // running (a role change ends the session: log in again).
    let manifest = signet_common::sync::manifest_topic(&hub.root);
    let deadline = tokio::time::Instant::now() + WITHIN;
    while !matches!(
        session.subscribe(&manifest).await,
        rumqttc::SubscribeReasonCode::Success(_)
    ) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the device never got its access"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        session = Session::connect(port, &device, Some((&device, &secret)))
            .await
            .unwrap();
    }
    assert_eq!(
        session.subscribe("#").await,
        rumqttc::SubscribeReasonCode::Failure
    );
    // Another device's secret does not work for it.
    assert!(refused_as_bad_login(
        Session::connect(port, &device, Some((&device, "not its secret"))).await
    ));
    stop.cancel();
    server.await.unwrap().unwrap();
    drop(broker);
}
