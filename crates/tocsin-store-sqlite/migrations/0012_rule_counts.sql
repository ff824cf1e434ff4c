-- Counts of the events each stream rule matched (see tocsin_store::rule_counts), shared by
-- every process on the database, so a rule counts the same after a restart and across
-- replicas. A rule is named by its id and a fingerprint of its definition: a changed rule
-- starts counting afresh. Times are microseconds since the Unix epoch.
CREATE TABLE rule_counts (
    rule TEXT NOT NULL,
    -- 0: a sixtieth of the rule's window; 1: a whole window (for the baseline).
    scale INTEGER NOT NULL,
    -- The slot's start, in slot widths since the epoch.
    slot INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (rule, scale, slot)
) WITHOUT ROWID;

-- Since when each rule is watched, when it last matched an event, and what its alert last
-- reported (NULL before its first evaluation; 0 resolved; 1 firing).
CREATE TABLE rule_watch (
    rule TEXT PRIMARY KEY,
    watched_since INTEGER NOT NULL,
    last_seen INTEGER,
    reported INTEGER
);
