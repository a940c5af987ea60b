//! The entitlements port (P6, L4, M1): in which access groups a user holds
//! a valid licence window now.
//!
//! Owns: [`Entitlements`], which [`super::Hub`] holds. Content's view rule
//! ([`crate::content::visibility`]) asks it, and access groups — a domain
//! above content — answer it (`access_groups::Entitled`, installed by
//! `serve::open`), so content never imports access groups. Must not: know
//! how memberships or licences are stored.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use signet_common::ids::{AccessGroupId, UserId};

use crate::store::{Store, StoreError};

/// Answers which access groups entitle a user at a time.
pub trait Entitlements: Send + Sync + 'static {
    /// The access groups in which `user` holds a valid entitlement at `at`.
    ///
    /// # Errors
    /// When the store fails.
    fn entitled(
        &self,
        store: &Store,
        user: &UserId,
        at: DateTime<Utc>,
    ) -> Result<BTreeSet<AccessGroupId>, StoreError>;
}
