//! HTTP `Range` requests on blobs (D2: downloads resume with Range).
//!
//! One range of the `bytes` unit: `bytes=a-b`, `bytes=a-`, `bytes=-n`.
//! A header that is malformed or asks for several ranges is ignored, as
//! RFC 9110 §14.2 allows (the whole blob is served); a well-formed range
//! that misses the blob entirely is unsatisfiable (416).

/// The longest `Range` header value looked at; longer ones are ignored.
const MAX_RANGE_HEADER_LEN: usize = 256;

/// What to serve for a request on a blob of a given size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAnswer {
    /// The whole blob (200): no usable `Range`.
    Full,
    /// Bytes `start..=end` (206).
    Partial {
        /// First byte.
        start: u64,
        /// Last byte (inclusive).
        end: u64,
    },
    /// No byte of the blob is in the range (416).
    Unsatisfiable,
}

/// Decides what a `Range` header value (if any) asks of a blob of `size`
/// bytes.
#[must_use]
pub fn answer(header: Option<&str>, size: u64) -> RangeAnswer {
    let Some(spec) = header
        .filter(|h| h.len() <= MAX_RANGE_HEADER_LEN)
        .and_then(|h| h.trim().strip_prefix("bytes="))
        .map(str::trim)
    else {
        return RangeAnswer::Full;
    };
    if spec.contains(',') {
        return RangeAnswer::Full;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return RangeAnswer::Full;
    };
    let number = |text: &str| -> Option<u64> {
        let text = text.trim();
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        text.parse().ok()
    };
    match (first.trim().is_empty(), last.trim().is_empty()) {
        // `-n`: the last n bytes.
        (true, false) => match number(last) {
            None => RangeAnswer::Full,
            Some(0) => RangeAnswer::Unsatisfiable,
            Some(_) if size == 0 => RangeAnswer::Unsatisfiable,
            Some(n) => RangeAnswer::Partial {
                start: size.saturating_sub(n),
                end: size - 1,
            },
        },
        // `a-`: from a to the end.
        (false, true) => match number(first) {
            None => RangeAnswer::Full,
            Some(start) if start >= size => RangeAnswer::Unsatisfiable,
            Some(start) => RangeAnswer::Partial {
                start,
                end: size - 1,
            },
        },
        // `a-b`.
        (false, false) => match (number(first), number(last)) {
            (Some(start), Some(end)) if start <= end => {
                if start >= size {
                    RangeAnswer::Unsatisfiable
                } else {
                    RangeAnswer::Partial {
                        start,
                        end: end.min(size - 1),
                    }
                }
            }
            _ => RangeAnswer::Full,
        },
        (true, true) => RangeAnswer::Full,
    }
}

#[cfg(test)]
mod tests {
    use super::RangeAnswer::{Full, Partial, Unsatisfiable};
    use super::*;

    #[test]
    fn d2_single_ranges() {
        assert_eq!(answer(None, 100), Full);
        assert_eq!(answer(Some("bytes=0-9"), 100), Partial { start: 0, end: 9 });
        assert_eq!(
            answer(Some("bytes=90-200"), 100),
            Partial { start: 90, end: 99 }
        );
        assert_eq!(
            answer(Some("bytes=10-"), 100),
            Partial { start: 10, end: 99 }
        );
        assert_eq!(
            answer(Some("bytes=-10"), 100),
            Partial { start: 90, end: 99 }
        );
        assert_eq!(
            answer(Some("bytes=-500"), 100),
            Partial { start: 0, end: 99 }
        );
        assert_eq!(answer(Some("bytes=100-"), 100), Unsatisfiable);
        assert_eq!(answer(Some("bytes=100-200"), 100), Unsatisfiable);
        assert_eq!(answer(Some("bytes=-0"), 100), Unsatisfiable);
        assert_eq!(answer(Some("bytes=0-"), 0), Unsatisfiable);
    }

    #[test]
    fn d2_malformed_or_multiple_ranges_are_ignored() {
        for header in [
            "bytes=5-1",
            "bytes=a-b",
            "bytes=-",
            "items=0-1",
            "bytes=0-1,5-6",
            "bytes=+1-2",
            "bytes=99999999999999999999999-",
        ] {
            assert_eq!(answer(Some(header), 100), Full, "{header}");
        }
    }
}
