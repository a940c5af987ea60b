//! Device state reports as an agent writes them (U4), for the tests that
//! record them and read the fleet back.

use chrono::{DateTime, Utc};
use signet_common::ids::{DeviceId, ItemId};
use signet_common::sync::{DeviceState, NowPlaying};

/// A state report of `device` written at `at`: online, agent 0.1.0 on
/// "test os", nothing applied, nothing playing, an empty cache and no
/// readings. A test sets what it needs by struct update
/// (`DeviceState { cache_bytes, ..device_state(device, at) }`).
pub fn device_state(device: &str, at: DateTime<Utc>) -> DeviceState {
    DeviceState::new(DeviceId::from(device), at, "0.1.0", "test os")
}

/// `item` on screen since `since` (the main layer, no schedule entry).
pub fn playing(item: &str, since: DateTime<Utc>) -> Option<NowPlaying> {
    Some(NowPlaying {
        item: ItemId::from(item),
        entry: None,
        since,
    })
}
