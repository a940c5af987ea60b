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
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

    use axum::Router;
    use axum::body::{Body, Bytes};
    use axum::extract::{Path as UrlPath, State};
    use axum::http::{HeaderMap, StatusCode as Status};
    use axum::response::{IntoResponse as _, Response};
    use axum::routing::get;
    use base64::Engine as _;

    use super::*;
    use crate::state::Store;

    /// How the test server misbehaves.
    #[derive(Debug, Default, Clone)]
    struct Misbehaviour {
        /// Flip the first byte served.
        wrong_bytes: bool,
        /// Append this many bytes (streamed, no Content-Length).
        extra_bytes: usize,
        /// Answer 503 to this many requests first.
        fail_first: u32,
        /// Cut the next body after this many bytes (once).
        cut_after: Option<usize>,
        /// Answer 200 with everything whatever the Range.
        ignore_range: bool,
        /// Hold each request this long before answering.
        delay: Duration,
        /// Answer a Range request from one byte earlier than asked (once).
        shift_range: bool,
    }

    /// A blob server with Range support that counts what it was asked.
    #[derive(Default)]
    struct Server {
        /// Blobs by name (hex digest).
        blobs: Mutex<HashMap<String, Vec<u8>>>,
        /// The current misbehaviour.
        misbehaviour: Mutex<Misbehaviour>,
        /// Requests received.
        requests: AtomicU32,
        /// Body bytes put on the wire.
        body_bytes: AtomicU64,
        /// Requests being answered now.
        active: AtomicUsize,
        /// The most requests answered at once.
        max_active: AtomicUsize,
        /// The Authorization header of each request.
        auth: Mutex<Vec<Option<String>>>,
        /// The Range header of each request.
        ranges: Mutex<Vec<Option<String>>>,
    }

    impl Server {
        fn add(&self, bytes: Vec<u8>) -> Sha256 {
            let sha = Sha256::of(&bytes);
            self.blobs.lock().unwrap().insert(sha.to_string(), bytes);
            sha
        }

        fn set(&self, misbehaviour: Misbehaviour) {
            *self.misbehaviour.lock().unwrap() = misbehaviour;
        }

        fn requests(&self) -> u32 {
            self.requests.load(Ordering::SeqCst)
        }

        fn body_bytes(&self) -> u64 {
            self.body_bytes.load(Ordering::SeqCst)
        }
    }

    fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
        headers.get(name).map(|v| v.to_str().unwrap().to_owned())
    }

    async fn serve(
        State(server): State<Arc<Server>>,
        UrlPath(name): UrlPath<String>,
        headers: HeaderMap,
    ) -> Response {
        server.requests.fetch_add(1, Ordering::SeqCst);
        server
            .auth
            .lock()
            .unwrap()
            .push(header_text(&headers, header::AUTHORIZATION));
        let range = header_text(&headers, header::RANGE);
        server.ranges.lock().unwrap().push(range.clone());
        let now = server.active.fetch_add(1, Ordering::SeqCst) + 1;
        server.max_active.fetch_max(now, Ordering::SeqCst);
        let delay = server.misbehaviour.lock().unwrap().delay;
        tokio::time::sleep(delay).await;
        let response = answer(&server, &name, range.as_deref());
        server.active.fetch_sub(1, Ordering::SeqCst);
        response
    }

    fn answer(server: &Server, name: &str, range: Option<&str>) -> Response {
        let mut misbehaviour = server.misbehaviour.lock().unwrap();
        if misbehaviour.fail_first > 0 {
            misbehaviour.fail_first -= 1;
            return Status::SERVICE_UNAVAILABLE.into_response();
        }
        let Some(mut data) = server.blobs.lock().unwrap().get(name).cloned() else {
            return Status::NOT_FOUND.into_response();
        };
        let full = data.len();
        if misbehaviour.wrong_bytes {
            data[0] ^= 0xff;
        }
        let start = range
            .filter(|_| !misbehaviour.ignore_range)
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.strip_suffix('-'))
            .map(|n| n.parse::<usize>().unwrap());
        let mut builder = Response::builder();
        let body = match start {
            Some(n) if n >= full => {
                return Response::builder()
                    .status(Status::RANGE_NOT_SATISFIABLE)
                    .header(header::CONTENT_RANGE, format!("bytes */{full}"))
                    .body(Body::empty())
                    .unwrap();
            }
            Some(n) => {
                let n = if std::mem::take(&mut misbehaviour.shift_range) {
                    n - 1
                } else {
                    n
                };
                builder = builder.status(Status::PARTIAL_CONTENT).header(
                    header::CONTENT_RANGE,
                    format!("bytes {n}-{}/{full}", full - 1),
                );
                data.split_off(n)
            }
            None => data,
        };
        if misbehaviour.extra_bytes > 0 {
            let mut body = body;
            body.extend(std::iter::repeat_n(7u8, misbehaviour.extra_bytes));
            server
                .body_bytes
                .fetch_add(body.len() as u64, Ordering::SeqCst);
            let pieces: Vec<Result<Bytes, std::io::Error>> = body
                .chunks(16 * 1024)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect();
            return builder
                .body(Body::from_stream(futures_util::stream::iter(pieces)))
                .unwrap();
        }
        builder = builder.header(header::CONTENT_LENGTH, body.len());
        if let Some(cut) = misbehaviour.cut_after.take()
            && cut < body.len()
        {
            server.body_bytes.fetch_add(cut as u64, Ordering::SeqCst);
            // The prefix, a pause so it reaches the client, then an abort.
            let prefix: Result<Bytes, std::io::Error> = Ok(Bytes::copy_from_slice(&body[..cut]));
            let abort = futures_util::stream::once(async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                Err::<Bytes, _>(std::io::Error::other("cut"))
            });
            let stream = futures_util::stream::iter([prefix]).chain(abort);
            return builder.body(Body::from_stream(stream)).unwrap();
        }
        server
            .body_bytes
            .fetch_add(body.len() as u64, Ordering::SeqCst);
        builder.body(Body::from(body)).unwrap()
    }

    /// Starts a server on loopback; returns it and its base URL.
    async fn start_server() -> (Arc<Server>, String) {
        let server = Arc::new(Server::default());
        let app = Router::new()
            .route("/content/{name}", get(serve))
            .with_state(server.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (server, format!("http://{addr}"))
    }

    fn settings() -> DownloadSettings {
        DownloadSettings {
            concurrency: 2,
            rate_bytes_per_sec: None,
            backoff: Backoff {
                base: Duration::from_millis(1),
                cap: Duration::from_millis(5),
            },
            attempts: 3,
            credentials: None,
            timeout: Duration::from_secs(10),
        }
    }

    fn setup(settings: DownloadSettings) -> (tempfile::TempDir, Cache, Downloader) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let cache = Cache::open(dir.path(), &store, 64 << 20).unwrap();
        let downloader = Downloader::new(cache.clone(), settings).unwrap();
        (dir, cache, downloader)
    }

    /// Bytes that do not repeat with any small period.
    fn bytes(len: usize, seed: u8) -> Vec<u8> {
        let mut state = u32::from(seed).wrapping_mul(0x9e37_79b9) | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state.to_le_bytes()[0]
            })
            .collect()
    }

    fn wanted(base: &str, data: &[u8]) -> Wanted {
        let sha256 = Sha256::of(data);
        Wanted {
            sha256,
            size: data.len() as u64,
            url: format!("{base}/content/{sha256}"),
        }
    }

    fn blob_names(cache: &Cache) -> Vec<String> {
        std::fs::read_dir(cache.blobs_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    /// D2: a download cut mid-body resumes with Range and fetches only the
    /// missing bytes; the result is verified and admitted.
    #[tokio::test]
    async fn d2_resume_after_a_cut_body_fetches_only_the_missing_bytes() {
        let (server, base) = start_server().await;
        let data = bytes(700 * 1024, 1);
        server.add(data.clone());
        let cut = 300 * 1024;
        server.set(Misbehaviour {
            cut_after: Some(cut),
            ..Misbehaviour::default()
        });
        let (_dir, cache, downloader) = setup(DownloadSettings {
            attempts: 1,
            ..settings()
        });
        let want = wanted(&base, &data);

        let error = downloader.fetch(&want).await.unwrap_err();
        assert!(matches!(error, DownloadError::Transient { .. }), "{error}");
        assert_eq!(cache.partial_len(&want.sha256), cut as u64);
        assert!(blob_names(&cache).is_empty());
        assert!(!cache.contains(&want.sha256));

        let fetched = downloader.fetch(&want).await.unwrap();
        assert_eq!(fetched.resumed_from, cut as u64);
        assert_eq!(fetched.bytes_transferred, (data.len() - cut) as u64);
        assert_eq!(server.body_bytes(), data.len() as u64);
        assert_eq!(
            *server.ranges.lock().unwrap(),
            vec![None, Some(format!("bytes={cut}-"))]
        );
        assert!(cache.contains(&want.sha256));
        assert_eq!(std::fs::read(cache.blob_path(&want.sha256)).unwrap(), data);
        assert_eq!(cache.partial_len(&want.sha256), 0);

        // Cached now: no request at all.
        let again = downloader.fetch(&want).await.unwrap();
        assert_eq!(again.bytes_transferred, 0);
        assert_eq!(server.requests(), 2);
    }

    /// D2: a server that ignores Range and answers 200 restarts the file
    /// from zero (the stale prefix is not kept).
    #[tokio::test]
    async fn d2_a_200_answer_to_a_range_request_restarts_cleanly() {
        let (server, base) = start_server().await;
        let data = bytes(300 * 1024, 2);
        server.add(data.clone());
        server.set(Misbehaviour {
            ignore_range: true,
            ..Misbehaviour::default()
        });
        let (_dir, cache, downloader) = setup(settings());
        let want = wanted(&base, &data);
        // A stale prefix that is not the blob's.
        std::fs::write(cache.partial_path(&want.sha256), vec![0u8; 100 * 1024]).unwrap();

        let fetched = downloader.fetch(&want).await.unwrap();
        assert_eq!(fetched.resumed_from, 0);
        assert_eq!(server.requests(), 1);
        assert_eq!(
            *server.ranges.lock().unwrap(),
            vec![Some(format!("bytes={}-", 100 * 1024))]
        );
        assert_eq!(std::fs::read(cache.blob_path(&want.sha256)).unwrap(), data);
    }

    /// D2: a 206 whose Content-Range does not start where the partial
    /// ends is not appended: the partial is dropped and the fetch starts
    /// over from zero.
    #[tokio::test]
    async fn d2_a_206_from_the_wrong_offset_starts_over() {
        let (server, base) = start_server().await;
        let data = bytes(100 * 1024, 10);
        server.add(data.clone());
        server.set(Misbehaviour {
            shift_range: true,
            ..Misbehaviour::default()
        });
        let (_dir, cache, downloader) = setup(settings());
        let want = wanted(&base, &data);
        std::fs::write(cache.partial_path(&want.sha256), &data[..4096]).unwrap();
        let fetched = downloader.fetch(&want).await.unwrap();
        assert_eq!(fetched.resumed_from, 0);
        assert_eq!(
            *server.ranges.lock().unwrap(),
            vec![Some("bytes=4096-".to_owned()), None]
        );
        assert_eq!(std::fs::read(cache.blob_path(&want.sha256)).unwrap(), data);
    }

    /// D2: a partial that is complete already is verified without a body;
    /// a 416 answer leads to the same verification.
    #[tokio::test]
    async fn d2_a_complete_partial_is_verified_without_refetching() {
        let (server, base) = start_server().await;
        let data = bytes(10 * 1024, 3);
        server.add(data.clone());
        let (_dir, cache, downloader) = setup(settings());
        let want = wanted(&base, &data);
        std::fs::write(cache.partial_path(&want.sha256), &data).unwrap();
        let fetched = downloader.fetch(&want).await.unwrap();
        assert_eq!(fetched.resumed_from, data.len() as u64);
        assert_eq!(server.requests(), 0);
        assert!(cache.contains(&want.sha256));
    }

    /// D2: bytes that do not hash to the wanted digest never reach blobs/;
    /// the partial is deleted.
    #[tokio::test]
    async fn d2_wrong_bytes_are_a_hash_mismatch_and_leave_nothing() {
        let (server, base) = start_server().await;
        let data = bytes(50 * 1024, 4);
        server.add(data.clone());
        server.set(Misbehaviour {
            wrong_bytes: true,
            ..Misbehaviour::default()
        });
        let (_dir, cache, downloader) = setup(settings());
        let want = wanted(&base, &data);
        let error = downloader.fetch(&want).await.unwrap_err();
        let DownloadError::HashMismatch { expected, actual } = error else {
            panic!("{error}");
        };
        assert_eq!(expected, want.sha256);
        assert_ne!(actual, want.sha256);
        assert!(blob_names(&cache).is_empty());
        assert_eq!(cache.partial_len(&want.sha256), 0);
        assert!(!cache.contains(&want.sha256));
    }

    /// D2: a server sending more than the declared size is cut off.
    #[tokio::test]
    async fn d2_more_than_the_declared_size_is_too_large() {
        let (server, base) = start_server().await;
        let data = bytes(40 * 1024, 5);
        server.add(data.clone());
        server.set(Misbehaviour {
            extra_bytes: 20 * 1024,
            ..Misbehaviour::default()
        });
        let (_dir, cache, downloader) = setup(settings());
        let want = wanted(&base, &data);
        let error = downloader.fetch(&want).await.unwrap_err();
        assert!(
            matches!(error, DownloadError::TooLarge { size, .. } if size == data.len() as u64),
            "{error}"
        );
        assert!(blob_names(&cache).is_empty());
        assert_eq!(cache.partial_len(&want.sha256), 0);
        assert_eq!(server.requests(), 1);
    }

    /// Transient 503s are retried with backoff until the fetch succeeds.
    #[tokio::test]
    async fn d2_503s_are_retried_then_succeed() {
        let (server, base) = start_server().await;
        let data = bytes(1024, 6);
        server.add(data.clone());
        server.set(Misbehaviour {
            fail_first: 2,
            ..Misbehaviour::default()
        });
        let (_dir, cache, downloader) = setup(settings());
        let fetched = downloader.fetch(&wanted(&base, &data)).await.unwrap();
        assert_eq!(server.requests(), 3);
        assert!(cache.contains(&fetched.sha256));

        // More 503s than attempts: a Transient error naming the attempts.
        let other = bytes(1024, 7);
        server.add(other.clone());
        server.set(Misbehaviour {
            fail_first: 10,
            ..Misbehaviour::default()
        });
        let error = downloader.fetch(&wanted(&base, &other)).await.unwrap_err();
        assert!(
            matches!(error, DownloadError::Transient { attempts: 3, .. }),
            "{error}"
        );
        assert_eq!(server.requests(), 6);
    }

    /// A 404 is permanent: one request, no retries.
    #[tokio::test]
    async fn d2_404_is_permanent_without_retries() {
        let (server, base) = start_server().await;
        let (_dir, _cache, downloader) = setup(DownloadSettings {
            attempts: 5,
            ..settings()
        });
        let error = downloader
            .fetch(&wanted(&base, b"not on the server"))
            .await
            .unwrap_err();
        assert!(matches!(error, DownloadError::Permanent { .. }), "{error}");
        assert!(error.to_string().contains("404"));
        assert_eq!(server.requests(), 1);

        // A size-0 blob whose digest is not the empty digest: no request.
        let error = downloader
            .fetch(&Wanted {
                sha256: Sha256::of(b"x"),
                size: 0,
                url: format!("{base}/content/x"),
            })
            .await
            .unwrap_err();
        assert!(matches!(error, DownloadError::Permanent { .. }), "{error}");
        assert_eq!(server.requests(), 1);
    }

    /// The hub credentials go to URLs under the hub base URL only, never to
    /// a mirror.
    #[tokio::test]
    async fn hub_credentials_go_to_the_hub_only() {
        let (hub, hub_base) = start_server().await;
        let (mirror, mirror_base) = start_server().await;
        let on_hub = bytes(1000, 8);
        let on_mirror = bytes(1000, 9);
        hub.add(on_hub.clone());
        mirror.add(on_mirror.clone());
        let (_dir, _cache, downloader) = setup(DownloadSettings {
            credentials: Some(HubCredentials {
                base_url: hub_base.clone(),
                device_id: "dev-1".into(),
                secret: "s3cret".into(),
            }),
            ..settings()
        });
        downloader.fetch(&wanted(&hub_base, &on_hub)).await.unwrap();
        downloader
            .fetch(&wanted(&mirror_base, &on_mirror))
            .await
            .unwrap();
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("dev-1:s3cret")
        );
        assert_eq!(*hub.auth.lock().unwrap(), vec![Some(expected)]);
        assert_eq!(*mirror.auth.lock().unwrap(), vec![None]);
    }

    #[test]
    fn credentials_scope_is_scheme_host_port_and_path() {
        let base = Url::parse("https://hub.example/signet").unwrap();
        let under = |u: &str| is_under(&base, &Url::parse(u).unwrap());
        assert!(under("https://hub.example/signet/api/v1/device/content/ab"));
        assert!(under("https://hub.example:443/signet/x"));
        assert!(!under("https://hub.example/signetx/x"));
        assert!(!under("https://hub.example.evil/signet/x"));
        assert!(!under("http://hub.example/signet/x"));
        assert!(!under("https://hub.example:8443/signet/x"));
        assert!(!under("https://mirror.example/signet/x"));
        let root = Url::parse("http://127.0.0.1:8080/").unwrap();
        assert!(is_under(
            &root,
            &Url::parse("http://127.0.0.1:8080/c/d").unwrap()
        ));
    }

    /// At most `concurrency` downloads run at once.
    #[tokio::test]
    async fn concurrency_bound_is_honoured() {
        let (server, base) = start_server().await;
        server.set(Misbehaviour {
            delay: Duration::from_millis(100),
            ..Misbehaviour::default()
        });
        let datas: Vec<Vec<u8>> = (0..6).map(|i| bytes(2048, 20 + i)).collect();
        for data in &datas {
            server.add(data.clone());
        }
        let (_dir, cache, downloader) = setup(settings());
        let results = downloader
            .fetch_all(datas.iter().map(|d| wanted(&base, d)).collect())
            .await;
        assert_eq!(results.len(), 6);
        for (sha, result) in results {
            assert_eq!(result.unwrap().sha256, sha);
            assert!(cache.contains(&sha));
        }
        assert_eq!(server.max_active.load(Ordering::SeqCst), 2);
        assert_eq!(server.requests(), 6);
    }

    /// The token bucket (time injected): takers over the burst wait in
    /// proportion to the rate, and a live change applies to the next bytes.
    #[test]
    fn rate_limit_bucket_paces_bytes_and_changes_live() {
        let limiter = RateLimiter::new(Some(64 * 1024));
        let start = Instant::now();
        let mut now = start;
        for _ in 0..8 {
            // Each taker sleeps off what it was told, then takes again.
            now += limiter.charge(32 * 1024, now);
        }
        // 256 KiB at 64 KiB/s with a 16 KiB burst: (256 - 16) / 64 s.
        let elapsed = now - start;
        assert!(elapsed >= Duration::from_millis(3740), "{elapsed:?}");
        assert!(elapsed <= Duration::from_millis(3760), "{elapsed:?}");
        // Two takers at the same instant share the rate: the second waits
        // for the first's bytes too.
        let first = limiter.charge(64 * 1024, now);
        let second = limiter.charge(64 * 1024, now);
        assert_eq!(second, first + Duration::from_secs(1));

        limiter.set_rate_at(None, now);
        assert_eq!(limiter.charge(10 << 20, now), Duration::ZERO);
        limiter.set_rate_at(Some(1024 * 1024), now);
        // A 256 KiB burst, then 1 MiB at 1 MiB/s.
        let wait = limiter.charge(1024 * 1024 + 256 * 1024, now);
        assert!(wait >= Duration::from_millis(999), "{wait:?}");
        assert!(wait <= Duration::from_millis(1001), "{wait:?}");
    }

    /// A rate-limited download is paced by the shared bucket: every body
    /// byte is charged, and the bytes over the burst are slept off (less
    /// only the credit earned while not sleeping).
    #[tokio::test]
    async fn rate_limit_slows_a_transfer() {
        let (server, base) = start_server().await;
        let data = bytes(160 * 1024, 30);
        server.add(data.clone());
        let (_dir, cache, downloader) = setup(DownloadSettings {
            rate_bytes_per_sec: Some(256 * 1024),
            ..settings()
        });
        downloader.fetch(&wanted(&base, &data)).await.unwrap();
        assert!(cache.contains(&Sha256::of(&data)));
        assert_eq!(downloader.inner.rate.charged(), data.len() as u64);
        // (160 KiB - 64 KiB burst) / 256 KiB/s = 375 ms at most.
        let imposed = downloader.inner.rate.imposed();
        assert!(imposed >= Duration::from_millis(150), "{imposed:?}");
        assert!(imposed <= Duration::from_millis(376), "{imposed:?}");

        // Lifted live: the next transfer is neither charged nor slowed.
        downloader.set_rate(None);
        let other = bytes(160 * 1024, 31);
        server.add(other.clone());
        downloader.fetch(&wanted(&base, &other)).await.unwrap();
        assert_eq!(downloader.inner.rate.charged(), data.len() as u64);
        assert_eq!(downloader.inner.rate.imposed(), imposed);
    }

    /// D10: a blob that would take the cache over its limit is refused
    /// before any request.
    #[tokio::test]
    async fn d10_a_download_over_the_limit_is_refused() {
        let (server, base) = start_server().await;
        let data = bytes(4096, 40);
        server.add(data.clone());
        let (_dir, cache, downloader) = setup(settings());
        cache.set_limit(4095);
        let error = downloader.fetch(&wanted(&base, &data)).await.unwrap_err();
        assert!(matches!(error, DownloadError::CacheFull(_)), "{error}");
        assert_eq!(server.requests(), 0);
    }
}
