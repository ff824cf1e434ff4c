-- Monitors paused through the API or the CLI (see tocsin_store::monitor_pauses): a paused
-- monitor is not checked until it is resumed. Times are microseconds since the Unix epoch.
CREATE TABLE monitor_pauses (
    monitor_id TEXT PRIMARY KEY,
    paused_at BIGINT NOT NULL,
    -- Who paused it, as the timeline names actors (e.g. `token:ops`).
    paused_by TEXT NOT NULL
);
