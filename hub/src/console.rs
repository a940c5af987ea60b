//! The operator console's build (C1, DESIGN §8): where its files come
//! from — `console/dist/` built into the binary, or a directory — which
//! paths name a file of it, and each file's media type.
//!
//! Owns: [`ConsoleAssets`], [`safe_relative`], [`media_type`]. Must not:
//! know HTTP (`api::console` answers requests with these files), or read
//! outside the build directory.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

/// The console's build, embedded at build time (read from disk in debug
/// builds); empty when `console/dist` did not exist.
#[derive(rust_embed::RustEmbed)]
#[folder = "../console/dist"]
#[allow_missing = true]
struct Built;

/// The largest file served from a [`ConsoleAssets::Directory`], in bytes
/// (the build's files are far smaller; anything larger is not the console).
pub const MAX_ASSET_BYTES: u64 = 32 * 1024 * 1024;

/// Where the console's files come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleAssets {
    /// `console/dist/` as built into the binary.
    Built,
    /// A directory holding a console build (`console_dir`).
    Directory(PathBuf),
}

impl ConsoleAssets {
    /// The source `console_dir` selects: that directory, else the build
    /// inside the binary.
    ///
    /// Debug builds without `console_dir` read the source tree's
    /// `console/dist/` at run time: rust-embed's debug mode finds files only
    /// when that directory existed when the hub was compiled, and a hub
    /// compiled before `make console` must still serve the console built
    /// after it.
    #[must_use]
    pub fn configured(console_dir: Option<&Path>) -> Self {
        match console_dir {
            Some(dir) => Self::Directory(dir.to_owned()),
            None if cfg!(debug_assertions) => Self::Directory(source_dist()),
            None => Self::Built,
        }
    }

    /// The bytes of the file at `path` (relative, `/`-separated, already
    /// checked by [`safe_relative`]), if the build has it.
    pub async fn read(&self, path: &str) -> Result<Option<Cow<'static, [u8]>>, std::io::Error> {
        match self {
            Self::Built => Ok(Built::get(path).map(|file| file.data)),
            Self::Directory(dir) => {
                use std::io::ErrorKind::{NotADirectory, NotFound};
                use tokio::io::AsyncReadExt as _;
                let file = match tokio::fs::File::open(dir.join(path)).await {
                    Err(e) if matches!(e.kind(), NotFound | NotADirectory) => return Ok(None),
                    file => file?,
                };
                let meta = file.metadata().await?;
                if !meta.is_file() || meta.len() > MAX_ASSET_BYTES {
                    return Ok(None);
                }
                let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
                file.take(MAX_ASSET_BYTES).read_to_end(&mut bytes).await?;
                Ok(Some(Cow::Owned(bytes)))
            }
        }
    }
}

/// The source tree's console build, `console/dist/` beside the hub crate.
fn source_dist() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../console/dist")
}

/// `path` (the URI path without its leading `/`) as a file path inside the
/// build, or `None` when it could leave it or name a hidden file: empty,
/// `.` or `..` segments, segments starting with `.`, backslashes and NULs
/// are refused.
#[must_use]
pub fn safe_relative(path: &str) -> Option<&str> {
    if path.is_empty() || path.len() > 1024 || path.contains(['\\', '\0']) {
        return None;
    }
    path.split('/')
        .all(|segment| !segment.is_empty() && !segment.starts_with('.'))
        .then_some(path)
}

/// The media type of a console file, by its extension.
#[must_use]
pub fn media_type(path: &str) -> &'static str {
    let extension = path.rsplit_once('.').map_or("", |(_, e)| e);
    match extension.to_ascii_lowercase().as_str() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "txt" => "text/plain; charset=utf-8",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}
