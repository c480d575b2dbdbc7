use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tollgate::app::{self, App};
use tollgate::config::Config;
use tollgate::store::Store;

// A request allocates and frees many small buffers across threads; mimalloc does that with
// far less CPU than glibc's malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "tollgate",
    version,
    about = "Governance and cost-attribution gateway for LLM traffic"
)]
struct Cli {
    /// Configuration file.
    #[arg(
        long,
        global = true,
        default_value = "tollgate.toml",
        env = "TOLLGATE_CONFIG"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (data plane and admin API).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Request-log retention (`ledger.retention_days`).
    #[command(subcommand)]
    Retention(RetentionCommand),
}

#[derive(Subcommand)]
enum RetentionCommand {
    /// Drop the request-log partitions past the retention period now, whenever the last run
    /// was, and print what was dropped (the run is recorded in the audit log). Spend
    /// rollups are kept, so reports still add up over any period.
    Run {
        /// Days of requests to keep (default: `ledger.retention_days` from the configuration).
        #[arg(long)]
        days: Option<u32>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    tollgate::telemetry::init_logging();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("tollgate: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let config = Config::load(&cli.config).map_err(|e| e.to_string())?;
    match cli.command {
        Command::Migrate => {
            let store = small_store(&config).await?;
            store.migrate().await.map_err(|e| e.to_string())?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Retention(RetentionCommand::Run { days }) => {
            let days = days
                .or(config.ledger.retention.map(|r| r.days))
                .ok_or_else(|| {
                    format!(
                        "no retention period: pass --days N or set ledger.retention_days in {}",
                        cli.config.display()
                    )
                })?;
            if days == 0 {
                return Err("--days must be at least 1".into());
            }
            let store = small_store(&config).await?;
            let report = tollgate::ledger::retention::run_now(
                &store,
                days,
                chrono::Utc::now(),
                "tollgate retention run",
            )
            .await
            .map_err(|e| format!("retention failed (nothing was dropped): {e}"))?
            .map_err(|_| {
                "another instance is running retention right now; try again in a moment".to_string()
            })?;
            tollgate::ledger::retention::log_report(&report);
            println!(
                "{}",
                serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
            );
            Ok(())
        }
        Command::Serve => {
            let app = App::build(&config).await.map_err(|e| e.to_string())?;
            let data = app::bind(config.listen).await.map_err(|e| e.to_string())?;
            let admin = app::bind(config.admin_listen)
                .await
                .map_err(|e| e.to_string())?;
            #[cfg(unix)]
            reload_prices_on_sighup(app.admin.prices.clone(), config.pricing.dir.clone());
            tracing::info!(listen = %config.listen, admin_listen = %config.admin_listen, "tollgate serving");
            app.run(data, admin, shutdown_signal())
                .await
                .map_err(|e| e.to_string())
        }
    }
}

/// A two-connection pool for the one-shot commands.
async fn small_store(config: &Config) -> Result<Store, String> {
    let pool = tollgate::connect::postgres::pool(
        &config.database_url,
        &config.database_tls,
        2,
        config.database.acquire_timeout,
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(Store::from_pool(pool))
}

/// Re-reads the pricing directory on every SIGHUP, like `POST /admin/v1/pricing/reload`; a
/// bad file is logged and the table in force stays. The handler is registered before this
/// returns, so a SIGHUP from then on never takes SIGHUP's default action (exit).
#[cfg(unix)]
fn reload_prices_on_sighup(
    prices: std::sync::Arc<arc_swap::ArcSwap<tollgate::pricing::PriceTable>>,
    dir: PathBuf,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(hangup) => hangup,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; reload prices with the admin API");
            return;
        }
    };
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            // `reload` logs the outcome; on an error the table in force stays.
            let _ = tollgate::pricing::reload(&dir, &prices);
        }
    });
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
