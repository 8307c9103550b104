-- The cahier de textes: one entry per taught session (content, homework with its due date and
-- expected time), its edit history, and attachments kept in the content store.
-- An entry with a visa (direction) can no longer be deleted (enforced below, not only in Rust).

CREATE TABLE lesson_entries (
    id               BLOB PRIMARY KEY,
    scope            TEXT NOT NULL,
    occ              TEXT NOT NULL,              -- the session's key (timetable OccKey)
    on_date          TEXT NOT NULL,
    starts           INTEGER NOT NULL,
    ends             INTEGER NOT NULL,
    class_id         BLOB REFERENCES classes (id),
    group_id         BLOB REFERENCES pupil_groups (id),
    subject_id       BLOB NOT NULL REFERENCES subjects (id),
    teacher_id       BLOB NOT NULL REFERENCES people (id),
    content          TEXT NOT NULL DEFAULT '',
    homework         TEXT NOT NULL DEFAULT '',
    due_on           TEXT,                       -- set when there is homework
    homework_minutes INTEGER CHECK (homework_minutes BETWEEN 0 AND 600),
    visa_by          BLOB REFERENCES people (id),
    visa_at          INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    UNIQUE (scope, occ),
    CHECK (starts < ends),
    CHECK ((class_id IS NULL) <> (group_id IS NULL)),
    CHECK (homework = '' OR due_on IS NOT NULL)
) STRICT;
CREATE INDEX lesson_entries_class ON lesson_entries (class_id, on_date);
CREATE INDEX lesson_entries_group ON lesson_entries (group_id, on_date);
CREATE INDEX lesson_entries_teacher ON lesson_entries (teacher_id, on_date);
CREATE INDEX lesson_entries_due ON lesson_entries (due_on) WHERE homework <> '';

CREATE TRIGGER lesson_entries_visa_keeps
BEFORE DELETE ON lesson_entries WHEN OLD.visa_at IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'lesson entry has a visa');
END;

-- Every earlier state of an entry, written before each change.
CREATE TABLE lesson_entry_versions (
    id               BLOB PRIMARY KEY,
    scope            TEXT NOT NULL,
    entry_id         BLOB NOT NULL REFERENCES lesson_entries (id),
    content          TEXT NOT NULL,
    homework         TEXT NOT NULL,
    due_on           TEXT,
    homework_minutes INTEGER,
    edited_by        BLOB REFERENCES people (id),
    edited_at        INTEGER NOT NULL          -- when this state was replaced
) STRICT;
CREATE INDEX lesson_entry_versions_entry ON lesson_entry_versions (entry_id);

CREATE TABLE lesson_attachments (
    id        BLOB PRIMARY KEY,
    scope     TEXT NOT NULL,
    entry_id  BLOB NOT NULL REFERENCES lesson_entries (id),
    sha256    TEXT NOT NULL,
    name      TEXT NOT NULL,
    mime      TEXT NOT NULL,
    size      INTEGER NOT NULL,
    added_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX lesson_attachments_entry ON lesson_attachments (entry_id);
