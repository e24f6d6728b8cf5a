-- Users, signed-in addresses and the activity log.
-- Portable SQL: the same statements run on PostgreSQL (INTEGER PRIMARY KEY becomes an identity
-- column there). Times are milliseconds since the Unix epoch, UTC.

CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL DEFAULT '',
    group_name TEXT NOT NULL,
    password_hash TEXT,
    disabled INTEGER NOT NULL DEFAULT 0,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);

CREATE TABLE ip_sessions (
    ip TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    expires_ms BIGINT NOT NULL
);

CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    reference TEXT NOT NULL,
    service TEXT NOT NULL,
    client_ip TEXT NOT NULL,
    username TEXT,
    group_name TEXT NOT NULL,
    method TEXT NOT NULL,
    url TEXT NOT NULL,
    host TEXT NOT NULL,
    search_term TEXT,
    categories TEXT NOT NULL,
    action TEXT NOT NULL,
    rule TEXT NOT NULL,
    reason TEXT NOT NULL,
    status INTEGER,
    bytes BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX events_at ON events (at_ms);
CREATE INDEX events_user_at ON events (username, at_ms);
CREATE INDEX events_reference ON events (reference);

-- Events that could not be stored (queue full, database failing), so that a gap in the log
-- is itself on record.
CREATE TABLE log_gaps (
    id INTEGER PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    dropped BIGINT NOT NULL,
    cause TEXT NOT NULL
);
