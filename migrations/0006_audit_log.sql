-- Every change made through the admin API: who (the token's `sub` and role), on which
-- team's behalf, what (`team.create`, `key.revoke`, `limits.set`, ...), on what, and the
-- object before and after. Secrets never reach it: issued and rotated keys appear by prefix.
CREATE TABLE audit_log (
    id           bigserial PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    actor        text NOT NULL,
    role         text NOT NULL CHECK (role IN ('admin', 'team')),
    team_id      uuid,
    action       text NOT NULL,
    target_kind  text NOT NULL,
    target_id    text NOT NULL,
    before       jsonb,
    after        jsonb
);

-- Listings page newest first, for everyone or one team.
CREATE INDEX audit_log_at ON audit_log (at DESC, id DESC);
CREATE INDEX audit_log_team_at ON audit_log (team_id, at DESC, id DESC);
