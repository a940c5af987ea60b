//! `signet-hub demo` (DESIGN §6, O2): a whole working system on one
//! machine in one command — a hub with its embedded broker on a temporary
//! data directory, sample content made with GStreamer, a template with a
//! clock and a live data feed served by the demo itself, a playlist and
//! schedule published to a site, and N headless agents paired into it —
//! then a live one-line-per-device status from the fleet view (U4) until
//! Ctrl-C or SIGTERM, which stops everything and removes the directory.
//!
//! Owns: the order of start-up and shutdown and the demo's printed output.
//! Runs the hub in-process ([`crate::init::init`], [`crate::serve::open`],
//! [`crate::serve::serve_on`]) and acts on it only over its HTTP API, as an
//! operator would ([`operator`]). Starts agents only as child processes of
//! the `signet-agent` binary ([`agents`]): the hub crate never links the
//! agent crate (DESIGN §2). Must not: claim anything the fleet view does not
//! say ([`status`]), or leave a process it started running when it returns.

pub mod agents;
pub mod feed;
pub mod media;
pub mod operator;
pub mod status;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use signet_common::approval::ApprovalState;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use self::agents::{AgentError, DemoAgent};
use self::feed::FeedServer;
use self::media::{MediaError, SAMPLES, SampleKind};
use self::operator::{Operator, OperatorError};
use self::status::{AgentSummary, StatusBoard};
use crate::api::ContentView;
use crate::app::SystemClock;
use crate::config::Config;

/// Where the hub listens when `--http` is not given (DESIGN §6's default).
pub const DEFAULT_HTTP: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8080);
/// The most agents one demo starts.
pub const MAX_AGENTS: u8 = 16;
/// How often the status is refreshed.
const STATUS_EVERY: Duration = Duration::from_secs(1);
/// How long the hub may take to answer after it started, and to stop.
const HUB_TIMEOUT: Duration = Duration::from_secs(30);
/// The agents' site, where the schedule is published.
const SITE_NAME: &str = "Demo site";
/// How long the template shows per pass through the playlist, in ms.
const TEMPLATE_MS: u64 = 12_000;
/// How long an image shows, and a video whose length the hub did not read.
const ITEM_MS: u64 = 5_000;

/// What `signet-hub demo` is told.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// How many agents to start (1 to [`MAX_AGENTS`]).
    pub agents: u8,
    /// The hub's HTTP address; `None`: [`DEFAULT_HTTP`], or a free
    /// loopback port when that one is taken.
    pub http: Option<SocketAddr>,
    /// Keep the temporary directory instead of removing it at the end.
    pub keep: bool,
    /// The `signet-agent` binary.
    pub agent_binary: PathBuf,
}

/// Why the demo stopped with an error. Everything it started is stopped
/// before the error is returned.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// An agent count outside 1 to [`MAX_AGENTS`].
    #[error("--agents must be 1 to {MAX_AGENTS}")]
    AgentCount,
    /// The agent binary is not where it was looked for.
    #[error(
        "signet-agent not found at {}: build it with `cargo build --bins` (it goes next to signet-hub), or set SIGNET_AGENT_BIN",
        .0.display()
    )]
    AgentBinaryMissing(PathBuf),
    /// Sample content could not be made.
    #[error(transparent)]
    Media(#[from] MediaError),
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {reason} (choose another with --http ADDR)")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The temporary directory could not be made or removed.
    #[error("temporary directory: {0}")]
    TempDir(String),
    /// The hub's data directory could not be initialized.
    #[error(transparent)]
    Init(#[from] crate::init::InitError),
    /// The hub failed to start, stopped, or did not stop.
    #[error("hub: {0}")]
    Hub(String),
    /// The hub refused what the demo asked over the API.
    #[error(transparent)]
    Operator(#[from] OperatorError),
    /// An agent could not be set up.
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// The feed server could not start.
    #[error("feed server: {0}")]
    Feed(String),
}

/// The `signet-agent` binary next to the running executable.
#[must_use]
pub fn default_agent_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .unwrap_or_default()
        .join("signet-agent")
}

/// Everything the demo started, stopped in reverse by [`Started::stop`].
#[derive(Default)]
struct Started {
    /// The temporary directory.
    dir: Option<tempfile::TempDir>,
    /// The hub task and what stops it.
    hub: Option<(CancellationToken, JoinHandle<anyhow::Result<()>>)>,
    /// The feed server.
    feed: Option<FeedServer>,
    /// The agents, running or not.
    agents: Vec<DemoAgent>,
}

impl Started {
    /// Stops the agents (SIGTERM, bounded wait, SIGKILL), then the hub and
    /// the feed, then removes the directory unless `keep`.
    async fn stop(&mut self, keep: bool) -> Result<(), DemoError> {
        let stopping = self.agents.iter_mut().map(DemoAgent::stop);
        for said in futures_util::future::join_all(stopping)
            .await
            .into_iter()
            .flatten()
        {
            println!("{said}");
        }
        let mut outcome = Ok(());
        if let Some((stop, task)) = self.hub.take() {
            stop.cancel();
            outcome = match tokio::time::timeout(HUB_TIMEOUT, task).await {
                Ok(Ok(Ok(()))) => {
                    println!("hub stopped");
                    Ok(())
                }
                Ok(Ok(Err(e))) => Err(DemoError::Hub(format!("{e:#}"))),
                Ok(Err(e)) => Err(DemoError::Hub(e.to_string())),
                Err(_) => Err(DemoError::Hub(format!(
                    "did not stop within {HUB_TIMEOUT:?}"
                ))),
            };
        }
        if let Some(feed) = self.feed.take() {
            feed.stop().await;
        }
        if let Some(dir) = self.dir.take() {
            let path = dir.path().display().to_string();
            if keep {
                println!("kept {path}");
                let _ = dir.keep();
            } else {
                dir.close()
                    .map_err(|e| DemoError::TempDir(format!("removing {path}: {e}")))?;
                println!("removed {path}");
            }
        }
        outcome
    }
}

/// Runs the demo until `shutdown` completes (or a failure), then stops
/// everything it started.
///
/// # Errors
/// [`DemoError`], after stopping whatever had started.
pub async fn run(
    options: DemoOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DemoError> {
    let mut started = Started::default();
    let outcome = tokio::select! {
        failed = start_and_watch(&options, &mut started) => Err(failed),
        () = shutdown => Ok(()),
    };
    if started.dir.is_some() {
        println!("stopping the demo");
    }
    let stopped = started.stop(options.keep).await;
    outcome.and(stopped)
}

/// Starts everything, then shows the status until something fails; only
/// returns with the failure.
async fn start_and_watch(options: &DemoOptions, started: &mut Started) -> DemoError {
    match start(options, started).await {
        Ok(running) => watch(running, started).await,
        Err(e) => e,
    }
}

/// What the status loop needs once everything runs.
struct Running {
    /// The operator session.
    operator: Operator,
    /// Names of the demo's items by id.
    item_names: BTreeMap<String, String>,
}

async fn start(options: &DemoOptions, started: &mut Started) -> Result<Running, DemoError> {
    if !(1..=MAX_AGENTS).contains(&options.agents) {
        return Err(DemoError::AgentCount);
    }
    if !options.agent_binary.is_file() {
        return Err(DemoError::AgentBinaryMissing(options.agent_binary.clone()));
    }
    tokio::task::spawn_blocking(media::check_elements)
        .await
        .map_err(|e| DemoError::Hub(e.to_string()))??;
    let dir = tempfile::Builder::new()
        .prefix("signet-demo-")
        .tempdir()
        .map_err(|e| DemoError::TempDir(e.to_string()))?;
    let root = dir.path().to_path_buf();
    started.dir = Some(dir);
    println!("demo directory: {}", root.display());

    // The hub, in-process, with its embedded broker on a free port.
    let data = root.join("hub");
    let initialized = crate::init::init(&data, chrono::Utc::now()).await?;
    let listener = bind_http(options.http).await?;
    let http = listener
        .local_addr()
        .map_err(|e| DemoError::Hub(e.to_string()))?;
    let config = Config {
        data,
        http_listen: http,
        broker_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..Config::default()
    };
    let state = crate::serve::open(config, Arc::new(SystemClock))
        .map_err(|e| DemoError::Hub(format!("{e:#}")))?;
    let stop = CancellationToken::new();
    let task = tokio::spawn(crate::serve::serve_on(
        listener,
        state,
        stop.clone().cancelled_owned(),
    ));
    started.hub = Some((stop, task));
    let base = format!("http://{http}");
    wait_for_hub(&base, started).await?;

    let feed = FeedServer::start()
        .await
        .map_err(|e| DemoError::Feed(e.to_string()))?;
    let feed_url = feed.url.clone();
    started.feed = Some(feed);

    let operator =
        Operator::login(&base, crate::init::ADMIN_NAME, &initialized.admin_password).await?;
    let root_node = initialized.root_node.as_str().to_owned();
    let site = operator
        .create(
            "/api/v1/nodes",
            json!({"parent": root_node, "name": SITE_NAME}),
            "/id",
        )
        .await?;

    let media_dir = root.join("media");
    std::fs::create_dir_all(&media_dir)
        .map_err(|e| DemoError::TempDir(format!("{}: {e}", media_dir.display())))?;
    let mut item_names = BTreeMap::new();
    let mut playlist = Vec::new();
    let mut first_image = None;
    for sample in SAMPLES {
        let dir = media_dir.clone();
        let bytes = tokio::task::spawn_blocking(move || media::encode(&sample, &dir))
            .await
            .map_err(|e| DemoError::Hub(e.to_string()))??;
        let item = operator.upload(&site, sample.name, bytes).await?;
        approve_if_needed(&operator, "content", &item).await?;
        let duration_ms = match sample.kind {
            SampleKind::Video { .. } => item.duration_ms.unwrap_or(ITEM_MS),
            SampleKind::Image => {
                first_image.get_or_insert_with(|| item.id.as_str().to_owned());
                ITEM_MS
            }
        };
        playlist.push(json!({"item": item.id, "duration_ms": duration_ms}));
        item_names.insert(item.id.as_str().to_owned(), sample.name.to_owned());
    }
    println!("uploaded {} sample videos and images", SAMPLES.len());

    let template = template_document(first_image.as_deref(), &feed_url);
    let template: ContentView = operator
        .send(
            Method::POST,
            "/api/v1/templates",
            Some(json!({"node": site, "name": "Welcome board", "template": template})),
        )
        .await?;
    approve_if_needed(&operator, "templates", &template).await?;
    item_names.insert(
        template.id.as_str().to_owned(),
        "Welcome board (template)".to_owned(),
    );
    playlist.insert(0, json!({"item": template.id, "duration_ms": TEMPLATE_MS}));
    let playlist = operator
        .create(
            "/api/v1/playlists",
            json!({"node": site, "name": "Demo loop", "items": playlist}),
            "/id",
        )
        .await?;
    operator
        .create(
            "/api/v1/schedules",
            json!({"target": {"kind": "node", "id": site},
                "entries": [{"id": "all-day", "playlist": playlist, "priority": 0}]}),
            "/id",
        )
        .await?;
    println!("template with a clock and a live feed ({feed_url}), playlist and schedule made");

    pair_agents(options, &base, &site, &operator, started).await?;
    let _: Value = operator
        .send(
            Method::POST,
            "/api/v1/publish",
            Some(json!({"scope": {"kind": "node", "id": site}})),
        )
        .await?;
    println!("published to {SITE_NAME}");
    println!();
    println!("Signet demo is running. Ctrl-C stops it.");
    println!("console: {base}/ (open it in a browser and log in with the admin below)");
    println!(
        "api: {base}/api/v1 (OpenAPI document at {base}/api/v1/openapi.json, interactive docs at {base}/api/docs)"
    );
    println!("admin login: {}", crate::init::ADMIN_NAME);
    println!("admin password: {}", initialized.admin_password);
    println!(
        "try: curl -s -X POST {base}/api/v1/session -H 'content-type: application/json' -d '{{\"name\":\"{}\",\"password\":\"{}\"}}'",
        crate::init::ADMIN_NAME,
        initialized.admin_password
    );
    println!();
    Ok(Running {
        operator,
        item_names,
    })
}

/// Binds the hub's HTTP listener: `requested` exactly, or [`DEFAULT_HTTP`]
/// falling back to a free loopback port when it is taken.
async fn bind_http(requested: Option<SocketAddr>) -> Result<TcpListener, DemoError> {
    let bind =
        |addr: SocketAddr| async move { TcpListener::bind(addr).await.map_err(|e| (addr, e)) };
    let failed = |(addr, e): (SocketAddr, std::io::Error)| DemoError::Bind {
        addr,
        reason: e.to_string(),
    };
    match requested {
        Some(addr) => bind(addr).await.map_err(failed),
        None => match bind(DEFAULT_HTTP).await {
            Err((_, e)) if e.kind() == std::io::ErrorKind::AddrInUse => {
                let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0)))
                    .await
                    .map_err(failed)?;
                println!("{DEFAULT_HTTP} is in use: the hub listens on a free port instead");
                Ok(listener)
            }
            other => other.map_err(failed),
        },
    }
}

/// Waits (bounded) until the hub answers `/healthz`; a hub task that ended
/// meanwhile is reported with its error.
async fn wait_for_hub(base: &str, started: &mut Started) -> Result<(), DemoError> {
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + HUB_TIMEOUT;
    loop {
        hub_still_running(started).await?;
        let answered = client
            .get(format!("{base}/healthz"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if answered {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(DemoError::Hub(format!(
                "no answer at {base}/healthz within {HUB_TIMEOUT:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An error when the hub task has ended (it only ends when told to, or on
/// a failure).
async fn hub_still_running(started: &mut Started) -> Result<(), DemoError> {
    let finished = started
        .hub
        .as_ref()
        .is_none_or(|(_, task)| task.is_finished());
    if !finished {
        return Ok(());
    }
    let reason = match started.hub.take() {
        Some((_, task)) => match task.await {
            Ok(Ok(())) => "stopped".to_owned(),
            Ok(Err(e)) => format!("{e:#}"),
            Err(e) => e.to_string(),
        },
        None => "not started".to_owned(),
    };
    Err(DemoError::Hub(reason))
}

/// Approves `item` (as the admin) when its approval state is not active.
/// The admin made by `init` does not require approval (A3), so this is a
/// no-op unless that changes.
async fn approve_if_needed(
    operator: &Operator,
    route: &str,
    item: &ContentView,
) -> Result<(), DemoError> {
    if item.approval_state != ApprovalState::Active {
        let _: Value = operator
            .send(
                Method::POST,
                &format!("/api/v1/{route}/{}/approve", item.id),
                Some(json!({})),
            )
            .await?;
    }
    Ok(())
}

/// The demo template on the agents' 320×180 screen: a picture, a clock, a
/// title, and a text zone bound to the demo's feed.
fn template_document(image: Option<&str>, feed_url: &str) -> Value {
    let mut zones = Vec::new();
    if let Some(image) = image {
        zones.push(json!({"id": "picture", "kind": "image", "source": image,
            "rect": {"x": 0, "y": 0, "width": 200, "height": 135}}));
    }
    zones.push(json!({"id": "clock", "kind": "clock", "text": "%H:%M:%S",
        "rect": {"x": 200, "y": 0, "width": 120, "height": 45},
        "style": {"font_size_px": 20, "color_rgb": 0x00ff_ffff, "background_rgb": 0x0020_2040,
                  "align": "center"}}));
    zones.push(json!({"id": "title", "kind": "text", "text": "Signet demo",
        "rect": {"x": 200, "y": 45, "width": 120, "height": 90},
        "style": {"font_size_px": 16, "color_rgb": 0x00ff_d040, "background_rgb": 0x0010_1010,
                  "align": "center"}}));
    zones.push(
        json!({"id": "feed", "kind": "text", "text": "waiting for the feed",
        "rect": {"x": 0, "y": 135, "width": 320, "height": 45},
        "style": {"font_size_px": 13, "color_rgb": 0x00ff_ffff, "background_rgb": 0x0030_3060,
                  "align": "left"},
        "feed": {"url": feed_url, "json_pointer": feed::FEED_POINTER, "refresh_secs": 5,
                 "last_value": null}}),
    );
    json!({"canvas": {"width": media::SAMPLE_WIDTH, "height": media::SAMPLE_HEIGHT}, "zones": zones})
}

/// Pairs the agents: each `signet-agent pair` prints a code, the operator
/// approves it into `site`; then each starts `signet-agent run`.
async fn pair_agents(
    options: &DemoOptions,
    base: &str,
    site: &str,
    operator: &Operator,
    started: &mut Started,
) -> Result<(), DemoError> {
    let root = started
        .dir
        .as_ref()
        .map(|d| d.path().to_path_buf())
        .unwrap_or_default();
    let binary = &options.agent_binary;
    for n in 1..=options.agents {
        let agent = DemoAgent::prepare(&root, &format!("screen-{n}"), base)?;
        started.agents.push(agent);
    }
    for agent in &mut started.agents {
        let code = agent.start_pairing(binary, base).await?;
        let device = operator
            .create(
                &format!("/api/v1/devices/pairings/{code}/approve"),
                json!({"node": site, "name": agent.name}),
                "/device/id",
            )
            .await?;
        agent.device = Some(device);
        agent.finish_pairing().await?;
        agent.start_running(binary)?;
        println!(
            "agent {} paired as {} and running (pid {}, log {})",
            agent.name,
            agent.device.as_deref().unwrap_or("?"),
            agent.pid.map_or_else(|| "?".to_owned(), |p| p.to_string()),
            agent.log.display()
        );
    }
    Ok(())
}

/// Shows the status every [`STATUS_EVERY`] until the hub fails.
async fn watch(running: Running, started: &mut Started) -> DemoError {
    let mut board = StatusBoard::new();
    let mut announced = false;
    let mut tick = tokio::time::interval(STATUS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = hub_still_running(started).await {
            return e;
        }
        for agent in &mut started.agents {
            if let Some(status) = agent.newly_exited() {
                board.message(&format!(
                    "agent {} exited by itself ({status}); see {} — the demo goes on",
                    agent.name,
                    agent.log.display()
                ));
            }
        }
        let fleet = match running.operator.fleet().await {
            Ok(fleet) => fleet,
            Err(e) => {
                board.show(vec![format!("fleet view unavailable: {e}")]);
                continue;
            }
        };
        let mut all = true;
        let lines = started
            .agents
            .iter()
            .map(|agent| {
                let summary = AgentSummary {
                    name: &agent.name,
                    device: agent.device.as_deref(),
                    exited: agent.exited.map(|s| s.to_string()),
                };
                let view = summary
                    .device
                    .and_then(|id| fleet.iter().find(|d| d.device_id.as_str() == id));
                all &= summary.exited.is_none() && view.is_some_and(status::is_playing_in_sync);
                status::device_line(&summary, view, &running.item_names)
            })
            .collect();
        if all && !announced {
            announced = true;
            board.message(&status::all_playing_line(started.agents.len()));
        }
        board.show(lines);
    }
}
