//! Thumbnails of uploaded media (C5): a frame of a video, or the image
//! itself, scaled to at most [`MAX_WIDTH`] × [`MAX_HEIGHT`] pixels (never
//! enlarged), JPEG — PNG for images that are not JPEG, which may be
//! transparent — made with GStreamer at upload.
//!
//! Owns: rendering ([`render`]), the files under `<data>/thumbnails/`,
//! named by the blob's SHA-256 (`{sha256}.jpg` or `.png`: items with the
//! same bytes share one), [`store`], [`find`] and the paths
//! [`crate::content::BlobStore::remove`] deletes with the blob. Must not:
//! refuse or delay content beyond its bounds — a thumbnail that cannot be
//! made is logged and the item has none; decide who may read one (the API
//! does, as for the item).
//!
//! # Bounds
//! Rendering blocks, so it runs in `spawn_blocking`; at most
//! [`CONCURRENCY`] at once (an upload waits at most [`SLOT_WAIT`] for a
//! slot, then goes without); every GStreamer wait inside is bounded, all
//! of them together by [`RENDER_TIMEOUT`]; images above
//! [`MAX_SOURCE_PIXELS`] or [`MAX_PROBED_IMAGE_BYTES`] are not decoded for
//! a thumbnail (an image decoder holds the file and the decoded frame
//! whole in memory; video is decoded frame by frame).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_video as gst_video;
use signet_common::digest::Sha256;
use signet_common::documents::ItemKind;
use tokio::sync::Semaphore;

use super::media::{MAX_PROBED_IMAGE_BYTES, MediaInfo};

/// The widest thumbnail, in pixels.
pub const MAX_WIDTH: u32 = 320;
/// The tallest thumbnail, in pixels (portrait media).
pub const MAX_HEIGHT: u32 = 640;
/// How many thumbnails render at once.
pub const CONCURRENCY: usize = 2;
/// How long an upload waits for a rendering slot before it goes without.
pub const SLOT_WAIT: Duration = Duration::from_secs(10);
/// The longest one rendering may take.
pub const RENDER_TIMEOUT: Duration = Duration::from_secs(20);
/// The largest image (width × height) decoded for a thumbnail.
pub const MAX_SOURCE_PIXELS: u64 = 40_000_000;
/// Where in a video the frame is taken: this far in, or at half of a
/// shorter video (the first frame is often black).
pub const VIDEO_POSITION: Duration = Duration::from_secs(1);

/// The rendering slots.
static SLOTS: Semaphore = Semaphore::const_new(CONCURRENCY);

/// A thumbnail's encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `image/jpeg`, `.jpg`.
    Jpeg,
    /// `image/png`, `.png`.
    Png,
}

impl Format {
    /// Both, in the order [`find`] looks.
    pub const ALL: [Self; 2] = [Self::Jpeg, Self::Png];

    /// The media type.
    #[must_use]
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Self::Jpeg => "jpg",
            Self::Png => "png",
        }
    }
}

/// A rendered thumbnail, or the one that exists for the same bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Thumbnail {
    /// The blob already has one.
    Existing,
    /// Newly rendered.
    New {
        /// The encoded image.
        bytes: Vec<u8>,
        /// Its encoding.
        format: Format,
    },
}

/// The thumbnail directory of a data directory.
#[must_use]
pub fn dir(data: &Path) -> PathBuf {
    data.join("thumbnails")
}

/// Where the thumbnail of blob `sha256` in `format` lives (whether or not
/// it exists).
#[must_use]
pub fn path_of(thumbnails: &Path, sha256: &Sha256, format: Format) -> PathBuf {
    thumbnails.join(format!("{sha256}.{}", format.extension()))
}

/// The stored thumbnail of blob `sha256`, if it has one.
pub async fn find(data: &Path, sha256: &Sha256) -> Option<(PathBuf, Format)> {
    let thumbnails = dir(data);
    for format in Format::ALL {
        let path = path_of(&thumbnails, sha256, format);
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Some((path, format));
        }
    }
    None
}

/// The stored thumbnail of blob `sha256` read whole, with its format;
/// `None` when it has none (or it went between the look-up and the read).
///
/// # Errors
/// When the file exists but cannot be read.
pub async fn read(data: &Path, sha256: &Sha256) -> std::io::Result<Option<(Vec<u8>, Format)>> {
    let Some((path, format)) = find(data, sha256).await else {
        return Ok(None);
    };
    match tokio::fs::read(&path).await {
        Ok(bytes) => Ok(Some((bytes, format))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Renders the thumbnail of the media file `source` (blob `sha256` of
/// `size` bytes, of `kind` and `media_type`, with what the probe found in
/// `media`), or
/// answers [`Thumbnail::Existing`] when the blob has one. `None` when
/// the media has no picture (audio, templates), is too large, or cannot be
/// rendered within the bounds (logged).
pub async fn render(
    data: &Path,
    sha256: &Sha256,
    source: &Path,
    size: u64,
    kind: ItemKind,
    media_type: &str,
    media: &MediaInfo,
) -> Option<Thumbnail> {
    if !matches!(kind, ItemKind::Video | ItemKind::Image) {
        return None;
    }
    if find(data, sha256).await.is_some() {
        return Some(Thumbnail::Existing);
    }
    let format = if kind == ItemKind::Image && media_type != "image/jpeg" {
        Format::Png
    } else {
        Format::Jpeg
    };
    let pixels = match (media.width, media.height) {
        (Some(w), Some(h)) => Some(u64::from(w) * u64::from(h)),
        _ if kind == ItemKind::Image => imagesize::size(source)
            .ok()
            .map(|s| (s.width as u64).saturating_mul(s.height as u64)),
        _ => None,
    };
    if kind == ItemKind::Image
        && (size > MAX_PROBED_IMAGE_BYTES || pixels.is_none_or(|p| p > MAX_SOURCE_PIXELS))
    {
        tracing::info!(%sha256, ?pixels, "no thumbnail: the image is too large to decode for one");
        return None;
    }
    let Ok(Ok(_slot)) = tokio::time::timeout(SLOT_WAIT, SLOTS.acquire()).await else {
        tracing::warn!(%sha256, "no thumbnail: every rendering slot stayed busy");
        return None;
    };
    let position = match (kind, media.duration_ms) {
        (ItemKind::Video, Some(ms)) => Some(VIDEO_POSITION.min(Duration::from_millis(ms / 2))),
        _ => None,
    };
    let decoder = Decoder::for_media_type(media_type);
    let owned = source.to_owned();
    let rendering =
        tokio::task::spawn_blocking(move || render_blocking(&owned, decoder, position, format));
    // The blocking work bounds itself; this outer bound only frees the
    // upload should GStreamer ignore its own timeouts.
    match tokio::time::timeout(RENDER_TIMEOUT + Duration::from_secs(5), rendering).await {
        Ok(Ok(Ok(bytes))) => Some(Thumbnail::New { bytes, format }),
        Ok(Ok(Err(reason))) => {
            tracing::warn!(%sha256, %reason, "no thumbnail");
            None
        }
        Ok(Err(e)) => {
            tracing::warn!(%sha256, error = %e, "no thumbnail: the rendering task failed");
            None
        }
        Err(_) => {
            tracing::warn!(%sha256, "no thumbnail: rendering took too long");
            None
        }
    }
}

/// Stores `thumbnail` for blob `sha256` (a temporary file renamed into
/// place: a reader never sees half a thumbnail); whether the blob has a
/// thumbnail afterwards. A failure is logged: the item goes without.
pub async fn store(data: &Path, sha256: &Sha256, thumbnail: Option<Thumbnail>) -> bool {
    let (bytes, format) = match thumbnail {
        None => return false,
        Some(Thumbnail::Existing) => return find(data, sha256).await.is_some(),
        Some(Thumbnail::New { bytes, format }) => (bytes, format),
    };
    let thumbnails = dir(data);
    let target = path_of(&thumbnails, sha256, format);
    let temp = thumbnails.join(format!(".{}.tmp", crate::identity::new_id("t-")));
    let written = async {
        tokio::fs::create_dir_all(&thumbnails).await?;
        tokio::fs::write(&temp, &bytes).await?;
        tokio::fs::rename(&temp, &target).await
    }
    .await;
    match written {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(%sha256, error = %e, "thumbnail not stored");
            let _ = tokio::fs::remove_file(&temp).await;
            false
        }
    }
}

/// Waits on `bus` for the pipeline to finish changing state (or an error),
/// until `deadline`.
fn wait_done(bus: &gst::Bus, deadline: Instant) -> Result<(), String> {
    let left = deadline.saturating_duration_since(Instant::now());
    let timeout = gst::ClockTime::from_mseconds(u64::try_from(left.as_millis()).unwrap_or(0));
    match bus.timed_pop_filtered(
        timeout,
        &[gst::MessageType::AsyncDone, gst::MessageType::Error],
    ) {
        None => Err(format!(
            "the media did not decode within {} s",
            RENDER_TIMEOUT.as_secs()
        )),
        Some(message) => match message.view() {
            gst::MessageView::Error(error) => Err(error.error().to_string()),
            _ => Ok(()),
        },
    }
}

/// How a picture is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decoder {
    /// playbin, which picks the decoder (video, PNG, JPEG).
    Auto,
    /// GIF: `gdkpixbufdec` by name (GStreamer ranks it below automatic
    /// use, and plugins-good has no other GIF decoder).
    GdkPixbuf,
}

impl Decoder {
    fn for_media_type(media_type: &str) -> Self {
        if media_type == "image/gif" {
            Self::GdkPixbuf
        } else {
            Self::Auto
        }
    }
}

/// A paused pipeline decoding `source` into a fake sink that keeps the
/// last frame, and that sink.
fn decoding_pipeline(
    source: &Path,
    decoder: Decoder,
) -> Result<(gst::Element, gst::Element), String> {
    let sink = gst::ElementFactory::make("fakesink")
        .property("sync", false)
        .property("enable-last-sample", true)
        .build()
        .map_err(|e| e.to_string())?;
    match decoder {
        Decoder::Auto => {
            let absolute = std::fs::canonicalize(source).map_err(|e| e.to_string())?;
            let uri = gst::glib::filename_to_uri(&absolute, None).map_err(|e| e.to_string())?;
            let audio = gst::ElementFactory::make("fakesink")
                .property("sync", false)
                .build()
                .map_err(|e| e.to_string())?;
            let playbin = gst::ElementFactory::make("playbin")
                .property("uri", uri.as_str())
                .property("video-sink", &sink)
                .property("audio-sink", &audio)
                .build()
                .map_err(|e| format!("playbin: {e}"))?;
            Ok((playbin, sink))
        }
        Decoder::GdkPixbuf => {
            let file = gst::ElementFactory::make("filesrc")
                .property("location", source.display().to_string())
                .build()
                .map_err(|e| e.to_string())?;
            let decode = gst::ElementFactory::make("gdkpixbufdec")
                .build()
                .map_err(|e| format!("gdkpixbufdec: {e}"))?;
            let pipeline = gst::Pipeline::new();
            pipeline
                .add_many([&file, &decode, &sink])
                .map_err(|e| e.to_string())?;
            gst::Element::link_many([&file, &decode, &sink]).map_err(|e| e.to_string())?;
            Ok((pipeline.upcast(), sink))
        }
    }
}

/// Decodes `source` to its first frame (or the frame at `position`),
/// paused, and encodes it scaled in `format`. Blocks, at most about
/// [`RENDER_TIMEOUT`].
fn render_blocking(
    source: &Path,
    decoder: Decoder,
    position: Option<Duration>,
    format: Format,
) -> Result<Vec<u8>, String> {
    gst::init().map_err(|e| e.to_string())?;
    let deadline = Instant::now() + RENDER_TIMEOUT;
    let (pipeline, sink) = decoding_pipeline(source, decoder)?;
    let outcome = (|| {
        let bus = pipeline.bus().ok_or("the pipeline has no bus")?;
        pipeline
            .set_state(gst::State::Paused)
            .map_err(|e| format!("cannot decode: {e}"))?;
        wait_done(&bus, deadline)?;
        if let Some(position) = position.filter(|p| !p.is_zero()) {
            let at = gst::ClockTime::from_mseconds(
                u64::try_from(position.as_millis()).unwrap_or(u64::MAX),
            );
            if pipeline
                .seek_simple(gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT, at)
                .is_ok()
            {
                wait_done(&bus, deadline)?;
            }
        }
        let sample = sink
            .property::<Option<gst::Sample>>("last-sample")
            .ok_or("no picture was decoded")?;
        let caps = sample.caps().ok_or("the picture has no format")?;
        let info = gst_video::VideoInfo::from_caps(caps).map_err(|e| e.to_string())?;
        let (width, height) = scaled(
            info.width(),
            info.height(),
            info.par().numer(),
            info.par().denom(),
        )
        .ok_or("the picture has no size")?;
        let to = gst::Caps::builder(format.media_type())
            .field("width", i32::try_from(width).unwrap_or(1))
            .field("height", i32::try_from(height).unwrap_or(1))
            .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
            .build();
        let left = deadline.saturating_duration_since(Instant::now());
        let encoded = gst_video::convert_sample(
            &sample,
            &to,
            gst::ClockTime::from_mseconds(u64::try_from(left.as_millis()).unwrap_or(0).max(1000)),
        )
        .map_err(|e| format!("the picture could not be encoded: {e}"))?;
        let buffer = encoded.buffer().ok_or("the encoder gave no buffer")?;
        let map = buffer.map_readable().map_err(|e| e.to_string())?;
        Ok(map.as_slice().to_vec())
    })();
    let _ = pipeline.set_state(gst::State::Null);
    outcome.map_err(|e: String| e)
}

/// The thumbnail size of a `width` × `height` picture with pixel aspect
/// ratio `par_n`/`par_d`: square pixels, within [`MAX_WIDTH`] ×
/// [`MAX_HEIGHT`], the display aspect ratio kept, never enlarged; `None`
/// for an empty picture.
#[must_use]
pub fn scaled(width: u32, height: u32, par_n: i32, par_d: i32) -> Option<(u32, u32)> {
    let fit = DisplayFit::of(width, height, (par_n, par_d), (MAX_WIDTH, MAX_HEIGHT))?;
    // Bounded by MAX_WIDTH and MAX_HEIGHT: the casts cannot overflow.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let size = |length: f64| ((length * fit.scale).round() as u32).max(1);
    Some((
        size(fit.width).min(MAX_WIDTH),
        size(fit.height).min(MAX_HEIGHT),
    ))
}

/// A picture's display size and the factor that fits it in a box: the one
/// rule of the thumbnails ([`scaled`]) and the renditions
/// ([`super::renditions::transcode::fitted`]), which round differently.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DisplayFit {
    /// The display width: the stored width times the pixel aspect ratio.
    pub width: f64,
    /// The display height: the stored height.
    pub height: f64,
    /// The factor that fits the display size in the box, at most 1 (never
    /// enlarged).
    pub scale: f64,
}

impl DisplayFit {
    /// The fit of a `width` × `height` picture with pixel aspect ratio
    /// `par` (numerator, denominator; square when either is not positive)
    /// in the box `bounds` (width, height); `None` for an empty picture.
    #[must_use]
    pub fn of(width: u32, height: u32, par: (i32, i32), bounds: (u32, u32)) -> Option<Self> {
        if width == 0 || height == 0 {
            return None;
        }
        let (par_n, par_d) = if par.0 > 0 && par.1 > 0 {
            (f64::from(par.0), f64::from(par.1))
        } else {
            (1.0, 1.0)
        };
        let display_width = f64::from(width) * par_n / par_d;
        let display_height = f64::from(height);
        let scale = (f64::from(bounds.0) / display_width)
            .min(f64::from(bounds.1) / display_height)
            .min(1.0);
        Some(Self {
            width: display_width,
            height: display_height,
            scale,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::scaled;

    /// C5: thumbnails fit 320 × 640, keep the shape, are never enlarged,
    /// and account for non-square pixels.
    #[test]
    fn c5_thumbnail_sizes() {
        assert_eq!(scaled(1920, 1080, 1, 1), Some((320, 180)));
        assert_eq!(scaled(64, 48, 1, 1), Some((64, 48)));
        assert_eq!(scaled(1080, 1920, 1, 1), Some((320, 569)));
        assert_eq!(scaled(100, 10_000, 1, 1), Some((6, 640)));
        assert_eq!(scaled(720, 576, 16, 15), Some((320, 240)));
        assert_eq!(scaled(0, 10, 1, 1), None);
        assert_eq!(scaled(10_000, 1, 1, 1), Some((320, 1)));
    }
}
