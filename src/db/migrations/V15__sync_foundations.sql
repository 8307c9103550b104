-- The sync's foundations (docs/SYNC.md): the change log keyed per log, the state the box keeps
-- of the other side, conflicts for a person to settle, and the tables the national hub owns.
-- The capture triggers are dropped before a migration runs and regenerated after it
-- (db::migrate), so the log can be rebuilt here.

-- Keyed by (origin, incarnation, seq): a new incarnation restarts at 1 without colliding.
-- `changed` lists the columns an update changed (per-field last writer wins needs it).
CREATE TABLE sync_log_v15 (
    origin      BLOB NOT NULL,
    incarnation INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    hlc         INTEGER NOT NULL,
    tbl         TEXT NOT NULL,
    row_key     BLOB NOT NULL,
    op          TEXT NOT NULL CHECK (op IN ('I', 'U', 'D')),
    row_data    TEXT,                         -- JSON of the row after the change (NULL for delete)
    changed     TEXT,                         -- JSON array of an update's changed columns
    PRIMARY KEY (origin, incarnation, seq)
) STRICT;
INSERT INTO sync_log_v15 (origin, incarnation, seq, hlc, tbl, row_key, op, row_data)
    SELECT origin, incarnation, seq, hlc, tbl, row_key, op, row_data FROM sync_log;
DROP TABLE sync_log;
ALTER TABLE sync_log_v15 RENAME TO sync_log;

-- The stored "applying" flag is gone: capture is silenced only on the connection that applies
-- (it attaches a marker database; the triggers look for it in pragma_database_list).
ALTER TABLE sync_state DROP COLUMN applying;

-- What this box holds of other sites' logs (the hub's, a previous incarnation's): its vector.
CREATE TABLE sync_received (
    origin      BLOB NOT NULL,
    incarnation INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    PRIMARY KEY (origin, incarnation)
) STRICT;

-- What the hub said it holds of this box's own logs at the last contact: what may be pruned,
-- and how a restored box sees that the hub is ahead of it.
CREATE TABLE sync_acked (
    origin      BLOB NOT NULL,
    incarnation INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    PRIMARY KEY (origin, incarnation)
) STRICT;

-- Received changes this release does not understand yet (a newer hub's table or column): kept
-- whole, applied by the release that knows them, never dropped.
CREATE TABLE sync_pending (
    origin      BLOB NOT NULL,
    incarnation INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    hlc         INTEGER NOT NULL,
    tbl         TEXT NOT NULL,
    row_key     BLOB NOT NULL,
    op          TEXT NOT NULL,
    row_data    TEXT,
    changed     TEXT,
    unknown     TEXT,                         -- JSON array of the columns not understood; NULL: the table
    received_at INTEGER NOT NULL,
    PRIMARY KEY (origin, incarnation, seq)
) STRICT;

-- Received changes refused (a table the sender does not own, a row outside its scope): kept
-- and shown, never applied, never silently dropped; the rest of the exchange goes on.
CREATE TABLE sync_refused (
    id          INTEGER PRIMARY KEY,
    origin      BLOB NOT NULL,
    incarnation INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    tbl         TEXT NOT NULL,
    row_key     BLOB NOT NULL,
    op          TEXT NOT NULL,
    row_data    TEXT,
    reason      TEXT NOT NULL,
    received_at INTEGER NOT NULL
) STRICT;

-- Per field of a shared table, who wrote it last (HLC, site): last writer wins per field.
CREATE TABLE sync_field_clock (
    tbl     TEXT NOT NULL,
    row_key BLOB NOT NULL,
    col     TEXT NOT NULL,
    hlc     INTEGER NOT NULL,
    site    BLOB NOT NULL,
    PRIMARY KEY (tbl, row_key, col)
) STRICT;

-- Concurrent edits of one shared field: the winner is applied, both are kept here until a
-- person settles it on the technician's page.
CREATE TABLE sync_conflict (
    id          INTEGER PRIMARY KEY,
    tbl         TEXT NOT NULL,
    row_key     BLOB NOT NULL,
    col         TEXT NOT NULL,
    kept_value  TEXT,                         -- JSON value now in the row
    kept_hlc    INTEGER NOT NULL,
    kept_site   BLOB NOT NULL,
    other_value TEXT,                         -- JSON value that lost
    other_hlc   INTEGER NOT NULL,
    other_site  BLOB NOT NULL,
    found_at    INTEGER NOT NULL,
    settled_at  INTEGER,
    settled_by  BLOB
) STRICT;
CREATE INDEX sync_conflict_open ON sync_conflict (settled_at, found_at);

-- Hub-owned tables: the hub writes them, every box receives them read-only (the capture
-- triggers refuse a school's writes). No CHECK or UNIQUE beyond the key: a newer hub's values
-- must apply on an older box.
CREATE TABLE national_announcements (
    id           BLOB PRIMARY KEY,
    scope        TEXT NOT NULL,               -- 'national'
    title        TEXT NOT NULL,
    body         TEXT NOT NULL,
    audience     TEXT NOT NULL,               -- tous, personnels, eleves, familles, direction
    starts_on    TEXT NOT NULL,               -- AAAA-MM-JJ
    ends_on      TEXT,
    published_at INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
) STRICT;

CREATE TABLE national_calendar (
    id          BLOB PRIMARY KEY,
    scope       TEXT NOT NULL,
    school_year TEXT NOT NULL,                -- e.g. 2026-2027
    kind        TEXT NOT NULL,                -- rentree, vacances, ferie, examen
    name        TEXT NOT NULL,                -- « Vacances de Noël », « BEPC »
    exam        TEXT,                         -- BEPC, BAC I, BAC II, CAP, BT for kind = examen
    starts_on   TEXT NOT NULL,
    ends_on     TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE reference_series (
    id         BLOB PRIMARY KEY,
    scope      TEXT NOT NULL,
    code       TEXT NOT NULL,                 -- A4, C4, D, F1 …
    name       TEXT NOT NULL,
    kind       TEXT NOT NULL,                 -- generale, technique
    updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE reference_subjects (
    id         BLOB PRIMARY KEY,
    scope      TEXT NOT NULL,
    code       TEXT NOT NULL,
    name       TEXT NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

-- Official coefficient grids, when the ministry publishes one (DOMAIN.md: otherwise the
-- school's own data).
CREATE TABLE reference_coefficients (
    id           BLOB PRIMARY KEY,
    scope        TEXT NOT NULL,
    school_year  TEXT NOT NULL,
    level        TEXT NOT NULL,
    series_code  TEXT NOT NULL,
    subject_code TEXT NOT NULL,
    coefficient  REAL NOT NULL,
    updated_at   INTEGER NOT NULL
) STRICT;

-- Each sync run with the hub and its outcome: what the technician's page shows.
CREATE TABLE sync_runs (
    id            INTEGER PRIMARY KEY,
    started       INTEGER NOT NULL,
    finished      INTEGER,
    origin        TEXT NOT NULL,              -- commande, minuteur, bouton, usb
    bytes_up      INTEGER NOT NULL DEFAULT 0,
    bytes_down    INTEGER NOT NULL DEFAULT 0,
    changes_up    INTEGER NOT NULL DEFAULT 0,
    changes_down  INTEGER NOT NULL DEFAULT 0,
    left_over     INTEGER NOT NULL DEFAULT 0, -- changes left for the next run (budget)
    clock_offset_ms INTEGER,                  -- this box's clock minus the hub's
    error         TEXT
) STRICT;
