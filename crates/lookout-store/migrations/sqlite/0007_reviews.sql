-- "This should not be blocked": requests from block pages for the IT admin, and the entries
-- allowed after review (per group; removing one keeps the row, with who removed it and when).

CREATE TABLE review_requests (
    id INTEGER PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    requester TEXT NOT NULL,
    group_name TEXT NOT NULL,
    url TEXT NOT NULL,
    block_ref TEXT,
    categories TEXT NOT NULL,
    reason TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    decided_by TEXT,
    decided_ms BIGINT,
    decision TEXT,
    allow_entry TEXT
);
CREATE INDEX review_requests_status ON review_requests (status, at_ms);
CREATE INDEX review_requests_requester ON review_requests (requester, at_ms);

CREATE TABLE reviewed_allows (
    id INTEGER PRIMARY KEY,
    group_name TEXT NOT NULL,
    entry TEXT NOT NULL,
    request_id INTEGER REFERENCES review_requests (id),
    approved_by TEXT NOT NULL,
    approved_ms BIGINT NOT NULL,
    removed_by TEXT,
    removed_ms BIGINT
);
CREATE INDEX reviewed_allows_group ON reviewed_allows (group_name) WHERE removed_ms IS NULL;
