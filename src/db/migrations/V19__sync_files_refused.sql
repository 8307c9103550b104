-- Why the hub kept no more of the school's stored files during a run (its quota), in the
-- hub's words, for the technician's Synchronisation page. NULL when it took them. Stays on
-- the box, as does the rest of sync_runs.
ALTER TABLE sync_runs ADD COLUMN files_refused TEXT;
-- 1 when the run found that another box writes under this box's identity (a copied disk):
-- its own changes moved to a new incarnation, and the page says what to do.
ALTER TABLE sync_runs ADD COLUMN clone_seen INTEGER NOT NULL DEFAULT 0;
