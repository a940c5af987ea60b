//! Unit tests of the files the hub writes for its broker, and of the
//! restart back-off.

#![allow(clippy::unwrap_used)]

use std::num::NonZeroU32;

use serde_json::json;

use super::ADMIN_USER;
use super::store::{client_entry, prepare_store};
use crate::mqtt::HUB_USERNAME;
use crate::mqtt::dynsec::HUB_ROLE;

#[test]
fn s10_store_keeps_devices_and_replaces_the_hubs_identities() {
    let existing = json!({
        "clients": [
            {"username": "d-1", "clientid": "d-1", "roles": [{"rolename": "signet-device-d-1"}]},
            {"username": HUB_USERNAME, "password": "old", "roles": []},
        ],
        "roles": [{"rolename": "signet-device-d-1", "acls": []},
                  {"rolename": HUB_ROLE, "acls": [{"acltype": "subscribePattern", "topic": "#", "allow": true}]}],
        "defaultACLAccess": {"publishClientSend": true, "publishClientReceive": true,
                             "subscribe": true, "unsubscribe": true},
    });
    let store = prepare_store(Some(existing), "admin-pw", "hub-pw", "signet-hub");
    let clients = store["clients"].as_array().unwrap();
    let names: Vec<&str> = clients
        .iter()
        .map(|c| c["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["d-1", ADMIN_USER, HUB_USERNAME]);
    let hub = &clients[2];
    assert_eq!(hub["clientid"], "signet-hub");
    assert_ne!(hub["password"], "old");
    let hub_role = store["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rolename"] == HUB_ROLE)
        .unwrap();
    assert!(
        hub_role["acls"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["topic"] != "#"),
        "the hub role is rewritten"
    );
    assert!(
        store["defaultACLAccess"]
            .as_object()
            .unwrap()
            .values()
            .all(|v| v == false)
    );
}

#[test]
fn password_hash_is_the_plugins_pbkdf2() {
    use base64::Engine as _;
    let entry = client_entry("u", "pw123", "r");
    let b64 = base64::engine::general_purpose::STANDARD;
    let salt = b64.decode(entry["salt"].as_str().unwrap()).unwrap();
    let mut expected = [0_u8; 64];
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA512,
        NonZeroU32::new(101).unwrap(),
        &salt,
        b"pw123",
        &mut expected,
    );
    assert_eq!(salt.len(), 12);
    assert_eq!(entry["password"], b64.encode(expected));
    assert_eq!(entry["iterations"], 101);
}
/// The supervisor's restart pauses: 100 ms doubling to 30 s, and no end
/// (a broker that keeps failing is retried every 30 s for ever).
#[test]
fn s10_restart_backoff_doubles_to_thirty_seconds_and_never_gives_up() {
    use backon::BackoffBuilder as _;
    let pauses: Vec<u128> = super::supervise::RESTART_BACKOFF
        .build()
        .take(12)
        .map(|pause| pause.as_millis())
        .collect();
    assert_eq!(
        pauses,
        [
            100, 200, 400, 800, 1600, 3200, 6400, 12_800, 25_600, 30_000, 30_000, 30_000
        ]
    );
    assert!(
        super::supervise::RESTART_BACKOFF
            .build()
            .nth(1000)
            .is_some()
    );
}
