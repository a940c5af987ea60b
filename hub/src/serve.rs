//! `signet-hub serve`: run the hub until told to stop.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::access_groups::Entitled;
use crate::api;
use crate::app::{Clock, Hub, Installed, SystemClock};
use crate::background::Background;
use crate::cluster;
use crate::config::Config;
use crate::fleet::FleetIngest;
use crate::fleet::alerts::{self, AlertOptions};
use crate::mail::sender::{MailSender, SenderOptions};
use crate::mqtt::broker::{BrokerSettings, ManagedBroker};
use crate::mqtt::dynsec::{self, DynsecAdmin, DynsecSettings};
use crate::mqtt::reports::FleetReports;
use crate::mqtt::{BrokerConnection, HubLink, LinkOptions, MqttError, RunningLink};
use crate::publish::{self, LoopOptions};
use crate::systemd::{self, Essential, Health};

pub use crate::app::NotInitialized;

/// Opens the data directory of `config` and builds the hub ([`Hub::open`])
/// with the fleet's ingest queue ([`FleetIngest`]) and the access groups'
/// entitlements ([`Entitled`]).
///
/// # Errors
/// As [`Hub::open`].
pub fn open(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Hub> {
    let installed = Installed {
        fleet_ingest: Arc::new(FleetIngest::default()),
        entitlements: Arc::new(Entitled),
    };
    Hub::open(config, clock, installed)
}

/// Serves the API on `listener` until `shutdown` completes, then finishes
/// the requests in flight.
///
/// Connection hygiene (S12): at most `http_max_connections` connections
/// are served at once (further clients wait in the listen backlog); a
/// client that has not sent a request's headers within
/// `http_header_timeout_secs` is disconnected by hyper's header-read timer;
/// a body that stalls or crawls is cut off by [`api::router`]'s body guard.
///
/// # Errors
/// When the server fails.
pub async fn run(
    listener: TcpListener,
    state: Hub,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

    let header_timeout = Duration::from_secs(state.config.http_header_timeout_secs);
    let slots = Arc::new(tokio::sync::Semaphore::new(
        state.config.http_max_connections,
    ));
    let fleet_feed = state.fleet_feed.clone();
    let app = api::router(state);
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(header_timeout)
        .keep_alive_timeout(header_timeout);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut failures = 0_u32;
    loop {
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => slot?,
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => {
                    failures = 0;
                    accepted
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off
                    // instead of spinning (mini-redis).
                    failures = failures.saturating_add(1);
                    let wait = Duration::from_millis(10 << failures.min(7));
                    tracing::warn!(error = %e, ?wait, "accepting a connection failed");
                    tokio::time::sleep(wait).await;
                    continue;
                }
            },
        };
        let service = hyper_util::service::TowerToHyperService::new(
            tower_http::add_extension::AddExtension::new(
                app.clone(),
                axum::extract::ConnectInfo(peer),
            ),
        );
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    // Live streams never end by themselves: end them, so the connections
    // finish.
    fleet_feed.close();
    graceful.shutdown().await;
    Ok(())
}

/// With `mqtt.dynsec`, connects the dynamic-security administrator of the
/// external mosquitto, installs it as `state.broker_admin`, and in the
/// background (retrying with back-off until the broker answers) bootstraps
/// the ACL defaults and the hub's role, then re-grants every paired device
/// its current access, so a broker that lost or missed changes converges
/// (S4, S7). Without it, the store-authenticated default stays.
///
/// # Errors
/// When the administrator cannot be set up (a bad URL or CA file).
pub fn start_broker_admin(state: &mut Hub, cancel: CancellationToken) -> anyhow::Result<()> {
    let mqtt = &state.config.mqtt;
    if !mqtt.dynsec {
        return Ok(());
    }
    let (Some(url), Some(username), Some(password)) = (&mqtt.url, &mqtt.username, &mqtt.password)
    else {
        anyhow::bail!("mqtt.dynsec needs mqtt.url, mqtt.username and mqtt.password");
    };
    let ca_pem = match &mqtt.ca_file {
        Some(path) => Some(
            std::fs::read(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?,
        ),
        None => None,
    };
    let settings = DynsecSettings {
        url: url.clone(),
        username: username.clone(),
        password: password.clone(),
        ca_pem,
        timeout: dynsec::DEFAULT_TIMEOUT,
    };
    let hub_user = username.clone();
    administer(state, settings, hub_user, cancel)?;
    Ok(())
}

/// Connects a [`DynsecAdmin`] with `settings`, installs it as
/// `state.broker_admin`, and — while this replica leads (X5), retrying
/// with back-off until the broker answers — bootstraps the ACL defaults
/// and `hub_user`'s role, then grants every paired device its current
/// access from the store (its groups; revoked devices have no record and
/// so no access), so a broker that lost or missed changes converges (S4,
/// S7, S10); a new leader does it again. Later changes reach the broker
/// through the durable outbox ([`crate::devices::outbox`]: pairing,
/// unpairing, moves, access-group changes and new assignments).
fn administer(
    state: &mut Hub,
    settings: DynsecSettings,
    hub_user: String,
    cancel: CancellationToken,
) -> anyhow::Result<Arc<DynsecAdmin>> {
    let admin = Arc::new(DynsecAdmin::connect(settings)?);
    state.broker_admin = admin.clone();
    let state = state.clone();
    let background = Arc::clone(&admin);
    // Detached: it ends with `cancel`.
    let _work = cluster::lead(
        "broker reconciliation",
        state.replica.clone(),
        cancel,
        Box::new(move |term| {
            Box::pin(reconcile_broker(
                state.clone(),
                background.clone(),
                hub_user.clone(),
                term,
            ))
        }),
    );
    Ok(admin)
}

/// Bootstraps the broker's ACL defaults and the hub's role, then
/// reconciles every device's access, retrying with back-off until done or
/// `cancel`.
async fn reconcile_broker(
    state: Hub,
    admin: Arc<DynsecAdmin>,
    hub_user: String,
    cancel: CancellationToken,
) {
    let mut wait = std::time::Duration::from_secs(1);
    loop {
        let attempt = async {
            admin.bootstrap(&hub_user, None).await?;
            let failed = crate::devices::reconcile_broker_access(&state)
                .await
                .map_err(|e| crate::mqtt::admin::BrokerAdminError(e.to_string()))?;
            Ok::<usize, crate::mqtt::admin::BrokerAdminError>(failed)
        };
        tokio::select! {
            () = cancel.cancelled() => return,
            result = attempt => match result {
                Ok(0) => {
                    tracing::info!("broker access bootstrapped and reconciled");
                    return;
                }
                Ok(failed) => tracing::warn!(failed, "some devices' broker access not reconciled; retrying"),
                Err(e) => tracing::warn!(error = %e, "broker administration not ready; retrying"),
            },
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(std::time::Duration::from_secs(60));
    }
}

/// With `mqtt.embedded` (the default), starts the hub-managed mosquitto
/// ([`ManagedBroker`]: config and plugin store under `{data}/broker`,
/// supervised, killed when the returned handle is dropped), records its
/// real address in `state.config.broker_listen` (port 0 becomes a free
/// port), and administers it like an external mosquitto ([`administer`]).
/// `None` with an external broker.
///
/// # Errors
/// When the broker cannot start (binary or plugin missing, address in use).
pub async fn start_managed_broker(
    state: &mut Hub,
    cancel: CancellationToken,
) -> anyhow::Result<Option<ManagedBroker>> {
    if !state.config.mqtt.embedded {
        return Ok(None);
    }
    let settings = BrokerSettings::from_config(&state.config);
    // Blocks up to seconds (writing its store, waiting for the listener);
    // the broker process is spawned by the supervisor thread it makes.
    let broker = tokio::task::spawn_blocking(move || ManagedBroker::start(&settings)).await??;
    if broker.addr() != state.config.broker_listen {
        // Port 0 became a free port: devices must be told the real one.
        let mut config = (*state.config).clone();
        config.broker_listen = broker.addr();
        state.config = Arc::new(config);
    }
    let admin = administer(
        state,
        broker.admin_settings(),
        crate::mqtt::HUB_USERNAME.to_owned(),
        cancel,
    )?;
    // Devices paired before the broker held credentials (under the
    // embedded broker of before) get theirs at their next HTTP request.
    let paired: Vec<crate::devices::Device> = state.store.scan(crate::devices::DEVICES, "")?;
    let missing: Vec<_> = paired
        .into_iter()
        .map(|d| d.id)
        .filter(|id| !broker.users_with_password().contains(id.as_str()))
        .collect();
    if !missing.is_empty() {
        tracing::info!(
            devices = missing.len(),
            "paired devices without a broker password: each gets it at its next HTTP request"
        );
    }
    admin.expect_missing_passwords(missing);
    Ok(Some(broker))
}

/// Starts the hub's MQTT link — to the managed broker when `managed` is
/// given, else to the external `mqtt.url` — installs the link's publisher
/// in `state` and hands device reports to [`crate::fleet`]. An
/// unreachable broker is not an error: the link keeps retrying with
/// back-off while the hub serves HTTP.
///
/// # Errors
/// When a TLS file cannot be read or the external broker is misconfigured.
pub fn start_mqtt(
    state: &mut Hub,
    managed: Option<&ManagedBroker>,
    cancel: CancellationToken,
) -> Result<RunningLink, MqttError> {
    let connection = match managed {
        Some(broker) => broker.hub_connection(),
        None => BrokerConnection::external(&state.config.mqtt)?,
    };
    tracing::info!(?connection, "MQTT broker");
    let options = LinkOptions {
        hub_time_interval: std::time::Duration::from_secs(state.config.hub_time_interval_secs),
        ..LinkOptions::default()
    };
    let link = HubLink::new(&connection, options, state.metrics.clone());
    state.publisher = Arc::new(link.publisher());
    let reports = Arc::new(FleetReports {
        state: state.clone(),
    });
    Ok(link.spawn(state.clone(), reports, cancel))
}

/// `signet-hub serve`: opens the data directory, binds, prints the address
/// and serves until `shutdown`, with the MQTT side ([`start_mqtt`], which
/// republishes all retained state on every connect, S4), the mail sender,
/// the publishing loop and the fleet alert loop (U4) running alongside, and
/// by default the managed broker ([`start_managed_broker`]); the same
/// `shutdown` stops them all, and `serve` returns once all have stopped
/// (the managed broker is killed last).
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
    serve_on(listener, state, shutdown).await
}

/// [`serve`] on a listener the caller bound (`signet-hub demo` binds its
/// own, to fall back to a free port) with `state` from [`open`].
///
/// # Errors
/// When starting the MQTT side or serving fails.
pub async fn serve_on(
    listener: TcpListener,
    mut state: Hub,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let bound = listener.local_addr()?;
    if bound != state.config.http_listen {
        // Port 0 became a free port: manifests name content at the real
        // address (unless `public_url` says otherwise), and so does pairing.
        let mut config = (*state.config).clone();
        config.http_listen = bound;
        state.config = Arc::new(config);
    }
    // One line on stdout that scripts and tests can read.
    println!("signet-hub listening on http://{bound}");
    tracing::info!(%bound, "listening");
    let stop = CancellationToken::new();
    // The leader election first (X5): on sled this hub leads at once.
    let election = crate::cluster::election::spawn(state.clone(), stop.child_token());
    if crate::store::is_postgres(&state.config.store) && state.config.mqtt.embedded {
        tracing::warn!(
            "PostgreSQL store with the managed broker: fine for one hub; replicas need an \
             external broker (mqtt.embedded = false, mqtt.shared_subscriptions = true)"
        );
    }
    let managed = start_managed_broker(&mut state, stop.child_token()).await?;
    start_broker_admin(&mut state, stop.child_token())?;
    let mqtt = start_mqtt(&mut state, managed.as_ref(), stop.child_token())?;
    let leader = Leader {
        state: &state,
        stop: &stop,
    };
    // Every replica picks up rotated key files (S2); the leader publishes.
    let key_watch =
        publish::spawn_key_watch(state.clone(), publish::KEY_WATCH_EVERY, stop.child_token());
    // Broker grants and revocations left pending (before a restart, or
    // refused by the broker) are applied in the background (S7, S10).
    let outbox = leader.run("broker outbox", |state, term| async move {
        let _ = crate::devices::outbox::spawn_worker(state, term).await;
    });
    let sender = leader.run("mail sender", |state, term| async move {
        let sender = MailSender::spawn(state, SenderOptions::default(), term.clone());
        term.cancelled().await;
        sender.stop().await;
    });
    let publishing = leader.run("publishing loop", |state, term| async move {
        let publishing = publish::spawn_loop(state, LoopOptions::default(), term.clone());
        term.cancelled().await;
        publishing.stop().await;
    });
    // Rendition jobs (M3); one left running by a stop is redone.
    let renditions = leader.run("rendition worker", |state, term| async move {
        let _ = crate::content::renditions::worker::spawn(state, term).await;
    });
    let alerting = leader.run("alert loop", |state, term| async move {
        let options = AlertOptions::from_config(&state.config);
        let alerting = alerts::spawn_loop(state, options, term.clone());
        term.cancelled().await;
        alerting.stop().await;
    });
    let broker = if state.config.mqtt.embedded {
        format!("managed on {}", state.config.broker_listen)
    } else {
        state.config.mqtt.url.clone().unwrap_or_default()
    };
    let health = Health::new(
        bound,
        state
            .config
            .mqtt
            .embedded
            .then_some(state.config.broker_listen),
        vec![
            Essential {
                name: "MQTT link",
                running: Box::new(|| mqtt.is_running()),
            },
            Essential {
                name: "mail sender",
                running: Box::new(|| sender.is_running()),
            },
            Essential {
                name: "publishing loop",
                running: Box::new(|| publishing.is_running()),
            },
            Essential {
                name: "alert loop",
                running: Box::new(|| alerting.is_running()),
            },
        ],
    )?;
    let connections = mqtt.connections();
    let stop_sender = stop.clone();
    let server = run(listener, state, async move {
        shutdown.await;
        systemd::notify(&[
            NotifyState::Stopping,
            NotifyState::Status("stopping: finishing the requests in flight"),
        ]);
        stop_sender.cancel();
    });
    tokio::pin!(server);
    // The supervision runs in this task, beside the server: a wedged
    // runtime stops the health tick too.
    let served = tokio::select! {
        served = &mut server => served,
        () = supervise(&health, connections, bound, &broker) => server.await,
    };
    drop(health);
    // Also when serving failed: the background loops must not outlive the server.
    stop.cancel();
    sender.stop().await;
    publishing.stop().await;
    renditions.stop().await;
    outbox.stop().await;
    mqtt.stop().await;
    alerting.stop().await;
    key_watch.stop().await;
    let _ = election.await;
    // Last: the link above said goodbye to it; dropping kills the broker.
    drop(managed);
    served
}

/// Starts the leader-only loops of one hub (X5, [`cluster::lead`]).
struct Leader<'a> {
    /// The hub.
    state: &'a Hub,
    /// Stops them with the hub.
    stop: &'a CancellationToken,
}

impl Leader<'_> {
    /// Runs `work` (given the hub and the term's token; it must end soon
    /// after the token is cancelled) while this replica leads.
    fn run<F, Fut>(&self, name: &'static str, work: F) -> Background
    where
        F: Fn(Hub, CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let state = self.state.clone();
        cluster::lead(
            name,
            self.state.replica.clone(),
            self.stop.child_token(),
            Box::new(move |term| Box::pin(work(state.clone(), term))),
        )
    }
}

/// How long readiness waits for the first broker connection; an external
/// broker that is down then does not hold the hub's start, the link keeps
/// retrying (O3) and `STATUS=` says so.
pub const BROKER_READY_WAIT: Duration = Duration::from_secs(10);

/// Tells systemd `READY=1` once the HTTP server answers `/healthz` and the
/// MQTT link has connected (at most [`BROKER_READY_WAIT`]), then runs the
/// watchdog's health tick when systemd asked for one (O1).
async fn supervise(
    health: &Health<'_>,
    mut connections: tokio::sync::watch::Receiver<u64>,
    bound: SocketAddr,
    broker: &str,
) {
    let mut waited = 0_u32;
    while let Err(reason) = health.http_answers().await {
        waited += 1;
        if waited == 50 {
            tracing::warn!(%reason, "the HTTP server does not answer yet; not ready");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let connected = tokio::time::timeout(BROKER_READY_WAIT, connections.wait_for(|n| *n > 0))
        .await
        .is_ok_and(|seen| seen.is_ok());
    let status = if connected {
        format!("serving http://{bound}; MQTT broker {broker} connected")
    } else {
        tracing::warn!(%broker, "MQTT broker not reachable yet: ready anyway, the link keeps retrying");
        format!("serving http://{bound}; MQTT broker {broker} not reachable yet, retrying")
    };
    systemd::notify(&[NotifyState::Ready, NotifyState::Status(&status)]);
    tracing::info!(%status, "ready");
    if let Some(period) = systemd::watchdog_period() {
        systemd::watchdog(period, || health.check(), &status, systemd::notify).await;
    }
}
