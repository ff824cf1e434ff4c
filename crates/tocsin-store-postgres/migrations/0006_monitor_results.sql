-- The results of monitor checks, kept compactly (one narrow row per check, clustered by monitor
-- and time), and their rollups per hour and per day. Times are microseconds since the Unix
-- epoch; status is 0 up, 1 degraded, 2 down.
CREATE TABLE monitor_results (
    monitor_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    status BIGINT NOT NULL,
    latency_ms BIGINT NOT NULL,
    http_status BIGINT,
    error TEXT,
    PRIMARY KEY (monitor_id, at)
);
-- Retention deletes by time across monitors.
CREATE INDEX monitor_results_by_at ON monitor_results (at);

-- period: 'hour' or 'day'; start: the first microsecond of the period (UTC).
CREATE TABLE monitor_rollups (
    monitor_id TEXT NOT NULL,
    period TEXT NOT NULL,
    start BIGINT NOT NULL,
    checks BIGINT NOT NULL,
    up BIGINT NOT NULL,
    degraded BIGINT NOT NULL,
    down BIGINT NOT NULL,
    p50_ms BIGINT NOT NULL,
    p95_ms BIGINT NOT NULL,
    p99_ms BIGINT NOT NULL,
    PRIMARY KEY (monitor_id, period, start)
);
