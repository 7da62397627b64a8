//! Renders the results folder as the Markdown of BENCHMARKS.md: each target of
//! PERFORMANCE.md next to the measured figure and its ratio to the reference
//! measured in the same run, then every scenario's figures in full.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde_json::Value;

#[derive(clap::Args)]
pub struct Args {
    /// The results folder.
    #[arg(long, env = "RAMP_BENCH_OUT", default_value = "test-output/bench")]
    pub out: PathBuf,
    /// A file whose text between `<!-- results:begin -->` and `<!-- results:end -->`
    /// is replaced; without it, the Markdown goes to standard output.
    #[arg(long)]
    pub into: Option<PathBuf>,
    /// Lines describing the machine, versions and command, put above the tables.
    #[arg(long)]
    pub header: Option<PathBuf>,
}

const BEGIN: &str = "<!-- results:begin -->";
const END: &str = "<!-- results:end -->";

fn load(args: &Args, name: &str) -> Option<Value> {
    let text = std::fs::read_to_string(args.out.join(format!("{name}.json"))).ok()?;
    serde_json::from_str(&text).ok()
}

fn num(v: &Value) -> String {
    match v {
        Value::Number(n) => {
            let f = n.as_f64().unwrap_or(0.0);
            if f.fract() == 0.0 && f.abs() < 1e15 {
                let i = f as i64;
                let s = i.abs().to_string();
                let mut out = String::new();
                for (k, c) in s.chars().enumerate() {
                    if k > 0 && (s.len() - k).is_multiple_of(3) {
                        out.push(',');
                    }
                    out.push(c);
                }
                if i < 0 { format!("-{out}") } else { out }
            } else {
                format!("{f}")
            }
        }
        Value::Null => "–".into(),
        other => other.to_string(),
    }
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "not run",
    }
}

pub fn render(args: &Args) -> Result<String> {
    let mut md = String::new();
    if let Some(header) = &args.header {
        md.push_str(&std::fs::read_to_string(header).context("reading the header")?);
        md.push('\n');
    }
    let streams = load(args, "streams-ramp");
    let bare = load(args, "streams-bare");
    let latency = load(args, "latency");
    let writes = load(args, "writes");
    let polling = load(args, "polling");
    let inbox = load(args, "inbox");
    let user_tasks = load(args, "user_tasks");
    let storm = load(args, "storm");

    writeln!(
        md,
        "| what | target | measured | reference (same run) | ratio | verdict |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|")?;
    // Streams.
    match &streams {
        Some(s) => {
            let open = s["still_open"].as_f64().unwrap_or(0.0);
            writeln!(
                md,
                "| open PendingForms streams, one replica | 250,000 | {} open of {} | – | – | {} |",
                num(&s["still_open"]),
                num(&s["streams"]),
                verdict(Some(open >= 250_000.0))
            )?;
            let per = s["bytes_per_stream"].as_f64().unwrap_or(f64::MAX);
            let (reference, ratio) = match &bare {
                Some(b) => {
                    let r = b["bytes_per_stream"].as_f64().unwrap_or(0.0);
                    (
                        format!("bare tonic stream: {:.1} KiB", r / 1024.0),
                        if r > 0.0 {
                            format!("{:.2}×", per / r)
                        } else {
                            "–".into()
                        },
                    )
                }
                None => ("–".into(), "–".into()),
            };
            let bare_per = bare.as_ref().and_then(|b| b["bytes_per_stream"].as_f64());
            writeln!(
                md,
                "| server memory per idle stream | ≤ 1.25× bare | {:.1} KiB | {reference} | {ratio} | {} |",
                per / 1024.0,
                verdict(bare_per.map(|b| per <= 1.25 * b))
            )?;
        }
        None => {
            writeln!(
                md,
                "| open PendingForms streams, one replica | 250,000 | – | – | – | not run |"
            )?;
            writeln!(
                md,
                "| server memory per idle stream | ≤ 1.25× bare | – | – | – | not run |"
            )?;
        }
    }
    // The reconnect storm.
    match &storm {
        Some(st) => {
            let per_sec = st["reconnected_per_sec"].as_f64().unwrap_or(0.0);
            let bare_per_sec = bare
                .as_ref()
                .and_then(|b| b["opened_per_sec"].as_f64())
                .unwrap_or(0.0);
            let ratio = (bare_per_sec > 0.0).then(|| per_sec / bare_per_sec);
            let secs = st["reconnect_secs"].as_f64().unwrap_or(f64::MAX);
            writeln!(
                md,
                "| a restart: {} streams reconnect at once with their cursors, forms coming meanwhile | ≥ 50 % of bare opens/s, all back within 60 s, nothing missed | {}/s, all back in {} s; {} of {} forms missed, {} twice | bare tonic stream opens: {}/s | {} | {} |",
                num(&st["streams"]),
                num(&st["reconnected_per_sec"]),
                num(&st["reconnect_secs"]),
                num(&st["forms_missed"]),
                num(&st["forms_created"]),
                num(&st["forms_received_twice"]),
                if bare_per_sec > 0.0 {
                    format!("{bare_per_sec:.0}")
                } else {
                    "–".into()
                },
                ratio.map_or("–".into(), |r| format!("{:.0} %", r * 100.0)),
                verdict(ratio.map(|r| {
                    r >= 0.5
                        && secs <= 60.0
                        && st["forms_missed"].as_u64() == Some(0)
                        && st["forms_received_twice"].as_u64() == Some(0)
                }))
            )?;
        }
        None => writeln!(
            md,
            "| a restart: streams reconnect at once with their cursors | ≥ 50 % of bare opens/s, all back within 60 s, nothing missed | – | – | – | not run |"
        )?,
    }
    // Latency.
    match &latency {
        Some(l) => {
            let c = &l["commit_to_receipt"];
            let (p50, p99) = (
                c["p50_ms"].as_f64().unwrap_or(f64::MAX),
                c["p99_ms"].as_f64().unwrap_or(f64::MAX),
            );
            writeln!(
                md,
                "| push latency, commit → receipt, {} open streams, {} creates/s | p50 ≤ 2 ms, p99 ≤ 10 ms | p50 {} ms, p99 {} ms, max {} ms | polling every 5 s: mean 2,500 ms | {:.0}× lower mean than polling | {} |",
                num(&l["idle_streams"]),
                num(&l["rate_achieved"]),
                num(&c["p50_ms"]),
                num(&c["p99_ms"]),
                num(&c["max_ms"]),
                2500.0 / c["mean_ms"].as_f64().unwrap_or(2500.0).max(0.001),
                verdict(Some(
                    p50 <= 2.0 && p99 <= 10.0 && l["not_pushed"].as_u64() == Some(0)
                ))
            )?;
        }
        None => writeln!(
            md,
            "| push latency | p50 ≤ 2 ms, p99 ≤ 10 ms | – | – | – | not run |"
        )?,
    }
    // Writes.
    match writes.as_ref().and_then(|w| w["runs"].as_array().cloned()) {
        Some(runs) => {
            for run in runs {
                let clients = num(&run["clients"]);
                let pg = num(&run["pgbench_insert"]["per_sec"]);
                for (what, key, ratio_key, target) in [
                    ("CreateFormTask", "create_form_task", "create_ratio", 0.6),
                    (
                        "SubmitForm incl. outbox write",
                        "submit_form",
                        "submit_ratio",
                        0.5,
                    ),
                    (
                        "SubmitForm incl. outbox write, the engine stopped",
                        "submit_form_engine_stopped",
                        "submit_engine_stopped_ratio",
                        0.5,
                    ),
                ] {
                    let r = &run[key];
                    if r.is_null() {
                        continue;
                    }
                    let ratio = run[ratio_key].as_f64();
                    let p99 = r["latency"]["p99_ms"].as_f64().unwrap_or(f64::MAX);
                    let p99_ok = key != "create_form_task" || p99 <= 20.0;
                    writeln!(
                        md,
                        "| {what}, durable, {clients} clients | ≥ {:.0} % of pgbench{} | {} /s (p50 {} ms, p99 {} ms, {} errors) | pgbench single-row insert: {pg} /s | {} | {} |",
                        target * 100.0,
                        if key == "create_form_task" {
                            ", p99 ≤ 20 ms"
                        } else {
                            ""
                        },
                        num(&r["per_sec"]),
                        num(&r["latency"]["p50_ms"]),
                        num(&r["latency"]["p99_ms"]),
                        num(&r["errors"]),
                        ratio
                            .map(|x| format!("{:.0} %", x * 100.0))
                            .unwrap_or("–".into()),
                        verdict(
                            ratio.map(|x| x >= target && p99_ok && r["errors"].as_u64() == Some(0))
                        )
                    )?;
                }
                let direct = &run["engine_direct_message"];
                if !direct.is_null() {
                    let ratio = run["submit_delivered_ratio"].as_f64();
                    writeln!(
                        md,
                        "| SubmitForm delivered to the engine, {clients} clients | ≥ 80 % of the engine's own rate | {} /s (submits, then the outbox drained in {} s) | the engine taking the same answers over REST directly (`POST /message`), {clients} clients: {} /s ({} errors) | {} | {} |",
                        num(&run["submit_delivered_per_sec"]),
                        num(&run["outbox_drain"]["secs"]),
                        num(&direct["per_sec"]),
                        num(&direct["errors"]),
                        ratio
                            .map(|x| format!("{:.0} %", x * 100.0))
                            .unwrap_or("–".into()),
                        verdict(ratio.map(|x| x >= 0.8))
                    )?;
                }
            }
        }
        None => writeln!(
            md,
            "| CreateFormTask / SubmitForm throughput | ≥ 60 % / ≥ 50 % of pgbench | – | – | – | not run |"
        )?,
    }
    // Polling.
    match &polling {
        Some(p) => {
            let idle = p["push_idle_per_sec"].as_f64().unwrap_or(f64::MAX);
            let polled = p["polling"]["statements_per_sec"].as_f64().unwrap_or(0.0);
            writeln!(
                md,
                "| database statements per second, {} idle users | ~0 (scales with writes) | {} /s with streams; {} /s while {} forms/s are created | polling every {} s: {} /s | {} | {} |",
                num(&p["users"]),
                num(&p["push_idle_per_sec"]),
                num(&p["push"]["statements_per_sec"]),
                num(&p["rate"]),
                num(&p["interval_secs"]),
                num(&p["polling"]["statements_per_sec"]),
                if idle > 0.0 {
                    format!("{:.0}× fewer", polled / idle)
                } else {
                    "– (none at all)".into()
                },
                // "~0": the idle figure is the replica's own timers (change-log read,
                // delivery poll, reconciliation, readiness), the same for 50 users or
                // 10,000; judged as at most 1 % of what polling costs.
                verdict(Some(idle <= polled * 0.01))
            )?;
            writeln!(
                md,
                "| delivery delay, new form → its user | push (no target of its own) | mean {} ms, p99 {} ms | polling: mean {} ms, p99 {} ms | {:.0}× lower mean | – |",
                num(&p["push"]["delay"]["mean_ms"]),
                num(&p["push"]["delay"]["p99_ms"]),
                num(&p["polling"]["delay"]["mean_ms"]),
                num(&p["polling"]["delay"]["p99_ms"]),
                p["polling"]["delay"]["mean_ms"].as_f64().unwrap_or(0.0)
                    / p["push"]["delay"]["mean_ms"]
                        .as_f64()
                        .unwrap_or(1.0)
                        .max(0.001)
            )?;
        }
        None => writeln!(
            md,
            "| database statements per second, idle users | ~0 | – | – | – | not run |"
        )?,
    }
    // The engine's user tasks.
    match &user_tasks {
        Some(u) => {
            let c = &u["commit_to_receipt"];
            let p99 = c["p99_ms"].as_f64();
            writeln!(
                md,
                "| engine user task → its assignee's stream, {} created at {}/s, {} idle streams | p99 ≤ 2 s | p50 {} ms, p99 {} ms; {} not pushed, {} twice | – | – | {} |",
                num(&u["created"]),
                num(&u["rate_target"]),
                num(&u["idle_streams"]),
                num(&c["p50_ms"]),
                num(&c["p99_ms"]),
                num(&u["not_pushed"]),
                num(&u["pushed_twice"]),
                verdict(p99.map(|p| {
                    p <= 2_000.0
                        && u["not_pushed"].as_u64() == Some(0)
                        && u["pushed_twice"].as_u64() == Some(0)
                }))
            )?;
            let ramp = u["ramp_engine_calls_per_sec"].as_f64().unwrap_or(0.0);
            let needed = u["tasklist_queries_per_sec_needed"].as_f64().unwrap_or(0.0);
            writeln!(
                md,
                "| engine calls per second to keep {} users' inboxes live | constant in users | ramp: {} /s with nothing changing, {} /s while tasks come (one poller; per operation in the JSON) | Tasklist-style polling every 5 s: {} queries/s needed, {} reached, p99 {} ms | {} | – |",
                num(&u["tasklist_users"]),
                num(&u["ramp_engine_calls_per_sec_idle"]),
                num(&u["ramp_engine_calls_per_sec"]),
                num(&u["tasklist_queries_per_sec_needed"]),
                num(&u["tasklist_polling"]["queries_per_sec"]),
                num(&u["tasklist_polling"]["latency"]["p99_ms"]),
                if ramp > 0.0 {
                    format!("{:.0}× fewer", needed / ramp)
                } else {
                    "–".into()
                },
            )?;
        }
        None => writeln!(
            md,
            "| engine user task → its assignee's stream | p99 ≤ 2 s | – | – | – | not run |"
        )?,
    }
    // Inbox.
    match &inbox {
        Some(i) => {
            let ratio = i["ratio_p50"].as_f64();
            writeln!(
                md,
                "| ListFormTasks, first page of {} among {} pending | ≥ 10× faster than the engine | p50 {} ms, p99 {} ms | engine `GET /task?assignee=` over {} user tasks: p50 {} ms, p99 {} ms | {}× (p50), {}× (p99) | {} |",
                num(&i["page"]),
                num(&json_mul(&i["users"], &i["per_user"])),
                num(&i["ramp_list_form_tasks"]["p50_ms"]),
                num(&i["ramp_list_form_tasks"]["p99_ms"]),
                num(&i["engine_user_tasks"]),
                num(&i["engine_task_query"]["p50_ms"]),
                num(&i["engine_task_query"]["p99_ms"]),
                num(&i["ratio_p50"]),
                num(&i["ratio_p99"]),
                verdict(ratio.map(|r| r >= 10.0))
            )?;
        }
        None => writeln!(
            md,
            "| ListFormTasks among 100,000 pending | ≥ 10× faster than the engine | – | – | – | not run |"
        )?,
    }

    if let Some(runs) = writes.as_ref().and_then(|w| w["runs"].as_array().cloned()) {
        writeln!(
            md,
            "\n### Where the CPU goes in the writes\n\nCPU milliseconds per operation, by process, during each phase (from /proc; pgbench's own time is not counted: it has ended when it is read). Two cores give 2,000 CPU ms per second in all, so throughput is at most 2,000 / the row's sum.\n\n| clients | phase | ramp | PostgreSQL | engine | load tool |\n|---|---|---|---|---|---|"
        )?;
        for run in runs {
            for (phase, figures) in [
                ("pgbench insert", &run["pgbench_insert"]),
                ("CreateFormTask", &run["create_form_task"]),
                ("SubmitForm", &run["submit_form"]),
                (
                    "SubmitForm, the engine stopped",
                    &run["submit_form_engine_stopped"],
                ),
            ] {
                let cpu = &figures["cpu_ms_per_op"];
                if cpu.is_null() {
                    continue;
                }
                let cell = |group: &str| {
                    cpu[group]
                        .as_f64()
                        .map(|v| format!("{v:.3}"))
                        .unwrap_or("–".into())
                };
                writeln!(
                    md,
                    "| {} | {phase} | {} | {} | {} | {} |",
                    num(&run["clients"]),
                    cell("ramp"),
                    cell("postgres"),
                    cell("engine"),
                    cell("load tool"),
                )?;
            }
        }
    }

    writeln!(md, "\n### Every figure\n")?;
    for name in [
        "streams-ramp",
        "streams-bare",
        "storm",
        "latency",
        "writes",
        "polling",
        "user_tasks",
        "inbox",
        "soak",
    ] {
        if let Some(v) = load(args, name) {
            writeln!(
                md,
                "<details><summary>{name}</summary>\n\n```json\n{}\n```\n</details>\n",
                serde_json::to_string_pretty(&v)?
            )?;
        }
    }
    Ok(md)
}

fn json_mul(a: &Value, b: &Value) -> Value {
    Value::from(a.as_u64().unwrap_or(0) * b.as_u64().unwrap_or(0))
}

pub fn run(args: Args) -> Result<()> {
    let md = render(&args)?;
    match &args.into {
        None => print!("{md}"),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let (Some(begin), Some(end)) = (text.find(BEGIN), text.find(END)) else {
                anyhow::bail!("{} has no {BEGIN} … {END} section", path.display());
            };
            let updated = format!("{}{BEGIN}\n{md}\n{}", &text[..begin], &text[end..]);
            std::fs::write(path, updated)?;
            eprintln!("report: wrote {}", path.display());
        }
    }
    Ok(())
}
