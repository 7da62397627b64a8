-- expand: notifications of forms that arrive (email and webhook), fed by the change log in the change's own transaction (issue #22).
--
-- Adds two tables, a function and a trigger. Every `added` change of the change log
-- (a form created, reassigned to someone, or returned to its author) writes one
-- notification row in the same transaction, so a notification exists exactly when
-- its change committed, whichever replica (of this release or the previous one)
-- wrote the change. The notifier (src/notify) gathers a user's notifications into
-- one send per channel (a mail, a webhook call), claims each send with a lease like
-- the correlation outbox, and marks it sent. Idempotent, so that it applies again
-- after a rollback removed its row from the migration history.
CREATE TABLE IF NOT EXISTS notifications (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    form_task_id  uuid NOT NULL,
    assignee      text NOT NULL,
    -- created: a new form; reassigned: given to this assignee; returned: the
    -- process could not use the answer, and the form is pending again.
    event         text NOT NULL CHECK (event IN ('created', 'reassigned', 'returned')),
    title         text NOT NULL,
    process_name  text,
    reason        text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- The send (notification_sends.id) of each channel that carries it.
    mail_send     uuid,
    webhook_send  uuid
);
CREATE INDEX IF NOT EXISTS notifications_unsent_mail
    ON notifications (assignee, created_at) WHERE mail_send IS NULL;
CREATE INDEX IF NOT EXISTS notifications_unsent_webhook
    ON notifications (assignee, created_at) WHERE webhook_send IS NULL;
CREATE INDEX IF NOT EXISTS notifications_by_created ON notifications (created_at);

-- One mail or one webhook call: a user's notifications gathered, claimed with a
-- lease, then marked sent. Its id is the mail's Message-ID and the webhook's
-- delivery id.
CREATE TABLE IF NOT EXISTS notification_sends (
    id                uuid PRIMARY KEY,
    channel           text NOT NULL CHECK (channel IN ('mail', 'webhook')),
    assignee          text NOT NULL,
    -- sending: to send (again, once its lease ran out); sent; skipped: every form
    -- it named was gone by then; failed: gave up.
    state             text NOT NULL CHECK (state IN ('sending', 'sent', 'skipped', 'failed')),
    attempts          integer NOT NULL DEFAULT 1,
    lease_owner       uuid,
    lease_until       timestamptz,
    lease_generation  bigint NOT NULL DEFAULT 1,
    last_error        text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    sent_at           timestamptz
);
CREATE INDEX IF NOT EXISTS notification_sends_due
    ON notification_sends (channel, lease_until) WHERE state = 'sending';
CREATE INDEX IF NOT EXISTS notification_sends_by_assignee
    ON notification_sends (channel, assignee, created_at);

CREATE OR REPLACE FUNCTION form_changes_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    prior_assignee text;
BEGIN
    IF NEW.kind <> 'added' THEN
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

DROP TRIGGER IF EXISTS form_changes_notify ON form_changes;
CREATE TRIGGER form_changes_notify AFTER INSERT ON form_changes
    FOR EACH ROW EXECUTE FUNCTION form_changes_notify();
