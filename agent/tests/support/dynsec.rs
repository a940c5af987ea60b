//! Mosquitto's dynamic-security plugin for the agent's tests (S10): its
//! config lines, and a client that sends the plugin commands as its admin
//! and waits for the answers.
#![allow(dead_code, clippy::unwrap_used, clippy::missing_panics_doc)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{Broker, free_port};

/// The dynamic-security plugin.
const PLUGIN: &str = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so";
/// Writes the plugin's initial store with an admin client.
const MOSQUITTO_CTRL: &str = "/usr/bin/mosquitto_ctrl";
/// The admin client.
pub const ADMIN_USER: &str = "admin";
/// Its password.
pub const ADMIN_PASSWORD: &str = "admin password";
const CONTROL: &str = "$CONTROL/dynamic-security/v1";
const RESPONSE: &str = "$CONTROL/dynamic-security/v1/response";

/// The config lines loading the plugin with a fresh store in `dir`.
pub fn config(dir: &Path) -> String {
    let store = dir.join("dynamic-security.json");
    let init = Command::new(MOSQUITTO_CTRL)
        .args(["dynsec", "init"])
        .arg(&store)
        .args([ADMIN_USER, ADMIN_PASSWORD])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(init.status.success(), "{init:?}");
    // `user root`: as root, mosquitto would otherwise drop to `mosquitto`
    // and could not save the store in the temp dir.
    format!(
        "allow_anonymous false\nuser root\nplugin {PLUGIN}\nplugin_opt_config_file {}\n",
        store.display()
    )
}

/// An MQTT session as the plugin's admin.
pub struct Admin {
    client: AsyncClient,
    answers: mpsc::UnboundedReceiver<Value>,
}

impl Admin {
    pub async fn connect(broker: &Broker) -> Self {
        let mut options = MqttOptions::new(
            format!("test-admin-{}", free_port()),
            "127.0.0.1",
            broker.port,
        );
        options.set_credentials(ADMIN_USER, ADMIN_PASSWORD);
        let (client, mut eventloop) = AsyncClient::new(options, 16);
        let (tx, answers) = mpsc::unbounded_channel();
        let (suback_tx, mut suback) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Incoming::SubAck(_))) => {
                        let _ = suback_tx.send(());
                    }
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        if let Ok(answer) = serde_json::from_slice(&p.payload) {
                            let _ = tx.send(answer);
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        client.subscribe(RESPONSE, QoS::AtLeastOnce).await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), suback.recv())
            .await
            .unwrap()
            .unwrap();
        Self { client, answers }
    }

    /// Sends `commands` in one control message; panics on any refusal.
    pub async fn run(&mut self, commands: Vec<Value>) {
        self.client
            .publish(
                CONTROL,
                QoS::AtLeastOnce,
                false,
                serde_json::to_vec(&json!({ "commands": commands })).unwrap(),
            )
            .await
            .unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(10), self.answers.recv())
            .await
            .expect("the plugin answered")
            .unwrap();
        for response in answer["responses"].as_array().unwrap() {
            assert!(response.get("error").is_none(), "{answer}");
        }
    }
}

/// An ACL entry allowing `acltype` on `topic`.
pub fn allow(acltype: &str, topic: &str) -> Value {
    json!({"acltype": acltype, "topic": topic, "allow": true})
}

/// The entries letting a client subscribe to and receive `topic`.
pub fn read(topic: &str) -> [Value; 2] {
    [
        allow("subscribeLiteral", topic),
        allow("publishClientReceive", topic),
    ]
}
