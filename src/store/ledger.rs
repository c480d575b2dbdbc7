//! The ledger's write: request rows and their hourly rollups, in one transaction.
//!
//! Fresh events (nearly all of them) are sent with one binary `COPY` into `request_log`
//! plus one upsert of the rollups the batch adds up to: PostgreSQL then inserts rows in bulk,
//! with no per-row conflict check, no grouping and no materialised intermediate result. A
//! batch that contains a request id already in the log (a retry after a lost commit
//! acknowledgement, a replayed journal segment) fails that write as a whole and is written
//! again by the idempotent statement, which skips what is there.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use uuid::Uuid;

use super::Store;
use super::ledger_rows::{self, RollupKey, RollupSums, attempts, millis, tokens};
use crate::ledger::LedgerEvent;

/// The rollup upsert both write paths end with: a group already in `spend_hourly` gets the
/// new sums added, token sums saturating at the bigint maximum.
macro_rules! add_to_existing_rollup {
    () => {
        r#"
ON CONFLICT (hour, team_id, experiment_id, key_id, model, provider, tags) DO UPDATE SET
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
"#
    };
}

/// Inserts the batch into `request_log` and adds the rows that were really inserted to
/// `spend_hourly`, atomically, and counts them. A request id already present is skipped, so
/// a retried or replayed batch never counts twice, and the rollups always equal the log.
const INSERT_BATCH: &str = concat!(
    r#"
WITH input AS (
    SELECT * FROM UNNEST(
        $1::uuid[], $2::timestamptz[], $3::uuid[], $4::uuid[], $5::uuid[], $6::text[], $7::text[],
        $8::text[], $9::text[], $10::int2[], $11::text[], $12::bool[], $13::bool[], $14::int8[],
        $15::int8[], $16::int8[], $17::int8[], $18::int8[], $19::int8[], $20::numeric[],
        $21::int4[], $22::int4[], $23::int2[], $24::text[], $25::jsonb[]
    ) AS t(request_id, created_at, team_id, experiment_id, key_id, model, upstream_model,
           deployment, provider, status, error_type, streamed, usage_estimated, input_tokens,
           cached_input_tokens, cache_write_tokens, cache_write_1h_tokens, output_tokens,
           reasoning_tokens, cost_usd, latency_ms, upstream_latency_ms, attempts, key_prefix,
           tags)
), inserted AS (
    INSERT INTO request_log (request_id, created_at, team_id, experiment_id, key_id, model,
        upstream_model, deployment, provider, status, error_type, streamed, usage_estimated,
        input_tokens, cached_input_tokens, cache_write_tokens, cache_write_1h_tokens,
        output_tokens, reasoning_tokens, cost_usd, latency_ms, upstream_latency_ms, attempts,
        key_prefix, tags)
    SELECT * FROM input
    ON CONFLICT DO NOTHING
    RETURNING *
), rollups AS (
INSERT INTO spend_hourly AS s (hour, team_id, experiment_id, key_id, model, provider, tags,
    requests, errors, input_tokens, cached_input_tokens, cache_write_tokens,
    cache_write_1h_tokens, output_tokens, reasoning_tokens, cost_usd)
SELECT date_trunc('hour', created_at, 'UTC'), team_id, experiment_id, key_id, model, provider,
       COALESCE(tags, '{}'), count(*), count(*) FILTER (WHERE status >= 400),
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
GROUP BY 1, 2, 3, 4, 5, 6, 7
-- A fixed order makes concurrent writers lock rollup rows in the same order (no deadlocks).
ORDER BY 1, 2, 3, 4, 5, 6, 7
"#,
    add_to_existing_rollup!(),
    r#")
SELECT count(*) FROM inserted
"#
);

/// Adds a batch's own rollups (summed by [`ledger_rows::rollups`]) to `spend_hourly`.
const ADD_ROLLUPS: &str = concat!(
    r#"
INSERT INTO spend_hourly AS s (hour, team_id, experiment_id, key_id, model, provider, tags,
    requests, errors, input_tokens, cached_input_tokens, cache_write_tokens,
    cache_write_1h_tokens, output_tokens, reasoning_tokens, cost_usd)
SELECT * FROM UNNEST($1::timestamptz[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[],
    $6::text[], $7::jsonb[], $8::int8[], $9::int8[], $10::int8[], $11::int8[], $12::int8[],
    $13::int8[], $14::int8[], $15::int8[], $16::numeric[])
ORDER BY 1, 2, 3, 4, 5, 6, 7
"#,
    add_to_existing_rollup!()
);

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Binds the events' columns as the 25 arrays `INSERT_BATCH` unnests.
fn bind_events<'q>(query: PgQuery<'q>, events: &'q [LedgerEvent]) -> PgQuery<'q> {
    let col = |f: fn(&LedgerEvent) -> i64| events.iter().map(f).collect::<Vec<i64>>();
    query
        .bind(events.iter().map(|e| e.request_id.0).collect::<Vec<Uuid>>())
        .bind(events.iter().map(|e| e.created_at).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.team_id.0).collect::<Vec<Uuid>>())
        .bind(
            events
                .iter()
                .map(|e| e.experiment_id.map(|x| x.0))
                .collect::<Vec<Option<Uuid>>>(),
        )
        .bind(events.iter().map(|e| e.key_id.0).collect::<Vec<Uuid>>())
        .bind(events.iter().map(|e| e.model.as_str()).collect::<Vec<_>>())
        .bind(
            events
                .iter()
                .map(|e| e.upstream_model.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            events
                .iter()
                .map(|e| e.deployment.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            events
                .iter()
                .map(|e| e.provider.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            events
                .iter()
                .map(|e| i16::try_from(e.status).unwrap_or(i16::MAX))
                .collect::<Vec<i16>>(),
        )
        .bind(
            events
                .iter()
                .map(|e| e.error_type.as_deref())
                .collect::<Vec<Option<&str>>>(),
        )
        .bind(events.iter().map(|e| e.streamed).collect::<Vec<bool>>())
        .bind(
            events
                .iter()
                .map(|e| e.usage_estimated)
                .collect::<Vec<bool>>(),
        )
        .bind(col(|e| tokens(e.usage.input_tokens)))
        .bind(col(|e| tokens(e.usage.cached_input_tokens)))
        .bind(col(|e| tokens(e.usage.cache_write_tokens)))
        .bind(col(|e| tokens(e.usage.cache_write_1h_tokens)))
        .bind(col(|e| tokens(e.usage.output_tokens)))
        .bind(col(|e| tokens(e.usage.reasoning_tokens)))
        .bind(events.iter().map(|e| e.cost_usd).collect::<Vec<Decimal>>())
        .bind(
            events
                .iter()
                .map(|e| millis(e.latency_ms))
                .collect::<Vec<i32>>(),
        )
        .bind(
            events
                .iter()
                .map(|e| e.upstream_latency_ms.map(millis))
                .collect::<Vec<Option<i32>>>(),
        )
        .bind(
            events
                .iter()
                .map(|e| attempts(e.attempts))
                .collect::<Vec<i16>>(),
        )
        .bind(
            events
                .iter()
                .map(|e| e.key_prefix.as_deref())
                .collect::<Vec<Option<&str>>>(),
        )
        .bind(
            events
                .iter()
                .map(|e| ledger_rows::stored_tags(&e.tags))
                .collect::<Vec<_>>(),
        )
}

fn bind_rollups<'q>(
    query: PgQuery<'q>,
    rollups: &'q BTreeMap<RollupKey, RollupSums>,
) -> PgQuery<'q> {
    let keys = || rollups.keys();
    let sums = || rollups.values();
    let mut query = query
        .bind(keys().map(|k| k.0).collect::<Vec<_>>())
        .bind(keys().map(|k| k.1).collect::<Vec<Uuid>>())
        .bind(keys().map(|k| k.2).collect::<Vec<Option<Uuid>>>())
        .bind(keys().map(|k| k.3).collect::<Vec<Uuid>>())
        .bind(keys().map(|k| k.4.as_str()).collect::<Vec<&str>>())
        .bind(keys().map(|k| k.5.as_str()).collect::<Vec<&str>>())
        .bind(keys().map(|k| sqlx::types::Json(&k.6)).collect::<Vec<_>>())
        .bind(sums().map(|s| s.requests).collect::<Vec<i64>>())
        .bind(sums().map(|s| s.errors).collect::<Vec<i64>>());
    for i in 0..6 {
        query = query.bind(sums().map(|s| s.tokens[i]).collect::<Vec<i64>>());
    }
    query.bind(sums().map(|s| s.cost_usd).collect::<Vec<Decimal>>())
}

impl Store {
    /// Writes a batch, idempotent by request id. Fresh events (the common case) take the cheap
    /// path, [`Store::append_ledger_batch`]; if any of them is already in the log (a retry
    /// after a lost commit acknowledgement, a replay), that write fails as a whole and the
    /// batch is written again by [`Store::insert_ledger_batch`], which skips what is there.
    /// Returns the rows inserted.
    pub async fn write_ledger_batch(&self, events: &[LedgerEvent]) -> Result<u64, sqlx::Error> {
        let Some(rollups) = ledger_rows::rollups(events) else {
            return self.insert_ledger_batch(events).await;
        };
        match self.append_ledger_batch(events, &rollups).await {
            Ok(()) => Ok(events.len() as u64),
            Err(e) if super::is_unique_violation(&e) => self.insert_ledger_batch(events).await,
            Err(e) => Err(e),
        }
    }

    /// Appends fresh events with one COPY and adds their rollups, in one transaction. Fails
    /// with a unique violation, writing nothing, if any event is already in the log.
    pub async fn append_ledger_batch(
        &self,
        events: &[LedgerEvent],
        rollups: &BTreeMap<RollupKey, RollupSums>,
    ) -> Result<(), sqlx::Error> {
        let rows = ledger_rows::copy_rows(events).map_err(sqlx::Error::Encode)?;
        let mut tx = self.pool().begin().await?;
        let mut copy = tx.copy_in_raw(ledger_rows::COPY_STATEMENT).await?;
        if let Err(e) = copy.send(rows).await {
            let _ = copy.abort("ledger batch not sent").await;
            return Err(e);
        }
        copy.finish().await?;
        bind_rollups(sqlx::query(ADD_ROLLUPS), rollups)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }

    /// Writes the batch, skipping request ids already in the log, and adds only the rows
    /// really inserted to the rollups. Returns the rows inserted.
    pub async fn insert_ledger_batch(&self, events: &[LedgerEvent]) -> Result<u64, sqlx::Error> {
        let row = bind_events(sqlx::query(INSERT_BATCH), events)
            .fetch_one(self.pool())
            .await?;
        let inserted: i64 = sqlx::Row::try_get(&row, 0)?;
        Ok(u64::try_from(inserted).unwrap_or(0))
    }

    /// Makes sure a partition holds `day`: a daily one is created unless an older monthly
    /// one covers it (called ahead of time).
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
