-- Competences (livret, B2i): frameworks → domains → competences; a teacher records a pupil's
-- level on a date (every record is kept: the latest is the pupil's level, the earlier ones are
-- their progress). Levels are DOMAIN-free: non acquis, en voie d'acquisition, acquis, dépassé.
CREATE TABLE competence_frameworks (
    id          BLOB PRIMARY KEY,
    scope       TEXT NOT NULL,
    code        TEXT NOT NULL,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    UNIQUE (scope, code)
) STRICT;

CREATE TABLE competence_domains (
    id           BLOB PRIMARY KEY,
    scope        TEXT NOT NULL,
    framework_id BLOB NOT NULL REFERENCES competence_frameworks (id),
    code         TEXT NOT NULL,
    name         TEXT NOT NULL,
    rank         INTEGER NOT NULL DEFAULT 0,
    UNIQUE (framework_id, code)
) STRICT;

CREATE TABLE competences (
    id        BLOB PRIMARY KEY,
    scope     TEXT NOT NULL,
    domain_id BLOB NOT NULL REFERENCES competence_domains (id),
    code      TEXT NOT NULL,
    name      TEXT NOT NULL,
    rank      INTEGER NOT NULL DEFAULT 0,
    UNIQUE (domain_id, code)
) STRICT;

CREATE TABLE competence_records (
    id            BLOB PRIMARY KEY,
    scope         TEXT NOT NULL,
    pupil_id      BLOB NOT NULL REFERENCES people (id),
    competence_id BLOB NOT NULL REFERENCES competences (id),
    level         TEXT NOT NULL CHECK (level IN ('non_acquis', 'en_cours', 'acquis', 'depasse')),
    on_date       TEXT NOT NULL,
    recorded_by   BLOB REFERENCES people (id),
    recorded_at   INTEGER NOT NULL,
    UNIQUE (pupil_id, competence_id, on_date)
) STRICT;
CREATE INDEX competence_records_pupil ON competence_records (pupil_id, competence_id, on_date);
