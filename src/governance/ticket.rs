//! What an admission took, as a value that must be given back exactly once.
//!
//! A [`Ticket`] is not `Clone` and is consumed by [`Ticket::settle`]; one dropped unsettled
//! (a code path that forgot, a panic) releases what it holds by itself. An admission whose
//! reply nobody waits for any more is released by the batcher (see `batch`), so between the
//! two every rate token, slot and reservation taken is either settled or released, and none
//! is left to its expiry while the instance lives.

use std::sync::Arc;

use super::admission::RateKind;
use super::batch::{Batcher, Call};
use super::keys::ScopeKeys;
use super::lease::Leased;
use super::limits::ScopeKind;
use super::period::Period;
use crate::ids::{RequestId, TeamId};

#[must_use = "a ticket holds rate tokens, a slot and a reservation: settle it (dropping it releases them)"]
pub struct Ticket {
    /// `None` once settled, and for requests admitted without Redis (fail-open or from
    /// leases).
    held: Option<Held>,
    batcher: Option<Batcher>,
    /// Set for a request admitted from this instance's leases: settled in process.
    leased: Option<Leased>,
    /// Remaining requests/tokens on the first scope with such a limit, for response headers.
    pub remaining: Option<(RateKind, u64, u64)>,
    /// The request's tightest budget, for the optional headroom headers.
    pub headroom: Option<BudgetHeadroom>,
}

/// What admission left of the tightest of a request's budgets: its limit less its spend and
/// every reservation held on it, this request's included (so the least the next request can
/// count on, until this one settles at its actual cost).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetHeadroom {
    pub kind: ScopeKind,
    pub id: uuid::Uuid,
    /// For a budget on a model: its index in the scope's `limits.models` (an index, so an
    /// admission copies no name).
    pub model: Option<usize>,
    pub period: Period,
    pub remaining_nanos: i64,
}

/// What one admission holds in Redis.
pub(super) struct Held {
    pub request_id: RequestId,
    pub team: TeamId,
    pub scopes: Arc<[TicketScope]>,
    pub tokens_estimate: u64,
    /// The budget hash field holding this request's reservations (named by their expiry).
    pub reservation_field: String,
}

#[derive(Debug)]
pub(super) struct TicketScope {
    /// The scope's key names, built once at admission for settlement to reuse.
    pub keys: ScopeKeys,
    pub tpm: u64,
    /// Admission took a concurrency slot that settlement must free.
    pub holds_slot: bool,
    /// What admission reserved on each of this scope's budgets (nano-USD).
    pub reserve: i64,
    /// The budget hashes admission reserved on (one per budget period window).
    pub budget_keys: Vec<String>,
}

impl Ticket {
    pub(super) fn held(
        held: Held,
        batcher: Batcher,
        remaining: Option<(RateKind, u64, u64)>,
        headroom: Option<BudgetHeadroom>,
    ) -> Ticket {
        Ticket {
            held: Some(held),
            batcher: Some(batcher),
            leased: None,
            remaining,
            headroom,
        }
    }

    /// A request admitted from leases, in process.
    pub(super) fn leased(
        leased: Leased,
        remaining: Option<(RateKind, u64, u64)>,
        headroom: Option<BudgetHeadroom>,
    ) -> Ticket {
        Ticket {
            held: None,
            batcher: None,
            leased: Some(leased),
            remaining,
            headroom,
        }
    }

    /// A request admitted while Redis was unreachable (fail-open): nothing to give back.
    pub(super) fn unheld() -> Ticket {
        Ticket {
            held: None,
            batcher: None,
            leased: None,
            remaining: None,
            headroom: None,
        }
    }

    /// Replaces the reservations by the actual tokens and cost. The batcher sends the call
    /// again while it surely did not run (Redis unreachable, a failover), never when it may
    /// have (a timeout): a settlement applied twice would release other requests'
    /// reservations. A settlement that did not go through leaves the reservation to expire
    /// and the spend uncounted in Redis until the counter is next rebuilt from the ledger.
    pub async fn settle(mut self, actual_tokens: u64, actual_cost_nanos: i64) {
        if let Some(leased) = self.leased.take() {
            leased.settle(actual_tokens, actual_cost_nanos);
            return;
        }
        let (Some(held), Some(batcher)) = (self.held.take(), self.batcher.take()) else {
            return;
        };
        let delta = i128::from(actual_tokens) - i128::from(held.tokens_estimate);
        let delta = i64::try_from(delta).unwrap_or(if delta < 0 { i64::MIN } else { i64::MAX });
        if let Err(e) = batcher
            .settle(settle_call(&held, delta, actual_cost_nanos))
            .await
        {
            tracing::error!(request_id = %held.request_id, error = %e.message, maybe_applied = e.maybe_applied, "settlement failed; the reservation will expire");
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(leased) = self.leased.take() {
            tracing::warn!("a request admitted from a lease ended without settling; released");
            leased.release();
        }
        if let (Some(held), Some(batcher)) = (self.held.take(), self.batcher.take()) {
            tracing::warn!(request_id = %held.request_id, "a request ended without settling; its admission is released");
            batcher.release(release_call(&held));
        }
    }
}

/// The settlement that gives back everything an admission took but its request-rate token:
/// the token estimate, the slot and the reservations, charging nothing.
pub(super) fn release_call(held: &Held) -> Call {
    let delta = i64::try_from(held.tokens_estimate).map_or(i64::MIN, |n| -n);
    settle_call(held, delta, 0)
}

/// The settlement script's arguments for one admission (see `lua/govern.lua`).
fn settle_call(held: &Held, token_delta: i64, actual_cost_nanos: i64) -> Call {
    let mut call = Call::new(held.team);
    call.text(held.request_id.to_string())
        .int(held.scopes.len());
    for scope in held.scopes.iter() {
        call.key_if(scope.tpm > 0, || scope.keys.rates())
            .key_if(scope.holds_slot, || scope.keys.concurrency())
            .int(scope.tpm)
            .int(token_delta)
            .int(u8::from(scope.holds_slot))
            .int(scope.reserve)
            .int(scope.budget_keys.len());
        for budget_key in &scope.budget_keys {
            call.key(budget_key.clone())
                .text(held.reservation_field.clone())
                .int(actual_cost_nanos);
        }
    }
    call
}
