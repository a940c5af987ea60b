//! The hub's configuration (DESIGN §6): one TOML file, every key also
//! settable as `SIGNET_HUB_<KEY>` (nested keys joined by `__`, e.g.
//! `SIGNET_HUB_SMTP__HOST`).
//!
//! Owns: the [`Config`] struct, its defaults and its validation. Must not:
//! start anything. Unknown keys — in the file or in the environment — are
//! errors, so a typo fails at start instead of silently falling back to a
//! default. Every error names where the value came from (the file, or the
//! `SIGNET_HUB_…` variable), the dotted key and what is wrong (O1).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use signet_common::license::{MAX_DURATION_SECS, MIN_OFFLINE_GRACE_SECS};
use signet_common::sync::MAX_HUB_TIME_INTERVAL_SECS;

/// The prefix of environment overrides.
pub const ENV_PREFIX: &str = "SIGNET_HUB_";
/// The largest config file read, in bytes.
pub const MAX_CONFIG_BYTES: u64 = 256 * 1024;

/// Everything `signet-hub serve` can be told.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the store, keys and content live.
    pub data: PathBuf,
    /// The operator and device HTTP API's listen address.
    pub http_listen: SocketAddr,
    /// The embedded MQTT broker's listen address (loopback by default; used
    /// when [`MqttConfig::embedded`] is on).
    pub broker_listen: SocketAddr,
    /// The MQTT broker the hub publishes to and devices connect to
    /// (DESIGN §5, O3).
    pub mqtt: MqttConfig,
    /// The largest request body the API reads, in bytes.
    pub max_body_bytes: usize,
    /// The largest content upload, in bytes (streamed to disk, never held
    /// in memory).
    pub max_upload_bytes: u64,
    /// How long a login token lasts, in seconds.
    pub token_ttl_secs: u64,
    /// Failed logins for one user name from one source before further
    /// attempts from that source are refused (S12: a stranger locks out
    /// only themselves); past it, every attempt at the name from anywhere is
    /// also delayed, more the more it fails.
    pub login_max_failures: u32,
    /// How long failures count and the refusal lasts, in seconds.
    pub login_lockout_secs: u64,
    // --- Unauthenticated work and connections (S12, S13) ---
    /// How many password hashes (login, signup, invites, password changes)
    /// run at once; each holds about 19 MiB for its duration (S12).
    pub password_hash_concurrency: usize,
    /// How long a request waits for a free hash slot before it is refused
    /// with 503 and `Retry-After`, in milliseconds.
    pub password_hash_wait_ms: u64,
    /// Requests per minute one source may make to the routes that check a
    /// credential or send mail without a login (log in, self-signup and its
    /// confirmation, invite acceptance, device pairing); every other route
    /// without a login gets ten times as many (S12).
    pub rate_limit_per_minute: u32,
    /// How many of those requests one source may make at once before the
    /// per-minute rate applies (the bucket size; ten times as many for the
    /// other routes without a login).
    pub rate_limit_burst: u32,
    /// Reverse proxies in front of the hub: a request from one of these
    /// addresses is attributed to the last address in its
    /// `X-Forwarded-For` header that is not itself a trusted proxy. Empty
    /// (the default): the peer address is the source. In the environment,
    /// a comma-separated list.
    #[serde(deserialize_with = "ip_list")]
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The most pixels (width × height, read from the header before any
    /// decoding) an uploaded image may have (S13).
    pub max_image_pixels: u64,
    /// How long a client has to send a request's headers, in seconds; a
    /// connection that has not sent them by then is closed (S12).
    pub http_header_timeout_secs: u64,
    /// How long a request body may stall (no bytes), in seconds; past it,
    /// and when a body arrives slower than 1 KiB/s on average after that
    /// long, the request fails and its connection is closed (S12).
    pub http_body_idle_secs: u64,
    /// The most HTTP connections open at once; further clients wait in the
    /// listen backlog (S12).
    pub http_max_connections: usize,
    /// SMTP server for the mail outbox; without it mail waits in the outbox.
    pub smtp: Option<SmtpConfig>,
    /// The URL devices reach this hub's HTTP API at, e.g.
    /// `https://signage.example.com` (no trailing slash): signed manifests
    /// name content as `{public_url}/api/v1/device/content/{sha256}`. When
    /// unset, `http://{http_listen}` (an unspecified listen address such as
    /// `0.0.0.0` becomes `127.0.0.1`), which suits one machine only; see
    /// [`Config::public_base_url`].
    pub public_url: Option<String>,
    /// Serve the operator console from this directory (a console build,
    /// e.g. `console/dist`) instead of the one built into the binary (C1).
    pub console_dir: Option<PathBuf>,
    /// How long a signed group manifest stays valid, in seconds (S3: it
    /// bounds how long withholding updates can freeze a device).
    pub manifest_lifetime_secs: u64,
    /// How long before its expiry the hub re-signs an unchanged manifest, in
    /// seconds; less than `manifest_lifetime_secs`.
    pub manifest_resign_before_secs: u64,
    /// The device-wide offline grace every device assignment carries, in
    /// seconds (S6); each license's own grace applies too, the smaller wins.
    /// At least [`signet_common::license::MIN_OFFLINE_GRACE_SECS`].
    pub device_offline_grace_secs: u64,
    /// Time between two signed `hub_time` publishes, in seconds (S6): a
    /// device whose clock was wrong is right again within one interval of
    /// reaching the hub. 1 to
    /// [`signet_common::sync::MAX_HUB_TIME_INTERVAL_SECS`].
    pub hub_time_interval_secs: u64,
    // --- Fleet status, alerts and proof-of-play retention (U2, U3, U4) ---
    /// A device that said online but sent no state for longer than this is
    /// offline (U4: a frozen agent or a silently dropped network sends no
    /// last will), in seconds. Default: 3 × the agent's `heartbeat_secs`
    /// default of 60.
    pub heartbeat_timeout_secs: u64,
    /// How often the fleet alert loop looks at every device, in seconds.
    pub alert_poll_secs: u64,
    /// A device offline (MQTT last will, or no heartbeat for
    /// `heartbeat_timeout_secs`) longer than this raises an alert, in
    /// seconds (U4).
    pub alert_offline_secs: u64,
    /// An online device out of sync longer than this raises an alert, in
    /// seconds (U4).
    pub alert_out_of_sync_secs: u64,
    /// Where alert and recovery mail goes (through the outbox); none: no mail.
    pub alert_email: Option<String>,
    /// Where alerts and recoveries are POSTed as JSON; none: no webhook.
    pub alert_webhook_url: Option<String>,
    /// How long proof-of-play events are kept, in days (U3).
    pub usage_retention_days: u64,
}

/// Where mail goes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// Server host name.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// The From address of every message.
    pub from: String,
    /// Use STARTTLS (true) or plain SMTP (false, loopback test servers only).
    #[serde(default = "yes")]
    pub starttls: bool,
    /// Login user, if the server wants one.
    #[serde(default)]
    pub username: Option<String>,
    /// Login password.
    #[serde(default)]
    pub password: Option<String>,
}

fn yes() -> bool {
    true
}

/// The `[mqtt]` section: which broker, and how to reach it.
///
/// With `embedded = true` (the default when signet-hub is built with its
/// `embedded-broker` feature) `serve` starts a broker on
/// [`Config::broker_listen`] and the hub connects to it with a credential it
/// makes at start; `url`, `username`, `password` and the TLS files are then
/// refused, because they describe an external broker (O3), which
/// `embedded = false` selects.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// Start the embedded broker.
    pub embedded: bool,
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
    /// broker's own means (the embedded broker asks the hub's store).
    pub dynsec: bool,
}

/// The CA bundle `mqtts://` uses when `ca_file` is unset (Debian and
/// Raspberry Pi OS, O1).
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// The longest broker URL, in bytes.
pub const MAX_BROKER_URL_LEN: usize = 512;
/// The longest MQTT client id, user name or password, in bytes.
pub const MAX_MQTT_FIELD_LEN: usize = 256;

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            embedded: cfg!(feature = "embedded-broker"),
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
    fn validate(&self) -> Result<(), Refusal> {
        if self.dynsec && (self.embedded || self.username.is_none() || self.password.is_none()) {
            return Err(refuse(
                "mqtt.dynsec",
                "administers an external mosquitto: it needs mqtt.embedded = false, \
                 mqtt.url, and the admin's mqtt.username and mqtt.password",
            ));
        }
        if !cfg!(feature = "embedded-broker") && self.embedded {
            return Err(refuse(
                "mqtt.embedded",
                "this signet-hub was built without the embedded-broker feature; \
                 set mqtt.embedded = false and mqtt.url",
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

impl Default for Config {
    fn default() -> Self {
        Self {
            data: PathBuf::from("./signet-data"),
            http_listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            broker_listen: SocketAddr::from(([127, 0, 0, 1], 1883)),
            mqtt: MqttConfig::default(),
            max_body_bytes: 1024 * 1024,
            max_upload_bytes: 2 * 1024 * 1024 * 1024,
            token_ttl_secs: 12 * 3600,
            login_max_failures: 5,
            login_lockout_secs: 15 * 60,
            password_hash_concurrency: 2,
            password_hash_wait_ms: 2000,
            rate_limit_per_minute: 60,
            rate_limit_burst: 30,
            trusted_proxies: Vec::new(),
            max_image_pixels: 64_000_000,
            http_header_timeout_secs: 10,
            http_body_idle_secs: 10,
            http_max_connections: 1024,
            smtp: None,
            public_url: None,
            console_dir: None,
            manifest_lifetime_secs: 7 * 86_400,
            manifest_resign_before_secs: 2 * 86_400,
            device_offline_grace_secs: 3 * 86_400,
            heartbeat_timeout_secs: 180,
            hub_time_interval_secs: signet_common::sync::MAX_HUB_TIME_INTERVAL_SECS,
            alert_poll_secs: 30,
            alert_offline_secs: 10 * 60,
            alert_out_of_sync_secs: 30 * 60,
            alert_email: None,
            alert_webhook_url: None,
            usage_retention_days: 2 * 366,
        }
    }
}

/// The largest `max_image_pixels` (1 gigapixel).
pub const MAX_IMAGE_PIXELS: u64 = 1_000_000_000;

/// A list of IP addresses: a TOML array, or (from the environment) one
/// string of comma-separated addresses.
fn ip_list<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<std::net::IpAddr>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Listed {
        List(Vec<std::net::IpAddr>),
        Text(String),
    }
    match Listed::deserialize(deserializer)? {
        Listed::List(list) => Ok(list),
        Listed::Text(text) => text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse()
                    .map_err(|_| serde::de::Error::custom(format!("{s:?} is not an IP address")))
            })
            .collect(),
    }
}

/// The longest `public_url`, in bytes (it prefixes every manifest URL).
pub const MAX_PUBLIC_URL_LEN: usize = 512;
/// The shortest manifest lifetime, in seconds (one hour).
pub const MIN_MANIFEST_LIFETIME_SECS: u64 = 3600;
/// The longest manifest lifetime, in seconds (90 days).
pub const MAX_MANIFEST_LIFETIME_SECS: u64 = 90 * 86_400;

/// Why the configuration was refused; the message names where the bad
/// value came from (the file or the environment variable), the key and what
/// is wrong, e.g. `/etc/signet/hub.toml: key "token_ttl_secs": invalid
/// type: string "ten", expected u64`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: {reason}")]
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        reason: String,
    },
    /// The file is not TOML.
    #[error("{file}: not valid TOML: {reason}")]
    Syntax {
        /// The file.
        file: PathBuf,
        /// What the TOML parser said (line and column first).
        reason: String,
    },
    /// A key is unknown, or its value has the wrong type or is out of its
    /// bounds.
    #[error("{source_name}: key \"{key}\": {reason}")]
    Invalid {
        /// Where the value came from: the file, `environment variable
        /// SIGNET_HUB_…`, or `defaults`.
        source_name: String,
        /// The key, dotted for sections (`mqtt.url`).
        key: String,
        /// What is wrong.
        reason: String,
    },
}

/// A refused key and why, before the source is known.
#[derive(Debug)]
struct Refusal {
    /// The dotted key.
    key: String,
    /// What is wrong.
    reason: String,
}

fn refuse(key: impl Into<String>, reason: impl Into<String>) -> Refusal {
    Refusal {
        key: key.into(),
        reason: reason.into(),
    }
}

/// Where each key's value came from.
struct Sources<'a> {
    /// The config file, if any.
    file: Option<&'a Path>,
    /// Dotted key → the environment variable that set it.
    env: BTreeMap<String, String>,
}

impl Sources<'_> {
    /// `refusal` as an error naming the variable or file its key came from.
    fn error(&self, refusal: Refusal) -> ConfigError {
        let source_name = match (self.env.get(&refusal.key), self.file) {
            (Some(var), _) => format!("environment variable {var}"),
            (None, Some(file)) => file.display().to_string(),
            (None, None) => "defaults".to_owned(),
        };
        ConfigError::Invalid {
            source_name,
            key: refusal.key,
            reason: refusal.reason,
        }
    }
}

/// The key and reason of a deserialization error (the path of the value
/// at fault; for an unknown key, that key).
fn deserialize_refusal(error: &serde_path_to_error::Error<toml::de::Error>) -> Refusal {
    let message = error.inner().message();
    let reason = match message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split_once('`'))
    {
        Some((_, rest)) => format!("unknown key{rest}"),
        None => message.to_owned(),
    };
    refuse(error.path().to_string(), reason)
}

impl Config {
    /// Loads `file` (if given), applies `SIGNET_HUB_*` overrides from `env`,
    /// and validates the result.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file or variable and the key.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table = match file {
            Some(path) => {
                let read = |reason: String| ConfigError::Read {
                    file: path.to_owned(),
                    reason,
                };
                let size = std::fs::metadata(path)
                    .map_err(|e| read(e.to_string()))?
                    .len();
                if size > MAX_CONFIG_BYTES {
                    return Err(read(format!(
                        "over {MAX_CONFIG_BYTES} bytes: not a config file"
                    )));
                }
                let text = std::fs::read_to_string(path).map_err(|e| read(e.to_string()))?;
                toml::from_str::<toml::Table>(&text).map_err(|e| ConfigError::Syntax {
                    file: path.to_owned(),
                    reason: e.to_string().trim_end().to_owned(),
                })?
            }
            None => toml::Table::new(),
        };
        let mut sources = Sources {
            file,
            env: BTreeMap::new(),
        };
        for (name, value) in env {
            let Some(key) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let path: Vec<String> = key.split("__").map(str::to_ascii_lowercase).collect();
            set_path(&mut table, &path, parse_env_value(&value));
            sources.env.insert(path.join("."), name);
        }
        let config: Config = serde_path_to_error::deserialize(table)
            .map_err(|e| sources.error(deserialize_refusal(&e)))?;
        config
            .validate()
            .map_err(|refusal| sources.error(refusal))?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), Refusal> {
        if self.max_body_bytes < 1024 {
            return Err(refuse("max_body_bytes", "must be at least 1024"));
        }
        if self.max_upload_bytes < 1024 {
            return Err(refuse("max_upload_bytes", "must be at least 1024"));
        }
        if self.token_ttl_secs == 0 || self.token_ttl_secs > 30 * 86_400 {
            return Err(refuse("token_ttl_secs", "must be 1 to 2592000 (30 days)"));
        }
        if self.login_max_failures == 0 {
            return Err(refuse("login_max_failures", "must be at least 1"));
        }
        self.validate_limits()?;
        if let Some(url) = &self.public_url {
            let rest = url
                .strip_prefix("https://")
                .or_else(|| url.strip_prefix("http://"));
            if rest.is_none_or(|host| host.is_empty() || host.starts_with('/'))
                || url.len() > MAX_PUBLIC_URL_LEN
                || url.ends_with('/')
                || url.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(refuse(
                    "public_url",
                    format!(
                        "must be an http:// or https:// URL of at most \
                         {MAX_PUBLIC_URL_LEN} bytes without a trailing slash"
                    ),
                ));
            }
        }
        if !(MIN_MANIFEST_LIFETIME_SECS..=MAX_MANIFEST_LIFETIME_SECS)
            .contains(&self.manifest_lifetime_secs)
        {
            return Err(refuse(
                "manifest_lifetime_secs",
                format!(
                    "must be {MIN_MANIFEST_LIFETIME_SECS} to \
                     {MAX_MANIFEST_LIFETIME_SECS} (90 days)"
                ),
            ));
        }
        if self.manifest_resign_before_secs == 0
            || self.manifest_resign_before_secs >= self.manifest_lifetime_secs
        {
            return Err(refuse(
                "manifest_resign_before_secs",
                "must be at least 1 and less than manifest_lifetime_secs",
            ));
        }
        self.validate_clock()?;
        self.mqtt.validate()?;
        self.validate_alerts()
    }

    /// The trusted-clock keys (S6): a `hub_time` at least every
    /// [`MAX_HUB_TIME_INTERVAL_SECS`], and no device grace a device would
    /// run out of between two of them.
    fn validate_clock(&self) -> Result<(), Refusal> {
        if !(1..=MAX_HUB_TIME_INTERVAL_SECS).contains(&self.hub_time_interval_secs) {
            return Err(refuse(
                "hub_time_interval_secs",
                format!("must be 1 to {MAX_HUB_TIME_INTERVAL_SECS}"),
            ));
        }
        if self.device_offline_grace_secs < MIN_OFFLINE_GRACE_SECS {
            return Err(refuse(
                "device_offline_grace_secs",
                format!(
                    "must be at least {MIN_OFFLINE_GRACE_SECS} \
                     (three hub_time intervals of at most {MAX_HUB_TIME_INTERVAL_SECS} s)"
                ),
            ));
        }
        if self.device_offline_grace_secs > MAX_DURATION_SECS {
            return Err(refuse(
                "device_offline_grace_secs",
                format!("must be at most {MAX_DURATION_SECS} (100 years)"),
            ));
        }
        Ok(())
    }

    /// The keys bounding unauthenticated work and connections (S12, S13).
    fn validate_limits(&self) -> Result<(), Refusal> {
        if !(1..=64).contains(&self.password_hash_concurrency) {
            return Err(refuse("password_hash_concurrency", "must be 1 to 64"));
        }
        if self.password_hash_wait_ms > 60_000 {
            return Err(refuse("password_hash_wait_ms", "must be 0 to 60000"));
        }
        for (key, value) in [
            ("rate_limit_per_minute", self.rate_limit_per_minute),
            ("rate_limit_burst", self.rate_limit_burst),
        ] {
            if !(1..=100_000).contains(&value) {
                return Err(refuse(key, "must be 1 to 100000"));
            }
        }
        if self.trusted_proxies.len() > 64 {
            return Err(refuse("trusted_proxies", "must list at most 64 addresses"));
        }
        if !(1..=MAX_IMAGE_PIXELS).contains(&self.max_image_pixels) {
            return Err(refuse(
                "max_image_pixels",
                format!("must be 1 to {MAX_IMAGE_PIXELS}"),
            ));
        }
        for (key, value) in [
            ("http_header_timeout_secs", self.http_header_timeout_secs),
            ("http_body_idle_secs", self.http_body_idle_secs),
        ] {
            if !(1..=3600).contains(&value) {
                return Err(refuse(key, "must be 1 to 3600"));
            }
        }
        if !(16..=1_000_000).contains(&self.http_max_connections) {
            return Err(refuse("http_max_connections", "must be 16 to 1000000"));
        }
        Ok(())
    }

    /// The fleet alert and retention keys (U3, U4).
    fn validate_alerts(&self) -> Result<(), Refusal> {
        if !(1..=86_400).contains(&self.heartbeat_timeout_secs) {
            return Err(refuse(
                "heartbeat_timeout_secs",
                "must be 1 to 86400 (1 day)",
            ));
        }
        if !(1..=3600).contains(&self.alert_poll_secs) {
            return Err(refuse("alert_poll_secs", "must be 1 to 3600"));
        }
        for (key, value) in [
            ("alert_offline_secs", self.alert_offline_secs),
            ("alert_out_of_sync_secs", self.alert_out_of_sync_secs),
        ] {
            if !(1..=30 * 86_400).contains(&value) {
                return Err(refuse(key, "must be 1 to 2592000 (30 days)"));
            }
        }
        if let Some(to) = &self.alert_email {
            let mail = crate::mail::Mail {
                to: to.clone(),
                subject: "check".into(),
                body: String::new(),
            };
            mail.check()
                .map_err(|e| refuse("alert_email", format!("is not usable: {e}")))?;
        }
        if let Some(url) = &self.alert_webhook_url {
            let rest = url
                .strip_prefix("https://")
                .or_else(|| url.strip_prefix("http://"));
            if rest.is_none_or(|host| host.is_empty() || host.starts_with('/'))
                || url.len() > MAX_PUBLIC_URL_LEN
                || url.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(refuse(
                    "alert_webhook_url",
                    format!(
                        "must be an http:// or https:// URL of at most \
                         {MAX_PUBLIC_URL_LEN} bytes"
                    ),
                ));
            }
        }
        if !(1..=3660).contains(&self.usage_retention_days) {
            return Err(refuse(
                "usage_retention_days",
                "must be 1 to 3660 (10 years)",
            ));
        }
        Ok(())
    }

    /// The broker URL devices are told at pairing: `mqtt.device_url`, or
    /// `mqtt://{broker_listen}` with the embedded broker (an unspecified
    /// address becomes `127.0.0.1`), or `mqtt.url`.
    #[must_use]
    pub fn device_broker_url(&self) -> String {
        if let Some(url) = &self.mqtt.device_url {
            return url.clone();
        }
        match (&self.mqtt.url, self.mqtt.embedded) {
            (Some(url), false) => url.clone(),
            _ => format!("mqtt://{}", loopback_if_unspecified(self.broker_listen)),
        }
    }

    /// The CA PEM devices are handed at pairing for an `mqtts://` device
    /// URL: `mqtt.device_ca_file`, else `mqtt.ca_file` when devices use the
    /// hub's own broker URL; `None` for `mqtt://` or to use system roots.
    ///
    /// # Errors
    /// When the file cannot be read or is larger than 1 MiB.
    pub fn device_ca_pem(&self) -> Result<Option<String>, String> {
        let url = self.device_broker_url();
        if !url.starts_with("mqtts://") {
            return Ok(None);
        }
        let file = match (&self.mqtt.device_ca_file, &self.mqtt.device_url) {
            (Some(file), _) => file,
            (None, None) => match &self.mqtt.ca_file {
                Some(file) => file,
                None => return Ok(None),
            },
            (None, Some(_)) => return Ok(None),
        };
        let size = std::fs::metadata(file)
            .map_err(|e| format!("{}: {e}", file.display()))?
            .len();
        if size > 1024 * 1024 {
            return Err(format!("{} is larger than 1 MiB", file.display()));
        }
        std::fs::read_to_string(file)
            .map(Some)
            .map_err(|e| format!("{}: {e}", file.display()))
    }

    /// The base URL devices fetch content from: `public_url`, or one derived
    /// from `http_listen` (an unspecified address becomes `127.0.0.1`).
    #[must_use]
    pub fn public_base_url(&self) -> String {
        if let Some(url) = &self.public_url {
            return url.clone();
        }
        format!("http://{}", loopback_if_unspecified(self.http_listen))
    }

    /// [`Config::manifest_lifetime_secs`] as a duration.
    #[must_use]
    pub fn manifest_lifetime(&self) -> chrono::TimeDelta {
        secs(self.manifest_lifetime_secs)
    }

    /// [`Config::heartbeat_timeout_secs`] as a duration.
    #[must_use]
    pub fn heartbeat_timeout(&self) -> chrono::TimeDelta {
        secs(self.heartbeat_timeout_secs)
    }

    /// [`Config::manifest_resign_before_secs`] as a duration.
    #[must_use]
    pub fn manifest_resign_before(&self) -> chrono::TimeDelta {
        secs(self.manifest_resign_before_secs)
    }
}

/// `addr`, with an unspecified IP (`0.0.0.0`, `::`) replaced by `127.0.0.1`.
#[must_use]
pub fn loopback_if_unspecified(mut addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::IpAddr::from([127, 0, 0, 1]));
    }
    addr
}

/// `secs` seconds, saturating at the largest duration chrono holds.
fn secs(secs: u64) -> chrono::TimeDelta {
    i64::try_from(secs)
        .ok()
        .and_then(chrono::TimeDelta::try_seconds)
        .unwrap_or(chrono::TimeDelta::MAX)
}

/// An environment value as TOML: numbers and booleans as such, anything
/// else as a string.
fn parse_env_value(value: &str) -> toml::Value {
    format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .filter(|v| !matches!(v, toml::Value::Table(_) | toml::Value::Array(_)))
        .unwrap_or_else(|| toml::Value::String(value.to_owned()))
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) {
    match path {
        [] => {}
        [last] => {
            table.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry = table
                .entry(first.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            if let toml::Value::Table(inner) = entry {
                set_path(inner, rest, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_match_design_section_6() {
        let config = Config::load(None, env(&[])).unwrap();
        assert_eq!(config.data, PathBuf::from("./signet-data"));
        assert_eq!(config.http_listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.broker_listen.to_string(), "127.0.0.1:1883");
        assert_eq!(config.public_base_url(), "http://127.0.0.1:8080");
        assert_eq!(config.manifest_lifetime(), chrono::TimeDelta::days(7));
    }

    #[test]
    fn public_url_overrides_the_derived_base_and_is_checked() {
        let config = Config::load(
            None,
            env(&[
                ("SIGNET_HUB_HTTP_LISTEN", "0.0.0.0:9000"),
                ("SIGNET_HUB_MANIFEST_LIFETIME_SECS", "86400"),
                ("SIGNET_HUB_MANIFEST_RESIGN_BEFORE_SECS", "3600"),
            ]),
        )
        .unwrap();
        assert_eq!(config.public_base_url(), "http://127.0.0.1:9000");
        let config = Config::load(
            None,
            env(&[("SIGNET_HUB_PUBLIC_URL", "https://signage.example.com")]),
        )
        .unwrap();
        assert_eq!(config.public_base_url(), "https://signage.example.com");
        for bad in ["ftp://x", "https://x/", "https://", "http://a b"] {
            let err = Config::load(None, env(&[("SIGNET_HUB_PUBLIC_URL", bad)])).unwrap_err();
            assert!(err.to_string().contains("public_url"), "{bad}: {err}");
        }
        let err = Config::load(
            None,
            env(&[("SIGNET_HUB_MANIFEST_RESIGN_BEFORE_SECS", "604800")]),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("manifest_resign_before_secs"),
            "{err}"
        );
    }

    #[test]
    fn file_then_environment_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hub.toml");
        std::fs::write(
            &file,
            "http_listen = \"127.0.0.1:9000\"\ntoken_ttl_secs = 60\n",
        )
        .unwrap();
        let config = Config::load(
            Some(&file),
            env(&[
                ("SIGNET_HUB_TOKEN_TTL_SECS", "120"),
                ("SIGNET_HUB_SMTP__HOST", "127.0.0.1"),
                ("SIGNET_HUB_SMTP__PORT", "2525"),
                ("SIGNET_HUB_SMTP__FROM", "hub@example.test"),
                ("SIGNET_HUB_SMTP__STARTTLS", "false"),
                ("UNRELATED", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(config.http_listen.to_string(), "127.0.0.1:9000");
        assert_eq!(config.token_ttl_secs, 120);
        let smtp = config.smtp.unwrap();
        assert_eq!(
            (smtp.host.as_str(), smtp.port, smtp.starttls),
            ("127.0.0.1", 2525, false)
        );
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key_and_source() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hub.toml");
        std::fs::write(&file, "htp_listen = \"127.0.0.1:9000\"\n").unwrap();
        let err = Config::load(Some(&file), env(&[])).unwrap_err().to_string();
        assert!(
            err.contains("hub.toml") && err.contains("htp_listen"),
            "{err}"
        );
        let err = Config::load(None, env(&[("SIGNET_HUB_TOKEN_TTL", "5")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("SIGNET_HUB_TOKEN_TTL") && err.contains("token_ttl"),
            "{err}"
        );
    }

    /// S6: the hub_time interval is bounded, and no device grace shorter
    /// than three intervals is accepted (never raised silently later).
    #[test]
    fn s6_hub_time_interval_and_device_grace_are_checked() {
        let config =
            Config::load(None, env(&[("SIGNET_HUB_HUB_TIME_INTERVAL_SECS", "2")])).unwrap();
        assert_eq!(config.hub_time_interval_secs, 2);
        assert_eq!(Config::default().hub_time_interval_secs, 60);
        for bad in ["0", "61"] {
            let err = Config::load(None, env(&[("SIGNET_HUB_HUB_TIME_INTERVAL_SECS", bad)]))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("SIGNET_HUB_HUB_TIME_INTERVAL_SECS")
                    && err.contains("hub_time_interval_secs")
                    && err.contains("1 to 60"),
                "{bad}: {err}"
            );
        }
        let ok = Config::load(
            None,
            env(&[("SIGNET_HUB_DEVICE_OFFLINE_GRACE_SECS", "180")]),
        );
        assert_eq!(ok.unwrap().device_offline_grace_secs, 180);
        let err = Config::load(
            None,
            env(&[("SIGNET_HUB_DEVICE_OFFLINE_GRACE_SECS", "179")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("device_offline_grace_secs") && err.contains("at least 180"),
            "{err}"
        );
    }

    /// U4: alert keys are bounded and checked at start.
    #[test]
    fn alert_keys_are_checked() {
        let config = Config::load(
            None,
            env(&[
                ("SIGNET_HUB_ALERT_EMAIL", "ops@example.test"),
                (
                    "SIGNET_HUB_ALERT_WEBHOOK_URL",
                    "https://hooks.example.test/signet",
                ),
                ("SIGNET_HUB_ALERT_OFFLINE_SECS", "300"),
                ("SIGNET_HUB_HEARTBEAT_TIMEOUT_SECS", "6"),
            ]),
        )
        .unwrap();
        assert_eq!(config.alert_offline_secs, 300);
        assert_eq!(config.heartbeat_timeout(), chrono::TimeDelta::seconds(6));
        assert_eq!(Config::default().heartbeat_timeout_secs, 180);
        assert_eq!(config.alert_email.as_deref(), Some("ops@example.test"));
        for (key, bad) in [
            ("SIGNET_HUB_ALERT_EMAIL", "not an address"),
            ("SIGNET_HUB_ALERT_WEBHOOK_URL", "ftp://x"),
            ("SIGNET_HUB_ALERT_POLL_SECS", "0"),
            ("SIGNET_HUB_HEARTBEAT_TIMEOUT_SECS", "0"),
            ("SIGNET_HUB_ALERT_OUT_OF_SYNC_SECS", "0"),
            ("SIGNET_HUB_USAGE_RETENTION_DAYS", "0"),
        ] {
            let name = key.trim_start_matches(ENV_PREFIX).to_ascii_lowercase();
            let err = Config::load(None, env(&[(key, bad)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(&name), "{key}={bad}: {err}");
        }
    }

    #[test]
    fn o3_mqtt_section_external_broker_and_its_checks() {
        let config = Config::load(None, env(&[])).unwrap();
        assert_eq!(config.mqtt.embedded, cfg!(feature = "embedded-broker"));
        if config.mqtt.embedded {
            assert_eq!(config.device_broker_url(), "mqtt://127.0.0.1:1883");
        }
        let config = Config::load(
            None,
            env(&[
                ("SIGNET_HUB_MQTT__EMBEDDED", "false"),
                ("SIGNET_HUB_MQTT__URL", "mqtts://broker.example.com"),
                ("SIGNET_HUB_MQTT__USERNAME", "hub"),
                ("SIGNET_HUB_MQTT__PASSWORD", "secret"),
                ("SIGNET_HUB_MQTT__CA_FILE", "/etc/signet/ca.pem"),
            ]),
        )
        .unwrap();
        assert_eq!(config.device_broker_url(), "mqtts://broker.example.com");
        let url = BrokerUrl::parse(config.mqtt.url.as_deref().unwrap()).unwrap();
        assert_eq!(
            (url.tls, url.host.as_str(), url.port),
            (true, "broker.example.com", 8883)
        );
        let url = BrokerUrl::parse("mqtt://[::1]:1884").unwrap();
        assert_eq!((url.tls, url.host.as_str(), url.port), (false, "::1", 1884));
        for bad in [
            "http://x",
            "mqtt://",
            "mqtt://h:0",
            "mqtt://h:99999",
            "mqtt://u@h",
            "mqtt://h/path",
            "mqtt://::1",
        ] {
            assert!(BrokerUrl::parse(bad).is_err(), "{bad}");
        }
        let refused: &[(&[(&str, &str)], &str)] = &[
            (&[("SIGNET_HUB_MQTT__EMBEDDED", "false")], "mqtt.url"),
            (
                &[
                    ("SIGNET_HUB_MQTT__EMBEDDED", "false"),
                    ("SIGNET_HUB_MQTT__URL", "tcp://h"),
                ],
                "mqtt.url",
            ),
            (
                &[
                    ("SIGNET_HUB_MQTT__EMBEDDED", "false"),
                    ("SIGNET_HUB_MQTT__URL", "mqtt://h"),
                    ("SIGNET_HUB_MQTT__CA_FILE", "/ca.pem"),
                ],
                "mqtts://",
            ),
            (
                &[
                    ("SIGNET_HUB_MQTT__EMBEDDED", "false"),
                    ("SIGNET_HUB_MQTT__URL", "mqtts://h"),
                    ("SIGNET_HUB_MQTT__CLIENT_CERT_FILE", "/c.pem"),
                ],
                "client_key_file",
            ),
            (
                &[
                    ("SIGNET_HUB_MQTT__EMBEDDED", "false"),
                    ("SIGNET_HUB_MQTT__URL", "mqtt://h"),
                    ("SIGNET_HUB_MQTT__PASSWORD", "p"),
                ],
                "mqtt.username",
            ),
            (
                &[("SIGNET_HUB_MQTT__DEVICE_URL", "h:1883")],
                "mqtt.device_url",
            ),
            (&[("SIGNET_HUB_MQTT__CLIENT_ID", "")], "mqtt.client_id"),
            (&[("SIGNET_HUB_MQTT__PORT", "1")], "port"),
        ];
        for (vars, key) in refused {
            let err = Config::load(None, env(vars)).unwrap_err().to_string();
            assert!(err.contains(key), "{vars:?}: {err}");
        }
        if cfg!(feature = "embedded-broker") {
            let err = Config::load(None, env(&[("SIGNET_HUB_MQTT__URL", "mqtt://h")]))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("mqtt.url") && err.contains("embedded"),
                "{err}"
            );
        }
    }

    /// O1: every config error names where the value came from (the file or
    /// the environment variable), the key, and what is wrong.
    #[test]
    fn o1_config_errors_name_the_source_the_key_and_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hub.toml");
        let load = |text: &str, vars: &[(&str, &str)]| {
            std::fs::write(&file, text).unwrap();
            Config::load(Some(&file), env(vars))
                .unwrap_err()
                .to_string()
        };
        let shown = file.display();
        assert_eq!(
            load("token_ttl_secs = \"ten\"\n", &[]),
            format!("{shown}: key \"token_ttl_secs\": invalid type: string \"ten\", expected u64")
        );
        assert_eq!(
            load("token_ttl_secs = 0\n", &[]),
            format!("{shown}: key \"token_ttl_secs\": must be 1 to 2592000 (30 days)")
        );
        let unknown = load("[mqtt]\nclient_idd = \"x\"\n", &[]);
        assert!(
            unknown.starts_with(&format!(
                "{shown}: key \"mqtt.client_idd\": unknown key, expected one of"
            )),
            "{unknown}"
        );
        let unknown = load("htp_listen = \"127.0.0.1:9000\"\n", &[]);
        assert!(
            unknown.starts_with(&format!("{shown}: key \"htp_listen\": unknown key")),
            "{unknown}"
        );
        let syntax = load("token_ttl_secs = \n", &[]);
        assert!(
            syntax.starts_with(&format!("{shown}: not valid TOML: ")) && syntax.contains("line 1"),
            "{syntax}"
        );
        // The environment wins over the file, and is named when its value is bad.
        assert_eq!(
            load(
                "token_ttl_secs = 60\n",
                &[("SIGNET_HUB_TOKEN_TTL_SECS", "ten")]
            ),
            "environment variable SIGNET_HUB_TOKEN_TTL_SECS: key \"token_ttl_secs\": \
             invalid type: string \"ten\", expected u64"
        );
        assert_eq!(
            load("", &[("SIGNET_HUB_TOKEN_TTL_SECS", "0")]),
            "environment variable SIGNET_HUB_TOKEN_TTL_SECS: key \"token_ttl_secs\": \
             must be 1 to 2592000 (30 days)"
        );
        let unknown = load("", &[("SIGNET_HUB_SMTP__HOSTNAME", "mail")]);
        assert!(
            unknown.starts_with(
                "environment variable SIGNET_HUB_SMTP__HOSTNAME: key \"smtp.hostname\": \
                 unknown key"
            ),
            "{unknown}"
        );
        let listen = load("", &[("SIGNET_HUB_HTTP_LISTEN", "nowhere")]);
        assert!(
            listen
                .starts_with("environment variable SIGNET_HUB_HTTP_LISTEN: key \"http_listen\": "),
            "{listen}"
        );
        let missing = Config::load(Some(&dir.path().join("missing.toml")), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("missing.toml"), "{missing}");
    }

    /// S12, S13: the limit keys, from the file or the environment, are
    /// bounded; trusted proxies are a list (comma-separated in the
    /// environment).
    #[test]
    fn s12_limit_keys_are_checked() {
        let config = Config::load(
            None,
            env(&[
                ("SIGNET_HUB_TRUSTED_PROXIES", "127.0.0.1, ::1"),
                ("SIGNET_HUB_MAX_IMAGE_PIXELS", "1000"),
            ]),
        )
        .unwrap();
        assert_eq!(config.trusted_proxies.len(), 2);
        assert_eq!(config.max_image_pixels, 1000);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hub.toml");
        std::fs::write(&file, "trusted_proxies = [\"10.0.0.1\"]\n").unwrap();
        let config = Config::load(Some(&file), env(&[])).unwrap();
        assert_eq!(
            config.trusted_proxies,
            vec![std::net::IpAddr::from([10, 0, 0, 1])]
        );
        for (key, bad) in [
            ("SIGNET_HUB_TRUSTED_PROXIES", "proxy.example"),
            ("SIGNET_HUB_PASSWORD_HASH_CONCURRENCY", "0"),
            ("SIGNET_HUB_PASSWORD_HASH_WAIT_MS", "600000"),
            ("SIGNET_HUB_RATE_LIMIT_PER_MINUTE", "0"),
            ("SIGNET_HUB_RATE_LIMIT_BURST", "0"),
            ("SIGNET_HUB_MAX_IMAGE_PIXELS", "0"),
            ("SIGNET_HUB_HTTP_HEADER_TIMEOUT_SECS", "0"),
            ("SIGNET_HUB_HTTP_BODY_IDLE_SECS", "0"),
            ("SIGNET_HUB_HTTP_MAX_CONNECTIONS", "1"),
        ] {
            let name = key.trim_start_matches(ENV_PREFIX).to_ascii_lowercase();
            let err = Config::load(None, env(&[(key, bad)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(&name), "{key}={bad}: {err}");
        }
    }

    #[test]
    fn bad_values_are_errors() {
        let err = Config::load(None, env(&[("SIGNET_HUB_HTTP_LISTEN", "nowhere")])).unwrap_err();
        assert!(err.to_string().contains("SIGNET_HUB_HTTP_LISTEN"), "{err}");
        let err = Config::load(None, env(&[("SIGNET_HUB_TOKEN_TTL_SECS", "0")])).unwrap_err();
        assert!(err.to_string().contains("token_ttl_secs"), "{err}");
    }

    /// S7, O3: a device told an `mqtts://` broker URL is handed the CA it
    /// must trust; for `mqtt://` none; an unreadable file is an error.
    #[test]
    fn s7_devices_get_the_ca_of_an_mqtts_device_url() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(
            &ca,
            "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let mut config = Config::default();
        config.mqtt.embedded = false;
        config.mqtt.url = Some("mqtt://broker.example:1883".into());
        assert_eq!(config.device_ca_pem(), Ok(None));
        config.mqtt.url = Some("mqtts://broker.example:8883".into());
        config.mqtt.ca_file = Some(ca.clone());
        let pem = config.device_ca_pem().unwrap().unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
        config.mqtt.device_url = Some("mqtts://devices.example:8883".into());
        assert_eq!(
            config.device_ca_pem(),
            Ok(None),
            "another URL: system roots"
        );
        config.mqtt.device_ca_file = Some(dir.path().join("missing.pem"));
        assert!(config.device_ca_pem().is_err());
    }
}
