//! Input checks of the access-group service: the shape of what an
//! operator, an invitee, a signup or the shop sends, before any record is
//! read.
//!
//! Owns: the bounds and wording of every 400 the service gives, and the
//! group-full rule ([`check_room`]). Must not: read the store; a check that
//! rests on stored state takes what was read inside the transaction.

use std::collections::BTreeSet;

use chrono::{DateTime, TimeDelta, Utc};
use signet_common::license::{LicenseError, LicenseTerms};

use super::error::AccessGroupError;
use super::{
    GroupItem, MAX_CATEGORIES, MAX_CATEGORY_LEN, MAX_GROUP_NAME_LEN, MAX_INVITE_TTL_SECS,
    MAX_ITEM_CATEGORIES, MAX_ITEMS, MAX_MEMBERS, MAX_ORDER_ID_LEN, MAX_SIGNUP_DOMAINS,
    MIN_INVITE_TTL_SECS, is_valid_id, normalize_domain,
};
use crate::identity::MAX_NAME_LEN;
use crate::identity::names;
use crate::values::{InvalidName, Name};

/// A group name ([`Name`], at most [`MAX_GROUP_NAME_LEN`] bytes); returned
/// trimmed.
///
/// # Errors
/// [`InvalidName`] (`invalid_name`).
pub fn group_name(name: &str) -> Result<String, InvalidName> {
    Ok(Name::parse(name, MAX_GROUP_NAME_LEN)?
        .as_str()
        .trim()
        .to_owned())
}

/// The terms are coherent and the hub may sign them (S6: no offline grace
/// below [`signet_common::license::MIN_OFFLINE_GRACE_SECS`], which a device
/// would honour and go dark between two `hub_time`s).
///
/// # Errors
/// `offline_grace_too_short` or `invalid_license`.
pub fn license(license: &LicenseTerms) -> Result<(), AccessGroupError> {
    license.check_issuable().map_err(|e| match e {
        LicenseError::OfflineGraceTooShort { secs, min } => AccessGroupError::invalid(
            "offline_grace_too_short",
            format!(
                "license.offline_grace_secs is {secs}: it must be at least {min} seconds \
                 (three hub_time intervals) when license.allow_offline is true"
            ),
        ),
        e => AccessGroupError::invalid("invalid_license", e.to_string()),
    })
}

/// A group's categories: at most [`MAX_CATEGORIES`], each 1 to
/// [`MAX_CATEGORY_LEN`] bytes, none twice; returned trimmed.
///
/// # Errors
/// `invalid_categories`.
pub fn categories(categories: &[String]) -> Result<Vec<String>, AccessGroupError> {
    let invalid = |message: String| AccessGroupError::invalid("invalid_categories", message);
    if categories.len() > MAX_CATEGORIES {
        return Err(invalid(format!("at most {MAX_CATEGORIES} categories")));
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(categories.len());
    for category in categories {
        let category = category.trim();
        if category.is_empty()
            || category.len() > MAX_CATEGORY_LEN
            || category.chars().any(char::is_control)
        {
            return Err(invalid(format!(
                "a category must be 1 to {MAX_CATEGORY_LEN} bytes of text"
            )));
        }
        if !seen.insert(category.to_owned()) {
            return Err(invalid(format!("category {category:?} is listed twice")));
        }
        out.push(category.to_owned());
    }
    Ok(out)
}

/// The e-mail domains allowed to self-sign-up (L6), normalized, each once.
///
/// # Errors
/// `invalid_signup_domains`.
pub fn signup_domains(domains: &[String]) -> Result<Vec<String>, AccessGroupError> {
    if domains.len() > MAX_SIGNUP_DOMAINS {
        return Err(AccessGroupError::invalid(
            "invalid_signup_domains",
            format!("at most {MAX_SIGNUP_DOMAINS} signup domains"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(domains.len());
    for domain in domains {
        let normalized = normalize_domain(domain).ok_or_else(|| {
            AccessGroupError::invalid(
                "invalid_signup_domains",
                format!(
                    "{:?} is not a domain name",
                    domain.chars().take(64).collect::<String>()
                ),
            )
        })?;
        if !out.contains(&normalized) {
            out.push(normalized);
        }
    }
    Ok(out)
}

/// Self-signup needs at least one allowed domain (L6).
///
/// # Errors
/// `signup_domains_required`.
pub fn signup_settings(self_signup: bool, domains: &[String]) -> Result<(), AccessGroupError> {
    if self_signup && domains.is_empty() {
        return Err(AccessGroupError::invalid(
            "signup_domains_required",
            "self-signup needs at least one allowed e-mail domain (L6)",
        ));
    }
    Ok(())
}

/// A member's display name: at most [`MAX_NAME_LEN`] bytes of text.
///
/// # Errors
/// `invalid_name`.
pub fn display_name(name: Option<&str>) -> Result<(), AccessGroupError> {
    if let Some(name) = name
        && (name.len() > MAX_NAME_LEN || name.chars().any(char::is_control))
    {
        return Err(AccessGroupError::invalid(
            "invalid_name",
            format!("a display name must be at most {MAX_NAME_LEN} bytes of text"),
        ));
    }
    Ok(())
}

/// An e-mail address (S13, [`names::check_email`]).
///
/// # Errors
/// `invalid_email`.
pub fn email(email: &str) -> Result<(), AccessGroupError> {
    names::check_email(email).map_err(|e| AccessGroupError::invalid("invalid_email", e.to_string()))
}

/// A member's own end date must come after its join (L2).
///
/// # Errors
/// `invalid_end_date`.
pub fn end_date(
    joined_at: DateTime<Utc>,
    end_date: Option<DateTime<Utc>>,
) -> Result<(), AccessGroupError> {
    match end_date {
        Some(end) if end <= joined_at => Err(AccessGroupError::invalid(
            "invalid_end_date",
            format!("the end date {end} is not after the join date {joined_at}"),
        )),
        _ => Ok(()),
    }
}

/// An invite or confirmation token as sent: 1 to 128 bytes.
///
/// # Errors
/// `invalid_token`.
pub fn token(token: &str) -> Result<(), AccessGroupError> {
    if token.is_empty() || token.len() > 128 {
        return Err(AccessGroupError::invalid(
            "invalid_token",
            "a token is 1 to 128 bytes",
        ));
    }
    Ok(())
}

/// An invite's lifetime: [`MIN_INVITE_TTL_SECS`] to [`MAX_INVITE_TTL_SECS`].
///
/// # Errors
/// `invalid_expiry`.
pub fn invite_ttl(ttl: u64) -> Result<(), AccessGroupError> {
    if !(MIN_INVITE_TTL_SECS..=MAX_INVITE_TTL_SECS).contains(&ttl) {
        return Err(AccessGroupError::invalid(
            "invalid_expiry",
            format!(
                "expires_in_secs must be {MIN_INVITE_TTL_SECS} to {MAX_INVITE_TTL_SECS} seconds"
            ),
        ));
    }
    Ok(())
}

/// A shop order id: 1 to [`MAX_ORDER_ID_LEN`] bytes of text without '/';
/// returned trimmed.
///
/// # Errors
/// `invalid_order_id`.
pub fn order_id(order_id: &str) -> Result<String, AccessGroupError> {
    let order_id = order_id.trim();
    if order_id.is_empty()
        || order_id.len() > MAX_ORDER_ID_LEN
        || order_id.chars().any(char::is_control)
        || order_id.contains('/')
    {
        return Err(AccessGroupError::invalid(
            "invalid_order_id",
            format!("an order id is 1 to {MAX_ORDER_ID_LEN} bytes of text without '/'"),
        ));
    }
    Ok(order_id.to_owned())
}

/// The shape of a new item list: at most [`MAX_ITEMS`], valid ids, none
/// twice, at most [`MAX_ITEM_CATEGORIES`] categories each.
///
/// # Errors
/// `too_many_items` or `invalid_item`.
pub fn item_list(items: &[GroupItem]) -> Result<(), AccessGroupError> {
    if items.len() > MAX_ITEMS {
        return Err(AccessGroupError::invalid(
            "too_many_items",
            format!("a group holds at most {MAX_ITEMS} items"),
        ));
    }
    let invalid = |message: String| AccessGroupError::invalid("invalid_item", message);
    let mut seen = BTreeSet::new();
    for item in items {
        let id = item.id.as_str();
        if !is_valid_id(id) {
            let shown: String = id.chars().take(64).collect();
            return Err(invalid(format!("{shown:?} is not an item id")));
        }
        if !seen.insert(id.to_owned()) {
            return Err(invalid(format!("item {id} is listed twice")));
        }
        if item.categories.len() > MAX_ITEM_CATEGORIES {
            return Err(invalid(format!(
                "item {id} has more than {MAX_ITEM_CATEGORIES} categories"
            )));
        }
    }
    Ok(())
}

/// The group-full rule (L1 bounds): a group with `current` current members
/// takes one more only below [`MAX_MEMBERS`].
///
/// # Errors
/// `group_full`.
pub fn check_room(current: usize) -> Result<(), AccessGroupError> {
    if current >= MAX_MEMBERS {
        return Err(AccessGroupError::conflict(
            "group_full",
            format!("a group holds at most {MAX_MEMBERS} members"),
        ));
    }
    Ok(())
}

/// `secs` seconds as a time span (saturating).
#[must_use]
pub fn seconds(secs: u64) -> TimeDelta {
    i64::try_from(secs)
        .ok()
        .and_then(TimeDelta::try_seconds)
        .unwrap_or(TimeDelta::MAX)
}
