-- Tocsin core schema: events, alerts, incidents, their timeline, change events, API tokens.
-- Times are microseconds since the Unix epoch (UTC). JSON is stored as text.
-- Migrations are additive (expand/contract): never edit this file; add a new one.

CREATE TABLE incidents (
    number            INTEGER PRIMARY KEY AUTOINCREMENT,
    service_id        TEXT    NOT NULL,
    dedup_key         TEXT    NOT NULL,
    title             TEXT    NOT NULL,
    severity          TEXT    NOT NULL,
    priority          TEXT    NOT NULL,
    state             TEXT    NOT NULL,
    open_alerts       INTEGER NOT NULL,
    created_at        INTEGER NOT NULL,
    impact_started_at INTEGER NOT NULL,
    acknowledged_at   INTEGER,
    resolved_at       INTEGER,
    updated_at        INTEGER NOT NULL
);
CREATE INDEX incidents_open_by_key ON incidents (service_id, dedup_key) WHERE state <> 'resolved';
CREATE INDEX incidents_by_service ON incidents (service_id, number);
CREATE INDEX incidents_by_state ON incidents (state, number);

CREATE TABLE alerts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_number INTEGER NOT NULL,
    service_id      TEXT    NOT NULL,
    dedup_key       TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    count           INTEGER NOT NULL,
    first_seen      INTEGER NOT NULL,
    last_seen       INTEGER NOT NULL,
    severity        TEXT    NOT NULL,
    summary         TEXT    NOT NULL,
    source          TEXT    NOT NULL,
    details         TEXT    NOT NULL,
    acknowledged_at INTEGER,
    resolved_at     INTEGER
);
-- At most one open alert per (service, dedup key): the fold relies on it.
CREATE UNIQUE INDEX alerts_one_open_per_key ON alerts (service_id, dedup_key) WHERE state <> 'resolved';
CREATE INDEX alerts_by_incident ON alerts (incident_number, id);
CREATE INDEX alerts_by_service ON alerts (service_id, id);

CREATE TABLE timeline_entries (
    id              INTEGER PRIMARY KEY,
    incident_number INTEGER NOT NULL,
    at              INTEGER NOT NULL,
    actor           TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    data            TEXT    NOT NULL
);
CREATE INDEX timeline_by_incident ON timeline_entries (incident_number, id);

CREATE TABLE events (
    id          INTEGER PRIMARY KEY,
    service_id  TEXT    NOT NULL,
    integration TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    dedup_key   TEXT    NOT NULL,
    severity    TEXT    NOT NULL,
    summary     TEXT    NOT NULL,
    source      TEXT    NOT NULL,
    occurred_at INTEGER,
    received_at INTEGER NOT NULL,
    alert_id    INTEGER,
    outcome     TEXT    NOT NULL,
    details     TEXT    NOT NULL
);
CREATE INDEX events_by_alert ON events (alert_id, id);

CREATE TABLE change_events (
    id          INTEGER PRIMARY KEY,
    service_id  TEXT    NOT NULL,
    summary     TEXT    NOT NULL,
    source      TEXT,
    occurred_at INTEGER,
    received_at INTEGER NOT NULL,
    details     TEXT    NOT NULL,
    links       TEXT    NOT NULL
);
CREATE INDEX change_events_by_service ON change_events (service_id, id);

CREATE TABLE api_tokens (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL,
    scope       TEXT    NOT NULL,
    secret_hash TEXT    NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
