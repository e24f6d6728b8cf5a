-- The activity log's narrow rows. Five of an event's texts repeat from request to request
-- (service, group, method, categories, rule: a few hundred combinations in a college's log):
-- they are kept once each in `event_kinds`, and a row of `event_rows` names its kind by id.
-- Logging a request encodes, writes and syncs that much less (bench/proxy-instructions.sh);
-- the log takes less disk. `events` is a view of the rows with their kinds' texts, as the
-- table was: every query reads it as before and SQLite flattens it into the query (so the
-- partial indexes of `event_rows` still serve the searches that state their conditions). The
-- CROSS JOIN keeps `event_rows` the outer loop: the kinds are found by id.
--
-- A kind is never deleted or changed, and two kinds may hold the same texts (two writers
-- adding one at once on PostgreSQL): a row's kind only has to exist, so no unique index has to
-- hold texts of any length. The log's writers find a kind by its texts through
-- `event_kinds_texts`, which holds the method's first 64 characters (an index entry on
-- PostgreSQL must stay under ~2.7 KB; the proxy logs at most 33 characters of a method, so
-- kinds that differ only after them are a site gateway's to send).
CREATE TABLE event_kinds (
    id INTEGER PRIMARY KEY,
    service TEXT NOT NULL,
    group_name TEXT NOT NULL,
    method TEXT NOT NULL,
    categories TEXT NOT NULL,
    rule TEXT NOT NULL
);
CREATE INDEX event_kinds_texts ON event_kinds (group_name, rule, categories, service, substr(method, 1, 64));
INSERT INTO event_kinds (service, group_name, method, categories, rule)
    SELECT DISTINCT service, group_name, method, categories, rule FROM events ORDER BY 1, 2, 3, 4, 5;

CREATE TABLE event_rows (
    id INTEGER PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    reference TEXT NOT NULL,
    client_ip TEXT NOT NULL,
    username TEXT,
    url TEXT NOT NULL,
    host TEXT NOT NULL,
    search_term TEXT,
    kind BIGINT NOT NULL,
    action TEXT NOT NULL,
    reason TEXT NOT NULL,
    status INTEGER,
    bytes BIGINT NOT NULL DEFAULT 0,
    site TEXT,
    site_seq BIGINT
);
INSERT INTO event_rows (id, at_ms, reference, client_ip, username, url, host, search_term, kind,
                        action, reason, status, bytes, site, site_seq)
    SELECT e.id, e.at_ms, e.reference, e.client_ip, e.username, e.url, e.host, e.search_term, k.id,
           e.action, e.reason, e.status, e.bytes, e.site, e.site_seq
    FROM events e CROSS JOIN event_kinds k
        ON k.service = e.service AND k.group_name = e.group_name AND k.method = e.method
        AND k.categories = e.categories AND k.rule = e.rule
    ORDER BY e.id;
DROP TABLE events;
CREATE INDEX events_reference ON event_rows (reference) WHERE reference <> '';
CREATE INDEX events_user_at ON event_rows (username, at_ms) WHERE username IS NOT NULL;
CREATE UNIQUE INDEX events_site_seq ON event_rows (site, site_seq) WHERE site_seq IS NOT NULL;
CREATE INDEX events_site_at ON event_rows (site, at_ms) WHERE site IS NOT NULL;
CREATE INDEX events_blocked_at ON event_rows (at_ms) WHERE action = 'block';

CREATE VIEW events AS
    SELECT r.id AS id, r.at_ms AS at_ms, r.reference AS reference, k.service AS service,
           r.client_ip AS client_ip, r.username AS username, k.group_name AS group_name,
           k.method AS method, r.url AS url, r.host AS host, r.search_term AS search_term,
           k.categories AS categories, r.action AS action, k.rule AS rule, r.reason AS reason,
           r.status AS status, r.bytes AS bytes, r.site AS site, r.site_seq AS site_seq
    FROM event_rows r CROSS JOIN event_kinds k ON k.id = r.kind;
