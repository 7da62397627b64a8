//! The `ramp` command line. Parses arguments and calls into the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde::Serialize;

use ramp::config::Config;
use ramp::server::Application;
use ramp::store::Store;

#[derive(Parser)]
#[command(
    name = "ramp",
    version,
    about = "The gRPC backend between Camunda 7 processes and the people who fill their forms"
)]
struct Cli {
    /// A TOML configuration file; `RAMP_*` variables and flags override it.
    #[arg(long, global = true, env = "RAMP_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serves the API (gRPC, gRPC-web, health, reflection) on one port.
    Serve(ServeArgs),
    /// Applies the database migrations and exits.
    Migrate,
}

/// Flags of `serve`; each overrides the setting of the same name.
#[derive(clap::Args, Serialize)]
struct ServeArgs {
    /// Address to listen on (RAMP_LISTEN).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    listen: Option<String>,
    /// Log filter (RAMP_LOG).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    log: Option<String>,
    /// Folder of the built web UI (RAMP_WEB_DIR).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    web_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime starts");
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ramp: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let config = Config::load(cli.config.as_deref(), args)?;
            ramp::telemetry::init(&config.log, config.log_format);
            let app = Application::start(config).await?;
            let token = app.shutdown_token();
            tokio::spawn(async move {
                wait_for_signal().await;
                tracing::info!("shutting down");
                token.cancel();
            });
            app.stopped().await?;
            tracing::info!("stopped");
            Ok(())
        }
        Command::Migrate => {
            let config = Config::load(cli.config.as_deref(), ramp::config::NoOverrides {})?;
            ramp::telemetry::init(&config.log, config.log_format);
            let store = Store::new(config.database_url(), 1, config.database_timeout())?;
            store.migrate().await?;
            tracing::info!("migrations up to date");
            Ok(())
        }
    }
}

async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM can be watched");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
