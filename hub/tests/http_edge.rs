//! The HTTP edge's own rules, without a server (S12, C1): which address a
//! request comes from behind a trusted proxy, which routes without a login
//! are rate-limited, and which console paths stay inside the build. (Moved
//! from the unit tests of `api::limits` and `api::console`, unchanged.)

use std::net::IpAddr;

use axum::http::{HeaderMap, Method};
use signet_hub::api::console::{ConsoleAssets, media_type, safe_relative};
use signet_hub::api::limits::{RouteClass, bucket, route_class, source_of};

#[test]
fn s12_forwarded_for_is_believed_only_from_a_trusted_proxy() {
    let proxy: IpAddr = "10.0.0.1".parse().unwrap();
    let client: IpAddr = "203.0.113.9".parse().unwrap();
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-forwarded-for",
        "198.51.100.1, 203.0.113.9".parse().unwrap(),
    );
    assert_eq!(source_of(client, &headers, &[]), client, "off by default");
    assert_eq!(
        source_of(client, &headers, &[proxy]),
        client,
        "untrusted peer"
    );
    assert_eq!(
        source_of(proxy, &headers, &[proxy]),
        client,
        "the nearest hop"
    );
    assert_eq!(source_of(proxy, &HeaderMap::new(), &[proxy]), proxy);
    let v6: IpAddr = "2001:db8:1:2:3:4:5:6".parse().unwrap();
    assert_eq!(bucket(v6), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
}

#[test]
fn s12_every_route_without_a_login_is_limited() {
    // An operation without `security` needs no login: it must be in one
    // of UNAUTHENTICATED_ROUTES, unless a device credential guards it.
    let document = serde_json::to_value(signet_hub::api::openapi()).unwrap();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if operation.get("security").is_some() || path.starts_with("/api/v1/device/") {
                continue;
            }
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            assert_ne!(
                route_class(&method, path),
                RouteClass::Authenticated,
                "{method} {path} needs no login but is not rate-limited"
            );
        }
    }
    assert_eq!(
        route_class(&Method::POST, "/api/v1/device/pairings"),
        RouteClass::Credential
    );
}

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
