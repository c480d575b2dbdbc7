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

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use redis::aio::ConnectionManager;
use redis::{Script, Value};
use tokio::sync::{mpsc, oneshot};

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
    },
    Settle(Call, oneshot::Sender<Result<(), SettleError>>),
}

impl Job {
    fn call(&self) -> &Call {
        let (Job::Admit { call, .. } | Job::Settle(call, _)) = self;
        call
    }

    /// An admission whose request stopped waiting (timed out, or gone): sending it would
    /// take what nobody will use.
    fn abandoned(&self) -> bool {
        matches!(self, Job::Admit { reply, .. } if reply.is_closed())
    }
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
    pub fn start(redis: ConnectionManager, reservation_ttl_ms: u64) -> Batcher {
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
        let _ = self.queue.send(Job::Admit {
            call,
            reply,
            release,
        });
        answer
    }

    pub async fn settle(&self, call: Call) -> Result<(), SettleError> {
        let stopped = || SettleError {
            message: STOPPED.to_string(),
            maybe_applied: false,
        };
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job::Settle(call, reply))
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Queues a settlement without waiting for its answer (a release from a `Drop`).
    pub fn release(&self, call: Call) {
        let (done, _) = oneshot::channel();
        let _ = self.queue.send(Job::Settle(call, done));
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
    redis: ConnectionManager,
    timing: Timing,
) {
    let script = Arc::new(Script::new(GOVERN));
    let mut in_flight = FuturesUnordered::new();
    // Settlements are off every request's critical path: while a batch is on the wire they
    // wait to ride with the next one (an admission applies them before it looks); when
    // nothing is, they go at once.
    let mut settlements: Vec<Job> = Vec::new();
    let mut admissions: Vec<Job> = Vec::new();
    // While Redis is slow, jobs keep being taken off the queue so that admissions whose
    // requests gave up can be dropped; this is the queue length at the last such sweep.
    let mut swept_at = 0;
    let mut open = true;
    while open || !settlements.is_empty() || !admissions.is_empty() || !in_flight.is_empty() {
        tokio::select! {
            // Answers first: a free slot lets the queue go out as one bigger batch.
            biased;
            Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
            job = jobs.recv(), if open => {
                let mut next = job;
                if next.is_none() {
                    open = false;
                }
                while let Some(job) = next.take() {
                    match job {
                        Job::Settle(..) => settlements.push(job),
                        Job::Admit { .. } => admissions.push(job),
                    }
                    if settlements.len() + admissions.len() < MAX_BATCH {
                        next = jobs.try_recv().ok();
                    }
                }
            }
            // Nothing to receive and nothing in flight, but jobs held back: send them.
            () = std::future::ready(()), if !open && in_flight.is_empty() => {}
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
        in_flight.push(send(
            batch_settlements,
            batch_admissions,
            redis.clone(),
            script.clone(),
            timing,
            requeue.clone(),
        ));
    }
}

/// Sends one batch: a script call per team (see [`Call::team`]), pipelined on the connection.
async fn send(
    settlements: Vec<Job>,
    admissions: Vec<Job>,
    redis: ConnectionManager,
    script: Arc<Script>,
    timing: Timing,
    requeue: mpsc::WeakUnboundedSender<Job>,
) {
    let calls = by_team(settlements, admissions)
        .into_iter()
        .map(|(settlements, admissions)| {
            send_one(
                settlements,
                admissions,
                redis.clone(),
                &script,
                timing,
                &requeue,
            )
        });
    futures_util::future::join_all(calls).await;
}

/// Splits a batch by team, keeping each team's jobs in their order.
fn by_team(settlements: Vec<Job>, admissions: Vec<Job>) -> Vec<(Vec<Job>, Vec<Job>)> {
    let mut teams: Vec<TeamId> = Vec::new();
    let mut groups: Vec<(Vec<Job>, Vec<Job>)> = Vec::new();
    for (job, is_settlement) in settlements
        .into_iter()
        .map(|job| (job, true))
        .chain(admissions.into_iter().map(|job| (job, false)))
    {
        let team = job.call().team;
        let i = teams.iter().position(|t| *t == team).unwrap_or_else(|| {
            teams.push(team);
            groups.push((Vec::new(), Vec::new()));
            groups.len() - 1
        });
        let (team_settlements, team_admissions) = &mut groups[i];
        if is_settlement {
            team_settlements.push(job);
        } else {
            team_admissions.push(job);
        }
    }
    groups
}

async fn send_one(
    settlements: Vec<Job>,
    admissions: Vec<Job>,
    mut redis: ConnectionManager,
    script: &Script,
    timing: Timing,
    requeue: &mpsc::WeakUnboundedSender<Job>,
) {
    let mut invocation = script.prepare_invoke();
    invocation
        .arg(timing.ttl_ms)
        .arg(timing.bucket_ms)
        .arg(settlements.len())
        .arg(admissions.len());
    let mut key_index: HashMap<&str, usize> = HashMap::new();
    for job in settlements.iter().chain(&admissions) {
        for part in &job.call().parts {
            match part {
                Part::Key(key) => {
                    let next = key_index.len() + 1;
                    let index = *key_index.entry(key.as_str()).or_insert_with(|| {
                        invocation.key(key.as_str());
                        next
                    });
                    invocation.arg(index);
                }
                Part::NoKey => {
                    invocation.arg(0);
                }
                Part::Int(value) => {
                    invocation.arg(*value);
                }
                Part::Text(value) => {
                    invocation.arg(value.as_str());
                }
            }
        }
    }
    let result: redis::RedisResult<Vec<Value>> = invocation.invoke_async(&mut redis).await;
    match result {
        Ok(replies) => {
            let mut replies = replies.into_iter();
            for job in admissions {
                if let Job::Admit { reply, release, .. } = job {
                    let answer = match replies.next() {
                        Some(Value::Array(values)) => Ok(values),
                        other => Err(format!("admission script answered {other:?}")),
                    };
                    if let Err(Ok(values)) = reply.send(answer) {
                        release_orphan(&values, release, requeue);
                    }
                }
            }
            for job in settlements {
                if let Job::Settle(_, done) = job {
                    let _ = done.send(Ok(()));
                }
            }
        }
        Err(e) => {
            let maybe_applied = may_have_run(&e);
            let message = e.to_string();
            for job in settlements.into_iter().chain(admissions) {
                match job {
                    Job::Admit { reply, .. } => {
                        let _ = reply.send(Err(message.clone()));
                    }
                    Job::Settle(_, done) => {
                        let _ = done.send(Err(SettleError {
                            message: message.clone(),
                            maybe_applied,
                        }));
                    }
                }
            }
        }
    }
}

/// An admission answered after its request stopped waiting: whatever it took goes back with
/// the next batch.
fn release_orphan(values: &[Value], release: Release, requeue: &mpsc::WeakUnboundedSender<Job>) {
    let Some(call) = release(values) else {
        return;
    };
    crate::metrics::observe_orphaned_admission();
    match requeue.upgrade() {
        Some(queue) => {
            let (done, _) = oneshot::channel();
            let _ = queue.send(Job::Settle(call, done));
        }
        None => tracing::warn!(
            "an admission answered after its request left during shutdown; its reservation will expire"
        ),
    }
}

/// Whether a failed call may still have run in Redis: a refused connection never carried it;
/// a timeout, or a connection lost after sending, may have.
fn may_have_run(e: &redis::RedisError) -> bool {
    e.is_timeout() || (e.is_connection_dropped() && !e.is_connection_refusal())
}

#[cfg(test)]
mod tests {
    use std::io;

    use tokio::sync::oneshot;

    use super::{Call, Job, by_team, may_have_run};
    use crate::ids::TeamId;

    fn job(team: TeamId, tag: i64, settlement: bool) -> Job {
        let mut call = Call::new(team);
        call.int(tag);
        if settlement {
            Job::Settle(call, oneshot::channel().0)
        } else {
            Job::Admit {
                call,
                reply: oneshot::channel().0,
                release: Box::new(|_| None),
            }
        }
    }

    fn tags(jobs: &[Job]) -> Vec<i64> {
        jobs.iter()
            .map(|job| match job.call().parts.first() {
                Some(super::Part::Int(tag)) => *tag,
                _ => -1,
            })
            .collect()
    }

    #[test]
    fn a_script_call_only_carries_one_teams_requests_in_their_order() {
        let (a, b) = (TeamId(uuid::Uuid::now_v7()), TeamId(uuid::Uuid::now_v7()));
        let settlements = vec![job(b, 1, true), job(a, 2, true), job(b, 3, true)];
        let admissions = vec![job(a, 4, false), job(b, 5, false), job(a, 6, false)];
        let groups = by_team(settlements, admissions);
        assert_eq!(groups.len(), 2);
        let (b_settled, b_admitted) = &groups[0];
        assert_eq!((tags(b_settled), tags(b_admitted)), (vec![1, 3], vec![5]));
        let (a_settled, a_admitted) = &groups[1];
        assert_eq!((tags(a_settled), tags(a_admitted)), (vec![2], vec![4, 6]));
        for (settled, admitted) in &groups {
            let team = settled.iter().chain(admitted).map(|job| job.call().team);
            assert_eq!(team.clone().min(), team.max(), "one team per script call");
        }
    }

    #[test]
    fn only_a_call_that_surely_did_not_run_is_safe_to_send_again() {
        let failed = |kind| redis::RedisError::from(io::Error::new(kind, "test"));
        assert!(!may_have_run(&failed(io::ErrorKind::ConnectionRefused)));
        assert!(may_have_run(&failed(io::ErrorKind::TimedOut)));
        assert!(may_have_run(&failed(io::ErrorKind::ConnectionReset)));
        assert!(may_have_run(&failed(io::ErrorKind::UnexpectedEof)));
    }
}
