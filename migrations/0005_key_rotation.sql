-- Rotating a key gives it a new secret under the same id (so its limits, spend and
-- attribution carry on); the previous secret keeps working until previous_valid_until, so
-- workers can be moved over without downtime. Rotating again replaces the previous secret.
ALTER TABLE virtual_keys
    ADD COLUMN previous_key_hash bytea UNIQUE CHECK (octet_length(previous_key_hash) = 32),
    ADD COLUMN previous_valid_until timestamptz,
    ADD CONSTRAINT virtual_keys_previous_has_deadline
        CHECK (previous_key_hash IS NULL OR previous_valid_until IS NOT NULL);
