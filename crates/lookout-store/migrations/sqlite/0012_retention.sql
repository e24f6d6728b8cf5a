-- Retention: a daily purge deletes what is past its time. Records that are otherwise
-- append-only (alert reviews, incident entries) can be deleted only inside the purge's own
-- transaction, which holds a row in retention_purge that no other transaction ever sees; an
-- incident that is open or under legal hold is never deleted.

CREATE TABLE retention_purge (started_ms BIGINT NOT NULL);

ALTER TABLE incidents ADD COLUMN legal_hold INTEGER NOT NULL DEFAULT 0;

DROP TRIGGER alert_reviews_no_delete;
CREATE TRIGGER alert_reviews_no_delete BEFORE DELETE ON alert_reviews
WHEN NOT EXISTS (SELECT 1 FROM retention_purge)
BEGIN SELECT RAISE(ABORT, 'alert reviews are append-only'); END;

DROP TRIGGER incident_entries_no_delete;
CREATE TRIGGER incident_entries_no_delete BEFORE DELETE ON incident_entries
WHEN NOT EXISTS (SELECT 1 FROM retention_purge)
BEGIN SELECT RAISE(ABORT, 'incident entries are append-only'); END;

CREATE TRIGGER incidents_kept_while_held BEFORE DELETE ON incidents
WHEN OLD.status = 'open' OR OLD.legal_hold <> 0 OR NOT EXISTS (SELECT 1 FROM retention_purge)
BEGIN SELECT RAISE(ABORT, 'incidents are kept: only the retention purge removes closed ones not under legal hold'); END;

CREATE INDEX alerts_updated ON alerts (updated_ms);
CREATE INDEX incident_people_incident ON incident_people (incident_id);
