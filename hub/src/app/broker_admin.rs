//! Device access on the broker (S7): who may connect, and which topics each
//! device may read and write.
//!
//! Owns: the [`BrokerAdmin`] port. The hub-managed broker and an external
//! mosquitto with `mqtt.dynsec` are administered through mosquitto's
//! dynamic-security plugin (`mqtt::dynsec::DynsecAdmin`, above the core);
//! an external
//! broker the hub does not administer gets [`StoreAuthenticated`], which
//! changes nothing (that broker's operator authenticates devices).

use futures_util::future::BoxFuture;
use signet_common::ids::DeviceId;

/// Why the broker refused an administrative change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("broker administration failed: {0}")]
pub struct BrokerAdminError(pub String);

/// Manages device credentials and topic access on the broker.
pub trait BrokerAdmin: Send + Sync + 'static {
    /// Lets `device` connect (with `password` when given; `None` keeps the
    /// current one) and read exactly its own device topics, `hub/time`,
    /// `trust` and the manifests of `groups`; write only its own state and
    /// events.
    fn grant(
        &self,
        device: &DeviceId,
        password: Option<&str>,
        groups: &[String],
    ) -> BoxFuture<'_, Result<(), BrokerAdminError>>;

    /// Removes `device`'s credentials and access.
    fn revoke(&self, device: &DeviceId) -> BoxFuture<'_, Result<(), BrokerAdminError>>;

    /// Every device the broker holds a grant for (to revoke those the
    /// store no longer knows, e.g. unpaired while the broker was down).
    fn granted(&self) -> BoxFuture<'_, Result<Vec<DeviceId>, BrokerAdminError>>;

    /// Forgets what the broker holds for `group` alone (its shared role):
    /// the group was deleted, and the devices that followed it had their
    /// access re-granted without it. Nothing by default.
    fn retire_group<'a>(&'a self, _group: &'a str) -> BoxFuture<'a, Result<(), BrokerAdminError>> {
        Box::pin(async { Ok(()) })
    }

    /// The groups the broker holds a role for ([`BrokerAdmin::retire_group`]
    /// forgets one), so that the roles of groups deleted while the broker
    /// could not be told are retired. None by default.
    fn group_roles(&self) -> BoxFuture<'_, Result<Vec<String>, BrokerAdminError>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    /// `device` just proved `password` (its secret) over HTTP: if the
    /// broker is known to lack its password — a device paired before the
    /// broker held credentials (under the embedded broker before issue 15;
    /// the hub keeps only a hash of each secret) — set it now. Does nothing
    /// otherwise; cheap to call on every device request.
    fn adopt<'a>(
        &'a self,
        _device: &'a DeviceId,
        _password: &'a str,
    ) -> BoxFuture<'a, Result<(), BrokerAdminError>> {
        Box::pin(async { Ok(()) })
    }
}

/// For a broker the hub does not administer (an external one without
/// `mqtt.dynsec`), and for tests without a broker: nothing to change.
pub struct StoreAuthenticated;

impl BrokerAdmin for StoreAuthenticated {
    fn grant(
        &self,
        _device: &DeviceId,
        _password: Option<&str>,
        _groups: &[String],
    ) -> BoxFuture<'_, Result<(), BrokerAdminError>> {
        Box::pin(async { Ok(()) })
    }

    fn revoke(&self, _device: &DeviceId) -> BoxFuture<'_, Result<(), BrokerAdminError>> {
        Box::pin(async { Ok(()) })
    }

    fn granted(&self) -> BoxFuture<'_, Result<Vec<DeviceId>, BrokerAdminError>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}
