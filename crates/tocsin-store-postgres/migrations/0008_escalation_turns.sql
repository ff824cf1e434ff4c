-- Round-robin escalation levels: whose turn is next on each level that takes turns. A step
-- that reaches such a level pages candidate `next_turn` (counting from 0, modulo the level's
-- candidates at that moment) and adds one, in its own transaction; the row lock orders steps
-- of two replicas. Policies are declared in the config file, so their ids are text without
-- foreign keys; `level` is the level's index in its policy (0 for level 1).
CREATE TABLE escalation_turns (
    policy TEXT NOT NULL,
    level BIGINT NOT NULL,
    next_turn BIGINT NOT NULL,
    PRIMARY KEY (policy, level)
);
