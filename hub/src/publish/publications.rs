//! Where each publish run reached (U5, U4): the devices a run targets and,
//! per device, when it accepted and when it activated the run's documents,
//! so operators see "312 of 320 screens have it".
//!
//! Owns: the [`PUBLICATION_DEVICES`] and [`PUBLICATION_OPEN`] trees — one
//! progress record per (run, target device), and the index of the runs a
//! device has not activated yet — written by the run's transaction
//! ([`record_in`]) and advanced by the device state reports the fleet
//! ingests ([`note_device_state_in`], called inside its transaction).
//! Reading them as an operator ([`publication`], [`progress_of`]). Must
//! not: decide what a run publishes ([`super::sign`]) or how a report is
//! verified ([`crate::mqtt`], [`crate::fleet`]).
//!
//! | tree | key | value |
//! |---|---|---|
//! | [`PUBLICATION_DEVICES`] | `{run}/{device}` | [`DeviceProgress`] |
//! | [`PUBLICATION_OPEN`] | `{device}` | [`OpenRun`]s, oldest first (not activated yet) |
//!
//! A device's open runs sit under one key with what each waits for, so a
//! state report costs one point read — nothing more when no open run
//! changes — whatever the fleet's size or the number of runs.
//!
//! A device has accepted a run when every document of the run that
//! concerns it (its own assignment, the manifests of the groups its
//! assignment follows) is accepted at the run's version or later, and has
//! activated it when every such group manifest is also in use (other kinds
//! are in use once accepted). Versions only grow, so a later version
//! counts for an earlier run too.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use signet_common::envelope::DocumentKind;
use signet_common::ids::DeviceId;
use signet_common::sync::DeviceState;

use super::{PUBLICATION_JOBS, PUBLICATION_RUNS, PublicationJob, PublicationRun, document_key};
use crate::app::Hub;
use crate::identity;
use crate::store::{StoreError, Tx};
use crate::tenancy::load_tree;

/// Progress of each (run, target device).
pub const PUBLICATION_DEVICES: &str = "publication_devices";
/// The runs each device has not activated yet, one record per device.
pub const PUBLICATION_OPEN: &str = "publication_open_runs";
/// The most runs a device waits on at once: older ones stop being
/// followed (their records stay, without the missing times).
pub const MAX_OPEN_PER_DEVICE: usize = 16;

/// Where one target device stands against one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeviceProgress {
    /// The device.
    #[schema(value_type = String)]
    pub device: DeviceId,
    /// The run's documents that concern it, `{kind}/{subject}` → version.
    pub documents: BTreeMap<String, u64>,
    /// When (by the device's trusted time) it first reported every one of
    /// them accepted.
    pub accepted_at: Option<DateTime<Utc>>,
    /// When it first reported every one of them in use.
    pub activated_at: Option<DateTime<Utc>>,
}

/// A run a device has not activated yet, with what it waits for (a copy
/// of its [`DeviceProgress::documents`]), so a state report is judged
/// without reading the progress record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenRun {
    /// The run.
    pub run: String,
    /// The run's documents that concern the device, `{kind}/{subject}` → version.
    pub documents: BTreeMap<String, u64>,
    /// Whether the device has accepted them already.
    #[serde(default)]
    pub accepted: bool,
}

/// How far a run got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Progress {
    /// Devices the run targets.
    pub targets: usize,
    /// Of those, how many accepted its documents.
    pub accepted: usize,
    /// Of those, how many activated them.
    pub activated: usize,
}

/// One run with its targets and their progress.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Publication {
    /// The run's record.
    pub run: PublicationRun,
    /// The counts.
    pub progress: Progress,
    /// Every target device, by id.
    pub devices: Vec<DeviceProgress>,
}

/// Inside the run's transaction: records `run`'s target devices, each with
/// the groups its assignment follows (`reach`), as not yet accepted, and
/// opens them for [`note_device_state_in`]. A device waiting on more than
/// [`MAX_OPEN_PER_DEVICE`] runs stops waiting on its oldest.
///
/// # Errors
/// When the store fails.
pub(super) fn record_in(
    tx: &mut Tx,
    run: &PublicationRun,
    reach: &[(DeviceId, Vec<String>)],
) -> Result<(), StoreError> {
    let versions: BTreeMap<String, u64> = run
        .documents
        .iter()
        .map(|d| (document_key(d.kind, &d.subject), d.version))
        .collect();
    for (device, groups) in reach {
        let documents: BTreeMap<String, u64> = std::iter::once(document_key(
            DocumentKind::DeviceAssignment,
            device.as_str(),
        ))
        .chain(
            groups
                .iter()
                .map(|g| document_key(DocumentKind::GroupManifest, g)),
        )
        .filter_map(|key| versions.get(&key).map(|v| (key, *v)))
        .collect();
        let mut open: Vec<OpenRun> = tx
            .get(PUBLICATION_OPEN, device.as_str())?
            .unwrap_or_default();
        open.retain(|o| o.run != run.id);
        let stale = (open.len() + 1).saturating_sub(MAX_OPEN_PER_DEVICE);
        open.drain(..stale);
        open.push(OpenRun {
            run: run.id.clone(),
            documents: documents.clone(),
            accepted: false,
        });
        tx.put(PUBLICATION_OPEN, device.as_str(), &open)?;
        let progress = DeviceProgress {
            device: device.clone(),
            documents,
            accepted_at: None,
            activated_at: None,
        };
        tx.put(
            PUBLICATION_DEVICES,
            &format!("{}/{device}", run.id),
            &progress,
        )?;
    }
    Ok(())
}

/// Inside the fleet ingest's transaction: advances every run `device` has
/// not activated yet by its reported `state` — accepted when every
/// document of the run that concerns it is accepted at the run's version or
/// later, activated when also in use — stamped with the report's time.
/// One point read when nothing changes (a device with no open run, or a
/// report that moves none of its runs on).
///
/// # Errors
/// When the store fails.
pub fn note_device_state_in(
    tx: &mut Tx,
    device: &DeviceId,
    state: &DeviceState,
) -> Result<(), StoreError> {
    let Some(open) = tx.get::<Vec<OpenRun>>(PUBLICATION_OPEN, device.as_str())? else {
        return Ok(());
    };
    let mut still_open = Vec::with_capacity(open.len());
    let mut changed = false;
    for mut entry in open {
        let accepted_now = !entry.accepted && accepted(&entry.documents, state);
        let activated_now = (entry.accepted || accepted_now) && activated(&entry.documents, state);
        if !accepted_now && !activated_now {
            still_open.push(entry);
            continue;
        }
        changed = true;
        let record_key = format!("{}/{device}", entry.run);
        let Some(mut progress) = tx.get::<DeviceProgress>(PUBLICATION_DEVICES, &record_key)? else {
            continue; // the run was forgotten: stop following it
        };
        if progress.accepted_at.is_none() {
            progress.accepted_at = Some(state.at);
        }
        if activated_now {
            progress.activated_at = Some(state.at);
        } else {
            entry.accepted = true;
            still_open.push(entry);
        }
        tx.put(PUBLICATION_DEVICES, &record_key, &progress)?;
    }
    if !changed {
        Ok(())
    } else if still_open.is_empty() {
        tx.delete(PUBLICATION_OPEN, device.as_str());
        Ok(())
    } else {
        tx.put(PUBLICATION_OPEN, device.as_str(), &still_open)
    }
}

fn accepted(documents: &BTreeMap<String, u64>, state: &DeviceState) -> bool {
    documents.iter().all(|(key, version)| {
        state
            .applied
            .get(key)
            .is_some_and(|a| a.version >= *version)
    })
}

fn activated(documents: &BTreeMap<String, u64>, state: &DeviceState) -> bool {
    let manifest = format!("{}/", DocumentKind::GroupManifest.as_str());
    documents.iter().all(|(key, version)| {
        !key.starts_with(&manifest)
            || state
                .activated
                .get(key)
                .is_some_and(|a| a.version >= *version)
    })
}

/// The progress records of `run`'s targets.
///
/// # Errors
/// When the store fails.
pub fn devices_of(hub: &Hub, run: &str) -> Result<Vec<DeviceProgress>, StoreError> {
    hub.store.scan(PUBLICATION_DEVICES, &format!("{run}/"))
}

/// The counts of `devices`.
#[must_use]
pub fn progress_of(devices: &[DeviceProgress]) -> Progress {
    Progress {
        targets: devices.len(),
        accepted: devices.iter().filter(|d| d.accepted_at.is_some()).count(),
        activated: devices.iter().filter(|d| d.activated_at.is_some()).count(),
    }
}

/// One run with every target device's progress, if its scope node is
/// inside `actor`'s domain (T4). `id` is a run id, or a job id (`pj-…`)
/// for that job's latest run.
///
/// # Errors
/// When the store fails.
pub fn publication(
    hub: &Hub,
    actor: &identity::Actor,
    id: &str,
) -> Result<Option<Publication>, StoreError> {
    let run_id = if id.starts_with("pj-") {
        match hub.store.get::<PublicationJob>(PUBLICATION_JOBS, id)? {
            Some(job) => job.last_run,
            None => None,
        }
    } else {
        Some(id.to_owned())
    };
    let Some(run) = run_id
        .map(|r| hub.store.get::<PublicationRun>(PUBLICATION_RUNS, &r))
        .transpose()?
        .flatten()
    else {
        return Ok(None);
    };
    let (tree, _) = load_tree(&hub.store)?;
    if !actor.sees(&tree, &run.scope_node) {
        return Ok(None);
    }
    let devices = devices_of(hub, &run.id)?;
    Ok(Some(Publication {
        progress: progress_of(&devices),
        run,
        devices,
    }))
}

/// Inside a pruning transaction: deletes the progress records of `run`
/// and the open entries that point at them.
///
/// # Errors
/// When the store fails.
pub(super) fn forget_in(tx: &mut Tx, run: &str) -> Result<(), StoreError> {
    for key in tx.scan_keys(PUBLICATION_DEVICES, &format!("{run}/"))? {
        if let Some((_, device)) = key.split_once('/')
            && let Some(mut open) = tx.get::<Vec<OpenRun>>(PUBLICATION_OPEN, device)?
            && open.iter().any(|o| o.run == run)
        {
            open.retain(|o| o.run != run);
            if open.is_empty() {
                tx.delete(PUBLICATION_OPEN, device);
            } else {
                tx.put(PUBLICATION_OPEN, device, &open)?;
            }
        }
        tx.delete(PUBLICATION_DEVICES, &key);
    }
    Ok(())
}
