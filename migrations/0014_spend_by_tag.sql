-- Spend by tag: the hourly rollups are kept per distinct set of request tags too ('{}' for
-- requests without any), so a report grouped or filtered by a tag reads spend_hourly only.
ALTER TABLE spend_hourly ADD COLUMN tags jsonb NOT NULL DEFAULT '{}';
DROP INDEX spend_hourly_scope;
CREATE UNIQUE INDEX spend_hourly_scope ON spend_hourly
    (hour, team_id, experiment_id, key_id, model, provider, tags) NULLS NOT DISTINCT;
