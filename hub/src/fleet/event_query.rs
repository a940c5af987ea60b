//! Reports answered by the engine (U3, L8, X4, issue 21): a report's
//! [`Selection`], with who reads it, resolved into an engine-agnostic
//! [`EventQuery`] — the nodes the reader sees (within the node filter),
//! whether unattached devices' events count, the groups, the hidden items
//! — so an engine that queries events (PostgreSQL: SQL over the
//! partitioned `play_events` table) applies exactly [`Selection::matches`]
//! and answers what the scan of [`Selection::visit`] would.
//!
//! Owns: that translation, and the JSON page, CSV and per-item summary
//! built from the engine's answer. Must not: hold a rule of its own — who
//! sees what stays [`Viewer`]'s and [`super::reports::ItemSight`]'s.

use std::collections::BTreeSet;

use super::events::StoredEvent;
use super::reports::{
    GroupUsage, ItemUsage, MAX_CSV_ROWS, Selection, UsageOutput, UsagePage, UsageReport, UsageRow,
    csv_bytes, csv_filename,
};
use super::service::{FleetError, Viewer};
use crate::store::{EVENTS_TREE, Entry, EventQuery, ItemTally, Store, StoreError};

impl Selection {
    /// This selection as `viewer` reads it, for the engine.
    #[must_use]
    pub fn query(&self, viewer: &Viewer) -> EventQuery {
        EventQuery {
            from: self.range.from,
            to: self.range.to,
            nodes: viewer.nodes_seen(self.node.as_ref()),
            unattached: self.node.is_none() && viewer.is_root_level(),
            device: self.device.as_ref().map(ToString::to_string),
            item: self.item.as_ref().map(ToString::to_string),
            groups: self
                .groups
                .as_ref()
                .map(|groups| groups.iter().map(ToString::to_string).collect()),
            hidden_items: self.sight.hidden().map(ToString::to_string).collect(),
            user: self.user.as_ref().map(ToString::to_string),
        }
    }
}

/// The usage report of `selection` as `viewer` reads it, when the engine
/// queries events; `None` when it does not (then the caller scans).
///
/// # Errors
/// [`FleetError::ReportTooLarge`]; the store.
pub fn usage_report(
    store: &Store,
    viewer: &Viewer,
    selection: &Selection,
    output: &UsageOutput,
) -> Result<Option<UsageReport>, FleetError> {
    let query = selection.query(viewer);
    match output {
        UsageOutput::Page { after, limit } => {
            let Some(entries) = store.event_page(&query, after.as_deref(), limit + 1)? else {
                return Ok(None);
            };
            let more = entries.len() > *limit;
            let rows = decode(entries.into_iter().take(*limit))?;
            let next = more.then(|| rows.last().map(|(key, _)| key.clone()));
            Ok(Some(UsageReport::Page(UsagePage {
                events: rows
                    .iter()
                    .map(|(_, stored)| UsageRow::from(stored))
                    .collect(),
                next: next.flatten(),
            })))
        }
        UsageOutput::Csv => {
            let Some(entries) = store.event_page(&query, None, MAX_CSV_ROWS + 1)? else {
                return Ok(None);
            };
            if entries.len() > MAX_CSV_ROWS {
                return Err(FleetError::ReportTooLarge);
            }
            let rows: Vec<UsageRow> = decode(entries.into_iter())?
                .iter()
                .map(|(_, stored)| UsageRow::from(stored))
                .collect();
            Ok(Some(UsageReport::Csv {
                bytes: csv_bytes(&rows)?,
                filename: csv_filename(selection.range),
            }))
        }
    }
}

/// Plays, skips and time played per item of `selection` as `viewer` reads
/// it, when the engine aggregates; `None` when it does not.
///
/// # Errors
/// The store.
pub fn item_usage(
    store: &Store,
    viewer: &Viewer,
    selection: &Selection,
) -> Result<Option<Vec<ItemUsage>>, FleetError> {
    let Some(tally) = store.event_tally(&selection.query(viewer))? else {
        return Ok(None);
    };
    let mut seen = BTreeSet::new();
    let mut items: Vec<ItemUsage> = tally
        .into_iter()
        .filter(|row| seen.insert(row.item.clone()))
        .map(|row: ItemTally| ItemUsage {
            item: row.item,
            played: row.played,
            skipped: row.skipped,
            played_ms: row.played_ms,
        })
        .collect();
    items.sort_by(|a, b| a.item.cmp(&b.item));
    Ok(Some(items))
}

/// A group's summary from the engine's per-item usage (never truncated:
/// the engine reads every event of the range).
#[must_use]
pub fn summary(
    items: Vec<ItemUsage>,
    (id, name): (String, String),
    selection: &Selection,
) -> GroupUsage {
    GroupUsage {
        access_group: id,
        name,
        from: selection.range.from,
        to: selection.range.to,
        played: items.iter().map(|i| i.played).sum(),
        skipped: items.iter().map(|i| i.skipped).sum(),
        played_ms: items.iter().fold(0, |t, i| t.saturating_add(i.played_ms)),
        items,
        truncated: false,
    }
}

/// Stored events with their keys.
fn decode(entries: impl Iterator<Item = Entry>) -> Result<Vec<(String, StoredEvent)>, StoreError> {
    entries
        .map(|(key, value)| {
            let key = String::from_utf8_lossy(&key).into_owned();
            serde_json::from_slice(&value)
                .map(|stored| (key.clone(), stored))
                .map_err(|e| StoreError::Corrupt {
                    tree: EVENTS_TREE,
                    key,
                    reason: e.to_string(),
                })
        })
        .collect()
}
