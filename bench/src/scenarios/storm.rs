//! A reconnect storm: what a replica restart costs its users. Many streams are open
//! and read; forms are created for some of their users; `ramp serve` is killed
//! (SIGKILL, so some pushes are still on their way) and started again; then every
//! client reconnects at once with the cursor of the last message it read, while forms
//! keep being created. Measured: the seconds until every stream is back (its
//! PendingForms call accepted), the reconnects per second, and, once the pushes have
//! drained, every created form its user's stream never received (must be 0) or
//! received twice.
//!
//! This scenario runs `ramp serve` itself (`--ramp-bin`), on the address of
//! `--server`, with the environment it was given, so that it can kill and restart it.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use ramp::proto::{PendingFormsRequest, PendingFormsResponse, pending_forms_response::Event};
use rand::Rng;
use serde_json::json;
use tokio::process::{Child, Command};
use tonic::Streaming;

use crate::client::{Bench, Target, authorized};
use crate::scenarios::streams::open_streams_with_cursors;
use crate::stats::Latencies;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub target: Target,
    /// The `ramp` binary to run, kill and run again.
    #[arg(long)]
    pub ramp_bin: PathBuf,
    /// Where `ramp serve`'s output goes.
    #[arg(long, default_value = "test-output/bench/serve.log")]
    pub serve_log: PathBuf,
    /// Streams open before the restart, one user each.
    #[arg(long, default_value_t = 250_000)]
    pub streams: usize,
    /// Streams opening at once (first opening and reconnecting).
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Forms created, as fast as they go, just before the kill.
    #[arg(long, default_value_t = 1_000)]
    pub burst: usize,
    /// Forms created per second while the clients reconnect.
    #[arg(long, default_value_t = 50)]
    pub rate: u32,
    /// How long the reconnecting may take before the scenario gives up.
    #[arg(long, default_value_t = 600)]
    pub deadline_secs: u64,
}

/// What one client knows of its stream.
#[derive(Default)]
struct Client {
    cursor: String,
    received: HashSet<String>,
    twice: u64,
    /// A resume that began with a snapshot instead of the changes since its cursor.
    snapshots_on_resume: u64,
}

type Clients = Arc<Vec<Mutex<Client>>>;

/// Reads a stream into its client's state until it ends.
fn read(mut stream: Streaming<PendingFormsResponse>, clients: Clients, i: usize, resumed: bool) {
    tokio::spawn(async move {
        let mut first = true;
        while let Ok(Some(PendingFormsResponse { cursor, event })) = stream.message().await {
            let mut client = clients[i].lock().expect("not poisoned");
            match event {
                Some(Event::Added(form)) if !client.received.insert(form.id.clone()) => {
                    client.twice += 1;
                }
                Some(Event::Snapshot(snapshot)) => {
                    if resumed && first {
                        client.snapshots_on_resume += 1;
                    }
                    for form in snapshot.form_tasks {
                        client.received.insert(form.id);
                    }
                }
                _ => {}
            }
            first = false;
            if !cursor.is_empty() {
                client.cursor = cursor;
            }
        }
    });
}

async fn start_serve(args: &Args) -> Result<Child> {
    let listen = args
        .target
        .server
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.serve_log)
        .with_context(|| format!("opening {}", args.serve_log.display()))?;
    let child = Command::new(&args.ramp_bin)
        .arg("serve")
        .env("RAMP_LISTEN", &listen)
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", args.ramp_bin.display()))?;
    let ready = Instant::now();
    let url = format!("{}/readyz", args.target.server.trim_end_matches('/'));
    let http = reqwest::Client::new();
    while ready.elapsed() < Duration::from_secs(120) {
        if let Ok(response) = http.get(&url).send().await
            && response.status().is_success()
        {
            return Ok(child);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("ramp serve did not become ready at {listen}")
}

pub async fn run(args: Args) -> Result<()> {
    let mut serve = start_serve(&args).await?;
    let bench = Arc::new(Bench::connect(args.target.clone()).await?);
    let hosts = Arc::new(bench.start_hosts(8).await?);

    eprintln!("storm: opening {} streams", args.streams);
    let opened = Instant::now();
    let streams =
        open_streams_with_cursors(&bench, "storm", args.streams, args.concurrency).await?;
    let open_secs = opened.elapsed().as_secs_f64();
    let clients: Clients = Arc::new((0..args.streams).map(|_| Mutex::default()).collect());
    for (i, stream, cursor) in streams {
        clients[i].lock().expect("not poisoned").cursor = cursor;
        read(stream, clients.clone(), i, false);
    }
    let created: Arc<Mutex<HashMap<String, usize>>> = Arc::default();

    eprintln!("storm: {} forms, then SIGKILL", args.burst);
    let burst: Vec<usize> = {
        let mut rng = rand::rng();
        (0..args.burst)
            .map(|_| rng.random_range(0..args.streams))
            .collect()
    };
    create_for(&bench, &hosts, &created, burst, 32).await;
    serve.start_kill()?;
    serve.wait().await?;

    eprintln!("storm: restarting ramp serve");
    let restarted = Instant::now();
    let mut serve = start_serve(&args).await?;
    let ready_secs = restarted.elapsed().as_secs_f64();
    let back = Instant::now();

    // Forms keep coming while the clients reconnect.
    let creating = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let creator = {
        let (bench, hosts, created, creating) = (
            bench.clone(),
            hosts.clone(),
            created.clone(),
            creating.clone(),
        );
        let (rate, streams) = (args.rate, args.streams);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
            while creating.load(Ordering::Relaxed) {
                ticker.tick().await;
                let user = rand::rng().random_range(0..streams);
                create_for(&bench, &hosts, &created, vec![user], 1).await;
            }
        })
    };

    let retries = Arc::new(AtomicUsize::new(0));
    let reconnected = Arc::new(AtomicUsize::new(0));
    let deadline = Duration::from_secs(args.deadline_secs);
    let mut resumes = futures::stream::iter(0..args.streams)
        .map(|i| {
            let (bench, clients, retries, reconnected) = (
                bench.clone(),
                clients.clone(),
                retries.clone(),
                reconnected.clone(),
            );
            async move {
                let started = Instant::now();
                let bearer = bench.mint(&bench.user("storm", i), &[]);
                let mut attempt = 0u32;
                loop {
                    let cursor = clients[i].lock().expect("not poisoned").cursor.clone();
                    let request = authorized(PendingFormsRequest { cursor }, bearer.clone());
                    match bench.forms(i).pending_forms(request).await {
                        Ok(response) => {
                            read(response.into_inner(), clients.clone(), i, true);
                            let n = reconnected.fetch_add(1, Ordering::Relaxed) + 1;
                            if n.is_multiple_of(25_000) {
                                eprintln!("  {n} streams back");
                            }
                            return Ok(started.elapsed());
                        }
                        Err(status) if back.elapsed() < deadline => {
                            retries.fetch_add(1, Ordering::Relaxed);
                            attempt += 1;
                            let wait = 50 * u64::from(attempt.min(20));
                            tokio::time::sleep(Duration::from_millis(wait)).await;
                            let _ = status;
                        }
                        Err(status) => {
                            return Err(anyhow::Error::from(status)
                                .context(format!("stream {i} did not come back")));
                        }
                    }
                }
            }
        })
        .buffer_unordered(args.concurrency.max(1));
    let mut reconnect = Latencies::default();
    while let Some(result) = resumes.next().await {
        reconnect.record(result?);
    }
    let reconnect_secs = back.elapsed().as_secs_f64();
    creating.store(false, Ordering::Relaxed);
    creator.await?;

    // Pushes still on their way.
    let mut missed = 0;
    for _ in 0..300 {
        missed = unseen(&clients, &created);
        if missed == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (twice, snapshots_on_resume) = clients.iter().fold((0, 0), |(t, s), c| {
        let c = c.lock().expect("not poisoned");
        (t + c.twice, s + c.snapshots_on_resume)
    });
    let figures = json!({
        "streams": args.streams,
        "concurrency": args.concurrency,
        "first_open_secs": (open_secs * 10.0).round() / 10.0,
        "first_opened_per_sec": (args.streams as f64 / open_secs).round(),
        "restart_to_ready_secs": (ready_secs * 100.0).round() / 100.0,
        "reconnect_secs": (reconnect_secs * 10.0).round() / 10.0,
        "reconnected_per_sec": (args.streams as f64 / reconnect_secs).round(),
        "reconnect_retries": retries.load(Ordering::Relaxed),
        "reconnect": reconnect.summary(),
        "forms_created": created.lock().expect("not poisoned").len(),
        "forms_missed": missed,
        "forms_received_twice": twice,
        "snapshots_on_resume": snapshots_on_resume,
    });
    serve.start_kill()?;
    let _ = serve.wait().await;
    bench.write("storm", &figures)
}

/// Creates one form for each user (index) given, `concurrency` at a time, and
/// remembers which user's it is.
async fn create_for(
    bench: &Arc<Bench>,
    hosts: &Arc<Vec<(String, String)>>,
    created: &Arc<Mutex<HashMap<String, usize>>>,
    users: Vec<usize>,
    concurrency: usize,
) {
    futures::stream::iter(users)
        .map(|user| {
            let (bench, hosts, created) = (bench.clone(), hosts.clone(), created.clone());
            async move {
                let n = created.lock().expect("not poisoned").len();
                let external = format!("storm-{}-{user}-{n}-{}", bench.run, rand::random::<u32>());
                let mut client = bench.forms(user);
                let host = &hosts[user % hosts.len()];
                match bench
                    .create_form(&mut client, host, &bench.user("storm", user), external)
                    .await
                {
                    Ok(form) => {
                        if let Some(summary) = form.summary {
                            created
                                .lock()
                                .expect("not poisoned")
                                .insert(summary.id, user);
                        }
                    }
                    Err(status) => eprintln!("storm: create failed: {status}"),
                }
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect::<()>()
        .await;
}

/// Created forms that their user's stream has not received.
fn unseen(clients: &Clients, created: &Arc<Mutex<HashMap<String, usize>>>) -> usize {
    created
        .lock()
        .expect("not poisoned")
        .iter()
        .filter(|(id, user)| {
            !clients[**user]
                .lock()
                .expect("not poisoned")
                .received
                .contains(*id)
        })
        .count()
}
