//! Push latency: forms are created at a fixed rate for users whose streams are
//! open, while many other streams stay open and idle; each push is timed from the
//! CreateFormTask response (the commit has happened) to its arrival on the stream,
//! on one clock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use ramp::proto::{PendingFormsResponse, pending_forms_response::Event};
use serde_json::json;
use tokio::time::MissedTickBehavior;

use crate::client::{Bench, Target};
use crate::scenarios::streams::{open_idle_streams, open_streams};
use crate::stats::Latencies;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub target: Target,
    /// Idle streams held open meanwhile.
    #[arg(long, default_value_t = 10_000)]
    pub idle: usize,
    /// Users whose streams receive the created forms.
    #[arg(long, default_value_t = 100)]
    pub subscribers: usize,
    /// Forms created per second.
    #[arg(long, default_value_t = 500)]
    pub rate: u32,
    /// Seconds of creating.
    #[arg(long, default_value_t = 30)]
    pub duration_secs: u64,
}

#[derive(Default)]
struct Times {
    /// form id -> (request sent, response received)
    created: HashMap<String, (Instant, Instant)>,
    /// form id -> pushed
    received: HashMap<String, Instant>,
    duplicates: u64,
}

pub async fn run(args: Args) -> Result<()> {
    let bench = Arc::new(Bench::connect(args.target).await?);
    eprintln!("latency: opening {} idle streams", args.idle);
    let idle = open_idle_streams(&bench, "idle", args.idle, 256).await?;
    let hosts = Arc::new(bench.start_hosts(8).await?);
    let times = Arc::new(Mutex::new(Times::default()));

    let subscribers = open_streams(&bench, "sub", args.subscribers, 64).await?;
    for stream in subscribers {
        let times = times.clone();
        tokio::spawn(async move {
            let mut stream = stream;
            while let Ok(Some(PendingFormsResponse { event, .. })) = stream.message().await {
                if let Some(Event::Added(form)) = event {
                    let now = Instant::now();
                    let mut times = times.lock().expect("not poisoned");
                    if times.received.insert(form.id, now).is_some() {
                        times.duplicates += 1;
                    }
                }
            }
        });
    }

    // One create per host first, untimed: the first form of an instance has ramp ask
    // the engine for the instance's lineage and its form (remembered from then on),
    // which is start-up work, not the push path measured here.
    for (n, host) in hosts.iter().enumerate() {
        let mut client = bench.forms(n);
        let external = format!("latency-warm-{}-{n}", bench.run);
        bench
            .create_form(
                &mut client,
                host,
                &bench.user("sub", n % args.subscribers),
                external,
            )
            .await?;
    }
    eprintln!(
        "latency: creating {} forms/s for {} s",
        args.rate, args.duration_secs
    );
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate as f64));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration_secs);
    let mut sent = 0usize;
    let subscribers = args.subscribers;
    let mut rpc = Vec::new();
    let errors = Arc::new(Mutex::new(0u64));
    while Instant::now() < deadline {
        ticker.tick().await;
        let (bench, hosts, times, errors) =
            (bench.clone(), hosts.clone(), times.clone(), errors.clone());
        let i = sent;
        sent += 1;
        rpc.push(tokio::spawn(async move {
            let assignee = bench.user("sub", i % subscribers);
            let mut client = bench.forms(i);
            let host = &hosts[i % hosts.len()];
            let external = format!("latency-{}-{i}", bench.run);
            let t0 = Instant::now();
            match bench
                .create_form(&mut client, host, &assignee, external)
                .await
            {
                Ok(form) => {
                    let t1 = Instant::now();
                    let id = form.summary.map(|s| s.id).unwrap_or_default();
                    times
                        .lock()
                        .expect("not poisoned")
                        .created
                        .insert(id, (t0, t1));
                    Some(t1 - t0)
                }
                Err(status) => {
                    eprintln!("latency: create failed: {status}");
                    *errors.lock().expect("not poisoned") += 1;
                    None
                }
            }
        }));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut create_rpc = Latencies::default();
    for handle in rpc {
        if let Ok(Some(elapsed)) = handle.await {
            create_rpc.record(elapsed);
        }
    }
    // Pushes still on their way.
    for _ in 0..50 {
        let done = {
            let t = times.lock().expect("not poisoned");
            t.created.keys().all(|id| t.received.contains_key(id))
        };
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let t = times.lock().expect("not poisoned");
    let mut commit_to_receipt = Latencies::default();
    let mut send_to_receipt = Latencies::default();
    let mut missing = 0u64;
    for (id, (sent_at, committed_at)) in &t.created {
        match t.received.get(id) {
            Some(received) => {
                commit_to_receipt.record(received.saturating_duration_since(*committed_at));
                send_to_receipt.record(received.saturating_duration_since(*sent_at));
            }
            None => missing += 1,
        }
    }
    let figures = json!({
        "idle_streams": idle.len(),
        "subscribers": args.subscribers,
        "rate_target": args.rate,
        "rate_achieved": (t.created.len() as f64 / elapsed).round(),
        "created": t.created.len(),
        "create_errors": *errors.lock().expect("not poisoned"),
        "pushed": t.received.len(),
        "not_pushed": missing,
        "pushed_twice": t.duplicates,
        "commit_to_receipt": commit_to_receipt.summary(),
        "send_to_receipt": send_to_receipt.summary(),
        "create_rpc": create_rpc.summary(),
    });
    drop(idle);
    bench.write("latency", &figures)
}
