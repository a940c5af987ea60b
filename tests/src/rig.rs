//! The end-to-end rig: a `signet-hub serve` in a temp dir, on its own
//! broker or on an external mosquitto whose dynamic security it
//! administers (O3); a site playing one image all day (a node, an item, a
//! playlist, a schedule), published; agents paired against it.
//!
//! Owns: building the rig and its drop order (hub, then broker, then
//! dir), the hub's environment for an external broker, and reading a
//! retained message back from that broker. Must not: decide when a site is
//! published or an agent runs (a suite orders those as its requirement
//! needs), nor assert on what the hub or agents do: that is each suite's.

use std::path::Path;
use std::time::Duration;

use crate::{Agent, Hub, Mosquitto, MqttProbe};

/// A hub in a temp dir, with the external broker it runs on, if any.
/// Dropped in this order: the hub, the broker, the dir.
pub struct Rig {
    /// The running hub, its admin logged in.
    pub hub: Hub,
    /// The external mosquitto the hub runs on ([`Rig::on`]); `None` when
    /// the hub runs its own broker.
    pub broker: Option<Mosquitto>,
    /// Holds the hub's data, the agents' data and configs, and the images.
    pub dir: tempfile::TempDir,
}

impl Rig {
    /// A hub with its own broker (its default), `env` added.
    ///
    /// # Panics
    /// When the hub does not start.
    pub async fn embedded(env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let hub = Hub::start(dir.path(), env).await;
        Self {
            hub,
            broker: None,
            dir,
        }
    }

    /// A hub on a new mosquitto with the dynamic-security plugin
    /// ([`Mosquitto::start`]), which it administers (O3); `env` added.
    ///
    /// # Panics
    /// When the broker or the hub does not start.
    pub async fn external(env: &[(&str, &str)]) -> Self {
        Self::on(Mosquitto::start().await, env).await
    }

    /// A hub on `broker`, `env` added: with the broker's admin account
    /// and dynamic security when it runs the plugin ([`Mosquitto::start`]),
    /// with neither on an open broker ([`Mosquitto::open`]).
    ///
    /// # Panics
    /// When the hub does not start.
    pub async fn on(broker: Mosquitto, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let url = broker.url();
        let mut all = vec![
            ("SIGNET_HUB_MQTT__EMBEDDED", "false"),
            ("SIGNET_HUB_MQTT__URL", url.as_str()),
        ];
        if broker.managed {
            all.extend([
                ("SIGNET_HUB_MQTT__USERNAME", broker.admin_user.as_str()),
                ("SIGNET_HUB_MQTT__PASSWORD", broker.admin_password.as_str()),
                ("SIGNET_HUB_MQTT__DYNSEC", "true"),
            ]);
        }
        all.extend_from_slice(env);
        let hub = Hub::start(dir.path(), &all).await;
        Self {
            hub,
            broker: Some(broker),
            dir,
        }
    }

    /// The temp dir.
    #[must_use]
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The external broker.
    ///
    /// # Panics
    /// When the hub runs its own.
    #[must_use]
    pub fn broker(&self) -> &Mosquitto {
        self.broker.as_ref().expect("a rig on an external broker")
    }

    /// The external broker, to kill or restart it.
    ///
    /// # Panics
    /// When the hub runs its own.
    pub fn broker_mut(&mut self) -> &mut Mosquitto {
        self.broker.as_mut().expect("a rig on an external broker")
    }

    /// A node `name` under the root with a 64×36 PNG of `rgb` uploaded
    /// there as item `item` and scheduled all day, a second a pass; not
    /// published.
    ///
    /// # Panics
    /// When the hub refuses.
    pub async fn site(&self, name: &str, item: &str, rgb: u32) -> Site {
        let root = self.hub.root().await;
        let node = self.hub.node(&root, name).await;
        let item = self.image(&node, item, rgb).await;
        let all_day = self.hub.schedule_all_day(&node, &item, 1_000).await;
        Site {
            node,
            item,
            playlist: all_day.playlist,
            schedule: all_day.schedule,
        }
    }

    /// Uploads a 64×36 PNG of `rgb` ([`crate::solid_png`]) at `node` as
    /// item `name`; returns the item's id.
    ///
    /// # Panics
    /// When the hub refuses.
    pub async fn image(&self, node: &str, name: &str, rgb: u32) -> String {
        let png = crate::solid_png(self.path(), &format!("{name}.png"), rgb, 64, 36);
        self.hub.upload(node, name, png).await["id"]
            .as_str()
            .expect("an item id")
            .to_owned()
    }

    /// Pairs an agent `name` into `node` with `config` added to its config
    /// file ([`Agent::pair`]); not started.
    ///
    /// # Panics
    /// When pairing fails.
    pub async fn pair(&self, name: &str, node: &str, config: &str) -> Agent {
        Agent::pair(&self.hub, self.path(), name, node, config).await
    }

    /// The retained message on `topic` of the external broker, as a fresh
    /// subscriber with the broker's admin account gets it within `limit`.
    ///
    /// # Panics
    /// When the hub runs its own broker, or none comes in time.
    pub async fn retained(&self, topic: &str, limit: Duration) -> Vec<u8> {
        let broker = self.broker();
        let probe = MqttProbe::connect(
            broker.addr,
            &format!("probe-{}", chrono::Utc::now().timestamp_micros()),
            &broker.admin_user,
            &broker.admin_password,
        );
        probe
            .client
            .subscribe(topic, rumqttc::QoS::AtLeastOnce)
            .await
            .expect("subscribe the probe");
        probe.message_on(topic, limit).await
    }
}

/// A node playing one item all day ([`Rig::site`]).
#[derive(Debug, Clone)]
pub struct Site {
    /// The node's id.
    pub node: String,
    /// The item's id.
    pub item: String,
    /// The all-day playlist's id.
    pub playlist: String,
    /// The schedule's id (its one entry is `all-day`).
    pub schedule: String,
}

impl Site {
    /// Publishes the node (`POST /api/v1/publish`).
    ///
    /// # Panics
    /// When the hub refuses.
    pub async fn publish(&self, hub: &Hub) {
        hub.post(
            "/api/v1/publish",
            serde_json::json!({"scope": {"kind": "node", "id": self.node}}),
        )
        .await;
    }
}
