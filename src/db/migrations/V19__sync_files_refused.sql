-- Why the hub kept no more of the school's stored files during a run (its quota), in the
-- hub's words, for the technician's Synchronisation page. NULL when it took them. Stays on
-- the box, as does the rest of sync_runs.
ALTER TABLE sync_runs ADD COLUMN files_refused TEXT;
