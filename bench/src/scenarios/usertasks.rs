//! The engine's own user tasks on ramp's streams: user tasks are created in the
//! engine (instances of bench/processes/ramp_bench_usertask.bpmn started over its
//! REST API, not through ramp) at a fixed rate for users whose streams are open,
//! while many other streams stay open and idle. Each task is timed from the
//! engine's start response (its transaction has committed) to its arrival on its
//! assignee's stream; the engine queries ramp makes meanwhile are counted from
//! ramp's own metrics (`ramp_engine_request_duration_seconds_count`), idle and
//! while tasks are created. The reference is Tasklist's way: every user's browser
//! asking the engine for its tasks every few seconds, whose rate is the users over
//! the interval; a sample of those queries is timed on the same engine.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use ramp::proto::{PendingFormsResponse, pending_forms_response::Event};
use serde_json::{Value, json};
use tokio::time::MissedTickBehavior;

use crate::client::{Bench, Target};
use crate::scenarios::streams::{open_idle_streams, open_streams};
use crate::stats::Latencies;

const DEFINITION: &str = "ramp_bench_usertask";

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub target: Target,
    /// The engine's REST base.
    #[arg(long, env = "RAMP_CAMUNDA_URL")]
    pub camunda_url: String,
    /// Idle streams held open meanwhile.
    #[arg(long, default_value_t = 10_000)]
    pub idle: usize,
    /// Users whose streams receive the tasks (their assignees).
    #[arg(long, default_value_t = 100)]
    pub subscribers: usize,
    /// User tasks created in the engine.
    #[arg(long, default_value_t = 1_000)]
    pub tasks: usize,
    /// User tasks created per second.
    #[arg(long, default_value_t = 50)]
    pub rate: u32,
    /// Seconds of counting ramp's engine queries with nothing changing.
    #[arg(long, default_value_t = 10)]
    pub idle_secs: u64,
    /// Tasklist-style polling: each user's interval.
    #[arg(long, default_value_t = 5)]
    pub poll_interval_secs: u64,
    /// Tasklist-style queries timed on the engine.
    #[arg(long, default_value_t = 200)]
    pub poll_samples: usize,
}

#[derive(Default)]
struct Times {
    /// business key -> (start sent, start answered)
    started: HashMap<String, (Instant, Instant)>,
    /// business key -> pushed
    received: HashMap<String, Instant>,
    duplicates: u64,
}

pub async fn run(args: Args) -> Result<()> {
    let bench = Arc::new(Bench::connect(args.target.clone()).await?);
    let http = reqwest::Client::new();
    let engine = args.camunda_url.trim_end_matches('/').to_owned();
    let metrics = format!("{}/metrics", args.target.server.trim_end_matches('/'));

    eprintln!("usertasks: opening {} idle streams", args.idle);
    let idle = open_idle_streams(&bench, "idle", args.idle, 256).await?;
    let times = Arc::new(Mutex::new(Times::default()));
    let subscribers = open_streams(&bench, "utsub", args.subscribers, 64).await?;
    for stream in subscribers {
        let times = times.clone();
        tokio::spawn(async move {
            let mut stream = stream;
            while let Ok(Some(PendingFormsResponse { event, .. })) = stream.message().await {
                if let Some(Event::Added(form)) = event {
                    let now = Instant::now();
                    let mut times = times.lock().expect("not poisoned");
                    if times.received.insert(form.business_key, now).is_some() {
                        times.duplicates += 1;
                    }
                }
            }
        });
    }

    // ramp's first read of the engine is a full one (every open task); the
    // figures are of the reads after it.
    let db = bench.database().await?;
    let first_read = Instant::now();
    loop {
        let done: bool = db
            .query_one("SELECT watermark IS NOT NULL FROM user_task_watch", &[])
            .await?
            .get(0);
        if done {
            break;
        }
        if first_read.elapsed() > Duration::from_secs(600) {
            bail!("ramp's first full read of the engine's user tasks did not end");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "usertasks: counting ramp's engine queries for {} s with nothing changing",
        args.idle_secs
    );
    let before_idle = engine_calls(&http, &metrics).await?;
    let idle_started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;
    let idle_calls = engine_calls(&http, &metrics).await?;
    let idle_per_sec = per_sec(&before_idle, &idle_calls, idle_started.elapsed());

    eprintln!(
        "usertasks: creating {} user tasks in the engine, {}/s",
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
        let assignee = bench.user("utsub", i % args.subscribers);
        let business_key = format!("usertask-{}-{i}", bench.run);
        starts.push(tokio::spawn(async move {
            let body = json!({
                "businessKey": business_key,
                "variables": {"assignee": {"value": assignee, "type": "String"}},
            });
            let t0 = Instant::now();
            let answer = http
                .post(format!(
                    "{engine}/process-definition/key/{DEFINITION}/start"
                ))
                .json(&body)
                .send()
                .await;
            let t1 = Instant::now();
            match answer {
                Ok(response) if response.status().is_success() => {
                    let id = response
                        .json::<Value>()
                        .await
                        .ok()
                        .and_then(|v| v["id"].as_str().map(str::to_owned));
                    times
                        .lock()
                        .expect("not poisoned")
                        .started
                        .insert(business_key, (t0, t1));
                    id
                }
                Ok(response) => {
                    eprintln!("usertasks: engine start: {}", response.status());
                    *errors.lock().expect("not poisoned") += 1;
                    None
                }
                Err(error) => {
                    eprintln!("usertasks: engine start: {error}");
                    *errors.lock().expect("not poisoned") += 1;
                    None
                }
            }
        }));
    }
    let mut instances = Vec::with_capacity(args.tasks);
    for start in starts {
        if let Ok(Some(id)) = start.await {
            instances.push(id);
        }
    }
    let creating = started.elapsed();
    // Pushes still on their way.
    for _ in 0..300 {
        let done = {
            let t = times.lock().expect("not poisoned");
            t.started.keys().all(|k| t.received.contains_key(k))
        };
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let busy_calls = engine_calls(&http, &metrics).await?;
    let busy_per_sec = per_sec(&idle_calls, &busy_calls, started.elapsed());

    let mut commit_to_receipt = Latencies::default();
    let mut missing = 0u64;
    let (created, pushed, duplicates) = {
        let t = times.lock().expect("not poisoned");
        for (key, (_, committed)) in &t.started {
            match t.received.get(key) {
                Some(received) => {
                    commit_to_receipt.record(received.saturating_duration_since(*committed))
                }
                None => missing += 1,
            }
        }
        (t.started.len(), t.received.len(), t.duplicates)
    };

    // Tasklist's way, on the same engine: each user's own task query.
    eprintln!(
        "usertasks: timing {} Tasklist-style task queries",
        args.poll_samples
    );
    let mut tasklist_query = Latencies::default();
    for i in 0..args.poll_samples {
        let user = bench.user("utsub", i % args.subscribers);
        let t0 = Instant::now();
        let response = http
            .get(format!("{engine}/task"))
            .query(&[
                ("assignee", user.as_str()),
                ("sortBy", "created"),
                ("sortOrder", "desc"),
                ("maxResults", "50"),
            ])
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("engine task query: {}", response.status());
        }
        response.bytes().await?;
        tasklist_query.record(t0.elapsed());
    }
    let users = args.idle + args.subscribers;
    let tasklist_per_sec = users as f64 / args.poll_interval_secs as f64;

    // The engine is shared with the scenarios after this one.
    futures::stream::iter(instances)
        .for_each_concurrent(8, |id| {
            let (http, engine) = (http.clone(), engine.clone());
            async move {
                let _ = http
                    .delete(format!("{engine}/process-instance/{id}"))
                    .query(&[("skipCustomListeners", "true")])
                    .send()
                    .await;
            }
        })
        .await;

    let figures = json!({
        "idle_streams": idle.len(),
        "subscribers": args.subscribers,
        "tasks": args.tasks,
        "rate_target": args.rate,
        "rate_achieved": (created as f64 / creating.as_secs_f64()).round(),
        "created": created,
        "create_errors": *errors.lock().expect("not poisoned"),
        "pushed": pushed,
        "not_pushed": missing,
        "pushed_twice": duplicates,
        "commit_to_receipt": commit_to_receipt.summary(),
        "engine_queries_per_sec_idle": round(total(&idle_per_sec)),
        "engine_queries_per_sec_creating": round(total(&busy_per_sec)),
        "engine_queries_idle_by_operation": idle_per_sec,
        "engine_queries_creating_by_operation": busy_per_sec,
        "tasklist_users": users,
        "tasklist_interval_secs": args.poll_interval_secs,
        "tasklist_queries_per_sec": round(tasklist_per_sec),
        "tasklist_query": tasklist_query.summary(),
        "tasklist_engine_busy_secs_per_sec": round(
            tasklist_per_sec * tasklist_query.summary()["mean_ms"].as_f64().unwrap_or(0.0) / 1000.0
        ),
    });
    drop(idle);
    bench.write("usertasks", &figures)
}

fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn total(by_operation: &Value) -> f64 {
    by_operation
        .as_object()
        .map(|o| o.values().filter_map(Value::as_f64).sum())
        .unwrap_or(0.0)
}

/// ramp's engine calls so far, by operation, from its metrics.
async fn engine_calls(http: &reqwest::Client, metrics: &str) -> Result<HashMap<String, f64>> {
    let text = http
        .get(metrics)
        .send()
        .await
        .context("reading ramp's metrics")?
        .text()
        .await?;
    let mut calls = HashMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("ramp_engine_request_duration_seconds_count{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let operation = labels
            .split_once("operation=\"")
            .and_then(|(_, o)| o.split_once('"'))
            .map(|(o, _)| o.to_owned())
            .unwrap_or_default();
        *calls.entry(operation).or_default() += value.trim().parse::<f64>().unwrap_or(0.0);
    }
    Ok(calls)
}

/// Calls per second by operation between two readings.
fn per_sec(before: &HashMap<String, f64>, after: &HashMap<String, f64>, over: Duration) -> Value {
    let secs = over.as_secs_f64().max(0.001);
    let mut rates = serde_json::Map::new();
    for (operation, count) in after {
        let delta = count - before.get(operation).copied().unwrap_or(0.0);
        if delta > 0.0 {
            rates.insert(operation.clone(), json!(round(delta / secs)));
        }
    }
    Value::Object(rates)
}
