//! The playback decision as a state machine without I/O (D1, D3, D4, D7,
//! U1): given what the decision allows now ([`Outlook`]) and what the
//! player reported, [`Screen::step`] changes what the scheduler believes is
//! on screen and returns a [`Plan`] — what to show or clear, what to
//! prepare, which plays and skips to record, what plays now and when to
//! look again — that the executor ([`super::Playback`]) applies. So rumqttc's
//! `MqttState` changes the session's state and hands the event loop the
//! packets to write.
//!
//! Owns: the scheduler's record of the screen (the main layer's slot, the
//! overlays, the upcoming slot prepared, the skips already reported) and
//! the play events it implies: a play is recorded when it ends, with its
//! real duration; a skip once per slot, with its reason. Must not: touch
//! the player, the cache, the event log, the clock or any channel — every
//! input comes in [`Look`], every effect goes out in the [`Plan`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use chrono::{DateTime, TimeDelta, Utc};
use signet_common::ids::{EntryId, ItemId};
use signet_common::play::{Permit, SkipReason};
use signet_common::schedule::Slot;
use signet_common::sync::{NowPlaying, Outcome, PlayEvent, clip_text};

use super::PlaybackError;
use crate::decide::Outlook;
use crate::events::new_event_id;
use crate::state::Documents;

#[cfg(test)]
mod tests;

/// How many recent skips are remembered, so one due slot is reported once.
const RECENT_SKIPS: usize = 512;
/// When to look again while the device has no assignment.
const NO_ASSIGNMENT_WAKE: TimeDelta = TimeDelta::seconds(5);

/// Everything one step decides from: read by the executor, never here.
#[derive(Debug)]
pub struct Look<'a> {
    /// The accepted and playing documents.
    pub documents: &'a Documents,
    /// Trusted time now.
    pub now: DateTime<Utc>,
    /// Failures the player found since the last step.
    pub errors: Vec<PlaybackError>,
    /// What may play now ([`crate::decide::Decider::outlook`], asked after
    /// the failed files were marked broken); `None` without an assignment.
    pub outlook: Option<Outlook>,
    /// Items whose file is on disk but waits to be hashed (A8): a due slot
    /// of one is not reported as a skip, the hash decides first.
    pub awaiting: BTreeSet<ItemId>,
}

/// What to do with the main layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MainChange {
    /// Show this slot's item (seamlessly after what is shown).
    Show(Slot),
    /// Show nothing: nothing may play.
    Clear,
}

/// What one step decided: the executor applies it in this order — the
/// main layer, then the preroll — records the events durably, publishes
/// what plays and sleeps until `wake`.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The main layer's change; `None` leaves the screen as it is.
    pub main: Option<MainChange>,
    /// The upcoming item to prepare, once per slot (D7: no gap).
    pub preroll: Option<ItemId>,
    /// Plays that ended and skips, in order, to record durably (U1).
    pub events: Vec<PlayEvent>,
    /// What plays now on the main layer, for the device state.
    pub now_playing: Option<NowPlaying>,
    /// When to look again at the latest.
    pub wake: DateTime<Utc>,
    /// Where a skip of a failed [`MainChange::Show`] goes in `events`:
    /// after the main layer's events, before the overlays'.
    main_events_end: usize,
    /// When the outlook changes next (the wake before any permit's end).
    next_change: DateTime<Utc>,
}

/// One slot on screen.
#[derive(Debug, Clone)]
struct Showing {
    /// The slot as the schedule gave it.
    slot: Slot,
    /// Why it may play.
    permit: Permit,
    /// When it started showing (trusted time).
    since: DateTime<Utc>,
}

/// The scheduler's record of the screen.
#[derive(Debug)]
pub struct Screen {
    /// This device, for its events.
    device: String,
    /// The OS name, for events.
    os: String,
    /// The main layer's slot on screen.
    main: Option<Showing>,
    /// The overlays on screen, by combined entry id.
    overlays: BTreeMap<EntryId, Showing>,
    /// Due slots already reported as skipped: (item, slot start).
    recent_skips: VecDeque<(ItemId, DateTime<Utc>)>,
    /// The upcoming slot last prepared: (item, slot start).
    prerolled: Option<(ItemId, DateTime<Utc>)>,
}

impl Screen {
    /// An empty screen of `device` running on `os`.
    #[must_use]
    pub fn new(device: String, os: String) -> Self {
        Self {
            device,
            os,
            main: None,
            overlays: BTreeMap::new(),
            recent_skips: VecDeque::new(),
            prerolled: None,
        }
    }

    /// The main layer's item and since when it shows (trusted time).
    #[must_use]
    pub fn now_showing(&self) -> Option<(&ItemId, DateTime<Utc>)> {
        self.main.as_ref().map(|s| (&s.slot.item, s.since))
    }

    /// Forgets the main layer (the player was restarted: a cut, its play
    /// so far stays unrecorded); the next step shows it again.
    pub fn forget_main(&mut self) {
        self.main = None;
    }

    /// One look at the schedule: what changes on screen, the events to
    /// record and when to look again.
    pub fn step(&mut self, look: Look<'_>) -> Plan {
        let Look {
            documents,
            now,
            errors,
            outlook,
            awaiting,
        } = look;
        let mut events = Vec::new();
        // Files the player could not decode: skipped with the player's
        // message (the executor marked them unusable, so the next item
        // plays).
        for error in errors {
            tracing::warn!(item = %error.item, message = %error.message, "the player could not play it; skipping it");
            if self
                .main
                .as_ref()
                .is_some_and(|s| s.slot.item == error.item)
            {
                self.main = None;
            }
            events.push(self.event(
                documents,
                &error.item,
                None,
                now,
                0,
                Some(format!("player: {}", error.message)),
            ));
        }
        let Some(outlook) = outlook else {
            // No assignment yet: nothing may play.
            let mut main = None;
            if let Some(showing) = self.main.take() {
                events.extend(self.played(documents, &showing, now));
                main = Some(MainChange::Clear);
            }
            let wake = now + NO_ASSIGNMENT_WAKE;
            return Plan {
                main,
                preroll: None,
                main_events_end: events.len(),
                events,
                now_playing: None,
                wake,
                next_change: wake,
            };
        };

        // Skips: every due slot whose item may not play, once per slot;
        // not while its file on disk waits to be hashed (after a start):
        // that is asked for first and decides.
        for (slot, reason) in &outlook.skipped {
            if matches!(reason, SkipReason::NotCached) && awaiting.contains(&slot.item) {
                continue;
            }
            if !self.remember_skip(&slot.item, slot.started_at) {
                continue;
            }
            tracing::info!(item = %slot.item, %reason, "skipped");
            events.push(self.event(
                documents,
                &slot.item,
                None,
                slot.started_at.min(now),
                0,
                Some(reason.to_string()),
            ));
        }

        // The main layer.
        let main = self.step_main(documents, &outlook, now, &mut events);
        let main_events_end = events.len();
        let now_playing = self.now_playing();

        // Overlays: tracked for proof of play; drawn by players that can.
        self.step_overlays(documents, &outlook, now, &mut events);

        // Prepare what comes next, once per slot (D7: no gap between items).
        let mut preroll = None;
        if let Some(next) = &outlook.upcoming {
            let key = (next.item.clone(), next.started_at);
            if self.prerolled.as_ref() != Some(&key) {
                self.prerolled = Some(key);
                preroll = Some(next.item.clone());
            }
        }

        Plan {
            main,
            preroll,
            events,
            now_playing,
            wake: self.wake(outlook.next_change),
            main_events_end,
            next_change: outlook.next_change,
        }
    }

    /// The player could not show the slot `plan` asked for: nothing shows
    /// on the main layer (the executor clears the screen), the slot is
    /// reported as skipped once however often the loop looks, and the plan
    /// is corrected.
    pub fn show_failed(
        &mut self,
        plan: &mut Plan,
        documents: &Documents,
        slot: &Slot,
        reason: &str,
        now: DateTime<Utc>,
    ) {
        self.main = None;
        if self.remember_skip(&slot.item, slot.started_at) {
            tracing::warn!(item = %slot.item, %reason, "the player could not show it");
            let event = self.event(
                documents,
                &slot.item,
                None,
                now,
                0,
                Some(format!("player: {reason}")),
            );
            plan.events.insert(plan.main_events_end, event);
            plan.main_events_end += 1;
        }
        plan.now_playing = None;
        plan.wake = self.wake(plan.next_change);
    }

    /// Ends everything on screen at `now` (shutting down): the plays to
    /// record.
    pub fn finish(&mut self, documents: &Documents, now: DateTime<Utc>) -> Vec<PlayEvent> {
        let mut events = Vec::new();
        if let Some(showing) = self.main.take() {
            events.extend(self.played(documents, &showing, now));
        }
        for showing in std::mem::take(&mut self.overlays).into_values() {
            events.extend(self.played(documents, &showing, now));
        }
        events
    }

    /// The main layer's step: ends what stops showing, and says what to
    /// show or clear when the slot changed.
    fn step_main(
        &mut self,
        documents: &Documents,
        outlook: &Outlook,
        now: DateTime<Utc>,
        events: &mut Vec<PlayEvent>,
    ) -> Option<MainChange> {
        let same = match (&self.main, &outlook.main) {
            (Some(showing), Some((slot, _))) => {
                showing.slot.item == slot.item && showing.slot.started_at == slot.started_at
            }
            (None, None) => true,
            _ => false,
        };
        if same {
            return None;
        }
        if let Some(showing) = self.main.take() {
            events.extend(self.played(documents, &showing, now));
        }
        Some(match &outlook.main {
            Some((slot, permit)) => {
                self.main = Some(Showing {
                    slot: slot.clone(),
                    permit: permit.clone(),
                    since: now,
                });
                MainChange::Show(slot.clone())
            }
            None => MainChange::Clear,
        })
    }

    /// The overlays' step: ends the overlays that stop or changed slot,
    /// starts the new ones.
    fn step_overlays(
        &mut self,
        documents: &Documents,
        outlook: &Outlook,
        now: DateTime<Utc>,
        events: &mut Vec<PlayEvent>,
    ) {
        let wanted: BTreeMap<EntryId, (Slot, Permit)> = outlook
            .overlays
            .iter()
            .filter_map(|(slot, permit)| {
                slot.entry
                    .clone()
                    .map(|e| (e, (slot.clone(), permit.clone())))
            })
            .collect();
        let ended: Vec<EntryId> = self
            .overlays
            .iter()
            .filter(|(entry, showing)| {
                wanted.get(*entry).is_none_or(|(slot, _)| {
                    slot.item != showing.slot.item || slot.started_at != showing.slot.started_at
                })
            })
            .map(|(entry, _)| entry.clone())
            .collect();
        for entry in ended {
            if let Some(showing) = self.overlays.remove(&entry) {
                events.extend(self.played(documents, &showing, now));
            }
        }
        for (entry, (slot, permit)) in wanted {
            self.overlays.entry(entry).or_insert(Showing {
                slot,
                permit,
                since: now,
            });
        }
    }

    /// What plays on the main layer now.
    fn now_playing(&self) -> Option<NowPlaying> {
        self.main.as_ref().map(|s| NowPlaying {
            item: s.slot.item.clone(),
            entry: s.slot.entry.clone(),
            since: s.since,
        })
    }

    /// When to look again: the outlook's next change, or earlier when a
    /// permit on screen ends.
    fn wake(&self, next_change: DateTime<Utc>) -> DateTime<Utc> {
        let mut wake = next_change;
        for showing in self.main.iter().chain(self.overlays.values()) {
            if let Some(until) = showing.permit.until {
                wake = wake.min(until);
            }
        }
        wake
    }

    /// Remembers a skip of `item`'s slot starting at `start`; false when it
    /// was reported already.
    fn remember_skip(&mut self, item: &ItemId, start: DateTime<Utc>) -> bool {
        let key = (item.clone(), start);
        if self.recent_skips.contains(&key) {
            return false;
        }
        if self.recent_skips.len() >= RECENT_SKIPS {
            self.recent_skips.pop_front();
        }
        self.recent_skips.push_back(key);
        true
    }

    /// The play event of `showing`, ended at `now`; none for a zero-length
    /// showing.
    fn played(
        &self,
        documents: &Documents,
        showing: &Showing,
        now: DateTime<Utc>,
    ) -> Option<PlayEvent> {
        let duration = (now - showing.since).num_milliseconds();
        let duration = u64::try_from(duration).ok().filter(|d| *d > 0)?;
        Some(self.event(
            documents,
            &showing.slot.item,
            Some(&showing.permit),
            showing.since,
            duration,
            None,
        ))
    }

    /// A play (no `skip_reason`) or skip event of `item` on this device.
    fn event(
        &self,
        documents: &Documents,
        item: &ItemId,
        permit: Option<&Permit>,
        start: DateTime<Utc>,
        duration_ms: u64,
        skip_reason: Option<String>,
    ) -> PlayEvent {
        let location = documents
            .assignment
            .as_ref()
            .map(|a| a.location.clone())
            .unwrap_or_default();
        PlayEvent {
            id: new_event_id(),
            device_id: self.device.as_str().into(),
            item: item.clone(),
            access_group: permit.and_then(|p| p.access_group.clone()),
            license_version: permit.and_then(|p| p.license_version),
            start,
            duration_ms,
            outcome: if skip_reason.is_some() {
                Outcome::Skipped
            } else {
                Outcome::Played
            },
            skip_reason: skip_reason.map(|r| clip_text(&r)),
            country: location.country,
            region: location.region,
            os: self.os.clone(),
            agent_version: crate::VERSION.to_owned(),
        }
    }
}
