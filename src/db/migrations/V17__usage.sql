-- Daily usage indicators (src/usage): pages each service served, and to how many people, per
-- day and role. Counts only, never a person: school-owned, synced to the hub.
CREATE TABLE usage_daily (
    id      BLOB PRIMARY KEY,
    scope   TEXT NOT NULL,
    day     TEXT NOT NULL,
    service TEXT NOT NULL,
    role    TEXT NOT NULL,
    visits  INTEGER NOT NULL,
    people  INTEGER NOT NULL,
    UNIQUE (scope, day, service, role)
) STRICT;

-- The running day's counts per person, to count people once: never synced, emptied as the
-- day closes into usage_daily.
CREATE TABLE usage_today (
    day        TEXT NOT NULL,
    service    TEXT NOT NULL,
    role       TEXT NOT NULL,
    account_id BLOB NOT NULL,
    visits     INTEGER NOT NULL,
    PRIMARY KEY (day, service, role, account_id)
) STRICT, WITHOUT ROWID;
