-- The hub's schema, for SQLite and PostgreSQL alike ({BLOB}, {SERIAL} are each one's words).
-- Statements are split at semicolons, so none may appear inside one (comments included).

-- Every school the ministry declared, and the box enrolled for it.
CREATE TABLE schools (
    code            TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    status          TEXT NOT NULL,            -- attente, active, revoquee
    site            {BLOB},                   -- the school's log's site id, once enrolled
    incarnation     BIGINT,
    cert_fp         {BLOB},                   -- SHA-256 of the box's client certificate
    sign_key        {BLOB},                   -- its Ed25519 key (checks its segments)
    created_at      BIGINT NOT NULL,
    enrolled_at     BIGINT,
    last_contact    BIGINT,
    last_error      TEXT,
    release         TEXT,
    clock_offset_ms BIGINT,                   -- box clock minus hub clock at the last contact
    pending_changes BIGINT
);
CREATE UNIQUE INDEX schools_fp ON schools (cert_fp);

-- One-time enrollment tokens: the secret is kept hashed.
CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,
    school      TEXT NOT NULL,
    secret_hash {BLOB} NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT,
    replaces    BIGINT NOT NULL DEFAULT 0     -- 1: a replacement box for an enrolled school
);

-- What the hub holds of each log, and which key signs it.
CREATE TABLE logs (
    site        {BLOB} NOT NULL,
    incarnation BIGINT NOT NULL,
    seq         BIGINT NOT NULL,
    school      TEXT,
    sign_key    {BLOB} NOT NULL,
    PRIMARY KEY (site, incarnation)
);

-- Every segment received or made, by name (its bytes are in the object store).
CREATE TABLE segments (
    name        TEXT PRIMARY KEY,
    school      TEXT,
    site        {BLOB} NOT NULL,
    incarnation BIGINT NOT NULL,
    first_seq   BIGINT NOT NULL,
    last_seq    BIGINT NOT NULL,
    bytes       BIGINT NOT NULL,
    applied     BIGINT NOT NULL DEFAULT 0,
    received_at BIGINT NOT NULL
);
CREATE INDEX segments_log ON segments (site, incarnation, first_seq);

-- The replica: the latest state of every row of every school, and the hub's own rows.
CREATE TABLE replica (
    tbl     TEXT NOT NULL,
    row_key {BLOB} NOT NULL,
    scope   TEXT NOT NULL,
    data    TEXT,
    hlc     BIGINT NOT NULL,
    site    {BLOB} NOT NULL,
    deleted BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tbl, row_key)
);
CREATE INDEX replica_scope ON replica (scope, tbl);

-- Changes refused on receipt: kept, shown on the console, never applied.
CREATE TABLE refused (
    id          {SERIAL},
    school      TEXT NOT NULL,
    site        {BLOB} NOT NULL,
    incarnation BIGINT NOT NULL,
    seq         BIGINT NOT NULL,
    tbl         TEXT NOT NULL,
    row_key     {BLOB},
    reason      TEXT NOT NULL,
    at          BIGINT NOT NULL
);

-- The hub's own changes (announcements, calendar, reference lists), in order.
CREATE TABLE hub_log (
    seq     BIGINT PRIMARY KEY,
    hlc     BIGINT NOT NULL,
    tbl     TEXT NOT NULL,
    row_key {BLOB} NOT NULL,
    op      TEXT NOT NULL,
    data    TEXT
);

-- What each box said it holds at its last contact (what it still has to receive).
CREATE TABLE box_has (
    school      TEXT NOT NULL,
    site        {BLOB} NOT NULL,
    incarnation BIGINT NOT NULL,
    seq         BIGINT NOT NULL,
    PRIMARY KEY (school, site, incarnation)
);

-- Every exchange, for the console's history and bytes per night.
CREATE TABLE contacts (
    id          {SERIAL},
    school      TEXT NOT NULL,
    at          BIGINT NOT NULL,
    kind        TEXT NOT NULL,                -- push, pull, enroll, usb
    bytes_in    BIGINT NOT NULL DEFAULT 0,
    bytes_out   BIGINT NOT NULL DEFAULT 0,
    changes_in  BIGINT NOT NULL DEFAULT 0,
    changes_out BIGINT NOT NULL DEFAULT 0,
    error       TEXT
);
CREATE INDEX contacts_school ON contacts (school, at)
