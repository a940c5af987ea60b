//! Uploading a screenshot to the hub (D8).
//!
//! Owns: `POST {hub}/api/v1/device/screenshot` with the device's
//! credentials (HTTP Basic `device_id:secret`), the PNG bytes as
//! `image/png`, bounded in size and time, and turning the hub's answer into
//! success or an error that names the status and the hub's error code. Must
//! not: take the screenshot (the player does, `Player::screenshot`) nor
//! decide when to (the `screenshot` command does); it does not retry either
//! — a failed upload is reported and the next command takes a new one.

use std::time::Duration;

use serde::Deserialize;

/// The hub's route for screenshot uploads.
const SCREENSHOT_PATH: &str = "/api/v1/device/screenshot";
/// The largest screenshot the hub accepts, in bytes (its
/// `MAX_SCREENSHOT_BYTES`); larger ones are refused here without sending.
pub const MAX_SCREENSHOT_BYTES: usize = 8 * 1024 * 1024;
/// How long connecting to the hub may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one upload may take, answer included (8 MiB at 1 Mbit/s is
/// about 70 s).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// The most of an answer body read (the hub's error or its metadata).
const MAX_ANSWER_BYTES: usize = 4096;

/// Why a screenshot upload failed.
#[derive(Debug, thiserror::Error)]
pub enum ScreenshotError {
    /// The hub URL is not an `http://` or `https://` URL.
    #[error("hub URL {url:?}: {reason}")]
    BadUrl {
        /// The URL as configured.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The screenshot is larger than the hub accepts; nothing was sent.
    #[error("the screenshot is {bytes} bytes; the hub accepts at most {limit}")]
    TooLarge {
        /// Its size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Client(reqwest::Error),
    /// The hub could not be reached, or did not answer in time.
    #[error("screenshot upload to {url} failed: {reason}")]
    Transport {
        /// The upload URL.
        url: String,
        /// What went wrong (connection refused, timeout, …).
        reason: String,
    },
    /// The hub answered with something other than 200 or 201.
    #[error("hub refused the screenshot: {status} {code}: {message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The hub's error code (`invalid_png`, `device_credentials_required`,
        /// …), or `unknown` when the answer carried none.
        code: String,
        /// The hub's message, or the start of its answer body.
        message: String,
    },
}

/// The JSON body of a hub error (`{"error": code, "message": …}`).
#[derive(Deserialize)]
struct HubError {
    /// The stable machine code.
    error: String,
    /// The human explanation.
    #[serde(default)]
    message: String,
}

/// Uploads `png` as the device's latest screenshot to the hub at `hub_url`
/// (its base URL, as given at pairing) with the device's credentials.
/// Returns once the hub answered 200 or 201, which it does only after the
/// screenshot is durable.
///
/// # Errors
/// [`ScreenshotError`]: a bad URL, a screenshot over
/// [`MAX_SCREENSHOT_BYTES`] (not sent), no answer in time, or the hub's
/// refusal with its status and error code.
pub async fn upload(
    hub_url: &str,
    device_id: &str,
    secret: &str,
    png: Vec<u8>,
) -> Result<(), ScreenshotError> {
    upload_within(hub_url, device_id, secret, png, REQUEST_TIMEOUT).await
}

/// [`upload`] with the whole request bounded by `timeout`.
async fn upload_within(
    hub_url: &str,
    device_id: &str,
    secret: &str,
    png: Vec<u8>,
    timeout: Duration,
) -> Result<(), ScreenshotError> {
    let url = upload_url(hub_url)?;
    if png.len() > MAX_SCREENSHOT_BYTES {
        return Err(ScreenshotError::TooLarge {
            bytes: png.len(),
            limit: MAX_SCREENSHOT_BYTES,
        });
    }
    let client = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT.min(timeout))
        .timeout(timeout)
        .build()
        .map_err(ScreenshotError::Client)?;
    let transport = |e: reqwest::Error| ScreenshotError::Transport {
        url: url.to_string(),
        reason: e.without_url().to_string(),
    };
    let mut response = client
        .post(url.clone())
        .basic_auth(device_id, Some(secret))
        .header(reqwest::header::CONTENT_TYPE, "image/png")
        .body(png)
        .send()
        .await
        .map_err(transport)?;
    let status = response.status();
    if matches!(status.as_u16(), 200 | 201) {
        return Ok(());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        let room = MAX_ANSWER_BYTES.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if room <= chunk.len() {
            break;
        }
    }
    let (code, message) = match serde_json::from_slice::<HubError>(&body) {
        Ok(error) => (error.error, error.message),
        Err(_) => (
            "unknown".to_owned(),
            String::from_utf8_lossy(&body).into_owned(),
        ),
    };
    Err(ScreenshotError::Refused {
        status: status.as_u16(),
        code,
        message,
    })
}

/// `{hub_url}/api/v1/device/screenshot`, for an `http` or `https` base.
fn upload_url(hub_url: &str) -> Result<reqwest::Url, ScreenshotError> {
    crate::config::hub_route(hub_url, SCREENSHOT_PATH).map_err(|reason| ScreenshotError::BadUrl {
        url: hub_url.to_owned(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::body::Bytes;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::post;
    use base64::Engine as _;

    use super::*;

    /// A real 1×1 PNG.
    const PNG: [u8; 69] = [
        0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44,
        0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90,
        0x77, 0x53, 0xde, 0x00, 0x00, 0x00, 0x0c, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8,
        0xcf, 0xc0, 0x00, 0x00, 0x03, 0x01, 0x01, 0x00, 0xc9, 0xfe, 0x92, 0xef, 0x00, 0x00, 0x00,
        0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
    ];

    /// What the fake hub received: (Authorization, Content-Type, body).
    type Received = Arc<Mutex<Vec<(String, String, Vec<u8>)>>>;

    /// A hub stand-in on 127.0.0.1:0 that accepts `d-1:s3cret` with a PNG
    /// body (201), answers 401 to other credentials and 400 `invalid_png`
    /// to other bodies, like the real hub; records every request.
    async fn fake_hub() -> (String, Received) {
        let received: Received = Arc::default();
        let seen = Arc::clone(&received);
        let app = Router::new().route(
            SCREENSHOT_PATH,
            post(move |headers: HeaderMap, body: Bytes| {
                let seen = Arc::clone(&seen);
                async move {
                    let header = |name: &str| {
                        headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    let auth = header("authorization");
                    seen.lock().unwrap().push((
                        auth.clone(),
                        header("content-type"),
                        body.to_vec(),
                    ));
                    let expected = format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode("d-1:s3cret")
                    );
                    if auth != expected {
                        return (
                            StatusCode::UNAUTHORIZED,
                            r#"{"error":"device_credentials_required","message":"expected Basic"}"#,
                        );
                    }
                    if !body.starts_with(&PNG[..8]) {
                        return (
                            StatusCode::BAD_REQUEST,
                            r#"{"error":"invalid_png","message":"not a PNG"}"#,
                        );
                    }
                    (StatusCode::CREATED, r#"{"width":1,"height":1}"#)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (base, received)
    }

    /// D8: the PNG arrives whole as `image/png` with the device's Basic
    /// credentials; a 201 is success.
    #[tokio::test]
    async fn d8_upload_sends_the_png_with_device_credentials() {
        let (base, received) = fake_hub().await;
        upload(&format!("{base}/"), "d-1", "s3cret", PNG.to_vec())
            .await
            .unwrap();
        let got = received.lock().unwrap().clone();
        assert_eq!(got.len(), 1);
        let (auth, kind, body) = &got[0];
        let credentials = base64::engine::general_purpose::STANDARD
            .decode(auth.strip_prefix("Basic ").unwrap())
            .unwrap();
        assert_eq!(credentials, b"d-1:s3cret");
        assert_eq!(kind, "image/png");
        assert_eq!(body, &PNG);
    }

    /// D8: a refusal names the status and the hub's error code.
    #[tokio::test]
    async fn d8_refusals_name_the_status_and_the_hub_code() {
        let (base, _) = fake_hub().await;
        let err = upload(&base, "d-1", "wrong", PNG.to_vec())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ScreenshotError::Refused { status: 401, code, .. }
                if code == "device_credentials_required"),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains("401") && text.contains("device_credentials_required"),
            "{text}"
        );
        let err = upload(&base, "d-1", "s3cret", b"GIF89a".to_vec())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ScreenshotError::Refused { status: 400, code, message }
                if code == "invalid_png" && message == "not a PNG"),
            "{err:?}"
        );
        // A route the hub lacks: no JSON error, the status still named.
        let err = upload(&format!("{base}/elsewhere"), "d-1", "s3cret", PNG.to_vec())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ScreenshotError::Refused { status: 404, code, .. } if code == "unknown"),
            "{err:?}"
        );
    }

    /// §7: an oversized screenshot and a bad URL fail before anything is
    /// sent.
    #[tokio::test]
    async fn d8_oversized_and_bad_urls_send_nothing() {
        let (base, received) = fake_hub().await;
        let mut big = PNG.to_vec();
        big.resize(MAX_SCREENSHOT_BYTES + 1, 0);
        let err = upload(&base, "d-1", "s3cret", big).await.unwrap_err();
        assert!(
            matches!(err, ScreenshotError::TooLarge { bytes, limit }
                if bytes == MAX_SCREENSHOT_BYTES + 1 && limit == MAX_SCREENSHOT_BYTES),
            "{err:?}"
        );
        for url in ["ftp://hub", "not a url"] {
            assert!(matches!(
                upload(url, "d-1", "s3cret", PNG.to_vec()).await,
                Err(ScreenshotError::BadUrl { .. })
            ));
        }
        assert!(received.lock().unwrap().is_empty());
    }

    /// No hub listening, or one that never answers: a transport error, in
    /// bounded time.
    #[tokio::test]
    async fn d8_unreachable_or_silent_hub_is_a_transport_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let err = upload(&closed, "d-1", "s3cret", PNG.to_vec())
            .await
            .unwrap_err();
        assert!(matches!(err, ScreenshotError::Transport { .. }), "{err:?}");

        // Accepts connections, never answers.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", silent.local_addr().unwrap());
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = silent.accept().await {
                held.push(socket);
            }
        });
        let started = std::time::Instant::now();
        let err = upload_within(
            &url,
            "d-1",
            "s3cret",
            PNG.to_vec(),
            Duration::from_millis(300),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, ScreenshotError::Transport { .. }), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        hold.abort();
    }
}
