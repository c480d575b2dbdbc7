//! Budget alerts: rules on a scope (thresholds of its budgets, a projected exhaustion before
//! the campaign ends, an approaching end, a spike of refusals), evaluated off the request
//! path and delivered to webhooks through an outbox in PostgreSQL.
//!
//! - **Once.** Every instance evaluates every rule each `alerts.evaluate_interval_ms`, from
//!   the budget counters the admission script keeps (the same reads as `tollctl limits
//!   show`) and the request log. An alert is a row whose unique key names what it is about
//!   (see [`checks`]); however many instances see a crossing in the same instant, one insert
//!   wins and the others change nothing.
//! - **At least once.** The row is the outbox: instances take due rows under a lease, post
//!   them signed ([`sign`]), and mark them delivered, or retry with backoff until
//!   `alerts.retry_for_secs`, then mark them failed. A delivery cut off by a crash is
//!   retried when its lease ends, so a receiver may see an event twice and dedupes by its
//!   id.
//! - **Free on the request path.** Nothing here runs per request: the cost is a few reads
//!   per watched scope per interval.
//!
//! docs/alerts.md is the user's guide.

pub mod checks;
mod deliver;
mod evaluate;
pub mod sign;

use std::collections::HashSet;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::{AlertDefaults, AlertsConfig};
use crate::governance::{Clock, Governor};
use crate::store::Store;

pub use deliver::TestDelivery;

/// Alerts recorded this many times over are forgotten by the in-process memory of what fired
/// (it only saves the database a no-op insert; the unique key is what decides).
const SEEN_CAPACITY: usize = 100_000;

/// What the evaluator and the deliverer share.
pub struct Alerts {
    store: Store,
    governor: Arc<Governor>,
    clock: Arc<dyn Clock>,
    config: AlertsConfig,
    http: reqwest::Client,
    /// Wakes the deliverer when this instance fired an alert.
    fired: Notify,
    /// Whether the last evaluation found any rule: without one the outbox is empty (a
    /// rule's alerts go with it), so the deliverer does not look.
    any_rules: AtomicBool,
    /// (rule, dedupe key) of alerts already recorded, so each is inserted once per process.
    seen: Mutex<HashSet<(uuid::Uuid, String)>>,
}

impl Alerts {
    pub fn new(
        store: Store,
        governor: Arc<Governor>,
        clock: Arc<dyn Clock>,
        config: AlertsConfig,
    ) -> Result<Alerts, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout)
            // A webhook answers where it is: a redirect is a misconfiguration, not a hop.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tollgate-alerts/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Alerts {
            store,
            governor,
            clock,
            config,
            http,
            fired: Notify::new(),
            // Until the first evaluation says otherwise, alerts left by a previous run may wait.
            any_rules: AtomicBool::new(true),
            seen: Mutex::new(HashSet::new()),
        })
    }

    pub fn defaults(&self) -> &AlertDefaults {
        &self.config.defaults
    }

    /// Starts the evaluator and the deliverer (unless `alerts.enabled = false`); both stop
    /// when `stop` is cancelled, a delivery under way first finishing or timing out.
    pub fn start(self: &Arc<Self>, stop: CancellationToken) -> Vec<tokio::task::JoinHandle<()>> {
        if !self.config.enabled {
            return Vec::new();
        }
        vec![
            tokio::spawn(evaluate::run(self.clone(), stop.clone())),
            tokio::spawn(deliver::run(self.clone(), stop)),
        ]
    }

    /// How long a delivery holds its alert: past the request timeout, so a live instance
    /// never loses it to another, short enough that a dead one's is soon taken over.
    fn lease(&self) -> Duration {
        self.config.request_timeout + Duration::from_secs(20)
    }
}
