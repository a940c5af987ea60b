//! The operator console (C1, DESIGN §8): the built single-page application
//! from `console/dist/`, served at `/`.
//!
//! Owns: answering `GET`/`HEAD` for every path outside `/api/` that no API
//! route takes — a file of the build, else `index.html` (HTML5 history
//! routes: `/devices/d-1` is the console's page, not the hub's), with the
//! console's caching and security headers; and the one page that says how
//! to build the console when the hub was built without it. Must not: answer
//! anything under `/api/` (unknown API paths keep their JSON 404), read
//! outside the build directory, or authorize anything — the console calls
//! the JSON API, which does.
//!
//! # Where the files come from
//! [`ConsoleAssets::Built`]: `console/dist/` embedded into the binary by
//! `rust-embed` at build time (release builds; debug builds read the same
//! directory from disk, so a rebuilt console needs no rebuilt hub), or
//! [`ConsoleAssets::Directory`]: the directory `console_dir` names (a
//! console developer's fresh build, tests).
//!
//! # Headers
//! Hashed files under `/assets/` are cached for a year, immutable;
//! everything else (`index.html` above all) is `no-cache`, so a new hub
//! serves its new console at once. Every console answer carries
//! [`CONTENT_SECURITY_POLICY`] (same origin only: no CDN, no inline
//! script), `X-Content-Type-Options: nosniff`, `Referrer-Policy:
//! same-origin` and `X-Frame-Options: DENY`.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse as _, Response};

use super::{ApiError, AppState};

/// The console's build, embedded at build time (read from disk in debug
/// builds); empty when `console/dist` did not exist.
#[derive(rust_embed::RustEmbed)]
#[folder = "../console/dist"]
#[allow_missing = true]
struct Built;

/// The console's Content-Security-Policy: scripts, styles, images, fonts
/// and connections (the API, server-sent events) from the hub's own origin
/// only; no plugins, no framing, no `<base>` rewriting. Inline `style`
/// attributes are allowed (`style-src-attr`: Svelte's templates and the
/// virtualized fleet list position elements with them); inline `<style>`
/// and `<script>` elements are not. `data:` and `blob:` images are the
/// console's own (icons, upload previews).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; style-src-attr 'unsafe-inline'; img-src 'self' data: blob:; \
     font-src 'self' data:; connect-src 'self'; media-src 'self' blob:; object-src 'none'; \
     base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

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
    async fn read(&self, path: &str) -> Result<Option<Cow<'static, [u8]>>, std::io::Error> {
        match self {
            Self::Built => Ok(Built::get(path).map(|file| file.data)),
            Self::Directory(dir) => {
                let full = dir.join(path);
                let file = match tokio::fs::File::open(&full).await {
                    Ok(file) => file,
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                        ) =>
                    {
                        return Ok(None);
                    }
                    Err(e) => return Err(e),
                };
                let meta = file.metadata().await?;
                if !meta.is_file() || meta.len() > MAX_ASSET_BYTES {
                    return Ok(None);
                }
                let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
                use tokio::io::AsyncReadExt as _;
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
fn safe_relative(path: &str) -> Option<&str> {
    if path.is_empty() || path.len() > 1024 || path.contains(['\\', '\0']) {
        return None;
    }
    path.split('/')
        .all(|segment| !segment.is_empty() && !segment.starts_with('.'))
        .then_some(path)
}

/// The media type of a console file, by its extension.
fn media_type(path: &str) -> &'static str {
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

/// Hashed build output: its name changes with its content.
const IMMUTABLE_PREFIX: &str = "assets/";

/// The page served in place of the console when the hub has no build.
const PLACEHOLDER: &str = "<!doctype html>
<html lang=\"en\">
<head><meta charset=\"utf-8\"><title>Signet hub: console not built</title></head>
<body>
<h1>Signet hub</h1>
<p>This hub was built without its operator console.</p>
<p>Build it from the source tree with <code>make console</code>
(<code>cd console &amp;&amp; npm ci &amp;&amp; npm run build</code>, output in
<code>console/dist/</code>), then build the hub again; or point the hub's
<code>console_dir</code> setting at a console build.</p>
<p>The HTTP API answers under <a href=\"/api/v1/openapi.json\">/api/v1</a>;
its interactive documentation is at <a href=\"/api/docs/\">/api/docs</a>.</p>
</body>
</html>
";

/// The router's fallback: the console for `GET`/`HEAD` outside `/api/`,
/// the JSON 404 (or 405) for anything else.
pub async fn serve_console(State(state): State<AppState>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    if path == "/api" || path.starts_with("/api/") {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no such route: {method} {path}"),
        )
        .into_response();
    }
    if method != Method::GET && method != Method::HEAD {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no such route: {method} {path}"),
        )
        .into_response();
    }
    let assets = ConsoleAssets::configured(state.config.console_dir.as_deref());
    let answer = match answer(&assets, &path).await {
        Ok(answer) => answer,
        Err(e) => return ApiError::internal(&format!("console file {path}: {e}")).into_response(),
    };
    let mut response = match answer {
        Answer::File { bytes, path } => {
            let cache = if path.starts_with(IMMUTABLE_PREFIX) {
                "public, max-age=31536000, immutable"
            } else {
                "no-cache"
            };
            file_response(bytes, media_type(&path), cache)
        }
        Answer::Missing => ApiError::not_found("console file").into_response(),
        Answer::Placeholder => file_response(
            Cow::Borrowed(PLACEHOLDER.as_bytes()),
            "text/html; charset=utf-8",
            "no-cache",
        ),
    };
    add_security_headers(&mut response);
    if method == Method::HEAD {
        *response.body_mut() = Body::empty();
    }
    response
}

/// What a console path answers.
enum Answer {
    /// A file of the build (`path` relative to it).
    File {
        /// Its bytes.
        bytes: Cow<'static, [u8]>,
        /// Its path inside the build.
        path: String,
    },
    /// A hashed asset the build does not have: 404, never `index.html`
    /// (the browser would take HTML for a script or style sheet).
    Missing,
    /// No console build at all.
    Placeholder,
}

/// The file for `path`, else `index.html` (history routes), else the
/// placeholder.
async fn answer(assets: &ConsoleAssets, path: &str) -> Result<Answer, std::io::Error> {
    let relative = path.trim_start_matches('/');
    if let Some(file) = safe_relative(relative)
        && let Some(bytes) = assets.read(file).await?
    {
        return Ok(Answer::File {
            bytes,
            path: file.to_owned(),
        });
    }
    if relative.starts_with(IMMUTABLE_PREFIX) {
        return Ok(Answer::Missing);
    }
    Ok(match assets.read("index.html").await? {
        Some(bytes) => Answer::File {
            bytes,
            path: "index.html".to_owned(),
        },
        None => Answer::Placeholder,
    })
}

fn file_response(
    bytes: Cow<'static, [u8]>,
    media_type: &'static str,
    cache: &'static str,
) -> Response {
    let mut response = (StatusCode::OK, Body::from(bytes)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

/// The console's security headers (see the module doc).
fn add_security_headers(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

#[cfg(test)]
mod tests {
    use super::{ConsoleAssets, media_type, safe_relative};

    /// C1: no console path leaves the build directory or names a hidden file.
    #[test]
    fn c1_paths_stay_inside_the_build() {
        for bad in [
            "",
            "..",
            "../etc/passwd",
            "assets/../../x",
            "a//b",
            ".env",
            "assets/.hidden",
            "a\\b",
            "a\0b",
        ] {
            assert_eq!(safe_relative(bad), None, "{bad:?}");
        }
        assert_eq!(
            safe_relative("assets/index-abc.js"),
            Some("assets/index-abc.js")
        );
        assert_eq!(safe_relative("favicon.svg"), Some("favicon.svg"));
        assert_eq!(media_type("assets/x.JS"), "text/javascript; charset=utf-8");
        assert_eq!(media_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(media_type("blob"), "application/octet-stream");
    }

    /// C1: a debug hub reads the source tree's console build at run time,
    /// whether or not it existed when the hub was compiled; `console_dir`
    /// wins over it.
    #[test]
    fn c1_debug_builds_serve_the_console_built_after_them() {
        let expected = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../console/dist");
        assert_eq!(
            ConsoleAssets::configured(None),
            if cfg!(debug_assertions) {
                ConsoleAssets::Directory(expected)
            } else {
                ConsoleAssets::Built
            }
        );
        let chosen = std::path::Path::new("/srv/console");
        assert_eq!(
            ConsoleAssets::configured(Some(chosen)),
            ConsoleAssets::Directory(chosen.to_owned())
        );
    }
}
