//! `signet-hub demo` end to end over the real binaries (issue 8): the one
//! command a newcomer runs reaches "3 devices online, in sync, playing",
//! prints a login that works against the URL it prints, and Ctrl-C stops
//! everything it started and removes its temporary directory (O2, U4).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use signet_tests::Process;

/// How long the demo may take to get every agent playing on a loaded machine.
const READY: Duration = Duration::from_secs(120);
/// How long the demo may take to stop after SIGINT (agents get 10 s each
/// before SIGKILL, in parallel; the hub stops after them).
const STOPPED: Duration = Duration::from_secs(45);

/// The rest of the first printed line that starts with `prefix`.
fn printed(demo: &Process, prefix: &str) -> String {
    demo.output()
        .iter()
        .find_map(|line| line.strip_prefix(prefix).map(str::to_owned))
        .unwrap_or_else(|| panic!("no line starting {prefix:?}:\n{}", demo.output().join("\n")))
}

/// Whether a `signet-agent` process with this pid is alive (or a zombie).
fn agent_alive(pid: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains("signet-agent"))
}

/// O2, U4: `signet-hub demo` starts a hub, sample content and three
/// headless agents; the fleet view it prints says all three are online, in
/// sync and playing; the admin login it prints works at the URL it prints;
/// SIGINT stops it with status 0, with none of its agents left and its
/// temporary directory gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn o2_u4_the_demo_gets_three_agents_playing_and_ctrl_c_stops_everything() {
    let mut demo = Process::start(
        "demo",
        &signet_tests::binary("signet-hub"),
        &["demo", "--agents", "3", "--http", "127.0.0.1:0"],
        &[],
    );
    demo.line_containing("3 devices online, in sync, playing", READY)
        .await;

    // The printed URL and login work, as a newcomer would use them.
    // C1: the printed console URL is the hub's root and answers the
    // console's page (or, in a hub built without it, how to build it).
    let console = printed(&demo, "console: ");
    let root = console.split_whitespace().next().unwrap().to_owned();
    assert!(
        root.starts_with("http://127.0.0.1:") && root.ends_with('/'),
        "{console}"
    );
    let page = reqwest::get(&root).await.unwrap();
    assert_eq!(page.status(), reqwest::StatusCode::OK);
    assert!(
        page.headers()[reqwest::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "{:?}",
        page.headers()
    );
    let html = page.text().await.unwrap();
    assert!(
        html.contains("Signet console") || html.contains("make console"),
        "{html}"
    );
    let printed_api = printed(&demo, "api: ");
    let api = printed_api.split_whitespace().next().unwrap().to_owned();
    assert_eq!(api, format!("{root}api/v1"), "{printed_api}");
    let login = printed(&demo, "admin login: ");
    let password = printed(&demo, "admin password: ");
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{api}/session"))
        .json(&serde_json::json!({"name": login, "password": password}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let session: serde_json::Value = response.json().await.unwrap();
    let token = session["token"].as_str().unwrap();
    let fleet: serde_json::Value = client
        .get(format!("{api}/fleet"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(fleet.as_array().map(Vec::len), Some(3), "{fleet:#}");

    let directory = printed(&demo, "demo directory: ");
    assert!(Path::new(&directory).is_dir(), "{directory}");
    let pids: Vec<String> = demo
        .output()
        .iter()
        .filter(|line| line.starts_with("agent ") && line.contains("running (pid "))
        .map(|line| {
            let rest = line.split("(pid ").nth(1).unwrap();
            rest.split(',').next().unwrap().to_owned()
        })
        .collect();
    assert_eq!(pids.len(), 3, "{}", demo.output().join("\n"));
    assert!(pids.iter().all(|pid| agent_alive(pid)), "{pids:?}");

    // Ctrl-C: SIGINT to the demo's own pid only.
    let status = Command::new("kill")
        .args(["-INT", &demo.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    let code = demo.exit_code(STOPPED).await;
    assert_eq!(code, Some(0), "{}", demo.output().join("\n"));
    assert!(started.elapsed() < STOPPED);
    let left: Vec<&String> = pids.iter().filter(|pid| agent_alive(pid)).collect();
    assert!(left.is_empty(), "agents still running: {left:?}");
    assert!(
        !Path::new(&directory).exists(),
        "{directory} was not removed"
    );
}
