//! The approval state machine, templates and the content hash (A3, A4, A8, D6).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use proptest::prelude::*;
use signet_common::approval::{
    ApprovalError, ApprovalEvent, ApprovalProfile, ApprovalState, Canvas, Change, ContentHash,
    FeedBinding, ItemApproval, Rect, RequestMail, Template, TemplateError, TextAlign, TextStyle,
    Zone, ZoneKind, classify_change,
};
use signet_common::ids::ItemId;

const NEEDS_APPROVAL: ApprovalProfile = ApprovalProfile {
    requires_approval: true,
};
const TRUSTED: ApprovalProfile = ApprovalProfile {
    requires_approval: false,
};

fn hash(tag: &str) -> ContentHash {
    ContentHash::of(tag.as_bytes())
}

fn saved(change: Change, content_hash: ContentHash) -> ApprovalEvent {
    ApprovalEvent::Saved {
        change,
        content_hash,
        strict_mode: false,
    }
}

fn apply(
    item: &ItemApproval,
    event: &ApprovalEvent,
    profile: ApprovalProfile,
) -> Result<ItemApproval, ApprovalError> {
    item.apply(event, profile).map(|t| t.approval)
}

// ---- A3 state machine ------------------------------------------------------

#[test]
fn a3_copy_is_active_with_its_hash_approved() {
    let item = ItemApproval::copied(hash("v1"));
    assert_eq!(item.state(), ApprovalState::Active);
    assert_eq!(item.approved_hash(), Some(&hash("v1")));
}

#[test]
fn a3_new_item_is_inactive_only_for_profiles_requiring_approval() {
    assert_eq!(
        ItemApproval::created(NEEDS_APPROVAL, hash("v1")),
        ItemApproval::Inactive {
            rejection_reason: None
        }
    );
    assert_eq!(
        ItemApproval::created(TRUSTED, hash("v1")),
        ItemApproval::Active {
            approved_hash: hash("v1")
        }
    );
}

#[test]
fn a3_full_cycle_copy_save_request_approve_change_again() {
    // copy → active
    let item = ItemApproval::copied(hash("v1"));
    // save with a content change → inactive
    let item = apply(&item, &saved(Change::Content, hash("v2")), NEEDS_APPROVAL).unwrap();
    assert_eq!(item.state(), ApprovalState::Inactive);
    assert_eq!(item.approved_hash(), None);
    // request approval → pending, request mail sent
    let transition = item
        .apply(
            &ApprovalEvent::RequestApproval {
                content_hash: hash("v2"),
            },
            NEEDS_APPROVAL,
        )
        .unwrap();
    assert_eq!(transition.from, ApprovalState::Inactive);
    assert_eq!(transition.to(), ApprovalState::Pending);
    assert_eq!(transition.request_mail, Some(RequestMail::Send));
    let item = transition.approval;
    // approve → active, hash recorded
    let item = apply(
        &item,
        &ApprovalEvent::Approve {
            approved_hash: hash("v2"),
        },
        NEEDS_APPROVAL,
    )
    .unwrap();
    assert_eq!(
        item,
        ItemApproval::Active {
            approved_hash: hash("v2")
        }
    );
    // any content change after approval → inactive again
    let item = apply(&item, &saved(Change::Content, hash("v3")), NEEDS_APPROVAL).unwrap();
    assert_eq!(item.state(), ApprovalState::Inactive);
}

#[test]
fn a3_reject_keeps_the_reason_until_the_next_request() {
    let pending = ItemApproval::Pending {
        requested_hash: hash("v2"),
    };
    let item = apply(
        &pending,
        &ApprovalEvent::Reject {
            reason: "  Logo is outdated ".into(),
        },
        NEEDS_APPROVAL,
    )
    .unwrap();
    assert_eq!(
        item,
        ItemApproval::Inactive {
            rejection_reason: Some("Logo is outdated".into())
        }
    );
    // editing keeps the reason visible
    let edited = apply(&item, &saved(Change::Content, hash("v3")), NEEDS_APPROVAL).unwrap();
    assert_eq!(edited, item);
    // asking again clears it
    let again = apply(
        &edited,
        &ApprovalEvent::RequestApproval {
            content_hash: hash("v3"),
        },
        NEEDS_APPROVAL,
    )
    .unwrap();
    assert_eq!(
        again,
        ItemApproval::Pending {
            requested_hash: hash("v3")
        }
    );
}

#[test]
fn a3_reject_without_reason_is_refused() {
    let pending = ItemApproval::Pending {
        requested_hash: hash("v2"),
    };
    for reason in ["", "   \n"] {
        assert_eq!(
            pending.apply(
                &ApprovalEvent::Reject {
                    reason: reason.into()
                },
                NEEDS_APPROVAL
            ),
            Err(ApprovalError::EmptyRejectionReason)
        );
    }
    assert_eq!(
        pending.apply(
            &ApprovalEvent::Reject {
                reason: "x".repeat(2001)
            },
            NEEDS_APPROVAL
        ),
        Err(ApprovalError::RejectionReasonTooLong { max: 2000 })
    );
}

#[test]
fn a5_requesting_again_while_pending_resends_the_same_request() {
    let pending = ItemApproval::Pending {
        requested_hash: hash("v2"),
    };
    let transition = pending
        .apply(
            &ApprovalEvent::RequestApproval {
                content_hash: hash("v2"),
            },
            NEEDS_APPROVAL,
        )
        .unwrap();
    assert_eq!(transition.approval, pending);
    assert_eq!(transition.request_mail, Some(RequestMail::Resend));
    // another version while pending is a mismatch: the save that made it
    // should have withdrawn the request
    assert_eq!(
        pending.apply(
            &ApprovalEvent::RequestApproval {
                content_hash: hash("v3")
            },
            NEEDS_APPROVAL
        ),
        Err(ApprovalError::VersionMismatch {
            expected: hash("v2"),
            given: hash("v3")
        })
    );
}

#[test]
fn a3_content_change_while_pending_withdraws_the_request() {
    let pending = ItemApproval::Pending {
        requested_hash: hash("v2"),
    };
    assert_eq!(
        apply(
            &pending,
            &saved(Change::Content, hash("v3")),
            NEEDS_APPROVAL
        )
        .unwrap(),
        ItemApproval::Inactive {
            rejection_reason: None
        }
    );
}

#[test]
fn a3_users_without_approval_requirement_approve_their_own_saves() {
    for item in [
        ItemApproval::copied(hash("v1")),
        ItemApproval::Inactive {
            rejection_reason: Some("no".into()),
        },
        ItemApproval::Pending {
            requested_hash: hash("v1"),
        },
    ] {
        assert_eq!(
            apply(&item, &saved(Change::Content, hash("v9")), TRUSTED).unwrap(),
            ItemApproval::Active {
                approved_hash: hash("v9")
            }
        );
    }
}

#[test]
fn a3_invalid_transitions_are_errors_and_change_nothing() {
    let active = ItemApproval::copied(hash("v1"));
    let inactive = ItemApproval::Inactive {
        rejection_reason: None,
    };
    let pending = ItemApproval::Pending {
        requested_hash: hash("v1"),
    };
    let approve = ApprovalEvent::Approve {
        approved_hash: hash("v1"),
    };
    let reject = ApprovalEvent::Reject {
        reason: "no".into(),
    };
    let request = ApprovalEvent::RequestApproval {
        content_hash: hash("v1"),
    };
    let cases = [
        (&active, &approve, ApprovalState::Active, "approve"),
        (&active, &reject, ApprovalState::Active, "reject"),
        (&active, &request, ApprovalState::Active, "request_approval"),
        (&inactive, &approve, ApprovalState::Inactive, "approve"),
        (&inactive, &reject, ApprovalState::Inactive, "reject"),
    ];
    for (item, event, state, name) in cases {
        let before = item.clone();
        assert_eq!(
            item.apply(event, NEEDS_APPROVAL),
            Err(ApprovalError::InvalidTransition { state, event: name })
        );
        assert_eq!(*item, before);
    }
    // approving another version than the one requested
    assert_eq!(
        pending.apply(
            &ApprovalEvent::Approve {
                approved_hash: hash("v2")
            },
            NEEDS_APPROVAL
        ),
        Err(ApprovalError::VersionMismatch {
            expected: hash("v1"),
            given: hash("v2")
        })
    );
    // a save reported as unchanged whose hash differs from the held one
    assert_eq!(
        active.apply(&saved(Change::None, hash("v2")), NEEDS_APPROVAL),
        Err(ApprovalError::VersionMismatch {
            expected: hash("v1"),
            given: hash("v2")
        })
    );
}

// ---- A4 feed-only changes ---------------------------------------------------

#[test]
fn a4_feed_only_change_keeps_state_and_asks_for_audit() {
    for item in [
        ItemApproval::copied(hash("v1")),
        ItemApproval::Pending {
            requested_hash: hash("v1"),
        },
        ItemApproval::Inactive {
            rejection_reason: None,
        },
    ] {
        for url_changed in [false, true] {
            let transition = item
                .apply(
                    &saved(Change::FeedOnly { url_changed }, hash("v1")),
                    NEEDS_APPROVAL,
                )
                .unwrap();
            assert_eq!(transition.approval, item);
            assert!(transition.audit_feed_change);
            assert_eq!(transition.request_mail, None);
        }
    }
    let unchanged = ItemApproval::copied(hash("v1"))
        .apply(&saved(Change::None, hash("v1")), NEEDS_APPROVAL)
        .unwrap();
    assert!(!unchanged.audit_feed_change);
    assert_eq!(unchanged.to(), ApprovalState::Active);
}

#[test]
fn a4_strict_mode_deactivates_on_feed_url_change_only() {
    let active = ItemApproval::copied(hash("v1"));
    let strict = |url_changed| ApprovalEvent::Saved {
        change: Change::FeedOnly { url_changed },
        content_hash: hash("v1"),
        strict_mode: true,
    };
    let url = active.apply(&strict(true), NEEDS_APPROVAL).unwrap();
    assert_eq!(url.to(), ApprovalState::Inactive);
    assert!(url.audit_feed_change);
    let value = active.apply(&strict(false), NEEDS_APPROVAL).unwrap();
    assert_eq!(value.to(), ApprovalState::Active);
    assert!(value.audit_feed_change);
    // a user without the approval requirement stays active even in strict mode
    let trusted = active.apply(&strict(true), TRUSTED).unwrap();
    assert_eq!(trusted.approval, active);
}

#[test]
fn approval_records_serialize_by_state() {
    let item = ItemApproval::Pending {
        requested_hash: hash("v1"),
    };
    let json = serde_json::to_string(&item).unwrap();
    assert_eq!(
        json,
        format!(r#"{{"state":"pending","requested_hash":"{}"}}"#, hash("v1"))
    );
    assert_eq!(serde_json::from_str::<ItemApproval>(&json).unwrap(), item);
    assert!(
        serde_json::from_str::<ItemApproval>(
            r#"{"state":"inactive","rejection_reason":null,"x":1}"#
        )
        .is_err()
    );
    assert!(serde_json::from_str::<ItemApproval>(r#"{"state":"active"}"#).is_err());
}

// ---- Templates -----------------------------------------------------------

fn feed(url: &str) -> FeedBinding {
    FeedBinding {
        url: url.into(),
        json_pointer: "/price".into(),
        refresh_secs: 60,
        last_value: Some("1.99".into()),
    }
}

fn zone(id: &str, kind: ZoneKind, rect: (u32, u32, u32, u32)) -> Zone {
    Zone {
        id: id.into(),
        kind,
        rect: Rect {
            x: rect.0,
            y: rect.1,
            width: rect.2,
            height: rect.3,
        },
        source: None,
        text: None,
        style: None,
        feed: None,
    }
}

fn template() -> Template {
    let mut video = zone("main", ZoneKind::Video, (0, 0, 1440, 1080));
    video.source = Some(ItemId::new("promo.mp4"));
    let mut price = zone("price", ZoneKind::Text, (1440, 0, 480, 540));
    price.text = Some("Price".into());
    price.style = Some(TextStyle {
        font_size_px: 64,
        color_rgb: 0x00FF_FFFF,
        background_rgb: Some(0),
        align: TextAlign::Center,
    });
    price.feed = Some(feed(
        "https://feeds.example/store/[3]/prices.json?lang=[12]",
    ));
    let clock = zone("clock", ZoneKind::Clock, (1440, 540, 480, 270));
    let mut ticker = zone("news", ZoneKind::Ticker, (0, 1080 - 60, 1440, 60));
    ticker.feed = Some(feed("http://[::1]:8080/news"));
    Template {
        canvas: Canvas {
            width: 1920,
            height: 1080,
        },
        zones: vec![video, price, clock, ticker],
    }
}

fn invalid(edit: impl FnOnce(&mut Template)) -> TemplateError {
    let mut template = template();
    edit(&mut template);
    template.validate().unwrap_err()
}

#[test]
fn d6_sample_template_is_valid_and_round_trips() {
    let template = template();
    assert_eq!(template.validate(), Ok(()));
    let json = serde_json::to_string(&template).unwrap();
    assert_eq!(serde_json::from_str::<Template>(&json).unwrap(), template);
    assert!(json.contains(r#""kind":"ticker""#));
    let typo = json.replacen("refresh_secs", "refresh", 1);
    assert!(serde_json::from_str::<Template>(&typo).is_err());
}

#[test]
fn d6_canvas_and_zone_geometry_errors() {
    assert_eq!(
        invalid(|t| t.canvas.width = 0),
        TemplateError::CanvasSize {
            width: 0,
            height: 1080,
            max: 15_360
        }
    );
    assert_eq!(
        invalid(|t| t.canvas.height = 20_000),
        TemplateError::CanvasSize {
            width: 1920,
            height: 20_000,
            max: 15_360
        }
    );
    assert_eq!(
        invalid(|t| {
            let clock = t.zones[2].clone();
            t.zones = (0..65)
                .map(|i| Zone {
                    id: format!("z{i}"),
                    ..clock.clone()
                })
                .collect();
        }),
        TemplateError::TooManyZones { count: 65, max: 64 }
    );
    assert_eq!(
        invalid(|t| t.zones[1].id = String::new()),
        TemplateError::BadZoneId {
            zone: String::new(),
            max: 64
        }
    );
    assert_eq!(
        invalid(|t| t.zones[2].id = "main".into()),
        TemplateError::DuplicateZoneId {
            zone: "main".into()
        }
    );
    assert_eq!(
        invalid(|t| t.zones[0].rect.width = 0),
        TemplateError::EmptyZone {
            zone: "main".into()
        }
    );
    assert_eq!(
        invalid(|t| t.zones[1].rect.x = 1441),
        TemplateError::ZoneOutsideCanvas {
            zone: "price".into()
        }
    );
    assert_eq!(
        invalid(|t| t.zones[3].rect.y = u32::MAX),
        TemplateError::ZoneOutsideCanvas {
            zone: "news".into()
        }
    );
}

#[test]
fn d6_zone_content_validation_errors() {
    assert_eq!(
        invalid(|t| t.zones[2].source = Some(ItemId::new("x"))),
        TemplateError::SourceNotAllowed {
            zone: "clock".into(),
            kind: ZoneKind::Clock
        }
    );
    assert_eq!(
        invalid(|t| t.zones[0].text = Some("caption".into())),
        TemplateError::TextNotAllowed {
            zone: "main".into(),
            kind: ZoneKind::Video
        }
    );
    assert_eq!(
        invalid(|t| t.zones[1].text = Some("x".repeat(4097))),
        TemplateError::TextTooLong {
            zone: "price".into(),
            max: 4096
        }
    );
    assert_eq!(
        invalid(|t| {
            if let Some(style) = &mut t.zones[1].style {
                style.font_size_px = 0;
            }
        }),
        TemplateError::BadStyle {
            zone: "price".into()
        }
    );
    assert_eq!(
        invalid(|t| {
            if let Some(style) = &mut t.zones[1].style {
                style.color_rgb = 0x0100_0000;
            }
        }),
        TemplateError::BadStyle {
            zone: "price".into()
        }
    );
}

#[test]
fn d6_feed_validation_errors() {
    assert_eq!(
        invalid(|t| t.zones[2].feed = Some(feed("https://x.example/"))),
        TemplateError::FeedNotAllowed {
            zone: "clock".into(),
            kind: ZoneKind::Clock
        }
    );
    assert_eq!(
        invalid(|t| t.zones[0].feed = Some(feed("https://x.example/"))),
        TemplateError::FeedNotAllowed {
            zone: "main".into(),
            kind: ZoneKind::Video
        }
    );
    for url in [
        "ftp://x.example/a.json".to_owned(),
        "https://".to_owned(),
        "x.example/a.json".to_owned(),
        "https://x.example/a b.json".to_owned(),
        "https://x.example/\n".to_owned(),
        format!("https://x.example/{}", "a".repeat(2048)),
    ] {
        assert_eq!(
            invalid(|t| t.zones[1].feed = Some(feed(&url))),
            TemplateError::BadFeedUrl {
                zone: "price".into(),
                max: 2048
            },
            "{url}"
        );
    }
    for (url, variable) in [
        ("https://x.example/[0]", "0"),
        ("https://x.example/[26]", "26"),
        ("https://x.example/[01]", "01"),
        (
            "https://x.example/[1]/[99999999999999999999]",
            "9999999999999999",
        ),
    ] {
        assert_eq!(
            invalid(|t| t.zones[1].feed = Some(feed(url))),
            TemplateError::FeedVariableOutOfRange {
                zone: "price".into(),
                variable: variable.into()
            },
            "{url}"
        );
    }
    assert_eq!(
        invalid(|t| {
            if let Some(feed) = &mut t.zones[1].feed {
                feed.json_pointer = "price".into();
            }
        }),
        TemplateError::BadJsonPointer {
            zone: "price".into(),
            max: 512
        }
    );
    for refresh_secs in [0, 4, 86_401] {
        assert_eq!(
            invalid(|t| {
                if let Some(feed) = &mut t.zones[1].feed {
                    feed.refresh_secs = refresh_secs;
                }
            }),
            TemplateError::RefreshOutOfBounds {
                zone: "price".into(),
                refresh_secs,
                min: 5,
                max: 86_400
            }
        );
    }
    assert_eq!(
        invalid(|t| {
            if let Some(feed) = &mut t.zones[1].feed {
                feed.last_value = Some("9".repeat(4097));
            }
        }),
        TemplateError::FeedValueTooLong {
            zone: "price".into(),
            max: 4096
        }
    );
}

#[test]
fn d6_feed_variables_are_found_and_other_brackets_ignored() {
    let template = template();
    let price = template.zones[1].feed.as_ref().unwrap();
    assert_eq!(
        price
            .variables("price")
            .unwrap()
            .into_iter()
            .collect::<Vec<_>>(),
        [3, 12]
    );
    let ticker = template.zones[3].feed.as_ref().unwrap();
    assert!(ticker.variables("news").unwrap().is_empty());
    let edge = feed("https://x.example/[1][25][]/[abc]/[2");
    assert_eq!(
        edge.variables("z").unwrap().into_iter().collect::<Vec<_>>(),
        [1, 25]
    );
}

// ---- A4, A8 content hash -------------------------------------------------

#[test]
fn a8_content_hash_is_stable_and_hex() {
    let template = template();
    assert_eq!(template.content_hash(), template.clone().content_hash());
    let text = template.content_hash().to_string();
    assert_eq!(text.len(), 64);
    assert!(
        text.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    assert_eq!(text.parse::<ContentHash>(), Ok(template.content_hash()));
    assert!("not hex".parse::<ContentHash>().is_err());
    let json = serde_json::to_string(&template.content_hash()).unwrap();
    assert_eq!(json, format!("\"{text}\""));
    // Media bytes use the same type.
    assert_eq!(
        ContentHash::of(b"").to_string(),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[test]
fn a4_classify_change() {
    let old = template();
    assert_eq!(classify_change(&old, &old.clone()), Change::None);

    let mut value = old.clone();
    value.zones[1].feed.as_mut().unwrap().last_value = Some("2.49".into());
    assert_eq!(
        classify_change(&old, &value),
        Change::FeedOnly { url_changed: false }
    );
    assert_eq!(value.content_hash(), old.content_hash());

    let mut refresh = old.clone();
    refresh.zones[3].feed.as_mut().unwrap().refresh_secs = 300;
    assert_eq!(
        classify_change(&old, &refresh),
        Change::FeedOnly { url_changed: false }
    );

    let mut url = old.clone();
    url.zones[3].feed.as_mut().unwrap().url = "https://news.example/feed".into();
    url.zones[1].feed.as_mut().unwrap().json_pointer = "/cost".into();
    assert_eq!(
        classify_change(&old, &url),
        Change::FeedOnly { url_changed: true }
    );
    assert_eq!(url.content_hash(), old.content_hash());

    let mut moved = value.clone();
    moved.zones[2].rect.x -= 1;
    assert_eq!(classify_change(&old, &moved), Change::Content);
    assert_ne!(moved.content_hash(), old.content_hash());

    let mut unbound = old.clone();
    unbound.zones[3].feed = None;
    assert_eq!(classify_change(&old, &unbound), Change::Content);

    let mut reordered = old.clone();
    reordered.zones.swap(0, 1);
    assert_eq!(classify_change(&old, &reordered), Change::Content);
}

fn feed_edit() -> impl Strategy<Value = (usize, u8, String, u32)> {
    (0..2usize, 0..4u8, "[a-z0-9/]{0,20}", 5..=86_400u32)
}

proptest! {
    #[test]
    fn a4_mutating_only_feed_fields_never_changes_the_hash(
        edits in prop::collection::vec(feed_edit(), 1..8),
    ) {
        let old = template();
        let mut new = old.clone();
        for (which, field, text, refresh) in edits {
            let zone = if which == 0 { 1 } else { 3 };
            let feed = new.zones[zone].feed.as_mut().unwrap();
            match field {
                0 => feed.url = format!("https://feeds.example/{text}"),
                1 => feed.json_pointer = format!("/{text}"),
                2 => feed.refresh_secs = refresh,
                _ => feed.last_value = Some(text),
            }
        }
        prop_assert_eq!(new.content_hash(), old.content_hash());
        prop_assert_ne!(classify_change(&old, &new), Change::Content);
        // and the approval state is kept
        let item = ItemApproval::copied(old.content_hash());
        let transition = item.apply(&ApprovalEvent::Saved {
            change: classify_change(&old, &new),
            content_hash: new.content_hash(),
            strict_mode: false,
        }, NEEDS_APPROVAL).unwrap();
        prop_assert_eq!(transition.approval, item);
    }

    #[test]
    fn a4_mutating_a_layout_field_always_changes_the_hash(
        zone in 0..4usize,
        field in 0..9u8,
        delta in 1..100u32,
        text in "[a-z]{1,8}",
    ) {
        let old = template();
        let mut new = old.clone();
        {
            let z = &mut new.zones[zone];
            match field {
                0 => z.rect.x = z.rect.x.wrapping_add(delta),
                1 => z.rect.y = z.rect.y.wrapping_add(delta),
                2 => z.rect.width = z.rect.width.wrapping_add(delta),
                3 => z.rect.height = z.rect.height.wrapping_add(delta),
                4 => z.id.push_str(&text),
                5 => z.text = Some(format!("{}{text}", z.text.clone().unwrap_or_default())),
                6 => z.source = Some(ItemId::new(format!("{}{text}", z.source.as_ref().map_or("", ItemId::as_str)))),
                7 => z.kind = if z.kind == ZoneKind::Image { ZoneKind::Video } else { ZoneKind::Image },
                _ => {
                    let style = z.style.get_or_insert(TextStyle { font_size_px: 10, color_rgb: 0, background_rgb: None, align: TextAlign::Left });
                    style.font_size_px = style.font_size_px.wrapping_add(delta);
                }
            }
        }
        prop_assert_ne!(new.content_hash(), old.content_hash());
        prop_assert_eq!(classify_change(&old, &new), Change::Content);
    }

    #[test]
    fn a4_canvas_changes_the_hash(dw in 1..100u32, dh in 0..100u32) {
        let old = template();
        let mut new = old.clone();
        new.canvas.width += dw;
        new.canvas.height += dh;
        prop_assert_ne!(new.content_hash(), old.content_hash());
    }
}
