-- Messages between the people of the school. Who may write to whom is school data
-- (messaging_rules, edited by the direction; a pair without a row has the default of
-- policy::MessagingRules::defaults). Messages stay in the school: school-owned, the hub keeps a
-- read replica.
CREATE TABLE messaging_rules (
    id          BLOB PRIMARY KEY,
    scope       TEXT NOT NULL,
    sender      TEXT NOT NULL,
    recipient   TEXT NOT NULL,
    reach       TEXT NOT NULL CHECK (reach IN ('non', 'classe', 'ecole')),
    updated_by  BLOB REFERENCES people (id),
    updated_at  INTEGER NOT NULL,
    UNIQUE (sender, recipient)
) STRICT;

-- The school's quiet hours for families (minutes after midnight, school time): a message
-- written to a pupil or a parent then is delivered at the end of them.
CREATE TABLE messaging_settings (
    id           BLOB PRIMARY KEY,
    scope        TEXT NOT NULL,
    singleton    INTEGER NOT NULL DEFAULT 1 UNIQUE CHECK (singleton = 1),
    quiet_from   INTEGER NOT NULL DEFAULT 1200 CHECK (quiet_from BETWEEN 0 AND 1439),
    quiet_to     INTEGER NOT NULL DEFAULT 420 CHECK (quiet_to BETWEEN 0 AND 1439),
    updated_at   INTEGER NOT NULL
) STRICT;

CREATE TABLE conversations (
    id          BLOB PRIMARY KEY,
    scope       TEXT NOT NULL,
    subject     TEXT NOT NULL CHECK (length(subject) BETWEEN 1 AND 200),
    started_by  BLOB NOT NULL REFERENCES people (id),
    started_at  INTEGER NOT NULL,
    last_at     INTEGER NOT NULL
) STRICT;

-- Who is in a conversation: its writer and everyone it was sent to. `family`: a pupil or a
-- parent, who receives messages after the quiet hours. `seen`: how many of the others'
-- messages they have seen (messages are never deleted: more visible than seen is unread).
-- `trashed`: in their corbeille.
CREATE TABLE conversation_members (
    id               BLOB PRIMARY KEY,
    scope            TEXT NOT NULL,
    conversation_id  BLOB NOT NULL REFERENCES conversations (id),
    person_id        BLOB NOT NULL REFERENCES people (id),
    family           INTEGER NOT NULL DEFAULT 0,
    seen             INTEGER NOT NULL DEFAULT 0,
    trashed          INTEGER NOT NULL DEFAULT 0,
    UNIQUE (conversation_id, person_id)
) STRICT;
CREATE INDEX conversation_members_by_person ON conversation_members (person_id, trashed);

-- One message of a conversation. `deliver_at`: when its family recipients see it (the end of
-- the quiet hours when written during them; else its sending time).
CREATE TABLE messages (
    id               BLOB PRIMARY KEY,
    scope            TEXT NOT NULL,
    conversation_id  BLOB NOT NULL REFERENCES conversations (id),
    author_id        BLOB NOT NULL REFERENCES people (id),
    body             TEXT NOT NULL CHECK (length(body) BETWEEN 1 AND 20000),
    sent_at          INTEGER NOT NULL,
    deliver_at       INTEGER NOT NULL
) STRICT;
CREATE INDEX messages_by_conversation ON messages (conversation_id, sent_at);

-- A message someone reported to the direction, with their reason; `handled_*` once the
-- direction dealt with it. Messages are never deleted, so the reported text stays as written.
CREATE TABLE message_reports (
    id           BLOB PRIMARY KEY,
    scope        TEXT NOT NULL,
    message_id   BLOB NOT NULL REFERENCES messages (id),
    reported_by  BLOB NOT NULL REFERENCES people (id),
    reason       TEXT NOT NULL CHECK (length(reason) <= 600),
    reported_at  INTEGER NOT NULL,
    handled_by   BLOB REFERENCES people (id),
    handled_at   INTEGER,
    UNIQUE (message_id, reported_by)
) STRICT;
CREATE INDEX message_reports_open ON message_reports (handled_at, reported_at);
