//! The `signet-hub` binary: `init`, `serve`, `demo` (DESIGN §6),
//! `keys rotate-signing` and `keys rotate-root` (S2), `migrate` (a sled
//! store into PostgreSQL, X4), `openapi` (the API's
//! document, for the console's types, C1) and the hidden `dev-seed-fleet` (a fake fleet for the console's bench, C3).

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use signet_common::log_style::{JOURNAL_STREAM_VAR, LOG_FORMAT_VAR, LogStyle};

/// Signet hub: tenancy, identity, content, publishing.
#[derive(Parser)]
#[command(name = "signet-hub", version)]
struct Cli {
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a data directory: keys, root node, admin user.
    Init {
        /// The data directory to create.
        #[arg(long)]
        data: PathBuf,
    },
    /// Rotate the hub's keys (S2); a running hub picks the new files up
    /// within seconds, devices need no re-pairing.
    Keys {
        /// Which key.
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Run the hub.
    Serve {
        /// TOML config file; every key can also be set as SIGNET_HUB_<KEY>.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Start a demo on a temporary data dir: the hub with its embedded
    /// broker, sample content, headless agents, and a live status until
    /// Ctrl-C.
    Demo {
        /// How many headless agents to start.
        #[arg(long, default_value_t = 3,
              value_parser = clap::value_parser!(u8).range(1..=i64::from(signet_hub::demo::MAX_AGENTS)))]
        agents: u8,
        /// The hub's HTTP address [default: 127.0.0.1:8080, or a free port
        /// when that one is taken].
        #[arg(long)]
        http: Option<SocketAddr>,
        /// Keep the temporary directory (data, logs) after stopping.
        #[arg(long)]
        keep: bool,
        /// The signet-agent binary [default: next to this signet-hub].
        #[arg(long, env = "SIGNET_AGENT_BIN")]
        agent_bin: Option<PathBuf>,
    },
    /// Copy a sled store into PostgreSQL (X4): every tree; running it again
    /// finishes or repeats a copy; each tree's count is checked. Stop the
    /// hub first; then set `store` to the URL in hub.toml.
    Migrate {
        /// The sled store: a data directory `init` made, or its `store/`.
        #[arg(long)]
        from: PathBuf,
        /// The PostgreSQL database, `postgres://user:password@host/db`.
        #[arg(long)]
        to: String,
    },
    /// Print the hub's OpenAPI document (the one served at
    /// /api/v1/openapi.json) as JSON; `console/openapi.json` is a copy.
    Openapi,
    /// Development only: seed N fake devices into a test data directory
    /// (refused when it holds a real device), for the console's fleet bench.
    #[command(name = "dev-seed-fleet", hide = true)]
    DevSeedFleet {
        /// How many fake devices.
        #[arg(long)]
        devices: usize,
        /// A data directory `init` made, holding no real device.
        #[arg(long)]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// A new online signing key, certified by the offline root in trust
    /// version N+1; the keys it replaces stay valid for the overlap.
    RotateSigning {
        /// The hub's data directory.
        #[arg(long)]
        data: PathBuf,
        /// The offline root private key (PKCS#8); read, never stored.
        #[arg(long)]
        root_key: PathBuf,
        /// How long documents signed by the previous key stay valid
        /// (e.g. 30m, 24h, 7d).
        #[arg(long, default_value = "24h", value_parser = signet_hub::keys::rotate::parse_overlap)]
        overlap: chrono::TimeDelta,
    },
    /// A new root key pair: trust version N+1 signed by the old root
    /// carries it; keys/root.pub becomes the new root.
    RotateRoot {
        /// The hub's data directory.
        #[arg(long)]
        data: PathBuf,
        /// The current (old) offline root private key (PKCS#8).
        #[arg(long)]
        root_key: PathBuf,
        /// Where to write the new root private key (mode 0600; must not
        /// exist): take it offline.
        #[arg(long)]
        new_root_key_out: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo's terminal shows its status: the hub logs only warnings (the
    // managed broker's own lines are info); SIGNET_LOG overrides it.
    let default_log = match cli.command {
        Command::Demo { .. } => "warn",
        _ => "info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SIGNET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_log));
    if let Err(e) = init_logging(filter) {
        eprintln!("signet-hub: {e}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("signet-hub: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Init { data } => init(&data).await,
            Command::Openapi => print_openapi(),
            Command::Migrate { from, to } => migrate(from, to).await,
            Command::DevSeedFleet { devices, data_dir } => seed_fleet(&data_dir, devices).await,
            Command::Serve { config } => serve(config).await,
            Command::Keys { command } => rotate_keys(command),
            Command::Demo {
                agents,
                http,
                keep,
                agent_bin,
            } => {
                let options = signet_hub::demo::DemoOptions {
                    agents,
                    http,
                    keep,
                    agent_binary: agent_bin.unwrap_or_else(signet_hub::demo::default_agent_binary),
                };
                signet_hub::demo::run(options, shutdown_signal())
                    .await
                    .map_err(anyhow::Error::from)
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("signet-hub: {e:#}");
            if let Some(hint) = systemd_hint(&e) {
                eprintln!("{hint}");
            }
            if e.is::<signet_hub::config::ConfigError>()
                || e.is::<signet_hub::serve::NotInitialized>()
            {
                ExitCode::from(EXIT_NOT_CONFIGURED)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Logs to stderr through `filter` in the style `SIGNET_LOG_FORMAT` and
/// systemd's `JOURNAL_STREAM` select ([`LogStyle::choose`]).
fn init_logging(filter: tracing_subscriber::EnvFilter) -> Result<(), String> {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let format = std::env::var(LOG_FORMAT_VAR).ok();
    let under_journal = std::env::var_os(JOURNAL_STREAM_VAR).is_some();
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let layer = match LogStyle::choose(format.as_deref(), under_journal)? {
        LogStyle::Json => layer.json().boxed(),
        LogStyle::Journald => layer.with_ansi(false).without_time().boxed(),
        LogStyle::Text => layer.with_ansi(std::io::stderr().is_terminal()).boxed(),
    };
    tracing_subscriber::registry()
        .with(layer.with_filter(filter))
        .init();
    Ok(())
}

/// The exit status of a start that cannot succeed until an operator acts
/// (a bad config, an uninitialized data dir): sysexits' EX_CONFIG, which the
/// unit's `RestartPreventExitStatus=` names so systemd does not restart in a
/// loop.
const EXIT_NOT_CONFIGURED: u8 = 78;

/// Under systemd (`INVOCATION_ID` is set), how to initialize the data dir
/// as the service's own dynamic user, so the files are the service's.
fn systemd_hint(error: &anyhow::Error) -> Option<String> {
    let missing = error.downcast_ref::<signet_hub::serve::NotInitialized>()?;
    std::env::var_os("INVOCATION_ID")?;
    let data = missing.data.display();
    Some(format!(
        "signet-hub: under systemd, initialize it as the service's user (this prints the admin password once, on your terminal), then start again:\n  \
         sudo systemd-run --pty --wait --collect -p DynamicUser=yes -p User=signet-hub -p StateDirectory=signet-hub /usr/bin/signet-hub init --data {data}\n  \
         sudo systemctl restart signet-hub"
    ))
}

async fn init(data: &std::path::Path) -> anyhow::Result<()> {
    let made = signet_hub::init::init(data, chrono::Utc::now()).await?;
    println!("initialized {}", data.display());
    println!("admin login: {}", signet_hub::init::ADMIN_NAME);
    println!("admin password: {}", made.admin_password);
    println!("root key fingerprint: {}", made.root_fingerprint);
    println!(
        "move {} offline: the hub needs only root.pub to run",
        signet_hub::keys::key_dir(data).join("root.key").display()
    );
    Ok(())
}

/// `signet-hub keys …`: [`signet_hub::keys::rotate`].
fn rotate_keys(command: KeysCommand) -> anyhow::Result<()> {
    use signet_hub::keys::rotate;
    let now = chrono::Utc::now();
    match command {
        KeysCommand::RotateSigning {
            data,
            root_key,
            overlap,
        } => {
            let done = rotate::rotate_signing(&data, &root_key, overlap, now)?;
            println!(
                "trust version {} -> {}: new signing key {}; the previous keys stay valid until {}",
                done.from_version,
                done.to_version,
                done.new_key,
                (now + overlap).to_rfc3339()
            );
        }
        KeysCommand::RotateRoot {
            data,
            root_key,
            new_root_key_out,
        } => {
            let done = rotate::rotate_root(&data, &root_key, &new_root_key_out, now)?;
            println!(
                "trust version {} -> {}: new root key fingerprint {}",
                done.from_version, done.to_version, done.new_key
            );
            println!(
                "move {} offline; {} is no longer the root",
                new_root_key_out.display(),
                root_key.display()
            );
        }
    }
    println!(
        "a running hub picks the new keys up within seconds; with replicas, copy the keys \
         directory to each (docs/replicas.md)"
    );
    Ok(())
}

/// `signet-hub migrate`: [`signet_hub::store::migrate::sled_to_postgres`].
async fn migrate(from: PathBuf, to: String) -> anyhow::Result<()> {
    if !signet_hub::store::is_postgres(&to) {
        anyhow::bail!("--to must be a postgres:// or postgresql:// URL");
    }
    let copied = tokio::task::spawn_blocking(move || {
        signet_hub::store::migrate::sled_to_postgres(&from, &to)
    })
    .await??;
    for (tree, records) in &copied.trees {
        println!("{tree}: {records} records");
    }
    println!(
        "copied {} records in {} trees; set store to the PostgreSQL URL in hub.toml",
        copied.records(),
        copied.trees.len()
    );
    Ok(())
}

/// `signet-hub openapi`: the document, pretty-printed, with a final newline
/// (what `make console-spec-check` compares `console/openapi.json` with).
fn print_openapi() -> anyhow::Result<()> {
    use std::io::Write as _;
    let json = serde_json::to_string_pretty(&signet_hub::api::openapi())?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(json.as_bytes())?;
    stdout.write_all(b"\n")?;
    stdout.flush()?;
    Ok(())
}

/// `signet-hub dev-seed-fleet`: [`signet_hub::fleet::fixture::seed`] on
/// the store of `data` (which the hub must not have open).
async fn seed_fleet(data: &std::path::Path, devices: usize) -> anyhow::Result<()> {
    let store_dir = signet_hub::init::store_dir(data);
    if !store_dir.exists() {
        return Err(signet_hub::serve::NotInitialized {
            data: data.to_owned(),
        }
        .into());
    }
    let storage = signet_hub::store::SledStorage::open(&store_dir)?;
    let store = signet_hub::store::Store::new(std::sync::Arc::new(storage));
    let now = chrono::Utc::now();
    let seeded = signet_hub::fleet::fixture::seed(&store, devices, now).await?;
    println!(
        "seeded {} fake devices at {} sites under {} regions in {}: {} online (until heartbeat_timeout_secs from now), {} never reported",
        seeded.devices,
        seeded.sites,
        seeded.regions,
        data.display(),
        seeded.online,
        seeded.never_reported
    );
    Ok(())
}

async fn serve(config: Option<PathBuf>) -> anyhow::Result<()> {
    let config = signet_hub::config::Config::load(config.as_deref(), std::env::vars())?;
    signet_hub::serve::serve(config, shutdown_signal()).await
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(%e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}
