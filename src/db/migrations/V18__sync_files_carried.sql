-- Stored files carried on USB bundles (src/sync/files.rs): when each last left on a stick,
-- so that the next bundle carries those never carried first. Emptied of a file once the hub's
-- answer says it holds it (then it is in sync_files_sent). Stays on the box.
CREATE TABLE sync_files_carried (
    sha256 TEXT PRIMARY KEY,
    at     INTEGER NOT NULL
) STRICT;
