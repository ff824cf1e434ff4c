-- Overrides of on-call schedules, made at run time: `user_id` is on call from `starts_at`
-- (inclusive) to `ends_at` (exclusive) instead of whoever the schedule has, or, when
-- `replaces_user_id` is set, instead of that user only. Schedules and users are declared in the
-- config file, so their ids are text without foreign keys. Times are microseconds since the
-- Unix epoch.
CREATE TABLE schedule_overrides (
    -- An identity never reuses an id, so a deleted override's id is never given to another.
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    schedule_id TEXT NOT NULL,
    starts_at BIGINT NOT NULL,
    ends_at BIGINT NOT NULL,
    user_id TEXT NOT NULL,
    replaces_user_id TEXT,
    -- Who made it: `token:<name>`.
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    CHECK (ends_at > starts_at)
);
-- What "the overrides of this schedule that overlap a range" reads.
CREATE INDEX schedule_overrides_by_schedule ON schedule_overrides (schedule_id, ends_at);
