//! Links in mail (M5, A5, L6, L7, L9): every mail that asks for an action
//! carries one link under `public_url` to the console page that completes
//! it. The page paths are the contract of DESIGN §8.
//!
//! Owns: the page paths and how a link is made from `public_url`. Must
//! not: decide who gets mail or what a token grants.

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;

use crate::config::Config;

/// The console page that accepts an invite: `/invite/{token}`.
pub const INVITE_PAGE: &str = "/invite/";
/// The console page that confirms a self-signup: `/signup/confirm/{token}`.
pub const SIGNUP_CONFIRM_PAGE: &str = "/signup/confirm/";
/// The console page that sets a password with a mailed token:
/// `/password/set/{token}`.
pub const PASSWORD_SET_PAGE: &str = "/password/set/";
/// The console page of a content item (media or template), where it is
/// approved: `/content/{id}`.
pub const CONTENT_PAGE: &str = "/content/";

/// The link to `page` + `rest` under `public_url`, when it is set.
#[must_use]
pub fn page_link(config: &Config, page: &str, rest: &str) -> Option<String> {
    config
        .public_url
        .as_deref()
        .map(|base| format!("{}{page}{rest}", base.trim_end_matches('/')))
}

/// What a mail asks its reader to do: with `public_url` set, one line
/// `{ask}:` followed by the link; without it, `fallback` (how to do it
/// through the API).
#[must_use]
pub fn action(config: &Config, ask: &str, (page, rest): (&str, &str), fallback: String) -> String {
    match page_link(config, page, rest) {
        Some(link) => format!("{ask}:\n{link}\n"),
        None => fallback,
    }
}

/// The set-password part of a mail (M5): `ask` and the link to the
/// set-password page with `token`, or without `public_url`, how to set it
/// through the API.
#[must_use]
pub fn set_password_action(config: &Config, ask: &str, token: &str) -> String {
    let fallback = format!(
        "To set it: POST /api/v1/password/set with the JSON body \
         {{\"token\": \"{token}\", \"password\": \"…\"}}\n\ntoken: {token}\n"
    );
    action(config, ask, (PASSWORD_SET_PAGE, token), fallback)
}

/// `at` in `zone` with its offset, and in UTC, e.g.
/// `2026-11-23T11:15:00+01:00 (Europe/Berlin), 2026-11-23T10:15:00Z (UTC)`.
#[must_use]
pub fn zoned_and_utc(at: DateTime<Utc>, zone: Tz) -> String {
    format!(
        "{} ({zone}), {} (UTC)",
        at.with_timezone(&zone)
            .to_rfc3339_opts(SecondsFormat::Secs, false),
        at.to_rfc3339_opts(SecondsFormat::Secs, true)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn m5_links_are_under_public_url_and_only_when_it_is_set() {
        let mut config = Config::default();
        assert_eq!(page_link(&config, INVITE_PAGE, "t"), None);
        config.public_url = Some("https://signage.example.com".into());
        assert_eq!(
            page_link(&config, PASSWORD_SET_PAGE, "abc").as_deref(),
            Some("https://signage.example.com/password/set/abc")
        );
    }

    #[test]
    fn a5_times_carry_the_zone_offset_and_utc() {
        let at: DateTime<Utc> = "2026-11-23T10:15:00Z".parse().unwrap();
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        assert_eq!(
            zoned_and_utc(at, berlin),
            "2026-11-23T11:15:00+01:00 (Europe/Berlin), 2026-11-23T10:15:00Z (UTC)"
        );
    }
}
