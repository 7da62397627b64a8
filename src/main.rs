//! The `ramp` command line. Parses arguments and calls into the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde::Serialize;

use ramp::config::{NoOverrides, Settings};
use ramp::server::Application;
use ramp::store::Store;

/// mimalloc instead of glibc's malloc: a server holding hundreds of thousands of
/// small per-stream allocations pays less per allocation, and memory freed when
/// clients leave goes back to the system instead of staying in glibc's arenas
/// (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "ramp",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("BUILD_COMMIT"), ")"),
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
    /// Prints the effective configuration (secrets redacted) with where each value
    /// came from, and what each command makes of it.
    Config,
}

/// Flags of `worker`; each overrides the setting named in its help (from the
/// environment or the config file).
#[derive(clap::Args, Serialize)]
struct WorkerArgs {
    /// A topic to fetch, `NAME[:assignee=PATH]` (PATH: a dotted path into a JSON
    /// variable); repeatable (RAMP_WORKER_TOPICS, default `submit_form`).
    #[arg(long = "topic")]
    #[serde(rename = "worker_topics", skip_serializing_if = "Vec::is_empty")]
    topics: Vec<String>,
    /// Only tasks of these process definition keys (comma-separated or
    /// repeated); all when none is given (RAMP_WORKER_DEFINITION_KEYS).
    #[arg(long = "definition-key", value_delimiter = ',')]
    #[serde(
        rename = "worker_definition_keys",
        skip_serializing_if = "Vec::is_empty"
    )]
    definition_keys: Vec<String>,
    /// The ramp server to call (RAMP_SERVER, default http://127.0.0.1:50051).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    server: Option<String>,
    /// How long the engine may hold a long poll, in ms, below proxies' idle
    /// timeouts (RAMP_WORKER_LONG_POLL_MS, default 20000).
    #[arg(long)]
    #[serde(
        rename = "worker_long_poll_ms",
        skip_serializing_if = "Option::is_none"
    )]
    long_poll_ms: Option<u64>,
    /// How long a fetched task is locked to this worker, in ms, extended while busy
    /// (RAMP_WORKER_LOCK_MS, default 60000).
    #[arg(long)]
    #[serde(rename = "worker_lock_ms", skip_serializing_if = "Option::is_none")]
    lock_ms: Option<u64>,
    /// Tasks handled at once at most (RAMP_WORKER_MAX_IN_FLIGHT, default 8).
    #[arg(long)]
    #[serde(
        rename = "worker_max_in_flight",
        skip_serializing_if = "Option::is_none"
    )]
    max_in_flight: Option<usize>,
    /// Retries for transient failures before a task becomes an incident
    /// (RAMP_WORKER_RETRIES, default 3).
    #[arg(long)]
    #[serde(rename = "worker_retries", skip_serializing_if = "Option::is_none")]
    retries: Option<i32>,
    /// The first retry timeout in ms; it doubles with each failure
    /// (RAMP_WORKER_RETRY_TIMEOUT_MS, default 2000).
    #[arg(long)]
    #[serde(
        rename = "worker_retry_timeout_ms",
        skip_serializing_if = "Option::is_none"
    )]
    retry_timeout_ms: Option<u64>,
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
    let file = cli.config.as_deref();
    match cli.command {
        Command::Serve(args) => {
            let config = Settings::load(file, args)?.serve()?;
            ramp::telemetry::init(&config.log, config.log_format);
            let app = Application::start(config).await?;
            let token = app.shutdown_token();
            tokio::spawn(async move {
                ramp::signal::stop_requested().await;
                tracing::info!("shutting down");
                token.cancel();
            });
            app.stopped().await?;
            tracing::info!("stopped");
            Ok(())
        }
        Command::Migrate => {
            let settings = Settings::load(file, NoOverrides {})?;
            let log = settings.log()?;
            let database = settings.database()?;
            ramp::telemetry::init(&log.log, log.log_format);
            let store = Store::new(database.database_url()?, 1, database.timeout())?;
            store.migrate().await?;
            tracing::info!("migrations up to date");
            Ok(())
        }
        Command::Worker(args) => {
            let config = Settings::load(file, args)?.worker()?;
            ramp::telemetry::init(&config.log.log, config.log.log_format);
            ramp::worker::run(config).await?;
            Ok(())
        }
        Command::Deploy(args) => {
            let settings = Settings::load(file, NoOverrides {})?;
            let log = settings.log()?;
            let camunda = settings.engine()?.camunda()?;
            ramp::telemetry::init(&log.log, log.log_format);
            let camunda = ramp::camunda::Camunda::new(camunda);
            for line in ramp::deploy::deploy(&camunda, &args.name, &args.paths).await? {
                println!("{line}");
            }
            Ok(())
        }
        Command::Token(args) => {
            let config = Settings::load(file, NoOverrides {})?.token()?;
            let secret = config.secret()?;
            let email = ramp::email::Email::parse(&args.email)
                .map_err(|e| anyhow::anyhow!("--email {e}"))?;
            if args.ttl.as_secs() > config.jwt_max_ttl_secs {
                anyhow::bail!(
                    "--ttl {} s is longer than RAMP_JWT_MAX_TTL_SECS ({} s): servers would refuse the token",
                    args.ttl.as_secs(),
                    config.jwt_max_ttl_secs
                );
            }
            let token = ramp::auth::mint_hs256(
                &secret,
                &ramp::auth::TokenClaims {
                    email: email.as_str(),
                    roles: &args.roles,
                    ttl: args.ttl,
                    issuer: config.jwt_issuer.as_deref(),
                    audience: &config.jwt_audience,
                },
            )?;
            println!("{token}");
            Ok(())
        }
        Command::Config => {
            print!("{}", Settings::load(file, NoOverrides {})?.report());
            Ok(())
        }
    }
}
