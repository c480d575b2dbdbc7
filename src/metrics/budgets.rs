//! `tollgate_budget_remaining_usd`: the remaining budget of every scope with a budget that has
//! seen traffic recently. Reading a budget costs Redis round trips, so it is not done at
//! scrape time: the proxy notes the scopes it serves ([`note_budget_scopes`]), and a
//! background task refreshes their remaining amounts every [`REFRESH_EVERY`].

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use futures_util::StreamExt;
use rust_decimal::Decimal;
use tokio::sync::Notify;
use uuid::Uuid;

use super::BUDGET_REMAINING;
use super::text::Family;
use crate::governance::{Governor, Limits, Period, ScopeKind, ScopeLimits};
use crate::ids::TeamId;

pub(super) const REFRESH_EVERY: Duration = Duration::from_secs(15);
/// A scope not seen for this long is dropped (with its series).
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// The most scopes tracked at once; past it, new scopes wait until old ones are forgotten.
const MAX_SCOPES: usize = 10_000;
/// Budget reads in flight at once during a refresh.
const CONCURRENT_READS: usize = 8;

struct Seen {
    team: TeamId,
    /// The scope's budgets only, so a refresh does not read its rate buckets.
    scope: ScopeLimits,
    last_seen: Instant,
}

#[derive(Default)]
struct Budgets {
    seen: DashMap<(ScopeKind, Uuid), Seen>,
    remaining: DashMap<(ScopeKind, Uuid, &'static str), Decimal>,
    /// Wakes the refresher when a new scope appears, so its gauge shows up without waiting.
    new_scope: Notify,
}

static BUDGETS: LazyLock<Budgets> = LazyLock::new(Budgets::default);

/// Notes the scopes one request of `team` belongs to; those with a budget get a
/// `tollgate_budget_remaining_usd` gauge, refreshed in the background. Cheap enough for the
/// request path: one map lookup per scope with a budget.
pub fn note_budget_scopes(team: TeamId, scopes: &[ScopeLimits]) {
    let budgets = &*BUDGETS;
    for scope in scopes.iter().filter(|s| !s.limits.budgets.is_empty()) {
        let now = Instant::now();
        if let Some(mut seen) = budgets.seen.get_mut(&(scope.kind, scope.id)) {
            seen.last_seen = now;
            if seen.scope.limits.budgets != scope.limits.budgets {
                seen.scope = budgets_only(scope);
            }
            continue;
        }
        if budgets.seen.len() >= MAX_SCOPES {
            continue;
        }
        budgets.seen.insert(
            (scope.kind, scope.id),
            Seen {
                team,
                scope: budgets_only(scope),
                last_seen: now,
            },
        );
        budgets.new_scope.notify_one();
    }
}

fn budgets_only(scope: &ScopeLimits) -> ScopeLimits {
    ScopeLimits {
        kind: scope.kind,
        id: scope.id,
        name: scope.name.clone(),
        limits: Limits {
            budgets: scope.limits.budgets.clone(),
            ..Limits::default()
        },
    }
}

/// Resolves when a scope not tracked before has been noted.
pub(super) async fn new_scope_noted() {
    BUDGETS.new_scope.notified().await;
}

/// Forgets scopes not seen recently and reads the remaining budget of the others.
pub(super) async fn refresh(governor: &Governor) {
    let budgets = &*BUDGETS;
    let now = Instant::now();
    budgets
        .seen
        .retain(|_, seen| now.duration_since(seen.last_seen) < FORGET_AFTER);
    budgets
        .remaining
        .retain(|(kind, id, _), _| budgets.seen.contains_key(&(*kind, *id)));
    let scopes: Vec<(TeamId, ScopeLimits)> = budgets
        .seen
        .iter()
        .map(|seen| (seen.team, seen.scope.clone()))
        .collect();
    let reads = futures_util::stream::iter(scopes)
        .map(|(team, scope)| async move {
            let usage = governor.usage(team, &scope).await;
            (scope, usage)
        })
        .buffer_unordered(CONCURRENT_READS);
    futures_util::pin_mut!(reads);
    while let Some((scope, usage)) = reads.next().await {
        match usage {
            Ok(usage) => {
                for period in Period::ALL.map(Period::as_str) {
                    let key = (scope.kind, scope.id, period);
                    match usage.budgets.iter().find(|b| b.period == period) {
                        Some(budget) => {
                            budgets.remaining.insert(key, budget.remaining_usd);
                        }
                        None => {
                            budgets.remaining.remove(&key);
                        }
                    }
                }
            }
            Err(e) => {
                // A stale amount of money is worse than a gap in the graph.
                tracing::debug!(scope = scope.kind.as_str(), id = %scope.id, error = %e, "budget gauge not refreshed");
                for period in Period::ALL.map(Period::as_str) {
                    budgets.remaining.remove(&(scope.kind, scope.id, period));
                }
            }
        }
    }
}

pub(super) fn render(out: &mut String) {
    let mut family = Family::new(
        out,
        BUDGET_REMAINING,
        "gauge",
        "Remaining budget in USD (limit minus spent and reserved) of scopes that saw traffic recently.",
    );
    let mut rows: Vec<((ScopeKind, Uuid, &'static str), Decimal)> = BUDGETS
        .remaining
        .iter()
        .map(|entry| (*entry.key(), *entry.value()))
        .collect();
    rows.sort_by_key(|((kind, id, period), _)| (kind.as_str(), *id, *period));
    for ((kind, id, period), remaining) in rows {
        let id = id.to_string();
        family.sample(
            &[("scope", kind.as_str()), ("id", &id), ("period", period)],
            remaining.normalize(),
        );
    }
}
