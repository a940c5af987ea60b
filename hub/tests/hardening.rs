//! A hub that strangers cannot starve or fool (S12, S13), over real HTTP on
//! 127.0.0.1: password spraying and lockouts, bounded password hashing,
//! per-source rate limits, the signup mail cap over a real SMTP listener,
//! image pixel limits and truncated media, look-alike login names and
//! addresses, slow connections, and the JSON error contract.
//!
//! Distinct sources are distinct loopback addresses (127.0.0.2, …): the
//! client binds its local address, so the hub sees that peer address.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use chrono::TimeDelta;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use signet_hub::mail::sender::{MailSender, SenderOptions};
use support::smtp::SmtpSink;
use support::{PASSWORD, TestHub, assert_error};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_util::sync::CancellationToken;

/// A client whose requests come from `127.0.0.{n}`.
fn client_from(n: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::from([127, 0, 0, n]))
        .build()
        .unwrap()
}

/// POSTs `body` to `path` without a login from `client`; status, JSON and
/// the `Retry-After` header.
async fn anonymous(
    hub: &TestHub,
    client: &reqwest::Client,
    path: &str,
    body: Value,
) -> (StatusCode, Value, Option<String>) {
    let response = client
        .post(format!("{}{path}", hub.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let retry = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body, retry)
}

async fn login_from(
    hub: &TestHub,
    client: &reqwest::Client,
    name: &str,
    password: &str,
) -> (StatusCode, Value, Option<String>) {
    anonymous(
        hub,
        client,
        "/api/v1/session",
        json!({"name": name, "password": password}),
    )
    .await
}

/// The admin's password (made by `init` in a fresh data directory): reset
/// to a known one through the API.
async fn admin_password(hub: &TestHub) -> &'static str {
    let (_, me) = hub.get(&hub.admin, "/api/v1/session").await;
    let id = me["user"]["id"].as_str().unwrap();
    let (status, body) = hub
        .patch(
            &hub.admin,
            &format!("/api/v1/users/{id}"),
            json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    PASSWORD
}

/// S12: a spray at `admin` from one source locks out only that source for
/// `admin`; the admin still logs in from another source meanwhile; each
/// source's failures are one aggregated audit entry per minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s12_a_spray_locks_out_only_its_source_and_is_audited_once_per_source_and_minute() {
    let hub = TestHub::start_with(|c| {
        c.login_max_failures = 3;
        c.rate_limit_per_minute = 1000;
        c.rate_limit_burst = 1000;
    })
    .await;
    let password = admin_password(&hub).await;
    let attacker = client_from(2);
    for attempt in 0..3 {
        let (status, body, _) =
            login_from(&hub, &attacker, "admin", &format!("guess {attempt}!")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
    for _ in 0..3 {
        let (status, body, retry) = login_from(&hub, &attacker, "admin", password).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        assert_eq!(body["error"], "login_throttled");
        assert!(retry.is_some());
    }
    // Another source: the right password works (after the name's delay).
    let (status, body, _) = login_from(&hub, &client_from(3), "admin", password).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the admin is not locked out: {body}"
    );

    // A second source sprays many names.
    let sprayer = client_from(4);
    for name in ["root", "operator", "admin", "guest", "root"] {
        let (status, _, _) = login_from(&hub, &sprayer, name, "Winter2026!xyz").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (_, audit) = hub
        .get(&hub.admin, "/api/v1/audit?action=session.login_failed")
        .await;
    let entries = audit.as_array().unwrap();
    assert_eq!(entries.len(), 2, "one entry per source: {audit:#}");
    let from = |ip: &str| entries.iter().find(|e| e["from"] == ip).unwrap();
    assert_eq!(from("127.0.0.2")["detail"]["failures"], 3);
    assert_eq!(from("127.0.0.2")["actor_name"], "admin");
    let spray = from("127.0.0.4");
    assert_eq!(spray["detail"]["failures"], 5);
    assert_eq!(
        spray["detail"]["names"],
        json!(["root", "operator", "admin", "guest"])
    );

    // The next minute starts a new entry.
    hub.clock.advance(TimeDelta::seconds(61));
    login_from(&hub, &sprayer, "root", "Winter2026!xyz").await;
    let (_, audit) = hub
        .get(&hub.admin, "/api/v1/audit?action=session.login_failed")
        .await;
    assert_eq!(audit.as_array().unwrap().len(), 3);
    // The locked source is free once the window passes.
    hub.clock.advance(TimeDelta::minutes(15));
    let (status, _, _) = login_from(&hub, &attacker, "admin", password).await;
    assert_eq!(status, StatusCode::OK);
}

/// S12: more concurrent logins than hash slots: the excess waits briefly,
/// then gets 503 `busy` with `Retry-After`, as JSON; known and unknown
/// names alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s12_logins_beyond_the_hash_slots_get_503_with_retry_after() {
    let hub = TestHub::start_with(|c| {
        c.password_hash_concurrency = 1;
        c.password_hash_wait_ms = 1;
        c.login_max_failures = 1000;
        c.rate_limit_per_minute = 1000;
        c.rate_limit_burst = 1000;
    })
    .await;
    let client = client_from(5);
    let attempts = (0..24).map(|i| {
        let (hub, client) = (&hub, &client);
        async move {
            let name = if i % 2 == 0 { "admin" } else { "nobody" };
            login_from(hub, client, name, "wrong password!").await
        }
    });
    let answers = futures_util::future::join_all(attempts).await;
    let busy: Vec<_> = answers
        .iter()
        .filter(|(status, _, _)| *status == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert!(!busy.is_empty(), "some logins found every slot busy");
    for (_, body, retry) in &busy {
        assert_eq!(body["error"], "busy", "{body}");
        assert!(body["message"].is_string());
        assert_eq!(retry.as_deref(), Some("1"));
    }
    assert!(
        answers.iter().all(
            |(s, _, _)| *s == StatusCode::UNAUTHORIZED || *s == StatusCode::SERVICE_UNAVAILABLE
        )
    );
    assert!(
        answers
            .iter()
            .any(|(s, _, _)| *s == StatusCode::UNAUTHORIZED)
    );
}

/// S12: routes without a login are rate-limited per source (429 with
/// `Retry-After`, JSON); another source is not affected.
#[tokio::test]
async fn s12_unauthenticated_routes_are_rate_limited_per_source() {
    let hub = TestHub::start_with(|c| {
        c.rate_limit_per_minute = 1;
        c.rate_limit_burst = 3;
    })
    .await;
    let first = client_from(6);
    for _ in 0..3 {
        let (status, _, _) = login_from(&hub, &first, "nobody", "wrong password!").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, body, retry) = login_from(&hub, &first, "nobody", "wrong password!").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"], "rate_limited");
    assert!(retry.unwrap().parse::<u64>().unwrap() >= 1);
    let pairing = anonymous(
        &hub,
        &first,
        "/api/v1/device/pairings",
        json!({"public_key": "x", "agent_version": "1", "os": "x"}),
    )
    .await;
    assert_eq!(
        pairing.0,
        StatusCode::TOO_MANY_REQUESTS,
        "one limit per source"
    );
    let (status, _, _) = login_from(&hub, &client_from(7), "nobody", "wrong password!").await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "another source is not limited"
    );
}

/// S12: 5 self-signups for one address send one mail (over real SMTP);
/// the others are refused with 429 and change nothing; an hour later
/// another may go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s12_one_signup_mail_per_address_per_hour() {
    let sink = SmtpSink::start().await;
    let hub = TestHub::start_with(|c| {
        c.smtp = Some(signet_hub::config::SmtpConfig {
            host: sink.addr.ip().to_string(),
            port: sink.addr.port(),
            from: "hub@example.test".into(),
            starttls: false,
            username: None,
            password: None,
        });
    })
    .await;
    let sender = MailSender::spawn(
        hub.state.clone(),
        SenderOptions {
            poll_interval: Duration::from_millis(20),
            ..SenderOptions::default()
        },
        CancellationToken::new(),
    );
    let (status, group) = hub
        .post(
            &hub.admin,
            "/api/v1/access-groups",
            json!({"node": hub.root, "name": "Open", "self_signup": true,
                "signup_domains": ["example.com"],
                "license": {"allow_offline": false, "offline_grace_secs": 0, "allow_export": false}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{group}");
    let signup = format!(
        "/api/v1/access-groups/{}/signup",
        group["id"].as_str().unwrap()
    );
    let client = client_from(8);
    let mut answers = Vec::new();
    for _ in 0..5 {
        answers.push(
            anonymous(
                &hub,
                &client,
                &signup,
                json!({"email": "victim@example.com", "password": PASSWORD}),
            )
            .await,
        );
    }
    assert_eq!(answers[0].0, StatusCode::ACCEPTED, "{}", answers[0].1);
    for (status, body, retry) in &answers[1..] {
        assert_eq!(*status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        assert_eq!(body["error"], "signup_mail_recently_sent");
        assert!(retry.is_some());
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while sink.received().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.received().len(), 1, "one mail to the address");
    // The mailed token is still the one that works.
    let body = sink.received()[0].body();
    let token = body
        .lines()
        .find_map(|l| l.strip_prefix("token: "))
        .unwrap()
        .to_owned();
    hub.clock.advance(TimeDelta::minutes(61));
    let again = anonymous(
        &hub,
        &client,
        &signup,
        json!({"email": "victim@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(again.0, StatusCode::ACCEPTED, "{}", again.1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while sink.received().len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(sink.received().len(), 2);
    assert!(!token.is_empty());
    sender.stop().await;
}

/// Uploads `bytes` as content; status and JSON.
async fn upload(hub: &TestHub, name: &str, bytes: Vec<u8>) -> (StatusCode, Value) {
    let response = hub
        .client
        .post(format!("{}/api/v1/content", hub.base))
        .query(&[("node", hub.root.as_str()), ("name", name)])
        .bearer_auth(&hub.admin)
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let json = response
        .headers()
        .get("content-type")
        .is_some_and(|v| v == "application/json");
    assert!(json, "answers are JSON");
    (status, response.json().await.unwrap())
}

/// A PNG of `width` × `height` by its header, made whole.
fn png_header(width: u32, height: u32) -> Vec<u8> {
    let mut png = support::png(200, 1);
    png[16..20].copy_from_slice(&width.to_be_bytes());
    png[20..24].copy_from_slice(&height.to_be_bytes());
    png
}

fn gst_file(dir: &std::path::Path, name: &str, pipeline: &str) -> Vec<u8> {
    let path = dir.join(name);
    let mut args: Vec<String> = pipeline.split_whitespace().map(str::to_owned).collect();
    args.extend([
        "!".into(),
        "filesink".into(),
        format!("location={}", path.display()),
    ]);
    let status = std::process::Command::new("gst-launch-1.0")
        .arg("-q")
        .args(&args)
        .status()
        .unwrap();
    assert!(status.success(), "gst-launch-1.0 {pipeline}");
    std::fs::read(path).unwrap()
}

/// Files under the content store, temporary uploads included.
fn stored_files(hub: &TestHub) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![hub.data.join("content")];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

/// S13: an image over the pixel limit (by its header; 46,000 × 46,000 in
/// a 200-byte file) and media cut short are refused with JSON errors and
/// nothing is stored; whole media of the same kinds are accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s13_oversized_images_and_truncated_media_are_refused_and_nothing_is_stored() {
    let hub = TestHub::start().await;
    let dir = tempfile::tempdir().unwrap();
    let png = gst_file(
        dir.path(),
        "i.png",
        "videotestsrc num-buffers=1 ! video/x-raw,width=64,height=48 ! pngenc",
    );
    let jpeg = gst_file(
        dir.path(),
        "i.jpg",
        "videotestsrc num-buffers=1 ! video/x-raw,width=64,height=48 ! jpegenc",
    );
    let mp4 = gst_file(
        dir.path(),
        "v.mp4",
        "videotestsrc num-buffers=10 ! video/x-raw,width=64,height=48 ! jpegenc ! qtmux",
    );

    let (status, body) = upload(&hub, "Huge", png_header(46_000, 46_000)).await;
    assert_error(&(status, body), StatusCode::BAD_REQUEST, "image_too_large");
    for (name, bytes) in [
        ("PNG cut at 100", png[..100].to_vec()),
        ("PNG without IEND", png[..png.len() - 12].to_vec()),
        ("JPEG cut short", jpeg[..jpeg.len() / 2].to_vec()),
        ("MP4 cut short", mp4[..mp4.len() - 100].to_vec()),
        ("GIF cut short", {
            let gif = support::gif("cut");
            gif[..gif.len() - 1].to_vec()
        }),
    ] {
        let (status, body) = upload(&hub, name, bytes).await;
        assert_error(&(status, body), StatusCode::BAD_REQUEST, "unreadable_media");
    }
    let (_, listed) = hub.get(&hub.admin, "/api/v1/content").await;
    assert_eq!(listed, json!([]), "nothing stored");
    assert_eq!(stored_files(&hub), Vec::<std::path::PathBuf>::new());

    for (name, bytes) in [("PNG", png), ("JPEG", jpeg), ("MP4", mp4)] {
        let (status, body) = upload(&hub, name, bytes).await;
        assert_eq!(status, StatusCode::CREATED, "{name}: {body}");
    }

    // The limit is the configured one.
    let small = TestHub::start_with(|c| c.max_image_pixels = 1000).await;
    let (status, body) = upload(&small, "64x48", png_header(64, 48)).await;
    assert_error(&(status, body), StatusCode::BAD_REQUEST, "image_too_large");
    let (status, body) = upload(&small, "10x10", png_header(10, 10)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// S13: look-alike login names (Cyrillic а, zero-width space, right-to-left
/// override, fullwidth, NFD `josé`, `rn` for `m`) and malformed addresses
/// are refused; NFC and NFD spellings log in as one name.
#[tokio::test]
async fn s13_look_alike_names_and_bad_addresses_are_refused() {
    let hub = TestHub::start().await;
    let create = |name: &str, email: &str| {
        hub.post(
            &hub.admin,
            "/api/v1/users",
            json!({"name": name, "email": email, "password": PASSWORD,
                "role": "viewer", "domain": [hub.root]}),
        )
    };
    let (status, body) = create("jos\u{e9}", "jose@example.com").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for (name, status, code) in [
        ("\u{430}dmin", StatusCode::BAD_REQUEST, "invalid_name"),
        ("ad\u{200b}min", StatusCode::BAD_REQUEST, "invalid_name"),
        ("\u{202e}nimda", StatusCode::BAD_REQUEST, "invalid_name"),
        (
            "\u{ff41}\u{ff44}\u{ff4d}\u{ff49}\u{ff4e}",
            StatusCode::BAD_REQUEST,
            "invalid_name",
        ),
        ("jose\u{301}", StatusCode::CONFLICT, "name_taken"),
        ("ADMIN", StatusCode::CONFLICT, "name_taken"),
        ("adrnin", StatusCode::CONFLICT, "name_confusable"),
        ("JOS\u{c9}", StatusCode::CONFLICT, "name_taken"),
    ] {
        let r = create(name, "x@example.com").await;
        assert_error(&r, status, code);
        assert!(r.1["message"].is_string(), "{name:?}");
    }
    for email in [
        "x@exa,mple.com",
        "x@example",
        "X <x@example.com>",
        "x@[10.0.0.1]",
    ] {
        assert_error(
            &create("newcomer", email).await,
            StatusCode::BAD_REQUEST,
            "invalid_email",
        );
    }
    hub.login("jose\u{301}", PASSWORD).await;
    hub.login("jos\u{e9}", PASSWORD).await;
    let (_, users) = hub.get(&hub.admin, "/api/v1/users").await;
    assert_eq!(users.as_array().unwrap().len(), 2, "only admin and josé");
}

/// Opens a raw connection, sends `first`, then one byte of `trickle` every
/// second; returns how long until the hub closed it (or `None` if it is
/// still open after 35 s).
async fn slow_client(addr: SocketAddr, first: Vec<u8>, trickle: bool) -> Option<Duration> {
    let started = Instant::now();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(&first).await.unwrap();
    let mut buffer = [0u8; 4096];
    while started.elapsed() < Duration::from_secs(35) {
        tokio::select! {
            read = stream.read(&mut buffer) => match read {
                Ok(0) | Err(_) => return Some(started.elapsed()),
                Ok(_) => {} // an error answer; the close follows
            },
            () = tokio::time::sleep(Duration::from_secs(1)) => {
                if trickle && stream.write_all(b"x").await.is_err() {
                    return Some(started.elapsed());
                }
            }
        }
    }
    None
}

/// S12: 200 slow connections (100 trickling headers, 100 stalling bodies)
/// are closed within 30 s by the default timeouts, and `/healthz` keeps
/// answering meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s12_slow_connections_are_closed_while_healthz_answers() {
    let hub = TestHub::start().await;
    let addr: SocketAddr = hub.base.trim_start_matches("http://").parse().unwrap();
    let mut clients = Vec::new();
    for i in 0..200 {
        let first = if i % 2 == 0 {
            b"GET /healthz HTTP/1.1\r\nHost: hub\r\nX-Slow: ".to_vec()
        } else {
            b"POST /api/v1/session HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\n\
              Content-Length: 1000\r\n\r\n{\"name\": \"adm"
                .to_vec()
        };
        clients.push(tokio::spawn(slow_client(addr, first, i % 2 == 0)));
    }
    let health = hub.client.clone();
    let url = format!("{}/healthz", hub.base);
    let started = Instant::now();
    let mut answered = 0;
    while started.elapsed() < Duration::from_secs(12) {
        let response = tokio::time::timeout(Duration::from_secs(5), health.get(&url).send())
            .await
            .expect("/healthz answers while slow clients hang on")
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        answered += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(answered > 10);
    for (i, client) in clients.into_iter().enumerate() {
        let closed = client.await.unwrap();
        assert!(
            closed.is_some_and(|t| t <= Duration::from_secs(30)),
            "slow client {i} closed after {closed:?}"
        );
    }
}

/// S12: an upload that stalls is dropped after the (configured) idle
/// timeout: the answer is a JSON error, the connection closes and nothing
/// is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s12_a_stalled_upload_is_dropped_after_the_idle_timeout() {
    let hub = TestHub::start_with(|c| c.http_body_idle_secs = 2).await;
    let addr: SocketAddr = hub.base.trim_start_matches("http://").parse().unwrap();
    let body = support::png(100_000, 3);
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/v1/content?node={}&name=Stalled HTTP/1.1\r\nHost: hub\r\n\
         Authorization: Bearer {}\r\nContent-Length: {}\r\n\r\n",
        hub.root,
        hub.admin,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body[..10_000]).await.unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the connection is closed");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(1),
        "not before the idle timeout"
    );
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        answer.contains("application/json") && answer.contains("upload_incomplete"),
        "{answer}"
    );
    let (_, listed) = hub.get(&hub.admin, "/api/v1/content").await;
    assert_eq!(listed, json!([]));
    assert_eq!(stored_files(&hub), Vec::<std::path::PathBuf>::new());
}

/// Sends a raw request line (so the path goes out exactly as written).
async fn raw(hub: &TestHub, request: &str) -> (u16, String, Value) {
    let addr: SocketAddr = hub.base.trim_start_matches("http://").parse().unwrap();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_owned)
        })
        .unwrap_or_default();
    (
        status,
        content_type,
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

/// S13, DESIGN §7: every 4xx is the `{"error", "message"}` JSON contract
/// with `application/json`: unknown routes, wrong methods, undecodable path
/// ids, bad JSON, bodies too large. (An unknown path outside `/api/` is the
/// console's: a history route, answered with its page, C1.)
#[tokio::test]
async fn s13_every_error_is_the_json_contract() {
    let hub = TestHub::start_with(|c| c.max_body_bytes = 2048).await;
    let token = hub.admin.clone();
    let auth = format!("Authorization: Bearer {token}\r\n");
    let big = "x".repeat(4096);
    let cases = [
        (
            "GET /api/v1/no/such/route HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n".to_owned(),
            404,
            "not_found",
        ),
        (
            "DELETE /healthz HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n".to_owned(),
            405,
            "method_not_allowed",
        ),
        (
            format!(
                "GET /api/v1/users/%FF%FE HTTP/1.1\r\nHost: h\r\n{auth}Connection: close\r\n\r\n"
            ),
            400,
            "bad_request",
        ),
        (
            format!(
                "GET /api/v1/nodes/%C3%28 HTTP/1.1\r\nHost: h\r\n{auth}Connection: close\r\n\r\n"
            ),
            400,
            "bad_request",
        ),
        (
            "POST /api/v1/session HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n\
             Content-Length: 9\r\nConnection: close\r\n\r\n{\"name\": "
                .to_owned(),
            400,
            "invalid_body",
        ),
        (
            format!(
                "POST /api/v1/nodes HTTP/1.1\r\nHost: h\r\n{auth}Content-Type: application/json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{{\"name\": \"{big}\"}}",
                big.len() + 12
            ),
            413,
            "body_too_large",
        ),
    ];
    for (request, status, code) in cases {
        let (got, content_type, body) = raw(&hub, &request).await;
        let line = request.lines().next().unwrap().to_owned();
        assert_eq!(got, status, "{line}: {body}");
        assert_eq!(content_type, "application/json", "{line}");
        assert_eq!(body["error"], code, "{line}: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{line}: {body}"
        );
    }
    let (status, body) = hub.call(Method::PUT, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    assert_eq!(body["error"], "method_not_allowed");
}
