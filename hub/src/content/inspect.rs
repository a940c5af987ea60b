//! Upload checks before anything decodes a file (S13): an image's pixel
//! count read from its header, and the container structure of images, RIFF
//! files, MP4 and Matroska walked as far as their headers tell, so a file
//! cut short or with lying lengths is refused at upload instead of stored
//! as valid media.
//!
//! Owns: [`inspect`]. Reads the staged file with seeks and small reads only
//! (never the whole file in memory); blocking, so callers run it in
//! `spawn_blocking`. Must not: decode pixels or samples (the discoverer in
//! [`super::media`] reads metadata afterwards, from files that passed).
//! Ogg and MPEG audio have no cheap whole-file check and pass unexamined.

use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::Path;

/// Why an upload was refused.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// The header names more pixels than allowed.
    #[error("the image is {width} × {height} pixels, more than the {limit} allowed")]
    TooManyPixels {
        /// Width from the header.
        width: u64,
        /// Height from the header.
        height: u64,
        /// `max_image_pixels`.
        limit: u64,
    },
    /// The structure is incomplete or inconsistent.
    #[error("the {media_type} file cannot be read: {reason}")]
    Unreadable {
        /// The detected media type.
        media_type: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The staged file could not be read.
    #[error("reading the upload: {0}")]
    Io(String),
}

/// A reader over the staged file that knows its length.
struct Walk {
    /// The file, buffered.
    file: BufReader<File>,
    /// Its length in bytes.
    len: u64,
}

/// A structural fault (turned into [`InspectError::Unreadable`]).
type Fault = String;

impl Walk {
    fn pos(&mut self) -> Result<u64, Fault> {
        self.file.stream_position().map_err(|e| e.to_string())
    }

    fn read<const N: usize>(&mut self) -> Result<[u8; N], Fault> {
        let mut bytes = [0u8; N];
        self.file
            .read_exact(&mut bytes)
            .map_err(|_| "the file ends early (truncated)".to_owned())?;
        Ok(bytes)
    }

    fn byte(&mut self) -> Result<u8, Fault> {
        Ok(self.read::<1>()?[0])
    }

    /// Skips `n` bytes that must lie inside the file.
    fn skip(&mut self, n: u64) -> Result<(), Fault> {
        let at = self.pos()?;
        if at.checked_add(n).is_none_or(|end| end > self.len) {
            return Err(format!(
                "a part of {n} bytes at offset {at} runs past the end of the {}-byte file (truncated)",
                self.len
            ));
        }
        let n = i64::try_from(n).map_err(|e| e.to_string())?;
        self.file.seek_relative(n).map_err(|e| e.to_string())
    }
}

/// Checks the staged file at `path` of the detected `media_type`: images
/// (PNG, JPEG, GIF, WebP) must have at most `max_pixels` pixels by their
/// header, and every format with a container walk must be whole.
///
/// # Errors
/// [`InspectError`] saying why the file is refused.
pub fn inspect(path: &Path, media_type: &'static str, max_pixels: u64) -> Result<(), InspectError> {
    let is_image = matches!(
        media_type,
        "image/png" | "image/jpeg" | "image/gif" | "image/webp"
    );
    let unreadable = |reason: String| InspectError::Unreadable { media_type, reason };
    if is_image {
        let size =
            imagesize::size(path).map_err(|e| unreadable(format!("no image header: {e}")))?;
        let (width, height) = (size.width as u64, size.height as u64);
        if width == 0 || height == 0 {
            return Err(unreadable("the header says it has no pixels".into()));
        }
        if width.saturating_mul(height) > max_pixels {
            return Err(InspectError::TooManyPixels {
                width,
                height,
                limit: max_pixels,
            });
        }
    }
    let file = File::open(path).map_err(|e| InspectError::Io(e.to_string()))?;
    let len = file
        .metadata()
        .map_err(|e| InspectError::Io(e.to_string()))?
        .len();
    let mut walk = Walk {
        file: BufReader::new(file),
        len,
    };
    match media_type {
        "image/png" => png(&mut walk),
        "image/jpeg" => jpeg(&mut walk),
        "image/gif" => gif(&mut walk),
        "image/webp" => riff(&mut walk, &[b"VP8 ", b"VP8L", b"VP8X"]),
        "audio/wav" => riff(&mut walk, &[b"fmt "]),
        "video/mp4" | "audio/mp4" => mp4(&mut walk),
        "video/webm" | "video/x-matroska" => matroska(&mut walk),
        _ => Ok(()),
    }
    .map_err(unreadable)
}

/// PNG: the signature, IHDR first, chunks whose lengths fit the file, at
/// least one IDAT, and IEND.
fn png(walk: &mut Walk) -> Result<(), Fault> {
    walk.skip(8)?;
    let mut first = true;
    let mut data = false;
    loop {
        let header = walk.read::<8>()?;
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let kind = &header[4..8];
        if len > 0x7fff_ffff {
            return Err(format!("a chunk claims {len} bytes"));
        }
        if first && (kind != b"IHDR" || len != 13) {
            return Err("the first chunk is not a 13-byte IHDR".into());
        }
        first = false;
        data |= kind == b"IDAT";
        walk.skip(u64::from(len) + 4)?;
        if kind == b"IEND" {
            return if data {
                Ok(())
            } else {
                Err("no image data (IDAT) before IEND".into())
            };
        }
    }
}

/// JPEG: SOI, segments whose lengths fit the file, a frame header (SOF)
/// before the first scan, entropy-coded data, and EOI.
fn jpeg(walk: &mut Walk) -> Result<(), Fault> {
    if walk.read::<2>()? != [0xff, 0xd8] {
        return Err("no start-of-image marker".into());
    }
    let mut frame = false;
    let mut marker = next_marker(walk)?;
    loop {
        match marker {
            0xd9 => {
                return if frame {
                    Ok(())
                } else {
                    Err("no frame header (SOF) before the end".into())
                };
            }
            0x01 | 0xd0..=0xd7 => marker = next_marker(walk)?,
            0xd8 => return Err("a second start-of-image marker".into()),
            _ => {
                let len = u16::from_be_bytes(walk.read::<2>()?);
                if len < 2 {
                    return Err(format!("a segment of length {len}"));
                }
                if matches!(marker, 0xc0..=0xcf) && !matches!(marker, 0xc4 | 0xc8 | 0xcc) {
                    frame = true;
                }
                walk.skip(u64::from(len) - 2)?;
                if marker == 0xda {
                    if !frame {
                        return Err("a scan before the frame header (SOF)".into());
                    }
                    marker = after_scan(walk)?;
                } else {
                    marker = next_marker(walk)?;
                }
            }
        }
    }
}

/// The marker code after fill bytes at the current position.
fn next_marker(walk: &mut Walk) -> Result<u8, Fault> {
    if walk.byte()? != 0xff {
        return Err("expected a marker".into());
    }
    loop {
        match walk.byte()? {
            0xff => {}
            code => return Ok(code),
        }
    }
}

/// Skips entropy-coded data to the next marker that is not a restart or a
/// stuffed byte; returns its code.
fn after_scan(walk: &mut Walk) -> Result<u8, Fault> {
    loop {
        if walk.byte()? != 0xff {
            continue;
        }
        let mut code = walk.byte()?;
        while code == 0xff {
            code = walk.byte()?;
        }
        if code != 0x00 && !(0xd0..=0xd7).contains(&code) {
            return Ok(code);
        }
    }
}

/// GIF: header, logical screen, color table, then extensions and images
/// made of length-prefixed sub-blocks, at least one image, and the trailer.
fn gif(walk: &mut Walk) -> Result<(), Fault> {
    let screen = walk.read::<13>()?;
    if screen[10] & 0x80 != 0 {
        walk.skip(3 << ((screen[10] & 7) + 1))?;
    }
    let mut images = 0_u32;
    loop {
        match walk.byte()? {
            0x21 => {
                walk.byte()?;
                sub_blocks(walk)?;
            }
            0x2c => {
                let descriptor = walk.read::<9>()?;
                if descriptor[8] & 0x80 != 0 {
                    walk.skip(3 << ((descriptor[8] & 7) + 1))?;
                }
                walk.byte()?;
                sub_blocks(walk)?;
                images += 1;
            }
            0x3b => {
                return if images > 0 {
                    Ok(())
                } else {
                    Err("no image before the trailer".into())
                };
            }
            other => return Err(format!("an unknown block 0x{other:02x}")),
        }
    }
}

fn sub_blocks(walk: &mut Walk) -> Result<(), Fault> {
    loop {
        match walk.byte()? {
            0 => return Ok(()),
            len => walk.skip(u64::from(len))?,
        }
    }
}

/// RIFF (WebP, WAV): the RIFF size fits the file, and the chunks inside it
/// fit the RIFF size; the first chunk is one of `first`.
fn riff(walk: &mut Walk, first: &[&[u8; 4]]) -> Result<(), Fault> {
    let header = walk.read::<12>()?;
    let size = u64::from(u32::from_le_bytes([
        header[4], header[5], header[6], header[7],
    ]));
    let end = size + 8;
    if end > walk.len {
        return Err(format!(
            "the RIFF header claims {end} bytes, the file has {} (truncated)",
            walk.len
        ));
    }
    let mut chunks = 0_u32;
    while walk.pos()? + 8 <= end {
        let chunk = walk.read::<8>()?;
        if chunks == 0 && !first.iter().any(|f| chunk[..4] == f[..]) {
            return Err("an unexpected first chunk".into());
        }
        let len = u64::from(u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]));
        let padded = len + (len & 1);
        if walk.pos()? + len > end {
            return Err("a chunk runs past the RIFF size (truncated)".into());
        }
        let left = end - walk.pos()?;
        walk.skip(padded.min(left))?;
        chunks += 1;
    }
    if chunks == 0 {
        return Err("no chunks".into());
    }
    Ok(())
}

/// MP4 (ISO BMFF): top-level boxes that tile the file exactly, with a
/// `moov` box.
fn mp4(walk: &mut Walk) -> Result<(), Fault> {
    let mut movie = false;
    while walk.pos()? < walk.len {
        let at = walk.pos()?;
        let header = walk.read::<8>()?;
        let kind = [header[4], header[5], header[6], header[7]];
        movie |= &kind == b"moov";
        let size = match u32::from_be_bytes([header[0], header[1], header[2], header[3]]) {
            0 => walk.len - at,
            1 => u64::from_be_bytes(walk.read::<8>()?),
            size => u64::from(size),
        };
        let consumed = walk.pos()? - at;
        if size < consumed {
            return Err(format!("a box of {size} bytes at offset {at}"));
        }
        walk.skip(size - consumed)?;
    }
    if movie {
        Ok(())
    } else {
        Err("no movie header (moov)".into())
    }
}

/// An EBML variable-size integer: (value, whether it is "unknown").
fn vint(walk: &mut Walk) -> Result<(u64, bool), Fault> {
    let first = walk.byte()?;
    let extra = first.leading_zeros();
    if extra > 7 {
        return Err("an invalid element size".into());
    }
    let mask = 0xff_u64 >> (extra + 1);
    let mut value = u64::from(first) & mask;
    let mut all_ones = value == mask;
    for _ in 0..extra {
        let byte = walk.byte()?;
        all_ones &= byte == 0xff;
        value = (value << 8) | u64::from(byte);
    }
    Ok((value, all_ones))
}

/// Matroska / WebM: the EBML header fits, a Segment follows, and a Segment
/// of known size fits the file.
fn matroska(walk: &mut Walk) -> Result<(), Fault> {
    walk.skip(4)?;
    let (header, _) = vint(walk)?;
    walk.skip(header)?;
    if walk.read::<4>()? != [0x18, 0x53, 0x80, 0x67] {
        return Err("no Segment after the EBML header".into());
    }
    let (size, unknown) = vint(walk)?;
    if !unknown {
        walk.skip(size)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A structurally valid PNG of `width` × `height` (IDAT not decoded).
    fn png(width: u32, height: u32) -> Vec<u8> {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        png.extend(width.to_be_bytes());
        png.extend(height.to_be_bytes());
        png.extend([8, 2, 0, 0, 0, 0, 0, 0, 0]);
        png.extend(b"\0\0\0\x02IDAT\x78\x9c\0\0\0\0");
        png.extend(b"\0\0\0\0IEND\xae\x42\x60\x82");
        png
    }

    fn check(bytes: &[u8], media_type: &'static str) -> Result<(), InspectError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, bytes).unwrap();
        inspect(&path, media_type, 64_000_000)
    }

    /// S13, DESIGN §7: no panic on any input: every prefix of whole files
    /// and pseudo-random bytes behind each magic number, for every type.
    #[test]
    fn s13_never_panics_on_input() {
        let types = [
            "image/png",
            "image/jpeg",
            "image/gif",
            "image/webp",
            "audio/wav",
            "video/mp4",
            "audio/mp4",
            "video/webm",
            "video/x-matroska",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut random = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed.to_le_bytes()[0]
                })
                .collect()
        };
        let mut inputs = vec![png(64, 36)];
        for magic in [
            &b"\x89PNG\r\n\x1a\n"[..],
            b"\xff\xd8\xff",
            b"GIF89a",
            b"RIFF\0\0\0\0WEBP",
            b"\0\0\0\x10ftyp",
            b"\x1a\x45\xdf\xa3",
        ] {
            for len in [0, 1, 7, 40, 300] {
                inputs.push([magic, &random(len)[..]].concat());
            }
        }
        inputs.push([&b"\x1a\x45\xdf\xa3\x01"[..], &[0xff; 12]].concat());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        for input in &inputs {
            for cut in 0..=input.len().min(64) {
                std::fs::write(&path, &input[..cut]).unwrap();
                for media_type in types {
                    let _ = inspect(&path, media_type, 64_000_000);
                }
            }
        }
    }

    #[test]
    fn s13_pixel_limit_and_truncation() {
        assert!(check(&png(64, 36), "image/png").is_ok());
        assert!(matches!(
            check(&png(46_000, 46_000), "image/png"),
            Err(InspectError::TooManyPixels { .. })
        ));
        let whole = png(64, 36);
        for cut in [20, 33, 40, whole.len() - 1] {
            assert!(check(&whole[..cut], "image/png").is_err(), "cut at {cut}");
        }
        let jpeg = [
            &[0xff, 0xd8, 0xff, 0xc0, 0, 11, 8, 0, 1, 0, 1, 1, 1, 0x11, 0][..],
            &[
                0xff, 0xda, 0, 8, 1, 1, 0, 0, 0x3f, 0, 0x12, 0xff, 0x00, 0x34, 0xff, 0xd9,
            ],
        ]
        .concat();
        assert!(check(&jpeg, "image/jpeg").is_ok());
        assert!(check(&jpeg[..jpeg.len() - 2], "image/jpeg").is_err());
        let gif = b"GIF89a\x01\0\x01\0\0\0\0\x2c\0\0\0\0\x01\0\x01\0\0\x02\x02\x4c\x01\0\x3b";
        assert!(check(gif, "image/gif").is_ok());
        assert!(check(&gif[..gif.len() - 1], "image/gif").is_err());
        let mut mp4 = b"\0\0\0\x10ftypisom\0\0\0\0\0\0\0\x08moov".to_vec();
        assert!(check(&mp4, "video/mp4").is_ok());
        mp4.extend(b"\0\0\x10\0mdat1234");
        assert!(check(&mp4, "video/mp4").is_err());
    }
}
