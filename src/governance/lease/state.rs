//! One instance's lease on one gate, as plain numbers: what it may still admit in process,
//! what its requests in flight hold, what they spent, what Redis acknowledged, and the
//! demand that sizes the next renewal. No I/O here; `renew` sends what [`LeaseState::plan`]
//! decides and hands the reply to [`LeaseState::apply`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use crate::config::LeaseConfig;
use crate::governance::Period;

/// What one request takes from a gate's lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need {
    /// Tokens taken from a tokens-per-minute bucket until settlement.
    pub tokens: i64,
    /// Nano-USD reserved on each of the gate's budgets.
    pub reserve: i64,
}

/// The limits a lease was taken under: a lease never admits under limits that changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseLimits {
    pub rpm: Option<u32>,
    pub tpm: Option<u64>,
    /// Each budget's period and limit in nano-USD, in the gate's order.
    pub budgets: Vec<(Period, i64)>,
}

/// A lease's part of one budget hash (one period window).
#[derive(Debug, Clone)]
pub struct BudgetLease {
    pub key: String,
    /// When the period window ends (`None` for a total budget): past it the lease admits
    /// nothing more on this window.
    pub period_end: Option<DateTime<Utc>>,
    /// Free to reserve in process.
    pub available: i64,
    /// Reserved by requests in flight.
    pub in_flight: i64,
    /// Spent by every request settled under the lease, since it began.
    pub spent_total: i64,
    /// The part of `spent_total` Redis acknowledged having counted.
    pub spent_acked: i64,
    /// What Redis held for the lease at its last acknowledged renewal (`UNKNOWN` after one
    /// that may have run unanswered).
    pub held_in_redis: i64,
    /// What was free beyond every lease and reservation at the last renewal.
    pub left: i64,
}

impl BudgetLease {
    pub fn new(key: String, period_end: Option<DateTime<Utc>>) -> BudgetLease {
        BudgetLease {
            key,
            period_end,
            available: 0,
            in_flight: 0,
            spent_total: 0,
            spent_acked: 0,
            held_in_redis: 0,
            left: 0,
        }
    }
}

/// What Redis holds for a lease after a renewal that may have run: not known until the next.
const UNKNOWN: i64 = i64::MAX;

/// Requests seen on the gate since the last renewal (both paths), which size the next one.
#[derive(Debug, Clone, Copy)]
struct Demand {
    since: Instant,
    requests: i64,
    tokens: i64,
    nanos: i64,
    max_tokens: i64,
    max_nanos: i64,
}

impl Demand {
    fn new(since: Instant) -> Demand {
        Demand {
            since,
            requests: 0,
            tokens: 0,
            nanos: 0,
            max_tokens: 0,
            max_nanos: 0,
        }
    }
}

/// What the lease aims to hold, and the size of one request (the unit of the "at least
/// `min_headroom_requests` free" rule).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Target {
    pub requests: i64,
    pub tokens: i64,
    pub nanos: i64,
    pub token_unit: i64,
    pub nanos_unit: i64,
}

/// What one renewal sends for one budget (see `lua/govern.lua`). Every field is absolute,
/// so a renewal that ran unanswered is corrected by the next one: spend is the lease's total
/// (Redis counts what it has not counted yet), and `base` is what Redis should hold for the
/// lease before this renewal's grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetOp {
    pub spent_total: i64,
    pub spent_acked: i64,
    pub base: i64,
    pub want: i64,
    pub unit: i64,
}

/// One renewal on the wire: what it gives back, reports and asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renewal {
    pub requests_back: i64,
    pub requests_want: i64,
    pub tokens_back: i64,
    pub tokens_want: i64,
    pub token_unit: i64,
    pub budgets: Vec<BudgetOp>,
    pub sent_at: Instant,
}

/// The script's answer to a renewal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    pub requests: i64,
    pub requests_left: i64,
    pub tokens: i64,
    pub tokens_left: i64,
    pub budgets: Vec<BudgetGrant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetGrant {
    Granted {
        amount: i64,
        held: i64,
        left: i64,
        /// A request was refused on this budget for want of what leases hold: leases give
        /// back what they do not use.
        pressure: bool,
    },
    /// Redis lost the counter (it is rebuilt from the ledger by the next admission).
    CounterMissing,
    /// The lease had expired in Redis (its instance could not renew it in time).
    Expired,
}

/// What a renewal is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Keep the lease sized to demand.
    Active,
    /// Give back everything not in use (limits changed, the period ended, the lease was
    /// lost, shutdown); what requests in flight hold is given back as they settle.
    GiveBack,
}

/// A lease starts once this many requests were seen on its gate within one window: a
/// scope's occasional request is admitted by Redis.
const START_REQUESTS: i64 = 8;

/// How long a lease with no request in flight waits for the next one before it reports
/// its spend: shorter than the ledger's flush, longer than the gap between requests of
/// steady traffic.
pub const QUIET_REPORT: Duration = Duration::from_millis(10);

/// The smallest window a request rate is measured over, so that the first requests of a
/// burst do not look like an endless rate.
const MIN_WINDOW: Duration = Duration::from_millis(100);

#[derive(Debug)]
pub struct LeaseState {
    /// Until when the lease may admit (its last renewal's send time plus the ttl, so never
    /// past its expiry in Redis); `None` before the first renewal answered.
    pub valid_until: Option<Instant>,
    pub requests: i64,
    pub tokens: i64,
    /// Empty until the first renewal is planned; then one per budget of the gate.
    pub budgets: Vec<BudgetLease>,
    pub in_flight: i64,
    demand: Demand,
    pub target: Target,
    pub last_used: Instant,
    pub renewing: bool,
    /// No renewal before this (after one that failed or was granted nothing).
    pub quiet_until: Instant,
    /// Until then the lease asks for nothing and gives back what it does not use: a
    /// request was refused for want of what leases hold.
    pressure_until: Instant,
    pub last_renewal: Option<Instant>,
    pub requests_left: i64,
    pub tokens_left: i64,
}

/// Adds as i128 and clamps to i64: arithmetic on what clients and upstreams report.
fn add(a: i64, b: i64) -> i64 {
    clamp(i128::from(a) + i128::from(b))
}

fn sub(a: i64, b: i64) -> i64 {
    clamp(i128::from(a) - i128::from(b))
}

fn clamp(n: i128) -> i64 {
    i64::try_from(n).unwrap_or(if n < 0 { i64::MIN } else { i64::MAX })
}

/// `amount` per `elapsed`, scaled to `horizon`, rounded up.
fn over(amount: i64, elapsed: Duration, horizon: Duration) -> i64 {
    let elapsed = elapsed.max(MIN_WINDOW).as_millis().max(1);
    let scaled = i128::from(amount.max(0)) * i128::try_from(horizon.as_millis()).unwrap_or(0);
    let elapsed = i128::try_from(elapsed).unwrap_or(i128::MAX);
    clamp((scaled + elapsed - 1) / elapsed)
}

/// A target grows at once and shrinks by half a step, so a pause does not collapse it.
fn smooth(old: i64, new: i64) -> i64 {
    if new >= old {
        new
    } else {
        clamp((i128::from(old) + i128::from(new)) / 2)
    }
}

impl LeaseState {
    pub fn new(now: Instant) -> LeaseState {
        LeaseState {
            valid_until: None,
            requests: 0,
            tokens: 0,
            budgets: Vec::new(),
            in_flight: 0,
            demand: Demand::new(now),
            target: Target::default(),
            last_used: now,
            renewing: false,
            quiet_until: now,
            pressure_until: now,
            last_renewal: None,
            requests_left: 0,
            tokens_left: 0,
        }
    }

    /// Counts a request on the gate (whichever way it was admitted), for sizing.
    pub fn note(&mut self, need: Need, now: Instant) {
        let d = &mut self.demand;
        d.requests = d.requests.saturating_add(1);
        d.tokens = d.tokens.saturating_add(need.tokens.max(0));
        d.nanos = d.nanos.saturating_add(need.reserve.max(0));
        d.max_tokens = d.max_tokens.max(need.tokens);
        d.max_nanos = d.max_nanos.max(need.reserve);
        self.last_used = now;
    }

    /// Whether the lease can admit `need` now, in process.
    pub fn covers(
        &self,
        limits: &LeaseLimits,
        need: Need,
        now: DateTime<Utc>,
        instant: Instant,
    ) -> bool {
        if self.valid_until.is_none_or(|until| until <= instant) {
            return false;
        }
        if (limits.rpm.is_some() && self.requests < 1)
            || (limits.tpm.is_some() && self.tokens < need.tokens)
            || self.budgets.len() != limits.budgets.len()
        {
            return false;
        }
        self.budgets
            .iter()
            .all(|b| b.available >= need.reserve && b.period_end.is_none_or(|end| now < end))
    }

    /// Takes `need` (which [`covers`](Self::covers) said fits). Returns whether the lease
    /// went below its low-water mark (half its target), so the renewer should top it up.
    pub fn take(&mut self, limits: &LeaseLimits, need: Need) -> bool {
        if limits.rpm.is_some() {
            self.requests = self.requests.saturating_sub(1);
        }
        if limits.tpm.is_some() {
            self.tokens = sub(self.tokens, need.tokens);
        }
        for b in &mut self.budgets {
            b.available = sub(b.available, need.reserve);
            b.in_flight = add(b.in_flight, need.reserve);
        }
        self.in_flight = self.in_flight.saturating_add(1);
        self.below_low_water(limits)
    }

    /// Gives back what [`take`](Self::take) took, for a request another gate refused.
    pub fn untake(&mut self, limits: &LeaseLimits, need: Need) {
        if limits.rpm.is_some() {
            self.requests = self.requests.saturating_add(1);
        }
        self.settle(limits, need, 0, 0);
    }

    /// A request admitted from this lease is over: its reservation becomes its actual cost
    /// (reported with the next renewal), its token estimate its actual tokens. A request
    /// that is only released settles with nothing used.
    pub fn settle(&mut self, limits: &LeaseLimits, need: Need, tokens: i64, cost: i64) {
        if limits.tpm.is_some() {
            self.tokens = add(self.tokens, sub(need.tokens, tokens));
        }
        for b in &mut self.budgets {
            b.in_flight = sub(b.in_flight, need.reserve);
            b.available = add(b.available, sub(need.reserve, cost));
            b.spent_total = add(b.spent_total, cost);
        }
        self.in_flight = self.in_flight.saturating_sub(1).max(0);
    }

    /// Whether the renewer should look at this lease now: its requests are all over, it
    /// has spend to report and no renewal is on the way.
    pub fn report_now(&self) -> bool {
        self.in_flight == 0
            && !self.renewing
            && self.budgets.iter().any(|b| b.spent_total != b.spent_acked)
    }

    /// Whether a renewal could be sent now: waking the renewer otherwise is wasted.
    pub fn may_renew(&self, now: Instant) -> bool {
        !self.renewing && now >= self.quiet_until
    }

    fn below_low_water(&self, limits: &LeaseLimits) -> bool {
        let t = self.target;
        (limits.rpm.is_some() && self.requests < t.requests / 2)
            || (limits.tpm.is_some() && self.tokens < t.tokens / 2)
            || self.budgets.iter().any(|b| b.available < t.nanos / 2)
    }

    /// Nothing held in Redis, nothing to report, nothing in flight: the lease can be
    /// forgotten.
    pub fn is_empty(&self) -> bool {
        self.in_flight == 0
            && self.requests <= 0
            && self.tokens == 0
            && !self.renewing
            && self
                .budgets
                .iter()
                .all(|b| b.held_in_redis == 0 && b.spent_total == b.spent_acked)
    }

    /// Decides the next renewal, if one is due. What it gives back leaves the lease at
    /// once (requests admitted meanwhile cannot use it). `budgets` gives the budget hashes
    /// on the first renewal.
    pub fn plan(
        &mut self,
        limits: &LeaseLimits,
        config: &LeaseConfig,
        mode: Mode,
        now: Instant,
        budgets: impl FnOnce() -> Vec<BudgetLease>,
    ) -> Option<Renewal> {
        if self.renewing || now < self.quiet_until {
            return None;
        }
        if self.budgets.is_empty() && !limits.budgets.is_empty() {
            if mode != Mode::Active {
                return None;
            }
            self.budgets = budgets();
        }
        let since_renewal = self
            .last_renewal
            .map(|at| now.saturating_duration_since(at));
        let unreported = self.budgets.iter().any(|b| b.spent_total != b.spent_acked);
        let holds = self.budgets.iter().any(|b| b.held_in_redis != 0);
        // After a renewal that may have run unanswered, the next one puts Redis right.
        let unknown = self.budgets.iter().any(|b| b.held_in_redis == UNKNOWN);
        let heartbeat_due = unknown || (holds && since_renewal.is_none_or(|d| d >= config.ttl / 3));
        // Spend is reported every report interval, and as soon as the lease has gone quiet
        // (no request in flight, none admitted for QUIET_REPORT), so Redis learns a burst's
        // spend about when the ledger does without steady traffic reporting every request.
        let quiet =
            self.in_flight == 0 && now.saturating_duration_since(self.last_used) >= QUIET_REPORT;
        let report_due =
            unreported && (quiet || since_renewal.is_none_or(|d| d >= config.report_interval));
        let idle = now.saturating_duration_since(self.last_used) >= config.idle;
        let give_back = mode != Mode::Active || idle || now < self.pressure_until;
        let mut renewal = Renewal {
            requests_back: 0,
            requests_want: 0,
            tokens_back: 0,
            tokens_want: 0,
            token_unit: self.target.token_unit.max(1),
            budgets: Vec::with_capacity(self.budgets.len()),
            sent_at: now,
        };
        let mut wanted = false;
        if give_back {
            let rates = self.requests > 0 || self.tokens != 0;
            let spare = self.budgets.iter().any(|b| b.available > 0);
            if !(rates || spare || report_due || heartbeat_due) {
                return None;
            }
            renewal.requests_back = self.requests.max(0);
            renewal.tokens_back = self.tokens;
            self.requests = self.requests.min(0);
            self.tokens = 0;
            self.target = Target::default();
        } else {
            self.resize(limits, config, now);
            let low = self.valid_until.is_none() || self.below_low_water(limits);
            wanted = self.target.requests > 0 && low;
            if !(wanted || heartbeat_due || report_due) {
                return None;
            }
            if wanted {
                if limits.rpm.is_some() {
                    renewal.requests_want = sub(self.target.requests, self.requests).max(0);
                }
                if limits.tpm.is_some() {
                    renewal.tokens_want = sub(self.target.tokens, self.tokens).max(0);
                }
            }
        }
        let (target, unit) = (self.target.nanos, self.target.nanos_unit.max(1));
        for b in &mut self.budgets {
            if give_back {
                b.available = b.available.min(0);
            }
            renewal.budgets.push(BudgetOp {
                spent_total: b.spent_total,
                spent_acked: b.spent_acked,
                base: add(b.in_flight, b.available).max(0),
                want: if wanted {
                    sub(target, b.available).max(0)
                } else {
                    0
                },
                unit,
            });
        }
        self.renewing = true;
        Some(renewal)
    }

    /// Sizes the lease from the demand since the last renewal and starts a new window.
    fn resize(&mut self, limits: &LeaseLimits, config: &LeaseConfig, now: Instant) {
        let d = self.demand;
        let elapsed = now.saturating_duration_since(d.since);
        // The window stays open for at least MIN_WINDOW, except to start a first lease.
        let starts = self.target.requests == 0 && d.requests >= START_REQUESTS;
        if elapsed < MIN_WINDOW && !starts {
            return;
        }
        if starts || (d.requests >= 1 && self.target.requests > 0) {
            let t = &mut self.target;
            t.token_unit = d.max_tokens.max(1);
            t.nanos_unit = d.max_nanos.max(1);
            let requests = over(d.requests, elapsed, config.horizon).max(2);
            t.requests = smooth(t.requests, requests);
            t.tokens = smooth(t.tokens, over(d.tokens, elapsed, config.horizon))
                .max(t.token_unit.saturating_mul(2));
            t.nanos = smooth(t.nanos, over(d.nanos, elapsed, config.horizon))
                .max(t.nanos_unit.saturating_mul(2));
            if limits.tpm.is_none() {
                t.tokens = 0;
            }
        } else if d.requests == 0 {
            self.target = Target {
                requests: self.target.requests / 2,
                tokens: self.target.tokens / 2,
                nanos: self.target.nanos / 2,
                ..self.target
            };
        }
        self.demand = Demand::new(now);
    }

    /// Takes in a renewal's answer. `Err` when the lease must stop: Redis lost the counter,
    /// or the lease had expired there.
    pub fn apply(
        &mut self,
        renewal: &Renewal,
        granted: &Granted,
        config: &LeaseConfig,
    ) -> Result<(), ()> {
        self.renewing = false;
        self.last_renewal = Some(renewal.sent_at);
        self.requests = add(self.requests, granted.requests);
        self.tokens = add(self.tokens, granted.tokens);
        self.requests_left = granted.requests_left;
        self.tokens_left = granted.tokens_left;
        let mut lost = granted.budgets.len() != self.budgets.len();
        let mut any_granted = granted.requests > 0 || granted.tokens > 0;
        for ((b, op), grant) in self
            .budgets
            .iter_mut()
            .zip(&renewal.budgets)
            .zip(&granted.budgets)
        {
            b.spent_acked = b.spent_acked.max(op.spent_total);
            match *grant {
                BudgetGrant::Granted {
                    amount,
                    held,
                    left,
                    pressure,
                } => {
                    any_granted |= amount > 0;
                    b.available = add(b.available, amount);
                    b.held_in_redis = held;
                    b.left = left;
                    if pressure {
                        self.pressure_until = renewal.sent_at + config.idle;
                    }
                }
                BudgetGrant::CounterMissing => {
                    b.held_in_redis = 0;
                    lost = true;
                }
                BudgetGrant::Expired => {
                    b.held_in_redis = UNKNOWN;
                    lost = true;
                }
            }
        }
        let wanted = renewal.requests_want > 0
            || renewal.tokens_want > 0
            || renewal.budgets.iter().any(|b| b.want > 0);
        // Under pressure, what the lease does not use goes back at once.
        if wanted && !any_granted && self.pressure_until <= renewal.sent_at {
            self.quiet_until = renewal.sent_at + config.report_interval;
        }
        if lost {
            self.valid_until = None;
            for b in &mut self.budgets {
                b.available = b.available.min(0);
            }
            return Err(());
        }
        self.valid_until = Some(renewal.sent_at + config.ttl);
        Ok(())
    }

    /// A renewal that did not go through, or may have run unanswered: nothing it gave back
    /// comes back (Redis may have taken it), nothing it may have been granted is used, and
    /// the next renewal, absolute in everything, puts Redis right.
    pub fn failed(&mut self, config: &LeaseConfig, now: Instant) {
        self.renewing = false;
        self.quiet_until = now + config.report_interval;
        for b in &mut self.budgets {
            b.held_in_redis = UNKNOWN;
        }
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
