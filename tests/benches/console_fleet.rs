//! The console's fleet page with 10,000 devices (issue 16 acceptance, C3):
//! a hub data directory seeded with that many devices (the hub's test
//! fixture, `signet-hub dev-seed-fleet`), the hub serving it, and Chromium
//! (playwright-core, `console/e2e/bench-fleet.mjs`) logging in, waiting for
//! every device to be listed, and scrolling the virtualized list from top to
//! bottom and back while it records the page's long tasks. Prints the
//! figures; asserts only that the page showed the fleet.
//!
//! `cargo build --bins && make console && cargo bench --profile dev -p signet-tests --bench console_fleet`
//! (`SIGNET_BENCH_DEVICES` changes the count).

#![allow(clippy::unwrap_used)] // bench code: a failed unwrap is a failed run

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use signet_tests::{Hub, Process, binary};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let devices = std::env::var("SIGNET_BENCH_DEVICES").unwrap_or_else(|_| "10000".to_owned());
    let console = Path::new(env!("CARGO_MANIFEST_DIR")).join("../console");
    assert!(
        console.join("dist/index.html").exists() && console.join("node_modules").exists(),
        "the console is not built: run `make console`"
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hub-data");
    let init = Command::new(binary("signet-hub"))
        .args(["init", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(init.status.success(), "init failed");
    let stdout = String::from_utf8_lossy(&init.stdout).into_owned();
    let password = stdout
        .lines()
        .find_map(|l| l.strip_prefix("admin password: "))
        .unwrap()
        .to_owned();
    let seed = Command::new(binary("signet-hub"))
        .args(["dev-seed-fleet", "--devices", &devices, "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        seed.status.success(),
        "seeding failed: {}{}",
        String::from_utf8_lossy(&seed.stdout),
        String::from_utf8_lossy(&seed.stderr)
    );
    let hub = Hub::serve(&data, &password, &[]).await;
    let script = console.join("e2e/bench-fleet.mjs").display().to_string();
    let mut bench = Process::start(
        "fleet-bench",
        Path::new("node"),
        &[&script],
        &[
            ("SIGNET_E2E_URL", hub.base.as_str()),
            ("SIGNET_BENCH_PASSWORD", password.as_str()),
            ("SIGNET_BENCH_DEVICES", devices.as_str()),
        ],
    );
    let code = bench.exit_code(Duration::from_secs(600)).await;
    let output = bench.output().join("\n");
    println!("{output}");
    assert_eq!(code, Some(0), "the fleet bench failed:\n{output}");
}
