-- The annual review of the e-safety policy (both seeds; DfE standards): who reviewed it, what
-- changed, and when the next review is due. Append-only.

CREATE TABLE policy_reviews (
    id INTEGER PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    recorded_by TEXT NOT NULL,
    reviewed_on_ms BIGINT NOT NULL,
    reviewers TEXT NOT NULL,
    changes TEXT NOT NULL,
    next_due_ms BIGINT NOT NULL
);
CREATE TRIGGER policy_reviews_no_update BEFORE UPDATE ON policy_reviews
BEGIN SELECT RAISE(ABORT, 'policy reviews are append-only'); END;
CREATE TRIGGER policy_reviews_no_delete BEFORE DELETE ON policy_reviews
BEGIN SELECT RAISE(ABORT, 'policy reviews are append-only'); END;
