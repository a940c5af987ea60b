//! The hub's answers to a clustered broker's HTTP authentication and
//! authorization hooks (S7, O3, X6): EMQX's `http` authenticator and
//! authorizer, or any broker that asks an HTTP service the same questions.
//! A broker the hub does not administer then gives each client exactly the
//! rights the managed mosquitto gives it ([`super::dynsec::acl`]): a device
//! logs in with its id as user name and client id and the secret it got at
//! pairing; it may read its own assignment and commands, the hub time, the
//! trust document and the manifests of the groups it follows now, and
//! write only its own state and events. The hub's own user (`mqtt.username`)
//! logs in with `mqtt.password` and holds the hub's rights.
//!
//! Owns: [`Verdict`], [`HookAnswer`], [`BrokerTokenScheme`], [`LoginQuestion`], [`AccessQuestion`],
//! [`check_broker`], [`authenticate`] and [`authorize`]. Reads the store (devices, the node
//! tree and memberships through [`crate::devices::broker_groups`]). Must
//! not: write anything, or answer for a client it does not know except to
//! say so ([`Verdict::Ignore`], which lets the broker's next source decide)
//! — on a Signet topic an unknown client is denied.

use serde::{Deserialize, Serialize};
use signet_common::ids::DeviceId;
use signet_common::sync::TOPIC_PREFIX;

use super::dynsec::acl::{Acl, Action, device_acls, hub_acls, own_acls};
use crate::app::Hub;
use crate::store::StoreError;

/// The longest topic a question may name, in bytes (MQTT allows 65,535;
/// Signet's are far shorter).
pub const MAX_TOPIC_LEN: usize = 1024;
/// The longest password a login question may carry, in bytes.
pub const MAX_PASSWORD_LEN: usize = 256;

/// The hub's answer, as EMQX reads it (`{"result": "allow"}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Let the client connect, or do what it asked.
    Allow,
    /// Refuse it.
    Deny,
    /// Not a client the hub knows: the broker asks its next source.
    Ignore,
}

/// The body of every answer (EMQX reads `result`; `is_superuser` is
/// always false: no client bypasses the rules).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HookAnswer {
    /// `allow`, `deny` or `ignore` (not a client the hub knows).
    pub result: Verdict,
    /// Always false.
    pub is_superuser: bool,
}

impl From<Verdict> for HookAnswer {
    fn from(result: Verdict) -> Self {
        Self {
            result,
            is_superuser: false,
        }
    }
}

/// The OpenAPI security scheme of the hooks (`broker_token`: the bearer
/// token `mqtt.auth_hook_token`, which no user or session holds).
pub struct BrokerTokenScheme;

impl utoipa::Modify for BrokerTokenScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "The hub's mqtt.auth_hook_token (a clustered broker's hooks only)",
            ))
            .build();
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("broker_token", SecurityScheme::Http(scheme));
    }
}

/// Why the hub does not answer a hook call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `mqtt.auth_hook_token` is not set: the hooks are off.
    Off,
    /// The caller did not offer the token.
    NotTheBroker,
}

/// Whether `authorization` (the call's `Authorization` header) is
/// `Bearer {mqtt.auth_hook_token}`, the token compared in constant time.
///
/// # Errors
/// [`Refused`] says why not.
pub fn check_broker(hub: &Hub, authorization: Option<&str>) -> Result<(), Refused> {
    let token = hub
        .config
        .mqtt
        .auth_hook_token
        .as_deref()
        .ok_or(Refused::Off)?;
    let offered = authorization
        .and_then(|header| header.strip_prefix("Bearer "))
        .unwrap_or_default();
    if crate::devices::constant_time_eq(offered.as_bytes(), token.as_bytes()) {
        Ok(())
    } else {
        Err(Refused::NotTheBroker)
    }
}

/// A login the broker asks about (EMQX body:
/// `{"username": "${username}", "password": "${password}", "clientid": "${clientid}"}`).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct LoginQuestion {
    /// The user name the client connected with.
    pub username: String,
    /// Its password.
    pub password: String,
    /// Its client id.
    pub clientid: String,
}

/// An action the broker asks about (EMQX body: `{"username":
/// "${username}", "clientid": "${clientid}", "topic": "${topic}",
/// "action": "${action}"}`).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct AccessQuestion {
    /// The client's user name.
    pub username: String,
    /// Its client id.
    pub clientid: String,
    /// The topic it publishes on, or the filter it subscribes with (a
    /// shared subscription's with its `$share/{group}/` prefix, as
    /// mosquitto checks it).
    pub topic: String,
    /// `publish` or `subscribe`.
    pub action: HookAction,
}

/// The action of an [`AccessQuestion`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HookAction {
    /// Publish.
    Publish,
    /// Subscribe.
    Subscribe,
}

/// Whether the client may connect.
///
/// # Errors
/// When the store fails.
pub fn authenticate(hub: &Hub, question: &LoginQuestion) -> Result<Verdict, StoreError> {
    if question.password.len() > MAX_PASSWORD_LEN {
        return Ok(Verdict::Deny);
    }
    if is_hub_user(hub, &question.username) {
        let expected = hub.config.mqtt.password.as_deref().unwrap_or_default();
        let same = !expected.is_empty()
            && crate::devices::constant_time_eq(question.password.as_bytes(), expected.as_bytes());
        return Ok(if same { Verdict::Allow } else { Verdict::Deny });
    }
    if crate::devices::device(&hub.store, &question.username)?.is_none() {
        return Ok(Verdict::Ignore);
    }
    // A device connects as itself only (its client id pinned, as on the
    // managed broker), so no device takes over another's session.
    let verdict = question.clientid == question.username
        && crate::devices::broker_login(&hub.store, &question.username, &question.password)?;
    Ok(if verdict {
        Verdict::Allow
    } else {
        Verdict::Deny
    })
}

/// Whether the client may publish on or subscribe to the topic.
///
/// # Errors
/// When the store fails.
pub fn authorize(hub: &Hub, question: &AccessQuestion) -> Result<Verdict, StoreError> {
    let action = match question.action {
        HookAction::Publish => Action::Publish,
        HookAction::Subscribe => Action::Subscribe,
    };
    let topic = question.topic.as_str();
    if topic.is_empty() || topic.len() > MAX_TOPIC_LEN {
        return Ok(Verdict::Deny);
    }
    let permitted = |acls: &std::collections::BTreeSet<Acl>| {
        if acls.iter().any(|acl| acl.permits(action, topic)) {
            Verdict::Allow
        } else {
            Verdict::Deny
        }
    };
    if is_hub_user(hub, &question.username) {
        return Ok(permitted(&hub_acls()));
    }
    let device = (question.clientid == question.username)
        .then(|| crate::devices::device(&hub.store, &question.username))
        .transpose()?
        .flatten();
    let Some(device) = device else {
        // Nobody the hub knows (or a device under another client id): not
        // on Signet's topics, shared or not; elsewhere the broker's other
        // sources decide.
        let filter = (topic
            .strip_prefix("$share/")
            .and_then(|rest| rest.split_once('/')))
        .map_or(topic, |(_, filter)| filter);
        let signet = filter == TOPIC_PREFIX || filter.starts_with(&format!("{TOPIC_PREFIX}/"));
        let wildcard_root = filter.starts_with('#') || filter.starts_with('+');
        return Ok(if signet || wildcard_root {
            Verdict::Deny
        } else {
            Verdict::Ignore
        });
    };
    let id = DeviceId::from(device.id.as_str());
    // Its own topics need no read of its groups.
    let own = own_acls(&id);
    if own.iter().any(|acl| acl.permits(action, topic)) {
        return Ok(Verdict::Allow);
    }
    let groups = crate::devices::broker_groups(&hub.store, &device)?;
    Ok(permitted(&device_acls(&id, &groups)))
}

/// Whether `username` is the hub's own user on the external broker.
fn is_hub_user(hub: &Hub, username: &str) -> bool {
    !username.is_empty() && hub.config.mqtt.username.as_deref() == Some(username)
}
