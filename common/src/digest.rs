//! SHA-256 digests.
//!
//! Owns: the one digest type the crate uses for content hashes (A8) and
//! document hashes (S3), with its lowercase-hex text form. Must not: hash
//! files or streams — callers feed it bytes they already hold, or use
//! [`Sha256::hasher`] for incremental input.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A SHA-256 digest; serialized as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sha256([u8; 32]);

/// The text was not 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a SHA-256 digest is 64 lowercase hex digits")]
pub struct BadDigest;

impl Sha256 {
    /// The digest of `bytes`.
    #[must_use]
    pub fn of(bytes: &[u8]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        Self(out)
    }

    /// An incremental hasher, for input that arrives in pieces.
    #[must_use]
    pub fn hasher() -> Sha256Hasher {
        Sha256Hasher(ring::digest::Context::new(&ring::digest::SHA256))
    }

    /// Wraps 32 raw digest bytes.
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 raw bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Feeds bytes to a SHA-256 computation piece by piece.
pub struct Sha256Hasher(ring::digest::Context);

impl Sha256Hasher {
    /// Adds the next piece of input.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The digest of everything added.
    #[must_use]
    pub fn finish(self) -> Sha256 {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.0.finish().as_ref());
        Sha256(out)
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_lower_hex(f, &self.0)
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({self})")
    }
}

impl FromStr for Sha256 {
    type Err = BadDigest;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_lower_hex(text.as_bytes()).map(Self).ok_or(BadDigest)
    }
}

/// Writes bytes as lowercase hex: the one text form of digests and key ids.
pub(crate) fn write_lower_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for byte in bytes {
        write!(f, "{byte:02x}")?;
    }
    Ok(())
}

/// Each byte's value as a lowercase hex digit, or [`NOT_HEX`]: one table
/// look-up per digit instead of two range tests (issue 20: a manifest
/// carries two 64-digit hashes per item).
const HEX_DIGIT: [u8; 256] = {
    let mut table = [NOT_HEX; 256];
    let mut byte: u8 = 0;
    loop {
        table[byte as usize] = match byte {
            b'0'..=b'9' => byte - b'0',
            b'a'..=b'f' => byte - b'a' + 10,
            _ => NOT_HEX,
        };
        if byte == u8::MAX {
            break table;
        }
        byte += 1;
    }
};

/// Marks a byte that is not a lowercase hex digit; any high bit set.
const NOT_HEX: u8 = 0xF0;

/// Parses exactly `2 * N` lowercase hex digits. Uppercase is refused so
/// every value has one spelling (a flipped case bit must not verify).
/// Eight digits at a time as one `u64` ([`parse_eight`]), the rest (fewer
/// than eight) by table (issue 20: a manifest carries two 64-digit hashes
/// per item, a tenth of its typed parse).
pub(crate) fn parse_lower_hex<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    if text.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    let mut digits = text.chunks_exact(8);
    let mut bytes = out.chunks_exact_mut(4);
    // Every word is parsed; one test at the end (no branch per word).
    let mut ok = true;
    for (word, four) in (&mut digits).zip(&mut bytes) {
        let (value, valid) = parse_eight(word);
        four.copy_from_slice(&value);
        ok &= valid;
    }
    let mut bad = 0u8;
    for (byte, pair) in bytes
        .into_remainder()
        .iter_mut()
        .zip(digits.remainder().chunks_exact(2))
    {
        let (high, low) = (
            HEX_DIGIT[usize::from(pair[0])],
            HEX_DIGIT[usize::from(pair[1])],
        );
        bad |= high | low;
        *byte = (high << 4) | (low & 0x0F);
    }
    (ok && bad & NOT_HEX == 0).then_some(out)
}

/// Eight lowercase hex digits (exactly 8 bytes) as 4 bytes, and whether all
/// eight were `0-9` or `a-f`: each byte is range-tested in one `u64` (SWAR;
/// no byte's sum reaches the next byte, since any byte with its high bit set
/// is refused first).
fn parse_eight(word: &[u8]) -> ([u8; 4], bool) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut array = [0u8; 8];
    array.copy_from_slice(word);
    let v = u64::from_le_bytes(array);
    let ascii = v & HIGH == 0;
    // For ASCII bytes, the high bit of `v + (0x80 - lo)` says `byte >= lo`,
    // and that of `v + (0x7F - hi)` says `byte > hi`.
    let at_least = |lo: u64| v.wrapping_add((0x80 - lo) * ONES);
    let above = |hi: u64| v.wrapping_add((0x7F - hi) * ONES);
    let digit = at_least(0x30) & !above(0x39) & HIGH;
    let letter = at_least(0x61) & !above(0x66) & HIGH;
    let valid = ascii && (digit | letter) == HIGH;
    // `0`-`9` are 0x30-0x39 and `a`-`f` 0x61-0x66: the low nibble, plus 9
    // for a letter.
    let nibbles = (v & (0x0F * ONES)) + (letter >> 7) * 9;
    // Byte 2i of `pairs` is digit 2i shifted up and digit 2i+1 below it.
    let pairs = ((nibbles << 4) | (nibbles >> 8)) & 0x00FF_00FF_00FF_00FF;
    let pairs = (pairs | (pairs >> 8)) & 0x0000_FFFF_0000_FFFF;
    let pairs = (pairs | (pairs >> 16)) & 0x0000_0000_FFFF_FFFF;
    let mut four = [0u8; 4];
    four.copy_from_slice(&pairs.to_le_bytes()[..4]);
    (four, valid)
}

impl Serialize for Sha256 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Sha256 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(FromStrVisitor::new("64 lowercase hex digits"))
    }
}

/// Deserializes any `FromStr` type from a string without allocating when
/// the input lends the string (serde's `Cow<str>` always allocates).
pub(crate) struct FromStrVisitor<T> {
    /// What the string must be, for the error message.
    expecting: &'static str,
    /// The type parsed.
    target: std::marker::PhantomData<T>,
}

impl<T> FromStrVisitor<T> {
    pub(crate) fn new(expecting: &'static str) -> Self {
        Self {
            expecting,
            target: std::marker::PhantomData,
        }
    }
}

impl<T> serde::de::Visitor<'_> for FromStrVisitor<T>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<T, E> {
        text.parse().map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector_and_round_trip() {
        let empty = Sha256::of(b"");
        assert_eq!(
            empty.to_string(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(empty.to_string().parse::<Sha256>(), Ok(empty));
        let mut hasher = Sha256::hasher();
        hasher.update(b"ab");
        hasher.update(b"c");
        assert_eq!(hasher.finish(), Sha256::of(b"abc"));
    }

    #[test]
    fn refuses_non_canonical_text() {
        let upper = Sha256::of(b"x").to_string().to_uppercase();
        assert_eq!(upper.parse::<Sha256>(), Err(BadDigest));
        assert_eq!("abc".parse::<Sha256>(), Err(BadDigest));
    }

    /// The digit-by-digit rule the table encodes: `0-9`, `a-f`, nothing else.
    fn reference<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
        if text.len() != 2 * N {
            return None;
        }
        let digit = |d: u8| match d {
            b'0'..=b'9' => Some(d - b'0'),
            b'a'..=b'f' => Some(d - b'a' + 10),
            _ => None,
        };
        let mut out = [0u8; N];
        for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
            *byte = (digit(pair[0])? << 4) | digit(pair[1])?;
        }
        Some(out)
    }

    proptest::proptest! {
        /// S1, S3: the table parser takes exactly what the digit rule takes
        /// (any byte in any place, mostly near-hex text), with equal values.
        #[test]
        fn s1_hex_table_agrees_with_the_digit_rule(
            text in proptest::collection::vec(
                proptest::prop_oneof![
                    8 => proptest::sample::select(b"0123456789abcdefABCDEFgG/:`@".to_vec()),
                    1 => proptest::num::u8::ANY,
                ],
                14..=18,
            ),
        ) {
            proptest::prop_assert_eq!(parse_lower_hex::<8>(&text), reference::<8>(&text));
            proptest::prop_assert_eq!(parse_lower_hex::<7>(&text), reference::<7>(&text));
            proptest::prop_assert_eq!(parse_lower_hex::<9>(&text), reference::<9>(&text));
        }

        /// Every digest's text parses back to itself.
        #[test]
        fn s3_hex_round_trip(bytes in proptest::array::uniform32(proptest::num::u8::ANY)) {
            let digest = Sha256::from_bytes(bytes);
            proptest::prop_assert_eq!(digest.to_string().parse::<Sha256>(), Ok(digest));
        }
    }

    #[test]
    fn s1_every_single_byte_is_judged_as_the_digit_rule_judges_it() {
        for byte in 0..=u8::MAX {
            assert_eq!(
                parse_lower_hex::<1>(&[byte, b'0']),
                reference::<1>(&[byte, b'0']),
                "{byte}"
            );
            assert_eq!(
                parse_lower_hex::<1>(&[b'f', byte]),
                reference::<1>(&[b'f', byte]),
                "{byte}"
            );
            // In every place of a word the eight-at-a-time path parses,
            // among digits and letters (a key id's 16 digits).
            for at in 0..16 {
                let mut text = *b"0123456789abcdef";
                text.rotate_left(at % 7);
                text[at] = byte;
                assert_eq!(
                    parse_lower_hex::<8>(&text),
                    reference::<8>(&text),
                    "{byte} at {at}"
                );
            }
        }
    }
}
