//! The embedded MQTT broker (DESIGN §1, O2): rumqttd inside the hub
//! process, so one `signet-hub serve` is a working system. Production
//! deployments use an external broker instead (O3).
//!
//! Owns: starting rumqttd on [`crate::config::Config::broker_listen`] (MQTT
//! 3.1.1, plain TCP; loopback by default) and authenticating every client
//! that connects:
//! - the hub's own client, user name [`HUB_USERNAME`], with a
//!   [`HubCredential`]: 32 random bytes made at every start and held only in
//!   memory (nothing to leak from the data directory, nothing to rotate);
//! - devices, through a [`DeviceLogin`] check — in `serve`,
//!   [`crate::devices::broker_login`] against the store.
//!
//! # What rumqttd 0.19 does not do
//! - **No per-client topic ACLs.** Its connection settings offer only
//!   authentication (a static user/password map or an external check called
//!   with client id, user name and password at CONNECT); nothing is called
//!   per publish or subscribe. With the embedded broker a device is
//!   therefore limited by authentication only: an authenticated device could
//!   read other devices' topics and publish on any topic. Every hub → device
//!   document is signed (S1), so it cannot forge one, and the hub refuses a
//!   report whose payload names another device than its topic; but S7's
//!   per-device read restriction holds only on an external mosquitto, which
//!   enforces ACLs through its dynamic-security plugin
//!   ([`super::admin::BrokerAdmin`]).
//! - **No shutdown.** `Broker::start` runs until the process exits; its
//!   threads are not stopped by the hub's shutdown token (the process exit
//!   ends them).
//! - **No persistence.** Retained messages live in memory; the hub
//!   republishes all retained state whenever its client connects (S4).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ring::rand::{SecureRandom as _, SystemRandom};

use super::HUB_USERNAME;
use super::connection::{BrokerConnection, MAX_OUTGOING_PACKET, MqttError};

/// Whether a device's user name and password may connect.
pub type DeviceLogin = Arc<dyn Fn(&str, &str) -> bool + Send + Sync + 'static>;

/// How long [`EmbeddedBroker::start`] waits for the listener.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The hub's own secret on the embedded broker.
#[derive(Clone)]
pub struct HubCredential {
    /// 64 hex digits.
    secret: String,
}

impl HubCredential {
    /// A fresh random credential.
    ///
    /// # Errors
    /// When the system's random source fails.
    pub fn generate() -> Result<Self, MqttError> {
        let mut bytes = [0_u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| MqttError::Broker("the system random source failed".into()))?;
        Ok(Self {
            secret: bytes.iter().map(|b| format!("{b:02x}")).collect(),
        })
    }

    /// Whether `password` is this credential (constant time).
    #[must_use]
    pub fn matches(&self, password: &str) -> bool {
        let (a, b) = (self.secret.as_bytes(), password.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0_u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// The running embedded broker.
pub struct EmbeddedBroker {
    /// Where it listens.
    addr: SocketAddr,
    /// The hub's credential on it.
    credential: HubCredential,
}

impl EmbeddedBroker {
    /// Starts rumqttd on `listen` (port 0: a free port, see
    /// [`EmbeddedBroker::addr`]), authenticating the hub with a fresh
    /// [`HubCredential`] and devices with `devices`, and waits until it
    /// accepts connections.
    ///
    /// # Errors
    /// [`MqttError::Broker`] when `listen` cannot be bound or the broker
    /// does not come up.
    pub fn start(listen: SocketAddr, devices: DeviceLogin) -> Result<Self, MqttError> {
        // rumqttd binds in its own thread and only logs a failure: bind here
        // first so an address in use is a clear error at start, and so port
        // 0 becomes a concrete free port rumqttd then binds.
        let probe = TcpListener::bind(listen)
            .map_err(|e| MqttError::Broker(format!("cannot listen on {listen}: {e}")))?;
        let listen = probe
            .local_addr()
            .map_err(|e| MqttError::Broker(format!("cannot listen on {listen}: {e}")))?;
        drop(probe);
        let credential = HubCredential::generate()?;
        let hub = credential.clone();
        let auth: rumqttd::AuthHandler = Arc::new(move |_client_id, user, password| {
            if user == HUB_USERNAME {
                hub.matches(&password)
            } else {
                devices(&user, &password)
            }
        });
        let config = rumqttd_config(listen, auth);
        let mut broker = rumqttd::Broker::new(config);
        std::thread::Builder::new()
            .name("signet-broker".into())
            .spawn(move || {
                if let Err(e) = broker.start() {
                    tracing::error!(error = %e, "embedded MQTT broker stopped");
                }
            })
            .map_err(|e| MqttError::Broker(format!("cannot start its thread: {e}")))?;
        let connect_to = crate::config::loopback_if_unspecified(listen);
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect_timeout(&connect_to, Duration::from_millis(200)).is_err() {
            if Instant::now() >= deadline {
                return Err(MqttError::Broker(format!(
                    "not accepting connections on {listen} after {START_TIMEOUT:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        tracing::info!(%listen, "embedded MQTT broker listening");
        Ok(Self {
            addr: listen,
            credential,
        })
    }

    /// Where it listens.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How the hub's client connects to it: TCP to its listen address (an
    /// unspecified one becomes loopback), as [`HUB_USERNAME`] with the hub
    /// credential.
    #[must_use]
    pub fn hub_connection(&self, client_id: &str) -> BrokerConnection {
        let addr = crate::config::loopback_if_unspecified(self.addr);
        BrokerConnection {
            host: addr.ip().to_string(),
            port: addr.port(),
            tls: None,
            credentials: Some((HUB_USERNAME.to_owned(), self.credential.secret.clone())),
            client_id: client_id.to_owned(),
        }
    }
}

fn rumqttd_config(listen: SocketAddr, auth: rumqttd::AuthHandler) -> rumqttd::Config {
    let connections = rumqttd::ConnectionSettings {
        connection_timeout_ms: 10_000,
        max_payload_size: MAX_OUTGOING_PACKET,
        max_inflight_count: 100,
        auth: None,
        external_auth: Some(auth),
        dynamic_filters: true,
    };
    let server = rumqttd::ServerSettings {
        name: "signet-v4".into(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections,
    };
    rumqttd::Config {
        id: 0,
        router: rumqttd::RouterConfig {
            max_connections: 10_010,
            max_outgoing_packet_count: 200,
            max_segment_size: 16 * 1024 * 1024,
            max_segment_count: 10,
            ..rumqttd::RouterConfig::default()
        },
        v4: Some([("1".to_owned(), server)].into_iter().collect()),
        ..rumqttd::Config::default()
    }
}
