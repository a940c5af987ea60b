//! Which licensed content does not reach a device, and why (L2, U4): what
//! the fleet view shows for a device whose license refuses it, instead of a
//! silent 404 and "in sync".
//!
//! Owns: [`refusals`] ([`judged`]) and the reason codes. Must not: decide access itself
//! — the reason is [`signet_common::license::check_access`]'s, with the
//! country of the device's node ([`crate::tenancy::locale_of`]), exactly as
//! the content route and the device judge it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use signet_common::ids::{AccessGroupId, DeviceId, ItemId, NodeId};
use signet_common::license::{Denied, check_access};

use super::{MemberRef, items_of, memberships_of};
use crate::store::{Store, StoreError};

/// The most item ids one refusal lists (`item_count` has them all).
pub const MAX_LISTED_ITEMS: usize = 20;

/// One access group whose content a device may not play, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LicenceRefusal {
    /// The access group.
    #[schema(value_type = String)]
    pub group: AccessGroupId,
    /// Its name.
    pub group_name: String,
    /// Its items (at most [`MAX_LISTED_ITEMS`]).
    #[schema(value_type = Vec<String>)]
    pub items: Vec<ItemId>,
    /// How many items it holds.
    pub item_count: usize,
    /// `licence_country` (the device's country is not allowed, or unknown
    /// while the license lists countries), `licence_ended`,
    /// `licence_not_started` or `licence_invalid`.
    pub code: String,
    /// The reason, for a human.
    pub reason: String,
}

impl LicenceRefusal {
    /// Whether the refusal is one the device cannot outgrow: content sent
    /// to a device that may never play it (a country not allowed, invalid
    /// terms). A window that ended or has not started is the license
    /// working as written.
    #[must_use]
    pub fn is_misdelivery(&self) -> bool {
        self.code == "licence_country" || self.code == "licence_invalid"
    }
}

/// The code of a refusal.
fn code(denied: &Denied) -> &'static str {
    match denied {
        Denied::CountryNotAllowed { .. } | Denied::CountryUnknown => "licence_country",
        Denied::Ended(_) => "licence_ended",
        Denied::NotYetStarted { .. } => "licence_not_started",
        Denied::InvalidTerms(_) => "licence_invalid",
    }
}

/// Every access group with content that `device`, attached at `node`, is a
/// current, active member of but may not play at `now`, with why. The
/// node's country is read only when a license lists countries.
///
/// # Errors
/// When the store fails.
pub fn refusals(
    store: &Store,
    device: &DeviceId,
    node: &NodeId,
    now: DateTime<Utc>,
) -> Result<Vec<LicenceRefusal>, StoreError> {
    Ok(judged(store, device, node, now)?.0)
}

/// [`refusals`], and every access group whose licence refuses `device`
/// (a current, active member) at `now`, with content or not: the only
/// groups whose items its refusals rest on (X3: the fleet index reads a
/// device again for an item change of these alone).
///
/// # Errors
/// When the store fails.
pub fn judged(
    store: &Store,
    device: &DeviceId,
    node: &NodeId,
    now: DateTime<Utc>,
) -> Result<(Vec<LicenceRefusal>, Vec<AccessGroupId>), StoreError> {
    let member = MemberRef::Device {
        device_id: device.clone(),
    };
    let mut country: Option<Option<String>> = None;
    let (mut refused, mut denied_groups) = (Vec::new(), Vec::new());
    for (group, record) in memberships_of(store, &member)? {
        if !record.is_current() || !record.active {
            continue;
        }
        if country.is_none() && group.license.allowed_countries.is_some() {
            country = Some(crate::tenancy::locale_of(store, node)?.country);
        }
        let here = country.as_ref().and_then(Option::as_deref);
        let Err(denied) = check_access(&group.license, &record.membership, here, now) else {
            continue;
        };
        denied_groups.push(group.id.clone());
        let items = items_of(store, &group.id)?;
        if items.is_empty() {
            continue;
        }
        refused.push(LicenceRefusal {
            code: code(&denied).to_owned(),
            reason: format!("access group {:?}: {denied}", group.name),
            item_count: items.len(),
            items: (items.into_iter().take(MAX_LISTED_ITEMS))
                .map(|i| i.id)
                .collect(),
            group: group.id,
            group_name: group.name,
        });
    }
    Ok((refused, denied_groups))
}
