//! The fleet's operations for operators and devices (U1–U4, D8): the fleet
//! list, summary and device view, alerts, the HTTP upload of proof-of-play
//! events and screenshots; the reports are [`super::reports`].
//!
//! Owns: the fleet and alert queries (parsed once, bounded), what an event
//! upload must be to be stored (signed by the device's registered key, S11;
//! every event about the sender), what a screenshot upload must be, and
//! [`FleetError`]. Who sees which device, alert, event, group or user is
//! [`Viewer`]'s rule, the one place rows are filtered by visibility.
//! Must not: know HTTP (the API reads bodies and sets headers), or write
//! records other than through [`super::ingest_events`] and
//! [`crate::screenshots`].

use serde::Deserialize;
use signet_common::ids::{DeviceId, NodeId};
use signet_common::permissions::{Domain, NodeTree};
use signet_common::sync::EventBatch;
use signet_common::sync::signed::{ReportError, verify_report};

use super::alerts::{ALERTS, Alert, AlertKind};
use super::events::{Ingested, StoredEvent, check_event};
use super::index::{FleetIndex, Page};
use super::reports::{MAX_FILTER_LEN, filter_value};
use super::stream::StreamError;
use super::{FleetCounts, FleetDevice, Liveness, device_view, node_of};
use crate::access_groups::AccessGroup;
use crate::app::Hub;
use crate::identity::{Actor, User};
use crate::screenshots::{PngError, Screenshot, ScreenshotError, ScreenshotStore, check_png};
use crate::store::{Store, StoreError};

/// The most devices one list answers.
pub const MAX_FLEET_PAGE: usize = 1000;
/// The most alerts one list answers.
pub const MAX_ALERTS_PAGE: usize = 1000;

/// Why a fleet or report operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The thing named is absent or not visible to the caller (404).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A filter value is malformed or out of bounds (400 `invalid_query`).
    #[error("{0}")]
    InvalidQuery(String),
    /// A report range whose start is not before its end (400).
    #[error("from must be before to")]
    InvalidRange,
    /// A report range over [`super::reports::MAX_RANGE_DAYS`] days (400).
    #[error("a report covers at most {} days", super::reports::MAX_RANGE_DAYS)]
    RangeTooLong,
    /// A CSV download over [`super::reports::MAX_CSV_ROWS`] rows (400).
    #[error(
        "more than {} events match: narrow the time range or the filters",
        super::reports::MAX_CSV_ROWS
    )]
    ReportTooLarge,
    /// A CSV row could not be encoded (500).
    #[error("CSV: {0}")]
    Csv(String),
    /// The live stream could not start (503 busy, 401 session ended).
    #[error(transparent)]
    Stream(#[from] StreamError),
    /// A signed report refused (S11): unsigned, wrong key, too large or
    /// malformed; counted in `signet_device_reports_refused_total`.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// No usable key is registered for the uploading device (403).
    #[error("no usable key is registered for this device")]
    UnknownDevice,
    /// An uploaded event is about another device or out of bounds (400).
    #[error("{0}")]
    InvalidEvent(String),
    /// A screenshot sent as another media type (415).
    #[error("a screenshot is sent as Content-Type: image/png")]
    NotPngType,
    /// A screenshot over [`crate::screenshots::MAX_SCREENSHOT_BYTES`] (413).
    #[error(
        "a screenshot is at most {} bytes",
        crate::screenshots::MAX_SCREENSHOT_BYTES
    )]
    UploadTooLarge,
    /// The upload body broke off (400).
    #[error("{0}")]
    UploadIncomplete(String),
    /// Not a PNG of sane size (400 `invalid_png`).
    #[error(transparent)]
    Png(#[from] PngError),
    /// The screenshot files failed (500).
    #[error(transparent)]
    Screenshot(#[from] ScreenshotError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who reads the fleet, its alerts and its reports, and what they may see
/// (T4). The one place their rows are filtered by visibility: today the
/// tenancy domain; a narrower rule (say, items the caller may view) joins
/// here and every list, alert and report follows it.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// Who reads.
    actor: Actor,
    /// The tenancy tree the decision rests on.
    tree: NodeTree,
    /// The actor's domain, computed once.
    domain: Domain,
}

impl Viewer {
    /// `actor` reading over `tree` (as read when the request was
    /// authenticated).
    #[must_use]
    pub fn new(actor: Actor, tree: NodeTree) -> Self {
        let domain = actor.domain();
        Self {
            actor,
            tree,
            domain,
        }
    }

    /// Whether `node` is inside the viewer's domain: devices attached there,
    /// and alerts raised there, are visible.
    #[must_use]
    pub fn sees_node(&self, node: &NodeId) -> bool {
        self.domain.contains(&self.tree, node)
    }

    /// The nodes of the tree the viewer sees that lie at or below `top`
    /// (every node it sees when `None`): what an event query names for
    /// [`Viewer::sees_event`] and a node filter.
    #[must_use]
    pub fn nodes_seen(&self, top: Option<&NodeId>) -> Vec<String> {
        self.tree
            .nodes()
            .filter(|node| self.sees_node(node))
            .filter(|node| top.is_none_or(|top| self.is_within(node, top)))
            .map(ToString::to_string)
            .collect()
    }

    /// Whether the viewer's domain covers the whole tree (it sees events of
    /// devices that were not attached).
    #[must_use]
    pub fn is_root_level(&self) -> bool {
        self.domain.is_root_level(&self.tree)
    }

    /// Whether `node` lies at or below `top`.
    #[must_use]
    pub fn is_within(&self, node: &NodeId, top: &NodeId) -> bool {
        self.tree.is_within(node, top)
    }

    /// Whether the viewer sees a proof-of-play event: its device was
    /// attached inside the domain when it arrived; an event of a device that
    /// was not attached is seen by root-level viewers only.
    #[must_use]
    pub fn sees_event(&self, stored: &StoredEvent) -> bool {
        match &stored.node {
            Some(node) => self.sees_node(node),
            None => self.domain.is_root_level(&self.tree),
        }
    }

    /// Whether the viewer sees an alert (raised at a node inside the domain).
    #[must_use]
    pub fn sees_alert(&self, alert: &Alert) -> bool {
        self.sees_node(&alert.node)
    }

    /// Whether the viewer sees an access group (its node inside the domain).
    #[must_use]
    pub fn sees_group(&self, group: &AccessGroup) -> bool {
        self.sees_node(&group.node)
    }

    /// Whether the viewer sees a user ([`Actor::sees_user`]).
    #[must_use]
    pub fn sees_user(&self, user: &User) -> bool {
        self.actor.sees_user(&self.tree, user)
    }

    /// The node filter `node`, checked visible.
    ///
    /// # Errors
    /// [`FleetError::NotFound`] naming the node when the viewer cannot see it.
    pub fn under(&self, node: Option<NodeId>) -> Result<Scope<'_>, FleetError> {
        if node.as_ref().is_some_and(|node| !self.sees_node(node)) {
            return Err(FleetError::NotFound("node"));
        }
        Ok(Scope {
            viewer: self,
            under: node,
        })
    }
}

/// Which attached devices a fleet read covers: those the viewer sees, under
/// the node filter when there is one.
pub struct Scope<'a> {
    /// Who reads.
    viewer: &'a Viewer,
    /// The node filter, checked visible.
    under: Option<NodeId>,
}

impl Scope<'_> {
    /// Whether a device attached at `node` is covered.
    #[must_use]
    pub fn holds(&self, node: &NodeId) -> bool {
        self.viewer.sees_node(node)
            && self
                .under
                .as_ref()
                .is_none_or(|top| self.viewer.is_within(node, top))
    }
}

/// Fleet list filter, as the query string says it.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FleetFilter {
    /// Only devices at this node or below.
    pub node: Option<String>,
    /// Only online (true) or not online (false) devices.
    pub online: Option<bool>,
    /// Only devices in sync (true) or not (false).
    pub in_sync: Option<bool>,
    /// Only devices whose id sorts after this (paging).
    pub after: Option<String>,
    /// At most this many (default and maximum 1000).
    pub limit: Option<usize>,
}

/// Summary filter, as the query string says it.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SummaryFilter {
    /// Only devices at this node or below.
    pub node: Option<String>,
}

/// Alert list filter, as the query string says it.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AlertFilter {
    /// Only open (true) or cleared (false) alerts.
    pub open: Option<bool>,
    /// Only alerts about this device.
    pub device: Option<String>,
    /// Only `offline` or `out_of_sync` alerts.
    #[param(value_type = Option<String>)]
    pub kind: Option<AlertKind>,
    /// At most this many of the newest matches (default and maximum 1000).
    pub limit: Option<usize>,
}

/// A node filter value, bounded (400 `invalid_query` otherwise).
fn node_filter(node: Option<String>) -> Result<Option<NodeId>, FleetError> {
    Ok(filter_value("node", node, MAX_FILTER_LEN)?.map(NodeId::new))
}

/// Devices `viewer` sees (under `filter.node`), by id, with their status
/// (U4): at most `limit` after the id `after`, online and in-sync filtered;
/// from the fleet's in-memory [`FleetIndex`] (issue 20), as a scan of every
/// device would answer. Answered as the JSON array of [`FleetDevice`]s
/// (what `serde_json::to_vec` of the list writes), from each device's view
/// serialized when it last changed ([`FleetIndex::list_json`]).
///
/// # Errors
/// 400 for a value out of bounds, 404 for a node not visible; the store.
pub fn list(hub: &Hub, viewer: &Viewer, filter: FleetFilter) -> Result<Vec<u8>, FleetError> {
    let scope = viewer.under(node_filter(filter.node)?)?;
    let after = filter_value("after", filter.after, MAX_FILTER_LEN)?;
    let limit = filter
        .limit
        .unwrap_or(MAX_FLEET_PAGE)
        .clamp(1, MAX_FLEET_PAGE);
    let page = Page {
        after: after.as_deref(),
        online: filter.online,
        in_sync: filter.in_sync,
        limit,
    };
    let holds = |node: &NodeId| scope.holds(node);
    Ok(FleetIndex::of(hub).list_json(&hub.store, holds, page, Liveness::of(hub))?)
}

/// Runs `read` (such as [`list`] or [`summary`]) for `viewer` on the
/// blocking pool: the fleet index reads the devices that reported since its
/// last answer, which must not stall ingest or other requests (X3).
///
/// # Errors
/// What `read` returns; the store when the task failed.
pub async fn off_runtime<F, T>(
    hub: &Hub,
    viewer: Viewer,
    filter: F,
    read: fn(&Hub, &Viewer, F) -> Result<T, FleetError>,
) -> Result<T, FleetError>
where
    F: Send + 'static,
    T: Send + 'static,
{
    let hub = hub.clone();
    tokio::task::spawn_blocking(move || read(&hub, &viewer, filter))
        .await
        .unwrap_or_else(|e| Err(StoreError::Storage(format!("a fleet read failed: {e}")).into()))
}

/// The totals of the devices `viewer` sees (under `filter.node`), by the
/// fleet view's own rules (U4): the index's totals of the nodes in scope.
///
/// # Errors
/// 400 for a value out of bounds, 404 for a node not visible; the store.
pub fn summary(
    hub: &Hub,
    viewer: &Viewer,
    filter: SummaryFilter,
) -> Result<FleetCounts, FleetError> {
    let scope = viewer.under(node_filter(filter.node)?)?;
    let holds = |node: &NodeId| scope.holds(node);
    Ok(FleetIndex::of(hub).summary(&hub.store, holds, Liveness::of(hub))?)
}

/// The view of one device `viewer` sees (U4).
///
/// # Errors
/// [`FleetError::NotFound`] when it is not attached inside the domain.
pub fn device(hub: &Hub, viewer: &Viewer, id: &str) -> Result<FleetDevice, FleetError> {
    if id.is_empty() || id.len() > MAX_FILTER_LEN {
        return Err(FleetError::NotFound("device"));
    }
    let device = DeviceId::from(id);
    let node = node_of(&hub.store, &device)?
        .filter(|node| viewer.sees_node(node))
        .ok_or(FleetError::NotFound("device"))?;
    Ok(device_view(&hub.store, &device, &node, Liveness::of(hub))?)
}

/// Alerts `viewer` sees that match `filter`, oldest first: the newest
/// `limit` of them (U4).
///
/// # Errors
/// 400 for a value out of bounds; the store.
pub fn alerts(
    store: &Store,
    viewer: &Viewer,
    filter: AlertFilter,
) -> Result<Vec<Alert>, FleetError> {
    let device = filter_value("device", filter.device, MAX_FILTER_LEN)?;
    let limit = filter
        .limit
        .unwrap_or(MAX_ALERTS_PAGE)
        .clamp(1, MAX_ALERTS_PAGE);
    let mut matching: Vec<Alert> = store
        .scan::<Alert>(ALERTS, "")?
        .into_iter()
        .filter(|a| {
            viewer.sees_alert(a)
                && filter.open.is_none_or(|open| a.is_open() == open)
                && filter.kind.is_none_or(|kind| a.kind == kind)
                && device.as_deref().is_none_or(|d| a.device.as_str() == d)
        })
        .collect();
    let skip = matching.len().saturating_sub(limit);
    matching.drain(..skip);
    Ok(matching)
}

/// Stores a batch of proof-of-play events `device` uploaded (U1, U2): the
/// body must be a `device_events` envelope signed by the key the device
/// registered at pairing (S11), and every event about the device and in
/// bounds; else nothing is stored. A refusal for the signature is counted.
///
/// # Errors
/// [`FleetError::UnknownDevice`], [`FleetError::Report`],
/// [`FleetError::InvalidEvent`]; the store.
pub async fn upload_events(
    hub: &Hub,
    device: &DeviceId,
    body: &[u8],
) -> Result<Ingested, FleetError> {
    let refused = |reason: &'static str, detail: &dyn std::fmt::Display| {
        hub.metrics
            .count_refused_report(reason, "http", device.as_str(), detail);
    };
    let Some(key) = crate::devices::registered_key(&hub.store, device)? else {
        refused("unknown_device", &FleetError::UnknownDevice);
        return Err(FleetError::UnknownDevice);
    };
    let batch: EventBatch = verify_report(body, device, &key).inspect_err(|e| {
        refused(e.reason(), e);
    })?;
    for event in &batch.events {
        check_event(device, event).map_err(FleetError::InvalidEvent)?;
    }
    Ok(super::ingest_events(hub, device, batch).await?)
}

/// Refuses a screenshot upload declared as anything but `image/png`
/// (parameters aside); no declared type is taken as PNG.
///
/// # Errors
/// [`FleetError::NotPngType`].
pub fn check_screenshot_type(content_type: Option<&[u8]>) -> Result<(), FleetError> {
    let Some(kind) = content_type else {
        return Ok(());
    };
    let kind = std::str::from_utf8(kind).unwrap_or_default();
    let essence = kind.split(';').next().unwrap_or_default().trim();
    if essence.eq_ignore_ascii_case("image/png") {
        Ok(())
    } else {
        Err(FleetError::NotPngType)
    }
}

/// Stores `png` as `device`'s latest screenshot (D8), durably before it
/// returns, replacing the previous one; answers it and whether it was the
/// device's first.
///
/// # Errors
/// [`FleetError::Png`] for bytes that are not a sane PNG (nothing changes);
/// [`FleetError::Screenshot`] when the files or the store fail.
pub async fn store_screenshot(
    hub: &Hub,
    device: &DeviceId,
    png: axum::body::Bytes,
) -> Result<(Screenshot, bool), FleetError> {
    let size = check_png(&png)?;
    let shots = ScreenshotStore::new(hub.config.shared_dir());
    let staged = shots.stage(device, png, size, hub.now()).await?;
    let screenshot = staged.screenshot.clone();
    let previous = shots.commit(&hub.store, staged).await?;
    Ok((screenshot, previous.is_none()))
}

/// The latest screenshot of device `id` and its bytes, when `viewer` sees
/// the device (the rule of its device record, T4).
///
/// # Errors
/// [`FleetError::NotFound`] for a device absent or not visible, or without
/// a screenshot; [`FleetError::Screenshot`].
pub async fn latest_screenshot(
    hub: &Hub,
    viewer: &Viewer,
    id: &str,
) -> Result<(Screenshot, Vec<u8>), FleetError> {
    let device = crate::devices::device(&hub.store, id)?
        .filter(|d| viewer.sees_node(&d.node))
        .ok_or(FleetError::NotFound("device"))?;
    ScreenshotStore::new(hub.config.shared_dir())
        .latest(&hub.store, &device.id)
        .await?
        .ok_or(FleetError::NotFound("screenshot"))
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use signet_common::permissions::Role;

    use super::*;
    use crate::fleet::reports::tests::event;
    use crate::identity::testing::fixture;
    use crate::tenancy::load_tree;

    fn stored(node: Option<&NodeId>) -> StoredEvent {
        StoredEvent {
            event: event(1, "d-1", "i-1", Utc::now(), None),
            node: node.cloned(),
            received_at: Utc::now(),
            user: None,
        }
    }

    /// T4, U3, U4: a viewer sees devices, alerts and events inside its
    /// domain; events of unattached devices only at root level; a node
    /// filter outside the domain is 404, an empty or oversized one 400.
    #[tokio::test]
    async fn t4_viewer_sees_its_domain_and_filters_are_bounded() {
        let f = fixture().await;
        let north = f.node("n-north", &f.root).await;
        let south = f.node("n-south", &f.root).await;
        let (tree, _) = load_tree(&f.hub.store).unwrap();
        let admin = Viewer::new(f.admin.clone(), tree.clone());
        let northerner = f.user("north", Role::Viewer, &[&north]).await;
        let northern = Viewer::new(northerner, tree);
        assert!(northern.sees_event(&stored(Some(&north))));
        assert!(!northern.sees_event(&stored(Some(&south))));
        assert!(
            !northern.sees_event(&stored(None)),
            "unattached: root level only"
        );
        assert!(admin.sees_event(&stored(None)));
        let scope = admin.under(Some(north.clone())).unwrap();
        assert!(scope.holds(&north) && !scope.holds(&south));
        assert!(matches!(
            northern.under(Some(south.clone())),
            Err(FleetError::NotFound("node"))
        ));
        let list = |node: Option<String>| {
            let filter = FleetFilter {
                node,
                ..FleetFilter::default()
            };
            list(&f.hub, &northern, filter)
        };
        assert_eq!(list(None).unwrap(), b"[]");
        assert!(matches!(
            list(Some(String::new())),
            Err(FleetError::InvalidQuery(_))
        ));
        assert!(matches!(
            list(Some("n".repeat(129))),
            Err(FleetError::InvalidQuery(_))
        ));
        assert!(matches!(
            device(&f.hub, &northern, "d-none"),
            Err(FleetError::NotFound("device"))
        ));
    }

    /// D8: a screenshot is declared as `image/png` (parameters and case
    /// aside) or not at all.
    #[test]
    fn d8_screenshot_media_type() {
        for ok in [None, Some(&b"image/png"[..]), Some(b"IMAGE/PNG; q=1")] {
            assert!(check_screenshot_type(ok).is_ok());
        }
        for bad in [&b"image/jpeg"[..], b"text/plain", b"", b"\xff"] {
            assert!(matches!(
                check_screenshot_type(Some(bad)),
                Err(FleetError::NotPngType)
            ));
        }
    }
}
