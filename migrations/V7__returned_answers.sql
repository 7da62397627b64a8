-- expand: answers the engine refuses come back to their author.
--
-- A delivery the engine will never take as it is (an expression error on the path
-- after the receive task, a value it cannot store, the waiting activity gone while
-- the process runs on) ends 'refused', and its form is pending again for its
-- author, with the answer as its draft and the reason in words. A corrected answer
-- is a second submission of the same form task, so a form task may now have several
-- submissions and deliveries, of which at most one is not refused.
--
-- Rolling upgrade: replicas of the previous release read one submission and one
-- delivery per form task; until they are gone, a form returned and answered again
-- answers them an error for that form only (nothing is written wrongly).
ALTER TABLE submissions DROP CONSTRAINT IF EXISTS submissions_form_task_id_key;
CREATE INDEX IF NOT EXISTS submissions_by_form_task ON submissions (form_task_id, created_at);

ALTER TABLE correlation_outbox DROP CONSTRAINT IF EXISTS correlation_outbox_state_check;
ALTER TABLE correlation_outbox ADD CONSTRAINT correlation_outbox_state_check
    CHECK (state IN ('pending', 'delivered', 'failed', 'undeliverable', 'refused')) NOT VALID;
-- At most one answer of a form is on its way or delivered.
CREATE UNIQUE INDEX IF NOT EXISTS correlation_outbox_one_live_per_form_task
    ON correlation_outbox (form_task_id) WHERE state <> 'refused';
-- The engine's own text of the last attempt's failure, for operators; last_error
-- says it in words for the form's author.
ALTER TABLE correlation_outbox ADD COLUMN IF NOT EXISTS engine_error text;

ALTER TABLE form_tasks ADD COLUMN IF NOT EXISTS return_reason text;
ALTER TABLE form_tasks ADD COLUMN IF NOT EXISTS returned_at timestamptz;
