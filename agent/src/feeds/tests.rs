//! Feeds against a real HTTP server on 127.0.0.1 (D6).
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tokio::sync::oneshot;

use super::*;

/// What `/value` answers.
#[derive(Clone, Debug)]
enum Mode {
    /// `{"data": {"title": …}}`.
    Ok(String),
    /// 500.
    Fail,
    /// 200 with a body that is not JSON.
    Garbage,
    /// Answers after ten seconds (past the test client's timeout).
    Slow,
}

/// The test server's shared state.
#[derive(Clone)]
struct Served {
    /// What `/value` answers.
    mode: Arc<Mutex<Mode>>,
    /// `/count`'s counter.
    count: Arc<AtomicU64>,
    /// Whether `/count` fails (500).
    count_fails: Arc<Mutex<bool>>,
    /// Requests to `/count`, failed ones included.
    count_hits: Arc<AtomicU64>,
}

async fn value(State(s): State<Served>) -> Response {
    let mode = s.mode.lock().unwrap().clone();
    match mode {
        Mode::Ok(title) => axum::Json(json!({"data": {"title": title}})).into_response(),
        Mode::Fail => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Mode::Garbage => "<html>not json".into_response(),
        Mode::Slow => {
            tokio::time::sleep(Duration::from_secs(10)).await;
            axum::Json(json!({"data": {"title": "late"}})).into_response()
        }
    }
}

async fn count(State(s): State<Served>) -> Response {
    s.count_hits.fetch_add(1, Ordering::SeqCst);
    if *s.count_fails.lock().unwrap() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let n = s.count.fetch_add(1, Ordering::SeqCst) + 1;
    axum::Json(json!({"n": n})).into_response()
}

async fn echo(uri: Uri) -> axum::Json<serde_json::Value> {
    axum::Json(json!({"uri": uri.path_and_query().map(ToString::to_string)}))
}

/// A JSON string document of exactly `size` bytes.
fn json_of_size(size: usize) -> String {
    format!("\"{}\"", "a".repeat(size - 2))
}

/// Starts the server; returns its base URL and state.
async fn serve() -> (String, Served) {
    let served = Served {
        mode: Arc::new(Mutex::new(Mode::Ok("first".to_owned()))),
        count: Arc::new(AtomicU64::new(0)),
        count_fails: Arc::new(Mutex::new(false)),
        count_hits: Arc::new(AtomicU64::new(0)),
    };
    let app = Router::new()
        .route("/value", get(value))
        .route("/count", get(count))
        .route("/echo/{*rest}", get(echo))
        .route("/fail", get(|| async { StatusCode::SERVICE_UNAVAILABLE }))
        .route(
            "/exact",
            get(|| async { json_of_size(MAX_FEED_BODY_BYTES) }),
        )
        .route(
            "/big",
            get(|| async { json_of_size(MAX_FEED_BODY_BYTES + 1) }),
        )
        .route(
            "/big-chunked",
            get(|| async {
                // No Content-Length: the limit must hold while reading.
                let chunks = (0..300).map(|i| {
                    let chunk = if i == 0 {
                        "\"".to_owned()
                    } else {
                        "a".repeat(1024)
                    };
                    Ok::<_, std::io::Error>(chunk)
                });
                axum::body::Body::from_stream(futures_util::stream::iter(chunks))
            }),
        )
        .with_state(served.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, served)
}

fn binding(url: &str, pointer: &str, refresh_secs: u32, last: Option<&str>) -> FeedBinding {
    FeedBinding {
        url: url.to_owned(),
        json_pointer: pointer.to_owned(),
        refresh_secs,
        last_value: last.map(str::to_owned),
    }
}

fn vars(pairs: &[(u8, &str)]) -> BTreeMap<u8, String> {
    pairs.iter().map(|(n, v)| (*n, (*v).to_owned())).collect()
}

/// Feeds with a short request timeout and a 1 s refresh floor.
fn quick(store: &Store) -> Feeds {
    Feeds::with_settings(
        store,
        FeedSettings {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_millis(400),
            min_refresh: Duration::from_secs(1),
        },
    )
    .unwrap()
}

/// D6: `[n]` becomes the device's value, percent-encoded; other brackets
/// stay; a missing variable is refused by name; out of range is refused.
#[test]
fn d6_resolve_url_substitutes_and_encodes() {
    let v = vars(&[(1, "store 12/ä"), (3, "de"), (25, "a&b=c?#")]);
    assert_eq!(
        resolve_url("https://x.test/s/[1]/menu?lang=[3]&k=[25]&again=[3]", &v).unwrap(),
        "https://x.test/s/store%2012%2F%C3%A4/menu?lang=de&k=a%26b%3Dc%3F%23&again=de"
    );
    assert_eq!(
        resolve_url("http://[::1]:8080/[x]/[3]", &v).unwrap(),
        "http://[::1]:8080/[x]/de"
    );
    assert_eq!(
        resolve_url("https://x.test/plain", &BTreeMap::new()).unwrap(),
        "https://x.test/plain"
    );
    let err = resolve_url("https://x.test/[1]/[2]", &v).unwrap_err();
    assert!(matches!(err, FeedError::MissingVariable(2)), "{err:?}");
    assert!(err.to_string().contains("[2]"), "{err}");
    let err = resolve_url("https://x.test/[26]", &v).unwrap_err();
    assert!(matches!(err, FeedError::BadVariable(_)), "{err:?}");
    // A value holding "[3]" is not substituted again.
    let tricky = vars(&[(1, "[3]"), (3, "x")]);
    assert_eq!(
        resolve_url("http://h/[1]/[3]", &tricky).unwrap(),
        "http://h/%5B3%5D/x"
    );
}

/// D6: RFC 6901 pointers; strings as-is, numbers and booleans as text;
/// null, objects, arrays and missing paths refused; control characters
/// removed; long values clipped to 1024 characters.
#[test]
fn d6_extract_pointer_cases() {
    let doc = json!({
        "a": {"b": "text", "n": 21.5, "i": -3, "t": true, "f": false, "z": null,
              "o": {}, "l": [1, "two"], "c": "line\nnext\u{7}bell", "e": "\n\t",
              "long": "é".repeat(2000)},
        "x/y": "slash", "m~n": "tilde", "": "empty key"
    });
    assert_eq!(extract(&doc, "/a/b").unwrap(), "text");
    assert_eq!(extract(&doc, "/a/n").unwrap(), "21.5");
    assert_eq!(extract(&doc, "/a/i").unwrap(), "-3");
    assert_eq!(extract(&doc, "/a/t").unwrap(), "true");
    assert_eq!(extract(&doc, "/a/f").unwrap(), "false");
    assert_eq!(extract(&doc, "/a/l/1").unwrap(), "two");
    assert_eq!(extract(&doc, "/x~1y").unwrap(), "slash");
    assert_eq!(extract(&doc, "/m~0n").unwrap(), "tilde");
    assert_eq!(extract(&doc, "/").unwrap(), "empty key");
    assert_eq!(extract(&doc, "/a/c").unwrap(), "linenextbell");
    let long = extract(&doc, "/a/long").unwrap();
    assert_eq!(long.chars().count(), MAX_VALUE_CHARS);
    assert!(long.chars().all(|c| c == 'é'));
    assert_eq!(extract(&json!("whole"), "").unwrap(), "whole");
    assert_eq!(extract(&json!(7), "").unwrap(), "7");
    for (pointer, found) in [
        ("/a/z", "null"),
        ("/a/o", "an object"),
        ("/a/l", "an array"),
        ("", "an object"),
    ] {
        match extract(&doc, pointer) {
            Err(FeedError::NotText { found: f, .. }) => assert_eq!(f, found, "{pointer}"),
            other => panic!("{pointer}: {other:?}"),
        }
    }
    for pointer in ["/a/missing", "/a/l/2", "/a/l/01", "a/b", "/a/b/c"] {
        assert!(
            matches!(extract(&doc, pointer), Err(FeedError::NotFound(_))),
            "{pointer}"
        );
    }
    assert!(matches!(extract(&doc, "/a/e"), Err(FeedError::Empty(_))));
}

/// D6: a fetched value is the last good one; a 500, garbage and a timeout
/// each fail and leave it, also after the store is closed and reopened.
#[tokio::test]
async fn d6_last_good_survives_failures_and_restart() {
    let (base, served) = serve().await;
    let dir = tempfile::tempdir().unwrap();
    let feed = binding(&format!("{base}/value"), "/data/title", 5, Some("stale"));
    let none = BTreeMap::new();
    {
        let store = Store::open(dir.path()).unwrap();
        let feeds = quick(&store);
        assert_eq!(feeds.last_good(&feed, &none), None);
        assert_eq!(feeds.fetch(&feed, &none).await.unwrap(), "first");
        assert_eq!(feeds.last_good(&feed, &none).as_deref(), Some("first"));
        *served.mode.lock().unwrap() = Mode::Ok("second".to_owned());
        assert_eq!(feeds.fetch(&feed, &none).await.unwrap(), "second");

        *served.mode.lock().unwrap() = Mode::Fail;
        let err = feeds.fetch(&feed, &none).await.unwrap_err();
        assert!(
            matches!(err, FeedError::Status { status: 500, .. }),
            "{err:?}"
        );
        *served.mode.lock().unwrap() = Mode::Garbage;
        let err = feeds.fetch(&feed, &none).await.unwrap_err();
        assert!(matches!(err, FeedError::NotJson { .. }), "{err:?}");
        *served.mode.lock().unwrap() = Mode::Slow;
        let started = std::time::Instant::now();
        let err = feeds.fetch(&feed, &none).await.unwrap_err();
        assert!(matches!(err, FeedError::Request { .. }), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(5), "timed out late");
        *served.mode.lock().unwrap() = Mode::Ok(String::new());
        let err = feeds.fetch(&feed, &none).await.unwrap_err();
        assert!(matches!(err, FeedError::Empty(_)), "{err:?}");
        assert_eq!(feeds.last_good(&feed, &none).as_deref(), Some("second"));
        // A refused URL names nothing stored.
        let elsewhere = binding(&format!("{base}/fail"), "/data/title", 5, None);
        assert!(feeds.fetch(&elsewhere, &none).await.is_err());
        assert_eq!(feeds.last_good(&elsewhere, &none), None);
    }
    let store = Store::open(dir.path()).unwrap();
    let feeds = quick(&store);
    assert_eq!(feeds.last_good(&feed, &none).as_deref(), Some("second"));
    let stored = FeedValues::open(&store)
        .unwrap()
        .get(&format!("{base}/value"), "/data/title")
        .unwrap()
        .unwrap();
    assert_eq!(stored.value, "second");
}

/// D6: the variables reach the server percent-encoded, each resolved URL
/// keeps its own last good value, and a missing variable fetches nothing.
#[tokio::test]
async fn d6_fetch_with_variables() {
    let (base, _) = serve().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let feeds = quick(&store);
    let feed = binding(&format!("{base}/echo/[1]?lang=[3]"), "/uri", 5, None);
    let store12 = vars(&[(1, "store 12"), (3, "de")]);
    assert_eq!(
        feeds.fetch(&feed, &store12).await.unwrap(),
        "/echo/store%2012?lang=de"
    );
    let store7 = vars(&[(1, "store-7"), (3, "fr")]);
    assert_eq!(feeds.last_good(&feed, &store7), None);
    assert_eq!(
        feeds.fetch(&feed, &store7).await.unwrap(),
        "/echo/store-7?lang=fr"
    );
    assert_eq!(
        feeds.last_good(&feed, &store12).as_deref(),
        Some("/echo/store%2012?lang=de")
    );
    let err = feeds.fetch(&feed, &vars(&[(1, "x")])).await.unwrap_err();
    assert!(matches!(err, FeedError::MissingVariable(3)), "{err:?}");
    let err = feeds
        .fetch(&binding("ftp://127.0.0.1/x", "", 5, None), &BTreeMap::new())
        .await
        .unwrap_err();
    assert!(matches!(err, FeedError::BadUrl { .. }), "{err:?}");
}

/// D6: a body over 256 KiB is refused (with and without Content-Length)
/// and stores nothing; exactly 256 KiB is read.
#[tokio::test]
async fn d6_oversized_body_refused() {
    let (base, _) = serve().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let feeds = quick(&store);
    let none = BTreeMap::new();
    let exact = feeds
        .fetch(&binding(&format!("{base}/exact"), "", 5, None), &none)
        .await
        .unwrap();
    assert_eq!(exact.chars().count(), MAX_VALUE_CHARS);
    for path in ["big", "big-chunked"] {
        let feed = binding(&format!("{base}/{path}"), "", 5, None);
        let err = feeds.fetch(&feed, &none).await.unwrap_err();
        assert!(matches!(err, FeedError::TooLarge { .. }), "{path}: {err:?}");
        assert_eq!(feeds.last_good(&feed, &none), None);
    }
}

/// Waits (at most 10 s) until `check` holds for the texts, asserting on
/// every version seen that no text is empty and `invariant` holds.
async fn wait_texts(
    rx: &mut watch::Receiver<BTreeMap<String, String>>,
    what: &str,
    invariant: impl Fn(&BTreeMap<String, String>),
    check: impl Fn(&BTreeMap<String, String>) -> bool,
) -> BTreeMap<String, String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = rx.borrow_and_update().clone();
        assert!(now.values().all(|t| !t.trim().is_empty()), "{now:?}");
        invariant(&now);
        if check(&now) {
            return now;
        }
        tokio::time::timeout_at(deadline, rx.changed())
            .await
            .unwrap_or_else(|_| panic!("{what}: texts stayed {now:?}"))
            .unwrap();
    }
}

/// D6: `run` refreshes on the interval, refetches at once when the
/// variables change, and a failing feed keeps its last good text (or the
/// binding's last value, or no entry at all) — never an empty text.
#[tokio::test]
async fn d6_run_refreshes_and_never_blanks() {
    let (base, served) = serve().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let feeds = quick(&store);
    let (wanted_tx, wanted_rx) = watch::channel(vec![
        (
            "count".to_owned(),
            binding(&format!("{base}/count"), "/n", 1, None),
        ),
        (
            "down".to_owned(),
            binding(&format!("{base}/fail"), "/x", 1, Some("offline text")),
        ),
        (
            "none".to_owned(),
            binding(&format!("{base}/fail"), "/x", 1, None),
        ),
        (
            "var".to_owned(),
            binding(&format!("{base}/echo/[1]"), "/uri", 3600, None),
        ),
    ]);
    let (vars_tx, vars_rx) = watch::channel(vars(&[(1, "a")]));
    let (texts_tx, mut texts) = watch::channel(BTreeMap::new());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(run(feeds, wanted_rx, vars_rx, texts_tx, async {
        let _ = stopped.await;
    }));
    let invariant = |t: &BTreeMap<String, String>| {
        assert_eq!(
            t.get("down").map(String::as_str),
            Some("offline text"),
            "{t:?}"
        );
        assert!(!t.contains_key("none"), "{t:?}");
    };
    let count = |t: &BTreeMap<String, String>| {
        t.get("count")
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };

    // The first texts, before any fetch: the fallbacks.
    tokio::time::timeout(Duration::from_secs(5), texts.changed())
        .await
        .unwrap()
        .unwrap();
    invariant(&texts.borrow());

    // The interval: a first value, then a newer one a refresh later.
    let seen = wait_texts(&mut texts, "first count", invariant, |t| count(t) >= 1).await;
    assert_eq!(seen.get("var").map(String::as_str), Some("/echo/a"));
    wait_texts(&mut texts, "refreshed count", invariant, |t| count(t) >= 2).await;

    // New variables: fetched at once, not an hour later.
    vars_tx.send(vars(&[(1, "b")])).unwrap();
    wait_texts(&mut texts, "new variable", invariant, |t| {
        t.get("var").map(String::as_str) == Some("/echo/b")
    })
    .await;

    // The count feed fails: it is tried again, its text stays.
    *served.count_fails.lock().unwrap() = true;
    let last = count(&texts.borrow());
    let hits = served.count_hits.load(Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(10);
    while served.count_hits.load(Ordering::SeqCst) < hits + 2 {
        assert!(
            Instant::now() < deadline,
            "the failing feed was not retried"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let now = texts.borrow().clone();
    invariant(&now);
    assert!(count(&now) >= last, "{now:?}");
    assert_eq!(served.count.load(Ordering::SeqCst), count(&now));

    // Wanted bindings change: a dropped zone leaves the texts.
    wanted_tx
        .send(vec![(
            "count".to_owned(),
            binding(&format!("{base}/count"), "/n", 1, None),
        )])
        .unwrap();
    let after = wait_texts(&mut texts, "zones dropped", |_| {}, |t| t.len() == 1).await;
    assert_eq!(count(&after), served.count.load(Ordering::SeqCst));

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}

/// D6: after a restart with the feed down, `run` shows the stored last good
/// value at once and keeps it through failed fetches.
#[tokio::test]
async fn d6_run_starts_with_last_good_when_offline() {
    let (base, served) = serve().await;
    let dir = tempfile::tempdir().unwrap();
    let feed = binding(&format!("{base}/count"), "/n", 1, Some("never shown"));
    {
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(
            quick(&store).fetch(&feed, &BTreeMap::new()).await.unwrap(),
            "1"
        );
    }
    *served.count_fails.lock().unwrap() = true;
    let store = Store::open(dir.path()).unwrap();
    let (_wanted_tx, wanted_rx) = watch::channel(vec![("n".to_owned(), feed)]);
    let (_vars_tx, vars_rx) = watch::channel(BTreeMap::new());
    let (texts_tx, mut texts) = watch::channel(BTreeMap::new());
    let (stop, stopped) = oneshot::channel::<()>();
    let hits = served.count_hits.load(Ordering::SeqCst);
    let task = tokio::spawn(run(quick(&store), wanted_rx, vars_rx, texts_tx, async {
        let _ = stopped.await;
    }));
    let shown = wait_texts(&mut texts, "last good", |_| {}, |t| !t.is_empty()).await;
    assert_eq!(shown.get("n").map(String::as_str), Some("1"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while served.count_hits.load(Ordering::SeqCst) < hits + 2 {
        assert!(Instant::now() < deadline, "the feed was not retried");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(texts.borrow().get("n").map(String::as_str), Some("1"));
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}
