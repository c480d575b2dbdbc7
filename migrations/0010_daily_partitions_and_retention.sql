-- Retention drops request_log whole partitions, so new partitions cover one UTC day each
-- (request_log_YYYY_MM_DD) instead of a month: rows go a day at a time, not a month at a
-- time. Monthly partitions created before stay as they are and are read as before; a day
-- they already cover gets no daily partition, and such a partition is dropped once its whole
-- month is past retention.
DROP FUNCTION tollgate_ensure_request_log_partition(date);

-- Creates the daily partition holding `day` if no partition covers it yet.
CREATE FUNCTION tollgate_ensure_request_log_partition(day date) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    part_name text := 'request_log_' || to_char(day, 'YYYY_MM_DD');
BEGIN
    IF to_regclass(part_name) IS NULL THEN
        EXECUTE format(
            'CREATE TABLE IF NOT EXISTS %I PARTITION OF request_log FOR VALUES FROM (%L) TO (%L)',
            part_name, to_char(day, 'YYYY-MM-DD') || ' 00:00:00+00',
            to_char(day + 1, 'YYYY-MM-DD') || ' 00:00:00+00');
    END IF;
EXCEPTION
    -- Another gateway instance created it at the same moment.
    WHEN duplicate_table OR unique_violation THEN NULL;
    -- A monthly partition already covers the day.
    WHEN invalid_object_definition THEN NULL;
    -- The default partition already holds rows of that day: they stay there (retention
    -- deletes them from it row by row).
    WHEN check_violation THEN NULL;
END $$;

-- Every range partition of request_log with its bounds (the default partition has none).
CREATE FUNCTION tollgate_request_log_partitions()
RETURNS TABLE (name text, from_at timestamptz, to_at timestamptz, estimated_rows bigint)
LANGUAGE sql STABLE AS $$
    SELECT c.relname::text,
           substring(pg_get_expr(c.relpartbound, c.oid) FROM 'FROM \(''([^'']+)''\)')::timestamptz,
           substring(pg_get_expr(c.relpartbound, c.oid) FROM 'TO \(''([^'']+)''\)')::timestamptz,
           GREATEST(c.reltuples, 0)::bigint
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'request_log'::regclass
      AND pg_get_expr(c.relpartbound, c.oid) LIKE 'FOR VALUES FROM %'
$$;

-- Drops one range partition of request_log (and nothing else: the name must be one).
CREATE FUNCTION tollgate_drop_request_log_partition(part text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM tollgate_request_log_partitions() p WHERE p.name = part) THEN
        RAISE EXCEPTION 'no request_log partition named %', part;
    END IF;
    EXECUTE format('DROP TABLE %I', part);
END $$;

-- Changes made by the gateway itself (a retention run) are audited as role `system`, with
-- the process that made them as the actor.
ALTER TABLE audit_log DROP CONSTRAINT audit_log_role_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_role_check
    CHECK (role IN ('admin', 'team', 'system'));
