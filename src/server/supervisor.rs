//! The background tasks of `ramp serve`, in one place: what starts them and in which
//! order, what watches them, and what stops them.
//!
//! The operator's listener (when it has its own) starts at once. The rest needs the
//! schema: the supervisor migrates it (retrying until the database answers),
//! records the notifier's channels (so the forms that arrive once this replica
//! serves are notified), starts the change hub from the log's end (the hub runs its
//! own loops), then the notifier, the reconciler, the dispatcher, the pruner, the
//! user task poller (when on) and the health checks. Every task gets the server's shutdown token and ends soon after it
//! fires; a task that ends before that (or panics) is reported as an error, since
//! the server then lacks it.

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::health::{self, Checks};
use crate::delivery::Dispatcher;
use crate::forms::ChangeHub;
use crate::notify::Notifier;
use crate::ops::Ops;
use crate::processes::Reconciler;
use crate::retention::Pruner;
use crate::store::Store;
use crate::usertasks::UserTaskPoller;

/// The server's background work, not yet started.
pub struct Background {
    /// The operator's endpoints on their own listener, when configured.
    pub ops_listener: Option<(Ops, TcpListener)>,
    pub store: Store,
    pub hub: ChangeHub,
    pub notifier: Notifier,
    pub reconciler: Reconciler,
    pub dispatcher: Dispatcher,
    pub pruner: Pruner,
    /// Reads the engine's user tasks; none when `RAMP_USER_TASKS` is off.
    pub user_tasks: Option<UserTaskPoller>,
    pub checks: Checks,
}

impl Background {
    /// Starts everything in order and watches it until shutdown.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut tasks = Supervisor::new(shutdown.clone());
        if let Some((ops, listener)) = self.ops_listener {
            tasks.spawn("metrics listener", ops.serve(listener, shutdown.clone()));
        }
        if prepare(&self.store, &self.hub, &self.notifier, &shutdown).await {
            tasks.spawn("notifier", self.notifier.run(shutdown.clone()));
            tasks.spawn("reconciler", self.reconciler.run(shutdown.clone()));
            tasks.spawn("dispatcher", self.dispatcher.run(shutdown.clone()));
            tasks.spawn("pruner", self.pruner.run(shutdown.clone()));
            if let Some(poller) = self.user_tasks {
                tasks.spawn("user task poller", poller.run(shutdown.clone()));
            }
            tasks.spawn("health checks", health::watch(self.checks, shutdown));
        }
        tasks.watch().await;
    }
}

/// Migrates the schema, records the notifier's channels and starts the change hub,
/// retrying with a growing pause until all succeed; false when shutdown came first.
async fn prepare(
    store: &Store,
    hub: &ChangeHub,
    notifier: &Notifier,
    shutdown: &CancellationToken,
) -> bool {
    let mut backoff = Duration::from_millis(200);
    loop {
        // The change hub starts from the log's end once the schema is there.
        let ready = async {
            store.migrate().await?;
            notifier.register_channels().await?;
            hub.start(shutdown.clone()).await
        }
        .await;
        match ready {
            Ok(()) => return true,
            Err(error) => {
                tracing::warn!(error = %error, retry_in_ms = backoff.as_millis() as u64, "database not ready");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Named tasks that run until shutdown.
struct Supervisor {
    shutdown: CancellationToken,
    tasks: JoinSet<&'static str>,
}

impl Supervisor {
    fn new(shutdown: CancellationToken) -> Self {
        Self {
            shutdown,
            tasks: JoinSet::new(),
        }
    }

    /// Starts `task` under `name`.
    fn spawn(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.spawn(async move {
            task.await;
            name
        });
    }

    /// Waits until every task has ended, reporting those that end before shutdown.
    async fn watch(mut self) {
        while let Some(ended) = self.tasks.join_next().await {
            let stopping = self.shutdown.is_cancelled();
            match ended {
                Ok(_) if stopping => {}
                Ok(task) => tracing::error!(task, "a background task ended before shutdown"),
                Err(error) if error.is_panic() => {
                    tracing::error!(%error, "a background task panicked");
                }
                Err(_) => {}
            }
        }
        tracing::debug!("background tasks stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_supervisor_waits_for_its_tasks_to_end_after_shutdown() {
        let shutdown = CancellationToken::new();
        let mut tasks = Supervisor::new(shutdown.clone());
        let (done, mut ended) = tokio::sync::mpsc::channel::<()>(2);
        for _ in 0..2 {
            let (token, done) = (shutdown.clone(), done.clone());
            tasks.spawn("waits", async move {
                token.cancelled().await;
                let _ = done.send(()).await;
            });
        }
        drop(done);
        let watching = tokio::spawn(tasks.watch());
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), watching)
            .await
            .expect("the watch ends after shutdown")
            .unwrap();
        assert!(ended.recv().await.is_some() && ended.recv().await.is_some());
    }
}
