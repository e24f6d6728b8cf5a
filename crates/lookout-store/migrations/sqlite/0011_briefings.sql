-- E-safety briefings with their acceptable-use terms, versioned (a row is a version; a change
-- is a new row), per group or for everyone (group_name NULL); and each acceptance: who, which
-- version, when, from which address. Both append-only.

CREATE TABLE briefings (
    id INTEGER PRIMARY KEY,
    group_name TEXT,
    title TEXT NOT NULL,
    briefing TEXT NOT NULL,
    terms TEXT NOT NULL,
    published_ms BIGINT NOT NULL,
    published_by TEXT NOT NULL
);
CREATE INDEX briefings_group ON briefings (group_name, id);
CREATE TRIGGER briefings_no_update BEFORE UPDATE ON briefings
BEGIN SELECT RAISE(ABORT, 'briefings are kept: publish a new version'); END;
CREATE TRIGGER briefings_no_delete BEFORE DELETE ON briefings
BEGIN SELECT RAISE(ABORT, 'briefings are kept: publish a new version'); END;

CREATE TABLE acceptances (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL,
    briefing_id INTEGER NOT NULL REFERENCES briefings (id),
    at_ms BIGINT NOT NULL,
    client_ip TEXT NOT NULL
);
CREATE INDEX acceptances_user ON acceptances (username, briefing_id);
CREATE INDEX acceptances_briefing ON acceptances (briefing_id, at_ms);
CREATE TRIGGER acceptances_no_update BEFORE UPDATE ON acceptances
BEGIN SELECT RAISE(ABORT, 'acceptances are append-only'); END;
CREATE TRIGGER acceptances_no_delete BEFORE DELETE ON acceptances
BEGIN SELECT RAISE(ABORT, 'acceptances are append-only'); END;
