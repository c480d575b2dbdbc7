//! The renewer: one background task per instance that keeps each lease sized to demand,
//! reports spend under leases, gives back idle and retired leases, and forgets empty ones.
//! Its calls go through the batcher, so they share script calls with the instance's
//! admissions and settlements.

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use redis::Value;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use super::state::{BudgetGrant, BudgetLease, Granted, Mode, Renewal};
use super::{GateKey, GateLease, Leases};
use crate::governance::batch::{Batcher, Call, LeaseReply};
use crate::governance::period::Clock;

/// How often the renewer looks at every lease when nothing wakes it: as often as a lease
/// with no request in flight may report (`state::QUIET_REPORT`).
const TICK: Duration = super::state::QUIET_REPORT;
/// A lease that holds nothing and has not been used this long is forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(60);

/// A renewal on the wire: the lease, what it sent, and the answer when it comes.
type Pending = BoxFuture<'static, (Arc<GateLease>, Renewal, Answer)>;
type Answer = Result<LeaseReply, tokio::sync::oneshot::error::RecvError>;

/// Starts the renewer on `tasks` (so shutdown can wait for it). It ends once the leases are
/// stopped, hold nothing more and no renewal is on the wire. It waits for the answers of
/// the renewals it sent itself, so their state changes are never left to a detached task.
pub(in crate::governance) fn spawn_renewer(
    tasks: &TaskTracker,
    leases: Arc<Leases>,
    batcher: Batcher,
    clock: Arc<dyn Clock>,
) {
    tasks.spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut pending: FuturesUnordered<Pending> = FuturesUnordered::new();
        loop {
            let holding = leases.holding();
            if leases.stopping.load(std::sync::atomic::Ordering::Relaxed)
                && !holding
                && pending.is_empty()
            {
                break;
            }
            // Without a lease there is nothing to look at until a request wakes it.
            tokio::select! {
                Some((lease, renewal, answer)) = pending.next(), if !pending.is_empty() => {
                    take_answer(&leases, &lease, &renewal, answer);
                }
                () = leases.wake.notified() => {}
                _ = tick.tick(), if holding => {}
            }
            renew_due(&leases, &batcher, clock.now(), &mut pending);
        }
    });
}

fn renew_due(
    leases: &Arc<Leases>,
    batcher: &Batcher,
    now: DateTime<Utc>,
    pending: &mut FuturesUnordered<Pending>,
) {
    let instant = Instant::now();
    let mut ended: Vec<(GateKey, Arc<GateLease>)> = Vec::new();
    let mut forget: Vec<GateKey> = Vec::new();
    for entry in leases.current.iter() {
        let lease = entry.value();
        let state = lease.lock();
        let period_ended = state
            .budgets
            .iter()
            .any(|b| b.period_end.is_some_and(|end| end <= now));
        let unused = instant.saturating_duration_since(state.last_used) >= FORGET_AFTER;
        let forgettable = unused && state.is_empty();
        drop(state);
        if period_ended {
            ended.push((*entry.key(), lease.clone()));
        } else if forgettable {
            forget.push(*entry.key());
        } else {
            renew(leases, batcher, lease, Mode::Active, instant, now, pending);
        }
    }
    for (key, lease) in ended {
        if let Some((_, lease)) = leases
            .current
            .remove_if(&key, |_, l| Arc::ptr_eq(l, &lease))
        {
            leases.retire(lease);
        }
    }
    for key in forget {
        leases.current.remove_if(&key, |_, l| {
            let state = l.lock();
            state.is_empty() && instant.saturating_duration_since(state.last_used) >= FORGET_AFTER
        });
    }
    let retired: Vec<Arc<GateLease>> = leases
        .retired
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    for lease in &retired {
        renew(
            leases,
            batcher,
            lease,
            Mode::GiveBack,
            instant,
            now,
            pending,
        );
    }
    leases
        .retired
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .retain(|lease| !lease.lock().is_empty());
}

/// Plans one lease's renewal and, if one is due, sends it.
fn renew(
    leases: &Arc<Leases>,
    batcher: &Batcher,
    lease: &Arc<GateLease>,
    mode: Mode,
    instant: Instant,
    now: DateTime<Utc>,
    pending: &mut FuturesUnordered<Pending>,
) {
    let mut state = lease.lock();
    let Some(renewal) = state.plan(&lease.limits, &leases.config, mode, instant, || {
        budget_leases(lease, now)
    }) else {
        return;
    };
    let call = renewal_call(lease, &renewal, &state.budgets, leases);
    drop(state);
    let answer = batcher.lease(call);
    let lease = lease.clone();
    pending.push(Box::pin(async move { (lease, renewal, answer.await) }));
}

/// The lease's budget hashes for the period windows containing `now`.
fn budget_leases(lease: &GateLease, now: DateTime<Utc>) -> Vec<BudgetLease> {
    lease
        .limits
        .budgets
        .iter()
        .map(|(period, _)| {
            BudgetLease::new(lease.keys.budget(&period.label(now)), period.window(now).1)
        })
        .collect()
}

/// The lease part of a script call (see `lua/govern.lua`).
fn renewal_call(
    lease: &GateLease,
    renewal: &Renewal,
    budgets: &[BudgetLease],
    leases: &Leases,
) -> Call {
    let config = &leases.config;
    let limits = &lease.limits;
    let mut call = Call::new(lease.team);
    call.text(lease.id.clone())
        .int(config.ttl.as_millis())
        .int(config.headroom_share)
        .int(config.min_headroom_requests)
        .key_if(limits.rpm.is_some() || limits.tpm.is_some(), || {
            lease.keys.rates()
        })
        .int(limits.rpm.unwrap_or(0))
        .int(limits.tpm.unwrap_or(0))
        .int(renewal.requests_back)
        .int(renewal.requests_want)
        .int(renewal.tokens_back)
        .int(renewal.tokens_want)
        .int(renewal.token_unit)
        .int(renewal.budgets.len());
    for ((op, budget), (_, limit)) in renewal.budgets.iter().zip(budgets).zip(&limits.budgets) {
        call.key(budget.key.clone())
            .int(*limit)
            .int(op.spent_total)
            .int(op.spent_acked)
            .int(op.base)
            .int(op.want)
            .int(op.unit);
    }
    call
}

fn take_answer(leases: &Leases, lease: &Arc<GateLease>, renewal: &Renewal, reply: Answer) {
    let mut state = lease.lock();
    let outcome = match reply.map(|r| r.map(|values| granted(&values))) {
        Ok(Ok(Some(granted))) => match state.apply(renewal, &granted, &leases.config) {
            Ok(())
                if granted.requests > 0
                    || granted.tokens > 0
                    || granted.budgets.iter().any(
                        |g| matches!(g, BudgetGrant::Granted { amount, .. } if *amount > 0),
                    ) =>
            {
                "granted"
            }
            Ok(()) => "held",
            Err(()) => "lost",
        },
        Ok(Ok(None)) => {
            tracing::error!("lease renewal answered in an unknown shape");
            state.failed(&leases.config, Instant::now());
            "failed"
        }
        Ok(Err(e)) => {
            tracing::debug!(error = %e.message, maybe_applied = e.maybe_applied, "lease renewal did not go through; the next one puts it right");
            state.failed(&leases.config, Instant::now());
            "failed"
        }
        Err(_) => {
            state.failed(&leases.config, Instant::now());
            "failed"
        }
    };
    // Requests that settled while this renewal was on the way report now.
    let report = state.report_now();
    drop(state);
    if report {
        leases.wake.notify_one();
    }
    crate::metrics::observe_lease_renewal(outcome);
    if outcome == "lost" {
        lease.lost.store(true, std::sync::atomic::Ordering::Release);
        let key = (lease.scope, lease.model);
        if let Some((_, lease)) = leases.current.remove_if(&key, |_, l| Arc::ptr_eq(l, lease)) {
            leases.retire(lease);
        }
    }
}

/// Reads a lease's reply: requests granted and left, tokens granted and left, then per
/// budget granted (−1: counter missing, −2: expired), held, left, pressure.
fn granted(values: &[Value]) -> Option<Granted> {
    let n = |i: usize| match values.get(i) {
        Some(Value::Int(n)) => Some(*n),
        _ => None,
    };
    let mut budgets = Vec::new();
    let mut i = 4;
    while i < values.len() {
        budgets.push(match n(i)? {
            -1 => BudgetGrant::CounterMissing,
            -2 => BudgetGrant::Expired,
            amount => BudgetGrant::Granted {
                amount: amount.max(0),
                held: n(i + 1)?,
                left: n(i + 2)?,
                pressure: n(i + 3)? == 1,
            },
        });
        i += 4;
    }
    Some(Granted {
        requests: n(0)?,
        requests_left: n(1)?,
        tokens: n(2)?,
        tokens_left: n(3)?,
        budgets,
    })
}
