//! Stream capacity: open many idle PendingForms streams, each for a user of its
//! own, over a modest number of HTTP/2 connections, and divide the server's memory
//! growth by the number of streams.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use ramp::proto::{PendingFormsRequest, PendingFormsResponse, pending_forms_response};
use serde_json::json;
use tonic::Streaming;

use crate::client::{Bench, Target, authorized};
use crate::stats::{Latencies, rss_bytes};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub target: Target,
    /// Streams to open.
    #[arg(long, default_value_t = 250_000)]
    pub streams: usize,
    /// Streams being opened at once.
    #[arg(long, default_value_t = 64)]
    pub open_concurrency: usize,
    /// What is measured, for the results: `ramp` or `bare` (the reference server).
    #[arg(long, default_value = "ramp")]
    pub label: String,
    /// Seconds to wait after opening before the memory is read again.
    #[arg(long, default_value_t = 5)]
    pub settle_secs: u64,
}

pub async fn run(args: Args) -> Result<()> {
    let pid = args
        .target
        .server_pid
        .context("--server-pid (RAMP_BENCH_SERVER_PID) is needed to read the server's memory")?;
    let connections = args.target.connections;
    let bench = Bench::connect(args.target).await?;
    // One stream first, so the server's lazily built parts exist before the baseline.
    let warm = open_idle_streams(&bench, "warm", 1, 1).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_bytes(pid)?;
    let started = Instant::now();
    let ended = Arc::new(AtomicUsize::new(0));
    let (readers, opening) = open_measured(
        &bench,
        "idle",
        args.streams,
        args.open_concurrency,
        |s, _| IdleStreams::reader(s, ended.clone()),
    )
    .await?;
    let streams = IdleStreams { readers, ended };
    let open_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
    let after = rss_bytes(pid)?;
    let client = rss_bytes(std::process::id())?;
    let per_stream = (after.saturating_sub(before)) as f64 / args.streams as f64;
    // Every stream is still open: a stream that ended would have said so by now.
    let still_open = streams.open();
    drop(warm);
    let figures = json!({
        "label": args.label,
        "streams": args.streams,
        "still_open": still_open,
        "connections": connections,
        "server_rss_before_mib": mib(before),
        "server_rss_after_mib": mib(after),
        "bytes_per_stream": per_stream.round(),
        "open_secs": (open_secs * 10.0).round() / 10.0,
        "opened_per_sec": (args.streams as f64 / open_secs).round(),
        "open_to_snapshot": opening.summary(),
        "client_rss_mib": mib(client),
    });
    bench.write(&format!("streams-{}", args.label), &figures)
}

fn mib(bytes: u64) -> f64 {
    (bytes as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0
}

/// Streams held open and read in the background, as a client that listens does
/// (heartbeats left unread would pile up in the connection, and HTTP/2 rightly
/// closes a connection whose peer buffers too many small frames).
pub struct IdleStreams {
    readers: Vec<tokio::task::JoinHandle<()>>,
    ended: Arc<AtomicUsize>,
}

impl IdleStreams {
    fn reader(
        mut stream: Streaming<PendingFormsResponse>,
        ended: Arc<AtomicUsize>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            while let Ok(Some(_)) = stream.message().await {}
            ended.fetch_add(1, Ordering::Relaxed);
        })
    }

    pub fn len(&self) -> usize {
        self.readers.len()
    }

    /// Streams that have not ended.
    pub fn open(&self) -> usize {
        self.readers.len() - self.ended.load(Ordering::Relaxed)
    }
}

impl Drop for IdleStreams {
    fn drop(&mut self) {
        for reader in &self.readers {
            reader.abort();
        }
    }
}

/// Opens `n` idle streams, one per user of `group`, each read up to its snapshot
/// and then in the background.
pub async fn open_idle_streams(
    bench: &Bench,
    group: &str,
    n: usize,
    concurrency: usize,
) -> Result<IdleStreams> {
    let ended = Arc::new(AtomicUsize::new(0));
    let (readers, _) = open_measured(bench, group, n, concurrency, |s, _| {
        IdleStreams::reader(s, ended.clone())
    })
    .await?;
    Ok(IdleStreams { readers, ended })
}

/// Opens `n` streams, one per user of `group`, each read up to its snapshot; the
/// caller reads the rest.
pub async fn open_streams(
    bench: &Bench,
    group: &str,
    n: usize,
    concurrency: usize,
) -> Result<Vec<Streaming<PendingFormsResponse>>> {
    Ok(open_measured(bench, group, n, concurrency, |s, _| s)
        .await?
        .0)
}

/// Opens `n` streams, one per user of `group`, each read up to its snapshot, with
/// the snapshot's cursor; the caller reads the rest.
pub async fn open_streams_with_cursors(
    bench: &Bench,
    group: &str,
    n: usize,
    concurrency: usize,
) -> Result<Vec<(usize, Streaming<PendingFormsResponse>, String)>> {
    Ok(
        open_measured(bench, group, n, concurrency, |s, (i, cursor)| {
            (i, s, cursor)
        })
        .await?
        .0,
    )
}

/// Opens `n` streams, one per user of `group`; each, once it has sent its
/// snapshot, goes to `keep` at once, with its user's index and the snapshot's
/// cursor.
async fn open_measured<T>(
    bench: &Bench,
    group: &str,
    n: usize,
    concurrency: usize,
    keep: impl Fn(Streaming<PendingFormsResponse>, (usize, String)) -> T,
) -> Result<(Vec<T>, Latencies)> {
    let keep = &keep;
    let mut opened = futures::stream::iter(0..n)
        .map(|i| async move {
            let user = bench.user(group, i);
            let started = Instant::now();
            let bearer = bench.mint(&user, &[]);
            // A client that is told UNAVAILABLE (the server busy past its database
            // timeout) tries again, as the web UI does.
            let mut attempt = 0;
            loop {
                let request = authorized(PendingFormsRequest::default(), bearer.clone());
                let first = match bench.forms(i).pending_forms(request).await {
                    Ok(response) => {
                        let mut stream = response.into_inner();
                        stream.message().await.map(|first| (stream, first))
                    }
                    Err(status) => Err(status),
                };
                match first {
                    Ok((
                        stream,
                        Some(PendingFormsResponse {
                            cursor,
                            event: Some(pending_forms_response::Event::Snapshot(_)),
                        }),
                    )) => return Ok((keep(stream, (i, cursor)), started.elapsed())),
                    Ok((_, other)) => bail!("stream {i} began with {other:?}, not a snapshot"),
                    Err(status) if status.code() == tonic::Code::Unavailable && attempt < 5 => {
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                    }
                    Err(status) => {
                        return Err(
                            anyhow::Error::from(status).context(format!("opening stream {i}"))
                        );
                    }
                }
            }
        })
        .buffer_unordered(concurrency.max(1));
    let mut streams = Vec::with_capacity(n);
    let mut latencies = Latencies::default();
    while let Some(result) = opened.next().await {
        let (stream, elapsed) = result?;
        latencies.record(elapsed);
        streams.push(stream);
        if streams.len().is_multiple_of(25_000) {
            eprintln!("  {} streams open", streams.len());
        }
    }
    Ok((streams, latencies))
}
