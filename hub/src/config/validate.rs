//! The bounds and combinations every configuration key must keep (O1, S6,
//! S12, S13, U3, U4): what [`Config::load`] checks after reading, so a bad
//! value fails at start with its key named.
//!
//! Owns: `Config::validate` and its parts, and [`Refusal`]. Must not: know
//! where a value came from (`super::load` names the file or variable).

use signet_common::license::{MAX_DURATION_SECS, MIN_OFFLINE_GRACE_SECS};
use signet_common::sync::MAX_HUB_TIME_INTERVAL_SECS;

use super::{
    Config, MAX_IMAGE_PIXELS, MAX_MANIFEST_LIFETIME_SECS, MAX_PUBLIC_URL_LEN, MAX_STORE_URL_LEN,
    MIN_MANIFEST_LIFETIME_SECS, SLED,
};

/// A refused key and why, before the source is known.
#[derive(Debug)]
pub(super) struct Refusal {
    /// The dotted key.
    pub(super) key: String,
    /// What is wrong.
    pub(super) reason: String,
}

/// A [`Refusal`] of `key` for `reason`.
pub(super) fn refuse(key: impl Into<String>, reason: impl Into<String>) -> Refusal {
    Refusal {
        key: key.into(),
        reason: reason.into(),
    }
}

impl Config {
    /// `store`: sled, or a PostgreSQL URL that parses (the reason never
    /// repeats the URL: it may hold a password).
    fn validate_store(&self) -> Result<(), Refusal> {
        if self.store == SLED {
            return Ok(());
        }
        let postgres =
            self.store.starts_with("postgres://") || self.store.starts_with("postgresql://");
        if !postgres || self.store.len() > MAX_STORE_URL_LEN {
            return Err(refuse(
                "store",
                format!(
                    "must be \"sled\" or a postgres:// URL of at most {MAX_STORE_URL_LEN} bytes"
                ),
            ));
        }
        self.store
            .parse::<tokio_postgres::Config>()
            .map(|_| ())
            .map_err(|e| refuse("store", format!("is not a PostgreSQL URL: {e}")))
    }

    /// Every key's bounds, and the keys that must agree.
    pub(super) fn validate(&self) -> Result<(), Refusal> {
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
        self.validate_store()?;
        if let Some(url) = &self.public_url
            && (!is_http_url(url) || url.ends_with('/'))
        {
            return Err(refuse(
                "public_url",
                format!(
                    "must be an http:// or https:// URL of at most \
                     {MAX_PUBLIC_URL_LEN} bytes without a trailing slash"
                ),
            ));
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
        if let Some(id) = &self.replica_id
            && (id.is_empty()
                || id.len() > 64
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)))
        {
            return Err(refuse(
                "replica_id",
                "must be 1 to 64 letters, digits, '-', '_' or '.'",
            ));
        }
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
            let mail = crate::values::mail::Mail {
                to: to.clone(),
                subject: "check".into(),
                body: String::new(),
            };
            mail.check()
                .map_err(|e| refuse("alert_email", format!("is not usable: {e}")))?;
        }
        if let Some(url) = &self.alert_webhook_url
            && !is_http_url(url)
        {
            return Err(refuse(
                "alert_webhook_url",
                format!(
                    "must be an http:// or https:// URL of at most \
                     {MAX_PUBLIC_URL_LEN} bytes"
                ),
            ));
        }
        if !(1..=3660).contains(&self.usage_retention_days) {
            return Err(refuse(
                "usage_retention_days",
                "must be 1 to 3660 (10 years)",
            ));
        }
        Ok(())
    }
}

/// Whether `url` is an `http://` or `https://` URL with a host, of at most
/// [`MAX_PUBLIC_URL_LEN`] bytes, without white space or control characters.
fn is_http_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    rest.is_some_and(|host| !host.is_empty() && !host.starts_with('/'))
        && url.len() <= MAX_PUBLIC_URL_LEN
        && !url.chars().any(|c| c.is_whitespace() || c.is_control())
}
