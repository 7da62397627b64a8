//! ramp-bench: the load tool behind `make bench` (the figures of BENCHMARKS.md),
//! `make soak` and the smoke run in `make test`.
//!
//! Each scenario runs against a stack that is already up (`scripts/bench.sh` starts
//! one of its own) and writes its figures as JSON into the output folder; `report`
//! turns them into the tables of BENCHMARKS.md. Nothing here judges speed: the
//! figures are printed and written, never asserted.

mod bare;
mod client;
mod compare;
mod report;
mod scenarios;
mod stats;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "ramp-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Idle PendingForms streams: the server's memory per open stream.
    Streams(scenarios::streams::Args),
    /// CreateFormTask commit to stream receipt, at a fixed rate, with many idle
    /// streams open.
    Latency(scenarios::latency::Args),
    /// CreateFormTask and SubmitForm throughput next to pgbench's single-row insert.
    Writes(scenarios::writes::Args),
    /// Users polling ListFormTasks against users holding streams: database queries
    /// per second and delivery delay.
    Polling(scenarios::polling::Args),
    /// ListFormTasks against the engine's own task query over 100,000 open items.
    Inbox(scenarios::inbox::Args),
    /// The engine's user tasks, created in the engine at a fixed rate, to the
    /// stream: latency and the engine calls ramp makes, next to Tasklist-style
    /// polling.
    UserTasks(scenarios::user_tasks::Args),
    /// A replica restart: every stream reconnects at once with its cursor while
    /// forms keep coming; seconds until all are back, and events missed.
    Storm(scenarios::storm::Args),
    /// Mixed load for a long time: errors and the server's memory over time.
    Soak(scenarios::soak::Args),
    /// A bare tonic server whose PendingForms holds idle streams: the reference for
    /// the memory per stream.
    BareServer(bare::Args),
    /// This run's key figures next to the last report's (BENCHMARKS.md), with
    /// their ratios: a slower change is seen before it lands.
    Compare(compare::Args),
    /// Renders the results folder as Markdown (the tables of BENCHMARKS.md).
    Report(report::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Streams(args) => scenarios::streams::run(args).await,
        Command::Latency(args) => scenarios::latency::run(args).await,
        Command::Writes(args) => scenarios::writes::run(args).await,
        Command::Polling(args) => scenarios::polling::run(args).await,
        Command::Inbox(args) => scenarios::inbox::run(args).await,
        Command::UserTasks(args) => scenarios::user_tasks::run(args).await,
        Command::Storm(args) => scenarios::storm::run(args).await,
        Command::Soak(args) => scenarios::soak::run(args).await,
        Command::BareServer(args) => bare::run(args).await,
        Command::Report(args) => report::run(args),
        Command::Compare(args) => compare::run(args),
    }
}
