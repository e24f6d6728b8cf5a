-- The safeguarding file: incidents and their append-only entries. An incident's record is its
-- entries, in order (the chronology); the incidents row is a summary for lists, kept in step in
-- the same transaction as each entry.

CREATE TABLE incidents (
    id INTEGER PRIMARY KEY,
    reference TEXT NOT NULL UNIQUE,
    opened_ms BIGINT NOT NULL,
    opened_by TEXT NOT NULL,
    title TEXT NOT NULL,
    category TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'open',
    updated_ms BIGINT NOT NULL
);
CREATE INDEX incidents_status ON incidents (status, updated_ms);

CREATE TABLE incident_entries (
    id INTEGER PRIMARY KEY,
    incident_id INTEGER NOT NULL REFERENCES incidents (id),
    at_ms BIGINT NOT NULL,
    by_user TEXT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    -- A correction names the entry it corrects; the original stays as it was.
    corrects INTEGER REFERENCES incident_entries (id)
);
CREATE INDEX incident_entries_incident ON incident_entries (incident_id, id);
CREATE TRIGGER incident_entries_no_update BEFORE UPDATE ON incident_entries
BEGIN SELECT RAISE(ABORT, 'incident entries are append-only: add a correction'); END;
CREATE TRIGGER incident_entries_no_delete BEFORE DELETE ON incident_entries
BEGIN SELECT RAISE(ABORT, 'incident entries are append-only'); END;

-- People linked to an incident, for "this person's incidents" (each with their own part and
-- categories, so that one person's category never shows on another's record).
CREATE TABLE incident_people (
    id INTEGER PRIMARY KEY,
    incident_id INTEGER NOT NULL REFERENCES incidents (id),
    entry_id INTEGER NOT NULL REFERENCES incident_entries (id),
    username TEXT,
    name TEXT NOT NULL
);
CREATE INDEX incident_people_user ON incident_people (username);
