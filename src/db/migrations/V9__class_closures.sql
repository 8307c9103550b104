-- A period closed for one class after its conseil de classe (the direction may also close the
-- whole period for every class: periods.closed_at). Closed = marks frozen, all published, changes
-- by the direction only, bulletins may be issued.
CREATE TABLE class_period_closures (
    id         BLOB PRIMARY KEY,
    scope      TEXT NOT NULL,
    class_id   BLOB NOT NULL REFERENCES classes (id),
    period_id  BLOB NOT NULL REFERENCES periods (id),
    closed_at  INTEGER NOT NULL,
    closed_by  BLOB REFERENCES people (id),
    UNIQUE (class_id, period_id)
) STRICT;
