-- The reports count a period's requests by action: with the action in the time index they
-- read the index alone, not every event row of the period (1M events: the Board report read
-- each row twice or more).
DROP INDEX events_at;
CREATE INDEX events_at ON events (at_ms, action);
