-- What the public status page shows beyond monitors (see tocsin_store::status): published
-- incidents and their public updates, maintenance windows, and operators' overrides of
-- component statuses. Components are declared in the config, so their ids are text without
-- foreign keys. Times are microseconds since the Unix epoch.

-- An incident is internal until its first public update publishes it.
CREATE TABLE status_incidents (
    incident_number INTEGER PRIMARY KEY REFERENCES incidents (number),
    -- Opaque: the incident's id on the status page.
    public_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    -- Statuspage's impact: none, minor, major or critical.
    impact TEXT NOT NULL,
    -- The status of the latest update: investigating, identified, monitoring or resolved.
    status TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    published_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    monitoring_at INTEGER,
    resolved_at INTEGER
);
CREATE INDEX status_incidents_by_publication ON status_incidents (published_at);

CREATE TABLE status_updates (
    -- AUTOINCREMENT: an id is never given again.
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_number INTEGER NOT NULL REFERENCES status_incidents (incident_number),
    status TEXT NOT NULL,
    message TEXT NOT NULL,
    -- JSON: [{"component": id, "status": status}, ...]
    affected TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    -- Who posted it, as the timeline names actors; never shown publicly.
    created_by TEXT NOT NULL
);
CREATE INDEX status_updates_by_incident ON status_updates (incident_number, id);

CREATE TABLE status_maintenances (
    -- AUTOINCREMENT: an id is never given again.
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    message TEXT NOT NULL,
    -- JSON: a list of component ids.
    components TEXT NOT NULL,
    starts_at INTEGER NOT NULL,
    -- As scheduled, or when it was cancelled while it ran.
    ends_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    cancelled_at INTEGER,
    CHECK (ends_at > starts_at)
);
CREATE INDEX status_maintenances_by_end ON status_maintenances (ends_at);

CREATE TABLE status_component_overrides (
    component_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    set_at INTEGER NOT NULL,
    set_by TEXT NOT NULL
);
