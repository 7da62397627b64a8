//! What every scenario shares: where ramp is, tokens, connections, the host
//! processes that form tasks belong to, and the results folder.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use futures::{StreamExt, TryStreamExt};
use ramp::auth::{TokenClaims, mint_hs256};
use ramp::proto::form_service_client::FormServiceClient;
use ramp::proto::process_service_client::ProcessServiceClient;
use ramp::proto::{CreateFormTaskRequest, FormTask, StartProcessRequest};
use secrecy::SecretString;
use serde_json::Value;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic::{IntoRequest, Request};

/// The bench process (bench/processes/ramp_bench.bpmn) and its form.
pub const HOST_DEFINITION: &str = "ramp_bench";
pub const FORM: &str = "bench_answer";
pub const WORKER: &str = "worker@bench.example";

#[derive(clap::Args, Clone, Debug)]
pub struct Target {
    /// ramp's gRPC address.
    #[arg(
        long,
        env = "RAMP_BENCH_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    pub server: String,
    /// The HS256 secret ramp trusts; the benchmark mints its users' tokens with it.
    #[arg(long, env = "RAMP_JWT_SECRET", hide_env_values = true)]
    pub secret: String,
    /// ramp's database (query counts, outbox backlog, fixtures), `key=value` form.
    #[arg(long, env = "RAMP_BENCH_DATABASE_URL")]
    pub database_url: String,
    /// `ramp serve`'s process id, to read its memory.
    #[arg(long, env = "RAMP_BENCH_SERVER_PID")]
    pub server_pid: Option<u32>,
    /// Folder for the results, one JSON file per scenario.
    #[arg(long, env = "RAMP_BENCH_OUT", default_value = "test-output/bench")]
    pub out: PathBuf,
    /// HTTP/2 connections the scenario's clients share.
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
}

pub struct Bench {
    pub target: Target,
    secret: SecretString,
    /// Makes this run's users and keys unique in a database that outlives it.
    pub run: String,
    channels: Vec<Channel>,
    tokens: Mutex<HashMap<String, AsciiMetadataValue>>,
}

impl Bench {
    pub async fn connect(target: Target) -> Result<Self> {
        let run = format!(
            "{:x}",
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis()
                % 0xff_ffff
        );
        let secret = SecretString::from(target.secret.clone());
        let channels = connections(&target.server, target.connections).await?;
        Ok(Self {
            target,
            secret,
            run,
            channels,
            tokens: Mutex::new(HashMap::new()),
        })
    }

    /// The `i`-th user of a group, unique to this run.
    pub fn user(&self, group: &str, i: usize) -> String {
        format!("{group}{i}-{}@bench.example", self.run)
    }

    /// A bearer header for `email` (minted once, valid for a day).
    pub fn bearer(&self, email: &str, roles: &[&str]) -> AsciiMetadataValue {
        let key = format!("{email}|{}", roles.join(","));
        if let Some(known) = self.tokens.lock().expect("not poisoned").get(&key) {
            return known.clone();
        }
        let value = self.mint(email, roles);
        self.tokens
            .lock()
            .expect("not poisoned")
            .insert(key, value.clone());
        value
    }

    /// A bearer header not kept (for many distinct users).
    pub fn mint(&self, email: &str, roles: &[&str]) -> AsciiMetadataValue {
        let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
        let token = mint_hs256(
            &self.secret,
            &TokenClaims {
                email,
                roles: &roles,
                ttl: Duration::from_secs(24 * 3600),
                issuer: None,
                audience: "ramp",
            },
        )
        .expect("an HS256 token can be minted");
        MetadataValue::try_from(format!("Bearer {token}")).expect("a token is ASCII")
    }

    pub fn channel(&self, i: usize) -> Channel {
        self.channels[i % self.channels.len()].clone()
    }

    pub fn forms(&self, i: usize) -> FormServiceClient<Channel> {
        FormServiceClient::new(self.channel(i)).max_decoding_message_size(16 * 1024 * 1024)
    }

    pub fn processes(&self, i: usize) -> ProcessServiceClient<Channel> {
        ProcessServiceClient::new(self.channel(i))
    }

    pub async fn database(&self) -> Result<tokio_postgres::Client> {
        let (client, connection) =
            tokio_postgres::connect(&self.target.database_url, tokio_postgres::NoTls)
                .await
                .context("connecting to ramp's database")?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// Starts `n` instances of the bench process through ramp, each by its own
    /// user: the hosts that the benchmark's form tasks belong to. Returns
    /// (business key, engine instance id).
    pub async fn start_hosts(&self, n: usize) -> Result<Vec<(String, String)>> {
        futures::stream::iter(0..n)
            .map(|i| async move {
                let user = self.user("host", i);
                let request = StartProcessRequest {
                    definition_key: HOST_DEFINITION.into(),
                    business_key: user.clone(),
                    variables: None,
                    request_id: String::new(),
                };
                let process = self
                    .processes(i)
                    .start_process(authorized(request, self.bearer(&user, &[])))
                    .await
                    .context("starting a host process (is bench/processes deployed?)")?
                    .into_inner()
                    .process
                    .context("a started process")?;
                Ok::<_, anyhow::Error>((user, process.engine_instance_id))
            })
            .buffer_unordered(4)
            .try_collect()
            .await
    }

    /// Creates a form task for `assignee` on a host, as a worker would. The hosts
    /// stand for many people's processes at once, so the caller is also an admin:
    /// ramp lets a worker name only assignees the instance's variables hold.
    pub async fn create_form(
        &self,
        client: &mut FormServiceClient<Channel>,
        host: &(String, String),
        assignee: &str,
        external_task_id: String,
    ) -> Result<FormTask, tonic::Status> {
        let request = CreateFormTaskRequest {
            external_task_id,
            process_instance_id: host.1.clone(),
            process_definition_key: HOST_DEFINITION.into(),
            business_key: host.0.clone(),
            activity_id: FORM.into(),
            form_name: FORM.into(),
            message_name: FORM.into(),
            assignee: assignee.into(),
            topic_name: "submit_form".into(),
            ..Default::default()
        };
        let response = client
            .create_form_task(authorized(
                request,
                self.bearer(WORKER, &["ramp-worker", "ramp-admin"]),
            ))
            .await?;
        response
            .into_inner()
            .form_task
            .ok_or_else(|| tonic::Status::internal("no form task in the response"))
    }

    /// Writes a scenario's figures to `<out>/<name>.json` and prints them.
    pub fn write(&self, name: &str, figures: &Value) -> Result<()> {
        write_results(&self.target.out, name, figures)
    }
}

pub fn write_results(out: &std::path::Path, name: &str, figures: &Value) -> Result<()> {
    std::fs::create_dir_all(out)?;
    let mut figures = figures.clone();
    if let (Some(map), Ok(run)) = (figures.as_object_mut(), std::env::var("RAMP_BENCH_RUN")) {
        map.insert("run".into(), Value::String(run));
    }
    let text = serde_json::to_string_pretty(&figures)?;
    std::fs::write(out.join(format!("{name}.json")), &text)?;
    println!("{name}: {text}");
    Ok(())
}

/// A request carrying a bearer token.
pub fn authorized<T>(message: T, bearer: AsciiMetadataValue) -> Request<T> {
    let mut request = message.into_request();
    request.metadata_mut().insert("authorization", bearer);
    request
}

/// `n` HTTP/2 connections to `server`, each a channel of its own.
pub async fn connections(server: &str, n: usize) -> Result<Vec<Channel>> {
    let mut channels = Vec::with_capacity(n);
    for _ in 0..n.max(1) {
        let channel = Endpoint::from_shared(server.to_owned())?
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(20))
            .keep_alive_while_idle(true)
            .connect_timeout(Duration::from_secs(10))
            .connect()
            .await
            .with_context(|| format!("connecting to {server}"))?;
        channels.push(channel);
    }
    Ok(channels)
}

/// The form answer the bench form accepts.
pub fn answer() -> prost_types::Struct {
    let mut fields = std::collections::BTreeMap::new();
    fields.insert(
        "answer".to_owned(),
        prost_types::Value {
            kind: Some(prost_types::value::Kind::StringValue("yes".into())),
        },
    );
    prost_types::Struct { fields }
}

/// The number of statements the database has run (pg_stat_statements), or, without
/// it, the number of transactions.
pub async fn statements_run(db: &tokio_postgres::Client) -> Result<(i64, &'static str)> {
    if let Ok(row) = db
        .query_one(
            "SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements
             WHERE query NOT LIKE '%pg_stat_statements%'",
            &[],
        )
        .await
    {
        return Ok((row.get(0), "statements (pg_stat_statements)"));
    }
    let row = db
        .query_one(
            "SELECT (xact_commit + xact_rollback)::bigint FROM pg_stat_database
             WHERE datname = current_database()",
            &[],
        )
        .await?;
    Ok((row.get(0), "transactions (pg_stat_database)"))
}

/// The server's process id, when the bench was told it (`RAMP_BENCH_SERVER_PID`).
pub fn server_pid() -> Option<u32> {
    std::env::var("RAMP_BENCH_SERVER_PID").ok()?.parse().ok()
}
