//! Device access on mosquitto (S7, S10, O3), administered through its
//! dynamic-security plugin: on an external mosquitto, and on the one the
//! hub runs itself ([`super::broker`]) — the same rules on every broker
//! Signet manages.
//!
//! Owns: [`DynsecAdmin`], the hub's [`BrokerAdmin`](super::admin::BrokerAdmin) for mosquitto 2.x, and
//! the exact topic rights of a device and of the hub ([`device_acls`],
//! [`hub_acls`]). May call: the broker, over MQTT, as the dynamic-security
//! admin user. Must not: touch the store, or grant anything beyond the
//! topics of DESIGN §5.
//!
//! # Why the dynamic-security plugin
//! The hub sends JSON commands to `$CONTROL/dynamic-security/v1` and reads
//! the answers on `$CONTROL/dynamic-security/v1/response`. This works
//! against a remote broker (no access to its password or ACL files, no
//! signals to make it reload), and a change applies at once: the plugin
//! checks ACLs on every publish and subscribe, and kicks a client whose
//! account is deleted.
//!
//! # What the broker holds
//! - Default ACL access: deny everything ([`DynsecAdmin::bootstrap`]), so a
//!   client can do only what one of its roles allows.
//! - Role [`HUB_ROLE`], given to the hub's own MQTT user: publish anywhere
//!   under `signet/v1/`, subscribe to and receive `signet/v1/devices/+/state`
//!   and `signet/v1/devices/+/events`, and the hub's own retained topics
//!   (manifests, assignments, `trust`, `hub/time`) for the watch (S4).
//! - Role [`DEVICES_ROLE`] (`signet-devices`), shared by every device:
//!   subscribe to and receive `hub/time` and `trust`; unsubscribe from any
//!   Signet topic (which gives nothing).
//! - Per group a device follows, role [`group_role`] = `signet-group-{id}`,
//!   shared by the devices following it: subscribe to and receive that
//!   group's manifest. Created by the first grant that needs it, never
//!   edited afterwards (mosquitto 2.0 disconnects every holder of a role
//!   whose ACLs change).
//! - Per device: client `{device_id}` (the MQTT user name is the device id,
//!   as [`signet_common::sync::BrokerAccess`] says), pinned to the client
//!   id `{device_id}` (the plugin's `clientid`: that credential connects
//!   with no other client id, and no other pinned credential can take it
//!   over; mosquitto checks this before any session takeover), holding
//!   exactly the roles [`device_roles`]: its own [`device_role`] =
//!   `signet-device-{device_id}` with [`own_acls`] (subscribe to, literally,
//!   and receive its own `assignment` and `commands`; publish only its own
//!   `state` and `events`), [`DEVICES_ROLE`] and the role of every group it
//!   follows. Together exactly [`device_acls`] (S10).
//!
//! # Why this shape (issue 20)
//! Mosquitto 2.0.11's plugin has no `%c`/`%u` substitution in ACL topics
//! (it came with 2.1), so what names the device's own topics needs a role
//! per device; everything shared by many devices lives in shared roles.
//! A device then adds a constant number of bytes to the plugin's store
//! whatever it follows (one role reference per group), and the plugin
//! rewrites its whole store after every changing command: pairing a device
//! is two commands (`createRole`, `createClient`), a move between groups
//! one (`modifyClient` with its roles). Earlier versions gave each device
//! one role holding every topic it reads; a grant finding such a role
//! replaces it whole (`deleteRole`, `createRole`, `modifyClient`), so the
//! reconciliation at start migrates an existing store.
//!
//! # What `serve` needs to use it
//! A [`DynsecSettings`]: the broker URL (`mqtt://host:port`, or
//! `mqtts://host:port` with the CA's PEM), the user name and password of a
//! client holding mosquitto's dynsec `admin` role (the one
//! `mosquitto_ctrl dynsec init FILE USER PASSWORD` creates), and a
//! per-command timeout. Then [`DynsecAdmin::connect`] (spawns the
//! connection task on the current tokio runtime), [`DynsecAdmin::bootstrap`]
//! with the hub's publishing user (which may be the admin user itself), and
//! store the admin as `Hub.broker_admin`.
//!
//! # Layout
//! [`acl`]: the rights (what a device's and the hub's roles hold, which
//! ids may name them); `link`: the admin connection and the control
//! message exchange; `commands`: what the hub asks of the plugin
//! (bootstrap, grant, revoke, adopt, list) over that link.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::AsyncClient;
use signet_common::ids::DeviceId;
use tokio::task::JoinHandle;

pub mod acl;
mod batch;
mod commands;
mod link;
#[cfg(test)]
mod tests;

pub use acl::{
    Acl, DEVICES_ROLE, check_id, device_acls, device_role, device_roles, devices_acls, group_acls,
    group_role, hub_acls, own_acls,
};

/// Where the plugin reads commands.
pub const CONTROL_TOPIC: &str = "$CONTROL/dynamic-security/v1";
/// Where the plugin answers (only to the client that asked).
pub const RESPONSE_TOPIC: &str = "$CONTROL/dynamic-security/v1/response";
/// The role of the hub's own MQTT user.
pub const HUB_ROLE: &str = "signet-hub";
/// The most groups one device may follow (node chain plus access groups).
pub const MAX_GROUPS: usize = 1024;
/// The longest password the hub sets on the broker, in bytes.
pub const MAX_PASSWORD_LEN: usize = 1024;
/// The largest control response the hub reads (a role's ACL list).
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;
/// How many clients one `listClients` page holds.
const LIST_PAGE: usize = 500;
/// The default time one control message waits for its answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How to reach the broker as its dynamic-security admin.
#[derive(Clone)]
pub struct DynsecSettings {
    /// `mqtt://host:port` or `mqtts://host:port` (port defaults to 1883 / 8883).
    pub url: String,
    /// A client holding the plugin's admin role.
    pub username: String,
    /// Its password.
    pub password: String,
    /// PEM of the CA that signs the broker's certificate; required for `mqtts://`.
    pub ca_pem: Option<Vec<u8>>,
    /// How long one control message waits for the connection and its answer.
    pub timeout: Duration,
}

impl std::fmt::Debug for DynsecSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynsecSettings")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &"…")
            .field("ca_pem", &self.ca_pem.as_ref().map(Vec::len))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The hub's [`BrokerAdmin`](super::admin::BrokerAdmin) for mosquitto's dynamic-security plugin.
///
/// Holds one MQTT connection as the plugin's admin user, kept up by a
/// background task (reconnecting with back-off) that stops when this is
/// dropped. Each control message waits at most the configured timeout for
/// the connection and for its answer, matched by `correlationData`.
pub struct DynsecAdmin {
    /// Sends control messages.
    client: AsyncClient,
    /// Pending commands and the link state.
    shared: Arc<link::Shared>,
    /// Per control message.
    timeout: Duration,
    /// The broker, for error messages.
    url: String,
    /// The admin user (never given another password by [`Self::bootstrap`]).
    admin_user: String,
    /// Numbers correlation ids.
    next_id: AtomicU64,
    /// Serializes read-modify-write changes (grant, revoke, bootstrap).
    changes: tokio::sync::Mutex<()>,
    /// Grants waiting to be sent together (`batch`).
    queued: Mutex<Vec<batch::Queued>>,
    /// Control messages sent since the start (each one round trip).
    control_messages: AtomicU64,
    /// Paired devices the broker holds no password for, set by
    /// [`Self::expect_missing_passwords`];
    /// [`BrokerAdmin::adopt`](super::admin::BrokerAdmin::adopt) fills them in.
    missing_passwords: Mutex<std::collections::HashSet<DeviceId>>,
    /// The connection task, aborted on drop.
    task: JoinHandle<()>,
}

impl DynsecAdmin {
    /// How many control messages this admin has sent (each one round trip
    /// to the broker): what batching saves is counted here.
    #[must_use]
    pub fn control_messages(&self) -> u64 {
        self.control_messages
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for DynsecAdmin {
    fn drop(&mut self) {
        self.task.abort();
    }
}
