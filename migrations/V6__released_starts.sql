-- expand: a record of starts that reconciliation gave up on.
--
-- When a start's outcome is unknown and the engine shows no instance for it,
-- reconciliation frees the business key. The engine call may still be on its way
-- (a replica frozen with the request unsent, a request queued in the engine), and
-- an instance that arrives afterwards would be a second process for the key. Every
-- instance ramp starts carries its process id in the variable `rampProcessId`;
-- reconciliation looks for instances carrying a released id and removes them.
CREATE TABLE IF NOT EXISTS released_starts (
    process_id uuid PRIMARY KEY,
    business_key text NOT NULL,
    released_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS released_starts_by_time ON released_starts (released_at);
