-- Monitoring: API tokens (agents' ingest, alert readers), alerts with their findings, the
-- deliveries owed for each alert (so a restart resumes them), and digests sent.

CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    scope TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    username TEXT,
    group_name TEXT,
    created_ms BIGINT NOT NULL,
    last_used_ms BIGINT,
    revoked INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE alerts (
    id INTEGER PRIMARY KEY,
    reference TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    status TEXT NOT NULL DEFAULT 'new',
    category TEXT NOT NULL,
    severity TEXT NOT NULL,
    score INTEGER NOT NULL,
    subject TEXT NOT NULL,
    username TEXT,
    client_ip TEXT,
    device TEXT,
    group_name TEXT NOT NULL,
    source TEXT NOT NULL,
    findings INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX alerts_subject ON alerts (subject, category, updated_ms);
CREATE INDEX alerts_created ON alerts (created_ms);

CREATE TABLE alert_findings (
    id INTEGER PRIMARY KEY,
    alert_id INTEGER NOT NULL REFERENCES alerts (id),
    at_ms BIGINT NOT NULL,
    source TEXT NOT NULL,
    severity TEXT NOT NULL,
    score INTEGER NOT NULL,
    evidence TEXT NOT NULL,
    context TEXT NOT NULL,
    rules TEXT NOT NULL,
    location TEXT NOT NULL
);
CREATE INDEX alert_findings_alert ON alert_findings (alert_id);

CREATE TABLE alert_deliveries (
    id INTEGER PRIMARY KEY,
    alert_id INTEGER NOT NULL REFERENCES alerts (id),
    channel TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created_ms BIGINT NOT NULL,
    sent_ms BIGINT
);
CREATE INDEX alert_deliveries_pending ON alert_deliveries (status) WHERE status = 'pending';

CREATE TABLE digests (
    id INTEGER PRIMARY KEY,
    sent_ms BIGINT NOT NULL,
    from_ms BIGINT NOT NULL,
    to_ms BIGINT NOT NULL,
    alerts INTEGER NOT NULL
);
