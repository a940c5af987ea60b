//! The agent package's maintainer script (issue 15, deliver 9; S7, O1):
//! `apt purge` removes the device's key, secret and cache; `apt remove`
//! keeps them. The real script runs under `sh` with dpkg's `DPKG_ROOT`
//! pointing at a temporary root, as dpkg runs it.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::Command;

fn postrm() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/deb/agent/postrm")
}

/// A root with the agent's state (key, secret, cache) and cache dir.
fn populated_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    for dir in [
        "var/lib/signet-agent/cache/blobs",
        "var/cache/signet-agent",
        "var/lib/other",
    ] {
        std::fs::create_dir_all(root.path().join(dir)).unwrap();
    }
    for file in [
        "var/lib/signet-agent/device.key",
        "var/lib/signet-agent/device.secret",
        "var/lib/signet-agent/cache/blobs/0123",
        "var/cache/signet-agent/registry.bin",
        "var/lib/other/keep",
    ] {
        std::fs::write(root.path().join(file), b"x").unwrap();
    }
    root
}

fn run(root: &Path, action: &str) {
    let status = Command::new("sh")
        .arg(postrm())
        .arg(action)
        .env("DPKG_ROOT", root)
        .status()
        .unwrap();
    assert!(status.success(), "postrm {action} failed");
}

/// S7, O1: purge removes the device's key, secret and cache; nothing else.
#[test]
fn s7_o1_purge_removes_the_agents_key_secret_and_cache() {
    let root = populated_root();
    run(root.path(), "purge");
    assert!(!root.path().join("var/lib/signet-agent").exists());
    assert!(!root.path().join("var/cache/signet-agent").exists());
    assert!(root.path().join("var/lib/other/keep").exists());
}

/// O1: remove (and upgrade) keep the pairing, so a reinstall plays on.
#[test]
fn o1_remove_and_upgrade_keep_the_pairing() {
    let root = populated_root();
    for action in ["remove", "upgrade"] {
        run(root.path(), action);
        assert!(root.path().join("var/lib/signet-agent/device.key").exists());
        assert!(
            root.path()
                .join("var/cache/signet-agent/registry.bin")
                .exists()
        );
    }
}
