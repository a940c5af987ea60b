//! Offline inspection: `signet-agent status` and `signet-agent verify`
//! (DESIGN §6).
//!
//! Owns: reading the state dir without a broker and reporting what is
//! applied, the trusted time and the offline grace; verifying one signed
//! document file against a root key (and a trust document). May call:
//! [`crate::state`], [`crate::sync::load_held`] and `signet-common`'s rules.
//! Must not: change the state or the network.
//!
//! While the agent runs it holds the database lock; `status` then prints the
//! report the running agent keeps current (`status.txt`), and says so.

use std::fmt::Write as _;
use std::path::Path;
use std::str::FromStr as _;

use chrono::{DateTime, TimeDelta, Utc};
use signet_common::documents::{Command, DeviceAssignment, GroupManifest, HubTime};
use signet_common::envelope::{self, Document, DocumentKind, MAX_DOCUMENT_BYTES, PublicKey};
use signet_common::rollback::Freshness;
use signet_common::trust::TrustStore;

use signet_common::clock::{ClockReading, TrustedClock};
use signet_common::ids::ItemId;
use signet_common::play::Cached;

use crate::activate::Documents;
use crate::clock::DeviceClock;
use crate::player::decide::{Decider, DiskView};
use crate::state::Store;
use crate::sync::{load_held, report};

/// `signet-agent status`: what is cached, which licenses hold until when,
/// what plays now and why anything else is skipped (DESIGN §6).
///
/// While the agent runs it holds the database; the report is then the one
/// the agent keeps current in `status.txt`.
///
/// # Errors
/// A message saying why the state cannot be read.
pub fn status(dir: &Path) -> Result<String, String> {
    if !dir.join("state").exists() {
        return Err(format!(
            "no agent state in {}: pair the device first (`signet-agent pair --hub URL`)",
            dir.display()
        ));
    }
    let store = match Store::open(dir) {
        Ok(store) => store,
        Err(open_error) => {
            return running_status(dir).map_err(|snapshot_error| {
                format!(
                    "{open_error}; and no status report from the running agent: {snapshot_error}"
                )
            });
        }
    };
    let clock = DeviceClock::new();
    let identity = store.require_identity().map_err(|e| e.to_string())?;
    let held = load_held(&store, &clock).map_err(|e| e.to_string())?;
    let documents =
        Documents::load(&store, identity.device_id.as_str()).map_err(|e| e.to_string())?;
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
    out.push_str(&report(
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

/// The status report (shared by `signet-agent status` and the running
/// agent's `status.txt`): trusted time and offline grace, the playing
/// manifests, the licenses and until when they hold, the cache, what plays
/// now, and for every scheduled item whether it may play now and if not
/// why (D4).
pub fn report(
    device: &str,
    documents: &Documents,
    clock: &TrustedClock,
    reading: &ClockReading,
    decider: &mut Decider,
    now_playing: Option<(&ItemId, DateTime<Utc>)>,
) -> String {
    let now = clock.peek(reading);
    let mut out = String::new();
    let _ = writeln!(out, "device: {device}");
    let _ = writeln!(
        out,
        "trusted time: {} (wall clock offset {} ms)",
        now.to_rfc3339(),
        clock.offset(reading).num_milliseconds()
    );
    let _ = match clock.last_hub_contact() {
        None => writeln!(
            out,
            "last hub time: never (licensed content may not play until a signed hub time arrives)"
        ),
        Some(contact) => {
            let verdict = match &documents.assignment {
                None => String::new(),
                Some(a) => {
                    let grace =
                        TimeDelta::seconds(i64::try_from(a.offline_grace_secs).unwrap_or(i64::MAX));
                    if clock.within_grace(now, grace) {
                        format!("; within the offline grace of {} s", grace.num_seconds())
                    } else {
                        format!(
                            "; the offline grace of {} s is EXCEEDED",
                            grace.num_seconds()
                        )
                    }
                }
            };
            writeln!(
                out,
                "last hub time: {} ({} s ago{verdict})",
                contact.to_rfc3339(),
                (now - contact).num_seconds()
            )
        }
    };
    let Some(assignment) = &documents.assignment else {
        let _ = writeln!(out, "assignment: none yet, so nothing may play");
        return out;
    };
    let _ = writeln!(
        out,
        "assignment: version {}, time zone {}, offline grace {} s",
        assignment.version, assignment.time_zone, assignment.offline_grace_secs
    );
    let _ = writeln!(out, "playing manifests:");
    for group in documents.group_order() {
        let playing = documents.playing.get(&group).map(|h| &h.manifest);
        let accepted = documents.accepted.get(&group).map(|h| &h.manifest);
        let line = match (playing, accepted) {
            (Some(p), Some(a)) if a.version > p.version => format!(
                "version {} (version {} accepted, waiting for its content)",
                p.version, a.version
            ),
            (Some(p), _) => format!(
                "version {}, expires {}",
                p.version,
                p.expires_at.to_rfc3339()
            ),
            (None, Some(a)) => format!(
                "none yet (version {} accepted, waiting for its content)",
                a.version
            ),
            (None, None) => "none received yet".to_owned(),
        };
        let _ = writeln!(out, "  {group}: {line}");
    }
    let licensed: Vec<_> = documents
        .playing_in_order()
        .into_iter()
        .filter_map(|m| m.license.as_ref().map(|terms| (m, terms)))
        .collect();
    if !licensed.is_empty() {
        let _ = writeln!(out, "licenses:");
    }
    for (manifest, terms) in licensed {
        let window = assignment
            .access_groups
            .iter()
            .find(|m| m.group_id.as_str() == manifest.group_id)
            .map(|m| m.window);
        let grace = signet_common::play::offline_grace(assignment, terms);
        let text = match window {
            None => "this device is not a member".to_owned(),
            Some(window) => format!(
                "from {} until {}{}; offline grace {} s",
                window.starts_at.to_rfc3339(),
                window
                    .ends_at
                    .map_or_else(|| "no end".to_owned(), |e| e.to_rfc3339()),
                window
                    .ended_by
                    .map_or_else(String::new, |l| format!(" (ended by {l})")),
                grace.num_seconds()
            ),
        };
        let _ = writeln!(out, "  {}: {text}", manifest.group_id);
    }
    let mut cached = 0u64;
    let mut cached_bytes = 0u64;
    let mut listed = 0u64;
    for manifest in documents.playing_in_order() {
        for item in &manifest.items {
            listed += 1;
            if !matches!(decider.cached(item), Cached::Missing) {
                cached += 1;
                cached_bytes = cached_bytes.saturating_add(item.size);
            }
        }
    }
    let _ = writeln!(
        out,
        "cache: {cached} of the {listed} listed items present ({cached_bytes} bytes)"
    );
    let _ = match now_playing {
        Some((item, since)) => writeln!(out, "now playing: {item} since {}", since.to_rfc3339()),
        None => writeln!(out, "now playing: nothing"),
    };
    let scheduled = signet_common::play::scheduled_items(&documents.playing_in_order());
    if scheduled.is_empty() {
        let _ = writeln!(out, "scheduled items: none");
    } else {
        let _ = writeln!(out, "scheduled items:");
    }
    for (item, groups) in scheduled {
        let answer = match decider.decide(documents, clock, now, &item) {
            Ok(permit) => format!(
                "may play (group {}{})",
                permit.group,
                permit
                    .until
                    .map_or_else(String::new, |u| format!(", until {}", u.to_rfc3339()))
            ),
            Err(reason) => format!("SKIPPED: {reason}"),
        };
        let _ = writeln!(out, "  {item} [{}]: {answer}", groups.join(", "));
    }
    out
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

fn running_status(dir: &Path) -> Result<String, String> {
    let path = dir.join(crate::player::STATUS_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let age = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .map_or_else(String::new, |age| format!(" ({} s ago)", age.as_secs()));
    Ok(format!(
        "the agent is running and holds the state; its latest report{age}:\n{text}"
    ))
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
