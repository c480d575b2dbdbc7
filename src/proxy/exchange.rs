//! One request's journey through the gateway, and the ledger event it becomes.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, SubsecRound, Utc};
use rust_decimal::Decimal;

use super::error::ApiError;
use super::routing::Candidate;
use crate::governance::{ScopeKind, Ticket};
use crate::ids::RequestId;
use crate::keys::KeyPolicy;
use crate::ledger::LedgerEvent;
use crate::pricing::{PriceTable, Usage};
use crate::tags::Tags;

pub struct Exchange {
    pub request_id: RequestId,
    pub created_at: DateTime<Utc>,
    pub started: Instant,
    pub policy: Arc<KeyPolicy>,
    pub model: String,
    pub upstream_model: String,
    pub deployment: String,
    pub provider: &'static str,
    pub price_name: String,
    pub prices: Arc<PriceTable>,
    pub streamed: bool,
    /// The client asked for the usage chunk itself (otherwise the gateway asked for it and
    /// keeps it from the client).
    pub client_wants_usage: bool,
    pub body_len: usize,
    pub upstream_started: Option<Instant>,
    /// What admission took, to be settled when the request ends.
    pub ticket: Option<Ticket>,
    /// The request's tags, once its body has been read.
    pub tags: Tags,
    /// Upstream attempts made (1 when the first deployment answered).
    pub attempts: u16,
    /// When the first attempt was sent (`upstream_started` is the answering attempt's).
    pub first_upstream_started: Option<Instant>,
}

/// How a request ended, for the ledger.
pub struct Outcome {
    pub status: u16,
    pub error_type: Option<&'static str>,
    pub usage: Usage,
    pub usage_estimated: bool,
    /// The scope whose limit refused the request, if one did.
    pub refused_by: Option<&'static str>,
}

impl Outcome {
    /// A request that ended with `error` (no usage to charge).
    pub fn failed(error: &ApiError) -> Outcome {
        Outcome {
            status: error.status().as_u16(),
            error_type: Some(error.code()),
            usage: Usage::default(),
            usage_estimated: false,
            refused_by: error.scope().map(ScopeKind::as_str),
        }
    }
}

impl Exchange {
    pub fn new(
        request_id: RequestId,
        policy: Arc<KeyPolicy>,
        prices: Arc<PriceTable>,
        started: Instant,
    ) -> Exchange {
        Exchange {
            request_id,
            // PostgreSQL keeps microseconds; truncating here keeps a replayed event identical.
            created_at: Utc::now().trunc_subsecs(6),
            started,
            policy,
            model: String::new(),
            upstream_model: String::new(),
            deployment: String::new(),
            provider: "",
            price_name: String::new(),
            prices,
            streamed: false,
            client_wants_usage: false,
            body_len: 0,
            upstream_started: None,
            ticket: None,
            tags: Tags::default(),
            attempts: 0,
            first_upstream_started: None,
        }
    }

    /// Names the deployment being tried: the ledger records (and prices) whichever answered.
    pub fn describe_candidate(&mut self, candidate: &Candidate) {
        self.upstream_model.clone_from(&candidate.upstream_model);
        self.deployment.clone_from(&candidate.upstream.name);
        self.provider = candidate.upstream.kind.as_str();
        self.price_name.clone_from(&candidate.price_name);
    }

    /// The exact cost of `usage` at the price in force when the request arrived
    /// (zero for an unpriced model that configuration lets through).
    pub fn cost(&self, usage: &Usage) -> Decimal {
        self.prices
            .price_at(&self.price_name, self.created_at)
            .map(|price| price.cost(usage).total)
            .unwrap_or(Decimal::ZERO)
    }

    pub fn event(&self, outcome: Outcome) -> LedgerEvent {
        let now = Instant::now();
        if let Some(first) = self.first_upstream_started {
            // Time spent waiting on upstreams (failed attempts included) is not the gateway's.
            crate::metrics::observe_overhead(now - self.started, now - first);
        }
        let millis = |since: Instant| {
            u32::try_from(now.duration_since(since).as_millis()).unwrap_or(u32::MAX)
        };
        LedgerEvent {
            request_id: self.request_id,
            created_at: self.created_at,
            team_id: self.policy.team_id,
            experiment_id: self.policy.experiment_id,
            key_id: self.policy.key_id,
            key_prefix: Some(self.policy.prefix.clone()),
            tags: self.tags.clone(),
            model: self.model.clone(),
            upstream_model: self.upstream_model.clone(),
            deployment: self.deployment.clone(),
            provider: self.provider.to_string(),
            status: outcome.status,
            error_type: outcome.error_type.map(str::to_string),
            streamed: self.streamed,
            usage_estimated: outcome.usage_estimated,
            cost_usd: self.cost(&outcome.usage),
            usage: outcome.usage,
            latency_ms: millis(self.started),
            upstream_latency_ms: self.upstream_started.map(millis),
            attempts: self.attempts.max(1),
            refused_by: outcome.refused_by.map(str::to_string),
        }
    }
}
