-- What the bulletin prints about a pupil besides the name (DOMAIN.md, *The bulletin*): the place
-- of birth, and whether the pupil repeats the class's level this year (redoublant) or not
-- (nouveau). The status belongs to the pupil's place in a class, so it is kept per membership.
ALTER TABLE people ADD COLUMN birth_place TEXT;
ALTER TABLE class_members ADD COLUMN repeating INTEGER NOT NULL DEFAULT 0 CHECK (repeating IN (0, 1));
