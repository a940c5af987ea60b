//! The rules of [`may_play`] (D4, A7, A8, L2, L4, S3, S6); documented on
//! [`super`].
//!
//! Owns: the per-manifest checks and their order. Must not: read a clock or
//! the cache itself.

use chrono::{DateTime, TimeDelta, Utc};

use super::{CONTACT_TOLERANCE_SECS, Cached, DeviceView, Permit, SkipReason};
use crate::approval::ApprovalState;
use crate::documents::{
    DeviceAssignment, GroupKind, GroupManifest, ItemKind, ManifestItem, Unapproved,
};
use crate::ids::{AccessGroupId, ItemId};
use crate::license::{AccessWindow, Denied, LicenseTerms, Limit};

/// D4: may `item` play at `view.now`, and if not, why. `cached` answers what
/// the cache holds for an item; it is never asked about an item that is not
/// approved (A7).
///
/// # Errors
/// The [`SkipReason`] of the first manifest, in view order, that lists the
/// item, when no manifest allows it; [`SkipReason::NotListed`] when none
/// lists it.
pub fn may_play(
    view: &DeviceView<'_>,
    item: &ItemId,
    cached: &dyn Fn(&ManifestItem) -> Cached,
) -> Result<Permit, SkipReason> {
    let mut first_refusal = None;
    for manifest in &view.manifests {
        let Some(listed) = manifest.item(item) else {
            continue;
        };
        match allowed_by(view, manifest, listed, cached) {
            Ok(permit) => return Ok(permit),
            Err(reason) => {
                first_refusal.get_or_insert(reason);
            }
        }
    }
    Err(first_refusal.unwrap_or(SkipReason::NotListed))
}

/// The offline grace that applies to an access group's content (S6): the
/// smaller of the assignment's and the license's, exactly as signed. A
/// license that does not allow offline play contributes
/// [`CONTACT_TOLERANCE_SECS`]: the device must be *in contact*, i.e. have a
/// verified `hub_time` that recent. A signed grace is never raised (the hub
/// refuses to sign one below [`crate::license::MIN_OFFLINE_GRACE_SECS`]).
#[must_use]
pub fn offline_grace(assignment: &DeviceAssignment, terms: &LicenseTerms) -> TimeDelta {
    let license = if terms.allow_offline {
        terms.offline_grace()
    } else {
        TimeDelta::seconds(CONTACT_TOLERANCE_SECS)
    };
    assignment.offline_grace().min(license)
}

/// Whether `manifest` allows `item`, which it lists.
fn allowed_by(
    view: &DeviceView<'_>,
    manifest: &GroupManifest,
    item: &ManifestItem,
    cached: &dyn Fn(&ManifestItem) -> Cached,
) -> Result<Permit, SkipReason> {
    let group = &manifest.group_id;
    // (1) S3: fresh. The floor limits acceptance, never what plays (D3).
    if view.now >= manifest.expires_at {
        return Err(SkipReason::ManifestExpired {
            group: group.clone(),
            expired_at: manifest.expires_at,
        });
    }
    // A waiting successor's withdrawals apply at once (D3, A7).
    let successor = view
        .successors
        .iter()
        .find(|s| s.group_id == *group && s.version > manifest.version);
    if let Some(listed) = successor.and_then(|s| s.item(&item.id))
        && listed.approval != ApprovalState::Active
    {
        return Err(SkipReason::Unapproved(Unapproved::NotActive(
            listed.approval,
        )));
    }
    // (2) L2/L4/S6: an access group's license covers the device. Checked
    // before the cache: a device does not fetch what its license refuses
    // (a country not allowed, a window not open), so "not cached" would
    // hide the reason.
    let licensed = match manifest.group_kind {
        GroupKind::Node => None,
        GroupKind::AccessGroup => {
            let mut until = licensed_until(view, manifest)?;
            // A waiting successor's license terms must cover the device too.
            if let Some(successor) = successor {
                let next = licensed_until(view, successor)?;
                until = match (until, next) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            Some(until)
        }
    };
    // (3) A7/A8: approved, then cached as the approved version.
    let sources = approved_and_cached(item, cached)?;
    // (4) A template's sources: same manifest, approved and cached, no nesting.
    for source in &sources {
        source_allowed(manifest, source, cached).map_err(|reason| SkipReason::Source {
            source: source.clone(),
            reason: Box::new(reason),
        })?;
    }
    Ok(match licensed {
        None => Permit {
            group: group.clone(),
            access_group: None,
            license_version: None,
            until: Some(manifest.expires_at),
        },
        Some(until) => Permit {
            group: group.clone(),
            access_group: Some(AccessGroupId::new(group.clone())),
            license_version: Some(manifest.version),
            until: Some(until.map_or(manifest.expires_at, |u| u.min(manifest.expires_at))),
        },
    })
}

/// A7/A8 for one item: refused before the cache is asked unless active;
/// then the cached approval hash must be the approved one. Returns the
/// template's sources (empty for media).
fn approved_and_cached(
    item: &ManifestItem,
    cached: &dyn Fn(&ManifestItem) -> Cached,
) -> Result<Vec<ItemId>, SkipReason> {
    // Checking the approved hash against itself leaves only the state check:
    // one rule (`check_approved`), applied before any download is needed.
    let Some(approved) = item.approved_hash else {
        return Err(SkipReason::Unapproved(Unapproved::NotActive(item.approval)));
    };
    item.check_approved(&approved)
        .map_err(SkipReason::Unapproved)?;
    match cached(item) {
        Cached::Present {
            approval_hash,
            sources,
        } => {
            item.check_approved(&approval_hash)
                .map_err(SkipReason::Unapproved)?;
            Ok(sources)
        }
        Cached::Missing => Err(SkipReason::NotCached),
        Cached::Unusable(why) => Err(SkipReason::Unusable(why)),
    }
}

/// Step (4) for one source of a template listed in `manifest`.
fn source_allowed(
    manifest: &GroupManifest,
    source: &ItemId,
    cached: &dyn Fn(&ManifestItem) -> Cached,
) -> Result<(), SkipReason> {
    let item = manifest.item(source).ok_or(SkipReason::NotListed)?;
    if item.kind == ItemKind::Template {
        return Err(SkipReason::Unusable(
            "a template cannot show another template".to_owned(),
        ));
    }
    approved_and_cached(item, cached).map(drop)
}

/// Step (2): the license of an access group's manifest covers the device at
/// `view.now`. Returns the earliest end of the window and the offline grace.
fn licensed_until(
    view: &DeviceView<'_>,
    manifest: &GroupManifest,
) -> Result<Option<DateTime<Utc>>, SkipReason> {
    let group = &manifest.group_id;
    let license = |denied| SkipReason::License {
        group: group.clone(),
        denied,
    };
    let membership = view
        .assignment
        .access_groups
        .iter()
        .find(|m| m.group_id.as_str() == group)
        .ok_or_else(|| SkipReason::NotAMember {
            group: group.clone(),
        })?;
    let terms = manifest
        .license
        .as_ref()
        .ok_or_else(|| SkipReason::NoLicenseTerms {
            group: group.clone(),
        })?;
    terms
        .validate()
        .map_err(|error| license(Denied::InvalidTerms(error)))?;
    check_window(&membership.window, view.now).map_err(license)?;
    terms
        .check_country(view.assignment.location.country.as_deref())
        .map_err(license)?;
    let grace = offline_grace(view.assignment, terms);
    let grace_end = match view.last_hub_contact {
        None => None,
        Some(contact) => match contact.checked_add_signed(grace) {
            // No representable end: the grace never runs out.
            None => return Ok(membership.window.ends_at),
            Some(end) if view.now < end => Some(end),
            Some(_) => None,
        },
    };
    let Some(grace_end) = grace_end else {
        return Err(SkipReason::OfflineGraceExceeded {
            group: group.clone(),
            last_contact: view.last_hub_contact,
            offline_for_secs: view
                .last_hub_contact
                .map(|contact| (view.now - contact).num_seconds()),
            grace_secs: grace.num_seconds(),
        });
    };
    Ok(Some(
        membership
            .window
            .ends_at
            .map_or(grace_end, |end| end.min(grace_end)),
    ))
}

/// Whether the device's window holds `now`, in the order of
/// [`crate::license::check_access`]: ended (an empty window counts as ended),
/// then not yet started. An end the hub did not attribute to a limit is named
/// the member's end date: the window is this member's own.
fn check_window(window: &AccessWindow, now: DateTime<Utc>) -> Result<(), Denied> {
    if let Some(end) = window.ends_at
        && (now >= end || end <= window.starts_at)
    {
        return Err(Denied::Ended(
            window.ended_by.unwrap_or(Limit::MemberEndDate),
        ));
    }
    if now < window.starts_at {
        return Err(Denied::NotYetStarted {
            starts_at: window.starts_at,
        });
    }
    Ok(())
}
