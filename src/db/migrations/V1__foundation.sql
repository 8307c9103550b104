-- Foundation: site identity, change log, audit, people, accounts, roles, links, sessions.
-- Synced tables carry a UUIDv7 BLOB key and a `scope`; change-capture triggers are generated
-- from the Rust schema registry (src/db/registry.rs) after migrations, not written here.

-- One row: who this box is and where its change log stands. Local only.
CREATE TABLE sync_state (
    singleton   INTEGER PRIMARY KEY CHECK (singleton = 1),
    site_id     BLOB NOT NULL,
    school_code TEXT NOT NULL,
    incarnation INTEGER NOT NULL DEFAULT 1,
    seq         INTEGER NOT NULL DEFAULT 0,   -- last sequence number given to a local change
    hlc         INTEGER NOT NULL DEFAULT 0,   -- hybrid logical clock: (unix ms << 16) | counter
    applying    INTEGER NOT NULL DEFAULT 0    -- 1 only while the sync engine applies a remote manifest
) STRICT;

-- Every insert/update/delete of a registered table, written by triggers in the same transaction.
CREATE TABLE sync_log (
    seq         INTEGER PRIMARY KEY,          -- contiguous per (origin, incarnation)
    origin      BLOB NOT NULL,
    incarnation INTEGER NOT NULL,
    hlc         INTEGER NOT NULL,
    tbl         TEXT NOT NULL,
    row_key     BLOB NOT NULL,
    op          TEXT NOT NULL CHECK (op IN ('I', 'U', 'D')),
    row_data    TEXT                          -- JSON of the row after the change (NULL for delete)
) STRICT;

-- Sensitive changes and security events: who, when, what, old → new. Local only.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,             -- unix seconds
    actor       BLOB,                         -- account id, NULL for anonymous/system
    action      TEXT NOT NULL,                -- e.g. login.ok, login.refused, account.create
    object_type TEXT,
    object_id   BLOB,
    old_value   TEXT,
    new_value   TEXT,
    ip          TEXT
) STRICT;
CREATE INDEX audit_log_at ON audit_log (at);

-- A person known to the school: pupil, parent, staff member, guest.
CREATE TABLE people (
    id          BLOB PRIMARY KEY,
    scope       TEXT NOT NULL,
    surname     TEXT NOT NULL,
    first_names TEXT NOT NULL,
    sex         TEXT CHECK (sex IN ('F', 'M')),
    birth_date  TEXT,                         -- YYYY-MM-DD
    matricule   TEXT,
    phone       TEXT,
    consent     INTEGER NOT NULL DEFAULT 0,   -- an adult pupil lets their parents see their data
    left_on     TEXT,                         -- date the person left the school
    updated_at  INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX people_matricule ON people (scope, matricule) WHERE matricule IS NOT NULL;

-- The login of a person. Secrets (hashes) are never part of the change log.
CREATE TABLE accounts (
    id                  BLOB PRIMARY KEY,
    scope               TEXT NOT NULL,
    person_id           BLOB NOT NULL UNIQUE REFERENCES people (id),
    login               TEXT NOT NULL UNIQUE,
    password_hash       TEXT,                 -- Argon2id PHC string; NULL until activation
    activation_hash     TEXT,                 -- keyed SHA-256 of the one-time code
    activation_expires  INTEGER,              -- unix seconds
    must_change_password INTEGER NOT NULL DEFAULT 0,
    disabled            INTEGER NOT NULL DEFAULT 0,
    lang                TEXT NOT NULL DEFAULT 'fr',
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    last_login_at       INTEGER
) STRICT;

CREATE TABLE person_roles (
    id          BLOB PRIMARY KEY,
    scope       TEXT NOT NULL,
    person_id   BLOB NOT NULL REFERENCES people (id),
    role        TEXT NOT NULL CHECK (role IN ('eleve', 'parent', 'enseignant', 'vie_scolaire',
                                              'secretariat', 'direction', 'technicien', 'invite')),
    UNIQUE (person_id, role)
) STRICT;

-- Parent (responsable légal) ↔ child.
CREATE TABLE guardianships (
    id          BLOB PRIMARY KEY,
    scope       TEXT NOT NULL,
    parent_id   BLOB NOT NULL REFERENCES people (id),
    child_id    BLOB NOT NULL REFERENCES people (id),
    relation    TEXT NOT NULL DEFAULT 'responsable',
    UNIQUE (parent_id, child_id)
) STRICT;

-- Minimal structure for rights; the school-life issue brings levels, séries and groups.
CREATE TABLE classes (
    id          BLOB PRIMARY KEY,
    scope       TEXT NOT NULL,
    name        TEXT NOT NULL,
    level       TEXT NOT NULL,
    serie       TEXT,
    UNIQUE (scope, name)
) STRICT;

CREATE TABLE class_members (
    id          BLOB PRIMARY KEY,
    scope       TEXT NOT NULL,
    class_id    BLOB NOT NULL REFERENCES classes (id),
    person_id   BLOB NOT NULL REFERENCES people (id),
    role        TEXT NOT NULL CHECK (role IN ('eleve', 'enseignant', 'principal')),
    UNIQUE (class_id, person_id, role)
) STRICT;
CREATE INDEX class_members_person ON class_members (person_id);

-- Server-side sessions. Local only; the cookie holds a token, the table its SHA-256.
CREATE TABLE sessions (
    token_hash  BLOB PRIMARY KEY,
    account_id  BLOB NOT NULL REFERENCES accounts (id),
    created_at  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,
    ip          TEXT
) STRICT;
CREATE INDEX sessions_account ON sessions (account_id);
