//! The fleet index against a full recomputation (U4, issue 20): after
//! every step of a random sequence of reports, heartbeats stopping, last
//! wills, publications, pairings, moves, unpairs, clock jumps and access
//! group edits, the index's totals and pages equal what reading every
//! device says, and its pages' JSON (built from each row's cached bytes)
//! equals serializing those views, byte for byte.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};
use signet_common::ids::{AccessGroupId, DeviceId, ItemId, NodeId, UserId};
use signet_common::license::LicenseTerms;
use signet_common::sync::{AppliedDocument, DeviceState, NowPlaying};

use super::{FleetIndex, Page};
use crate::access_groups::service::joined;
use crate::access_groups::{AccessGroup, GroupItem, MemberRef, MemberSource, repo};
use crate::app::{Clock, Hub};
use crate::devices::{DEVICES, Device, node_device_key};
use crate::fleet::{
    DEVICE_STATES, FleetCounts, FleetDevice, Liveness, attached_devices, desired_documents,
    device_view, record_state,
};
use crate::groups::GroupRef;
use crate::publish::{self, SIGNED_DOCUMENTS, SignedDocument};
use crate::store::{StoreError, Tx, WriteBatch};
use crate::tenancy::{NODE_DEVICES, NODES, Node};

/// Which nodes a read covers.
type Holds<'a> = Box<dyn Fn(&NodeId) -> bool + 'a>;

/// A clock the test moves.
struct TestClock(Mutex<DateTime<Utc>>);

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

impl TestClock {
    fn advance(&self, by: TimeDelta) {
        let mut now = self.0.lock().unwrap();
        *now += by;
    }
}

/// xorshift64*: a fixed sequence per seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap()
    }
}

/// What reading every attached device says, at the nodes `holds` covers.
fn full(
    hub: &Hub,
    holds: &dyn Fn(&NodeId) -> bool,
    liveness: Liveness,
) -> (FleetCounts, Vec<FleetDevice>) {
    let mut counts = FleetCounts::default();
    let mut views = Vec::new();
    for (device, node) in attached_devices(&hub.store).unwrap() {
        if holds(&node) {
            let view = device_view(&hub.store, &device, &node, liveness).unwrap();
            counts.add(&view);
            views.push(view);
        }
    }
    (counts, views)
}

/// The page `page` of `views` (by device id), as the list used to select.
fn select(views: &[FleetDevice], page: Page<'_>) -> Vec<FleetDevice> {
    views
        .iter()
        .filter(|v| {
            page.after.is_none_or(|a| v.device_id.as_str() > a)
                && page.online.is_none_or(|o| o == v.online)
                && page.in_sync.is_none_or(|s| s == v.in_sync)
        })
        .take(page.limit)
        .cloned()
        .collect()
}

fn state(device: &DeviceId, online: bool, at: DateTime<Utc>, rng: &mut Rng) -> DeviceState {
    DeviceState {
        online,
        now_playing: (rng.below(2) == 0).then(|| NowPlaying {
            item: "c-1".into(),
            entry: None,
            since: at,
        }),
        cache_bytes: 10,
        last_error: (rng.below(5) == 0).then(|| "decoder failed".to_owned()),
        ..DeviceState::new(device.clone(), at, "0.1.0", "Debian 12")
    }
}

/// `device`'s report with every desired document applied and activated.
fn in_sync_state(hub: &Hub, device: &DeviceId, at: DateTime<Utc>, rng: &mut Rng) -> DeviceState {
    let mut reported = state(device, true, at, rng);
    reported.last_error = None;
    for doc in desired_documents(&hub.store, device)
        .unwrap()
        .into_iter()
        .flatten()
    {
        let key = publish::document_key(doc.kind, &doc.subject);
        let applied = AppliedDocument {
            version: doc.version,
            sha256: doc.sha256,
        };
        reported.applied.insert(key.clone(), applied.clone());
        reported.activated.insert(key, applied);
    }
    reported
}

fn device_record(id: &DeviceId, node: &NodeId, now: DateTime<Utc>) -> Device {
    Device {
        id: id.clone(),
        name: id.to_string(),
        node: node.clone(),
        public_key: String::new(),
        os: "test".into(),
        agent_version: "0.1.0".into(),
        paired_at: now,
        paired_by: UserId::from("u-test"),
        secret_hash: String::new(),
        last_command_version: 0,
        variables: Default::default(),
    }
}

/// Attaches `device` at `node` (a pairing or a move), as the device
/// service writes it.
async fn attach(hub: &Hub, device: &DeviceId, node: &NodeId) {
    let mut batch = WriteBatch::new();
    if let Some(old) = hub.store.get::<Device>(DEVICES, device.as_str()).unwrap() {
        batch.delete(NODE_DEVICES, &node_device_key(&old.node, device));
    }
    let record = device_record(device, node, hub.now());
    batch.put(DEVICES, device.as_str(), &record).unwrap();
    batch
        .put(
            NODE_DEVICES,
            &node_device_key(node, device),
            &serde_json::json!({"device": device}),
        )
        .unwrap();
    hub.store.apply(batch).await.unwrap();
}

/// Unpairs `device`, as the device service does.
async fn unpair(hub: &Hub, device: &DeviceId) {
    let Some(old) = hub.store.get::<Device>(DEVICES, device.as_str()).unwrap() else {
        return;
    };
    let mut batch = WriteBatch::new();
    batch.delete(NODE_DEVICES, &node_device_key(&old.node, device));
    batch.delete(DEVICES, device.as_str());
    batch.delete(DEVICE_STATES, device.as_str());
    hub.store.apply(batch).await.unwrap();
}

/// A new signed version of `site`'s manifest record (what a publication
/// of changed content stores), written directly.
async fn bump_manifest(hub: &Hub, site: &NodeId) {
    let kind = signet_common::envelope::DocumentKind::GroupManifest;
    let Some(mut doc) = publish::latest(&hub.store, kind, site.as_str()).unwrap() else {
        return;
    };
    doc = SignedDocument {
        version: doc.version + 1,
        sha256: signet_common::digest::Sha256::of(&doc.version.to_le_bytes()),
        ..doc
    };
    let mut batch = WriteBatch::new();
    batch
        .put(
            SIGNED_DOCUMENTS,
            &publish::document_key(kind, site.as_str()),
            &doc,
        )
        .unwrap();
    hub.store.apply(batch).await.unwrap();
}

/// Access group `id` at region `r000`, shown only in Germany, with the
/// item `c-licensed` and `members` as active device members.
async fn licensed_group(hub: &Hub, id: &str, members: &[DeviceId]) -> AccessGroup {
    let now = hub.now();
    let group = AccessGroup {
        id: AccessGroupId::from(id),
        node: NodeId::from("n-fixture-r000"),
        name: "Licensed".into(),
        license: LicenseTerms {
            allowed_countries: Some(vec!["DE".into()]),
            ..LicenseTerms::default()
        },
        categories: Vec::new(),
        self_signup: false,
        signup_domains: Vec::new(),
        shop_key_hash: None,
        created_at: now,
        created_by: UserId::from("u-test"),
    };
    let source = MemberSource::Operator {
        by: UserId::from("u-test"),
    };
    hub.store
        .transact(|tx| {
            repo::put_group(tx, &group)?;
            put_item(tx, &group, "c-licensed")?;
            for device in members {
                let who = MemberRef::Device {
                    device_id: device.clone(),
                };
                let mut member = joined(&group, who, now, None, None, source.clone());
                member.active = true;
                repo::put_member(tx, &member)?;
            }
            Ok::<(), StoreError>(())
        })
        .await
        .unwrap();
    group
}

fn put_item(tx: &mut Tx, group: &AccessGroup, item: &str) -> Result<(), StoreError> {
    let item = GroupItem {
        id: ItemId::from(item),
        categories: Vec::new(),
    };
    repo::put_item(tx, &group.id, &item)
}

/// `group` written again with `license`, as the access group service
/// writes a licence change.
async fn set_license(hub: &Hub, group: &mut AccessGroup, license: LicenseTerms) {
    group.license = license;
    let written = group.clone();
    hub.store
        .transact(|tx| repo::put_group(tx, &written))
        .await
        .unwrap();
}

/// A random licence: any country or Germany only, no end or an end within
/// the next ten minutes (a window edge the index must read again at).
fn random_license(now: DateTime<Utc>, rng: &mut Rng) -> LicenseTerms {
    LicenseTerms {
        allowed_countries: (rng.below(2) == 0).then(|| vec!["DE".into()]),
        fixed_end: (rng.below(2) == 0)
            .then(|| now + TimeDelta::seconds(i64::try_from(rng.below(600)).unwrap())),
        ..LicenseTerms::default()
    }
}

/// The index's page `page` as JSON, against the full recomputation's
/// views of that page serialized (what `Json(Vec<FleetDevice>)` wrote).
fn assert_json(
    index: &FleetIndex,
    hub: &Hub,
    holds: &dyn Fn(&NodeId) -> bool,
    page: Page<'_>,
    views: &[FleetDevice],
    what: &str,
) {
    let liveness = Liveness::of(hub);
    let json = index.list_json(&hub.store, holds, page, liveness).unwrap();
    let expected = serde_json::to_vec(&select(views, page)).unwrap();
    let (json, expected) = (String::from_utf8(json), String::from_utf8(expected));
    assert_eq!(json.unwrap(), expected.unwrap(), "{what}: {page:?} JSON");
}

/// A hub on a fresh store at 2026-03-01 12:00 on a clock the test moves,
/// with `devices` fixture devices over 3 sites of region `r000`.
async fn fixture_hub(devices: usize) -> (tempfile::TempDir, Hub, Arc<TestClock>) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let t0: DateTime<Utc> = "2026-03-01T12:00:00Z".parse().unwrap();
    crate::init::init(&data, t0).await.unwrap();
    let clock = Arc::new(TestClock(Mutex::new(t0)));
    let config = crate::config::Config {
        data: data.clone(),
        ..crate::config::Config::default()
    };
    let installed = crate::app::Installed {
        fleet_ingest: Arc::new(crate::fleet::FleetIngest::default()),
        entitlements: Arc::new(crate::access_groups::Entitled),
    };
    let hub = Hub::open(config, clock.clone(), installed).unwrap();
    let seeded = crate::fleet::fixture::seed(&hub.store, devices, t0)
        .await
        .unwrap();
    assert_eq!(seeded.sites, 3);
    (dir, hub, clock)
}

/// U4, issue 20: the index's totals and pages equal a full recomputation
/// after every step of random sequences of state reports (in sync or not),
/// last wills, heartbeats timing out, publications, new manifest versions,
/// pairings, moves and unpairs, clock jumps forward and back — for the
/// whole fleet, one region and one site; and a fresh index (a restarted
/// hub) rebuilt from the store agrees too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn u4_index_equals_full_recomputation_after_random_events() {
    let (_dir, hub, clock) = fixture_hub(230).await;
    let site = |s: usize| NodeId::from(format!("n-fixture-r000-s{s:04}").as_str());
    let region = NodeId::from("n-fixture-r000");
    let actor = publish::Actor::hub();
    let index = FleetIndex::of(&hub);
    let (tree, _) = crate::tenancy::load_tree(&hub.store).unwrap();

    let mut rng = Rng(0x5eed_f1ee_7000_0001);
    let mut devices: Vec<DeviceId> = attached_devices(&hub.store)
        .unwrap()
        .into_iter()
        .map(|(d, _)| d)
        .collect();
    let mut next_new = 0;
    let members: Vec<DeviceId> = devices.iter().step_by(7).cloned().collect();
    let mut group = licensed_group(&hub, "ag-random", &members).await;
    let mut items = 1;
    // What the sequence went through (in sync, online, offline, refused by
    // the licence), so the comparisons above covered each.
    let mut seen = [false; 4];
    for step in 0..160 {
        let device = devices[rng.below(devices.len())].clone();
        let now = hub.now();
        match rng.below(15) {
            0..=3 => record_state(&hub, &device, state(&device, true, now, &mut rng))
                .await
                .unwrap(),
            4 => record_state(&hub, &device, state(&device, false, now, &mut rng))
                .await
                .unwrap(),
            5 => {
                let reported = in_sync_state(&hub, &device, now, &mut rng);
                record_state(&hub, &device, reported).await.unwrap();
            }
            6 => clock.advance(TimeDelta::seconds(i64::try_from(rng.below(400)).unwrap())),
            7 => clock.advance(-TimeDelta::seconds(i64::try_from(rng.below(120)).unwrap())),
            8 => match rng.below(3) {
                0 => unpair(&hub, &device).await,
                1 => attach(&hub, &device, &site(rng.below(3))).await,
                _ => {
                    let id = DeviceId::from(format!("d-new-{next_new:03}").as_str());
                    next_new += 1;
                    attach(&hub, &id, &site(rng.below(3))).await;
                    devices.push(id);
                }
            },
            9 => {
                let scope = if rng.below(2) == 0 {
                    GroupRef::Node(region.clone())
                } else {
                    GroupRef::Node(site(rng.below(3)))
                };
                publish::publish(&hub, &scope, actor.clone()).await.unwrap();
            }
            10 => bump_manifest(&hub, &site(rng.below(3))).await,
            12 => {
                let license = random_license(now, &mut rng);
                set_license(&hub, &mut group, license).await;
            }
            13 => {
                let written = group.clone();
                let add = rng.below(2) == 0;
                let item = format!("c-{items:03}");
                let gone = ItemId::from(format!("c-{:03}", items - 1).as_str());
                hub.store
                    .transact(|tx| {
                        if add {
                            put_item(tx, &written, &item)
                        } else {
                            repo::delete_item(tx, &written.id, &gone);
                            Ok(())
                        }
                    })
                    .await
                    .unwrap();
                if add {
                    items += 1;
                } else if items > 1 {
                    items -= 1;
                }
            }
            14 => {
                let country = (rng.below(2) == 0).then(|| "DE".to_owned());
                edit_node(&hub, &site(rng.below(3)), |node| {
                    node.locale.country = country
                })
                .await;
            }
            _ => {
                let mut batch = WriteBatch::new();
                let status = crate::fleet::status_of(&hub.store, &device).unwrap();
                if let Some(mut status) = status {
                    status.online = !status.online;
                    batch.put(DEVICE_STATES, device.as_str(), &status).unwrap();
                    hub.store.apply(batch).await.unwrap();
                }
            }
        }
        let liveness = Liveness::of(&hub);
        let scopes: [(&str, Holds<'_>); 3] = [
            ("fleet", Box::new(|_: &NodeId| true)),
            ("region", Box::new(|n: &NodeId| tree.is_within(n, &region))),
            ("site", Box::new(|n: &NodeId| *n == site(1))),
        ];
        for (name, holds) in &scopes {
            let (counts, views) = full(&hub, holds.as_ref(), liveness);
            let refused = views.iter().any(|v| !v.licence_refusals.is_empty());
            let shown = [
                counts.in_sync > 0,
                counts.online > 0,
                counts.offline > 0,
                refused,
            ];
            for (seen, shown) in seen.iter_mut().zip(shown) {
                *seen |= shown;
            }
            let indexed = index.summary(&hub.store, holds, liveness).unwrap();
            assert_eq!(indexed, counts, "step {step}, {name}: totals");
            let after = views.get(views.len() / 3).map(|v| v.device_id.to_string());
            for page in [
                Page {
                    limit: 1000,
                    ..Page::default()
                },
                Page {
                    after: after.as_deref(),
                    online: Some(true),
                    limit: 17,
                    ..Page::default()
                },
                Page {
                    online: Some(false),
                    in_sync: Some(false),
                    limit: 1000,
                    ..Page::default()
                },
                Page {
                    in_sync: Some(true),
                    limit: 1000,
                    ..Page::default()
                },
            ] {
                let listed = index.list(&hub.store, holds, page, liveness).unwrap();
                assert_eq!(
                    listed,
                    select(&views, page),
                    "step {step}, {name}: {page:?}"
                );
                let what = format!("step {step}, {name}");
                assert_json(&index, &hub, holds.as_ref(), page, &views, &what);
            }
        }
    }
    assert_eq!(seen, [true; 4], "in sync, online, offline, refused: seen");
    let liveness = Liveness::of(&hub);
    let (counts, views) = full(&hub, &|_| true, liveness);
    // A restarted hub rebuilds its index from the store: the same answer.
    let fresh = FleetIndex::default();
    assert_eq!(
        fresh.summary(&hub.store, |_| true, liveness).unwrap(),
        counts
    );
    let all = Page {
        limit: 1000,
        ..Page::default()
    };
    assert_json(&fresh, &hub, &|_| true, all, &views, "rebuilt");
}

/// `node`'s record changed by `change`, written as the tenancy service
/// writes it.
async fn edit_node(hub: &Hub, node: &NodeId, change: impl FnOnce(&mut Node)) {
    let mut record: Node = hub.store.get(NODES, node.as_str()).unwrap().unwrap();
    change(&mut record);
    let mut batch = WriteBatch::new();
    batch.put(NODES, node.as_str(), &record).unwrap();
    hub.store.apply(batch).await.unwrap();
}

/// The index's answers against a full recomputation, for the whole fleet.
fn assert_exact(hub: &Hub, index: &FleetIndex, what: &str) {
    let liveness = Liveness::of(hub);
    let (counts, views) = full(hub, &|_| true, liveness);
    let all = Page {
        limit: 1000,
        ..Page::default()
    };
    assert_eq!(
        index.summary(&hub.store, |_| true, liveness).unwrap(),
        counts,
        "{what}: totals"
    );
    assert_eq!(
        index.list(&hub.store, |_| true, all, liveness).unwrap(),
        views,
        "{what}: the list"
    );
    assert_json(index, hub, &|_| true, all, &views, what);
}

/// X3, U4 (issue 20): what ingest writes under heartbeat load costs the
/// fleet view's next answer only the devices it touched, never a build of
/// the whole index — heartbeats (state reports), proof-of-play events
/// whose first play under a license writes the device's membership (L2),
/// a user's membership and a node renamed — while a country set on a node
/// (which licence refusals rest on) reads again that node's devices alone;
/// every answer equals a full recomputation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x3_u4_reports_first_uses_and_node_edits_cost_only_their_devices() {
    use crate::access_groups::member_of;
    use signet_common::sync::{EventBatch, Outcome, PlayEvent};

    let (_dir, hub, _clock) = fixture_hub(230).await;
    let site = NodeId::from("n-fixture-r000-s0001");
    let at_site: Vec<DeviceId> = attached_devices(&hub.store)
        .unwrap()
        .into_iter()
        .filter(|(_, node)| *node == site)
        .map(|(device, _)| device)
        .collect();
    assert!(at_site.len() > 10, "{}", at_site.len());
    let (members, others) = at_site.split_at(3);
    let now = hub.now();
    // A licensed group shown only in Germany, with three of the site's
    // devices as members and a user.
    let group = AccessGroup {
        id: AccessGroupId::from("ag-x3"),
        node: NodeId::from("n-fixture-r000"),
        name: "Licensed".into(),
        license: LicenseTerms {
            allowed_countries: Some(vec!["DE".into()]),
            ..LicenseTerms::default()
        },
        categories: Vec::new(),
        self_signup: false,
        signup_domains: Vec::new(),
        shop_key_hash: None,
        created_at: now,
        created_by: UserId::from("u-test"),
    };
    let by = UserId::from("u-test");
    let member = |who: MemberRef| {
        let mut m = joined(
            &group,
            who,
            now,
            None,
            None,
            MemberSource::Operator { by: by.clone() },
        );
        m.active = true;
        m
    };
    let user = member(MemberRef::User {
        user_id: UserId::from("u-member"),
    });
    hub.store
        .transact(|tx| {
            repo::put_group(tx, &group)?;
            let item = GroupItem {
                id: ItemId::from("c-licensed"),
                categories: Vec::new(),
            };
            repo::put_item(tx, &group.id, &item)?;
            for device in members {
                repo::put_member(
                    tx,
                    &member(MemberRef::Device {
                        device_id: device.clone(),
                    }),
                )?;
            }
            repo::put_member(tx, &user)
        })
        .await
        .unwrap();
    let index = FleetIndex::of(&hub);
    assert_exact(&hub, &index, "built");
    let built = index.work();
    assert!(built.builds >= 1 && built.device_reads >= 230, "{built:?}");

    // Heartbeats of five devices, and a played event under the license
    // from a member: its first use is recorded in its membership.
    let mut rng = Rng(0x5eed_f1ee_7000_0002);
    let beating = [
        members[1].clone(),
        others[0].clone(),
        others[1].clone(),
        others[2].clone(),
        others[3].clone(),
    ];
    for device in &beating {
        let reported = state(device, true, hub.now(), &mut rng);
        record_state(&hub, device, reported).await.unwrap();
    }
    let player = &members[0];
    let event = PlayEvent {
        id: format!("{:032x}", 0x5eed_u64),
        device_id: player.clone(),
        item: ItemId::from("c-licensed"),
        access_group: Some(group.id.clone()),
        license_version: Some(1),
        start: hub.now(),
        duration_ms: 1000,
        outcome: Outcome::Played,
        skip_reason: None,
        country: None,
        region: None,
        os: "test".into(),
        agent_version: "0".into(),
    };
    let batch = EventBatch {
        events: vec![event],
    };
    let ingested = crate::fleet::ingest_events(&hub, player, batch)
        .await
        .unwrap();
    assert_eq!(ingested.stored, 1, "{ingested:?}");
    let membership = |who: MemberRef| member_of(&hub.store, &group.id, &who).unwrap().unwrap();
    let played = MemberRef::Device {
        device_id: player.clone(),
    };
    assert!(
        membership(played).membership.first_used_at.is_some(),
        "first use recorded"
    );
    // A user's first use and a node renamed change no device's view.
    hub.store
        .transact(|tx| {
            crate::access_groups::first_use::note_use(tx, &group.id, &user.member, now, now)
        })
        .await
        .unwrap();
    edit_node(&hub, &site, |node| node.name = "Renamed".into()).await;
    assert_exact(&hub, &index, "after reports");
    let after = index.work();
    assert_eq!(after.builds, built.builds, "no build: {after:?}");
    let (reads, patched) = (after.device_reads, after.patched);
    let cost = (reads - built.device_reads, patched - built.patched);
    assert_eq!(cost, (1, 5), "played: read again; beat: state alone");

    // The site gets a country: its devices are read again, no other.
    edit_node(&hub, &site, |node| node.locale.country = Some("DE".into())).await;
    assert_exact(&hub, &index, "after the country");
    let moved = index.work();
    assert_eq!(moved.builds, built.builds, "no build: {moved:?}");
    assert_eq!(
        moved.device_reads - after.device_reads,
        u64::try_from(at_site.len()).unwrap(),
        "the site's devices: {moved:?}"
    );
}

/// X3, U4 (issue 20): an access group's licence or items written read
/// again only the group's device members — no build of the index — and
/// every answer (totals, list, the list's JSON) equals a full
/// recomputation; the refusals shown change with the licence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x3_u4_group_licence_and_items_edits_cost_only_their_members() {
    let (_dir, hub, _clock) = fixture_hub(230).await;
    let attached = attached_devices(&hub.store).unwrap();
    let members: Vec<DeviceId> = attached
        .iter()
        .step_by(23)
        .map(|(d, _)| d.clone())
        .collect();
    assert!(members.len() >= 10, "{}", members.len());
    let mut group = licensed_group(&hub, "ag-edit", &members).await;
    let index = FleetIndex::of(&hub);
    assert_exact(&hub, &index, "built");
    let refused = |hub: &Hub| {
        let (_, views) = full(hub, &|_| true, Liveness::of(hub));
        views
            .iter()
            .filter(|v| !v.licence_refusals.is_empty())
            .count()
    };
    assert_eq!(refused(&hub), members.len(), "no node has a country");
    let costs = |before: super::IndexWork, what: &str| {
        assert_exact(&hub, &index, what);
        let after = index.work();
        assert_eq!(after.builds, before.builds, "{what}: no build: {after:?}");
        assert_eq!(
            after.device_reads - before.device_reads,
            u64::try_from(members.len()).unwrap(),
            "{what}: the members alone: {after:?}"
        );
        after
    };

    let work = index.work();
    set_license(&hub, &mut group, LicenseTerms::default()).await;
    let work = costs(work, "any country");
    assert_eq!(refused(&hub), 0);

    let germany = LicenseTerms {
        allowed_countries: Some(vec!["DE".into()]),
        ..LicenseTerms::default()
    };
    set_license(&hub, &mut group, germany).await;
    let work = costs(work, "Germany again");
    assert_eq!(refused(&hub), members.len());

    let written = group.clone();
    hub.store
        .transact(|tx| put_item(tx, &written, "c-second"))
        .await
        .unwrap();
    let work = costs(work, "an item added");
    let (_, views) = full(&hub, &|_| true, Liveness::of(&hub));
    assert!(
        views
            .iter()
            .any(|v| v.licence_refusals.iter().any(|r| r.item_count == 2))
    );

    hub.store
        .transact(|tx| {
            repo::delete_item(tx, &written.id, &ItemId::from("c-licensed"));
            repo::delete_item(tx, &written.id, &ItemId::from("c-second"));
            Ok::<(), StoreError>(())
        })
        .await
        .unwrap();
    costs(work, "every item removed");
    assert_eq!(refused(&hub), 0, "a group without items refuses nothing");
}

/// U4 (issue 20): a row's cached JSON follows the clock — a device that
/// beat is listed online, and once its heartbeat timeout passes, with no
/// write at all, the next page lists it offline (since its deadline),
/// byte for byte as serializing its view then says; the clock set back
/// lists it online again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn u4_cached_rows_follow_the_clock() {
    let (_dir, hub, clock) = fixture_hub(230).await;
    let index = FleetIndex::of(&hub);
    let attached = attached_devices(&hub.store).unwrap();
    let device = attached.into_iter().map(|(d, _)| d).min().unwrap();
    let mut rng = Rng(0x5eed_f1ee_7000_0003);
    let reported = state(&device, true, hub.now(), &mut rng);
    record_state(&hub, &device, reported).await.unwrap();
    let one = Page {
        limit: 1,
        ..Page::default()
    };
    let listed = |what: &str| -> serde_json::Value {
        assert_exact(&hub, &index, what);
        let liveness = Liveness::of(&hub);
        let json = index
            .list_json(&hub.store, |_| true, one, liveness)
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&json).unwrap()[0].clone()
    };
    let beat = listed("beat");
    assert_eq!(beat["device_id"], device.as_str());
    assert_eq!(beat["online"], true, "{beat}");
    let timeout = hub.config.heartbeat_timeout();
    clock.advance(timeout);
    assert_eq!(listed("at the deadline")["online"], true);
    clock.advance(TimeDelta::seconds(1));
    let late = listed("past the deadline");
    assert_eq!(late["online"], false, "{late}");
    assert_eq!(late["connection"], "offline");
    clock.advance(-TimeDelta::seconds(2));
    assert_eq!(listed("clock set back")["online"], true);
}
#[path = "index_patch_tests.rs"]
mod patch;
