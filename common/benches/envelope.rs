//! Envelope verification against raw `ring` Ed25519 verification of the same
//! bytes (issue 2 acceptance: ≥ 90 % of raw throughput).
//!
//! Criterion measures each side; then an interleaved loop measures both in
//! alternating rounds of the same run and prints the throughput ratio
//! (envelope / raw) per document size, so machine noise hits both equally.
//! Run with `make bench` or `cargo bench -p signet-common --bench envelope`.
#![allow(missing_docs, clippy::expect_used)]

use std::borrow::Cow;
use std::hint::black_box;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, TimeZone, Utc};
use criterion::{Criterion, Throughput};
use ring::signature::{ED25519, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use signet_common::documents::HubTime;
use signet_common::envelope::{self, Document, DocumentKind, SigningKey};
use signet_common::trust::{CertifiedKey, TrustDocument, TrustStore};

/// A manifest-shaped document of `n` items, to measure larger payloads.
#[derive(Serialize, Deserialize)]
struct Bulk {
    version: u64,
    issued_at: DateTime<Utc>,
    group_id: String,
    items: Vec<BulkItem>,
}

#[derive(Serialize, Deserialize)]
struct BulkItem {
    id: String,
    sha256: String,
    size: u64,
    url: String,
}

impl Document for Bulk {
    const KIND: DocumentKind = DocumentKind::GroupManifest;
    fn version(&self) -> u64 {
        self.version
    }
    fn issued_at(&self) -> DateTime<Utc> {
        self.issued_at
    }
    fn subject(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.group_id)
    }
}

struct Case {
    name: &'static str,
    envelope: Vec<u8>,
    message: Vec<u8>,
    signature: Vec<u8>,
}

struct Setup {
    store: TrustStore,
    public_key: [u8; 32],
    now: DateTime<Utc>,
    cases: Vec<Case>,
}

fn setup() -> Setup {
    let now = Utc
        .with_ymd_and_hms(2026, 6, 1, 0, 0, 0)
        .single()
        .expect("valid date");
    let key =
        |_| SigningKey::from_pkcs8(&SigningKey::generate_pkcs8().expect("keygen")).expect("pkcs8");
    let (root, signing) = (key(0), key(1));
    let trust = TrustDocument {
        version: 1,
        issued_at: now,
        root_key_id: root.key_id(),
        root_public_key: None,
        signing_keys: vec![CertifiedKey {
            key_id: signing.key_id(),
            public_key: signing.public_key(),
            not_before: now - chrono::TimeDelta::days(1),
            not_after: now + chrono::TimeDelta::days(365),
        }],
    };
    let mut store = TrustStore::new(root.public_key());
    store
        .apply_trust(&envelope::sign_document(&trust, &root).expect("sign trust"))
        .expect("apply trust");
    let hub_time = HubTime {
        version: 1,
        issued_at: now,
        time: now,
    };
    let bulk = |n: usize| Bulk {
        version: 1,
        issued_at: now,
        group_id: "group-0001".into(),
        items: (0..n)
            .map(|i| BulkItem {
                id: format!("item-{i:05}"),
                sha256: format!("{:064x}", i * 7919),
                size: 1_000_000 + i as u64,
                url: format!(
                    "https://hub.example/api/v1/device/content/{:064x}",
                    i * 7919
                ),
            })
            .collect(),
    };
    let make = |name, envelope: Vec<u8>, kind: DocumentKind| {
        let object: serde_json::Value = serde_json::from_slice(&envelope).expect("json");
        let payload = BASE64
            .decode(object["payload"].as_str().expect("payload"))
            .expect("b64");
        let signature = BASE64
            .decode(object["sig"].as_str().expect("sig"))
            .expect("b64");
        let mut message = kind.as_str().as_bytes().to_vec();
        message.push(0);
        message.extend(payload);
        Case {
            name,
            envelope,
            message,
            signature,
        }
    };
    let cases = vec![
        make(
            "hub_time",
            envelope::sign_document(&hub_time, &signing).expect("sign"),
            DocumentKind::HubTime,
        ),
        make(
            "manifest_10_items",
            envelope::sign_document(&bulk(10), &signing).expect("sign"),
            DocumentKind::GroupManifest,
        ),
        make(
            "manifest_100_items",
            envelope::sign_document(&bulk(100), &signing).expect("sign"),
            DocumentKind::GroupManifest,
        ),
    ];
    Setup {
        store,
        public_key: *signing.public_key().as_bytes(),
        now,
        cases,
    }
}

fn verify_envelope(setup: &Setup, case: &Case) -> bool {
    match case.name {
        "hub_time" => setup
            .store
            .verify::<HubTime>(&case.envelope, setup.now)
            .is_ok(),
        _ => setup
            .store
            .verify::<Bulk>(&case.envelope, setup.now)
            .is_ok(),
    }
}

fn verify_raw(setup: &Setup, case: &Case) -> bool {
    UnparsedPublicKey::new(&ED25519, &setup.public_key)
        .verify(&case.message, &case.signature)
        .is_ok()
}

fn criterion_benches(c: &mut Criterion, setup: &Setup) {
    for case in &setup.cases {
        let mut group = c.benchmark_group(case.name);
        group.throughput(Throughput::Elements(1));
        group.bench_function("raw_ring_verify", |b| {
            b.iter(|| assert!(verify_raw(setup, black_box(case))))
        });
        group.bench_function("envelope_verify", |b| {
            b.iter(|| assert!(verify_envelope(setup, black_box(case))))
        });
        group.finish();
    }
}

/// Alternating rounds of `batch` verifications each; the median of the
/// per-round ratios is robust to a noisy neighbour.
fn interleaved_ratio(
    setup: &Setup,
    case: &Case,
    rounds: usize,
    batch: usize,
) -> (f64, Duration, Duration) {
    let time = |f: &dyn Fn() -> bool| {
        let start = Instant::now();
        for _ in 0..batch {
            assert!(f());
        }
        start.elapsed()
    };
    let mut ratios = Vec::with_capacity(rounds);
    let (mut raw_total, mut env_total) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..rounds {
        let raw = time(&|| verify_raw(setup, black_box(case)));
        let env = time(&|| verify_envelope(setup, black_box(case)));
        raw_total += raw;
        env_total += env;
        // Throughput ratio = envelope verifications per second / raw per second.
        ratios.push(raw.as_secs_f64() / env.as_secs_f64());
    }
    ratios.sort_by(f64::total_cmp);
    let per = |d: Duration| d / u32::try_from(rounds * batch).expect("small");
    (ratios[rounds / 2], per(raw_total), per(env_total))
}

fn main() {
    let setup = setup();
    let mut criterion = Criterion::default().configure_from_args();
    criterion_benches(&mut criterion, &setup);
    criterion.final_summary();

    let quick = std::env::args().any(|a| a == "--test");
    let (rounds, batch) = if quick { (3, 10) } else { (41, 400) };
    println!(
        "\nenvelope verify throughput as a fraction of raw ring Ed25519 verify (same bytes, interleaved, median of {rounds} rounds):"
    );
    for case in &setup.cases {
        let (ratio, raw, env) = interleaved_ratio(&setup, case, rounds, batch);
        println!(
            "  {:<20} payload {:>6} B  raw {:>8.2?}  envelope {:>8.2?}  ratio {:.3}",
            case.name,
            case.message.len(),
            raw,
            env,
            ratio
        );
    }
}
