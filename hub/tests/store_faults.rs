//! Durability (S9) through the storage seam: when the store cannot make a
//! write durable, the API answers 500 with a JSON error and nothing changes.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use reqwest::StatusCode;
use serde_json::{Value, json};
use signet_hub::app::{Hub, SystemClock};
use signet_hub::config::Config;
use signet_hub::identity::LoginThrottle;
use signet_hub::store::{Check, Entry, SledStorage, Storage, Store, StoreError, WriteBatch};
use signet_hub::tenancy::{NODES, Node};

/// Sled, except that commits fail while `fail` is set (a full disk).
struct FailingWrites {
    inner: SledStorage,
    fail: Arc<AtomicBool>,
}

impl Storage for FailingWrites {
    fn get(&self, tree: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(tree, key)
    }

    fn scan(&self, tree: &'static str, prefix: &[u8]) -> Result<Vec<Entry>, StoreError> {
        self.inner.scan(tree, prefix)
    }

    fn commit(&self, checks: &[Check], batch: &WriteBatch) -> Result<(), StoreError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError::Storage(
                "No space left on device (injected)".into(),
            ));
        }
        self.inner.commit(checks, batch)
    }
}

#[tokio::test]
async fn s9_a_write_that_cannot_be_made_durable_is_not_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let made = signet_hub::init::init(&data, chrono::Utc::now())
        .await
        .unwrap();
    let fail = Arc::new(AtomicBool::new(false));
    let storage = FailingWrites {
        inner: SledStorage::open(&data.join("store")).unwrap(),
        fail: fail.clone(),
    };
    let store = Store::new(Arc::new(storage));
    let keys = signet_hub::keys::KeyRing::open(&data).unwrap();
    let state = Hub {
        store: store.clone(),
        config: Arc::new(Config {
            data,
            ..Config::default()
        }),
        throttle: Arc::new(LoginThrottle::new(5, chrono::TimeDelta::minutes(15))),
        hashing: Arc::new(signet_hub::identity::PasswordHashing::new(
            2,
            std::time::Duration::from_secs(2),
        )),
        clock: Arc::new(SystemClock),
        mail_wake: Arc::new(tokio::sync::Notify::new()),
        keys: Arc::new(keys),
        publisher: Arc::new(signet_hub::publish::LogPublisher),
        publish_wake: Arc::new(tokio::sync::Notify::new()),
        broker_admin: Arc::new(signet_hub::mqtt::admin::StoreAuthenticated),
        metrics: Arc::default(),
        fleet_feed: Arc::new(signet_hub::fleet::stream::FleetFeed::new(16)),
        fleet_ingest: Arc::new(signet_hub::fleet::FleetIngest::default()),
        entitlements: Arc::new(signet_hub::access_groups::Entitled),
        replica: Arc::new(signet_hub::app::replica::Replica::new("one".into(), true)),
        store_watch: Arc::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(signet_hub::serve::run(
        listener,
        state,
        std::future::pending(),
    ));
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
    let create = || {
        client
            .post(format!("{base}/api/v1/nodes"))
            .bearer_auth(token)
            .json(&json!({"parent": made.root_node, "name": "Tenant"}))
            .send()
    };

    fail.store(true, Ordering::SeqCst);
    let response = create().await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "internal");
    assert!(
        !body["message"].as_str().unwrap().contains("No space"),
        "causes stay in the log: {body}"
    );
    assert_eq!(
        store.scan::<Node>(NODES, "").unwrap().len(),
        1,
        "only the root: nothing was stored"
    );

    fail.store(false, Ordering::SeqCst);
    assert_eq!(create().await.unwrap().status(), StatusCode::CREATED);
    assert_eq!(store.scan::<Node>(NODES, "").unwrap().len(), 2);
}
