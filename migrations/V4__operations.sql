-- expand: retention and admin actions (issue #13). Adds only; old replicas ignore
-- both objects. Idempotent (IF NOT EXISTS), so that it applies again cleanly after
-- a rollback that removed its row from the migration history.
--
-- Where pruning of the change log stands: every row at or below this position may
-- be gone, every row above it is still there. A stream cursor below it cannot be
-- resumed (its client gets a fresh snapshot). One row; only ever moves forward.
CREATE TABLE IF NOT EXISTS change_log_pruned (
    id  boolean PRIMARY KEY DEFAULT true CHECK (id),
    tx  bigint NOT NULL,
    seq bigint NOT NULL
);

-- Deliveries that need an operator (AdminService.ListDeliveries, the outbox gauges).
-- A plain CREATE INDEX blocks writes to the outbox while it builds: on a large
-- outbox, build it by hand first with CREATE INDEX CONCURRENTLY under this name
-- (see migrations/README.md); IF NOT EXISTS then leaves it alone.
CREATE INDEX IF NOT EXISTS correlation_outbox_attention
    ON correlation_outbox (created_at, id) WHERE state IN ('failed', 'undeliverable');
