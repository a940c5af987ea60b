//! The `signet-agent` binary as a user runs it: `--version` works, a missing
//! subcommand is a usage error, and `status` on an unpaired data dir says
//! what to do instead of pretending.

use std::process::Command;

#[test]
fn version_prints_the_crate_version() {
    let out = Command::new(env!("CARGO_BIN_EXE_signet-agent"))
        .arg("--version")
        .output()
        .expect("run signet-agent");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("signet-agent {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn no_subcommand_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_signet-agent"))
        .output()
        .expect("run signet-agent");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Usage"));
}

/// O1: a config typo fails at start with the key's name.
#[test]
fn o1_bad_config_fails_with_the_key_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("agent.toml");
    std::fs::write(&config, "data_dirr = \"x\"\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_signet-agent"))
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .expect("run signet-agent");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("data_dirr"));
}

#[test]
fn status_of_an_unpaired_device_says_to_pair() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_signet-agent"))
        .arg("status")
        .env("SIGNET_AGENT_DATA_DIR", dir.path())
        .output()
        .expect("run signet-agent");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("signet-agent pair"));
}
