//! ramp-bench: the load tool behind `make bench` (the figures of BENCHMARKS.md),
//! `make soak` and the smoke run in `make test`.
//!
//! Each scenario runs against a stack that is already up (`scripts/bench.sh` starts
//! one of its own) and writes its figures as JSON into the output folder; `report`
//! turns them into the tables of BENCHMARKS.md. Nothing here judges speed: the
//! figures are printed and written, never asserted.

mod bare;
mod client;
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
    /// The engine's own user tasks, created there at a fixed rate, reaching their
    /// assignees' streams while many streams are open; ramp's engine queries.
    Usertasks(scenarios::usertasks::Args),
    /// Mixed load for a long time: errors and the server's memory over time.
    Soak(scenarios::soak::Args),
    /// A bare tonic server whose PendingForms holds idle streams: the reference for
    /// the memory per stream.
    BareServer(bare::Args),
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
        Command::Usertasks(args) => scenarios::usertasks::run(args).await,
        Command::Soak(args) => scenarios::soak::run(args).await,
        Command::BareServer(args) => bare::run(args).await,
        Command::Report(args) => report::run(args),
    }
}
