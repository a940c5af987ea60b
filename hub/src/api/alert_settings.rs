//! `/api/v1/alert-settings` (U4, C10): alert thresholds per node. The
//! rules are [`crate::fleet::alert_settings`]'s; this file extracts, calls
//! and maps.

use super::prelude::*;
use crate::fleet::alert_settings::{
    self as service, AlertSettingsError, AlertSettingsView, AlertThresholds, NodeAlertSettings,
};

concern_routes! { alert_settings; set_alert_settings }

impl From<AlertSettingsError> for ApiError {
    fn from(e: AlertSettingsError) -> Self {
        match e {
            AlertSettingsError::NotFound => ApiError::not_found("node"),
            AlertSettingsError::RoleTooLow(e) => e.into(),
            AlertSettingsError::Invalid(message) => {
                ApiError::bad_request("invalid_threshold", message)
            }
            AlertSettingsError::Store(e) => e.into(),
        }
    }
}

/// The alert thresholds: the hub's defaults and the nodes inside or above
/// the caller's domain that set their own (U4).
#[utoipa::path(get, path = "/api/v1/alert-settings", tag = "fleet", security(("bearer" = [])),
    responses((status = 200, description = "Defaults and per-node thresholds", body = AlertSettingsView)))]
pub async fn alert_settings(State(state): Ctx, caller: Caller) -> Answer<AlertSettingsView> {
    Ok(Json(service::settings(&state, &caller.actor())?))
}

/// Sets the alert thresholds of a node and the nodes below it that set
/// none (Manager+); both absent: inherit again. The root's hold for the
/// whole hub. Applies at the alert loop's next pass.
#[utoipa::path(put, path = "/api/v1/alert-settings/{node}", tag = "fleet", request_body = AlertThresholds,
    params(("node" = String, Path, description = "Node id")), security(("bearer" = [])),
    responses((status = 200, description = "Stored", body = NodeAlertSettings),
        (status = 400, description = "A threshold out of bounds", body = ErrorBody), (status = 403, description = "Below Manager", body = ErrorBody),
        (status = 404, description = "Node absent or not visible", body = ErrorBody)))]
pub async fn set_alert_settings(
    State(state): Ctx,
    caller: Caller,
    Path(node): Id,
    ApiJson(request): ApiJson<AlertThresholds>,
) -> Answer<NodeAlertSettings> {
    let stored = service::set(&state, &caller.actor(), &node, request).await?;
    Ok(Json(stored))
}
