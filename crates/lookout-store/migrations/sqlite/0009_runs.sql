-- Each `lookout serve` run: when it started, when it last said it was alive (every second,
-- with the activity log's counters), and when it stopped cleanly. A run with no stop found at
-- the next start ended in a crash or `kill -9`: the events it still had queued are lost, and
-- that gap is recorded in `log_gaps`.
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    started_ms BIGINT NOT NULL,
    alive_ms BIGINT NOT NULL,
    queued BIGINT NOT NULL DEFAULT 0,
    written BIGINT NOT NULL DEFAULT 0,
    stopped_ms BIGINT
);
