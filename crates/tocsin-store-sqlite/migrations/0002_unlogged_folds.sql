-- Folds wait on their alert for an `alert.folded` timeline entry, written at most once a minute
-- per alert and before the alert is acknowledged or resolved.
ALTER TABLE alerts ADD COLUMN unlogged_folds INTEGER NOT NULL DEFAULT 0;
-- When the alert's last `alert.folded` entry was written; NULL: never (its first_seen counts).
ALTER TABLE alerts ADD COLUMN folds_logged_at INTEGER;
