-- School structure, timetable, roll call and absences, family notification outbox.
-- Dates are ISO `YYYY-MM-DD` text in the school's local time; times of day are minutes since
-- midnight; instants are unix seconds. Synced tables get their triggers from the registry.

-- A school year (e.g. "2026-2027") with the Monday that starts an "A" week.
CREATE TABLE school_years (
    id            BLOB PRIMARY KEY,
    scope         TEXT NOT NULL,
    name          TEXT NOT NULL,
    starts_on     TEXT NOT NULL,
    ends_on       TEXT NOT NULL,
    week_a_monday TEXT,                        -- A and B weeks alternate from this Monday
    UNIQUE (scope, name),
    CHECK (starts_on < ends_on)
) STRICT;

-- Periods of assessment: semestres for the lycée, trimestres for the collège (DOMAIN.md).
CREATE TABLE periods (
    id             BLOB PRIMARY KEY,
    scope          TEXT NOT NULL,
    school_year_id BLOB NOT NULL REFERENCES school_years (id),
    cycle          TEXT NOT NULL CHECK (cycle IN ('college', 'lycee')),
    number         INTEGER NOT NULL CHECK (number BETWEEN 1 AND 3),
    name           TEXT NOT NULL,               -- "1er semestre", "2e trimestre"
    starts_on      TEXT NOT NULL,
    ends_on        TEXT NOT NULL,
    closed_at      INTEGER,                     -- set by the direction; marks freeze then
    UNIQUE (school_year_id, cycle, number),
    CHECK (starts_on <= ends_on)
) STRICT;

-- Levels (6e … Tle); the cycle decides the kind of periods.
CREATE TABLE levels (
    id     BLOB PRIMARY KEY,
    scope  TEXT NOT NULL,
    code   TEXT NOT NULL,
    name   TEXT NOT NULL,
    cycle  TEXT NOT NULL CHECK (cycle IN ('college', 'lycee')),
    rank   INTEGER NOT NULL,
    UNIQUE (scope, code)
) STRICT;

-- Séries, general and technical.
CREATE TABLE series (
    id     BLOB PRIMARY KEY,
    scope  TEXT NOT NULL,
    code   TEXT NOT NULL,
    name   TEXT NOT NULL,
    kind   TEXT NOT NULL CHECK (kind IN ('generale', 'technique')),
    UNIQUE (scope, code)
) STRICT;

CREATE TABLE rooms (
    id        BLOB PRIMARY KEY,
    scope     TEXT NOT NULL,
    name      TEXT NOT NULL,
    kind      TEXT NOT NULL DEFAULT 'salle',    -- salle, laboratoire, atelier, salle informatique…
    capacity  INTEGER,
    bookable  INTEGER NOT NULL DEFAULT 0,
    UNIQUE (scope, name)
) STRICT;

CREATE TABLE equipment (
    id        BLOB PRIMARY KEY,
    scope     TEXT NOT NULL,
    name      TEXT NOT NULL,
    kind      TEXT NOT NULL DEFAULT 'materiel',  -- vidéoprojecteur, ordinateurs portables…
    room_id   BLOB REFERENCES rooms (id),
    bookable  INTEGER NOT NULL DEFAULT 1,
    UNIQUE (scope, name)
) STRICT;

-- A class is (level, série, letter); its room and professeur principal (class_members 'principal').
ALTER TABLE classes ADD COLUMN letter TEXT;
ALTER TABLE classes ADD COLUMN room_id BLOB REFERENCES rooms (id);

-- Groups: half-classes, options, groups across classes.
CREATE TABLE pupil_groups (
    id        BLOB PRIMARY KEY,
    scope     TEXT NOT NULL,
    name      TEXT NOT NULL,
    class_id  BLOB REFERENCES classes (id),     -- set for a part of one class
    UNIQUE (scope, name)
) STRICT;

CREATE TABLE group_members (
    id        BLOB PRIMARY KEY,
    scope     TEXT NOT NULL,
    group_id  BLOB NOT NULL REFERENCES pupil_groups (id),
    person_id BLOB NOT NULL REFERENCES people (id),
    UNIQUE (group_id, person_id)
) STRICT;
CREATE INDEX group_members_person ON group_members (person_id);

CREATE TABLE subjects (
    id      BLOB PRIMARY KEY,
    scope   TEXT NOT NULL,
    code    TEXT NOT NULL,
    name    TEXT NOT NULL,
    domain  TEXT NOT NULL DEFAULT 'autres',    -- bulletin grouping: lettres, sciences, techniques, eps…
    rank    INTEGER NOT NULL DEFAULT 0,
    UNIQUE (scope, code)
) STRICT;

-- Coefficients are school data per (school year, level, série); '' stands for "no série".
CREATE TABLE coefficients (
    id             BLOB PRIMARY KEY,
    scope          TEXT NOT NULL,
    school_year_id BLOB NOT NULL REFERENCES school_years (id),
    level          TEXT NOT NULL,
    serie          TEXT NOT NULL DEFAULT '',
    subject_id     BLOB NOT NULL REFERENCES subjects (id),
    coefficient    REAL NOT NULL CHECK (coefficient > 0 AND coefficient <= 20),
    UNIQUE (school_year_id, level, serie, subject_id)
) STRICT;

-- Who teaches what to whom: teacher × (class or group) × subject × hours per week.
CREATE TABLE teachings (
    id             BLOB PRIMARY KEY,
    scope          TEXT NOT NULL,
    school_year_id BLOB NOT NULL REFERENCES school_years (id),
    teacher_id     BLOB NOT NULL REFERENCES people (id),
    class_id       BLOB REFERENCES classes (id),
    group_id       BLOB REFERENCES pupil_groups (id),
    subject_id     BLOB NOT NULL REFERENCES subjects (id),
    hours_per_week REAL NOT NULL DEFAULT 0 CHECK (hours_per_week >= 0 AND hours_per_week <= 40),
    CHECK ((class_id IS NULL) <> (group_id IS NULL))
) STRICT;
CREATE UNIQUE INDEX teachings_class ON teachings (school_year_id, teacher_id, class_id, subject_id) WHERE class_id IS NOT NULL;
CREATE UNIQUE INDEX teachings_group ON teachings (school_year_id, teacher_id, group_id, subject_id) WHERE group_id IS NOT NULL;
CREATE INDEX teachings_teacher ON teachings (teacher_id);

-- The weekly timetable: one row per recurring session.
CREATE TABLE timetable_slots (
    id             BLOB PRIMARY KEY,
    scope          TEXT NOT NULL,
    school_year_id BLOB NOT NULL REFERENCES school_years (id),
    class_id       BLOB REFERENCES classes (id),
    group_id       BLOB REFERENCES pupil_groups (id),
    subject_id     BLOB NOT NULL REFERENCES subjects (id),
    teacher_id     BLOB REFERENCES people (id),
    room_id        BLOB REFERENCES rooms (id),
    weekday        INTEGER NOT NULL CHECK (weekday BETWEEN 1 AND 7),   -- 1 = lundi
    starts         INTEGER NOT NULL CHECK (starts BETWEEN 0 AND 1439),
    ends           INTEGER NOT NULL CHECK (ends BETWEEN 1 AND 1440),
    weeks          TEXT NOT NULL DEFAULT 'all' CHECK (weeks IN ('all', 'A', 'B')),
    valid_from     TEXT NOT NULL,
    valid_to       TEXT NOT NULL,
    CHECK (starts < ends),
    CHECK (valid_from <= valid_to),
    CHECK ((class_id IS NULL) <> (group_id IS NULL))
) STRICT;
CREATE INDEX timetable_slots_class ON timetable_slots (class_id, weekday);
CREATE INDEX timetable_slots_group ON timetable_slots (group_id, weekday);
CREATE INDEX timetable_slots_teacher ON timetable_slots (teacher_id, weekday);
CREATE INDEX timetable_slots_room ON timetable_slots (room_id, weekday);

-- One-off changes to the timetable: a session cancelled, moved, taught by a replacement, or an
-- extra session (no slot). For a slot, `on_date` is the date of the occurrence changed.
CREATE TABLE timetable_changes (
    id          BLOB PRIMARY KEY,
    scope       TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('annule', 'deplace', 'remplace', 'supplementaire')),
    slot_id     BLOB REFERENCES timetable_slots (id),
    on_date     TEXT NOT NULL,
    new_date    TEXT,                        -- moved or extra: where the session takes place
    starts      INTEGER CHECK (starts BETWEEN 0 AND 1439),
    ends        INTEGER CHECK (ends BETWEEN 1 AND 1440),
    room_id     BLOB REFERENCES rooms (id),
    teacher_id  BLOB REFERENCES people (id), -- replacement teacher, or the extra session's
    class_id    BLOB REFERENCES classes (id),
    group_id    BLOB REFERENCES pupil_groups (id),
    subject_id  BLOB REFERENCES subjects (id),
    note        TEXT NOT NULL DEFAULT '',
    created_by  BLOB REFERENCES people (id),
    created_at  INTEGER NOT NULL,
    CHECK ((kind = 'supplementaire') = (slot_id IS NULL)),
    CHECK (starts IS NULL OR ends IS NULL OR starts < ends)
) STRICT;
CREATE UNIQUE INDEX timetable_changes_occurrence ON timetable_changes (slot_id, on_date) WHERE slot_id IS NOT NULL;
CREATE INDEX timetable_changes_date ON timetable_changes (on_date);
CREATE INDEX timetable_changes_new_date ON timetable_changes (new_date);

-- A roll call taken for one occurrence of a session (a slot on a date, or an extra session).
CREATE TABLE roll_calls (
    id          BLOB PRIMARY KEY,
    scope       TEXT NOT NULL,
    slot_id     BLOB REFERENCES timetable_slots (id),
    change_id   BLOB REFERENCES timetable_changes (id),
    on_date     TEXT NOT NULL,
    starts      INTEGER NOT NULL,
    ends        INTEGER NOT NULL,
    class_id    BLOB REFERENCES classes (id),
    group_id    BLOB REFERENCES pupil_groups (id),
    subject_id  BLOB REFERENCES subjects (id),
    taken_by    BLOB NOT NULL REFERENCES people (id),
    taken_at    INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    CHECK (starts < ends)
) STRICT;
CREATE UNIQUE INDEX roll_calls_slot ON roll_calls (slot_id, on_date) WHERE slot_id IS NOT NULL;
CREATE UNIQUE INDEX roll_calls_change ON roll_calls (change_id) WHERE change_id IS NOT NULL;
CREATE INDEX roll_calls_date ON roll_calls (on_date);

-- An absence or a lateness of a pupil. `minutes` is what counts: the session's duration for an
-- absence, the minutes late for a lateness (DOMAIN.md counts both in hours).
CREATE TABLE absences (
    id            BLOB PRIMARY KEY,
    scope         TEXT NOT NULL,
    roll_call_id  BLOB REFERENCES roll_calls (id),
    pupil_id      BLOB NOT NULL REFERENCES people (id),
    kind          TEXT NOT NULL CHECK (kind IN ('absence', 'retard')),
    on_date       TEXT NOT NULL,
    starts        INTEGER NOT NULL,
    minutes       INTEGER NOT NULL CHECK (minutes > 0 AND minutes <= 1440),
    status        TEXT NOT NULL DEFAULT 'non_justifiee'
                  CHECK (status IN ('non_justifiee', 'en_attente', 'acceptee', 'refusee')),
    reason        TEXT NOT NULL DEFAULT '',     -- the family's explanation
    document      TEXT,                         -- sha256 of a file in the content store
    document_name TEXT,
    justified_by  BLOB REFERENCES people (id),
    justified_at  INTEGER,
    decided_by    BLOB REFERENCES people (id),
    decided_at    INTEGER,
    decision_note TEXT NOT NULL DEFAULT '',
    recorded_by   BLOB REFERENCES people (id),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX absences_roll_call ON absences (roll_call_id, pupil_id) WHERE roll_call_id IS NOT NULL;
CREATE INDEX absences_pupil ON absences (pupil_id, on_date);
CREATE INDEX absences_date ON absences (on_date);
CREATE INDEX absences_status ON absences (status);

-- Messages to families waiting to be sent (SMS, e-mail). Local: the box sends them itself.
CREATE TABLE outbox (
    id            INTEGER PRIMARY KEY,
    created_at    INTEGER NOT NULL,
    channel       TEXT NOT NULL CHECK (channel IN ('sms', 'email')),
    person_id     BLOB NOT NULL,                -- the recipient (a parent)
    address       TEXT NOT NULL,                -- phone number or e-mail address
    body          TEXT NOT NULL,
    ref_table     TEXT,
    ref_id        BLOB,
    state         TEXT NOT NULL DEFAULT 'en_attente'
                  CHECK (state IN ('en_attente', 'envoye', 'echec', 'annule')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    sent_at       INTEGER
) STRICT;
CREATE INDEX outbox_state ON outbox (state, created_at);
CREATE INDEX outbox_ref ON outbox (ref_table, ref_id);

-- Secret, revocable iCalendar feed addresses. Local: the token's hash only.
CREATE TABLE calendar_feeds (
    token_hash  BLOB PRIMARY KEY,
    person_id   BLOB NOT NULL UNIQUE REFERENCES people (id),
    created_at  INTEGER NOT NULL,
    last_used   INTEGER
) STRICT;
