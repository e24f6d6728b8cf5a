-- Texts whose scan failed (a panic, contained): kept with who and where, so that nothing is
-- silently not scanned. The next start scans them again and removes those that pass.
CREATE TABLE unscanned (
    id INTEGER PRIMARY KEY,
    kept_ms BIGINT NOT NULL,
    at_ms BIGINT NOT NULL,
    source TEXT NOT NULL,
    text TEXT NOT NULL,
    location TEXT NOT NULL,
    username TEXT,
    client_ip TEXT,
    device TEXT,
    group_name TEXT NOT NULL,
    error TEXT NOT NULL
);
