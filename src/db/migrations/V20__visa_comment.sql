-- The direction's optional comment with its visa on the lesson log (« vu, à compléter »).
ALTER TABLE lesson_entries ADD COLUMN visa_comment TEXT NOT NULL DEFAULT '' CHECK (length(visa_comment) <= 600);
