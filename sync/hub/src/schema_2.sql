-- Schema 2: the ministry's console (accounts, sessions, what was done from it).
-- Statements are split at semicolons, so none may appear inside one (comments included).

-- A ministry officer's account. Passwords are Argon2id hashes, never kept in clear.
CREATE TABLE ministry_accounts (
    login         TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    disabled      BIGINT NOT NULL DEFAULT 0,
    failures      BIGINT NOT NULL DEFAULT 0,     -- wrong passwords in a row
    locked_until  BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    last_login    BIGINT
);

-- A console session: the cookie holds a token, the table its SHA-256.
CREATE TABLE console_sessions (
    token_hash {BLOB} PRIMARY KEY,
    login      TEXT NOT NULL,
    csrf       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen  BIGINT NOT NULL
);

-- What was done from the console or the command line (tokens, revocations, accounts).
CREATE TABLE console_audit (
    id     {SERIAL},
    at     BIGINT NOT NULL,
    login  TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX console_audit_at ON console_audit (at)
