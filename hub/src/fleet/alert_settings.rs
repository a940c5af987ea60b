//! Alert thresholds per node (U4): how long a device may be offline or out
//! of sync before the alert loop raises an alert. The hub's configuration
//! (`alert_offline_secs`, `alert_out_of_sync_secs`) is the default; a node
//! may set either threshold for its devices and those below it, the nearest
//! node on the way to the root winning; set at the root, a threshold holds
//! for the whole hub.
//!
//! Owns: the [`ALERT_SETTINGS`] tree (keyed by node id), the rules of
//! changing it — Manager and above, at a node inside their domain, 1 s to
//! 30 days — with its audit entry, and [`Thresholds`], what the alert loop
//! reads each pass. Must not: raise or clear alerts ([`super::alerts`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use signet_common::ids::NodeId;
use signet_common::permissions::{NodeTree, Role};

use crate::app::Hub;
use crate::config::Config;
use crate::identity::{Actor, RoleTooLow};
use crate::store::{Store, StoreError};
use crate::tenancy::{load_tree, load_tree_in};

/// Thresholds set at nodes, by node id.
pub const ALERT_SETTINGS: &str = "fleet_alert_settings";
/// The longest threshold, in seconds (as the configuration's).
pub const MAX_THRESHOLD_SECS: u64 = 30 * 86_400;

/// The thresholds a node sets; an absent one is inherited. Also the body
/// of `PUT /api/v1/alert-settings/{node}` (both absent: inherit both).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertThresholds {
    /// Offline longer than this raises an alert, in seconds (1 to 2592000).
    #[serde(default)]
    pub offline_secs: Option<u64>,
    /// Out of sync longer than this raises an alert, in seconds (1 to 2592000).
    #[serde(default)]
    pub out_of_sync_secs: Option<u64>,
}

/// The thresholds one node sets.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NodeAlertSettings {
    /// The node.
    #[schema(value_type = String)]
    pub node: NodeId,
    /// What it sets.
    #[serde(flatten)]
    pub thresholds: AlertThresholds,
}

/// The alert settings a caller sees.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AlertSettingsView {
    /// The hub's default offline threshold (configuration), in seconds.
    pub default_offline_secs: u64,
    /// The hub's default out-of-sync threshold (configuration), in seconds.
    pub default_out_of_sync_secs: u64,
    /// The nodes inside or above the caller's domain that set a threshold.
    pub nodes: Vec<NodeAlertSettings>,
}

/// Why a change of alert settings was refused.
#[derive(Debug, thiserror::Error)]
pub enum AlertSettingsError {
    /// The node is absent or outside the actor's domain (404).
    #[error("node not found")]
    NotFound,
    /// Below Manager (403).
    #[error(transparent)]
    RoleTooLow(#[from] RoleTooLow),
    /// A threshold out of bounds (400 `invalid_threshold`).
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The effective thresholds of every node, as one pass of the alert loop
/// reads them.
#[derive(Debug, Clone)]
pub struct Thresholds {
    tree: Option<NodeTree>,
    set: BTreeMap<NodeId, AlertThresholds>,
    defaults: (u64, u64),
}

impl Thresholds {
    /// The thresholds stored now, over `config`'s defaults. A store whose
    /// nodes do not form a tree gives the defaults everywhere.
    ///
    /// # Errors
    /// When the store fails.
    pub fn load(store: &Store, config: &Config) -> Result<Self, StoreError> {
        let set = store
            .scan_keyed::<AlertThresholds>(ALERT_SETTINGS, "")?
            .into_iter()
            .map(|(node, t)| (NodeId::from(node.as_str()), t))
            .collect();
        Ok(Self {
            tree: load_tree(store).ok().map(|(tree, _)| tree),
            set,
            defaults: (config.alert_offline_secs, config.alert_out_of_sync_secs),
        })
    }

    /// `(offline, out_of_sync)` seconds for devices at `node`: each from the
    /// nearest node on its path to the root that sets it, else the default.
    #[must_use]
    pub fn at(&self, node: &NodeId) -> (u64, u64) {
        let (mut offline, mut out_of_sync) = (None, None);
        if let Some(tree) = &self.tree {
            for id in tree.path_to_root(node) {
                if let Some(t) = self.set.get(id) {
                    offline = offline.or(t.offline_secs);
                    out_of_sync = out_of_sync.or(t.out_of_sync_secs);
                }
            }
        }
        (
            offline.unwrap_or(self.defaults.0),
            out_of_sync.unwrap_or(self.defaults.1),
        )
    }
}

/// The settings the actor sees: the defaults, and every node inside or
/// above their domain that sets a threshold.
///
/// # Errors
/// When the store fails.
pub fn settings(hub: &Hub, actor: &Actor) -> Result<AlertSettingsView, AlertSettingsError> {
    let (tree, _) = load_tree(&hub.store)?;
    let nodes = hub
        .store
        .scan_keyed::<AlertThresholds>(ALERT_SETTINGS, "")?
        .into_iter()
        .map(|(node, thresholds)| NodeAlertSettings {
            node: NodeId::from(node.as_str()),
            thresholds,
        })
        .filter(|s| actor.sees_at_or_above(&tree, &s.node))
        .collect();
    Ok(AlertSettingsView {
        default_offline_secs: hub.config.alert_offline_secs,
        default_out_of_sync_secs: hub.config.alert_out_of_sync_secs,
        nodes,
    })
}

/// Sets the thresholds of `node` (Manager+, inside the actor's domain);
/// both absent removes them, so the node inherits again. Takes effect at
/// the alert loop's next pass.
///
/// # Errors
/// [`AlertSettingsError`] saying why not; nothing changed then.
pub async fn set(
    hub: &Hub,
    actor: &Actor,
    node: &str,
    thresholds: AlertThresholds,
) -> Result<NodeAlertSettings, AlertSettingsError> {
    actor.require(Role::Manager)?;
    for (name, value) in [
        ("offline_secs", thresholds.offline_secs),
        ("out_of_sync_secs", thresholds.out_of_sync_secs),
    ] {
        if value.is_some_and(|v| !(1..=MAX_THRESHOLD_SECS).contains(&v)) {
            return Err(AlertSettingsError::Invalid(format!(
                "{name} must be 1 to {MAX_THRESHOLD_SECS} seconds (30 days)"
            )));
        }
    }
    let node = NodeId::from(node);
    let now = hub.now();
    hub.store
        .transact(|tx| {
            let (tree, _) = load_tree_in(tx)?;
            if !tree.contains(&node) || !actor.sees(&tree, &node) {
                return Err(AlertSettingsError::NotFound);
            }
            let before: Option<AlertThresholds> = tx.get(ALERT_SETTINGS, node.as_str())?;
            if thresholds == AlertThresholds::default() {
                tx.delete(ALERT_SETTINGS, node.as_str());
            } else {
                tx.put(ALERT_SETTINGS, node.as_str(), &thresholds)?;
            }
            let detail = serde_json::json!({"from": before, "to": thresholds});
            actor
                .audit(
                    now,
                    "alert_settings.update",
                    node.as_str(),
                    Some(node.clone()),
                    detail,
                )
                .put(tx)?;
            Ok(NodeAlertSettings {
                node: node.clone(),
                thresholds: thresholds.clone(),
            })
        })
        .await
}
