//! Custom attributes (M3, P7): typed key/values defined per node and
//! inherited down the tree, set on items by users holding
//! `update_custom_attributes`.
//!
//! Rules: Manager and above define attributes at nodes inside their domain
//! (404 elsewhere); a key is defined once on any root-to-leaf path (409
//! `attribute_defined_elsewhere`), at most [`MAX_DEFS_PER_NODE`] per node.
//! Redefining keeps the values that fit the new type and is refused while
//! any does not (409 `attribute_in_use`); removing a definition removes its
//! values below. The attributes of an item — a content item (media or
//! template) or an item above content read through [`Subjects`] (a
//! playlist) — are those defined at its node and above; anyone who views
//! the item reads them. Setting values needs
//! `update_custom_attributes` on an item the user views (P5); every value is
//! checked against its type before anything is written (400
//! `unknown_attribute`, `invalid_attribute_value`: nothing changes); `null`
//! clears a value. Every change is audited.
//!
//! Owns: these decisions and the type checks. Must not: know HTTP.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use signet_common::ids::NodeId;
use signet_common::permissions::{NodeTree, Permission, Role};

use super::view::{
    AttributeDef, AttributeKind, AttributeType, AttributeValue, AttributeView, DefineAttribute,
    SetAttributes,
};
use super::{ActionError, ContentError, repo, text};
use crate::app::Hub;
use crate::content::subjects::{Subject, Subjects};
use crate::content::visibility::Viewer;
use crate::identity::Actor;
use crate::store::Tx;
use crate::tenancy::load_tree_in;

/// The most attributes defined at one node.
pub const MAX_DEFS_PER_NODE: usize = 64;
/// The longest key, in bytes.
pub const MAX_KEY_LEN: usize = 64;
/// The longest string value, in characters.
pub const MAX_STRING_LEN: usize = 1000;
/// The most values of an enum.
pub const MAX_ENUM_VALUES: usize = 100;

/// A key: a lowercase ASCII letter, then lowercase letters, digits or `_`.
///
/// # Errors
/// 400 `invalid_attribute_key`.
fn check_key(key: &str) -> Result<(), ActionError> {
    let mut chars = key.chars();
    let first = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if first && rest && key.len() <= MAX_KEY_LEN {
        Ok(())
    } else {
        Err(ActionError::invalid(
            "invalid_attribute_key",
            format!(
                "an attribute key is a lowercase letter, then up to {} lowercase letters, \
                 digits or _",
                MAX_KEY_LEN - 1
            ),
        ))
    }
}

/// The type a definition asks for, checked.
fn checked_type(request: &DefineAttribute) -> Result<AttributeType, ActionError> {
    let invalid = |m: &str| ActionError::invalid("invalid_attribute_def", m);
    let kind = match (request.kind, &request.values) {
        (AttributeKind::Enum, Some(values)) => {
            let distinct: BTreeSet<&String> = values.iter().collect();
            let fits = values
                .iter()
                .all(|v| text(v, 100, ("value", "x")).is_ok_and(|t| t == *v));
            if values.is_empty() || values.len() > MAX_ENUM_VALUES {
                return Err(invalid("an enum has 1 to 100 values"));
            }
            if distinct.len() != values.len() || !fits {
                return Err(invalid(
                    "enum values are distinct texts of 1 to 100 characters without surrounding spaces",
                ));
            }
            AttributeType::Enum {
                values: values.clone(),
            }
        }
        (AttributeKind::Enum, None) => return Err(invalid("an enum needs its values")),
        (_, Some(_)) => return Err(invalid("only an enum has values")),
        (AttributeKind::String, None) => AttributeType::String,
        (AttributeKind::Number, None) => AttributeType::Number,
        (AttributeKind::Bool, None) => AttributeType::Bool,
        (AttributeKind::Date, None) => AttributeType::Date,
    };
    Ok(kind)
}

/// `value` if it is of type `kind`, else what was expected.
///
/// # Errors
/// What the value should have been.
pub fn check_value(kind: &AttributeType, value: &serde_json::Value) -> Result<(), String> {
    let ok = match kind {
        AttributeType::String => value.as_str().is_some_and(|s| {
            s.chars().count() <= MAX_STRING_LEN
                && !s
                    .chars()
                    .any(|c| c.is_control() && !matches!(c, '\n' | '\t'))
        }),
        AttributeType::Number => value.as_f64().is_some_and(f64::is_finite),
        AttributeType::Bool => value.is_boolean(),
        AttributeType::Date => value
            .as_str()
            .is_some_and(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()),
        AttributeType::Enum { values } => value
            .as_str()
            .is_some_and(|s| values.iter().any(|v| v == s)),
    };
    if ok {
        return Ok(());
    }
    Err(match kind {
        AttributeType::String => {
            format!("a string of at most {MAX_STRING_LEN} characters without control characters")
        }
        AttributeType::Number => "a number".to_owned(),
        AttributeType::Bool => "true or false".to_owned(),
        AttributeType::Date => "a date as YYYY-MM-DD".to_owned(),
        AttributeType::Enum { values } => format!("one of {}", values.join(", ")),
    })
}

/// The definitions that apply at `node`: its own and its ancestors', by key.
fn effective(tree: &NodeTree, defs: Vec<AttributeDef>, node: &NodeId) -> Vec<AttributeDef> {
    let mut defs: Vec<AttributeDef> = defs
        .into_iter()
        .filter(|d| tree.is_within(node, &d.node))
        .collect();
    defs.sort_by(|a, b| a.key.cmp(&b.key));
    defs
}

/// The attributes of definitions and values of `item`.
fn item_view_in(
    tx: &mut Tx,
    tree: &NodeTree,
    item: &Subject,
) -> Result<Vec<AttributeView>, ActionError> {
    let defs = effective(tree, repo::attribute_defs_in(tx)?, &item.node);
    let values = repo::attribute_values_in(tx, &item.id)?;
    Ok(defs
        .into_iter()
        .map(|def| {
            let value = (values.iter())
                .find(|(k, _)| *k == def.key)
                .map(|(_, v)| v.value.clone());
            AttributeView { def, value }
        })
        .collect())
}

/// The attributes that apply at node `id` (its own and inherited), for
/// anyone who sees the node or below it.
///
/// # Errors
/// 404 when the node is not visible.
pub async fn at_node(hub: &Hub, actor: &Actor, id: &str) -> Result<Vec<AttributeDef>, ActionError> {
    let node = NodeId::from(id);
    hub.store
        .transact(|tx| {
            let (tree, _) = load_tree_in(tx)?;
            if !tree.contains(&node) || !actor.sees_at_or_above(&tree, &node) {
                return Err(ActionError::NotFound("node"));
            }
            Ok(effective(&tree, repo::attribute_defs_in(tx)?, &node))
        })
        .await
}

/// Defines (or redefines) attribute `key` at node `id` (Manager+): see the
/// module rules; `above` are the kinds of item above content whose values
/// count too (the caller passes the playlists' port). Returns the
/// definition and whether it is new.
///
/// # Errors
/// 403 below Manager; 404 outside the domain; 400 for a bad key or type;
/// 409 `attribute_defined_elsewhere`, `attribute_in_use`, `too_many_attributes`.
pub async fn define(
    hub: &Hub,
    actor: &Actor,
    (id, key): (&str, &str),
    request: &DefineAttribute,
    above: &[Subjects],
) -> Result<(AttributeDef, bool), ActionError> {
    actor.require(Role::Manager)?;
    check_key(key)?;
    let label = text(&request.label, 256, ("label", "invalid_attribute_def"))?;
    let kind = checked_type(request)?;
    let (node, now) = (NodeId::from(id), hub.now());
    let def = AttributeDef {
        node: node.clone(),
        key: key.to_owned(),
        label,
        kind,
    };
    hub.store
        .transact(|tx| {
            let (tree, _) = load_tree_in(tx)?;
            if !tree.contains(&node) || !actor.sees(&tree, &node) {
                return Err(ActionError::NotFound("node"));
            }
            let defs = repo::attribute_defs_in(tx)?;
            let related = |d: &&AttributeDef| {
                d.node != node && (tree.is_within(&node, &d.node) || tree.is_within(&d.node, &node))
            };
            if let Some(other) = defs.iter().filter(|d| d.key == key).find(related) {
                return Err(ActionError::conflict(
                    "attribute_defined_elsewhere",
                    format!(
                        "{key} is already defined at node {} on this branch",
                        other.node
                    ),
                ));
            }
            let new = !defs.iter().any(|d| d.node == node && d.key == key);
            if new && defs.iter().filter(|d| d.node == node).count() >= MAX_DEFS_PER_NODE {
                return Err(ActionError::conflict(
                    "too_many_attributes",
                    format!("at most {MAX_DEFS_PER_NODE} attributes per node"),
                ));
            }
            for (item, value) in values_below_in(tx, (&tree, above), &node, key)? {
                check_value(&def.kind, &value.value).map_err(|expected| {
                    ActionError::conflict(
                        "attribute_in_use",
                        format!("item {item} holds a {key} that is not {expected}: clear it first"),
                    )
                })?;
            }
            repo::put_attribute_def(tx, &node, key, Some(&def))?;
            let detail = serde_json::json!({"key": key, "definition": def, "new": new});
            let entry = actor.audit(now, "attribute.define", key, Some(node.clone()), detail);
            crate::content::repo::record(tx, entry)?;
            Ok((def.clone(), new))
        })
        .await
}

/// The values of `key` on items at `node` or below, content items and
/// those of the kinds `above`: (item, value).
fn values_below_in(
    tx: &mut Tx,
    (tree, above): (&NodeTree, &[Subjects]),
    node: &NodeId,
    key: &str,
) -> Result<Vec<(String, AttributeValue)>, ActionError> {
    let mut below = Vec::new();
    for (item, value) in repo::values_of_key_in(tx, key)? {
        let mut record = Subjects::Content.record_in(tx, item.as_str())?;
        for kind in above {
            if record.is_some() {
                break;
            }
            record = kind.record_in(tx, item.as_str())?;
        }
        if record.is_some_and(|i| tree.is_within(&i.node, node)) {
            below.push((item.to_string(), value));
        }
    }
    Ok(below)
}

/// Removes attribute `key` from node `id` with its values below, on
/// content items and on items of the kinds `above` (Manager+).
///
/// # Errors
/// 403 below Manager; 404 when the node is outside the domain or the key
/// not defined there.
pub async fn remove(
    hub: &Hub,
    actor: &Actor,
    (id, key): (&str, &str),
    above: &[Subjects],
) -> Result<(), ActionError> {
    actor.require(Role::Manager)?;
    let (node, now) = (NodeId::from(id), hub.now());
    hub.store
        .transact(|tx| {
            let (tree, _) = load_tree_in(tx)?;
            if !tree.contains(&node) || !actor.sees(&tree, &node) {
                return Err(ActionError::NotFound("node"));
            }
            let defs = repo::attribute_defs_in(tx)?;
            if !defs.iter().any(|d| d.node == node && d.key == key) {
                return Err(ActionError::NotFound("attribute"));
            }
            let cleared = values_below_in(tx, (&tree, above), &node, key)?;
            for (item, _) in &cleared {
                repo::put_attribute_value(tx, &item.as_str().into(), key, None)?;
            }
            repo::put_attribute_def(tx, &node, key, None)?;
            let detail = serde_json::json!({"key": key, "values_cleared": cleared.len()});
            let entry = actor.audit(now, "attribute.delete", key, Some(node.clone()), detail);
            crate::content::repo::record(tx, entry)?;
            Ok(())
        })
        .await
}

/// The custom attributes of item `id` of `subjects` as `actor` views it.
///
/// # Errors
/// 404 when the item is not viewable.
pub async fn of_item(
    hub: &Hub,
    actor: &Actor,
    (subjects, id): (Subjects, &str),
) -> Result<Vec<AttributeView>, ActionError> {
    let viewer = Viewer::load(hub, actor)?;
    hub.store
        .transact(|tx| {
            let (tree, _) = load_tree_in(tx)?;
            let (item, _) = subjects
                .viewed_in(tx, &tree, &viewer, id)?
                .ok_or(ContentError::NotFound(subjects.what()))?;
            item_view_in(tx, &tree, &item)
        })
        .await
}

/// Sets or clears custom attribute values of item `id` of `subjects`
/// (`update_custom_attributes`): every value is checked first; a refusal
/// changes nothing. Audited as `content.attributes` for a content item,
/// `{what}.attributes` for an item above content (`playlist.attributes`).
///
/// # Errors
/// As [`Subjects::acting_in`]; 400 `unknown_attribute`, `invalid_attribute_value`,
/// `too_many_attributes`.
pub async fn set(
    hub: &Hub,
    actor: &Actor,
    (subjects, id): (Subjects, &str),
    request: &SetAttributes,
) -> Result<Vec<AttributeView>, ActionError> {
    if request.values.len() > MAX_DEFS_PER_NODE * 4 {
        return Err(ActionError::invalid(
            "too_many_attributes",
            "too many values in one request",
        ));
    }
    let viewer = Viewer::load(hub, actor)?;
    let now = hub.now();
    hub.store
        .transact(|tx| {
            let (tree, _) = load_tree_in(tx)?;
            let permission = Permission::UpdateCustomAttributes;
            let (item, _) = subjects.acting_in(tx, &tree, &viewer, (id, permission))?;
            let defs = effective(&tree, repo::attribute_defs_in(tx)?, &item.node);
            for (key, value) in &request.values {
                let def = (defs.iter().find(|d| d.key == *key)).ok_or_else(|| {
                    let key: String = key.chars().take(64).collect();
                    ActionError::invalid(
                        "unknown_attribute",
                        format!("no attribute {key:?} is defined at the item's node or above"),
                    )
                })?;
                if !value.is_null() {
                    check_value(&def.kind, value).map_err(|expected| {
                        ActionError::invalid(
                            "invalid_attribute_value",
                            format!("{key} must be {expected}"),
                        )
                    })?;
                }
            }
            for (key, value) in &request.values {
                let stored = (!value.is_null()).then(|| AttributeValue {
                    value: value.clone(),
                    set_by: actor.user.id.clone(),
                    set_at: now,
                });
                repo::put_attribute_value(tx, &item.id, key, stored.as_ref())?;
            }
            let detail = serde_json::json!({"values": request.values});
            let node = Some(item.node.clone());
            let action = match item.content {
                Some(_) => "content.attributes".to_owned(),
                None => format!("{}.attributes", subjects.what()),
            };
            let entry = actor.audit(now, &action, item.id.as_str(), node, detail);
            crate::content::repo::record(tx, entry)?;
            item_view_in(tx, &tree, &item)
        })
        .await
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn m3_values_are_checked_against_their_type() {
        let colours = AttributeType::Enum {
            values: vec!["red".into(), "blue".into()],
        };
        for (kind, good, bad) in [
            (AttributeType::String, json!("hello"), json!(3)),
            (AttributeType::Number, json!(2.5), json!("2.5")),
            (AttributeType::Bool, json!(true), json!("true")),
            (
                AttributeType::Date,
                json!("2026-12-03"),
                json!("2026-13-03"),
            ),
            (colours, json!("red"), json!("green")),
        ] {
            assert_eq!(check_value(&kind, &good), Ok(()), "{kind:?}");
            assert!(check_value(&kind, &bad).is_err(), "{kind:?} {bad}");
        }
        let long = "x".repeat(MAX_STRING_LEN + 1);
        assert!(check_value(&AttributeType::String, &json!(long)).is_err());
    }

    #[test]
    fn m3_keys_are_lowercase_identifiers() {
        for good in ["a", "screen_size", "k2"] {
            assert!(check_key(good).is_ok(), "{good}");
        }
        for bad in ["", "2k", "Key", "a-b", "a b", &"a".repeat(MAX_KEY_LEN + 1)] {
            assert!(check_key(bad).is_err(), "{bad}");
        }
    }
}
