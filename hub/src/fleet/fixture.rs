//! A fake fleet for benchmarks (C3: the console's fleet page with 10,000
//! devices): `signet-hub dev-seed-fleet --devices N --data-dir D`.
//!
//! Owns: writing N fake paired devices ([`FIXTURE_DEVICE_PREFIX`]) at fake
//! sites under fake regions below the root, with stored states of every
//! kind the fleet view shows (online and playing, idle, offline, with an
//! error, never reported), into a data directory `init` made. Must not:
//! touch a data directory that holds a real device (refused whole,
//! [`FixtureError::RealDevices`]); make devices that can log in (their
//! secret hashes are of nothing) or anything a device would be sent.
//!
//! Online is derived from the last heartbeat (U4): the seeded devices are
//! online for `heartbeat_timeout_secs` after seeding (a bench sets it
//! large, or seeds again).

use chrono::{DateTime, TimeDelta, Utc};
use signet_common::ids::{DeviceId, ItemId, NodeId, UserId};
use signet_common::sync::{DeviceState, NowPlaying};

use super::{DEVICE_STATES, DeviceStatus};
use crate::devices::{DEVICES, Device, node_device_key};
use crate::store::{Store, StoreError, WriteBatch};
use crate::tenancy::{NODE_DEVICES, NODES, Node, load_tree_in};

/// Every fixture device's id starts with this; any other device is real.
pub const FIXTURE_DEVICE_PREFIX: &str = "d-fixture-";
/// Every fixture node's id starts with this.
pub const FIXTURE_NODE_PREFIX: &str = "n-fixture-";
/// Devices per fake site.
pub const DEVICES_PER_SITE: usize = 100;
/// Sites per fake region.
pub const SITES_PER_REGION: usize = 10;
/// The most devices one seeding makes.
pub const MAX_FIXTURE_DEVICES: usize = 100_000;

/// Why seeding refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    /// The data directory holds real devices: nothing was written.
    #[error(
        "the data directory holds {count} real device(s) (e.g. {example}): the fleet fixture \
         only goes into a test data directory"
    )]
    RealDevices {
        /// How many.
        count: usize,
        /// One of them.
        example: String,
    },
    /// Zero or more than [`MAX_FIXTURE_DEVICES`] devices asked for.
    #[error("--devices must be 1 to {MAX_FIXTURE_DEVICES}")]
    Count,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a seeding made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seeded {
    /// Devices written.
    pub devices: usize,
    /// Sites (leaf nodes) they are attached at.
    pub sites: usize,
    /// Regions the sites are under.
    pub regions: usize,
    /// Devices that reported online (online until the heartbeat timeout).
    pub online: usize,
    /// Devices that never reported.
    pub never_reported: usize,
}

/// What fake device number `i` reports, if anything (every kind of state
/// the fleet view shows, in a fixed pattern).
fn fake_status(i: usize, device: &DeviceId, now: DateTime<Utc>) -> Option<DeviceStatus> {
    if i % 50 == 3 {
        return None;
    }
    let offline = i % 20 == 7;
    let hour_ago = now - TimeDelta::hours(1);
    let seen = if offline { hour_ago } else { now };
    // Small bounded numbers: the casts are exact.
    #[allow(clippy::cast_precision_loss)]
    let temperature = 40.0 + (i % 30) as f32 * 0.7;
    let state = DeviceState {
        online: !offline,
        now_playing: (!offline && i % 10 != 9).then(|| NowPlaying {
            item: ItemId::from(format!("c-fixture-{}", i % 7).as_str()),
            entry: None,
            since: now - TimeDelta::seconds(i64::try_from(i % 600).unwrap_or(0)),
        }),
        cache_bytes: 50_000_000 + (i as u64 % 97) * 10_000_000,
        disk_free_bytes: Some(1_000_000_000 * (1 + i as u64 % 32)),
        temperature_c: Some(temperature),
        clock_offset_ms: i64::try_from(i % 41).unwrap_or(0) - 20,
        last_error: (i % 25 == 11).then(|| "decoder: the video could not be decoded".to_owned()),
        ..DeviceState::new(
            device.clone(),
            seen,
            "0.1.0",
            if i.is_multiple_of(3) {
                "Debian 12 (x86_64)"
            } else {
                "Raspberry Pi OS 12 (aarch64)"
            },
        )
    };
    Some(DeviceStatus {
        state,
        online: !offline,
        last_heartbeat: Some(seen),
        since: hour_ago,
        received_at: seen,
    })
}

/// Seeds `devices` fake devices into `store` at `now`, replacing the
/// fixture devices a previous seeding made; refused whole when the store
/// holds any real device.
///
/// # Errors
/// [`FixtureError`].
pub async fn seed(
    store: &Store,
    devices: usize,
    now: DateTime<Utc>,
) -> Result<Seeded, FixtureError> {
    if devices == 0 || devices > MAX_FIXTURE_DEVICES {
        return Err(FixtureError::Count);
    }
    store
        .transact(|tx| {
            let existing = tx.scan_keys(DEVICES, "")?;
            let real: Vec<&String> = existing
                .iter()
                .filter(|id| !id.starts_with(FIXTURE_DEVICE_PREFIX))
                .collect();
            if let Some(example) = real.first() {
                return Err(FixtureError::RealDevices {
                    count: real.len(),
                    example: (*example).clone(),
                });
            }
            let (tree, _) = load_tree_in(tx)?;
            let root = tree.root().clone();
            let mut batch = WriteBatch::new();
            // The previous fixture's devices go (its nodes are reused by id).
            for id in &existing {
                if let Some(old) = tx.get::<Device>(DEVICES, id)? {
                    batch.delete(NODE_DEVICES, &node_device_key(&old.node, &old.id));
                }
                batch.delete(DEVICES, id);
                batch.delete(DEVICE_STATES, id);
            }
            let sites = devices.div_ceil(DEVICES_PER_SITE);
            let regions = sites.div_ceil(SITES_PER_REGION);
            let node = |id: String, parent: &NodeId, name: String| Node {
                id: NodeId::from(id.as_str()),
                parent: Some(parent.clone()),
                name,
                restricted: false,
                created_by: None,
                created_at: now,
                content_manager_email: None,
                strict_feeds: false,
                created_at_root_level: true,
                locale: Default::default(),
            };
            for r in 0..regions {
                let region = node(
                    format!("{FIXTURE_NODE_PREFIX}r{r:03}"),
                    &root,
                    format!("Fixture region {}", r + 1),
                );
                batch.put(NODES, region.id.as_str(), &region)?;
            }
            let mut seeded = Seeded {
                devices,
                sites,
                regions,
                online: 0,
                never_reported: 0,
            };
            for i in 0..devices {
                let (site, region) = (
                    i / DEVICES_PER_SITE,
                    i / DEVICES_PER_SITE / SITES_PER_REGION,
                );
                let site_id =
                    NodeId::from(format!("{FIXTURE_NODE_PREFIX}r{region:03}-s{site:04}").as_str());
                if i.is_multiple_of(DEVICES_PER_SITE) {
                    let parent =
                        NodeId::from(format!("{FIXTURE_NODE_PREFIX}r{region:03}").as_str());
                    let site_node = node(
                        site_id.to_string(),
                        &parent,
                        format!(
                            "Fixture site {}.{}",
                            region + 1,
                            site % SITES_PER_REGION + 1
                        ),
                    );
                    batch.put(NODES, site_id.as_str(), &site_node)?;
                }
                let id = DeviceId::from(format!("{FIXTURE_DEVICE_PREFIX}{i:06}").as_str());
                let device = Device {
                    id: id.clone(),
                    name: format!("Screen {:05}", i + 1),
                    node: site_id.clone(),
                    public_key: String::new(),
                    os: "fixture".into(),
                    agent_version: "0.1.0".into(),
                    paired_at: now - TimeDelta::days(30),
                    paired_by: UserId::from("fixture"),
                    // The hash of nothing any device could send: no login.
                    secret_hash: String::new(),
                    last_command_version: 0,
                    variables: Default::default(),
                };
                batch.put(DEVICES, id.as_str(), &device)?;
                batch.put(
                    NODE_DEVICES,
                    &node_device_key(&site_id, &id),
                    &serde_json::json!({"device": id}),
                )?;
                match fake_status(i, &id, now) {
                    Some(status) => {
                        seeded.online += usize::from(status.online);
                        batch.put(DEVICE_STATES, id.as_str(), &status)?;
                    }
                    None => seeded.never_reported += 1,
                }
            }
            tx.include(batch);
            Ok(seeded)
        })
        .await
}
