//! Resumable, verified downloads into the cache (D2).
//!
//! Owns: fetching one blob over HTTP into `cache/partial/{sha256}` —
//! resuming with `Range: bytes=L-`, never accepting more than the declared
//! size, fsyncing every [`CHUNK_BYTES`], and handing the finished file to the
//! cache, which admits it only if its bytes on disk hash to the wanted digest
//! — plus the retry policy (transient failures back off and retry, permanent
//! ones return at once), the concurrency bound and the shared bandwidth
//! limit. Hub credentials go only to URLs under the hub's base URL, never to
//! a mirror. Must not: decide what to fetch or when (the caller passes the
//! wanted set after [`Cache::make_room`]), nor put anything in `blobs/` that
//! did not verify.

use std::collections::HashMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Seek as _, SeekFrom, Write as _};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use futures_util::StreamExt as _;
use reqwest::{StatusCode, Url, header};
use signet_common::digest::Sha256;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::{Admission, CHUNK_BYTES, Cache, CacheError, CacheFull, Reverified};
use crate::killpoint;
use crate::retry::Backoff;

/// How many received bytes are buffered before they are written out.
const WRITE_BUFFER_BYTES: usize = 64 * 1024;

/// One blob to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// The digest its bytes must hash to (and its name in the cache).
    pub sha256: Sha256,
    /// Its declared size; more bytes than this are never accepted.
    pub size: u64,
    /// Where to fetch it (the hub's content URL or a mirror).
    pub url: String,
}

/// The device's HTTP credentials at the hub.
#[derive(Clone)]
pub struct HubCredentials {
    /// The hub's base URL; Basic auth goes only to URLs under it.
    pub base_url: String,
    /// The device id (the Basic auth user).
    pub device_id: String,
    /// The device secret (the Basic auth password).
    pub secret: String,
}

impl fmt::Debug for HubCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubCredentials")
            .field("base_url", &self.base_url)
            .field("device_id", &self.device_id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// How the downloader behaves.
#[derive(Debug, Clone)]
pub struct DownloadSettings {
    /// How many downloads run at once (at least 1).
    pub concurrency: usize,
    /// The bandwidth limit over all downloads, bytes per second; `None`:
    /// unlimited.
    pub rate_bytes_per_sec: Option<u64>,
    /// The delay between retries of a transient failure.
    pub backoff: Backoff,
    /// How many attempts one fetch makes before giving up (at least 1).
    pub attempts: u32,
    /// The hub credentials, if the device is paired.
    pub credentials: Option<HubCredentials>,
    /// The longest wait for a connection, an answer or the next body bytes.
    pub timeout: Duration,
}

/// A successful fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fetched {
    /// The blob now in the cache.
    pub sha256: Sha256,
    /// Body bytes received by this fetch over all its attempts (0 when the
    /// blob was cached already).
    pub bytes_transferred: u64,
    /// Where the successful attempt resumed (0: from the start).
    pub resumed_from: u64,
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// Retrying cannot help (401, 403, 404, 410 and other client errors, a
    /// bad URL, a size-0 blob whose digest is not the empty digest).
    #[error("download of {url} refused: {reason}")]
    Permanent {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// Every attempt failed in a way that may pass (connect, timeout, 5xx,
    /// a cut body).
    #[error("download of {url} failed after {attempts} attempt(s): {reason}")]
    Transient {
        /// The URL.
        url: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last failure.
        reason: String,
    },
    /// The downloaded bytes do not hash to the wanted digest; the partial
    /// file was deleted.
    #[error("downloaded bytes hash to {actual}, not the wanted {expected}")]
    HashMismatch {
        /// The wanted digest.
        expected: Sha256,
        /// What the bytes hashed to.
        actual: Sha256,
    },
    /// The server sent more than the declared size; the partial file was
    /// deleted.
    #[error("the server sent more than the declared {size} bytes of {sha256}")]
    TooLarge {
        /// The wanted digest.
        sha256: Sha256,
        /// The declared size.
        size: u64,
    },
    /// The blob would take the cache over its limit.
    #[error(transparent)]
    CacheFull(#[from] CacheFull),
    /// A local file or index operation failed.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The settings are invalid or the HTTP client could not be built.
    #[error("download settings: {0}")]
    Settings(String),
    /// A blocking task panicked or was cancelled.
    #[error("download task failed: {0}")]
    Task(String),
}

/// How one attempt failed.
enum Failure {
    /// Worth another attempt.
    Transient(String),
    /// Final.
    Fatal(DownloadError),
}

impl From<DownloadError> for Failure {
    fn from(error: DownloadError) -> Self {
        Failure::Fatal(error)
    }
}

/// A token bucket shared by all downloads of one [`Downloader`]; bytes may
/// be taken on credit, and the taker then sleeps off the debt, so the
/// long-run rate over all takers is the configured one.
#[derive(Debug)]
struct RateLimiter {
    /// The bucket.
    bucket: Mutex<Bucket>,
}

/// The bucket's state.
#[derive(Debug)]
struct Bucket {
    /// Bytes per second; `None`: unlimited.
    rate: Option<u64>,
    /// Available bytes (negative: debt).
    tokens: f64,
    /// When `tokens` was last brought up to date.
    updated: Instant,
    /// The total delay imposed so far (for tests and diagnostics).
    imposed: Duration,
    /// The total bytes charged while a rate was set (for tests).
    charged: u64,
}

impl RateLimiter {
    fn new(rate: Option<u64>) -> Self {
        let rate = rate.filter(|r| *r > 0);
        Self {
            bucket: Mutex::new(Bucket {
                rate,
                tokens: rate.map_or(0.0, burst),
                updated: Instant::now(),
                imposed: Duration::ZERO,
                charged: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Bucket> {
        self.bucket.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes the rate live; `None` (or 0) lifts the limit.
    fn set_rate(&self, rate: Option<u64>) {
        self.set_rate_at(rate, Instant::now());
    }

    /// [`Self::set_rate`] at `now`.
    fn set_rate_at(&self, rate: Option<u64>, now: Instant) {
        let rate = rate.filter(|r| *r > 0);
        let mut bucket = self.lock();
        bucket.refill(now);
        bucket.tokens = match rate {
            Some(r) if bucket.rate.is_none() => burst(r),
            Some(r) => bucket.tokens.min(burst(r)),
            None => 0.0,
        };
        bucket.rate = rate;
    }

    /// Takes `bytes` from the bucket, sleeping off any debt.
    async fn take(&self, bytes: u64) {
        let wait = self.charge(bytes, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Takes `bytes` at `now`; returns how long the taker must wait.
    fn charge(&self, bytes: u64, now: Instant) -> Duration {
        let mut bucket = self.lock();
        let Some(rate) = bucket.rate else {
            return Duration::ZERO;
        };
        bucket.refill(now);
        bucket.charged = bucket.charged.saturating_add(bytes);
        #[allow(clippy::cast_precision_loss)]
        {
            bucket.tokens -= bytes as f64;
            if bucket.tokens >= 0.0 {
                return Duration::ZERO;
            }
            let wait = Duration::from_secs_f64(-bucket.tokens / rate as f64);
            bucket.imposed += wait;
            wait
        }
    }

    /// The total delay imposed so far.
    #[cfg(test)]
    fn imposed(&self) -> Duration {
        self.lock().imposed
    }

    /// The total bytes charged while a rate was set.
    #[cfg(test)]
    fn charged(&self) -> u64 {
        self.lock().charged
    }
}

impl Bucket {
    fn refill(&mut self, now: Instant) {
        if let Some(rate) = self.rate {
            let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
            #[allow(clippy::cast_precision_loss)]
            {
                self.tokens = (self.tokens + elapsed * rate as f64).min(burst(rate));
            }
        }
        self.updated = now;
    }
}

/// The burst allowance of a rate: a quarter second of traffic, between
/// 4 KiB and 1 MiB.
#[allow(clippy::cast_precision_loss)]
fn burst(rate: u64) -> f64 {
    (rate / 4).clamp(4 * 1024, 1024 * 1024) as f64
}

/// The shared state behind [`Downloader`].
#[derive(Debug)]
struct Inner {
    /// Where blobs go.
    cache: Cache,
    /// The HTTP client.
    client: reqwest::Client,
    /// The settings given at construction (the rate lives in `rate`).
    settings: DownloadSettings,
    /// The hub's base URL, parsed, when credentials are set.
    hub_base: Option<Url>,
    /// Bounds concurrent downloads.
    permits: Semaphore,
    /// The shared bandwidth limit.
    rate: RateLimiter,
    /// One lock per blob being fetched, so two fetches of the same blob
    /// never write the same partial file.
    in_flight: Mutex<HashMap<Sha256, Weak<tokio::sync::Mutex<()>>>>,
}

/// Fetches blobs into the cache; cheap to clone.
#[derive(Debug, Clone)]
pub struct Downloader {
    /// The shared state.
    inner: Arc<Inner>,
}

/// Whether `url` is under `base` (same scheme, host and port, and a path
/// inside the base path) — the only URLs that get the hub credentials.
fn is_under(base: &Url, url: &Url) -> bool {
    if base.scheme() != url.scheme()
        || base.host_str() != url.host_str()
        || base.port_or_known_default() != url.port_or_known_default()
    {
        return false;
    }
    let base_path = base.path().trim_end_matches('/');
    let path = url.path();
    base_path.is_empty()
        || path == base_path
        || path
            .strip_prefix(base_path)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Runs blocking cache work off the async threads.
async fn blocking<T, F>(work: F) -> Result<T, DownloadError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, CacheError> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| DownloadError::Task(e.to_string()))?
        .map_err(DownloadError::Cache)
}

impl Downloader {
    /// A downloader into `cache`.
    ///
    /// # Errors
    /// [`DownloadError::Settings`] when `concurrency` or `attempts` is 0, the
    /// hub base URL does not parse, or the HTTP client cannot be built.
    pub fn new(cache: Cache, settings: DownloadSettings) -> Result<Downloader, DownloadError> {
        if settings.concurrency == 0 || settings.concurrency > Semaphore::MAX_PERMITS {
            return Err(DownloadError::Settings(format!(
                "concurrency must be 1 to {}",
                Semaphore::MAX_PERMITS
            )));
        }
        if settings.attempts == 0 {
            return Err(DownloadError::Settings(
                "attempts must be at least 1".into(),
            ));
        }
        let hub_base = settings
            .credentials
            .as_ref()
            .map(|c| {
                Url::parse(&c.base_url).map_err(|e| {
                    DownloadError::Settings(format!("hub base URL {}: {e}", c.base_url))
                })
            })
            .transpose()?;
        let client = reqwest::Client::builder()
            .connect_timeout(settings.timeout)
            .build()
            .map_err(|e| DownloadError::Settings(format!("HTTP client: {e}")))?;
        Ok(Downloader {
            inner: Arc::new(Inner {
                cache,
                client,
                hub_base,
                permits: Semaphore::new(settings.concurrency),
                rate: RateLimiter::new(settings.rate_bytes_per_sec),
                in_flight: Mutex::new(HashMap::new()),
                settings,
            }),
        })
    }

    /// Changes the bandwidth limit of all downloads live (config reload).
    pub fn set_rate(&self, rate_bytes_per_sec: Option<u64>) {
        self.inner.rate.set_rate(rate_bytes_per_sec);
    }

    /// Fetches one blob into the cache (D2): at once if cached already;
    /// otherwise resuming any partial download, verifying the bytes on disk
    /// and admitting them. Transient failures are retried with backoff.
    ///
    /// # Errors
    /// See [`DownloadError`].
    pub async fn fetch(&self, wanted: &Wanted) -> Result<Fetched, DownloadError> {
        let result = self.fetch_once_locked(wanted).await;
        match &result {
            Ok(fetched) if fetched.bytes_transferred > 0 || fetched.resumed_from > 0 => {
                tracing::info!(
                    sha256 = %fetched.sha256,
                    bytes = fetched.bytes_transferred,
                    resumed_from = fetched.resumed_from,
                    "downloaded"
                );
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(sha256 = %wanted.sha256, url = %wanted.url, "download failed: {error}");
            }
        }
        result
    }

    /// Fetches every wanted blob, at most `concurrency` at once; results in
    /// the order given.
    pub async fn fetch_all(
        &self,
        wanted: Vec<Wanted>,
    ) -> Vec<(Sha256, Result<Fetched, DownloadError>)> {
        let fetches = wanted.into_iter().map(|w| async move {
            let result = self.fetch(&w).await;
            (w.sha256, result)
        });
        futures_util::future::join_all(fetches).await
    }

    /// The per-blob lock, created on first use.
    fn blob_lock(&self, sha256: &Sha256) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self
            .inner
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(lock) = map.get(sha256).and_then(Weak::upgrade) {
            return lock;
        }
        map.retain(|_, weak| weak.strong_count() > 0);
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        map.insert(*sha256, Arc::downgrade(&lock));
        lock
    }

    async fn fetch_once_locked(&self, wanted: &Wanted) -> Result<Fetched, DownloadError> {
        let cached = Fetched {
            sha256: wanted.sha256,
            bytes_transferred: 0,
            resumed_from: 0,
        };
        if self.inner.cache.contains(&wanted.sha256) {
            return Ok(cached);
        }
        let lock = self.blob_lock(&wanted.sha256);
        let _guard = lock.lock().await;
        if self.inner.cache.contains(&wanted.sha256) {
            return Ok(cached);
        }
        // On disk but not hashed since the agent started: hash it now
        // rather than fetch it again; fetched only if it does not match.
        if self.inner.cache.awaits_verification(&wanted.sha256) {
            let (cache, sha256) = (self.inner.cache.clone(), wanted.sha256);
            let outcome = blocking(move || cache.verify_waiting(&sha256)).await?;
            if outcome == Some(Reverified::Intact) || self.inner.cache.contains(&wanted.sha256) {
                return Ok(cached);
            }
        }
        if wanted.size == 0 && wanted.sha256 != Sha256::of(b"") {
            return Err(DownloadError::Permanent {
                url: wanted.url.clone(),
                reason: "declared size 0 but the digest is not the empty digest".into(),
            });
        }
        let attempts = self.inner.settings.attempts;
        let mut transferred = 0u64;
        let mut failures = 0u32;
        loop {
            let outcome = {
                let _permit = self
                    .inner
                    .permits
                    .acquire()
                    .await
                    .map_err(|e| DownloadError::Task(e.to_string()))?;
                self.attempt(wanted, &mut transferred).await
            };
            match outcome {
                Ok(resumed_from) => {
                    return Ok(Fetched {
                        sha256: wanted.sha256,
                        bytes_transferred: transferred,
                        resumed_from,
                    });
                }
                Err(Failure::Fatal(error)) => return Err(error),
                Err(Failure::Transient(reason)) => {
                    failures += 1;
                    if failures >= attempts {
                        return Err(DownloadError::Transient {
                            url: wanted.url.clone(),
                            attempts: failures,
                            reason,
                        });
                    }
                    tracing::debug!(sha256 = %wanted.sha256, failures, "download attempt failed, retrying: {reason}");
                    tokio::time::sleep(self.inner.settings.backoff.delay(failures)).await;
                }
            }
        }
    }

    /// One attempt; returns where it resumed from.
    async fn attempt(&self, wanted: &Wanted, transferred: &mut u64) -> Result<u64, Failure> {
        let size = wanted.size;
        let sha256 = wanted.sha256;
        let cache = self.inner.cache.clone();
        let (have, used) = blocking(move || {
            let path = cache.partial_path(&sha256);
            let mut have = cache.partial_len(&sha256);
            if have > size {
                super::remove_any(&path)?;
                have = 0;
            }
            if size == 0 {
                File::create(&path).map_err(super::io_error("creating", &path))?;
            }
            Ok((have, cache.used_bytes()))
        })
        .await?;
        let limit = self.inner.cache.limit();
        let needed_bytes = used.saturating_add(size - have);
        if needed_bytes > limit {
            return Err(DownloadError::CacheFull(CacheFull {
                needed_bytes,
                limit_bytes: limit,
            })
            .into());
        }
        if have == size {
            return self.finish(wanted, have).await;
        }

        let permanent = |reason: String| {
            Failure::Fatal(DownloadError::Permanent {
                url: wanted.url.clone(),
                reason,
            })
        };
        let url = Url::parse(&wanted.url).map_err(|e| permanent(format!("bad URL: {e}")))?;
        let mut request = self.inner.client.get(url.clone());
        if have > 0 {
            request = request.header(header::RANGE, format!("bytes={have}-"));
        }
        if let (Some(base), Some(credentials)) =
            (&self.inner.hub_base, &self.inner.settings.credentials)
            && is_under(base, &url)
        {
            request = request.basic_auth(&credentials.device_id, Some(&credentials.secret));
        }
        let timeout = self.inner.settings.timeout;
        let response = match tokio::time::timeout(timeout, request.send()).await {
            Err(_) => {
                return Err(Failure::Transient(format!("no answer within {timeout:?}")));
            }
            Ok(Err(e)) if e.is_builder() => return Err(permanent(e.to_string())),
            Ok(Err(e)) => return Err(Failure::Transient(e.to_string())),
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        let start = match status {
            StatusCode::OK => 0,
            StatusCode::PARTIAL_CONTENT => {
                let start = response
                    .headers()
                    .get(header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(content_range_start);
                if start != Some(have) {
                    self.discard_partial(sha256).await?;
                    return Err(Failure::Transient(format!(
                        "asked for bytes from {have}, the server answered Content-Range {start:?}; starting over"
                    )));
                }
                have
            }
            StatusCode::RANGE_NOT_SATISFIABLE if have > 0 => {
                return self.finish(wanted, have).await;
            }
            StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS => {
                return Err(Failure::Transient(format!("HTTP {status}")));
            }
            s if s.is_server_error() => return Err(Failure::Transient(format!("HTTP {s}"))),
            s => return Err(permanent(format!("HTTP {s}"))),
        };
        if let Some(length) = response.content_length()
            && start.saturating_add(length) > size
        {
            self.discard_partial(sha256).await?;
            return Err(DownloadError::TooLarge { sha256, size }.into());
        }

        let path = self.inner.cache.partial_path(&sha256);
        let open_path = path.clone();
        let file = blocking(move || {
            let path = open_path;
            let open = || -> std::io::Result<File> {
                let mut file = OpenOptions::new()
                    .create(true)
                    .write(true)
                    .truncate(false)
                    .open(&path)?;
                file.set_len(start)?;
                file.seek(SeekFrom::Start(start))?;
                Ok(file)
            };
            open().map_err(super::io_error("opening", &path))
        })
        .await?;
        let mut writer = PartialWriter::new(path, file, start);
        let mut body = response.bytes_stream();
        loop {
            let next = tokio::time::timeout(timeout, body.next()).await;
            let chunk = match next {
                Ok(None) => break,
                Ok(Some(Ok(chunk))) => chunk,
                Ok(Some(Err(e))) => {
                    writer.finish().await?;
                    return Err(Failure::Transient(format!("body cut: {e}")));
                }
                Err(_) => {
                    writer.finish().await?;
                    return Err(Failure::Transient(format!(
                        "no body bytes within {timeout:?}"
                    )));
                }
            };
            let len = chunk.len() as u64;
            if writer.total().saturating_add(len) > size {
                drop(writer);
                self.discard_partial(sha256).await?;
                return Err(DownloadError::TooLarge { sha256, size }.into());
            }
            *transferred += len;
            self.inner.rate.take(len).await;
            writer.push(&chunk).await?;
        }
        let total = writer.finish().await?;
        if total < size {
            return Err(Failure::Transient(format!(
                "body ended after {total} of {size} bytes"
            )));
        }
        self.finish(wanted, start).await
    }

    /// Verifies and admits the finished partial file.
    async fn finish(&self, wanted: &Wanted, resumed_from: u64) -> Result<u64, Failure> {
        let cache = self.inner.cache.clone();
        let (sha256, size) = (wanted.sha256, wanted.size);
        match blocking(move || cache.admit_partial(&sha256, size)).await? {
            Admission::Admitted => Ok(resumed_from),
            Admission::Mismatch { actual, len } if resumed_from > 0 => Err(Failure::Transient(
                format!("the resumed file ({len} bytes) hashes to {actual}; starting over"),
            )),
            Admission::Mismatch { actual, .. } => Err(DownloadError::HashMismatch {
                expected: sha256,
                actual,
            }
            .into()),
        }
    }

    async fn discard_partial(&self, sha256: Sha256) -> Result<(), DownloadError> {
        let cache = self.inner.cache.clone();
        blocking(move || super::remove_any(&cache.partial_path(&sha256))).await
    }
}

/// Writes a download sequentially into its partial file, fsyncing (and
/// passing the `download.after_chunk` kill point) at every multiple of
/// [`CHUNK_BYTES`].
struct PartialWriter {
    /// The file's path, for errors.
    path: PathBuf,
    /// The file (moved into blocking tasks and back).
    file: Option<File>,
    /// Bytes in the file.
    written: u64,
    /// The file length at which the next fsync happens.
    next_sync: u64,
    /// Received bytes not yet written.
    pending: Vec<u8>,
}

impl PartialWriter {
    fn new(path: PathBuf, file: File, start: u64) -> Self {
        Self {
            path,
            file: Some(file),
            written: start,
            next_sync: (start / CHUNK_BYTES + 1) * CHUNK_BYTES,
            pending: Vec::with_capacity(WRITE_BUFFER_BYTES),
        }
    }

    /// Bytes received, written or not.
    fn total(&self) -> u64 {
        self.written + self.pending.len() as u64
    }

    async fn push(&mut self, bytes: &[u8]) -> Result<(), DownloadError> {
        self.pending.extend_from_slice(bytes);
        if self.pending.len() >= WRITE_BUFFER_BYTES || self.total() >= self.next_sync {
            self.write_out().await?;
        }
        Ok(())
    }

    /// Writes what is pending; returns the file length.
    async fn finish(&mut self) -> Result<u64, DownloadError> {
        self.write_out().await?;
        Ok(self.written)
    }

    async fn write_out(&mut self) -> Result<(), DownloadError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let Some(mut file) = self.file.take() else {
            return Err(DownloadError::Task("the partial file was lost".into()));
        };
        let data = std::mem::take(&mut self.pending);
        let (mut written, mut next_sync) = (self.written, self.next_sync);
        let (file, data, written, next_sync) = tokio::task::spawn_blocking(move || {
            let mut rest = &data[..];
            while !rest.is_empty() {
                let until_sync = usize::try_from(next_sync - written).unwrap_or(usize::MAX);
                let n = rest.len().min(until_sync);
                file.write_all(&rest[..n])?;
                written += n as u64;
                rest = &rest[n..];
                if written == next_sync {
                    file.sync_data()?;
                    killpoint::reach("download.after_chunk");
                    next_sync += CHUNK_BYTES;
                }
            }
            Ok::<_, std::io::Error>((file, data, written, next_sync))
        })
        .await
        .map_err(|e| DownloadError::Task(e.to_string()))?
        .map_err(|source| CacheError::Io {
            what: "writing",
            path: self.path.clone(),
            source,
        })?;
        self.file = Some(file);
        self.pending = data;
        self.pending.clear();
        self.written = written;
        self.next_sync = next_sync;
        Ok(())
    }
}

/// The first byte position of a `Content-Range: bytes A-B/N` value.
fn content_range_start(value: &str) -> Option<u64> {
    let range = value.trim().strip_prefix("bytes ")?;
    let (first, _) = range.split_once('-')?;
    first.trim().parse().ok()
}

#[cfg(test)]
mod tests;
