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
//! [`ConsoleAssets`] ([`crate::console`]): `console/dist/` built into the
//! binary (release builds), or read from a directory (`console_dir`; debug
//! builds).
//!
//! # Headers
//! Hashed files under `/assets/` are cached for a year, immutable;
//! everything else (`index.html` above all) is `no-cache`, so a new hub
//! serves its new console at once. Every console answer carries
//! [`CONTENT_SECURITY_POLICY`] (same origin only: no CDN, no inline
//! script), `X-Content-Type-Options: nosniff`, `Referrer-Policy:
//! same-origin` and `X-Frame-Options: DENY` — except the self-signup page
//! of a group that takes self-signups, which any site may frame
//! ([`EMBEDDABLE_CONTENT_SECURITY_POLICY`], L6).

use std::borrow::Cow;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse as _, Response};

use super::{ApiError, AppState};
pub use crate::console::{ConsoleAssets, MAX_ASSET_BYTES, media_type, safe_relative};

/// The console's policy with `frame-ancestors` set to `$ancestors`.
macro_rules! csp {
    ($ancestors:literal) => {
        concat!(
            "default-src 'self'; script-src 'self'; \
             style-src 'self'; style-src-attr 'unsafe-inline'; img-src 'self' data: blob:; \
             font-src 'self' data:; connect-src 'self'; media-src 'self' blob:; object-src 'none'; \
             base-uri 'self'; form-action 'self'; frame-ancestors ",
            $ancestors
        )
    };
}

/// The console's Content-Security-Policy: scripts, styles, images, fonts
/// and connections (the API, server-sent events) from the hub's own origin
/// only; no plugins, no framing, no `<base>` rewriting. Inline `style`
/// attributes are allowed (`style-src-attr`: Svelte's templates and the
/// virtualized fleet list position elements with them); inline `<style>`
/// and `<script>` elements are not. `data:` and `blob:` images are the
/// console's own (icons, upload previews).
pub const CONTENT_SECURITY_POLICY: &str = csp!("'none'");

/// [`CONTENT_SECURITY_POLICY`] for the one page other sites may frame: the
/// self-signup form of a group that takes self-signups (`/signup/{id}`,
/// L6; the Flickrocket seed embeds it "on any page"), served without
/// `X-Frame-Options`. Every other page keeps `frame-ancestors 'none'`.
pub const EMBEDDABLE_CONTENT_SECURITY_POLICY: &str = csp!("*");

/// Hashed build output: its name changes with its content.
const IMMUTABLE_PREFIX: &str = "assets/";

/// The page served in place of the console when the hub has no build.
const PLACEHOLDER: &str = include_str!("console_placeholder.html");

/// The `Cache-Control` of hashed build output.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The router's fallback: the console for `GET`/`HEAD` outside `/api/`,
/// the JSON 404 (or 405) for anything else.
pub async fn serve_console(State(state): State<AppState>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    let api = path == "/api" || path.starts_with("/api/");
    if api || (method != Method::GET && method != Method::HEAD) {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no such route: {method} {path}"),
        )
        .into_response();
    }
    let assets = ConsoleAssets::configured(state.config.console_dir.as_deref());
    let mut response = match answer(&assets, &path).await {
        Ok(Some((bytes, media_type, cache))) => {
            let mut response = (StatusCode::OK, Body::from(bytes)).into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
            response
        }
        Ok(None) => ApiError::not_found("console file").into_response(),
        Err(e) => return ApiError::internal(&format!("console file {path}: {e}")).into_response(),
    };
    add_security_headers(&mut response);
    match embeddable(&state, &path) {
        Ok(true) => allow_framing(&mut response),
        Ok(false) => {}
        Err(e) => return ApiError::from(e).into_response(),
    }
    if method == Method::HEAD {
        *response.body_mut() = Body::empty();
    }
    response
}

/// A console answer: its bytes, media type and `Cache-Control`.
type ConsoleFile = (Cow<'static, [u8]>, &'static str, &'static str);

/// The file for `path`, else `index.html` (history routes), else the
/// placeholder; `None` for a hashed asset the build does not have (404,
/// never `index.html`: the browser would take HTML for a script or style
/// sheet).
async fn answer(assets: &ConsoleAssets, path: &str) -> Result<Option<ConsoleFile>, std::io::Error> {
    let relative = path.trim_start_matches('/');
    if let Some(file) = safe_relative(relative)
        && let Some(bytes) = assets.read(file).await?
    {
        let cache = if file.starts_with(IMMUTABLE_PREFIX) {
            IMMUTABLE
        } else {
            "no-cache"
        };
        return Ok(Some((bytes, media_type(file), cache)));
    }
    if relative.starts_with(IMMUTABLE_PREFIX) {
        return Ok(None);
    }
    let index = assets.read("index.html").await?;
    let bytes = index.unwrap_or(Cow::Borrowed(PLACEHOLDER.as_bytes()));
    Ok(Some((bytes, "text/html; charset=utf-8", "no-cache")))
}

/// The console's security headers (see the module doc).
const SECURITY_HEADERS: [(header::HeaderName, &str); 4] = [
    (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "same-origin"),
    (header::X_FRAME_OPTIONS, "DENY"),
];

/// Adds [`SECURITY_HEADERS`] to `response`.
fn add_security_headers(response: &mut Response) {
    for (name, value) in SECURITY_HEADERS {
        response
            .headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
}

/// Whether `path` is the self-signup page of a group that takes
/// self-signups (`/signup/{id}`, not `/signup/confirm/…`): the one page
/// other sites may frame.
fn embeddable(state: &AppState, path: &str) -> Result<bool, crate::store::StoreError> {
    match path.strip_prefix("/signup/") {
        Some(id) if !id.contains('/') && id != "confirm" => {
            crate::access_groups::public::frames_allowed(&state.store, id)
        }
        _ => Ok(false),
    }
}

/// Lets other sites frame `response` ([`EMBEDDABLE_CONTENT_SECURITY_POLICY`]).
fn allow_framing(response: &mut Response) {
    let headers = response.headers_mut();
    headers.remove(header::X_FRAME_OPTIONS);
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(EMBEDDABLE_CONTENT_SECURITY_POLICY),
    );
}
