//! Identity and sessions over HTTP (S8, T3): login, throttling, expiry,
//! revocation, and changes that apply on the next request.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use chrono::TimeDelta;
use reqwest::{Method, StatusCode};
use serde_json::json;
use support::{PASSWORD, TestHub, assert_error};

#[tokio::test]
async fn s8_login_with_wrong_password_is_401_and_audited() {
    let hub = TestHub::start().await;
    let result = hub
        .call(
            Method::POST,
            "/api/v1/session",
            None,
            Some(json!({"name": "admin", "password": "wrong password!"})),
        )
        .await;
    assert_error(&result, StatusCode::UNAUTHORIZED, "unauthorized");
    let (status, audit) = hub
        .get(&hub.admin, "/api/v1/audit?action=session.login_failed")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(audit.as_array().unwrap().len(), 1);
    assert_eq!(audit[0]["actor_name"], "admin");
    assert_eq!(audit[0]["from"], "127.0.0.1");
}

#[tokio::test]
async fn s8_repeated_failed_logins_are_throttled_even_with_the_right_password() {
    let hub = TestHub::start_with(|c| c.login_max_failures = 3).await;
    hub.user("alice", "viewer", &[&hub.root]).await;
    for _ in 0..3 {
        let r = hub
            .call(
                Method::POST,
                "/api/v1/session",
                None,
                Some(json!({"name": "alice", "password": "not the password"})),
            )
            .await;
        assert_eq!(r.0, StatusCode::UNAUTHORIZED);
    }
    let r = hub
        .call(
            Method::POST,
            "/api/v1/session",
            None,
            Some(json!({"name": "alice", "password": PASSWORD})),
        )
        .await;
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS, "login_throttled");
    hub.clock.advance(TimeDelta::minutes(15));
    hub.login("alice", PASSWORD).await;
}

#[tokio::test]
async fn s8_tokens_expire_and_logout_revokes() {
    let hub = TestHub::start_with(|c| c.token_ttl_secs = 3600).await;
    let (_, token) = hub.user("bob", "viewer", &[&hub.root]).await;
    assert_eq!(hub.get(&token, "/api/v1/session").await.0, StatusCode::OK);
    hub.clock.advance(TimeDelta::seconds(3600));
    assert_error(
        &hub.get(&token, "/api/v1/session").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );

    let token = hub.login("bob", PASSWORD).await;
    assert_eq!(
        hub.delete(&token, "/api/v1/session").await.0,
        StatusCode::NO_CONTENT
    );
    assert_error(
        &hub.get(&token, "/api/v1/session").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
}

#[tokio::test]
async fn s8_revoking_sessions_and_disabling_a_user_cut_every_token() {
    let hub = TestHub::start().await;
    let (id, first) = hub.user("carol", "viewer", &[&hub.root]).await;
    let second = hub.login("carol", PASSWORD).await;
    let path = format!("/api/v1/users/{id}/revoke-sessions");
    assert_eq!(
        hub.post(&hub.admin, &path, json!(null)).await.0,
        StatusCode::NO_CONTENT
    );
    for token in [&first, &second] {
        assert_eq!(
            hub.get(token, "/api/v1/session").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    let token = hub.login("carol", PASSWORD).await;
    let r = hub
        .patch(
            &hub.admin,
            &format!("/api/v1/users/{id}"),
            json!({"disabled": true}),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    assert_eq!(
        hub.get(&token, "/api/v1/session").await.0,
        StatusCode::UNAUTHORIZED
    );
    let r = hub
        .call(
            Method::POST,
            "/api/v1/session",
            None,
            Some(json!({"name": "carol", "password": PASSWORD})),
        )
        .await;
    assert_eq!(r.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn t3_a_role_change_applies_to_the_next_request_with_the_same_token() {
    let hub = TestHub::start().await;
    let (id, token) = hub.user("dave", "manager", &[&hub.root]).await;
    hub.node(&token, &hub.root, "made by a manager").await;
    let r = hub
        .patch(
            &hub.admin,
            &format!("/api/v1/users/{id}"),
            json!({"role": "viewer"}),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    let r = hub
        .post(
            &token,
            "/api/v1/nodes",
            json!({"parent": hub.root, "name": "no longer"}),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
}

#[tokio::test]
async fn t3_a_domain_change_applies_to_the_next_request_with_the_same_token() {
    let hub = TestHub::start().await;
    let a = hub.node(&hub.admin, &hub.root, "Tenant A").await;
    let b = hub.node(&hub.admin, &hub.root, "Tenant B").await;
    let (id, token) = hub.user("erin", "manager", &[&a]).await;
    assert_eq!(
        hub.get(&token, &format!("/api/v1/nodes/{a}")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        hub.get(&token, &format!("/api/v1/nodes/{b}")).await.0,
        StatusCode::NOT_FOUND
    );
    let r = hub
        .patch(
            &hub.admin,
            &format!("/api/v1/users/{id}"),
            json!({"domain": [b]}),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    assert_eq!(
        hub.get(&token, &format!("/api/v1/nodes/{a}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        hub.get(&token, &format!("/api/v1/nodes/{b}")).await.0,
        StatusCode::OK
    );
}
