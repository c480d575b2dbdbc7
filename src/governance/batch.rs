//! Admissions and settlements go to Redis in batches: what the instance queued since its last
//! call goes out at once, one script call per team (a call's keys share the team's hash tag,
//! so it runs unchanged on Redis Cluster). Each admission still takes exactly one round trip,
//! but under load many share it, and the script reads and writes each key once per call
//! instead of once per request, which is what bounds a governed gateway's throughput.
//!
//! Order is kept where it matters: a settlement queued before an admission goes in the same
//! batch or an earlier one, batches go out in order on one multiplexed connection, and the
//! script applies a batch's settlements before its admissions, so a slot freed by a finished
//! request is free for the next one.
//!
//! A call is sent again only when Redis surely did not run it (see `send`): a script that ran
//! twice would take twice, or give back other requests' reservations.

mod send;

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use redis::{Script, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::connect::redis::{REDIS_RESPONSE_TIMEOUT, RedisConnection};
use crate::ids::TeamId;

const GOVERN: &str = include_str!("lua/govern.lua");

/// Most jobs in one script call: bounds the time Redis spends in one call.
const MAX_BATCH: usize = 128;
/// Batches on the wire at once: the next batch is sent while Redis runs the previous one,
/// and jobs queue (and batch) only when this many are waiting for Redis already.
const MAX_IN_FLIGHT: usize = 2;

/// One request's part of a batch: its script arguments, with keys kept apart so a batch
/// sends each key once and the script names it by index.
pub(super) struct Call {
    /// Every key of a request carries its team's hash tag; one script call only ever holds
    /// one team's requests, so it stays on one Redis Cluster slot.
    team: TeamId,
    parts: Vec<Part>,
}

enum Part {
    Key(String),
    /// A key this request does not use: index 0 (nil in the script).
    NoKey,
    Int(i64),
    Text(String),
}

impl Call {
    pub fn new(team: TeamId) -> Call {
        Call {
            team,
            parts: Vec::new(),
        }
    }

    pub fn key(&mut self, key: String) -> &mut Call {
        self.parts.push(Part::Key(key));
        self
    }

    pub fn key_if(&mut self, used: bool, key: impl FnOnce() -> String) -> &mut Call {
        self.parts
            .push(if used { Part::Key(key()) } else { Part::NoKey });
        self
    }

    pub fn int(&mut self, value: impl TryInto<i64>) -> &mut Call {
        self.parts
            .push(Part::Int(value.try_into().unwrap_or(i64::MAX)));
        self
    }

    pub fn text(&mut self, value: String) -> &mut Call {
        self.parts.push(Part::Text(value));
        self
    }
}

type AdmitReply = Result<Vec<Value>, String>;

/// Builds, from an admission's reply, the settlement that gives back what it took (`None`
/// when it took nothing): run when the reply arrives after its waiter left.
pub(super) type Release = Box<dyn FnOnce(&[Value]) -> Option<Call> + Send>;

/// Why a settlement did not go through, and whether sending it again is safe.
pub(super) struct SettleError {
    pub message: String,
    /// The call may have run before the failure (a timeout, or the connection dropped after
    /// sending): sending it again could count the request twice.
    pub maybe_applied: bool,
}

enum Job {
    Admit {
        call: Call,
        reply: oneshot::Sender<AdmitReply>,
        release: Release,
        tries: Tries,
    },
    Settle {
        call: Call,
        done: oneshot::Sender<Result<(), SettleError>>,
        tries: Tries,
    },
    /// A lease renewal (`lease`): sent like an admission, answered like a settlement that
    /// carries the script's reply.
    Lease {
        call: Call,
        reply: oneshot::Sender<LeaseReply>,
        tries: Tries,
    },
}

/// A lease renewal's own array from the script, or why it did not go through.
pub(super) type LeaseReply = Result<Vec<Value>, SettleError>;

/// How often a job was sent without running, and since when it has been trying.
#[derive(Clone, Copy)]
struct Tries {
    failed: u32,
    since: Instant,
}

impl Tries {
    fn new() -> Tries {
        Tries {
            failed: 0,
            since: Instant::now(),
        }
    }
}

/// A job sends again at most this long after it was queued: the wait for a call already
/// sent, so a failover shorter than that loses no settlement.
const RESEND_WINDOW: Duration = REDIS_RESPONSE_TIMEOUT;
/// The pause before the first try again, doubled at each further one up to [`MAX_PAUSE`]:
/// a redirection is usually followed at once, a failover takes seconds.
const FIRST_PAUSE: Duration = Duration::from_millis(20);
const MAX_PAUSE: Duration = Duration::from_secs(1);

impl Job {
    fn admit(call: Call, reply: oneshot::Sender<AdmitReply>, release: Release) -> Job {
        Job::Admit {
            call,
            reply,
            release,
            tries: Tries::new(),
        }
    }

    fn settle(call: Call, done: oneshot::Sender<Result<(), SettleError>>) -> Job {
        Job::Settle {
            call,
            done,
            tries: Tries::new(),
        }
    }

    fn call(&self) -> &Call {
        let (Job::Admit { call, .. } | Job::Settle { call, .. } | Job::Lease { call, .. }) = self;
        call
    }

    fn tries(&mut self) -> &mut Tries {
        let (Job::Admit { tries, .. } | Job::Settle { tries, .. } | Job::Lease { tries, .. }) =
            self;
        tries
    }

    /// An admission whose request stopped waiting (timed out, or gone): sending it would
    /// take what nobody will use.
    fn abandoned(&self) -> bool {
        match self {
            Job::Admit { reply, .. } => reply.is_closed(),
            Job::Lease { reply, .. } => reply.is_closed(),
            Job::Settle { .. } => false,
        }
    }
}

/// A job waiting to be sent again.
struct Delayed {
    due: Instant,
    job: Job,
}

/// The queue in front of the batch sender task (a cheap handle); the task ends when the last
/// handle is dropped, after the batches in flight have answered.
///
/// The queue holds at most one admission per request waiting for Redis (each waits at most
/// `redis_timeout`, and admissions whose waiter left are dropped unsent) and one settlement
/// per finished request, so it is bounded by the requests in flight.
#[derive(Clone)]
pub(super) struct Batcher {
    queue: mpsc::UnboundedSender<Job>,
}

impl Batcher {
    pub fn start(redis: RedisConnection, reservation_ttl_ms: u64) -> Batcher {
        let (queue, jobs) = mpsc::unbounded_channel();
        let timing = Timing {
            ttl_ms: reservation_ttl_ms,
            bucket_ms: reservation_bucket_ms(reservation_ttl_ms),
        };
        tokio::spawn(send_batches(jobs, queue.downgrade(), redis, timing));
        Batcher { queue }
    }

    /// Queues an admission; the receiver gets the script's reply for this request (its own
    /// array). Dropping the receiver before the reply arrives is safe: `release` then gives
    /// back whatever the admission took.
    pub fn admit(&self, call: Call, release: Release) -> oneshot::Receiver<AdmitReply> {
        let (reply, answer) = oneshot::channel();
        // A send only fails once the sender task is gone; the dropped reply then tells the
        // waiter so.
        let _ = self.queue.send(Job::admit(call, reply, release));
        answer
    }

    pub async fn settle(&self, call: Call) -> Result<(), SettleError> {
        let stopped = || SettleError {
            message: STOPPED.to_string(),
            maybe_applied: false,
        };
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job::settle(call, reply))
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Queues a lease renewal; it goes out with the next batch (ahead of that batch's
    /// admissions, after its settlements).
    pub fn lease(&self, call: Call) -> oneshot::Receiver<LeaseReply> {
        let (reply, answer) = oneshot::channel();
        let _ = self.queue.send(Job::Lease {
            call,
            reply,
            tries: Tries::new(),
        });
        answer
    }

    /// Queues a settlement without waiting for its answer (a release from a `Drop`).
    pub fn release(&self, call: Call) {
        let (done, _) = oneshot::channel();
        let _ = self.queue.send(Job::settle(call, done));
    }
}

pub(super) const STOPPED: &str = "the governance batch sender stopped";

/// Reservations are grouped by when they were taken into buckets of a quarter of their
/// expiry (at least a second) that expire together: a reservation whose instance died is
/// released between `ttl` and `ttl` plus one bucket after it was taken.
fn reservation_bucket_ms(ttl_ms: u64) -> u64 {
    (ttl_ms / 4).max(1000)
}

#[derive(Clone, Copy)]
struct Timing {
    ttl_ms: u64,
    bucket_ms: u64,
}

async fn send_batches(
    mut jobs: mpsc::UnboundedReceiver<Job>,
    requeue: mpsc::WeakUnboundedSender<Job>,
    redis: RedisConnection,
    timing: Timing,
) {
    let script = Arc::new(Script::new(GOVERN));
    let mut in_flight = FuturesUnordered::new();
    // Settlements are off every request's critical path: while a batch is on the wire they
    // wait to ride with the next one (an admission applies them before it looks); when
    // nothing is, they go at once.
    let mut settlements: Vec<Job> = Vec::new();
    let mut admissions: Vec<Job> = Vec::new();
    // Jobs whose call did not run (a redirection, a failover), waiting to be sent again. They
    // wait here rather than in their call, so a team whose shard is failing over does not
    // hold a place on the wire that other teams' calls need.
    let mut delayed: Vec<Delayed> = Vec::new();
    // While Redis is slow, jobs keep being taken off the queue so that admissions whose
    // requests gave up can be dropped; this is the queue length at the last such sweep.
    let mut swept_at = 0;
    let mut open = true;
    loop {
        let held = !settlements.is_empty() || !admissions.is_empty();
        if !open && !held && in_flight.is_empty() && delayed.is_empty() {
            break;
        }
        let next_due = delayed.iter().map(|d| d.due).min();
        tokio::select! {
            // Answers first: a free slot lets the queue go out as one bigger batch.
            biased;
            Some(again) = in_flight.next(), if !in_flight.is_empty() => {
                let again: Vec<Job> = again;
                for mut job in again {
                    let tries = job.tries();
                    let pause = FIRST_PAUSE
                        .saturating_mul(1 << tries.failed.min(16))
                        .min(MAX_PAUSE);
                    tries.failed = tries.failed.saturating_add(1);
                    delayed.push(Delayed { due: Instant::now() + pause, job });
                }
            }
            () = tokio::time::sleep_until(next_due.unwrap_or_else(Instant::now)),
                if next_due.is_some() => {
                let now = Instant::now();
                let (due, waiting): (Vec<Delayed>, Vec<Delayed>) =
                    delayed.drain(..).partition(|d| d.due <= now);
                delayed = waiting;
                // Ahead of what was queued since: they were queued first.
                let (due_settlements, due_admissions): (Vec<Job>, Vec<Job>) = due
                    .into_iter()
                    .map(|d| d.job)
                    .partition(|job| matches!(job, Job::Settle { .. }));
                settlements.splice(0..0, due_settlements);
                admissions.splice(0..0, due_admissions);
            }
            job = jobs.recv(), if open => {
                let mut next = job;
                if next.is_none() {
                    open = false;
                }
                while let Some(job) = next.take() {
                    match job {
                        Job::Settle { .. } => settlements.push(job),
                        Job::Admit { .. } | Job::Lease { .. } => admissions.push(job),
                    }
                    if settlements.len() + admissions.len() < MAX_BATCH {
                        next = jobs.try_recv().ok();
                    }
                }
            }
            // Nothing to receive and nothing in flight, but jobs held back: send them.
            () = std::future::ready(()), if !open && in_flight.is_empty() && held => {}
        }
        if in_flight.len() >= MAX_IN_FLIGHT {
            if admissions.len() >= 2 * swept_at.max(MAX_BATCH) {
                admissions.retain(|job| !job.abandoned());
                swept_at = admissions.len();
            }
            continue;
        }
        admissions.retain(|job| !job.abandoned());
        swept_at = 0;
        let settlements_due =
            !settlements.is_empty() && (in_flight.is_empty() || settlements.len() >= MAX_BATCH);
        if admissions.is_empty() && !settlements_due {
            continue;
        }
        // Every settlement queued so far goes before the admissions that follow it.
        let settle_now = settlements.len().min(MAX_BATCH);
        let batch_settlements: Vec<Job> = settlements.drain(..settle_now).collect();
        let admit_now = if settlements.is_empty() {
            admissions.len().min(MAX_BATCH - settle_now)
        } else {
            0
        };
        let batch_admissions: Vec<Job> = admissions.drain(..admit_now).collect();
        in_flight.push(send::send(
            batch_settlements,
            batch_admissions,
            redis.clone(),
            script.clone(),
            timing,
            requeue.clone(),
        ));
    }
}
