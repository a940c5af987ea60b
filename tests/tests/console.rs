//! The operator console end to end (issue 16; C1–C5, C8, U4, T4): a real
//! hub serving the built console, three real headless agents paired into
//! two tenants and playing, and the console's browser suite
//! (`console/e2e/*.test.mjs`, node's test runner driving Debian's Chromium
//! with playwright-core) run against it. The suite logs in through the
//! form, watches the screens online and playing, opens a device page,
//! uploads an image and sees its thumbnail, publishes and watches each
//! device reach activated, has a contributor request approval and a tenant
//! admin approve, checks that a Viewer sees no write controls and that a
//! tenant admin sees nothing of the other tenant, runs axe-core on every page and saves each test's final page
//! under `target/console-screens/`. The hub's mail goes to a real SMTP
//! listener; the suite reads it (`SIGNET_E2E_MAIL_DIR`) to follow the
//! mailed links of the public pages (M5, C11). Each agent's output is
//! appended to `SIGNET_E2E_AGENT_LOGS/{device}.log` while the suite runs, so
//! that it can check what a screen did with a command (C4, D8).
//!
//! Needs the console built (`make console`: `console/dist` and
//! `console/node_modules`) before the hub binary is built, and Chromium
//! (`/usr/bin/chromium`, or `CHROMIUM`). With `SIGNET_CONSOLE_DOCS_SCREENSHOT=1`
//! the fleet page is also saved as `docs/console-fleet.png` (the README's);
//! `SIGNET_E2E_ONLY=name` runs only `console/e2e/name.test.mjs`.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use signet_tests::{Agent, Hub, Process};

/// The real SMTP listener the hub tests use (A5, L6, M5): the mails the
/// hub sends reach it, and the browser suite reads them from files.
#[path = "../../hub/tests/support/smtp.rs"]
mod smtp;

/// How long the screens may take to come online and play.
const CONVERGE: Duration = Duration::from_secs(120);
/// The most the browser suite may take.
const SUITE: Duration = Duration::from_secs(600);

/// The workspace root (`tests/..`).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Creates a user (whose saves need approval when `requires_approval`);
/// returns `{name, password, id}` for the fixture.
async fn user(hub: &Hub, name: &str, role: &str, domain: &str, requires_approval: bool) -> Value {
    let password = format!("{name}-console-pw-1");
    let answer = hub
        .post(
            "/api/v1/users",
            json!({"name": name, "email": format!("{name}@example.com"), "password": password,
                "role": role, "domain": [domain], "requires_approval": requires_approval}),
        )
        .await;
    json!({"name": name, "password": password, "id": answer["id"]})
}

/// C1–C5, C8, U4, T4: the console in Chromium against a real hub and three
/// real agents; the browser suite passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c1_c5_console_in_chromium_shows_a_live_fleet_of_real_screens() {
    let console = workspace().join("console");
    assert!(
        console.join("dist/index.html").exists() && console.join("node_modules").exists(),
        "the console is not built: run `make console` (npm ci && npm run build in console/)"
    );
    let dir = tempfile::tempdir().unwrap();
    // Mail goes to a real SMTP listener; each message it accepts is written
    // to SIGNET_E2E_MAIL_DIR for the suite, whose links are under the hub's
    // own address (public_url, M5).
    let sink = std::sync::Arc::new(smtp::SmtpSink::start().await);
    let mail_dir = dir.path().join("mail");
    std::fs::create_dir_all(&mail_dir).unwrap();
    // While the file SIGNET_E2E_SMTP_REFUSE exists the listener refuses
    // every recipient (a mail fails, to be retried from the outbox, A5).
    let refuse = dir.path().join("smtp-refuse");
    tokio::spawn(write_mails(
        std::sync::Arc::clone(&sink),
        mail_dir.clone(),
        refuse.clone(),
    ));
    let (listen, listener) = signet_tests::free_port();
    drop(listener);
    let (listen, public_url) = (listen.to_string(), format!("http://{listen}"));
    let smtp_port = sink.addr.port().to_string();
    let hub = Hub::start(
        dir.path(),
        &[
            ("SIGNET_HUB_HTTP_LISTEN", &listen),
            ("SIGNET_HUB_PUBLIC_URL", &public_url),
            ("SIGNET_HUB_SMTP__HOST", "127.0.0.1"),
            ("SIGNET_HUB_SMTP__PORT", &smtp_port),
            ("SIGNET_HUB_SMTP__FROM", "Signet <hub@example.test>"),
            ("SIGNET_HUB_SMTP__STARTTLS", "false"),
        ],
    )
    .await;
    assert_eq!(hub.base, public_url, "links in mail lead to this hub");
    let root = hub.root().await;
    let acme = hub.node(&root, "Acme").await;
    let lobby = hub.node(&acme, "Lobby").await;
    let globex = hub.node(&root, "Globex").await;
    let store = hub.node(&globex, "Store").await;

    for (site, colour) in [(&lobby, 0x1d_4ed8), (&store, 0x16_6534)] {
        let png = signet_tests::solid_png(dir.path(), &format!("{site}.png"), colour, 160, 90);
        let item = hub.upload(site, "Welcome board", png).await;
        let id = item["id"].as_str().unwrap().to_owned();
        hub.schedule_all_day(site, &id, 2_000).await;
    }
    let mut agents = Vec::new();
    for (name, node) in [
        ("Lobby left", &lobby),
        ("Lobby right", &lobby),
        ("Store window", &store),
    ] {
        let file = name.replace(' ', "-").to_lowercase();
        let mut agent = Agent::pair(&hub, dir.path(), &file, node, "").await;
        hub.call(
            reqwest::Method::PATCH,
            &format!("/api/v1/devices/{}", agent.device),
            Some(json!({"name": name})),
        )
        .await;
        agent.run();
        agents.push((name, node.clone(), agent));
    }
    for site in [&lobby, &store] {
        hub.post(
            "/api/v1/publish",
            json!({"scope": {"kind": "node", "id": site}}),
        )
        .await;
    }
    let started = Instant::now();
    loop {
        let fleet = hub.fleet().await;
        let playing = fleet
            .iter()
            .filter(|d| d["online"] == true && !d["now_playing"].is_null())
            .count();
        if playing == 3 {
            break;
        }
        assert!(
            started.elapsed() < CONVERGE,
            "the three screens did not come online and play: {fleet:#?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Each screen sends a screenshot (D8), for the fleet list's thumbnails.
    for (_, _, agent) in &agents {
        hub.post(
            &format!("/api/v1/devices/{}/commands", agent.device),
            json!({"action": "screenshot"}),
        )
        .await;
    }
    for (name, _, agent) in &agents {
        let started = Instant::now();
        loop {
            let response = hub
                .client
                .get(format!(
                    "{}/api/v1/devices/{}/screenshot",
                    hub.base, agent.device
                ))
                .bearer_auth(&hub.token)
                .send()
                .await
                .unwrap();
            if response.status().is_success() {
                break;
            }
            assert!(started.elapsed() < CONVERGE, "{name} sent no screenshot");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    let admin = user(&hub, "console-admin", "admin", &root, false).await;
    let viewer = user(&hub, "acme-viewer", "viewer", &acme, false).await;
    let contributor = user(&hub, "acme-editor", "contributor", &acme, true).await;
    let tenant_admin = user(&hub, "acme-admin", "admin", &acme, false).await;
    let globex_admin = user(&hub, "globex-admin", "admin", &globex, false).await;
    // Approval requests at Acme go to its content manager (A5).
    let (status, answer) = hub
        .call(
            reqwest::Method::PATCH,
            &format!("/api/v1/nodes/{acme}"),
            Some(json!({"content_manager_email": "content@acme.example"})),
        )
        .await;
    assert!(status.is_success(), "{answer}");
    // A fourth screen waits with a pairing code; the suite pairs it (C4).
    let kiosk_config = dir.path().join("kiosk.toml");
    std::fs::write(
        &kiosk_config,
        format!(
            "data_dir = {:?}\nhub_url = {:?}\n",
            dir.path().join("kiosk-data").display().to_string(),
            hub.base
        ),
    )
    .unwrap();
    let mut kiosk = Process::start(
        "kiosk-pair",
        &signet_tests::binary("signet-agent"),
        &[
            "pair",
            "--hub",
            &hub.base,
            "--config",
            &kiosk_config.display().to_string(),
        ],
        &[],
    );
    let line = kiosk
        .line_containing("pairing code: ", Duration::from_secs(30))
        .await;
    let code = line
        .split("pairing code: ")
        .nth(1)
        .unwrap()
        .trim()
        .to_owned();

    let upload = signet_tests::solid_png(dir.path(), "upload.png", 0xf5_9e0b, 640, 360);
    let upload_path = dir.path().join("upload.png");
    std::fs::write(&upload_path, &upload).unwrap();
    // A real 2 s VP8/WebM video, 320×240, for the thumbnail of a video (C5).
    let video_path = dir.path().join("clip.webm");
    let made = std::process::Command::new("gst-launch-1.0")
        .args([
            "-q",
            "videotestsrc",
            "num-buffers=30",
            "pattern=ball",
            "!",
            "video/x-raw,width=320,height=240,framerate=15/1",
            "!",
            "vp8enc",
            "!",
            "webmmux",
            "!",
            "filesink",
        ])
        .arg(format!("location={}", video_path.display()))
        .status()
        .unwrap();
    assert!(made.success(), "gst-launch-1.0 made no video");

    // A picture only the purge test uses (an access group's content whose
    // window it closes, so nothing needs its cached copy, D8).
    let _ = signet_tests::solid_png(dir.path(), "purge.png", 0x7c_3aed, 160, 90);
    let purge_png = dir.path().join("purge.png");
    // Each agent's output goes to `{device}.log` here while the suite runs,
    // so that it can check what a screen did with a command (D8).
    let agent_logs = dir.path().join("agent-logs");
    std::fs::create_dir_all(&agent_logs).unwrap();

    let fixture = json!({
        "admin": admin,
        "viewer": viewer,
        "contributor": contributor,
        "tenant_admin": tenant_admin,
        "other_tenant_admin": globex_admin,
        "tenants": {"acme": {"id": acme, "name": "Acme", "site": lobby},
                    "globex": {"id": globex, "name": "Globex", "site": store}},
        "devices": agents.iter().map(|(name, node, agent)| json!({"id": agent.device, "name": name, "node": node})).collect::<Vec<_>>(),
        "upload": upload_path,
        "video": video_path,
        "purge_png": purge_png,
        "pairing": {"code": code},
    });
    let fixture_path = dir.path().join("fixture.json");
    std::fs::write(&fixture_path, fixture.to_string()).unwrap();

    let screens = signet_tests::target_dir()
        .parent()
        .unwrap()
        .join("console-screens");
    let docs_png = workspace().join("docs/console-fleet.png");
    let mut env = vec![
        ("SIGNET_E2E_URL", hub.base.clone()),
        ("SIGNET_E2E_FIXTURE", fixture_path.display().to_string()),
        ("SIGNET_E2E_SCREENS", screens.display().to_string()),
        ("SIGNET_E2E_MAIL_DIR", mail_dir.display().to_string()),
        ("SIGNET_E2E_SMTP_REFUSE", refuse.display().to_string()),
        ("SIGNET_E2E_AGENT_LOGS", agent_logs.display().to_string()),
    ];
    if std::env::var_os("SIGNET_CONSOLE_DOCS_SCREENSHOT").is_some() {
        env.push(("SIGNET_E2E_FLEET_PNG", docs_png.display().to_string()));
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // SIGNET_E2E_ONLY=story,items.test.mjs,… runs only those files of the suite
    // (a quicker loop while working on one page); all of them otherwise.
    let only = std::env::var("SIGNET_E2E_ONLY").unwrap_or_default();
    let subset = !only.trim().is_empty();
    let tests: Vec<String> = match only.as_str() {
        only if subset => only
            .split(',')
            .map(str::trim)
            .map(|f| {
                if f.ends_with(".test.mjs") {
                    f.to_owned()
                } else {
                    format!("{f}.test.mjs")
                }
            })
            .map(|f| console.join("e2e").join(f).display().to_string())
            .collect(),
        _ => vec![console.join("e2e").display().to_string()],
    };
    let mut args = vec!["--test", "--test-concurrency=1", "--test-reporter=spec"];
    args.extend(tests.iter().map(String::as_str));
    let mut suite = Process::start("console-e2e", Path::new("node"), &args, &env);
    let screens_only: Vec<&Agent> = agents.iter().map(|(_, _, agent)| agent).collect();
    let code = tokio::select! {
        code = suite.exit_code(SUITE) => code,
        () = write_agent_logs(&screens_only, &agent_logs) => unreachable!("writes until the suite ends"),
    };
    let output = suite.output().join("\n");
    println!("{output}");
    assert_eq!(
        code,
        Some(0),
        "the console's browser suite failed:\n{output}\nhub log:\n{}",
        hub.process.output().join("\n")
    );
    if subset {
        // A chosen part of the suite: the fleet page and the pairing are
        // console.test.mjs's.
        return;
    }
    assert!(
        screens.join("fleet.png").exists(),
        "the suite saved no fleet screenshot"
    );
    // The screen paired in the browser got its credentials.
    assert_eq!(
        kiosk.exit_code(Duration::from_secs(60)).await,
        Some(0),
        "the paired agent did not finish pairing:\n{}",
        kiosk.output().join("\n")
    );
}

/// Appends what each of `agents` printed to `dir/{device}.log`, every
/// 100 ms, until the suite ends (the future is dropped then).
async fn write_agent_logs(agents: &[&Agent], dir: &Path) {
    use std::io::Write;
    let mut written = vec![0; agents.len()];
    loop {
        for (agent, written) in agents.iter().zip(written.iter_mut()) {
            let Some(process) = agent.process.as_ref() else {
                continue;
            };
            let lines = process.output();
            if lines.len() > *written {
                let mut file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join(format!("{}.log", agent.device)))
                    .unwrap();
                for line in &lines[*written..] {
                    writeln!(file, "{line}").unwrap();
                }
                *written = lines.len();
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Writes each message `sink` accepts to `dir` as `{n}.eml` (its DATA), in
/// the order received, until the test ends; has `sink` refuse every
/// recipient while the file `refuse` exists, and says which it does in
/// `refuse` + `.state` (`refusing` or `accepting`) once it does.
async fn write_mails(sink: std::sync::Arc<smtp::SmtpSink>, dir: PathBuf, refuse: PathBuf) {
    let mut written = 0;
    let state = refuse.with_extension("state");
    let mut refusing = None;
    loop {
        let now = refuse.exists();
        if refusing != Some(now) {
            sink.refuse_all(now);
            let part = refuse.with_extension("part");
            std::fs::write(&part, if now { "refusing" } else { "accepting" }).unwrap();
            std::fs::rename(&part, &state).unwrap();
            refusing = Some(now);
        }
        let received = sink.received();
        for (n, mail) in received.iter().enumerate().skip(written) {
            let part = dir.join(format!("{n}.part"));
            std::fs::write(&part, &mail.data).unwrap();
            std::fs::rename(&part, dir.join(format!("{n}.eml"))).unwrap();
        }
        written = received.len();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
