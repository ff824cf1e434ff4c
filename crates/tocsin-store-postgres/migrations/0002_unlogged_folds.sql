-- Folds wait on their alert for an `alert.folded` timeline entry, written at most once a minute
-- per alert and before the alert is acknowledged or resolved.
ALTER TABLE alerts ADD COLUMN unlogged_folds BIGINT NOT NULL DEFAULT 0;
-- When the alert's last `alert.folded` entry was written (microseconds since the Unix epoch);
-- NULL: never, its first_seen counts. No index on either column: every fold changes
-- unlogged_folds, and an index on it would make each of those updates rewrite the indexes.
ALTER TABLE alerts ADD COLUMN folds_logged_at BIGINT;
