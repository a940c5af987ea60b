//! OpenAPI schemas of the licence types of `signet-common` (which stays
//! free of `utoipa`) as the access-group routes exchange them (L2), so the
//! console's generated types are the real ones.
//!
//! Owns: schema-only mirrors, used as `value_type = …` in [`super::types`].
//! Must not: be used to (de)serialize anything — the routes parse the real
//! `signet_common::license` types; a field added there must be added here
//! (hub/tests/openapi.rs checks the document against a real answer).
#![allow(dead_code)] // schema only

use chrono::{DateTime, Utc};

/// `signet_common::license::LicenseTerms`: the terms of an access group's
/// one licence (L1, L2). A member's access ends at the earliest limit.
#[derive(utoipa::ToSchema)]
#[schema(as = LicenseTerms)]
pub struct LicenseTermsSchema {
    /// How long a member has access after joining, in seconds.
    duration_from_join_secs: Option<u64>,
    /// How long a member has access after first using the content, in seconds.
    duration_from_first_use_secs: Option<u64>,
    /// No access before this time, whenever the member joined.
    fixed_start: Option<DateTime<Utc>>,
    /// No access from this time on, whenever the member joined.
    fixed_end: Option<DateTime<Utc>>,
    /// How many devices may hold the licence at once; absent for no limit (L5).
    max_active_devices: Option<u32>,
    /// Whether a device may keep playing while it cannot reach the hub.
    allow_offline: bool,
    /// How long, in seconds of trusted time since the last signed hub
    /// contact, an offline device may keep playing (S6).
    offline_grace_secs: u64,
    /// Whether content may be exported from the device.
    allow_export: bool,
    /// ISO 3166-1 alpha-2 codes of the countries where the content may
    /// play; absent for everywhere.
    allowed_countries: Option<Vec<String>>,
}

/// `signet_common::license::Limit`: which limit ends a member's access.
#[derive(utoipa::ToSchema)]
#[schema(as = Limit)]
#[allow(clippy::enum_variant_names)]
pub enum LimitSchema {
    /// The member was removed from the group.
    #[schema(rename = "removed")]
    Removed,
    /// The member's own end date.
    #[schema(rename = "member_end_date")]
    MemberEndDate,
    /// The licence's fixed end.
    #[schema(rename = "fixed_end")]
    FixedEnd,
    /// Join plus the duration from join.
    #[schema(rename = "duration_from_join")]
    DurationFromJoin,
    /// First use plus the duration from first use.
    #[schema(rename = "duration_from_first_use")]
    DurationFromFirstUse,
}

/// `signet_common::license::AccessWindow`: when a member may use the
/// group's content, from `starts_at` up to, not including, `ends_at` (L2).
#[derive(utoipa::ToSchema)]
#[schema(as = AccessWindow)]
pub struct AccessWindowSchema {
    /// The first instant of access: the later of joining and the fixed start.
    starts_at: DateTime<Utc>,
    /// The first instant without access; absent while no limit is known.
    ends_at: Option<DateTime<Utc>>,
    /// Which limit sets `ends_at`.
    #[schema(value_type = Option<LimitSchema>)]
    ended_by: Option<LimitSchema>,
}
