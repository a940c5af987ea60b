//! Pairing (S7) and offline verification (DESIGN §6) with the real binary.
//! The hub side of pairing is a small axum server in this test that speaks
//! exactly the `signet_common::sync` contract types (the real hub route is
//! built in parallel); `verify` reads files signed here.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{TimeDelta, Utc};
use signet_common::sync::{
    BrokerAccess, Checked as _, PairingRequest, PairingStatus, PairingTicket,
};
use support::Keys;

/// What the fake hub does with a ticket.
#[derive(Clone)]
struct FakeHub {
    /// The request it received.
    request: Arc<Mutex<Option<PairingRequest>>>,
    /// How many polls answer pending before the final answer.
    polls: Arc<Mutex<u32>>,
    /// The final answer.
    answer: PairingStatus,
}

async fn create(
    State(hub): State<FakeHub>,
    Json(request): Json<PairingRequest>,
) -> Json<PairingTicket> {
    request.check().unwrap();
    *hub.request.lock().unwrap() = Some(request);
    Json(PairingTicket {
        ticket: "t-secret-1".into(),
        code: "ABCD2345".into(),
        expires_at: Utc::now() + TimeDelta::minutes(5),
        poll_secs: 1,
    })
}

async fn poll(State(hub): State<FakeHub>, Path(ticket): Path<String>) -> Json<PairingStatus> {
    assert_eq!(ticket, "t-secret-1");
    let mut polls = hub.polls.lock().unwrap();
    if *polls > 0 {
        *polls -= 1;
        return Json(PairingStatus::Pending {
            expires_at: Utc::now() + TimeDelta::minutes(5),
        });
    }
    Json(hub.answer.clone())
}

async fn serve(hub: FakeHub) -> String {
    let app = Router::new()
        .route("/api/v1/device/pairings", post(create))
        .route("/api/v1/device/pairings/{ticket}", get(poll))
        .with_state(hub);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// Runs `signet-agent pair`, checks the code line, returns (status, output).
async fn pair(data: &std::path::Path, hub_url: &str) -> (std::process::ExitStatus, String, String) {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_signet-agent"))
        .args(["pair", "--hub", hub_url])
        .env("SIGNET_AGENT_DATA_DIR", data)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(30), async {
        child.wait_with_output().await.unwrap()
    })
    .await
    .expect("pairing ended in time");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// S7: the agent sends its own public key, shows the code, polls until
/// approved, then records its identity, pins the root and keeps its secret
/// in a 0600 file; `status` shows the device id afterwards.
#[tokio::test]
async fn s7_pairing_shows_the_code_and_records_the_approved_identity() {
    let keys = Keys::new();
    let hub = FakeHub {
        request: Arc::default(),
        polls: Arc::new(Mutex::new(2)),
        answer: PairingStatus::Approved {
            device_id: "dev-77".into(),
            broker: BrokerAccess {
                url: "mqtt://127.0.0.1:1883".into(),
                username: "dev-77".into(),
                password: "s3cret-device-password".into(),
                ca_pem: None,
            },
            root_public_key: keys.root.public_key().to_base64(),
            hub_url: "http://127.0.0.1:8080".into(),
        },
    };
    let url = serve(hub.clone()).await;
    let data = tempfile::tempdir().unwrap();
    let (status, stdout, stderr) = pair(data.path(), &url).await;
    assert!(status.success(), "{stdout}\n{stderr}");
    let first = BufReader::new(stdout.as_bytes())
        .lines()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(first, "pairing code: ABCD2345");
    assert!(stdout.contains("paired as device dev-77"), "{stdout}");

    // The key it sent is the one it keeps (device.key, 0600).
    let store = signet_agent::state::Store::open(data.path()).unwrap();
    let sent = hub.request.lock().unwrap().clone().unwrap();
    assert_eq!(
        sent.public_key,
        store.device_key().unwrap().public_key().to_base64()
    );
    assert_eq!(store.trust().unwrap().root(), keys.root.public_key());
    assert_eq!(store.secret().unwrap(), "s3cret-device-password");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        for file in ["device.key", "device.secret"] {
            let mode = std::fs::metadata(data.path().join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
    }
    drop(store);

    let out = Command::new(env!("CARGO_BIN_EXE_signet-agent"))
        .arg("status")
        .env("SIGNET_AGENT_DATA_DIR", data.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("device: dev-77"), "{text}");
    assert!(text.contains("last hub time: never"), "{text}");

    // Pairing twice is refused with a clear reason.
    let (status, _, stderr) = pair(data.path(), &url).await;
    assert!(!status.success());
    assert!(stderr.contains("already paired as dev-77"), "{stderr}");
}

/// S7: a pairing the hub closes ends non-zero with the hub's reason and
/// records nothing.
#[tokio::test]
async fn s7_closed_pairing_exits_non_zero_with_the_reason() {
    let hub = FakeHub {
        request: Arc::default(),
        polls: Arc::new(Mutex::new(0)),
        answer: PairingStatus::Closed {
            reason: "refused by an operator".into(),
        },
    };
    let url = serve(hub).await;
    let data = tempfile::tempdir().unwrap();
    let (status, stdout, stderr) = pair(data.path(), &url).await;
    assert!(!status.success());
    assert!(stdout.contains("pairing code: ABCD2345"));
    assert!(stderr.contains("refused by an operator"), "{stderr}");
    let store = signet_agent::state::Store::open(data.path()).unwrap();
    assert!(store.identity().unwrap().is_none());
}

/// DESIGN §6, S1: `verify` accepts a document signed by a key the trust
/// document certifies, and refuses a tampered one and one without the
/// trust document, each with a reason.
#[test]
fn s1_verify_checks_a_document_offline() {
    let keys = Keys::new();
    let dir = tempfile::tempdir().unwrap();
    let root_pub = dir.path().join("root.pub");
    std::fs::write(
        &root_pub,
        format!("{}\n", keys.root.public_key().to_base64()),
    )
    .unwrap();
    let trust = dir.path().join("signing.trust");
    std::fs::write(&trust, keys.trust(1)).unwrap();
    let manifest = dir.path().join("manifest.json");
    std::fs::write(&manifest, keys.manifest("n-site", 7)).unwrap();

    let run = |args: &[&std::ffi::OsStr]| {
        Command::new(env!("CARGO_BIN_EXE_signet-agent"))
            .arg("verify")
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&[
        "--root".as_ref(),
        root_pub.as_os_str(),
        "--trust".as_ref(),
        trust.as_os_str(),
        manifest.as_os_str(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.starts_with("OK: group_manifest n-site version 7"),
        "{text}"
    );

    // The trust document itself verifies against the root alone (inline key).
    let inline = keys.root.public_key().to_base64();
    let out = run(&["--root".as_ref(), inline.as_ref(), trust.as_os_str()]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("OK: trust version 1"));

    let out = run(&[
        "--root".as_ref(),
        root_pub.as_os_str(),
        manifest.as_os_str(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--trust FILE"));

    // One changed payload byte: the signature no longer matches.
    let mut envelope: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    let payload = envelope["payload"].as_str().unwrap().to_owned();
    let mut bytes =
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, payload).unwrap();
    let at = bytes.iter().position(|b| *b == b'7').unwrap();
    bytes[at] = b'8';
    envelope["payload"] =
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &bytes).into();
    let tampered = dir.path().join("tampered.json");
    std::fs::write(&tampered, serde_json::to_vec(&envelope).unwrap()).unwrap();
    let out = run(&[
        "--root".as_ref(),
        root_pub.as_os_str(),
        "--trust".as_ref(),
        trust.as_os_str(),
        tampered.as_os_str(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad signature"));
}
