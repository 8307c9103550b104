-- A pupil's own tick on a piece of homework (« fait »): local to the box, never synced; an
-- entry deleted later leaves a row no page reads.
CREATE TABLE homework_done (
    pupil_id  BLOB NOT NULL,
    entry_id  BLOB NOT NULL,
    done_at   INTEGER NOT NULL,
    PRIMARY KEY (pupil_id, entry_id)
) STRICT, WITHOUT ROWID;
