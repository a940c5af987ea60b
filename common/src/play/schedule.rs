//! The device's one schedule, made from every manifest it follows (D5); the
//! rules are documented on [`super`].
//!
//! Owns: [`combine`] and [`scheduled_items`]. Must not: evaluate the schedule
//! (that is [`crate::schedule::evaluate`]) or judge playability.

use std::collections::BTreeMap;

use crate::documents::{GroupKind, GroupManifest};
use crate::ids::{EntryId, ItemId};
use crate::schedule::{MergeMode, Schedule, ScheduleEntry};

/// The device's schedule: every playing manifest's entries in one
/// [`Schedule`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSchedule {
    /// The combined schedule, for [`crate::schedule::evaluate`].
    pub schedule: Schedule,
    /// Entry id in `schedule` → (group id, the entry's id in its own
    /// manifest), so proofs of play and reports can name the source entry.
    pub origin: BTreeMap<EntryId, (String, EntryId)>,
}

/// Combines the manifests, given in view order (node chain root → leaf, then
/// access groups), into one schedule. Never fails; the result is not meant
/// for [`Schedule::validate`] (its ids may be longer than a manifest's).
#[must_use]
pub fn combine(manifests: &[&GroupManifest]) -> DeviceSchedule {
    let mut entries = Vec::new();
    let mut origin = BTreeMap::new();
    for manifest in manifests {
        for entry in &manifest.schedule.entries {
            let base = format!("{}/{}", manifest.group_id, entry.id);
            let mut id = EntryId::new(base.clone());
            // Bounded: at most one step per entry already combined.
            let mut n = 1u32;
            while origin.contains_key(&id) {
                n += 1;
                id = EntryId::new(format!("{base}#{n}"));
            }
            origin.insert(id.clone(), (manifest.group_id.clone(), entry.id.clone()));
            entries.push(ScheduleEntry {
                id,
                ..entry.clone()
            });
        }
    }
    let merge = manifests
        .iter()
        .rev()
        .find(|m| !m.schedule.entries.is_empty())
        .map_or(MergeMode::default(), |m| m.schedule.merge);
    // Preference order: nodes leaf → root, then access groups in view order.
    let default_item = manifests
        .iter()
        .rev()
        .filter(|m| m.group_kind == GroupKind::Node)
        .chain(
            manifests
                .iter()
                .filter(|m| m.group_kind == GroupKind::AccessGroup),
        )
        .find_map(|m| m.schedule.default_item.clone());
    DeviceSchedule {
        schedule: Schedule {
            entries,
            merge,
            default_item,
        },
        origin,
    }
}

/// Every item any of `manifests` schedules (in an entry or as the default
/// item), each with the groups that schedule it, in view order, each group
/// once — what `signet-agent status` lists.
#[must_use]
pub fn scheduled_items(manifests: &[&GroupManifest]) -> BTreeMap<ItemId, Vec<String>> {
    let mut items: BTreeMap<ItemId, Vec<String>> = BTreeMap::new();
    for manifest in manifests {
        let schedule = &manifest.schedule;
        let scheduled = schedule
            .entries
            .iter()
            .flat_map(|entry| &entry.items)
            .chain(&schedule.default_item);
        for playlist_item in scheduled {
            let groups = items.entry(playlist_item.item.clone()).or_default();
            if !groups.contains(&manifest.group_id) {
                groups.push(manifest.group_id.clone());
            }
        }
    }
    items
}
