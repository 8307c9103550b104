-- The stored files a school's rows reference travel to the hub after the change log
-- (docs/SYNC.md, *Files*). Both changes stay on the box (db::registry::LOCAL_TABLES).

-- Files the hub holds for this school: sent by this box, or taken back from the hub (a
-- replacement box, a box put back from a copy). Only the others are offered at the next run.
CREATE TABLE sync_files_sent (
    sha256 TEXT PRIMARY KEY,
    bytes  INTEGER NOT NULL,
    at     INTEGER NOT NULL
) STRICT;

-- What a run moved of them, and what the night's budget left for the next one.
ALTER TABLE sync_runs ADD COLUMN files_up INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sync_runs ADD COLUMN files_down INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sync_runs ADD COLUMN files_left INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sync_runs ADD COLUMN files_left_bytes INTEGER NOT NULL DEFAULT 0;
