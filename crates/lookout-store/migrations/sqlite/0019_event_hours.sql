-- The activity log's time map: for each hour (at_ms / 3600000, rounded toward zero), the
-- lowest and highest id among that hour's events. Every insert into `events` widens the rows
-- of its hours in the same transaction (`events::widen_hours`); a period's queries read only
-- the ids between its hours' lowest and highest, testing at_ms as well. It replaces the
-- (at_ms, action) index, whose insert and page splits were ~1,600 of the ~7,400 instructions
-- the log's writer spent a row (bench/proxy-instructions.sh).
CREATE TABLE event_hours (
    hour INTEGER PRIMARY KEY,
    first_id BIGINT NOT NULL,
    last_id BIGINT NOT NULL
);
INSERT INTO event_hours (hour, first_id, last_id)
    SELECT at_ms / 3600000, MIN(id), MAX(id) FROM events GROUP BY at_ms / 3600000;
DROP INDEX events_at;
-- Blocked requests alone (a small share of the log; none of the allowed rows it was measured
-- for pay to insert into it): the Board report's blocked-by-category and top blocked sites
-- read their period's through it rather than every row of the period.
CREATE INDEX events_blocked_at ON events (at_ms) WHERE action = 'block';
