//! Mails people can click (M5, A5, L6, L7, L9), over a real SMTP
//! connection (`support::smtp`): with `public_url` set, every mail that
//! asks for an action carries one link under it to the console page that
//! completes it (DESIGN §8), and the link's token works once. Members made
//! by CSV import or a shop order get a welcome mail with an expiring,
//! single-use set-password link, and can then log in.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::time::Duration;

use chrono::TimeDelta;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use signet_hub::mail::sender::{MailSender, SenderOptions};
use support::smtp::{Received, SmtpSink, smtp_to};
use support::{PASSWORD, TestHub, assert_error};
use tokio_util::sync::CancellationToken;

const PUBLIC_URL: &str = "https://signage.example.test";
const GROUPS: &str = "/api/v1/access-groups";

async fn start() -> (TestHub, SmtpSink, MailSender) {
    let sink = SmtpSink::start().await;
    let hub = TestHub::start_with(|c| {
        c.smtp = Some(smtp_to(sink.addr));
        c.public_url = Some(PUBLIC_URL.to_owned());
    })
    .await;
    let options = SenderOptions {
        poll_interval: Duration::from_millis(20),
        smtp_timeout: Duration::from_secs(5),
        ..SenderOptions::default()
    };
    let sender = MailSender::spawn(hub.state.clone(), options, CancellationToken::new());
    (hub, sink, sender)
}

/// The one mail to `to` (waits at most 10 s).
async fn mail_to(sink: &SmtpSink, to: &str) -> Received {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got: Vec<Received> = sink
            .received()
            .into_iter()
            .filter(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(to)))
            .collect();
        if let Some(mail) = got.first() {
            assert_eq!(got.len(), 1, "one mail to {to}");
            return mail.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "no mail to {to}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The mail's one link, which must be under `public_url` at `page`;
/// returns what follows `page` (the token or id).
fn link_of(mail: &Received, page: &str) -> String {
    let body = text_of(mail);
    let links: Vec<&str> = body
        .split_whitespace()
        .filter(|w| w.starts_with("http://") || w.starts_with("https://"))
        .collect();
    assert_eq!(links.len(), 1, "exactly one link: {body}");
    let prefix = format!("{PUBLIC_URL}{page}");
    links[0]
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{} is not under {prefix}", links[0]))
        .to_owned()
}

/// The mail's text as a reader sees it: quoted-printable decoded (long
/// lines such as a link are folded by the transfer encoding).
fn text_of(mail: &Received) -> String {
    let body = mail.body();
    let encoding = mail.header("Content-Transfer-Encoding").unwrap_or_default();
    if !encoding.eq_ignore_ascii_case("quoted-printable") {
        return body;
    }
    let joined = body.replace("=\n", "");
    let mut bytes = Vec::new();
    let mut rest = joined.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'=' && tail.len() >= 2 {
            let hex = std::str::from_utf8(&tail[..2]).unwrap();
            bytes.push(u8::from_str_radix(hex, 16).unwrap());
            rest = &tail[2..];
        } else {
            bytes.push(b);
            rest = tail;
        }
    }
    String::from_utf8(bytes).unwrap()
}

async fn anonymous(hub: &TestHub, path: &str, body: Value) -> (StatusCode, Value) {
    hub.call(Method::POST, path, None, Some(body)).await
}

async fn group(hub: &TestHub, body: Value) -> String {
    let (status, answer) = hub.post(&hub.admin, GROUPS, body).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    answer["id"].as_str().unwrap().to_owned()
}

fn license() -> Value {
    json!({"allow_offline": false, "offline_grace_secs": 0, "allow_export": false})
}

#[tokio::test]
async fn m5_l6_invite_and_signup_mails_link_to_their_pages_and_work_once() {
    let (hub, sink, _sender) = start().await;
    let id = group(
        &hub,
        json!({"node": hub.root, "name": "Club", "license": license(),
            "self_signup": true, "signup_domains": ["example.org"]}),
    )
    .await;

    // Invite: /invite/{token}; accepting works once.
    let (status, body) = hub
        .post(
            &hub.admin,
            &format!("{GROUPS}/{id}/invites"),
            json!({"email": "guest@example.net"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let token = link_of(&mail_to(&sink, "guest@example.net").await, "/invite/");
    let accept = json!({"token": token, "password": PASSWORD});
    let (status, body) = anonymous(&hub, &format!("{GROUPS}/invites/accept"), accept.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_error(
        &anonymous(&hub, &format!("{GROUPS}/invites/accept"), accept).await,
        StatusCode::CONFLICT,
        "invite_used",
    );
    hub.login("guest@example.net", PASSWORD).await;

    // Signup: /signup/confirm/{token}; confirming works once.
    let (status, body) = anonymous(
        &hub,
        &format!("{GROUPS}/{id}/signup"),
        json!({"email": "new@example.org", "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let token = link_of(&mail_to(&sink, "new@example.org").await, "/signup/confirm/");
    let confirm = json!({"token": token});
    let (status, body) =
        anonymous(&hub, &format!("{GROUPS}/signup/confirm"), confirm.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = anonymous(&hub, &format!("{GROUPS}/signup/confirm"), confirm).await;
    assert!(
        status.is_client_error(),
        "a second confirmation: {status} {body}"
    );
    assert!(body["error"].is_string(), "{body}");
    hub.login("new@example.org", PASSWORD).await;
}

#[tokio::test]
async fn m5_l7_l9_imported_and_shop_members_get_a_single_use_set_password_link() {
    let (hub, sink, _sender) = start().await;
    let id = group(
        &hub,
        json!({"node": hub.root, "name": "Shop club", "license": license()}),
    )
    .await;

    // CSV import makes an account and mails it a welcome.
    let response = hub
        .client
        .post(format!("{}{GROUPS}/{id}/members/import", hub.base))
        .bearer_auth(&hub.admin)
        .header("content-type", "text/csv")
        .body("email,name,end_date\nann@example.org,Ann,\n")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let welcome = mail_to(&sink, "ann@example.org").await;
    assert!(
        text_of(&welcome).contains("ann@example.org"),
        "names the login"
    );
    let token = link_of(&welcome, "/password/set/");

    // Before: no way in. With the token: a password, then a login.
    let (status, _) = anonymous(
        &hub,
        "/api/v1/session",
        json!({"name": "ann@example.org", "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let set = json!({"token": token, "password": PASSWORD});
    let (status, body) = anonymous(&hub, "/api/v1/password/set", set.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["login_name"], "ann@example.org");
    hub.login("ann@example.org", PASSWORD).await;
    let (_, audit) = hub
        .get(&hub.admin, "/api/v1/audit?action=user.password_set")
        .await;
    assert!(
        audit.to_string().contains("user.password_set"),
        "the change is audited: {audit}"
    );
    // Once only: the second use is refused and says why.
    let again = anonymous(&hub, "/api/v1/password/set", set).await;
    assert_error(&again, StatusCode::CONFLICT, "token_used");
    assert!(
        again.1["message"]
            .as_str()
            .unwrap()
            .contains("already used"),
        "{}",
        again.1
    );
    assert_error(
        &anonymous(
            &hub,
            "/api/v1/password/set",
            json!({"token": "never-issued", "password": PASSWORD}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "token_not_found",
    );

    // A shop order makes an account and mails it a welcome too; its link
    // expires.
    let (status, key) = hub
        .post(&hub.admin, &format!("{GROUPS}/{id}/shop-key"), json!(null))
        .await;
    assert!(status.is_success(), "{key}");
    let key = key["shop_key"].as_str().unwrap();
    let response = hub
        .client
        .post(format!("{}{GROUPS}/{id}/members/shop", hub.base))
        .bearer_auth(key)
        .json(&json!({"order_id": "o-1", "email": "buyer@example.org"}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let token = link_of(&mail_to(&sink, "buyer@example.org").await, "/password/set/");
    hub.clock.advance(TimeDelta::days(8));
    let set = json!({"token": token, "password": PASSWORD});
    assert_error(
        &anonymous(&hub, "/api/v1/password/set", set).await,
        StatusCode::GONE,
        "token_expired",
    );
}

#[tokio::test]
async fn m5_a5_the_approval_mail_links_to_the_item_with_zoned_and_utc_times() {
    let (hub, sink, _sender) = start().await;
    let (status, node) = hub
        .post(
            &hub.admin,
            "/api/v1/nodes",
            json!({"parent": hub.root, "name": "Berlin store", "time_zone": "Europe/Berlin",
                "content_manager_email": "cm@example.org"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{node}");
    let node = node["id"].as_str().unwrap().to_owned();
    let (editor, token) = hub.user("editor", "contributor", &[&node]).await;
    let (status, body) = hub
        .patch(
            &hub.admin,
            &format!("/api/v1/users/{editor}"),
            json!({"requires_approval": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, item) = hub
        .upload(&token, &node, "Poster", support::png(2_000, 3))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{item}");
    let item = item["id"].as_str().unwrap().to_owned();
    let (status, body) = hub
        .post(
            &token,
            &format!("/api/v1/content/{item}/request-approval"),
            json!(null),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let mail = mail_to(&sink, "cm@example.org").await;
    assert_eq!(link_of(&mail, "/content/"), item);
    let body = text_of(&mail);
    let sent = body.lines().find_map(|l| l.strip_prefix("Sent: ")).unwrap();
    let (local, utc) = sent.split_once(", ").unwrap();
    let local = local.strip_suffix(" (Europe/Berlin)").unwrap();
    let utc = utc.strip_suffix(" (UTC)").unwrap();
    let local = chrono::DateTime::parse_from_rfc3339(local).unwrap();
    let utc = chrono::DateTime::parse_from_rfc3339(utc).unwrap();
    assert_eq!(local, utc, "one instant, twice");
    let berlin: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
    use chrono::Offset as _;
    assert_eq!(
        local.offset().fix(),
        utc.with_timezone(&berlin).offset().fix(),
        "the node's offset: {sent}"
    );
}

/// All mails to `to` so far, once at least `count` arrived (at most 10 s).
async fn mails_to(sink: &SmtpSink, to: &str, count: usize) -> Vec<Received> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got: Vec<Received> = sink
            .received()
            .into_iter()
            .filter(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(to)))
            .collect();
        if got.len() >= count {
            return got;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {count} mails to {to}",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Imports `csv` into group `id` as the admin.
async fn import(hub: &TestHub, id: &str, csv: &'static str) -> Value {
    let response = hub
        .client
        .post(format!("{}{GROUPS}/{id}/members/import", hub.base))
        .bearer_auth(&hub.admin)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// M5, L7: an account that exists without a password (made by an earlier
/// import, never completed) and joins another group by CSV import gets a
/// welcome mail with a new set-password link that works; an account with a
/// password does not, nor a member whose end date the import only changes.
#[tokio::test]
async fn m5_l7_an_existing_account_without_a_password_is_welcomed_on_import() {
    let (hub, sink, _sender) = start().await;
    let first = group(
        &hub,
        json!({"node": hub.root, "name": "First club", "license": license()}),
    )
    .await;
    let second = group(
        &hub,
        json!({"node": hub.root, "name": "Second club", "license": license()}),
    )
    .await;
    let (_, _) = hub.user("bob", "viewer", &[&hub.root]).await;

    // The first import makes Ann's account; she never sets a password.
    import(&hub, &first, "email,name,end_date\nann@example.org,Ann,\n").await;
    let first_welcome = mail_to(&sink, "ann@example.org").await;
    assert!(text_of(&first_welcome).contains("First club"));

    // The second group imports Ann (password-less), Bob (has a password)
    // and Cara (new): Ann and Cara are welcomed, Bob is not.
    let report = import(
        &hub,
        &second,
        "email,name,end_date\nann@example.org,Ann,\nbob@example.test,Bob,\ncara@example.org,Cara,\n",
    )
    .await;
    assert_eq!(report["created"], 3, "{report}");
    mails_to(&sink, "cara@example.org", 1).await;
    let ann = mails_to(&sink, "ann@example.org", 2).await;
    let welcome = ann
        .iter()
        .find(|m| text_of(m).contains("Second club"))
        .unwrap();
    assert!(
        text_of(welcome).contains("ann@example.org"),
        "names the login"
    );
    let token = link_of(welcome, "/password/set/");
    let (status, body) = anonymous(
        &hub,
        "/api/v1/password/set",
        json!({"token": token, "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    hub.login("ann@example.org", PASSWORD).await;

    // Re-importing with a new end date changes the membership only: no
    // mail. Cara's second mail is the barrier (she is new to the first).
    import(
        &hub,
        &second,
        "email,name,end_date\nann@example.org,Ann,2031-01-01\n",
    )
    .await;
    import(
        &hub,
        &first,
        "email,name,end_date\ncara@example.org,Cara,\n",
    )
    .await;
    mails_to(&sink, "cara@example.org", 2).await;
    assert_eq!(mails_to(&sink, "ann@example.org", 0).await.len(), 2);
    assert!(mails_to(&sink, "bob@example.test", 0).await.is_empty());
}
