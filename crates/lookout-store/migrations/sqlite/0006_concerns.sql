-- Concerns reported by learners, customers and staff. Each raises an alert for the DSL team
-- (alert_id); what the team did with it is read from that alert. Append-only.

CREATE TABLE concerns (
    id INTEGER PRIMARY KEY,
    reference TEXT NOT NULL UNIQUE,
    at_ms BIGINT NOT NULL,
    reporter TEXT NOT NULL,
    about TEXT NOT NULL,
    what TEXT NOT NULL,
    place TEXT NOT NULL,
    urgency TEXT NOT NULL,
    block_ref TEXT,
    block_url TEXT,
    alert_id INTEGER REFERENCES alerts (id)
);
CREATE INDEX concerns_reporter ON concerns (reporter, at_ms);
CREATE TRIGGER concerns_no_update BEFORE UPDATE ON concerns
BEGIN SELECT RAISE(ABORT, 'concerns are append-only'); END;
CREATE TRIGGER concerns_no_delete BEFORE DELETE ON concerns
BEGIN SELECT RAISE(ABORT, 'concerns are append-only'); END;
