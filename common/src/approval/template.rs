//! Templates (D6): zones on a canvas, their validation, and the content hash
//! that approval covers (A4, A8).
//!
//! Owns: the template document, its bounds, its canonical layout encoding and
//! [`classify_change`]. Must not: fetch feeds or render anything; the
//! approval state lives in [`super::ItemApproval`].
//!
//! The content hash covers everything except data-feed settings (URL, JSON
//! pointer, refresh interval, last value): whether a zone is bound to a feed
//! is content, what the feed says and where it comes from is not (A4).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::ContentHash;
use crate::ids::ItemId;

/// The widest or tallest canvas, in pixels (16K).
pub const MAX_CANVAS_SIDE: u32 = 15_360;
/// The most zones a template may hold.
pub const MAX_ZONES: usize = 64;
/// The longest zone id, in bytes.
pub const MAX_ZONE_ID_LEN: usize = 64;
/// The longest static text of a zone, in characters.
pub const MAX_TEXT_CHARS: usize = 4096;
/// The longest feed URL, in bytes.
pub const MAX_FEED_URL_LEN: usize = 2048;
/// The longest JSON pointer, in bytes.
pub const MAX_JSON_POINTER_LEN: usize = 512;
/// The longest stored feed value, in characters.
pub const MAX_FEED_VALUE_CHARS: usize = 4096;
/// The shortest feed refresh interval, in seconds.
pub const MIN_REFRESH_SECS: u32 = 5;
/// The longest feed refresh interval, in seconds (one day).
pub const MAX_REFRESH_SECS: u32 = 86_400;
/// The highest per-device variable number in a feed URL (`[1]`…`[25]`, D6).
pub const MAX_FEED_VARIABLE: u8 = 25;
/// The largest font size, in pixels.
pub const MAX_FONT_SIZE_PX: u32 = 2048;

/// A layout of zones on a canvas (D6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    /// The area every zone must fit in.
    pub canvas: Canvas,
    /// The zones, drawn in order (later zones on top).
    pub zones: Vec<Zone>,
}

/// The size of a template's drawing area.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Canvas {
    /// Width in pixels; not zero.
    pub width: u32,
    /// Height in pixels; not zero.
    pub height: u32,
}

/// A rectangle on the canvas, in pixels from the top-left corner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rect {
    /// Distance of the left edge from the canvas's left edge.
    pub x: u32,
    /// Distance of the top edge from the canvas's top edge.
    pub y: u32,
    /// Width; not zero.
    pub width: u32,
    /// Height; not zero.
    pub height: u32,
}

/// What a zone shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ZoneKind {
    /// Plays a video item.
    Video,
    /// Shows an image item.
    Image,
    /// Shows static text or a feed value.
    Text,
    /// Shows the current time; `text` holds its format.
    Clock,
    /// Scrolls static text or a feed value.
    Ticker,
}

impl ZoneKind {
    /// Whether zones of this kind show a content item.
    #[must_use]
    pub fn takes_source(self) -> bool {
        matches!(self, ZoneKind::Video | ZoneKind::Image)
    }

    /// Whether zones of this kind may hold text (static text or clock format).
    #[must_use]
    pub fn takes_text(self) -> bool {
        matches!(self, ZoneKind::Text | ZoneKind::Ticker | ZoneKind::Clock)
    }

    /// Whether zones of this kind may be bound to a data feed.
    #[must_use]
    pub fn takes_feed(self) -> bool {
        matches!(self, ZoneKind::Text | ZoneKind::Ticker)
    }

    fn code(self) -> u8 {
        match self {
            ZoneKind::Video => 0,
            ZoneKind::Image => 1,
            ZoneKind::Text => 2,
            ZoneKind::Clock => 3,
            ZoneKind::Ticker => 4,
        }
    }
}

/// How text is placed across a zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextAlign {
    /// Against the left edge.
    #[default]
    Left,
    /// Centred.
    Center,
    /// Against the right edge.
    Right,
}

impl TextAlign {
    fn code(self) -> u8 {
        match self {
            TextAlign::Left => 0,
            TextAlign::Center => 1,
            TextAlign::Right => 2,
        }
    }
}

/// How a text, clock or ticker zone draws its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextStyle {
    /// Font size in pixels; 1 to [`MAX_FONT_SIZE_PX`].
    pub font_size_px: u32,
    /// Text colour as `0xRRGGBB`.
    pub color_rgb: u32,
    /// Background colour as `0xRRGGBB`; `None` for transparent.
    pub background_rgb: Option<u32>,
    /// Horizontal alignment.
    pub align: TextAlign,
}

/// A text or ticker zone's data feed (D6): a JSON document fetched by the
/// agent on an interval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedBinding {
    /// The `http(s)` URL of the JSON; may contain per-device variables
    /// `[1]`…`[25]`.
    pub url: String,
    /// The RFC 6901 pointer to the value to show (`""` for the whole document).
    pub json_pointer: String,
    /// How often to fetch, in seconds.
    pub refresh_secs: u32,
    /// The last good value, shown while offline.
    pub last_value: Option<String>,
}

impl FeedBinding {
    /// The per-device variable numbers the URL uses.
    ///
    /// A variable is `[` digits `]`; any other bracketed text (an IPv6 host,
    /// say) is left alone.
    ///
    /// # Errors
    /// [`TemplateError::FeedVariableOutOfRange`] for a number outside 1–25
    /// (or written with a leading zero), naming `zone`.
    pub fn variables(&self, zone: &str) -> Result<BTreeSet<u8>, TemplateError> {
        let mut found = BTreeSet::new();
        let mut rest = self.url.as_str();
        while let Some(open) = rest.find('[') {
            rest = &rest[open + 1..];
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 || rest.as_bytes().get(digits) != Some(&b']') {
                continue;
            }
            let text = &rest[..digits];
            let number = text
                .parse::<u8>()
                .ok()
                .filter(|n| (1..=MAX_FEED_VARIABLE).contains(n) && !text.starts_with('0'));
            match number {
                Some(n) => {
                    found.insert(n);
                }
                None => {
                    return Err(TemplateError::FeedVariableOutOfRange {
                        zone: zone.to_owned(),
                        variable: text.chars().take(16).collect(),
                    });
                }
            }
            rest = &rest[digits + 1..];
        }
        Ok(found)
    }
}

/// One rectangle of a template and what it shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Zone {
    /// Names the zone within its template; unique, not empty.
    pub id: String,
    /// What the zone shows.
    pub kind: ZoneKind,
    /// Where it is on the canvas.
    pub rect: Rect,
    /// The video or image item a video or image zone plays.
    pub source: Option<ItemId>,
    /// Static text of a text or ticker zone, or a clock zone's format.
    pub text: Option<String>,
    /// How a text, clock or ticker zone draws text.
    pub style: Option<TextStyle>,
    /// A text or ticker zone's data feed.
    pub feed: Option<FeedBinding>,
}

/// Why a template was refused; each names the offending zone where there is one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A canvas side of zero or above [`MAX_CANVAS_SIDE`].
    #[error("canvas {width}x{height} is outside 1..={max} on a side")]
    CanvasSize {
        /// The width given.
        width: u32,
        /// The height given.
        height: u32,
        /// The bound per side.
        max: u32,
    },
    /// More than [`MAX_ZONES`] zones.
    #[error("{count} zones; at most {max}")]
    TooManyZones {
        /// How many were given.
        count: usize,
        /// The bound.
        max: usize,
    },
    /// A zone id that is empty or longer than [`MAX_ZONE_ID_LEN`].
    #[error("zone id {zone:?} is empty or longer than {max} bytes")]
    BadZoneId {
        /// The id given (at most 64 characters of it).
        zone: String,
        /// The bound.
        max: usize,
    },
    /// Two zones with the same id.
    #[error("zone id {zone:?} is used twice")]
    DuplicateZoneId {
        /// The repeated id.
        zone: String,
    },
    /// A zone of zero width or height.
    #[error("zone {zone:?} has zero width or height")]
    EmptyZone {
        /// The zone.
        zone: String,
    },
    /// A zone that reaches past the canvas's right or bottom edge.
    #[error("zone {zone:?} does not fit inside the canvas")]
    ZoneOutsideCanvas {
        /// The zone.
        zone: String,
    },
    /// A source item on a zone that does not play items.
    #[error("zone {zone:?} of kind {kind:?} cannot play an item")]
    SourceNotAllowed {
        /// The zone.
        zone: String,
        /// Its kind.
        kind: ZoneKind,
    },
    /// Text or style on a video or image zone.
    #[error("zone {zone:?} of kind {kind:?} cannot hold text")]
    TextNotAllowed {
        /// The zone.
        zone: String,
        /// Its kind.
        kind: ZoneKind,
    },
    /// Static text longer than [`MAX_TEXT_CHARS`].
    #[error("zone {zone:?} text is longer than {max} characters")]
    TextTooLong {
        /// The zone.
        zone: String,
        /// The bound.
        max: usize,
    },
    /// A font size of zero or above [`MAX_FONT_SIZE_PX`], or a colour above 0xFFFFFF.
    #[error("zone {zone:?} has an invalid text style")]
    BadStyle {
        /// The zone.
        zone: String,
    },
    /// A feed on a zone that is not text or ticker.
    #[error("zone {zone:?} of kind {kind:?} cannot be bound to a feed")]
    FeedNotAllowed {
        /// The zone.
        zone: String,
        /// Its kind.
        kind: ZoneKind,
    },
    /// A feed URL that is not `http://` or `https://` with a host, holds
    /// whitespace or control characters, or is too long.
    #[error("zone {zone:?} feed URL must be http(s) and at most {max} bytes")]
    BadFeedUrl {
        /// The zone.
        zone: String,
        /// The length bound.
        max: usize,
    },
    /// A per-device variable other than `[1]`…`[25]`.
    #[error("zone {zone:?} feed URL uses variable [{variable}]; only [1] to [25] exist")]
    FeedVariableOutOfRange {
        /// The zone.
        zone: String,
        /// The digits between the brackets (at most 16).
        variable: String,
    },
    /// A JSON pointer that is neither empty nor starts with `/`, or is too long.
    #[error(
        "zone {zone:?} JSON pointer must be empty or start with '/' and be at most {max} bytes"
    )]
    BadJsonPointer {
        /// The zone.
        zone: String,
        /// The length bound.
        max: usize,
    },
    /// A refresh interval outside [`MIN_REFRESH_SECS`]..=[`MAX_REFRESH_SECS`].
    #[error("zone {zone:?} refresh of {refresh_secs}s is outside {min}..={max}")]
    RefreshOutOfBounds {
        /// The zone.
        zone: String,
        /// The interval given.
        refresh_secs: u32,
        /// The shortest allowed.
        min: u32,
        /// The longest allowed.
        max: u32,
    },
    /// A stored feed value longer than [`MAX_FEED_VALUE_CHARS`].
    #[error("zone {zone:?} feed value is longer than {max} characters")]
    FeedValueTooLong {
        /// The zone.
        zone: String,
        /// The bound.
        max: usize,
    },
}

impl Template {
    /// Checks the template is drawable and bounded.
    ///
    /// # Errors
    /// The first problem found, as a [`TemplateError`].
    pub fn validate(&self) -> Result<(), TemplateError> {
        let Canvas { width, height } = self.canvas;
        if !(1..=MAX_CANVAS_SIDE).contains(&width) || !(1..=MAX_CANVAS_SIDE).contains(&height) {
            return Err(TemplateError::CanvasSize {
                width,
                height,
                max: MAX_CANVAS_SIDE,
            });
        }
        if self.zones.len() > MAX_ZONES {
            return Err(TemplateError::TooManyZones {
                count: self.zones.len(),
                max: MAX_ZONES,
            });
        }
        let mut ids = BTreeSet::new();
        for zone in &self.zones {
            zone.validate(self.canvas)?;
            if !ids.insert(zone.id.as_str()) {
                return Err(TemplateError::DuplicateZoneId {
                    zone: zone.id.clone(),
                });
            }
        }
        Ok(())
    }

    /// The SHA-256 of the template's canonical layout encoding, which leaves
    /// out every data-feed setting, so feed-only edits keep the hash (A4). This
    /// is the hash an approver approves and the hub signs (A8).
    #[must_use]
    pub fn content_hash(&self) -> ContentHash {
        ContentHash::of(&self.layout_encoding())
    }

    /// The canonical, feed-free encoding: a version tag, then every field in
    /// a fixed order, strings length-prefixed, options and lists marked.
    fn layout_encoding(&self) -> Vec<u8> {
        let mut out = Encoder(b"signet.template.layout.v1\0".to_vec());
        let Template { canvas, zones } = self;
        out.u32(canvas.width);
        out.u32(canvas.height);
        out.len(zones.len());
        for zone in zones {
            let Zone {
                id,
                kind,
                rect,
                source,
                text,
                style,
                feed,
            } = zone;
            out.str(id);
            out.0.push(kind.code());
            let Rect {
                x,
                y,
                width,
                height,
            } = rect;
            for value in [x, y, width, height] {
                out.u32(*value);
            }
            out.opt_str(source.as_ref().map(ItemId::as_str));
            out.opt_str(text.as_deref());
            match style {
                None => out.0.push(0),
                Some(TextStyle {
                    font_size_px,
                    color_rgb,
                    background_rgb,
                    align,
                }) => {
                    out.0.push(1);
                    out.u32(*font_size_px);
                    out.u32(*color_rgb);
                    match background_rgb {
                        None => out.0.push(0),
                        Some(rgb) => {
                            out.0.push(1);
                            out.u32(*rgb);
                        }
                    }
                    out.0.push(align.code());
                }
            }
            // Only whether a feed is bound is content; its settings are not (A4).
            out.0.push(u8::from(feed.is_some()));
        }
        out.0
    }
}

impl Zone {
    fn validate(&self, canvas: Canvas) -> Result<(), TemplateError> {
        let zone = || self.id.clone();
        if self.id.is_empty() || self.id.len() > MAX_ZONE_ID_LEN {
            return Err(TemplateError::BadZoneId {
                zone: self.id.chars().take(64).collect(),
                max: MAX_ZONE_ID_LEN,
            });
        }
        let Rect {
            x,
            y,
            width,
            height,
        } = self.rect;
        if width == 0 || height == 0 {
            return Err(TemplateError::EmptyZone { zone: zone() });
        }
        let fits = |start: u32, size: u32, side: u32| {
            start.checked_add(size).is_some_and(|end| end <= side)
        };
        if !fits(x, width, canvas.width) || !fits(y, height, canvas.height) {
            return Err(TemplateError::ZoneOutsideCanvas { zone: zone() });
        }
        if self.source.is_some() && !self.kind.takes_source() {
            return Err(TemplateError::SourceNotAllowed {
                zone: zone(),
                kind: self.kind,
            });
        }
        if (self.text.is_some() || self.style.is_some()) && !self.kind.takes_text() {
            return Err(TemplateError::TextNotAllowed {
                zone: zone(),
                kind: self.kind,
            });
        }
        if let Some(text) = &self.text
            && text.chars().count() > MAX_TEXT_CHARS
        {
            return Err(TemplateError::TextTooLong {
                zone: zone(),
                max: MAX_TEXT_CHARS,
            });
        }
        if let Some(style) = &self.style {
            let colour_ok = |rgb: u32| rgb <= 0x00FF_FFFF;
            if !(1..=MAX_FONT_SIZE_PX).contains(&style.font_size_px)
                || !colour_ok(style.color_rgb)
                || !style.background_rgb.is_none_or(colour_ok)
            {
                return Err(TemplateError::BadStyle { zone: zone() });
            }
        }
        if let Some(feed) = &self.feed {
            if !self.kind.takes_feed() {
                return Err(TemplateError::FeedNotAllowed {
                    zone: zone(),
                    kind: self.kind,
                });
            }
            feed.validate(&self.id)?;
        }
        Ok(())
    }
}

impl FeedBinding {
    fn validate(&self, zone: &str) -> Result<(), TemplateError> {
        let url = self.url.to_ascii_lowercase();
        let scheme_ok = ["http://", "https://"]
            .iter()
            .any(|scheme| url.len() > scheme.len() && url.starts_with(scheme));
        let clean = !self
            .url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control());
        if !scheme_ok || !clean || self.url.len() > MAX_FEED_URL_LEN {
            return Err(TemplateError::BadFeedUrl {
                zone: zone.to_owned(),
                max: MAX_FEED_URL_LEN,
            });
        }
        self.variables(zone)?;
        if !(self.json_pointer.is_empty() || self.json_pointer.starts_with('/'))
            || self.json_pointer.len() > MAX_JSON_POINTER_LEN
        {
            return Err(TemplateError::BadJsonPointer {
                zone: zone.to_owned(),
                max: MAX_JSON_POINTER_LEN,
            });
        }
        if !(MIN_REFRESH_SECS..=MAX_REFRESH_SECS).contains(&self.refresh_secs) {
            return Err(TemplateError::RefreshOutOfBounds {
                zone: zone.to_owned(),
                refresh_secs: self.refresh_secs,
                min: MIN_REFRESH_SECS,
                max: MAX_REFRESH_SECS,
            });
        }
        if let Some(value) = &self.last_value
            && value.chars().count() > MAX_FEED_VALUE_CHARS
        {
            return Err(TemplateError::FeedValueTooLong {
                zone: zone.to_owned(),
                max: MAX_FEED_VALUE_CHARS,
            });
        }
        Ok(())
    }
}

/// Appends fields in the canonical layout encoding.
struct Encoder(Vec<u8>);

impl Encoder {
    fn u32(&mut self, value: u32) {
        self.0.extend_from_slice(&value.to_be_bytes());
    }

    fn len(&mut self, len: usize) {
        self.0.extend_from_slice(&(len as u64).to_be_bytes());
    }

    fn str(&mut self, text: &str) {
        self.len(text.len());
        self.0.extend_from_slice(text.as_bytes());
    }

    fn opt_str(&mut self, text: Option<&str>) {
        match text {
            None => self.0.push(0),
            Some(text) => {
                self.0.push(1);
                self.str(text);
            }
        }
    }
}

/// How a template changed between two versions, for the approval workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Nothing changed.
    None,
    /// Only data-feed settings changed (A4): the approval state stays, the
    /// change is audited.
    FeedOnly {
        /// Whether a feed URL changed (deactivates in strict mode).
        url_changed: bool,
    },
    /// The layout or content changed: the content hash differs.
    Content,
}

/// Classifies the change from `old` to `new` (A3, A4).
#[must_use]
pub fn classify_change(old: &Template, new: &Template) -> Change {
    if old.layout_encoding() != new.layout_encoding() {
        return Change::Content;
    }
    // Same layout, so the zones pair up one to one.
    let feeds = old
        .zones
        .iter()
        .zip(&new.zones)
        .map(|(before, after)| (before.feed.as_ref(), after.feed.as_ref()));
    let mut changed = false;
    let mut url_changed = false;
    for (before, after) in feeds {
        if before != after {
            changed = true;
            url_changed |= before.map(|feed| &feed.url) != after.map(|feed| &feed.url);
        }
    }
    if changed {
        Change::FeedOnly { url_changed }
    } else {
        Change::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_separates_adjacent_strings() {
        // Length prefixes keep ("ab", "c") and ("a", "bc") apart.
        let zone = |id: &str, text: &str| Zone {
            id: id.into(),
            kind: ZoneKind::Text,
            rect: Rect {
                x: 0,
                y: 0,
                width: 1,
                height: 1,
            },
            source: None,
            text: Some(text.into()),
            style: None,
            feed: None,
        };
        let canvas = Canvas {
            width: 1,
            height: 1,
        };
        let one = Template {
            canvas,
            zones: vec![zone("ab", "c")],
        };
        let two = Template {
            canvas,
            zones: vec![zone("a", "bc")],
        };
        assert_ne!(one.content_hash(), two.content_hash());
    }

    #[test]
    fn variables_never_panic_on_odd_brackets() {
        for url in [
            "[", "]", "[]", "[[1]]", "[1", "1]", "[é]", "[1é]", "[25]]", "[[[[",
        ] {
            let feed = FeedBinding {
                url: url.into(),
                json_pointer: String::new(),
                refresh_secs: 60,
                last_value: None,
            };
            let _ = feed.variables("z");
        }
    }
}
