-- Notifications that are not pages of an incident (a test page, a notice of a gap in a
-- schedule): the outbox's incident_number may now be NULL.
ALTER TABLE outbox ALTER COLUMN incident_number DROP NOT NULL;
COMMENT ON COLUMN outbox.incident_number IS
    'NULL for a notification about no incident (kind test or gap_notice)';
