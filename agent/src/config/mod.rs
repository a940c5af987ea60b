//! The agent's configuration (O1): one TOML file, every key also settable as
//! `SIGNET_AGENT_<KEY>` in the environment (the environment wins).
//!
//! Owns: the [`AgentConfig`] shape, its defaults and its validation. Must
//! not: open the state, the network or anything else — callers get a checked
//! value and act on it. A typo in the file is an error at start
//! (`deny_unknown_fields`), never a silent default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use signet_common::documents::DecodeLimit;

/// The file size a config may have; anything larger is not a config.
const MAX_CONFIG_BYTES: u64 = 64 * 1024;

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is larger than any config.
    #[error("config {0} is over {MAX_CONFIG_BYTES} bytes")]
    TooLarge(PathBuf),
    /// The file is not TOML.
    #[error("{path}: not valid TOML: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// What the TOML parser said (line and column first).
        message: String,
    },
    /// A key is unknown, or its value has the wrong type or is out of its
    /// range, e.g. `/etc/signet/agent.toml: key "cache_limit_mb": invalid
    /// type: string "ten", expected u64`.
    #[error("{source_name}: key \"{key}\": {message}")]
    Invalid {
        /// Where the value came from: the file, `environment variable
        /// SIGNET_AGENT_…`, or `defaults`.
        source_name: String,
        /// The key.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// The prefix of environment overrides.
pub const ENV_PREFIX: &str = "SIGNET_AGENT_";

/// One environment override: its key, variable and value.
struct EnvValue {
    /// The config key.
    key: &'static str,
    /// The variable's name.
    var: String,
    /// Its value.
    value: String,
}

impl EnvValue {
    /// The value parsed for its key, or an error naming the variable and key.
    fn parse<T: std::str::FromStr>(&self) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        self.value
            .trim()
            .parse()
            .map_err(|e: T::Err| ConfigError::Invalid {
                source_name: format!("environment variable {}", self.var),
                key: self.key.to_owned(),
                message: format!("{:?} is not a valid value: {e}", self.value),
            })
    }
}

/// The agent's settings. Every field has a default, so an empty file (or no
/// file) is a valid configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Where the agent keeps its state (sled), keys and secrets.
    pub data_dir: PathBuf,
    /// The hub's base URL; overrides the one learnt at pairing (for a hub
    /// that moved). `signet-agent pair --hub URL` takes its own.
    pub hub_url: Option<String>,
    /// The broker URL (`mqtt://host:port` or `mqtts://host:port`);
    /// overrides the one learnt at pairing (O3: an external broker).
    pub broker_url: Option<String>,
    /// The first reconnect delay, in milliseconds (S5).
    pub reconnect_base_ms: u64,
    /// The longest reconnect delay, in seconds (S5: the backoff cap).
    pub reconnect_cap_secs: u64,
    /// The MQTT keep-alive, in seconds.
    pub keep_alive_secs: u64,
    /// How often the state is published even when nothing changed, in
    /// seconds: the hub's heartbeat (U4). The hub's
    /// `heartbeat_timeout_secs` should be about 3 × this.
    pub heartbeat_secs: u64,
    /// How many received messages may wait for verification (S5: a bounded
    /// queue between the MQTT event loop and the verifier).
    pub queue_capacity: usize,
    /// How long to let the broker's backlog arrive after a reconnect before
    /// applying it, in milliseconds, so several queued versions of one
    /// retained document collapse into the newest.
    pub settle_ms: u64,
    /// How often the trusted clock's high-water mark is persisted, in
    /// seconds (S6).
    pub clock_persist_secs: u64,
    /// The most disk the content cache may use, in MiB (D10).
    pub cache_limit_mb: u64,
    /// How many files are downloaded at once (D2).
    pub download_concurrency: usize,
    /// The download bandwidth limit in KiB/s over all downloads; 0 means
    /// no limit (D2).
    pub download_rate_kib: u64,
    /// How often queued proof-of-play events are offered to the hub, in
    /// seconds (U2); new events are also sent as soon as they are recorded.
    pub event_upload_secs: u64,
    /// Where video goes (D7): `kms` (a bare Pi), `wayland`, `x`, `auto`
    /// (GStreamer picks), `none` (headless: frames are composed, and
    /// screenshots work, but nothing is displayed).
    pub video_sink: VideoSink,
    /// The output width in pixels.
    pub screen_width: u32,
    /// The output height in pixels.
    pub screen_height: u32,
    /// What video this screen decodes smoothly (M3): where the hub made a
    /// rendition that fits, the agent plays it instead of the original.
    /// `auto` (default): `1080p30-h264` on a Raspberry Pi, no limit
    /// elsewhere; `none`: always the original; or `{height}p{fps}-{codec}`.
    pub max_decode: MaxDecode,
}

/// The `max_decode` setting (M3).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum MaxDecode {
    /// [`PI_DECODE`] on a Raspberry Pi, else no limit.
    Auto,
    /// No limit: always the original.
    Unlimited,
    /// This limit.
    Limit(DecodeLimit),
}

/// What a Raspberry Pi (3, 4, 5) decodes smoothly: H.264 up to 1080p30.
pub const PI_DECODE: &str = "1080p30-h264";

impl MaxDecode {
    /// The limit on a device that `is_pi` (a Raspberry Pi) or not.
    #[must_use]
    pub fn resolve(&self, is_pi: bool) -> Option<DecodeLimit> {
        match self {
            Self::Auto if is_pi => PI_DECODE.parse().ok(),
            Self::Auto | Self::Unlimited => None,
            Self::Limit(limit) => Some(limit.clone()),
        }
    }
}

impl std::str::FromStr for MaxDecode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim() {
            "auto" => Ok(Self::Auto),
            "none" => Ok(Self::Unlimited),
            other => other
                .parse()
                .map(Self::Limit)
                .map_err(|e| format!("{e}, \"auto\" or \"none\"")),
        }
    }
}

impl TryFrom<String> for MaxDecode {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

/// Where the player sends video (D7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VideoSink {
    /// `kmssink`: straight to the display, no desktop (a bare Pi).
    Kms,
    /// `waylandsink`: a Wayland kiosk session.
    Wayland,
    /// `ximagesink`: an X session.
    X,
    /// The agent picks: the first usable of KMS, Wayland and X, else
    /// headless with the reason in the device state (never
    /// `autovideosink`, which can crash without a display).
    Auto,
    /// No display: headless (tests, screenshots only).
    None,
}

impl std::str::FromStr for VideoSink {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim() {
            "kms" => Ok(Self::Kms),
            "wayland" => Ok(Self::Wayland),
            "x" => Ok(Self::X),
            "auto" => Ok(Self::Auto),
            "none" => Ok(Self::None),
            other => Err(format!(
                "{other:?} is not one of kms, wayland, x, auto, none"
            )),
        }
    }
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./signet-agent-data"),
            hub_url: None,
            broker_url: None,
            reconnect_base_ms: 500,
            reconnect_cap_secs: 60,
            keep_alive_secs: 30,
            heartbeat_secs: 60,
            queue_capacity: 256,
            settle_ms: 300,
            clock_persist_secs: 60,
            cache_limit_mb: 2048,
            download_concurrency: 2,
            download_rate_kib: 0,
            event_upload_secs: 30,
            video_sink: VideoSink::Auto,
            screen_width: 1920,
            screen_height: 1080,
            max_decode: MaxDecode::Auto,
        }
    }
}

impl AgentConfig {
    /// Loads `path` (or the defaults when `None`), applies the
    /// `SIGNET_AGENT_*` environment overrides and validates the result.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file, variable or key at fault.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(path, |var| std::env::var(var).ok())
    }

    /// As [`Self::load`], with the environment given as a lookup (tests).
    ///
    /// # Errors
    /// As [`Self::load`].
    pub fn load_with_env(
        path: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut config = match path {
            Some(path) => Self::from_file(path)?,
            None => Self::default(),
        };
        let from_env = config.apply_env(env)?;
        config.validate().map_err(|(key, message)| {
            let source_name = match (from_env.get(key), path) {
                (Some(var), _) => format!("environment variable {var}"),
                (None, Some(path)) => path.display().to_string(),
                (None, None) => "defaults".to_owned(),
            };
            ConfigError::Invalid {
                source_name,
                key: key.to_owned(),
                message,
            }
        })?;
        Ok(config)
    }

    fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let read = |source| ConfigError::Read {
            path: path.to_owned(),
            source,
        };
        let len = std::fs::metadata(path).map_err(read)?.len();
        if len > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooLarge(path.to_owned()));
        }
        let text = std::fs::read_to_string(path).map_err(read)?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        serde_path_to_error::deserialize(table).map_err(|e| {
            // The path names the value at fault, or the unknown key.
            let message = e.inner().message();
            let message = match message
                .strip_prefix("unknown field `")
                .and_then(|rest| rest.split_once('`'))
            {
                Some((_, rest)) => format!("unknown key{rest}"),
                None => message.to_owned(),
            };
            ConfigError::Invalid {
                source_name: path.display().to_string(),
                key: e.path().to_string(),
                message,
            }
        })
    }

    /// Applies every `SIGNET_AGENT_<KEY>` that is set; returns which keys
    /// it set, and from which variable.
    fn apply_env(
        &mut self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<BTreeMap<&'static str, String>, ConfigError> {
        let mut set = BTreeMap::new();
        let mut var = |key: &'static str| {
            let var = format!("{ENV_PREFIX}{}", key.to_ascii_uppercase());
            let value = env(&var)?;
            set.insert(key, var.clone());
            Some(EnvValue { key, var, value })
        };
        if let Some(v) = var("data_dir") {
            self.data_dir = PathBuf::from(v.value);
        }
        if let Some(v) = var("hub_url") {
            self.hub_url = Some(v.value);
        }
        if let Some(v) = var("broker_url") {
            self.broker_url = Some(v.value);
        }
        if let Some(v) = var("reconnect_base_ms") {
            self.reconnect_base_ms = v.parse()?;
        }
        if let Some(v) = var("reconnect_cap_secs") {
            self.reconnect_cap_secs = v.parse()?;
        }
        if let Some(v) = var("keep_alive_secs") {
            self.keep_alive_secs = v.parse()?;
        }
        if let Some(v) = var("heartbeat_secs") {
            self.heartbeat_secs = v.parse()?;
        }
        if let Some(v) = var("queue_capacity") {
            self.queue_capacity = v.parse()?;
        }
        if let Some(v) = var("settle_ms") {
            self.settle_ms = v.parse()?;
        }
        if let Some(v) = var("clock_persist_secs") {
            self.clock_persist_secs = v.parse()?;
        }
        if let Some(v) = var("cache_limit_mb") {
            self.cache_limit_mb = v.parse()?;
        }
        if let Some(v) = var("download_concurrency") {
            self.download_concurrency = v.parse()?;
        }
        if let Some(v) = var("download_rate_kib") {
            self.download_rate_kib = v.parse()?;
        }
        if let Some(v) = var("event_upload_secs") {
            self.event_upload_secs = v.parse()?;
        }
        if let Some(v) = var("video_sink") {
            self.video_sink = v.parse()?;
        }
        if let Some(v) = var("screen_width") {
            self.screen_width = v.parse()?;
        }
        if let Some(v) = var("screen_height") {
            self.screen_height = v.parse()?;
        }
        if let Some(v) = var("max_decode") {
            self.max_decode = v.parse()?;
        }
        Ok(set)
    }

    /// Checks every range; a refusal is the key and what is wrong.
    fn validate(&self) -> Result<(), (&'static str, String)> {
        let invalid = |key, message: &str| (key, message.to_owned());
        if self.data_dir.as_os_str().is_empty() {
            return Err(invalid("data_dir", "must not be empty"));
        }
        if let Some(url) = &self.hub_url {
            check_http_url(url).map_err(|m| invalid("hub_url", &m))?;
        }
        if let Some(url) = &self.broker_url {
            BrokerUrl::parse(url).map_err(|m| invalid("broker_url", &m))?;
        }
        if !(10..=60_000).contains(&self.reconnect_base_ms) {
            return Err(invalid("reconnect_base_ms", "must be 10 to 60000"));
        }
        if !(1..=3_600).contains(&self.reconnect_cap_secs) {
            return Err(invalid("reconnect_cap_secs", "must be 1 to 3600"));
        }
        if !(5..=3_600).contains(&self.keep_alive_secs) {
            return Err(invalid("keep_alive_secs", "must be 5 to 3600"));
        }
        if !(1..=3_600).contains(&self.heartbeat_secs) {
            return Err(invalid("heartbeat_secs", "must be 1 to 3600"));
        }
        if !(32..=10_000).contains(&self.queue_capacity) {
            return Err(invalid("queue_capacity", "must be 32 to 10000"));
        }
        if self.settle_ms > 10_000 {
            return Err(invalid("settle_ms", "must be at most 10000"));
        }
        if !(1..=3_600).contains(&self.clock_persist_secs) {
            return Err(invalid("clock_persist_secs", "must be 1 to 3600"));
        }
        if !(1..=16 * 1024 * 1024).contains(&self.cache_limit_mb) {
            return Err(invalid("cache_limit_mb", "must be 1 to 16777216 (16 TiB)"));
        }
        if !(1..=16).contains(&self.download_concurrency) {
            return Err(invalid("download_concurrency", "must be 1 to 16"));
        }
        if self.download_rate_kib > 10 * 1024 * 1024 {
            return Err(invalid(
                "download_rate_kib",
                "must be at most 10485760 (10 GiB/s); 0 is no limit",
            ));
        }
        if !(1..=3_600).contains(&self.event_upload_secs) {
            return Err(invalid("event_upload_secs", "must be 1 to 3600"));
        }
        if !(16..=7_680).contains(&self.screen_width) {
            return Err(invalid("screen_width", "must be 16 to 7680"));
        }
        if !(16..=4_320).contains(&self.screen_height) {
            return Err(invalid("screen_height", "must be 16 to 4320"));
        }
        Ok(())
    }

    /// The first reconnect delay.
    #[must_use]
    pub fn reconnect_base(&self) -> Duration {
        Duration::from_millis(self.reconnect_base_ms)
    }

    /// The reconnect delay cap.
    #[must_use]
    pub fn reconnect_cap(&self) -> Duration {
        Duration::from_secs(self.reconnect_cap_secs)
    }

    /// How often the state is published when nothing changed.
    #[must_use]
    pub fn heartbeat(&self) -> Duration {
        Duration::from_secs(self.heartbeat_secs)
    }

    /// The cache limit in bytes.
    #[must_use]
    pub fn cache_limit_bytes(&self) -> u64 {
        self.cache_limit_mb.saturating_mul(1024 * 1024)
    }

    /// The download rate limit in bytes per second, if any.
    #[must_use]
    pub fn download_rate_bytes(&self) -> Option<u64> {
        (self.download_rate_kib > 0).then(|| self.download_rate_kib.saturating_mul(1024))
    }
}

/// Checks that `url` is an `http://` or `https://` URL with a host.
///
/// # Errors
/// A message saying what is wrong.
pub fn check_http_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("{url:?} is not an http:// or https:// URL"))?;
    if rest.is_empty() || rest.starts_with('/') || url.len() > 2048 {
        return Err(format!("{url:?} has no host"));
    }
    Ok(())
}

/// The URL of the hub route `path` (e.g. `/api/v1/device/events`) under
/// the hub's base URL `hub_url`, which must be `http://` or `https://`.
///
/// # Errors
/// A message saying what is wrong with `hub_url`.
pub fn hub_route(hub_url: &str, path: &str) -> Result<reqwest::Url, String> {
    let base = reqwest::Url::parse(hub_url).map_err(|e| e.to_string())?;
    if !matches!(base.scheme(), "http" | "https") {
        return Err("must be http:// or https://".to_owned());
    }
    reqwest::Url::parse(&format!("{}{path}", base.as_str().trim_end_matches('/')))
        .map_err(|e| e.to_string())
}

/// A parsed broker URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    /// The host name or address (without brackets for IPv6).
    pub host: String,
    /// The port (1883 for `mqtt://`, 8883 for `mqtts://` by default).
    pub port: u16,
    /// Whether the connection uses TLS (`mqtts://`).
    pub tls: bool,
}

impl BrokerUrl {
    /// Parses `mqtt://host[:port]` or `mqtts://host[:port]`.
    ///
    /// # Errors
    /// A message saying what is wrong.
    pub fn parse(url: &str) -> Result<Self, String> {
        let (tls, rest) = if let Some(rest) = url.strip_prefix("mqtts://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("mqtt://") {
            (false, rest)
        } else {
            return Err(format!("{url:?} is not an mqtt:// or mqtts:// URL"));
        };
        let rest = rest.trim_end_matches('/');
        let default_port = if tls { 8883 } else { 1883 };
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{url:?}: unclosed [ in the host"))?;
            let port = match after.strip_prefix(':') {
                Some(port) => Some(port),
                None if after.is_empty() => None,
                None => return Err(format!("{url:?}: unexpected text after the host")),
            };
            (host, port)
        } else {
            match rest.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            }
        };
        if host.is_empty() || host.contains('/') {
            return Err(format!("{url:?}: no host, or a path after it"));
        }
        let port = match port {
            Some(port) => port
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("{url:?}: port must be 1 to 65535"))?,
            None => default_port,
        };
        Ok(Self {
            host: host.to_owned(),
            port,
            tls,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// O1: an unknown key is an error naming it, not a silent default.
    #[test]
    fn o1_unknown_keys_are_refused_with_their_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, "data_dir = \"/x\"\nreconect_cap_secs = 3\n").unwrap();
        let err = AgentConfig::load_with_env(Some(&path), |_| None).unwrap_err();
        assert!(err.to_string().contains("reconect_cap_secs"), "{err}");
    }

    /// O1: values are range-checked and the environment overrides the file.
    #[test]
    fn o1_env_overrides_and_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, "reconnect_cap_secs = 5\n").unwrap();
        let config = AgentConfig::load_with_env(Some(&path), |var| {
            (var == "SIGNET_AGENT_RECONNECT_CAP_SECS").then(|| "7".to_owned())
        })
        .unwrap();
        assert_eq!(config.reconnect_cap_secs, 7);
        let err = AgentConfig::load_with_env(Some(&path), |var| {
            (var == "SIGNET_AGENT_RECONNECT_CAP_SECS").then(|| "0".to_owned())
        })
        .unwrap_err();
        assert!(err.to_string().contains("reconnect_cap_secs"), "{err}");
        let err = AgentConfig::load_with_env(None, |var| {
            (var == "SIGNET_AGENT_BROKER_URL").then(|| "http://x".to_owned())
        })
        .unwrap_err();
        assert!(err.to_string().contains("broker_url"), "{err}");
    }

    /// U4: the heartbeat is a key (default 60 s), set by file or
    /// environment and range-checked.
    #[test]
    fn u4_heartbeat_secs_is_configurable_and_bounded() {
        assert_eq!(AgentConfig::default().heartbeat(), Duration::from_secs(60));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, "heartbeat_secs = 2\n").unwrap();
        let config = AgentConfig::load_with_env(Some(&path), |_| None).unwrap();
        assert_eq!(config.heartbeat(), Duration::from_secs(2));
        for bad in ["0", "3601"] {
            let err = AgentConfig::load_with_env(None, |var| {
                (var == "SIGNET_AGENT_HEARTBEAT_SECS").then(|| bad.to_owned())
            })
            .unwrap_err();
            assert!(err.to_string().contains("heartbeat_secs"), "{bad}: {err}");
        }
    }

    /// O1: every kind of config error names where the value came from (the
    /// file or the environment variable), the key, and what is wrong.
    #[test]
    fn o1_errors_name_the_source_the_key_and_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        let shown = path.display();
        let load = |text: &str, var: &str, value: &str| {
            std::fs::write(&path, text).unwrap();
            AgentConfig::load_with_env(Some(&path), |v| (v == var).then(|| value.to_owned()))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            load("cache_limit_mb = \"ten\"\n", "", ""),
            format!("{shown}: key \"cache_limit_mb\": invalid type: string \"ten\", expected u64")
        );
        assert_eq!(
            load("cache_limit_mb = 0\n", "", ""),
            format!("{shown}: key \"cache_limit_mb\": must be 1 to 16777216 (16 TiB)")
        );
        let unknown = load("cache_limit_mbb = 10\n", "", "");
        assert!(
            unknown.starts_with(&format!(
                "{shown}: key \"cache_limit_mbb\": unknown key, expected one of"
            )),
            "{unknown}"
        );
        let syntax = load("cache_limit_mb = \n", "", "");
        assert!(
            syntax.starts_with(&format!("{shown}: not valid TOML: ")) && syntax.contains("line 1"),
            "{syntax}"
        );
        assert_eq!(
            load(
                "cache_limit_mb = 10\n",
                "SIGNET_AGENT_CACHE_LIMIT_MB",
                "ten"
            ),
            "environment variable SIGNET_AGENT_CACHE_LIMIT_MB: key \"cache_limit_mb\": \
             \"ten\" is not a valid value: invalid digit found in string"
        );
        assert_eq!(
            load("cache_limit_mb = 10\n", "SIGNET_AGENT_CACHE_LIMIT_MB", "0"),
            "environment variable SIGNET_AGENT_CACHE_LIMIT_MB: key \"cache_limit_mb\": \
             must be 1 to 16777216 (16 TiB)"
        );
        let sink = load("", "SIGNET_AGENT_VIDEO_SINK", "vga");
        assert!(
            sink.starts_with("environment variable SIGNET_AGENT_VIDEO_SINK: key \"video_sink\":"),
            "{sink}"
        );
        let none = AgentConfig::load_with_env(None, |v| {
            (v == "SIGNET_AGENT_SCREEN_WIDTH").then(|| "8".to_owned())
        })
        .unwrap_err()
        .to_string();
        assert_eq!(
            none,
            "environment variable SIGNET_AGENT_SCREEN_WIDTH: key \"screen_width\": \
             must be 16 to 7680"
        );
    }

    #[test]
    fn broker_urls_parse() {
        assert_eq!(
            BrokerUrl::parse("mqtt://127.0.0.1:1884").unwrap(),
            BrokerUrl {
                host: "127.0.0.1".into(),
                port: 1884,
                tls: false
            }
        );
        assert_eq!(
            BrokerUrl::parse("mqtts://broker.example").unwrap().port,
            8883
        );
        assert_eq!(BrokerUrl::parse("mqtt://[::1]:9").unwrap().host, "::1");
        assert!(BrokerUrl::parse("mqtt://host:0").is_err());
        assert!(BrokerUrl::parse("tcp://host").is_err());
    }

    /// M3: `max_decode` is `auto` by default (a Pi's limit on a Pi, none
    /// elsewhere), `none`, or a limit; nonsense is refused with the key.
    #[test]
    fn m3_max_decode_defaults_to_auto_and_parses_limits() {
        let config = AgentConfig::load_with_env(None, |_| None).unwrap();
        assert_eq!(config.max_decode, MaxDecode::Auto);
        assert_eq!(config.max_decode.resolve(false), None);
        assert_eq!(
            config.max_decode.resolve(true),
            Some(PI_DECODE.parse().unwrap())
        );
        let set = |value: &'static str| {
            AgentConfig::load_with_env(None, move |v| {
                (v == "SIGNET_AGENT_MAX_DECODE").then(|| value.to_owned())
            })
        };
        assert_eq!(set("none").unwrap().max_decode.resolve(true), None);
        let limit = set("720p25-h264")
            .unwrap()
            .max_decode
            .resolve(true)
            .unwrap();
        assert_eq!(
            (limit.height, limit.fps, limit.codec.as_str()),
            (720, 25, "h264")
        );
        let err = set("fast").unwrap_err().to_string();
        assert!(err.contains("max_decode"), "{err}");
    }
}
