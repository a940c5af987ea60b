//! Media files made by the tests with GStreamer or by hand.

use std::path::Path;

/// A solid PNG of `rgb` (0xRRGGBB), `width`×`height`, made by GStreamer's
/// own encoder in `dir` (the agent's player decodes it; the hub detects its
/// type from the bytes).
///
/// # Panics
/// When `gst-launch-1.0` fails.
#[must_use]
pub fn solid_png(dir: &Path, name: &str, rgb: u32, width: u32, height: u32) -> Vec<u8> {
    let path = dir.join(name);
    let status = std::process::Command::new("gst-launch-1.0")
        .args([
            "-q",
            "videotestsrc",
            "pattern=solid-color",
            &format!("foreground-color={:#010x}", 0xff00_0000u32 | rgb),
            "num-buffers=1",
            "!",
            &format!("video/x-raw,width={width},height={height}"),
            "!",
            "pngenc",
            "!",
            "filesink",
        ])
        .arg(format!("location={}", path.display()))
        .status()
        .expect("run gst-launch-1.0");
    assert!(status.success(), "gst-launch-1.0 made no PNG");
    std::fs::read(path).expect("read the PNG")
}

/// A structurally whole 1×1 GIF carrying `tag` in a comment (the hub checks
/// uploads, S13), so distinct tags make distinct bytes.
///
/// # Panics
/// Never: comment blocks are cut to 255 bytes.
#[must_use]
pub fn gif(tag: &[u8]) -> Vec<u8> {
    let mut gif = b"GIF89a\x01\0\x01\0\0\0\0".to_vec();
    for block in tag.chunks(255) {
        gif.extend([0x21, 0xfe, u8::try_from(block.len()).expect("at most 255")]);
        gif.extend(block);
        gif.push(0);
    }
    gif.extend(b"\x2c\0\0\0\0\x01\0\x01\0\0\x02\x02\x4c\x01\0\x3b");
    gif
}
