//! Deciding what one received message changes (S1, S3, S6).
//!
//! Owns: the verification chain every message goes through — the trust
//! store's signature check at trusted time (a `hub_time`'s at the time it
//! states, since it is what corrects trusted time, S6), the rollback guard, the
//! document's own validation — and the resulting [`Plan`]: what to persist
//! and what to do next. Pure given its inputs: it reads the held state and
//! returns a plan or a refusal, and changes nothing itself, so a refused
//! document leaves the agent exactly as it was.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeDelta, Utc};
use signet_common::clock::{ClockReading, TrustedClock};
use signet_common::digest::Sha256;
use signet_common::documents::{Command, CommandAction, DeviceAssignment, GroupManifest};
use signet_common::envelope::{Document, DocumentKind, Verified};
use signet_common::ids::DeviceId;
use signet_common::rollback::{Acceptance, Offer, RollbackGuard};
use signet_common::sync::{
    HUB_TIME_TOPIC, TOPIC_PREFIX, TRUST_TOPIC, assignment_topic, commands_topic,
};
use signet_common::trust::{TrustStore, TrustUpdate};

use crate::state::Commit;
pub use crate::state::{document_key, stored_payload};

/// What a topic carries, from this device's point of view.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Route {
    /// `signet/v1/trust`.
    Trust,
    /// `signet/v1/hub/time`.
    HubTime,
    /// This device's assignment.
    Assignment,
    /// A group's manifest.
    Manifest(String),
    /// This device's commands.
    Commands,
    /// Anything else: refused.
    Unknown,
}

impl Route {
    /// Classifies `topic` for `device`.
    #[must_use]
    pub fn of(topic: &str, device: &DeviceId) -> Self {
        if topic == TRUST_TOPIC {
            return Self::Trust;
        }
        if topic == HUB_TIME_TOPIC {
            return Self::HubTime;
        }
        if topic == assignment_topic(device) {
            return Self::Assignment;
        }
        if topic == commands_topic(device) {
            return Self::Commands;
        }
        if let Some(group) = topic
            .strip_prefix(TOPIC_PREFIX)
            .and_then(|t| t.strip_prefix("/groups/"))
            .and_then(|t| t.strip_suffix("/manifest"))
            && is_topic_segment(group)
        {
            return Self::Manifest(group.to_owned());
        }
        Self::Unknown
    }

    /// Whether the topic carries retained state, where only the newest
    /// message matters (everything but commands).
    #[must_use]
    pub fn is_retained_state(&self) -> bool {
        !matches!(self, Self::Commands | Self::Unknown)
    }

    /// Processing order within one batch: trust first (it decides which
    /// keys count), then hub time (it decides the time), then the assignment
    /// (it decides the groups and floors), then manifests, then commands.
    #[must_use]
    pub fn priority(&self) -> u8 {
        match self {
            Self::Trust => 0,
            Self::HubTime => 1,
            Self::Assignment => 2,
            Self::Manifest(_) => 3,
            Self::Commands => 4,
            Self::Unknown => 5,
        }
    }
}

/// Whether `id` can stand as one MQTT topic level (no separators or
/// wildcards).
#[must_use]
pub fn is_topic_segment(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= signet_common::ids::MAX_ID_LEN
        && !id.contains(['/', '+', '#', '\0'])
}

/// Everything the agent holds in memory; the durable copy is in
/// [`crate::state::Store`].
#[derive(Debug, Clone)]
pub struct Held {
    /// This device.
    pub device: DeviceId,
    /// The pinned root and held trust document.
    pub trust: TrustStore,
    /// Versions and hashes accepted per kind and subject, and floors.
    pub guard: RollbackGuard,
    /// The trusted clock.
    pub clock: TrustedClock,
    /// The current device assignment, if one was accepted.
    pub assignment: Option<DeviceAssignment>,
    /// SHA-256 of each held document's envelope bytes, by `{kind}/{subject}`.
    pub documents: BTreeMap<String, Sha256>,
}

impl Held {
    /// The groups whose manifests this device follows now.
    #[must_use]
    pub fn groups(&self) -> BTreeSet<String> {
        self.assignment
            .as_ref()
            .map(|a| {
                a.group_ids()
                    .filter(|g| is_topic_segment(g))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// What happens after a plan is durable and its message acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowUp {
    /// Nothing more.
    Nothing,
    /// Subscribe to every topic again, so the broker re-sends all retained
    /// state (after a trust change or a step of trusted time: documents
    /// refused for an unknown key or at a wrong time may verify now).
    Resubscribe,
    /// The assignment changed: bring the group subscriptions in line.
    UpdateGroups,
    /// Carry out an accepted command.
    Command(CommandAction),
}

/// How the assignment changes.
#[derive(Debug, Clone)]
pub enum AssignmentChange {
    /// It stays.
    Keep,
    /// A new one is held.
    Set(DeviceAssignment),
    /// It is dropped (its signing key was removed from the trust document).
    Clear,
}

/// The accepted effect of one message.
#[derive(Debug)]
pub struct Plan {
    /// The new trust store, if it changed.
    pub trust: Option<TrustStore>,
    /// The new rollback guard, if it changed.
    pub guard: Option<RollbackGuard>,
    /// The new clock, if a hub time moved it.
    pub clock: Option<TrustedClock>,
    /// The assignment change.
    pub assignment: AssignmentChange,
    /// Envelopes to store by `{kind}/{subject}`.
    pub put: Vec<(String, Vec<u8>)>,
    /// Documents to drop.
    pub remove: Vec<String>,
    /// Command nonces to remember, with their expiry.
    pub nonces: Vec<(String, DateTime<Utc>)>,
    /// Groups whose playing manifest stops at once (L4).
    pub deactivate: Vec<String>,
    /// What to do once it is durable.
    pub follow_up: FollowUp,
    /// One line for the log: what was applied.
    pub summary: String,
}

impl Plan {
    fn new(summary: String) -> Self {
        Self {
            trust: None,
            guard: None,
            clock: None,
            assignment: AssignmentChange::Keep,
            put: Vec::new(),
            remove: Vec::new(),
            nonces: Vec::new(),
            deactivate: Vec::new(),
            follow_up: FollowUp::Nothing,
            summary,
        }
    }

    /// The durable form of this plan, with the clock state to persist.
    #[must_use]
    pub fn commit(&self, clock: &TrustedClock, expired_nonces: Vec<String>) -> Commit {
        Commit {
            identity: None,
            trust: self.trust.clone(),
            guard: self.guard.clone(),
            clock: Some(self.clock.clone().unwrap_or_else(|| clock.clone())),
            put_documents: self.put.clone(),
            remove_documents: self.remove.clone(),
            add_nonces: self.nonces.clone(),
            remove_nonces: expired_nonces,
            put_active: Vec::new(),
            remove_active: self.deactivate.clone(),
        }
    }

    /// Makes the plan the held state (after it is durable).
    pub fn adopt(self, held: &mut Held) {
        if let Some(trust) = self.trust {
            held.trust = trust;
        }
        if let Some(guard) = self.guard {
            held.guard = guard;
        }
        if let Some(clock) = self.clock {
            held.clock = clock;
        }
        match self.assignment {
            AssignmentChange::Keep => {}
            AssignmentChange::Set(assignment) => held.assignment = Some(assignment),
            AssignmentChange::Clear => held.assignment = None,
        }
        for key in self.remove {
            held.documents.remove(&key);
        }
        for (key, bytes) in self.put {
            held.documents.insert(key, Sha256::of(&bytes));
        }
    }
}

/// The result of looking at one message.
#[derive(Debug)]
pub enum Decision {
    /// Accepted: persist the plan, then acknowledge.
    Apply(Box<Plan>),
    /// Already held (a re-delivery): acknowledge, nothing changes.
    Unchanged(String),
    /// Refused with a reason: acknowledge, nothing changes.
    Refused(String),
}

/// Decides what the message `bytes` on `route` changes, at trusted time
/// `now` (the clock reading is for a hub time). `nonce_seen` answers whether
/// a command nonce was accepted before.
pub fn decide(
    held: &Held,
    route: &Route,
    bytes: &[u8],
    now: DateTime<Utc>,
    reading: &ClockReading,
    nonce_seen: &dyn Fn(&str) -> Result<bool, String>,
) -> Decision {
    let result = match route {
        Route::Trust => trust(held, bytes),
        Route::HubTime => hub_time(held, bytes, now, reading),
        Route::Assignment => assignment(held, bytes, now),
        Route::Manifest(group) => manifest(held, group, bytes, now),
        Route::Commands => command(held, bytes, now, nonce_seen),
        Route::Unknown => Err("not a topic this device follows".to_owned()),
    };
    match result {
        Ok(Some(plan)) => Decision::Apply(Box::new(plan)),
        Ok(None) => Decision::Unchanged(format!("{route:?}: already held")),
        Err(reason) => Decision::Refused(reason),
    }
}

type Step = Result<Option<Plan>, String>;

fn trust(held: &Held, bytes: &[u8]) -> Step {
    let mut trust = held.trust.clone();
    let update = trust
        .apply_trust(bytes)
        .map_err(|e| format!("trust: {e}"))?;
    let TrustUpdate::Updated {
        version,
        new_root,
        removed_keys,
    } = update
    else {
        return Ok(None);
    };
    let mut plan = Plan::new(format!(
        "trust version {version}{}",
        new_root.map_or(String::new(), |r| format!(", new root {}", r.key_id()))
    ));
    if !removed_keys.is_empty() {
        let mut guard = held.guard.clone();
        for (kind, subject) in guard.forget_keys(&removed_keys) {
            if kind == DocumentKind::DeviceAssignment {
                plan.assignment = AssignmentChange::Clear;
            }
            if kind == DocumentKind::GroupManifest {
                plan.deactivate.push(subject.clone());
            }
            plan.remove.push(document_key(kind, &subject));
        }
        plan.guard = Some(guard);
    }
    plan.put
        .push((document_key(DocumentKind::Trust, "trust"), bytes.to_vec()));
    plan.trust = Some(trust);
    plan.follow_up = FollowUp::Resubscribe;
    Ok(Some(plan))
}

/// Offers a verified `D` to the guard; `None` when held. The caller
/// verified it once (signature, key chain, parse) and checked what it
/// must; it is not verified again.
fn accept_verified<D: Document>(
    held: &Held,
    verified: Verified<D>,
) -> Result<Option<(D, RollbackGuard, String)>, String> {
    let kind = D::KIND;
    let mut guard = held.guard.clone();
    let offer = Offer::of(&verified);
    let key = document_key(kind, &offer.subject);
    match guard.accept(&offer).map_err(|e| e.to_string())? {
        Acceptance::AlreadyHeld => Ok(None),
        Acceptance::New { .. } => Ok(Some((verified.into_payload(), guard, key))),
    }
}

/// A step of trusted time larger than this, made by a `hub_time`, makes the
/// agent subscribe again: documents refused while the clock was wrong (a
/// manifest "expired" a year ahead, a key "not yet valid" days behind) were
/// acknowledged and are only sent again on a new subscription (S6).
pub const CLOCK_STEP_RESUBSCRIBE: TimeDelta = TimeDelta::seconds(60);

/// S6: a verified `hub_time` with a version above the held one sets trusted
/// time, in either direction. Its key is checked at the time it states, not
/// at `now` — `now` is what it corrects ([`signet_common::clock`] says why
/// that is safe); a replayed or older one (equal or lower version) is
/// refused by the rollback guard and moves nothing.
fn hub_time(held: &Held, bytes: &[u8], now: DateTime<Utc>, reading: &ClockReading) -> Step {
    let verified = held
        .trust
        .verify_hub_time(bytes)
        .map_err(|e| format!("hub_time: {e}"))?;
    let mut guard = held.guard.clone();
    let offer = Offer::of(&verified);
    let key = document_key(DocumentKind::HubTime, &offer.subject);
    if guard.accept(&offer).map_err(|e| format!("hub_time: {e}"))? == Acceptance::AlreadyHeld {
        return Ok(None);
    }
    let doc = verified.into_payload();
    let mut clock = held.clock.clone();
    let trusted = clock.observe_hub_time(reading, doc.time);
    let step = trusted - now;
    let mut plan = Plan::new(format!(
        "hub_time version {} ({}), trusted time now {}{}",
        doc.version,
        doc.time.to_rfc3339(),
        trusted.to_rfc3339(),
        if step.abs() > CLOCK_STEP_RESUBSCRIBE {
            format!(", set by {} s", step.num_seconds())
        } else {
            String::new()
        }
    ));
    if step.abs() > CLOCK_STEP_RESUBSCRIBE {
        plan.follow_up = FollowUp::Resubscribe;
    }
    plan.clock = Some(clock);
    plan.guard = Some(guard);
    plan.put.push((key, bytes.to_vec()));
    Ok(Some(plan))
}

fn assignment(held: &Held, bytes: &[u8], now: DateTime<Utc>) -> Step {
    // Validate before the guard sees it: a bad assignment must not raise
    // the held version.
    let verified = held
        .trust
        .verify::<DeviceAssignment>(bytes, now)
        .map_err(|e| format!("device_assignment: {e}"))?;
    verified
        .payload()
        .validate_for(&held.device)
        .map_err(|e| format!("device_assignment: {e}"))?;
    if let Some(bad) = verified
        .payload()
        .group_ids()
        .find(|g| !is_topic_segment(g))
    {
        return Err(format!(
            "device_assignment: group id {bad:?} cannot be a topic level"
        ));
    }
    let Some((doc, mut guard, key)) = accept_verified(held, verified)? else {
        return Ok(None);
    };
    let stale = guard.set_floors(
        doc.min_manifest_versions
            .iter()
            .map(|(group, floor)| (group.clone(), *floor)),
    );
    let new_groups: BTreeSet<&str> = doc.group_ids().collect();
    let mut plan = Plan::new(format!(
        "device_assignment version {} ({} groups{})",
        doc.version,
        new_groups.len(),
        if stale.is_empty() {
            String::new()
        } else {
            format!(
                "; held manifests now below their floor: {}",
                stale.join(", ")
            )
        }
    ));
    for group in held.groups() {
        if !new_groups.contains(group.as_str()) {
            plan.remove
                .push(document_key(DocumentKind::GroupManifest, &group));
            plan.deactivate.push(group);
        }
    }
    plan.put.push((key, bytes.to_vec()));
    plan.guard = Some(guard);
    plan.assignment = AssignmentChange::Set(doc);
    plan.follow_up = FollowUp::UpdateGroups;
    Ok(Some(plan))
}

fn manifest(held: &Held, group: &str, bytes: &[u8], now: DateTime<Utc>) -> Step {
    if !held.groups().contains(group) {
        return Err(format!(
            "group_manifest {group}: not a group of this device's assignment"
        ));
    }
    let verified = held
        .trust
        .verify::<GroupManifest>(bytes, now)
        .map_err(|e| format!("group_manifest {group}: {e}"))?;
    verified
        .payload()
        .validate()
        .map_err(|e| format!("group_manifest {group}: {e}"))?;
    if verified.payload().group_id != group {
        return Err(format!(
            "group_manifest {group}: carries group {:?}, not the topic's",
            verified.payload().group_id
        ));
    }
    let Some((doc, guard, key)) = accept_verified(held, verified)? else {
        return Ok(None);
    };
    let mut plan = Plan::new(format!(
        "group_manifest {group} version {} ({} items, expires {})",
        doc.version,
        doc.items.len(),
        doc.expires_at.to_rfc3339()
    ));
    plan.guard = Some(guard);
    plan.put.push((key, bytes.to_vec()));
    Ok(Some(plan))
}

fn command(
    held: &Held,
    bytes: &[u8],
    now: DateTime<Utc>,
    nonce_seen: &dyn Fn(&str) -> Result<bool, String>,
) -> Step {
    // Expiry is checked by `verify` against trusted time.
    let verified = held
        .trust
        .verify::<Command>(bytes, now)
        .map_err(|e| format!("command: {e}"))?;
    let doc = verified.payload();
    doc.check_for(&held.device)
        .map_err(|e| format!("command: {e}"))?;
    let offer = Offer::of(&verified);
    match held.guard.check(&offer) {
        Ok(Acceptance::New { .. }) => {}
        Ok(Acceptance::AlreadyHeld) => {
            return Err(format!(
                "command version {} replayed: already carried out",
                doc.version
            ));
        }
        Err(e) => return Err(format!("command replayed or out of order: {e}")),
    }
    if nonce_seen(&doc.nonce)? {
        return Err(format!("command nonce {:?} replayed", doc.nonce));
    }
    let mut guard = held.guard.clone();
    guard.accept(&offer).map_err(|e| e.to_string())?;
    let key = document_key(DocumentKind::Command, &offer.subject);
    let mut plan = Plan::new(format!(
        "command version {} {:?} (expires {})",
        doc.version,
        doc.action,
        doc.expires_at.to_rfc3339()
    ));
    plan.nonces.push((doc.nonce.clone(), doc.expires_at));
    plan.follow_up = FollowUp::Command(doc.action);
    plan.guard = Some(guard);
    plan.put.push((key, bytes.to_vec()));
    Ok(Some(plan))
}
