//! Thumbnails in "My content" (M6, C5): each listed item that has a
//! thumbnail carries a signed URL of it, so the player page shows it in an
//! `<img>` (which sends no bearer token) without opening the content
//! library's thumbnail route — whose view rule (M1) a member of an access
//! group need not pass — to the member.
//!
//! Owns: the thumbnail URL's signature (HMAC-SHA256 with the member
//! player's key, over `thumbnail`, the item id and the expiry, so it can
//! never pass for a media URL's) and reading the thumbnail it names. Must
//! not: list anything (only items "My content" lists get a URL) or render
//! thumbnails ([`crate::content::thumbnail`] does, at upload).
//!
//! # Expiry
//! A URL works until the end of the hour after the one it was made in
//! (one to two hours), so the URLs of one page load stay the same for the
//! rest of the hour and the browser's cache serves them.

use chrono::{DateTime, Utc};

use super::MemberError;
use super::playback::{check_link, hmac};
use super::types::MediaSignature;
use crate::app::Hub;
use crate::content::service::ThumbnailFile;
use crate::content::{CONTENT, ContentItem};

/// The granularity of a thumbnail URL's expiry, in seconds.
pub const THUMBNAIL_URL_STEP_SECS: i64 = 3600;

/// When a thumbnail URL made at `now` stops working (Unix seconds).
#[must_use]
pub fn expiry(now: DateTime<Utc>) -> i64 {
    (now.timestamp().div_euclid(THUMBNAIL_URL_STEP_SECS) + 2) * THUMBNAIL_URL_STEP_SECS
}

/// The signed URL (relative to the hub) of item `id`'s thumbnail under
/// `key`, working until `expires`.
#[must_use]
pub fn url(key: &str, id: &str, expires: i64) -> String {
    format!(
        "/api/v1/my/thumbnails/{id}?expires={expires}&signature={}",
        sign(key, id, expires)
    )
}

/// The signature of a thumbnail URL of item `id` expiring at `expires`.
fn sign(key: &str, id: &str, expires: i64) -> String {
    hmac(
        key.as_bytes(),
        format!("thumbnail\n{id}\n{expires}").as_bytes(),
    )
    .to_string()
}

/// The thumbnail a signed URL names, when its signature matches and it has
/// not expired (no login: the signature is the credential).
///
/// # Errors
/// `BadSignature`, `LinkExpired`, `NotFound` (no such item, or it has no
/// thumbnail), `Internal` (the file could not be read), the store's.
pub async fn open(
    hub: &Hub,
    id: &str,
    signature: &MediaSignature,
) -> Result<ThumbnailFile, MemberError> {
    check_link(hub, |key| sign(key, id, signature.expires), signature)?;
    let Some(item) = hub.store.get::<ContentItem>(CONTENT, id)? else {
        return Err(MemberError::NotFound("thumbnail"));
    };
    let file = ThumbnailFile::of(hub, &item).await;
    file.map_err(|e| MemberError::Internal(e.to_string()))?
        .ok_or(MemberError::NotFound("thumbnail"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A thumbnail URL works one to two hours, and its signature differs
    /// from a media URL's over the same id and expiry.
    #[test]
    fn m6_thumbnail_urls_expire_on_the_hour_and_are_their_own_signatures() {
        let at = DateTime::from_timestamp(10 * 3600 + 59 * 60, 0).unwrap_or_default();
        assert_eq!(expiry(at), 12 * 3600);
        let at = DateTime::from_timestamp(10 * 3600, 0).unwrap_or_default();
        assert_eq!(expiry(at), 12 * 3600);
        assert_ne!(
            sign("k", "c-1", 5),
            super::super::playback::sign("k", "c-1", 5)
        );
        assert_ne!(sign("k", "c-1", 5), sign("k", "c-2", 5));
        assert!(url("k", "c-1", 5).starts_with("/api/v1/my/thumbnails/c-1?expires=5&signature="));
    }
}
