-- Every gateway instance keeps in memory the set of key hashes that exist, so a key that does
-- not exist is refused without asking PostgreSQL (src/keys/known.rs). To keep that set current
-- it reads only the rows whose hashes changed since its last look, by the id of the
-- transaction that wrote them: a row written by a transaction still running when the set was
-- last read has an id at or above that read's snapshot xmin, so it is read again next time,
-- whatever order transactions commit in (a timestamp watermark would miss a long transaction
-- that commits after a shorter, later one).
ALTER TABLE virtual_keys
    ADD COLUMN hashes_xid xid8 NOT NULL DEFAULT pg_current_xact_id();

CREATE INDEX virtual_keys_hashes_xid ON virtual_keys (hashes_xid);

-- Set on every write of a hash, whatever statement makes it, so no code path can forget it.
CREATE FUNCTION tollgate_virtual_keys_hashes_xid() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.hashes_xid := pg_current_xact_id();
    RETURN NEW;
END $$;

CREATE TRIGGER virtual_keys_hashes_xid
    BEFORE INSERT OR UPDATE OF key_hash, previous_key_hash ON virtual_keys
    FOR EACH ROW EXECUTE FUNCTION tollgate_virtual_keys_hashes_xid();
