//! Document payloads (DESIGN §4–§5): group manifests and device assignments
//! signed, verified and validated end to end; A7/A8 approval checks.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use chrono::TimeDelta;
use serde_json::json;
use signet_common::approval::{
    ApprovalState, Canvas, ContentHash, FeedBinding, Rect, Template, Zone, ZoneKind,
};
use signet_common::documents::{
    AccessMembership, AssignmentError, DeviceAssignment, GroupKind, GroupManifest, ItemKind,
    Location, ManifestError, ManifestItem, Unapproved,
};
use signet_common::envelope::{self, DocumentKind, VerifyError};
use signet_common::ids::{AccessGroupId, DeviceId, ItemId, NodeId};
use signet_common::license::{AccessWindow, LicenseTerms};
use signet_common::schedule::{MergeMode, PlaylistItem, Schedule, ScheduleEntry};
use support::*;

/// A named edit and the error it must cause.
type Case<T, E> = (&'static str, Box<dyn Fn(&mut T)>, E);

fn media(id: &str, bytes: &[u8]) -> ManifestItem {
    let sha256 = ContentHash::of(bytes);
    ManifestItem {
        id: ItemId::from(id),
        kind: ItemKind::Video,
        sha256,
        size: bytes.len() as u64,
        url: format!("/api/v1/device/content/{sha256}"),
        approval: ApprovalState::Active,
        approved_hash: Some(sha256),
        categories: vec!["promo".into()],
        renditions: Vec::new(),
    }
}

fn entry(id: &str, items: &[&str]) -> ScheduleEntry {
    serde_json::from_value(json!({
        "id": id,
        "items": items.iter().map(|i| json!({"item": i, "duration_ms": 10_000})).collect::<Vec<_>>(),
        "priority": 0,
    }))
    .unwrap()
}

fn manifest() -> GroupManifest {
    GroupManifest {
        version: 4,
        issued_at: t0(),
        expires_at: t0() + TimeDelta::days(7),
        group_id: "ag-1".into(),
        group_kind: GroupKind::AccessGroup,
        items: vec![media("a", b"video a"), media("b", b"video b")],
        schedule: Schedule {
            entries: vec![entry("e1", &["a", "b"])],
            merge: MergeMode::Sequence,
            default_item: Some(PlaylistItem {
                item: ItemId::from("a"),
                duration_ms: 5_000,
            }),
        },
        license: Some(LicenseTerms {
            duration_from_join_secs: Some(86_400 * 30),
            ..LicenseTerms::default()
        }),
    }
}

fn assignment() -> DeviceAssignment {
    DeviceAssignment {
        version: 2,
        issued_at: t0(),
        device_id: DeviceId::from("dev-1"),
        node_chain: vec![
            NodeId::from("root"),
            NodeId::from("tenant"),
            NodeId::from("site"),
        ],
        access_groups: vec![AccessMembership {
            group_id: AccessGroupId::from("ag-1"),
            window: AccessWindow {
                starts_at: t0(),
                ends_at: Some(t0() + TimeDelta::days(30)),
                ended_by: None,
            },
        }],
        min_manifest_versions: [("ag-1".to_string(), 4), ("site".to_string(), 1)]
            .into_iter()
            .collect(),
        time_zone: chrono_tz::Europe::Berlin,
        location: Location {
            country: Some("DE".into()),
            region: Some("Berlin".into()),
        },
        offline_grace_secs: 48 * 3600,
        variables: Default::default(),
    }
}

#[test]
fn s1_group_manifest_signs_verifies_and_validates() {
    let h = Hierarchy::new();
    let bytes = envelope::sign_document(&manifest(), &h.signing).unwrap();
    let verified = h.store.verify::<GroupManifest>(&bytes, t0()).unwrap();
    assert_eq!(verified.payload(), &manifest());
    verified.payload().validate().unwrap();
    // The manifest expires (S3 freeze bound).
    let expires_at = manifest().expires_at;
    assert_eq!(
        h.store.verify::<GroupManifest>(&bytes, expires_at),
        Err(VerifyError::Expired { expires_at })
    );
}

#[test]
fn s1_device_assignment_signs_verifies_and_validates() {
    let h = Hierarchy::new();
    let bytes = envelope::sign_document(&assignment(), &h.signing).unwrap();
    let verified = h.store.verify::<DeviceAssignment>(&bytes, t0()).unwrap();
    assert_eq!(verified.payload(), &assignment());
    verified
        .payload()
        .validate_for(&DeviceId::from("dev-1"))
        .unwrap();
    let groups: Vec<&str> = verified.payload().group_ids().collect();
    assert_eq!(groups, ["root", "tenant", "site", "ag-1"]);
    assert_eq!(verified.payload().offline_grace(), TimeDelta::hours(48));
}

#[test]
fn s1_payload_with_unknown_field_or_bad_time_zone_is_malformed() {
    let h = Hierarchy::new();
    let mut value = serde_json::to_value(assignment()).unwrap();
    value["surprise"] = json!(true);
    let bytes = sign_raw(
        DocumentKind::DeviceAssignment,
        &serde_json::to_vec(&value).unwrap(),
        &h.signing,
    );
    assert!(matches!(
        h.store.verify::<DeviceAssignment>(&bytes, t0()),
        Err(VerifyError::MalformedPayload { .. })
    ));
    let mut value = serde_json::to_value(assignment()).unwrap();
    value["time_zone"] = json!("Mars/Olympus_Mons");
    let bytes = sign_raw(
        DocumentKind::DeviceAssignment,
        &serde_json::to_vec(&value).unwrap(),
        &h.signing,
    );
    assert!(matches!(
        h.store.verify::<DeviceAssignment>(&bytes, t0()),
        Err(VerifyError::MalformedPayload { .. })
    ));
}

#[test]
fn s3_manifest_validation_refuses_each_inconsistency() {
    let cases: Vec<Case<GroupManifest, ManifestError>> = vec![
        (
            "empty group id",
            Box::new(|m| m.group_id.clear()),
            ManifestError::BadGroupId,
        ),
        (
            "expires before issued",
            Box::new(|m| m.expires_at = m.issued_at),
            ManifestError::ExpiresBeforeIssued,
        ),
        (
            "duplicate item",
            Box::new(|m| m.items.push(media("a", b"again"))),
            ManifestError::DuplicateItem(ItemId::from("a")),
        ),
        (
            "scheduled item not listed",
            Box::new(|m| m.schedule.entries.push(entry("e2", &["ghost"]))),
            ManifestError::UnknownScheduledItem(ItemId::from("ghost")),
        ),
        (
            "default item not listed",
            Box::new(|m| {
                m.schedule.default_item = Some(PlaylistItem {
                    item: ItemId::from("ghost"),
                    duration_ms: 1,
                })
            }),
            ManifestError::UnknownScheduledItem(ItemId::from("ghost")),
        ),
        (
            "active media approved for other bytes",
            Box::new(|m| m.items[0].approved_hash = Some(ContentHash::of(b"other"))),
            ManifestError::ApprovedHashMismatch(ItemId::from("a")),
        ),
        (
            "active without approved hash",
            Box::new(|m| m.items[1].approved_hash = None),
            ManifestError::ActiveWithoutApprovedHash(ItemId::from("b")),
        ),
        (
            "empty url",
            Box::new(|m| m.items[0].url.clear()),
            ManifestError::BadUrl(ItemId::from("a")),
        ),
        (
            "too many categories",
            Box::new(|m| m.items[0].categories = vec!["c".into(); 33]),
            ManifestError::BadCategories(ItemId::from("a")),
        ),
        (
            "node with a license",
            Box::new(|m| m.group_kind = GroupKind::Node),
            ManifestError::LicenseMismatch,
        ),
        (
            "access group without one",
            Box::new(|m| m.license = None),
            ManifestError::LicenseMismatch,
        ),
    ];
    for (name, edit, expected) in cases {
        let mut m = manifest();
        edit(&mut m);
        assert_eq!(m.validate(), Err(expected), "{name}");
    }
    // Errors of the schedule and license rules come through typed.
    let mut m = manifest();
    m.schedule.entries.push(entry("e1", &["a"]));
    assert!(matches!(m.validate(), Err(ManifestError::Schedule(_))));
    let mut m = manifest();
    m.license = Some(LicenseTerms {
        duration_from_join_secs: Some(0),
        ..LicenseTerms::default()
    });
    assert!(matches!(m.validate(), Err(ManifestError::License(_))));
    let mut m = manifest();
    m.items = (0..=signet_common::documents::MAX_MANIFEST_ITEMS)
        .map(|i| media(&format!("i{i}"), b"x"))
        .collect();
    assert_eq!(
        m.validate(),
        Err(ManifestError::TooManyItems(
            signet_common::documents::MAX_MANIFEST_ITEMS + 1
        ))
    );
}

#[test]
fn s1_assignment_validation_refuses_each_inconsistency() {
    let me = DeviceId::from("dev-1");
    assert_eq!(
        assignment().validate_for(&DeviceId::from("dev-2")),
        Err(AssignmentError::OtherDevice(me.clone()))
    );
    let cases: Vec<Case<DeviceAssignment, AssignmentError>> = vec![
        (
            "empty chain",
            Box::new(|a| a.node_chain.clear()),
            AssignmentError::BadNodeChain,
        ),
        (
            "repeated node",
            Box::new(|a| a.node_chain.push(NodeId::from("root"))),
            AssignmentError::BadNodeChain,
        ),
        (
            "membership twice",
            Box::new(|a| a.access_groups.push(a.access_groups[0].clone())),
            AssignmentError::BadMemberships,
        ),
        (
            "floor for a group the device is not in",
            Box::new(|a| {
                a.min_manifest_versions.insert("elsewhere".into(), 1);
            }),
            AssignmentError::FloorForUnknownGroup("elsewhere".into()),
        ),
        (
            "bad country",
            Box::new(|a| a.location.country = Some("GER".into())),
            AssignmentError::BadCountry,
        ),
    ];
    for (name, edit, expected) in cases {
        let mut a = assignment();
        edit(&mut a);
        assert_eq!(a.validate_for(&me), Err(expected), "{name}");
    }
}

#[test]
fn a7_pending_and_inactive_items_are_not_approved() {
    let mut item = media("a", b"bytes");
    for state in [ApprovalState::Pending, ApprovalState::Inactive] {
        item.approval = state;
        assert_eq!(
            item.check_approved(&ContentHash::of(b"bytes")),
            Err(Unapproved::NotActive(state))
        );
    }
}

#[test]
fn a8_only_the_approved_bytes_play() {
    let item = media("a", b"approved bytes");
    assert_eq!(
        item.check_approved(&ContentHash::of(b"approved bytes")),
        Ok(())
    );
    assert_eq!(
        item.check_approved(&ContentHash::of(b"swapped bytes")),
        Err(Unapproved::NotTheApprovedVersion {
            approved: ContentHash::of(b"approved bytes"),
            actual: ContentHash::of(b"swapped bytes"),
        })
    );
}

#[test]
fn a4_a8_a_template_feed_edit_keeps_it_approved_and_a_layout_edit_does_not() {
    let mut template = Template {
        canvas: Canvas {
            width: 1920,
            height: 1080,
        },
        zones: vec![Zone {
            id: "price".into(),
            kind: ZoneKind::Text,
            rect: Rect {
                x: 0,
                y: 0,
                width: 960,
                height: 540,
            },
            source: None,
            text: Some("Price".into()),
            style: None,
            feed: Some(FeedBinding {
                url: "https://feeds.example/[1]/price.json".into(),
                json_pointer: "/price".into(),
                refresh_secs: 60,
                last_value: None,
            }),
        }],
    };
    template.validate().unwrap();
    let bytes = serde_json::to_vec(&template).unwrap();
    let item = ManifestItem {
        kind: ItemKind::Template,
        approved_hash: Some(template.content_hash()),
        ..media("t", &bytes)
    };
    let manifest = GroupManifest {
        items: vec![item.clone()],
        schedule: Schedule {
            entries: vec![],
            merge: MergeMode::Sequence,
            default_item: None,
        },
        ..manifest()
    };
    manifest.validate().unwrap();

    let feed = template.zones[0].feed.as_mut().unwrap();
    feed.last_value = Some("9.99".into());
    feed.refresh_secs = 300;
    assert_eq!(item.check_approved(&template.content_hash()), Ok(()));

    template.zones[0].rect.width = 800;
    assert!(matches!(
        item.check_approved(&template.content_hash()),
        Err(Unapproved::NotTheApprovedVersion { .. })
    ));
}
