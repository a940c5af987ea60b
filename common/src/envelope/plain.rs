//! The envelope's fast path: the contract object exactly as signers write
//! it — four string fields without escapes, in any order, JSON whitespace
//! around them — split with a byte search instead of a JSON parser, so the
//! payload's base64 text is scanned once for its closing quote and then
//! decoded (issue 20: envelope verification next to raw Ed25519).
//!
//! Owns: nothing but speed. [`open`] answers `None` for anything it does
//! not take whole (an escape, another value type, an unknown, missing or
//! repeated field, a field that does not decode); [`super::open`] then
//! parses with `serde_json` as before, which accepts or refuses it with its
//! own error. Whatever this path accepts, the JSON parser accepts with the
//! same fields: every value must still pass the same decoding (a kind name,
//! 16 hex digits, base64), none of which admits a backslash, a quote or a
//! control character.

use super::{DocumentKind, KeyId, Opened};

/// The fields, in the order [`open`] holds their values.
const FIELDS: [&[u8]; 4] = [b"kind", b"key_id", b"payload", b"sig"];

/// The envelope in `bytes` (already within the size bound), when it is in
/// the plain form; `None` to leave it to the JSON parser.
pub(super) fn open(bytes: &[u8]) -> Option<Opened> {
    let mut at = skip_ws(bytes, 0);
    if bytes.get(at) != Some(&b'{') {
        return None;
    }
    at += 1;
    let mut values: [Option<&[u8]>; 4] = [None; 4];
    loop {
        let (key, next) = string(bytes, skip_ws(bytes, at))?;
        at = skip_ws(bytes, next);
        if bytes.get(at) != Some(&b':') {
            return None;
        }
        let (value, next) = string(bytes, skip_ws(bytes, at + 1))?;
        let slot = FIELDS.iter().position(|field| *field == key)?;
        if values[slot].replace(value).is_some() {
            return None;
        }
        at = skip_ws(bytes, next);
        match bytes.get(at) {
            Some(b',') => at += 1,
            Some(b'}') => break,
            _ => return None,
        }
    }
    if skip_ws(bytes, at + 1) != bytes.len() {
        return None;
    }
    let [Some(kind), Some(key_id), Some(payload), Some(sig)] = values else {
        return None;
    };
    let kind = DocumentKind::from_bytes(kind)?;
    let key_id = KeyId::parse_bytes(key_id)?;
    let signature = super::decode_signature(sig).ok()?;
    let message = super::decode_message(kind, payload).ok()?;
    Some(Opened {
        kind,
        key_id,
        message,
        signature,
    })
}

/// The first index at or after `at` that is not JSON whitespace.
fn skip_ws(bytes: &[u8], mut at: usize) -> usize {
    while bytes
        .get(at)
        .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
    {
        at += 1;
    }
    at
}

/// The bytes of the string starting at `at` (its opening quote) up to the
/// next quote, and the index after that quote. An escaped quote ends it
/// early; the backslash before it then fails every field's decoding.
fn string(bytes: &[u8], at: usize) -> Option<(&[u8], usize)> {
    if bytes.get(at) != Some(&b'"') {
        return None;
    }
    let start = at + 1;
    let len = memchr::memchr(b'"', bytes.get(start..)?)?;
    Some((&bytes[start..start + len], start + len + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::SigningKey;

    /// The fast path opens what signers write, exactly as the JSON parser
    /// does, and leaves everything else to it.
    #[test]
    fn s1_plain_path_agrees_with_the_json_parser() {
        let key = SigningKey::from_pkcs8(&SigningKey::generate_pkcs8().unwrap()).unwrap();
        let signed = super::super::sign(DocumentKind::HubTime, br#"{"a":1}"#, &key);
        let fast = open(&signed).expect("the signer's form takes the fast path");
        let text = String::from_utf8(signed.clone()).unwrap();
        let spaced = text
            .replace(',', " ,\n\t")
            .replace(':', " : ")
            .replace('{', " {\r\n");
        let reordered = {
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            format!(
                r#"{{"sig":{},"payload":{},"key_id":{},"kind":{}}}"#,
                v["sig"], v["payload"], v["key_id"], v["kind"]
            )
        };
        for form in [spaced.as_str(), reordered.as_str()] {
            let opened = open(form.as_bytes()).expect(form);
            assert_eq!(opened.message, fast.message);
            assert_eq!(opened.signature, fast.signature);
            assert_eq!((opened.kind, opened.key_id), (fast.kind, fast.key_id));
        }
        // Escapes, repeats, unknown or missing fields, other value types,
        // trailing bytes: left to the JSON parser.
        let escaped = text.replacen("hub_time", r"hub\u005ftime", 1);
        let repeated = text.replacen('{', r#"{"kind":"hub_time","#, 1);
        let unknown = text.replacen('{', r#"{"x":"y","#, 1);
        let missing = reordered.replacen(r#","kind":"hub_time""#, "", 1);
        let number = text.replacen(r#""kind":"hub_time""#, r#""kind":1"#, 1);
        let trailing = format!("{text} x");
        let unclosed = text.trim_end_matches('}').to_owned();
        for form in [
            &escaped, &repeated, &unknown, &missing, &number, &trailing, &unclosed,
        ] {
            assert!(open(form.as_bytes()).is_none(), "{form}");
        }
        // The escaped form is valid JSON: the parser still opens it.
        let parsed = super::super::open(escaped.as_bytes()).unwrap();
        assert_eq!(parsed.message, fast.message);
        for form in [&repeated, &unknown, &missing, &number, &trailing, &unclosed] {
            assert!(super::super::open(form.as_bytes()).is_err(), "{form}");
        }
    }
}
