//! The group manifest's fast path: the payload exactly as the hub writes it
//! (`serde_json`'s compact form of [`GroupManifest`]: every field in
//! declaration order, no whitespace, strings without escapes) typed in one
//! pass with a byte cursor, so verifying a large manifest costs little more
//! than its signature (issue 20: `serde_json` typing a 100-item manifest
//! cost about half a raw Ed25519 verify).
//!
//! Owns: nothing but speed. [`parse`] answers `None` for anything it does
//! not take whole — another field order, an unknown, missing or repeated
//! field, whitespace, an escape or control character in a string, a number
//! that is not plain digits, a value that does not decode —
//! and the caller then parses with `serde_json`, which accepts or refuses
//! it with its own error. What it does take, it types with the same code
//! `serde_json` would run: each string leaf goes through the type's own
//! `Deserialize` (a borrowed string, exactly the text between the quotes,
//! as `serde_json` hands it over when there is no escape), and the cold,
//! rarely large values (dayparts, weekdays, dates, priority, layer, merge
//! mode, default item, categories, renditions, license terms) through
//! `serde_json` itself at their position. So it accepts only what
//! `serde_json` accepts, with the same value (property-tested in
//! `common/tests/documents.rs`).

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde::de::value::{BorrowedStrDeserializer, Error as ValueError};

use super::manifest::{GroupManifest, MAX_MANIFEST_ITEMS, ManifestItem};
use crate::approval::ContentHash;
use crate::schedule::{PlaylistItem, Schedule, ScheduleEntry};

/// The manifest in `text`, when it is in the hub's plain form; `None` to
/// leave it to `serde_json`.
pub(super) fn parse(text: &str) -> Option<GroupManifest> {
    let mut c = Cursor { text, at: 0 };
    c.lit(br#"{"version":"#)?;
    let version = c.u64()?;
    c.lit(br#","issued_at":"#)?;
    let issued_at = c.leaf()?;
    c.lit(br#","expires_at":"#)?;
    let expires_at = c.leaf()?;
    c.lit(br#","group_id":"#)?;
    let group_id = c.leaf()?;
    c.lit(br#","group_kind":"#)?;
    let group_kind = c.leaf()?;
    c.lit(br#","items":"#)?;
    let items = c.items()?;
    c.lit(br#","schedule":"#)?;
    let schedule = c.schedule()?;
    let license = if c.eat(br#","license":"#) {
        c.serde()?
    } else {
        None
    };
    c.lit(b"}")?;
    (c.at == text.len()).then_some(GroupManifest {
        version,
        issued_at,
        expires_at,
        group_id,
        group_kind,
        items,
        schedule,
        license,
    })
}

/// The fewest bytes a manifest item takes in the plain form (its field
/// names, punctuation and the 64 digits of its `sha256` alone).
const MIN_ITEM_LEN: usize = 120;

/// The string leaf `text` typed by `T`'s own `Deserialize`, as `serde_json`
/// types an unescaped string.
fn typed<'a, T: Deserialize<'a>>(text: &'a str) -> Option<T> {
    T::deserialize(BorrowedStrDeserializer::<ValueError>::new(text)).ok()
}

/// A position in the payload text.
struct Cursor<'a> {
    /// The whole payload.
    text: &'a str,
    /// The next byte to read.
    at: usize,
}

impl<'a> Cursor<'a> {
    /// Whether the text continues with `expected`; if so, steps over it.
    fn eat(&mut self, expected: &[u8]) -> bool {
        let next = self.text.as_bytes().get(self.at..self.at + expected.len());
        let found = next == Some(expected);
        if found {
            self.at += expected.len();
        }
        found
    }

    /// Steps over `expected`, or `None`.
    fn lit(&mut self, expected: &[u8]) -> Option<()> {
        self.eat(expected).then_some(())
    }

    /// A non-negative integer as JSON writes it: `0`, or digits without a
    /// leading zero, within `u64`.
    fn u64(&mut self) -> Option<u64> {
        let bytes = self.text.as_bytes();
        let start = self.at;
        let mut value: u64 = 0;
        while let Some(digit) = bytes.get(self.at).filter(|b| b.is_ascii_digit()) {
            value = value
                .checked_mul(10)?
                .checked_add(u64::from(digit - b'0'))?;
            self.at += 1;
        }
        let len = self.at - start;
        (len == 1 || (len > 1 && bytes[start] != b'0')).then_some(value)
    }

    /// A string without escapes or control characters: the text between
    /// its quotes.
    fn str(&mut self) -> Option<&'a str> {
        let bytes = self.text.as_bytes();
        if bytes.get(self.at) != Some(&b'"') {
            return None;
        }
        let start = self.at + 1;
        let len = memchr::memchr(b'"', bytes.get(start..)?)?;
        let inner = bytes.get(start..start + len)?;
        // One branch-free pass (the compiler vectorizes it), not one per byte.
        if inner.iter().fold(0u8, |bad, &b| {
            bad | u8::from(b < 0x20) | u8::from(b == b'\\')
        }) != 0
        {
            return None;
        }
        self.at = start + len + 1;
        self.text.get(start..start + len)
    }

    /// A SHA-256 digest's string: its 64 digits, typed. Not searched for
    /// its end: the 64 bytes after the quote must all be hex digits and
    /// the next one the closing quote, which leaves no room for an escape
    /// or another end (issue 20: two digests per item).
    fn digest(&mut self) -> Option<(ContentHash, &'a [u8])> {
        let bytes = self.text.as_bytes();
        let start = self.at + 1;
        if bytes.get(self.at) != Some(&b'"') || bytes.get(start + 64) != Some(&b'"') {
            return None;
        }
        let digits = self.text.get(start..start + 64)?;
        let digest: ContentHash = digits.parse().ok()?;
        self.at = start + 65;
        Some((digest, digits.as_bytes()))
    }

    /// A string typed by `T`'s own `Deserialize`, as `serde_json` types an
    /// unescaped string.
    fn leaf<T: Deserialize<'a>>(&mut self) -> Option<T> {
        typed(self.str()?)
    }

    /// The JSON value here, typed by `serde_json`.
    fn serde<T: DeserializeOwned>(&mut self) -> Option<T> {
        let rest = self.text.get(self.at..)?;
        let mut values = serde_json::Deserializer::from_str(rest).into_iter::<T>();
        let value = values.next()?.ok()?;
        self.at += values.byte_offset();
        Some(value)
    }

    /// An array whose elements `element` reads.
    fn array<T>(&mut self, mut element: impl FnMut(&mut Self) -> Option<T>) -> Option<Vec<T>> {
        self.lit(b"[")?;
        let mut out = Vec::new();
        if self.eat(b"]") {
            return Some(out);
        }
        loop {
            out.push(element(self)?);
            if self.eat(b"]") {
                return Some(out);
            }
            self.lit(b",")?;
        }
    }

    /// The manifest's items, in a vector sized once for as many as the
    /// rest of the text can hold (an item is at least [`MIN_ITEM_LEN`]
    /// bytes) and trimmed after: no growing and moving ~200-byte items.
    fn items(&mut self) -> Option<Vec<ManifestItem>> {
        let room = (self.text.len() - self.at) / MIN_ITEM_LEN;
        let mut items = Vec::with_capacity(room.min(MAX_MANIFEST_ITEMS));
        self.lit(b"[")?;
        if !self.eat(b"]") {
            loop {
                items.push(self.item()?);
                if self.eat(b"]") {
                    break;
                }
                self.lit(b",")?;
            }
        }
        items.shrink_to_fit();
        Some(items)
    }

    /// A [`ManifestItem`]; the optional fields present or left out as the
    /// hub's serializer does.
    fn item(&mut self) -> Option<ManifestItem> {
        self.lit(br#"{"id":"#)?;
        let id = self.leaf()?;
        self.lit(br#","kind":"#)?;
        let kind = self.leaf()?;
        self.lit(br#","sha256":"#)?;
        let (sha256, sha256_digits) = self.digest()?;
        self.lit(br#","size":"#)?;
        let size = self.u64()?;
        self.lit(br#","url":"#)?;
        let url = self.leaf()?;
        self.lit(br#","approval":"#)?;
        let approval = self.leaf()?;
        let approved_hash = if self.eat(br#","approved_hash":"#) {
            // Usually the same digits as `sha256` (A8): not decoded twice.
            let bytes = self.text.as_bytes();
            if bytes.get(self.at) == Some(&b'"')
                && bytes.get(self.at + 1..self.at + 65) == Some(sha256_digits)
                && bytes.get(self.at + 65) == Some(&b'"')
            {
                self.at += 66;
                Some(sha256)
            } else {
                Some(self.digest()?.0)
            }
        } else {
            None
        };
        let categories = if self.eat(br#","categories":"#) {
            self.serde()?
        } else {
            Vec::new()
        };
        let renditions = if self.eat(br#","renditions":"#) {
            self.serde()?
        } else {
            Vec::new()
        };
        self.lit(b"}")?;
        Some(ManifestItem {
            id,
            kind,
            sha256,
            size,
            url,
            approval,
            approved_hash,
            categories,
            renditions,
        })
    }

    /// The [`Schedule`]: its entries' playlists by hand, the rest by
    /// `serde_json`.
    fn schedule(&mut self) -> Option<Schedule> {
        self.lit(br#"{"entries":"#)?;
        let entries = self.array(Self::entry)?;
        self.lit(br#","merge":"#)?;
        let merge = self.serde()?;
        self.lit(br#","default_item":"#)?;
        let default_item = self.serde()?;
        self.lit(b"}")?;
        Some(Schedule {
            entries,
            merge,
            default_item,
        })
    }

    /// One [`ScheduleEntry`].
    fn entry(&mut self) -> Option<ScheduleEntry> {
        self.lit(br#"{"id":"#)?;
        let id = self.leaf()?;
        self.lit(br#","items":"#)?;
        let items = self.array(Self::playlist_item)?;
        self.lit(br#","dayparts":"#)?;
        let dayparts = self.serde()?;
        self.lit(br#","weekdays":"#)?;
        let weekdays = self.serde()?;
        self.lit(br#","dates":"#)?;
        let dates = self.serde()?;
        self.lit(br#","priority":"#)?;
        let priority = self.serde()?;
        self.lit(br#","layer":"#)?;
        let layer = self.serde()?;
        self.lit(b"}")?;
        Some(ScheduleEntry {
            id,
            items,
            dayparts,
            weekdays,
            dates,
            priority,
            layer,
        })
    }

    /// One [`PlaylistItem`].
    fn playlist_item(&mut self) -> Option<PlaylistItem> {
        self.lit(br#"{"item":"#)?;
        let item = self.leaf()?;
        self.lit(br#","duration_ms":"#)?;
        let duration_ms = self.u64()?;
        self.lit(b"}")?;
        Some(PlaylistItem { item, duration_ms })
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, NaiveDate, NaiveTime, TimeDelta, Utc, Weekday};
    use proptest::prelude::*;

    use super::*;
    use crate::approval::ApprovalState;
    use crate::digest::Sha256;
    use crate::documents::{GroupKind, ItemKind, Rendition};
    use crate::envelope::Document;
    use crate::ids::{EntryId, ItemId};
    use crate::license::LicenseTerms;
    use crate::schedule::{DateRange, Daypart, Layer, MergeMode};

    /// Text for ids and names: mostly plain, sometimes with what JSON
    /// escapes (a quote, a backslash, a control character) or non-ASCII.
    const TEXT: &str = "[a-z0-9/:.-]{1,10}|[a-z\"\\\\\u{1}\u{7f}é ]{0,6}";

    fn when(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 123_000_000).unwrap_or_default()
    }

    fn item() -> impl Strategy<Value = ManifestItem> {
        (
            (TEXT, 0..4u8, any::<u64>(), TEXT, 0..3u8, any::<[u8; 32]>()),
            (
                any::<bool>(),
                prop::collection::vec(TEXT, 0..3),
                prop::collection::vec((any::<u64>(), TEXT, any::<u32>()), 0..2),
            ),
        )
            .prop_map(
                |((id, kind, size, url, approval, hash), (approved, categories, renditions))| {
                    let sha256 = Sha256::from_bytes(hash);
                    ManifestItem {
                        id: ItemId::new(id),
                        kind: [
                            ItemKind::Video,
                            ItemKind::Image,
                            ItemKind::Audio,
                            ItemKind::Template,
                        ][usize::from(kind)],
                        sha256,
                        size,
                        url,
                        approval: [
                            ApprovalState::Active,
                            ApprovalState::Inactive,
                            ApprovalState::Pending,
                        ][usize::from(approval)],
                        approved_hash: approved.then_some(sha256),
                        categories,
                        renditions: renditions
                            .into_iter()
                            .map(|(size, codec, n)| Rendition {
                                sha256,
                                size,
                                url: format!("https://m/{n}"),
                                codec,
                                width: n,
                                height: n / 2,
                                fps: n % 61,
                            })
                            .collect(),
                    }
                },
            )
    }

    fn entry() -> impl Strategy<Value = ScheduleEntry> {
        (
            (TEXT, prop::collection::vec((TEXT, any::<u64>()), 0..4)),
            (
                prop::collection::vec((0..86_400u32, 0..86_400u32), 0..2),
                prop::collection::vec(0..7u8, 0..3),
                prop::option::of(0..20_000i64),
                any::<i32>(),
                0..3u8,
            ),
        )
            .prop_map(
                |((id, items), (dayparts, weekdays, dates, priority, layer))| {
                    let time = |s| NaiveTime::from_num_seconds_from_midnight_opt(s, 0);
                    let day = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default();
                    ScheduleEntry {
                        id: EntryId::new(id),
                        items: items
                            .into_iter()
                            .map(|(item, duration_ms)| PlaylistItem {
                                item: ItemId::new(item),
                                duration_ms,
                            })
                            .collect(),
                        dayparts: dayparts
                            .into_iter()
                            .filter_map(|(a, b)| {
                                Some(Daypart {
                                    start: time(a)?,
                                    end: time(b)?,
                                })
                            })
                            .collect(),
                        weekdays: weekdays
                            .into_iter()
                            .filter_map(|d| Weekday::try_from(d).ok())
                            .collect(),
                        dates: dates.map(|d| DateRange {
                            first: day + TimeDelta::days(d),
                            last: day + TimeDelta::days(d + 3),
                        }),
                        priority,
                        layer: [Layer::Main, Layer::Interrupt, Layer::Overlay][usize::from(layer)],
                    }
                },
            )
    }

    /// Group manifests of every shape the type allows (not only valid ones:
    /// parsing comes before validation).
    fn manifest() -> impl Strategy<Value = GroupManifest> {
        (
            (any::<u64>(), 0..4_000_000_000i64, TEXT, any::<bool>()),
            prop::collection::vec(item(), 0..5),
            prop::collection::vec(entry(), 0..3),
            (
                prop::option::of(any::<u32>()),
                prop::option::of((TEXT, any::<u64>())),
                prop::option::of((any::<u64>(), any::<bool>())),
            ),
        )
            .prop_map(
                |((version, secs, group_id, node), items, entries, (n, default, license))| {
                    GroupManifest {
                        version,
                        issued_at: when(secs),
                        expires_at: when(secs + 86_400),
                        group_id,
                        group_kind: if node {
                            GroupKind::Node
                        } else {
                            GroupKind::AccessGroup
                        },
                        items,
                        schedule: Schedule {
                            entries,
                            merge: n.map_or(MergeMode::Sequence, |n| MergeMode::Interleave { n }),
                            default_item: default.map(|(item, duration_ms)| PlaylistItem {
                                item: ItemId::new(item),
                                duration_ms,
                            }),
                        },
                        license: license.map(|(secs, offline)| LicenseTerms {
                            duration_from_join_secs: Some(secs),
                            fixed_end: Some(when(1_800_000_000)),
                            allow_offline: offline,
                            allowed_countries: Some(vec!["de".into()]),
                            ..LicenseTerms::default()
                        }),
                    }
                },
            )
    }

    /// A manifest's JSON after a few edits with JSON's punctuation, digits,
    /// letters, white space or a control character.
    fn edited() -> impl Strategy<Value = (GroupManifest, Vec<u8>)> {
        let edit = (
            0..3u8,
            any::<prop::sample::Index>(),
            prop::sample::select(b"{}[],:\"\\ \n0123456789-.+eEafnulltrue\x01".to_vec()),
        );
        (manifest(), prop::collection::vec(edit, 0..4)).prop_map(|(manifest, edits)| {
            let mut text = serde_json::to_vec(&manifest).unwrap_or_default();
            for (op, at, byte) in edits {
                let at = at.index(text.len() + 1);
                match op {
                    0 => text.insert(at, byte),
                    1 if at < text.len() => text[at] = byte,
                    _ if at < text.len() => {
                        text.remove(at);
                    }
                    _ => {}
                }
            }
            (manifest, text)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// S1, issue 20: the hub's form of any manifest takes the fast path
        /// (unless a string needs an escape) and types to the manifest
        /// signed; [`GroupManifest::from_json`] always agrees with
        /// `serde_json`.
        #[test]
        fn s1_plain_manifest_reads_what_the_hub_writes(manifest in manifest()) {
            let text = serde_json::to_string(&manifest).unwrap_or_default();
            if !text.contains('\\') {
                prop_assert_eq!(parse(&text), Some(manifest.clone()));
            }
            prop_assert_eq!(GroupManifest::from_json(&text).ok(), Some(manifest));
        }

        /// S1, issue 20: whatever the fast path takes, `serde_json` takes
        /// with the same value; what it leaves, `serde_json` decides, so
        /// [`GroupManifest::from_json`] accepts, refuses and types exactly
        /// as `serde_json` does, error text included.
        #[test]
        fn s1_plain_manifest_takes_only_what_serde_json_takes((_, bytes) in edited()) {
            if let Ok(text) = String::from_utf8(bytes) {
                let reference = serde_json::from_str::<GroupManifest>(&text);
                if let Some(fast) = parse(&text) {
                    prop_assert_eq!(Some(fast), reference.as_ref().ok().cloned());
                }
                let ours = GroupManifest::from_json(&text);
                prop_assert_eq!(
                    ours.as_ref().map_err(ToString::to_string),
                    reference.as_ref().map_err(ToString::to_string)
                );
            }
        }
    }

    /// What the fast path leaves to `serde_json`, each still read (or
    /// refused) as `serde_json` reads it.
    #[test]
    fn s1_plain_manifest_leaves_other_forms_to_serde_json() {
        let manifest = GroupManifest {
            version: 7,
            issued_at: when(1_700_000_000),
            expires_at: when(1_700_086_400),
            group_id: "node-1".into(),
            group_kind: GroupKind::Node,
            items: Vec::new(),
            schedule: Schedule {
                entries: Vec::new(),
                merge: MergeMode::Sequence,
                default_item: None,
            },
            license: None,
        };
        let text = serde_json::to_string(&manifest).unwrap_or_default();
        assert_eq!(parse(&text), Some(manifest.clone()));
        // `"license":null` is what serde_json reads as no license, too.
        let null_license = text.replacen(r"null}", r#"null},"license":null"#, 1);
        assert_eq!(parse(&null_license), Some(manifest.clone()));
        let pretty = serde_json::to_string_pretty(&manifest).unwrap_or_default();
        let escaped = text.replacen("node-1", r"node\u002d1", 1);
        let reordered =
            text.replacen(r#""version":7,"#, "", 1)
                .replacen('{', r#"{"version":7,"#, 2);
        for form in [&pretty, &escaped] {
            assert_eq!(parse(form), None, "{form}");
            assert_eq!(
                GroupManifest::from_json(form).ok().as_ref(),
                Some(&manifest),
                "{form}"
            );
        }
        assert_eq!(parse(&reordered), None, "{reordered}");
        for refused in [
            text.replacen(r#""version":7"#, r#""version":07"#, 1),
            text.replacen(r#""version":7"#, r#""version":-7"#, 1),
            text.replacen(r#""version":7"#, r#""version":7.0"#, 1),
            text.replacen(r#""version":7"#, r#""version":18446744073709551616"#, 1),
            format!(r#"{},"x":1}}"#, &text[..text.len() - 1]),
            format!("{text}x"),
        ] {
            assert_eq!(parse(&refused), None, "{refused}");
            assert!(GroupManifest::from_json(&refused).is_err(), "{refused}");
        }
    }
}
