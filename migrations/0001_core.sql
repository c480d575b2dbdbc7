-- Teams own experiments (eval campaigns) and virtual keys.
CREATE TABLE teams (
    id          uuid PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (name <> ''),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE experiments (
    id          uuid PRIMARY KEY,
    team_id     uuid NOT NULL REFERENCES teams (id),
    name        text NOT NULL CHECK (name <> ''),
    tags        text[] NOT NULL DEFAULT '{}',
    ends_at     timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (team_id, name)
);

-- A virtual key is stored only as its SHA-256 hash plus a short visible prefix.
CREATE TABLE virtual_keys (
    id              uuid PRIMARY KEY,
    team_id         uuid NOT NULL REFERENCES teams (id),
    experiment_id   uuid REFERENCES experiments (id),
    name            text,
    key_hash        bytea NOT NULL UNIQUE CHECK (octet_length(key_hash) = 32),
    key_prefix      text NOT NULL,
    allowed_models  text[],          -- NULL: every configured model
    expires_at      timestamptz,
    revoked_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX virtual_keys_team ON virtual_keys (team_id);
CREATE INDEX virtual_keys_experiment ON virtual_keys (experiment_id);

-- Every request's attributed usage and cost. Partitioned by month so old months can be
-- detached or archived; the primary key includes the partition key, and (request_id,
-- created_at) is fixed when the event is created, so a retried batch is a no-op.
CREATE TABLE request_log (
    request_id            uuid NOT NULL,
    created_at            timestamptz NOT NULL,
    team_id               uuid NOT NULL,
    experiment_id         uuid,
    key_id                uuid NOT NULL,
    model                 text NOT NULL,
    upstream_model        text NOT NULL,
    deployment            text NOT NULL,
    provider              text NOT NULL,
    status                smallint NOT NULL,
    error_type            text,
    streamed              boolean NOT NULL,
    usage_estimated       boolean NOT NULL,
    input_tokens          bigint NOT NULL,
    cached_input_tokens   bigint NOT NULL,
    cache_write_tokens    bigint NOT NULL,
    cache_write_1h_tokens bigint NOT NULL,
    output_tokens         bigint NOT NULL,
    reasoning_tokens      bigint NOT NULL,
    cost_usd              numeric NOT NULL,
    latency_ms            integer NOT NULL,
    upstream_latency_ms   integer,
    PRIMARY KEY (request_id, created_at)
) PARTITION BY RANGE (created_at);

-- Catches rows outside the monthly partitions the gateway creates ahead of time.
CREATE TABLE request_log_default PARTITION OF request_log DEFAULT;

-- Creates the monthly partition holding `month` if it does not exist yet.
CREATE FUNCTION tollgate_ensure_request_log_partition(month date) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    first_day date := date_trunc('month', month)::date;
    next_day  date := (date_trunc('month', month) + interval '1 month')::date;
    part_name text := 'request_log_' || to_char(first_day, 'YYYY_MM');
BEGIN
    IF to_regclass(part_name) IS NULL THEN
        EXECUTE format(
            'CREATE TABLE IF NOT EXISTS %I PARTITION OF request_log FOR VALUES FROM (%L) TO (%L)',
            part_name, to_char(first_day, 'YYYY-MM-DD') || ' 00:00:00+00',
            to_char(next_day, 'YYYY-MM-DD') || ' 00:00:00+00');
    END IF;
EXCEPTION
    -- Another gateway instance created it at the same moment.
    WHEN duplicate_table OR unique_violation THEN NULL;
END $$;

CREATE INDEX request_log_team_time ON request_log (team_id, created_at);
CREATE INDEX request_log_key_time ON request_log (key_id, created_at);

-- Hourly rollups that reports read; maintained in the same statement that inserts the
-- request rows, from the rows actually inserted, so they always equal the log.
CREATE TABLE spend_hourly (
    hour                  timestamptz NOT NULL,
    team_id               uuid NOT NULL,
    experiment_id         uuid,
    key_id                uuid NOT NULL,
    model                 text NOT NULL,
    provider              text NOT NULL,
    requests              bigint NOT NULL,
    errors                bigint NOT NULL,
    input_tokens          bigint NOT NULL,
    cached_input_tokens   bigint NOT NULL,
    cache_write_tokens    bigint NOT NULL,
    cache_write_1h_tokens bigint NOT NULL,
    output_tokens         bigint NOT NULL,
    reasoning_tokens      bigint NOT NULL,
    cost_usd              numeric NOT NULL
);
CREATE UNIQUE INDEX spend_hourly_scope ON spend_hourly
    (hour, team_id, experiment_id, key_id, model, provider) NULLS NOT DISTINCT;
CREATE INDEX spend_hourly_team_hour ON spend_hourly (team_id, hour);
