-- Backups (docs/OPERATIONS.md). Both tables stay on the box (db::registry::LOCAL_TABLES).

-- Each backup run and its outcome: what the technician's page and /metrics show.
CREATE TABLE backup_runs (
    id            INTEGER PRIMARY KEY,
    started       INTEGER NOT NULL,
    finished      INTEGER,
    origin        TEXT NOT NULL CHECK (origin IN ('commande', 'minuteur', 'disque', 'bouton')),
    destination   TEXT NOT NULL,
    name          TEXT,                       -- the backup's file name, chosen at start
    key_id        TEXT,                       -- the recovery key it is encrypted to
    bytes_written INTEGER NOT NULL DEFAULT 0, -- written by this run (archive and new files)
    total_bytes   INTEGER NOT NULL DEFAULT 0, -- the archive and every stored file it needs
    files_new     INTEGER NOT NULL DEFAULT 0,
    files_reused  INTEGER NOT NULL DEFAULT 0,
    verified      INTEGER NOT NULL DEFAULT 0, -- read back from the destination and matched
    error         TEXT,
    removed       TEXT NOT NULL DEFAULT '[]'  -- JSON list of the backups rotation removed
) STRICT;

-- The recovery keys backups are encrypted to: the box keeps the public half only (the secret
-- half waits in a file of the data directory until its sheet is printed, then leaves).
CREATE TABLE backup_keys (
    key_id     TEXT PRIMARY KEY,
    recipient  TEXT NOT NULL,
    created    INTEGER NOT NULL,
    printed    INTEGER,
    printed_by BLOB,
    retired    INTEGER
) STRICT;

-- Set by `kekeli restore`: the sync takes a new incarnation at its next contact.
ALTER TABLE sync_state ADD COLUMN restored_at INTEGER;
ALTER TABLE sync_state ADD COLUMN restored_from TEXT;
