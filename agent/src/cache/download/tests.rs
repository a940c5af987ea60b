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
