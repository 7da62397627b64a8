-- expand: one form's changes in the order its row changed, and the cluster the change log's positions belong to (issue #19).
--
-- Adds an index, a trigger and a table; replicas of the previous release write the
-- change log as before and the trigger orders their rows too. Idempotent, so that
-- it applies again after a rollback removed its row from the migration history.
--
-- 1. Order per form. A change's position is (tx, seq), tx being the writing
--    transaction's id. Ids are handed out when a transaction first writes, not when
--    it commits: a withdrawal that took its id early (it was waiting for another
--    row's lock) and reached a form after a reassignment of that form had committed
--    would sort its `removed` before the reassignment's `added`, and the form would
--    reappear in the inbox. Every writer changes the form's row before it writes the
--    change, and holds that row until it commits; so the changes the form already
--    has are all committed when the trigger reads them, and a change takes the
--    greatest of its own transaction id and theirs. Readers still never skip a row:
--    a transaction's rows sort at or above its own id, which stays above what
--    readers take (below the oldest transaction in flight) until it commits.
CREATE INDEX IF NOT EXISTS form_changes_by_form ON form_changes (form_task_id, tx);

CREATE OR REPLACE FUNCTION form_changes_after_prior() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- A fresh snapshot (a volatile function's statement, under READ COMMITTED):
    -- it sees what committed while this transaction waited for the form's row.
    NEW.tx := greatest(NEW.tx,
        (SELECT max(c.tx) FROM form_changes c WHERE c.form_task_id = NEW.form_task_id));
    RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS form_changes_after_prior ON form_changes;
CREATE TRIGGER form_changes_after_prior BEFORE INSERT ON form_changes
    FOR EACH ROW EXECUTE FUNCTION form_changes_after_prior();

-- 2. The cluster. Positions are this cluster's transaction ids. A copy of the
--    database in another cluster (pg_dump and restore, logical replication, an
--    upgrade by replication) hands out its own, usually far lower, ids: new changes
--    would sort below the old ones. ramp records the cluster's system identifier
--    here and, when the log holds positions this cluster has not reached, moves the
--    old positions below every new one at start (src/store/forms.rs,
--    `adopt_cluster`); cursors of the old positions then resume with a snapshot.
CREATE TABLE IF NOT EXISTS change_log_cluster (
    id                boolean PRIMARY KEY DEFAULT true CHECK (id),
    system_identifier bigint NOT NULL,
    recorded_at       timestamptz NOT NULL DEFAULT now()
);
