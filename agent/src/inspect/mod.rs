//! Offline inspection: `signet-agent status` and `signet-agent verify`
//! (DESIGN §6).
//!
//! Owns: reading the state dir without a broker and reporting what is
//! applied, the trusted time and the offline grace; verifying one signed
//! document file against a root key (and a trust document). May call:
//! [`crate::state`], [`crate::sync::load_held`], [`crate::decide`],
//! [`crate::status`] (the report text) and `signet-common`'s rules.
//! Must not: change the state or the network.
//!
//! While the agent runs it holds the database lock; `status` then prints the
//! report the running agent keeps current (`status.txt`), and says so.

use std::fmt::Write as _;
use std::path::Path;
use std::str::FromStr as _;

use chrono::{DateTime, Utc};
use signet_common::documents::{Command, DecodeLimit, DeviceAssignment, GroupManifest, HubTime};
use signet_common::envelope::{self, Document, DocumentKind, MAX_DOCUMENT_BYTES, PublicKey};
use signet_common::rollback::Freshness;
use signet_common::trust::TrustStore;

use crate::clock::DeviceClock;
use crate::decide::{Decider, DiskView};
use crate::state::{Documents, Store};
use crate::status;
use crate::sync::{load_held, report};

/// `signet-agent status`: what is cached, which licenses hold until when,
/// what plays now and why anything else is skipped (DESIGN §6).
///
/// While the agent runs it holds the database; the report is then the one
/// the agent keeps current in `status.txt`.
///
/// # Errors
/// A message saying why the state cannot be read.
pub fn status(dir: &Path, decode: Option<&DecodeLimit>) -> Result<String, String> {
    if !dir.join("state").exists() {
        return Err(format!(
            "no agent state in {}: pair the device first (`signet-agent pair --hub URL`)",
            dir.display()
        ));
    }
    let store = match Store::open(dir) {
        Ok(store) => store,
        Err(open_error) => {
            return status::read_running(dir).map_err(|snapshot_error| {
                format!(
                    "{open_error}; and no status report from the running agent: {snapshot_error}"
                )
            });
        }
    };
    let clock = DeviceClock::new();
    let identity = store.require_identity().map_err(|e| e.to_string())?;
    let held = load_held(&store, &clock).map_err(|e| e.to_string())?;
    let documents = Documents::load(&store, identity.device_id.as_str())
        .map_err(|e| e.to_string())?
        .for_device(decode);
    let mut decider = Decider::new(DiskView {
        blobs: crate::cache::blobs_dir_in(dir),
    });
    let mut out = String::new();
    let _ = writeln!(out, "the agent is not running; its state:");
    let _ = writeln!(out, "hub: {}", identity.hub_url);
    let _ = writeln!(out, "broker: {}", identity.broker_url);
    let _ = writeln!(
        out,
        "root key: {}; trust version: {}",
        held.trust.root().key_id(),
        held.trust
            .version()
            .map_or_else(|| "none yet".to_owned(), |v| v.to_string())
    );
    out.push_str(&status::report(
        identity.device_id.as_str(),
        &documents,
        &held.clock,
        &clock.read(),
        &mut decider,
        None,
    ));
    let now = held.clock.peek(&clock.read());
    let applied = report::applied(&held);
    let _ = writeln!(out, "accepted documents:");
    for (key, doc) in &applied {
        let freshness = key
            .split_once('/')
            .and_then(|(kind, subject)| {
                let kind = DocumentKind::from_str(kind).ok()?;
                (kind == DocumentKind::GroupManifest)
                    .then(|| freshness_text(held.guard.freshness(kind, subject, now)))
            })
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {key}  version {}  sha256 {}{freshness}",
            doc.version, doc.sha256
        );
    }
    Ok(out)
}

fn freshness_text(freshness: Freshness) -> String {
    match freshness {
        Freshness::Fresh => "  (fresh)".to_owned(),
        Freshness::Missing => "  (missing)".to_owned(),
        Freshness::Expired { expires_at } => {
            format!("  (EXPIRED at {})", expires_at.to_rfc3339())
        }
        Freshness::BelowFloor { held, floor } => {
            format!(
                "  (version {held} is below the assigned floor {floor}: a newer version is due; what plays changes only when it is activated)"
            )
        }
    }
}

/// Reads a root public key: standard base64 of 32 bytes, given inline or
/// as the path of a file holding it (`root.pub`).
///
/// # Errors
/// When neither reading works.
pub fn read_root(root: &str) -> Result<PublicKey, String> {
    let path = Path::new(root);
    let text = if path.is_file() {
        let len = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
        if len > 1024 {
            return Err(format!("{root}: not a root.pub file (over 1 KiB)"));
        }
        std::fs::read_to_string(path).map_err(|e| format!("{root}: {e}"))?
    } else {
        root.to_owned()
    };
    PublicKey::from_base64(text.trim()).map_err(|e| format!("root key: {e}"))
}

fn read_document(path: &Path) -> Result<Vec<u8>, String> {
    let len = std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    if len > MAX_DOCUMENT_BYTES as u64 {
        return Err(format!(
            "{}: {len} bytes, over the {MAX_DOCUMENT_BYTES}-byte document limit",
            path.display()
        ));
    }
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// `signet-agent verify --root PUBKEY [--trust FILE] FILE`: verifies the
/// signed document in `file` offline at time `now`. A `trust` document is
/// checked against the root alone; any other kind needs the root-signed
/// trust document that certifies its signing key (`trust`).
///
/// # Errors
/// A message saying exactly why the document does not verify.
pub fn verify(
    root: &str,
    trust: Option<&Path>,
    file: &Path,
    now: DateTime<Utc>,
) -> Result<String, String> {
    let root = read_root(root)?;
    let bytes = read_document(file)?;
    let opened = envelope::open(&bytes).map_err(|e| e.to_string())?;
    let mut store = TrustStore::new(root);
    if opened.kind() == DocumentKind::Trust {
        store.apply_trust(&bytes).map_err(|e| e.to_string())?;
        return Ok(format!(
            "OK: trust version {} signed by the root {}; {} signing keys: {}\n",
            store.version().unwrap_or_default(),
            root.key_id(),
            store.signing_keys().len(),
            store
                .signing_keys()
                .iter()
                .map(|k| format!(
                    "{} ({} to {})",
                    k.key_id,
                    k.not_before.to_rfc3339(),
                    k.not_after.to_rfc3339()
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if matches!(
        opened.kind(),
        DocumentKind::DeviceState | DocumentKind::DeviceEvents
    ) {
        return Err(format!(
            "a {} document is a device's report, signed by that device's own key {} (S11), \
             not by the hub; the hub verifies it against the key registered at pairing",
            opened.kind(),
            opened.key_id()
        ));
    }
    let trust = trust.ok_or_else(|| {
        format!(
            "a {} document is signed by a signing key: give the trust document that certifies it with --trust FILE",
            opened.kind()
        )
    })?;
    store
        .apply_trust(&read_document(trust)?)
        .map_err(|e| format!("trust file {}: {e}", trust.display()))?;
    match opened.kind() {
        DocumentKind::GroupManifest => {
            let doc = typed::<GroupManifest>(&store, &bytes, now)?;
            doc.validate().map_err(|e| e.to_string())?;
            describe(&doc, opened.key_id())
        }
        DocumentKind::DeviceAssignment => describe(
            &typed::<DeviceAssignment>(&store, &bytes, now)?,
            opened.key_id(),
        ),
        DocumentKind::Command => describe(&typed::<Command>(&store, &bytes, now)?, opened.key_id()),
        DocumentKind::HubTime => describe(&typed::<HubTime>(&store, &bytes, now)?, opened.key_id()),
        DocumentKind::Trust | DocumentKind::DeviceState | DocumentKind::DeviceEvents => {
            Err("unreachable: trust and device reports handled above".to_owned())
        }
    }
}

fn typed<D: Document>(store: &TrustStore, bytes: &[u8], now: DateTime<Utc>) -> Result<D, String> {
    store
        .verify::<D>(bytes, now)
        .map(signet_common::envelope::Verified::into_payload)
        .map_err(|e| e.to_string())
}

fn describe<D: Document + serde::Serialize>(
    doc: &D,
    key_id: signet_common::envelope::KeyId,
) -> Result<String, String> {
    let json = serde_json::to_string_pretty(doc).map_err(|e| e.to_string())?;
    Ok(format!(
        "OK: {} {} version {} signed by {key_id}, issued {}{}\n{json}\n",
        D::KIND,
        doc.subject(),
        doc.version(),
        doc.issued_at().to_rfc3339(),
        doc.expires_at()
            .map_or_else(String::new, |t| format!(", expires {}", t.to_rfc3339())),
    ))
}
