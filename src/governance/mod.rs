//! Governance: rate limits, concurrency limits and budgets on every scope a request belongs
//! to (key, experiment, team), enforced in Redis so they hold across every gateway instance.
//!
//! Admission is one Lua script call that checks and takes everything for all scopes at once
//! (all or nothing); settlement replaces the reservation by the actual cost and tokens. Both
//! travel in batches (`batch`): one call carries what the instance queued since its last.
//! Reservations and concurrency slots carry an expiry, so an instance that dies cannot pin a
//! budget. See docs/governance.md for the guarantees and their bounds.

mod admission;
mod batch;
pub mod forecast;
mod gate;
mod keys;
mod lease;
mod limits;
mod local;
mod model_limits;
mod period;
mod rebuild;
mod ticket;
mod usage;

pub use admission::{Admission, Governor, GovernorConfig, RateKind, Refusal};
pub use forecast::{Forecast, add_forecasts};
pub use limits::{
    Budget, BudgetMode, FailurePolicy, Limits, MAX_BUDGET_NANOS, MAX_BUDGET_USD, MAX_SPENT_NANOS,
    MAX_TPM, NANOS_PER_USD, ScopeKind, ScopeLimits, budget_amount_problem, nanos_to_usd,
    to_nanos_ceil, to_nanos_floor, tpm_problem,
};
pub use local::LocalShield;
pub use model_limits::{MAX_MODEL_LIMITS, ModelLimits, selector_matches, selector_problem};
pub use period::{Clock, Period, SystemClock};
pub use ticket::{BudgetHeadroom, Ticket};
pub use usage::{BudgetUsage, RateUsage, ScopeUsage};
