//! Write throughput: CreateFormTask, then SubmitForm of the forms just created, each
//! at a fixed number of concurrent clients for a fixed time; and, in the same run,
//! pgbench inserting single form-task-shaped rows (a table like form_tasks, with its
//! indexes) at the same client count against the same server. Each phase also
//! reports the CPU time every process group (ramp, PostgreSQL, the engine, the load
//! tool, pgbench) spent per operation: on a machine this small they share two cores,
//! so that split is what limits throughput. With the engine's process id given,
//! SubmitForm runs a second time with the engine stopped (SIGSTOP): the submit and
//! its outbox write alone, without the engine's work of taking each answer, which
//! waits until the engine is resumed (SIGCONT) and the outbox drains.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ramp::proto::SubmitFormRequest;
use serde_json::{Value, json};

use crate::client::{Bench, Target, answer, authorized};
use crate::stats::{Latencies, cpu_by_group, cpu_per_op};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub target: Target,
    /// Client counts to run at, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "4,8")]
    pub clients: Vec<usize>,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 20)]
    pub duration_secs: u64,
    /// Users the created forms are spread over.
    #[arg(long, default_value_t = 1_000)]
    pub users: usize,
    /// pgbench to run next to ramp (skipped when not given).
    #[arg(long, env = "RAMP_BENCH_PGBENCH")]
    pub pgbench: Option<PathBuf>,
    /// Seconds to wait for the outbox to drain after the submits.
    #[arg(long, default_value_t = 300)]
    pub drain_secs: u64,
    /// The engine's process, stopped for a second SubmitForm run (skipped when not
    /// given).
    #[arg(long, env = "RAMP_BENCH_ENGINE_PID")]
    pub engine_pid: Option<u32>,
    /// The engine's REST base: the same answers handed to it directly, the
    /// reference for SubmitForm's delivered rate (skipped when not given).
    #[arg(long, env = "RAMP_CAMUNDA_URL")]
    pub camunda_url: Option<String>,
}

const PGBENCH_TABLE: &str = "bench_pgbench_form_tasks";

pub async fn run(args: Args) -> Result<()> {
    let bench = Arc::new(Bench::connect(args.target).await?);
    let db = bench.database().await?;
    let hosts = Arc::new(bench.start_hosts(16).await?);
    db.batch_execute(&format!(
        "DROP TABLE IF EXISTS {PGBENCH_TABLE};
         CREATE TABLE {PGBENCH_TABLE} (LIKE form_tasks INCLUDING ALL);"
    ))
    .await?;
    let mut runs = Vec::new();
    for &clients in &args.clients {
        let duration = Duration::from_secs(args.duration_secs);
        let pgbench = match &args.pgbench {
            Some(path) => Some(pgbench(path, &bench.target.database_url, clients, duration).await?),
            None => None,
        };
        eprintln!(
            "writes: CreateFormTask, {clients} clients, {} s",
            args.duration_secs
        );
        reset_statements(&db).await?;
        let (mut create, created) = creates(&bench, &hosts, clients, duration, args.users).await;
        create["top_statements"] = top_statements(&db).await?;
        eprintln!(
            "writes: SubmitForm, {clients} clients, {} s",
            args.duration_secs
        );
        reset_statements(&db).await?;
        let mut submit = submits(&bench, clients, duration, created.clone()).await;
        submit["top_statements"] = top_statements(&db).await?;
        let drained = drain(&db, Duration::from_secs(args.drain_secs)).await?;
        // Answers reach the engine at the rate the whole way takes: the submits'
        // time and then the outbox's drain.
        let delivered_per_sec = match (submit["ok"].as_f64(), drained["secs"].as_f64()) {
            (Some(ok), Some(drain)) if drained["pending"].as_i64() == Some(0) => {
                json!((ok / (args.duration_secs as f64 + drain)).round())
            }
            _ => Value::Null,
        };
        let direct = match &args.camunda_url {
            Some(engine) => {
                eprintln!(
                    "writes: the same answers to the engine directly (POST /message), {clients} clients, {} s",
                    args.duration_secs
                );
                engine_directly(engine, &hosts, clients, duration).await
            }
            None => Value::Null,
        };
        let (submit_paused, drained_after_pause) = match args.engine_pid {
            Some(engine) => {
                eprintln!(
                    "writes: SubmitForm with the engine stopped, {clients} clients, {} s",
                    args.duration_secs
                );
                signal(engine, "STOP")?;
                reset_statements(&db).await?;
                let mut figures = submits(&bench, clients, duration, created).await;
                figures["top_statements"] = top_statements(&db).await?;
                signal(engine, "CONT")?;
                // Delivering these would take the engine minutes (it takes about a
                // hundred answers a second here) and is not what this phase
                // measures: the benchmark's database lets them go.
                let discarded = db
                    .execute(
                        "UPDATE correlation_outbox SET state = 'undeliverable',
                            last_error = 'discarded by the benchmark', lease_owner = NULL
                         WHERE state = 'pending'",
                        &[],
                    )
                    .await?;
                (figures, json!({ "discarded": discarded }))
            }
            None => (Value::Null, Value::Null),
        };
        let tps = |v: &Value| v["per_sec"].as_f64().unwrap_or(0.0);
        let ratio = |v: &Value| match &pgbench {
            Some(p) if tps(p) > 0.0 => json!((tps(v) / tps(p) * 1000.0).round() / 1000.0),
            _ => Value::Null,
        };
        runs.push(json!({
            "clients": clients,
            "pgbench_insert": pgbench.clone().unwrap_or(Value::Null),
            "create_form_task": create,
            "create_ratio": ratio(&create),
            "submit_form": submit,
            "submit_ratio": ratio(&submit),
            "outbox_drain": drained,
            "submit_delivered_per_sec": delivered_per_sec,
            "engine_direct_message": direct,
            "submit_delivered_ratio": match (delivered_per_sec.as_f64(), direct["per_sec"].as_f64()) {
                (Some(d), Some(e)) if e > 0.0 => json!((d / e * 1000.0).round() / 1000.0),
                _ => Value::Null,
            },
            "submit_form_engine_stopped": submit_paused,
            "submit_engine_stopped_ratio": ratio(&submit_paused),
            "outbox_after_stop": drained_after_pause,
        }));
    }
    bench.write(
        "writes",
        &json!({ "duration_secs": args.duration_secs, "runs": runs }),
    )
}

/// Runs `clients` loops of `call` until `duration` has passed.
async fn closed_loop<F, Fut>(clients: usize, duration: Duration, call: F) -> Value
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Option<Result<(), tonic::Status>>> + Send,
{
    let call = Arc::new(call);
    let server_pid = crate::client::server_pid();
    let cpu_before = cpu_by_group(server_pid);
    let started = Instant::now();
    let deadline = started + duration;
    let mut loops = Vec::new();
    for client in 0..clients {
        let call = call.clone();
        loops.push(tokio::spawn(async move {
            let mut latencies = Latencies::default();
            let mut errors = Vec::new();
            let mut n = 0u64;
            while Instant::now() < deadline {
                let t0 = Instant::now();
                match call(client, n).await {
                    None => break,
                    Some(Ok(())) => latencies.record(t0.elapsed()),
                    Some(Err(status)) => errors.push(status.to_string()),
                }
                n += 1;
            }
            (latencies, errors)
        }));
    }
    let mut all = Latencies::default();
    let mut errors = Vec::new();
    for handle in loops {
        let (latencies, mut errs) = handle.await.expect("a load loop does not panic");
        all.add(&latencies);
        errors.append(&mut errs);
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_per_op(&cpu_before, &cpu_by_group(server_pid), all.len());
    if let Some(first) = errors.first() {
        eprintln!("writes: {} errors, the first: {first}", errors.len());
    }
    json!({
        "ok": all.len(),
        "errors": errors.len(),
        "per_sec": (all.len() as f64 / secs).round(),
        "latency": all.summary(),
        "cpu_ms_per_op": cpu,
    })
}

/// Forgets what pg_stat_statements counted so far (a no-op without it).
async fn reset_statements(db: &tokio_postgres::Client) -> Result<()> {
    let _ = db.execute("SELECT pg_stat_statements_reset()", &[]).await;
    Ok(())
}

/// The statements that took the database's time since the last reset, in ramp's
/// database: the most costly first, with calls and total milliseconds.
async fn top_statements(db: &tokio_postgres::Client) -> Result<Value> {
    let Ok(rows) = db
        .query(
            "SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 120), calls,
                    round(total_exec_time::numeric, 1)::float8
             FROM pg_stat_statements
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
             ORDER BY total_exec_time DESC LIMIT 6",
            &[],
        )
        .await
    else {
        return Ok(Value::Null);
    };
    Ok(Value::Array(
        rows.iter()
            .map(|r| {
                json!({
                    "query": r.get::<_, String>(0),
                    "calls": r.get::<_, i64>(1),
                    "total_ms": r.get::<_, f64>(2),
                })
            })
            .collect(),
    ))
}

/// Sends `signal` (STOP, CONT) to a process.
fn signal(pid: u32, signal: &str) -> Result<()> {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()?;
    if !status.success() {
        bail!("kill -{signal} {pid} failed");
    }
    Ok(())
}

type Created = Arc<Mutex<VecDeque<(String, String)>>>;

async fn creates(
    bench: &Arc<Bench>,
    hosts: &Arc<Vec<(String, String)>>,
    clients: usize,
    duration: Duration,
    users: usize,
) -> (Value, Created) {
    let created: Created = Arc::default();
    let (b, h, c) = (bench.clone(), hosts.clone(), created.clone());
    let figures = closed_loop(clients, duration, move |client, n| {
        let (bench, hosts, created) = (b.clone(), h.clone(), c.clone());
        async move {
            let i = (n as usize) * 7919 + client;
            let assignee = bench.user("writer", i % users);
            let external = format!("writes-{}-{clients}-{client}-{n}", bench.run);
            let mut forms = bench.forms(client);
            let host = &hosts[i % hosts.len()];
            Some(
                bench
                    .create_form(&mut forms, host, &assignee, external)
                    .await
                    .map(|form| {
                        let id = form.summary.map(|s| s.id).unwrap_or_default();
                        created
                            .lock()
                            .expect("not poisoned")
                            .push_back((id, assignee));
                    }),
            )
        }
    })
    .await;
    (figures, created)
}

async fn submits(
    bench: &Arc<Bench>,
    clients: usize,
    duration: Duration,
    created: Created,
) -> Value {
    let b = bench.clone();
    closed_loop(clients, duration, move |client, _| {
        let (bench, created) = (b.clone(), created.clone());
        async move {
            let (id, assignee) = created.lock().expect("not poisoned").pop_front()?;
            let request = SubmitFormRequest {
                id,
                data: Some(answer()),
                request_id: String::new(),
            };
            let bearer = bench.bearer(&assignee, &[]);
            Some(
                bench
                    .forms(client)
                    .submit_form(authorized(request, bearer))
                    .await
                    .map(|_| ()),
            )
        }
    })
    .await
}

/// The reference for delivered answers: `clients` loops handing the engine the
/// answer message of the benchmark's process directly, one `POST /message` each (the
/// engine's own cheapest way to take it), to the host instances the forms live on.
async fn engine_directly(
    engine: &str,
    hosts: &Arc<Vec<(String, String)>>,
    clients: usize,
    duration: Duration,
) -> Value {
    let http = reqwest::Client::new();
    let url = format!("{}/message", engine.trim_end_matches('/'));
    let hosts = hosts.clone();
    closed_loop(clients, duration, move |client, n| {
        let (http, url, hosts) = (http.clone(), url.clone(), hosts.clone());
        async move {
            let (_, instance) = &hosts[(n as usize * 7919 + client) % hosts.len()];
            let body = json!({
                "messageName": crate::client::FORM,
                "processInstanceId": instance,
                "processVariables": {"answer": {"value": "yes", "type": "String"}},
            });
            let sent = http.post(&url).json(&body).send().await;
            Some(match sent {
                Ok(response) if response.status().is_success() => Ok(()),
                Ok(response) => Err(tonic::Status::unknown(format!(
                    "{}: {}",
                    response.status(),
                    response.text().await.unwrap_or_default()
                ))),
                Err(error) => Err(tonic::Status::unavailable(error.to_string())),
            })
        }
    })
    .await
}

/// Waits for the dispatcher to deliver every submission; how long that took.
async fn drain(db: &tokio_postgres::Client, limit: Duration) -> Result<Value> {
    let started = Instant::now();
    loop {
        let row = db
            .query_one(
                "SELECT count(*) FILTER (WHERE state = 'pending'),
                        count(*) FILTER (WHERE state = 'delivered'),
                        count(*) FILTER (WHERE state IN ('failed', 'undeliverable'))
                 FROM correlation_outbox",
                &[],
            )
            .await?;
        let (pending, delivered, failed): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
        if pending == 0 || started.elapsed() > limit {
            return Ok(json!({
                "pending": pending,
                "delivered_total": delivered,
                "failed_total": failed,
                "secs": (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
            }));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// pgbench, durable single-row inserts into a table shaped like form_tasks.
async fn pgbench(
    path: &PathBuf,
    database_url: &str,
    clients: usize,
    duration: Duration,
) -> Result<Value> {
    let script = std::env::temp_dir().join(format!("ramp-bench-insert-{}.sql", std::process::id()));
    std::fs::write(
        &script,
        format!(
            "INSERT INTO {PGBENCH_TABLE} (id, external_task_id, business_key, form_name, message_name,
    assignee, status, process_instance_id, root_process_instance_id, process_definition_key,
    topic_name, activity_id, prefill)
  VALUES (gen_random_uuid(), gen_random_uuid()::text, 'host1@bench.example', 'bench_answer',
    'bench_answer', 'writer' || (random() * 1000)::int || '@bench.example', 'pending',
    'a7d6c1f0-0000-11ef-8000-000000000001', 'a7d6c1f0-0000-11ef-8000-000000000001',
    'ramp_bench', 'submit_form', 'bench_answer', '{{}}');\n"
        ),
    )?;
    eprintln!(
        "writes: pgbench, {clients} clients, {} s",
        duration.as_secs()
    );
    let cpu_before = cpu_by_group(crate::client::server_pid());
    let output = tokio::process::Command::new(path)
        .args(["-n", "-r", "-f"])
        .arg(&script)
        .args([
            "-c",
            &clients.to_string(),
            "-j",
            &clients.min(2).to_string(),
        ])
        .args(["-T", &duration.as_secs().to_string()])
        .arg(database_url)
        .output()
        .await
        .with_context(|| format!("running {}", path.display()))?;
    let _ = std::fs::remove_file(&script);
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "pgbench failed: {}{}",
            stdout,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let field = |prefix: &str| -> Option<f64> {
        stdout
            .lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .and_then(|l| {
                l.split(['=', ' '])
                    .filter_map(|w| w.trim().parse().ok())
                    .next()
            })
    };
    let tps = field("tps").context("pgbench printed no tps")?;
    // pgbench has ended: its own CPU time is gone from /proc, PostgreSQL's is not.
    let transactions = field("number of transactions actually processed").unwrap_or(0.0);
    let cpu = cpu_per_op(
        &cpu_before,
        &cpu_by_group(crate::client::server_pid()),
        transactions as u64,
    );
    Ok(json!({
        "per_sec": tps.round(),
        "latency_mean_ms": field("latency average"),
        "cpu_ms_per_op": cpu,
    }))
}
