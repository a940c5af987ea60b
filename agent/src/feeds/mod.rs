//! Data feeds of text and ticker zones (D6): the device fetches each bound
//! zone's JSON itself, picks the value its pointer names, and keeps the last
//! good value across failures and restarts.
//!
//! Owns: substituting the device's variables `[1]`…`[25]` into feed URLs
//! ([`resolve_url`]), the RFC 6901 extraction ([`extract`]), the `feeds`
//! sled tree of last good values ([`FeedValues`]), the bounded HTTP fetch
//! ([`Feeds`]) and the loop that keeps every bound zone's text current
//! ([`run`]). Must not: draw anything (the player does), decide which zones
//! are bound (the caller sends the wanted bindings), or blank a text: a
//! failed fetch keeps what was shown.
//!
//! # Storage
//! | tree | key | value |
//! |---|---|---|
//! | [`FEEDS_TREE`] | resolved URL, `\0`, JSON pointer | [`FeedValue`] as JSON |

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use signet_common::approval::FeedBinding;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::state::{StateError, Store};

/// The sled tree of last good values.
pub const FEEDS_TREE: &str = "feeds";
/// The largest feed body read, in bytes.
pub const MAX_FEED_BODY_BYTES: usize = 256 * 1024;
/// The longest value shown, in characters (longer ones are clipped).
pub const MAX_VALUE_CHARS: usize = 1024;
/// The most last good values kept; the one fetched longest ago goes first.
pub const MAX_STORED_VALUES: usize = 4096;
/// An unchanged value is written again (with its new `fetched_at`) only
/// after this long, so a feed polled every few seconds does not wear the
/// flash card with identical writes.
pub const RESTORE_UNCHANGED_AFTER: TimeDelta = TimeDelta::minutes(10);

/// Why a feed gave no value.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// The URL uses a variable this device has no value for.
    #[error("feed URL uses variable [{0}], which this device has no value for")]
    MissingVariable(u8),
    /// The URL holds a variable number outside `[1]`…`[25]`.
    #[error("feed URL: {0}")]
    BadVariable(String),
    /// The resolved URL is not an `http://` or `https://` URL.
    #[error("feed URL {url:?}: {reason}")]
    BadUrl {
        /// The URL after substitution.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Client(reqwest::Error),
    /// No answer: connection refused, a timeout, a broken body.
    #[error("feed {url}: {reason}")]
    Request {
        /// The URL fetched.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The server answered with a status other than 2xx.
    #[error("feed {url} answered {status}")]
    Status {
        /// The URL fetched.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// The body is larger than [`MAX_FEED_BODY_BYTES`].
    #[error("feed {url} is larger than {MAX_FEED_BODY_BYTES} bytes")]
    TooLarge {
        /// The URL fetched.
        url: String,
    },
    /// The body is not JSON.
    #[error("feed {url} is not JSON: {reason}")]
    NotJson {
        /// The URL fetched.
        url: String,
        /// The parser's message.
        reason: String,
    },
    /// The pointer names nothing in the document.
    #[error("JSON pointer {0:?} names nothing in the feed")]
    NotFound(String),
    /// The pointer names a null, an object or an array.
    #[error("JSON pointer {pointer:?} names {found}, not a string, number or boolean")]
    NotText {
        /// The pointer.
        pointer: String,
        /// What it names.
        found: &'static str,
    },
    /// The value is empty once control characters are removed.
    #[error("JSON pointer {0:?} names an empty text")]
    Empty(String),
    /// The state database failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The feeds tree failed.
    #[error("feeds tree: {0}")]
    Db(#[from] sled::Error),
    /// A stored value does not decode.
    #[error("stored feed value is corrupt: {0}")]
    Corrupt(String),
    /// A blocking task panicked or was cancelled.
    #[error("feed storage task: {0}")]
    Task(String),
}

/// Substitutes the device's `variables` into a feed URL (D6): every `[n]`
/// (n 1–25, the rule of [`FeedBinding::variables`]) becomes the value,
/// percent-encoded for a URL path or query component (every byte but
/// `A-Z a-z 0-9 - . _ ~`). Other bracketed text (an IPv6 host) stays.
///
/// # Errors
/// [`FeedError::MissingVariable`] naming the first variable without a
/// value; [`FeedError::BadVariable`] for a number outside 1–25.
pub fn resolve_url(url: &str, variables: &BTreeMap<u8, String>) -> Result<String, FeedError> {
    let binding = FeedBinding {
        url: url.to_owned(),
        json_pointer: String::new(),
        refresh_secs: 0,
        last_value: None,
    };
    let used = binding
        .variables("feed")
        .map_err(|e| FeedError::BadVariable(e.to_string()))?;
    let mut resolved = url.to_owned();
    for number in used {
        let value = variables
            .get(&number)
            .ok_or(FeedError::MissingVariable(number))?;
        // Encoded values hold no brackets, so nothing substituted is
        // substituted again.
        resolved = resolved.replace(&format!("[{number}]"), &percent_encode(value));
    }
    Ok(resolved)
}

/// `text` with every byte outside RFC 3986's unreserved set as `%XX`.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The text `pointer` (RFC 6901; `""` is the whole document) names in
/// `json`: a string as it is, a number or boolean as JSON writes it;
/// control characters removed, clipped to [`MAX_VALUE_CHARS`] characters.
///
/// # Errors
/// [`FeedError::NotFound`], [`FeedError::NotText`] for a null, object or
/// array, [`FeedError::Empty`] when nothing printable is left.
pub fn extract(json: &serde_json::Value, pointer: &str) -> Result<String, FeedError> {
    let found = json
        .pointer(pointer)
        .ok_or_else(|| FeedError::NotFound(pointer.to_owned()))?;
    let not_text = |found| FeedError::NotText {
        pointer: pointer.to_owned(),
        found,
    };
    let text = match found {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::Bool(b) => b.to_string(),
        serde_json::Value::Null => return Err(not_text("null")),
        serde_json::Value::Object(_) => return Err(not_text("an object")),
        serde_json::Value::Array(_) => return Err(not_text("an array")),
    };
    let clean: String = text
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_VALUE_CHARS)
        .collect();
    if clean.trim().is_empty() {
        return Err(FeedError::Empty(pointer.to_owned()));
    }
    Ok(clean)
}

/// One last good value as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedValue {
    /// The extracted text.
    pub value: String,
    /// When it was last fetched (written again only after
    /// [`RESTORE_UNCHANGED_AFTER`] while unchanged).
    pub fetched_at: DateTime<Utc>,
}

/// The last good value of every feed, by resolved URL and pointer, in the
/// [`FEEDS_TREE`] tree. Every method blocks on sled: call them from
/// `spawn_blocking` in async code (reads are in memory and short).
#[derive(Debug, Clone)]
pub struct FeedValues {
    /// The sled tree (an `Arc` inside).
    tree: sled::Tree,
}

impl FeedValues {
    /// Opens the tree in `store`.
    ///
    /// # Errors
    /// On a database failure.
    pub fn open(store: &Store) -> Result<Self, FeedError> {
        Ok(Self {
            tree: store.tree(FEEDS_TREE)?,
        })
    }

    fn key(url: &str, pointer: &str) -> Vec<u8> {
        let mut key = Vec::with_capacity(url.len() + 1 + pointer.len());
        key.extend_from_slice(url.as_bytes());
        key.push(0);
        key.extend_from_slice(pointer.as_bytes());
        key
    }

    /// The last good value of `pointer` in the feed at `url` (resolved).
    ///
    /// # Errors
    /// On a database failure or a corrupt record.
    pub fn get(&self, url: &str, pointer: &str) -> Result<Option<FeedValue>, FeedError> {
        let Some(bytes) = self.tree.get(Self::key(url, pointer))? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| FeedError::Corrupt(e.to_string()))
    }

    /// Records `value` as the last good one and flushes, unless the same
    /// text is stored from less than [`RESTORE_UNCHANGED_AFTER`] before.
    /// Beyond [`MAX_STORED_VALUES`] the value fetched longest ago is
    /// dropped first. Returns whether it wrote.
    ///
    /// # Errors
    /// On a database failure.
    pub fn put(&self, url: &str, pointer: &str, value: &FeedValue) -> Result<bool, FeedError> {
        let key = Self::key(url, pointer);
        let previous = self.get(url, pointer).ok().flatten();
        if previous.as_ref().is_some_and(|p| {
            p.value == value.value && value.fetched_at - p.fetched_at < RESTORE_UNCHANGED_AFTER
        }) {
            return Ok(false);
        }
        if previous.is_none() && self.tree.len() >= MAX_STORED_VALUES {
            self.evict_oldest()?;
        }
        let bytes = serde_json::to_vec(value).map_err(|e| FeedError::Corrupt(e.to_string()))?;
        self.tree.insert(key, bytes)?;
        self.tree.flush()?;
        Ok(true)
    }

    /// Drops the value fetched longest ago (a corrupt one first).
    fn evict_oldest(&self) -> Result<(), FeedError> {
        let mut oldest: Option<(sled::IVec, Option<DateTime<Utc>>)> = None;
        for entry in self.tree.iter().take(MAX_STORED_VALUES * 2) {
            let (key, bytes) = entry?;
            let at = serde_json::from_slice::<FeedValue>(&bytes)
                .ok()
                .map(|v| v.fetched_at);
            if oldest.as_ref().is_none_or(|(_, best)| at < *best) {
                oldest = Some((key, at));
            }
        }
        if let Some((key, _)) = oldest {
            self.tree.remove(key)?;
        }
        Ok(())
    }
}

/// The shortest refresh interval whatever the settings say (no feed is
/// polled in a tight loop).
pub const HARD_MIN_REFRESH: Duration = Duration::from_secs(1);

/// Timeouts and the refresh floor of [`Feeds`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedSettings {
    /// How long connecting to a feed server may take.
    pub connect_timeout: Duration,
    /// How long one fetch may take, body included.
    pub request_timeout: Duration,
    /// The shortest interval between fetches of one binding (a binding's
    /// own `refresh_secs` applies when longer).
    pub min_refresh: Duration,
}

impl Default for FeedSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            min_refresh: Duration::from_secs(u64::from(signet_common::approval::MIN_REFRESH_SECS)),
        }
    }
}

/// Fetches feeds and keeps their last good values.
#[derive(Debug, Clone)]
pub struct Feeds {
    /// The HTTP client, with the settings' timeouts.
    client: reqwest::Client,
    /// The last good values.
    values: FeedValues,
    /// The settings it was made with.
    settings: FeedSettings,
}

impl Feeds {
    /// Feeds over `store` with [`FeedSettings::default`].
    ///
    /// # Errors
    /// When the tree cannot be opened or the client built.
    pub fn new(store: &Store) -> Result<Feeds, FeedError> {
        Self::with_settings(store, FeedSettings::default())
    }

    /// Feeds over `store` with `settings`.
    ///
    /// # Errors
    /// When the tree cannot be opened or the client built.
    pub fn with_settings(store: &Store, settings: FeedSettings) -> Result<Feeds, FeedError> {
        let client = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.request_timeout)
            .build()
            .map_err(FeedError::Client)?;
        Ok(Self {
            client,
            values: FeedValues::open(store)?,
            settings,
        })
    }

    /// How often `binding` is fetched: its `refresh_secs`, at least the
    /// settings' floor, never below [`HARD_MIN_REFRESH`].
    #[must_use]
    pub fn interval(&self, binding: &FeedBinding) -> Duration {
        Duration::from_secs(u64::from(binding.refresh_secs))
            .max(self.settings.min_refresh)
            .max(HARD_MIN_REFRESH)
    }

    /// Fetches `binding` for a device with `variables`: GET, at most
    /// [`MAX_FEED_BODY_BYTES`] of body, parsed as JSON, the pointer's text
    /// extracted; on success it is stored (flushed) as the last good value.
    ///
    /// # Errors
    /// Any [`FeedError`]; then nothing is stored.
    pub async fn fetch(
        &self,
        binding: &FeedBinding,
        variables: &BTreeMap<u8, String>,
    ) -> Result<String, FeedError> {
        let url = resolve_url(&binding.url, variables)?;
        let parsed = reqwest::Url::parse(&url).map_err(|e| FeedError::BadUrl {
            url: url.clone(),
            reason: e.to_string(),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(FeedError::BadUrl {
                url,
                reason: "must be http:// or https://".to_owned(),
            });
        }
        let failed = |e: reqwest::Error| FeedError::Request {
            url: url.clone(),
            reason: e.to_string(),
        };
        let mut response = self
            .client
            .get(parsed)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(failed)?;
        if !response.status().is_success() {
            return Err(FeedError::Status {
                url,
                status: response.status().as_u16(),
            });
        }
        let too_large = || FeedError::TooLarge { url: url.clone() };
        if response
            .content_length()
            .is_some_and(|n| n > MAX_FEED_BODY_BYTES as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(failed)? {
            if body.len() + chunk.len() > MAX_FEED_BODY_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        let json: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| FeedError::NotJson {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        let value = extract(&json, &binding.json_pointer)?;
        let values = self.values.clone();
        let record = FeedValue {
            value: value.clone(),
            fetched_at: Utc::now(),
        };
        let pointer = binding.json_pointer.clone();
        tokio::task::spawn_blocking(move || values.put(&url, &pointer, &record))
            .await
            .map_err(|e| FeedError::Task(e.to_string()))??;
        Ok(value)
    }

    /// The last good value of `binding` for a device with `variables`, if
    /// one was ever fetched (reads sled; short).
    #[must_use]
    pub fn last_good(
        &self,
        binding: &FeedBinding,
        variables: &BTreeMap<u8, String>,
    ) -> Option<String> {
        let url = resolve_url(&binding.url, variables).ok()?;
        match self.values.get(&url, &binding.json_pointer) {
            Ok(found) => found.map(|v| v.value),
            Err(e) => {
                tracing::warn!(%url, error = %e, "last good feed value unreadable");
                None
            }
        }
    }
}

/// One bound zone in [`run`].
struct Bound {
    /// The zone's id.
    zone: String,
    /// Its feed.
    binding: FeedBinding,
    /// Its URL with the variables substituted (`None` while one is missing).
    url: Option<String>,
    /// When it is fetched next.
    next: Instant,
    /// Whether its last fetch failed (warn once per failure streak).
    failing: bool,
}

/// What a zone shows while its feed has given nothing this session: the
/// last good value, else the binding's `last_value`; `None` leaves the
/// zone's static text (the player's default).
fn fallback(
    feeds: &Feeds,
    binding: &FeedBinding,
    variables: &BTreeMap<u8, String>,
) -> Option<String> {
    feeds
        .last_good(binding, variables)
        .or_else(|| binding.last_value.clone().filter(|v| !v.is_empty()))
}

/// Keeps every bound zone's text current (D6): refreshes each binding on
/// its `refresh_secs` (at least the settings' `min_refresh`, 5 s by
/// default), sends the zone texts (zone id → text) after every change,
/// and refetches at once when the wanted bindings or the variables change.
/// A failure keeps the zone's last good value, or the binding's
/// `last_value`; a zone with neither is left out of `texts`, so the player
/// shows its static text. A text is never made empty. Returns when
/// `shutdown` completes.
pub async fn run(
    feeds: Feeds,
    mut wanted: watch::Receiver<Vec<(String, FeedBinding)>>,
    mut variables: watch::Receiver<BTreeMap<u8, String>>,
    texts: watch::Sender<BTreeMap<String, String>>,
    shutdown: impl Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    let mut wanted_open = true;
    let mut variables_open = true;
    let mut bound: Vec<Bound> = Vec::new();
    let mut shown: BTreeMap<String, String> = BTreeMap::new();
    let mut vars = BTreeMap::new();
    let mut rebuild = true;
    loop {
        if rebuild {
            rebuild = false;
            vars = variables.borrow_and_update().clone();
            let list = wanted.borrow_and_update().clone();
            (bound, shown) = rebind(&feeds, list, &vars, bound, &shown);
            publish(&texts, &shown);
        }
        let now = Instant::now();
        let due: Vec<usize> = (0..bound.len()).filter(|&i| bound[i].next <= now).collect();
        if !due.is_empty() {
            let fetches = due.iter().map(|&i| {
                let feeds = &feeds;
                let vars = &vars;
                let binding = &bound[i].binding;
                async move { feeds.fetch(binding, vars).await }
            });
            let results = tokio::select! {
                () = &mut shutdown => return,
                results = futures_util::future::join_all(fetches) => results,
            };
            let after = Instant::now();
            for (i, result) in due.into_iter().zip(results) {
                let entry = &mut bound[i];
                entry.next = after + feeds.interval(&entry.binding);
                match result {
                    Ok(value) => {
                        if entry.failing {
                            tracing::info!(zone = %entry.zone, "feed answers again");
                        }
                        entry.failing = false;
                        shown.insert(entry.zone.clone(), value);
                    }
                    Err(e) => {
                        if entry.failing {
                            tracing::debug!(zone = %entry.zone, error = %e, "feed still failing");
                        } else {
                            tracing::warn!(zone = %entry.zone, error = %e,
                                "feed failed; keeping the last good text");
                        }
                        entry.failing = true;
                    }
                }
            }
            publish(&texts, &shown);
            continue;
        }
        let next = bound.iter().map(|b| b.next).min();
        tokio::select! {
            () = &mut shutdown => return,
            changed = wanted.changed(), if wanted_open => {
                wanted_open = changed.is_ok();
                rebuild = wanted_open;
            }
            changed = variables.changed(), if variables_open => {
                variables_open = changed.is_ok();
                rebuild = variables_open;
            }
            () = sleep_until(next) => {}
        }
    }
}

/// Sleeps until `at`; forever when `None`.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The bindings for `list` under `vars`: a zone whose resolved URL and
/// binding are unchanged keeps its schedule and its text; any other is due
/// now and shows its [`fallback`] until fetched.
fn rebind(
    feeds: &Feeds,
    list: Vec<(String, FeedBinding)>,
    vars: &BTreeMap<u8, String>,
    old: Vec<Bound>,
    shown: &BTreeMap<String, String>,
) -> (Vec<Bound>, BTreeMap<String, String>) {
    let now = Instant::now();
    let mut old: Vec<Option<Bound>> = old.into_iter().map(Some).collect();
    let mut bound = Vec::with_capacity(list.len());
    let mut texts = BTreeMap::new();
    for (zone, binding) in list {
        let url = match resolve_url(&binding.url, vars) {
            Ok(url) => Some(url),
            Err(e) => {
                tracing::warn!(%zone, error = %e, "feed URL not resolvable; fetching it anyway fails");
                None
            }
        };
        let kept = old.iter_mut().find_map(|slot| {
            slot.take_if(|b| b.zone == zone && b.binding == binding && b.url == url)
        });
        let entry = match kept {
            Some(entry) => {
                if let Some(text) = shown.get(&zone) {
                    texts.insert(zone.clone(), text.clone());
                }
                entry
            }
            None => {
                if let Some(text) = fallback(feeds, &binding, vars) {
                    texts.insert(zone.clone(), text);
                }
                Bound {
                    zone,
                    binding,
                    url,
                    next: now,
                    failing: false,
                }
            }
        };
        bound.push(entry);
    }
    (bound, texts)
}

/// Sends `shown` when it differs from what receivers hold.
fn publish(texts: &watch::Sender<BTreeMap<String, String>>, shown: &BTreeMap<String, String>) {
    texts.send_if_modified(|current| {
        if current == shown {
            false
        } else {
            current.clone_from(shown);
            true
        }
    });
}

#[cfg(test)]
mod tests;
