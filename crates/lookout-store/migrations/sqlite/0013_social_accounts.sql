-- The register of official social-media accounts: each change to an account is a new version
-- (history kept); who holds admin rights is a log of events per account ('added', 'removed',
-- 'revoke' when the admin's Lookout account is disabled, 'revoked' when someone has taken the
-- rights away on the platform). Both append-only.

CREATE TABLE social_accounts (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL,
    at_ms BIGINT NOT NULL,
    by_user TEXT NOT NULL,
    platform TEXT NOT NULL,
    handle TEXT NOT NULL,
    purpose TEXT NOT NULL,
    owner TEXT NOT NULL,
    retired INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX social_accounts_account ON social_accounts (account_id, id);
CREATE TRIGGER social_accounts_no_update BEFORE UPDATE ON social_accounts
BEGIN SELECT RAISE(ABORT, 'the register keeps its history: add a new version'); END;
CREATE TRIGGER social_accounts_no_delete BEFORE DELETE ON social_accounts
BEGIN SELECT RAISE(ABORT, 'the register keeps its history: add a new version'); END;

CREATE TABLE social_admin_events (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL,
    admin TEXT NOT NULL,
    -- A Lookout user name (1) or a named person without an account (0).
    is_user INTEGER NOT NULL,
    kind TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    by_user TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT ''
);
CREATE INDEX social_admin_events_account ON social_admin_events (account_id, id);
CREATE INDEX social_admin_events_admin ON social_admin_events (admin) WHERE is_user = 1;
CREATE TRIGGER social_admin_events_no_update BEFORE UPDATE ON social_admin_events
BEGIN SELECT RAISE(ABORT, 'admin rights history is append-only'); END;
CREATE TRIGGER social_admin_events_no_delete BEFORE DELETE ON social_admin_events
BEGIN SELECT RAISE(ABORT, 'admin rights history is append-only'); END;
