-- When each user's contact method may get its next message: at most one message goes to a
-- contact method per bundling window, and what comes due meanwhile waits for the window's
-- end and goes as one message (a storm is bundled). A dispatcher takes the slot, in one
-- statement, before it sends. Times are microseconds since the Unix epoch.
CREATE TABLE outbox_contacts (
    -- The user id from the config.
    recipient TEXT NOT NULL,
    -- The user's contact method id.
    contact TEXT NOT NULL,
    -- The next message may go at or after this instant.
    free_at BIGINT NOT NULL,
    PRIMARY KEY (recipient, contact)
);
