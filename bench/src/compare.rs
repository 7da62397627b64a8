//! `ramp-bench compare`: this run's figures next to the last report's, so a change
//! that makes ramp slower is seen before it lands (`make bench-compare`).
//!
//! The last report is BENCHMARKS.md itself: its "Every figure" section holds each
//! scenario's JSON as it was written. Each key figure is printed with both values,
//! their ratio, and whether it moved the wrong way by more than the noise allowance.
//! Ratios to a reference measured in the same run (ramp against bare tonic, against
//! pgbench, against the engine) are listed first: they travel between machines and
//! loads far better than absolute figures. Nothing here fails a build: it prints.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde_json::Value;

#[derive(clap::Args)]
pub struct Args {
    /// The last report.
    #[arg(long, default_value = "BENCHMARKS.md")]
    pub baseline: PathBuf,
    /// This run's figures, one JSON file per scenario.
    #[arg(long, env = "RAMP_BENCH_OUT", default_value = "test-output/bench")]
    pub results: PathBuf,
    /// How far a figure may move the wrong way before it is called out, in percent.
    #[arg(long, default_value_t = 20.0)]
    pub allowance_percent: f64,
}

/// Which way is better for a figure.
#[derive(Clone, Copy)]
enum Better {
    Higher,
    Lower,
}

/// A key figure: a label, the scenario file, a JSON pointer (or two, for a ratio
/// computed from two files of the same run) and which way is better.
struct Figure {
    label: &'static str,
    value: Source,
    better: Better,
}

enum Source {
    /// One value of one scenario.
    At(&'static str, &'static str),
    /// The first value over the second, each from its scenario, of the same run.
    Ratio((&'static str, &'static str), (&'static str, &'static str)),
}

const FIGURES: &[Figure] = &[
    Figure {
        label: "stream opens per second, ramp / bare tonic",
        value: Source::Ratio(
            ("streams-ramp", "/opened_per_sec"),
            ("streams-bare", "/opened_per_sec"),
        ),
        better: Better::Higher,
    },
    Figure {
        label: "memory per idle stream, ramp / bare tonic",
        value: Source::Ratio(
            ("streams-ramp", "/bytes_per_stream"),
            ("streams-bare", "/bytes_per_stream"),
        ),
        better: Better::Lower,
    },
    Figure {
        label: "reconnects per second after a restart / bare tonic opens",
        value: Source::Ratio(
            ("storm", "/reconnected_per_sec"),
            ("streams-bare", "/opened_per_sec"),
        ),
        better: Better::Higher,
    },
    Figure {
        label: "CreateFormTask / pgbench insert, 4 clients",
        value: Source::At("writes", "/runs/0/create_ratio"),
        better: Better::Higher,
    },
    Figure {
        label: "SubmitForm, engine stopped / pgbench insert, 4 clients",
        value: Source::At("writes", "/runs/0/submit_engine_stopped_ratio"),
        better: Better::Higher,
    },
    Figure {
        label: "ListFormTasks faster than the engine (p50)",
        value: Source::At("inbox", "/ratio_p50"),
        better: Better::Higher,
    },
    Figure {
        label: "stream opens per second",
        value: Source::At("streams-ramp", "/opened_per_sec"),
        better: Better::Higher,
    },
    Figure {
        label: "seconds until every stream is back after a restart",
        value: Source::At("storm", "/reconnect_secs"),
        better: Better::Lower,
    },
    Figure {
        label: "memory per idle stream (bytes)",
        value: Source::At("streams-ramp", "/bytes_per_stream"),
        better: Better::Lower,
    },
    Figure {
        label: "push latency p50 (ms)",
        value: Source::At("latency", "/commit_to_receipt/p50_ms"),
        better: Better::Lower,
    },
    Figure {
        label: "push latency p99 (ms)",
        value: Source::At("latency", "/commit_to_receipt/p99_ms"),
        better: Better::Lower,
    },
    Figure {
        label: "CreateFormTask per second, 4 clients",
        value: Source::At("writes", "/runs/0/create_form_task/per_sec"),
        better: Better::Higher,
    },
    Figure {
        label: "CreateFormTask p99 (ms), 4 clients",
        value: Source::At("writes", "/runs/0/create_form_task/latency/p99_ms"),
        better: Better::Lower,
    },
    Figure {
        label: "SubmitForm delivered per second, 4 clients",
        value: Source::At("writes", "/runs/0/submit_form/per_sec"),
        better: Better::Higher,
    },
    Figure {
        label: "SubmitForm, engine stopped, per second, 4 clients",
        value: Source::At("writes", "/runs/0/submit_form_engine_stopped/per_sec"),
        better: Better::Higher,
    },
    Figure {
        label: "idle users: database statements per second",
        value: Source::At("polling", "/push_idle_per_sec"),
        better: Better::Lower,
    },
    Figure {
        label: "ListFormTasks p50 (ms) among 100,000",
        value: Source::At("inbox", "/ramp_list_form_tasks/p50_ms"),
        better: Better::Lower,
    },
    Figure {
        label: "engine user task to stream p99 (ms)",
        value: Source::At("user_tasks", "/commit_to_receipt/p99_ms"),
        better: Better::Lower,
    },
    Figure {
        label: "engine calls per second for user tasks, nothing changing",
        value: Source::At("user_tasks", "/ramp_engine_calls_per_sec_idle"),
        better: Better::Lower,
    },
    Figure {
        label: "engine calls per second for user tasks",
        value: Source::At("user_tasks", "/ramp_engine_calls_per_sec"),
        better: Better::Lower,
    },
];

/// The scenarios' JSON as the report embeds it: `<details><summary>NAME</summary>`
/// followed by a fenced JSON block.
fn report_figures(markdown: &str) -> HashMap<String, Value> {
    let mut figures = HashMap::new();
    let mut rest = markdown;
    while let Some(start) = rest.find("<details><summary>") {
        rest = &rest[start + "<details><summary>".len()..];
        let Some(end) = rest.find("</summary>") else {
            break;
        };
        let name = rest[..end].trim().to_owned();
        rest = &rest[end..];
        let Some(open) = rest.find("```json") else {
            break;
        };
        let body = &rest[open + "```json".len()..];
        let Some(close) = body.find("```") else {
            break;
        };
        if let Ok(value) = serde_json::from_str(&body[..close]) {
            figures.insert(name, value);
        }
        rest = &body[close..];
    }
    figures
}

fn value(files: &HashMap<String, Value>, source: &Source) -> Option<f64> {
    let at = |(file, pointer): (&str, &str)| files.get(file)?.pointer(pointer)?.as_f64();
    match *source {
        Source::At(file, pointer) => at((file, pointer)),
        Source::Ratio(top, bottom) => {
            let bottom = at(bottom)?;
            (bottom != 0.0)
                .then(|| at(top).map(|t| t / bottom))
                .flatten()
        }
    }
}

fn files_of(source: &Source) -> Vec<&'static str> {
    match *source {
        Source::At(file, _) => vec![file],
        Source::Ratio((a, _), (b, _)) => vec![a, b],
    }
}

fn shown(v: Option<f64>) -> String {
    match v {
        None => "–".into(),
        Some(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.3}"),
    }
}

/// The comparison table, and how many figures moved the wrong way past the
/// allowance.
pub fn render(
    baseline: &HashMap<String, Value>,
    current: &HashMap<String, Value>,
    allowance_percent: f64,
) -> (String, usize) {
    let mut md = String::new();
    let mut worse = 0;
    let _ = writeln!(
        md,
        "| figure | last report | this run | this / last | verdict |\n|---|---|---|---|---|"
    );
    for figure in FIGURES {
        let before = value(baseline, &figure.value);
        let now = value(current, &figure.value);
        let (ratio, verdict) = match (before, now) {
            (Some(b), Some(n)) if b != 0.0 => {
                let ratio = n / b;
                let change = match figure.better {
                    Better::Higher => ratio - 1.0,
                    Better::Lower => 1.0 / ratio.max(f64::MIN_POSITIVE) - 1.0,
                };
                let verdict = if change * 100.0 < -allowance_percent {
                    worse += 1;
                    "**worse**"
                } else if change * 100.0 > allowance_percent {
                    "better"
                } else {
                    "within noise"
                };
                (format!("{ratio:.2}×"), verdict)
            }
            (_, None) => {
                let run = files_of(&figure.value)
                    .iter()
                    .all(|f| current.contains_key(*f));
                ("–".into(), if run { "not measured" } else { "not run" })
            }
            _ => ("–".into(), "new"),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {ratio} | {verdict} |",
            figure.label,
            shown(before),
            shown(now)
        );
    }
    (md, worse)
}

pub fn run(args: Args) -> Result<()> {
    let markdown = std::fs::read_to_string(&args.baseline)
        .with_context(|| format!("reading {}", args.baseline.display()))?;
    let baseline = report_figures(&markdown);
    let mut current = HashMap::new();
    for entry in std::fs::read_dir(&args.results)
        .with_context(|| format!("reading {}", args.results.display()))?
    {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_owned();
            let text = std::fs::read_to_string(&path)?;
            if let Ok(value) = serde_json::from_str(&text) {
                current.insert(name, value);
            }
        }
    }
    let (table, worse) = render(&baseline, &current, args.allowance_percent);
    println!("{table}");
    if worse == 0 {
        println!(
            "bench-compare: no figure is worse than the last report by more than {}%",
            args.allowance_percent
        );
    } else {
        println!(
            "bench-compare: {worse} figure(s) worse than the last report by more than {}%",
            args.allowance_percent
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_report_gives_back_the_json_it_embeds() {
        let markdown = "intro\n<details><summary>latency</summary>\n\n```json\n{\"commit_to_receipt\": {\"p99_ms\": 6.8}}\n```\n</details>\n\n<details><summary>inbox</summary>\n\n```json\n{\"ratio_p50\": 2.3}\n```\n</details>\n";
        let figures = report_figures(markdown);
        assert_eq!(figures.len(), 2);
        assert_eq!(figures["inbox"]["ratio_p50"], json!(2.3));
    }

    #[test]
    fn a_figure_that_moved_the_wrong_way_past_the_allowance_is_called_worse() {
        let baseline: HashMap<String, Value> = [
            ("inbox".to_owned(), json!({"ratio_p50": 2.0})),
            (
                "latency".to_owned(),
                json!({"commit_to_receipt": {"p50_ms": 1.0, "p99_ms": 10.0}}),
            ),
        ]
        .into();
        let current: HashMap<String, Value> = [
            // Higher is better: 2.0 → 1.5 is 25 % worse.
            ("inbox".to_owned(), json!({"ratio_p50": 1.5})),
            // Lower is better: 10 → 11 is within 20 %; 1.0 → 0.5 is better.
            (
                "latency".to_owned(),
                json!({"commit_to_receipt": {"p50_ms": 0.5, "p99_ms": 11.0}}),
            ),
        ]
        .into();
        let (table, worse) = render(&baseline, &current, 20.0);
        assert_eq!(worse, 1, "{table}");
        let line = |label: &str| {
            table
                .lines()
                .find(|l| l.starts_with(&format!("| {label} |")))
                .unwrap()
                .to_owned()
        };
        assert!(line("ListFormTasks faster than the engine (p50)").ends_with("**worse** |"));
        assert!(line("push latency p50 (ms)").ends_with("better |"));
        assert!(line("push latency p99 (ms)").ends_with("within noise |"));
        assert!(line("stream opens per second").ends_with("not run |"));
    }
}
