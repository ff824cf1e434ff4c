-- Heartbeat monitors: where each stands, and the pings it received (see tocsin_store::heartbeat).
-- Times are microseconds since the Unix epoch.
CREATE TABLE heartbeat_states (
    monitor_id TEXT PRIMARY KEY,
    -- new | up | late | failed
    status TEXT NOT NULL,
    since BIGINT NOT NULL,
    -- When the monitor becomes late without a success; NULL while it is down.
    deadline BIGINT,
    last_ping_kind TEXT,
    last_ping_at BIGINT,
    last_ping_exit_code BIGINT,
    last_ping_body TEXT,
    last_success_at BIGINT,
    started_at BIGINT,
    started_rid TEXT,
    starts_without_success BIGINT NOT NULL DEFAULT 0,
    crash_looping BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE heartbeat_pings (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    monitor_id TEXT NOT NULL,
    -- success | start | fail | log
    kind TEXT NOT NULL,
    at BIGINT NOT NULL,
    rid TEXT,
    exit_code BIGINT,
    -- How long the run took, when the ping ended a run whose start was seen.
    duration_ms BIGINT,
    -- The first Ping-Body-Limit bytes of the request body.
    body TEXT NOT NULL,
    remote TEXT,
    method TEXT NOT NULL
);
-- A monitor's pings, newest first.
CREATE INDEX heartbeat_pings_by_monitor ON heartbeat_pings (monitor_id, id);
