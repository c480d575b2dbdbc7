//! Leases: an instance takes a slice of a gate's headroom from Redis (budget nano-USD, rate
//! bucket tokens) and admits requests against it in process, with no Redis call while the
//! lease covers a request's whole reservation. What is leased is reserved in Redis like any
//! reservation, so spent + reserved + leased never exceeds a budget; leases are sized to the
//! instance's recent traffic, never take more than a share of what is free, and stop
//! altogether near the end of a limit, where every admission goes to Redis again.
//!
//! A request is admitted from leases only when every one of its gates has one that covers
//! it; otherwise it takes the usual admission call. Concurrency limits are never leased
//! (a slot held idle by one instance would refuse another's request), so a gate with
//! `max_concurrent` is always admitted by Redis.
//!
//! `state` holds the numbers, `renew` talks to Redis in the background.

mod renew;
mod state;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::admission::RateKind;
use super::gate::Gate;
use super::keys::ScopeKeys;
use super::limits::{Budget, ScopeKind};
use super::ticket::BudgetHeadroom;
use crate::config::LeaseConfig;
use crate::ids::TeamId;
pub(super) use renew::spawn_renewer;
pub(super) use state::Need;
use state::{LeaseLimits, LeaseState};

/// The gate a lease is for: a scope, or its limits on one model (by index in `models`).
type GateKey = (uuid::Uuid, Option<usize>);

pub(super) struct GateLease {
    /// Names the lease's fields in budget hashes (`l:<id>`, `e:<id>`).
    id: String,
    team: TeamId,
    kind: ScopeKind,
    scope: uuid::Uuid,
    model: Option<usize>,
    /// The model selector of a gate on a model: an index alone could name another entry
    /// after the scope's `models` changed.
    selector: Option<String>,
    keys: ScopeKeys,
    /// The budgets as the policy carried them, to notice a change cheaply.
    source: Vec<Budget>,
    limits: LeaseLimits,
    /// No longer admits (limits changed, its period ended, shutdown, or lost): what it holds
    /// is given back as its requests settle.
    retired: AtomicBool,
    lost: AtomicBool,
    state: Mutex<LeaseState>,
    renewer: Arc<Notify>,
}

impl GateLease {
    fn new(
        id: String,
        team: TeamId,
        gate: &Gate<'_>,
        prefix: &str,
        now: Instant,
        renewer: Arc<Notify>,
    ) -> GateLease {
        GateLease {
            id,
            team,
            kind: gate.kind(),
            scope: gate.id(),
            model: gate.model.map(|(i, _)| i),
            selector: gate.model_selector().map(str::to_owned),
            keys: gate.keys(prefix, team),
            source: gate.budgets().to_vec(),
            limits: LeaseLimits {
                rpm: gate.rpm(),
                tpm: gate.tpm(),
                budgets: gate
                    .budgets()
                    .iter()
                    .map(|b| (b.period, b.limit_nanos()))
                    .collect(),
            },
            retired: AtomicBool::new(false),
            lost: AtomicBool::new(false),
            state: Mutex::new(LeaseState::new(now)),
            renewer,
        }
    }

    /// Whether the lease was taken under the limits `gate` carries now.
    fn matches(&self, gate: &Gate<'_>, team: TeamId) -> bool {
        self.team == team
            && self.selector.as_deref() == gate.model_selector()
            && self.limits.rpm == gate.rpm()
            && self.limits.tpm == gate.tpm()
            && self.source == gate.budgets()
    }

    /// The numbers are valid after any panic (each update is a few assignments), so a
    /// poisoned lock is used as is.
    fn lock(&self) -> MutexGuard<'_, LeaseState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn retire(&self) {
        self.retired.store(true, Ordering::Release);
    }

    fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }
}

/// Every lease this instance holds.
pub(super) struct Leases {
    config: LeaseConfig,
    prefix: String,
    /// Distinguishes this process's leases from every other's in the budget hashes.
    instance: String,
    next_id: AtomicU64,
    current: DashMap<GateKey, Arc<GateLease>>,
    /// Leases that no longer admit but still hold something in Redis.
    retired: Mutex<Vec<Arc<GateLease>>>,
    /// Wakes the renewer; every lease holds a handle, to report spend as soon as its
    /// requests are all over.
    wake: Arc<Notify>,
    stopping: AtomicBool,
}

/// A request admitted from leases: what it took from each, to settle in process.
pub(super) struct Leased {
    gates: Vec<(Arc<GateLease>, Need)>,
}

impl Leased {
    pub fn settle(self, actual_tokens: u64, actual_cost_nanos: i64) {
        let tokens = i64::try_from(actual_tokens).unwrap_or(i64::MAX);
        self.settle_each(tokens, actual_cost_nanos);
    }

    /// Gives back everything but the request-rate tokens, charging nothing.
    pub fn release(self) {
        self.settle_each(0, 0);
    }

    fn settle_each(&self, tokens: i64, cost: i64) {
        for (lease, need) in &self.gates {
            let mut state = lease.lock();
            state.settle(&lease.limits, *need, tokens, cost);
            let report = state.report_now();
            drop(state);
            if report {
                lease.renewer.notify_one();
            }
        }
    }
}

/// What an admission from leases tells the response, like the script's reply does.
pub(super) struct LeasedAdmission {
    pub held: Leased,
    pub remaining: Option<(RateKind, u64, u64)>,
    pub headroom: Option<BudgetHeadroom>,
}

impl Leases {
    pub fn new(config: LeaseConfig, prefix: &str) -> Leases {
        let instance = uuid::Uuid::new_v4().simple().to_string();
        Leases {
            config,
            prefix: prefix.to_string(),
            instance: instance.get(..16).unwrap_or(&instance).to_string(),
            next_id: AtomicU64::new(1),
            current: DashMap::new(),
            retired: Mutex::new(Vec::new()),
            wake: Arc::new(Notify::new()),
            stopping: AtomicBool::new(false),
        }
    }

    /// Admits the request in process if every gate's lease covers it, taking from each;
    /// `None` sends it to Redis. Either way the request counts towards the demand that
    /// sizes the gates' next leases.
    pub fn admit(
        &self,
        team: TeamId,
        gates: &[Gate<'_>],
        need: impl Fn(&Gate<'_>) -> Need,
        now: DateTime<Utc>,
    ) -> Option<LeasedAdmission> {
        if !self.config.enabled
            || self.stopping.load(Ordering::Relaxed)
            || gates.iter().any(|g| g.max_concurrent().is_some())
        {
            return None;
        }
        let instant = Instant::now();
        let mut taken: Vec<(Arc<GateLease>, Need)> = Vec::with_capacity(gates.len());
        let (mut covered, mut wake) = (true, false);
        let mut remaining = None;
        let mut headroom: Option<BudgetHeadroom> = None;
        for gate in gates {
            let need = need(gate);
            let lease = self.lease_for(team, gate, instant);
            let mut state = lease.lock();
            state.note(need, instant);
            if !covered || !state.covers(&lease.limits, need, now, instant) {
                covered = false;
                wake |= state.may_renew(instant);
                continue;
            }
            wake |= state.take(&lease.limits, need) && state.may_renew(instant);
            if remaining.is_none() {
                remaining = rate_remaining(&lease.limits, &state);
            }
            for (b, (period, _)) in state.budgets.iter().zip(&lease.limits.budgets) {
                let left = b.left.saturating_add(b.available).max(0);
                if headroom.is_none_or(|h| left < h.remaining_nanos) {
                    headroom = Some(BudgetHeadroom {
                        kind: lease.kind,
                        id: lease.scope,
                        model: lease.model,
                        period: *period,
                        remaining_nanos: left,
                    });
                }
            }
            drop(state);
            taken.push((lease, need));
        }
        if wake {
            self.wake.notify_one();
        }
        if !covered {
            for (lease, need) in taken {
                lease.lock().untake(&lease.limits, need);
            }
            return None;
        }
        Some(LeasedAdmission {
            held: Leased { gates: taken },
            remaining,
            headroom,
        })
    }

    /// The gate's current lease, a fresh one if it has none or its limits changed (the old
    /// one is retired and given back in the background).
    fn lease_for(&self, team: TeamId, gate: &Gate<'_>, now: Instant) -> Arc<GateLease> {
        let key = (gate.id(), gate.model.map(|(i, _)| i));
        let current = self.current.get(&key).map(|lease| lease.clone());
        if let Some(lease) = current
            && !lease.is_retired()
            && lease.matches(gate, team)
        {
            return lease;
        }
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}.{n}", self.instance);
        let fresh = Arc::new(GateLease::new(
            id,
            team,
            gate,
            &self.prefix,
            now,
            self.wake.clone(),
        ));
        if let Some(old) = self.current.insert(key, fresh.clone()) {
            self.retire(old);
        }
        fresh
    }

    fn retire(&self, lease: Arc<GateLease>) {
        lease.retire();
        self.retired
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(lease);
        self.wake.notify_one();
    }

    /// Retires this instance's lease on `gate`, so that the renewer gives back what it does
    /// not use: a request was refused for want of what leases hold.
    pub fn give_back(&self, team: TeamId, gate: &Gate<'_>) {
        let key = (gate.id(), gate.model.map(|(i, _)| i));
        if let Some((_, lease)) = self.current.remove_if(&key, |_, l| l.team == team) {
            self.retire(lease);
        }
    }

    /// How long a request refused for want of what leases hold waits for them: long enough
    /// for every other instance to renew (it then gives back what it does not use) or to
    /// go idle. Zero without leases.
    pub fn pressure_wait(&self) -> Duration {
        if !self.config.enabled {
            return Duration::ZERO;
        }
        let slowest = self.config.report_interval.max(self.config.idle);
        slowest.saturating_add(Duration::from_millis(200))
    }

    /// Stops admitting from leases and retires them all, so the renewer gives back what
    /// they hold (at shutdown).
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
        self.wake.notify_one();
        let keys: Vec<GateKey> = self.current.iter().map(|e| *e.key()).collect();
        for key in keys {
            if let Some((_, lease)) = self.current.remove(&key) {
                self.retire(lease);
            }
        }
    }

    /// Whether any lease still holds something in Redis.
    pub fn holding(&self) -> bool {
        let retired = self.retired.lock().unwrap_or_else(PoisonError::into_inner);
        !self.current.is_empty() || !retired.is_empty()
    }
}

/// The pauses of a request waiting for leases to give back what it needs: doubling from
/// 25 ms, for at most `total`.
pub(super) struct LeaseWaits {
    next: Duration,
    left: Duration,
}

impl LeaseWaits {
    pub fn new(total: Duration) -> LeaseWaits {
        LeaseWaits {
            next: Duration::from_millis(25),
            left: total,
        }
    }

    pub fn next(&mut self) -> Option<Duration> {
        if self.left.is_zero() {
            return None;
        }
        let pause = self.next.min(self.left);
        self.left = self.left.saturating_sub(pause);
        self.next = self.next.saturating_mul(2).min(Duration::from_millis(400));
        Some(pause)
    }
}

fn rate_remaining(limits: &LeaseLimits, state: &LeaseState) -> Option<(RateKind, u64, u64)> {
    let left = |known: i64, own: i64| u64::try_from(known.saturating_add(own)).unwrap_or(0);
    if let Some(rpm) = limits.rpm {
        return Some((
            RateKind::Requests,
            u64::from(rpm),
            left(state.requests_left, state.requests),
        ));
    }
    limits
        .tpm
        .map(|tpm| (RateKind::Tokens, tpm, left(state.tokens_left, state.tokens)))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::LeaseWaits;

    #[test]
    fn a_request_waits_for_leases_in_doubling_pauses_for_at_most_the_total() {
        let mut waits = LeaseWaits::new(Duration::from_millis(1200));
        let pauses: Vec<u64> = std::iter::from_fn(|| waits.next())
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .collect();
        assert_eq!(pauses, [25, 50, 100, 200, 400, 400, 25]);
        assert!(LeaseWaits::new(Duration::ZERO).next().is_none());
    }
}
