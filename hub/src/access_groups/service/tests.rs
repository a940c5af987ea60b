//! The access-group rules that were reachable only over HTTP: licence
//! windows (L2, L4), device slots (L5), the group-full rule and CSV import
//! rows (L7), tested on the service's own functions.

use std::sync::Arc;

use chrono::TimeZone;
use signet_common::ids::{AccessGroupId, DeviceId, NodeId, UserId};
use signet_common::license::{Denied, LicenseTerms, Limit};
use signet_common::members_csv::ImportRow as CsvRow;

use super::*;
use crate::access_groups::import::{ImportContext, Planned, plan};
use crate::access_groups::joining::{Accounts, keep_or_join};
use crate::access_groups::types::ImportRow;
use crate::access_groups::{MAX_MEMBERS, entitlement, window};
use crate::store::{SledStorage, Store};

fn at(hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, hour, 0, 0).unwrap()
}

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let storage = SledStorage::open(dir.path()).unwrap();
    (dir, Store::new(Arc::new(storage)))
}

fn group(license: LicenseTerms) -> AccessGroup {
    AccessGroup {
        id: AccessGroupId::from("ag-1"),
        node: NodeId::from("tenant"),
        name: "Members".into(),
        license,
        categories: Vec::new(),
        self_signup: false,
        signup_domains: Vec::new(),
        shop_key_hash: None,
        created_at: at(0),
        created_by: UserId::from("u-admin"),
    }
}

fn user(id: &str, email: &str, domain: &str) -> User {
    User {
        id: UserId::from(id),
        name: email.to_lowercase(),
        email: email.into(),
        role: Role::Viewer,
        domain: vec![NodeId::from(domain)],
        requires_approval: false,
        disabled: false,
        password_hash: crate::access_groups::NO_PASSWORD.into(),
        created_at: at(0),
        created_by: None,
    }
}

fn device(group: &AccessGroup, id: &str, active: bool) -> Member {
    let who = MemberRef::Device {
        device_id: DeviceId::from(id),
    };
    let by = UserId::from("u-admin");
    let mut member = joined(group, who, at(1), None, None, MemberSource::Operator { by });
    member.active = active;
    member
}

fn two_slots() -> LicenseTerms {
    LicenseTerms {
        max_active_devices: Some(2),
        ..LicenseTerms::default()
    }
}

#[test]
fn l2_access_ends_at_the_earliest_limit() {
    let group = group(LicenseTerms {
        duration_from_join_secs: Some(3 * 3600),
        ..LicenseTerms::default()
    });
    let who = MemberRef::user(&UserId::from("u-1"));
    let source = MemberSource::SelfSignup;
    let by_license = joined(&group, who.clone(), at(1), None, None, source.clone());
    assert_eq!(window(&group, &by_license).ends_at, Some(at(4)));
    let by_member = joined(&group, who, at(1), Some(at(2)), None, source);
    let window = window(&group, &by_member);
    assert_eq!(window.ends_at, Some(at(2)));
    assert_eq!(window.ended_by, Some(Limit::MemberEndDate));
    assert!(window.contains(at(1)) && !window.contains(at(2)));
}

#[test]
fn l2_an_end_date_must_come_after_the_join() {
    assert!(checks::end_date(at(2), Some(at(3))).is_ok());
    assert!(checks::end_date(at(2), None).is_ok());
    for end in [at(2), at(1)] {
        let Err(AccessGroupError::Invalid { code, .. }) = checks::end_date(at(2), Some(end)) else {
            panic!("an end date at or before the join must be refused");
        };
        assert_eq!(code, "invalid_end_date");
    }
}

#[tokio::test]
async fn l4_removal_and_l5_deactivation_end_entitlement_at_once() {
    let (_dir, store) = store();
    let group = group(LicenseTerms::default());
    let screen = device(&group, "d-1", true);
    store
        .transact(|tx| {
            repo::put_group(tx, &group)?;
            repo::put_member(tx, &screen)
        })
        .await
        .unwrap();
    let entitled = || entitlement(&store, &group.id, &screen.member, None, at(2)).unwrap();
    assert!(entitled().is_ok());

    let mut inactive = screen.clone();
    inactive.active = false;
    store
        .transact(|tx| repo::put_member(tx, &inactive))
        .await
        .unwrap();
    assert_eq!(entitled(), Err(Denied::Ended(Limit::Removed)));

    let mut removed = screen.clone();
    removed.membership.removed_at = Some(at(2));
    store
        .transact(|tx| repo::put_member(tx, &removed))
        .await
        .unwrap();
    assert!(entitled().is_err());
}

#[test]
fn l5_a_full_licence_refuses_another_device_but_not_a_reactivation() {
    let group = group(two_slots());
    let members = vec![device(&group, "d-1", true), device(&group, "d-2", true)];
    let third = DeviceId::from("d-3");
    assert!(device_slot(&group, &members, &third).is_err());
    assert!(device_slot(&group, &members, &DeviceId::from("d-1")).is_ok());
    assert!(device_slot(&group, &members[..1], &third).is_ok());
}

#[test]
fn l5_inactive_and_removed_devices_hold_no_slot() {
    let group = group(two_slots());
    let mut removed = device(&group, "d-2", true);
    removed.membership.removed_at = Some(at(2));
    let members = vec![
        device(&group, "d-1", true),
        removed,
        device(&group, "d-3", false),
    ];
    assert!(device_slot(&group, &members, &DeviceId::from("d-4")).is_ok());
}

/// Two slots, eight devices activating at once: the slot count is read
/// inside each transaction, so no more than two ever win (L5, S9).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn l5_concurrent_activations_never_exceed_the_device_slots() {
    let (_dir, store) = store();
    let group = group(two_slots());
    store
        .transact(|tx| repo::put_group(tx, &group))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (store, group) = (store.clone(), group.clone());
        tasks.push(tokio::spawn(async move {
            let screen = device(&group, &format!("d-{i}"), true);
            let MemberRef::Device { device_id } = screen.member.clone() else {
                unreachable!()
            };
            store
                .transact(|tx| {
                    take_device_slot(tx, &group, &device_id)?;
                    repo::put_member(tx, &screen)?;
                    Ok::<_, AccessGroupError>(())
                })
                .await
                .is_ok()
        }));
    }
    let mut won = 0;
    for task in tasks {
        won += usize::from(task.await.unwrap());
    }
    assert_eq!(won, 2);
    let members: Vec<Member> = store.scan(crate::access_groups::MEMBERS, "ag-1/").unwrap();
    assert_eq!(members.iter().filter(|m| m.active).count(), 2);
}

#[test]
fn l1_a_full_group_refuses_one_more_member() {
    assert!(checks::check_room(MAX_MEMBERS - 1).is_ok());
    let Err(AccessGroupError::Conflict { code, .. }) = checks::check_room(MAX_MEMBERS) else {
        panic!("a full group must refuse");
    };
    assert_eq!(code, "group_full");
}

#[tokio::test]
async fn l6_joining_again_keeps_the_current_membership() {
    let (_dir, store) = store();
    let group = group(LicenseTerms::default());
    let who = MemberRef::user(&UserId::from("u-1"));
    let join = |at_hour| {
        let (group, who) = (group.clone(), who.clone());
        move |_: MemberRef| {
            joined(
                &group,
                who,
                at(at_hour),
                None,
                None,
                MemberSource::SelfSignup,
            )
        }
    };
    let (first, already) = store
        .transact(|tx| keep_or_join(tx, &group, who.clone(), join(1)))
        .await
        .unwrap();
    assert!(!already);
    let (second, already) = store
        .transact(|tx| keep_or_join(tx, &group, who.clone(), join(5)))
        .await
        .unwrap();
    assert!(already);
    assert_eq!(second.membership.joined_at, first.membership.joined_at);
}

// ------------------------------------------------------------ import rows

fn row(line: u64, email: &str, end_date: Option<DateTime<Utc>>) -> CsvRow {
    CsvRow {
        line,
        email: email.into(),
        name: None,
        end_date: Ok(end_date),
        shape: Ok(()),
    }
}

fn manager() -> Actor {
    Actor {
        user: User {
            role: Role::Manager,
            ..user("u-admin", "admin@example.com", "tenant")
        },
        from: "test".into(),
    }
}

fn tree() -> NodeTree {
    let mut tree = NodeTree::new(NodeId::from("root"));
    tree.add_node(NodeId::from("tenant"), &NodeId::from("root"))
        .unwrap();
    tree.add_node(NodeId::from("other"), &NodeId::from("root"))
        .unwrap();
    tree
}

/// Plans `rows` against `users` and `members` of the test group at hour 1.
fn plan_rows(
    users: Vec<User>,
    members: Vec<Member>,
    rows: Vec<CsvRow>,
) -> (Vec<ImportRow>, Vec<Planned>) {
    let (actor, tree, group) = (manager(), tree(), group(LicenseTerms::default()));
    let names = users
        .iter()
        .map(|u| crate::identity::name_key(&u.name))
        .collect();
    let accounts = Accounts { users, names };
    let context = ImportContext {
        actor: &actor,
        tree: &tree,
        group: &group,
        accounts: &accounts,
        members: members.into_iter().map(|m| (m.member.key(), m)).collect(),
        now: at(1),
    };
    plan(&context, rows)
}

fn statuses(report: &[ImportRow]) -> Vec<&'static str> {
    report.iter().map(|r| r.status).collect()
}

#[test]
fn l7_each_row_is_refused_on_its_own_and_the_others_apply() {
    let mut bad_shape = row(5, "e@example.com", None);
    bad_shape.shape = Err("too many cells".into());
    let (report, planned) = plan_rows(
        Vec::new(),
        Vec::new(),
        vec![
            row(1, "a@example.com", None),
            row(2, "not an address", None),
            row(3, "A@Example.com", None),
            row(4, "d@example.com", Some(at(0))),
            bad_shape,
        ],
    );
    assert_eq!(
        statuses(&report),
        ["created", "refused", "refused", "refused", "refused"]
    );
    assert!(report[2].reason.as_deref().unwrap().contains("row 1"));
    assert!(report[3].reason.as_deref().unwrap().contains("end date"));
    assert_eq!(report[4].reason.as_deref(), Some("too many cells"));
    let [Planned::Create(Some(made), member)] = planned.as_slice() else {
        panic!("one new account and membership: {planned:?}");
    };
    assert_eq!(made.name, "a@example.com");
    assert_eq!(made.role, Role::Viewer);
    assert_eq!(made.domain, vec![NodeId::from("tenant")]);
    assert_eq!(member.member, MemberRef::user(&made.id));
}

#[test]
fn l7_an_import_is_idempotent_by_email() {
    let known = user("u-1", "b@example.com", "tenant");
    let group = group(LicenseTerms::default());
    let source = MemberSource::SelfSignup;
    let member = joined(
        &group,
        MemberRef::user(&known.id),
        at(0),
        Some(at(5)),
        None,
        source,
    );
    let rows = vec![row(1, "B@example.com", Some(at(5)))];
    let (report, planned) = plan_rows(vec![known.clone()], vec![member.clone()], rows);
    assert_eq!(statuses(&report), ["unchanged"]);
    assert!(planned.is_empty());

    let rows = vec![row(1, "b@example.com", Some(at(6)))];
    let (report, planned) = plan_rows(vec![known.clone()], vec![member], rows);
    assert_eq!(statuses(&report), ["updated"]);
    assert_eq!(report[0].user_id, Some(known.id));
    let [Planned::Update(changed)] = planned.as_slice() else {
        panic!("one update: {planned:?}");
    };
    assert_eq!(changed.membership.end_date, Some(at(6)));
}

#[test]
fn l7_t4_an_account_outside_the_importers_domain_is_refused() {
    let stranger = user("u-9", "c@example.com", "other");
    let (report, planned) = plan_rows(
        vec![stranger],
        Vec::new(),
        vec![row(1, "c@example.com", None)],
    );
    assert_eq!(statuses(&report), ["refused"]);
    assert!(
        report[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("outside your domain")
    );
    assert!(planned.is_empty());
}

#[test]
fn l7_a_full_group_refuses_new_rows_but_updates_current_members() {
    let group = group(LicenseTerms::default());
    let known = user("u-0", "known@example.com", "tenant");
    let mut members: Vec<Member> = (0..MAX_MEMBERS)
        .map(|i| {
            let who = MemberRef::user(&UserId::from(format!("u-{i}").as_str()));
            joined(&group, who, at(0), None, None, MemberSource::SelfSignup)
        })
        .collect();
    members[0].membership.end_date = Some(at(5));
    let rows = vec![
        row(1, "new@example.com", None),
        row(2, "known@example.com", Some(at(6))),
    ];
    let (report, _) = plan_rows(vec![known], members, rows);
    assert_eq!(statuses(&report), ["refused", "updated"]);
    assert!(report[0].reason.as_deref().unwrap().contains("full"));
}

#[test]
fn l7_s13_a_taken_login_name_refuses_the_row() {
    // Another account holds the login name, under another address.
    let holder = User {
        name: "d@example.com".into(),
        ..user("u-5", "someone@example.org", "tenant")
    };
    let rows = vec![row(1, "d@example.com", None)];
    let (report, planned) = plan_rows(vec![holder], Vec::new(), rows);
    assert_eq!(statuses(&report), ["refused"]);
    assert!(report[0].reason.as_deref().unwrap().contains("taken"));
    assert!(planned.is_empty());
}

/// L2: a device's first play under the group's license sets its
/// `first_used_at` once (clamped to its join and the hub's time), shortens
/// its window to first use + the duration, and marks the group for
/// re-signing in the same transaction; plays that are not under the
/// license, skips and a second play change nothing.
#[tokio::test]
async fn l2_first_play_sets_first_use_once_and_marks_the_group_for_resigning() {
    use crate::access_groups::first_use::{self, note_play};
    use signet_common::sync::{Outcome, PlayEvent};

    let (_dir, store) = store();
    let group = group(LicenseTerms {
        duration_from_first_use_secs: Some(3600),
        duration_from_join_secs: Some(10 * 3600),
        ..LicenseTerms::default()
    });
    let screen = device(&group, "d-1", true);
    store
        .transact(|tx| {
            repo::put_group(tx, &group)?;
            repo::put_member(tx, &screen)
        })
        .await
        .unwrap();
    let device_id = DeviceId::from("d-1");
    let play = |start: DateTime<Utc>, outcome: Outcome, access_group: Option<&str>| PlayEvent {
        id: format!("{:032x}", start.timestamp()),
        device_id: device_id.clone(),
        item: signet_common::ids::ItemId::from("c-1"),
        access_group: access_group.map(AccessGroupId::from),
        license_version: Some(1),
        start,
        duration_ms: 1000,
        outcome,
        skip_reason: (outcome == Outcome::Skipped).then(|| "not cached yet".to_owned()),
        country: None,
        region: None,
        os: "test".into(),
        agent_version: "0".into(),
    };
    let note = |event: PlayEvent, now: DateTime<Utc>| {
        let store = store.clone();
        let device_id = device_id.clone();
        async move {
            store
                .transact(|tx| note_play(tx, &device_id, &event, now))
                .await
                .unwrap()
        }
    };
    let first_use = || {
        crate::access_groups::member_of(&store, &group.id, &screen.member)
            .unwrap()
            .unwrap()
            .membership
            .first_used_at
    };
    // Not under the license, or not a play: no first use.
    assert_eq!(note(play(at(2), Outcome::Played, None), at(2)).await, None);
    assert_eq!(
        note(play(at(2), Outcome::Skipped, Some("ag-1")), at(2)).await,
        None
    );
    assert_eq!(first_use(), None);
    assert!(first_use::pending(&store).unwrap().is_empty());
    // The first play: set (a start in the future is clamped to now).
    let noted = note(play(at(5), Outcome::Played, Some("ag-1")), at(3)).await;
    assert_eq!(noted, Some(group.id.clone()));
    assert_eq!(first_use(), Some(at(3)));
    let member = crate::access_groups::member_of(&store, &group.id, &screen.member)
        .unwrap()
        .unwrap();
    let shortened = window(&group, &member);
    assert_eq!(shortened.ends_at, Some(at(4)));
    assert_eq!(shortened.ended_by, Some(Limit::DurationFromFirstUse));
    let marks = first_use::pending(&store).unwrap();
    assert_eq!(marks, vec![(group.id.clone(), at(3))]);
    // Once: a later play does not move it.
    assert_eq!(
        note(play(at(3), Outcome::Played, Some("ag-1")), at(3)).await,
        None
    );
    assert_eq!(first_use(), Some(at(3)));
    // The mark is cleared only if it is still the one published.
    store
        .transact(|tx| first_use::clear(tx, &group.id, at(2)))
        .await
        .unwrap();
    assert_eq!(first_use::pending(&store).unwrap().len(), 1);
    store
        .transact(|tx| first_use::clear(tx, &group.id, at(3)))
        .await
        .unwrap();
    assert!(first_use::pending(&store).unwrap().is_empty());
}
