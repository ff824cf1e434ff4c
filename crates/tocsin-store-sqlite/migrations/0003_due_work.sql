-- Durable due work: everything that must happen later is a row with a due time, claimed with a
-- lease so that each item is run by one claimer at a time (see tocsin_store::due). Times are
-- microseconds since the Unix epoch.
CREATE TABLE due_work (
    -- AUTOINCREMENT: an id is never reused, so a stale claim can never match a newer item.
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    -- What the handler needs, as JSON.
    payload TEXT NOT NULL,
    due_at INTEGER NOT NULL,
    -- Runs begun since the item last succeeded or was scheduled anew.
    attempts INTEGER NOT NULL DEFAULT 0,
    -- Claims ever made of the item: identifies the current claim.
    claims INTEGER NOT NULL DEFAULT 0,
    -- Schedules of the item: a schedule that changes it while it is claimed bumps this, so the
    -- claimer's settlement does not overwrite it.
    revision INTEGER NOT NULL DEFAULT 0,
    claimed_by TEXT,
    lease_until INTEGER,
    last_error TEXT,
    -- Set when the item was parked after failing too often; parked items are not claimed.
    parked_at INTEGER,
    created_at INTEGER NOT NULL,
    UNIQUE (kind, key)
);
-- What claims read: unparked items in due order.
CREATE INDEX due_work_by_due_at ON due_work (due_at, id) WHERE parked_at IS NULL;
