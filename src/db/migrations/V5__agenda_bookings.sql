-- The school calendar (events, holidays, exams, conseils de classe) with an audience, and the
-- booking of rooms and equipment (by time range, recurring, with optional approval).

CREATE TABLE agenda_events (
    id          BLOB PRIMARY KEY,
    scope       TEXT NOT NULL,
    title       TEXT NOT NULL CHECK (length(title) > 0),
    kind        TEXT NOT NULL CHECK (kind IN ('evenement', 'vacances', 'ferie', 'examen', 'conseil', 'reunion')),
    starts_on   TEXT NOT NULL,
    ends_on     TEXT NOT NULL,
    starts_at   INTEGER CHECK (starts_at BETWEEN 0 AND 1439),   -- NULL: all day
    ends_at     INTEGER CHECK (ends_at BETWEEN 1 AND 1440),
    audience    TEXT NOT NULL CHECK (audience IN ('tous', 'personnel', 'classe')),
    class_id    BLOB REFERENCES classes (id),
    place       TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    created_by  BLOB REFERENCES people (id),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    CHECK (starts_on <= ends_on),
    CHECK ((starts_at IS NULL) = (ends_at IS NULL)),
    CHECK (starts_at IS NULL OR starts_on < ends_on OR starts_at < ends_at),
    CHECK ((audience = 'classe') = (class_id IS NOT NULL))
) STRICT;
CREATE INDEX agenda_events_dates ON agenda_events (starts_on, ends_on);

-- Rooms and equipment may need the direction's approval to be booked.
ALTER TABLE rooms ADD COLUMN needs_approval INTEGER NOT NULL DEFAULT 0;
ALTER TABLE equipment ADD COLUMN needs_approval INTEGER NOT NULL DEFAULT 0;

CREATE TABLE bookings (
    id           BLOB PRIMARY KEY,
    scope        TEXT NOT NULL,
    room_id      BLOB REFERENCES rooms (id),
    equipment_id BLOB REFERENCES equipment (id),
    on_date      TEXT NOT NULL,
    starts       INTEGER NOT NULL CHECK (starts BETWEEN 0 AND 1439),
    ends         INTEGER NOT NULL CHECK (ends BETWEEN 1 AND 1440),
    purpose      TEXT NOT NULL DEFAULT '',
    booked_by    BLOB NOT NULL REFERENCES people (id),
    series_id    BLOB,                       -- the bookings made together as a weekly series
    status       TEXT NOT NULL CHECK (status IN ('demandee', 'confirmee', 'refusee', 'annulee')),
    decided_by   BLOB REFERENCES people (id),
    decided_at   INTEGER,
    created_at   INTEGER NOT NULL,
    CHECK (starts < ends),
    CHECK ((room_id IS NULL) <> (equipment_id IS NULL))
) STRICT;
CREATE INDEX bookings_room ON bookings (room_id, on_date);
CREATE INDEX bookings_equipment ON bookings (equipment_id, on_date);
CREATE INDEX bookings_by ON bookings (booked_by, on_date);
