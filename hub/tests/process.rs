//! The `signet-hub` binary as an operator runs it (DESIGN §6): `init`, then
//! `serve`, log in with the printed password; a write survives SIGKILL and
//! restart (S9).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn hub() -> Command {
    Command::new(env!("CARGO_BIN_EXE_signet-hub"))
}

/// Runs `init` and returns (admin password, root fingerprint).
fn init(data: &Path) -> (String, String) {
    let out = hub().args(["init", "--data"]).arg(data).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let field = |prefix: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in {stdout}"))
            .trim()
            .to_owned()
    };
    (field("admin password: "), field("root key fingerprint: "))
}

/// A running `serve` on a free loopback port, killed with SIGKILL on drop.
struct Hub {
    child: Child,
    base: String,
}

impl Hub {
    fn start(data: &Path) -> Self {
        let mut child = hub()
            .arg("serve")
            .env("SIGNET_HUB_DATA", data)
            .env("SIGNET_HUB_HTTP_LISTEN", "127.0.0.1:0")
            .env("SIGNET_HUB_BROKER_LISTEN", "127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("signet-hub listening on ") {
                    let _ = tx.send(url.to_owned());
                }
            }
        });
        let base = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("hub did not start");
        Self { child, base }
    }

    fn kill(mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn login(client: &reqwest::Client, base: &str, password: &str) -> String {
    let response = client
        .post(format!("{base}/api/v1/session"))
        .json(&json!({"name": "admin", "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn s9_init_serve_login_and_a_write_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (password, fingerprint) = init(&data);
    let root_pub = std::fs::read_to_string(data.join("keys/root.pub")).unwrap();
    let root = signet_common::envelope::PublicKey::from_base64(&root_pub).unwrap();
    assert_eq!(
        fingerprint,
        root.key_id().to_string(),
        "printed fingerprint is the root key id"
    );

    let client = reqwest::Client::new();
    let hub = Hub::start(&data);
    let token = login(&client, &hub.base, &password).await;
    let nodes: Value = client
        .get(format!("{}/api/v1/nodes", hub.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let root_node = nodes[0]["id"].as_str().unwrap().to_owned();
    let created = client
        .post(format!("{}/api/v1/nodes", hub.base))
        .bearer_auth(&token)
        .json(&json!({"parent": root_node, "name": "Tenant A"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    // The answer came after the write was durable: kill -9 right away.
    hub.kill();

    let hub = Hub::start(&data);
    // The session survived too (it was written durably at login).
    let node = client
        .get(format!(
            "{}/api/v1/nodes/{}",
            hub.base,
            created["id"].as_str().unwrap()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(node.status(), 200);
    let node: Value = node.json().await.unwrap();
    assert_eq!(node["name"], "Tenant A");
    assert_eq!(node["parent"], root_node.as_str());
    hub.kill();
}

#[tokio::test]
async fn openapi_document_is_served() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());
    let hub = Hub::start(dir.path());
    let started = Instant::now();
    let document: Value = reqwest::get(format!("{}/api/v1/openapi.json", hub.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(30));
    let paths = document["paths"].as_object().unwrap();
    for path in [
        "/healthz",
        "/api/v1/session",
        "/api/v1/nodes/{id}",
        "/api/v1/openapi.json",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} missing from {:?}",
            paths.keys()
        );
    }
    assert_eq!(
        reqwest::get(format!("{}/healthz", hub.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "ok"
    );
}

#[test]
fn serve_without_init_says_to_run_init() {
    let dir = tempfile::tempdir().unwrap();
    let out = hub()
        .arg("serve")
        .env("SIGNET_HUB_DATA", dir.path())
        .env("SIGNET_HUB_HTTP_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("signet-hub init --data"), "{stderr}");
}

#[test]
fn init_refuses_an_existing_installation_and_keeps_its_keys() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());
    let before = std::fs::read(dir.path().join("keys/root.pub")).unwrap();
    let out = hub()
        .args(["init", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing"));
    assert_eq!(
        std::fs::read(dir.path().join("keys/root.pub")).unwrap(),
        before
    );
}

#[test]
fn config_typo_names_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());
    let out = hub()
        .arg("serve")
        .env("SIGNET_HUB_DATA", dir.path())
        .env("SIGNET_HUB_HTTP_LISTN", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("SIGNET_HUB_HTTP_LISTN"), "{stderr}");
}

#[tokio::test]
async fn sigterm_shuts_down_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());
    let mut hub = Hub::start(dir.path());
    // The hub answers, then SIGTERM (to the pid we started) stops it with status 0.
    assert_eq!(
        reqwest::get(format!("{}/healthz", hub.base))
            .await
            .unwrap()
            .status(),
        200
    );
    let status = Command::new("kill")
        .args(["-TERM", &hub.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = hub.child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "hub did not stop after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "{exit:?}");
}

/// O1: `serve` with a bad config stops at once with one line naming the
/// file or the environment variable, the key and what is wrong.
#[test]
fn o1_serve_with_a_bad_config_names_the_file_or_variable_the_key_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hub.toml");
    let serve = |text: &str, env: &[(&str, &str)]| {
        std::fs::write(&config, text).unwrap();
        let out = hub()
            .args(["serve", "--config"])
            .arg(&config)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        // 78 (EX_CONFIG): systemd does not restart a start that cannot succeed.
        assert_eq!(out.status.code(), Some(78));
        String::from_utf8_lossy(&out.stderr).trim_end().to_owned()
    };
    let shown = config.display();
    assert_eq!(
        serve("token_ttl_secs = \"ten\"\n", &[]),
        format!(
            "signet-hub: {shown}: key \"token_ttl_secs\": invalid type: string \"ten\", expected u64"
        )
    );
    let unknown = serve("[mqtt]\nurll = \"mqtt://broker\"\n", &[]);
    assert!(
        unknown.starts_with(&format!(
            "signet-hub: {shown}: key \"mqtt.urll\": unknown key, expected one of"
        )),
        "{unknown}"
    );
    assert_eq!(
        serve("", &[("SIGNET_HUB_ALERT_POLL_SECS", "0")]),
        "signet-hub: environment variable SIGNET_HUB_ALERT_POLL_SECS: \
         key \"alert_poll_secs\": must be 1 to 3600"
    );
}
