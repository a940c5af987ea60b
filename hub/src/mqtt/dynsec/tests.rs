//! Unit tests of the rights and the broker URL parser.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use signet_common::ids::{DeviceId, MAX_ID_LEN};

use super::link::parse_url;
use super::{check_id, device_acls, device_roles, own_acls};

#[test]
fn s7_device_acls_name_exactly_its_topics() {
    let device = DeviceId::from("d-a");
    let acls = device_acls(&device, &["g1".to_owned()]);
    let sends: Vec<&str> = acls
        .iter()
        .filter(|a| a.acl_type == "publishClientSend")
        .map(|a| a.topic.as_str())
        .collect();
    assert_eq!(
        sends,
        [
            "signet/v1/devices/d-a/events",
            "signet/v1/devices/d-a/state"
        ]
    );
    let reads: BTreeSet<&str> = acls
        .iter()
        .filter(|a| a.acl_type == "publishClientReceive")
        .map(|a| a.topic.as_str())
        .collect();
    let expected: BTreeSet<&str> = [
        "signet/v1/devices/d-a/assignment",
        "signet/v1/devices/d-a/commands",
        "signet/v1/hub/time",
        "signet/v1/trust",
        "signet/v1/groups/g1/manifest",
    ]
    .into();
    assert_eq!(reads, expected);
    // Only unsubscribing (which gives nothing) takes a wildcard.
    assert!(
        acls.iter()
            .filter(|a| a.acl_type != "unsubscribePattern")
            .all(|a| !a.topic.contains(['+', '#']))
    );
    // What only this device may do names no group and no shared topic:
    // the same entries whatever it follows (issue 20).
    let own = own_acls(&device);
    assert_eq!(own.len(), 6);
    assert!(
        own.iter()
            .all(|a| a.topic.starts_with("signet/v1/devices/d-a/"))
    );
    assert_eq!(
        device_roles(&device, &["g1".to_owned()]),
        BTreeSet::from([
            "signet-device-d-a".to_owned(),
            "signet-devices".to_owned(),
            "signet-group-g1".to_owned(),
        ])
    );
}

#[test]
fn s7_ids_that_would_widen_a_topic_are_refused() {
    for id in [
        "",
        "a/b",
        "+",
        "x#",
        "$SYS",
        "a\nb",
        &"x".repeat(MAX_ID_LEN + 1),
    ] {
        assert!(check_id("group id", id).is_err(), "{id:?}");
    }
    check_id("group id", "ag-0123456789abcdef").unwrap();
}

#[test]
fn broker_urls_parse_or_are_refused() {
    assert_eq!(
        parse_url("mqtt://127.0.0.1:1884").unwrap(),
        (false, "127.0.0.1".to_owned(), 1884)
    );
    assert_eq!(
        parse_url("mqtts://broker.example").unwrap(),
        (true, "broker.example".to_owned(), 8883)
    );
    assert_eq!(parse_url("mqtt://[::1]:1883").unwrap().1, "::1");
    for bad in [
        "http://x",
        "mqtt://",
        "mqtt://h:x",
        "mqtt://u@h:1",
        "mqtt://h:0",
    ] {
        assert!(parse_url(bad).is_err(), "{bad}");
    }
}
