//! The `ramp` command line. Parses arguments and calls into the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde::Serialize;

use ramp::config::Config;
use ramp::server::Application;
use ramp::store::Store;
use ramp::worker::{Topic, Worker, WorkerSettings};

/// mimalloc instead of glibc's malloc: a server holding hundreds of thousands of
/// small per-stream allocations pays less per allocation, and memory freed when
/// clients leave goes back to the system instead of staying in glibc's arenas
/// (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Runs the external-task worker: turns send tasks into form tasks through
    /// FormService.CreateFormTask, with the token in RAMP_TOKEN.
    Worker(WorkerArgs),
    /// Deploys BPMN models and Camunda Forms (files, or folders searched for
    /// .bpmn, .dmn and .form files) to the engine at RAMP_CAMUNDA_URL.
    Deploy(DeployArgs),
    /// Mints an HS256 token with the configured secret (RAMP_JWT_SECRET or
    /// RAMP_JWT_SECRET_FILE; from the repository root, the secret `make run`
    /// generated), for development and grpcurl.
    Token(TokenArgs),
}

#[derive(clap::Args)]
struct WorkerArgs {
    /// A topic to fetch, `NAME[:assignee=PATH]` (PATH: a dotted path into a JSON
    /// variable); repeatable. Default: RAMP_WORKER_TOPICS, else `submit_form`.
    #[arg(long = "topic")]
    topics: Vec<String>,
    /// Only tasks of these process definition keys (comma-separated or
    /// repeated); all when none is given.
    #[arg(
        long = "definition-key",
        env = "RAMP_WORKER_DEFINITION_KEYS",
        value_delimiter = ','
    )]
    definition_keys: Vec<String>,
    /// The ramp server to call.
    #[arg(long, env = "RAMP_SERVER", default_value = "http://127.0.0.1:50051")]
    server: String,
    /// How long the engine may hold a long poll, in ms (below proxies' idle timeouts).
    #[arg(long, env = "RAMP_WORKER_LONG_POLL_MS", default_value_t = 20_000)]
    long_poll_ms: u64,
    /// How long a fetched task is locked to this worker, in ms (extended while busy).
    #[arg(long, env = "RAMP_WORKER_LOCK_MS", default_value_t = 60_000)]
    lock_ms: u64,
    /// Tasks handled at once at most.
    #[arg(long, env = "RAMP_WORKER_MAX_IN_FLIGHT", default_value_t = 8)]
    max_in_flight: usize,
    /// Retries for transient failures before a task becomes an incident.
    #[arg(long, env = "RAMP_WORKER_RETRIES", default_value_t = 3)]
    retries: i32,
    /// The first retry timeout in ms; it doubles with each failure.
    #[arg(long, env = "RAMP_WORKER_RETRY_TIMEOUT_MS", default_value_t = 2_000)]
    retry_timeout_ms: u64,
}

#[derive(clap::Args)]
struct DeployArgs {
    /// Files or folders to deploy.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// The deployment's name; unchanged files are not deployed again under it.
    #[arg(long, default_value = "ramp")]
    name: String,
}

#[derive(clap::Args)]
struct TokenArgs {
    /// The caller's email.
    #[arg(long)]
    email: String,
    /// A role to grant (ramp-worker, ramp-admin); repeatable.
    #[arg(long = "role")]
    roles: Vec<String>,
    /// Lifetime: seconds, or a number with s, m, h or d.
    #[arg(long, default_value = "1h", value_parser = parse_ttl)]
    ttl: Duration,
}

/// Where `make run` keeps the secret it generates, relative to the repository root.
const RUN_SECRET_FILE: &str = ".ramp/jwt-secret";

fn parse_ttl(raw: &str) -> Result<Duration, String> {
    let (number, unit) = match raw.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => raw.split_at(i),
        None => (raw, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{raw:?} is not a duration like 90s, 30m, 1h"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("{raw:?}: the unit must be s, m, h or d")),
    };
    if secs == 0 {
        return Err("the lifetime must be positive".into());
    }
    Ok(Duration::from_secs(secs))
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
            let store = Store::new(config.database_url()?, 1, config.database_timeout())?;
            store.migrate().await?;
            tracing::info!("migrations up to date");
            Ok(())
        }
        Command::Worker(args) => {
            let config = Config::load(cli.config.as_deref(), ramp::config::NoOverrides {})?;
            ramp::telemetry::init(&config.log, config.log_format);
            let topics = if !args.topics.is_empty() {
                args.topics
                    .iter()
                    .map(|t| Topic::parse(t))
                    .collect::<Result<Vec<_>, _>>()?
            } else {
                match std::env::var("RAMP_WORKER_TOPICS") {
                    Ok(list) if !list.trim().is_empty() => Topic::parse_list(&list)?,
                    _ => vec![Topic::parse("submit_form")?],
                }
            };
            let token = std::env::var("RAMP_TOKEN")
                .ok()
                .filter(|t| !t.trim().is_empty())
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "RAMP_TOKEN is not set: give the worker a token with the ramp-worker role"
                    )
                })?;
            anyhow::ensure!(args.max_in_flight > 0, "--max-in-flight must be at least 1");
            anyhow::ensure!(args.lock_ms >= 1_000, "--lock-ms must be at least 1000");
            let mut camunda = config.camunda()?;
            // The client's own timeout covers one call; the long poll adds its wait.
            camunda.timeout = camunda.timeout.max(Duration::from_secs(5));
            let metrics = ramp::metrics::Metrics::new(ramp::metrics::Role::Worker);
            let worker = Worker::new(
                ramp::camunda::Camunda::new(camunda).with_metrics(metrics.clone()),
                WorkerSettings {
                    server: args.server,
                    token: token.trim().to_owned().into(),
                    topics,
                    definition_keys: args.definition_keys,
                    long_poll: Duration::from_millis(args.long_poll_ms),
                    lock: Duration::from_millis(args.lock_ms),
                    max_in_flight: args.max_in_flight,
                    retries: args.retries.max(1),
                    retry_timeout: Duration::from_millis(args.retry_timeout_ms),
                },
            )?
            .with_metrics(metrics.clone());
            let shutdown = tokio_util::sync::CancellationToken::new();
            if let Some(addr) = config.worker_metrics_listen {
                let (listener, bound) = ramp::ops::bind(addr).await.map_err(|e| {
                    anyhow::anyhow!("RAMP_WORKER_METRICS_LISTEN: cannot listen on {addr}: {e}")
                })?;
                ramp::ops::Ops::metrics_only(metrics).serve(listener, shutdown.clone());
                tracing::info!(addr = %bound, "worker metrics listening");
            }
            let stop = shutdown.clone();
            tokio::spawn(async move {
                wait_for_signal().await;
                tracing::info!("stopping the worker");
                stop.cancel();
            });
            std::sync::Arc::new(worker).run(shutdown).await;
            Ok(())
        }
        Command::Deploy(args) => {
            let config = Config::load(cli.config.as_deref(), ramp::config::NoOverrides {})?;
            ramp::telemetry::init(&config.log, config.log_format);
            let camunda = ramp::camunda::Camunda::new(config.camunda()?);
            for line in ramp::deploy::deploy(&camunda, &args.name, &args.paths).await? {
                println!("{line}");
            }
            Ok(())
        }
        Command::Token(args) => {
            #[derive(Serialize)]
            struct TokenOverrides {
                #[serde(skip_serializing_if = "Option::is_none")]
                jwt_secret_file: Option<PathBuf>,
            }
            let configured = std::env::var_os("RAMP_JWT_SECRET").is_some()
                || std::env::var_os("RAMP_JWT_SECRET_FILE").is_some();
            let run_secret = PathBuf::from(RUN_SECRET_FILE);
            let overrides = TokenOverrides {
                jwt_secret_file: (!configured && run_secret.is_file()).then_some(run_secret),
            };
            let config = Config::load(cli.config.as_deref(), overrides)?;
            let settings = ramp::auth::JwtSettings::from_config(&config)?;
            let ramp::auth::KeySource::Secret(secret) = &settings.key else {
                anyhow::bail!(
                    "ramp token signs with an HS256 secret: set RAMP_JWT_SECRET or RAMP_JWT_SECRET_FILE"
                );
            };
            let email = ramp::email::Email::parse(&args.email)
                .map_err(|e| anyhow::anyhow!("--email {e}"))?;
            let token = ramp::auth::mint_hs256(
                secret,
                &ramp::auth::TokenClaims {
                    email: email.as_str(),
                    roles: &args.roles,
                    ttl: args.ttl,
                    issuer: settings.issuer.as_deref(),
                    audience: &settings.audience,
                },
            )?;
            println!("{token}");
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
