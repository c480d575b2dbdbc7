-- Default request tags on an experiment and on a key: merged under each request's own tags
-- (the key's over the experiment's). A JSON object of name → value, '{}' when there are none.
ALTER TABLE experiments ADD COLUMN default_tags jsonb NOT NULL DEFAULT '{}'
    CHECK (jsonb_typeof(default_tags) = 'object');
ALTER TABLE virtual_keys ADD COLUMN default_tags jsonb NOT NULL DEFAULT '{}'
    CHECK (jsonb_typeof(default_tags) = 'object');
