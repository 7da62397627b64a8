//! Soak: a steady mix of every kind of call for a long time (streams held, forms
//! created and submitted, processes started and cancelled). Counts errors and reads
//! the server's memory every few seconds; after the warm-up, the memory's growth per
//! minute is the slope of a least-squares line through the readings.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ramp::proto::{
    CancelProcessRequest, PendingFormsResponse, StartProcessRequest, SubmitFormRequest,
    pending_forms_response::Event,
};
use serde_json::json;
use tokio::sync::mpsc;

use crate::client::{Bench, HOST_DEFINITION, Target, answer, authorized};
use crate::scenarios::streams::open_streams;
use crate::stats::{Latencies, rss_bytes};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub target: Target,
    /// Seconds of load.
    #[arg(long, default_value_t = 600)]
    pub duration_secs: u64,
    /// Seconds left out of the memory slope.
    #[arg(long, default_value_t = 120)]
    pub warmup_secs: u64,
    /// Users holding a stream.
    #[arg(long, default_value_t = 1_000)]
    pub streams: usize,
    /// Forms created (and later submitted) per second.
    #[arg(long, default_value_t = 50)]
    pub rate: u32,
    /// Seconds between memory readings.
    #[arg(long, default_value_t = 10)]
    pub sample_secs: u64,
}

#[derive(Default)]
struct Counts {
    created: AtomicU64,
    submitted: AtomicU64,
    started: AtomicU64,
    cancelled: AtomicU64,
    pushed: AtomicU64,
    errors: AtomicU64,
}

pub async fn run(args: Args) -> Result<()> {
    let pid = args
        .target
        .server_pid
        .context("--server-pid is needed to read the server's memory")?;
    let bench = Arc::new(Bench::connect(args.target).await?);
    let hosts = Arc::new(bench.start_hosts(8).await?);
    let counts = Arc::new(Counts::default());
    let streams = open_streams(&bench, "soak", args.streams, 128).await?;
    for mut stream in streams {
        let counts = counts.clone();
        tokio::spawn(async move {
            loop {
                match stream.message().await {
                    Ok(Some(PendingFormsResponse {
                        event: Some(Event::Added(_)),
                        ..
                    })) => {
                        counts.pushed.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => {
                        counts.errors.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
            }
        });
    }

    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration_secs);
    let (to_submit, mut submit_queue) = mpsc::unbounded_channel::<(String, String)>();

    // Creates at a fixed rate.
    let creator = {
        let (bench, hosts, counts) = (bench.clone(), hosts.clone(), counts.clone());
        let users = args.streams;
        let rate = args.rate;
        tokio::spawn(async move {
            let mut ticker =
                tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(1) as f64));
            let mut n = 0usize;
            let mut latency = Latencies::default();
            while Instant::now() < deadline {
                ticker.tick().await;
                n += 1;
                let assignee = bench.user("soak", n.wrapping_mul(2_654_435_761) % users);
                let mut forms = bench.forms(n);
                let t0 = Instant::now();
                match bench
                    .create_form(
                        &mut forms,
                        &hosts[n % hosts.len()],
                        &assignee,
                        format!("soak-{}-{n}", bench.run),
                    )
                    .await
                {
                    Ok(form) => {
                        latency.record(t0.elapsed());
                        counts.created.fetch_add(1, Ordering::Relaxed);
                        let id = form.summary.map(|s| s.id).unwrap_or_default();
                        let _ = to_submit.send((id, assignee));
                    }
                    Err(status) => {
                        eprintln!("soak: create: {status}");
                        counts.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            latency
        })
    };
    // Submits what was created.
    let submitter = {
        let (bench, counts) = (bench.clone(), counts.clone());
        tokio::spawn(async move {
            let mut latency = Latencies::default();
            while let Some((id, assignee)) = submit_queue.recv().await {
                let request = SubmitFormRequest {
                    id,
                    data: Some(answer()),
                    request_id: String::new(),
                };
                let t0 = Instant::now();
                match bench
                    .forms(1)
                    .submit_form(authorized(request, bench.bearer(&assignee, &[])))
                    .await
                {
                    Ok(_) => {
                        latency.record(t0.elapsed());
                        counts.submitted.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(status) => {
                        eprintln!("soak: submit: {status}");
                        counts.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            latency
        })
    };
    // Starts and cancels a process every second.
    let starter = {
        let (bench, counts) = (bench.clone(), counts.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while Instant::now() < deadline {
                tokio::time::sleep(Duration::from_secs(1)).await;
                n += 1;
                let user = bench.user("starter", n);
                let bearer = bench.bearer(&user, &[]);
                let start = StartProcessRequest {
                    definition_key: HOST_DEFINITION.into(),
                    business_key: user.clone(),
                    variables: None,
                    request_id: String::new(),
                };
                let process = match bench
                    .processes(n)
                    .start_process(authorized(start, bearer.clone()))
                    .await
                {
                    Ok(response) => {
                        counts.started.fetch_add(1, Ordering::Relaxed);
                        response.into_inner().process.unwrap_or_default()
                    }
                    Err(status) => {
                        eprintln!("soak: start: {status}");
                        counts.errors.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                };
                let cancel = CancelProcessRequest {
                    id: process.id,
                    reason: "soak".into(),
                };
                match bench
                    .processes(n)
                    .cancel_process(authorized(cancel, bearer))
                    .await
                {
                    Ok(_) => counts.cancelled.fetch_add(1, Ordering::Relaxed),
                    Err(status) => {
                        eprintln!("soak: cancel: {status}");
                        counts.errors.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        })
    };

    let mut samples: Vec<(f64, u64)> = Vec::new();
    while Instant::now() < deadline {
        samples.push((started.elapsed().as_secs_f64(), rss_bytes(pid)?));
        let (secs, rss) = samples[samples.len() - 1];
        eprintln!(
            "soak: {:>4.0} s  rss {:>7.1} MiB  created {}  submitted {}  errors {}",
            secs,
            rss as f64 / 1048576.0,
            counts.created.load(Ordering::Relaxed),
            counts.submitted.load(Ordering::Relaxed),
            counts.errors.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_secs(args.sample_secs)).await;
    }
    samples.push((started.elapsed().as_secs_f64(), rss_bytes(pid)?));
    let create_latency = creator.await?;
    let submit_latency = submitter.await?;
    starter.await?;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let after_warmup: Vec<(f64, f64)> = samples
        .iter()
        .filter(|(t, _)| *t >= args.warmup_secs as f64)
        .map(|(t, rss)| (*t / 60.0, *rss as f64 / 1048576.0))
        .collect();
    let slope = slope(&after_warmup);
    let figures = json!({
        "duration_secs": args.duration_secs,
        "warmup_secs": args.warmup_secs,
        "streams": args.streams,
        "rate": args.rate,
        "created": counts.created.load(Ordering::Relaxed),
        "submitted": counts.submitted.load(Ordering::Relaxed),
        "pushed": counts.pushed.load(Ordering::Relaxed),
        "started": counts.started.load(Ordering::Relaxed),
        "cancelled": counts.cancelled.load(Ordering::Relaxed),
        "errors": counts.errors.load(Ordering::Relaxed),
        "rss_first_mib": samples.first().map(|s| s.1 as f64 / 1048576.0),
        "rss_last_mib": samples.last().map(|s| s.1 as f64 / 1048576.0),
        "rss_growth_mib_per_min": slope.map(|s| (s * 1000.0).round() / 1000.0),
        "rss_samples_mib": samples.iter().map(|(t, r)| json!([t.round(), (*r as f64 / 1048576.0 * 10.0).round() / 10.0])).collect::<Vec<_>>(),
        "create_latency": create_latency.summary(),
        "submit_latency": submit_latency.summary(),
    });
    bench.write("soak", &figures)
}

/// Least-squares slope of y over x.
fn slope(points: &[(f64, f64)]) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}
