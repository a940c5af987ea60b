//! `signet-hub serve`: run the hub until told to stop.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use chrono::TimeDelta;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{self, AppState, Clock, SystemClock};
use crate::config::Config;
use crate::fleet::alerts::{AlertLoop, AlertOptions};
use crate::identity::LoginThrottle;
use crate::init::store_dir;
use crate::keys;
use crate::mail::sender::{MailSender, SenderOptions};
use crate::publish::{LogPublisher, LoopOptions, PublishLoop};
use crate::store::{SledStorage, Store};

/// Opens the data directory of `config` and builds the shared state, with
/// [`LogPublisher`] as its publisher until the MQTT sync issue provides a
/// transport (replace `publisher` in the returned state to use another).
///
/// # Errors
/// When the keys or the store cannot be opened; the message says which file
/// and suggests `init` when the directory was never initialized.
pub fn open(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<AppState> {
    let data = config.data.clone();
    if !store_dir(&data).exists() {
        anyhow::bail!(
            "{} is not a Signet data directory: run `signet-hub init --data {}` first",
            data.display(),
            data.display()
        );
    }
    let keys = keys::load(&data)?;
    let store = Store::new(Arc::new(SledStorage::open(&store_dir(&data))?));
    let window = i64::try_from(config.login_lockout_secs)
        .ok()
        .and_then(TimeDelta::try_seconds)
        .unwrap_or(TimeDelta::minutes(15));
    let throttle = Arc::new(LoginThrottle::new(config.login_max_failures, window));
    Ok(AppState {
        store,
        config: Arc::new(config),
        throttle,
        clock,
        mail_wake: Arc::new(tokio::sync::Notify::new()),
        keys: Arc::new(keys),
        publisher: Arc::new(LogPublisher),
        publish_wake: Arc::new(tokio::sync::Notify::new()),
        broker_admin: Arc::new(crate::mqtt::admin::StoreAuthenticated),
    })
}

/// Serves the API on `listener` until `shutdown` completes, then finishes
/// the requests in flight.
///
/// # Errors
/// When the server fails.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = api::router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

/// `signet-hub serve`: opens the data directory, binds, prints the address
/// and serves until `shutdown`, with the mail sender, the publishing loop
/// (which first republishes all retained state, S4) and the fleet alert
/// loop (U4) running alongside; the same `shutdown` stops them all, and
/// `serve` returns once all have stopped.
///
/// # Errors
/// When opening, binding or serving fails.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listen = config.http_listen;
    let state = open(config, Arc::new(SystemClock))?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("binding {listen}: {e}"))?;
    let bound = listener.local_addr()?;
    // One line on stdout that scripts and tests can read.
    println!("signet-hub listening on http://{bound}");
    tracing::info!(%bound, "listening");
    let stop = CancellationToken::new();
    let sender = MailSender::spawn(state.clone(), SenderOptions::default(), stop.child_token());
    let publishing = PublishLoop::spawn(state.clone(), LoopOptions::default(), stop.child_token());
    let alerting = AlertLoop::spawn(
        state.clone(),
        AlertOptions::from_config(&state.config),
        stop.child_token(),
    );
    let stop_sender = stop.clone();
    let served = run(listener, state, async move {
        shutdown.await;
        stop_sender.cancel();
    })
    .await;
    // Also when serving failed: the background loops must not outlive the server.
    stop.cancel();
    sender.stop().await;
    publishing.stop().await;
    alerting.stop().await;
    served
}
