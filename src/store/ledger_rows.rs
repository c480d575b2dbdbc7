//! What the ledger's fast write sends: the batch's rows in PostgreSQL's binary COPY format,
//! and the batch's hourly rollups, added up here rather than by PostgreSQL.

use std::collections::BTreeMap;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use rust_decimal::Decimal;
use sqlx::postgres::PgArgumentBuffer;
use sqlx::{Encode, Postgres};
use uuid::Uuid;

use crate::ledger::LedgerEvent;
use crate::tags::Tags;

/// The COPY that [`copy_rows`] feeds, naming the columns in the order it writes them.
pub const COPY_STATEMENT: &str = "COPY request_log (request_id, created_at, team_id, \
    experiment_id, key_id, model, upstream_model, deployment, provider, status, error_type, \
    streamed, usage_estimated, input_tokens, cached_input_tokens, cache_write_tokens, \
    cache_write_1h_tokens, output_tokens, reasoning_tokens, cost_usd, latency_ms, \
    upstream_latency_ms, attempts, key_prefix, tags) FROM STDIN (FORMAT binary)";
const COPY_FIELDS: i16 = 25;

/// A token count as stored: `bigint`, so counts past 2^63 - 1 are kept at that maximum.
pub fn tokens(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub fn millis(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

pub fn attempts(n: u16) -> i16 {
    i16::try_from(n).unwrap_or(i16::MAX)
}

/// The events as a complete `COPY ... FROM STDIN (FORMAT binary)` stream: each field is
/// encoded by the driver's own encoder for its type, so the bytes are exactly what binding
/// the value as a parameter would send.
pub fn copy_rows(events: &[LedgerEvent]) -> Result<Vec<u8>, sqlx::error::BoxDynError> {
    let mut out = PgArgumentBuffer::default();
    out.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    out.extend_from_slice(&0i32.to_be_bytes()); // flags: no OIDs
    out.extend_from_slice(&0i32.to_be_bytes()); // no header extension
    for e in events {
        out.extend_from_slice(&COPY_FIELDS.to_be_bytes());
        field(&mut out, &e.request_id.0)?;
        field(&mut out, &e.created_at)?;
        field(&mut out, &e.team_id.0)?;
        optional(&mut out, e.experiment_id.map(|x| x.0).as_ref())?;
        field(&mut out, &e.key_id.0)?;
        field(&mut out, &e.model.as_str())?;
        field(&mut out, &e.upstream_model.as_str())?;
        field(&mut out, &e.deployment.as_str())?;
        field(&mut out, &e.provider.as_str())?;
        field(&mut out, &(i16::try_from(e.status).unwrap_or(i16::MAX)))?;
        optional(&mut out, e.error_type.as_deref().as_ref())?;
        field(&mut out, &e.streamed)?;
        field(&mut out, &e.usage_estimated)?;
        field(&mut out, &tokens(e.usage.input_tokens))?;
        field(&mut out, &tokens(e.usage.cached_input_tokens))?;
        field(&mut out, &tokens(e.usage.cache_write_tokens))?;
        field(&mut out, &tokens(e.usage.cache_write_1h_tokens))?;
        field(&mut out, &tokens(e.usage.output_tokens))?;
        field(&mut out, &tokens(e.usage.reasoning_tokens))?;
        field(&mut out, &e.cost_usd)?;
        field(&mut out, &millis(e.latency_ms))?;
        optional(&mut out, e.upstream_latency_ms.map(millis).as_ref())?;
        field(&mut out, &attempts(e.attempts))?;
        optional(&mut out, e.key_prefix.as_deref().as_ref())?;
        optional(&mut out, stored_tags(&e.tags).as_ref())?;
    }
    out.extend_from_slice(&(-1i16).to_be_bytes());
    Ok(std::mem::take(&mut *out))
}

/// A request's tags as stored: `NULL` when it had none.
pub fn stored_tags(tags: &Tags) -> Option<sqlx::types::Json<&Tags>> {
    (!tags.is_empty()).then_some(sqlx::types::Json(tags))
}

/// One field: its length, then the value as the driver encodes it.
fn field<'q, T: Encode<'q, Postgres>>(
    out: &mut PgArgumentBuffer,
    value: &T,
) -> Result<(), sqlx::error::BoxDynError> {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    // The encoders of these scalar types never ask for NULL or for a type lookup.
    let _ = value.encode_by_ref(out)?;
    let len = i32::try_from(out.len() - at - 4)?;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

fn optional<'q, T: Encode<'q, Postgres>>(
    out: &mut PgArgumentBuffer,
    value: Option<&T>,
) -> Result<(), sqlx::error::BoxDynError> {
    match value {
        Some(value) => field(out, value),
        None => {
            out.extend_from_slice(&(-1i32).to_be_bytes());
            Ok(())
        }
    }
}

/// What one `spend_hourly` row gains from a batch.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RollupSums {
    pub requests: i64,
    pub errors: i64,
    /// In the order of `spend_hourly`'s token columns; each saturates at the `bigint` maximum,
    /// as the SQL of the idempotent write does.
    pub tokens: [i64; 6],
    pub cost_usd: Decimal,
}

/// `(hour, team, experiment, key, model, provider, tags)`: a `spend_hourly` row's identity.
pub type RollupKey = (
    DateTime<Utc>,
    Uuid,
    Option<Uuid>,
    Uuid,
    String,
    String,
    Tags,
);

/// The batch's rollups, in key order. `None` when a cost sum does not fit a `Decimal`
/// (about 7.9e28 USD: not a real batch); the caller then lets PostgreSQL add up.
pub fn rollups(events: &[LedgerEvent]) -> Option<BTreeMap<RollupKey, RollupSums>> {
    let mut out: BTreeMap<RollupKey, RollupSums> = BTreeMap::new();
    for e in events {
        let hour = e.created_at.duration_trunc(TimeDelta::hours(1)).ok()?;
        let key = (
            hour,
            e.team_id.0,
            e.experiment_id.map(|x| x.0),
            e.key_id.0,
            e.model.clone(),
            e.provider.clone(),
            e.tags.clone(),
        );
        let sums = out.entry(key).or_default();
        sums.requests = sums.requests.saturating_add(1);
        if e.status >= 400 {
            sums.errors = sums.errors.saturating_add(1);
        }
        let usage = &e.usage;
        let counts = [
            usage.input_tokens,
            usage.cached_input_tokens,
            usage.cache_write_tokens,
            usage.cache_write_1h_tokens,
            usage.output_tokens,
            usage.reasoning_tokens,
        ];
        for (sum, n) in sums.tokens.iter_mut().zip(counts) {
            *sum = sum.saturating_add(tokens(n));
        }
        sums.cost_usd = sums.cost_usd.checked_add(e.cost_usd)?;
    }
    Some(out)
}
