//! The durable broker outbox (S7, S10, issue 17 point 3): how device access
//! on the broker follows the store without a lock or a transaction held
//! across a broker call.
//!
//! Owns: the [`BROKER_OUTBOX`] tree, the worker that applies it, the
//! inline application after a commit ([`settle`]) and the reconciliation
//! at start ([`reconcile_broker_access`]). Must not: decide who may pair,
//! move or unpair (the devices service does), or hold a transaction across
//! a [`crate::mqtt::admin::BrokerAdmin`] call.
//!
//! # How it works
//! A state change that alters a device's broker access (pairing approval,
//! a move, an unpair, an access-group change, a new signed assignment)
//! writes, in the same transaction as the change, an [`OutboxEntry`] keyed
//! by the device ([`enqueue_in`]). The entry says "make the broker match the
//! store for this device", not what to grant: whoever applies it reads the
//! device's record *then* and grants its current groups
//! ([`super::broker_groups`]), or revokes it when it is no longer paired.
//! (An entry a publication wrote also carries the groups of the assignment
//! it signed, [`enqueue_assignment_in`]: granted to a device that has a
//! node entry but no device record, as publishing itself treats it.)
//! So entries never go stale, a newer change simply replaces the entry,
//! and applying one twice is harmless. Only the approval's plain secret
//! travels in the entry (the broker needs it to create the client); it is
//! kept until the broker confirmed, like the pairing record keeps it until
//! the agent collects it (see the module doc of [`super`]).
//!
//! After the commit, the caller applies its own entries at once
//! ([`settle`]: same latency as the direct call it replaces), and the
//! worker ([`spawn_worker`], woken through [`wake`]) applies whatever is
//! left, retrying with back-off while the broker refuses. An entry is
//! deleted only after the broker confirmed, and only if no newer change
//! replaced it meanwhile. Two appliers never call the broker for the same
//! device at once: one claims the entry with a short lease first.
//!
//! # Ordering: a device never reads an assignment naming a group it may not read yet
//! Publishing signs assignments, stores them, enqueues an entry for every
//! device whose assignment it signed, and then waits — bounded by
//! [`PUBLISH_WAIT`] — until those entries are applied before it delivers
//! the documents (`crate::publish`'s `follow_assignments`). A broker that
//! refuses ends the wait at its first refusal, as the direct grant did: the
//! documents go out all the same and the refusal is reported, while the
//! entry stays for the worker. Since the entry is applied from the store
//! as it is at that moment, the grant covers at least the groups of the
//! assignment that was signed before it.
//!
//! # Start
//! [`reconcile_broker_access`] applies the pending entries first (so
//! approvals' passwords reach the broker), then revokes what the broker
//! holds for devices no longer paired and grants every other paired device
//! its current groups.

use std::collections::BTreeSet;
use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use signet_common::ids::DeviceId;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{DEVICES, Device, broker_groups, device, new_nonce};
use crate::app::Hub;
use crate::store::{StoreError, Tx};

/// Tree of pending broker changes, keyed by device id.
pub const BROKER_OUTBOX: &str = "broker_outbox";
/// How long publishing waits for its devices' broker access before it
/// delivers their new assignments all the same.
pub const PUBLISH_WAIT: Duration = Duration::from_secs(15);
/// How long a claim on an entry holds: longer than a broker call may take.
const LEASE: Duration = Duration::from_secs(30);
/// The worker's first back-off after a refusal; it doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(500);
/// The worker's longest back-off.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How many devices [`reconcile_broker_access`] grants at once.
const RECONCILE_AT_ONCE: usize = 512;
/// How often the worker looks at the outbox when nothing woke it.
const IDLE: Duration = Duration::from_secs(60);

/// Wakes the workers: an entry was written.
static WAKE: Notify = Notify::const_new();
/// Wakes those waiting for an entry: an application finished.
static SETTLED: Notify = Notify::const_new();
/// This process's id in leases: a lease of another process (one that
/// stopped) holds nothing.
static INSTANCE: LazyLock<String> = LazyLock::new(new_nonce);

/// A pending broker change for one device: make the broker's access for it
/// match the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// The device.
    pub device: DeviceId,
    /// Changes with every write: an applier deletes the entry only if it
    /// is still the one it applied.
    pub nonce: String,
    /// The plain secret to set as its broker password (approval only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// The groups of the assignment that was signed for it, when a
    /// publication wrote the entry: what a device known only by its node
    /// entry (no device record) is granted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
    /// When the change was written.
    pub queued_at: DateTime<Utc>,
    /// Failed applications since then.
    #[serde(default)]
    pub attempts: u32,
    /// The broker's last refusal since then.
    #[serde(default)]
    pub last_error: Option<String>,
    /// Who is applying it now.
    #[serde(default)]
    pub lease: Option<Lease>,
}

/// A claim on an entry while its change is sent to the broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The claiming process.
    pub instance: String,
    /// The claiming application.
    pub token: String,
    /// Until when it holds (milliseconds since the Unix epoch, system clock).
    pub until_ms: i64,
}

impl Lease {
    fn live(&self, now_ms: i64) -> bool {
        self.instance == *INSTANCE && now_ms < self.until_ms
    }
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// Records, in `tx`, that `device`'s broker access must follow the state
/// `tx` writes; `password` (the approval's secret) is kept with the entry
/// until applied, also when a later change replaces it. Call [`wake`] (or
/// [`settle`]) after the commit.
///
/// # Errors
/// When the store fails.
pub fn enqueue_in(
    tx: &mut Tx,
    device: &DeviceId,
    password: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    write_entry(tx, device, password, None, now)
}

/// As [`enqueue_in`], for a publication that signed `device` an assignment
/// naming `groups`.
///
/// # Errors
/// When the store fails.
pub fn enqueue_assignment_in(
    tx: &mut Tx,
    device: &DeviceId,
    groups: &[String],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    write_entry(tx, device, None, Some(groups.to_vec()), now)
}

fn write_entry(
    tx: &mut Tx,
    device: &DeviceId,
    password: Option<&str>,
    groups: Option<Vec<String>>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let previous: Option<OutboxEntry> = tx.get(BROKER_OUTBOX, device.as_str())?;
    let entry = OutboxEntry {
        device: device.clone(),
        nonce: new_nonce(),
        password: password
            .map(str::to_owned)
            .or_else(|| previous.as_ref().and_then(|p| p.password.clone())),
        groups,
        queued_at: now,
        attempts: 0,
        last_error: None,
        lease: previous.and_then(|p| p.lease),
    };
    tx.put(BROKER_OUTBOX, device.as_str(), &entry)
}

/// Wakes the outbox workers (after a commit that wrote entries).
pub fn wake() {
    WAKE.notify_waiters();
}

/// What one application of an entry came to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Applied {
    /// No entry left (applied now or by someone else).
    Done,
    /// The broker refused: why.
    Failed(String),
    /// Someone else is applying it now.
    Busy,
}

/// Claims `device`'s entry, sends its change to the broker and deletes it
/// once confirmed. With `respect_failure`, an entry whose last
/// application failed is left to the worker's back-off.
async fn apply_one(
    hub: &Hub,
    device_id: &DeviceId,
    respect_failure: bool,
) -> Result<Applied, StoreError> {
    let token = new_nonce();
    let claimed_at = now_ms();
    let claimed = hub
        .store
        .transact(|tx| {
            let Some(mut entry) = tx.get::<OutboxEntry>(BROKER_OUTBOX, device_id.as_str())? else {
                return Ok(Err(Applied::Done));
            };
            if entry.lease.as_ref().is_some_and(|l| l.live(claimed_at)) {
                return Ok(Err(Applied::Busy));
            }
            if respect_failure && let Some(error) = &entry.last_error {
                return Ok(Err(Applied::Failed(error.clone())));
            }
            entry.lease = Some(Lease {
                instance: INSTANCE.clone(),
                token: token.clone(),
                until_ms: claimed_at.saturating_add(LEASE.as_millis() as i64),
            });
            tx.put(BROKER_OUTBOX, device_id.as_str(), &entry)?;
            Ok::<_, StoreError>(Ok(entry))
        })
        .await?;
    let entry = match claimed {
        Ok(entry) => entry,
        Err(outcome) => return Ok(outcome),
    };
    let error = grant_entry(hub, &entry, &Attached::default()).await?;
    hub.store
        .transact(|tx| finish(tx, &entry, &token, error.as_deref()))
        .await?;
    SETTLED.notify_waiters();
    Ok(match error {
        Some(error) => {
            tracing::warn!(device = %device_id, %error, "broker access not updated; the outbox retries");
            Applied::Failed(error)
        }
        None => Applied::Done,
    })
}

/// Ends an application of `applied` under the claim `token`: deletes the
/// entry when the broker confirmed it and no newer change replaced it;
/// else releases the claim and, with `error`, records the refusal.
fn finish(
    tx: &mut Tx,
    applied: &OutboxEntry,
    token: &str,
    error: Option<&str>,
) -> Result<(), StoreError> {
    let Some(mut current) = tx.get::<OutboxEntry>(BROKER_OUTBOX, applied.device.as_str())? else {
        return Ok(());
    };
    if current.nonce == applied.nonce && error.is_none() {
        tx.delete(BROKER_OUTBOX, applied.device.as_str());
        return Ok(());
    }
    if current.lease.as_ref().is_some_and(|l| l.token == token) {
        current.lease = None;
    }
    if let Some(error) = error {
        current.attempts = current.attempts.saturating_add(1);
        current.last_error = Some(error.to_owned());
    }
    tx.put(BROKER_OUTBOX, applied.device.as_str(), &current)
}

/// The devices with a [`crate::tenancy::NODE_DEVICES`] entry, for the
/// grants of devices publishing knows of without a device record: read
/// once per batch of grants, when the first such device asks (a scan of
/// every attachment, so a batch of 10,000 such grants costs one scan, not
/// 10,000; issue 20).
#[derive(Debug, Default)]
struct Attached(std::sync::OnceLock<std::collections::BTreeSet<DeviceId>>);

impl Attached {
    /// Whether `device` has a [`crate::tenancy::NODE_DEVICES`] entry.
    fn holds(&self, hub: &Hub, device: &DeviceId) -> Result<bool, StoreError> {
        if let Some(devices) = self.0.get() {
            return Ok(devices.contains(device));
        }
        let read = crate::tenancy::attached_devices(&hub.store)?;
        let devices = self
            .0
            .get_or_init(|| read.into_iter().map(|(d, _)| d).collect());
        Ok(devices.contains(device))
    }
}

/// Applies the entries of `devices` now (after the commit that wrote
/// them), waiting for another applier that holds one, at most `bound` in
/// all. Returns the refusals as `device: reason`; after the first one the
/// rest are left to the worker (an unreachable broker would otherwise cost
/// one timeout per device) and reported as skipped. Never fails: what is
/// not applied stays in the outbox. Many entries are claimed in one
/// transaction and finished in one ([`settle_batch`]), so a publication
/// that re-grants 10,000 devices costs two commits, not 20,000.
pub async fn settle(hub: &Hub, devices: &[DeviceId], bound: Duration) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + bound;
    let (mut refused, busy) = if devices.len() > 1 {
        match settle_batch(hub, devices, deadline).await {
            Ok(outcome) => outcome,
            Err(error) => (vec![format!("broker outbox: {error}")], Vec::new()),
        }
    } else {
        (Vec::new(), devices.to_vec())
    };
    for device in &busy {
        if !refused.is_empty() {
            refused.push(format!("{device}: skipped after an earlier broker failure"));
            continue;
        }
        if let Some(error) = settle_one(hub, device, deadline, bound).await {
            refused.push(error);
        }
    }
    if !refused.is_empty() {
        wake();
    }
    refused
}

/// Applies `device`'s entry, waiting while another applier holds it, until
/// `deadline`; the refusal as `device: reason`, if any.
async fn settle_one(
    hub: &Hub,
    device: &DeviceId,
    deadline: tokio::time::Instant,
    bound: Duration,
) -> Option<String> {
    loop {
        let settled = SETTLED.notified();
        tokio::pin!(settled);
        settled.as_mut().enable();
        match apply_one(hub, device, true).await {
            Ok(Applied::Done) => return None,
            Ok(Applied::Failed(error)) => return Some(format!("{device}: {error}")),
            Err(error) => return Some(format!("{device}: {error}")),
            Ok(Applied::Busy) => {}
        }
        let poll = tokio::time::sleep(Duration::from_millis(100));
        tokio::select! {
            () = settled => {}
            () = poll => {}
            () = tokio::time::sleep_until(deadline) => {
                return Some(format!("{device}: broker access not confirmed within {bound:?}"));
            }
        }
    }
}

/// Claims every free entry of `devices` in one transaction, sends every
/// change to the broker at once (none when one of them holds a refusal
/// already, or past `deadline`), and finishes them all in one transaction: confirmed ones are deleted
/// unless a newer change replaced them, refused and skipped ones released.
/// Returns the refusals (`device: reason`) and the devices whose entries
/// another applier holds.
async fn settle_batch(
    hub: &Hub,
    devices: &[DeviceId],
    deadline: tokio::time::Instant,
) -> Result<(Vec<String>, Vec<DeviceId>), StoreError> {
    let token = new_nonce();
    let claimed_at = now_ms();
    let (claimed, busy, mut refused) = hub
        .store
        .transact(|tx| {
            let (mut claimed, mut busy, mut refused) = (Vec::new(), Vec::new(), Vec::new());
            for device in devices {
                let Some(mut entry) = tx.get::<OutboxEntry>(BROKER_OUTBOX, device.as_str())? else {
                    continue;
                };
                if entry.lease.as_ref().is_some_and(|l| l.live(claimed_at)) {
                    busy.push(device.clone());
                    continue;
                }
                if let Some(error) = &entry.last_error {
                    refused.push(format!("{device}: {error}"));
                    continue;
                }
                entry.lease = Some(Lease {
                    instance: INSTANCE.clone(),
                    token: token.clone(),
                    until_ms: claimed_at.saturating_add(LEASE.as_millis() as i64),
                });
                tx.put(BROKER_OUTBOX, device.as_str(), &entry)?;
                claimed.push(entry);
            }
            Ok::<_, StoreError>((claimed, busy, refused))
        })
        .await?;
    // Every claimed change at once: the broker admin sends concurrent
    // grants together (`mqtt::dynsec`), so a run that re-grants 1,000
    // devices costs a few control messages, not 1,000 round trips; and a
    // broker that does not answer costs one timeout, not one per device.
    let (send, skip): (Vec<OutboxEntry>, Vec<OutboxEntry>) =
        if !refused.is_empty() || tokio::time::Instant::now() >= deadline {
            (Vec::new(), claimed)
        } else {
            (claimed, Vec::new())
        };
    let errors = grant_until(hub, &send, deadline).await;
    let mut outcomes: Vec<(OutboxEntry, Option<String>, bool)> =
        Vec::with_capacity(send.len() + skip.len());
    let mut late = Vec::new();
    for (entry, error) in send.into_iter().zip(errors) {
        let Some(error) = error else {
            late.push(entry);
            continue;
        };
        let error = error?;
        if let Some(error) = &error {
            tracing::warn!(device = %entry.device, %error, "broker access not updated; the outbox retries");
            refused.push(format!("{}: {error}", entry.device));
        }
        outcomes.push((entry, error, true));
    }
    for entry in late {
        refused.push(format!(
            "{}: broker access not confirmed in time",
            entry.device
        ));
        outcomes.push((entry, None, false));
    }
    let why = if refused.is_empty() {
        "broker access not confirmed in time"
    } else {
        "skipped after an earlier broker failure"
    };
    for entry in skip {
        refused.push(format!("{}: {why}", entry.device));
        outcomes.push((entry, None, false));
    }
    hub.store
        .transact(|tx| {
            for (entry, error, sent) in &outcomes {
                if *sent {
                    finish(tx, entry, &token, error.as_deref())?;
                } else {
                    release(tx, entry, &token)?;
                }
            }
            Ok::<_, StoreError>(())
        })
        .await?;
    SETTLED.notify_waiters();
    Ok((refused, busy))
}

/// Sends the changes of `entries` to the broker at once and collects
/// each outcome (`grant_entry`'s) until `deadline`; `None` for those not
/// answered by then (their entries stay for the worker).
async fn grant_until(
    hub: &Hub,
    entries: &[OutboxEntry],
    deadline: tokio::time::Instant,
) -> Vec<Option<Result<Option<String>, StoreError>>> {
    use futures_util::StreamExt as _;
    let attached = &Attached::default();
    let mut running: futures_util::stream::FuturesUnordered<_> = entries
        .iter()
        .enumerate()
        .map(|(index, entry)| async move { (index, grant_entry(hub, entry, attached).await) })
        .collect();
    let mut outcomes: Vec<Option<Result<Option<String>, StoreError>>> =
        std::iter::repeat_with(|| None)
            .take(entries.len())
            .collect();
    while let Ok(Some((index, outcome))) = tokio::time::timeout_at(deadline, running.next()).await {
        if let Some(slot) = outcomes.get_mut(index) {
            *slot = Some(outcome);
        }
    }
    outcomes
}

/// Sends `entry`'s change to the broker: its device's current groups (or
/// a revocation when it is no longer paired); the broker's refusal, if any.
async fn grant_entry(
    hub: &Hub,
    entry: &OutboxEntry,
    attached: &Attached,
) -> Result<Option<String>, StoreError> {
    let device_id = &entry.device;
    let groups = match device(&hub.store, device_id.as_str())? {
        Some(record) => Some(broker_groups(&hub.store, &record)?),
        None => match &entry.groups {
            Some(groups) if attached.holds(hub, device_id)? => Some(groups.clone()),
            _ => None,
        },
    };
    let result = match groups {
        Some(groups) => {
            hub.broker_admin
                .grant(device_id, entry.password.as_deref(), &groups)
                .await
        }
        None => hub.broker_admin.revoke(device_id).await,
    };
    Ok(result.err().map(|e| e.to_string()))
}

/// Releases the claim `token` on `applied`'s entry without applying it.
fn release(tx: &mut Tx, applied: &OutboxEntry, token: &str) -> Result<(), StoreError> {
    let Some(mut current) = tx.get::<OutboxEntry>(BROKER_OUTBOX, applied.device.as_str())? else {
        return Ok(());
    };
    if current.lease.as_ref().is_some_and(|l| l.token == token) {
        current.lease = None;
        tx.put(BROKER_OUTBOX, applied.device.as_str(), &current)?;
    }
    Ok(())
}

/// One pass over the outbox: applies every entry not claimed by another
/// applier, stopping at the first refusal. Returns how many entries are
/// left (refused, skipped or claimed).
///
/// # Errors
/// When the store fails.
pub async fn drain(hub: &Hub) -> Result<usize, StoreError> {
    let pending = hub.store.scan_keys(BROKER_OUTBOX, "")?;
    let mut left = 0;
    let mut refused = false;
    for key in pending {
        if refused {
            left += usize::from(hub.store.get::<OutboxEntry>(BROKER_OUTBOX, &key)?.is_some());
            continue;
        }
        match apply_one(hub, &DeviceId::from(key.as_str()), false).await? {
            Applied::Done => {}
            Applied::Busy => left += 1,
            Applied::Failed(_) => {
                left += 1;
                refused = true;
            }
        }
    }
    Ok(left)
}

/// Starts the worker that applies what [`settle`] left: woken by [`wake`],
/// and every minute regardless; after a refusal it tries again after a
/// back-off that doubles from half a second up to 30 seconds. Stops with
/// `cancel`.
pub fn spawn_worker(hub: Hub, cancel: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = MIN_BACKOFF;
        loop {
            let woken = WAKE.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let left = drain(&hub).await.unwrap_or_else(|error| {
                tracing::warn!(%error, "broker outbox not read");
                1
            });
            let wait = if left == 0 {
                backoff = MIN_BACKOFF;
                IDLE
            } else {
                let wait = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                wait
            };
            tokio::select! {
                () = cancel.cancelled() => return,
                () = woken => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    })
}

/// Asks the broker to forget deleted `group`'s shared role (S7), once the
/// devices that followed it were granted without it. A failure is logged:
/// the role grants only a deleted group's manifest topic, which the hub no
/// longer publishes.
pub async fn retire_group(hub: &Hub, group: &str) {
    if let Err(e) = hub.broker_admin.retire_group(group).await {
        tracing::warn!(group, error = %e, "a deleted group's broker role not removed");
    }
}

/// Makes the broker match the store, for the hub's start or after the
/// broker lost or missed changes (S7, S10): applies the pending outbox
/// entries, revokes every device the broker holds a grant for that is no
/// longer paired, grants every other paired device its current groups
/// (passwords unchanged) and retires the roles of groups that no longer
/// exist. Returns how many changes failed or are left.
///
/// # Errors
/// When the store fails.
pub async fn reconcile_broker_access(hub: &Hub) -> Result<usize, StoreError> {
    // Devices with an entry get their access from it (now, or from the
    // worker when the broker refuses it): not granted twice here.
    let pending: BTreeSet<String> = hub
        .store
        .scan_keys(BROKER_OUTBOX, "")?
        .into_iter()
        .collect();
    let mut failed = drain(hub).await?;
    let devices: Vec<Device> = hub.store.scan(DEVICES, "")?;
    match hub.broker_admin.granted().await {
        Ok(granted) => {
            for stale in granted {
                if pending.contains(stale.as_str()) || devices.iter().any(|d| d.id == stale) {
                    continue;
                }
                tracing::info!(device = %stale, "revoking the broker access of a device no longer paired");
                if let Err(e) = hub.broker_admin.revoke(&stale).await {
                    tracing::warn!(device = %stale, error = %e, "stale broker access not revoked");
                    failed += 1;
                }
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "the broker's grants not listed");
            failed += 1;
        }
    }
    let wanted = devices
        .iter()
        .filter(|d| !pending.contains(d.id.as_str()))
        .map(|d| Ok((d.id.clone(), broker_groups(&hub.store, d)?)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    // Many at once: the broker admin sends concurrent grants together.
    for chunk in wanted.chunks(RECONCILE_AT_ONCE) {
        let outcomes = futures_util::future::join_all(
            chunk
                .iter()
                .map(|(device, groups)| hub.broker_admin.grant(device, None, groups)),
        )
        .await;
        for ((device, _), outcome) in chunk.iter().zip(outcomes) {
            if let Err(e) = outcome {
                tracing::warn!(device = %device, error = %e, "broker access not reconciled");
                failed += 1;
            }
        }
    }
    failed += retire_stale_roles(hub).await?;
    Ok(failed)
}

/// Retires the broker roles of groups that no longer exist (S7): a hub
/// stopped between a group's delete and its role's retirement, or a broker
/// that refused it, leaves one. Returns how many failed.
async fn retire_stale_roles(hub: &Hub) -> Result<usize, StoreError> {
    let held = match hub.broker_admin.group_roles().await {
        Ok(held) => held,
        Err(e) => {
            tracing::warn!(error = %e, "the broker's group roles not listed");
            return Ok(1);
        }
    };
    let mut failed = 0;
    for group in held {
        if crate::schedules::group_exists(&hub.store, &group)? {
            continue;
        }
        tracing::info!(%group, "retiring the broker role of a group that no longer exists");
        if let Err(e) = hub.broker_admin.retire_group(&group).await {
            tracing::warn!(%group, error = %e, "a stale group role not retired");
            failed += 1;
        }
    }
    Ok(failed)
}

#[cfg(test)]
mod tests;
