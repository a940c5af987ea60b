//! Device screenshots (D8): each device's latest screenshot, as a PNG file
//! under `<data>/screenshots/{device}.png` with its metadata in the store.
//!
//! Owns: checking that uploaded bytes are a PNG of sane size ([`check_png`]),
//! writing the file durably (temporary file, fsync, rename, directory
//! fsync) and recording its [`Screenshot`] metadata in one batch, and
//! reading both back. Only the latest screenshot per device is kept: a new
//! one replaces the file and the record. Must not: authenticate anyone —
//! the API decides who may upload (the device itself) and who may look
//! (operators who see the device).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use signet_common::digest::Sha256;
use signet_common::ids::DeviceId;

use crate::content::blobs::TempFile;
use crate::identity::new_id;
use crate::store::{Store, StoreError};

/// The store tree of screenshot metadata, keyed by device id.
pub const SCREENSHOTS: &str = "screenshots";
/// The largest screenshot accepted, in bytes (8 MiB: a 1920×1080 PNG of a
/// busy screen is 2 to 4 MiB).
pub const MAX_SCREENSHOT_BYTES: usize = 8 * 1024 * 1024;
/// The widest and tallest screenshot accepted, in pixels.
pub const MAX_SCREENSHOT_SIDE: u32 = 8192;

/// Placing a screenshot file and recording it take turns with other
/// placements (and nothing else): the rename and the record of one upload
/// are never interleaved with another's.
static PLACING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The eight bytes every PNG starts with.
const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];
/// Signature, then the IHDR chunk: length (4), type (4), data (13), CRC (4).
const PNG_HEAD_LEN: usize = 8 + 4 + 4 + 13 + 4;
/// The longest device id used as a file name.
const MAX_DEVICE_ID_LEN: usize = 128;

/// A device's latest screenshot, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Screenshot {
    /// When the hub received it (the hub's clock).
    pub taken_at: DateTime<Utc>,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its width in pixels (from the PNG header).
    pub width: u32,
    /// Its height in pixels (from the PNG header).
    pub height: u32,
    /// SHA-256 of its bytes, lowercase hex.
    #[schema(value_type = String)]
    pub sha256: Sha256,
}

/// Why bytes are not an acceptable PNG.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PngError {
    /// The bytes do not start with the PNG signature.
    #[error("not a PNG: the bytes do not start with the PNG signature")]
    Signature,
    /// The first chunk is not a well-formed IHDR.
    #[error("not a PNG: {0}")]
    Header(&'static str),
    /// Width or height is 0 or above [`MAX_SCREENSHOT_SIDE`].
    #[error(
        "a screenshot is 1 to {MAX_SCREENSHOT_SIDE} pixels wide and high, not {width}×{height}"
    )]
    Dimensions {
        /// The width the header declares.
        width: u32,
        /// The height the header declares.
        height: u32,
    },
}

/// Why storing or reading a screenshot failed (the hub's fault: 500).
#[derive(Debug, thiserror::Error)]
pub enum ScreenshotError {
    /// The device id cannot name a file.
    #[error("device id {0:?} cannot name a screenshot file")]
    DeviceId(String),
    /// The screenshot directory or file failed.
    #[error("screenshot store: {what} {path}: {reason}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// A blocking file task did not finish.
    #[error("screenshot file task: {0}")]
    Task(String),
    /// The metadata could not be stored or read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn io(what: &'static str, path: &Path, e: &std::io::Error) -> ScreenshotError {
    ScreenshotError::Io {
        what,
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

/// Checks that `bytes` start like a PNG with a sane header: the signature,
/// then an IHDR chunk with a valid CRC, a width and height of 1 to
/// [`MAX_SCREENSHOT_SIDE`], a bit depth allowed for its colour type, and
/// the standard compression, filter and interlace methods. Returns
/// (width, height). The image data is not decoded.
///
/// # Errors
/// [`PngError`] saying which part is wrong.
pub fn check_png(bytes: &[u8]) -> Result<(u32, u32), PngError> {
    if bytes.len() < PNG_SIGNATURE.len() || bytes[..8] != PNG_SIGNATURE {
        return Err(PngError::Signature);
    }
    let Some(head) = bytes.get(..PNG_HEAD_LEN) else {
        return Err(PngError::Header("too short for an IHDR chunk"));
    };
    let be32 = |at: usize| u32::from_be_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
    if be32(8) != 13 || &head[12..16] != b"IHDR" {
        return Err(PngError::Header("the first chunk is not a 13-byte IHDR"));
    }
    if crc32(&head[12..29]) != be32(29) {
        return Err(PngError::Header("the IHDR chunk's CRC does not match"));
    }
    let (width, height) = (be32(16), be32(20));
    let (depth, colour) = (head[24], head[25]);
    let depth_ok = match colour {
        0 => matches!(depth, 1 | 2 | 4 | 8 | 16),
        3 => matches!(depth, 1 | 2 | 4 | 8),
        2 | 4 | 6 => matches!(depth, 8 | 16),
        _ => false,
    };
    if !depth_ok {
        return Err(PngError::Header("invalid bit depth or colour type"));
    }
    if head[26] != 0 || head[27] != 0 || head[28] > 1 {
        return Err(PngError::Header(
            "unknown compression, filter or interlace method",
        ));
    }
    if !(1..=MAX_SCREENSHOT_SIDE).contains(&width) || !(1..=MAX_SCREENSHOT_SIDE).contains(&height) {
        return Err(PngError::Dimensions { width, height });
    }
    Ok((width, height))
}

/// CRC-32 (ISO 3309, as PNG uses it) of `bytes`; only ever run over the
/// 17 bytes of an IHDR chunk, so bitwise is fast enough.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffff_u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The screenshot directory of a data directory.
#[derive(Debug, Clone)]
pub struct ScreenshotStore {
    /// `<data>/screenshots`.
    dir: PathBuf,
}

/// A screenshot written and synced to a temporary file, not yet in place;
/// the file is deleted when this is dropped uncommitted.
pub struct StagedScreenshot {
    /// The temporary file.
    temp: TempFile,
    /// The device it belongs to.
    device: DeviceId,
    /// Its metadata, to be recorded when it is committed.
    pub screenshot: Screenshot,
}

impl ScreenshotStore {
    /// The screenshot store of the data directory `data`.
    #[must_use]
    pub fn new(data: &Path) -> Self {
        Self {
            dir: data.join("screenshots"),
        }
    }

    /// Where `device`'s latest screenshot lives (whether or not it exists).
    ///
    /// # Errors
    /// [`ScreenshotError::DeviceId`] when the id is empty, too long, or has
    /// characters other than ASCII letters, digits, `-` and `_`.
    pub fn path_of(&self, device: &DeviceId) -> Result<PathBuf, ScreenshotError> {
        let id = device.as_str();
        if id.is_empty()
            || id.len() > MAX_DEVICE_ID_LEN
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ScreenshotError::DeviceId(id.to_owned()));
        }
        Ok(self.dir.join(format!("{id}.png")))
    }

    /// Writes `png` (already checked with [`check_png`], giving `width` and
    /// `height`) to a temporary file in the screenshot directory and syncs
    /// it; nothing is replaced yet.
    ///
    /// # Errors
    /// [`ScreenshotError`]; no temporary file is left then.
    pub async fn stage(
        &self,
        device: &DeviceId,
        png: axum::body::Bytes,
        (width, height): (u32, u32),
        taken_at: DateTime<Utc>,
    ) -> Result<StagedScreenshot, ScreenshotError> {
        self.path_of(device)?;
        let dir = self.dir.clone();
        let device = device.clone();
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir).map_err(|e| io("create", &dir, &e))?;
            let path = dir.join(format!("{}.tmp", new_id("upload-")));
            let mut file = std::fs::File::create_new(&path).map_err(|e| io("create", &path, &e))?;
            let temp = TempFile(Some(path.clone()));
            file.write_all(&png)
                .and_then(|()| file.sync_all())
                .map_err(|e| io("write", &path, &e))?;
            Ok(StagedScreenshot {
                temp,
                device,
                screenshot: Screenshot {
                    taken_at,
                    bytes: png.len() as u64,
                    width,
                    height,
                    sha256: Sha256::of(&png),
                },
            })
        })
        .await
        .map_err(|e| ScreenshotError::Task(e.to_string()))?
    }

    /// Puts a staged screenshot in place of the device's previous one
    /// (rename, then directory fsync) and records its metadata durably in a
    /// transaction. Screenshot placements take turns ([`PLACING`], which
    /// no other write waits for), so concurrent uploads of one device leave
    /// the file and the record of the same one.
    /// Returns the screenshot it replaced, if any.
    ///
    /// # Errors
    /// [`ScreenshotError`]; the temporary file is gone then. A failure of
    /// the batch after the rename leaves the new file with the old record;
    /// readers hash what they serve, so they never mislabel it.
    pub async fn commit(
        &self,
        store: &Store,
        staged: StagedScreenshot,
    ) -> Result<Option<Screenshot>, ScreenshotError> {
        let StagedScreenshot {
            mut temp,
            device,
            screenshot,
        } = staged;
        let Some(from) = temp.0.take() else {
            return Err(ScreenshotError::Task(
                "staged screenshot without a file".into(),
            ));
        };
        let target = self.path_of(&device)?;
        let dir = self.dir.clone();
        let _placing = PLACING.lock().await;
        tokio::task::spawn_blocking(move || {
            let mut guard = TempFile(Some(from.clone()));
            std::fs::rename(&from, &target).map_err(|e| io("rename", &from, &e))?;
            guard.0 = None;
            crate::keys::sync_dir(&dir).map_err(|e| ScreenshotError::Io {
                what: "sync",
                path: dir.clone(),
                reason: e.to_string(),
            })
        })
        .await
        .map_err(|e| ScreenshotError::Task(e.to_string()))??;
        let previous = store
            .transact(|tx| {
                let previous = tx.get::<Screenshot>(SCREENSHOTS, device.as_str())?;
                tx.put(SCREENSHOTS, device.as_str(), &screenshot)?;
                Ok::<_, StoreError>(previous)
            })
            .await?;
        Ok(previous)
    }

    /// `device`'s latest screenshot: its metadata and its bytes, or `None`
    /// when it has none. The bytes are read whole (they are at most
    /// [`MAX_SCREENSHOT_BYTES`]) and the returned `sha256`, `bytes`, `width`
    /// and `height` are those of what was read.
    ///
    /// # Errors
    /// [`ScreenshotError`] when the store or the file fails.
    pub async fn latest(
        &self,
        store: &Store,
        device: &DeviceId,
    ) -> Result<Option<(Screenshot, Vec<u8>)>, ScreenshotError> {
        let Some(mut screenshot) = store.get::<Screenshot>(SCREENSHOTS, device.as_str())? else {
            return Ok(None);
        };
        let path = self.path_of(device)?;
        let read = tokio::task::spawn_blocking(move || {
            let limit = MAX_SCREENSHOT_BYTES as u64 + 1;
            let mut bytes = Vec::new();
            match std::fs::File::open(&path) {
                Ok(file) => {
                    std::io::Read::read_to_end(&mut std::io::Read::take(file, limit), &mut bytes)
                        .map_err(|e| io("read", &path, &e))?;
                    Ok(Some((Sha256::of(&bytes), bytes)))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(io("open", &path, &e)),
            }
        })
        .await
        .map_err(|e| ScreenshotError::Task(e.to_string()))??;
        let Some((sha256, bytes)) = read else {
            return Ok(None);
        };
        screenshot.sha256 = sha256;
        screenshot.bytes = bytes.len() as u64;
        if let Ok((width, height)) = check_png(&bytes) {
            (screenshot.width, screenshot.height) = (width, height);
        }
        Ok(Some((screenshot, bytes)))
    }
}

/// The metadata of `device`'s latest screenshot, if it has one (for views
/// that show when it was taken without reading the file).
///
/// # Errors
/// When the store fails.
pub fn latest_metadata(store: &Store, device: &DeviceId) -> Result<Option<Screenshot>, StoreError> {
    store.get(SCREENSHOTS, device.as_str())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A real 1×1 RGB PNG (signature, IHDR, IDAT, IEND).
    const ONE_PIXEL: [u8; 69] = [
        0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44,
        0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90,
        0x77, 0x53, 0xde, 0x00, 0x00, 0x00, 0x0c, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8,
        0xcf, 0xc0, 0x00, 0x00, 0x03, 0x01, 0x01, 0x00, 0xc9, 0xfe, 0x92, 0xef, 0x00, 0x00, 0x00,
        0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
    ];

    /// `ONE_PIXEL` with another width and height and a recomputed CRC.
    fn sized(width: u32, height: u32) -> Vec<u8> {
        let mut png = ONE_PIXEL.to_vec();
        png[16..20].copy_from_slice(&width.to_be_bytes());
        png[20..24].copy_from_slice(&height.to_be_bytes());
        let crc = crc32(&png[12..29]);
        png[29..33].copy_from_slice(&crc.to_be_bytes());
        png
    }

    /// D8: a real PNG passes with its dimensions; the CRC function agrees
    /// with the one that wrote the PNG.
    #[test]
    fn d8_a_real_png_passes() {
        assert_eq!(check_png(&ONE_PIXEL), Ok((1, 1)));
        assert_eq!(check_png(&sized(8192, 4320)), Ok((8192, 4320)));
    }

    /// D8: anything but a sane PNG header is refused, saying why.
    #[test]
    fn d8_bad_headers_are_refused() {
        assert_eq!(check_png(b"GIF89a"), Err(PngError::Signature));
        assert_eq!(check_png(&[]), Err(PngError::Signature));
        assert!(matches!(
            check_png(&ONE_PIXEL[..20]),
            Err(PngError::Header(_))
        ));
        let mut bad_crc = ONE_PIXEL;
        bad_crc[30] ^= 1;
        assert!(matches!(check_png(&bad_crc), Err(PngError::Header(_))));
        assert_eq!(
            check_png(&sized(0, 1)),
            Err(PngError::Dimensions {
                width: 0,
                height: 1
            })
        );
        assert_eq!(
            check_png(&sized(1, 8193)),
            Err(PngError::Dimensions {
                width: 1,
                height: 8193
            })
        );
        let mut depth = sized(1, 1);
        depth[24] = 3; // RGB at 3 bits is not a PNG
        let crc = crc32(&depth[12..29]);
        depth[29..33].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(check_png(&depth), Err(PngError::Header(_))));
    }

    /// Device ids that could leave the directory never name a file.
    #[test]
    fn d8_device_ids_are_safe_file_names() {
        let store = ScreenshotStore::new(Path::new("/data"));
        assert_eq!(
            store.path_of(&DeviceId::from("d-0123abcd")).unwrap(),
            PathBuf::from("/data/screenshots/d-0123abcd.png")
        );
        for bad in ["", "../x", "a/b", "d.png", &"d".repeat(129)] {
            assert!(store.path_of(&DeviceId::from(bad)).is_err(), "{bad:?}");
        }
    }
}
