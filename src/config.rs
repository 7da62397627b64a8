//! Typed, layered configuration: built-in defaults, then an optional TOML file, then
//! `RAMP_*` environment variables, then command-line flags. Every setting is checked
//! once at start; an error names the setting and says what is wrong.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize};

/// How callers prove who they are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Bearer JWTs (the only mode for production).
    #[default]
    Jwt,
    /// Unsigned `x-ramp-user` headers, for local development only.
    Dev,
}

/// How log lines look.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Everything `ramp serve` needs. Field names are the lowercase forms of the
/// `RAMP_*` environment variables (`listen` is `RAMP_LISTEN`).
#[derive(Clone, Debug, Deserialize)]
pub struct Config {
    /// Address to listen on for gRPC, gRPC-web and the web UI. `RAMP_LISTEN`.
    pub listen: SocketAddr,
    /// PostgreSQL connection string (URL or `key=value` form). Required.
    /// `RAMP_DATABASE_URL`.
    #[serde(default)]
    pub database_url: Option<SecretString>,
    /// Largest number of pooled database connections. `RAMP_DATABASE_POOL_SIZE`.
    pub database_pool_size: usize,
    /// How long a request waits for a pooled connection before UNAVAILABLE.
    /// `RAMP_DATABASE_TIMEOUT_MS`.
    pub database_timeout_ms: u64,
    /// The engine's REST base, e.g. `http://127.0.0.1:8080/engine-rest`.
    /// `RAMP_CAMUNDA_URL`.
    #[serde(default)]
    pub camunda_url: Option<String>,
    /// Timeout of every engine call, in ms. `RAMP_CAMUNDA_TIMEOUT_MS`.
    pub camunda_timeout_ms: u64,
    /// Time between reconciliation passes (uncertain starts, processes that ended in
    /// the engine), in ms. `RAMP_RECONCILE_INTERVAL_MS`.
    pub reconcile_interval_ms: u64,
    /// How long a start whose outcome is unknown waits before reconciliation
    /// settles it, in ms; longer than an engine call can take.
    /// `RAMP_START_GRACE_MS`.
    pub start_grace_ms: u64,
    /// How far behind its watermark the engine's history is read again, against
    /// clock skew, in seconds. `RAMP_HISTORY_OVERLAP_SECS`.
    pub history_overlap_secs: u64,
    /// HTTP Basic user for the engine, when its authentication is on.
    /// `RAMP_CAMUNDA_USER`.
    #[serde(default)]
    pub camunda_user: Option<String>,
    /// HTTP Basic password for the engine. `RAMP_CAMUNDA_PASSWORD`.
    #[serde(default)]
    pub camunda_password: Option<SecretString>,
    /// `jwt` or `dev`. `RAMP_AUTH`.
    pub auth: AuthMode,
    /// Folder with the built web UI, served at `/`. `RAMP_WEB_DIR`.
    #[serde(default)]
    pub web_dir: Option<PathBuf>,
    /// Log filter in `tracing` syntax, e.g. `info,ramp=debug`. `RAMP_LOG`.
    pub log: String,
    /// `pretty` or `json`. `RAMP_LOG_FORMAT`.
    pub log_format: LogFormat,
    /// Browser origins allowed to call the API (CORS), comma-separated; `*` allows
    /// any. Empty allows none but same-origin. `RAMP_CORS_ORIGINS`.
    #[serde(deserialize_with = "string_list")]
    pub cors_origins: Vec<String>,
    /// Largest accepted request message, in bytes. `RAMP_MAX_MESSAGE_BYTES`.
    pub max_message_bytes: usize,
    /// Concurrent streams allowed on one HTTP/2 connection.
    /// `RAMP_MAX_CONCURRENT_STREAMS`.
    pub max_concurrent_streams: u32,
    /// Interval of HTTP/2 keepalive pings, so idle streams survive proxies.
    /// `RAMP_HTTP2_KEEPALIVE_SECS`.
    pub http2_keepalive_secs: u64,
    /// How long shutdown waits for open requests after streams were told to end.
    /// `RAMP_SHUTDOWN_GRACE_SECS`.
    pub shutdown_grace_secs: u64,
    /// PEM certificate chain for TLS; with `tls_key`, serves HTTPS (and HTTP/2 to
    /// browsers). `RAMP_TLS_CERT`.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS. `RAMP_TLS_KEY`.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// HS256 shared secret (at least 32 characters). `RAMP_JWT_SECRET`. One of the
    /// four key settings is required with `RAMP_AUTH=jwt`.
    #[serde(default)]
    pub jwt_secret: Option<SecretString>,
    /// A file holding the HS256 secret (`make run` generates one).
    /// `RAMP_JWT_SECRET_FILE`.
    #[serde(default)]
    pub jwt_secret_file: Option<PathBuf>,
    /// A PEM public key (RSA or EC) that signs tokens. `RAMP_JWT_PUBLIC_KEY_FILE`.
    #[serde(default)]
    pub jwt_public_key_file: Option<PathBuf>,
    /// The algorithm for `RAMP_JWT_PUBLIC_KEY_FILE` (default: RS256 for RSA keys,
    /// ES256 for EC keys). `RAMP_JWT_ALGORITHM`.
    #[serde(default)]
    pub jwt_algorithm: Option<String>,
    /// A JWKS URL (an OpenID Connect provider's `jwks_uri`). `RAMP_JWT_JWKS_URL`.
    #[serde(default)]
    pub jwt_jwks_url: Option<String>,
    /// The issuer tokens must name (`iss`); unset means any. `RAMP_JWT_ISSUER`.
    #[serde(default)]
    pub jwt_issuer: Option<String>,
    /// The audience tokens must name (`aud`). `RAMP_JWT_AUDIENCE`.
    pub jwt_audience: String,
    /// Clock skew allowed on `exp` and `nbf`, in seconds. `RAMP_JWT_LEEWAY_SECS`.
    pub jwt_leeway_secs: u64,
    /// The claim holding the caller's email. `RAMP_JWT_EMAIL_CLAIM`.
    pub jwt_email_claim: String,
    /// Whether the email counts only with `email_verified: true`. Switch off only
    /// for providers that issue nothing but verified emails.
    /// `RAMP_JWT_REQUIRE_EMAIL_VERIFIED`.
    pub jwt_require_email_verified: bool,
    /// Dotted path of the claim holding the roles (`roles`, or Keycloak's
    /// `realm_access.roles`). `RAMP_JWT_ROLES_CLAIM`.
    pub jwt_roles_claim: String,
    /// Least time between two JWKS fetches for unknown key ids.
    /// `RAMP_JWT_JWKS_MIN_REFRESH_SECS`.
    pub jwt_jwks_min_refresh_secs: u64,
    /// Process definition keys that users may start (admins may start any),
    /// comma-separated. `RAMP_STARTABLE_DEFINITIONS`.
    #[serde(deserialize_with = "string_list")]
    pub startable_definitions: Vec<String>,
    /// Open PendingForms streams one user may hold. `RAMP_MAX_STREAMS_PER_USER`.
    pub max_streams_per_user: usize,
    /// Time between heartbeats on an idle stream, in seconds.
    /// `RAMP_STREAM_HEARTBEAT_SECS`.
    pub stream_heartbeat_secs: u64,
    /// Changes buffered per stream before it catches up from the log instead.
    /// `RAMP_STREAM_BUFFER`.
    pub stream_buffer: usize,
    /// How long the change log serves cursors, in seconds; older ones get a
    /// snapshot. `RAMP_CHANGE_RETENTION_SECS`.
    pub change_retention_secs: u64,
    /// How often each replica reads the change log without a notification, in ms.
    /// `RAMP_CHANGE_POLL_MS`.
    pub change_poll_ms: u64,
    /// How long changes are gathered into one NOTIFY to the other replicas, in ms.
    /// `RAMP_NOTIFY_TICK_MS`.
    pub notify_tick_ms: u64,
    /// How often each replica looks for due deliveries without a wake-up, in ms.
    /// `RAMP_DELIVERY_POLL_MS`.
    pub delivery_poll_ms: u64,
    /// How long a replica holds a claimed delivery, in ms; longer than an engine
    /// call (`RAMP_CAMUNDA_TIMEOUT_MS`). `RAMP_DELIVERY_LEASE_MS`.
    pub delivery_lease_ms: u64,
    /// Attempts after which a delivery that keeps failing (other than waiting for
    /// the receive task) is marked failed. `RAMP_DELIVERY_MAX_ATTEMPTS`.
    pub delivery_max_attempts: i32,
    /// How long after its submission an answer is still retried, in seconds; then
    /// its delivery is marked failed, for an operator (and shown so to its author).
    /// `RAMP_DELIVERY_GIVE_UP_AFTER_SECS`.
    pub delivery_give_up_after_secs: u64,
    /// The longest wait between two delivery attempts, in ms.
    /// `RAMP_DELIVERY_BACKOFF_CAP_MS`.
    pub delivery_backoff_cap_ms: u64,
    /// A separate address for `/metrics`, `/livez` and `/readyz`; unset, the API's
    /// port answers them. `RAMP_METRICS_LISTEN`.
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
    /// Where `ramp worker` serves its `/metrics` and `/livez`; unset, it serves
    /// none. `RAMP_WORKER_METRICS_LISTEN`.
    #[serde(default)]
    pub worker_metrics_listen: Option<SocketAddr>,
    /// How often readiness (the database and the engine) is checked, in ms.
    /// `RAMP_READINESS_INTERVAL_MS`.
    pub readiness_interval_ms: u64,
    /// How long delivered outbox rows are kept, in seconds.
    /// `RAMP_DELIVERED_RETENTION_SECS`.
    pub delivered_retention_secs: u64,
    /// How long submitted answers (personal data) are kept once their delivery is
    /// over (delivered or undeliverable), in seconds. `RAMP_SUBMISSION_RETENTION_SECS`.
    pub submission_retention_secs: u64,
    /// Time between retention passes, in ms. `RAMP_PRUNE_INTERVAL_MS`.
    pub prune_interval_ms: u64,
    /// Rows deleted per statement by retention (small, so no lock is held long).
    /// `RAMP_PRUNE_BATCH`.
    pub prune_batch: i64,
}

/// The built-in defaults, the lowest layer.
#[derive(Serialize)]
struct Defaults {
    listen: &'static str,
    database_pool_size: usize,
    database_timeout_ms: u64,
    camunda_timeout_ms: u64,
    reconcile_interval_ms: u64,
    start_grace_ms: u64,
    history_overlap_secs: u64,
    auth: AuthMode,
    log: &'static str,
    log_format: LogFormat,
    cors_origins: Vec<String>,
    max_message_bytes: usize,
    max_concurrent_streams: u32,
    http2_keepalive_secs: u64,
    shutdown_grace_secs: u64,
    jwt_audience: &'static str,
    jwt_leeway_secs: u64,
    jwt_email_claim: &'static str,
    jwt_require_email_verified: bool,
    jwt_roles_claim: &'static str,
    jwt_jwks_min_refresh_secs: u64,
    startable_definitions: Vec<String>,
    max_streams_per_user: usize,
    stream_heartbeat_secs: u64,
    stream_buffer: usize,
    change_retention_secs: u64,
    change_poll_ms: u64,
    notify_tick_ms: u64,
    delivery_poll_ms: u64,
    delivery_lease_ms: u64,
    delivery_max_attempts: i32,
    delivery_give_up_after_secs: u64,
    delivery_backoff_cap_ms: u64,
    readiness_interval_ms: u64,
    delivered_retention_secs: u64,
    submission_retention_secs: u64,
    prune_interval_ms: u64,
    prune_batch: i64,
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:50051",
            database_pool_size: 16,
            database_timeout_ms: 5_000,
            camunda_timeout_ms: 10_000,
            reconcile_interval_ms: 2_000,
            start_grace_ms: 30_000,
            history_overlap_secs: 30,
            auth: AuthMode::Jwt,
            log: "info",
            log_format: LogFormat::Pretty,
            cors_origins: Vec::new(),
            max_message_bytes: 4 * 1024 * 1024,
            max_concurrent_streams: 10_000,
            http2_keepalive_secs: 20,
            shutdown_grace_secs: 10,
            jwt_audience: "ramp",
            jwt_leeway_secs: 30,
            jwt_email_claim: "email",
            jwt_require_email_verified: true,
            jwt_roles_claim: "roles",
            jwt_jwks_min_refresh_secs: 10,
            startable_definitions: Vec::new(),
            max_streams_per_user: 8,
            stream_heartbeat_secs: 20,
            stream_buffer: 64,
            change_retention_secs: 7 * 24 * 60 * 60,
            change_poll_ms: 1_000,
            notify_tick_ms: 2,
            delivery_poll_ms: 1_000,
            delivery_lease_ms: 30_000,
            delivery_max_attempts: 30,
            delivery_give_up_after_secs: 24 * 60 * 60,
            delivery_backoff_cap_ms: 60_000,
            readiness_interval_ms: 5_000,
            delivered_retention_secs: 7 * 24 * 60 * 60,
            submission_retention_secs: 90 * 24 * 60 * 60,
            prune_interval_ms: 60_000,
            prune_batch: 500,
        }
    }
}

/// A configuration problem, naming the setting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(String),
    #[error("configuration: {setting} {problem}")]
    Invalid {
        setting: &'static str,
        problem: String,
    },
}

impl Config {
    /// Loads the layers: defaults, the TOML file (if given), `RAMP_*` variables, and
    /// the overrides (flags, already in configuration field names). Then validates.
    pub fn load<T: Serialize>(file: Option<&Path>, overrides: T) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Defaults::default()));
        if let Some(file) = file {
            if !file.is_file() {
                return Err(ConfigError::Invalid {
                    setting: "config file",
                    problem: format!("{} does not exist", file.display()),
                });
            }
            figment = figment.merge(Toml::file(file));
        }
        figment = figment
            .merge(Env::prefixed("RAMP_").ignore(&["config", "token", "server"]))
            .merge(Serialized::defaults(overrides));
        let config: Config = figment.extract().map_err(describe)?;
        config.validate()?;
        Ok(config)
    }

    /// Loads from the environment alone (with defaults), for tools and tests.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::load(None, NoOverrides {})
    }

    /// Checks what the types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |setting, problem: &str| ConfigError::Invalid {
            setting,
            problem: problem.to_owned(),
        };
        if let Some(url) = &self.database_url {
            // The parser's message never contains the password.
            tokio_postgres::Config::from_str(url.expose_secret()).map_err(|e| {
                invalid(
                    "RAMP_DATABASE_URL",
                    &format!("is not a PostgreSQL connection string: {e}"),
                )
            })?;
        }
        if self.database_pool_size == 0 {
            return Err(invalid("RAMP_DATABASE_POOL_SIZE", "must be at least 1"));
        }
        if self.reconcile_interval_ms == 0 {
            return Err(invalid("RAMP_RECONCILE_INTERVAL_MS", "must be at least 1"));
        }
        if self.start_grace_ms <= self.camunda_timeout_ms {
            return Err(invalid(
                "RAMP_START_GRACE_MS",
                "must be longer than RAMP_CAMUNDA_TIMEOUT_MS, or reconciliation could settle a start still in flight",
            ));
        }
        if self.camunda_timeout_ms == 0 {
            return Err(invalid("RAMP_CAMUNDA_TIMEOUT_MS", "must be at least 1"));
        }
        if self.database_timeout_ms == 0 {
            return Err(invalid("RAMP_DATABASE_TIMEOUT_MS", "must be at least 1"));
        }
        if let Some(url) = &self.camunda_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(invalid(
                "RAMP_CAMUNDA_URL",
                "must be an http:// or https:// URL",
            ));
        }
        if !(1024..=64 * 1024 * 1024).contains(&self.max_message_bytes) {
            return Err(invalid(
                "RAMP_MAX_MESSAGE_BYTES",
                "must be between 1024 and 67108864",
            ));
        }
        if self.max_concurrent_streams == 0 {
            return Err(invalid("RAMP_MAX_CONCURRENT_STREAMS", "must be at least 1"));
        }
        if self.http2_keepalive_secs == 0 {
            return Err(invalid("RAMP_HTTP2_KEEPALIVE_SECS", "must be at least 1"));
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => {
                return Err(invalid("RAMP_TLS_KEY", "is required with RAMP_TLS_CERT"));
            }
            (None, Some(_)) => {
                return Err(invalid("RAMP_TLS_CERT", "is required with RAMP_TLS_KEY"));
            }
            (Some(cert), Some(key)) => {
                if !cert.is_file() {
                    return Err(invalid(
                        "RAMP_TLS_CERT",
                        &format!("{} is not a file", cert.display()),
                    ));
                }
                if !key.is_file() {
                    return Err(invalid(
                        "RAMP_TLS_KEY",
                        &format!("{} is not a file", key.display()),
                    ));
                }
            }
            (None, None) => {}
        }
        if let Some(dir) = &self.web_dir
            && !dir.join("index.html").is_file()
        {
            return Err(invalid(
                "RAMP_WEB_DIR",
                &format!("{} has no index.html", dir.display()),
            ));
        }
        for origin in &self.cors_origins {
            if origin != "*" && http::HeaderValue::from_str(origin).is_err() {
                return Err(invalid(
                    "RAMP_CORS_ORIGINS",
                    &format!("{origin:?} is not an origin"),
                ));
            }
        }
        if self.auth == AuthMode::Jwt {
            let keys = [
                self.jwt_secret.is_some(),
                self.jwt_secret_file.is_some(),
                self.jwt_public_key_file.is_some(),
                self.jwt_jwks_url.is_some(),
            ];
            // Which key is required is checked where the key is loaded (serve);
            // commands that need none (migrate) run without.
            if keys.iter().filter(|k| **k).count() > 1 {
                return Err(invalid(
                    "RAMP_JWT_SECRET",
                    "and RAMP_JWT_SECRET_FILE, RAMP_JWT_PUBLIC_KEY_FILE, RAMP_JWT_JWKS_URL exclude each other: set one",
                ));
            }
            if let Some(secret) = &self.jwt_secret
                && secret.expose_secret().len() < 32
            {
                return Err(invalid("RAMP_JWT_SECRET", "must be at least 32 characters"));
            }
            if let Some(url) = &self.jwt_jwks_url
                && !(url.starts_with("http://") || url.starts_with("https://"))
            {
                return Err(invalid(
                    "RAMP_JWT_JWKS_URL",
                    "must be an http:// or https:// URL",
                ));
            }
            if self.jwt_audience.trim().is_empty() {
                return Err(invalid("RAMP_JWT_AUDIENCE", "must not be empty"));
            }
        }
        if self.stream_heartbeat_secs == 0 {
            return Err(invalid("RAMP_STREAM_HEARTBEAT_SECS", "must be at least 1"));
        }
        if self.stream_buffer == 0 {
            return Err(invalid("RAMP_STREAM_BUFFER", "must be at least 1"));
        }
        if self.change_poll_ms == 0 {
            return Err(invalid("RAMP_CHANGE_POLL_MS", "must be at least 1"));
        }
        if self.delivery_poll_ms == 0 {
            return Err(invalid("RAMP_DELIVERY_POLL_MS", "must be at least 1"));
        }
        if self.delivery_lease_ms <= self.camunda_timeout_ms {
            return Err(invalid(
                "RAMP_DELIVERY_LEASE_MS",
                "must be longer than RAMP_CAMUNDA_TIMEOUT_MS, or a lease could run out during an engine call",
            ));
        }
        if self.delivery_max_attempts < 1 {
            return Err(invalid("RAMP_DELIVERY_MAX_ATTEMPTS", "must be at least 1"));
        }
        if self.delivery_give_up_after_secs == 0 {
            return Err(invalid(
                "RAMP_DELIVERY_GIVE_UP_AFTER_SECS",
                "must be at least 1",
            ));
        }
        if self.delivery_backoff_cap_ms < 250 {
            return Err(invalid(
                "RAMP_DELIVERY_BACKOFF_CAP_MS",
                "must be at least 250",
            ));
        }
        if let Some(metrics) = self.metrics_listen
            && metrics == self.listen
            && metrics.port() != 0
        {
            return Err(invalid(
                "RAMP_METRICS_LISTEN",
                "must differ from RAMP_LISTEN (leave it unset to serve metrics on the API's port)",
            ));
        }
        if self.readiness_interval_ms == 0 {
            return Err(invalid("RAMP_READINESS_INTERVAL_MS", "must be at least 1"));
        }
        if self.change_retention_secs == 0 {
            return Err(invalid("RAMP_CHANGE_RETENTION_SECS", "must be at least 1"));
        }
        if self.delivered_retention_secs == 0 {
            return Err(invalid(
                "RAMP_DELIVERED_RETENTION_SECS",
                "must be at least 1",
            ));
        }
        if self.submission_retention_secs == 0 {
            return Err(invalid(
                "RAMP_SUBMISSION_RETENTION_SECS",
                "must be at least 1",
            ));
        }
        if self.prune_interval_ms == 0 {
            return Err(invalid("RAMP_PRUNE_INTERVAL_MS", "must be at least 1"));
        }
        if !(1..=10_000).contains(&self.prune_batch) {
            return Err(invalid("RAMP_PRUNE_BATCH", "must be between 1 and 10000"));
        }
        if self.max_streams_per_user == 0 {
            return Err(invalid("RAMP_MAX_STREAMS_PER_USER", "must be at least 1"));
        }
        tracing_subscriber::EnvFilter::try_new(&self.log)
            .map_err(|e| invalid("RAMP_LOG", &format!("is not a log filter: {e}")))?;
        Ok(())
    }

    /// The database connection string, which every command but `token` needs.
    pub fn database_url(&self) -> Result<&SecretString, ConfigError> {
        self.database_url.as_ref().ok_or(ConfigError::Invalid {
            setting: "RAMP_DATABASE_URL",
            problem: "is not set: give a PostgreSQL connection string".into(),
        })
    }

    /// How to reach the engine, which `deploy`, `worker` and (later) `serve` need.
    pub fn camunda(&self) -> Result<crate::camunda::CamundaSettings, ConfigError> {
        let url = self.camunda_url.clone().ok_or(ConfigError::Invalid {
            setting: "RAMP_CAMUNDA_URL",
            problem:
                "is not set: give the engine's REST base, e.g. http://127.0.0.1:8080/engine-rest"
                    .into(),
        })?;
        Ok(crate::camunda::CamundaSettings {
            url,
            user: self.camunda_user.clone(),
            password: self.camunda_password.clone(),
            timeout: Duration::from_millis(self.camunda_timeout_ms),
        })
    }

    pub fn reconcile(&self) -> crate::processes::ReconcileSettings {
        crate::processes::ReconcileSettings {
            interval: Duration::from_millis(self.reconcile_interval_ms),
            overlap: Duration::from_secs(self.history_overlap_secs),
            start_grace: Duration::from_millis(self.start_grace_ms),
        }
    }

    pub fn delivery(&self) -> crate::delivery::DeliverySettings {
        crate::delivery::DeliverySettings {
            poll: Duration::from_millis(self.delivery_poll_ms),
            lease: Duration::from_millis(self.delivery_lease_ms),
            max_attempts: self.delivery_max_attempts,
            batch: 50,
            give_up_after: Duration::from_secs(self.delivery_give_up_after_secs),
            backoff_cap: Duration::from_millis(self.delivery_backoff_cap_ms),
            settle: Duration::from_millis(2 * self.camunda_timeout_ms),
        }
    }

    pub fn hub(&self) -> crate::forms::HubSettings {
        crate::forms::HubSettings {
            poll_interval: Duration::from_millis(self.change_poll_ms),
            notify_tick: Duration::from_millis(self.notify_tick_ms),
            stream_buffer: self.stream_buffer,
            max_streams_per_user: self.max_streams_per_user,
        }
    }

    pub fn stream(&self) -> crate::forms::StreamSettings {
        crate::forms::StreamSettings {
            heartbeat: Duration::from_secs(self.stream_heartbeat_secs),
            retention: Duration::from_secs(self.change_retention_secs),
        }
    }

    pub fn retention(&self) -> crate::retention::RetentionSettings {
        crate::retention::RetentionSettings {
            change_log: Duration::from_secs(self.change_retention_secs),
            delivered: Duration::from_secs(self.delivered_retention_secs),
            submissions: Duration::from_secs(self.submission_retention_secs),
            interval: Duration::from_millis(self.prune_interval_ms),
            batch: self.prune_batch,
        }
    }

    pub fn readiness_interval(&self) -> Duration {
        Duration::from_millis(self.readiness_interval_ms)
    }

    pub fn database_timeout(&self) -> Duration {
        Duration::from_millis(self.database_timeout_ms)
    }

    pub fn http2_keepalive(&self) -> Duration {
        Duration::from_secs(self.http2_keepalive_secs)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
}

/// No overrides beyond the file and the environment.
#[derive(Serialize)]
pub struct NoOverrides {}

/// Accepts `"a,b"` (as environment variables give it) as well as `["a", "b"]`.
fn string_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        OneOrMany::Many(v) => v,
    })
}

/// Names each failing setting as its environment variable, with where its value came
/// from. figment's own message can repeat itself and shows bare keys.
fn describe(error: figment::Error) -> ConfigError {
    let problems: Vec<String> = error
        .into_iter()
        .map(|e| {
            let setting = if e.path.is_empty() {
                "configuration".to_owned()
            } else {
                format!("RAMP_{}", e.path.join("_").to_uppercase())
            };
            let source = e
                .metadata
                .as_ref()
                .and_then(|m| m.source.as_ref().map(|s| format!(" (from {s})")))
                .unwrap_or_default();
            format!("{setting}{source}: {}", e.kind)
        })
        .collect();
    ConfigError::Load(problems.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(extra: serde_json::Value) -> Result<Config, ConfigError> {
        let mut settings = serde_json::json!({"auth": "dev", "log": "info"});
        settings
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        Config::load(None, settings)
    }

    fn refused(extra: serde_json::Value) -> String {
        load(extra).expect_err("refused").to_string()
    }

    #[test]
    fn operations_settings_are_checked() {
        assert!(refused(serde_json::json!({"prune_batch": 0})).contains("RAMP_PRUNE_BATCH"));
        assert!(refused(serde_json::json!({"prune_batch": 10_001})).contains("RAMP_PRUNE_BATCH"));
        assert!(
            refused(serde_json::json!({"prune_interval_ms": 0})).contains("RAMP_PRUNE_INTERVAL_MS")
        );
        assert!(
            refused(serde_json::json!({"readiness_interval_ms": 0}))
                .contains("RAMP_READINESS_INTERVAL_MS")
        );
        assert!(
            refused(serde_json::json!({"change_retention_secs": 0}))
                .contains("RAMP_CHANGE_RETENTION_SECS")
        );
        assert!(
            refused(serde_json::json!({"delivered_retention_secs": 0}))
                .contains("RAMP_DELIVERED_RETENTION_SECS")
        );
        assert!(
            refused(serde_json::json!({"submission_retention_secs": 0}))
                .contains("RAMP_SUBMISSION_RETENTION_SECS")
        );
        assert!(
            refused(serde_json::json!({
                "listen": "127.0.0.1:50051",
                "metrics_listen": "127.0.0.1:50051",
            }))
            .contains("RAMP_METRICS_LISTEN")
        );
        let fine = load(serde_json::json!({"metrics_listen": "127.0.0.1:9090"})).unwrap();
        assert_eq!(fine.metrics_listen, Some("127.0.0.1:9090".parse().unwrap()));
        assert_eq!(fine.retention().batch, 500);
    }
}
