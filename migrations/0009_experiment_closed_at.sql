-- When a campaign was closed (`POST /admin/v1/campaigns/{id}/close`: every key revoked, the
-- experiment ended). Set once. An experiment that merely reached its `ends_at` has none, so a
-- listing can tell a campaign that ran out its time ("ended") from one that was closed.
ALTER TABLE experiments ADD COLUMN closed_at timestamptz;
