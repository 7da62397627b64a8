//! Retention: the change log, delivered outbox rows and submitted answers (personal
//! data) are kept for their configured periods and then deleted, in the background
//! on every replica, in small batches (see `store::retention`).

use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::store::retention as rows;
use crate::store::{Store, StoreError};

#[derive(Clone, Debug)]
pub struct RetentionSettings {
    /// How long changes stay in the log (and stream cursors stay resumable).
    pub change_log: Duration,
    /// How long delivered outbox rows stay.
    pub delivered: Duration,
    /// How long submitted answers stay once their delivery is over.
    pub submissions: Duration,
    /// Time between passes.
    pub interval: Duration,
    /// Rows per statement.
    pub batch: i64,
}

/// Rows deleted by one pass, per table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub changes: u64,
    pub delivered: u64,
    pub submissions: u64,
}

impl Pruned {
    pub fn total(&self) -> u64 {
        self.changes + self.delivered + self.submissions
    }
}

/// A pass deletes at most this many batches per table, so that one pass stays
/// short; what is left goes in the next.
const MAX_BATCHES: usize = 100;

#[derive(Clone)]
pub struct Pruner {
    store: Store,
    settings: RetentionSettings,
    metrics: Option<Metrics>,
}

impl Pruner {
    pub fn new(store: Store, settings: RetentionSettings) -> Self {
        Self {
            store,
            settings,
            metrics: None,
        }
    }

    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.settings.interval) => {}
            }
            match self.pass().await {
                Ok(pruned) if pruned.total() > 0 => {
                    tracing::info!(
                        changes = pruned.changes,
                        delivered = pruned.delivered,
                        submissions = pruned.submissions,
                        "retention pruned old rows"
                    )
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "retention pass failed"),
            }
        }
    }

    /// One pass over every table: batches until a batch comes back short.
    pub async fn pass(&self) -> Result<Pruned, StoreError> {
        let batch = self.settings.batch;
        let now = Utc::now();
        let age = |d: Duration| {
            chrono::Duration::from_std(d)
                .ok()
                .and_then(|d| now.checked_sub_signed(d))
                .unwrap_or(chrono::DateTime::<Utc>::MIN_UTC)
        };
        let before = age(self.settings.change_log);
        let changes = self
            .in_batches("form_changes", || async {
                let mut client = self.store.client().await?;
                rows::prune_change_log(&mut client, before, batch).await
            })
            .await?;
        let before = age(self.settings.delivered);
        let delivered = self
            .in_batches("correlation_outbox", || async {
                rows::prune_delivered(&self.store.client().await?, before, batch).await
            })
            .await?;
        let before = age(self.settings.submissions);
        let submissions = self
            .in_batches("submissions", || async {
                rows::prune_submissions(&self.store.client().await?, before, batch).await
            })
            .await?;
        Ok(Pruned {
            changes,
            delivered,
            submissions,
        })
    }

    /// Runs `prune` (one batch of `table`'s) until a batch deletes fewer rows than
    /// the batch size, or [`MAX_BATCHES`] ran; returns the rows deleted.
    async fn in_batches<F: Future<Output = Result<u64, StoreError>>>(
        &self,
        table: &'static str,
        prune: impl Fn() -> F,
    ) -> Result<u64, StoreError> {
        let mut total = 0;
        for _ in 0..MAX_BATCHES {
            let n = prune().await?;
            self.count(table, n);
            total += n;
            if n < self.settings.batch as u64 {
                break;
            }
        }
        Ok(total)
    }

    fn count(&self, table: &'static str, rows: u64) {
        if let Some(metrics) = &self.metrics
            && rows > 0
        {
            metrics.pruned(table, rows);
        }
    }
}
