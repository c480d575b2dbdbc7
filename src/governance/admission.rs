//! Admission and settlement against Redis.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use tokio_util::task::TaskTracker;

use super::batch::{Batcher, Call, Release, STOPPED};
use super::gate::Gate;
use super::lease::{LeaseWaits, Leases, Need, spawn_renewer};
use super::limits::{BudgetMode, FailurePolicy, ScopeKind, ScopeLimits};
use super::local::LocalShield;
use super::period::{Clock, Period};
use super::rebuild;
use super::ticket::{BudgetHeadroom, Held, Ticket, TicketScope, release_call};
use crate::config::LeaseConfig;
use crate::connect::redis::RedisConnection;
use crate::ids::{RequestId, TeamId};
use crate::store::Store;

/// Longest wait for a budget counter to be rebuilt from the ledger (a PostgreSQL query).
const REBUILD_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct GovernorConfig {
    pub redis_prefix: String,
    /// How long a reservation or concurrency slot outlives an instance that died holding it.
    pub reservation_ttl: Duration,
    /// Longest wait for Redis on the request path before the failure policy applies.
    pub redis_timeout: Duration,
}

/// What admission needs to know about a request.
pub struct Admission<'a> {
    pub request_id: RequestId,
    pub team: TeamId,
    pub scopes: &'a [ScopeLimits],
    /// The model the client asked for: its scopes' limits on that model apply too.
    pub model: &'a str,
    /// Tokens taken from tokens-per-minute buckets until settlement.
    pub tokens_estimate: u64,
    /// The most the request can cost (strict budgets reserve this), in nano-USD.
    pub max_cost_nanos: i64,
    /// The smaller reservation of `estimate`-mode budgets, in nano-USD.
    pub estimated_cost_nanos: i64,
}

impl Admission<'_> {
    /// What the request reserves on a budget of this mode.
    fn reserve_nanos(&self, mode: BudgetMode) -> i64 {
        match mode {
            BudgetMode::Strict => self.max_cost_nanos,
            BudgetMode::Estimate => self.estimated_cost_nanos,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateKind {
    Requests,
    Tokens,
}

/// Why admission refused, naming the scope and the limit (and the model, when the limit is
/// the scope's limit on a model or group of models).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Budget {
        kind: ScopeKind,
        id: uuid::Uuid,
        model: Option<String>,
        period: Period,
        limit_nanos: i64,
        /// Spent plus reserved by requests in flight, when this request was refused.
        committed_nanos: i64,
        /// What this request needed to reserve on the budget.
        reserve_nanos: i64,
    },
    Rate {
        kind: ScopeKind,
        id: uuid::Uuid,
        model: Option<String>,
        rate: RateKind,
        limit: u64,
        remaining: u64,
        retry_after: Duration,
    },
    Concurrency {
        kind: ScopeKind,
        id: uuid::Uuid,
        limit: u64,
    },
    /// Redis could not be reached and a scope fails closed.
    Unavailable,
}

pub struct Governor {
    /// One multiplexed connection (one per node on a cluster): batches of script calls and
    /// the occasional counter rebuild are pipelined on it, with no pool checkout
    /// (deadpool-redis pings a connection on every checkout, which would be a second round
    /// trip per admission).
    redis: RedisConnection,
    batcher: Batcher,
    config: GovernorConfig,
    clock: Arc<dyn Clock>,
    store: Store,
    local: LocalShield,
    rebuilding: DashMap<String, Arc<tokio::sync::Mutex<()>>>,
    leases: Arc<Leases>,
    /// The lease renewer: shutdown waits for it to give every lease back.
    background: TaskTracker,
}

impl Governor {
    /// A governor without leases: every admission is one script call.
    pub fn new(
        redis: RedisConnection,
        config: GovernorConfig,
        clock: Arc<dyn Clock>,
        store: Store,
        local: LocalShield,
    ) -> Governor {
        let leases = LeaseConfig {
            enabled: false,
            ..LeaseConfig::default()
        };
        Self::with_leases(redis, config, leases, clock, store, local)
    }

    /// A governor that admits from leases where it can (`lease`).
    pub fn with_leases(
        redis: RedisConnection,
        config: GovernorConfig,
        leases: LeaseConfig,
        clock: Arc<dyn Clock>,
        store: Store,
        local: LocalShield,
    ) -> Governor {
        let ttl_ms = u64::try_from(config.reservation_ttl.as_millis()).unwrap_or(u64::MAX);
        let batcher = Batcher::start(redis.clone(), ttl_ms);
        let enabled = leases.enabled;
        let leases = Arc::new(Leases::new(leases, &config.redis_prefix));
        let background = TaskTracker::new();
        if enabled {
            spawn_renewer(&background, leases.clone(), batcher.clone(), clock.clone());
        }
        Governor {
            batcher,
            leases,
            background,
            redis,
            config,
            clock,
            store,
            local,
            rebuilding: DashMap::new(),
        }
    }

    pub fn local(&self) -> &LocalShield {
        &self.local
    }

    pub(super) fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    pub(super) fn prefix(&self) -> &str {
        &self.config.redis_prefix
    }

    pub(super) fn redis_timeout(&self) -> Duration {
        self.config.redis_timeout
    }

    pub(super) fn store(&self) -> &Store {
        &self.store
    }

    /// Checks and takes everything the request needs on all its scopes. `Ok(None)` when no
    /// scope carries a limit that applies to it (nothing to take, no Redis round trip).
    pub async fn admit(&self, request: &Admission<'_>) -> Result<Option<Ticket>, Refusal> {
        let scopes = Gate::all(request.scopes, request.model);
        if scopes.is_empty() {
            return Ok(None);
        }
        let now = self.clock.now();
        let need = |gate: &Gate<'_>| Need {
            tokens: i64::try_from(request.tokens_estimate).unwrap_or(i64::MAX),
            reserve: request.reserve_nanos(gate.budget_mode()),
        };
        if let Some(leased) = self.leases.admit(request.team, &scopes, need, now) {
            return Ok(Some(Ticket::leased(
                leased.held,
                leased.remaining,
                leased.headroom,
            )));
        }
        let started = std::time::Instant::now();
        let admitted = self.admit_scopes(request, &scopes, now).await;
        crate::metrics::observe_admission(started.elapsed());
        admitted
    }

    async fn admit_scopes(
        &self,
        request: &Admission<'_>,
        scopes: &[Gate<'_>],
        now: DateTime<Utc>,
    ) -> Result<Option<Ticket>, Refusal> {
        // A budget counter Redis does not have is rebuilt from the ledger, then admission is
        // tried again; two rounds are enough unless Redis is being flushed continuously.
        let mut rebuilds = 0;
        // A refusal for want of what leases hold waits for them to give it back.
        let mut lease_waits = LeaseWaits::new(self.leases.pressure_wait());
        while rebuilds < 3 {
            match self.try_admit(request, scopes, now).await {
                Ok(AdmitReply::Admitted(ticket)) => return Ok(Some(ticket)),
                Ok(AdmitReply::Refused {
                    refusal,
                    for_leases,
                }) => {
                    let Some(gate) = for_leases.and_then(|i| scopes.get(i)) else {
                        return Err(refusal);
                    };
                    let Some(pause) = lease_waits.next() else {
                        return Err(refusal);
                    };
                    self.leases.give_back(request.team, gate);
                    tokio::time::sleep(pause).await;
                }
                Ok(AdmitReply::NeedsInit(missing)) => {
                    // The ledger query may be slow; the request waits for it like for Redis.
                    let rebuilt = tokio::time::timeout(
                        self.config.redis_timeout.max(REBUILD_TIMEOUT),
                        self.rebuild(request.team, scopes, &missing, now),
                    )
                    .await
                    .unwrap_or_else(|_| Err("timed out".to_string()));
                    if let Err(e) = rebuilt {
                        tracing::error!(error = %e, "budget counter rebuild failed");
                        return Err(Refusal::Unavailable);
                    }
                    rebuilds += 1;
                }
                Err(e) => return self.redis_failed(scopes, &e),
            }
        }
        Err(Refusal::Unavailable)
    }

    fn redis_failed(&self, scopes: &[Gate<'_>], error: &str) -> Result<Option<Ticket>, Refusal> {
        let fail_open = scopes
            .iter()
            .all(|s| s.on_redis_failure() == FailurePolicy::Open);
        tracing::error!(error, fail_open, "governance backend unavailable");
        if !fail_open {
            return Err(Refusal::Unavailable);
        }
        // Fail-open scopes still hold each instance to their per-minute request limit.
        for scope in scopes {
            if let Some(rpm) = scope.rpm()
                && !self
                    .local
                    .check_fail_open(scope.id(), scope.model_selector(), rpm)
            {
                return Err(Refusal::Rate {
                    kind: scope.kind(),
                    id: scope.id(),
                    model: scope.model_selector().map(str::to_owned),
                    rate: RateKind::Requests,
                    limit: u64::from(rpm),
                    remaining: 0,
                    retry_after: Duration::from_secs(1),
                });
            }
        }
        Ok(Some(Ticket::unheld()))
    }

    async fn try_admit(
        &self,
        request: &Admission<'_>,
        scopes: &[Gate<'_>],
        now: DateTime<Utc>,
    ) -> Result<AdmitReply, String> {
        let mut call = Call::new(request.team);
        call.text(request.request_id.to_string()).int(scopes.len());
        let mut ticket_scopes = Vec::with_capacity(scopes.len());
        for scope in scopes {
            let keys = scope.keys(&self.config.redis_prefix, request.team);
            let reserve = request.reserve_nanos(scope.budget_mode());
            let (rpm, tpm, max_concurrent) = (scope.rpm(), scope.tpm(), scope.max_concurrent());
            let budgets = scope.budgets();
            call.key_if(rpm.is_some() || tpm.is_some(), || keys.rates())
                .key_if(max_concurrent.is_some(), || keys.concurrency())
                .int(rpm.unwrap_or(0))
                .int(tpm.unwrap_or(0))
                .int(request.tokens_estimate)
                .int(max_concurrent.unwrap_or(0))
                .int(reserve)
                .int(budgets.len());
            let mut budget_keys = Vec::with_capacity(budgets.len());
            for budget in budgets {
                let budget_key = keys.budget(&budget.period.label(now));
                call.key(budget_key.clone()).int(budget.limit_nanos());
                budget_keys.push(budget_key);
            }
            ticket_scopes.push(TicketScope {
                keys,
                tpm: tpm.unwrap_or(0),
                holds_slot: max_concurrent.is_some(),
                reserve,
                budget_keys,
            });
        }
        let ticket_scopes: Arc<[TicketScope]> = ticket_scopes.into();
        let (request_id, team, tokens_estimate) =
            (request.request_id, request.team, request.tokens_estimate);
        let held = move |reservation_field: String| Held {
            request_id,
            team,
            scopes: ticket_scopes,
            tokens_estimate,
            reservation_field,
        };
        let for_release = held.clone();
        // Given to the batcher: if this request stops waiting (the timeout below) and the
        // script still admits it, the batcher gives back what it took.
        let release: Release = Box::new(move |reply: &[redis::Value]| {
            (text(reply.first()) == "ok")
                .then(|| release_call(&for_release(text(reply.get(1)).to_string())))
        });
        let answer = self.batcher.admit(call, release);
        let reply = tokio::time::timeout(self.config.redis_timeout, answer)
            .await
            .map_err(|_| "redis timed out".to_string())?
            .map_err(|_| STOPPED.to_string())??;
        parse_admit_reply(&reply, scopes, request, held, &self.batcher)
    }

    async fn rebuild(
        &self,
        team: TeamId,
        scopes: &[Gate<'_>],
        missing: &[(usize, usize)],
        now: DateTime<Utc>,
    ) -> Result<(), String> {
        let mut conn = self.connection();
        for &(s, b) in missing {
            let (Some(scope), Some(budget)) = (
                scopes.get(s),
                scopes.get(s).and_then(|x| x.budgets().get(b)),
            ) else {
                continue;
            };
            let keys = scope.keys(&self.config.redis_prefix, team);
            let budget_key = keys.budget(&budget.period.label(now));
            // One rebuild per counter at a time: a burst that finds the counter missing
            // waits for the first request's ledger query instead of repeating it.
            let lock = self
                .rebuilding
                .entry(budget_key.clone())
                .or_default()
                .clone();
            let guard = lock.lock().await;
            let result = rebuild::budget_counter(
                &self.store,
                &mut conn,
                &budget_key,
                scope,
                budget.period,
                now,
            )
            .await;
            drop(guard);
            drop(lock);
            self.rebuilding
                .remove_if(&budget_key, |_, lock| Arc::strong_count(lock) == 1);
            result?;
        }
        Ok(())
    }

    /// Stops admitting from leases and gives back what they hold, waiting at most `grace`
    /// (at shutdown, once requests in flight are over). What is not given back by then
    /// expires with the lease (`governance.leases.ttl_secs`).
    pub async fn give_back_leases(&self, grace: Duration) {
        self.leases.stop();
        self.background.close();
        if tokio::time::timeout(grace, self.background.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "leases still held at the end of the grace period; they expire by themselves"
            );
        }
    }

    /// The shared multiplexed connection (a cheap handle). It reconnects by itself after
    /// Redis comes back; until then calls fail fast and the failure policy applies.
    pub(super) fn connection(&self) -> RedisConnection {
        self.redis.clone()
    }
}

enum AdmitReply {
    Admitted(Ticket),
    Refused {
        refusal: Refusal,
        /// The gate whose budget refused for want of what leases hold (spent + reserved
        /// without the leases had room).
        for_leases: Option<usize>,
    },
    NeedsInit(Vec<(usize, usize)>),
}

fn int(value: Option<&redis::Value>) -> i64 {
    match value {
        Some(redis::Value::Int(n)) => *n,
        Some(redis::Value::BulkString(b)) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        _ => 0,
    }
}

/// A count from a script reply, where a negative one means none.
fn non_negative(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn text(value: Option<&redis::Value>) -> &str {
    match value {
        Some(redis::Value::BulkString(b)) => std::str::from_utf8(b).unwrap_or(""),
        Some(redis::Value::SimpleString(s)) => s,
        _ => "",
    }
}

fn parse_admit_reply(
    reply: &[redis::Value],
    scopes: &[Gate<'_>],
    request: &Admission<'_>,
    held: impl FnOnce(String) -> Held,
    batcher: &Batcher,
) -> Result<AdmitReply, String> {
    let index = |i: usize| {
        usize::try_from(int(reply.get(i)))
            .unwrap_or(0)
            .saturating_sub(1)
    };
    match text(reply.first()) {
        "ok" => {
            let mut remaining = None;
            for (i, scope) in scopes.iter().enumerate() {
                let (rpm_left, tpm_left) = (int(reply.get(2 + 2 * i)), int(reply.get(3 + 2 * i)));
                if remaining.is_none() {
                    if let Some(rpm) = scope.rpm() {
                        remaining =
                            Some((RateKind::Requests, u64::from(rpm), non_negative(rpm_left)));
                    } else if let Some(tpm) = scope.tpm() {
                        remaining = Some((RateKind::Tokens, tpm, non_negative(tpm_left)));
                    }
                }
            }
            let tightest = 2 + 2 * scopes.len();
            let headroom = scopes
                .get(index(tightest))
                .filter(|_| reply.len() > tightest + 2)
                .and_then(|scope| {
                    let budget = scope.budgets().get(index(tightest + 1))?;
                    Some(BudgetHeadroom {
                        kind: scope.kind(),
                        id: scope.id(),
                        model: scope.model.map(|(i, _)| i),
                        period: budget.period,
                        remaining_nanos: int(reply.get(tightest + 2)).max(0),
                    })
                });
            let held = held(text(reply.get(1)).to_string());
            Ok(AdmitReply::Admitted(Ticket::held(
                held,
                batcher.clone(),
                remaining,
                headroom,
            )))
        }
        "init" => {
            let pairs = (1..reply.len())
                .step_by(2)
                .map(|i| (index(i), index(i + 1)))
                .collect();
            Ok(AdmitReply::NeedsInit(pairs))
        }
        "refused" => {
            let scope = scopes
                .get(index(1))
                .ok_or("admission script named an unknown scope")?;
            let (kind, id) = (scope.kind(), scope.id());
            let model = scope.model_selector().map(str::to_owned);
            let (a, b, c) = (int(reply.get(3)), int(reply.get(4)), int(reply.get(5)));
            let refusal = match text(reply.get(2)) {
                "budget" => {
                    let budget = scope.budgets().get(index(3)).ok_or("unknown budget")?;
                    Refusal::Budget {
                        kind,
                        id,
                        model,
                        period: budget.period,
                        limit_nanos: c,
                        committed_nanos: b,
                        reserve_nanos: request.reserve_nanos(scope.budget_mode()),
                    }
                }
                "rpm" | "tpm" => Refusal::Rate {
                    kind,
                    id,
                    model,
                    rate: if text(reply.get(2)) == "rpm" {
                        RateKind::Requests
                    } else {
                        RateKind::Tokens
                    },
                    limit: non_negative(a),
                    remaining: non_negative(b),
                    retry_after: Duration::from_millis(non_negative(c).max(1)),
                },
                "concurrency" => Refusal::Concurrency {
                    kind,
                    id,
                    limit: non_negative(a),
                },
                other => return Err(format!("admission script answered {other:?}")),
            };
            let for_leases = (int(reply.get(6)) == 1).then(|| index(1));
            Ok(AdmitReply::Refused {
                refusal,
                for_leases,
            })
        }
        other => Err(format!("admission script answered {other:?}")),
    }
}
