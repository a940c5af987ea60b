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
