//! The broker outbox: durable, applied after commit, retried, reconciled.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::devices::service::{self, DeviceError};
use crate::devices::testing::{Call, Fixture, FlakyBroker, pairing_request};
use crate::devices::views::{ApprovePairing, UpdateDevice};

/// Pairs a device at the root (a leaf in a fresh hub) while the broker is
/// as it is; returns it.
async fn approve(fixture: &Fixture, seed: u8) -> Result<service::Changed, DeviceError> {
    let ticket = service::request_pairing(&fixture.hub, &pairing_request(seed), "10.0.0.1")
        .await
        .unwrap();
    let request = ApprovePairing {
        node: fixture.root.clone(),
        name: format!("Screen {seed}"),
    };
    service::approve(&fixture.hub, &fixture.admin(), &ticket.code, &request).await
}

fn pending(hub: &Hub) -> Vec<OutboxEntry> {
    hub.store.scan(BROKER_OUTBOX, "").unwrap()
}

#[tokio::test]
async fn s7_approval_answers_while_the_broker_is_down() {
    let broker = FlakyBroker::down();
    let fixture = Fixture::new(broker.clone()).await;
    let changed = approve(&fixture, 1).await.unwrap();
    // Stored and answered; the grant waits in the outbox with its password.
    assert!(changed.broker_error.unwrap().contains("connection refused"));
    assert!(
        crate::devices::device(&fixture.hub.store, changed.device.id.as_str())
            .unwrap()
            .is_some()
    );
    let entries = pending(&fixture.hub);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].device, changed.device.id);
    assert!(entries[0].password.is_some());
    assert_eq!(entries[0].attempts, 1);
    assert!(entries[0].lease.is_none());
    assert!(broker.applied().is_empty());
}

#[tokio::test]
async fn s7_s10_outbox_entries_survive_a_restart_and_are_applied_at_start() {
    let down = FlakyBroker::down();
    let fixture = Fixture::new(down.clone()).await;
    let device = approve(&fixture, 2).await.unwrap().device;
    let password = pending(&fixture.hub)[0].password.clone();
    // Restarted with the broker back: reconciliation applies the entry
    // first (with the password), then grants the rest.
    let up = Arc::new(FlakyBroker::default());
    let fixture = fixture.restart(up.clone());
    assert_eq!(pending(&fixture.hub).len(), 1, "the entry is durable");
    assert_eq!(reconcile_broker_access(&fixture.hub).await.unwrap(), 0);
    assert!(pending(&fixture.hub).is_empty());
    let groups = vec![fixture.root.to_string()];
    assert_eq!(
        up.applied(),
        vec![Call::Grant(device.id.clone(), password, groups)]
    );
}

#[tokio::test]
async fn s10_the_worker_retries_until_the_broker_confirms() {
    let broker = FlakyBroker::down();
    let fixture = Fixture::new(broker.clone()).await;
    let device = approve(&fixture, 3).await.unwrap().device;
    let cancel = CancellationToken::new();
    let worker = spawn_worker(fixture.hub.clone(), cancel.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        pending(&fixture.hub).len(),
        1,
        "kept while the broker refuses"
    );
    broker.set_down(false);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !pending(&fixture.hub).is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "never applied");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(matches!(&broker.applied()[..], [Call::Grant(id, Some(_), _)] if *id == device.id));
    cancel.cancel();
    worker.await.unwrap();
}

#[tokio::test]
async fn s7_unpair_and_move_reach_the_broker_through_the_outbox() {
    let broker = Arc::new(FlakyBroker::default());
    let fixture = Fixture::new(broker.clone()).await;
    let device = approve(&fixture, 4).await.unwrap().device;
    assert!(pending(&fixture.hub).is_empty());
    // A rename does not touch the broker; an unpair revokes.
    let rename = UpdateDevice {
        name: Some("Lobby".to_owned()),
        node: None,
    };
    service::update(&fixture.hub, &fixture.admin(), device.id.as_str(), &rename)
        .await
        .unwrap();
    assert_eq!(broker.applied().len(), 1);
    broker.set_down(true);
    service::unpair(&fixture.hub, &fixture.admin(), device.id.as_str())
        .await
        .unwrap();
    assert_eq!(pending(&fixture.hub).len(), 1, "the revocation waits");
    broker.set_down(false);
    assert_eq!(drain(&fixture.hub).await.unwrap(), 0);
    assert_eq!(broker.applied().last(), Some(&Call::Revoke(device.id)));
}

#[tokio::test]
async fn s7_a_change_written_while_an_entry_is_applied_is_applied_again() {
    let broker = Arc::new(FlakyBroker::default());
    let fixture = Fixture::new(broker.clone()).await;
    let device = DeviceId::from("d-racing");
    let now = fixture.hub.now();
    let enqueue = |password: Option<&'static str>| {
        let store = fixture.hub.store.clone();
        let device = device.clone();
        async move {
            store
                .transact(|tx| enqueue_in(tx, &device, password, now))
                .await
                .unwrap();
        }
    };
    enqueue(Some("secret")).await;
    // Claimed by an applier, then replaced by a newer change: the applier's
    // success must not delete the newer entry, which keeps the claim and
    // the password.
    let mut entry: OutboxEntry = fixture
        .hub
        .store
        .get(BROKER_OUTBOX, device.as_str())
        .unwrap()
        .unwrap();
    let first_nonce = entry.nonce.clone();
    entry.lease = Some(Lease {
        instance: INSTANCE.clone(),
        token: "other".to_owned(),
        until_ms: now_ms() + 60_000,
    });
    fixture
        .hub
        .store
        .transact(|tx| tx.put(BROKER_OUTBOX, device.as_str(), &entry))
        .await
        .unwrap();
    enqueue(None).await;
    let newer: OutboxEntry = fixture
        .hub
        .store
        .get(BROKER_OUTBOX, device.as_str())
        .unwrap()
        .unwrap();
    assert_ne!(newer.nonce, first_nonce);
    assert_eq!(newer.password.as_deref(), Some("secret"));
    assert!(newer.lease.is_some());
    assert_eq!(
        apply_one(&fixture.hub, &device, false).await.unwrap(),
        Applied::Busy
    );
    // A lease of a process that stopped holds nothing.
    let mut stale = newer;
    stale.lease = Some(Lease {
        instance: "gone".to_owned(),
        token: "other".to_owned(),
        until_ms: now_ms() + 60_000,
    });
    fixture
        .hub
        .store
        .transact(|tx| tx.put(BROKER_OUTBOX, device.as_str(), &stale))
        .await
        .unwrap();
    assert_eq!(
        apply_one(&fixture.hub, &device, false).await.unwrap(),
        Applied::Done
    );
    // Not paired: the entry revokes.
    assert_eq!(broker.applied(), vec![Call::Revoke(device)]);
    assert!(pending(&fixture.hub).is_empty());
}

/// L4, S7: deleting an access group re-grants its device members without
/// it first, then retires the group's role (never the other way round:
/// a held role must not be deleted); deleting an emptied node retires its
/// role too.
#[tokio::test]
async fn l4_s7_a_deleted_groups_members_follow_before_its_role_is_retired() {
    use crate::access_groups::service as groups;
    let broker = Arc::new(FlakyBroker::default());
    let fixture = Fixture::new(broker.clone()).await;
    let admin = fixture.admin();
    let request = serde_json::json!({"parent": fixture.root, "name": "Empty site"});
    let site = crate::nodes::create_node(
        &fixture.hub,
        &admin,
        serde_json::from_value(request).unwrap(),
    )
    .await
    .unwrap();
    crate::nodes::delete_node(&fixture.hub, &admin, site.id.as_str())
        .await
        .unwrap();
    assert_eq!(broker.applied(), [Call::RetireGroup(site.id.to_string())]);

    let device = approve(&fixture, 7).await.unwrap().device;
    let create = serde_json::json!({"node": fixture.root, "name": "Licensed",
        "license": {"allow_offline": false, "offline_grace_secs": 0, "allow_export": false}});
    let group = groups::create_group(
        &fixture.hub,
        &admin,
        serde_json::from_value(create).unwrap(),
    )
    .await
    .unwrap();
    let member = serde_json::json!({"member": {"type": "device", "device_id": device.id}});
    let (_, changed) = groups::add_member(
        &fixture.hub,
        &admin,
        group.id.as_str(),
        serde_json::from_value(member).unwrap(),
    )
    .await
    .unwrap();
    crate::publish::after::device_member_changed(&fixture.hub, &admin, changed).await;
    let root = fixture.root.to_string();
    let with_group = vec![group.id.to_string(), root.clone()];
    assert_eq!(
        broker.applied().last(),
        Some(&Call::Grant(device.id.clone(), None, with_group))
    );

    let before = broker.applied().len();
    let schedule = crate::schedules::delete_group_schedule_in;
    let deleted = groups::delete_group(&fixture.hub, &admin, group.id.as_str(), schedule)
        .await
        .unwrap();
    assert_eq!(deleted.devices, vec![device.id.clone()]);
    crate::publish::after::group_deleted(&fixture.hub, &admin, deleted).await;
    assert_eq!(
        broker.applied()[before..],
        [
            Call::Grant(device.id.clone(), None, vec![root]),
            Call::RetireGroup(group.id.to_string()),
        ]
    );
}

/// S7: the start's reconciliation retires the broker roles of groups that
/// no longer exist (a hub stopped between a group's delete and its role's
/// retirement), and only those; a broker that cannot list them counts as
/// a failure, so the reconciliation is tried again.
#[tokio::test]
async fn s7_the_start_retires_roles_of_groups_that_no_longer_exist() {
    let broker = Arc::new(FlakyBroker::default());
    let fixture = Fixture::new(broker.clone()).await;
    let root = fixture.root.to_string();
    let create = serde_json::json!({"node": fixture.root, "name": "Licensed",
        "license": {"allow_offline": false, "offline_grace_secs": 0, "allow_export": false}});
    let group = crate::access_groups::service::create_group(
        &fixture.hub,
        &fixture.admin(),
        serde_json::from_value(create).unwrap(),
    )
    .await
    .unwrap();
    let held = [
        root.clone(),
        group.id.to_string(),
        "ag-gone".to_owned(),
        "n-gone".to_owned(),
    ];
    *broker.roles.lock().unwrap() = held.to_vec();

    broker.set_down(true);
    assert!(reconcile_broker_access(&fixture.hub).await.unwrap() > 0);
    broker.set_down(false);
    assert_eq!(reconcile_broker_access(&fixture.hub).await.unwrap(), 0);
    let retired: Vec<Call> = broker
        .applied()
        .into_iter()
        .filter(|c| matches!(c, Call::RetireGroup(_)))
        .collect();
    assert_eq!(
        retired,
        [
            Call::RetireGroup("ag-gone".to_owned()),
            Call::RetireGroup("n-gone".to_owned())
        ]
    );
    assert_eq!(*broker.roles.lock().unwrap(), [root, group.id.to_string()]);
}
