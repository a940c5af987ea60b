//! The operator console at `/` (C1, DESIGN §8), against a real hub over
//! real HTTP: the build's files, history routes answered with
//! `index.html`, the placeholder page without a build, the JSON 404 kept
//! for unknown API paths, and the console's caching and security headers.
#![allow(clippy::unwrap_used)]

mod support;

use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderMap};
use support::TestHub;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const INDEX: &str = "<!doctype html><title>Signet console (test build)</title>\
    <script type=\"module\" src=\"/assets/app-1a2b3c.js\"></script>";
const SCRIPT: &str = "console.log('signet');";

/// A console build like Vite's: `index.html` and hashed files in `assets/`;
/// beside it, outside the build, a file no request may reach.
fn test_build(dir: &std::path::Path) -> std::path::PathBuf {
    let dist = dir.join("dist");
    std::fs::create_dir_all(dist.join("assets")).unwrap();
    std::fs::write(dist.join("index.html"), INDEX).unwrap();
    std::fs::write(dist.join("assets/app-1a2b3c.js"), SCRIPT).unwrap();
    std::fs::write(dist.join("favicon.svg"), "<svg/>").unwrap();
    std::fs::write(dir.join("secret.txt"), "outside the build").unwrap();
    dist
}

async fn get(hub: &TestHub, path: &str) -> (StatusCode, HeaderMap, String) {
    let response = hub
        .client
        .get(format!("{}{path}", hub.base))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

/// The console's security headers: a same-origin CSP and the three others.
fn assert_security_headers(headers: &HeaderMap) {
    let csp = header(headers, "content-security-policy");
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("http"), "no external origin: {csp}");
    assert!(!csp.contains("unsafe-eval"), "{csp}");
    assert_eq!(header(headers, "x-content-type-options"), "nosniff");
    assert_eq!(header(headers, "referrer-policy"), "same-origin");
    assert_eq!(header(headers, "x-frame-options"), "DENY");
}

/// C1: `/` and a deep link answer the build's `index.html` (no-cache),
/// hashed assets are immutable, a missing hashed asset is a 404 (never
/// HTML), and every console answer carries the security headers.
#[tokio::test]
async fn c1_console_files_and_history_routes() {
    let dir = tempfile::tempdir().unwrap();
    let dist = test_build(dir.path());
    let hub = TestHub::start_with(|c| c.console_dir = Some(dist)).await;

    for path in ["/", "/devices/x", "/content/c-1/edit", "/index.html"] {
        let (status, headers, body) = get(&hub, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(body, INDEX, "{path}");
        assert_eq!(header(&headers, "content-type"), "text/html; charset=utf-8");
        assert_eq!(header(&headers, "cache-control"), "no-cache", "{path}");
        assert_security_headers(&headers);
    }

    let (status, headers, body) = get(&hub, "/assets/app-1a2b3c.js").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, SCRIPT);
    assert!(header(&headers, CONTENT_TYPE.as_str()).starts_with("text/javascript"));
    assert_eq!(
        header(&headers, CACHE_CONTROL.as_str()),
        "public, max-age=31536000, immutable"
    );
    assert_security_headers(&headers);

    let (status, headers, _) = get(&hub, "/favicon.svg").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "content-type"), "image/svg+xml");

    let (status, headers, body) = get(&hub, "/assets/gone-000000.js").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(header(&headers, "content-type").starts_with("application/json"));
    assert!(body.contains("\"not_found\""), "{body}");

    // HEAD answers the headers without the body.
    let response = hub
        .client
        .head(format!("{}/devices/x", hub.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "");
}

/// C1, S13: unknown API paths keep the JSON error contract, writes to
/// console paths are not the console's, and the API and its docs still
/// answer beside it.
#[tokio::test]
async fn c1_api_paths_stay_the_apis() {
    let dir = tempfile::tempdir().unwrap();
    let dist = test_build(dir.path());
    let hub = TestHub::start_with(|c| c.console_dir = Some(dist)).await;

    for path in ["/api/unknown", "/api/v1/nothing-here", "/api"] {
        let (status, headers, body) = get(&hub, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(header(&headers, "content-type").starts_with("application/json"));
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"], "not_found", "{path}");
    }
    let (status, body) = hub
        .call(reqwest::Method::POST, "/devices/x", None, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found");

    let (status, _, body) = get(&hub, "/healthz").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    let (status, _) = hub.get(&hub.admin, "/api/v1/nodes").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = get(&hub, "/api/docs/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("swagger"), "the API docs page");
}

/// C1: no request path reaches a file outside the build, whatever its
/// dots (sent raw, as a client that does not normalize paths would).
#[tokio::test]
async fn c1_no_path_leaves_the_build() {
    let dir = tempfile::tempdir().unwrap();
    let dist = test_build(dir.path());
    let hub = TestHub::start_with(|c| c.console_dir = Some(dist)).await;
    let addr = hub.base.trim_start_matches("http://").to_owned();
    for path in [
        "/../secret.txt",
        "/assets/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
    ] {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .await
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(!answer.contains("outside the build"), "{path}: {answer}");
    }
}

/// C1: without a console build the hub answers every console path with
/// one page saying how to build it (`make console`), with the same
/// headers; the API is unaffected.
#[tokio::test]
async fn c1_placeholder_without_a_build() {
    let empty = tempfile::tempdir().unwrap();
    let hub = TestHub::start_with(|c| c.console_dir = Some(empty.path().to_owned())).await;
    for path in ["/", "/devices/x"] {
        let (status, headers, body) = get(&hub, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(header(&headers, "content-type"), "text/html; charset=utf-8");
        assert!(body.contains("make console"), "{body}");
        assert_security_headers(&headers);
    }
    let (status, _, _) = get(&hub, "/api/unknown").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// C1: the console built into the binary (`console/dist` at build time,
/// read from there in debug builds): its `index.html` when the console
/// was built, else the placeholder.
#[tokio::test]
async fn c1_built_in_console_or_placeholder() {
    let hub = TestHub::start().await;
    let built = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../console/dist/index.html");
    let (status, headers, body) = get(&hub, "/devices/x").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "content-type"), "text/html; charset=utf-8");
    assert_security_headers(&headers);
    match std::fs::read_to_string(&built) {
        Ok(index) => assert_eq!(body, index),
        Err(_) => assert!(body.contains("make console"), "{body}"),
    }
}

/// C1: `signet-hub openapi` prints exactly the document the hub serves at
/// `/api/v1/openapi.json` (the console's types are generated from a copy
/// of it, which `make console-spec-check` compares with this output).
#[tokio::test]
async fn c1_openapi_command_prints_the_served_document() {
    let hub = TestHub::start().await;
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_signet-hub"))
        .arg("openapi")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(
        output.stdout.ends_with(b"}\n"),
        "pretty JSON, one final newline"
    );
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let (status, served) = hub
        .call(reqwest::Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(printed, served);
    // The session cookie is documented beside the bearer token (C2).
    assert_eq!(
        printed["components"]["securitySchemes"]["session_cookie"]["in"],
        "cookie"
    );
    assert_eq!(
        printed["paths"]["/api/v1/nodes"]["post"]["security"],
        serde_json::json!([{"bearer": []}, {"session_cookie": []}])
    );
}

/// C11, L6, DESIGN §8: the public page paths answer the console
/// (history routes); only the self-signup page of a group that takes
/// self-signups may be framed by other sites (no `X-Frame-Options`,
/// `frame-ancestors *`) — a closed group's, the confirmation page and
/// every other page keep `DENY`.
#[tokio::test]
async fn c11_l6_only_the_signup_page_of_an_open_group_may_be_framed() {
    let dir = tempfile::tempdir().unwrap();
    let dist = test_build(dir.path());
    let hub = TestHub::start_with(|c| c.console_dir = Some(dist)).await;
    let license = serde_json::json!({"allow_offline": false, "offline_grace_secs": 0,
        "allow_export": false});
    let mut groups = Vec::new();
    for open in [true, false] {
        let body = serde_json::json!({"node": hub.root, "name": format!("open {open}"),
            "license": license, "self_signup": open, "signup_domains": ["example.test"]});
        let (status, group) = hub.post(&hub.admin, "/api/v1/access-groups", body).await;
        assert_eq!(status, StatusCode::CREATED, "{group}");
        groups.push(group["id"].as_str().unwrap().to_owned());
    }
    let open = format!("/signup/{}", groups[0]);
    let (status, headers, body) = get(&hub, &format!("{open}?embed=1")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, INDEX));
    assert!(headers.get("x-frame-options").is_none(), "{headers:?}");
    let csp = header(&headers, "content-security-policy");
    assert!(csp.ends_with("frame-ancestors *"), "{csp}");
    assert!(csp.contains("default-src 'self'") && csp.contains("script-src 'self'"));

    let closed = format!("/signup/{}", groups[1]);
    for path in [
        closed.as_str(),
        "/signup/no-such-group",
        "/signup/confirm/t0ken",
        "/invite/t0ken",
        "/password/set/t0ken",
        "/my",
    ] {
        let (status, headers, body) = get(&hub, path).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, INDEX), "{path}");
        assert_security_headers(&headers);
    }
}
