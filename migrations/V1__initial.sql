-- expand: the first schema.
--
-- Processes that ramp started. The business-key rule ("at most one active root
-- process per business key") is the partial unique index below, so that two starts
-- racing on any replicas cannot both reserve the key: the second insert fails.
CREATE TABLE processes (
    id                  uuid PRIMARY KEY,
    definition_key      text NOT NULL,
    business_key        text NOT NULL,
    -- starting: reserved, the engine's answer not known yet; active: running;
    -- completed, cancelled, terminated: ended; failed: never started.
    state               text NOT NULL CHECK (state IN
                            ('starting', 'active', 'completed', 'cancelled', 'terminated', 'failed')),
    engine_instance_id  text UNIQUE,
    started_by          text NOT NULL,
    -- The client's idempotency key; a retried start returns the first result.
    request_id          text,
    variables           jsonb NOT NULL DEFAULT '{}'::jsonb,
    end_reason          text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    ended_at            timestamptz
);

CREATE UNIQUE INDEX processes_one_active_per_business_key
    ON processes (business_key) WHERE state IN ('starting', 'active');
CREATE UNIQUE INDEX processes_request_id
    ON processes (started_by, request_id) WHERE request_id IS NOT NULL;
CREATE INDEX processes_by_business_key ON processes (business_key, created_at DESC, id DESC);
CREATE INDEX processes_by_created ON processes (created_at DESC, id DESC);
CREATE INDEX processes_starting ON processes (updated_at) WHERE state = 'starting';

-- Form tasks created by workers for send tasks, one per external task.
CREATE TABLE form_tasks (
    id                       uuid PRIMARY KEY,
    external_task_id         text NOT NULL UNIQUE,
    business_key             text NOT NULL,
    form_name                text NOT NULL,
    message_name             text NOT NULL,
    assignee                 text NOT NULL,
    status                   text NOT NULL CHECK (status IN ('pending', 'completed', 'withdrawn')),
    process_instance_id      text NOT NULL,
    root_process_instance_id text NOT NULL,
    process_definition_id    text,
    process_definition_key   text,
    tenant_id                text,
    topic_name               text,
    activity_id              text NOT NULL,
    activity_instance_id     text,
    execution_id             text,
    -- The deployment whose Camunda Form is rendered, when one was found.
    deployment_id            text,
    prefill                  jsonb NOT NULL DEFAULT '{}'::jsonb,
    draft                    jsonb,
    withdrawal_reason        text,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    completed_at             timestamptz
);

-- The inbox query: a user's pending forms in a stable order.
CREATE INDEX form_tasks_by_assignee ON form_tasks (assignee, status, created_at, id);
CREATE INDEX form_tasks_by_business_key ON form_tasks (business_key, created_at, id);
CREATE INDEX form_tasks_by_root ON form_tasks (root_process_instance_id, created_at, id);
CREATE INDEX form_tasks_pending_by_instance ON form_tasks (process_instance_id) WHERE status = 'pending';

-- Answers to forms; one per form task.
CREATE TABLE submissions (
    id            uuid PRIMARY KEY,
    form_task_id  uuid NOT NULL UNIQUE REFERENCES form_tasks (id),
    submitted_by  text NOT NULL,
    request_id    text,
    data          jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX submissions_request_id
    ON submissions (submitted_by, request_id) WHERE request_id IS NOT NULL;

-- Every change to a form task, in order: the PendingForms cursor is a position here.
-- Sequence numbers are handed out at insert but become visible at commit, out of
-- order; readers use `xid` (the writing transaction) against pg_snapshot_xmin to read
-- only below the oldest transaction still in flight, so no row is skipped.
CREATE TABLE form_changes (
    seq           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    xid           xid8 NOT NULL DEFAULT pg_current_xact_id(),
    form_task_id  uuid NOT NULL,
    assignee      text NOT NULL,
    -- added, updated, removed
    kind          text NOT NULL CHECK (kind IN ('added', 'updated', 'removed')),
    -- for removed: completed, withdrawn, reassigned
    reason        text,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX form_changes_by_assignee ON form_changes (assignee, seq);

-- Messages to deliver to waiting receive tasks (the transactional outbox). Written
-- in the submission's transaction; claimed by dispatchers with a lease.
CREATE TABLE correlation_outbox (
    id                   uuid PRIMARY KEY,
    submission_id        uuid NOT NULL UNIQUE REFERENCES submissions (id),
    form_task_id         uuid NOT NULL REFERENCES form_tasks (id),
    message_name         text NOT NULL,
    process_instance_id  text NOT NULL,
    activity_instance_id text,
    variables            jsonb NOT NULL,
    -- pending: to deliver; delivered; failed: needs an operator; undeliverable:
    -- nothing can take it any more.
    state                text NOT NULL CHECK (state IN ('pending', 'delivered', 'failed', 'undeliverable')),
    attempts             integer NOT NULL DEFAULT 0,
    -- Whether the last attempt's outcome is unknown (timeout, crash): check the
    -- marker variable before trying again.
    uncertain            boolean NOT NULL DEFAULT false,
    next_attempt_at      timestamptz NOT NULL DEFAULT now(),
    lease_owner          uuid,
    lease_until          timestamptz,
    -- Bumped on every claim, so a replica whose lease ran out cannot record an
    -- outcome over the newer owner's.
    lease_generation     bigint NOT NULL DEFAULT 0,
    last_error           text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    delivered_at         timestamptz
);

CREATE INDEX correlation_outbox_due ON correlation_outbox (next_attempt_at) WHERE state = 'pending';
