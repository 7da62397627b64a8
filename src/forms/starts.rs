//! Streams starting in the same moment share one read of the database
//! (`store::starts`): a replica restarting under a quarter of a million streams has
//! them all back in seconds, not minutes, where a transaction of its own per stream
//! would keep the database busy with little else.
//!
//! Batching comes from the load itself, with no waiting: a start asked for while
//! the database is idle runs at once, alone; starts asked for while
//! [`READS_IN_FLIGHT`] reads run wait for the next one, and it takes them all (up to
//! [`MAX_BATCH`]).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::{Change, FormError, FormSummary};
use crate::store::Store;
use crate::store::forms::{Position, Viewer};
use crate::store::starts::{self, StartRequest, Started};

/// Reads of starts that may run at once (each holds a pooled connection).
const READS_IN_FLIGHT: usize = 4;
/// The most starts one read serves.
const MAX_BATCH: usize = 256;

/// How a stream begins.
#[derive(Debug)]
pub enum Start {
    /// Its viewer's pending forms, and the log position they stand at.
    Snapshot(Vec<FormSummary>, Position),
    /// Resumed from its cursor: the first changes after it, in log order, at most
    /// `limit` (more may follow).
    Resumed(Vec<Change>),
}

/// The queue of streams waiting to start, shared by all of a server's streams.
#[derive(Clone)]
pub struct Starts {
    inner: Arc<Inner>,
}

struct Inner {
    reader: Arc<Reader>,
    /// Its server is started on first use, inside the runtime, and ends when the
    /// last `Starts` is dropped.
    queue: OnceLock<mpsc::UnboundedSender<Waiting>>,
}

struct Reader {
    store: Store,
    /// How long the change log is kept: older cursors get a snapshot.
    retention: Duration,
    /// Changes read per resumed stream.
    limit: i64,
}

struct Waiting {
    viewer: Viewer,
    cursor: Option<Position>,
    answer: oneshot::Sender<Result<Started, FormError>>,
}

impl Starts {
    pub fn new(store: Store, retention: Duration, limit: i64) -> Self {
        Self {
            inner: Arc::new(Inner {
                reader: Arc::new(Reader {
                    store,
                    retention,
                    limit,
                }),
                queue: OnceLock::new(),
            }),
        }
    }

    /// How the stream of `viewer` begins: resumed from `cursor` when the log still
    /// holds what follows it, else with a snapshot (waiting, as long as it takes, for
    /// a transaction still in flight below it to end).
    pub async fn start(
        &self,
        viewer: &Viewer,
        cursor: Option<Position>,
    ) -> Result<Start, FormError> {
        let mut wait = Duration::from_millis(5);
        let mut cursor = cursor;
        loop {
            match self.read(viewer, cursor).await? {
                Started::Snapshot(forms, position) => return Ok(Start::Snapshot(forms, position)),
                Started::Resumed(changes) => return Ok(Start::Resumed(changes)),
                Started::HeldBack => {
                    // A snapshot was due: it stays due.
                    cursor = None;
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_millis(200));
                }
            }
        }
    }

    async fn read(&self, viewer: &Viewer, cursor: Option<Position>) -> Result<Started, FormError> {
        let (answer, answered) = oneshot::channel();
        let waiting = Waiting {
            viewer: viewer.clone(),
            cursor,
            answer,
        };
        let queue = self.inner.queue.get_or_init(|| {
            let (queue, waiting) = mpsc::unbounded_channel();
            tokio::spawn(serve(self.inner.reader.clone(), waiting));
            queue
        });
        queue
            .send(waiting)
            .map_err(|_| FormError::Unavailable("the server is stopping".into()))?;
        answered
            .await
            .map_err(|_| FormError::Unavailable("the server is stopping".into()))?
    }
}

/// Takes the waiting starts, as many as are queued, whenever a read may begin.
async fn serve(reader: Arc<Reader>, mut queue: mpsc::UnboundedReceiver<Waiting>) {
    let reads = Arc::new(Semaphore::new(READS_IN_FLIGHT));
    loop {
        let Ok(permit) = reads.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = queue.recv().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(waiting) => batch.push(waiting),
                Err(_) => break,
            }
        }
        let reader = reader.clone();
        tokio::spawn(async move {
            read_batch(&reader, batch).await;
            drop(permit);
        });
    }
}

/// One read for the batch. A failed read of several starts is tried again for each
/// alone, so that each gets the error that is its own (or none).
async fn read_batch(reader: &Reader, batch: Vec<Waiting>) {
    // Streams that left while they waited need nothing.
    let batch: Vec<Waiting> = batch
        .into_iter()
        .filter(|w| !w.answer.is_closed())
        .collect();
    if batch.is_empty() {
        return;
    }
    match read_once(reader, &batch).await {
        Ok(started) => {
            for (waiting, started) in batch.into_iter().zip(started) {
                let _ = waiting.answer.send(Ok(started));
            }
        }
        Err(error) if batch.len() == 1 => {
            let waiting = batch.into_iter().next().expect("one");
            let _ = waiting.answer.send(Err(error));
        }
        Err(error) => {
            tracing::debug!(%error, streams = batch.len(), "a batch of stream starts failed; each is read alone");
            for waiting in batch {
                let result = read_once(reader, std::slice::from_ref(&waiting))
                    .await
                    .map(|mut started| started.pop().expect("one answer"));
                let _ = waiting.answer.send(result);
            }
        }
    }
}

async fn read_once(reader: &Reader, batch: &[Waiting]) -> Result<Vec<Started>, FormError> {
    let oldest = Utc::now() - chrono::Duration::from_std(reader.retention).unwrap_or_default();
    let requests: Vec<StartRequest<'_>> = batch
        .iter()
        .map(|w| StartRequest {
            viewer: &w.viewer,
            cursor: w.cursor,
        })
        .collect();
    let mut client = reader.store.client().await?;
    Ok(starts::read(&mut client, &requests, oldest, reader.limit).await?)
}
