-- Each request row keeps the visible prefix its key had when the request was made, so the
-- request log still shows the secret a worker used after the key is rotated (rotation gives
-- the key a new prefix under the same id). NULL only for rows written by a gateway that
-- predates the column (during a rolling upgrade); readers fall back to the key's current
-- prefix for those.
ALTER TABLE request_log ADD COLUMN key_prefix text;

-- Rows written before now get the prefix their key has today: the best record there is, and
-- from here on a rotation no longer changes what they show. One pass over the request log.
UPDATE request_log r SET key_prefix = k.key_prefix
FROM virtual_keys k
WHERE k.id = r.key_id AND r.key_prefix IS NULL;
