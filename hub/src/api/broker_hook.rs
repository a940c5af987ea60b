//! `/api/v1/broker/*`: a clustered broker's HTTP hooks ([`crate::mqtt::hook`]).

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::prelude::*;
use crate::mqtt::hook::{self, AccessQuestion, HookAnswer, LoginQuestion, Refused};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(authenticate))
        .routes(routes!(authorize))
}

/// The broker's bearer token, checked before the body is read: 404 when
/// the hooks are off, 401 for anything but the token.
pub struct Broker;

impl FromRequestParts<AppState> for Broker {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts.headers.get(AUTHORIZATION);
        match hook::check_broker(state, header.and_then(|v| v.to_str().ok())) {
            Ok(()) => Ok(Self),
            Err(Refused::Off) => Err(ApiError::not_found("broker hook")),
            Err(Refused::NotTheBroker) => Err(ApiError::unauthorized(
                "expected the hub's mqtt.auth_hook_token as bearer token",
            )),
        }
    }
}

/// May this client connect? (EMQX's HTTP authenticator.)
#[utoipa::path(post, path = "/api/v1/broker/authenticate", tag = "broker", request_body = LoginQuestion, security(("broker_token" = [])),
    responses((status = 200, description = "The verdict", body = HookAnswer),
        (status = 401, description = "Not the broker's token", body = ErrorBody),
        (status = 404, description = "mqtt.auth_hook_token is not set", body = ErrorBody)))]
pub async fn authenticate(
    State(state): Ctx,
    _: Broker,
    ApiJson(question): ApiJson<LoginQuestion>,
) -> Answer<HookAnswer> {
    Ok(Json(hook::authenticate(&state, &question)?.into()))
}

/// May this client publish on or subscribe to this topic? (EMQX's HTTP authorizer.)
#[utoipa::path(post, path = "/api/v1/broker/authorize", tag = "broker", request_body = AccessQuestion, security(("broker_token" = [])),
    responses((status = 200, description = "The verdict", body = HookAnswer),
        (status = 401, description = "Not the broker's token", body = ErrorBody),
        (status = 404, description = "mqtt.auth_hook_token is not set", body = ErrorBody)))]
pub async fn authorize(
    State(state): Ctx,
    _: Broker,
    ApiJson(question): ApiJson<AccessQuestion>,
) -> Answer<HookAnswer> {
    Ok(Json(hook::authorize(&state, &question)?.into()))
}
