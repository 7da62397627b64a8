//! Polling against push. The same users, and the same stream of new forms, twice:
//! first every user polls ListFormTasks every T seconds (the seed's design), then
//! every user holds a PendingForms stream. For each: the database's statements per
//! second and the delay from a form's commit to its user seeing it. Before the
//! creates start, the streams' idle cost is measured alone.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use ramp::proto::{
    FormTaskStatus, ListFormTasksRequest, PendingFormsResponse, pending_forms_response::Event,
};
use serde_json::{Value, json};
use tokio::time::MissedTickBehavior;

use crate::client::{Bench, Target, authorized, statements_run};
use crate::scenarios::streams::open_streams;
use crate::stats::Latencies;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub target: Target,
    /// Users, each polling or holding a stream.
    #[arg(long, default_value_t = 10_000)]
    pub users: usize,
    /// Seconds between one user's polls.
    #[arg(long, default_value_t = 5)]
    pub interval_secs: u64,
    /// New forms per second, for random users.
    #[arg(long, default_value_t = 20)]
    pub rate: u32,
    /// Seconds each mode runs.
    #[arg(long, default_value_t = 30)]
    pub duration_secs: u64,
}

/// form id -> when its CreateFormTask answered.
type Committed = Arc<Mutex<HashMap<String, Instant>>>;
/// form id -> when its user first saw it.
type Seen = Arc<Mutex<HashMap<String, Instant>>>;

pub async fn run(args: Args) -> Result<()> {
    let bench = Arc::new(Bench::connect(args.target).await?);
    let db = bench.database().await?;
    let hosts = Arc::new(bench.start_hosts(4).await?);
    let duration = Duration::from_secs(args.duration_secs);

    // Polling.
    eprintln!(
        "polling: {} users polling every {} s, {} new forms/s, {} s",
        args.users, args.interval_secs, args.rate, args.duration_secs
    );
    let committed: Committed = Arc::default();
    let seen: Seen = Arc::default();
    let stop = Arc::new(tokio::sync::Notify::new());
    let mut pollers = Vec::new();
    let poll_errors = Arc::new(Mutex::new(0u64));
    for i in 0..args.users {
        let (bench, seen, stop, errors) = (
            bench.clone(),
            seen.clone(),
            stop.clone(),
            poll_errors.clone(),
        );
        let interval = Duration::from_secs(args.interval_secs);
        // Polls spread evenly over the interval.
        let offset = interval.mul_f64(i as f64 / args.users as f64);
        pollers.push(tokio::spawn(async move {
            let user = bench.user("poll", i);
            let bearer = bench.mint(&user, &[]);
            let mut known = HashSet::new();
            let mut ticker =
                tokio::time::interval_at(tokio::time::Instant::now() + offset, interval);
            ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.notified() => return,
                    _ = ticker.tick() => {}
                }
                let request = ListFormTasksRequest {
                    page_size: 50,
                    statuses: vec![FormTaskStatus::Pending as i32],
                    ..Default::default()
                };
                match bench
                    .forms(i)
                    .list_form_tasks(authorized(request, bearer.clone()))
                    .await
                {
                    Ok(response) => {
                        let now = Instant::now();
                        for form in response.into_inner().form_tasks {
                            if known.insert(form.id.clone()) {
                                seen.lock().expect("not poisoned").insert(form.id, now);
                            }
                        }
                    }
                    Err(_) => *errors.lock().expect("not poisoned") += 1,
                }
            }
        }));
    }
    // One interval of warm-up, so every poller runs.
    tokio::time::sleep(Duration::from_secs(args.interval_secs)).await;
    let polling = measure(
        &bench, &db, &hosts, "poll", args.users, args.rate, duration, &committed, &seen,
    )
    .await?;
    for _ in 0..pollers.len() {
        stop.notify_one();
    }
    stop.notify_waiters();
    for poller in pollers {
        poller.abort();
    }
    let poll_errors = *poll_errors.lock().expect("not poisoned");

    // Push.
    eprintln!("polling: {} users holding streams", args.users);
    let committed: Committed = Arc::default();
    let seen: Seen = Arc::default();
    let streams = open_streams(&bench, "push", args.users, 256).await?;
    let mut readers = Vec::new();
    for mut stream in streams {
        let seen = seen.clone();
        readers.push(tokio::spawn(async move {
            while let Ok(Some(PendingFormsResponse { event, .. })) = stream.message().await {
                if let Some(Event::Added(form)) = event {
                    seen.lock()
                        .expect("not poisoned")
                        .insert(form.id, Instant::now());
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_secs = args.duration_secs.min(10);
    let (before, unit) = statements_run(&db).await?;
    tokio::time::sleep(Duration::from_secs(idle_secs)).await;
    let (after, _) = statements_run(&db).await?;
    let idle_per_sec = (after - before) as f64 / idle_secs as f64;
    let push = measure(
        &bench, &db, &hosts, "push", args.users, args.rate, duration, &committed, &seen,
    )
    .await?;
    for reader in readers {
        reader.abort();
    }
    bench.write(
        "polling",
        &json!({
            "users": args.users,
            "interval_secs": args.interval_secs,
            "rate": args.rate,
            "duration_secs": args.duration_secs,
            "counted": unit,
            "polling": polling,
            "poll_errors": poll_errors,
            "push": push,
            "push_idle_per_sec": (idle_per_sec * 10.0).round() / 10.0,
        }),
    )
}

/// Creates forms at `rate` for random users of `group` for `duration`; statements
/// per second meanwhile, and how long each form took to be seen.
#[allow(clippy::too_many_arguments)]
async fn measure(
    bench: &Arc<Bench>,
    db: &tokio_postgres::Client,
    hosts: &Arc<Vec<(String, String)>>,
    group: &str,
    users: usize,
    rate: u32,
    duration: Duration,
    committed: &Committed,
    seen: &Seen,
) -> Result<Value> {
    let (before, _) = statements_run(db).await?;
    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(1) as f64));
    let mut creates = Vec::new();
    let mut n = 0usize;
    while started.elapsed() < duration {
        ticker.tick().await;
        let (bench, hosts, committed) = (bench.clone(), hosts.clone(), committed.clone());
        let group = group.to_owned();
        n += 1;
        creates.push(tokio::spawn(async move {
            let i = n.wrapping_mul(2_654_435_761) % users;
            let assignee = bench.user(&group, i);
            let external = format!("{group}-{}-{n}", bench.run);
            let mut forms = bench.forms(n);
            if let Ok(form) = bench
                .create_form(&mut forms, &hosts[n % hosts.len()], &assignee, external)
                .await
            {
                let id = form.summary.map(|s| s.id).unwrap_or_default();
                committed
                    .lock()
                    .expect("not poisoned")
                    .insert(id, Instant::now());
                true
            } else {
                false
            }
        }));
    }
    let mut create_errors = 0;
    for create in creates {
        if !create.await.unwrap_or(false) {
            create_errors += 1;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let (after, _) = statements_run(db).await?;
    // The last forms need up to one more poll to be seen.
    let wait = Instant::now();
    loop {
        let all = {
            let (c, s) = (
                committed.lock().expect("not poisoned"),
                seen.lock().expect("not poisoned"),
            );
            c.keys().all(|id| s.contains_key(id))
        };
        if all || wait.elapsed() > Duration::from_secs(15) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (c, s) = (
        committed.lock().expect("not poisoned"),
        seen.lock().expect("not poisoned"),
    );
    let mut delay = Latencies::default();
    let mut unseen = 0;
    for (id, at) in c.iter() {
        match s.get(id) {
            Some(seen_at) => delay.record(seen_at.saturating_duration_since(*at)),
            None => unseen += 1,
        }
    }
    Ok(json!({
        "statements_per_sec": ((after - before) as f64 / secs).round(),
        "created": c.len(),
        "create_errors": create_errors,
        "unseen": unseen,
        "delay": delay.summary(),
    }))
}
