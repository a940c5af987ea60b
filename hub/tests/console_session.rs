//! Cookie sessions for the console (C2, S8), against a real hub over real
//! HTTP: a login sets the HttpOnly session cookie and the CSRF cookie; the
//! API accepts the cookie beside the bearer token; a cookie write without
//! the session's CSRF token is refused and changes nothing; logout revokes
//! the session and clears both cookies.
#![allow(clippy::unwrap_used)]

mod support;

use chrono::TimeDelta;
use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{PASSWORD, TestHub};

/// What a browser holds after logging in.
struct Browser {
    /// `signet_session=…; signet_csrf=…`, as a browser sends them back.
    cookies: String,
    /// The CSRF cookie's value.
    csrf: String,
    /// The login answer.
    login: Value,
    /// The `Set-Cookie` headers of the login answer.
    set_cookies: Vec<String>,
}

/// The value of cookie `name` in `Set-Cookie` headers.
fn cookie_value(set_cookies: &[String], name: &str) -> String {
    set_cookies
        .iter()
        .find_map(|c| c.strip_prefix(&format!("{name}=")))
        .map(|rest| rest.split(';').next().unwrap().to_owned())
        .unwrap_or_else(|| panic!("no {name} cookie in {set_cookies:?}"))
}

fn set_cookies(headers: &reqwest::header::HeaderMap) -> Vec<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

async fn browser_login(hub: &TestHub, name: &str, password: &str) -> Browser {
    let response = hub
        .client
        .post(format!("{}/api/v1/session", hub.base))
        .json(&json!({"name": name, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let set_cookies = set_cookies(response.headers());
    let login: Value = response.json().await.unwrap();
    let session = cookie_value(&set_cookies, "signet_session");
    let csrf = cookie_value(&set_cookies, "signet_csrf");
    Browser {
        cookies: format!("signet_session={session}; signet_csrf={csrf}"),
        csrf,
        login,
        set_cookies,
    }
}

/// Sends `method path` with the browser's cookies (never a bearer token),
/// an optional `X-CSRF-Token` and an optional JSON body.
async fn with_cookie(
    hub: &TestHub,
    browser: &Browser,
    method: Method,
    path: &str,
    csrf: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value, Vec<String>) {
    let mut request = hub
        .client
        .request(method, format!("{}{path}", hub.base))
        .header(COOKIE, &browser.cookies);
    if let Some(csrf) = csrf {
        request = request.header("X-CSRF-Token", csrf);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let cookies = set_cookies(response.headers());
    let bytes = response.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        cookies,
    )
}

async fn node_names(hub: &TestHub) -> Vec<String> {
    let (status, nodes) = hub.get(&hub.admin, "/api/v1/nodes").await;
    assert_eq!(status, StatusCode::OK);
    let mut names: Vec<String> = nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// C2: the login sets `signet_session` (HttpOnly, SameSite=Strict, Path=/,
/// not Secure over plain HTTP) and `signet_csrf` (readable by scripts),
/// expiring with the session; the answer carries the same CSRF token; the
/// cookie alone authenticates reads, and `GET /api/v1/session` answers the
/// user, the expiry and the CSRF token.
#[tokio::test]
async fn c2_login_sets_cookies_that_authenticate_reads() {
    let hub = TestHub::start_with(|c| c.token_ttl_secs = 3600).await;
    let (id, _) = hub.user("olga", "contributor", &[&hub.root]).await;
    let browser = browser_login(&hub, "olga", PASSWORD).await;

    let session = browser
        .set_cookies
        .iter()
        .find(|c| c.starts_with("signet_session="))
        .unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=3600"] {
        assert!(session.contains(attribute), "{session}");
    }
    assert!(!session.contains("Secure"), "plain HTTP: {session}");
    assert_eq!(
        cookie_value(&browser.set_cookies, "signet_session"),
        browser.login["token"].as_str().unwrap()
    );
    let csrf_cookie = browser
        .set_cookies
        .iter()
        .find(|c| c.starts_with("signet_csrf="))
        .unwrap();
    assert!(!csrf_cookie.contains("HttpOnly"), "{csrf_cookie}");
    assert!(csrf_cookie.contains("SameSite=Strict"), "{csrf_cookie}");
    assert_eq!(browser.login["csrf_token"], browser.csrf);
    assert_ne!(browser.csrf, browser.login["token"].as_str().unwrap());

    let (status, nodes, _) =
        with_cookie(&hub, &browser, Method::GET, "/api/v1/nodes", None, None).await;
    assert_eq!(status, StatusCode::OK, "{nodes}");
    assert!(nodes.as_array().is_some_and(|n| !n.is_empty()));

    let (status, me, _) =
        with_cookie(&hub, &browser, Method::GET, "/api/v1/session", None, None).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["user"]["id"], id.as_str());
    assert_eq!(me["user"]["name"], "olga");
    assert_eq!(me["csrf_token"], browser.csrf);
    assert_eq!(me["expires_at"], browser.login["expires_at"]);

    // The bearer token of the same session answers the same.
    let (status, me) = hub
        .get(browser.login["token"].as_str().unwrap(), "/api/v1/session")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["csrf_token"], browser.csrf);

    // No credential at all: 401, the code the hub uses.
    let (status, body) = hub.call(Method::GET, "/api/v1/session", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "unauthorized");
}

/// C2: a write authenticated by the cookie without the CSRF header, or
/// with a wrong one, is 403 `csrf_failed` and changes nothing; with the
/// session's token it succeeds. Bearer writes need no CSRF header.
#[tokio::test]
async fn c2_cookie_writes_need_the_csrf_token() {
    let hub = TestHub::start().await;
    hub.user("olga", "admin", &[&hub.root]).await;
    let browser = browser_login(&hub, "olga", PASSWORD).await;
    let before = node_names(&hub).await;
    let create = |name: &str| json!({"parent": hub.root, "name": name});

    let other = browser_login(&hub, "olga", PASSWORD).await;
    for csrf in [None, Some("wrong"), Some(""), Some(other.csrf.as_str())] {
        let (status, body, _) = with_cookie(
            &hub,
            &browser,
            Method::POST,
            "/api/v1/nodes",
            csrf,
            Some(create("Forged")),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "csrf {csrf:?}: {body}");
        assert_eq!(body["error"], "csrf_failed", "{body}");
        assert!(body["message"].is_string());
    }
    assert_eq!(node_names(&hub).await, before, "nothing changed");

    let (status, body, _) = with_cookie(
        &hub,
        &browser,
        Method::POST,
        "/api/v1/nodes",
        Some(&browser.csrf),
        Some(create("By cookie")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Bearer writes are unchanged: no CSRF header needed.
    let token = browser.login["token"].as_str().unwrap();
    let (status, body) = hub.post(token, "/api/v1/nodes", create("By bearer")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mut expected = before.clone();
    expected.extend(["By bearer".to_owned(), "By cookie".to_owned()]);
    expected.sort();
    assert_eq!(node_names(&hub).await, expected);
}

/// C2: logging out by cookie (with the CSRF token) revokes the session
/// and clears both cookies; the token then stops working, by cookie and as
/// a bearer token. Without the CSRF token the logout is refused.
#[tokio::test]
async fn c2_logout_clears_cookies_and_ends_the_session() {
    let hub = TestHub::start().await;
    hub.user("olga", "viewer", &[&hub.root]).await;
    let browser = browser_login(&hub, "olga", PASSWORD).await;

    let (status, body, _) = with_cookie(
        &hub,
        &browser,
        Method::DELETE,
        "/api/v1/session",
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "csrf_failed");
    let (status, _, _) =
        with_cookie(&hub, &browser, Method::GET, "/api/v1/session", None, None).await;
    assert_eq!(status, StatusCode::OK, "a refused logout ends nothing");

    let (status, _, cleared) = with_cookie(
        &hub,
        &browser,
        Method::DELETE,
        "/api/v1/session",
        Some(&browser.csrf),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for name in ["signet_session", "signet_csrf"] {
        let cookie = cleared
            .iter()
            .find(|c| c.starts_with(&format!("{name}=;")))
            .unwrap_or_else(|| panic!("{name} not cleared: {cleared:?}"));
        assert!(cookie.contains("Max-Age=0"), "{cookie}");
        assert!(cookie.contains("Path=/"), "{cookie}");
    }
    let (status, body, _) =
        with_cookie(&hub, &browser, Method::GET, "/api/v1/session", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "unauthorized");
    let (status, _) = hub
        .get(browser.login["token"].as_str().unwrap(), "/api/v1/session")
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// C2: an expired session's cookie is 401 like its token; a cookie never
/// overrides a malformed `Authorization` header.
#[tokio::test]
async fn c2_expired_cookie_is_unauthenticated() {
    let hub = TestHub::start_with(|c| c.token_ttl_secs = 600).await;
    hub.user("olga", "viewer", &[&hub.root]).await;
    let browser = browser_login(&hub, "olga", PASSWORD).await;

    let response = hub
        .client
        .get(format!("{}/api/v1/session", hub.base))
        .header(COOKIE, &browser.cookies)
        .header("Authorization", "Basic b2xnYTp4")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    hub.clock.advance(TimeDelta::seconds(600));
    let (status, body, _) =
        with_cookie(&hub, &browser, Method::GET, "/api/v1/nodes", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "unauthorized");
}

/// C2: behind TLS (`public_url` is `https://`) both cookies are `Secure`.
#[tokio::test]
async fn c2_cookies_are_secure_behind_tls() {
    let hub =
        TestHub::start_with(|c| c.public_url = Some("https://signage.example.test".into())).await;
    hub.user("olga", "viewer", &[&hub.root]).await;
    let browser = browser_login(&hub, "olga", PASSWORD).await;
    for cookie in &browser.set_cookies {
        assert!(
            cookie.ends_with("; Secure") || cookie.contains("; Secure;"),
            "{cookie}"
        );
    }
}
