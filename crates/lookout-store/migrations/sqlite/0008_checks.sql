-- Routine DSL checks: the content a DSL signed (canonical JSON, with the audit log's head at
-- that moment), their Ed25519 signature, and the supervisor's co-signature over the content
-- and the DSL's signature. Rows are hash-chained like the audit log. A row can change only
-- once, to add the co-signature.

CREATE TABLE checks (
    id INTEGER PRIMARY KEY,
    content TEXT NOT NULL,
    dsl TEXT NOT NULL,
    dsl_key_id INTEGER NOT NULL REFERENCES signing_keys (id),
    dsl_signature TEXT NOT NULL,
    signed_ms BIGINT NOT NULL,
    supervisor TEXT,
    supervisor_key_id INTEGER REFERENCES signing_keys (id),
    supervisor_signature TEXT,
    cosigned_ms BIGINT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TRIGGER checks_cosign_once BEFORE UPDATE ON checks
WHEN OLD.supervisor_signature IS NOT NULL
  OR NEW.content IS NOT OLD.content OR NEW.dsl IS NOT OLD.dsl
  OR NEW.dsl_key_id IS NOT OLD.dsl_key_id OR NEW.dsl_signature IS NOT OLD.dsl_signature
  OR NEW.signed_ms IS NOT OLD.signed_ms OR NEW.prev_hash IS NOT OLD.prev_hash OR NEW.hash IS NOT OLD.hash
BEGIN SELECT RAISE(ABORT, 'a check can only be co-signed, once'); END;
CREATE TRIGGER checks_no_delete BEFORE DELETE ON checks
BEGIN SELECT RAISE(ABORT, 'checks are kept'); END;
