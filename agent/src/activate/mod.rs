//! Bringing accepted manifests into play (D2, D3, D10, L3, L4).
//!
//! Owns: deciding which content the device needs, asking the cache for room
//! and the downloader for the bytes, and the atomic switch: a group's newest
//! accepted manifest becomes its *playing* manifest (`active/{group}` in the
//! state) in one durable write, and only once every item it needs is present
//! and verified; until then the previous one keeps playing. It also purges
//! content no held manifest lists (L3), reports progress for the device
//! state, and carries out the `purge_cache` command. May call:
//! [`crate::cache`], [`crate::state`] (the accepted documents through its
//! typed [`Documents`] view), `signet-common`'s rules. Must not:
//! accept documents (the sync verifier does) or decide what plays now (the
//! `decide` module does, for the player).
//!
//! *Needed* items of a manifest: its active (approved) items, and for an
//! access group only while this device's access window is open at trusted
//! time and its license allows the device's country (L2) — the hub serves content only to entitled devices, so content of a
//! window not yet open is fetched when it opens. Pending and inactive items
//! (A7) are never needed and never fetched.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use signet_common::approval::ApprovalState;
use signet_common::clock::TrustedClock;
use signet_common::digest::Sha256;
use signet_common::documents::{
    DecodeLimit, DeviceAssignment, GroupKind, GroupManifest, ManifestItem,
};
use signet_common::envelope::DocumentKind;
use signet_common::sync::{AppliedDocument, CacheProgress, PendingActivation};
use tokio::sync::{Notify, mpsc, watch};

use crate::cache::download::{Downloader, Wanted};
use crate::cache::{Cache, CacheFull};
use crate::clock::DeviceClock;
use crate::killpoint;
use crate::retry::Backoff;
use crate::state::{Commit, Documents, HeldManifest, StateError, Store, document_key};

/// The items of `manifest` the device needs at trusted time `now` (see the
/// module doc).
#[must_use]
pub fn needed_items<'a>(
    manifest: &'a GroupManifest,
    assignment: &DeviceAssignment,
    now: DateTime<Utc>,
) -> Vec<&'a ManifestItem> {
    if manifest.group_kind == GroupKind::AccessGroup {
        let open = assignment
            .access_groups
            .iter()
            .find(|m| m.group_id.as_str() == manifest.group_id)
            .is_some_and(|m| m.window.contains(now));
        // L2: nor content whose license refuses the device's country (the
        // hub would refuse it too); the player then says why it skips.
        let country = assignment.location.country.as_deref();
        let here = (manifest.license.as_ref()).is_some_and(|t| t.check_country(country).is_ok());
        if !(open && here) {
            return Vec::new();
        }
    }
    manifest
        .items
        .iter()
        .filter(|item| item.approval == ApprovalState::Active)
        .collect()
}

/// How long after a window's change the pass runs: the trusted clock the
/// pass reads and the timer the task sleeps on may drift apart by a little.
const WINDOW_MARGIN: Duration = Duration::from_millis(50);

/// What one pass decided, for tests and the log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pass {
    /// Groups switched to a new playing manifest, with its version.
    pub switched: Vec<(String, u64)>,
    /// Groups whose newest manifest waits for content.
    pub waiting: Vec<String>,
    /// Downloads that failed, with why.
    pub failures: Vec<(Sha256, String)>,
    /// The cache's refusal, if the needed content exceeds the limit.
    pub refusal: Option<String>,
    /// The next instant a member's access window opens or closes (L3):
    /// what the device needs changes then, so the next pass runs then.
    pub next_change: Option<DateTime<Utc>>,
}

/// What the content task reports for the device state (D3, D10, U4).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContentReport {
    /// Download progress towards everything needed, and the cache's refusal.
    pub cache: CacheProgress,
    /// The playing manifest of each group, keyed `group_manifest/{group}`.
    pub activated: BTreeMap<String, AppliedDocument>,
    /// Each group's newer accepted manifest that is not playing yet, with
    /// its own progress and the refusal that holds it back, if any.
    pub pending: BTreeMap<String, PendingActivation>,
}

/// The content one waiting manifest needs: its version and items.
#[derive(Debug, Clone)]
struct Waiting {
    /// Its group.
    group: String,
    /// Its version.
    version: u64,
    /// What it needs, by hash, with sizes.
    needs: BTreeMap<Sha256, u64>,
}

/// The content task's links to the rest of the agent.
#[derive(Debug)]
pub struct Links {
    /// Bumped by the verifier after every durable document change.
    pub documents: watch::Receiver<u64>,
    /// The trusted clock as the verifier holds it.
    pub clock: watch::Receiver<TrustedClock>,
    /// Bumped here after every switch or deactivation of a playing manifest.
    pub playing: watch::Sender<u64>,
    /// Progress, activation and refusal, for the device state.
    pub progress: watch::Sender<Option<ContentReport>>,
    /// Woken when the cache changed under us (a quarantined file) or the
    /// configuration changed.
    pub wake: Arc<Notify>,
    /// `purge_cache` commands from the verifier.
    pub purge: mpsc::Receiver<()>,
}

/// The content task.
pub struct Activator {
    /// The durable state.
    store: Store,
    /// This device's id.
    device: String,
    /// The content cache.
    cache: Cache,
    /// The downloader.
    downloader: Downloader,
    /// The device clocks, for trusted time.
    device_clock: DeviceClock,
    /// The pause between passes while downloads keep failing.
    retry: Backoff,
    /// What video this device decodes (M3): which rendition it fetches.
    decode: Option<DecodeLimit>,
}

impl Activator {
    /// A content task over `store`, `cache` and `downloader`.
    #[must_use]
    pub fn new(
        store: Store,
        device: String,
        cache: Cache,
        downloader: Downloader,
        retry: Backoff,
    ) -> Self {
        Self {
            store,
            device,
            cache,
            downloader,
            device_clock: DeviceClock::new(),
            retry,
            decode: None,
        }
    }

    /// Fetches the renditions that fit `decode` instead of originals (M3).
    #[must_use]
    pub fn with_decode(mut self, decode: Option<DecodeLimit>) -> Self {
        self.decode = decode;
        self
    }

    /// Runs passes until `shutdown`: at start, after every document change,
    /// on a wake, after a failed pass (with backoff), when a member's access
    /// window opens or closes ([`Pass::next_change`]) and every minute.
    pub async fn run(mut self, mut links: Links, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut failures = 0u32;
        loop {
            let now = links.clock.borrow().peek(&self.device_clock.read());
            let pass = self.pass(now, &links).await;
            let delay = if pass.failures.is_empty() && pass.waiting.is_empty() {
                failures = 0;
                Duration::from_secs(60)
            } else {
                failures = failures.saturating_add(1);
                self.retry.delay(failures).max(Duration::from_millis(200))
            };
            // A window that opens (or closes) before then is met on time.
            let delay = match pass.next_change.map(|at| (at - now).to_std()) {
                Some(Ok(until)) => delay.min(until + WINDOW_MARGIN),
                _ => delay,
            };
            tokio::select! {
                () = &mut shutdown => return,
                changed = links.documents.changed() => if changed.is_err() { return },
                () = links.wake.notified() => {}
                purge = links.purge.recv() => {
                    if purge.is_some() {
                        let now = links.clock.borrow().peek(&self.device_clock.read());
                        self.purge_command(now).await;
                    }
                }
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// One pass: deactivate groups that left the assignment, make room,
    /// download what is missing, switch what is complete, purge what no
    /// manifest lists.
    pub async fn pass(&mut self, now: DateTime<Utc>, links: &Links) -> Pass {
        let mut pass = Pass::default();
        let documents = match self.load().await {
            Ok(documents) => documents,
            Err(error) => {
                tracing::error!(%error, "cannot read the held documents");
                pass.failures.push((Sha256::of(b""), error.to_string()));
                return pass;
            }
        };
        let Some(assignment) = documents.assignment.clone() else {
            return pass;
        };
        pass.next_change = (assignment.access_groups.iter())
            .filter_map(|member| member.window.next_change_after(now))
            .min();
        let groups = documents.group_order();
        let stale: Vec<String> = documents
            .playing
            .keys()
            .filter(|g| !groups.contains(g))
            .cloned()
            .collect();
        if !stale.is_empty() {
            tracing::info!(?stale, "groups left the assignment: they stop playing");
            self.commit(Commit {
                remove_active: stale,
                ..Commit::default()
            })
            .await;
            links.playing.send_modify(|g| *g += 1);
        }

        // What the device needs: the playing manifests' content (a file may
        // have been quarantined) and the content of every newer manifest.
        // Three sets: what the playing manifests need (`current`), what the
        // device needs once every newer manifest plays (`target`), and
        // the union, held while a switch is prepared.
        let mut current: BTreeMap<Sha256, u64> = BTreeMap::new();
        let mut target: BTreeMap<Sha256, u64> = BTreeMap::new();
        let mut wanted: BTreeMap<Sha256, Wanted> = BTreeMap::new();
        let mut pending: Vec<&HeldManifest> = Vec::new();
        for group in &groups {
            let playing = documents.playing.get(group);
            let accepted = documents.accepted.get(group);
            let newer = accepted
                .filter(|a| playing.is_none_or(|p| a.manifest.version > p.manifest.version));
            if let Some(playing) = playing {
                for item in needed_items(&playing.manifest, &assignment, now) {
                    current.insert(item.sha256, item.size);
                }
            }
            if let Some(goal) = newer.or(playing) {
                for item in needed_items(&goal.manifest, &assignment, now) {
                    target.insert(item.sha256, item.size);
                }
            }
            for held in playing.into_iter().chain(newer) {
                for item in needed_items(&held.manifest, &assignment, now) {
                    wanted.entry(item.sha256).or_insert_with(|| Wanted {
                        sha256: item.sha256,
                        size: item.size,
                        url: item.url.clone(),
                    });
                }
            }
            if let Some(newer) = newer {
                pending.push(newer);
            }
        }
        let mut activated: BTreeMap<String, AppliedDocument> = documents
            .playing
            .iter()
            .filter(|(group, _)| groups.contains(group))
            .map(|(group, held)| (group.clone(), applied_of(held)))
            .collect();
        let mut waiting: Vec<Waiting> = pending
            .iter()
            .map(|held| Waiting {
                group: held.manifest.group_id.clone(),
                version: held.manifest.version,
                needs: needed_items(&held.manifest, &assignment, now)
                    .into_iter()
                    .map(|item| (item.sha256, item.size))
                    .collect(),
            })
            .collect();
        let mut needed = current.clone();
        needed.extend(target.iter().map(|(k, v)| (*k, *v)));

        // D10: room for old and new while switching; if both do not fit
        // but the new alone does, as much of what only the old needs as
        // fits beside it stays, smallest first, so the old playlist thins
        // out as little as it can until the switch (D3); if the new alone is
        // over the limit, it is refused and the old stays whole.
        if self.make_room(&needed, now).await.is_err() {
            let kept = keep_what_fits(&target, &current, self.cache.limit());
            match self.make_room(&kept, now).await {
                Ok(()) => {
                    tracing::warn!(
                        kept = kept.len() - target.len(),
                        dropped = needed.len() - kept.len(),
                        "old and new content together are over the cache limit: content only the playing manifests need makes way for the newest (D10)"
                    );
                    needed = kept;
                }
                Err(full) => {
                    let refusal = refusal_text(&full);
                    tracing::error!(%refusal, "the cache refuses the newest manifests; the playing ones stay (D10)");
                    pass.refusal = Some(refusal);
                    needed = current;
                    if let Err(full) = self.make_room(&needed, now).await {
                        tracing::error!(error = %refusal_text(&full), "even the playing content is over the cache limit");
                        needed.clear();
                    }
                }
            }
            wanted.retain(|sha, _| needed.contains_key(sha));
        }

        let missing: Vec<Wanted> = wanted
            .into_values()
            .filter(|w| !self.cache.contains(&w.sha256))
            .collect();
        if !missing.is_empty() {
            tracing::info!(count = missing.len(), "downloading missing content");
            let shown = Shown {
                needed: &needed,
                activated: &activated,
                waiting: &waiting,
                refusal: pass.refusal.as_deref(),
            };
            pass.failures = self.download(missing, &shown, links).await;
        }

        // The switch (D3): a newer manifest plays once all it needs is here.
        for held in pending {
            let group = held.manifest.group_id.clone();
            let complete = pass.refusal.is_none()
                && needed_items(&held.manifest, &assignment, now)
                    .iter()
                    .all(|item| self.cache.contains(&item.sha256));
            if !complete {
                pass.waiting.push(group);
                continue;
            }
            killpoint::reach("apply.before_switch");
            let written = self
                .commit(Commit {
                    put_active: vec![(group.clone(), held.envelope.clone())],
                    ..Commit::default()
                })
                .await;
            if written {
                killpoint::reach("apply.after_switch");
                tracing::info!(
                    %group,
                    version = held.manifest.version,
                    "now playing manifest version {} of group {group}",
                    held.manifest.version
                );
                activated.insert(group.clone(), applied_of(held));
                waiting.retain(|w| w.group != group);
                pass.switched.push((group, held.manifest.version));
            }
        }
        if !pass.switched.is_empty() {
            links.playing.send_modify(|g| *g += 1);
        }

        // L3: content no held manifest lists goes.
        if pass.refusal.is_none() {
            let listed: BTreeSet<Sha256> = groups
                .iter()
                .flat_map(|g| {
                    documents
                        .playing
                        .get(g)
                        .into_iter()
                        .chain(documents.accepted.get(g))
                })
                .flat_map(|h| h.manifest.items.iter().map(|i| i.sha256))
                .collect();
            let cache = self.cache.clone();
            match tokio::task::spawn_blocking(move || cache.purge_unneeded(&listed)).await {
                Ok(Ok(purged)) if !purged.is_empty() => {
                    tracing::info!(
                        count = purged.len(),
                        "purged content no manifest lists (L3)"
                    );
                }
                Ok(Ok(_)) => {}
                Ok(Err(error)) => tracing::error!(%error, "purging the cache failed"),
                Err(error) => tracing::error!(%error, "cache task failed"),
            }
        }
        let shown = Shown {
            needed: &needed,
            activated: &activated,
            waiting: &waiting,
            refusal: pass.refusal.as_deref(),
        };
        links
            .progress
            .send_replace(Some(self.report(&shown, &pass.waiting)));
        pass
    }

    /// Downloads `missing`, refreshing the progress every second.
    async fn download(
        &self,
        missing: Vec<Wanted>,
        shown: &Shown<'_>,
        links: &Links,
    ) -> Vec<(Sha256, String)> {
        let downloader = self.downloader.clone();
        let mut task = tokio::spawn(async move { downloader.fetch_all(missing).await });
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let waiting: Vec<String> = shown.waiting.iter().map(|w| w.group.clone()).collect();
        let results = loop {
            tokio::select! {
                done = &mut task => break done,
                _ = tick.tick() => {
                    links.progress.send_replace(Some(self.report(shown, &waiting)));
                }
            }
        };
        match results {
            Ok(results) => results
                .into_iter()
                .filter_map(|(sha, result)| result.err().map(|e| (sha, e.to_string())))
                .collect(),
            Err(error) => vec![(Sha256::of(b""), format!("download task: {error}"))],
        }
    }

    /// The report of where the content stands: overall progress, what
    /// plays, and each waiting manifest's own progress and refusal.
    fn report(&self, shown: &Shown<'_>, waiting_groups: &[String]) -> ContentReport {
        let overall = self.tally(shown.needed);
        let cache = CacheProgress {
            items_needed: overall.items_needed,
            items_cached: overall.items_cached,
            bytes_needed: overall.bytes_needed,
            bytes_cached: overall.bytes_cached,
            limit_bytes: self.cache.limit(),
            waiting_groups: waiting_groups.to_vec(),
            refusal: shown.refusal.map(str::to_owned),
        };
        let key = |group: &str| document_key(DocumentKind::GroupManifest, group);
        ContentReport {
            cache,
            activated: shown
                .activated
                .iter()
                .map(|(group, applied)| (key(group), applied.clone()))
                .collect(),
            pending: shown
                .waiting
                .iter()
                .map(|w| {
                    let tally = self.tally(&w.needs);
                    (
                        key(&w.group),
                        PendingActivation {
                            version: w.version,
                            refusal: shown.refusal.map(str::to_owned),
                            ..tally
                        },
                    )
                })
                .collect(),
        }
    }

    /// How much of `needed` the cache holds (verified files, plus partial
    /// downloads for the bytes).
    fn tally(&self, needed: &BTreeMap<Sha256, u64>) -> PendingActivation {
        let mut tally = PendingActivation {
            items_needed: needed.len() as u64,
            ..PendingActivation::default()
        };
        for (sha, size) in needed {
            tally.bytes_needed = tally.bytes_needed.saturating_add(*size);
            if self.cache.contains(sha) {
                tally.items_cached += 1;
                tally.bytes_cached = tally.bytes_cached.saturating_add(*size);
            } else {
                let partial = self.cache.partial_len(sha).min(*size);
                tally.bytes_cached = tally.bytes_cached.saturating_add(partial);
            }
        }
        tally
    }

    /// `purge_cache`: drop everything the playing and newest manifests do
    /// not need now; what they need is fetched again on the next pass.
    async fn purge_command(&mut self, now: DateTime<Utc>) {
        let documents = match self.load().await {
            Ok(documents) => documents,
            Err(error) => {
                tracing::error!(%error, "purge_cache: cannot read the held documents");
                return;
            }
        };
        let keep: BTreeSet<Sha256> = documents
            .assignment
            .as_ref()
            .map(|assignment| {
                documents
                    .playing
                    .values()
                    .chain(documents.accepted.values())
                    .flat_map(|h| needed_items(&h.manifest, assignment, now))
                    .map(|i| i.sha256)
                    .collect()
            })
            .unwrap_or_default();
        let cache = self.cache.clone();
        match tokio::task::spawn_blocking(move || cache.purge_unneeded(&keep)).await {
            Ok(Ok(purged)) => tracing::info!(count = purged.len(), "purge_cache: purged"),
            Ok(Err(error)) => tracing::error!(%error, "purge_cache failed"),
            Err(error) => tracing::error!(%error, "purge_cache task failed"),
        }
    }

    /// Asks the cache for room for `needed` (evicting what is not needed).
    async fn make_room(
        &self,
        needed: &BTreeMap<Sha256, u64>,
        now: DateTime<Utc>,
    ) -> Result<(), CacheFull> {
        let cache = self.cache.clone();
        let room_for = needed.clone();
        match tokio::task::spawn_blocking(move || cache.make_room(&room_for, now)).await {
            Ok(Ok(evicted)) => {
                if !evicted.is_empty() {
                    tracing::info!(
                        count = evicted.len(),
                        "evicted content no manifest needs now (D10)"
                    );
                }
                Ok(())
            }
            Ok(Err(full)) => Err(full),
            Err(error) => {
                tracing::error!(%error, "cache task failed");
                Ok(())
            }
        }
    }

    async fn load(&self) -> Result<Documents, StateError> {
        Documents::load_blocking(self.store.clone(), self.device.clone())
            .await
            .map(|documents| documents.for_device(self.decode.as_ref()))
    }

    /// Writes `commit` durably; false (logged) when it fails.
    async fn commit(&self, commit: Commit) -> bool {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.commit(&commit)).await {
            Ok(Ok(())) => true,
            Ok(Err(error)) => {
                tracing::error!(%error, "could not write the playing manifests");
                false
            }
            Err(error) => {
                tracing::error!(%error, "state task failed");
                false
            }
        }
    }
}

/// What one pass shows in its reports while it works.
struct Shown<'a> {
    /// Every needed item, by hash, with sizes.
    needed: &'a BTreeMap<Sha256, u64>,
    /// The playing manifest of each group.
    activated: &'a BTreeMap<String, AppliedDocument>,
    /// The manifests waiting for their content.
    waiting: &'a [Waiting],
    /// The cache's refusal of the newest manifests, if it refuses them.
    refusal: Option<&'a str>,
}

/// `target`, plus as many of the items only `current` needs as fit beside
/// it within `limit` bytes, smallest first (more items kept means more of
/// the old playlist keeps playing until the switch).
fn keep_what_fits(
    target: &BTreeMap<Sha256, u64>,
    current: &BTreeMap<Sha256, u64>,
    limit: u64,
) -> BTreeMap<Sha256, u64> {
    let mut kept = target.clone();
    let mut used = target.values().fold(0u64, |sum, s| sum.saturating_add(*s));
    let mut only_old: Vec<(u64, Sha256)> = current
        .iter()
        .filter(|(sha, _)| !target.contains_key(sha))
        .map(|(sha, size)| (*size, *sha))
        .collect();
    only_old.sort_unstable();
    for (size, sha) in only_old {
        match used.checked_add(size) {
            Some(total) if total <= limit => {
                used = total;
                kept.insert(sha, size);
            }
            _ => break,
        }
    }
    kept
}

/// A held manifest as a reported document: version and envelope hash.
fn applied_of(held: &HeldManifest) -> AppliedDocument {
    AppliedDocument {
        version: held.manifest.version,
        sha256: Sha256::of(&held.envelope),
    }
}

fn refusal_text(full: &CacheFull) -> String {
    format!(
        "the newest manifests need {} bytes of content, over the cache limit of {} bytes",
        full.needed_bytes, full.limit_bytes
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(items: &[(&[u8], u64)]) -> BTreeMap<Sha256, u64> {
        items.iter().map(|(b, s)| (Sha256::of(b), *s)).collect()
    }

    /// D3, D10: when old and new do not fit together, the new content and
    /// as many of the old-only items as fit stay, smallest first.
    #[test]
    fn d3_d10_old_content_that_fits_beside_the_new_is_kept_smallest_first() {
        let target = sizes(&[(b"new", 60), (b"shared", 10)]);
        let current = sizes(&[(b"shared", 10), (b"a", 5), (b"b", 20), (b"c", 40)]);
        let kept = keep_what_fits(&target, &current, 100);
        assert_eq!(
            kept,
            sizes(&[(b"new", 60), (b"shared", 10), (b"a", 5), (b"b", 20)])
        );
        // Nothing fits beside a target at the limit; a target over it is
        // returned whole (the cache then refuses it).
        assert_eq!(keep_what_fits(&target, &current, 70), target);
        assert_eq!(keep_what_fits(&target, &current, 50), target);
    }
}
