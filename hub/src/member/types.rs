//! What the member-player routes take and answer (OpenAPI schemas, M6).
//!
//! Owns: the shapes exchanged with the player page. Must not: decide
//! anything, or show a browser's token after it was registered.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use signet_common::license::AccessWindow;

use super::Browser;

/// Registering this browser (M6: a browser counts as a device).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterBrowser {
    /// The name the user gives it (1 to 64 bytes), e.g. "Laptop".
    pub name: String,
}

/// A browser just registered: its token is shown once (the page keeps it).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BrowserRegistered {
    /// The browser.
    pub browser: BrowserView,
    /// Send it as `device_token` to start a playback.
    pub token: String,
}

/// One of the user's browsers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BrowserView {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// When it last started a playback.
    pub last_played_at: Option<DateTime<Utc>>,
    /// The access groups in which it holds a device slot.
    pub groups: Vec<String>,
}

impl From<&Browser> for BrowserView {
    fn from(b: &Browser) -> Self {
        Self {
            id: b.id.to_string(),
            name: b.name.clone(),
            created_at: b.created_at,
            last_played_at: b.last_played_at,
            groups: b.slots.iter().map(ToString::to_string).collect(),
        }
    }
}

/// "My content": the caller's access groups with their items (M6).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MyContent {
    /// The groups the caller is a current member of, by name.
    pub groups: Vec<MyGroup>,
}

/// One of the caller's groups.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MyGroup {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its categories, in the group's order.
    pub categories: Vec<String>,
    /// The caller's access window under its licence (L2).
    #[schema(value_type = Object)]
    pub window: AccessWindow,
    /// Whether the hub's time lies inside the window now.
    pub in_window_now: bool,
    /// The licence's device limit, if any (L5: each browser counts).
    pub max_devices: Option<u32>,
    /// Its items that can be played in a browser (video, audio, images).
    pub items: Vec<MyItem>,
}

/// An item of a group.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MyItem {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `video`, `audio` or `image`.
    pub kind: String,
    /// Its media type.
    pub media_type: String,
    /// Its playing time, if it has one.
    pub duration_ms: Option<u64>,
    /// Its categories in this group.
    pub categories: Vec<String>,
    /// A signed URL (relative to the hub) of its thumbnail, working for one
    /// to two hours; none when it has no thumbnail (audio, media that could
    /// not be rendered).
    pub thumbnail_url: Option<String>,
}

/// Starting a playback.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartPlay {
    /// The token this browser got when it was registered.
    pub device_token: String,
}

/// A playback granted: the signed, short-lived media URL.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PlayGranted {
    /// The playback (report progress to it).
    pub play_id: String,
    /// The media URL (relative to the hub), signed, until `expires_at`.
    pub url: String,
    /// When the URL stops working.
    pub expires_at: DateTime<Utc>,
    /// The group whose licence covers it.
    pub group: String,
    /// When the caller's access under that licence ends, if known.
    pub window_ends_at: Option<DateTime<Utc>>,
}

/// How far a playback got.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlayProgress {
    /// Milliseconds played so far (at most the time since it started).
    pub played_ms: u64,
}

/// The signature of a media URL (its query string).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MediaSignature {
    /// When the URL stops working (Unix seconds).
    pub expires: i64,
    /// HMAC-SHA256 of the play id and `expires`, hex.
    pub signature: String,
}
