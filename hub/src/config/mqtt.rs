//! The `[mqtt]` section (DESIGN §5, O3): the managed broker or an external
//! one, how the hub reaches it, and what devices are told; and
//! [`BrokerUrl`], the one parser of `mqtt://` and `mqtts://` URLs.
//!
//! Owns: [`MqttConfig`], its defaults and its checks. Must not: connect to
//! anything ([`crate::mqtt`] does).

use std::path::PathBuf;

use serde::Deserialize;

use super::validate::{Refusal, refuse};

/// The `[mqtt]` section: which broker, and how to reach it.
///
/// With `embedded = true` (the default) `serve` starts and supervises a
/// local mosquitto on [`Config::broker_listen`](super::Config::broker_listen)
/// ([`crate::mqtt::broker`]),
/// administers it through its dynamic-security plugin, and connects to it
/// with a credential it makes at start; `url`, `username`, `password` and the TLS files are then
/// refused, because they describe an external broker (O3), which
/// `embedded = false` selects.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// Start the hub-managed broker (mosquitto with dynamic security).
    pub embedded: bool,
    /// The mosquitto binary the managed broker runs.
    pub mosquitto: PathBuf,
    /// The dynamic-security plugin the managed broker loads; unset: found
    /// in `/usr/lib/<multiarch>/` and the other usual places.
    pub dynsec_plugin: Option<PathBuf>,
    /// The external broker, `mqtt://host:port` or `mqtts://host:port`
    /// (port defaults: 1883, 8883). Required when `embedded` is off.
    pub url: Option<String>,
    /// The hub's user name on the external broker.
    pub username: Option<String>,
    /// The hub's password on the external broker (needs `username`).
    pub password: Option<String>,
    /// PEM file of the CA(s) that sign the broker's certificate
    /// (`mqtts://`); when unset, the system bundle
    /// [`SYSTEM_CA_BUNDLE`].
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate for `mqtts://` (needs `client_key_file`).
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of `client_cert_file` (PKCS#8, PKCS#1 or SEC1).
    pub client_key_file: Option<PathBuf>,
    /// The broker URL devices are told at pairing. Default: with the
    /// embedded broker `mqtt://{broker_listen}` (an unspecified address
    /// becomes `127.0.0.1`), else `url`.
    pub device_url: Option<String>,
    /// PEM of the CA devices must trust for an `mqtts://` device URL, handed
    /// to each device at pairing (S7). Default: `ca_file` when the devices
    /// use the hub's own broker URL; unset: devices use their system roots.
    pub device_ca_file: Option<PathBuf>,
    /// The hub's MQTT client id: stable, so its persistent session (S5)
    /// survives restarts. Two hubs on one broker need different ids.
    pub client_id: String,
    /// Administer device credentials and per-device ACLs (S7) on the
    /// external broker through mosquitto's dynamic-security plugin, as
    /// `username`, which must hold the plugin's admin role (see
    /// [`crate::mqtt::dynsec`]). Off: devices are authenticated by the
    /// external broker's own means. (The managed broker is always
    /// administered so.)
    pub dynsec: bool,
    /// Subscribe to device reports through the MQTT shared subscription
    /// `$share/signet-hub/…` (X5, X6), so hub replicas on one external
    /// broker (mosquitto 2, EMQX, …) each get a share of the reports
    /// instead of every report. Needs an external broker (`embedded =
    /// false`): the managed broker is one hub's own.
    pub shared_subscriptions: bool,
    /// The bearer token a clustered broker's HTTP authentication and
    /// authorization hooks send (EMQX's `http` authenticator and
    /// authorizer, `Authorization: Bearer …`). Set: the hub answers them at
    /// `/api/v1/broker/authenticate` and `/api/v1/broker/authorize` from
    /// its store ([`crate::mqtt::hook`]), so a broker the hub does not
    /// administer gives each device exactly the rights the managed one
    /// does (S7, O3). Unset: those routes answer 404.
    pub auth_hook_token: Option<String>,
}

/// The share group replicas subscribe to device reports in.
pub const SHARE_GROUP: &str = "signet-hub";

/// The CA bundle `mqtts://` uses when `ca_file` is unset (Debian and
/// Raspberry Pi OS, O1).
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// The broker binary Debian installs.
pub const DEFAULT_MOSQUITTO: &str = "/usr/sbin/mosquitto";
/// The longest broker URL, in bytes.
pub const MAX_BROKER_URL_LEN: usize = 512;
/// The shortest `auth_hook_token`, in bytes: it is the broker's only
/// credential towards the hub.
pub const MIN_HOOK_TOKEN_LEN: usize = 32;
/// The longest MQTT client id, user name or password, in bytes.
pub const MAX_MQTT_FIELD_LEN: usize = 256;

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            embedded: true,
            mosquitto: PathBuf::from(DEFAULT_MOSQUITTO),
            dynsec_plugin: None,
            url: None,
            username: None,
            password: None,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            device_url: None,
            device_ca_file: None,
            client_id: "signet-hub".to_owned(),
            dynsec: false,
            shared_subscriptions: false,
            auth_hook_token: None,
        }
    }
}

/// A parsed broker URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    /// `mqtts://`.
    pub tls: bool,
    /// Host name or IP address (without IPv6 brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl BrokerUrl {
    /// Parses `mqtt://host[:port]` or `mqtts://host[:port]` (IPv6 hosts in
    /// brackets; no user info, path or query).
    ///
    /// # Errors
    /// A message saying what is wrong.
    pub fn parse(url: &str) -> Result<Self, String> {
        let shape = "must be mqtt://host:port or mqtts://host:port";
        if url.len() > MAX_BROKER_URL_LEN {
            return Err(format!("{shape} of at most {MAX_BROKER_URL_LEN} bytes"));
        }
        let (tls, rest) = if let Some(rest) = url.strip_prefix("mqtts://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("mqtt://") {
            (false, rest)
        } else {
            return Err(shape.to_owned());
        };
        if rest.is_empty()
            || rest
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "/@?#".contains(c))
        {
            return Err(format!("{shape} (no user, path or query)"));
        }
        let default_port = if tls { 8883 } else { 1883 };
        let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
            let (host, after) = bracketed.split_once(']').ok_or(shape)?;
            match after {
                "" => (host, None),
                _ => (host, Some(after.strip_prefix(':').ok_or(shape)?)),
            }
        } else {
            match rest.rsplit_once(':') {
                Some((host, port)) if !host.contains(':') => (host, Some(port)),
                Some(_) => return Err(format!("{shape} (IPv6 hosts in brackets)")),
                None => (rest, None),
            }
        };
        if host.is_empty() {
            return Err(format!("{shape} (the host is missing)"));
        }
        let port = match port {
            None => default_port,
            Some(port) => match port.parse::<u16>() {
                Ok(port) if port > 0 => port,
                _ => return Err(format!("{shape} (the port must be 1 to 65535)")),
            },
        };
        Ok(Self {
            tls,
            host: host.to_owned(),
            port,
        })
    }
}

impl MqttConfig {
    /// The `[mqtt]` keys: the managed broker or an external one, never a
    /// mix; URLs, credentials and TLS files that go together.
    pub(super) fn validate(&self) -> Result<(), Refusal> {
        if self.dynsec && (self.embedded || self.username.is_none() || self.password.is_none()) {
            return Err(refuse(
                "mqtt.dynsec",
                "administers an external mosquitto: it needs mqtt.embedded = false, \
                 mqtt.url, and the admin's mqtt.username and mqtt.password",
            ));
        }
        if self.shared_subscriptions && self.embedded {
            return Err(refuse(
                "mqtt.shared_subscriptions",
                "is for hub replicas on one external broker: it needs mqtt.embedded = false \
                 and mqtt.url (the managed broker is one hub's own)",
            ));
        }
        if self
            .auth_hook_token
            .as_ref()
            .is_some_and(|t| !(MIN_HOOK_TOKEN_LEN..=MAX_MQTT_FIELD_LEN).contains(&t.len()))
        {
            return Err(refuse(
                "mqtt.auth_hook_token",
                format!(
                    "must be {MIN_HOOK_TOKEN_LEN} to {MAX_MQTT_FIELD_LEN} bytes \
                     (e.g. `openssl rand -hex 32`)"
                ),
            ));
        }
        if self.client_id.is_empty()
            || self.client_id.len() > MAX_MQTT_FIELD_LEN
            || self
                .client_id
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(refuse(
                "mqtt.client_id",
                format!("must be 1 to {MAX_MQTT_FIELD_LEN} bytes without spaces"),
            ));
        }
        if self.embedded {
            let external = [
                ("url", self.url.is_some()),
                ("username", self.username.is_some()),
                ("password", self.password.is_some()),
                ("ca_file", self.ca_file.is_some()),
                ("client_cert_file", self.client_cert_file.is_some()),
                ("client_key_file", self.client_key_file.is_some()),
            ];
            if let Some((key, _)) = external.iter().find(|(_, set)| *set) {
                return Err(refuse(
                    format!("mqtt.{key}"),
                    "describes an external broker: set mqtt.embedded = false \
                     to use one (the hub authenticates itself to the embedded broker)",
                ));
            }
        } else {
            let Some(url) = &self.url else {
                return Err(refuse(
                    "mqtt.url",
                    "is required when mqtt.embedded is false (the hub needs a broker)",
                ));
            };
            let parsed = BrokerUrl::parse(url).map_err(|e| refuse("mqtt.url", e))?;
            if !parsed.tls {
                let tls_file = [
                    ("ca_file", self.ca_file.is_some()),
                    ("client_cert_file", self.client_cert_file.is_some()),
                    ("client_key_file", self.client_key_file.is_some()),
                ];
                if let Some((key, _)) = tls_file.iter().find(|(_, set)| *set) {
                    return Err(refuse(format!("mqtt.{key}"), "needs an mqtts:// mqtt.url"));
                }
            }
            if self.client_cert_file.is_some() != self.client_key_file.is_some() {
                let missing = if self.client_cert_file.is_some() {
                    "mqtt.client_key_file"
                } else {
                    "mqtt.client_cert_file"
                };
                return Err(refuse(
                    missing,
                    "is missing: mqtt.client_cert_file and mqtt.client_key_file go together",
                ));
            }
            if self.password.is_some() && self.username.is_none() {
                return Err(refuse("mqtt.password", "needs mqtt.username"));
            }
            for (key, value) in [("username", &self.username), ("password", &self.password)] {
                if value.as_ref().is_some_and(|v| v.len() > MAX_MQTT_FIELD_LEN) {
                    return Err(refuse(
                        format!("mqtt.{key}"),
                        format!("must be at most {MAX_MQTT_FIELD_LEN} bytes"),
                    ));
                }
            }
        }
        if let Some(url) = &self.device_url {
            BrokerUrl::parse(url).map_err(|e| refuse("mqtt.device_url", e))?;
        }
        Ok(())
    }
}
