//! The ledger's write: request rows and their hourly rollups in one statement.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::Store;
use crate::ledger::LedgerEvent;

fn tokens(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn millis(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

impl Store {
    /// Inserts the batch into `request_log` and adds the rows that were really inserted to
    /// `spend_hourly`, atomically. A request id already present is skipped, so a retried or
    /// replayed batch never counts twice, and the rollups always equal the log.
    pub async fn insert_ledger_batch(&self, events: &[LedgerEvent]) -> Result<(), sqlx::Error> {
        let column = |f: fn(&LedgerEvent) -> i64| events.iter().map(f).collect::<Vec<i64>>();
        let uuids = |f: fn(&LedgerEvent) -> Uuid| events.iter().map(f).collect::<Vec<Uuid>>();
        let texts = |f: fn(&LedgerEvent) -> &str| events.iter().map(f).collect::<Vec<&str>>();
        let request_ids = uuids(|e| e.request_id.0);
        let created_at: Vec<DateTime<Utc>> = events.iter().map(|e| e.created_at).collect();
        let team_ids = uuids(|e| e.team_id.0);
        let experiment_ids: Vec<Option<Uuid>> = events
            .iter()
            .map(|e| e.experiment_id.map(|x| x.0))
            .collect();
        let key_ids = uuids(|e| e.key_id.0);
        let models = texts(|e| e.model.as_str());
        let upstream_models = texts(|e| e.upstream_model.as_str());
        let deployments = texts(|e| e.deployment.as_str());
        let providers = texts(|e| e.provider.as_str());
        let statuses: Vec<i16> = events.iter().map(|e| e.status as i16).collect();
        let error_types: Vec<Option<&str>> =
            events.iter().map(|e| e.error_type.as_deref()).collect();
        let streamed: Vec<bool> = events.iter().map(|e| e.streamed).collect();
        let usage_estimated: Vec<bool> = events.iter().map(|e| e.usage_estimated).collect();
        let costs: Vec<Decimal> = events.iter().map(|e| e.cost_usd).collect();
        let latencies: Vec<i32> = events.iter().map(|e| millis(e.latency_ms)).collect();
        let upstream_latencies: Vec<Option<i32>> = events
            .iter()
            .map(|e| e.upstream_latency_ms.map(millis))
            .collect();
        let attempts: Vec<i16> = events
            .iter()
            .map(|e| i16::try_from(e.attempts).unwrap_or(i16::MAX))
            .collect();
        let key_prefixes: Vec<Option<&str>> =
            events.iter().map(|e| e.key_prefix.as_deref()).collect();
        // Arrays of borrowed or nullable elements skip the macro's check of the bind (it only
        // knows arrays of owned, non-null ones); the casts in the statement fix their types.
        sqlx::query!(
            r#"
WITH input AS (
    SELECT * FROM UNNEST(
        $1::uuid[], $2::timestamptz[], $3::uuid[], $4::uuid[], $5::uuid[], $6::text[], $7::text[],
        $8::text[], $9::text[], $10::int2[], $11::text[], $12::bool[], $13::bool[], $14::int8[],
        $15::int8[], $16::int8[], $17::int8[], $18::int8[], $19::int8[], $20::numeric[],
        $21::int4[], $22::int4[], $23::int2[], $24::text[]
    ) AS t(request_id, created_at, team_id, experiment_id, key_id, model, upstream_model,
           deployment, provider, status, error_type, streamed, usage_estimated, input_tokens,
           cached_input_tokens, cache_write_tokens, cache_write_1h_tokens, output_tokens,
           reasoning_tokens, cost_usd, latency_ms, upstream_latency_ms, attempts, key_prefix)
), inserted AS (
    INSERT INTO request_log (request_id, created_at, team_id, experiment_id, key_id, model,
        upstream_model, deployment, provider, status, error_type, streamed, usage_estimated,
        input_tokens, cached_input_tokens, cache_write_tokens, cache_write_1h_tokens,
        output_tokens, reasoning_tokens, cost_usd, latency_ms, upstream_latency_ms, attempts,
        key_prefix)
    SELECT * FROM input
    ON CONFLICT DO NOTHING
    RETURNING *
)
INSERT INTO spend_hourly AS s (hour, team_id, experiment_id, key_id, model, provider, requests,
    errors, input_tokens, cached_input_tokens, cache_write_tokens, cache_write_1h_tokens,
    output_tokens, reasoning_tokens, cost_usd)
SELECT date_trunc('hour', created_at, 'UTC'), team_id, experiment_id, key_id, model, provider,
       count(*), count(*) FILTER (WHERE status >= 400),
       -- Token sums saturate at the bigint maximum: rows of absurd usage (an upstream may
       -- report 2^64 - 1 tokens, stored as 2^63 - 1) must not fail the batch and stall the
       -- ledger. sum(bigint) is numeric, so only the final value needs clamping.
       LEAST(sum(input_tokens), 9223372036854775807),
       LEAST(sum(cached_input_tokens), 9223372036854775807),
       LEAST(sum(cache_write_tokens), 9223372036854775807),
       LEAST(sum(cache_write_1h_tokens), 9223372036854775807),
       LEAST(sum(output_tokens), 9223372036854775807),
       LEAST(sum(reasoning_tokens), 9223372036854775807),
       sum(cost_usd)
FROM inserted
GROUP BY 1, 2, 3, 4, 5, 6
-- A fixed order makes concurrent writers lock rollup rows in the same order (no deadlocks).
ORDER BY 1, 2, 3, 4, 5, 6
ON CONFLICT (hour, team_id, experiment_id, key_id, model, provider) DO UPDATE SET
    requests = s.requests + EXCLUDED.requests,
    errors = s.errors + EXCLUDED.errors,
    input_tokens = LEAST(s.input_tokens::numeric + EXCLUDED.input_tokens, 9223372036854775807),
    cached_input_tokens =
        LEAST(s.cached_input_tokens::numeric + EXCLUDED.cached_input_tokens, 9223372036854775807),
    cache_write_tokens =
        LEAST(s.cache_write_tokens::numeric + EXCLUDED.cache_write_tokens, 9223372036854775807),
    cache_write_1h_tokens = LEAST(
        s.cache_write_1h_tokens::numeric + EXCLUDED.cache_write_1h_tokens, 9223372036854775807),
    output_tokens = LEAST(s.output_tokens::numeric + EXCLUDED.output_tokens, 9223372036854775807),
    reasoning_tokens =
        LEAST(s.reasoning_tokens::numeric + EXCLUDED.reasoning_tokens, 9223372036854775807),
    cost_usd = s.cost_usd + EXCLUDED.cost_usd
            "#,
            &request_ids,
            &created_at,
            &team_ids,
            &experiment_ids as _,
            &key_ids,
            &models as _,
            &upstream_models as _,
            &deployments as _,
            &providers as _,
            &statuses,
            &error_types as _,
            &streamed,
            &usage_estimated,
            &column(|e| tokens(e.usage.input_tokens)),
            &column(|e| tokens(e.usage.cached_input_tokens)),
            &column(|e| tokens(e.usage.cache_write_tokens)),
            &column(|e| tokens(e.usage.cache_write_1h_tokens)),
            &column(|e| tokens(e.usage.output_tokens)),
            &column(|e| tokens(e.usage.reasoning_tokens)),
            &costs,
            &latencies,
            &upstream_latencies as _,
            &attempts,
            &key_prefixes as _,
        )
        .execute(self.pool())
        .await
        .map(|_| ())
    }

    /// Makes sure the monthly partition holding `day` exists (called ahead of time).
    pub async fn ensure_request_log_partition(
        &self,
        day: chrono::NaiveDate,
    ) -> Result<(), sqlx::Error> {
        sqlx::query!("SELECT tollgate_ensure_request_log_partition($1)", day)
            .execute(self.pool())
            .await
            .map(|_| ())
    }
}
