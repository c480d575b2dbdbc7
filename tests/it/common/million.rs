//! A million ledger rows for the tests that measure reads at scale: 5 teams, 10
//! experiments, 20 keys, 3 models, one request every 7.776 s for 90 days from `start`, 2 %
//! errors, with the hourly rollups the ledger writer would have kept.

use std::time::Instant;

use super::TestApp;

/// Loads the rows into the app's own database; `start` is a `timestamptz` literal.
pub async fn load(app: &TestApp, start: &str) {
    let setup = Instant::now();
    let mut conn = app.db.acquire().await.unwrap();
    for sql in [
        "SET synchronous_commit = off",
        "INSERT INTO teams (id, name) SELECT gen_random_uuid(), 'team-' || t FROM generate_series(0, 4) t",
        "INSERT INTO experiments (id, team_id, name) SELECT gen_random_uuid(), id, 'exp-' || e FROM teams, generate_series(0, 1) e",
        "INSERT INTO virtual_keys (id, team_id, experiment_id, key_hash, key_prefix) \
         SELECT gen_random_uuid(), e.team_id, e.id, sha256((e.id::text || k)::bytea), 'tg-' || substr(md5(e.id::text || k), 1, 8) \
         FROM experiments e, generate_series(0, 1) k",
    ] {
        sqlx::query(sql).execute(&mut *conn).await.unwrap();
    }
    sqlx::query(
        "SELECT tollgate_ensure_request_log_partition(d::date) \
         FROM generate_series($1::timestamptz, $1::timestamptz + interval '91 days', interval '1 day') d",
    )
    .bind(start)
    .execute(&mut *conn)
    .await
    .unwrap();
    // A bulk load: drop request_log's indexes, insert, and build them again from the catalog's
    // own definitions (building an index once is several times faster than a million
    // inserts into it, which keeps this setup short on a small machine).
    let pkey: String = sqlx::query_scalar("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'request_log'::regclass AND contype = 'p'")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    let indexes: Vec<(String, String)> = sqlx::query_as("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'request_log' AND indexname <> 'request_log_pkey'")
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    assert!(!indexes.is_empty());
    sqlx::query("ALTER TABLE request_log DROP CONSTRAINT request_log_pkey")
        .execute(&mut *conn)
        .await
        .unwrap();
    for (name, _) in &indexes {
        sqlx::query(&format!("DROP INDEX {name}"))
            .execute(&mut *conn)
            .await
            .unwrap();
    }
    // 1,000,000 requests over 90 days (one every 7.776 s), 20 keys × 3 models, 2 % errors.
    sqlx::query(
        "INSERT INTO request_log (request_id, created_at, team_id, experiment_id, key_id, model, upstream_model, \
            deployment, provider, status, error_type, streamed, usage_estimated, input_tokens, cached_input_tokens, \
            cache_write_tokens, cache_write_1h_tokens, output_tokens, reasoning_tokens, cost_usd, latency_ms, upstream_latency_ms) \
         WITH k AS (SELECT array_agg(id ORDER BY id) AS ids, array_agg(team_id ORDER BY id) AS teams, \
                           array_agg(experiment_id ORDER BY id) AS exps FROM virtual_keys) \
         SELECT lpad(to_hex(i), 32, '0')::uuid, $1::timestamptz + i * interval '7776 milliseconds', \
            k.teams[1 + i % 20], k.exps[1 + i % 20], k.ids[1 + i % 20], \
            (ARRAY['test-model', 'gpt-4o-mini', 'claude-x'])[1 + (i / 20) % 3], 'up', 'mock', \
            (ARRAY['openai', 'openai', 'anthropic'])[1 + (i / 20) % 3], \
            CASE WHEN i % 50 = 0 THEN 500 ELSE 200 END, CASE WHEN i % 50 = 0 THEN 'upstream_error' END, \
            i % 3 = 0, false, 100 + i % 900, (i % 7) * 10, i % 5, i % 2, 10 + i % 200, i % 4, \
            (100 + i % 900) * 0.0000025 + (10 + i % 200) * 0.00001 + (i % 13) * 0.000000001, 5, 4 \
         FROM generate_series(0, 999999) AS i, k",
    )
    .bind(start)
    .execute(&mut *conn)
    .await
    .unwrap();
    sqlx::query("SET maintenance_work_mem = '256MB'")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query(&format!(
        "ALTER TABLE request_log ADD CONSTRAINT request_log_pkey {pkey}"
    ))
    .execute(&mut *conn)
    .await
    .unwrap();
    for (_, def) in &indexes {
        // The catalog shows a partitioned table's index as `ON ONLY`; built without ONLY it
        // covers every partition, as the migration's CREATE INDEX did.
        sqlx::query(&def.replace(" ON ONLY ", " ON "))
            .execute(&mut *conn)
            .await
            .unwrap();
    }
    // The rollups the ledger writer would have maintained, from the rows themselves.
    sqlx::query(
        "INSERT INTO spend_hourly (hour, team_id, experiment_id, key_id, model, provider, requests, errors, \
            input_tokens, cached_input_tokens, cache_write_tokens, cache_write_1h_tokens, output_tokens, \
            reasoning_tokens, cost_usd) \
         SELECT date_trunc('hour', created_at, 'UTC'), team_id, experiment_id, key_id, model, provider, count(*), \
            count(*) FILTER (WHERE status >= 400), sum(input_tokens), sum(cached_input_tokens), sum(cache_write_tokens), \
            sum(cache_write_1h_tokens), sum(output_tokens), sum(reasoning_tokens), sum(cost_usd) \
         FROM request_log GROUP BY 1, 2, 3, 4, 5, 6",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    sqlx::query("ANALYZE request_log")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("ANALYZE spend_hourly")
        .execute(&mut *conn)
        .await
        .unwrap();
    drop(conn);
    let rollups: i64 = sqlx::query_scalar("SELECT count(*) FROM spend_hourly")
        .fetch_one(&app.db)
        .await
        .unwrap();
    println!(
        "setup: 1,000,000 request_log rows and {rollups} spend_hourly rows in {:.1?}",
        setup.elapsed()
    );
}
