//! The files the hub writes for its managed broker at every start (S10):
//! `mosquitto.conf` and the dynamic-security plugin's store, with fresh
//! salted hashes of the admin's and the hub's passwords, the hub's role,
//! deny-by-default access, and every device client and role kept.
//!
//! Owns: those files' content and how they are written (private, durable).
//! Must not: start anything (`super::supervise` does).

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use serde_json::{Value, json};

use super::ADMIN_USER;
use crate::mqtt::HUB_USERNAME;
use crate::mqtt::connection::{MAX_OUTGOING_PACKET, MqttError};
use crate::mqtt::dynsec::{self, HUB_ROLE};

/// The largest plugin store the hub reads (≈ 100 000 devices).
const MAX_STORE_BYTES: u64 = 256 * 1024 * 1024;
/// PBKDF2 rounds of the hashes the hub writes (what `mosquitto_ctrl` uses).
const PBKDF2_ROUNDS: u32 = 101;

/// Reads the plugin's store, if any, bounded by [`MAX_STORE_BYTES`].
pub(super) fn read_store(path: &Path) -> Result<Option<Value>, MqttError> {
    let fail = |e: &dyn std::fmt::Display| MqttError::Broker(format!("{}: {e}", path.display()));
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(fail(&e)),
    };
    let len = file.metadata().map_err(|e| fail(&e))?.len();
    if len > MAX_STORE_BYTES {
        return Err(fail(&format!("larger than {MAX_STORE_BYTES} bytes")));
    }
    let mut bytes = Vec::new();
    file.take(MAX_STORE_BYTES)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(&e))?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| fail(&e))
}

/// The users of `store`'s clients that have a password.
pub(super) fn users_with_password(store: Option<&Value>) -> std::collections::HashSet<String> {
    store
        .and_then(|s| s.get("clients"))
        .and_then(Value::as_array)
        .map(|clients| {
            clients
                .iter()
                .filter(|c| c.get("password").is_some_and(|p| !p.is_null()))
                .filter_map(|c| c.get("username").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The plugin's store for this start: `existing` (device clients and roles
/// kept) with the admin and hub clients replaced (fresh passwords; the hub
/// pinned to `hub_client_id`), the admin role and [`HUB_ROLE`] rewritten,
/// and default access denying everything.
pub(super) fn prepare_store(
    existing: Option<Value>,
    admin_password: &str,
    hub_password: &str,
    hub_client_id: &str,
) -> Value {
    let mut store = match existing {
        Some(Value::Object(fields)) => fields,
        _ => serde_json::Map::new(),
    };
    let ours_client = |c: &Value| matches!(c.get("username").and_then(Value::as_str), Some(u) if u == ADMIN_USER || u == HUB_USERNAME);
    let ours_role = |r: &Value| matches!(r.get("rolename").and_then(Value::as_str), Some(n) if n == ADMIN_USER || n == HUB_ROLE);
    let mut clients: Vec<Value> = store
        .get("clients")
        .and_then(Value::as_array)
        .map(|all| all.iter().filter(|c| !ours_client(c)).cloned().collect())
        .unwrap_or_default();
    let mut admin = client_entry(ADMIN_USER, admin_password, ADMIN_USER);
    if let Value::Object(fields) = &mut admin {
        fields.insert(
            "textName".into(),
            json!("Signet hub: dynamic-security admin"),
        );
    }
    let mut hub = client_entry(HUB_USERNAME, hub_password, HUB_ROLE);
    if let Value::Object(fields) = &mut hub {
        fields.insert("clientid".into(), json!(hub_client_id));
        fields.insert("textName".into(), json!("Signet hub: publisher"));
    }
    clients.push(admin);
    clients.push(hub);
    let mut roles: Vec<Value> = store
        .get("roles")
        .and_then(Value::as_array)
        .map(|all| all.iter().filter(|r| !ours_role(r)).cloned().collect())
        .unwrap_or_default();
    let control = format!("{}/#", "$CONTROL/dynamic-security");
    roles.push(json!({"rolename": ADMIN_USER, "acls": [
        {"acltype": "publishClientSend", "topic": control, "allow": true},
        {"acltype": "publishClientReceive", "topic": control, "allow": true},
        {"acltype": "subscribePattern", "topic": control, "allow": true},
        {"acltype": "unsubscribePattern", "topic": control, "allow": true},
    ]}));
    let hub_acls: Vec<Value> = dynsec::hub_acls()
        .iter()
        .map(dynsec::Acl::to_json)
        .collect();
    roles.push(json!({"rolename": HUB_ROLE, "acls": hub_acls}));
    store.insert("clients".into(), Value::Array(clients));
    store.insert("roles".into(), Value::Array(roles));
    store.insert(
        "defaultACLAccess".into(),
        json!({"publishClientSend": false, "publishClientReceive": false,
               "subscribe": false, "unsubscribe": false}),
    );
    Value::Object(store)
}

/// A plugin client holding `role`, with `password` hashed as the plugin
/// does (PBKDF2-HMAC-SHA512, 12-byte salt, 64-byte hash, base64).
pub(super) fn client_entry(username: &str, password: &str, role: &str) -> Value {
    use base64::Engine as _;
    use ring::rand::SecureRandom as _;
    let mut salt = [0_u8; 12];
    #[allow(clippy::expect_used)] // no safe fallback exists for a broken OS RNG
    ring::rand::SystemRandom::new()
        .fill(&mut salt)
        .expect("the operating system's random source failed");
    let mut hash = [0_u8; 64];
    let rounds = NonZeroU32::new(PBKDF2_ROUNDS).unwrap_or(NonZeroU32::MIN);
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA512,
        rounds,
        &salt,
        password.as_bytes(),
        &mut hash,
    );
    let b64 = base64::engine::general_purpose::STANDARD;
    json!({
        "username": username,
        "password": b64.encode(hash),
        "salt": b64.encode(salt),
        "iterations": PBKDF2_ROUNDS,
        "roles": [{"rolename": role, "priority": 0}],
    })
}

/// Writes `bytes` to `path` readable by the hub alone, durably (temporary
/// file, fsync, rename).
pub(super) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), MqttError> {
    let fail = |e: std::io::Error| MqttError::Broker(format!("{}: {e}", path.display()));
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(fail)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(fail)?;
    file.write_all(bytes).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(fail)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(fail)?;
    }
    Ok(())
}

/// The broker's config: one listener on `addr`, no anonymous clients, the
/// plugin with its store in `dir`, retained messages persisted in `dir`,
/// log to stderr (forwarded to the hub's log), packets bounded.
pub(super) fn config_text(addr: SocketAddr, dir: &Path, plugin: &Path) -> String {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(ip) => ip.to_string(),
        std::net::IpAddr::V6(ip) => ip.to_string(),
    };
    format!(
        "# Written by signet-hub at every start: edits are lost. See the README, \"Broker\".\n\
         per_listener_settings false\n\
         allow_anonymous false\n\
         listener {port} {ip}\n\
         max_packet_size {max_packet}\n\
         # Device reports to the hub in flight at once (the default is 20):\n\
         # the hub stores many to a commit and acknowledges after it (S9).\n\
         max_inflight_messages 1000\n\
         persistence true\n\
         persistence_location {dir}/\n\
         persistence_file mosquitto.db\n\
         autosave_interval 60\n\
         # As root, stay root: dropping to the mosquitto user would clear the\n\
         # parent-death signal and could not write the hub's data directory.\n\
         user root\n\
         log_dest stderr\n\
         log_type error\n\
         log_type warning\n\
         log_type notice\n\
         log_timestamp false\n\
         connection_messages true\n\
         plugin {plugin}\n\
         plugin_opt_config_file {dir}/dynamic-security.json\n",
        port = addr.port(),
        max_packet = MAX_OUTGOING_PACKET,
        dir = dir.display(),
        plugin = plugin.display(),
    )
}
