//! The fleet view kept in memory (U4, issue 20): the fleet list and its
//! totals answered without reading every device.
//!
//! Owns: [`FleetIndex`] — per attached device its [`DeviceFacts`] (what
//! its view rests on, read from the store), its totals, the totals per
//! node, the heartbeat deadlines of the devices counted online and the
//! licence window edges at which a device's facts must be read again.
//! Must not: decide anything about a device's view ([`DeviceFacts::view`]
//! does, exactly as [`super::device_view`]), or who sees what
//! ([`super::service::Viewer`] does).
//!
//! # Kept exact
//! The index is the hub's [`CommitObserver`]: every committed batch,
//! whoever wrote it, names what changed — a device's state or record, an
//! attachment (`{node}/{device}`), a signed assignment, a group's signed
//! manifest (the devices whose assignment names the group) — and those
//! devices are read again before the next answer. A membership names its
//! member: a device's (a first play under a license writes one, L2) is
//! read again, a user's touches no device. A written node costs one look
//! at the tenancy tree: the devices at a node whose country changed (the
//! one thing of the tree their licence refusals rest on) are read again,
//! a rename or a new time zone reads none. An access group's record
//! (its licence) or items written read again its device members (a scan
//! of the group's member keys), no other device. Heartbeats,
//! proof-of-play and operator edits therefore cost an answer the devices
//! they touched, never a build (X3, issue 20; [`FleetIndex::work`] counts
//! both).
//!
//! # Serialized rows
//! Each row holds its view serialized, made when the row is (re)inserted:
//! a page ([`FleetIndex::list_json`]) is those bytes joined into the JSON
//! array `serde_json` would write for the list, so an answer costs the
//! rows that changed since the last, not serializing the page (issue 20:
//! serializing `FleetDevice`s was over half the hub's time under the
//! simulator). The view moves with the clock only at the instants below,
//! and each inserts the row again, so held bytes are never stale.
//! Time is the one input without a write: a device counted online turns
//! offline when its deadline (`last_heartbeat + heartbeat_timeout`,
//! [`super::DeviceStatus::connection_at`]) passes, and a device whose
//! licence window starts or ends is read again at that instant; both come
//! from time-ordered sets, so an answer costs the devices whose state
//! changed, never a scan. A clock that went back recomputes every device's
//! connection from memory, and reads again the devices whose licence
//! facts were read after a window edge the clock is now before.
//!
//! # Replicas
//! On PostgreSQL other replicas commit too (X5): the store's change feed
//! (`store::pg_feed`) tells this hub's [`crate::app::store_watch`] of
//! every commit, whoever made it, and its own commits are told as they
//! return. While the feed is down every read rebuilds (exact, and slow);
//! when it listens again everything may have changed, and the next read
//! rebuilds once.
//!
//! # Restart
//! Nothing is persisted: the first read after the hub starts builds the
//! index from the store (one scan), having installed the observer first,
//! so no commit is missed.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, TimeDelta, Utc};
use signet_common::envelope::DocumentKind;
use signet_common::ids::{DeviceId, NodeId};
use signet_common::permissions::NodeTree;

use super::{DeviceFacts, FleetCounts, FleetDevice, Liveness, attached_devices};
use crate::access_groups::MEMBERS;
use crate::app::Hub;
use crate::app::store_watch::CommitObserver;
use crate::store::{Store, StoreError, Write};
use crate::tenancy::{NODE_DEVICES, Node};

#[path = "index_changes.rs"]
mod changes;
use changes::{Changes, membership_device};

/// One attached device, as the index holds it.
#[derive(Debug, Clone)]
struct Row {
    /// What its view rests on.
    facts: DeviceFacts,
    /// Its totals as of the index's time (one device's [`FleetCounts`]).
    counted: FleetCounts,
    /// Whether it is counted online.
    online: bool,
    /// When it turns offline, while counted online.
    deadline: Option<DateTime<Utc>>,
    /// When its licence refusals may change: the window edges next to the
    /// time its facts were read.
    licence: Edges,
    /// Its view serialized (`FleetDevice` JSON), as of the index's time:
    /// the view changes with the clock only when the row turns offline at
    /// its deadline (or the clock goes back), and both insert the row
    /// again, so these bytes are the view's until the row is replaced.
    json: Box<[u8]>,
}

/// The licence window edges of a device's memberships next to the time
/// its facts were read: its refusals are the same at any time in
/// `[passed, next)` (L2, [`signet_common::license::check_access`]).
#[derive(Debug, Clone, Copy, Default)]
struct Edges {
    /// The first edge after that time: read again then.
    next: Option<DateTime<Utc>>,
    /// The last edge at or before it: read again should the clock go
    /// back before it.
    passed: Option<DateTime<Utc>>,
}

/// Key of a row: the device, then the node it is attached at (as
/// [`attached_devices`] lists them).
type Key = (DeviceId, NodeId);

/// The index proper, once built.
#[derive(Debug)]
struct Rows {
    /// Every attached device.
    rows: BTreeMap<Key, Row>,
    /// The totals per node.
    by_node: HashMap<NodeId, FleetCounts>,
    /// Deadlines of the rows counted online, in time order.
    deadlines: BTreeSet<(DateTime<Utc>, Key)>,
    /// Licence window edges, in time order.
    licence_edges: BTreeSet<(DateTime<Utc>, Key)>,
    /// Devices whose signed assignment names each group (a superset:
    /// stale entries only cost a read).
    group_devices: HashMap<String, HashSet<DeviceId>>,
    /// The country each node holding rows had when its rows were read
    /// (the one thing of the tenancy tree a device's facts rest on).
    countries: HashMap<NodeId, Option<String>>,
    /// The tenancy tree, loaded at most once per refresh, before any fact
    /// it gives a country to is read.
    tree: Option<(NodeTree, Vec<Node>)>,
    /// Rows read from the store since built.
    reads: u64,
    /// Rows given a new state or manifest alone since built.
    patched: u64,
    /// The time the rows' connection is judged at.
    as_of: DateTime<Utc>,
    /// The heartbeat timeout.
    timeout: TimeDelta,
}

/// The fleet view in memory (see the module doc). One per hub, installed
/// as its commit observer by [`FleetIndex::of`].
#[derive(Debug, Default)]
pub struct FleetIndex {
    /// What changed since the last read.
    changes: Mutex<Changes>,
    /// The rows; `None` until the first read builds them.
    rows: Mutex<Option<Rows>>,
    /// Not the hub's observer (never expected): every read rebuilds.
    unobserved: bool,
    /// Times the rows were built from the store.
    builds: AtomicU64,
    /// Device rows read from the store, builds included.
    device_reads: AtomicU64,
    /// Rows given a new state or manifest alone.
    patched: AtomicU64,
}

/// What answering has cost the index so far ([`FleetIndex::work`]): an
/// answer after some reports costs the devices they changed, not a build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IndexWork {
    /// Times the index was built from every attached device.
    pub builds: u64,
    /// Device rows read from the store, builds included.
    pub device_reads: u64,
    /// Rows given a new state or manifest alone, their other facts kept.
    pub patched: u64,
}

impl CommitObserver for FleetIndex {
    fn committed(&self, writes: &[Write]) {
        let mut changes = lock(&self.changes);
        for write in writes {
            changes.note(write);
        }
    }

    fn everything_changed(&self) {
        lock(&self.changes).everything = true;
    }

    fn as_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }
}

/// Locks the changes, taking over a poisoned lock (a set of keys is
/// never half written in a way that matters: at worst a device is read
/// again).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Locks the rows; a lock poisoned by a panic mid-update drops them, so
/// the next read rebuilds rather than answer from half-updated totals.
fn lock_rows(mutex: &Mutex<Option<Rows>>) -> MutexGuard<'_, Option<Rows>> {
    mutex.lock().unwrap_or_else(|poisoned| {
        let mut guard = poisoned.into_inner();
        *guard = None;
        guard
    })
}

/// The fleet view of one page: what [`FleetIndex::list`] selects.
#[derive(Debug, Clone, Copy, Default)]
pub struct Page<'a> {
    /// Only devices whose id sorts after this.
    pub after: Option<&'a str>,
    /// Only online (true) or not online (false) devices.
    pub online: Option<bool>,
    /// Only devices in sync (true) or not.
    pub in_sync: Option<bool>,
    /// At most this many.
    pub limit: usize,
}

impl FleetIndex {
    /// The index of `hub`, installed as its commit observer on first use.
    #[must_use]
    pub fn of(hub: &Hub) -> Arc<Self> {
        if !hub.store_watch.is_wired() {
            // A hub assembled around a bare storage: no commit is heard,
            // so every read rebuilds (exact, and slow).
            return Arc::new(Self {
                unobserved: true,
                ..Self::default()
            });
        }
        let observer = hub
            .store_watch
            .observer_or_install(|| Arc::new(Self::default()));
        // Only the fleet installs an observer; should anything else have,
        // an index that hears of no commit rebuilds on every read.
        let index = observer.as_any().downcast::<Self>().unwrap_or_else(|_| {
            Arc::new(Self {
                unobserved: true,
                ..Self::default()
            })
        });
        if !hub.store_watch.hears_all() {
            // The store's change feed is down: other replicas' commits may
            // go unheard, so this read builds from the store.
            index.everything_changed();
        }
        index
    }

    /// What answering has cost so far (for tests and benchmarks).
    #[must_use]
    pub fn work(&self) -> IndexWork {
        IndexWork {
            builds: self.builds.load(Ordering::Relaxed),
            device_reads: self.device_reads.load(Ordering::Relaxed),
            patched: self.patched.load(Ordering::Relaxed),
        }
    }

    /// The totals of the attached devices at the nodes `holds` covers, as
    /// of `liveness`.
    ///
    /// # Errors
    /// When the store fails.
    pub fn summary(
        &self,
        store: &Store,
        holds: impl Fn(&NodeId) -> bool,
        liveness: Liveness,
    ) -> Result<FleetCounts, StoreError> {
        let mut guard = lock_rows(&self.rows);
        let rows = self.refresh(&mut guard, store, liveness)?;
        let mut counts = FleetCounts::default();
        for (node, one) in &rows.by_node {
            if holds(node) {
                counts.merge(one);
            }
        }
        Ok(counts)
    }

    /// The views of the attached devices at the nodes `holds` covers that
    /// `page` selects, by device id, as of `liveness`.
    ///
    /// # Errors
    /// When the store fails.
    pub fn list(
        &self,
        store: &Store,
        holds: impl Fn(&NodeId) -> bool,
        page: Page<'_>,
        liveness: Liveness,
    ) -> Result<Vec<FleetDevice>, StoreError> {
        let mut guard = lock_rows(&self.rows);
        let rows = self.refresh(&mut guard, store, liveness)?;
        Ok(rows
            .select(holds, page)
            .into_iter()
            .map(|((device, node), row)| row.facts.view(device, node, liveness))
            .collect())
    }

    /// [`FleetIndex::list`] as the JSON array of its views, exactly as
    /// `serde_json::to_vec` writes the list, built from each row's
    /// serialized view held since the row last changed (issue 20: the
    /// page of an unchanged fleet costs copying bytes, not serializing).
    ///
    /// # Errors
    /// When the store fails.
    pub fn list_json(
        &self,
        store: &Store,
        holds: impl Fn(&NodeId) -> bool,
        page: Page<'_>,
        liveness: Liveness,
    ) -> Result<Vec<u8>, StoreError> {
        let mut guard = lock_rows(&self.rows);
        let rows = self.refresh(&mut guard, store, liveness)?;
        let selected = rows.select(holds, page);
        let size: usize = selected.iter().map(|(_, row)| row.json.len() + 1).sum();
        let mut out = Vec::with_capacity(size + 2);
        out.push(b'[');
        for (n, (_, row)) in selected.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&row.json);
        }
        out.push(b']');
        Ok(out)
    }

    /// Brings the rows up to `liveness` and the commits so far: builds
    /// them on first use or after a change to many devices, reads again the
    /// devices that changed, and moves devices whose deadline or licence
    /// edge passed.
    fn refresh<'g>(
        &self,
        guard: &'g mut Option<Rows>,
        store: &Store,
        liveness: Liveness,
    ) -> Result<&'g Rows, StoreError> {
        let changes = std::mem::take(&mut *lock(&self.changes));
        let rebuild = changes.everything
            || self.unobserved
            || guard
                .as_ref()
                .is_none_or(|rows| rows.timeout != liveness.heartbeat_timeout);
        let patched_before = guard.as_ref().map_or(0, |rows| rows.patched);
        let reads_before = if rebuild {
            // Dropped first: a failed build leaves no half index behind.
            *guard = None;
            self.builds.fetch_add(1, Ordering::Relaxed);
            *guard = Some(Rows::build(store, liveness)?);
            0
        } else if let Some(rows) = guard.as_mut() {
            let before = rows.reads;
            if let Err(e) = rows.apply(store, &changes, liveness) {
                // The changes are lost with the rows: the next read rebuilds.
                *guard = None;
                return Err(e);
            }
            before
        } else {
            0
        };
        if let Some(rows) = guard.as_mut() {
            rows.tree = None;
            self.device_reads
                .fetch_add(rows.reads - reads_before, Ordering::Relaxed);
            let patched = rows.patched.saturating_sub(patched_before);
            self.patched.fetch_add(patched, Ordering::Relaxed);
        }
        match guard.as_ref() {
            Some(rows) => Ok(rows),
            None => Err(StoreError::Storage("the fleet index is not built".into())),
        }
    }
}

impl Rows {
    /// The rows at the nodes `holds` covers that `page` selects, by device
    /// id.
    fn select(&self, holds: impl Fn(&NodeId) -> bool, page: Page<'_>) -> Vec<(&Key, &Row)> {
        let start = match page.after {
            Some(after) => Bound::Included((DeviceId::from(after), NodeId::from(""))),
            None => Bound::Unbounded,
        };
        let mut held: HashMap<&NodeId, bool> = HashMap::new();
        let mut out = Vec::new();
        for (key, row) in self.rows.range((start, Bound::Unbounded)) {
            if out.len() >= page.limit {
                break;
            }
            let (device, node) = key;
            if page.after.is_some_and(|a| device.as_str() <= a)
                || !*held.entry(node).or_insert_with(|| holds(node))
                || page.online.is_some_and(|o| o != row.online)
                || page.in_sync.is_some_and(|s| s != row.facts.in_sync())
            {
                continue;
            }
            out.push((key, row));
        }
        out
    }

    /// Every attached device, read from the store at `liveness`.
    fn build(store: &Store, liveness: Liveness) -> Result<Self, StoreError> {
        let mut rows = Self {
            rows: BTreeMap::new(),
            by_node: HashMap::new(),
            deadlines: BTreeSet::new(),
            licence_edges: BTreeSet::new(),
            group_devices: HashMap::new(),
            countries: HashMap::new(),
            tree: None,
            reads: 0,
            patched: 0,
            as_of: liveness.now,
            timeout: liveness.heartbeat_timeout,
        };
        for key in attached_devices(store)? {
            rows.read(store, key, liveness)?;
        }
        Ok(rows)
    }

    /// Applies `changes`, then the clock.
    fn apply(
        &mut self,
        store: &Store,
        changes: &Changes,
        liveness: Liveness,
    ) -> Result<(), StoreError> {
        if liveness.now < self.as_of {
            self.clock_went_back(store, liveness)?;
        }
        self.as_of = liveness.now;
        if changes.nodes {
            self.nodes_changed(store, liveness)?;
        }
        for (device, node) in &changes.attachments {
            let key = crate::devices::node_device_key(node, device);
            let attached = store
                .get::<serde::de::IgnoredAny>(NODE_DEVICES, &key)?
                .is_some();
            let row = (device.clone(), node.clone());
            if attached {
                self.read(store, row, liveness)?;
            } else {
                self.remove(&row);
            }
        }
        let mut devices: HashSet<DeviceId> = changes.devices.clone();
        for group in &changes.access_groups {
            devices.extend(device_members(store, group)?);
        }
        for group in changes.items.difference(&changes.access_groups) {
            let denied = |d: &DeviceId| {
                self.keys_of(d).iter().any(|k| {
                    self.rows
                        .get(k)
                        .is_some_and(|r| r.facts.denied.contains(group))
                })
            };
            devices.extend(device_members(store, group)?.into_iter().filter(denied));
        }
        for device in &devices {
            self.read_device(store, device, liveness)?;
        }
        // A new state or group manifest changes one fact of the devices
        // not read again above: that record is read and the rest kept.
        let mut manifests = Vec::new();
        let mut patched: BTreeSet<&DeviceId> = changes.states.iter().collect();
        for group in &changes.groups {
            manifests.push((
                group,
                crate::publish::latest(store, DocumentKind::GroupManifest, group)?,
            ));
            patched.extend(self.group_devices.get(group).into_iter().flatten());
        }
        let keys: Vec<Key> = patched
            .into_iter()
            .filter(|device| !devices.contains(*device))
            .flat_map(|device| self.keys_of(device))
            .collect();
        for key in keys {
            let Some(row) = self.rows.get(&key) else {
                continue;
            };
            let (mut facts, licence) = (row.facts.clone(), row.licence);
            for (group, manifest) in &manifests {
                facts = facts.with_manifest(group, manifest.as_ref());
            }
            if changes.states.contains(&key.0) {
                facts = facts.with_status(super::status_of(store, &key.0)?);
            }
            self.patched += 1;
            self.remove(&key);
            self.insert(key, facts, licence, liveness)?;
        }
        while let Some((edge, _)) = self.licence_edges.first()
            && *edge <= liveness.now
        {
            if let Some((_, key)) = self.licence_edges.pop_first() {
                self.read(store, key, liveness)?;
            }
        }
        while let Some((deadline, _)) = self.deadlines.first()
            && *deadline < liveness.now
        {
            if let Some((_, key)) = self.deadlines.pop_first()
                && let Some(row) = self.rows.get(&key)
            {
                let (facts, edge) = (row.facts.clone(), row.licence);
                self.remove(&key);
                self.insert(key, facts, edge, liveness)?;
            }
        }
        Ok(())
    }

    /// The clock went back: every row's connection is judged again, and
    /// the rows whose licence refusals were read after a window edge the
    /// clock is now before are read again.
    fn clock_went_back(&mut self, store: &Store, liveness: Liveness) -> Result<(), StoreError> {
        let rows = std::mem::take(&mut self.rows);
        self.by_node.clear();
        self.deadlines.clear();
        self.licence_edges.clear();
        let mut crossed = Vec::new();
        for (key, row) in rows {
            if row.licence.passed.is_some_and(|at| liveness.now < at) {
                crossed.push(key.clone());
            }
            self.insert(key, row.facts, row.licence, liveness)?;
        }
        for key in crossed {
            self.read(store, key, liveness)?;
        }
        Ok(())
    }

    /// A node was written: reads again the rows at each node whose country
    /// is not the one they were read with (a rename, a time zone, a new or
    /// removed node cost one look at the tree).
    fn nodes_changed(&mut self, store: &Store, liveness: Liveness) -> Result<(), StoreError> {
        let by_node = &self.by_node;
        self.countries.retain(|node, _| by_node.contains_key(node));
        let nodes: Vec<NodeId> = self.countries.keys().cloned().collect();
        let mut moved = HashSet::new();
        for node in nodes {
            let now = self.country(store, &node)?;
            if self.countries.get(&node) != Some(&now) {
                self.countries.insert(node.clone(), now);
                moved.insert(node);
            }
        }
        if moved.is_empty() {
            return Ok(());
        }
        let keys: Vec<Key> = self
            .rows
            .keys()
            .filter(|(_, node)| moved.contains(node))
            .cloned()
            .collect();
        for key in keys {
            self.read(store, key, liveness)?;
        }
        Ok(())
    }

    /// The country of `node` as the tree loaded for this refresh says.
    fn country(&mut self, store: &Store, node: &NodeId) -> Result<Option<String>, StoreError> {
        let (tree, nodes) = match &self.tree {
            Some(loaded) => loaded,
            None => self.tree.insert(crate::tenancy::load_tree(store)?),
        };
        Ok(crate::tenancy::locale_at(tree, nodes, node).country)
    }

    /// Reads every row of `device` again.
    fn read_device(
        &mut self,
        store: &Store,
        device: &DeviceId,
        liveness: Liveness,
    ) -> Result<(), StoreError> {
        for key in self.keys_of(device) {
            self.read(store, key, liveness)?;
        }
        Ok(())
    }

    /// The rows of `device`.
    fn keys_of(&self, device: &DeviceId) -> Vec<Key> {
        let from = (device.clone(), NodeId::from(""));
        let rows = self.rows.range(from..).map(|(key, _)| key);
        rows.take_while(|(d, _)| d == device).cloned().collect()
    }

    /// Reads the row `key` from the store, replacing what was held.
    fn read(&mut self, store: &Store, key: Key, liveness: Liveness) -> Result<(), StoreError> {
        if !self.by_node.contains_key(&key.1) || !self.countries.contains_key(&key.1) {
            // A node holding no rows was not watched: its country is read
            // now, before the facts, so a node written in between is seen
            // as a change by the next refresh, never missed.
            let country = self.country(store, &key.1)?;
            self.countries.insert(key.1.clone(), country);
        }
        self.reads += 1;
        let facts = DeviceFacts::read(store, &key.0, &key.1, liveness.now)?;
        let edge = licence_edges(store, &key.0, liveness.now)?;
        self.remove(&key);
        for group in &facts.groups {
            self.group_devices
                .entry(group.clone())
                .or_default()
                .insert(key.0.clone());
        }
        self.insert(key, facts, edge, liveness)
    }

    /// Holds `facts` as row `key` (`key` not held), judged at `liveness`,
    /// read again at its `licence` edges; its view serialized once, here.
    ///
    /// # Errors
    /// When the view does not serialize (nothing is held then).
    fn insert(
        &mut self,
        key: Key,
        facts: DeviceFacts,
        licence: Edges,
        liveness: Liveness,
    ) -> Result<(), StoreError> {
        let view = facts.view(&key.0, &key.1, liveness);
        let json = serde_json::to_vec(&view)
            .map_err(|e| StoreError::Storage(format!("a fleet view does not serialize: {e}")))?
            .into_boxed_slice();
        let counted = FleetCounts::of(&view);
        let deadline = facts
            .status
            .as_ref()
            .filter(|_| view.online)
            .and_then(|s| s.last_heartbeat)
            .and_then(|beat| beat.checked_add_signed(liveness.heartbeat_timeout));
        if let Some(deadline) = deadline {
            self.deadlines.insert((deadline, key.clone()));
        }
        self.by_node
            .entry(key.1.clone())
            .or_default()
            .merge(&counted);
        if let Some(edge) = licence.next {
            self.licence_edges.insert((edge, key.clone()));
        }
        self.rows.insert(
            key,
            Row {
                facts,
                counted,
                online: view.online,
                deadline,
                licence,
                json,
            },
        );
        Ok(())
    }

    /// Drops row `key` and what it counted.
    fn remove(&mut self, key: &Key) {
        let Some(row) = self.rows.remove(key) else {
            return;
        };
        if let Some(counts) = self.by_node.get_mut(&key.1) {
            counts.remove(&row.counted);
            if counts.attached == 0 {
                self.by_node.remove(&key.1);
            }
        }
        if let Some(deadline) = row.deadline {
            self.deadlines.remove(&(deadline, key.clone()));
        }
        if let Some(edge) = row.licence.next {
            self.licence_edges.remove(&(edge, key.clone()));
        }
    }
}

/// The devices that are members of access group `group` (current or not:
/// a member's refusals rest on its membership records), from the group's
/// `MEMBERS` keys.
fn device_members(store: &Store, group: &str) -> Result<Vec<DeviceId>, StoreError> {
    let keys = store.scan_keys(MEMBERS, &format!("{group}/"))?;
    Ok(keys
        .iter()
        .filter_map(|key| membership_device(MEMBERS, key).flatten())
        .collect())
}

/// The licence window edges of `device`'s access group memberships next
/// to `now`: the first after it and the last at or before it. Its licence
/// refusals can change only at an edge (L2,
/// [`signet_common::license::check_access`]).
fn licence_edges(
    store: &Store,
    device: &DeviceId,
    now: DateTime<Utc>,
) -> Result<Edges, StoreError> {
    let member = crate::access_groups::MemberRef::Device {
        device_id: device.clone(),
    };
    let mut edges = Edges::default();
    for (group, record) in crate::access_groups::memberships_of(store, &member)? {
        let window = signet_common::license::access_window(&group.license, &record.membership);
        for at in [Some(window.starts_at), window.ends_at]
            .into_iter()
            .flatten()
        {
            if at > now {
                edges.next = Some(edges.next.map_or(at, |e| e.min(at)));
            } else {
                edges.passed = Some(edges.passed.map_or(at, |e| e.max(at)));
            }
        }
    }
    Ok(edges)
}

#[cfg(test)]
#[path = "index_tests.rs"]
mod tests;
