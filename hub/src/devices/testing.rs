//! Test fixtures of the devices module: a hub on a fresh data directory and
//! a broker administrator that refuses while told to.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use signet_common::ids::{DeviceId, NodeId};

use crate::app::{Hub, SystemClock};
use crate::identity::{Actor, USERS, User};
use crate::mqtt::admin::{BrokerAdmin, BrokerAdminError};

/// What the broker was told, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// A grant: device, password, groups.
    Grant(DeviceId, Option<String>, Vec<String>),
    /// A revocation.
    Revoke(DeviceId),
    /// A deleted group's role forgotten.
    RetireGroup(String),
}

/// A broker administrator that records what it applied and refuses
/// everything while `down`.
#[derive(Default)]
pub struct FlakyBroker {
    /// Whether it refuses.
    pub down: AtomicBool,
    /// What it applied.
    pub applied: Mutex<Vec<Call>>,
    /// The groups it holds a role for (retiring one removes it).
    pub roles: Mutex<Vec<String>>,
}

impl FlakyBroker {
    /// One that is down from the start.
    pub fn down() -> Arc<Self> {
        let broker = Self::default();
        broker.down.store(true, Ordering::SeqCst);
        Arc::new(broker)
    }

    /// Brings it up (or down).
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// What it applied so far.
    pub fn applied(&self) -> Vec<Call> {
        self.applied.lock().unwrap().clone()
    }

    fn answer(&self, call: Call) -> Result<(), BrokerAdminError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(BrokerAdminError("connection refused".to_owned()));
        }
        self.applied.lock().unwrap().push(call);
        Ok(())
    }
}

impl BrokerAdmin for FlakyBroker {
    fn grant(
        &self,
        device: &DeviceId,
        password: Option<&str>,
        groups: &[String],
    ) -> BoxFuture<'_, Result<(), BrokerAdminError>> {
        let call = Call::Grant(device.clone(), password.map(str::to_owned), groups.to_vec());
        Box::pin(async move { self.answer(call) })
    }

    fn revoke(&self, device: &DeviceId) -> BoxFuture<'_, Result<(), BrokerAdminError>> {
        let call = Call::Revoke(device.clone());
        Box::pin(async move { self.answer(call) })
    }

    fn retire_group<'a>(&'a self, group: &'a str) -> BoxFuture<'a, Result<(), BrokerAdminError>> {
        let call = Call::RetireGroup(group.to_owned());
        Box::pin(async move {
            self.answer(call)?;
            self.roles.lock().unwrap().retain(|held| held != group);
            Ok(())
        })
    }

    fn group_roles(&self) -> BoxFuture<'_, Result<Vec<String>, BrokerAdminError>> {
        Box::pin(async move {
            if self.down.load(Ordering::SeqCst) {
                return Err(BrokerAdminError("connection refused".to_owned()));
            }
            Ok(self.roles.lock().unwrap().clone())
        })
    }

    fn granted(&self) -> BoxFuture<'_, Result<Vec<DeviceId>, BrokerAdminError>> {
        Box::pin(async move {
            if self.down.load(Ordering::SeqCst) {
                return Err(BrokerAdminError("connection refused".to_owned()));
            }
            Ok(Vec::new())
        })
    }
}

/// A hub on a fresh data directory (kept by the returned guard), with
/// `broker` as its broker administrator.
pub struct Fixture {
    /// The hub.
    pub hub: Hub,
    /// The root node.
    pub root: NodeId,
    /// The data directory.
    pub dir: tempfile::TempDir,
}

impl Fixture {
    /// A new hub administered through `broker`.
    pub async fn new(broker: Arc<FlakyBroker>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let made = crate::init::init(dir.path(), chrono::Utc::now())
            .await
            .unwrap();
        Self {
            hub: open(dir.path(), broker),
            root: made.root_node,
            dir,
        }
    }

    /// The hub again on the same data directory, as after a restart
    /// (drop every other handle on the old one first).
    pub fn restart(self, broker: Arc<FlakyBroker>) -> Self {
        let Self { hub, root, dir } = self;
        drop(hub);
        Self {
            hub: open(dir.path(), broker),
            root,
            dir,
        }
    }

    /// The admin made by `init`, acting from the tests.
    pub fn admin(&self) -> Actor {
        let users: Vec<User> = self.hub.store.scan(USERS, "").unwrap();
        Actor {
            user: users.into_iter().next().unwrap(),
            from: "test".to_owned(),
        }
    }
}

fn open(data: &std::path::Path, broker: Arc<FlakyBroker>) -> Hub {
    let config = crate::config::Config {
        data: data.to_path_buf(),
        ..crate::config::Config::default()
    };
    let mut hub = crate::serve::open(config, Arc::new(SystemClock)).unwrap();
    hub.broker_admin = broker;
    hub
}

/// A pairing request body for the key made of `seed`.
pub fn pairing_request(seed: u8) -> Vec<u8> {
    use base64::Engine as _;
    serde_json::to_vec(&serde_json::json!({
        "public_key": base64::engine::general_purpose::STANDARD.encode([seed; 32]),
        "agent_version": "0.1.0",
        "os": "Raspberry Pi OS 12 (aarch64)",
    }))
    .unwrap()
}
