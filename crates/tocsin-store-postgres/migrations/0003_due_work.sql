-- Durable due work: everything that must happen later is a row with a due time, claimed with a
-- lease so that each item is run by one claimer at a time (see tocsin_store::due). Times are
-- microseconds since the Unix epoch.
CREATE TABLE due_work (
    -- An identity never reuses an id, so a stale claim can never match a newer item.
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    -- What the handler needs, as JSON text (compared and returned exactly as written).
    payload TEXT NOT NULL,
    due_at BIGINT NOT NULL,
    -- Runs begun since the item last succeeded or was scheduled anew.
    attempts BIGINT NOT NULL DEFAULT 0,
    -- Claims ever made of the item: identifies the current claim.
    claims BIGINT NOT NULL DEFAULT 0,
    -- Schedules of the item: a schedule that changes it while it is claimed bumps this, so the
    -- claimer's settlement does not overwrite it.
    revision BIGINT NOT NULL DEFAULT 0,
    claimed_by TEXT,
    lease_until BIGINT,
    last_error TEXT,
    -- Set when the item was parked after failing too often; parked items are not claimed.
    parked_at BIGINT,
    created_at BIGINT NOT NULL,
    UNIQUE (kind, key)
);
-- What claims read: unparked items in due order.
CREATE INDEX due_work_by_due_at ON due_work (due_at, id) WHERE parked_at IS NULL;
