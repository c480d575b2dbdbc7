-- The admin API's request log pages through request_log newest first (or oldest first from a
-- point) by (created_at, request_id); without this index an unfiltered page would sort every
-- row. Filtered pages use request_log_team_time / request_log_key_time as before. Spend reports
-- read spend_hourly only, which already has every column they need.
CREATE INDEX request_log_time ON request_log (created_at, request_id);
