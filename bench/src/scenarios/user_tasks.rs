//! The engine's own user tasks on the stream: user tasks are created in the engine at
//! a fixed rate for users whose streams are open, while many other streams stay open
//! and idle; each is timed from the engine's answer to the instance start (the
//! engine's transaction, which created the task, has committed) to the task's
//! arrival on its assignee's stream, on one clock.
//!
//! Beside it, what it costs the engine: the REST calls ramp made meanwhile (read from
//! ramp's own `/metrics`, which counts every engine call by operation), against what
//! Tasklist-style polling costs, every user asking the engine for their tasks every
//! 5 s, which is run for real for a few seconds at that rate.
//!
//! The tasks come from bench/processes/ramp_bench_inbox.bpmn with one task per
//! instance, assigned to the user in variable `assignee` (the engine user id is the
//! email, ramp's default `RAMP_JWT_USER_ID_CLAIM`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ramp::proto::{PendingFormsResponse, pending_forms_response::Event};
use serde_json::{Value, json};
use tokio::time::MissedTickBehavior;

use crate::client::{Bench, Target};
use crate::scenarios::streams::{open_idle_streams, open_streams};
use crate::stats::Latencies;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub target: Target,
    /// The engine's REST base.
    #[arg(long, env = "RAMP_CAMUNDA_URL")]
    pub camunda_url: String,
    /// ramp's HTTP address for `/metrics` (the gRPC address serves it too).
    #[arg(long, env = "RAMP_BENCH_METRICS_URL")]
    pub metrics_url: Option<String>,
    /// Idle streams held open meanwhile.
    #[arg(long, default_value_t = 10_000)]
    pub idle: usize,
    /// Users whose streams receive the user tasks.
    #[arg(long, default_value_t = 100)]
    pub subscribers: usize,
    /// User tasks created in the engine.
    #[arg(long, default_value_t = 1_000)]
    pub tasks: usize,
    /// User tasks created per second.
    #[arg(long, default_value_t = 50)]
    pub rate: u32,
    /// Seconds of counting ramp's engine calls with nothing changing, before the
    /// tasks are created.
    #[arg(long, default_value_t = 10)]
    pub idle_secs: u64,
    /// Seconds of Tasklist-style polling for comparison.
    #[arg(long, default_value_t = 10)]
    pub poll_secs: u64,
}

#[derive(Default)]
struct Times {
    /// process instance id -> (start sent, start answered)
    created: HashMap<String, (Instant, Instant)>,
    /// process instance id -> pushed
    received: HashMap<String, Instant>,
    duplicates: u64,
}

pub async fn run(args: Args) -> Result<()> {
    let metrics_url = args
        .metrics_url
        .clone()
        .unwrap_or_else(|| format!("{}/metrics", args.target.server.trim_end_matches('/')));
    let bench = Arc::new(Bench::connect(args.target).await?);
    let http = reqwest::Client::new();
    let engine = args.camunda_url.trim_end_matches('/').to_owned();

    eprintln!("user_tasks: opening {} idle streams", args.idle);
    let idle = open_idle_streams(&bench, "utidle", args.idle, 256).await?;
    let subscribers = open_streams(&bench, "utsub", args.subscribers, 64).await?;
    let times = Arc::new(Mutex::new(Times::default()));
    for stream in subscribers {
        let times = times.clone();
        tokio::spawn(async move {
            let mut stream = stream;
            while let Ok(Some(PendingFormsResponse { event, .. })) = stream.message().await {
                if let Some(Event::Added(form)) = event {
                    let now = Instant::now();
                    let mut times = times.lock().expect("not poisoned");
                    if times
                        .received
                        .insert(form.process_instance_id, now)
                        .is_some()
                    {
                        times.duplicates += 1;
                    }
                }
            }
        });
    }

    // What keeping every inbox live costs the engine when nothing changes: the
    // poller's fixed queries, whatever the number of users and streams.
    let quiet_from = engine_calls(&http, &metrics_url).await?;
    let quiet = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;
    let quiet_to = engine_calls(&http, &metrics_url).await?;
    let quiet_calls: f64 = quiet_to
        .iter()
        .map(|(op, n)| n - quiet_from.get(op).copied().unwrap_or(0.0))
        .sum();
    let quiet_per_sec = quiet_calls / quiet.elapsed().as_secs_f64();

    let before = engine_calls(&http, &metrics_url).await?;
    eprintln!(
        "user_tasks: creating {} user tasks in the engine, {}/s",
        args.tasks, args.rate
    );
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate as f64));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let started = Instant::now();
    let errors = Arc::new(Mutex::new(0u64));
    let mut starts = Vec::with_capacity(args.tasks);
    for i in 0..args.tasks {
        ticker.tick().await;
        let (http, engine, times, errors) =
            (http.clone(), engine.clone(), times.clone(), errors.clone());
        let user = bench.user("utsub", i % args.subscribers);
        starts.push(tokio::spawn(async move {
            let t0 = Instant::now();
            match start_one(&http, &engine, &user).await {
                Ok(instance) => {
                    let t1 = Instant::now();
                    times
                        .lock()
                        .expect("not poisoned")
                        .created
                        .insert(instance, (t0, t1));
                }
                Err(error) => {
                    eprintln!("user_tasks: start failed: {error:#}");
                    *errors.lock().expect("not poisoned") += 1;
                }
            }
        }));
    }
    for start in starts {
        start.await?;
    }
    let create_secs = started.elapsed().as_secs_f64();
    // Tasks still on their way.
    for _ in 0..100 {
        let done = {
            let t = times.lock().expect("not poisoned");
            t.created.keys().all(|id| t.received.contains_key(id))
        };
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let window = started.elapsed().as_secs_f64();
    let after = engine_calls(&http, &metrics_url).await?;

    let (commit_to_receipt, missing, pushed, duplicates, created) = {
        let t = times.lock().expect("not poisoned");
        let mut latencies = Latencies::default();
        let mut missing = 0u64;
        for (instance, (_, committed_at)) in &t.created {
            match t.received.get(instance) {
                Some(received) => {
                    latencies.record(received.saturating_duration_since(*committed_at))
                }
                None => missing += 1,
            }
        }
        (
            latencies,
            missing,
            t.received.len(),
            t.duplicates,
            t.created.len(),
        )
    };
    let mut by_operation = serde_json::Map::new();
    let mut ramp_calls = 0.0;
    for (operation, count) in &after {
        let delta = count - before.get(operation).copied().unwrap_or(0.0);
        if delta > 0.0 {
            ramp_calls += delta;
            by_operation.insert(
                operation.clone(),
                json!((delta / window * 10.0).round() / 10.0),
            );
        }
    }

    // Tasklist-style: every user (idle and subscribed) asks the engine for their
    // tasks every 5 s, spread evenly.
    let users = args.idle + args.subscribers;
    let poll_rate = users as f64 / 5.0;
    eprintln!(
        "user_tasks: Tasklist-style polling, {poll_rate:.0} engine queries/s for {} s",
        args.poll_secs
    );
    let polled = tasklist_polling(&http, &engine, &bench, users, poll_rate, args.poll_secs).await;

    let figures = json!({
        "idle_streams": idle.len(),
        "subscribers": args.subscribers,
        "rate_target": args.rate,
        "rate_achieved": (created as f64 / create_secs).round(),
        "created": created,
        "start_errors": *errors.lock().expect("not poisoned"),
        "pushed": pushed,
        "not_pushed": missing,
        "pushed_twice": duplicates,
        "commit_to_receipt": commit_to_receipt.summary(),
        "ramp_engine_calls_per_sec_idle": (quiet_per_sec * 10.0).round() / 10.0,
        "ramp_engine_calls_per_sec": (ramp_calls / window * 10.0).round() / 10.0,
        "ramp_engine_calls_by_operation_per_sec": by_operation,
        "tasklist_users": users,
        "tasklist_queries_per_sec_needed": poll_rate.round(),
        "tasklist_polling": polled,
    });
    drop(idle);
    bench.write("user_tasks", &figures)
}

/// Starts one instance whose single user task is `user`'s; its id.
async fn start_one(http: &reqwest::Client, engine: &str, user: &str) -> Result<String> {
    let body = json!({
        "businessKey": user,
        "variables": {
            "assignee": {"value": user, "type": "String"},
            "tasks": {"value": 1, "type": "Integer"},
        }
    });
    let response = http
        .post(format!(
            "{engine}/process-definition/key/ramp_bench_inbox/start"
        ))
        .json(&body)
        .send()
        .await?;
    if !response.status().is_success() {
        bail!(
            "engine start: {} {}",
            response.status(),
            response.text().await?
        );
    }
    let instance: Value = response.json().await?;
    instance["id"]
        .as_str()
        .map(str::to_owned)
        .context("an instance id")
}

/// ramp's engine calls so far, by operation, from its Prometheus text.
async fn engine_calls(http: &reqwest::Client, url: &str) -> Result<HashMap<String, f64>> {
    let text = http
        .get(url)
        .send()
        .await
        .with_context(|| format!("reading {url}"))?
        .text()
        .await?;
    let mut calls = HashMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("ramp_engine_request_duration_seconds_count{") else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let operation = labels
            .split(',')
            .find_map(|l| l.strip_prefix("operation=\""))
            .map(|o| o.trim_end_matches('"').to_owned())
            .unwrap_or_default();
        let value: f64 = value.trim().parse().unwrap_or(0.0);
        *calls.entry(operation).or_insert(0.0) += value;
    }
    Ok(calls)
}

/// Runs `GET /task?assignee=` at `rate` per second for `secs`, for users in turn:
/// the rate reached and each query's latency.
async fn tasklist_polling(
    http: &reqwest::Client,
    engine: &str,
    bench: &Bench,
    users: usize,
    rate: f64,
    secs: u64,
) -> Value {
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let latencies = Arc::new(Mutex::new(Latencies::default()));
    let failed = Arc::new(Mutex::new(0u64));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let mut queries = Vec::new();
    let mut i = 0usize;
    while Instant::now() < deadline {
        ticker.tick().await;
        // Every user in turn; most have no task, as most of Tasklist's polls find
        // nothing new.
        let user = bench.user("utidle", i % users.max(1));
        i += 1;
        let (http, url, latencies, failed) = (
            http.clone(),
            format!("{engine}/task"),
            latencies.clone(),
            failed.clone(),
        );
        queries.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let answer = http
                .get(url)
                .query(&[("assignee", user.as_str()), ("maxResults", "50")])
                .send()
                .await;
            match answer {
                Ok(response) if response.status().is_success() => {
                    let _ = response.bytes().await;
                    latencies.lock().expect("not poisoned").record(t0.elapsed());
                }
                _ => *failed.lock().expect("not poisoned") += 1,
            }
        }));
    }
    let sent = queries.len();
    for query in queries {
        let _ = query.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let latencies = latencies.lock().expect("not poisoned");
    json!({
        "queries": sent,
        "queries_per_sec": (sent as f64 / elapsed).round(),
        "failed": *failed.lock().expect("not poisoned"),
        "latency": latencies.summary(),
    })
}
