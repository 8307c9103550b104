-- Families are found from the child (absence notices, "my children" pages); the UNIQUE
-- (parent_id, child_id) index only serves the parent's side.
CREATE INDEX guardianships_child ON guardianships (child_id);
