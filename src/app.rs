//! Builds the gateway from its configuration and runs it: the same code path for the binary
//! and for the tests.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::{self, AdminState, JwtVerifier};
use crate::alerts::Alerts;
use crate::config::Config;
use crate::connect::{self, ConnectError, redis::RedisConnector};
use crate::console;
use crate::governance::{Clock, Governor, GovernorConfig, LocalShield, SystemClock};
use crate::invalidation::{self, Invalidator};
use crate::keys::{KeyCache, KnownKeys, RefreshConfig};
use crate::ledger::{Ledger, LedgerWriter, WriterHandle};
use crate::pricing::{PriceTable, PricingError};
use crate::proxy::{self, AuthFailures, ProxyInner, ProxyState, Routes};
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The message names the server, the TLS settings and the reason, never the password.
    #[error("{0}")]
    Database(ConnectError),
    #[error(
        "cannot read the existing virtual keys from PostgreSQL: {0} (if the schema is older than this gateway, run `tollgate migrate`)"
    )]
    KnownKeys(#[source] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The message names the server, the TLS settings and the reason, never the password.
    #[error("{0}")]
    Redis(ConnectError),
    #[error("pricing: {0}")]
    Pricing(#[from] PricingError),
    #[error("cannot build the upstream HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    /// Names the journal directory and, when another process holds it, that process.
    #[error("{0}")]
    Ledger(#[source] crate::ledger::StartError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

/// Longest a request with a key this instance has not heard of waits for the read of new key
/// hashes that decides whether it exists.
const KNOWN_KEYS_WAIT: Duration = Duration::from_secs(5);

pub struct App {
    pub proxy: ProxyState,
    pub admin: AdminState,
    /// The data plane's pool (key lookups, budget rebuilds, the ledger writer); the admin
    /// API has its own, in `admin.store`.
    pub store: Store,
    pub ledger: Ledger,
    writer: WriterHandle,
    tasks: TaskTracker,
    shutdown_grace: Duration,
    invalidation_listener: tokio::task::JoinHandle<()>,
    known_keys_refresher: tokio::task::JoinHandle<()>,
    key_bounds: tokio::task::JoinHandle<()>,
    pruner: tokio::task::JoinHandle<()>,
    metrics_task: tokio::task::JoinHandle<()>,
    retention: Option<tokio::task::JoinHandle<()>>,
    /// The alert evaluator and deliverer.
    alert_tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Tells the retention task and the alert tasks to stop at shutdown.
    stop_retention: CancellationToken,
}

/// Installs the TLS crypto provider used for https upstreams (once per process).
pub fn init_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl App {
    pub async fn build(config: &Config) -> Result<App, StartError> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// Like [`App::build`], with the clock that decides budget periods (tests cross a UTC
    /// day boundary with it).
    pub async fn build_with_clock(
        config: &Config,
        clock: Arc<dyn Clock>,
    ) -> Result<App, StartError> {
        init_tls();
        let database = &config.database;
        // Two pools, so a slow report can never take the connections a request needs.
        let store = Store::from_pool(
            connect::postgres::pool(
                &config.database_url,
                &config.database_tls,
                database.pool_size,
                database.acquire_timeout,
            )
            .await
            .map_err(StartError::Database)?,
        );
        let admin_store = Store::from_pool(
            connect::postgres::pool(
                &config.database_url,
                &config.database_tls,
                database.admin_pool_size,
                database.acquire_timeout,
            )
            .await
            .map_err(StartError::Database)?,
        )
        .with_report_timeout(database.report_timeout);
        tracing::info!(tls = %config.database_tls.describe(), "connected to PostgreSQL");
        if config.run_migrations {
            store.migrate().await?;
        }
        let redis = RedisConnector::new(&config.redis_url, config.redis_tls.as_ref())
            .map_err(StartError::Redis)?;
        let control_redis = redis.control().await.map_err(StartError::Redis)?;
        tracing::info!(redis = %redis.describe(), "connected to Redis");
        let prices = PriceTable::load_dir(&config.pricing.dir)?;
        let prices = Arc::new(ArcSwap::from_pointee(prices));
        let routes = Routes::build(&config.deployments)?;
        let known = KnownKeys::load(
            store.clone(),
            RefreshConfig {
                min_interval: config.key_cache.min_refresh_interval,
                interval: config.key_cache.refresh_interval,
                wait: KNOWN_KEYS_WAIT,
            },
        )
        .await
        .map_err(StartError::KnownKeys)?;
        let keys = Arc::new(KeyCache::new(store.clone(), known, &config.key_cache));
        let known_keys_refresher = tokio::spawn({
            let keys = keys.clone();
            async move { keys.known().keep_current().await }
        });
        let governance = &config.governance;
        let governor = Arc::new(Governor::with_leases(
            redis
                .multiplexed(governance.redis_timeout)
                .await
                .map_err(StartError::Redis)?,
            GovernorConfig {
                redis_prefix: governance.redis_prefix.clone(),
                reservation_ttl: governance.reservation_ttl,
                redis_timeout: governance.redis_timeout,
            },
            governance.leases.clone(),
            clock.clone(),
            store.clone(),
            LocalShield::new(governance.instance_rps, governance.key_rps),
        ));
        let pruner = tokio::spawn(prune_local_limits(governor.clone()));
        let auth_failures = Arc::new(AuthFailures::new(&config.client_auth));
        let key_bounds = tokio::spawn(report_key_bounds(keys.clone(), auth_failures.clone()));
        let (ledger, writer) = LedgerWriter::start(store.clone(), config.ledger.clone())
            .await
            .map_err(StartError::Ledger)?;
        let ledger = ledger.with_key_labels(config.metrics.key_labels);
        let stop_retention = CancellationToken::new();
        let alerts = Arc::new(Alerts::new(
            admin_store.clone(),
            governor.clone(),
            clock.clone(),
            config.alerts.clone(),
        )?);
        let alert_tasks = alerts.start(stop_retention.clone());
        let retention = config.ledger.retention.map(|retention| {
            crate::ledger::retention::spawn(store.clone(), retention, clock, stop_retention.clone())
        });
        let metrics_task = crate::metrics::spawn_background(governor.clone());
        let tasks = TaskTracker::new();
        let proxy = ProxyState::new(ProxyInner {
            keys: keys.clone(),
            auth_failures,
            routes,
            prices: prices.clone(),
            allow_unpriced: config.pricing.allow_unpriced,
            ledger: ledger.clone(),
            tasks: tasks.clone(),
            max_body_bytes: config.max_body_bytes,
            governor: governor.clone(),
            governance: config.governance.clone(),
            routing: config.routing.clone(),
            access_log: config.access_log,
            reads: admin_store.clone(),
        });
        let admin = AdminState {
            store: admin_store,
            keys: keys.clone(),
            jwt: Arc::new(JwtVerifier::new(&config.admin)),
            invalidator: Invalidator::new(control_redis),
            prices,
            pricing_dir: config.pricing.dir.clone(),
            governor: governor.clone(),
            alerts,
        };
        let invalidation_listener = tokio::spawn(invalidation::listen(redis, keys));
        Ok(App {
            proxy,
            admin,
            store,
            ledger,
            writer,
            tasks,
            shutdown_grace: config.shutdown_grace,
            invalidation_listener,
            known_keys_refresher,
            key_bounds,
            pruner,
            metrics_task,
            retention,
            alert_tasks,
            stop_retention,
        })
    }

    /// The data-plane listener's routes: the proxy plus unauthenticated health checks and
    /// `/metrics`.
    pub fn data_router(&self) -> Router {
        let health = Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(readyz))
            .with_state(self.store.clone());
        proxy::router(self.proxy.clone())
            .merge(health)
            .merge(crate::metrics::router(self.ledger.stats().clone()))
    }

    pub fn admin_router(&self) -> Router {
        // The console's pages need no token to load: merged outside the API's auth layer.
        admin::router(self.admin.clone()).merge(console::router())
    }

    /// Serves both listeners until `shutdown` resolves, then stops accepting requests,
    /// waits for in-flight requests and their recording, and drains the ledger.
    pub async fn run(
        self,
        data: TcpListener,
        admin: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        // The peer address feeds the limit on failed authentications per client.
        let data_server = axum::serve(
            data,
            self.data_router()
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(stopped(stop_rx.clone()));
        let admin_server =
            axum::serve(admin, self.admin_router()).with_graceful_shutdown(stopped(stop_rx));
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let (data_result, admin_result) =
            tokio::join!(data_server.into_future(), admin_server.into_future());
        self.shutdown().await;
        data_result.and(admin_result)
    }

    /// Waits for tracked work (relays, recording) and drains the ledger.
    pub async fn shutdown(self) {
        tracing::info!("shutting down: waiting for in-flight requests");
        self.tasks.close();
        if tokio::time::timeout(self.shutdown_grace, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("in-flight requests still running at the end of the grace period");
        }
        // Every request has settled into its leases: what they hold and spent goes back.
        self.proxy
            .governor
            .give_back_leases(self.shutdown_grace)
            .await;
        // These loops only keep caches and gauges current: they hold no money and no state
        // that outlives the process, so stopping them anywhere is safe.
        self.invalidation_listener.abort();
        self.known_keys_refresher.abort();
        self.key_bounds.abort();
        self.pruner.abort();
        self.metrics_task.abort();
        // A retention run under way is let finish (its drops and audit row are one
        // transaction); one that outlasts the grace period is rolled back by the abort.
        self.stop_retention.cancel();
        if let Some(mut retention) = self.retention
            && tokio::time::timeout(self.shutdown_grace, &mut retention)
                .await
                .is_err()
        {
            tracing::warn!("request-log retention still running at the end of the grace period");
            retention.abort();
        }
        // A delivery under way finishes (bounded by its timeout); one cut off is retried by
        // the next instance to take the outbox when its lease ends.
        for task in self.alert_tasks {
            let _ = tokio::time::timeout(self.shutdown_grace, task).await;
        }
        self.writer.shutdown(self.shutdown_grace).await;
    }
}

/// Asks the data plane's pool: busy admin reports must not take an instance out of its
/// load balancer.
async fn readyz(State(store): State<Store>) -> (StatusCode, &'static str) {
    if store.ping().await.is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "postgres unavailable");
    }
    (StatusCode::OK, "ready")
}

/// Binds a listener, naming the address on failure.
pub async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind {
            addr: addr.to_string(),
            source,
        })
}

/// Drops in-process limiter state of keys not seen recently, so memory does not grow with
/// the number of keys ever used.
async fn prune_local_limits(governor: Arc<Governor>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        governor.local().prune();
    }
}

/// Keeps the size gauges of the key structures current (and applies their pending evictions,
/// so the sizes are exact).
async fn report_key_bounds(keys: Arc<KeyCache>, auth_failures: Arc<AuthFailures>) {
    let mut tick = tokio::time::interval(Duration::from_secs(15));
    loop {
        tick.tick().await;
        keys.sync().await;
        auth_failures.sync().await;
        crate::metrics::observe_key_bounds(keys.known().len(), keys.len(), auth_failures.tracked());
    }
}
