//! The change hub of one replica: wakes on committed changes (its own writers at
//! once, other replicas' through one LISTEN connection, and a timer in case a
//! notification is lost), reads the log once for all streams, and hands each change
//! to the streams that read its key: a stream reads every key of its caller's
//! audience (see [`crate::auth::Caller::audience`]), and gets one event per change of
//! a form however many of its keys the change was written under (see
//! [`super::stream::one_per_form`]).
//!
//! - NOTIFY is never sent per write: writers poke the hub, and one notifier sends at
//!   most one data-less NOTIFY per tick.
//! - A stream that does not keep up never slows the others: its buffer is bounded,
//!   and when it is full the hub drops the change and marks the stream lagging; the
//!   stream then catches up from the log itself.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::Change;
use crate::store::Store;
use crate::store::forms::{self as rows, Position};

/// Changes read from the log per query.
const BATCH: i64 = 1_000;
/// The longest wait before reading again while committed changes are held back by
/// an older transaction: they are readable the moment it ends.
const HELD_BACK_RETRY: Duration = Duration::from_millis(200);

#[derive(Clone, Debug)]
pub struct HubSettings {
    /// How often the log is read even without a wake-up.
    pub poll_interval: Duration,
    /// How long pokes are gathered into one NOTIFY.
    pub notify_tick: Duration,
    /// Changes buffered per stream before it must catch up from the log.
    pub stream_buffer: usize,
    /// Open streams per user.
    pub max_streams_per_user: usize,
}

#[derive(Clone)]
pub struct ChangeHub {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    settings: HubSettings,
    streams: Mutex<Streams>,
    next_id: AtomicU64,
    /// Wakes this replica's reader.
    wake: Notify,
    /// Set with every wake-up and cleared by the reader before it reads: a wake-up
    /// that lands while the reader is not waiting (or as its timer fires) is not lost.
    dirty: AtomicBool,
    /// Asks the notifier to tell the other replicas.
    poke: Notify,
}

/// The open streams of a replica.
#[derive(Default)]
struct Streams {
    /// Open streams per user (email), for the per-user limit.
    per_user: HashMap<Arc<str>, usize>,
    /// The streams that read each change log key. Keys are shared with the
    /// subscriptions: one allocation per key, however many streams read it.
    by_key: HashMap<Arc<str>, Vec<Subscriber>>,
}

impl Streams {
    /// Every open stream, once.
    fn each(&self) -> impl Iterator<Item = &Subscriber> {
        let mut seen = std::collections::HashSet::new();
        self.by_key
            .values()
            .flatten()
            .filter(move |s| seen.insert(s.id))
    }
}

struct Subscriber {
    id: u64,
    mailbox: Arc<Mailbox>,
}

/// Where the hub leaves one stream's changes: a bounded queue, a flag for changes
/// dropped because it was full, and a wake-up. Small on purpose (no allocation
/// until a change arrives): a replica holds one per open stream.
struct Mailbox {
    changes: Mutex<VecDeque<Arc<Change>>>,
    lagging: AtomicBool,
    /// The log's positions were moved (the database now lives in another cluster):
    /// the stream's position means nothing any more, and it ends.
    moved: AtomicBool,
    wake: Notify,
}

/// One stream's registration; dropping it unregisters.
pub struct Subscription {
    id: u64,
    user: Arc<str>,
    keys: Box<[Arc<str>]>,
    mailbox: Arc<Mailbox>,
    inner: Arc<Inner>,
}

impl Subscription {
    /// The next change handed over, or `None` when changes were dropped because
    /// the queue was full (see [`Subscription::take_lagging`]).
    pub async fn next_change(&self) -> Option<Arc<Change>> {
        loop {
            if self.mailbox.lagging.load(Ordering::Acquire)
                || self.mailbox.moved.load(Ordering::Acquire)
            {
                return None;
            }
            if let Some(change) = self
                .mailbox
                .changes
                .lock()
                .expect("not poisoned")
                .pop_front()
            {
                return Some(change);
            }
            self.mailbox.wake.notified().await;
        }
    }

    /// Whether changes were dropped since the last call: the stream must read the
    /// log from its position (what is still queued is older, and is skipped there).
    pub fn take_lagging(&self) -> bool {
        self.mailbox.lagging.swap(false, Ordering::AcqRel)
    }

    /// Asks for a catch-up from the log before the next change.
    pub fn set_lagging(&self) {
        self.mailbox.lagging.store(true, Ordering::Release);
    }

    /// Whether the log's positions were moved under the stream (see
    /// [`crate::store::forms::adopt_cluster`]): its position names nothing now.
    pub fn moved(&self) -> bool {
        self.mailbox.moved.load(Ordering::Acquire)
    }

    /// The change log keys the stream reads.
    pub fn keys(&self) -> Vec<&str> {
        self.keys.iter().map(|k| &**k).collect()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut streams = self.inner.streams.lock().expect("not poisoned");
        for key in &self.keys {
            if let Some(list) = streams.by_key.get_mut(&**key) {
                list.retain(|s| s.id != self.id);
                if list.is_empty() {
                    streams.by_key.remove(&**key);
                }
            }
        }
        if let Some(count) = streams.per_user.get_mut(&*self.user) {
            *count -= 1;
            if *count == 0 {
                streams.per_user.remove(&*self.user);
            }
        }
    }
}

impl Inner {
    /// Has the reader read the log (now, or as soon as it is done with a read).
    fn wake_reader(&self) {
        self.dirty.store(true, Ordering::Release);
        self.wake.notify_one();
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0} streams are open for this user already")]
pub struct TooManyStreams(pub usize);

impl ChangeHub {
    pub fn new(store: Store, settings: HubSettings) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                settings,
                streams: Mutex::new(Streams::default()),
                next_id: AtomicU64::new(1),
                wake: Notify::new(),
                dirty: AtomicBool::new(false),
                poke: Notify::new(),
            }),
        }
    }

    /// Registers a stream of `user`'s (an email, which the per-user limit counts)
    /// for the changes written under `keys`. Register before reading the snapshot,
    /// so that nothing committed in between is missed.
    pub fn subscribe(&self, user: &str, keys: &[String]) -> Result<Subscription, TooManyStreams> {
        let mailbox = Arc::new(Mailbox {
            changes: Mutex::new(VecDeque::new()),
            lagging: AtomicBool::new(false),
            moved: AtomicBool::new(false),
            wake: Notify::new(),
        });
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let mut streams = self.inner.streams.lock().expect("not poisoned");
        let open = streams.per_user.get(user).copied().unwrap_or(0);
        if open >= self.inner.settings.max_streams_per_user {
            return Err(TooManyStreams(open));
        }
        let mut keys = keys.to_vec();
        keys.sort();
        keys.dedup();
        let keys: Box<[Arc<str>]> = keys
            .into_iter()
            .map(|key| match streams.by_key.get_key_value(key.as_str()) {
                Some((shared, _)) => shared.clone(),
                None => Arc::from(key),
            })
            .collect();
        let user: Arc<str> = match streams.per_user.get_key_value(user) {
            Some((shared, _)) => shared.clone(),
            None => keys
                .iter()
                .find(|k| &***k == user)
                .cloned()
                .unwrap_or_else(|| Arc::from(user)),
        };
        *streams.per_user.entry(user.clone()).or_default() += 1;
        for key in &keys {
            streams
                .by_key
                .entry(key.clone())
                // Most keys have one stream.
                .or_insert_with(|| Vec::with_capacity(1))
                .push(Subscriber {
                    id,
                    mailbox: mailbox.clone(),
                });
        }
        Ok(Subscription {
            id,
            user,
            keys,
            mailbox,
            inner: self.inner.clone(),
        })
    }

    /// The most changes any one stream has waiting in its buffer (bounded by
    /// `stream_buffer`).
    pub fn largest_buffer(&self) -> usize {
        let streams = self.inner.streams.lock().expect("not poisoned");
        streams
            .by_key
            .values()
            .flatten()
            .map(|s| s.mailbox.changes.lock().expect("not poisoned").len())
            .max()
            .unwrap_or(0)
    }

    /// Open streams on this replica.
    pub fn open_streams(&self) -> usize {
        self.inner
            .streams
            .lock()
            .expect("not poisoned")
            .per_user
            .values()
            .sum()
    }

    /// Called after a change committed: wakes this replica's reader now and has the
    /// others told (coalesced).
    pub fn changed(&self) {
        self.inner.wake_reader();
        self.inner.poke.notify_one();
    }

    /// Starts the reader, the notifier and the listener; they stop with `shutdown`.
    pub async fn start(&self, shutdown: CancellationToken) -> Result<(), crate::store::StoreError> {
        let moved = self.adopt_cluster().await?;
        let frontier = rows::frontier(&self.inner.store.client().await?).await?;
        // The API serves while the schema is checked, so streams may have opened
        // already: they read the log up to their own position, and what committed
        // between that and the frontier would never be handed to them. Each reads
        // the log from its position once instead (or ends, when positions moved).
        for subscriber in self.inner.streams.lock().expect("not poisoned").each() {
            let flag = if moved {
                &subscriber.mailbox.moved
            } else {
                &subscriber.mailbox.lagging
            };
            flag.store(true, Ordering::Release);
            subscriber.mailbox.wake.notify_one();
        }
        tokio::spawn(self.clone().read_loop(frontier, shutdown.clone()));
        tokio::spawn(self.clone().notify_loop(shutdown.clone()));
        tokio::spawn(self.clone().listen_loop(shutdown));
        Ok(())
    }

    /// Makes the log's positions this cluster's; true when they moved (see
    /// [`rows::adopt_cluster`]).
    async fn adopt_cluster(&self) -> Result<bool, crate::store::StoreError> {
        let adoption = rows::adopt_cluster(&mut self.inner.store.client().await?).await?;
        if let Some(before) = adoption.other_cluster {
            tracing::warn!(
                previous_system_identifier = before,
                "the database now lives in another PostgreSQL cluster than before"
            );
        }
        if let Some(by) = adoption.moved_down_by {
            tracing::warn!(
                moved_down_by = by,
                "the change log held positions this cluster has not reached (a copy from \
                 another cluster): moved them below its own; streams resume with a snapshot"
            );
        }
        Ok(adoption.moved_down_by.is_some())
    }

    /// Ends every open stream: their positions name nothing since the log moved.
    fn end_streams(&self) {
        for subscriber in self.inner.streams.lock().expect("not poisoned").each() {
            subscriber.mailbox.moved.store(true, Ordering::Release);
            subscriber.mailbox.wake.notify_one();
        }
    }

    async fn read_loop(self, mut frontier: Position, shutdown: CancellationToken) {
        // Changes committed but not yet readable (a transaction anywhere in the
        // cluster, older than theirs, still runs) are read again soon, not at the
        // next poll: a wake-up may already have come and gone for them.
        let mut retry: Option<Duration> = None;
        loop {
            let wait = retry.unwrap_or(self.inner.settings.poll_interval);
            if !self.inner.dirty.load(Ordering::Acquire) {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = self.inner.wake.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
            }
            // What is woken from here on is read again next time round.
            self.inner.dirty.store(false, Ordering::Release);
            // Asked before reading: a change committed by then is either below the
            // read's xmin (which only grows) or counted here; one committed later
            // wakes this loop itself.
            let check = match self.inner.store.client().await {
                Ok(client) => rows::read_check(&client, frontier).await.ok(),
                Err(_) => None,
            };
            if check.is_some_and(|c| c.elsewhere) {
                // The database was switched to a copy in another cluster under this
                // replica: its ids are lower than the frontier, and every change
                // from now on would sort below it.
                match self.adopt_cluster().await {
                    Ok(_) => match self.inner.store.client().await {
                        Ok(client) => match rows::frontier(&client).await {
                            Ok(moved) => {
                                frontier = moved;
                                self.end_streams();
                            }
                            Err(error) => tracing::warn!(%error, "cannot read the change log"),
                        },
                        Err(error) => tracing::warn!(%error, "cannot read the change log"),
                    },
                    Err(error) => tracing::warn!(%error, "cannot move the change log's positions"),
                }
                retry = Some(HELD_BACK_RETRY);
                continue;
            }
            let held_back = check.is_none_or(|c| c.held_back);
            loop {
                let batch = match self.inner.store.client().await {
                    Ok(client) => rows::changes_after(&client, None, frontier, BATCH).await,
                    Err(error) => Err(error),
                };
                let batch = match batch {
                    Ok(batch) => batch,
                    Err(error) => {
                        tracing::warn!(%error, "cannot read the change log; streams wait");
                        break;
                    }
                };
                let full = batch.len() as i64 == BATCH;
                // The rows of a change a full batch may have cut are read again
                // with the rest of them next time.
                let batch = super::stream::whole_changes(batch, full);
                if let Some(last) = batch.last() {
                    frontier = last.position;
                }
                self.dispatch(&batch);
                if !full {
                    break;
                }
            }
            retry = held_back.then(|| {
                retry
                    .map_or(Duration::from_millis(5), |r| r * 2)
                    .min(HELD_BACK_RETRY)
                    .min(self.inner.settings.poll_interval)
            });
        }
    }

    /// Hands each change of `batch` (rows in log order) to the streams that read
    /// one of its keys: one event per stream and change, however many of the
    /// stream's keys its rows name (see [`super::stream::per_change`]).
    fn dispatch(&self, batch: &[Change]) {
        let streams = self.inner.streams.lock().expect("not poisoned");
        let mut reached: HashMap<u64, (&Subscriber, Vec<&Change>)> = HashMap::new();
        for row in batch {
            for subscriber in streams
                .by_key
                .get(row.assignee.as_str())
                .into_iter()
                .flatten()
            {
                reached
                    .entry(subscriber.id)
                    .or_insert_with(|| (subscriber, Vec::new()))
                    .1
                    .push(row);
            }
        }
        for (subscriber, rows) in reached.into_values() {
            let mailbox = &subscriber.mailbox;
            let mut changes = mailbox.changes.lock().expect("not poisoned");
            for change in super::stream::per_change(&rows) {
                if changes.len() < self.inner.settings.stream_buffer {
                    changes.push_back(Arc::new(change));
                } else {
                    // The stream reads from the log when it gets to it.
                    mailbox.lagging.store(true, Ordering::Release);
                    break;
                }
            }
            drop(changes);
            mailbox.wake.notify_one();
        }
    }

    async fn notify_loop(self, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.inner.poke.notified() => {}
            }
            // Gather the pokes of one tick into one notification.
            tokio::time::sleep(self.inner.settings.notify_tick).await;
            let sent = match self.inner.store.client().await {
                Ok(client) => rows::announce_changes(&client).await,
                Err(error) => Err(error),
            };
            if let Err(error) = sent {
                // The others still read the log on their timers.
                tracing::warn!(%error, "cannot notify other replicas");
            }
        }
    }

    /// One LISTEN connection, outside the pool, that only wakes the reader. When it
    /// drops, it is opened again, and the reader reads (so nothing is missed).
    async fn listen_loop(self, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        loop {
            match rows::listen_for_changes(&self.inner.store).await {
                Ok(mut listener) => {
                    backoff = Duration::from_millis(100);
                    // Whatever happened while not listening is read now.
                    self.inner.wake_reader();
                    loop {
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            announced = listener.next() => match announced {
                                Some(()) => self.inner.wake_reader(),
                                None => break,
                            },
                        }
                    }
                    tracing::info!("LISTEN connection lost; reconnecting");
                }
                Err(error) => tracing::warn!(%error, "cannot LISTEN"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}
