-- The change log's position and content, as the PendingForms stream reads them.
-- (form_changes was empty until this release: nothing wrote it before.)
--
-- A position is (tx, seq): the writing transaction's id, then the row's number.
-- Readers take only rows whose transaction is older than every transaction still in
-- flight (pg_snapshot_xmin), in (tx, seq) order. A transaction still in flight can
-- only add rows at positions above everything already read, so no reader ever skips
-- a row that commits late. tx is the 64-bit transaction id (xid8) as a bigint.
ALTER TABLE form_changes DROP COLUMN xid;
ALTER TABLE form_changes
    ADD COLUMN tx bigint NOT NULL DEFAULT (pg_current_xact_id()::text::bigint);
-- The form's summary as of this change, so a reader replays history exactly.
ALTER TABLE form_changes ADD COLUMN summary jsonb NOT NULL DEFAULT '{}'::jsonb;

DROP INDEX form_changes_by_assignee;
CREATE INDEX form_changes_by_position ON form_changes (tx, seq);
CREATE INDEX form_changes_by_assignee ON form_changes (assignee, tx, seq);

-- Camunda Forms found for form tasks, by the deployment that holds them, so that
-- reading a form task never needs the engine.
CREATE TABLE form_schemas (
    deployment_id text NOT NULL,
    form_id       text NOT NULL,
    schema        jsonb NOT NULL,
    fetched_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (deployment_id, form_id)
);
