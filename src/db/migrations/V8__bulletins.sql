-- Issued bulletins (DOMAIN.md, *The bulletin*): a frozen document. The PDF lives in the content
-- store under its SHA-256; the numbers printed on it are kept as JSON with their own hash. A
-- re-issue adds a version; an issued version is never changed nor deleted, only marked as
-- replaced.
CREATE TABLE bulletins (
    id             BLOB PRIMARY KEY,
    scope          TEXT NOT NULL,
    pupil_id       BLOB NOT NULL REFERENCES people (id),
    period_id      BLOB NOT NULL REFERENCES periods (id),
    class_id       BLOB NOT NULL REFERENCES classes (id),
    version        INTEGER NOT NULL CHECK (version >= 1),
    pdf_sha256     TEXT NOT NULL,
    numbers        TEXT NOT NULL,
    numbers_sha256 TEXT NOT NULL,
    issued_at      INTEGER NOT NULL,
    issued_by      BLOB REFERENCES people (id),
    replaced_at    INTEGER,
    UNIQUE (pupil_id, period_id, version)
) STRICT;
CREATE INDEX bulletins_class ON bulletins (class_id, period_id);

CREATE TRIGGER bulletins_frozen BEFORE UPDATE ON bulletins
WHEN NEW.pdf_sha256 IS NOT OLD.pdf_sha256 OR NEW.numbers IS NOT OLD.numbers
  OR NEW.numbers_sha256 IS NOT OLD.numbers_sha256 OR NEW.version IS NOT OLD.version
  OR NEW.pupil_id IS NOT OLD.pupil_id OR NEW.period_id IS NOT OLD.period_id
  OR NEW.issued_at IS NOT OLD.issued_at
BEGIN SELECT RAISE(ABORT, 'an issued bulletin is frozen'); END;
CREATE TRIGGER bulletins_kept BEFORE DELETE ON bulletins
BEGIN SELECT RAISE(ABORT, 'an issued bulletin is never deleted'); END;
