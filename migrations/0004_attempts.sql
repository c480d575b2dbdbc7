-- How many upstream attempts a request took (fallbacks and retries included); the
-- deployment column names the one that answered.
ALTER TABLE request_log ADD COLUMN attempts smallint NOT NULL DEFAULT 1;
