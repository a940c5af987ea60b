//! Mail over a real SMTP connection (A5, L6, S9): the outbox, the sender's
//! retries and permanent failures, the admin routes, and durability across
//! a restart. The SMTP server is a small sink on loopback (`support::smtp`).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use signet_hub::app::{Clock, Hub};
use signet_hub::config::Config;
use signet_hub::mail::sender::{MailSender, SenderOptions};
use signet_hub::mail::{MAX_BODY_LEN, Mail, OUTBOX, OutboxEntry, OutboxStatus, enqueue};
use signet_hub::store::WriteBatch;
use support::smtp::{SmtpSink, smtp_to};
use support::{TestHub, assert_error};
use tokio_util::sync::CancellationToken;

// ---------------------------------------------------------------- helpers

/// A loopback port nothing listens on, reserved for the test: the socket
/// is bound, so no other test running in parallel can take the port, but it
/// never listens, so connections to it are refused. Drop it before
/// listening on the port. (Binding and releasing a port instead let another
/// test's listener take the number, and the "down" server answered.)
fn closed_port() -> (SocketAddr, tokio::net::TcpSocket) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    (addr, socket)
}

fn fast() -> SenderOptions {
    SenderOptions {
        poll_interval: Duration::from_millis(20),
        smtp_timeout: Duration::from_secs(5),
        ..SenderOptions::default()
    }
}

fn mail(to: &str, subject: &str, body: &str) -> Mail {
    Mail {
        to: to.to_owned(),
        subject: subject.to_owned(),
        body: body.to_owned(),
    }
}

/// Enqueues `mail` durably, the way a handler does; returns its id.
async fn queue(state: &Hub, mail: Mail) -> String {
    let mut batch = WriteBatch::new();
    let id = enqueue(&mut batch, mail, state.clock.now()).unwrap();
    state.store.apply(batch).await.unwrap();
    id
}

fn entry(state: &Hub, id: &str) -> OutboxEntry {
    state.store.get(OUTBOX, id).unwrap().unwrap()
}

/// Polls `done` every 20 ms for at most 10 s; panics with `what` on timeout.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn spawn_sender(state: &Hub) -> MailSender {
    MailSender::spawn(state.clone(), fast(), CancellationToken::new())
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn a5_l6_queued_mail_is_delivered_over_smtp_and_marked_sent() {
    let sink = SmtpSink::start().await;
    let hub = TestHub::start_with(|c| c.smtp = Some(smtp_to(sink.addr))).await;
    let body = "Item: Lobby loop\nNode: Branch 7\n.a line that starts with a dot\n";
    let id = queue(
        &hub.state,
        mail(
            "manager@example.test",
            "Approval requested: Lobby loop",
            body,
        ),
    )
    .await;
    let sender = spawn_sender(&hub.state);
    sender.wake();

    eventually("the sink to receive the message", || {
        sink.received().len() == 1
    })
    .await;
    let got = &sink.received()[0];
    assert_eq!(got.from, "hub@example.test");
    assert_eq!(got.to, vec!["manager@example.test".to_owned()]);
    assert_eq!(
        got.header("Subject").as_deref(),
        Some("Approval requested: Lobby loop")
    );
    assert_eq!(got.header("To").as_deref(), Some("manager@example.test"));
    assert_eq!(got.body(), body.trim_end());

    eventually("the entry to be marked sent", || {
        entry(&hub.state, &id).sent_at.is_some()
    })
    .await;
    let sent = entry(&hub.state, &id);
    assert_eq!(sent.status(), OutboxStatus::Sent);
    assert_eq!(sent.attempts, 1);
    assert_eq!(sent.last_error, None);
    let (status, list) = hub.get(&hub.admin, "/api/v1/mail/outbox?status=sent").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["status"], "sent");
    sender.stop().await;
    assert_eq!(sink.received().len(), 1, "delivered exactly once");
}

#[tokio::test]
async fn s9_unreachable_server_backs_off_then_delivers_when_it_comes_up() {
    let (addr, reserved) = closed_port();
    let hub = TestHub::start_with(|c| c.smtp = Some(smtp_to(addr))).await;
    let queued_at = hub.clock.now();
    let id = queue(&hub.state, mail("ops@example.test", "Device offline", "d1")).await;
    let sender = spawn_sender(&hub.state);

    eventually("a failed attempt", || entry(&hub.state, &id).attempts == 1).await;
    let first = entry(&hub.state, &id);
    assert_eq!(first.status(), OutboxStatus::Queued);
    assert!(first.last_error.is_some(), "{first:?}");
    let delay = first.next_attempt_at - queued_at;
    assert!(
        delay >= TimeDelta::milliseconds(22_500) && delay <= TimeDelta::seconds(30),
        "first retry after {delay}"
    );
    // The clock has not moved: the backoff holds, nothing is retried.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(entry(&hub.state, &id).attempts, 1);

    hub.clock.advance(TimeDelta::seconds(30));
    eventually("a second failed attempt", || {
        entry(&hub.state, &id).attempts == 2
    })
    .await;
    let second = entry(&hub.state, &id);
    assert!(second.next_attempt_at > first.next_attempt_at);
    let delay = second.next_attempt_at - hub.clock.now();
    assert!(
        delay >= TimeDelta::seconds(45) && delay <= TimeDelta::seconds(60),
        "second retry after {delay}"
    );

    drop(reserved);
    let sink = SmtpSink::start_on(addr).await;
    hub.clock.advance(TimeDelta::seconds(60));
    eventually("delivery once the server is up", || {
        entry(&hub.state, &id).sent_at.is_some()
    })
    .await;
    let sent = entry(&hub.state, &id);
    assert_eq!(sent.attempts, 3);
    assert_eq!(sent.last_error, None);
    assert_eq!(sink.received().len(), 1);
    assert_eq!(sink.received()[0].to, vec!["ops@example.test".to_owned()]);
    sender.stop().await;
}

#[tokio::test]
async fn l6_without_smtp_mail_stays_queued_and_only_root_admins_list_it() {
    let hub = TestHub::start().await;
    let id = queue(
        &hub.state,
        mail(
            "new@example.test",
            "Your invitation",
            "https://hub/invite/t0k3n",
        ),
    )
    .await;
    let sender = spawn_sender(&hub.state);
    sender.wake();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let waiting = entry(&hub.state, &id);
    assert_eq!(waiting.status(), OutboxStatus::Queued);
    assert_eq!(waiting.attempts, 0);

    let (status, list) = hub.get(&hub.admin, "/api/v1/mail/outbox").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["status"], "queued");
    assert_eq!(list[0]["mail"]["to"], "new@example.test");
    assert_eq!(list[0]["mail"]["body"], "https://hub/invite/t0k3n");
    let (_, queued) = hub
        .get(&hub.admin, "/api/v1/mail/outbox?status=queued")
        .await;
    assert_eq!(queued.as_array().unwrap().len(), 1);
    let (_, sent) = hub.get(&hub.admin, "/api/v1/mail/outbox?status=sent").await;
    assert_eq!(sent, json!([]));
    assert_error(
        &hub.get(&hub.admin, "/api/v1/mail/outbox?status=lost").await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    );

    let (_, manager) = hub.user("mona", "manager", &[&hub.root]).await;
    let branch = hub.node(&hub.admin, &hub.root, "Branch").await;
    let (_, branch_admin) = hub.user("bran", "admin", &[&branch]).await;
    for token in [&manager, &branch_admin] {
        assert_error(
            &hub.get(token, "/api/v1/mail/outbox").await,
            StatusCode::FORBIDDEN,
            "forbidden",
        );
        assert_error(
            &hub.post(
                token,
                &format!("/api/v1/mail/outbox/{id}/retry"),
                json!(null),
            )
            .await,
            StatusCode::FORBIDDEN,
            "forbidden",
        );
    }
    assert_eq!(
        hub.call(Method::GET, "/api/v1/mail/outbox", None, None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    sender.stop().await;
    assert_eq!(entry(&hub.state, &id).status(), OutboxStatus::Queued);
}

#[tokio::test]
async fn a5_header_injection_and_bad_recipients_fail_permanently_without_blocking_other_mail() {
    let sink = SmtpSink::start().await;
    let hub = TestHub::start_with(|c| c.smtp = Some(smtp_to(sink.addr))).await;
    let bad = [
        (
            mail("eve@example.test\r\nBcc: victim@example.test", "Hi", "x"),
            "line break",
        ),
        (
            mail("eve@example.test", "Hi\r\nBcc: victim@example.test", "x"),
            "line break",
        ),
        (mail("not-an-address", "Hi", "x"), "invalid recipient"),
        (
            mail("ok@example.test", "Hi", &"x".repeat(MAX_BODY_LEN + 1)),
            "longer than",
        ),
        (mail("reject@example.test", "Hi", "x"), "550"),
    ];
    let mut bad_ids = Vec::new();
    for (m, _) in &bad {
        bad_ids.push(queue(&hub.state, m.clone()).await);
    }
    let good = queue(&hub.state, mail("fine@example.test", "Still sent", "ok")).await;
    let sender = spawn_sender(&hub.state);

    eventually("the good mail to be sent and the bad ones failed", || {
        entry(&hub.state, &good).sent_at.is_some()
            && bad_ids
                .iter()
                .all(|id| entry(&hub.state, id).status() == OutboxStatus::Failed)
    })
    .await;
    for (id, (_, reason)) in bad_ids.iter().zip(&bad) {
        let failed = entry(&hub.state, id);
        let error = failed.last_error.clone().unwrap_or_default();
        assert!(error.contains(reason), "{reason:?} not in {error:?}");
        assert_eq!(failed.attempts, 1, "no retries: {failed:?}");
    }
    let received = sink.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].to, vec!["fine@example.test".to_owned()]);
    assert!(!received[0].data.contains("victim"));

    let (status, failed) = hub
        .get(&hub.admin, "/api/v1/mail/outbox?status=failed")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(failed.as_array().unwrap().len(), bad.len());
    assert!(failed[0]["last_error"].is_string());

    // An admin retry makes it due again, is audited, and fails again for
    // the same reason (no endless loop: one more attempt).
    let retry = format!("/api/v1/mail/outbox/{}/retry", bad_ids[0]);
    let (status, view) = hub.post(&hub.admin, &retry, json!(null)).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["status"], "queued");
    assert_eq!(view["attempts"], 0);
    let (_, audit) = hub.get(&hub.admin, "/api/v1/audit?action=mail.retry").await;
    assert_eq!(audit.as_array().unwrap().len(), 1, "{audit}");
    assert_eq!(audit[0]["target"], bad_ids[0].as_str());
    assert_eq!(audit[0]["detail"]["previous_status"], "failed");
    eventually("the retried entry to fail again", || {
        entry(&hub.state, &bad_ids[0]).status() == OutboxStatus::Failed
    })
    .await;
    assert_eq!(entry(&hub.state, &bad_ids[0]).attempts, 1);

    assert_error(
        &hub.post(
            &hub.admin,
            &format!("/api/v1/mail/outbox/{good}/retry"),
            json!(null),
        )
        .await,
        StatusCode::CONFLICT,
        "already_sent",
    );
    assert_error(
        &hub.post(&hub.admin, "/api/v1/mail/outbox/nope/retry", json!(null))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    sender.stop().await;
    assert_eq!(sink.received().len(), 1);
}

#[tokio::test]
async fn s9_gives_up_after_max_attempts_and_keeps_the_entry_listed() {
    let (addr, _reserved) = closed_port();
    let hub = TestHub::start_with(|c| c.smtp = Some(smtp_to(addr))).await;
    let id = queue(&hub.state, mail("ops@example.test", "s", "b")).await;
    let options = SenderOptions {
        max_attempts: 3,
        ..fast()
    };
    let sender = MailSender::spawn(hub.state.clone(), options, CancellationToken::new());
    for attempt in 1..=3 {
        eventually("an attempt", || entry(&hub.state, &id).attempts == attempt).await;
        hub.clock.advance(TimeDelta::hours(1));
    }
    let failed = entry(&hub.state, &id);
    assert_eq!(failed.status(), OutboxStatus::Failed);
    assert!(
        failed
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("gave up after 3 attempts")),
        "{failed:?}"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(entry(&hub.state, &id).attempts, 3);
    let (_, list) = hub
        .get(&hub.admin, "/api/v1/mail/outbox?status=failed")
        .await;
    assert_eq!(list[0]["id"], id.as_str());
    sender.stop().await;
}

#[tokio::test]
async fn delivered_entries_are_pruned_after_their_retention() {
    let sink = SmtpSink::start().await;
    let hub = TestHub::start_with(|c| c.smtp = Some(smtp_to(sink.addr))).await;
    let id = queue(&hub.state, mail("a@example.test", "s", "b")).await;
    let sender = spawn_sender(&hub.state);
    eventually("delivery", || entry(&hub.state, &id).sent_at.is_some()).await;
    hub.clock.advance(TimeDelta::days(6));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        hub.state
            .store
            .get::<OutboxEntry>(OUTBOX, &id)
            .unwrap()
            .is_some()
    );
    hub.clock.advance(TimeDelta::days(1));
    eventually("pruning", || {
        hub.state
            .store
            .get::<OutboxEntry>(OUTBOX, &id)
            .unwrap()
            .is_none()
    })
    .await;
    sender.stop().await;
}

/// A clock for the restart test, which runs without [`TestHub`].
struct StepClock(Mutex<DateTime<Utc>>);

impl Clock for StepClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

/// Opens the data directory, retrying while the previous instance's store
/// is still being released.
async fn reopen(config: &Config, clock: Arc<StepClock>) -> Hub {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match signet_hub::serve::open(config.clone(), clock.clone()) {
            Ok(state) => return state,
            Err(e) => {
                assert!(tokio::time::Instant::now() < deadline, "reopen: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[tokio::test]
async fn s9_mail_queued_before_a_restart_is_delivered_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let now = Utc::now();
    signet_hub::init::init(&data, now).await.unwrap();
    let clock = Arc::new(StepClock(Mutex::new(now)));
    let (down, _reserved) = closed_port();
    let mut config = Config {
        data,
        smtp: Some(smtp_to(down)),
        ..Config::default()
    };

    // First run: the server is down; one attempt fails, then the hub stops.
    let state = reopen(&config, clock.clone()).await;
    let id = queue(&state, mail("later@example.test", "Survives", "restart")).await;
    let sender = spawn_sender(&state);
    eventually("a failed attempt", || entry(&state, &id).attempts == 1).await;
    sender.stop().await;
    drop(state);

    // Second run, on the same data directory, with a server up.
    let sink = SmtpSink::start().await;
    config.smtp = Some(smtp_to(sink.addr));
    let state = reopen(&config, clock.clone()).await;
    let kept = entry(&state, &id);
    assert_eq!((kept.status(), kept.attempts), (OutboxStatus::Queued, 1));
    assert!(kept.last_error.is_some());
    *clock.0.lock().unwrap() += TimeDelta::minutes(1);
    let sender = spawn_sender(&state);
    eventually("delivery after the restart", || {
        entry(&state, &id).sent_at.is_some()
    })
    .await;
    sender.stop().await;
    let received = sink.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].header("Subject").as_deref(), Some("Survives"));
    assert_eq!(received[0].body(), "restart");
}

#[tokio::test]
async fn the_openapi_document_describes_the_mail_routes() {
    let hub = TestHub::start().await;
    let (status, doc): (StatusCode, Value) = hub
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["paths"]["/api/v1/mail/outbox"]["get"].is_object());
    assert!(doc["paths"]["/api/v1/mail/outbox/{id}/retry"]["post"].is_object());
}
