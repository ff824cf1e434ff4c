-- Notifications that are not pages of an incident (a test page, a notice of a gap in a
-- schedule): the outbox's incident_number may now be NULL. SQLite cannot drop a NOT NULL
-- constraint in place, so the table is rebuilt with the same columns, rows, ids and id
-- sequence, and its indexes are made again.
DROP INDEX outbox_waiting;
DROP INDEX outbox_by_incident;
ALTER TABLE outbox RENAME TO outbox_before_notices;
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    -- NULL for a notification about no incident (kind 'test' or 'gap_notice').
    incident_number INTEGER,
    -- 'user' or 'channel'.
    recipient_kind TEXT NOT NULL,
    -- The user id or channel id from the config.
    recipient TEXT NOT NULL,
    -- The user's contact method id ('' for a channel).
    contact TEXT NOT NULL,
    -- How it is sent: email, webhook, ntfy, slack, console, ...
    method TEXT NOT NULL,
    -- What it says: 'page' for an escalation's notification, an update kind for a channel,
    -- 'test' for a test page, 'gap_notice' for a notice of a gap in a schedule.
    kind TEXT NOT NULL,
    -- What the dispatcher needs besides the incident, as JSON.
    payload TEXT NOT NULL,
    -- Sent with the message, so a receiver can tell a repeated delivery.
    idempotency_key TEXT NOT NULL UNIQUE,
    -- 'pending', 'sending', 'sent', 'failed' or 'cancelled'.
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    claimed_by TEXT,
    claim_until INTEGER,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    settled_at INTEGER
);
INSERT INTO outbox (id, incident_number, recipient_kind, recipient, contact, method, kind,
        payload, idempotency_key, state, attempts, next_attempt_at, claimed_by, claim_until,
        last_error, created_at, settled_at)
    SELECT id, incident_number, recipient_kind, recipient, contact, method, kind, payload,
        idempotency_key, state, attempts, next_attempt_at, claimed_by, claim_until, last_error,
        created_at, settled_at
    FROM outbox_before_notices;
-- Keep the id sequence where it was (ids of deleted rows are not handed out again).
DELETE FROM sqlite_sequence WHERE name = 'outbox';
UPDATE sqlite_sequence SET name = 'outbox' WHERE name = 'outbox_before_notices';
DROP TABLE outbox_before_notices;
CREATE INDEX outbox_waiting ON outbox (next_attempt_at, id) WHERE state IN ('pending', 'sending');
CREATE INDEX outbox_by_incident ON outbox (incident_number, state);
