//! Media metadata (duration, resolution) read with GStreamer's discoverer.
//!
//! Owns: probing one file. Must not: refuse content — a file whose type was
//! detected but whose metadata cannot be read is stored without metadata
//! (the probe failure is logged). The probe blocks, so it runs in
//! `spawn_blocking`, bounded by [`DISCOVER_TIMEOUT_SECS`].

use std::path::Path;

use gstreamer as gst;
use gstreamer_pbutils as pbutils;
use signet_common::documents::ItemKind;

/// The longest a probe may take before the discoverer gives up.
pub const DISCOVER_TIMEOUT_SECS: u64 = 10;

/// The largest image probed: the discoverer decodes an image whole, in
/// memory, so larger ones are stored without metadata (memory stays bounded).
/// Video and audio are only demuxed, never held whole, and are probed at
/// any size.
pub const MAX_PROBED_IMAGE_BYTES: u64 = 16 * 1024 * 1024;

/// What the discoverer found; each field absent when the media has none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaInfo {
    /// Playing time in milliseconds (video and audio).
    pub duration_ms: Option<u64>,
    /// Width in pixels of the first video or image stream.
    pub width: Option<u32>,
    /// Height in pixels of the first video or image stream.
    pub height: Option<u32>,
}

/// Probes the file at `path` of `size` bytes and `kind`;
/// [`MediaInfo::default`] for templates, images above
/// [`MAX_PROBED_IMAGE_BYTES`], and media that cannot be read.
pub async fn probe(path: &Path, kind: ItemKind, size: u64) -> MediaInfo {
    match kind {
        ItemKind::Template => return MediaInfo::default(),
        ItemKind::Image if size > MAX_PROBED_IMAGE_BYTES => return MediaInfo::default(),
        ItemKind::Image | ItemKind::Video | ItemKind::Audio => {}
    }
    let owned = path.to_owned();
    match tokio::task::spawn_blocking(move || discover(&owned)).await {
        Ok(Ok(info)) => info,
        Ok(Err(reason)) => {
            tracing::warn!(path = %path.display(), %reason, "media metadata not read");
            MediaInfo::default()
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "media probe task failed");
            MediaInfo::default()
        }
    }
}

fn discover(path: &Path) -> Result<MediaInfo, String> {
    gst::init().map_err(|e| e.to_string())?;
    let absolute = std::fs::canonicalize(path).map_err(|e| e.to_string())?;
    let uri = gst::glib::filename_to_uri(&absolute, None).map_err(|e| e.to_string())?;
    let discoverer = pbutils::Discoverer::new(gst::ClockTime::from_seconds(DISCOVER_TIMEOUT_SECS))
        .map_err(|e| e.to_string())?;
    let info = discoverer.discover_uri(&uri).map_err(|e| e.to_string())?;
    let video = info.video_streams().into_iter().next();
    Ok(MediaInfo {
        duration_ms: info
            .duration()
            .map(gst::ClockTime::mseconds)
            .filter(|ms| *ms > 0),
        width: video.as_ref().map(|v| v.width()).filter(|w| *w > 0),
        height: video.as_ref().map(|v| v.height()).filter(|h| *h > 0),
    })
}
