//! Rebuilds the hub when the operator console's build changes (C1).
//!
//! Release builds embed `console/dist/` (rust-embed, `src/api/console.rs`):
//! the compiler tracks the files it embedded, not files added later or a
//! directory that appeared after the hub was built, so this script makes
//! cargo watch the directory itself (or `console/`, until `dist` exists).
//! Debug builds read the directory at run time and need nothing. Every
//! build watches `migrations/`, which the PostgreSQL store embeds.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // The PostgreSQL store embeds its migrations (refinery): a new file
    // there must rebuild the hub.
    println!("cargo:rerun-if-changed=migrations");
    if std::env::var("PROFILE").as_deref() != Ok("release") {
        return;
    }
    let dist = std::path::Path::new("../console/dist");
    if dist.exists() {
        println!("cargo:rerun-if-changed=../console/dist");
    } else {
        println!("cargo:rerun-if-changed=../console");
    }
}
