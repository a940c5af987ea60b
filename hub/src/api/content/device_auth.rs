//! [`DeviceAuth`]: the device credential path of the device routes (S7),
//! used by the content, fleet, screenshot and device-document routes.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use signet_common::ids::DeviceId;

use super::super::{ApiError, AppState};

/// The device a device-route request comes from (S7):
/// `Authorization: Basic base64(device_id:secret)` with the secret the
/// device collected at pairing, checked like its broker login
/// ([`crate::devices::broker_login`]). Anything else is 401
/// `device_credentials_required`.
pub struct DeviceAuth {
    /// The authenticated device.
    pub device: DeviceId,
}

/// The longest `Authorization` header a device may send, in bytes.
const MAX_DEVICE_AUTH_LEN: usize = 512;

impl FromRequestParts<AppState> for DeviceAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        use base64::Engine as _;
        let refused = || {
            let message =
                "expected 'Authorization: Basic base64(device_id:secret)' of a paired device";
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "device_credentials_required",
                message,
            )
        };
        let decoded = (parts.headers.get(header::AUTHORIZATION))
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.len() <= MAX_DEVICE_AUTH_LEN)
            .and_then(|v| {
                v.strip_prefix("Basic ")
                    .or_else(|| v.strip_prefix("basic "))
            })
            .and_then(|v| {
                base64::engine::general_purpose::STANDARD
                    .decode(v.trim())
                    .ok()
            })
            .and_then(|v| String::from_utf8(v).ok())
            .ok_or_else(refused)?;
        let (id, secret) = decoded.split_once(':').ok_or_else(refused)?;
        if !crate::devices::broker_login(&state.store, id, secret)? {
            return Err(refused());
        }
        let device = DeviceId::from(id);
        // A device paired before the broker held its password gets it now.
        if let Err(e) = state.broker_admin.adopt(&device, secret).await {
            tracing::warn!(%device, error = %e, "broker password not set; retrying at its next request");
        }
        Ok(Self { device })
    }
}
