-- Assessment (DOMAIN.md, *Marks and averages* and *The bulletin*).

-- The school's settings for averages, per school year: dated data confirmed by the proviseur or
-- censeur before go-live, never constants in code. JSON columns hold ordered lists.
CREATE TABLE assessment_settings (
    id                  BLOB PRIMARY KEY,
    scope               TEXT NOT NULL,
    school_year_id      BLOB NOT NULL UNIQUE REFERENCES school_years (id),
    class_weight        REAL NOT NULL DEFAULT 1 CHECK (class_weight >= 0 AND class_weight <= 10),
    composition_weight  REAL NOT NULL DEFAULT 1 CHECK (composition_weight >= 0 AND composition_weight <= 10),
    missing_composition TEXT NOT NULL DEFAULT 'moyenne' CHECK (missing_composition IN ('moyenne', 'zero')),
    absent_counts_zero  INTEGER NOT NULL DEFAULT 1,
    decimals            INTEGER NOT NULL DEFAULT 2 CHECK (decimals BETWEEN 0 AND 3),
    rounding            TEXT NOT NULL DEFAULT 'superieur' CHECK (rounding IN ('superieur', 'pair', 'tronque')),
    annual_weights      TEXT NOT NULL DEFAULT '[]',   -- [1, 2] = (P1 + 2·P2) / 3; [] = mean
    bands               TEXT NOT NULL,                -- [[18, "Excellent"], …]
    distinctions        TEXT NOT NULL,                -- [[12, "Tableau d'honneur"], …]
    confirmed_by        BLOB REFERENCES people (id),
    confirmed_at        INTEGER,
    updated_at          INTEGER NOT NULL,
    CHECK (class_weight + composition_weight > 0)
) STRICT;

-- An interrogation, devoir or composition given to a class or a group in one subject.
CREATE TABLE assessments (
    id             BLOB PRIMARY KEY,
    scope          TEXT NOT NULL,
    period_id      BLOB NOT NULL REFERENCES periods (id),
    class_id       BLOB REFERENCES classes (id),
    group_id       BLOB REFERENCES pupil_groups (id),
    subject_id     BLOB NOT NULL REFERENCES subjects (id),
    teacher_id     BLOB NOT NULL REFERENCES people (id),
    kind           TEXT NOT NULL CHECK (kind IN ('interrogation', 'devoir', 'composition')),
    title          TEXT NOT NULL DEFAULT '',
    on_date        TEXT NOT NULL,
    scale          REAL NOT NULL CHECK (scale > 0 AND scale <= 100),
    published_at   INTEGER,                      -- visible to pupils and parents from then
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    CHECK ((class_id IS NULL) <> (group_id IS NULL))
) STRICT;
CREATE INDEX assessments_class ON assessments (class_id, period_id);
CREATE INDEX assessments_group ON assessments (group_id, period_id);
CREATE INDEX assessments_teacher ON assessments (teacher_id, period_id);

-- One pupil's mark: a value on the assessment's scale, or absent / excused / not assessed.
CREATE TABLE marks (
    id            BLOB PRIMARY KEY,
    scope         TEXT NOT NULL,
    assessment_id BLOB NOT NULL REFERENCES assessments (id),
    pupil_id      BLOB NOT NULL REFERENCES people (id),
    value         REAL,
    status        TEXT NOT NULL CHECK (status IN ('note', 'absent', 'excuse', 'non_note')),
    updated_by    BLOB REFERENCES people (id),
    updated_at    INTEGER NOT NULL,
    UNIQUE (assessment_id, pupil_id),
    CHECK ((status = 'note') = (value IS NOT NULL)),
    CHECK (value IS NULL OR value >= 0)
) STRICT;
CREATE INDEX marks_pupil ON marks (pupil_id);

-- A mark above its assessment's scale cannot be stored, whatever the code path.
CREATE TRIGGER marks_within_scale_insert BEFORE INSERT ON marks
WHEN NEW.value > (SELECT scale FROM assessments WHERE id = NEW.assessment_id)
BEGIN SELECT RAISE(ABORT, 'mark above the scale'); END;
CREATE TRIGGER marks_within_scale_update BEFORE UPDATE OF value ON marks
WHEN NEW.value > (SELECT scale FROM assessments WHERE id = NEW.assessment_id)
BEGIN SELECT RAISE(ABORT, 'mark above the scale'); END;

-- The teacher's appreciation of a pupil in a subject for a period.
CREATE TABLE subject_appreciations (
    id          BLOB PRIMARY KEY,
    scope       TEXT NOT NULL,
    period_id   BLOB NOT NULL REFERENCES periods (id),
    pupil_id    BLOB NOT NULL REFERENCES people (id),
    subject_id  BLOB NOT NULL REFERENCES subjects (id),
    text        TEXT NOT NULL,
    written_by  BLOB NOT NULL REFERENCES people (id),
    updated_at  INTEGER NOT NULL,
    UNIQUE (period_id, pupil_id, subject_id)
) STRICT;

-- The conseil de classe's remarks on a pupil and, at year end, its decision.
CREATE TABLE council_records (
    id          BLOB PRIMARY KEY,
    scope       TEXT NOT NULL,
    period_id   BLOB NOT NULL REFERENCES periods (id),
    class_id    BLOB NOT NULL REFERENCES classes (id),
    pupil_id    BLOB NOT NULL REFERENCES people (id),
    remarks     TEXT NOT NULL DEFAULT '',
    decision    TEXT CHECK (decision IN ('admis', 'redouble', 'repeche', 'exclu')),
    updated_by  BLOB NOT NULL REFERENCES people (id),
    updated_at  INTEGER NOT NULL,
    UNIQUE (period_id, pupil_id)
) STRICT;
