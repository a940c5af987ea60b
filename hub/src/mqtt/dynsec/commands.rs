//! What the hub asks of the dynamic-security plugin (S7, S10, O3):
//! bootstrap the broker for Signet, grant a device exactly its rights,
//! revoke them, list who holds them, and give a device whose broker
//! password was lost its own again — each as the fewest control messages
//! that make the broker hold what Signet wants.
//!
//! Owns: [`DynsecAdmin::bootstrap`], the [`BrokerAdmin`] implementation and
//! the read-modify-write of roles and clients. Must not: hold the
//! connection (`super::link` does) or decide which rights a device has
//! ([`super::acl`] does).

use std::collections::BTreeSet;

use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use signet_common::ids::DeviceId;

use super::acl::{
    Acl, DEVICES_ROLE, check_id, check_password, device_role, device_roles, devices_acls,
    group_acls, group_role, hub_acls, own_acls,
};
use super::link::Response;
use super::{DynsecAdmin, HUB_ROLE, LIST_PAGE, MAX_GROUPS};
use crate::mqtt::admin::{BrokerAdmin, BrokerAdminError};

impl DynsecAdmin {
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
        self.apply(vec![
            json!({"command": "setDefaultACLAccess", "acls": defaults}),
        ])
        .await?;
        self.ensure_role(HUB_ROLE, &hub_acls()).await?;
        self.ensure_role(DEVICES_ROLE, &devices_acls()).await?;
        let password = hub_password.filter(|_| hub_user != self.admin_user);
        self.ensure_client(hub_user, password, HUB_ROLE, None).await
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
        self.apply(role_changes(name, wanted, current)?).await
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
        let current = if user == self.admin_user && !current.not_found() {
            let current = current.ok()?;
            if !has_role(&current, role) {
                return self.give_admin_role(user, role).await;
            }
            current
        } else {
            current
        };
        self.apply(client_changes(user, password, role, clientid, current)?)
            .await
    }

    /// Gives the admin user `role`. Mosquitto disconnects a client whose
    /// roles change: for our own user that is this very session, and the
    /// answer may be lost with it. Look again once reconnected.
    async fn give_admin_role(&self, user: &str, role: &str) -> Result<(), BrokerAdminError> {
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
        Ok(())
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
        if device.as_str() == self.admin_user {
            // Not batched: a change of its roles ends this very session.
            // Its own roles are only added to (it keeps the admin role).
            let _change = self.changes.lock().await;
            self.ensure_role(DEVICES_ROLE, &devices_acls()).await?;
            for group in groups {
                self.ensure_role(&group_role(group), &group_acls(group))
                    .await?;
            }
            self.ensure_role(&device_role(device), &own_acls(device))
                .await?;
            for role in device_roles(device, groups) {
                self.ensure_client(device.as_str(), password, &role, Some(device.as_str()))
                    .await?;
            }
            return Ok(());
        }
        self.grant_batched(device, password, groups).await
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
        self.apply(changes).await
    }

    /// The clients that hold their own device role ([`device_role`]).
    async fn granted_now(&self) -> Result<Vec<DeviceId>, BrokerAdminError> {
        let devices = self
            .clients_where(|user, client| {
                client_has_role(client, &device_role(&DeviceId::from(user)))
            })
            .await?;
        Ok(devices.iter().map(|d| DeviceId::from(d.as_str())).collect())
    }

    /// The user names of the clients `keep` picks (given the user name and
    /// the client object).
    async fn clients_where(
        &self,
        keep: impl Fn(&str, &Value) -> bool,
    ) -> Result<Vec<String>, BrokerAdminError> {
        let mut users = Vec::new();
        self.each_listed("listClients", "/clients", true, |client| {
            if let Some(user) = client.get("username").and_then(Value::as_str)
                && keep(user, client)
            {
                users.push(user.to_owned());
            }
        })
        .await?;
        Ok(users)
    }

    /// The ids of the groups whose role ([`group_role`]) the plugin holds.
    async fn group_roles_now(&self) -> Result<Vec<String>, BrokerAdminError> {
        let prefix = group_role("");
        let mut groups = Vec::new();
        self.each_listed("listRoles", "/roles", false, |role| {
            // Verbose lists give objects, terse ones names.
            let name = role
                .as_str()
                .or_else(|| role.get("rolename").and_then(Value::as_str));
            if let Some(group) = name.and_then(|n| n.strip_prefix(&prefix)) {
                groups.push(group.to_owned());
            }
        })
        .await?;
        Ok(groups)
    }

    /// Calls `each` with every entry of the array at `pointer` in the
    /// answers to list `command` (`listClients`, `listRoles`; `verbose`:
    /// whole objects, not names), read a page of [`LIST_PAGE`] at a time.
    async fn each_listed(
        &self,
        command: &str,
        pointer: &str,
        verbose: bool,
        mut each: impl FnMut(&Value),
    ) -> Result<(), BrokerAdminError> {
        let mut offset = 0_usize;
        loop {
            let [page] = self
                .execute_n([json!({"command": command, "verbose": verbose,
                    "count": LIST_PAGE, "offset": offset})])
                .await?;
            let entries = array_at(&page.ok()?, pointer);
            entries.iter().for_each(&mut each);
            if entries.len() < LIST_PAGE {
                return Ok(());
            }
            offset += LIST_PAGE;
        }
    }

    /// Deletes the role of `group` ([`group_role`]); a role already gone is
    /// no error. A client still holding it (its grant did not follow yet)
    /// loses it first, in the same control messages: mosquitto 2.0.11
    /// stops (its process exits) when a client that still holds a deleted
    /// role subscribes, so no role is ever deleted while held.
    async fn retire_group_now(&self, group: &str) -> Result<(), BrokerAdminError> {
        check_id("group id", group)?;
        let role = group_role(group);
        let _change = self.changes.lock().await;
        let holders = self
            .clients_where(|_, client| client_has_role(client, &role))
            .await?;
        let mut commands: Vec<Value> = holders
            .iter()
            .map(|user| json!({"command": "removeClientRole", "username": user, "rolename": role}))
            .collect();
        commands.push(json!({"command": "deleteRole", "rolename": role}));
        for chunk in commands.chunks(LIST_PAGE) {
            for answer in self.execute(chunk.to_vec()).await? {
                if !answer.not_found() {
                    answer.ok()?;
                }
            }
        }
        Ok(())
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

    fn retire_group<'a>(&'a self, group: &'a str) -> BoxFuture<'a, Result<(), BrokerAdminError>> {
        Box::pin(self.retire_group_now(group))
    }

    fn group_roles(&self) -> BoxFuture<'_, Result<Vec<String>, BrokerAdminError>> {
        Box::pin(self.group_roles_now())
    }

    fn adopt<'a>(
        &'a self,
        device: &'a DeviceId,
        password: &'a str,
    ) -> BoxFuture<'a, Result<(), BrokerAdminError>> {
        Box::pin(self.adopt_now(device, password))
    }
}

/// The array at `pointer` (a JSON pointer) in the data of a control
/// response: the clients of a `listClients` page, the ACLs of a `getRole`
/// answer; empty when the answer has none there.
fn array_at(response: &Response, pointer: &str) -> Vec<Value> {
    response
        .data
        .as_ref()
        .and_then(|d| d.pointer(pointer))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// The roles a `getClient` answer lists.
pub(super) fn client_roles(client: &Response) -> BTreeSet<String> {
    client
        .data
        .as_ref()
        .and_then(|d| d.pointer("/client/roles"))
        .and_then(Value::as_array)
        .map(|roles| {
            roles
                .iter()
                .filter_map(|r| r.get("rolename").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
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

/// What makes role `name` hold exactly `wanted`, given the plugin's answer
/// to `getRole` (`current`): its creation, or the removal of what it holds
/// beyond `wanted` and the addition of what it lacks (none: nothing).
pub(super) fn role_changes(
    name: &str,
    wanted: &BTreeSet<Acl>,
    current: Response,
) -> Result<Vec<Value>, BrokerAdminError> {
    if current.not_found() {
        let acls: Vec<Value> = wanted.iter().map(Acl::to_json).collect();
        return Ok(vec![
            json!({"command": "createRole", "rolename": name, "acls": acls}),
        ]);
    }
    let current = current.ok()?;
    let held = array_at(&current, "/role/acls");
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
    Ok(changes)
}

/// What makes client `user` exist with `role` (and `password` when given),
/// pinned to `clientid` when given, given the plugin's answer to
/// `getClient` (`current`): its creation, or the role, password and pin
/// it lacks (none: nothing). Not for the admin user's own role (see
/// `DynsecAdmin::give_admin_role`).
pub(super) fn client_changes(
    user: &str,
    password: Option<&str>,
    role: &str,
    clientid: Option<&str>,
    current: Response,
) -> Result<Vec<Value>, BrokerAdminError> {
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
        return Ok(vec![create]);
    }
    let current = current.ok()?;
    let pinned = current
        .data
        .as_ref()
        .and_then(|d| d.pointer("/client/clientid"))
        .and_then(Value::as_str);
    let mut changes = Vec::new();
    if !has_role(&current, role) {
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
    Ok(changes)
}
