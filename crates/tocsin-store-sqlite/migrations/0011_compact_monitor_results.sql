-- Monitor results in a compact form: about 23 bytes per check on disk instead of about 77.
-- A monitor's id is stored once, in `monitor_keys`, and results refer to it by a small integer;
-- times are milliseconds since the Unix epoch (6 bytes, not 8); an error text is stored once
-- per monitor in `monitor_errors` and results refer to it; no index on time alone (retention
-- walks each monitor's range of the primary key instead).
CREATE TABLE monitor_keys (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

-- last_at: the newest result (ms) that refers to this text; retention deletes a text once no
-- result refers to it.
CREATE TABLE monitor_errors (
    id INTEGER PRIMARY KEY,
    monitor INTEGER NOT NULL,
    text TEXT NOT NULL,
    last_at INTEGER NOT NULL,
    UNIQUE (monitor, text)
);

-- status: 0 up, 1 degraded, 2 down; error: a monitor_errors id.
CREATE TABLE monitor_checks (
    monitor INTEGER NOT NULL,
    at INTEGER NOT NULL,
    status INTEGER NOT NULL,
    latency_ms INTEGER NOT NULL,
    http_status INTEGER,
    error INTEGER,
    PRIMARY KEY (monitor, at)
) WITHOUT ROWID;

-- period: 0 hour, 1 day; start: the first millisecond of the period (UTC).
CREATE TABLE monitor_check_rollups (
    monitor INTEGER NOT NULL,
    period INTEGER NOT NULL,
    start INTEGER NOT NULL,
    checks INTEGER NOT NULL,
    up INTEGER NOT NULL,
    degraded INTEGER NOT NULL,
    down INTEGER NOT NULL,
    p50_ms INTEGER NOT NULL,
    p95_ms INTEGER NOT NULL,
    p99_ms INTEGER NOT NULL,
    PRIMARY KEY (monitor, period, start)
) WITHOUT ROWID;

INSERT INTO monitor_keys (name)
    SELECT monitor_id FROM monitor_results UNION SELECT monitor_id FROM monitor_rollups;
INSERT INTO monitor_errors (monitor, text, last_at)
    SELECT k.id, r.error, max(r.at / 1000) FROM monitor_results r
    JOIN monitor_keys k ON k.name = r.monitor_id
    WHERE r.error IS NOT NULL GROUP BY k.id, r.error;
INSERT OR IGNORE INTO monitor_checks (monitor, at, status, latency_ms, http_status, error)
    SELECT k.id, r.at / 1000, r.status, r.latency_ms, r.http_status, e.id FROM monitor_results r
    JOIN monitor_keys k ON k.name = r.monitor_id
    LEFT JOIN monitor_errors e ON e.monitor = k.id AND e.text = r.error;
INSERT OR IGNORE INTO monitor_check_rollups
    SELECT k.id, CASE u.period WHEN 'hour' THEN 0 ELSE 1 END, u.start / 1000, u.checks, u.up,
        u.degraded, u.down, u.p50_ms, u.p95_ms, u.p99_ms
    FROM monitor_rollups u JOIN monitor_keys k ON k.name = u.monitor_id;

-- The old tables stay, empty, so that an older tocsin still opens this database.
DELETE FROM monitor_results;
DELETE FROM monitor_rollups;
DROP INDEX monitor_results_by_at;
