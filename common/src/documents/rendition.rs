//! Renditions of a media item (M3, D2, A8): re-encoded copies of the
//! original that the hub derives (e.g. H.264 1080p30 for a Raspberry Pi),
//! listed in the group manifest beside the original, and the device's
//! choice among them by what it can decode ([`DecodeLimit`]).
//!
//! # Trust
//! A rendition is derived by the hub from the item's original bytes and
//! signed into the same manifest as the original: the manifest names its
//! SHA-256 and size, so the device verifies the rendition's bytes exactly
//! as it verifies an original (D2) and never plays an unverified file. It
//! may stand in for the original only while the original is what was
//! approved: [`ManifestItem::for_device`] picks a rendition only for an
//! active media item whose approved hash is the original's SHA-256 (A8);
//! for any other item the device keeps the original, which the play rule
//! then judges as before. Approving an item thereby approves the hub's
//! renditions of exactly those bytes.
//!
//! Owns: the manifest's rendition entry and its bounds, the decode-limit
//! syntax (`{height}p{fps}-{codec}`, e.g. `1080p30-h264`) and the choice.
//! Must not: do I/O.

use serde::{Deserialize, Serialize};

use super::manifest::{ItemKind, MAX_URL_LEN, ManifestItem};
use crate::approval::{ApprovalState, ContentHash};

/// The most renditions one item may list.
pub const MAX_RENDITIONS: usize = 8;
/// The longest codec name, in bytes.
pub const MAX_CODEC_LEN: usize = 16;

/// One re-encoded copy of an item's original, as a device fetches it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rendition {
    /// SHA-256 of its bytes; the cache refuses anything else (D2).
    pub sha256: ContentHash,
    /// The exact size of those bytes.
    pub size: u64,
    /// Where to fetch them.
    pub url: String,
    /// The video codec, lowercase (`h264`).
    pub codec: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frames per second (rounded up).
    pub fps: u32,
}

impl Rendition {
    /// Whether its bounds hold: URL and codec lengths, a picture size.
    #[must_use]
    pub fn is_valid(&self) -> bool {
        !self.url.is_empty()
            && self.url.len() <= MAX_URL_LEN
            && !self.codec.is_empty()
            && self.codec.len() <= MAX_CODEC_LEN
            && self.width > 0
            && self.height > 0
            && self.fps > 0
    }
}

/// What a device decodes smoothly: at most `height` lines (and as many
/// pixels as a 16:9 picture of that height), at most `fps` frames per
/// second, in `codec`. Written `1080p30-h264`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DecodeLimit {
    /// The most lines.
    pub height: u32,
    /// The most frames per second.
    pub fps: u32,
    /// The codec, lowercase.
    pub codec: String,
}

impl DecodeLimit {
    /// The most pixels per frame: a 16:9 picture of [`Self::height`] lines
    /// (a portrait picture of the same area fits too).
    #[must_use]
    pub fn max_pixels(&self) -> u64 {
        let height = u64::from(self.height);
        height * height * 16 / 9
    }

    /// Whether `rendition` fits this limit.
    #[must_use]
    pub fn fits(&self, rendition: &Rendition) -> bool {
        rendition.codec == self.codec
            && rendition.fps <= self.fps
            && u64::from(rendition.width) * u64::from(rendition.height) <= self.max_pixels()
            && rendition.width.min(rendition.height) <= self.height
    }
}

impl std::str::FromStr for DecodeLimit {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not a decode limit like 1080p30-h264");
        let (picture, codec) = text.trim().split_once('-').ok_or_else(bad)?;
        let (height, fps) = picture.split_once('p').ok_or_else(bad)?;
        let height: u32 = height.parse().map_err(|_| bad())?;
        let fps: u32 = fps.parse().map_err(|_| bad())?;
        let codec_ok = !codec.is_empty()
            && codec.len() <= MAX_CODEC_LEN
            && codec
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !(16..=4_320).contains(&height) || !(1..=240).contains(&fps) || !codec_ok {
            return Err(bad());
        }
        Ok(Self {
            height,
            fps,
            codec: codec.to_owned(),
        })
    }
}

impl TryFrom<String> for DecodeLimit {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl From<DecodeLimit> for String {
    fn from(limit: DecodeLimit) -> Self {
        limit.to_string()
    }
}

impl std::fmt::Display for DecodeLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}p{}-{}", self.height, self.fps, self.codec)
    }
}

impl ManifestItem {
    /// The rendition a device with `limit` plays instead of the original:
    /// the largest that fits (most pixels, then most frames per second),
    /// only for an active media item whose approved hash is the original's
    /// (see the module doc). `None`: play the original (no limit, nothing
    /// fits, or not approved as it is).
    #[must_use]
    pub fn rendition_for(&self, limit: Option<&DecodeLimit>) -> Option<&Rendition> {
        let limit = limit?;
        let approved_original = self.kind != ItemKind::Template
            && self.approval == ApprovalState::Active
            && self.approved_hash == Some(self.sha256);
        if !approved_original {
            return None;
        }
        self.renditions
            .iter()
            .filter(|r| r.is_valid() && limit.fits(r))
            .max_by_key(|r| (u64::from(r.width) * u64::from(r.height), r.fps))
    }

    /// This item as a device with `limit` fetches, verifies and plays it:
    /// the original, or the chosen rendition ([`Self::rendition_for`]) in
    /// its place — its hash, size and URL, and its hash as the approved one
    /// (it stands for the approved original, see the module doc).
    #[must_use]
    pub fn for_device(&self, limit: Option<&DecodeLimit>) -> ManifestItem {
        match self.rendition_for(limit) {
            None => self.clone(),
            Some(chosen) => ManifestItem {
                sha256: chosen.sha256,
                size: chosen.size,
                url: chosen.url.clone(),
                approved_hash: Some(chosen.sha256),
                renditions: Vec::new(),
                ..self.clone()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::digest::Sha256;
    use crate::ids::ItemId;

    fn rendition(tag: &[u8], width: u32, height: u32, fps: u32, codec: &str) -> Rendition {
        Rendition {
            sha256: Sha256::of(tag),
            size: 10,
            url: format!("http://hub/{}", Sha256::of(tag)),
            codec: codec.to_owned(),
            width,
            height,
            fps,
        }
    }

    fn video(renditions: Vec<Rendition>) -> ManifestItem {
        let sha256 = Sha256::of(b"original");
        ManifestItem {
            id: ItemId::from("c-1"),
            kind: ItemKind::Video,
            sha256,
            size: 100,
            url: "http://hub/original".into(),
            approval: ApprovalState::Active,
            approved_hash: Some(sha256),
            categories: Vec::new(),
            renditions,
        }
    }

    /// D2, M3: the decode limit's syntax; nonsense is refused.
    #[test]
    fn m3_decode_limits_parse_and_print() {
        let limit: DecodeLimit = "1080p30-h264".parse().unwrap();
        assert_eq!(
            (limit.height, limit.fps, limit.codec.as_str()),
            (1080, 30, "h264")
        );
        assert_eq!(limit.to_string(), "1080p30-h264");
        for bad in [
            "",
            "1080p30",
            "p30-h264",
            "1080x30-h264",
            "1080p0-h264",
            "1080p30-H264",
            "9p30-h264",
        ] {
            assert!(bad.parse::<DecodeLimit>().is_err(), "{bad:?}");
        }
    }

    /// M3, D2: a Pi with `1080p30-h264` gets the largest H.264 rendition
    /// within 1080p30 (portrait included), with the rendition's hash, size
    /// and URL to verify; no limit, or nothing that fits, keeps the
    /// original.
    #[test]
    fn m3_a_device_picks_the_largest_rendition_that_fits() {
        let hd = rendition(b"hd", 1920, 1080, 30, "h264");
        let portrait = rendition(b"portrait", 1080, 1920, 30, "h264");
        let item = video(vec![
            rendition(b"4k", 3840, 2160, 30, "h264"),
            rendition(b"fast", 1920, 1080, 60, "h264"),
            rendition(b"hevc", 1920, 1080, 30, "h265"),
            rendition(b"small", 1280, 720, 30, "h264"),
            hd.clone(),
        ]);
        let pi: DecodeLimit = "1080p30-h264".parse().unwrap();
        assert_eq!(item.rendition_for(Some(&pi)), Some(&hd));
        let chosen = item.for_device(Some(&pi));
        assert_eq!(
            (chosen.sha256, chosen.size, chosen.url.as_str()),
            (hd.sha256, hd.size, hd.url.as_str())
        );
        assert_eq!(chosen.approved_hash, Some(hd.sha256));
        assert_eq!(chosen.check_approved(&hd.sha256), Ok(()));
        assert_eq!(item.for_device(None), item, "no limit: the original");
        let tiny: DecodeLimit = "480p30-h264".parse().unwrap();
        assert_eq!(
            item.for_device(Some(&tiny)),
            item,
            "nothing fits: the original"
        );
        assert_eq!(
            video(vec![portrait.clone()]).rendition_for(Some(&pi)),
            Some(&portrait)
        );
    }

    /// A8, M3: a rendition stands in only for an approved original: an
    /// inactive item, or one whose approved hash is another version, keeps
    /// the original (which then does not play).
    #[test]
    fn a8_a_rendition_never_stands_in_for_an_unapproved_original() {
        let pi: DecodeLimit = "1080p30-h264".parse().unwrap();
        let mut item = video(vec![rendition(b"hd", 1920, 1080, 30, "h264")]);
        item.approval = ApprovalState::Inactive;
        assert_eq!(item.rendition_for(Some(&pi)), None);
        item.approval = ApprovalState::Active;
        item.approved_hash = Some(Sha256::of(b"an older version"));
        assert_eq!(item.rendition_for(Some(&pi)), None);
        assert_eq!(item.for_device(Some(&pi)), item);
    }
}
