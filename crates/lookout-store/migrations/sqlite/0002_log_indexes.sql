-- Only events that showed a page (block, warn) carry a reference: index those alone, so that
-- logging an allowed request costs one index update fewer.
DROP INDEX events_reference;
CREATE INDEX events_reference ON events (reference) WHERE reference <> '';

-- Events of people who have not signed in have no user name: leave them out of that index.
DROP INDEX events_user_at;
CREATE INDEX events_user_at ON events (username, at_ms) WHERE username IS NOT NULL;
