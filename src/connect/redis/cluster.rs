//! A Redis Cluster connection that replaces itself when it stops answering altogether.
//!
//! redis-rs's cluster connection can wedge for good after a master is killed outright: its
//! slot refresh waits for the lock on its connection table while a node repair it no longer
//! polls holds a place in that lock's queue, and from then on every call waits for the
//! refresh and times out, although the replica has long taken over. A fresh connection,
//! which reads the slot map from the seed nodes, works at once. So when calls are waiting and
//! nothing at all has answered for [`STALL_LIMIT`], the next call builds a new connection,
//! sends on it, and leaves it for the calls after it. A call already sent on the old one finishes or times
//! out there, and is never sent again (see [`super::delivery`]).
//!
//! A server's error reply (MOVED, CLUSTERDOWN during a failover) is an answer: only silence
//! counts, so an ordinary failover, which redis-rs follows by itself, replaces nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use redis::aio::ConnectionLike;
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, ErrorKind, Pipeline, RedisFuture, RedisResult, Value};

/// How long calls may wait with no answer from any node before the connection is replaced.
/// Far longer than a healthy call and than the gap between a node's death and the first
/// MOVED or CLUSTERDOWN reply that follows it; replacements are at least this far apart.
pub const STALL_LIMIT: Duration = Duration::from_secs(2);

/// A cluster connection that is replaced when it stalls. Cheap to clone: clones share it.
#[derive(Clone)]
pub struct SelfHealingCluster {
    shared: Arc<Shared>,
}

struct Shared {
    client: ClusterClient,
    current: ArcSwap<ClusterConnection>,
    /// The clock the millisecond fields below count from.
    origin: Instant,
    /// When a node last answered, or when calls started waiting on an idle connection.
    last_progress_ms: AtomicU64,
    /// Whether a call ended unanswered since then: calls that give up (their callers time
    /// out) can leave the connection idle while it is stalled, and that is no fresh start.
    unanswered: AtomicBool,
    /// When the last replacement started.
    last_replacement_ms: AtomicU64,
    replacing: AtomicBool,
    in_flight: AtomicUsize,
    /// Longest a replacement may take to connect and read the slot map.
    connect_limit: Duration,
}

impl SelfHealingCluster {
    pub async fn connect(client: ClusterClient, connect_limit: Duration) -> RedisResult<Self> {
        let connection = client.get_async_connection().await?;
        Ok(SelfHealingCluster {
            shared: Arc::new(Shared {
                client,
                current: ArcSwap::from_pointee(connection),
                origin: Instant::now(),
                last_progress_ms: AtomicU64::new(0),
                unanswered: AtomicBool::new(false),
                last_replacement_ms: AtomicU64::new(0),
                replacing: AtomicBool::new(false),
                in_flight: AtomicUsize::new(0),
                connect_limit,
            }),
        })
    }

    /// The connection to send on: the current one, or a new one when the current one has
    /// stalled and this call is the one to replace it.
    async fn start_call(&self) -> (ClusterConnection, CallWatch) {
        let shared = &self.shared;
        let now = shared.now_ms();
        let idle = shared.in_flight.fetch_add(1, Ordering::AcqRel) == 0;
        let watch = CallWatch {
            shared: self.shared.clone(),
            finished: false,
        };
        if idle && !shared.unanswered.load(Ordering::Acquire) {
            // Nothing was waiting: silence until now was idleness, not a stall.
            shared.last_progress_ms.fetch_max(now, Ordering::AcqRel);
        } else if let Some(turn) = shared.replacement_turn(now) {
            shared.replace(turn).await;
        }
        (ClusterConnection::clone(&shared.current.load()), watch)
    }
}

/// The right to replace the connection, held by one call at a time; given back when that
/// call is done with it, or gives up (its caller timed out) while the new one is being built.
struct ReplacementTurn<'a> {
    replacing: &'a AtomicBool,
    silent_ms: u64,
}

impl Drop for ReplacementTurn<'_> {
    fn drop(&mut self) {
        self.replacing.store(false, Ordering::Release);
    }
}

impl Shared {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// This call's turn to replace the connection, if calls have waited with no answer for
    /// [`STALL_LIMIT`], no replacement was tried within it, and none is under way.
    fn replacement_turn(&self, now: u64) -> Option<ReplacementTurn<'_>> {
        let limit = u64::try_from(STALL_LIMIT.as_millis()).unwrap_or(u64::MAX);
        let silent = now.saturating_sub(self.last_progress_ms.load(Ordering::Acquire));
        let last = self.last_replacement_ms.load(Ordering::Acquire);
        let recently = last != 0 && now.saturating_sub(last) < limit;
        if silent < limit || recently || self.replacing.swap(true, Ordering::AcqRel) {
            return None;
        }
        self.last_replacement_ms
            .store(now.max(1), Ordering::Release);
        Some(ReplacementTurn {
            replacing: &self.replacing,
            silent_ms: silent,
        })
    }

    /// Builds a new connection (within `connect_limit`) and makes it the current one.
    async fn replace(&self, turn: ReplacementTurn<'_>) {
        let silent_ms = turn.silent_ms;
        let connected =
            tokio::time::timeout(self.connect_limit, self.client.get_async_connection())
                .await
                .map_err(|_| "timed out".to_string())
                .and_then(|result| result.map_err(|e| e.to_string()));
        match connected {
            Ok(connection) => {
                self.current.store(Arc::new(connection));
                self.unanswered.store(false, Ordering::Release);
                self.last_progress_ms
                    .fetch_max(self.now_ms(), Ordering::AcqRel);
                tracing::warn!(
                    silent_ms,
                    "Redis Cluster connection answered nothing while calls waited; replaced it with a new one"
                );
            }
            Err(error) => tracing::warn!(
                silent_ms,
                error,
                "Redis Cluster connection answered nothing while calls waited, and a new one could not be made; trying again later"
            ),
        }
    }
}

/// Notes how one call ended; a call dropped before it ended counts as unanswered.
struct CallWatch {
    shared: Arc<Shared>,
    finished: bool,
}

impl CallWatch {
    fn finish<T>(mut self, result: &RedisResult<T>) {
        self.finished = true;
        let answered = match result {
            Ok(_) => true,
            Err(error) => matches!(error.kind(), ErrorKind::Server(_)),
        };
        self.end(answered);
    }

    fn end(&self, answered: bool) {
        let shared = &self.shared;
        shared.in_flight.fetch_sub(1, Ordering::AcqRel);
        if answered {
            shared.unanswered.store(false, Ordering::Release);
            shared
                .last_progress_ms
                .fetch_max(shared.now_ms(), Ordering::AcqRel);
        } else {
            shared.unanswered.store(true, Ordering::Release);
        }
    }
}

impl Drop for CallWatch {
    fn drop(&mut self) {
        if !self.finished {
            self.end(false);
        }
    }
}

impl ConnectionLike for SelfHealingCluster {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let (mut connection, watch) = self.start_call().await;
            let result = connection.req_packed_command(cmd).await;
            watch.finish(&result);
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
            let (mut connection, watch) = self.start_call().await;
            let result = connection
                .req_packed_commands(pipeline, offset, count)
                .await;
            watch.finish(&result);
            result
        })
    }

    fn get_db(&self) -> i64 {
        0
    }
}
