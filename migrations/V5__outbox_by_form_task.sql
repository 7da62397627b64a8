-- expand: an index for reading a form task's delivery.
--
-- Every read of a form task (GetFormTask, ListFormTasks, stream snapshots) carries
-- its delivery state, a lookup of correlation_outbox by form_task_id; without this
-- index each lookup scanned the whole outbox (found by the ListFormTasks benchmark:
-- a page of 50 cost 50 scans). On a large outbox, build it by hand first with
-- CREATE INDEX CONCURRENTLY IF NOT EXISTS (see README.md).
CREATE INDEX IF NOT EXISTS correlation_outbox_by_form_task ON correlation_outbox (form_task_id);
