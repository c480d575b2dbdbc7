-- A scope's limits on one model or group of models (rpm, tpm, budgets), inside its own:
-- a JSON array of {model, rpm, tpm, budgets: [{period, amount_usd}]}, amounts as decimal
-- strings. Read and written whole with the scope's limits; '[]' when there are none.
ALTER TABLE scope_limits ADD COLUMN models jsonb NOT NULL DEFAULT '[]'
    CHECK (jsonb_typeof(models) = 'array');
