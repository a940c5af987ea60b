//! The `signet-hub` binary as a user runs it: `--version` works, and an
//! unavailable subcommand fails loudly (exit 2) instead of pretending to run.

use std::process::Command;

#[test]
fn version_prints_the_crate_version() {
    let out = Command::new(env!("CARGO_BIN_EXE_signet-hub"))
        .arg("--version")
        .output()
        .expect("run signet-hub");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("signet-hub {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn unavailable_subcommand_exits_2_and_says_why() {
    let out = Command::new(env!("CARGO_BIN_EXE_signet-hub"))
        .arg("serve")
        .output()
        .expect("run signet-hub");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("only --version exists yet"));
}
