-- The tags a request carried (`x-tollgate-tags`, its `metadata`): a JSON object of names to
-- string values, NULL when it had none.
ALTER TABLE request_log ADD COLUMN tags jsonb;
