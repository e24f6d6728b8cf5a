-- The safeguarding console: console roles and two-factor secrets on users, sign-in sessions,
-- per-user signing keys (sealed), the hash-chained audit log, and alert triage.

ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'learner';
-- Base32 TOTP secret once two-factor is set up; the server must read it to check codes.
ALTER TABLE users ADD COLUMN totp_secret TEXT;
-- The time step of the last code accepted: a code cannot be used twice.
ALTER TABLE users ADD COLUMN totp_last_step BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN failed_sign_ins INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN locked_until_ms BIGINT NOT NULL DEFAULT 0;
-- Set for one-time passwords: the next sign-in must choose a new one.
ALTER TABLE users ADD COLUMN must_change_password INTEGER NOT NULL DEFAULT 0;

CREATE TABLE console_sessions (
    id_hash TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    -- 'password' (password accepted, two-factor still to do) or 'full'.
    stage TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    client_ip TEXT NOT NULL,
    user_agent TEXT NOT NULL
);
CREATE INDEX console_sessions_user ON console_sessions (username);

-- Every key a user has had; retired keys keep their public half so old signatures verify.
CREATE TABLE signing_keys (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL,
    public_key TEXT NOT NULL UNIQUE,
    sealed_secret TEXT,
    created_ms BIGINT NOT NULL,
    retired_ms BIGINT
);
CREATE INDEX signing_keys_user ON signing_keys (username);

-- Append-only and hash-chained: hash = SHA-256 over the previous row's hash and this row's
-- fields, so an edited, deleted or reordered row breaks the chain (`lookout audit verify`).
CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL,
    client_ip TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

-- What the DSL team did with an alert: reviewed, dismissed (with the reason), or opened an
-- incident. Append-only; alerts.status follows the latest row.
CREATE TABLE alert_reviews (
    id INTEGER PRIMARY KEY,
    alert_id INTEGER NOT NULL REFERENCES alerts (id),
    at_ms BIGINT NOT NULL,
    by_user TEXT NOT NULL,
    action TEXT NOT NULL,
    reason TEXT NOT NULL,
    incident_id INTEGER
);
CREATE INDEX alert_reviews_alert ON alert_reviews (alert_id);
CREATE TRIGGER alert_reviews_no_update BEFORE UPDATE ON alert_reviews
BEGIN SELECT RAISE(ABORT, 'alert reviews are append-only'); END;
CREATE TRIGGER alert_reviews_no_delete BEFORE DELETE ON alert_reviews
BEGIN SELECT RAISE(ABORT, 'alert reviews are append-only'); END;
CREATE INDEX alerts_status ON alerts (status, severity);
