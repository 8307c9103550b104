-- Whether pupils and their families see, before the bulletin, their provisional general
-- average and the class's average per subject (from published marks only). The direction
-- chooses; off until it does.
ALTER TABLE assessment_settings ADD COLUMN families_see_general INTEGER NOT NULL DEFAULT 0 CHECK (families_see_general IN (0, 1));
ALTER TABLE assessment_settings ADD COLUMN families_see_class INTEGER NOT NULL DEFAULT 0 CHECK (families_see_class IN (0, 1));
