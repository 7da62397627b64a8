-- expand: the engine's own user tasks as form tasks of kind 'user_task' (issue #23).
--
-- A user task is learned from the engine (src/usertasks) and stored as a form task:
-- `external_task_id` holds the engine's id of the task the form answers (the user
-- task's id; the engine draws user task and external task ids from one sequence),
-- `assignee` the engine's assignee ('' while nobody has claimed it), `message_name`
-- ''. Its change log rows are written once per audience key: 'user:<engine user id>'
-- for the assignee and each candidate user, 'group:<group id>' for each candidate
-- group (keys with ':' never collide with an email, the key of send-task forms).
-- A stream reads the keys of its caller's token. Code of the previous release never
-- sees a user task unless the engine's user ids are emails; then it lists an assigned
-- one as a form of its assignee and cannot deliver its answer (it has no message):
-- turn RAMP_USER_TASKS on once every replica runs this release.
ALTER TABLE form_tasks ADD COLUMN IF NOT EXISTS kind text NOT NULL DEFAULT 'send_task'
    CHECK (kind IN ('send_task', 'user_task'));
ALTER TABLE form_tasks ADD COLUMN IF NOT EXISTS candidate_users text[] NOT NULL DEFAULT '{}';
ALTER TABLE form_tasks ADD COLUMN IF NOT EXISTS candidate_groups text[] NOT NULL DEFAULT '{}';
ALTER TABLE form_tasks ADD COLUMN IF NOT EXISTS due_at timestamptz;
ALTER TABLE form_tasks ADD COLUMN IF NOT EXISTS follow_up_at timestamptz;
ALTER TABLE form_tasks ADD COLUMN IF NOT EXISTS priority integer;
-- The engine's lastUpdated (or created) of the task as last stored, so that an
-- older read of the engine never overwrites a newer one.
ALTER TABLE form_tasks ADD COLUMN IF NOT EXISTS engine_updated_at timestamptz;
-- A user task's Camunda Form as the engine resolved it (GET /task/{id}/deployed-form:
-- formRef with its binding, or a deployed form key), when it has one.
ALTER TABLE form_tasks ADD COLUMN IF NOT EXISTS form_schema jsonb;

-- Unassigned user tasks by candidate, for the snapshot of a stream and the inbox.
CREATE INDEX IF NOT EXISTS form_tasks_unclaimed_by_candidate_group
    ON form_tasks USING gin (candidate_groups)
    WHERE kind = 'user_task' AND status = 'pending' AND assignee = '';
CREATE INDEX IF NOT EXISTS form_tasks_unclaimed_by_candidate_user
    ON form_tasks USING gin (candidate_users)
    WHERE kind = 'user_task' AND status = 'pending' AND assignee = '';

-- The answer to a user task completes this engine task instead of correlating
-- message_name (which is '' then).
ALTER TABLE correlation_outbox ADD COLUMN IF NOT EXISTS engine_task_id text;

-- One replica at a time reads the engine's task changes: whoever holds the lease.
CREATE TABLE IF NOT EXISTS user_task_watch (
    id               boolean PRIMARY KEY DEFAULT true CHECK (id),
    lease_owner      uuid,
    lease_until      timestamptz,
    -- Bumped on every take-over, so a holder whose lease ran out cannot move the
    -- watermark after the new holder did.
    lease_generation bigint NOT NULL DEFAULT 0,
    -- Engine time (never ramp's clock): every task change the engine stamped at or
    -- before it has been read. Each read goes back RAMP_USER_TASK_OVERLAP_MS below it.
    watermark        timestamptz,
    -- When the last full read of the engine's open tasks ended (ramp's database clock).
    synced_at        timestamptz
);
INSERT INTO user_task_watch (id) VALUES (true) ON CONFLICT (id) DO NOTHING;

-- The audience keys of user tasks get no notification rows: mail and webhooks go to
-- an email, which a user task's audience does not name.
CREATE OR REPLACE FUNCTION form_changes_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    prior_assignee text;
BEGIN
    IF NEW.kind <> 'added' OR NEW.assignee LIKE 'user:%' OR NEW.assignee LIKE 'group:%' THEN
        RETURN NULL;
    END IF;
    SELECT c.assignee INTO prior_assignee FROM form_changes c
        WHERE c.form_task_id = NEW.form_task_id AND c.seq <> NEW.seq
        ORDER BY c.tx DESC, c.seq DESC LIMIT 1;
    INSERT INTO notifications (form_task_id, assignee, event, title, process_name, reason)
    VALUES (
        NEW.form_task_id,
        NEW.assignee,
        CASE
            WHEN prior_assignee IS NULL THEN 'created'
            WHEN prior_assignee = NEW.assignee AND NEW.summary->>'return_reason' IS NOT NULL THEN 'returned'
            ELSE 'reassigned'
        END,
        coalesce(nullif(NEW.summary->>'title', ''), NEW.summary->>'form_name', 'a form'),
        nullif(NEW.summary->>'process_name', ''),
        CASE WHEN prior_assignee = NEW.assignee THEN NEW.summary->>'return_reason' END
    );
    RETURN NULL;
END
$$;
