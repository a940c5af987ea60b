//! Device access on mosquitto (S7, S10, O3), administered through its
//! dynamic-security plugin: on an external mosquitto, and on the one the
//! hub runs itself ([`super::broker`]) — the same rules on every broker
//! Signet manages.
//!
//! Owns: [`DynsecAdmin`], the hub's [`BrokerAdmin`] for mosquitto 2.x, and
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
//! - Per device: client `{device_id}` (the MQTT user name is the device id,
//!   as [`signet_common::sync::BrokerAccess`] says), pinned to the client
//!   id `{device_id}` (the plugin's `clientid`: that credential connects
//!   with no other client id, and no other pinned credential can take it
//!   over; mosquitto checks this before any session takeover), with the single role
//!   [`device_role`] = `signet-device-{device_id}` whose ACLs are exactly
//!   [`device_acls`]: subscribe to (literally, no wildcards) and receive its
//!   own `assignment` and `commands`, `hub/time`, `trust` and the manifest of
//!   every group it follows; publish only its own `state` and `events`.
//!   A re-grant computes the difference with what the role holds and
//!   removes and adds only that, in one control message.
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

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use rumqttc::{
    AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS, SubscribeReasonCode, TlsConfiguration,
    Transport,
};
use serde::Deserialize;
use serde_json::{Value, json};
use signet_common::ids::{DeviceId, MAX_ID_LEN};
use signet_common::sync::{
    HUB_TIME_TOPIC, TOPIC_PREFIX, TRUST_TOPIC, assignment_topic, commands_topic, events_topic,
    manifest_topic, state_topic,
};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use super::admin::{BrokerAdmin, BrokerAdminError};

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

/// The first and the longest pause between reconnection attempts.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));

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

/// The role holding `device`'s ACLs.
#[must_use]
pub fn device_role(device: &DeviceId) -> String {
    format!("signet-device-{device}")
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

    fn to_json(&self) -> Value {
        json!({"acltype": self.acl_type, "topic": self.topic, "allow": true, "priority": 0})
    }
}

/// Exactly what `device` may do (S7): read its own assignment and commands,
/// the hub time, the trust document and the manifests of `groups`; write
/// its own state and events. The ids must be valid ([`check_id`]).
#[must_use]
pub fn device_acls(device: &DeviceId, groups: &[String]) -> BTreeSet<Acl> {
    let mut read = vec![
        assignment_topic(device),
        commands_topic(device),
        HUB_TIME_TOPIC.to_owned(),
        TRUST_TOPIC.to_owned(),
    ];
    read.extend(groups.iter().map(|g| manifest_topic(g)));
    let mut acls = BTreeSet::new();
    for topic in read {
        acls.insert(Acl::new("subscribeLiteral", topic.clone()));
        acls.insert(Acl::new("unsubscribeLiteral", topic.clone()));
        acls.insert(Acl::new("publishClientReceive", topic));
    }
    acls.insert(Acl::new("publishClientSend", state_topic(device)));
    acls.insert(Acl::new("publishClientSend", events_topic(device)));
    acls
}

/// What the hub's own user may do: publish every Signet topic (manifests,
/// assignments, commands, hub time, trust — retained or not), subscribe to
/// and receive every device's state and events, and the hub's own retained
/// topics ([`super::retained::WATCHED`]: the watch restores what someone
/// else changed there, S4).
#[must_use]
pub fn hub_acls() -> BTreeSet<Acl> {
    let mut acls = BTreeSet::new();
    acls.insert(Acl::new("publishClientSend", format!("{TOPIC_PREFIX}/#")));
    let reports = [
        format!("{TOPIC_PREFIX}/devices/+/state"),
        format!("{TOPIC_PREFIX}/devices/+/events"),
    ];
    let watched = super::retained::WATCHED.map(|f| format!("{TOPIC_PREFIX}/{f}"));
    for filter in reports.into_iter().chain(watched) {
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

fn check_password(password: &str) -> Result<(), BrokerAdminError> {
    if password.is_empty() || password.len() > MAX_PASSWORD_LEN {
        return Err(BrokerAdminError(format!(
            "a broker password must be 1 to {MAX_PASSWORD_LEN} bytes"
        )));
    }
    Ok(())
}

/// One answer of the plugin.
#[derive(Debug, Clone, Deserialize)]
struct Response {
    /// The command it answers.
    command: String,
    /// Why it failed, if it did.
    #[serde(default)]
    error: Option<String>,
    /// What a `get…` command returns.
    #[serde(default)]
    data: Option<Value>,
}

impl Response {
    /// `Ok` unless the broker reported an error.
    fn ok(self) -> Result<Self, BrokerAdminError> {
        match &self.error {
            Some(error) => Err(BrokerAdminError(format!("{}: {error}", self.command))),
            None => Ok(self),
        }
    }

    /// Whether the broker said the object does not exist.
    fn not_found(&self) -> bool {
        self.error
            .as_deref()
            .is_some_and(|e| e.contains("not found"))
    }
}

#[derive(Deserialize)]
struct ResponseBatch {
    responses: Vec<ResponseItem>,
}

#[derive(Deserialize)]
struct ResponseItem {
    #[serde(rename = "correlationData")]
    correlation_data: Option<String>,
    #[serde(flatten)]
    response: Value,
}

/// The admin connection's state.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Link {
    /// Not (yet) connected and subscribed; the last failure, if any.
    Down(Option<String>),
    /// Connected and subscribed to [`RESPONSE_TOPIC`].
    Up,
}

/// What the connection task and the callers share.
struct Shared {
    /// Waiting commands by correlation id.
    pending: Mutex<HashMap<String, oneshot::Sender<Response>>>,
    /// Whether commands can be sent.
    link: watch::Sender<Link>,
}

impl Shared {
    /// Hands each answer of a response message to its waiting command.
    fn dispatch(&self, payload: &[u8]) {
        let batch: ResponseBatch = match serde_json::from_slice(payload) {
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!(error = %e, "unreadable dynamic-security response ignored");
                return;
            }
        };
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        for item in batch.responses {
            let Some(id) = item.correlation_data else {
                continue;
            };
            let Some(waiter) = pending.remove(&id) else {
                continue;
            };
            match serde_json::from_value::<Response>(item.response) {
                Ok(response) => {
                    let _ = waiter.send(response);
                }
                Err(e) => tracing::warn!(error = %e, "malformed dynamic-security answer"),
            }
        }
    }

    /// Fails every waiting command: the connection they were sent on is
    /// gone, and with it their answers.
    fn fail_pending(&self) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.clear();
        }
    }

    fn forget(&self, ids: &[String]) {
        if let Ok(mut pending) = self.pending.lock() {
            for id in ids {
                pending.remove(id);
            }
        }
    }
}

/// The hub's [`BrokerAdmin`] for mosquitto's dynamic-security plugin.
///
/// Holds one MQTT connection as the plugin's admin user, kept up by a
/// background task (reconnecting with back-off) that stops when this is
/// dropped. Each control message waits at most the configured timeout for
/// the connection and for its answer, matched by `correlationData`.
pub struct DynsecAdmin {
    /// Sends control messages.
    client: AsyncClient,
    /// Pending commands and the link state.
    shared: Arc<Shared>,
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
    /// Paired devices the broker holds no password for, set by
    /// [`Self::expect_missing_passwords`]; [`BrokerAdmin::adopt`] fills them in.
    missing_passwords: Mutex<std::collections::HashSet<DeviceId>>,
    /// The connection task, aborted on drop.
    task: JoinHandle<()>,
}

impl Drop for DynsecAdmin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl DynsecAdmin {
    /// Starts connecting to the broker as the admin user; does not wait
    /// for the connection (commands do, up to the timeout). Must be called
    /// inside a tokio runtime.
    ///
    /// # Errors
    /// When the URL is not `mqtt://host[:port]` or `mqtts://host[:port]`,
    /// or `mqtts` lacks a CA.
    pub fn connect(settings: DynsecSettings) -> Result<Self, BrokerAdminError> {
        let (tls, host, port) = parse_url(&settings.url)?;
        let client_id = crate::identity::new_id("signet-dynsec-");
        let mut options = MqttOptions::new(client_id, host, port);
        options
            .set_credentials(settings.username.clone(), settings.password.clone())
            .set_clean_session(true)
            .set_keep_alive(Duration::from_secs(30))
            .set_max_packet_size(MAX_RESPONSE_BYTES, MAX_RESPONSE_BYTES);
        if tls {
            let Some(ca) = settings.ca_pem.clone() else {
                return Err(BrokerAdminError(
                    "an mqtts:// broker needs the PEM of its CA".to_owned(),
                ));
            };
            options.set_transport(Transport::Tls(TlsConfiguration::Simple {
                ca,
                alpn: None,
                client_auth: None,
            }));
        }
        let (client, eventloop) = AsyncClient::new(options, 64);
        let (link, _) = watch::channel(Link::Down(None));
        let shared = Arc::new(Shared {
            pending: Mutex::new(HashMap::new()),
            link,
        });
        let task = tokio::spawn(drive(eventloop, client.clone(), Arc::clone(&shared)));
        Ok(Self {
            client,
            shared,
            timeout: settings.timeout,
            url: settings.url,
            admin_user: settings.username,
            next_id: AtomicU64::new(1),
            changes: tokio::sync::Mutex::new(()),
            missing_passwords: Mutex::new(std::collections::HashSet::new()),
            task,
        })
    }

    /// Prepares the broker for Signet: default ACL access denies publish,
    /// receive, subscribe and unsubscribe to every client (a client may do
    /// only what its roles allow); role [`HUB_ROLE`] holds exactly
    /// [`hub_acls`]; client `hub_user` exists and holds that role. When
    /// `hub_user` does not exist yet it is created with `hub_password`; when
    /// it exists a given password replaces its own (never the admin
    /// user's: the admin's session would be kicked). Idempotent.
    ///
    /// # Errors
    /// When the broker refuses a change, cannot be reached within the
    /// timeout, or `hub_user` is new and no password is given.
    pub async fn bootstrap(
        &self,
        hub_user: &str,
        hub_password: Option<&str>,
    ) -> Result<(), BrokerAdminError> {
        check_id("hub user", hub_user)?;
        if let Some(password) = hub_password {
            check_password(password)?;
        }
        let _change = self.changes.lock().await;
        let defaults = [
            "publishClientSend",
            "publishClientReceive",
            "subscribe",
            "unsubscribe",
        ]
        .map(|acl| json!({"acltype": acl, "allow": false}));
        self.execute(vec![
            json!({"command": "setDefaultACLAccess", "acls": defaults}),
        ])
        .await?
        .into_iter()
        .try_for_each(|r| r.ok().map(drop))?;
        self.ensure_role(HUB_ROLE, &hub_acls()).await?;
        let password = hub_password.filter(|_| hub_user != self.admin_user);
        self.ensure_client(hub_user, password, HUB_ROLE, None).await
    }

    /// Sends `commands` in one control message and waits for every answer.
    async fn execute(&self, commands: Vec<Value>) -> Result<Vec<Response>, BrokerAdminError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        self.wait_up(deadline).await?;
        let mut ids = Vec::with_capacity(commands.len());
        let mut waiters = Vec::with_capacity(commands.len());
        let mut tagged = Vec::with_capacity(commands.len());
        {
            let mut pending = self
                .shared
                .pending
                .lock()
                .map_err(|_| BrokerAdminError("admin state poisoned".to_owned()))?;
            for mut command in commands {
                let id = self.next_id.fetch_add(1, Ordering::Relaxed).to_string();
                if let Value::Object(fields) = &mut command {
                    fields.insert("correlationData".to_owned(), Value::String(id.clone()));
                }
                let (tx, rx) = oneshot::channel();
                pending.insert(id.clone(), tx);
                ids.push(id);
                waiters.push(rx);
                tagged.push(command);
            }
        }
        let outcome = self.send_and_wait(tagged, waiters, deadline).await;
        self.shared.forget(&ids);
        outcome
    }

    async fn send_and_wait(
        &self,
        commands: Vec<Value>,
        waiters: Vec<oneshot::Receiver<Response>>,
        deadline: tokio::time::Instant,
    ) -> Result<Vec<Response>, BrokerAdminError> {
        let payload = serde_json::to_vec(&json!({"commands": commands}))
            .map_err(|e| BrokerAdminError(e.to_string()))?;
        let late = || {
            BrokerAdminError(format!(
                "no answer from the broker at {} within {:?}",
                self.url, self.timeout
            ))
        };
        tokio::time::timeout_at(
            deadline,
            self.client
                .publish(CONTROL_TOPIC, QoS::AtLeastOnce, false, payload),
        )
        .await
        .map_err(|_| late())?
        .map_err(|e| BrokerAdminError(format!("control message not sent: {e}")))?;
        let mut answers = Vec::with_capacity(waiters.len());
        for waiter in waiters {
            let answer = tokio::time::timeout_at(deadline, waiter)
                .await
                .map_err(|_| late())?
                .map_err(|_| {
                    BrokerAdminError(format!(
                        "the connection to the broker at {} closed before it answered",
                        self.url
                    ))
                })?;
            answers.push(answer);
        }
        Ok(answers)
    }

    /// Waits until the admin connection is up and subscribed, or `deadline`.
    async fn wait_up(&self, deadline: tokio::time::Instant) -> Result<(), BrokerAdminError> {
        let mut link = self.shared.link.subscribe();
        let up = tokio::time::timeout_at(deadline, link.wait_for(|l| *l == Link::Up))
            .await
            .is_ok_and(|r| r.is_ok());
        if up {
            return Ok(());
        }
        let why = match &*self.shared.link.borrow() {
            Link::Down(Some(why)) => format!(": {why}"),
            Link::Down(None) | Link::Up => String::new(),
        };
        Err(BrokerAdminError(format!(
            "not connected to the broker at {} as {}{why}",
            self.url, self.admin_user
        )))
    }

    /// Makes role `name` hold exactly `wanted`: creates it, or removes what
    /// it holds beyond `wanted` and adds what it lacks, in one message.
    async fn ensure_role(
        &self,
        name: &str,
        wanted: &BTreeSet<Acl>,
    ) -> Result<(), BrokerAdminError> {
        let [current] = self
            .execute_n([json!({"command": "getRole", "rolename": name})])
            .await?;
        if current.not_found() {
            let acls: Vec<Value> = wanted.iter().map(Acl::to_json).collect();
            let [created] = self
                .execute_n([json!({"command": "createRole", "rolename": name, "acls": acls})])
                .await?;
            created.ok()?;
            return Ok(());
        }
        let current = current.ok()?;
        let held = current
            .data
            .as_ref()
            .and_then(|d| d.pointer("/role/acls"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut changes = Vec::new();
        let mut kept = BTreeSet::new();
        for acl in &held {
            let (Some(acl_type), Some(topic)) = (
                acl.get("acltype").and_then(Value::as_str),
                acl.get("topic").and_then(Value::as_str),
            ) else {
                continue;
            };
            let allow = acl.get("allow").and_then(Value::as_bool).unwrap_or(false);
            let matching = wanted
                .iter()
                .find(|w| w.acl_type == acl_type && w.topic == topic);
            match matching {
                Some(w) if allow => {
                    kept.insert(w.clone());
                }
                _ => changes.push(json!({"command": "removeRoleACL", "rolename": name,
                    "acltype": acl_type, "topic": topic})),
            }
        }
        for acl in wanted.difference(&kept) {
            let mut add = acl.to_json();
            if let Value::Object(fields) = &mut add {
                fields.insert("command".to_owned(), json!("addRoleACL"));
                fields.insert("rolename".to_owned(), json!(name));
            }
            changes.push(add);
        }
        if changes.is_empty() {
            return Ok(());
        }
        for answer in self.execute(changes).await? {
            answer.ok()?;
        }
        Ok(())
    }

    /// Makes client `user` exist with `role` (and `password` when given),
    /// pinned to `clientid` when given (S10: the broker then refuses that
    /// credential with any other client id, and that client id with any
    /// other credential is refused by the other client's own pin).
    async fn ensure_client(
        &self,
        user: &str,
        password: Option<&str>,
        role: &str,
        clientid: Option<&str>,
    ) -> Result<(), BrokerAdminError> {
        let [current] = self
            .execute_n([json!({"command": "getClient", "username": user})])
            .await?;
        if current.not_found() {
            let mut create = json!({"command": "createClient", "username": user,
                "roles": [{"rolename": role, "priority": 0}]});
            if let Value::Object(fields) = &mut create {
                if let Some(password) = password {
                    fields.insert("password".to_owned(), json!(password));
                }
                if let Some(clientid) = clientid {
                    fields.insert("clientid".to_owned(), json!(clientid));
                }
            }
            let [created] = self.execute_n([create]).await?;
            created.ok()?;
            return Ok(());
        }
        let current = current.ok()?;
        let holds_role = has_role(&current, role);
        let pinned = current
            .data
            .as_ref()
            .and_then(|d| d.pointer("/client/clientid"))
            .and_then(Value::as_str);
        if !holds_role && user == self.admin_user {
            // Mosquitto disconnects a client whose roles change: for our own
            // user that is this very session, and the answer may be lost
            // with it. Look again once reconnected.
            let added = self
                .execute(vec![json!({"command": "addClientRole", "username": user,
                    "rolename": role, "priority": 0})])
                .await;
            if let Ok(answers) = added {
                for answer in answers {
                    answer.ok()?;
                }
            }
            let [again] = self
                .execute_n([json!({"command": "getClient", "username": user})])
                .await?;
            if !has_role(&again.ok()?, role) {
                return Err(BrokerAdminError(format!(
                    "the broker did not give {user} the role {role}"
                )));
            }
            return Ok(());
        }
        let mut changes = Vec::new();
        if !holds_role {
            changes.push(json!({"command": "addClientRole", "username": user,
                "rolename": role, "priority": 0}));
        }
        if let Some(password) = password {
            changes.push(json!({"command": "setClientPassword", "username": user,
                "password": password}));
        }
        if let Some(clientid) = clientid.filter(|id| pinned != Some(*id)) {
            changes.push(json!({"command": "setClientId", "username": user,
                "clientid": clientid}));
        }
        if changes.is_empty() {
            return Ok(());
        }
        for answer in self.execute(changes).await? {
            answer.ok()?;
        }
        Ok(())
    }

    /// [`Self::execute`] for a fixed number of commands.
    async fn execute_n<const N: usize>(
        &self,
        commands: [Value; N],
    ) -> Result<[Response; N], BrokerAdminError> {
        let answers = self.execute(commands.into()).await?;
        answers.try_into().map_err(|_| {
            BrokerAdminError("the broker answered a different number of commands".to_owned())
        })
    }

    async fn grant_now(
        &self,
        device: &DeviceId,
        password: Option<&str>,
        groups: &[String],
    ) -> Result<(), BrokerAdminError> {
        check_id("device id", device.as_str())?;
        if groups.len() > MAX_GROUPS {
            return Err(BrokerAdminError(format!(
                "device {device} follows {} groups, over the limit of {MAX_GROUPS}",
                groups.len()
            )));
        }
        for group in groups {
            check_id("group id", group)?;
        }
        if let Some(password) = password {
            check_password(password)?;
        }
        let _change = self.changes.lock().await;
        let role = device_role(device);
        // The role first: the client gets its rights the moment it exists.
        self.ensure_role(&role, &device_acls(device, groups))
            .await?;
        self.ensure_client(device.as_str(), password, &role, Some(device.as_str()))
            .await
    }

    /// Records devices the broker is known to hold no password for (the
    /// managed broker reads its store at start): the next time one proves
    /// its secret over HTTP, [`BrokerAdmin::adopt`] sets it on the broker.
    pub fn expect_missing_passwords(&self, devices: impl IntoIterator<Item = DeviceId>) {
        if let Ok(mut missing) = self.missing_passwords.lock() {
            missing.extend(devices);
        }
    }

    async fn adopt_now(&self, device: &DeviceId, password: &str) -> Result<(), BrokerAdminError> {
        let expected = self
            .missing_passwords
            .lock()
            .map(|mut missing| missing.remove(device))
            .unwrap_or(false);
        if !expected {
            return Ok(());
        }
        check_id("device id", device.as_str())?;
        check_password(password)?;
        let outcome = {
            let _change = self.changes.lock().await;
            self.set_password(device, password).await
        };
        match outcome {
            Ok(()) => {
                tracing::info!(%device, "broker password set from the device's own login");
                Ok(())
            }
            Err(e) => {
                // Try again at its next request.
                self.expect_missing_passwords([device.clone()]);
                Err(e)
            }
        }
    }

    /// Gives client `device` `password` (pinned to its own client id),
    /// creating it without roles if the start's reconciliation has not yet
    /// made it (which then adds its role; until then it may do nothing).
    async fn set_password(
        &self,
        device: &DeviceId,
        password: &str,
    ) -> Result<(), BrokerAdminError> {
        let user = device.as_str();
        let [current] = self
            .execute_n([json!({"command": "getClient", "username": user})])
            .await?;
        let changes = if current.not_found() {
            vec![json!({"command": "createClient", "username": user,
                "password": password, "clientid": user})]
        } else {
            let current = current.ok()?;
            let pinned = current
                .data
                .as_ref()
                .and_then(|d| d.pointer("/client/clientid"))
                .and_then(Value::as_str);
            let mut changes = vec![json!({"command": "setClientPassword", "username": user,
                "password": password})];
            if pinned != Some(user) {
                changes.push(json!({"command": "setClientId", "username": user, "clientid": user}));
            }
            changes
        };
        for answer in self.execute(changes).await? {
            answer.ok()?;
        }
        Ok(())
    }

    /// The clients that hold their own device role ([`device_role`]), read
    /// a page of [`LIST_PAGE`] at a time.
    async fn granted_now(&self) -> Result<Vec<DeviceId>, BrokerAdminError> {
        let mut devices = Vec::new();
        let mut offset = 0_usize;
        loop {
            let [page] = self
                .execute_n([json!({"command": "listClients", "verbose": true,
                    "count": LIST_PAGE, "offset": offset})])
                .await?;
            let page = page.ok()?;
            let clients = page
                .data
                .as_ref()
                .and_then(|d| d.get("clients"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for client in &clients {
                let Some(user) = client.get("username").and_then(Value::as_str) else {
                    continue;
                };
                let device = DeviceId::from(user);
                if client_has_role(client, &device_role(&device)) {
                    devices.push(device);
                }
            }
            if clients.len() < LIST_PAGE {
                return Ok(devices);
            }
            offset += LIST_PAGE;
        }
    }

    async fn revoke_now(&self, device: &DeviceId) -> Result<(), BrokerAdminError> {
        check_id("device id", device.as_str())?;
        let _change = self.changes.lock().await;
        // Deleting the client also disconnects its sessions.
        let answers = self
            .execute(vec![
                json!({"command": "deleteClient", "username": device.as_str()}),
                json!({"command": "deleteRole", "rolename": device_role(device)}),
            ])
            .await?;
        for answer in answers {
            if !answer.not_found() {
                answer.ok()?;
            }
        }
        Ok(())
    }
}

impl BrokerAdmin for DynsecAdmin {
    fn grant(
        &self,
        device: &DeviceId,
        password: Option<&str>,
        groups: &[String],
    ) -> BoxFuture<'_, Result<(), BrokerAdminError>> {
        let device = device.clone();
        let password = password.map(str::to_owned);
        let groups = groups.to_vec();
        Box::pin(async move { self.grant_now(&device, password.as_deref(), &groups).await })
    }

    fn revoke(&self, device: &DeviceId) -> BoxFuture<'_, Result<(), BrokerAdminError>> {
        let device = device.clone();
        Box::pin(async move { self.revoke_now(&device).await })
    }

    fn granted(&self) -> BoxFuture<'_, Result<Vec<DeviceId>, BrokerAdminError>> {
        Box::pin(self.granted_now())
    }

    fn adopt<'a>(
        &'a self,
        device: &'a DeviceId,
        password: &'a str,
    ) -> BoxFuture<'a, Result<(), BrokerAdminError>> {
        Box::pin(self.adopt_now(device, password))
    }
}

/// Whether a `getClient` answer lists `role`.
fn has_role(client: &Response, role: &str) -> bool {
    client
        .data
        .as_ref()
        .and_then(|d| d.get("client"))
        .is_some_and(|c| client_has_role(c, role))
}

/// Whether a client object (as `getClient` and `listClients` give it)
/// lists `role`.
fn client_has_role(client: &Value, role: &str) -> bool {
    client
        .get("roles")
        .and_then(Value::as_array)
        .is_some_and(|roles| {
            roles
                .iter()
                .any(|r| r.get("rolename").and_then(Value::as_str) == Some(role))
        })
}

/// `(tls, host, port)` of `mqtt://host[:port]` or `mqtts://host[:port]`.
fn parse_url(url: &str) -> Result<(bool, String, u16), BrokerAdminError> {
    let bad = || {
        BrokerAdminError(format!(
            "broker URL {url:?} is not mqtt://host[:port] or mqtts://host[:port]"
        ))
    };
    let (tls, rest) = if let Some(rest) = url.strip_prefix("mqtt://") {
        (false, rest)
    } else if let Some(rest) = url.strip_prefix("mqtts://") {
        (true, rest)
    } else {
        return Err(bad());
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let default_port = if tls { 8883 } else { 1883 };
    let parse_port = |port: &str| port.parse::<u16>().map_err(|_| bad());
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(bad)?;
        let port = match after {
            "" => default_port,
            after => parse_port(after.strip_prefix(':').ok_or_else(bad)?)?,
        };
        (host, port)
    } else {
        match rest.split_once(':') {
            Some((host, port)) => (host, parse_port(port)?),
            None => (rest, default_port),
        }
    };
    if host.is_empty() || host.contains(['/', '@', '?', '#']) || port == 0 {
        return Err(bad());
    }
    Ok((tls, host.to_owned(), port))
}

/// Keeps the admin connection up: subscribes to [`RESPONSE_TOPIC`] after
/// every CONNACK, hands answers to their commands, and backs off between
/// failed connection attempts. Runs until aborted.
async fn drive(mut eventloop: EventLoop, client: AsyncClient, shared: Arc<Shared>) {
    let mut backoff = BACKOFF.0;
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff = BACKOFF.0;
                // `try_`: the request queue is drained by this very loop.
                if let Err(e) = client.try_subscribe(RESPONSE_TOPIC, QoS::AtLeastOnce) {
                    shared
                        .link
                        .send_replace(Link::Down(Some(format!("cannot subscribe: {e}"))));
                }
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                if ack
                    .return_codes
                    .iter()
                    .all(|c| matches!(c, SubscribeReasonCode::Success(_)))
                {
                    shared.link.send_replace(Link::Up);
                } else {
                    let why = format!(
                        "the broker refused the subscription to {RESPONSE_TOPIC}: \
                         the user lacks the dynamic-security admin role"
                    );
                    tracing::error!("{why}");
                    shared.link.send_replace(Link::Down(Some(why)));
                }
            }
            Ok(Event::Incoming(Packet::Publish(message))) => {
                if message.topic == RESPONSE_TOPIC {
                    shared.dispatch(&message.payload);
                }
            }
            Ok(_) => {}
            Err(e) => {
                let why = e.to_string();
                tracing::warn!(error = %why, "broker admin connection down; retrying");
                shared.link.send_replace(Link::Down(Some(why)));
                shared.fail_pending();
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF.1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn s7_device_acls_name_exactly_its_topics() {
        let device = DeviceId::from("d-a");
        let acls = device_acls(&device, &["g1".to_owned()]);
        let sends: Vec<&str> = acls
            .iter()
            .filter(|a| a.acl_type == "publishClientSend")
            .map(|a| a.topic.as_str())
            .collect();
        assert_eq!(
            sends,
            [
                "signet/v1/devices/d-a/events",
                "signet/v1/devices/d-a/state"
            ]
        );
        let reads: BTreeSet<&str> = acls
            .iter()
            .filter(|a| a.acl_type == "publishClientReceive")
            .map(|a| a.topic.as_str())
            .collect();
        let expected: BTreeSet<&str> = [
            "signet/v1/devices/d-a/assignment",
            "signet/v1/devices/d-a/commands",
            "signet/v1/hub/time",
            "signet/v1/trust",
            "signet/v1/groups/g1/manifest",
        ]
        .into();
        assert_eq!(reads, expected);
        assert!(acls.iter().all(|a| !a.topic.contains(['+', '#'])));
    }

    #[test]
    fn s7_ids_that_would_widen_a_topic_are_refused() {
        for id in [
            "",
            "a/b",
            "+",
            "x#",
            "$SYS",
            "a\nb",
            &"x".repeat(MAX_ID_LEN + 1),
        ] {
            assert!(check_id("group id", id).is_err(), "{id:?}");
        }
        check_id("group id", "ag-0123456789abcdef").unwrap();
    }

    #[test]
    fn broker_urls_parse_or_are_refused() {
        assert_eq!(
            parse_url("mqtt://127.0.0.1:1884").unwrap(),
            (false, "127.0.0.1".to_owned(), 1884)
        );
        assert_eq!(
            parse_url("mqtts://broker.example").unwrap(),
            (true, "broker.example".to_owned(), 8883)
        );
        assert_eq!(parse_url("mqtt://[::1]:1883").unwrap().1, "::1");
        for bad in [
            "http://x",
            "mqtt://",
            "mqtt://h:x",
            "mqtt://u@h:1",
            "mqtt://h:0",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}
