//! Ledger events made by hand, for tests that write the ledger without requests.

use chrono::{SubsecRound, Utc};
use tollgate::ids::{KeyId, RequestId, TeamId};
use tollgate::ledger::LedgerEvent;
use tollgate::pricing::Usage;

use super::dec;

/// A successful request made now (to PostgreSQL's microsecond precision) by a new team and
/// key, costing `cost` dollars.
pub fn ledger_event(cost: &str) -> LedgerEvent {
    LedgerEvent {
        request_id: RequestId::new(),
        created_at: Utc::now().trunc_subsecs(6),
        team_id: TeamId::new(),
        experiment_id: None,
        key_id: KeyId::new(),
        key_prefix: Some("tg-testtest".into()),
        model: "test-model".into(),
        upstream_model: "test-model".into(),
        deployment: "mock".into(),
        provider: "openai".into(),
        status: 200,
        error_type: None,
        streamed: false,
        usage_estimated: false,
        usage: Usage {
            input_tokens: 7,
            output_tokens: 3,
            ..Usage::default()
        },
        cost_usd: dec(cost),
        latency_ms: 1,
        upstream_latency_ms: Some(1),
        attempts: 1,
        refused_by: None,
        tags: Default::default(),
    }
}
