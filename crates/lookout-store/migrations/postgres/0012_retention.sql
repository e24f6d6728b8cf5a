-- Retention: a daily purge deletes what is past its time. Records that are otherwise
-- append-only (alert reviews, incident entries) can be deleted only inside the purge's own
-- transaction, which holds a row in retention_purge that no other transaction ever sees; an
-- incident that is open or under legal hold is never deleted.

CREATE TABLE retention_purge (started_ms BIGINT NOT NULL);

ALTER TABLE incidents ADD COLUMN legal_hold BIGINT NOT NULL DEFAULT 0;

-- A trigger's WHEN cannot hold a subquery in PostgreSQL: the conditions are in functions.
CREATE FUNCTION lookout_refuse_unless_purging() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM retention_purge) THEN
        RAISE EXCEPTION '%', TG_ARGV[0];
    END IF;
    RETURN OLD;
END
$$;

DROP TRIGGER alert_reviews_no_delete ON alert_reviews;
CREATE TRIGGER alert_reviews_no_delete BEFORE DELETE ON alert_reviews
FOR EACH ROW EXECUTE FUNCTION lookout_refuse_unless_purging('alert reviews are append-only');

DROP TRIGGER incident_entries_no_delete ON incident_entries;
CREATE TRIGGER incident_entries_no_delete BEFORE DELETE ON incident_entries
FOR EACH ROW EXECUTE FUNCTION lookout_refuse_unless_purging('incident entries are append-only');

CREATE FUNCTION lookout_incident_kept() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status = 'open' OR OLD.legal_hold <> 0 OR NOT EXISTS (SELECT 1 FROM retention_purge) THEN
        RAISE EXCEPTION 'incidents are kept: only the retention purge removes closed ones not under legal hold';
    END IF;
    RETURN OLD;
END
$$;
CREATE TRIGGER incidents_kept_while_held BEFORE DELETE ON incidents
FOR EACH ROW EXECUTE FUNCTION lookout_incident_kept();

CREATE INDEX alerts_updated ON alerts (updated_ms);
CREATE INDEX incident_people_incident ON incident_people (incident_id);
