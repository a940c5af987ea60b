//! Media metadata (duration, resolution) read with GStreamer's discoverer,
//! and the check that uploaded video and audio can be read at all (S13).
//!
//! Owns: probing one file ([`probe`]), the bound on probes running at once
//! and on how long one may take. Must not: decode pixels or samples itself,
//! or store anything — the caller refuses or stores. The discoverer blocks,
//! so it runs in `spawn_blocking`, at most [`MAX_CONCURRENT_PROBES`] at a
//! time, each bounded by [`DISCOVER_TIMEOUT_SECS`].
//!
//! Video and audio the discoverer cannot read (no container it knows, a
//! demuxer error, no audio or video stream, a timeout) are refused with
//! [`ProbeError::Unreadable`]. A stream whose codec this hub has no plugin
//! for is not judged (the screens may have it): it passes without metadata.
//! Images were checked structurally before ([`super::inspect`]); one the
//! discoverer cannot read is stored without metadata, as are images above
//! [`MAX_PROBED_IMAGE_BYTES`].

use std::path::Path;
use std::time::Duration;

use gstreamer as gst;
use gstreamer_pbutils as pbutils;
use pbutils::DiscovererResult;
use signet_common::documents::ItemKind;
use tokio::sync::Semaphore;

/// The longest a probe may take before the discoverer gives up.
pub const DISCOVER_TIMEOUT_SECS: u64 = 10;

/// The most discoverer runs at once, hub-wide: each is a GStreamer pipeline
/// with its own threads; further uploads wait their turn.
pub const MAX_CONCURRENT_PROBES: usize = 2;

/// The largest image probed: the discoverer decodes an image whole, in
/// memory, so larger ones are stored without metadata (memory stays bounded).
/// Video and audio are only demuxed, never held whole, and are probed at
/// any size.
pub const MAX_PROBED_IMAGE_BYTES: u64 = 16 * 1024 * 1024;

/// The slots of [`MAX_CONCURRENT_PROBES`]; a blocking probe holds one until
/// it returns, even after its caller gave up waiting.
static PROBE_SLOTS: Semaphore = Semaphore::const_new(MAX_CONCURRENT_PROBES);

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

/// Why a probe refused a file, or could not run.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Video or audio the discoverer cannot read: refuse the upload.
    #[error("the file cannot be read as {kind}: {reason}")]
    Unreadable {
        /// `video` or `audio`.
        kind: &'static str,
        /// What the discoverer said.
        reason: String,
    },
    /// The probe itself failed (GStreamer did not start, the task died).
    #[error("media probe failed: {0}")]
    Failed(String),
}

/// What one discoverer run concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    /// Read: its metadata.
    Read(MediaInfo),
    /// A codec this hub has no plugin for: neither read nor refused.
    Unjudged(String),
    /// Not readable as media.
    Unreadable(String),
}

/// Probes the file at `path` of `size` bytes and `kind` (S13): the
/// duration and resolution of what the discoverer reads;
/// [`MediaInfo::default`] for templates, images it cannot read and images
/// above [`MAX_PROBED_IMAGE_BYTES`].
///
/// # Errors
/// [`ProbeError::Unreadable`] for video or audio the discoverer cannot read
/// within [`DISCOVER_TIMEOUT_SECS`]; [`ProbeError::Failed`] when the probe
/// could not run.
pub async fn probe(path: &Path, kind: ItemKind, size: u64) -> Result<MediaInfo, ProbeError> {
    let kind_name = match kind {
        ItemKind::Template => return Ok(MediaInfo::default()),
        ItemKind::Image if size > MAX_PROBED_IMAGE_BYTES => return Ok(MediaInfo::default()),
        ItemKind::Image => "image",
        ItemKind::Video => "video",
        ItemKind::Audio => "audio",
    };
    let slot = PROBE_SLOTS
        .acquire()
        .await
        .map_err(|e| ProbeError::Failed(e.to_string()))?;
    let owned = path.to_owned();
    let task = tokio::task::spawn_blocking(move || {
        // The slot returns when the discoverer does, however long it takes.
        let _slot = slot;
        discover(&owned)
    });
    // The discoverer's own timeout bounds a run; this bounds the wait for
    // one that ignores it (a stuck element), with room for its start-up.
    let waited = tokio::time::timeout(Duration::from_secs(2 * DISCOVER_TIMEOUT_SECS), task).await;
    let verdict = match waited {
        Err(_) => Verdict::Unreadable(format!("not read within {DISCOVER_TIMEOUT_SECS} s")),
        Ok(Err(e)) => return Err(ProbeError::Failed(e.to_string())),
        Ok(Ok(Err(e))) => return Err(ProbeError::Failed(e)),
        Ok(Ok(Ok(verdict))) => verdict,
    };
    match (verdict, kind) {
        (Verdict::Read(info), _) => Ok(info),
        (Verdict::Unjudged(reason), _) => {
            tracing::warn!(path = %path.display(), %reason,
                "media not probed: this hub lacks a plugin for it; stored without metadata");
            Ok(MediaInfo::default())
        }
        (Verdict::Unreadable(reason), ItemKind::Image) => {
            tracing::warn!(path = %path.display(), %reason, "image metadata not read");
            Ok(MediaInfo::default())
        }
        (Verdict::Unreadable(reason), _) => Err(ProbeError::Unreadable {
            kind: kind_name,
            reason,
        }),
    }
}

/// Runs the discoverer on `path`; `Err` only when it could not run.
fn discover(path: &Path) -> Result<Verdict, String> {
    gst::init().map_err(|e| e.to_string())?;
    let absolute = std::fs::canonicalize(path).map_err(|e| e.to_string())?;
    let uri = gst::glib::filename_to_uri(&absolute, None).map_err(|e| e.to_string())?;
    let discoverer = pbutils::Discoverer::new(gst::ClockTime::from_seconds(DISCOVER_TIMEOUT_SECS))
        .map_err(|e| e.to_string())?;
    let info = match discoverer.discover_uri(&uri) {
        Ok(info) => info,
        Err(e) if e.matches(gst::CoreError::MissingPlugin) => {
            return Ok(Verdict::Unjudged(e.to_string()));
        }
        Err(e) if e.matches(gst::StreamError::CodecNotFound) => {
            return Ok(Verdict::Unjudged(e.to_string()));
        }
        Err(e) => return Ok(Verdict::Unreadable(e.to_string())),
    };
    let video = info.video_streams().into_iter().next();
    let found = MediaInfo {
        duration_ms: info
            .duration()
            .map(gst::ClockTime::mseconds)
            .filter(|ms| *ms > 0),
        width: video.as_ref().map(|v| v.width()).filter(|w| *w > 0),
        height: video.as_ref().map(|v| v.height()).filter(|h| *h > 0),
    };
    let streams = info.video_streams().len() + info.audio_streams().len();
    Ok(verdict(info.result(), streams, found))
}

/// What a discoverer result means for an upload: read only when the
/// discoverer finished and found an audio or video stream.
fn verdict(result: DiscovererResult, streams: usize, found: MediaInfo) -> Verdict {
    match result {
        DiscovererResult::Ok if streams > 0 => Verdict::Read(found),
        DiscovererResult::Ok => Verdict::Unreadable("no audio or video stream in it".into()),
        DiscovererResult::MissingPlugins => Verdict::Unjudged("missing GStreamer plugins".into()),
        DiscovererResult::Timeout => {
            Verdict::Unreadable(format!("not read within {DISCOVER_TIMEOUT_SECS} s"))
        }
        other => Verdict::Unreadable(format!("the discoverer answered {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// S13: only a finished discovery with a stream reads; a codec this hub
    /// lacks is not held against the file; the rest refuses.
    #[test]
    fn s13_discoverer_results_decide_the_upload() {
        let found = MediaInfo {
            duration_ms: Some(1000),
            width: Some(64),
            height: Some(48),
        };
        assert_eq!(
            verdict(DiscovererResult::Ok, 1, found),
            Verdict::Read(found)
        );
        assert!(matches!(
            verdict(DiscovererResult::Ok, 0, found),
            Verdict::Unreadable(_)
        ));
        assert!(matches!(
            verdict(DiscovererResult::MissingPlugins, 1, found),
            Verdict::Unjudged(_)
        ));
        for result in [
            DiscovererResult::Timeout,
            DiscovererResult::Error,
            DiscovererResult::UriInvalid,
            DiscovererResult::Busy,
        ] {
            assert!(matches!(verdict(result, 1, found), Verdict::Unreadable(_)));
        }
    }
}
