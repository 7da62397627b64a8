-- expand: notifications are written only once a replica sends them (issue #25).
--
-- V10's trigger wrote a notification row for every `added` change, whether or not
-- any replica had mail or a webhook configured; most deployments have neither, and
-- that row (a plpgsql call, a read of the form's prior change, a heap row and four
-- index entries) was a third of the cost of storing a new form. A replica whose
-- notifier has a channel now records it here at start, before it reports serving
-- (src/store/notifications.rs, `register_channels`); the trigger writes a
-- notification only while a channel is recorded. A channel switched on later does
-- not notify forms that arrived before it, as V10 already did for forms older than a
-- day. Recorded channels stay until an operator deletes them (after removing the
-- settings from every replica); until then the rows are written and pruned unsent,
-- as before this migration.
--
-- Replicas of the previous release do not record their channels: a database whose
-- sends show a channel in use records it here, so notifications keep being written
-- through a rolling upgrade. Idempotent, so that it applies again after a rollback
-- removed its row from the migration history.
CREATE TABLE IF NOT EXISTS notification_channels (
    channel       text PRIMARY KEY CHECK (channel IN ('mail', 'webhook')),
    recorded_at   timestamptz NOT NULL DEFAULT now()
);
INSERT INTO notification_channels (channel)
    SELECT DISTINCT channel FROM notification_sends
    ON CONFLICT (channel) DO NOTHING;

CREATE OR REPLACE FUNCTION form_changes_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    prior_assignee text;
BEGIN
    IF NEW.kind <> 'added' OR NEW.assignee LIKE 'user:%' OR NEW.assignee LIKE 'group:%'
        OR NOT EXISTS (SELECT FROM notification_channels) THEN
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
