//! Identifier newtypes shared by the hub and the agent.
//!
//! Owns: the names of things (nodes, users, groups, items, devices). Each id is
//! an opaque string chosen by the hub; the newtypes exist so a `UserId` can
//! never be passed where a `NodeId` is meant. Must not: parse, generate or
//! validate ids beyond their length bound, which is the hub's concern.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The longest id, in bytes, that any document may carry.
pub const MAX_ID_LEN: usize = 128;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// Wraps a string as this kind of id.
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                Self(id.to_owned())
            }
        }
    };
}

id_type!(
    /// A node of the tenancy tree (root, tenant, region, site).
    NodeId
);
id_type!(
    /// An operator or viewer account.
    UserId
);
id_type!(
    /// A permission group: users and other permission groups that receive extra permissions.
    PermissionGroupId
);
id_type!(
    /// An access group: one license, content items and members.
    AccessGroupId
);
id_type!(
    /// A content item (media or template).
    ItemId
);
id_type!(
    /// A paired screen.
    DeviceId
);
id_type!(
    /// One entry of a schedule.
    EntryId
);
