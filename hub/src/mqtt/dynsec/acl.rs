//! The rights Signet gives on a mosquitto it administers (S7, S10): the
//! ACLs of a device's role and of the hub's role, and the checks that keep
//! an id or a password from widening them.
//!
//! Owns: the role names ([`device_role`], [`DEVICES_ROLE`],
//! [`group_role`]), [`Acl`], what each role holds ([`own_acls`],
//! [`devices_acls`], [`group_acls`]; their union [`device_acls`]),
//! [`hub_acls`], [`check_id`]. Must not: talk to a broker ([`super::DynsecAdmin`] does).

use std::collections::BTreeSet;

use serde_json::{Value, json};
use signet_common::ids::{DeviceId, MAX_ID_LEN};
use signet_common::sync::{
    HUB_TIME_TOPIC, TOPIC_PREFIX, TRUST_TOPIC, assignment_topic, commands_topic, events_topic,
    manifest_topic, state_topic,
};

use super::MAX_PASSWORD_LEN;
use crate::config::SHARE_GROUP;
use crate::mqtt::admin::BrokerAdminError;

/// The role holding the rights only `device` has (its own topics).
#[must_use]
pub fn device_role(device: &DeviceId) -> String {
    format!("signet-device-{device}")
}

/// The role every device holds: the topics all devices read.
pub const DEVICES_ROLE: &str = "signet-devices";

/// The role of the devices that follow `group`: its manifest.
#[must_use]
pub fn group_role(group: &str) -> String {
    format!("signet-group-{group}")
}

/// Every role `device` holds when it follows `groups`: its own, the
/// devices' and one per group (ids checked by the caller).
#[must_use]
pub fn device_roles(device: &DeviceId, groups: &[String]) -> BTreeSet<String> {
    let mut roles: BTreeSet<String> = groups.iter().map(|g| group_role(g)).collect();
    roles.insert(device_role(device));
    roles.insert(DEVICES_ROLE.to_owned());
    roles
}

/// One ACL entry of a role (all of Signet's are `allow`, priority 0: the
/// default access denies everything else).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Acl {
    /// `publishClientSend`, `publishClientReceive`, `subscribeLiteral`,
    /// `subscribePattern`, `unsubscribeLiteral` or `unsubscribePattern`.
    pub acl_type: &'static str,
    /// The topic or topic filter.
    pub topic: String,
}

impl Acl {
    fn new(acl_type: &'static str, topic: impl Into<String>) -> Self {
        Self {
            acl_type,
            topic: topic.into(),
        }
    }

    /// The entry as the plugin's commands and its store write it.
    #[must_use]
    pub fn to_json(&self) -> Value {
        json!({"acltype": self.acl_type, "topic": self.topic, "allow": true, "priority": 0})
    }
}

/// What a client asks to do, as a broker's authorization hook names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Publish on a topic.
    Publish,
    /// Subscribe with a topic filter.
    Subscribe,
}

impl Acl {
    /// Whether this entry lets a client publish on `topic` or subscribe
    /// with the filter `topic`, as mosquitto's dynamic-security plugin
    /// decides it: `publishClientSend` matches the published topic against
    /// its filter, `subscribeLiteral` takes the filter byte for byte,
    /// `subscribePattern` takes a filter it covers (a `+` of the pattern
    /// stands for any one level, `+` included; a `#` for the rest, `#`
    /// included). Receive and unsubscribe entries permit neither.
    #[must_use]
    pub fn permits(&self, action: Action, topic: &str) -> bool {
        match (action, self.acl_type) {
            (Action::Publish, "publishClientSend") => {
                !topic.contains(['+', '#']) && filter_covers(&self.topic, topic)
            }
            (Action::Subscribe, "subscribeLiteral") => self.topic == topic,
            (Action::Subscribe, "subscribePattern") => filter_covers(&self.topic, topic),
            _ => false,
        }
    }
}

/// Whether every topic `inner` (a topic or a filter) matches is matched by
/// the filter `outer`.
fn filter_covers(outer: &str, inner: &str) -> bool {
    let mut inner_levels = inner.split('/');
    for level in outer.split('/') {
        if level == "#" {
            return true;
        }
        match inner_levels.next() {
            Some("#") | None => return false,
            Some(given) if level != "+" && level != given => return false,
            Some(_) => {}
        }
    }
    inner_levels.next().is_none()
}

/// Exactly what `device` may do (S7) when it follows `groups`: read its
/// own assignment and commands, the hub time, the trust document and the
/// manifests of `groups`; write its own state and events; unsubscribe
/// (which gives nothing). The union of the roles of [`device_roles`]:
/// [`own_acls`], [`devices_acls`] and each group's [`group_acls`]. The ids
/// must be valid ([`check_id`]).
#[must_use]
pub fn device_acls(device: &DeviceId, groups: &[String]) -> BTreeSet<Acl> {
    let mut acls = own_acls(device);
    acls.extend(devices_acls());
    for group in groups {
        acls.extend(group_acls(group));
    }
    acls
}

/// What only `device` may do ([`device_role`]): subscribe to and receive
/// its own assignment and commands, publish its own state and events.
/// The same few entries whatever the device follows, so a device adds a
/// constant number of bytes to the plugin's store.
#[must_use]
pub fn own_acls(device: &DeviceId) -> BTreeSet<Acl> {
    let mut acls = read_acls([assignment_topic(device), commands_topic(device)]);
    acls.insert(Acl::new("publishClientSend", state_topic(device)));
    acls.insert(Acl::new("publishClientSend", events_topic(device)));
    acls
}

/// What every device may do ([`DEVICES_ROLE`]): subscribe to and receive
/// the hub time and the trust document, and unsubscribe from any Signet
/// topic (an unsubscription gives nothing).
#[must_use]
pub fn devices_acls() -> BTreeSet<Acl> {
    let mut acls = read_acls([HUB_TIME_TOPIC.to_owned(), TRUST_TOPIC.to_owned()]);
    acls.insert(Acl::new("unsubscribePattern", format!("{TOPIC_PREFIX}/#")));
    acls
}

/// What the devices following `group` may do ([`group_role`]): subscribe
/// to and receive its manifest.
#[must_use]
pub fn group_acls(group: &str) -> BTreeSet<Acl> {
    read_acls([manifest_topic(group)])
}

/// Subscribe (literally: no wildcards) to and receive each of `topics`.
fn read_acls(topics: impl IntoIterator<Item = String>) -> BTreeSet<Acl> {
    let mut acls = BTreeSet::new();
    for topic in topics {
        acls.insert(Acl::new("subscribeLiteral", topic.clone()));
        acls.insert(Acl::new("publishClientReceive", topic));
    }
    acls
}

/// What the hub's own user may do: publish every Signet topic (manifests,
/// assignments, commands, hub time, trust — retained or not), subscribe to
/// and receive every device's state and events (also through the replicas'
/// shared subscription), and the hub's own retained
/// topics ([`crate::mqtt::retained::WATCHED`]: the watch restores what someone
/// else changed there, S4).
#[must_use]
pub fn hub_acls() -> BTreeSet<Acl> {
    let mut acls = BTreeSet::new();
    acls.insert(Acl::new("publishClientSend", format!("{TOPIC_PREFIX}/#")));
    let reports = [
        format!("{TOPIC_PREFIX}/devices/+/state"),
        format!("{TOPIC_PREFIX}/devices/+/events"),
    ];
    // Replicas share the reports (`mqtt.shared_subscriptions`, X5): the
    // broker checks a shared subscription's filter with its prefix.
    let shared = reports
        .clone()
        .map(|filter| format!("$share/{SHARE_GROUP}/{filter}"));
    let watched = crate::mqtt::retained::WATCHED.map(|f| format!("{TOPIC_PREFIX}/{f}"));
    for filter in reports.into_iter().chain(shared).chain(watched) {
        acls.insert(Acl::new("subscribePattern", filter.clone()));
        acls.insert(Acl::new("unsubscribePattern", filter.clone()));
        acls.insert(Acl::new("publishClientReceive", filter));
    }
    acls
}

/// Whether `id` may stand in a topic level and a broker user or role name:
/// 1 to [`MAX_ID_LEN`] bytes, no topic separators or wildcards, no control
/// characters, not starting with `$`.
///
/// # Errors
/// Says which rule `id` breaks.
pub fn check_id(what: &str, id: &str) -> Result<(), BrokerAdminError> {
    let refuse = |why: &str| Err(BrokerAdminError(format!("{what} {id:?} {why}")));
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return refuse(&format!("must be 1 to {MAX_ID_LEN} bytes"));
    }
    if id.starts_with('$')
        || id
            .chars()
            .any(|c| matches!(c, '/' | '+' | '#') || c.is_control())
    {
        return refuse("must not contain '/', '+', '#' or control characters, or start with '$'");
    }
    Ok(())
}

/// Whether `password` is one the hub may set on the broker: 1 to
/// [`MAX_PASSWORD_LEN`] bytes.
pub(super) fn check_password(password: &str) -> Result<(), BrokerAdminError> {
    if password.is_empty() || password.len() > MAX_PASSWORD_LEN {
        return Err(BrokerAdminError(format!(
            "a broker password must be 1 to {MAX_PASSWORD_LEN} bytes"
        )));
    }
    Ok(())
}
