-- The results of monitor checks, kept compactly (one narrow row per check, clustered by monitor
-- and time), and their rollups per hour and per day. Times are microseconds since the Unix
-- epoch; status is 0 up, 1 degraded, 2 down.
CREATE TABLE monitor_results (
    monitor_id TEXT NOT NULL,
    at INTEGER NOT NULL,
    status INTEGER NOT NULL,
    latency_ms INTEGER NOT NULL,
    http_status INTEGER,
    error TEXT,
    PRIMARY KEY (monitor_id, at)
) WITHOUT ROWID;
-- Retention deletes by time across monitors.
CREATE INDEX monitor_results_by_at ON monitor_results (at);

-- period: 'hour' or 'day'; start: the first microsecond of the period (UTC).
CREATE TABLE monitor_rollups (
    monitor_id TEXT NOT NULL,
    period TEXT NOT NULL,
    start INTEGER NOT NULL,
    checks INTEGER NOT NULL,
    up INTEGER NOT NULL,
    degraded INTEGER NOT NULL,
    down INTEGER NOT NULL,
    p50_ms INTEGER NOT NULL,
    p95_ms INTEGER NOT NULL,
    p99_ms INTEGER NOT NULL,
    PRIMARY KEY (monitor_id, period, start)
) WITHOUT ROWID;
