//! The devices service's rules, without HTTP.

use std::sync::Arc;

use super::*;
use crate::devices::testing::{Fixture, FlakyBroker, pairing_request};

async fn fixture() -> Fixture {
    Fixture::new(Arc::new(FlakyBroker::default())).await
}

fn approval(node: &NodeId, name: &str) -> ApprovePairing {
    ApprovePairing {
        node: node.clone(),
        name: name.to_owned(),
    }
}

#[tokio::test]
async fn s7_open_pairings_per_address_are_bounded_and_say_when_to_retry() {
    let f = fixture().await;
    for seed in 0..MAX_OPEN_PAIRINGS_PER_ADDRESS {
        let seed = u8::try_from(seed).unwrap();
        request_pairing(&f.hub, &pairing_request(seed), "10.0.0.9")
            .await
            .unwrap();
    }
    match request_pairing(&f.hub, &pairing_request(99), "10.0.0.9").await {
        Err(DeviceError::TooManyFromAddress { retry_after }) => {
            assert!((1..=900).contains(&retry_after), "{retry_after}");
        }
        other => panic!("{other:?}"),
    }
    // Another address is not held back.
    request_pairing(&f.hub, &pairing_request(99), "10.0.0.10")
        .await
        .unwrap();
    let bad = request_pairing(&f.hub, b"{}", "10.0.0.10").await;
    assert!(matches!(
        bad,
        Err(DeviceError::Invalid {
            code: "invalid_pairing_request",
            ..
        })
    ));
}

#[tokio::test]
async fn s7_a_code_approves_once_and_a_refused_approval_changes_nothing() {
    let f = fixture().await;
    let admin = f.admin();
    let ticket = request_pairing(&f.hub, &pairing_request(1), "10.0.0.1")
        .await
        .unwrap();
    // T4: a node that does not exist is not found, and the code stays open.
    let nowhere = NodeId::new("n-nowhere".to_owned());
    let refused = approve(&f.hub, &admin, &ticket.code, &approval(&nowhere, "Lobby")).await;
    assert!(
        matches!(refused, Err(DeviceError::NotFound("node"))),
        "{refused:?}"
    );
    for name in ["   ", &"x".repeat(MAX_DEVICE_NAME_LEN + 1), "a\u{7}b"] {
        let refused = approve(&f.hub, &admin, &ticket.code, &approval(&f.root, name)).await;
        assert!(matches!(
            refused,
            Err(DeviceError::Invalid {
                code: "invalid_name",
                ..
            })
        ));
    }
    assert_eq!(open_pairings(&f.hub, &admin).unwrap().len(), 1);
    // Lower-case with a dash is the same code; the name is trimmed.
    let typed = format!("{}-{}", &ticket.code[..4], &ticket.code[4..]).to_lowercase();
    let paired = approve(&f.hub, &admin, &typed, &approval(&f.root, "  Lobby "))
        .await
        .unwrap();
    assert_eq!(paired.device.name, "Lobby");
    assert!(paired.node_changed);
    assert!(open_pairings(&f.hub, &admin).unwrap().is_empty());
    let again = approve(&f.hub, &admin, &ticket.code, &approval(&f.root, "Lobby")).await;
    assert!(matches!(again, Err(DeviceError::NotFound("pairing"))));
    // The agent collects its credentials exactly once.
    assert!(matches!(
        poll_pairing(&f.hub, &ticket.ticket).await.unwrap(),
        PairingStatus::Approved { .. }
    ));
    assert!(matches!(
        poll_pairing(&f.hub, &ticket.ticket).await.unwrap(),
        PairingStatus::Closed { .. }
    ));
}

#[tokio::test]
async fn deliver7_command_versions_increase_per_device() {
    let f = fixture().await;
    let admin = f.admin();
    let ticket = request_pairing(&f.hub, &pairing_request(5), "10.0.0.1")
        .await
        .unwrap();
    let device = approve(&f.hub, &admin, &ticket.code, &approval(&f.root, "Hall"))
        .await
        .unwrap()
        .device;
    let request = CommandRequest {
        action: signet_common::documents::CommandAction::Resync,
    };
    let first = send_command(&f.hub, &admin, device.id.as_str(), &request)
        .await
        .unwrap();
    let second = send_command(&f.hub, &admin, device.id.as_str(), &request)
        .await
        .unwrap();
    assert_eq!((first.accepted.version, second.accepted.version), (1, 2));
    assert_ne!(first.accepted.nonce, second.accepted.nonce);
    let missing = send_command(&f.hub, &admin, "d-missing", &request).await;
    assert!(matches!(missing, Err(DeviceError::NotFound("device"))));
}

/// S7 bounds without a scan: pairing requests arriving together from many
/// addresses each take their own slots and all succeed, with distinct
/// codes; the approvals that follow free the slots they held.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s7_concurrent_pairing_requests_do_not_hold_each_other_back() {
    let f = fixture().await;
    let admin = f.admin();
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..48_u8 {
        let hub = f.hub.clone();
        requests.spawn(async move {
            let from = format!("10.1.0.{}", i % 6);
            request_pairing(&hub, &pairing_request(i), &from).await
        });
    }
    let mut codes = Vec::new();
    while let Some(done) = requests.join_next().await {
        codes.push(done.unwrap().unwrap().code);
    }
    codes.sort();
    codes.dedup();
    assert_eq!(codes.len(), 48);
    assert_eq!(open_pairings(&f.hub, &admin).unwrap().len(), 48);
    let held = f
        .hub
        .store
        .scan_keys(crate::devices::PAIRING_SLOTS, "")
        .unwrap();
    assert_eq!(held.iter().filter(|k| k.starts_with("all/")).count(), 48);
    assert_eq!(held.iter().filter(|k| k.starts_with("from/")).count(), 48);
    for (n, code) in codes.iter().enumerate() {
        approve(
            &f.hub,
            &admin,
            code,
            &approval(&f.root, &format!("Screen {n}")),
        )
        .await
        .unwrap();
    }
    assert!(
        f.hub
            .store
            .scan_keys(crate::devices::PAIRING_SLOTS, "")
            .unwrap()
            .iter()
            .all(|k| !k.starts_with("all/") && !k.starts_with("from/"))
    );
}

/// S7: the hub holds at most `MAX_OPEN_PAIRINGS` open pairings (503), and a
/// slot frees up once its pairing expires.
#[tokio::test]
async fn s7_the_hub_bounds_its_open_pairings() {
    let f = fixture().await;
    let held_until = f.hub.now() + TimeDelta::minutes(5);
    f.hub
        .store
        .transact(|tx| {
            for n in 0..MAX_OPEN_PAIRINGS {
                let slot = super::super::PairingSlot {
                    ticket_hash: format!("held-{n}"),
                    expires_at: held_until,
                };
                tx.put(super::super::PAIRING_SLOTS, &format!("all/{n:04}"), &slot)?;
            }
            Ok::<_, StoreError>(())
        })
        .await
        .unwrap();
    let refused = request_pairing(&f.hub, &pairing_request(1), "10.0.0.1").await;
    assert!(
        matches!(refused, Err(DeviceError::TooManyPairings)),
        "{refused:?}"
    );
    f.hub
        .store
        .transact(|tx| {
            let slot = super::super::PairingSlot {
                ticket_hash: "held-7".to_owned(),
                expires_at: f.hub.now() - TimeDelta::seconds(1),
            };
            tx.put(super::super::PAIRING_SLOTS, "all/0007", &slot)
        })
        .await
        .unwrap();
    request_pairing(&f.hub, &pairing_request(1), "10.0.0.1")
        .await
        .unwrap();
}
