-- Limits and budgets on any scope: a team, an experiment or a key. The data plane reads
-- them with the key's policy and enforces them in Redis; PostgreSQL is where they live.
CREATE TABLE scope_limits (
    scope_kind        text NOT NULL CHECK (scope_kind IN ('team', 'experiment', 'key')),
    scope_id          uuid NOT NULL,
    team_id           uuid NOT NULL REFERENCES teams (id),
    rpm               integer CHECK (rpm > 0),
    tpm               bigint CHECK (tpm > 0),
    max_concurrent    integer CHECK (max_concurrent > 0),
    budget_mode       text NOT NULL DEFAULT 'strict' CHECK (budget_mode IN ('strict', 'estimate')),
    on_redis_failure  text NOT NULL DEFAULT 'closed' CHECK (on_redis_failure IN ('closed', 'open')),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope_kind, scope_id)
);

-- A scope may carry one budget per period.
CREATE TABLE scope_budgets (
    scope_kind  text NOT NULL,
    scope_id    uuid NOT NULL,
    period      text NOT NULL CHECK (period IN ('total', 'daily', 'weekly', 'monthly')),
    amount_usd  numeric NOT NULL CHECK (amount_usd >= 0),
    PRIMARY KEY (scope_kind, scope_id, period),
    FOREIGN KEY (scope_kind, scope_id) REFERENCES scope_limits (scope_kind, scope_id) ON DELETE CASCADE
);

-- Rebuilding a budget counter sums the rollups of one scope since the period start.
CREATE INDEX spend_hourly_experiment_hour ON spend_hourly (experiment_id, hour);
CREATE INDEX spend_hourly_key_hour ON spend_hourly (key_id, hour);
