//! The hub's configuration (DESIGN §6): one TOML file, every key also
//! settable as `SIGNET_HUB_<KEY>` (nested keys joined by `__`, e.g.
//! `SIGNET_HUB_SMTP__HOST`).
//!
//! Owns: the [`Config`] struct, its defaults and its validation. Must not:
//! start anything. Unknown keys — in the file or in the environment — are
//! errors, so a typo fails at start instead of silently falling back to a
//! default. Every error names where the value came from (the file, or the
//! `SIGNET_HUB_…` variable), the dotted key and what is wrong (O1).
//!
//! # Layout
//! This file: [`Config`], its sections' structs and defaults, and what is
//! derived from it; `mqtt`: the `[mqtt]` section and [`BrokerUrl`];
//! `load`: reading the file and the environment ([`Config::load`],
//! [`ConfigError`]); `validate`: the bounds and combinations every key must
//! keep.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

mod load;
mod mqtt;
#[cfg(test)]
mod tests;
mod validate;

pub use load::ConfigError;
pub use mqtt::{
    BrokerUrl, DEFAULT_MOSQUITTO, MAX_BROKER_URL_LEN, MAX_MQTT_FIELD_LEN, MqttConfig, SHARE_GROUP,
    SYSTEM_CA_BUNDLE,
};

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
    /// The store's engine (X4): `"sled"` (the default: `store/` in
    /// `data`), or a PostgreSQL URL, `postgres://user:password@host/db`,
    /// whose schema the hub migrates at start (keys and content stay in
    /// `data`). `signet-hub migrate` copies a sled store into one.
    pub store: String,
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
    /// [`Config::public_base_url`]. It is also where people open the
    /// console from mail (M5): every mail that asks for an action carries
    /// one link under it — `/invite/{token}`, `/signup/confirm/{token}`,
    /// `/password/set/{token}`, `/content/{id}` (DESIGN §8,
    /// [`crate::mail::links`]); unset, those mails say which API call to
    /// make instead.
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
    /// This replica's name in `/healthz` and `/metrics` and to the leader
    /// election (X5); unset: the host name and process id.
    pub replica_id: Option<String>,
    /// The directory every replica shares (X5): content blobs, thumbnails
    /// and screenshots live under it (`content/`, `thumbnails/`,
    /// `screenshots/`), so what one replica stored the others serve. Unset:
    /// `data`. Any POSIX file system all replicas mount (NFS, CephFS, …).
    pub shared_dir: Option<PathBuf>,
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

impl Default for Config {
    fn default() -> Self {
        Self {
            data: PathBuf::from("./signet-data"),
            store: SLED.to_owned(),
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
            replica_id: None,
            shared_dir: None,
        }
    }
}

impl Config {
    /// Where content blobs, thumbnails and screenshots live:
    /// [`Config::shared_dir`], else `data`.
    #[must_use]
    pub fn shared_dir(&self) -> &std::path::Path {
        self.shared_dir.as_deref().unwrap_or(&self.data)
    }
}

/// The default [`Config::store`]: sled in the data directory.
pub const SLED: &str = "sled";
/// The longest [`Config::store`] URL, in bytes.
pub const MAX_STORE_URL_LEN: usize = 2048;

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

impl Config {
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
