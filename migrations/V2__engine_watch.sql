-- expand: where reconciliation stands in the engine's history.
--
-- One row per watch (e.g. 'ended-processes'): the engine's own time up to which its
-- history has been read. Replicas share it and only ever move it forward
-- (GREATEST), re-reading an overlap behind it against clock skew.
CREATE TABLE engine_watch (
    name       text PRIMARY KEY,
    watermark  timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
