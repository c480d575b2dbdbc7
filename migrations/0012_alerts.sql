-- Alert rules: what to watch on a scope, and the webhook that hears about it.
-- `scope_id` NULL with `scope_kind` 'experiment' is a rule on every campaign of the team,
-- the ones it runs now and the ones it launches later (the default rule set).
CREATE TABLE alert_rules (
    id                      uuid PRIMARY KEY,
    team_id                 uuid NOT NULL REFERENCES teams (id),
    scope_kind              text NOT NULL CHECK (scope_kind IN ('team', 'experiment', 'key')),
    scope_id                uuid,
    -- Percentages of each of the scope's budgets.
    thresholds              smallint[] NOT NULL DEFAULT '{}',
    -- Burn rate over this window against the remaining budget and the campaign's end.
    projection_window_secs  integer CHECK (projection_window_secs > 0),
    -- The campaign's end, or the key's expiry, within this many hours.
    expiry_hours            integer CHECK (expiry_hours > 0),
    -- Refusals (402, 429, 5xx) at or above this share of at least `refusal_min_requests`
    -- requests over `refusal_window_secs`.
    refusal_percent         smallint CHECK (refusal_percent BETWEEN 1 AND 100),
    refusal_window_secs     integer CHECK (refusal_window_secs > 0),
    refusal_min_requests    integer CHECK (refusal_min_requests > 0),
    webhook_url             text NOT NULL,
    format                  text NOT NULL DEFAULT 'json' CHECK (format IN ('json', 'slack')),
    -- Signs every delivery (HMAC-SHA256); shown once, when the rule is created.
    signing_secret          text NOT NULL,
    created_by              text NOT NULL,
    created_at              timestamptz NOT NULL DEFAULT now(),
    CHECK (scope_id IS NOT NULL OR scope_kind = 'experiment')
);
CREATE INDEX alert_rules_team ON alert_rules (team_id);

-- Every alert that fired, and its delivery (the outbox). The unique (rule_id, dedupe_key)
-- is what makes an alert fire once however many instances see the crossing at once: the key
-- names the scope, the budget's period and its window, and the threshold.
CREATE TABLE alert_events (
    id               uuid PRIMARY KEY,
    rule_id          uuid NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    team_id          uuid NOT NULL,
    kind             text NOT NULL,
    dedupe_key       text NOT NULL,
    payload          jsonb NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    -- An instance delivering the event holds it until then; past it, another may try.
    leased_until     timestamptz,
    last_error       text,
    delivered_at     timestamptz,
    UNIQUE (rule_id, dedupe_key)
);
CREATE INDEX alert_events_due ON alert_events (next_attempt_at) WHERE status = 'pending';
CREATE INDEX alert_events_team ON alert_events (team_id, created_at DESC);
