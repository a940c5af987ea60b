//! The `signet-agent` binary (DESIGN §6): `run`, `pair`, `status`, `verify`.
//! Errors reach the user as one line on stderr and a non-zero exit status.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use signet_agent::config::AgentConfig;
use signet_agent::state::{StateError, Store};
use signet_common::log_style::{JOURNAL_STREAM_VAR, LOG_FORMAT_VAR, LogStyle};

/// Signet's daemon on every screen.
#[derive(Debug, Parser)]
#[command(name = "signet-agent", version)]
struct Cli {
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the agent: sync signed state, fetch content, play, report.
    Run {
        /// The TOML config file (every key also as SIGNET_AGENT_<KEY>).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Pair this device: show a code and wait for an operator to approve it.
    Pair {
        /// The hub's base URL, e.g. http://hub.example:8080.
        #[arg(long)]
        hub: String,
        /// The TOML config file (for the data dir).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Show what is applied, the trusted time and the offline grace.
    Status {
        /// The TOML config file (for the data dir).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Verify a signed document offline.
    Verify {
        /// The root public key: base64 of 32 bytes, or a root.pub file.
        #[arg(long)]
        root: String,
        /// The root-signed trust document certifying the signing key
        /// (needed for every kind but `trust`).
        #[arg(long)]
        trust: Option<PathBuf>,
        /// The signed document (envelope JSON).
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if let Err(error) = init_logging(filter) {
        eprintln!("signet-agent: {error}");
        return ExitCode::FAILURE;
    }
    let run_config = match &cli.command {
        Command::Run { config } => Some(config.clone()),
        _ => None,
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("signet-agent: {error:#}");
            let not_paired = matches!(
                error.downcast_ref::<StateError>(),
                Some(StateError::NotPaired)
            );
            if not_paired
                && let Some(config) = run_config
                && let Some(hint) = systemd_pairing_hint(config.as_deref())
            {
                eprintln!("{hint}");
            }
            if not_paired || error.is::<signet_agent::config::ConfigError>() {
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
/// (a bad config, an unpaired device): sysexits' EX_CONFIG, which the
/// unit's `RestartPreventExitStatus=` names so systemd does not restart in a
/// loop.
const EXIT_NOT_CONFIGURED: u8 = 78;

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Verify { root, trust, file } => {
            let report =
                signet_agent::inspect::verify(&root, trust.as_deref(), &file, chrono::Utc::now())
                    .map_err(anyhow::Error::msg)?;
            print!("{report}");
            Ok(())
        }
        Command::Status { config } => {
            let config = AgentConfig::load(config.as_deref())?;
            let report = signet_agent::inspect::status(
                &config.data_dir,
                config
                    .max_decode
                    .resolve(signet_agent::sensors::is_raspberry_pi())
                    .as_ref(),
            )
            .map_err(anyhow::Error::msg)?;
            print!("{report}");
            Ok(())
        }
        Command::Pair { hub, config } => {
            let config = AgentConfig::load(config.as_deref())?;
            let store = Store::open(&config.data_dir)?;
            let runtime = tokio::runtime::Runtime::new()?;
            let os = signet_agent::sync::report::os_name();
            let mut stdout = std::io::stdout();
            runtime.block_on(signet_agent::pairing::pair(&store, &hub, &os, &mut stdout))?;
            Ok(())
        }
        Command::Run { config } => {
            let loaded = AgentConfig::load(config.as_deref())?;
            let store =
                Store::open_patiently(&loaded.data_dir, std::time::Duration::from_secs(10))?;
            if store.identity()?.is_none() {
                return Err(StateError::NotPaired.into());
            }
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(signet_agent::daemon::run(
                loaded,
                config,
                store,
                shutdown_signal(),
            ))?;
            Ok(())
        }
    }
}

/// Under systemd (`INVOCATION_ID` is set), the commands that pair this
/// device as the service's user (`USER`, which systemd sets from `User=`),
/// so the state files are the service's.
fn systemd_pairing_hint(config: Option<&std::path::Path>) -> Option<String> {
    std::env::var_os("INVOCATION_ID")?;
    let user = std::env::var("USER").unwrap_or_else(|_| "signet".to_owned());
    let config = config
        .map(|path| format!(" --config {}", path.display()))
        .unwrap_or_default();
    Some(format!(
        "signet-agent: under systemd, pair it as the service's user, then start again:\n  \
         sudo -u {user} signet-agent pair --hub URL{config}\n  \
         sudo systemctl restart signet-agent"
    ))
}

/// Completes on Ctrl-C or SIGTERM (systemd's stop).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
