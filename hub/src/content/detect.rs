//! Type detection from the bytes (never from a file name): magic numbers of
//! the media formats players handle, and JSON objects for templates.

use signet_common::documents::ItemKind;

/// How many leading bytes [`detect_magic`] looks at.
pub const HEAD_LEN: usize = 64;

/// The largest template (a JSON document) accepted, in bytes (DESIGN §7:
/// documents are bounded to 1 MiB).
pub const MAX_TEMPLATE_BYTES: usize = 1024 * 1024;

/// What the bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detected {
    /// The item kind.
    pub kind: ItemKind,
    /// The media type, e.g. `image/png`.
    pub media_type: &'static str,
}

const fn found(kind: ItemKind, media_type: &'static str) -> Option<Detected> {
    Some(Detected { kind, media_type })
}

/// The media type of a file whose first bytes are `head` (up to
/// [`HEAD_LEN`]), by magic number; `None` when no known format matches.
/// JSON templates are recognized by [`looks_like_json`] and [`is_template`].
#[must_use]
pub fn detect_magic(head: &[u8]) -> Option<Detected> {
    let has = |at: usize, magic: &[u8]| head.get(at..at + magic.len()) == Some(magic);
    let contains = |needle: &[u8]| head.windows(needle.len()).any(|w| w == needle);
    if has(0, b"\x89PNG\r\n\x1a\n") {
        found(ItemKind::Image, "image/png")
    } else if has(0, b"\xff\xd8\xff") {
        found(ItemKind::Image, "image/jpeg")
    } else if has(0, b"GIF87a") || has(0, b"GIF89a") {
        found(ItemKind::Image, "image/gif")
    } else if has(0, b"RIFF") && has(8, b"WEBP") {
        found(ItemKind::Image, "image/webp")
    } else if has(0, b"RIFF") && has(8, b"WAVE") {
        found(ItemKind::Audio, "audio/wav")
    } else if has(0, b"\x1a\x45\xdf\xa3") {
        if contains(b"webm") {
            found(ItemKind::Video, "video/webm")
        } else {
            found(ItemKind::Video, "video/x-matroska")
        }
    } else if has(4, b"ftyp") {
        if has(8, b"M4A ") || has(8, b"M4B ") {
            found(ItemKind::Audio, "audio/mp4")
        } else {
            found(ItemKind::Video, "video/mp4")
        }
    } else if has(0, b"OggS") {
        if contains(b"theora") {
            found(ItemKind::Video, "video/ogg")
        } else {
            found(ItemKind::Audio, "audio/ogg")
        }
    } else if has(0, b"ID3") || matches!(head, [0xff, second, ..] if second & 0xe0 == 0xe0) {
        found(ItemKind::Audio, "audio/mpeg")
    } else {
        None
    }
}

/// Whether the first non-whitespace byte of `head` opens a JSON object: the
/// whole body must then be kept (bounded by [`MAX_TEMPLATE_BYTES`]) and
/// checked with [`is_template`].
#[must_use]
pub fn looks_like_json(head: &[u8]) -> bool {
    head.iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{')
}

/// The detection of a complete template body: a JSON object.
#[must_use]
pub fn is_template(body: &[u8]) -> Option<Detected> {
    serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body)
        .ok()
        .and_then(|_| found(ItemKind::Template, "application/json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_numbers() {
        let kind = |head: &[u8]| detect_magic(head).map(|d| d.media_type);
        assert_eq!(kind(b"\x89PNG\r\n\x1a\n0000"), Some("image/png"));
        assert_eq!(kind(b"\xff\xd8\xff\xe0"), Some("image/jpeg"));
        assert_eq!(kind(b"GIF89a.."), Some("image/gif"));
        assert_eq!(kind(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(kind(b"RIFF\0\0\0\0WAVEfmt "), Some("audio/wav"));
        assert_eq!(
            kind(b"\x1a\x45\xdf\xa3\x9f\x42\x82\x84webm"),
            Some("video/webm")
        );
        assert_eq!(kind(b"\0\0\0\x20ftypisom"), Some("video/mp4"));
        assert_eq!(kind(b"\0\0\0\x20ftypM4A "), Some("audio/mp4"));
        assert_eq!(kind(b"OggS\0\x02"), Some("audio/ogg"));
        assert_eq!(kind(b"ID3\x04"), Some("audio/mpeg"));
        assert_eq!(kind(b"\xff\xfb\x90"), Some("audio/mpeg"));
        assert_eq!(kind(b"hello world"), None);
        assert_eq!(kind(b""), None);
        assert_eq!(kind(b"video.mp4"), None);
    }

    #[test]
    fn templates_are_json_objects() {
        assert!(looks_like_json(b"  {\"a\": 1}"));
        assert!(!looks_like_json(b"[1]"));
        assert!(is_template(b" {\"a\": 1} ").is_some());
        assert!(is_template(b"{\"a\": ").is_none());
        assert!(is_template(b"[1]").is_none());
    }
}
