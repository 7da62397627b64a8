//! ramp against the engine: one user's first page of 50 open items among 100,000
//! (1,000 users with 100 each), from ramp's ListFormTasks and from the engine's own
//! `GET /task?assignee=`, over the same number of user tasks in the engine (kept in
//! PostgreSQL on this machine).
//!
//! The engine's tasks are real: instances of bench/processes/ramp_bench_inbox.bpmn,
//! each holding 100 user tasks for one user. ramp's form tasks are inserted straight
//! into its table (ListFormTasks reads nothing else), which takes seconds where
//! 100,000 CreateFormTask calls would take minutes.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::{StreamExt, TryStreamExt};
use ramp::proto::{FormTaskStatus, ListFormTasksRequest};
use rand::Rng;
use serde_json::json;

use crate::client::{Bench, Target, authorized};
use crate::stats::Latencies;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub target: Target,
    /// The engine's REST base.
    #[arg(long, env = "RAMP_CAMUNDA_URL")]
    pub camunda_url: String,
    /// Users, each with `per_user` open items on both sides.
    #[arg(long, default_value_t = 1_000)]
    pub users: usize,
    #[arg(long, default_value_t = 100)]
    pub per_user: usize,
    /// Queries timed on each side.
    #[arg(long, default_value_t = 1_000)]
    pub samples: usize,
    /// Page size.
    #[arg(long, default_value_t = 50)]
    pub page: i32,
}

pub async fn run(args: Args) -> Result<()> {
    let bench = Bench::connect(args.target).await?;
    let http = reqwest::Client::new();
    let engine = args.camunda_url.trim_end_matches('/').to_owned();

    eprintln!(
        "inbox: starting {} engine instances with {} user tasks each",
        args.users, args.per_user
    );
    let seeded = Instant::now();
    futures::stream::iter(0..args.users)
        .map(|i| {
            let (http, engine, user) = (http.clone(), engine.clone(), bench.user("inbox", i));
            async move {
                let body = json!({
                    "businessKey": user,
                    "variables": {
                        "assignee": {"value": user, "type": "String"},
                        "tasks": {"value": args.per_user, "type": "Integer"},
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
                Ok(())
            }
        })
        .buffer_unordered(2)
        .try_collect::<()>()
        .await?;
    let engine_seed_secs = seeded.elapsed().as_secs_f64();

    let db = bench.database().await?;
    let seeded = Instant::now();
    let users: Vec<String> = (0..args.users).map(|i| bench.user("inbox", i)).collect();
    db.execute(
        "INSERT INTO form_tasks (id, external_task_id, business_key, form_name, message_name,
             assignee, status, process_instance_id, root_process_instance_id,
             process_definition_key, activity_id, created_at, updated_at)
         SELECT gen_random_uuid(), 'inbox-' || u.i || '-' || n, u.email, 'bench_answer',
             'bench_answer', u.email, 'pending', 'inbox-instance-' || u.i,
             'inbox-instance-' || u.i, 'ramp_bench_inbox', 'bench_answer',
             now() - make_interval(secs => n), now()
         FROM unnest($1::text[]) WITH ORDINALITY AS u(email, i), generate_series(1, $2) AS n",
        &[&users, &(args.per_user as i32)],
    )
    .await
    .context("seeding ramp's form tasks")?;
    db.batch_execute("ANALYZE form_tasks").await?;
    let ramp_seed_secs = seeded.elapsed().as_secs_f64();
    let engine_tasks: u64 = http
        .get(format!("{engine}/task/count"))
        .send()
        .await?
        .json::<serde_json::Value>()
        .await?["count"]
        .as_u64()
        .unwrap_or(0);

    eprintln!("inbox: timing {} queries on each side", args.samples);
    let mut ramp_latency = Latencies::default();
    let mut engine_latency = Latencies::default();
    let mut forms = bench.forms(0);
    let mut rng = rand::rng();
    let (mut ramp_items, mut engine_items) = (0usize, 0usize);
    // Both warm first.
    for round in 0..args.samples + 50 {
        if round == 50 {
            // From here on, what each side's database did is counted.
            db.execute("SELECT pg_stat_statements_reset()", &[]).await?;
        }
        let user = &users[rng.random_range(0..users.len())];
        let bearer = bench.bearer(user, &[]);
        let request = ListFormTasksRequest {
            page_size: args.page,
            statuses: vec![FormTaskStatus::Pending as i32],
            ..Default::default()
        };
        let t0 = Instant::now();
        let page = forms
            .list_form_tasks(authorized(request, bearer))
            .await?
            .into_inner();
        let ramp_elapsed = t0.elapsed();
        let t0 = Instant::now();
        let tasks: Vec<serde_json::Value> = http
            .get(format!("{engine}/task"))
            .query(&[
                ("assignee", user.as_str()),
                ("sortBy", "created"),
                ("sortOrder", "asc"),
                ("firstResult", "0"),
                ("maxResults", &args.page.to_string()),
            ])
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let engine_elapsed = t0.elapsed();
        if round >= 50 {
            ramp_latency.record(ramp_elapsed);
            engine_latency.record(engine_elapsed);
            ramp_items += page.form_tasks.len();
            engine_items += tasks.len();
        }
    }
    // The database's own time per page on each side (ramp's database and the
    // engine's; background work of both, a few statements a second, included).
    let mut database_ms_per_page = serde_json::Map::new();
    for row in db
        .query(
            "SELECT CASE WHEN d.datname = current_database() THEN 'ramp' ELSE 'engine' END,
                    sum(s.calls)::bigint, sum(s.total_exec_time)
             FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
             WHERE d.datname IN (current_database(), 'engine')
             GROUP BY 1",
            &[],
        )
        .await?
    {
        let (side, calls, total_ms): (String, i64, f64) = (row.get(0), row.get(1), row.get(2));
        database_ms_per_page.insert(
            side,
            json!({
                "ms": (total_ms / args.samples.max(1) as f64 * 1000.0).round() / 1000.0,
                "statements": (calls as f64 / args.samples.max(1) as f64 * 10.0).round() / 10.0,
            }),
        );
    }
    let ramp = ramp_latency.summary();
    let engine_summary = engine_latency.summary();
    let ratio = |q: &str| {
        let (r, e) = (
            ramp[q].as_f64().unwrap_or(0.0),
            engine_summary[q].as_f64().unwrap_or(0.0),
        );
        if r > 0.0 {
            json!((e / r * 10.0).round() / 10.0)
        } else {
            json!(null)
        }
    };
    tokio::time::sleep(Duration::from_millis(1)).await;
    bench.write(
        "inbox",
        &json!({
            "users": args.users,
            "per_user": args.per_user,
            "engine_user_tasks": engine_tasks,
            "page": args.page,
            "samples": args.samples,
            "engine_seed_secs": (engine_seed_secs * 10.0).round() / 10.0,
            "ramp_seed_secs": (ramp_seed_secs * 10.0).round() / 10.0,
            "items_per_page": {"ramp": ramp_items / args.samples.max(1), "engine": engine_items / args.samples.max(1)},
            "ramp_list_form_tasks": ramp,
            "engine_task_query": engine_summary,
            "ratio_p50": ratio("p50_ms"),
            "ratio_p99": ratio("p99_ms"),
            "database_per_page": database_ms_per_page,
        }),
    )
}
