-- Site gateways (`lookout serve --role gateway`): the central keeps which site each forwarded
-- event and alert came from, and each gateway's health; a gateway keeps its outbox.

-- A forwarded event's site and its number at that site: a batch sent twice (the gateway
-- restarted before it heard the answer) is stored once. Only forwarded events are indexed.
ALTER TABLE events ADD COLUMN site TEXT;
ALTER TABLE events ADD COLUMN site_seq BIGINT;
CREATE UNIQUE INDEX events_site_seq ON events (site, site_seq) WHERE site_seq IS NOT NULL;
CREATE INDEX events_site_at ON events (site, at_ms) WHERE site IS NOT NULL;
ALTER TABLE alerts ADD COLUMN site TEXT;

-- The central's view of each site: when it last called, what it still has to send, which
-- policy it runs; which gateway (its random instance id) holds the site's token now, and how
-- many have (a new one numbers its events above every earlier one's).
CREATE TABLE gateways (
    site TEXT PRIMARY KEY,
    instance TEXT NOT NULL DEFAULT '',
    instance_no BIGINT NOT NULL DEFAULT 0,
    first_seen_ms BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    address TEXT NOT NULL DEFAULT '',
    policy_version TEXT NOT NULL DEFAULT '',
    backlog BIGINT NOT NULL DEFAULT 0,
    events_received BIGINT NOT NULL DEFAULT 0,
    texts_received BIGINT NOT NULL DEFAULT 0
);

-- A gateway's outbox: page texts waiting to go to the central (events wait in `events`), and
-- how far the central has acknowledged each kind.
CREATE TABLE outbox_texts (
    id INTEGER PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    source TEXT NOT NULL,
    text TEXT NOT NULL,
    location TEXT NOT NULL,
    username TEXT,
    client_ip TEXT,
    group_name TEXT NOT NULL
);
CREATE TABLE outbox_acked (
    kind TEXT PRIMARY KEY,
    acked BIGINT NOT NULL
);
