-- Discipline: incidents (when, where, what, who, reported by), punishments given by staff, and
-- sanctions decided by the direction (DOMAIN.md scale). Sanctions are never deleted: a cancelled
-- one keeps its row with who cancelled it and why. Changes are audited in Rust.

CREATE TABLE incidents (
    id          BLOB PRIMARY KEY,
    scope       TEXT NOT NULL,
    on_date     TEXT NOT NULL,
    at_minutes  INTEGER CHECK (at_minutes BETWEEN 0 AND 1439),
    place       TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL CHECK (length(description) > 0),
    reported_by BLOB NOT NULL REFERENCES people (id),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX incidents_date ON incidents (on_date);
CREATE INDEX incidents_reporter ON incidents (reported_by);

CREATE TABLE incident_people (
    id          BLOB PRIMARY KEY,
    scope       TEXT NOT NULL,
    incident_id BLOB NOT NULL REFERENCES incidents (id),
    person_id   BLOB NOT NULL REFERENCES people (id),
    part        TEXT NOT NULL CHECK (part IN ('auteur', 'victime', 'temoin')),
    UNIQUE (incident_id, person_id)
) STRICT;
CREATE INDEX incident_people_person ON incident_people (person_id);

-- Punishments (punitions scolaires) given by teachers or vie scolaire.
CREATE TABLE punishments (
    id          BLOB PRIMARY KEY,
    scope       TEXT NOT NULL,
    pupil_id    BLOB NOT NULL REFERENCES people (id),
    incident_id BLOB REFERENCES incidents (id),
    kind        TEXT NOT NULL CHECK (kind IN ('observation', 'travail_supplementaire', 'retenue', 'exclusion_cours')),
    on_date     TEXT NOT NULL,             -- when it is to be done (retenue) or given
    detail      TEXT NOT NULL DEFAULT '',
    given_by    BLOB NOT NULL REFERENCES people (id),
    created_at  INTEGER NOT NULL,
    cancelled_at INTEGER,
    cancelled_by BLOB REFERENCES people (id)
) STRICT;
CREATE INDEX punishments_pupil ON punishments (pupil_id);

-- Sanctions decided by the direction (conseil de discipline).
CREATE TABLE sanctions (
    id            BLOB PRIMARY KEY,
    scope         TEXT NOT NULL,
    pupil_id      BLOB NOT NULL REFERENCES people (id),
    incident_id   BLOB REFERENCES incidents (id),
    kind          TEXT NOT NULL CHECK (kind IN ('avertissement', 'blame', 'exclusion_temporaire', 'exclusion_definitive')),
    days          INTEGER,                 -- exclusion temporaire: number of school days
    decided_on    TEXT NOT NULL,
    starts_on     TEXT,                    -- first day of an exclusion
    reason        TEXT NOT NULL CHECK (length(reason) > 0),
    decided_by    BLOB NOT NULL REFERENCES people (id),
    created_at    INTEGER NOT NULL,
    cancelled_at  INTEGER,
    cancelled_by  BLOB REFERENCES people (id),
    cancel_reason TEXT,
    CHECK ((kind = 'exclusion_temporaire') = (days IS NOT NULL)),
    CHECK (days IS NULL OR days BETWEEN 1 AND 30),
    CHECK (kind NOT IN ('exclusion_temporaire', 'exclusion_definitive') OR starts_on IS NOT NULL)
) STRICT;
CREATE INDEX sanctions_pupil ON sanctions (pupil_id, decided_on);
