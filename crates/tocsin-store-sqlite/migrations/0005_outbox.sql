-- The notification outbox: each notification is a row written in the transaction that
-- decided it; a dispatcher claims it (pending -> sending, until claim_until), sends it and
-- settles it (sent, pending again for a retry at next_attempt_at, or failed). Times are
-- microseconds since the Unix epoch.
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_number INTEGER NOT NULL,
    -- 'user' or 'channel'.
    recipient_kind TEXT NOT NULL,
    -- The user id or channel id from the config.
    recipient TEXT NOT NULL,
    -- The user's contact method id ('' for a channel).
    contact TEXT NOT NULL,
    -- How it is sent: email, webhook, ntfy, slack, console, ...
    method TEXT NOT NULL,
    -- What it says: 'page' for an escalation's notification.
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
-- What claims read: rows waiting to be sent, in the order they are due.
CREATE INDEX outbox_waiting ON outbox (next_attempt_at, id) WHERE state IN ('pending', 'sending');
-- What cancelling an incident's notifications reads.
CREATE INDEX outbox_by_incident ON outbox (incident_number, state);

-- The server's keys (signed acknowledge and resolve links): one current key per purpose,
-- created on first start; rotating adds a new one, older ones stay valid until they expire.
CREATE TABLE server_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    purpose TEXT NOT NULL,
    -- Hex of 32 random bytes.
    secret TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    retired_at INTEGER
);
