//! Grants of many devices in a few control messages (S7, issue 20): the
//! grants callers ask for at the same time — concurrent pairing approvals,
//! a publication that re-grants its devices — are queued, and whoever
//! holds the change lock next sends them together: one message reads every
//! queued device's role and client, and the changes follow in messages of
//! at most [`MAX_CHANGES`] commands (mosquitto 2.0 saves its whole store
//! after every changing command: a long message would stall the broker).
//! Pairing 1,000 screens then costs a few hundred control messages, not
//! four round trips per screen one after another.
//!
//! Owns: the grant queue of [`DynsecAdmin`] and the batch exchange. Must
//! not: decide which rights a device has ([`super::acl`]) or what a change
//! consists of (`super::commands`'s `role_changes` and `client_changes`).
//!
//! No store lock or transaction is held across these messages (the outbox
//! claims its entries before and finishes them after); the change lock is
//! the admin's own, so that two read-modify-writes of one role never
//! interleave.

use std::collections::{BTreeSet, HashSet};
use std::ops::Range;

use serde_json::{Value, json};
use signet_common::ids::DeviceId;
use tokio::sync::oneshot;

use super::DynsecAdmin;
use super::acl::{
    Acl, DEVICES_ROLE, device_role, device_roles, devices_acls, group_acls, group_role, own_acls,
};
use super::commands::{client_roles, role_changes};
use super::link::Response;
use crate::mqtt::admin::BrokerAdminError;

/// The most devices one batch carries (two commands each in the first
/// message, up to a few dozen each in the second, all well under the
/// broker's packet limit and answered within the control timeout).
pub(super) const MAX_BATCH: usize = 128;
/// The most changing commands one control message carries (see
/// `DynsecAdmin::send_plans`).
const MAX_CHANGES: usize = 16;
/// The most shared roles read in one control message (each answer a few
/// hundred bytes, well under the response limit).
const MAX_READS: usize = 256;

/// A grant waiting for a batch.
pub(super) struct Queued {
    /// The device.
    device: DeviceId,
    /// The password to set, if any.
    password: Option<String>,
    /// The groups it follows (checked ids).
    groups: Vec<String>,
    /// Where its outcome goes.
    reply: oneshot::Sender<Result<(), BrokerAdminError>>,
}

fn lost() -> BrokerAdminError {
    BrokerAdminError("the grant was dropped before the broker answered".to_owned())
}

impl DynsecAdmin {
    /// Makes `device`'s own role hold exactly [`own_acls`], the shared
    /// roles of `groups` exist, and its client exist holding exactly
    /// [`device_roles`] (and `password`), pinned to its own client id:
    /// queued, and sent with whatever else is queued when the change lock
    /// is free. The ids and password are checked by the caller.
    pub(super) async fn grant_batched(
        &self,
        device: &DeviceId,
        password: Option<&str>,
        groups: &[String],
    ) -> Result<(), BrokerAdminError> {
        let (reply, outcome) = oneshot::channel();
        self.queued
            .lock()
            .map_err(|_| BrokerAdminError("admin state poisoned".to_owned()))?
            .push(Queued {
                device: device.clone(),
                password: password.map(str::to_owned),
                groups: groups.to_vec(),
                reply,
            });
        {
            // Whoever holds the lock next sends every queued grant, ours
            // too unless an earlier holder already did.
            let _change = self.changes.lock().await;
            loop {
                let batch = self.next_batch();
                if batch.is_empty() {
                    break;
                }
                self.send_batch(batch).await;
            }
        }
        outcome.await.map_err(|_| lost())?
    }

    /// Takes up to [`MAX_BATCH`] queued grants of distinct devices (a
    /// second grant of one device waits for the next batch, so it reads
    /// what the first one made).
    fn next_batch(&self) -> Vec<Queued> {
        let Ok(mut queued) = self.queued.lock() else {
            return Vec::new();
        };
        let mut seen = HashSet::new();
        let mut batch = Vec::new();
        let mut rest = Vec::new();
        for grant in queued.drain(..) {
            if batch.len() < MAX_BATCH && seen.insert(grant.device.clone()) {
                batch.push(grant);
            } else {
                rest.push(grant);
            }
        }
        *queued = rest;
        batch
    }

    /// Sends `batch` and answers each of its grants.
    async fn send_batch(&self, batch: Vec<Queued>) {
        let outcomes = self.grant_all(&batch).await;
        for (grant, outcome) in batch.into_iter().zip(outcomes) {
            let _ = grant.reply.send(outcome);
        }
    }

    /// One message reading every device's role and client and the shared
    /// roles they need, then the changes that make them what Signet wants
    /// (the shared roles' first: a missing group role is created once for
    /// the whole fleet); each device's outcome, in order.
    async fn grant_all(&self, batch: &[Queued]) -> Vec<Result<(), BrokerAdminError>> {
        let shared = shared_roles(batch);
        let mut reads: Vec<Value> = batch
            .iter()
            .flat_map(|g| {
                [
                    json!({"command": "getRole", "rolename": device_role(&g.device)}),
                    json!({"command": "getClient", "username": g.device.as_str()}),
                ]
            })
            .collect();
        let mut chunks = shared.chunks(MAX_READS);
        let read_role =
            |(name, _): &(String, BTreeSet<Acl>)| json!({"command": "getRole", "rolename": name});
        reads.extend(chunks.next().unwrap_or_default().iter().map(read_role));
        let mut current = match self.execute(reads).await {
            Ok(answers) => answers,
            Err(e) => return vec![Err(e); batch.len()],
        };
        for chunk in chunks {
            match self.execute(chunk.iter().map(read_role).collect()).await {
                Ok(answers) => current.extend(answers),
                Err(e) => return vec![Err(e); batch.len()],
            }
        }
        if current.len() != 2 * batch.len() + shared.len() {
            let e =
                BrokerAdminError("the broker answered a different number of commands".to_owned());
            return vec![Err(e); batch.len()];
        }
        let shared_held = current.split_off(2 * batch.len());
        let mut shared_changes = Vec::new();
        for ((name, wanted), held) in shared.iter().zip(shared_held) {
            match role_changes(name, wanted, held) {
                Ok(changes) => shared_changes.extend(changes),
                Err(e) => return vec![Err(e); batch.len()],
            }
        }
        let mut plans = vec![Ok(shared_changes)];
        plans.extend(
            batch
                .iter()
                .zip(current.chunks_exact(2))
                .map(|(grant, held)| plan(grant, &held[0], &held[1])),
        );
        let mut outcomes = self.send_plans(plans).await;
        let shared_outcome = outcomes.remove(0);
        match shared_outcome {
            Ok(()) => outcomes,
            Err(e) => vec![Err(e); batch.len()],
        }
    }

    /// Sends the devices' `plans` in messages of at most [`MAX_CHANGES`]
    /// commands, each device's together: mosquitto 2.0 saves its whole
    /// store after every changing command, so a long message would hold
    /// the broker (and every client's keep-alive) for seconds at 1,000
    /// devices. Each device's outcome, in order.
    async fn send_plans(
        &self,
        plans: Vec<Result<Vec<Value>, BrokerAdminError>>,
    ) -> Vec<Result<(), BrokerAdminError>> {
        let mut outcomes: Vec<Option<Result<(), BrokerAdminError>>> =
            Vec::with_capacity(plans.len());
        let mut message: Vec<Value> = Vec::new();
        let mut waiting: Vec<(usize, Range<usize>)> = Vec::new();
        let mut failed: Option<BrokerAdminError> = None;
        for (index, plan) in plans.into_iter().enumerate() {
            match plan {
                Err(e) => outcomes.push(Some(Err(e))),
                Ok(commands) if commands.is_empty() => outcomes.push(Some(Ok(()))),
                Ok(commands) => {
                    if !message.is_empty() && message.len() + commands.len() > MAX_CHANGES {
                        self.send_changes(&mut message, &mut waiting, &mut outcomes, &mut failed)
                            .await;
                    }
                    let start = message.len();
                    message.extend(commands);
                    waiting.push((index, start..message.len()));
                    outcomes.push(None);
                }
            }
        }
        self.send_changes(&mut message, &mut waiting, &mut outcomes, &mut failed)
            .await;
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Err(lost())))
            .collect()
    }

    /// Sends `message` (the changes of the devices `waiting` names, each
    /// with its span of commands) and records each device's outcome; after
    /// a failed message (`failed`), the rest fail the same way unsent.
    async fn send_changes(
        &self,
        message: &mut Vec<Value>,
        waiting: &mut Vec<(usize, Range<usize>)>,
        outcomes: &mut [Option<Result<(), BrokerAdminError>>],
        failed: &mut Option<BrokerAdminError>,
    ) {
        let commands = std::mem::take(message);
        let devices = std::mem::take(waiting);
        if devices.is_empty() {
            return;
        }
        let answers = match failed {
            Some(e) => Err(e.clone()),
            None => self.execute(commands).await,
        };
        if let Err(e) = &answers {
            *failed = Some(e.clone());
        }
        for (index, span) in devices {
            let outcome = match &answers {
                Err(e) => Err(e.clone()),
                Ok(answers) => match answers.get(span) {
                    None => Err(BrokerAdminError(
                        "the broker answered fewer commands than it was sent".to_owned(),
                    )),
                    Some(own) => own.iter().try_for_each(|a| a.clone().ok().map(drop)),
                },
            };
            if let Some(slot) = outcomes.get_mut(index) {
                *slot = Some(outcome);
            }
        }
    }
}

/// [`DEVICES_ROLE`] and the role of every group `batch` follows, with
/// the rights each must hold.
fn shared_roles(batch: &[Queued]) -> Vec<(String, BTreeSet<Acl>)> {
    let mut shared = vec![(DEVICES_ROLE.to_owned(), devices_acls())];
    let groups: BTreeSet<&String> = batch.iter().flat_map(|g| &g.groups).collect();
    shared.extend(groups.into_iter().map(|g| (group_role(g), group_acls(g))));
    shared
}

/// The commands that make `grant` hold: its own role first (the client
/// gets its rights the moment it exists), then its client with exactly
/// its roles. A new device costs two commands (`createRole`,
/// `createClient`); a move between groups, a new password or pin one
/// (`modifyClient`: mosquitto 2.0 disconnects the client for it, and the
/// agent subscribes again). An own role that holds anything else (the
/// per-device roles of earlier versions, which held every group's topics
/// too) is replaced whole rather than edited one entry per command: the
/// client first stops holding it (mosquitto 2.0.11 does not unlink a role
/// it deletes from clients created holding it), then `deleteRole`,
/// `createRole`, `addClientRole`.
fn plan(
    grant: &Queued,
    role: &Response,
    client: &Response,
) -> Result<Vec<Value>, BrokerAdminError> {
    let user = grant.device.as_str();
    let role_name = device_role(&grant.device);
    let acls = own_acls(&grant.device);
    let mut commands = role_changes(&role_name, &acls, role.clone())?;
    let replace = !role.not_found() && !commands.is_empty();
    let roles = device_roles(&grant.device, &grant.groups);
    let listed = |roles: &BTreeSet<String>| -> Value {
        roles
            .iter()
            .map(|r| json!({"rolename": r, "priority": 0}))
            .collect()
    };
    if client.not_found() {
        if replace {
            commands = replace_role(&role_name, &acls);
        }
        let mut create = json!({"command": "createClient", "username": user,
            "clientid": user, "roles": listed(&roles)});
        if let (Some(password), Value::Object(fields)) = (&grant.password, &mut create) {
            fields.insert("password".to_owned(), json!(password));
        }
        commands.push(create);
        return Ok(commands);
    }
    let current = client.clone().ok()?;
    let pinned = current
        .data
        .as_ref()
        .and_then(|d| d.pointer("/client/clientid"))
        .and_then(Value::as_str);
    let mut fields = serde_json::Map::new();
    let mut held = roles.clone();
    if replace {
        held.remove(&role_name);
    }
    if replace || client_roles(&current) != roles {
        fields.insert("roles".to_owned(), listed(&held));
    }
    if let Some(password) = &grant.password {
        fields.insert("password".to_owned(), json!(password));
    }
    if pinned != Some(user) {
        fields.insert("clientid".to_owned(), json!(user));
    }
    let mut changes = Vec::new();
    if !fields.is_empty() {
        fields.insert("command".to_owned(), json!("modifyClient"));
        fields.insert("username".to_owned(), json!(user));
        changes.push(Value::Object(fields));
    }
    if replace {
        changes.extend(replace_role(&role_name, &acls));
        changes.push(json!({"command": "addClientRole", "username": user,
            "rolename": role_name, "priority": 0}));
        return Ok(changes);
    }
    commands.extend(changes);
    Ok(commands)
}

/// Deletes role `name` and creates it again holding exactly `acls` (no
/// client may hold it when it is deleted).
fn replace_role(name: &str, acls: &BTreeSet<Acl>) -> Vec<Value> {
    let create: Vec<Value> = acls.iter().map(Acl::to_json).collect();
    vec![
        json!({"command": "deleteRole", "rolename": name}),
        json!({"command": "createRole", "rolename": name, "acls": create}),
    ]
}
