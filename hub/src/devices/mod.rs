//! Devices (S7): pairing, device records and their credentials.
//!
//! Interface for the broker and the device routes: [`broker_login`].

use crate::store::{Store, StoreError};

/// Whether `username` / `password` are a paired device's broker
/// credentials (the device id and its secret).
///
/// # Errors
/// When the store fails.
pub fn broker_login(store: &Store, username: &str, password: &str) -> Result<bool, StoreError> {
    let _ = (store, username, password);
    Ok(false)
}
