//! Access groups over HTTP (L1, L2, L4–L7, L9, T2–T4, S8): license terms,
//! members and their windows, invites, self-signup, CSV import, shop hook.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use signet_common::ids::{AccessGroupId, ItemId, UserId};
use signet_common::license::{Denied, Limit};
use signet_hub::access_groups::{self as ag, AccessGroup, Member, MemberRef};
use signet_hub::mail::{OUTBOX, OutboxEntry};
use support::{PASSWORD, TestHub, assert_error};

const GROUPS: &str = "/api/v1/access-groups";

fn now(hub: &TestHub) -> DateTime<Utc> {
    use signet_hub::app::Clock as _;
    hub.clock.now()
}

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339()
}

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

/// Creates a group at `node` as `token` with `license`; returns its id.
async fn group(hub: &TestHub, token: &str, node: &str, license: Value) -> String {
    let r = hub
        .post(
            token,
            GROUPS,
            json!({"node": node, "name": "Group", "license": license}),
        )
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    r.1["id"].as_str().unwrap().to_owned()
}

fn stored_groups(hub: &TestHub) -> Vec<AccessGroup> {
    hub.state.store.scan(ag::GROUPS, "").unwrap()
}

fn stored_members(hub: &TestHub) -> Vec<Member> {
    hub.state.store.scan(ag::MEMBERS, "").unwrap()
}

fn outbox(hub: &TestHub) -> Vec<OutboxEntry> {
    hub.state.store.scan(OUTBOX, "").unwrap()
}

/// The token in the newest mail to `to`.
fn mailed_token(hub: &TestHub, to: &str) -> String {
    let mail = outbox(hub)
        .into_iter()
        .rev()
        .find(|m| m.mail.to == to)
        .unwrap();
    mail.mail
        .body
        .lines()
        .find_map(|l| l.strip_prefix("token: "))
        .unwrap()
        .to_owned()
}

async fn anonymous(hub: &TestHub, path: &str, body: Value) -> (StatusCode, Value) {
    hub.call(Method::POST, path, None, Some(body)).await
}

async fn import(hub: &TestHub, token: &str, group: &str, csv: &str) -> (StatusCode, Value) {
    let response = hub
        .client
        .post(format!("{}{GROUPS}/{group}/members/import", hub.base))
        .bearer_auth(token)
        .header("content-type", "text/csv")
        .body(csv.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn shop(hub: &TestHub, group: &str, key: &str, body: Value) -> (StatusCode, Value) {
    let response = hub
        .client
        .post(format!("{}{GROUPS}/{group}/members/shop", hub.base))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn l1_l2_group_crud_with_license_validation() {
    let hub = TestHub::start().await;
    let start = now(&hub);
    for (license, why) in [
        (
            json!({"fixed_start": rfc(start + TimeDelta::days(2)), "fixed_end": rfc(start + TimeDelta::days(1)),
                "allow_offline": false, "offline_grace_secs": 0, "allow_export": false}),
            "not after the fixed start",
        ),
        (
            json!({"duration_from_join_secs": 0, "allow_offline": false, "offline_grace_secs": 0,
                "allow_export": false}),
            "is zero",
        ),
        (
            json!({"allow_offline": true, "offline_grace_secs": 0, "allow_export": false}),
            "offline grace is zero",
        ),
        (
            json!({"allowed_countries": ["DEU"], "allow_offline": false, "offline_grace_secs": 0,
                "allow_export": false}),
            "ISO 3166-1",
        ),
    ] {
        let r = hub
            .post(
                &hub.admin,
                GROUPS,
                json!({"node": hub.root, "name": "bad", "license": license}),
            )
            .await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_license");
        assert!(r.1["message"].as_str().unwrap().contains(why), "{}", r.1);
    }
    assert!(stored_groups(&hub).is_empty());

    let r = hub
        .post(
            &hub.admin,
            GROUPS,
            json!({"node": hub.root, "name": "Lobby screens", "categories": ["news", "ads"],
                "license": {"duration_from_join_secs": 86400, "allow_offline": true,
                    "offline_grace_secs": 3600, "allow_export": false, "max_active_devices": 3}}),
        )
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    let id = r.1["id"].as_str().unwrap().to_owned();
    assert_eq!(r.1["license"]["max_active_devices"], 3);
    assert_eq!(r.1["has_shop_key"], false);

    let path = format!("{GROUPS}/{id}");
    let r = hub
        .patch(
            &hub.admin,
            &path,
            json!({"license": {"max_active_devices": 0, "allow_offline": false,
            "offline_grace_secs": 0, "allow_export": false}}),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_license");
    assert_eq!(stored_groups(&hub)[0].license.max_active_devices, Some(3));

    let r = hub
        .patch(
            &hub.admin,
            &path,
            json!({"name": "Lobby", "license": {"fixed_end": rfc(start + TimeDelta::days(9)),
                "allow_offline": false, "offline_grace_secs": 0, "allow_export": true}}),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    assert_eq!(r.1["name"], "Lobby");
    assert_eq!(r.1["license"]["allow_export"], true);

    let (_, viewer) = hub.user("vera", "viewer", &[&hub.root]).await;
    let r = hub.get(&viewer, &path).await;
    assert_eq!(r.0, StatusCode::OK);
    assert_error(
        &hub.post(
            &viewer,
            GROUPS,
            json!({"node": hub.root, "name": "x", "license": {"allow_offline": false,
                "offline_grace_secs": 0, "allow_export": false}}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert_error(
        &hub.delete(&viewer, &path).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );

    assert_eq!(
        hub.delete(&hub.admin, &path).await.0,
        StatusCode::NO_CONTENT
    );
    assert_error(
        &hub.get(&hub.admin, &path).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let (_, audit) = hub
        .get(&hub.admin, "/api/v1/audit?action=access_group.")
        .await;
    // The manual clock stands still, so compare as a set.
    let mut actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    actions.sort_unstable();
    assert_eq!(
        actions,
        [
            "access_group.create",
            "access_group.delete",
            "access_group.update"
        ]
    );
}

fn open_license() -> Value {
    json!({"allow_offline": false, "offline_grace_secs": 0, "allow_export": false})
}

/// S6 (issue 14, defect 8): an offline grace below three hub_time
/// intervals is refused with a JSON 400 naming the field and the minimum,
/// at create and at update, and nothing changes; the minimum itself and a
/// license without offline play are accepted.
#[tokio::test]
async fn s6_a_license_offline_grace_below_the_minimum_is_refused_never_raised() {
    let hub = TestHub::start().await;
    let short = json!({"allow_offline": true, "offline_grace_secs": 60, "allow_export": false});
    let r = hub
        .post(
            &hub.admin,
            GROUPS,
            json!({"node": hub.root, "name": "short", "license": short}),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "offline_grace_too_short");
    let message = r.1["message"].as_str().unwrap();
    assert!(
        message.contains("license.offline_grace_secs") && message.contains("at least 180"),
        "{message}"
    );
    assert!(stored_groups(&hub).is_empty());

    let minimum = json!({"allow_offline": true, "offline_grace_secs": 180, "allow_export": false});
    let id = group(&hub, &hub.admin, &hub.root, minimum).await;
    let r = hub
        .patch(
            &hub.admin,
            &format!("{GROUPS}/{id}"),
            json!({"license": short}),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "offline_grace_too_short");
    assert_eq!(stored_groups(&hub)[0].license.offline_grace_secs, 180);
    let online_only =
        json!({"allow_offline": false, "offline_grace_secs": 0, "allow_export": false});
    let r = hub
        .patch(
            &hub.admin,
            &format!("{GROUPS}/{id}"),
            json!({"license": online_only}),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
}

#[tokio::test]
async fn t2_t4_a_tenant_manager_cannot_see_or_change_another_tenants_groups() {
    let hub = TestHub::start().await;
    let tenant_a = hub.node(&hub.admin, &hub.root, "tenant A").await;
    let tenant_b = hub.node(&hub.admin, &hub.root, "tenant B").await;
    let (_, manager_a) = hub.user("anna", "manager", &[&tenant_a]).await;
    let (_, manager_b) = hub.user("bert", "manager", &[&tenant_b]).await;
    let b_group = group(&hub, &manager_b, &tenant_b, open_license()).await;
    let a_group = group(&hub, &manager_a, &tenant_a, open_license()).await;
    let (b_user, _) = hub.user("bella", "viewer", &[&tenant_b]).await;

    let path = format!("{GROUPS}/{b_group}");
    assert_error(
        &hub.get(&manager_a, &path).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &hub.patch(&manager_a, &path, json!({"name": "mine"})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &hub.delete(&manager_a, &path).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    for sub in ["members", "items", "invites"] {
        assert_error(
            &hub.get(&manager_a, &format!("{path}/{sub}")).await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
    }
    assert_error(
        &hub.post(
            &manager_a,
            &format!("{path}/members"),
            json!({"member": {"type": "user", "user_id": b_user}}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    // A group at tenant B's node cannot be made from tenant A either.
    assert_error(
        &hub.post(
            &manager_a,
            GROUPS,
            json!({"node": tenant_b, "name": "sneaky", "license": open_license()}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    // Nor can tenant A add tenant B's user to its own group.
    assert_error(
        &hub.post(
            &manager_a,
            &format!("{GROUPS}/{a_group}/members"),
            json!({"member": {"type": "user", "user_id": b_user}}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let (_, listed) = hub.get(&manager_a, GROUPS).await;
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [a_group.as_str()]);
    assert_eq!(stored_groups(&hub).len(), 2);
    assert!(stored_members(&hub).is_empty());
    // The root admin sees both.
    assert_eq!(
        hub.get(&hub.admin, GROUPS)
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn l2_l4_member_windows_earliest_limit_wins_and_removal_ends_access() {
    let hub = TestHub::start().await;
    let start = now(&hub);
    let fixed_end = start + TimeDelta::days(10);
    let id = group(
        &hub,
        &hub.admin,
        &hub.root,
        json!({"fixed_end": rfc(fixed_end), "duration_from_join_secs": 30 * 86400,
            "allow_offline": false, "offline_grace_secs": 0, "allow_export": false}),
    )
    .await;
    let (late, _) = hub.user("late", "viewer", &[&hub.root]).await;
    let (early, _) = hub.user("early", "viewer", &[&hub.root]).await;
    let members = format!("{GROUPS}/{id}/members");

    // A member end date after the fixed end: the fixed end wins.
    let r = hub
        .post(
            &hub.admin,
            &members,
            json!({"member": {"type": "user", "user_id": late},
                "end_date": rfc(start + TimeDelta::days(20))}),
        )
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    assert_eq!(time(&r.1["window"]["ends_at"]), fixed_end);
    assert_eq!(r.1["window"]["ended_by"], "fixed_end");
    assert_eq!(time(&r.1["joined_at"]), start);
    assert_eq!(r.1["in_window_now"], true);
    assert_eq!(r.1["email"], "late@example.test");

    // A member end date before it: the member end date wins.
    let r = hub
        .post(
            &hub.admin,
            &members,
            json!({"member": {"type": "user", "user_id": early},
                "end_date": rfc(start + TimeDelta::days(5))}),
        )
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    assert_eq!(r.1["window"]["ended_by"], "member_end_date");

    // Twice is refused; an end date before the join is refused.
    assert_error(
        &hub.post(
            &hub.admin,
            &members,
            json!({"member": {"type": "user", "user_id": early}}),
        )
        .await,
        StatusCode::CONFLICT,
        "already_member",
    );
    let path_early = format!("{members}/user/{early}");
    assert_error(
        &hub.patch(
            &hub.admin,
            &path_early,
            json!({"end_date": rfc(start - TimeDelta::days(1))}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_end_date",
    );

    // Clearing the end date: the fixed end rules again.
    let r = hub
        .patch(&hub.admin, &path_early, json!({"end_date": null}))
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    assert_eq!(r.1["end_date"], Value::Null);
    assert_eq!(r.1["window"]["ended_by"], "fixed_end");

    // Only paired devices join (tests/devices.rs covers device members).
    assert_error(
        &hub.post(
            &hub.admin,
            &members,
            json!({"member": {"type": "device", "device_id": "d-1"}}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );

    // The entitlement other modules ask about.
    let gid = AccessGroupId::new(id.clone());
    let who = MemberRef::user(&UserId::new(early.clone()));
    let store = &hub.state.store;
    assert!(
        ag::entitlement(store, &gid, &who, None, start + TimeDelta::days(9))
            .unwrap()
            .is_ok()
    );
    assert_eq!(
        ag::entitlement(store, &gid, &who, None, fixed_end).unwrap(),
        Err(Denied::Ended(Limit::FixedEnd))
    );

    // Removal ends access at once (L4) and keeps the record.
    hub.clock.advance(TimeDelta::hours(1));
    assert_eq!(
        hub.delete(&hub.admin, &path_early).await.0,
        StatusCode::NO_CONTENT
    );
    let t = now(&hub);
    assert_eq!(
        ag::entitlement(store, &gid, &who, None, t).unwrap(),
        Err(Denied::Ended(Limit::Removed))
    );
    let (_, list) = hub.get(&hub.admin, &members).await;
    let removed = list
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["member"]["user_id"] == early.as_str())
        .unwrap();
    assert_eq!(removed["window"]["ended_by"], "removed");
    assert_eq!(removed["in_window_now"], false);
    assert_eq!(
        ag::memberships_of(store, &who).unwrap().len(),
        1,
        "the reverse index still finds the record"
    );
}

/// Uploads a small GIF at `node` as the admin; returns its item id.
async fn upload_gif(hub: &TestHub, node: &str, name: &str) -> String {
    let response = hub
        .client
        .post(format!("{}/api/v1/content", hub.base))
        .query(&[("node", node), ("name", name)])
        .bearer_auth(&hub.admin)
        .body(support::gif(name))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let answer: Value = response.json().await.unwrap();
    answer["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn l1_items_with_categories_are_bounded_and_indexed() {
    let hub = TestHub::start().await;
    let r = hub
        .post(
            &hub.admin,
            GROUPS,
            json!({"node": hub.root, "name": "g", "categories": ["news"], "license": open_license()}),
        )
        .await;
    let id = r.1["id"].as_str().unwrap().to_owned();
    let items = format!("{GROUPS}/{id}/items");
    let i1 = upload_gif(&hub, &hub.root, "one").await;
    let i2 = upload_gif(&hub, &hub.root, "two").await;
    // Only content items usable at the group's node (T2) are held.
    let elsewhere = hub.node(&hub.admin, &hub.root, "Elsewhere").await;
    let below = upload_gif(&hub, &elsewhere, "below").await;
    for missing in ["c-missing", below.as_str()] {
        assert_error(
            &hub.call(
                Method::PUT,
                &items,
                Some(&hub.admin),
                Some(json!({"items": [{"id": missing}]})),
            )
            .await,
            StatusCode::BAD_REQUEST,
            "invalid_item",
        );
    }
    assert_error(
        &hub.call(
            Method::PUT,
            &items,
            Some(&hub.admin),
            Some(json!({"items": [{"id": i1, "categories": ["sports"]}]})),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_item",
    );
    assert_error(
        &hub.call(
            Method::PUT,
            &items,
            Some(&hub.admin),
            Some(json!({"items": [{"id": "bad id/with slash"}]})),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_item",
    );
    let r = hub
        .call(
            Method::PUT,
            &items,
            Some(&hub.admin),
            Some(json!({"items": [{"id": i1, "categories": ["news"]}, {"id": i2}]})),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    assert_eq!(r.1["items"].as_array().unwrap().len(), 2);
    assert_eq!(
        ag::groups_holding(&hub.state.store, &ItemId::from(i1.as_str())).unwrap(),
        [AccessGroupId::new(id.clone())]
    );
    // A category an item carries cannot be dropped.
    assert_error(
        &hub.patch(
            &hub.admin,
            &format!("{GROUPS}/{id}"),
            json!({"categories": []}),
        )
        .await,
        StatusCode::CONFLICT,
        "category_in_use",
    );
    let r = hub
        .call(
            Method::PUT,
            &items,
            Some(&hub.admin),
            Some(json!({"items": [{"id": i2}]})),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    assert!(
        ag::groups_holding(&hub.state.store, &ItemId::from(i1.as_str()))
            .unwrap()
            .is_empty()
    );
    assert_eq!(hub.get(&hub.admin, &items).await.1["items"][0]["id"], i2);
}

#[tokio::test]
async fn l6_invite_accept_works_once_and_its_mail_is_in_the_outbox() {
    let hub = TestHub::start().await;
    let id = group(&hub, &hub.admin, &hub.root, open_license()).await;
    let r = hub
        .post(
            &hub.admin,
            &format!("{GROUPS}/{id}/invites"),
            json!({"email": "Guest@Example.org"}),
        )
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    assert_eq!(r.1["status"], "open");
    assert!(r.1.get("token").is_none(), "the token is only in the mail");
    let mails = outbox(&hub);
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].mail.to, "Guest@Example.org");
    let token = mailed_token(&hub, "Guest@Example.org");
    // Only the token's hash is stored.
    let stored: Vec<ag::Invite> = hub.state.store.scan(ag::INVITES, "").unwrap();
    assert_ne!(stored[0].token_hash, token);
    assert_eq!(
        stored[0].token_hash,
        signet_hub::identity::token_key(&token)
    );

    // A weak password changes nothing.
    assert_error(
        &anonymous(
            &hub,
            "/api/v1/access-groups/invites/accept",
            json!({"token": token, "password": "short"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "weak_password",
    );
    let r = anonymous(
        &hub,
        "/api/v1/access-groups/invites/accept",
        json!({"token": token, "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    assert_eq!(r.1["user_created"], true);
    assert_eq!(r.1["password_set"], true);
    assert_eq!(r.1["login_name"], "guest@example.org");
    // The new viewer can log in with the password the accept carried.
    let guest = hub.login("guest@example.org", PASSWORD).await;
    assert_eq!(
        hub.get(&guest, "/api/v1/session").await.1["user"]["role"],
        "viewer"
    );
    assert_eq!(stored_members(&hub).len(), 1);

    // Reuse is refused and changes nothing.
    let before = hub.state.store.scan::<Value>(ag::MEMBERS, "").unwrap();
    assert_error(
        &anonymous(
            &hub,
            "/api/v1/access-groups/invites/accept",
            json!({"token": token}),
        )
        .await,
        StatusCode::CONFLICT,
        "invite_used",
    );
    assert_eq!(
        hub.state.store.scan::<Value>(ag::MEMBERS, "").unwrap(),
        before
    );
    assert_error(
        &anonymous(
            &hub,
            "/api/v1/access-groups/invites/accept",
            json!({"token": "not-a-token"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "invite_not_found",
    );
    let (_, invites) = hub.get(&hub.admin, &format!("{GROUPS}/{id}/invites")).await;
    assert_eq!(invites[0]["status"], "used");
}

#[tokio::test]
async fn l6_an_expired_invite_is_refused_and_changes_nothing() {
    let hub = TestHub::start().await;
    let id = group(&hub, &hub.admin, &hub.root, open_license()).await;
    let path = format!("{GROUPS}/{id}/invites");
    for ttl in [59, 31 * 86400] {
        assert_error(
            &hub.post(
                &hub.admin,
                &path,
                json!({"email": "late@example.org", "expires_in_secs": ttl}),
            )
            .await,
            StatusCode::BAD_REQUEST,
            "invalid_expiry",
        );
    }
    let r = hub
        .post(
            &hub.admin,
            &path,
            json!({"email": "late@example.org", "expires_in_secs": 3600}),
        )
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    let token = mailed_token(&hub, "late@example.org");
    hub.clock.advance(TimeDelta::seconds(3600));
    let users_before = hub.state.store.scan::<Value>("users", "").unwrap().len();
    assert_error(
        &anonymous(
            &hub,
            "/api/v1/access-groups/invites/accept",
            json!({"token": token, "password": PASSWORD}),
        )
        .await,
        StatusCode::GONE,
        "invite_expired",
    );
    assert!(stored_members(&hub).is_empty());
    assert_eq!(
        hub.state.store.scan::<Value>("users", "").unwrap().len(),
        users_before
    );
    assert_eq!(hub.get(&hub.admin, &path).await.1[0]["status"], "expired");
}

#[tokio::test]
async fn l6_self_signup_needs_an_exactly_allowed_domain_and_a_confirmation() {
    let hub = TestHub::start().await;
    let r = hub
        .post(
            &hub.admin,
            GROUPS,
            json!({"node": hub.root, "name": "Open", "license": open_license(), "self_signup": true}),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "signup_domains_required");
    let r = hub
        .post(
            &hub.admin,
            GROUPS,
            json!({"node": hub.root, "name": "Open", "license": open_license(),
                "self_signup": true, "signup_domains": ["Example.com"]}),
        )
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    assert_eq!(r.1["signup_domains"], json!(["example.com"]));
    let id = r.1["id"].as_str().unwrap().to_owned();
    let closed = group(&hub, &hub.admin, &hub.root, open_license()).await;
    let signup = format!("{GROUPS}/{id}/signup");

    for email in [
        "eve@evil-example.com",
        "eve@sub.example.com",
        "eve@example.com.evil.net",
    ] {
        assert_error(
            &anonymous(&hub, &signup, json!({"email": email, "password": PASSWORD})).await,
            StatusCode::FORBIDDEN,
            "domain_not_allowed",
        );
    }
    assert_error(
        &anonymous(
            &hub,
            &format!("{GROUPS}/{closed}/signup"),
            json!({"email": "sam@example.com", "password": PASSWORD}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert!(outbox(&hub).is_empty());

    let r = anonymous(
        &hub,
        &signup,
        json!({"email": "Sam@EXAMPLE.com", "name": "Sam Smith", "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.0, StatusCode::ACCEPTED, "{}", r.1);
    assert!(
        stored_members(&hub).is_empty(),
        "nothing before confirmation"
    );
    let token = mailed_token(&hub, "Sam@EXAMPLE.com");
    let r = anonymous(
        &hub,
        "/api/v1/access-groups/signup/confirm",
        json!({"token": token}),
    )
    .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    assert_eq!(r.1["user_created"], true);
    hub.login("sam@example.com", PASSWORD).await;
    let members = stored_members(&hub);
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].display_name.as_deref(), Some("Sam Smith"));
    assert_error(
        &anonymous(
            &hub,
            "/api/v1/access-groups/signup/confirm",
            json!({"token": token}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "signup_not_found",
    );

    // An unconfirmed signup expires.
    anonymous(
        &hub,
        &signup,
        json!({"email": "tom@example.com", "password": PASSWORD}),
    )
    .await;
    let token = mailed_token(&hub, "tom@example.com");
    hub.clock.advance(TimeDelta::hours(24));
    assert_error(
        &anonymous(
            &hub,
            "/api/v1/access-groups/signup/confirm",
            json!({"token": token}),
        )
        .await,
        StatusCode::GONE,
        "signup_expired",
    );
    assert_eq!(stored_members(&hub).len(), 1);
}

#[tokio::test]
async fn l7_csv_import_reports_every_row_and_is_idempotent_by_email() {
    let hub = TestHub::start().await;
    let id = group(&hub, &hub.admin, &hub.root, open_license()).await;
    let csv = "email,name,end_date\n\
               ann@example.org,Ann A,2099-12-31\n\
               not-an-email,Bad,\n\
               bob@example.org,\"Bob, Jr.\",\n\
               ANN@example.org,Ann again,\n\
               cy@example.org,Cy,31/12/2099\n";
    let r = import(&hub, &hub.admin, &id, csv).await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    let report = &r.1;
    assert_eq!(report["applied"], true);
    assert_eq!(
        (
            &report["created"],
            &report["updated"],
            &report["unchanged"],
            &report["refused"]
        ),
        (&json!(2), &json!(0), &json!(0), &json!(3))
    );
    let rows = report["rows"].as_array().unwrap();
    let statuses: Vec<(u64, &str)> = rows
        .iter()
        .map(|r| (r["row"].as_u64().unwrap(), r["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        statuses,
        [
            (2, "created"),
            (3, "refused"),
            (4, "created"),
            (5, "refused"),
            (6, "refused")
        ]
    );
    assert!(
        rows[3]["reason"].as_str().unwrap().contains("row 2"),
        "{}",
        rows[3]
    );
    assert!(rows[4]["reason"].as_str().unwrap().contains("end date"));
    let members = stored_members(&hub);
    assert_eq!(members.len(), 2);
    let ann = members
        .iter()
        .find(|m| m.display_name.as_deref() == Some("Ann A"))
        .unwrap();
    assert_eq!(
        ann.membership.end_date.unwrap().to_rfc3339(),
        "2100-01-01T00:00:00+00:00",
        "a date means through the end of that day"
    );

    // Again, with Ann's end date changed and Bob the same: no duplicates.
    let csv = "email,name,end_date\n\
               ann@example.org,Ann A,2098-06-30\n\
               bob@example.org,\"Bob, Jr.\",\n";
    let r = import(&hub, &hub.admin, &id, csv).await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    assert_eq!(r.1["rows"][0]["status"], "updated");
    assert_eq!(r.1["rows"][1]["status"], "unchanged");
    assert_eq!(stored_members(&hub).len(), 2);
    let users: Vec<Value> = hub.state.store.scan("users", "").unwrap();
    assert_eq!(users.len(), 3, "admin, ann, bob");

    // Unchanged again: nothing written, not even an audit record.
    let audit_before = hub.state.store.scan::<Value>("audit", "").unwrap().len();
    let r = import(&hub, &hub.admin, &id, "bob@example.org,\"Bob, Jr.\",\n").await;
    assert_eq!(r.1["applied"], false, "{}", r.1);
    assert_eq!(r.1["unchanged"], 1);
    assert_eq!(
        hub.state.store.scan::<Value>("audit", "").unwrap().len(),
        audit_before
    );
    let (_, audit) = hub
        .get(&hub.admin, "/api/v1/audit?action=access_group.import")
        .await;
    assert_eq!(audit.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn l7_a_wholly_invalid_import_stores_nothing() {
    let hub = TestHub::start().await;
    let id = group(&hub, &hub.admin, &hub.root, open_license()).await;
    let before = hub.state.store.scan::<Value>("audit", "").unwrap().len();
    let r = import(&hub, &hub.admin, &id, "nope,x,\nalso bad,y,never\n").await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    assert_eq!(r.1["applied"], false);
    assert_eq!(r.1["refused"], 2);
    // Not CSV columns, not UTF-8, not text/csv, too many rows.
    assert_error(
        &import(&hub, &hub.admin, &id, "email,phone\na@b.org,1\n").await,
        StatusCode::BAD_REQUEST,
        "invalid_csv",
    );
    let response = hub
        .client
        .post(format!("{}{GROUPS}/{id}/members/import", hub.base))
        .bearer_auth(&hub.admin)
        .header("content-type", "text/csv")
        .body(vec![0xff, 0xfe, b'a'])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let r = hub
        .post(
            &hub.admin,
            &format!("{GROUPS}/{id}/members/import"),
            json!({"email": "a@b.org"}),
        )
        .await;
    assert_error(
        &r,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    let many: String = (0..5001).map(|i| format!("u{i}@example.org,,\n")).collect();
    assert_error(
        &import(&hub, &hub.admin, &id, &many).await,
        StatusCode::BAD_REQUEST,
        "too_many_rows",
    );
    assert!(stored_members(&hub).is_empty());
    assert_eq!(hub.state.store.scan::<Value>("users", "").unwrap().len(), 1);
    assert_eq!(
        hub.state.store.scan::<Value>("audit", "").unwrap().len(),
        before
    );
}

#[tokio::test]
async fn l9_shop_hook_needs_the_group_key_and_is_idempotent_by_order_id() {
    let hub = TestHub::start().await;
    let id = group(
        &hub,
        &hub.admin,
        &hub.root,
        json!({"duration_from_join_secs": 86400, "allow_offline": false,
            "offline_grace_secs": 0, "allow_export": false}),
    )
    .await;
    let order = json!({"order_id": "A-1001", "email": "buyer@example.org", "name": "Buyer"});
    // No key yet, a user token, a wrong key: 401.
    assert_error(
        &shop(&hub, &id, "no-key-made", order.clone()).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    let (_, viewer) = hub.user("vic", "viewer", &[&hub.root]).await;
    assert_error(
        &hub.post(&viewer, &format!("{GROUPS}/{id}/shop-key"), json!(null))
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let r = hub
        .post(&hub.admin, &format!("{GROUPS}/{id}/shop-key"), json!(null))
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    let key = r.1["shop_key"].as_str().unwrap().to_owned();
    assert_eq!(
        stored_groups(&hub)[0].shop_key_hash.as_deref(),
        Some(signet_hub::identity::token_key(&key).as_str())
    );
    assert_error(
        &shop(&hub, &id, &hub.admin, order.clone()).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_error(
        &shop(&hub, &id, "wrong key", order.clone()).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert!(stored_members(&hub).is_empty());

    let r = shop(&hub, &id, &key, order.clone()).await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    assert_eq!(r.1["replayed"], false);
    assert_eq!(r.1["window"]["ended_by"], "duration_from_join");
    let user = r.1["user_id"].clone();
    hub.clock.advance(TimeDelta::minutes(5));
    let r = shop(&hub, &id, &key, order.clone()).await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    assert_eq!(r.1["replayed"], true);
    assert_eq!(r.1["user_id"], user);
    let members = stored_members(&hub);
    assert_eq!(members.len(), 1);
    assert_eq!(
        members[0].membership.joined_at + TimeDelta::minutes(5),
        now(&hub),
        "a replay does not restart the membership"
    );
    assert_error(
        &shop(
            &hub,
            &id,
            &key,
            json!({"order_id": "A-1001", "email": "other@example.org"}),
        )
        .await,
        StatusCode::CONFLICT,
        "order_conflict",
    );
    // Another group's key does not work here.
    let other = group(&hub, &hub.admin, &hub.root, open_license()).await;
    assert_error(
        &shop(&hub, &other, &key, order).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    let (_, audit) = hub
        .get(&hub.admin, "/api/v1/audit?action=access_group.shop_member")
        .await;
    assert_eq!(audit.as_array().unwrap().len(), 1);
    assert_eq!(audit[0]["actor_name"], "shop");
}

#[tokio::test]
async fn s8_malformed_unknown_fields_and_oversized_bodies_store_nothing() {
    let hub = TestHub::start().await;
    let response = hub
        .client
        .post(format!("{}{GROUPS}", hub.base))
        .bearer_auth(&hub.admin)
        .header("content-type", "application/json")
        .body("{\"node\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_body");

    let mut license = open_license();
    license["surprise"] = json!(true);
    assert_error(
        &hub.post(
            &hub.admin,
            GROUPS,
            json!({"node": hub.root, "name": "g", "license": license}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_body",
    );
    assert_error(
        &hub.post(
            &hub.admin,
            GROUPS,
            json!({"node": hub.root, "name": "g", "license": open_license(), "extra": 1}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_body",
    );
    let huge = "x".repeat(2 * 1024 * 1024);
    let r = hub
        .post(
            &hub.admin,
            GROUPS,
            json!({"node": hub.root, "name": huge, "license": open_license()}),
        )
        .await;
    assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
    let r = hub
        .post(
            &hub.admin,
            GROUPS,
            json!({"node": hub.root, "name": "x".repeat(129), "license": open_license()}),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_name");
    let r = hub
        .post(
            &hub.admin,
            GROUPS,
            json!({"node": hub.root, "name": "g", "license": open_license(),
                "categories": (0..65).map(|i| format!("c{i}")).collect::<Vec<_>>()}),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_categories");
    let r = hub
        .post(
            &hub.admin,
            GROUPS,
            json!({"node": hub.root, "name": "g", "license": open_license(),
                "signup_domains": ["not a domain"]}),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_signup_domains");
    assert!(stored_groups(&hub).is_empty());

    // Unauthenticated routes too.
    assert_error(
        &anonymous(
            &hub,
            "/api/v1/access-groups/invites/accept",
            json!({"token": "t", "admin": true}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_body",
    );
    assert_error(
        &anonymous(
            &hub,
            "/api/v1/access-groups/invites/accept",
            json!({"token": "t".repeat(129)}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    );
    assert!(
        hub.state
            .store
            .scan::<Value>("audit", "")
            .unwrap()
            .iter()
            .all(|e| !e["action"].as_str().unwrap().starts_with("access_group"))
    );
}

#[tokio::test]
async fn l5_device_activation_beyond_max_active_devices_is_refused_until_one_is_deactivated() {
    use signet_common::ids::DeviceId;
    use signet_common::license::{LicenseError, Membership};
    use signet_hub::access_groups::MemberSource;
    use signet_hub::store::WriteBatch;

    let hub = TestHub::start().await;
    let id = group(
        &hub,
        &hub.admin,
        &hub.root,
        json!({"max_active_devices": 1, "allow_offline": false, "offline_grace_secs": 0,
            "allow_export": false}),
    )
    .await;
    let store = &hub.state.store;
    let group: AccessGroup = store.get(ag::GROUPS, &id).unwrap().unwrap();
    // Device members arrive with pairing; write them as that issue will.
    let device = |n: &str, active: bool| Member {
        group: group.id.clone(),
        member: MemberRef::Device {
            device_id: DeviceId::from(n),
        },
        membership: Membership::joined(now(&hub)),
        display_name: None,
        source: MemberSource::SelfSignup,
        active,
    };
    let mut batch = WriteBatch::new();
    for member in [device("d-1", true), device("d-2", false)] {
        batch
            .put(
                ag::MEMBERS,
                &ag::member_key(&group.id, &member.member),
                &member,
            )
            .unwrap();
    }
    store.apply(batch).await.unwrap();
    assert_eq!(
        ag::check_device_activation(store, &group, &DeviceId::from("d-2")).unwrap(),
        Err(LicenseError::TooManyDevices { max: 1 })
    );
    assert_eq!(
        ag::check_device_activation(store, &group, &DeviceId::from("d-1")).unwrap(),
        Ok(()),
        "re-activating an active device is fine"
    );
    // The inactive device holds no entitlement (L5).
    let d2 = MemberRef::Device {
        device_id: DeviceId::from("d-2"),
    };
    assert!(
        ag::entitlement(store, &group.id, &d2, None, now(&hub))
            .unwrap()
            .is_err()
    );
    // Deactivating d-1 frees the slot.
    let mut batch = WriteBatch::new();
    let d1 = device("d-1", false);
    batch
        .put(ag::MEMBERS, &ag::member_key(&group.id, &d1.member), &d1)
        .unwrap();
    store.apply(batch).await.unwrap();
    assert_eq!(
        ag::check_device_activation(store, &group, &DeviceId::from("d-2")).unwrap(),
        Ok(())
    );
}

#[tokio::test]
async fn l6_csv_with_a_byte_order_mark_and_an_invite_whose_end_date_passed() {
    let hub = TestHub::start().await;
    let id = group(&hub, &hub.admin, &hub.root, open_license()).await;
    let r = import(
        &hub,
        &hub.admin,
        &id,
        "\u{feff}email,name\nbom@example.org,Bom\n",
    )
    .await;
    assert_eq!(r.1["created"], 1, "{}", r.1);

    let end = now(&hub) + TimeDelta::hours(1);
    let r = hub
        .post(
            &hub.admin,
            &format!("{GROUPS}/{id}/invites"),
            json!({"email": "short@example.org", "end_date": rfc(end)}),
        )
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    let token = mailed_token(&hub, "short@example.org");
    hub.clock.advance(TimeDelta::hours(2));
    assert_error(
        &anonymous(
            &hub,
            "/api/v1/access-groups/invites/accept",
            json!({"token": token}),
        )
        .await,
        StatusCode::GONE,
        "invite_expired",
    );
    assert_eq!(stored_members(&hub).len(), 1);
}

/// L7 (issue 18 point 5): a row with an extra or a missing column is
/// refused on its own with the reason in the per-row report, under a header
/// and without one; the other rows apply and nothing else changes. A
/// misspelt header refuses the file. Before the fix a row with an extra
/// column was imported as if it were valid.
#[tokio::test]
async fn l7_rows_with_extra_or_missing_columns_are_refused_with_reasons() {
    let hub = TestHub::start().await;
    let id = group(&hub, &hub.admin, &hub.root, open_license()).await;
    let csv = "email,name,end_date\n\
               ann@example.org,Ann,\n\
               extra@example.org,Extra,2099-01-01,surplus\n\
               missing@example.org,Missing\n\
               bob@example.org,Bob,2099-12-31\n";
    let r = import(&hub, &hub.admin, &id, csv).await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    let rows = r.1["rows"].as_array().unwrap();
    let statuses: Vec<(u64, &str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["row"].as_u64().unwrap(),
                r["email"].as_str().unwrap(),
                r["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            (2, "ann@example.org", "created"),
            (3, "extra@example.org", "refused"),
            (4, "missing@example.org", "refused"),
            (5, "bob@example.org", "created"),
        ]
    );
    let reason = |row: usize| rows[row]["reason"].as_str().unwrap().to_owned();
    assert!(reason(1).contains("extra column"), "{}", reason(1));
    assert!(reason(2).contains("missing column"), "{}", reason(2));
    assert_eq!((&r.1["created"], &r.1["refused"]), (&json!(2), &json!(2)));
    let emails: Vec<String> = hub
        .state
        .store
        .scan::<Value>("users", "")
        .unwrap()
        .iter()
        .filter_map(|u| u["email"].as_str().map(str::to_owned))
        .collect();
    assert!(
        !emails
            .iter()
            .any(|e| e.starts_with("extra") || e.starts_with("missing")),
        "{emails:?}"
    );
    assert_eq!(stored_members(&hub).len(), 2);

    // Without a header: three columns, no more, no fewer.
    let r = import(
        &hub,
        &hub.admin,
        &id,
        "cy@example.org,Cy,\ndi@example.org\neve@example.org,Eve,,x\n",
    )
    .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    let rows = r.1["rows"].as_array().unwrap();
    assert_eq!(rows[0]["status"], "created");
    assert!(
        rows[1]["reason"]
            .as_str()
            .unwrap()
            .contains("missing column"),
        "{}",
        rows[1]
    );
    assert!(
        rows[2]["reason"].as_str().unwrap().contains("extra column"),
        "{}",
        rows[2]
    );
    assert_eq!(stored_members(&hub).len(), 3);

    // The header is validated: a misspelt column refuses the file.
    assert_error(
        &import(
            &hub,
            &hub.admin,
            &id,
            "emial,name,end_date\nzed@example.org,Zed,\n",
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_csv",
    );
    assert_eq!(stored_members(&hub).len(), 3);
}
