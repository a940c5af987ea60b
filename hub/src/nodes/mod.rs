//! Node administration (T1–T4): listing, creating, changing and deleting
//! the nodes of the tenancy tree. It sits above the domains whose records
//! hang on a node (identity, permission and access groups, content,
//! schedules), because deleting a node asks each of them, through its own
//! repository function inside the delete's transaction, whether anything
//! of theirs lives there; [`crate::tenancy`] keeps the tree model below
//! them all.
//!
//! Owns: the rules of node changes — Manager and above, inside the actor's
//! domain (anything outside is "not found", T4); never a child under a node
//! that holds devices (T1); a root of the actor's own domain is deleted only
//! from above; only an empty leaf is deleted — and their audit entries.
//! Each decision reads the tree and the facts it rests on inside its
//! transaction. Must not: know HTTP.

use chrono_tz::Tz;
use signet_common::ids::NodeId;
use signet_common::permissions::{NodeTree, Role};

use crate::app::Hub;
use crate::identity::{Actor, RoleTooLow, names, new_id};
use crate::store::{StoreError, Tx};
use crate::tenancy::views::{CreateNode, NodeView, UpdateNode};
use crate::tenancy::{
    MAX_NODE_NAME_LEN, MAX_REGION_LEN, NODES, Node, NodeLocale, holds_devices_in, load_tree,
    load_tree_in, normalize_country, put_node,
};
use crate::values::{InvalidName, Name};

mod moving;

/// Why a node operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Absent, or outside the actor's domain (404, T4).
    #[error("node not found")]
    NotFound,
    /// The actor's role is too low (403).
    #[error(transparent)]
    RoleTooLow(#[from] RoleTooLow),
    /// The name is not a display name (400 `invalid_name`).
    #[error(transparent)]
    InvalidName(#[from] InvalidName),
    /// A field is not acceptable (400 with `code`).
    #[error("{message}")]
    Invalid {
        /// The machine code.
        code: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Not allowed (403).
    #[error("{0}")]
    Forbidden(&'static str),
    /// Conflicts with the tree as it is (409 with `code`).
    #[error("{message}")]
    Conflict {
        /// The machine code.
        code: &'static str,
        /// What conflicts.
        message: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(code: &'static str, message: impl Into<String>) -> NodeError {
    NodeError::Invalid {
        code,
        message: message.into(),
    }
}

fn conflict(code: &'static str, message: impl Into<String>) -> NodeError {
    NodeError::Conflict {
        code,
        message: message.into(),
    }
}

/// A time zone as given: an IANA name.
fn check_time_zone(name: &str) -> Result<Tz, NodeError> {
    name.parse::<Tz>().map_err(|_| {
        invalid(
            "invalid_time_zone",
            format!("{name:?} is not an IANA time zone name (e.g. Europe/Berlin)"),
        )
    })
}

/// A country as given: two ASCII letters (stored upper case).
fn check_country(country: &str) -> Result<String, NodeError> {
    normalize_country(country).ok_or_else(|| {
        invalid(
            "invalid_country",
            "country must be an ISO 3166-1 alpha-2 code such as DE",
        )
    })
}

/// A region as given: 1 to 128 bytes of text.
fn check_region(region: &str) -> Result<String, NodeError> {
    let region = region.trim();
    if region.is_empty() || region.len() > MAX_REGION_LEN || region.chars().any(char::is_control) {
        return Err(invalid(
            "invalid_region",
            format!("region must be 1 to {MAX_REGION_LEN} bytes of text"),
        ));
    }
    Ok(region.to_owned())
}

/// An approval address as given (S13).
fn check_email(email: &str) -> Result<(), NodeError> {
    names::check_email(email).map_err(|e| invalid("invalid_email", e.to_string()))
}

/// A node name as stored: a [`Name`], trimmed.
fn node_name(raw: &str) -> Result<String, NodeError> {
    Ok(Name::parse(raw, MAX_NODE_NAME_LEN)?
        .as_str()
        .trim()
        .to_owned())
}

/// A requested locale change: `None` keeps, `Some(None)` clears (`""`),
/// `Some(Some(v))` sets; refuses bad values before anything changes.
fn locale_change<T>(
    value: Option<&str>,
    check: impl Fn(&str) -> Result<T, NodeError>,
) -> Result<Option<Option<T>>, NodeError> {
    value
        .map(|v| {
            if v.is_empty() {
                Ok(None)
            } else {
                check(v).map(Some)
            }
        })
        .transpose()
}

/// The node `id` if the actor sees it in `tree`, read in `tx`.
fn visible_in(tx: &mut Tx, actor: &Actor, tree: &NodeTree, id: &NodeId) -> Result<Node, NodeError> {
    if !actor.sees(tree, id) {
        return Err(NodeError::NotFound);
    }
    tx.get(NODES, id.as_str())?.ok_or(NodeError::NotFound)
}

/// Nodes inside the actor's domain.
///
/// # Errors
/// When the store fails.
pub fn list_nodes(hub: &Hub, actor: &Actor) -> Result<Vec<NodeView>, NodeError> {
    let (tree, nodes) = load_tree(&hub.store)?;
    Ok(nodes
        .iter()
        .filter(|n| actor.sees(&tree, &n.id))
        .map(|n| NodeView::of(n, tree.is_leaf(&n.id)))
        .collect())
}

/// One node inside the actor's domain.
///
/// # Errors
/// [`NodeError::NotFound`] when absent or not visible.
pub fn get_node(hub: &Hub, actor: &Actor, id: &str) -> Result<NodeView, NodeError> {
    let (tree, nodes) = load_tree(&hub.store)?;
    nodes
        .iter()
        .find(|n| n.id.as_str() == id && actor.sees(&tree, &n.id))
        .map(|n| NodeView::of(n, tree.is_leaf(&n.id)))
        .ok_or(NodeError::NotFound)
}

/// Creates a node under a parent inside the actor's domain (Manager+);
/// never under a node that holds devices (T1).
///
/// # Errors
/// [`NodeError`] saying why not.
pub async fn create_node(
    hub: &Hub,
    actor: &Actor,
    request: CreateNode,
) -> Result<NodeView, NodeError> {
    actor.require(Role::Manager)?;
    let name = node_name(&request.name)?;
    if let Some(email) = &request.content_manager_email {
        check_email(email)?;
    }
    let locale = NodeLocale {
        time_zone: request
            .time_zone
            .as_deref()
            .map(check_time_zone)
            .transpose()?,
        country: request.country.as_deref().map(check_country).transpose()?,
        region: request.region.as_deref().map(check_region).transpose()?,
    };
    let id = NodeId::new(new_id("n-"));
    let now = hub.now();
    hub.store
        .transact(|tx| {
            let (tree, _) = load_tree_in(tx)?;
            let parent = visible_in(tx, actor, &tree, &request.parent)?;
            if holds_devices_in(tx, &parent.id)? {
                return Err(conflict(
                    "node_has_devices",
                    format!(
                        "node {} holds devices: devices attach only to leaves (T1)",
                        parent.id
                    ),
                ));
            }
            let node = Node {
                id: id.clone(),
                parent: Some(parent.id.clone()),
                name: name.clone(),
                restricted: request.restricted,
                created_by: Some(actor.user.id.clone()),
                created_at: now,
                content_manager_email: request.content_manager_email.clone(),
                strict_feeds: request.strict_feeds,
                created_at_root_level: actor.is_root_level(&tree),
                locale: locale.clone(),
            };
            put_node(tx, &node)?;
            let detail = serde_json::json!({"parent": parent.id, "name": node.name,
                "restricted": node.restricted, "time_zone": node.locale.time_zone.map(|tz| tz.name()),
                "country": node.locale.country, "region": node.locale.region});
            actor
                .audit(now, "node.create", id.as_str(), Some(id.clone()), detail)
                .put(tx)?;
            Ok(NodeView::of(&node, true))
        })
        .await
}

/// Renames a node or changes its approval address, strict mode, time zone
/// or location; moves it under another parent or marks it restricted or
/// not ([`moving`]'s rules) (Manager+).
///
/// # Errors
/// [`NodeError`] saying why not.
pub async fn update_node(
    hub: &Hub,
    actor: &Actor,
    id: &str,
    request: UpdateNode,
) -> Result<NodeView, NodeError> {
    actor.require(Role::Manager)?;
    let name = request.name.as_deref().map(node_name).transpose()?;
    if let Some(email) = request
        .content_manager_email
        .as_deref()
        .filter(|e| !e.is_empty())
    {
        check_email(email)?;
    }
    let time_zone = locale_change(request.time_zone.as_deref(), check_time_zone)?;
    let country = locale_change(request.country.as_deref(), check_country)?;
    let region = locale_change(request.region.as_deref(), check_region)?;
    let id = NodeId::from(id);
    let now = hub.now();
    hub.store
        .transact(|tx| {
            let (tree, _) = load_tree_in(tx)?;
            let mut node = visible_in(tx, actor, &tree, &id)?;
            let from = node.parent.clone();
            if let Some(parent) = request.parent.as_ref().filter(|p| node.parent.as_ref() != Some(*p)) {
                let parent = visible_in(tx, actor, &tree, parent)?;
                moving::check_move(tx, actor, &tree, &node, &parent)?;
                node.parent = Some(parent.id);
            }
            if let Some(restricted) = request.restricted.filter(|r| *r != node.restricted) {
                moving::check_restricted_change(actor, &tree, &node)?;
                node.restricted = restricted;
            }
            if let Some(time_zone) = time_zone {
                node.locale.time_zone = time_zone;
            }
            if let Some(country) = &country {
                node.locale.country.clone_from(country);
            }
            if let Some(region) = &region {
                node.locale.region.clone_from(region);
            }
            if let Some(name) = &name {
                node.name.clone_from(name);
            }
            if let Some(email) = &request.content_manager_email {
                node.content_manager_email = (!email.is_empty()).then(|| email.clone());
            }
            if let Some(strict) = request.strict_feeds {
                node.strict_feeds = strict;
            }
            put_node(tx, &node)?;
            let detail = serde_json::json!({"name": node.name, "parent": {"from": from, "to": node.parent},
                "restricted": node.restricted,
                "content_manager_email": node.content_manager_email, "strict_feeds": node.strict_feeds,
                "time_zone": node.locale.time_zone.map(|tz| tz.name()),
                "country": node.locale.country, "region": node.locale.region});
            actor
                .audit(now, "node.update", id.as_str(), Some(id.clone()), detail)
                .put(tx)?;
            Ok(NodeView::of(&node, tree.is_leaf(&node.id)))
        })
        .await
}

/// Deletes a leaf node with no devices, no user's domain, no groups, content
/// or schedules (Manager+; a domain root only from above it).
///
/// # Errors
/// [`NodeError`] saying why not.
pub async fn delete_node(hub: &Hub, actor: &Actor, id: &str) -> Result<(), NodeError> {
    actor.require(Role::Manager)?;
    let id = NodeId::from(id);
    let now = hub.now();
    hub.store
        .transact(|tx| {
            let (tree, _) = load_tree_in(tx)?;
            let node = visible_in(tx, actor, &tree, &id)?;
            refuse_delete(tx, actor, &tree, &node)?;
            tx.delete(NODES, node.id.as_str());
            // M3: the custom attributes defined here go with the node (no
            // item lives here any more to hold a value of them).
            let attributes = crate::content::actions::repo::remove_defs_at_in(tx, &node.id)?;
            actor
                .audit(
                    now,
                    "node.delete",
                    node.id.as_str(),
                    node.parent.clone(),
                    serde_json::json!({"name": node.name, "attribute_definitions": attributes}),
                )
                .put(tx)?;
            Ok::<_, NodeError>(())
        })
        .await?;
    // Devices below it once followed its manifest: no device is attached
    // to it or below it now, so its manifest is withdrawn (S4) and the
    // broker may forget its role (S7).
    crate::publish::forget_group(hub, id.as_str()).await;
    Ok(())
}

/// Why `node` cannot be deleted, if it cannot. Every fact is read in
/// `tx`, each through the repository of the module that owns it, so the
/// refusal and the delete rest on the same state.
fn refuse_delete(
    tx: &mut Tx,
    actor: &Actor,
    tree: &NodeTree,
    node: &Node,
) -> Result<(), NodeError> {
    if node.parent.is_none() || actor.user.domain.contains(&node.id) {
        return Err(NodeError::Forbidden(
            "a domain root can only be deleted from above it",
        ));
    }
    if !tree.is_leaf(&node.id) {
        return Err(conflict("node_not_empty", "the node has children"));
    }
    if holds_devices_in(tx, &node.id)? {
        return Err(conflict("node_not_empty", "the node holds devices"));
    }
    if !crate::permission_groups::groups_at_in(tx, &node.id)?.is_empty()
        || !crate::access_groups::groups_at_in(tx, &node.id)?.is_empty()
    {
        return Err(conflict(
            "node_in_use",
            "permission or access groups live at the node: delete or move them first",
        ));
    }
    let held = crate::content::items_at_in(tx, &node.id)?.len()
        + crate::schedules::playlists_at_in(tx, &node.id)?.len()
        + crate::schedules::schedules_at_in(tx, &node.id)?.len();
    if held > 0 {
        return Err(conflict(
            "node_in_use",
            format!(
                "{held} content items, templates, playlists or schedules live at the node: delete or copy them first"
            ),
        ));
    }
    if let Some(user) = crate::identity::users_in(tx)?
        .iter()
        .find(|u| u.domain.contains(&node.id))
    {
        return Err(conflict(
            "node_in_use",
            format!("the node is in the domain of user {}", user.name),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
