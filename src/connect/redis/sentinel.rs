//! A connection to the master a set of Redis Sentinels names, that follows a failover: the
//! sentinels are asked for the master at the first call, and again after a call fails in a
//! way that says the master is gone or is one no longer (a dropped or refused connection, a
//! timeout, READONLY from a demoted master). Calls are never sent twice here; the caller
//! decides that ([`super::delivery`]).
//!
//! One lookup runs at a time: calls that arrive meanwhile wait for it and use what it found,
//! and for a moment after a failed one they fail at once, so a burst during a failover asks
//! the sentinels once rather than once per call.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::sentinel::SentinelClient;
use redis::{
    AsyncConnectionConfig, Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult,
    ServerErrorKind, Value,
};

/// After a lookup failed, calls fail at once for this long instead of asking again.
const LOOKUP_PAUSE: Duration = Duration::from_millis(100);

#[derive(Clone)]
pub struct SentinelConnection {
    shared: Arc<Shared>,
}

struct Shared {
    /// The master's name as the sentinels know it.
    name: String,
    /// Locked while one lookup runs.
    sentinels: tokio::sync::Mutex<SentinelClient>,
    master: ArcSwapOption<Master>,
    /// Lookups finished so far, successful or not: a call that waited for one uses its
    /// outcome instead of starting another.
    lookups: AtomicU64,
    /// When the last lookup failed, and why; cleared by a successful one.
    failed: Mutex<Option<(Instant, String)>>,
    config: AsyncConnectionConfig,
    lookup_timeout: Duration,
    db: i64,
}

/// The master found by one lookup.
struct Master {
    connection: MultiplexedConnection,
    /// Which lookup found it, so a failure on it forgets it and not its successor.
    lookup: u64,
}

impl SentinelConnection {
    /// Asks the sentinels for the master and connects to it; fails if they name none.
    pub(super) async fn connect(
        sentinels: SentinelClient,
        name: String,
        db: i64,
        config: AsyncConnectionConfig,
        lookup_timeout: Duration,
    ) -> RedisResult<SentinelConnection> {
        let connection = SentinelConnection {
            shared: Arc::new(Shared {
                name,
                sentinels: tokio::sync::Mutex::new(sentinels),
                master: ArcSwapOption::empty(),
                lookups: AtomicU64::new(0),
                failed: Mutex::new(None),
                config,
                lookup_timeout,
                db,
            }),
        };
        connection.shared.master().await?;
        Ok(connection)
    }
}

impl ConnectionLike for SentinelConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let master = self.shared.master().await?;
            let mut connection = master.connection.clone();
            let result = connection.req_packed_command(cmd).await;
            if let Err(error) = &result {
                self.shared.check(&master, error);
            }
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let master = self.shared.master().await?;
            let mut connection = master.connection.clone();
            let result = connection
                .req_packed_commands(pipeline, offset, count)
                .await;
            if let Err(error) = &result {
                self.shared.check(&master, error);
            }
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.shared.db
    }
}

impl Shared {
    /// The current master, looked up first if there is none.
    async fn master(&self) -> RedisResult<Arc<Master>> {
        if let Some(master) = self.master.load_full() {
            return Ok(master);
        }
        let seen = self.lookups.load(Ordering::Acquire);
        let mut sentinels = self.sentinels.lock().await;
        if let Some(master) = self.master.load_full() {
            return Ok(master);
        }
        if let Some(reason) = self.recent_failure(seen) {
            return Err(not_sent(reason));
        }
        let found = tokio::time::timeout(self.lookup_timeout, self.look_up(&mut sentinels))
            .await
            .unwrap_or_else(|_| {
                Err(RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {} ms", self.lookup_timeout.as_millis()),
                )))
            });
        let lookup = self.lookups.fetch_add(1, Ordering::AcqRel) + 1;
        match found {
            Ok(connection) => {
                let master = Arc::new(Master { connection, lookup });
                self.master.store(Some(master.clone()));
                *self.failed.lock().unwrap_or_else(|e| e.into_inner()) = None;
                Ok(master)
            }
            Err(error) => {
                let reason = format!(
                    "the sentinels named no reachable master {:?}: {error}",
                    self.name
                );
                *self.failed.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((Instant::now(), reason.clone()));
                Err(not_sent(reason))
            }
        }
    }

    async fn look_up(&self, sentinels: &mut SentinelClient) -> RedisResult<MultiplexedConnection> {
        let client = sentinels.async_get_client().await?;
        let connection = client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        tracing::info!(
            master = %self.name,
            addr = ?client.get_connection_info().addr(),
            "connected to the master the sentinels name"
        );
        Ok(connection)
    }

    /// Why the call that waited for a lookup (started after `seen` lookups) should not start
    /// another: one finished meanwhile and failed, or one failed moments ago.
    fn recent_failure(&self, seen: u64) -> Option<String> {
        let failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        let (at, reason) = failed.as_ref()?;
        let finished_meanwhile = self.lookups.load(Ordering::Acquire) != seen;
        (finished_meanwhile || at.elapsed() < LOOKUP_PAUSE).then(|| reason.clone())
    }

    /// Forgets `master` when `error` says it is gone or no longer the master, so the next
    /// call asks the sentinels again.
    fn check(&self, master: &Arc<Master>, error: &RedisError) {
        let lost = error.is_io_error()
            || error.is_connection_dropped()
            || matches!(
                error.kind(),
                ErrorKind::Server(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown)
            );
        if !lost {
            return;
        }
        let lookup = master.lookup;
        let previous = self.master.rcu(|current| match current {
            Some(current) if current.lookup == lookup => None,
            other => other.clone(),
        });
        if previous.is_some_and(|previous| previous.lookup == lookup) {
            tracing::warn!(master = %self.name, %error, "lost the master; asking the sentinels again");
        }
    }
}

/// A call that was never sent because no master is known: safe to send again later.
fn not_sent(reason: String) -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::ConnectionRefused,
        reason,
    ))
}
