//! The demo's operator: an HTTP client of the hub's API (`/api/v1`, bearer
//! token), doing what an operator would with curl — log in, make a node,
//! upload, build a template, playlist and schedule, approve pairings,
//! publish, read the fleet.
//!
//! Owns: request building and error wording. Must not: reach into the
//! hub's store; everything goes through the public API.

use std::time::Duration;

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::api::ContentView;
use crate::fleet::FleetDevice;

/// The longest one request may take (uploads included: the samples are small).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The most of an error answer quoted in a message, in characters.
const MAX_QUOTED: usize = 300;

/// A refused or failed request.
#[derive(Debug, thiserror::Error)]
#[error("{method} {path}: {reason}")]
pub struct OperatorError {
    /// The request's method.
    pub method: Method,
    /// The request's path.
    pub path: String,
    /// The status and answer, or why no answer came.
    pub reason: String,
}

impl OperatorError {
    /// `method path: reason`.
    fn new(method: Method, path: &str, reason: impl Into<String>) -> Self {
        Self {
            method,
            path: path.to_owned(),
            reason: reason.into(),
        }
    }
}

/// A logged-in operator of one hub.
pub struct Operator {
    /// `http://127.0.0.1:PORT`.
    base: String,
    /// The session's bearer token.
    token: String,
    /// The HTTP client.
    client: reqwest::Client,
}

impl Operator {
    /// Logs in to the hub at `base` as `name`.
    ///
    /// # Errors
    /// When the hub refuses the login or does not answer.
    pub async fn login(base: &str, name: &str, password: &str) -> Result<Self, OperatorError> {
        let path = "/api/v1/session";
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| OperatorError::new(Method::POST, path, e.to_string()))?;
        let mut operator = Self {
            base: base.to_owned(),
            token: String::new(),
            client,
        };
        let session: Value = operator
            .send(
                Method::POST,
                path,
                Some(json!({"name": name, "password": password})),
            )
            .await?;
        operator.token = session["token"]
            .as_str()
            .ok_or_else(|| OperatorError::new(Method::POST, path, "the answer has no token"))?
            .to_owned();
        Ok(operator)
    }

    /// POSTs `body` to `path` and returns the `id` at `pointer` in the
    /// answer (`/id` for what the route made).
    ///
    /// # Errors
    /// When the hub refuses, or the answer names no id there.
    pub async fn create(
        &self,
        path: &str,
        body: Value,
        pointer: &str,
    ) -> Result<String, OperatorError> {
        let made: Value = self.send(Method::POST, path, Some(body)).await?;
        made.pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                OperatorError::new(Method::POST, path, format!("the answer has no {pointer}"))
            })
    }

    /// Sends a JSON request and decodes the JSON answer.
    ///
    /// # Errors
    /// When the request fails, the hub answers other than 2xx, or the
    /// answer does not decode as `T`.
    pub async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<T, OperatorError> {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.base));
        if !self.token.is_empty() {
            request = request.bearer_auth(&self.token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.answer(method, path, request).await
    }

    /// Uploads `bytes` as a content item named `name` at `node`.
    ///
    /// # Errors
    /// When the hub refuses the upload.
    pub async fn upload(
        &self,
        node: &str,
        name: &str,
        bytes: Vec<u8>,
    ) -> Result<ContentView, OperatorError> {
        let path = "/api/v1/content";
        let request = self
            .client
            .post(format!("{}{path}", self.base))
            .query(&[("node", node), ("name", name)])
            .bearer_auth(&self.token)
            .body(bytes);
        self.answer(Method::POST, path, request).await
    }

    /// The fleet view of every device (U4).
    ///
    /// # Errors
    /// When the hub does not answer.
    pub async fn fleet(&self) -> Result<Vec<FleetDevice>, OperatorError> {
        self.send(Method::GET, "/api/v1/fleet", None).await
    }

    async fn answer<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<T, OperatorError> {
        let failed = |reason: String| OperatorError::new(method.clone(), path, reason);
        let response = request.send().await.map_err(|e| failed(e.to_string()))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| failed(e.to_string()))?;
        if !status.is_success() {
            let text: String = String::from_utf8_lossy(&bytes)
                .chars()
                .take(MAX_QUOTED)
                .collect();
            return Err(failed(format!("{status}: {text}")));
        }
        serde_json::from_slice(&bytes).map_err(|e| failed(format!("unexpected answer: {e}")))
    }
}
