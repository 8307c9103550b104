-- Every import tried on this box (checked or applied, from the page or the command line): the
-- home page of whoever imports shows a file left with errors, or checked and not confirmed.
-- Local to the box (its own work list), never synced; runs older than 90 days are pruned.
CREATE TABLE import_runs (
    id         INTEGER PRIMARY KEY,
    kind       TEXT NOT NULL,
    file_name  TEXT NOT NULL,
    at         INTEGER NOT NULL,
    actor      BLOB,
    dry_run    INTEGER NOT NULL,
    applied    INTEGER NOT NULL,
    errors     INTEGER NOT NULL
) STRICT;
CREATE INDEX import_runs_by_kind ON import_runs (kind, at);
