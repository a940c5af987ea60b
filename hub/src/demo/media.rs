//! The demo's sample content, made in-process with real GStreamer
//! pipelines: short VP8/WebM test-pattern videos and PNG test-pattern
//! images, small enough for headless agents sharing one machine.
//!
//! Owns: the list of samples, the check that the GStreamer elements they
//! need (to make them here and to play them on the agents) are installed,
//! and the encoding. Must not: upload anything — the demo does that over
//! the API like an operator.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;

/// Width of every sample, in pixels (the agents' screen size).
pub const SAMPLE_WIDTH: u32 = 320;
/// Height of every sample, in pixels.
pub const SAMPLE_HEIGHT: u32 = 180;
/// Frames per second of the sample videos.
const VIDEO_FPS: i32 = 10;
/// The longest one sample may take to encode.
const ENCODE_TIMEOUT: Duration = Duration::from_secs(60);

/// What a sample is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleKind {
    /// A VP8/WebM video of this many seconds.
    Video {
        /// Its length in seconds.
        seconds: u32,
    },
    /// A PNG image.
    Image,
}

/// One piece of sample content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Its name in the hub.
    pub name: &'static str,
    /// The file name it is encoded to.
    pub file: &'static str,
    /// The `videotestsrc` pattern it shows.
    pub pattern: &'static str,
    /// Video or image.
    pub kind: SampleKind,
}

/// The sample content, in playlist order.
pub const SAMPLES: [Sample; 5] = [
    Sample {
        name: "Test pattern: SMPTE bars",
        file: "smpte.webm",
        pattern: "smpte",
        kind: SampleKind::Video { seconds: 5 },
    },
    Sample {
        name: "Test pattern: circles",
        file: "circular.png",
        pattern: "circular",
        kind: SampleKind::Image,
    },
    Sample {
        name: "Test pattern: bouncing ball",
        file: "ball.webm",
        pattern: "ball",
        kind: SampleKind::Video { seconds: 5 },
    },
    Sample {
        name: "Test pattern: colours",
        file: "colors.png",
        pattern: "colors",
        kind: SampleKind::Image,
    },
    Sample {
        name: "Test pattern: pinwheel",
        file: "pinwheel.webm",
        pattern: "pinwheel",
        kind: SampleKind::Video { seconds: 5 },
    },
];

/// Every GStreamer element the demo needs, with the Debian package that
/// has it: to make the samples here, and to play them (and the template's
/// clock and text zones) on the agents, which run on this machine too.
const ELEMENTS: [(&str, &str); 11] = [
    ("videotestsrc", "gstreamer1.0-plugins-base"),
    ("capsfilter", "libgstreamer1.0-0"),
    ("filesink", "libgstreamer1.0-0"),
    ("vp8enc", "gstreamer1.0-plugins-good"),
    ("webmmux", "gstreamer1.0-plugins-good"),
    ("pngenc", "gstreamer1.0-plugins-good"),
    ("vp8dec", "gstreamer1.0-plugins-good"),
    ("matroskademux", "gstreamer1.0-plugins-good"),
    ("pngdec", "gstreamer1.0-plugins-good"),
    ("clockoverlay", "gstreamer1.0-x"),
    ("textoverlay", "gstreamer1.0-x"),
];

/// Why sample content could not be made.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// GStreamer did not initialize.
    #[error("GStreamer does not start: {0}")]
    Init(String),
    /// An element is not installed.
    #[error("the GStreamer element {element} is missing: install the Debian package {package}")]
    MissingElement {
        /// The element's factory name.
        element: &'static str,
        /// The Debian package that has it.
        package: &'static str,
    },
    /// A pipeline could not be built or failed while running.
    #[error("making {file}: {reason}")]
    Encode {
        /// The sample's file name.
        file: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// An encoded file could not be read back.
    #[error("reading {}: {reason}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// Initializes GStreamer and checks that every element the demo needs is
/// installed.
///
/// # Errors
/// [`MediaError::MissingElement`] for the first one missing, naming its
/// Debian package.
pub fn check_elements() -> Result<(), MediaError> {
    gst::init().map_err(|e| MediaError::Init(e.to_string()))?;
    for (element, package) in ELEMENTS {
        if gst::ElementFactory::find(element).is_none() {
            return Err(MediaError::MissingElement { element, package });
        }
    }
    Ok(())
}

/// Encodes `sample` into `dir` and returns its bytes. Blocks (run it in
/// `spawn_blocking`); bounded by [`ENCODE_TIMEOUT`].
///
/// # Errors
/// [`MediaError`] when the pipeline cannot be built, fails or times out.
pub fn encode(sample: &Sample, dir: &Path) -> Result<Vec<u8>, MediaError> {
    let path = dir.join(sample.file);
    let failed = |reason: String| MediaError::Encode {
        file: sample.file,
        reason,
    };
    let pipeline = pipeline(sample, &path).map_err(|e| failed(e.to_string()))?;
    let outcome = run_to_end(&pipeline);
    let _ = pipeline.set_state(gst::State::Null);
    outcome.map_err(failed)?;
    std::fs::read(&path).map_err(|e| MediaError::Read {
        path,
        reason: e.to_string(),
    })
}

/// `videotestsrc ! caps ! (vp8enc ! webmmux | pngenc) ! filesink`.
fn pipeline(sample: &Sample, path: &Path) -> Result<gst::Pipeline, gst::glib::BoolError> {
    let (frames, rate) = match sample.kind {
        SampleKind::Video { seconds } => (
            i32::try_from(seconds)
                .unwrap_or(i32::MAX)
                .saturating_mul(VIDEO_FPS),
            VIDEO_FPS,
        ),
        SampleKind::Image => (1, 1),
    };
    let source = gst::ElementFactory::make("videotestsrc")
        .property("num-buffers", frames)
        .property_from_str("pattern", sample.pattern)
        .build()?;
    let caps = gst::Caps::builder("video/x-raw")
        .field("width", i32::try_from(SAMPLE_WIDTH).unwrap_or(i32::MAX))
        .field("height", i32::try_from(SAMPLE_HEIGHT).unwrap_or(i32::MAX))
        .field("framerate", gst::Fraction::new(rate, 1))
        .build();
    let filter = gst::ElementFactory::make("capsfilter")
        .property("caps", caps)
        .build()?;
    let encoders = match sample.kind {
        SampleKind::Video { .. } => vec![
            // deadline=1: the fastest ("realtime") VP8 mode.
            gst::ElementFactory::make("vp8enc")
                .property("deadline", 1i64)
                .build()?,
            gst::ElementFactory::make("webmmux").build()?,
        ],
        SampleKind::Image => vec![gst::ElementFactory::make("pngenc").build()?],
    };
    let sink = gst::ElementFactory::make("filesink")
        .property("location", path.display().to_string())
        .build()?;
    let pipeline = gst::Pipeline::new();
    let mut chain = vec![&source, &filter];
    chain.extend(encoders.iter());
    chain.push(&sink);
    pipeline.add_many(chain.iter().copied())?;
    gst::Element::link_many(chain.iter().copied())?;
    Ok(pipeline)
}

/// Plays `pipeline` until end of stream, an error, or [`ENCODE_TIMEOUT`].
fn run_to_end(pipeline: &gst::Pipeline) -> Result<(), String> {
    let bus = pipeline
        .bus()
        .ok_or_else(|| "the pipeline has no bus".to_owned())?;
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| format!("cannot start: {e}"))?;
    let timeout = gst::ClockTime::from_mseconds(
        u64::try_from(ENCODE_TIMEOUT.as_millis()).unwrap_or(u64::MAX),
    );
    match bus.timed_pop_filtered(timeout, &[gst::MessageType::Eos, gst::MessageType::Error]) {
        None => Err(format!("not done within {ENCODE_TIMEOUT:?}")),
        Some(message) => match message.view() {
            gst::MessageView::Error(error) => Err(error.error().to_string()),
            _ => Ok(()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// O2: every sample is made by a real pipeline and is a file of the
    /// type the hub detects.
    #[test]
    fn o2_samples_are_encoded_as_webm_and_png() {
        if let Err(e) = check_elements() {
            panic!("{e}");
        }
        let dir = tempfile::tempdir().expect("a temp dir");
        for sample in &SAMPLES {
            let bytes = match encode(sample, dir.path()) {
                Ok(bytes) => bytes,
                Err(e) => panic!("{e}"),
            };
            let detected = crate::content::detect::detect_magic(&bytes[..bytes.len().min(64)]);
            let expected = match sample.kind {
                SampleKind::Video { .. } => "video/webm",
                SampleKind::Image => "image/png",
            };
            assert_eq!(
                detected.map(|d| d.media_type),
                Some(expected),
                "{}",
                sample.file
            );
        }
    }
}
