//! Typed, layered configuration: built-in defaults, then an optional TOML file, then
//! `RAMP_*` environment variables, then command-line flags.
//!
//! Environment values are text as written: `RAMP_JWT_AUDIENCE=12345` is the string
//! `12345` and `RAMP_CAMUNDA_PASSWORD='"x"'` keeps its quotes; a number or a switch is
//! read from that text only for settings that are numbers or switches. A `RAMP_*`
//! variable or a file key that names no setting stops every command with the nearest
//! setting's name, so a misspelt check is never silently off. Each command reads and
//! checks only the settings it uses (`Settings::serve`, `::worker`, ...), so one env
//! file can serve them all. No message ever shows a secret's value.
//!
//! Each part owns the type of its settings (`auth::AuthSettings`,
//! `delivery::DeliverySettings`, `telemetry::LogFormat`, ...); this module maps the
//! `RAMP_*` names onto them, so the parts never import it.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use figment::providers::{Format, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider, Source};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use crate::auth::{AuthSettings, JwtSettings, KeyError, KeySettings};

pub use crate::auth::AuthMode;
pub use crate::telemetry::LogFormat;

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
    /// Connections open at once; one more is closed as soon as it is accepted.
    /// `RAMP_MAX_CONNECTIONS`.
    pub max_connections: usize,
    /// How long a new connection may take to send its first request (a TLS
    /// handshake included), in seconds. `RAMP_FIRST_REQUEST_TIMEOUT_SECS`.
    pub first_request_timeout_secs: u64,
    /// How long a connection may stay without a request in flight (an open stream
    /// is one) before it is closed, in seconds. `RAMP_IDLE_TIMEOUT_SECS`.
    pub idle_timeout_secs: u64,
    /// The largest header block of a request, on HTTP/1.1 and HTTP/2 alike, counted
    /// as HTTP/2 counts it (each field's name and value plus 32 bytes).
    /// `RAMP_MAX_HEADER_BYTES`.
    pub max_header_bytes: usize,
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
    /// Dotted path of the claim holding the caller's engine user id, the id the
    /// engine's user tasks name as assignee and candidate user (`email`, or
    /// `preferred_username`). `RAMP_JWT_USER_ID_CLAIM`.
    pub jwt_user_id_claim: String,
    /// Dotted path of the claim holding the caller's groups, matched against the
    /// candidate groups of the engine's user tasks. `RAMP_JWT_GROUPS_CLAIM`.
    pub jwt_groups_claim: String,
    /// Least time between two JWKS fetches for unknown key ids.
    /// `RAMP_JWT_JWKS_MIN_REFRESH_SECS`.
    pub jwt_jwks_min_refresh_secs: u64,
    /// The longest lifetime a token may have, in seconds: `exp - iat`, and `exp`
    /// from now (a token valid for years is refused, not trusted for years).
    /// `RAMP_JWT_MAX_TTL_SECS`.
    pub jwt_max_ttl_secs: u64,
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
    /// The web UI's address as people reach it, e.g. `https://forms.example.com`:
    /// notifications link to `<it>/forms/<id>`. Required by mail and webhook
    /// notifications. `RAMP_PUBLIC_URL`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// The SMTP server that sends notification mail, as a URL:
    /// `smtp://host:25` (plain, or STARTTLS with `?tls=required`),
    /// `smtps://user:password@host:465` (TLS). Unset, no mail is sent.
    /// `RAMP_SMTP_URL`.
    #[serde(default)]
    pub smtp_url: Option<SecretString>,
    /// The sender of notification mail, e.g. `ramp <forms@example.com>`.
    /// Required with `RAMP_SMTP_URL`. `RAMP_SMTP_FROM`.
    #[serde(default)]
    pub smtp_from: Option<String>,
    /// An http(s) URL that receives each notification as a signed JSON POST.
    /// Unset, none is sent. `RAMP_NOTIFY_WEBHOOK_URL`.
    #[serde(default)]
    pub notify_webhook_url: Option<String>,
    /// The shared secret (at least 32 characters) that signs webhook bodies
    /// (`X-Ramp-Signature: sha256=<HMAC-SHA256 hex>`). Required with
    /// `RAMP_NOTIFY_WEBHOOK_URL`. `RAMP_NOTIFY_WEBHOOK_SECRET`.
    #[serde(default)]
    pub notify_webhook_secret: Option<SecretString>,
    /// How long a user's first new form waits for others to go in the same mail,
    /// in ms. `RAMP_NOTIFY_GATHER_MS`.
    pub notify_gather_ms: u64,
    /// The least time between two mails (or webhook calls) to one user, in ms.
    /// `RAMP_NOTIFY_INTERVAL_MS`.
    pub notify_interval_ms: u64,
    /// How long a replica holds a claimed send, in ms; the SMTP or HTTP call gets
    /// half of it. `RAMP_NOTIFY_LEASE_MS`.
    pub notify_lease_ms: u64,
    /// How often each replica looks for notifications to send, in ms.
    /// `RAMP_NOTIFY_POLL_MS`.
    pub notify_poll_ms: u64,
    /// Whether the engine's own user tasks join the inbox. `RAMP_USER_TASKS`.
    pub user_tasks: bool,
    /// How often the replica holding the lease reads the engine's task changes,
    /// in ms. `RAMP_USER_TASK_POLL_MS`.
    pub user_task_poll_ms: u64,
    /// How far below its watermark each read goes again, in ms: longer than an
    /// engine transaction takes to commit after it stamped a task, plus the clock
    /// differences between engine nodes. `RAMP_USER_TASK_OVERLAP_MS`.
    pub user_task_overlap_ms: u64,
    /// How long the replica reading task changes holds its lease, in ms.
    /// `RAMP_USER_TASK_LEASE_MS`.
    pub user_task_lease_ms: u64,
    /// Time between full reads of the engine's open user tasks, which mend anything
    /// the change reads missed, in seconds. `RAMP_USER_TASK_RESYNC_SECS`.
    pub user_task_resync_secs: u64,
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
    max_connections: usize,
    first_request_timeout_secs: u64,
    idle_timeout_secs: u64,
    max_header_bytes: usize,
    shutdown_grace_secs: u64,
    jwt_audience: &'static str,
    jwt_leeway_secs: u64,
    jwt_email_claim: &'static str,
    jwt_require_email_verified: bool,
    jwt_roles_claim: &'static str,
    jwt_user_id_claim: &'static str,
    jwt_groups_claim: &'static str,
    jwt_jwks_min_refresh_secs: u64,
    jwt_max_ttl_secs: u64,
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
    notify_gather_ms: u64,
    notify_interval_ms: u64,
    notify_lease_ms: u64,
    notify_poll_ms: u64,
    user_tasks: bool,
    user_task_poll_ms: u64,
    user_task_overlap_ms: u64,
    user_task_lease_ms: u64,
    user_task_resync_secs: u64,
    server: &'static str,
    worker_topics: Vec<String>,
    worker_definition_keys: Vec<String>,
    worker_long_poll_ms: u64,
    worker_lock_ms: u64,
    worker_max_in_flight: usize,
    worker_retries: i32,
    worker_retry_timeout_ms: u64,
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
            max_connections: 10_000,
            first_request_timeout_secs: 10,
            idle_timeout_secs: 300,
            max_header_bytes: 32 * 1024,
            shutdown_grace_secs: 10,
            jwt_audience: "ramp",
            jwt_leeway_secs: 30,
            jwt_email_claim: "email",
            jwt_require_email_verified: true,
            jwt_roles_claim: "roles",
            jwt_user_id_claim: "email",
            jwt_groups_claim: "groups",
            jwt_jwks_min_refresh_secs: 10,
            jwt_max_ttl_secs: 24 * 60 * 60,
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
            notify_gather_ms: 5_000,
            notify_interval_ms: 60_000,
            notify_lease_ms: 60_000,
            notify_poll_ms: 1_000,
            user_tasks: true,
            user_task_poll_ms: 500,
            user_task_overlap_ms: 5_000,
            user_task_lease_ms: 10_000,
            user_task_resync_secs: 300,
            server: "http://127.0.0.1:50051",
            worker_topics: vec!["submit_form".to_owned()],
            worker_definition_keys: Vec::new(),
            worker_long_poll_ms: 20_000,
            worker_lock_ms: 60_000,
            worker_max_in_flight: 8,
            worker_retries: 3,
            worker_retry_timeout_ms: 2_000,
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

impl From<KeyError> for ConfigError {
    fn from(KeyError { setting, problem }: KeyError) -> Self {
        Self::Invalid { setting, problem }
    }
}

impl Config {
    /// Loads the layers (see `Settings::load`) and reads `ramp serve`'s settings.
    pub fn load<T: Serialize>(file: Option<&Path>, overrides: T) -> Result<Self, ConfigError> {
        Settings::load(file, overrides)?.serve()
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
        check_database_url(self.database_url.as_ref())?;
        at_least("RAMP_DATABASE_POOL_SIZE", self.database_pool_size, 1)?;
        at_least("RAMP_RECONCILE_INTERVAL_MS", self.reconcile_interval_ms, 1)?;
        if self.start_grace_ms <= self.camunda_timeout_ms {
            return Err(invalid(
                "RAMP_START_GRACE_MS",
                "must be longer than RAMP_CAMUNDA_TIMEOUT_MS, or reconciliation could settle a start still in flight",
            ));
        }
        at_least("RAMP_CAMUNDA_TIMEOUT_MS", self.camunda_timeout_ms, 1)?;
        at_least("RAMP_DATABASE_TIMEOUT_MS", self.database_timeout_ms, 1)?;
        self.engine().validate()?;
        within(
            "RAMP_MAX_MESSAGE_BYTES",
            self.max_message_bytes,
            1024..=64 * 1024 * 1024,
        )?;
        at_least(
            "RAMP_MAX_CONCURRENT_STREAMS",
            self.max_concurrent_streams,
            1,
        )?;
        at_least("RAMP_HTTP2_KEEPALIVE_SECS", self.http2_keepalive_secs, 1)?;
        at_least("RAMP_MAX_CONNECTIONS", self.max_connections, 1)?;
        at_least(
            "RAMP_FIRST_REQUEST_TIMEOUT_SECS",
            self.first_request_timeout_secs,
            1,
        )?;
        at_least("RAMP_IDLE_TIMEOUT_SECS", self.idle_timeout_secs, 1)?;
        within(
            "RAMP_MAX_HEADER_BYTES",
            self.max_header_bytes,
            4 * 1024..=256 * 1024,
        )?;
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
            // That one is set, and that its file reads as a key, is checked where
            // the key is read: `Config::authentication`, as the server is built.
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
            at_least("RAMP_JWT_MAX_TTL_SECS", self.jwt_max_ttl_secs, 1)?;
        }
        at_least("RAMP_STREAM_HEARTBEAT_SECS", self.stream_heartbeat_secs, 1)?;
        at_least("RAMP_STREAM_BUFFER", self.stream_buffer, 1)?;
        at_least("RAMP_CHANGE_POLL_MS", self.change_poll_ms, 1)?;
        at_least("RAMP_DELIVERY_POLL_MS", self.delivery_poll_ms, 1)?;
        if self.delivery_lease_ms <= self.camunda_timeout_ms {
            return Err(invalid(
                "RAMP_DELIVERY_LEASE_MS",
                "must be longer than RAMP_CAMUNDA_TIMEOUT_MS, or a lease could run out during an engine call",
            ));
        }
        at_least("RAMP_DELIVERY_MAX_ATTEMPTS", self.delivery_max_attempts, 1)?;
        at_least(
            "RAMP_DELIVERY_GIVE_UP_AFTER_SECS",
            self.delivery_give_up_after_secs,
            1,
        )?;
        at_least(
            "RAMP_DELIVERY_BACKOFF_CAP_MS",
            self.delivery_backoff_cap_ms,
            250,
        )?;
        if let Some(metrics) = self.metrics_listen
            && metrics == self.listen
            && metrics.port() != 0
        {
            return Err(invalid(
                "RAMP_METRICS_LISTEN",
                "must differ from RAMP_LISTEN (leave it unset to serve metrics on the API's port)",
            ));
        }
        at_least("RAMP_READINESS_INTERVAL_MS", self.readiness_interval_ms, 1)?;
        at_least("RAMP_CHANGE_RETENTION_SECS", self.change_retention_secs, 1)?;
        at_least(
            "RAMP_DELIVERED_RETENTION_SECS",
            self.delivered_retention_secs,
            1,
        )?;
        at_least(
            "RAMP_SUBMISSION_RETENTION_SECS",
            self.submission_retention_secs,
            1,
        )?;
        at_least("RAMP_PRUNE_INTERVAL_MS", self.prune_interval_ms, 1)?;
        within("RAMP_PRUNE_BATCH", self.prune_batch, 1..=10_000)?;
        at_least("RAMP_MAX_STREAMS_PER_USER", self.max_streams_per_user, 1)?;
        self.validate_notify()?;
        LogConfig {
            log: self.log.clone(),
            log_format: self.log_format,
        }
        .validate()?;
        Ok(())
    }

    /// The database connection string, which every command but `token` needs.
    pub fn database_url(&self) -> Result<&SecretString, ConfigError> {
        require_database_url(self.database_url.as_ref())
    }

    fn engine(&self) -> EngineConfig {
        EngineConfig {
            camunda_url: self.camunda_url.clone(),
            camunda_user: self.camunda_user.clone(),
            camunda_password: self.camunda_password.clone(),
            camunda_timeout_ms: self.camunda_timeout_ms,
        }
    }

    /// How callers are checked; with JWTs, the key is read and checked here.
    pub fn authentication(&self) -> Result<AuthSettings, ConfigError> {
        if self.auth == AuthMode::Dev {
            return Ok(AuthSettings::Dev);
        }
        let key = KeySettings {
            secret: self.jwt_secret.clone(),
            secret_file: self.jwt_secret_file.clone(),
            public_key_file: self.jwt_public_key_file.clone(),
            algorithm: self.jwt_algorithm.clone(),
            jwks_url: self.jwt_jwks_url.clone(),
        };
        Ok(AuthSettings::Jwt(Box::new(JwtSettings {
            key: key.load()?,
            issuer: self.jwt_issuer.clone(),
            audience: self.jwt_audience.clone(),
            leeway_secs: self.jwt_leeway_secs,
            email_claim: self.jwt_email_claim.clone(),
            require_email_verified: self.jwt_require_email_verified,
            roles_claim: self.jwt_roles_claim.clone(),
            user_id_claim: self.jwt_user_id_claim.clone(),
            groups_claim: self.jwt_groups_claim.clone(),
            jwks_min_refresh: Duration::from_secs(self.jwt_jwks_min_refresh_secs),
            max_ttl: Duration::from_secs(self.jwt_max_ttl_secs),
        })))
    }

    /// How to reach the engine.
    pub fn camunda(&self) -> Result<crate::camunda::CamundaSettings, ConfigError> {
        self.engine().camunda()
    }

    /// The bounds on connections and their headers.
    pub fn connection_limits(&self) -> crate::server::ConnectionLimits {
        crate::server::ConnectionLimits {
            max_connections: self.max_connections,
            first_request: Duration::from_secs(self.first_request_timeout_secs),
            idle: Duration::from_secs(self.idle_timeout_secs),
            max_header_bytes: self.max_header_bytes,
        }
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

    fn validate_notify(&self) -> Result<(), ConfigError> {
        let invalid = |setting, problem: &str| ConfigError::Invalid {
            setting,
            problem: problem.to_owned(),
        };
        if let Some(url) = &self.public_url {
            check_http_url("RAMP_PUBLIC_URL", url)?;
        }
        if let Some(url) = &self.smtp_url {
            crate::notify::check_smtp_url(url.expose_secret())
                .map_err(|problem| invalid("RAMP_SMTP_URL", &problem))?;
            match &self.smtp_from {
                None => return Err(invalid("RAMP_SMTP_FROM", "is required with RAMP_SMTP_URL")),
                Some(from) if from.parse::<lettre::message::Mailbox>().is_err() => {
                    return Err(invalid(
                        "RAMP_SMTP_FROM",
                        "is not a mailbox (`name <address>` or `address`)",
                    ));
                }
                Some(_) => {}
            }
        }
        if let Some(url) = &self.notify_webhook_url {
            check_http_url("RAMP_NOTIFY_WEBHOOK_URL", url)?;
            match &self.notify_webhook_secret {
                None => {
                    return Err(invalid(
                        "RAMP_NOTIFY_WEBHOOK_SECRET",
                        "is required with RAMP_NOTIFY_WEBHOOK_URL",
                    ));
                }
                Some(secret) if secret.expose_secret().len() < 32 => {
                    return Err(invalid(
                        "RAMP_NOTIFY_WEBHOOK_SECRET",
                        "must be at least 32 characters",
                    ));
                }
                Some(_) => {}
            }
        }
        if (self.smtp_url.is_some() || self.notify_webhook_url.is_some())
            && self.public_url.is_none()
        {
            return Err(invalid(
                "RAMP_PUBLIC_URL",
                "is required with notifications (RAMP_SMTP_URL or RAMP_NOTIFY_WEBHOOK_URL): their links point there",
            ));
        }
        at_least("RAMP_NOTIFY_INTERVAL_MS", self.notify_interval_ms, 1)?;
        at_least("RAMP_NOTIFY_POLL_MS", self.notify_poll_ms, 1)?;
        at_least("RAMP_NOTIFY_LEASE_MS", self.notify_lease_ms, 2000)?;
        at_least("RAMP_USER_TASK_POLL_MS", self.user_task_poll_ms, 1)?;
        at_least("RAMP_USER_TASK_LEASE_MS", self.user_task_lease_ms, 1000)?;
        at_least("RAMP_USER_TASK_RESYNC_SECS", self.user_task_resync_secs, 1)?;
        Ok(())
    }

    /// The notifier's settings; its channels are off unless configured.
    pub fn notify(&self) -> crate::notify::NotifySettings {
        crate::notify::NotifySettings {
            public_url: self
                .public_url
                .as_deref()
                .unwrap_or_default()
                .trim_end_matches('/')
                .to_owned(),
            smtp_url: self.smtp_url.clone(),
            smtp_from: self.smtp_from.clone().unwrap_or_default(),
            webhook_url: self.notify_webhook_url.clone(),
            webhook_secret: self.notify_webhook_secret.clone(),
            gather: Duration::from_millis(self.notify_gather_ms),
            interval: Duration::from_millis(self.notify_interval_ms),
            lease: Duration::from_millis(self.notify_lease_ms),
            poll: Duration::from_millis(self.notify_poll_ms),
        }
    }

    /// How the engine's user tasks are read.
    pub fn user_tasks(&self) -> crate::usertasks::UserTaskSettings {
        crate::usertasks::UserTaskSettings {
            enabled: self.user_tasks,
            poll: Duration::from_millis(self.user_task_poll_ms),
            overlap: Duration::from_millis(self.user_task_overlap_ms),
            lease: Duration::from_millis(self.user_task_lease_ms),
            resync: Duration::from_secs(self.user_task_resync_secs),
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

/// Refuses a `value` of `setting` below `least`.
fn at_least<T: PartialOrd + std::fmt::Display>(
    setting: &'static str,
    value: T,
    least: T,
) -> Result<(), ConfigError> {
    if value < least {
        return Err(ConfigError::Invalid {
            setting,
            problem: format!("must be at least {least}"),
        });
    }
    Ok(())
}

/// Refuses a `value` of `setting` outside `range`.
fn within<T: PartialOrd + std::fmt::Display>(
    setting: &'static str,
    value: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<(), ConfigError> {
    if !range.contains(&value) {
        return Err(ConfigError::Invalid {
            setting,
            problem: format!("must be between {} and {}", range.start(), range.end()),
        });
    }
    Ok(())
}

fn check_database_url(url: Option<&SecretString>) -> Result<(), ConfigError> {
    if let Some(url) = url {
        // The parser's message never contains the password.
        tokio_postgres::Config::from_str(url.expose_secret()).map_err(|e| {
            ConfigError::Invalid {
                setting: "RAMP_DATABASE_URL",
                problem: format!("is not a PostgreSQL connection string: {e}"),
            }
        })?;
    }
    Ok(())
}

fn require_database_url(url: Option<&SecretString>) -> Result<&SecretString, ConfigError> {
    url.ok_or(ConfigError::Invalid {
        setting: "RAMP_DATABASE_URL",
        problem: "is not set: give a PostgreSQL connection string".into(),
    })
}

fn check_http_url(setting: &'static str, url: &str) -> Result<(), ConfigError> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            setting,
            problem: "must be an http:// or https:// URL".into(),
        })
    }
}

/// Logging, which every command that runs for a while sets up.
#[derive(Clone, Debug, Deserialize)]
pub struct LogConfig {
    /// `RAMP_LOG`.
    pub log: String,
    /// `RAMP_LOG_FORMAT`.
    pub log_format: LogFormat,
}

impl LogConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        tracing_subscriber::EnvFilter::try_new(&self.log).map_err(|e| ConfigError::Invalid {
            setting: "RAMP_LOG",
            problem: format!("is not a log filter: {e}"),
        })?;
        Ok(())
    }
}

/// How to reach the engine: `serve`, `worker` and `deploy`.
#[derive(Clone, Debug, Deserialize)]
pub struct EngineConfig {
    /// `RAMP_CAMUNDA_URL`.
    #[serde(default)]
    pub camunda_url: Option<String>,
    /// `RAMP_CAMUNDA_USER`.
    #[serde(default)]
    pub camunda_user: Option<String>,
    /// `RAMP_CAMUNDA_PASSWORD`.
    #[serde(default)]
    pub camunda_password: Option<SecretString>,
    /// `RAMP_CAMUNDA_TIMEOUT_MS`.
    pub camunda_timeout_ms: u64,
}

impl EngineConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.camunda_url {
            check_http_url("RAMP_CAMUNDA_URL", url)?;
        }
        at_least("RAMP_CAMUNDA_TIMEOUT_MS", self.camunda_timeout_ms, 1)
    }

    /// The engine client's settings; the URL is required here.
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
}

/// The database, for `migrate` (`serve` reads it with the rest of `Config`).
#[derive(Clone, Debug, Deserialize)]
pub struct DatabaseConfig {
    /// `RAMP_DATABASE_URL`.
    #[serde(default)]
    pub database_url: Option<SecretString>,
    /// `RAMP_DATABASE_TIMEOUT_MS`.
    pub database_timeout_ms: u64,
}

impl DatabaseConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        check_database_url(self.database_url.as_ref())?;
        at_least("RAMP_DATABASE_TIMEOUT_MS", self.database_timeout_ms, 1)
    }

    /// The connection string; required here.
    pub fn database_url(&self) -> Result<&SecretString, ConfigError> {
        require_database_url(self.database_url.as_ref())
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.database_timeout_ms)
    }
}

/// Everything `ramp worker` needs, checked: logging, the engine, and its own.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    pub log: LogConfig,
    pub camunda: crate::camunda::CamundaSettings,
    pub options: WorkerOptions,
}

/// `ramp worker`'s own settings.
#[derive(Clone, Debug, Deserialize)]
pub struct WorkerOptions {
    /// The ramp server the worker calls. `RAMP_SERVER`.
    pub server: String,
    /// The worker's token, with the `ramp-worker` role. `RAMP_TOKEN`.
    #[serde(default)]
    pub token: Option<SecretString>,
    /// Topics to fetch, `NAME[:assignee=PATH]`, comma-separated.
    /// `RAMP_WORKER_TOPICS`.
    #[serde(deserialize_with = "string_list")]
    pub worker_topics: Vec<String>,
    /// Only tasks of these process definition keys (all when empty),
    /// comma-separated. `RAMP_WORKER_DEFINITION_KEYS`.
    #[serde(deserialize_with = "string_list")]
    pub worker_definition_keys: Vec<String>,
    /// How long the engine may hold a long poll, in ms (below proxies' idle
    /// timeouts). `RAMP_WORKER_LONG_POLL_MS`.
    pub worker_long_poll_ms: u64,
    /// How long a fetched task is locked to this worker, in ms (extended while
    /// busy). `RAMP_WORKER_LOCK_MS`.
    pub worker_lock_ms: u64,
    /// Tasks handled at once at most. `RAMP_WORKER_MAX_IN_FLIGHT`.
    pub worker_max_in_flight: usize,
    /// Retries for transient failures before a task becomes an incident.
    /// `RAMP_WORKER_RETRIES`.
    pub worker_retries: i32,
    /// The first retry timeout in ms; it doubles with each failure.
    /// `RAMP_WORKER_RETRY_TIMEOUT_MS`.
    pub worker_retry_timeout_ms: u64,
    /// Where the worker serves its `/metrics` and `/livez`; unset, it serves none.
    /// `RAMP_WORKER_METRICS_LISTEN`.
    #[serde(default)]
    pub worker_metrics_listen: Option<SocketAddr>,
}

impl WorkerOptions {
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |setting, problem: &str| ConfigError::Invalid {
            setting,
            problem: problem.to_owned(),
        };
        if self.server.trim().is_empty() {
            return Err(invalid("RAMP_SERVER", "must not be empty"));
        }
        if self.token.is_none() {
            return Err(invalid(
                "RAMP_TOKEN",
                "is not set: give the worker a token with the ramp-worker role",
            ));
        }
        if self.worker_topics.is_empty() {
            return Err(invalid("RAMP_WORKER_TOPICS", "must name a topic"));
        }
        at_least("RAMP_WORKER_LONG_POLL_MS", self.worker_long_poll_ms, 1)?;
        at_least("RAMP_WORKER_LOCK_MS", self.worker_lock_ms, 1000)?;
        at_least("RAMP_WORKER_MAX_IN_FLIGHT", self.worker_max_in_flight, 1)?;
        at_least("RAMP_WORKER_RETRIES", self.worker_retries, 1)?;
        at_least(
            "RAMP_WORKER_RETRY_TIMEOUT_MS",
            self.worker_retry_timeout_ms,
            1,
        )?;
        Ok(())
    }
}

/// What `ramp token` reads: the HS256 secret and the claims servers check.
#[derive(Clone, Debug, Deserialize)]
pub struct TokenConfig {
    /// `RAMP_JWT_SECRET`.
    #[serde(default)]
    pub jwt_secret: Option<SecretString>,
    /// `RAMP_JWT_SECRET_FILE`.
    #[serde(default)]
    pub jwt_secret_file: Option<PathBuf>,
    /// `RAMP_JWT_ISSUER`.
    #[serde(default)]
    pub jwt_issuer: Option<String>,
    /// `RAMP_JWT_AUDIENCE`.
    pub jwt_audience: String,
    /// `RAMP_JWT_MAX_TTL_SECS`: servers refuse a token that lives longer, so
    /// `ramp token` does not mint one.
    pub jwt_max_ttl_secs: u64,
}

impl TokenConfig {
    /// The secret to sign with, from the setting or its file.
    pub fn secret(&self) -> Result<SecretString, ConfigError> {
        let invalid = |setting, problem: String| ConfigError::Invalid { setting, problem };
        let secret = match (&self.jwt_secret, &self.jwt_secret_file) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "RAMP_JWT_SECRET",
                    "and RAMP_JWT_SECRET_FILE exclude each other: set one".into(),
                ));
            }
            (Some(secret), None) => secret.clone(),
            (None, Some(file)) => std::fs::read_to_string(file)
                .map_err(|e| invalid("RAMP_JWT_SECRET_FILE", format!("cannot be read: {e}")))?
                .trim()
                .to_owned()
                .into(),
            (None, None) => {
                return Err(invalid(
                    "RAMP_JWT_SECRET",
                    "is not set: ramp token signs with an HS256 secret (RAMP_JWT_SECRET or RAMP_JWT_SECRET_FILE)".into(),
                ));
            }
        };
        if secret.expose_secret().len() < 32 {
            return Err(invalid(
                if self.jwt_secret.is_some() {
                    "RAMP_JWT_SECRET"
                } else {
                    "RAMP_JWT_SECRET_FILE"
                },
                "must hold at least 32 characters".into(),
            ));
        }
        Ok(secret)
    }
}

/// Where `make run` keeps the token secret it generates, relative to the
/// repository root; `ramp token` run there uses it when no secret is configured.
pub const RUN_SECRET_FILE: &str = ".ramp/jwt-secret";

/// Settings whose values are secrets: never shown, in errors or in `ramp config`.
const SECRETS: [&str; 6] = [
    "database_url",
    "camunda_password",
    "jwt_secret",
    "token",
    "smtp_url",
    "notify_webhook_secret",
];

/// `RAMP_*` variables that are no setting of ramp's but are read by its scripts,
/// tests and tools (`RAMP_CONFIG` names the file, for the command line): known to
/// every command, so that the environment of `make run`, `make test` or a shared
/// env file never stops one.
const TOOL_VARIABLES: [&str; 8] = [
    "RAMP_CONFIG",
    "RAMP_ENGINE",
    "RAMP_FUZZ_SECONDS",
    "RAMP_PG_OPTIONS",
    "RAMP_PROTO_DIR",
    "RAMP_UI_URL",
    "RAMP_OIDC_UI_URL",
    "RAMP_BIN",
];
/// Families of tool variables: the test harness, the benchmarks, the engine's and
/// `make run`'s scripts.
const TOOL_PREFIXES: [&str; 4] = ["RAMP_TEST_", "RAMP_BENCH_", "RAMP_ENGINE_", "RAMP_RUN_"];

fn is_tool_variable(name: &str) -> bool {
    TOOL_VARIABLES.contains(&name) || TOOL_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The environment variable of a setting.
pub fn env_name(key: &str) -> String {
    format!("RAMP_{}", key.to_ascii_uppercase())
}

/// The field names of a settings struct, as serde knows them: the setting keys.
fn keys_of<T: DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::{self, Visitor};
    struct Probe<'a>(&'a mut &'static [&'static str]);
    impl<'de> Deserializer<'de> for Probe<'_> {
        type Error = de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("probed"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map
            enum identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut fields));
    fields
}

/// Every setting key, in the order `ramp config` and the docs list them: `serve`'s,
/// then the worker's. (`LogConfig`, `EngineConfig`, `DatabaseConfig` and
/// `TokenConfig` read keys of `Config`; a unit test holds them to that.)
pub fn keys() -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = keys_of::<Config>().to_vec();
    keys.extend(keys_of::<WorkerOptions>());
    keys
}

/// The known name nearest to `name` (by edit distance), to suggest for a typo.
fn nearest<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut previous = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let substituted = previous + usize::from(ca != *cb);
                previous = row[j + 1];
                row[j + 1] = substituted.min(row[j] + 1).min(previous + 1);
            }
        }
        row[b.len()]
    }
    // Only a name a typo away: suggesting `auth` for `jwt` helps no one.
    let within = 2.max(name.len() / 4);
    known
        .into_iter()
        .map(|k| (distance(name, k), k))
        .min()
        .filter(|(d, _)| *d <= within)
        .map(|(_, k)| k)
}

/// One layer of settings under a name (`ramp config` shows where values came from).
struct Layer {
    metadata: Metadata,
    values: Dict,
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.values.clone()))
    }
}

const FROM_DEFAULT: &str = "default";
const FROM_FILE: &str = "file";
const FROM_ENV: &str = "environment";
const FROM_FLAG: &str = "flag";

/// The layers, loaded and checked for names that are no setting. Each command then
/// reads its part (`serve`, `worker`, `deploy`, `migrate`, `token`).
pub struct Settings {
    figment: Figment,
}

impl Settings {
    /// Loads built-in defaults, the TOML file (if given), the `RAMP_*` environment
    /// variables and the overrides (flags, in setting keys), refusing unknown names.
    pub fn load<T: Serialize>(file: Option<&Path>, overrides: T) -> Result<Self, ConfigError> {
        Self::load_with(file, std::env::vars_os(), overrides)
    }

    /// `load` with a given environment.
    pub fn load_with<T: Serialize>(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (OsString, OsString)>,
        overrides: T,
    ) -> Result<Self, ConfigError> {
        let known: BTreeSet<&'static str> = keys().into_iter().collect();
        let mut problems = Vec::new();

        let defaults = dict_of(&Defaults::default(), "the defaults")?;
        let mut figment = Figment::from(Layer {
            metadata: Metadata::named(FROM_DEFAULT),
            values: defaults,
        });

        if let Some(file) = file {
            if !file.is_file() {
                return Err(ConfigError::Invalid {
                    setting: "config file",
                    problem: format!("{} does not exist", file.display()),
                });
            }
            let values = Toml::file(file)
                .data()
                .map_err(|e| {
                    ConfigError::Load(format!("{}: {}", file.display(), toml_problem(&e)))
                })?
                .remove(&Profile::Default)
                .unwrap_or_default();
            for key in values.keys() {
                if !known.contains(key.as_str()) {
                    problems.push(format!(
                        "{}: `{key}` is not a setting{}",
                        file.display(),
                        suggestion(nearest(key, known.iter().copied()))
                    ));
                }
            }
            figment = figment.merge(Layer {
                metadata: Metadata::from(FROM_FILE, Source::File(file.to_owned())),
                values,
            });
        }

        let mut values = Dict::new();
        for (name, value) in env {
            let Some(name) = name.to_str() else { continue };
            if !name.starts_with("RAMP_") || is_tool_variable(name) {
                continue;
            }
            let key = name["RAMP_".len()..].to_ascii_lowercase();
            if !known.contains(key.as_str()) {
                let names = known.iter().map(|k| (env_name(k), *k)).collect::<Vec<_>>();
                let near = nearest(name, names.iter().map(|(n, _)| n.as_str()));
                problems.push(format!("{name} is not a setting{}", suggestion(near)));
                continue;
            }
            let Ok(value) = value.into_string() else {
                problems.push(format!("{name} is not valid UTF-8"));
                continue;
            };
            // Text as written; surrounding blanks are dropped except from secrets.
            let value = if SECRETS.contains(&key.as_str()) {
                value
            } else {
                value.trim().to_owned()
            };
            // An empty variable is an unset one.
            if !value.is_empty() {
                values.insert(key, Value::from(value));
            }
        }
        figment = figment.merge(Layer {
            metadata: Metadata::named(FROM_ENV).interpolater(|_, keys| env_name(&keys.join("_"))),
            values,
        });

        let values = dict_of(&overrides, "the flags")?;
        for key in values.keys() {
            if !known.contains(key.as_str()) {
                problems.push(format!("--{} is not a setting", key.replace('_', "-")));
            }
        }
        figment = figment.merge(Layer {
            metadata: Metadata::named(FROM_FLAG),
            values,
        });

        if !problems.is_empty() {
            return Err(ConfigError::Load(problems.join("; ")));
        }
        Ok(Self { figment })
    }

    /// Reads one part. Strings stay strings; numbers and switches are read from
    /// text where the setting is one.
    fn extract<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        self.figment.extract_lossy().map_err(describe)
    }

    /// `ramp serve`'s settings, checked.
    pub fn serve(&self) -> Result<Config, ConfigError> {
        let config: Config = self.extract()?;
        config.validate()?;
        Ok(config)
    }

    /// Logging, checked.
    pub fn log(&self) -> Result<LogConfig, ConfigError> {
        let config: LogConfig = self.extract()?;
        config.validate()?;
        Ok(config)
    }

    /// The engine's address and credentials, checked.
    pub fn engine(&self) -> Result<EngineConfig, ConfigError> {
        let config: EngineConfig = self.extract()?;
        config.validate()?;
        Ok(config)
    }

    /// The database, checked (`migrate`).
    pub fn database(&self) -> Result<DatabaseConfig, ConfigError> {
        let config: DatabaseConfig = self.extract()?;
        config.validate()?;
        Ok(config)
    }

    /// `ramp worker`'s settings, checked.
    pub fn worker(&self) -> Result<WorkerConfig, ConfigError> {
        let log = self.log()?;
        let camunda = self.engine()?.camunda()?;
        let options: WorkerOptions = self.extract()?;
        options.validate()?;
        Ok(WorkerConfig {
            log,
            camunda,
            options,
        })
    }

    /// What `ramp token` reads (its secret is checked when it is read). With no
    /// secret configured, run from the repository root, the secret `make run`
    /// generated.
    pub fn token(&self) -> Result<TokenConfig, ConfigError> {
        let mut config: TokenConfig = self.extract()?;
        let run_secret = Path::new(RUN_SECRET_FILE);
        if config.jwt_secret.is_none() && config.jwt_secret_file.is_none() && run_secret.is_file() {
            config.jwt_secret_file = Some(run_secret.to_owned());
        }
        Ok(config)
    }

    /// Every setting with its effective value (secrets redacted) and where the value
    /// came from, as TOML a config file could take; then whether each command accepts
    /// the settings it reads.
    pub fn report(&self) -> String {
        let mut out = String::from(
            "# ramp's effective configuration: each setting, its value and where it came from.\n",
        );
        let defaults = dict_of(&Defaults::default(), "the defaults").unwrap_or_default();
        for key in keys() {
            let value = self.figment.find_value(key).ok();
            let source = self
                .figment
                .find_metadata(key)
                .map(|m| match m.name.as_ref() {
                    FROM_FILE => match &m.source {
                        Some(Source::File(path)) => format!("from {}", path.display()),
                        _ => "from the file".to_owned(),
                    },
                    FROM_ENV => format!("from {}", env_name(key)),
                    FROM_FLAG => format!("from --{}", key.replace('_', "-")),
                    _ => "default".to_owned(),
                })
                .unwrap_or_else(|| "default".to_owned());
            match value {
                None => out.push_str(&format!("# {key} is not set ({})\n", env_name(key))),
                Some(_) if SECRETS.contains(&key) => {
                    out.push_str(&format!("{key} = \"<redacted>\"  # {source}\n"));
                }
                Some(value) => {
                    let text = toml_text(&typed_like(&value, defaults.get(key)));
                    out.push_str(&format!("{key} = {text}  # {source}\n"));
                }
            }
        }
        let outcome = |result: Result<(), ConfigError>| match result {
            Ok(()) => "ok".to_owned(),
            Err(e) => e.to_string(),
        };
        // What each command checks before it starts.
        let serve = self.serve().and_then(|config| {
            config.database_url()?;
            config.camunda()?;
            config.authentication()?;
            Ok(())
        });
        let engine = || self.engine().and_then(|engine| engine.camunda().map(drop));
        let checks = [
            ("serve", outcome(serve)),
            ("worker", outcome(self.worker().map(drop))),
            ("deploy", outcome(self.log().and(engine()))),
            (
                "migrate",
                outcome(
                    self.log()
                        .and(self.database())
                        .and_then(|db| db.database_url().map(drop)),
                ),
            ),
            (
                "token",
                outcome(self.token().and_then(|token| token.secret().map(drop))),
            ),
        ];
        out.push_str("\n# what each command makes of it:\n");
        for (command, outcome) in checks {
            out.push_str(&format!("#   ramp {command}: {outcome}\n"));
        }
        out
    }
}

/// A serializable value as a settings dictionary.
fn dict_of<T: Serialize>(value: &T, what: &str) -> Result<Dict, ConfigError> {
    match Value::serialize(value) {
        Ok(Value::Dict(_, dict)) => Ok(dict),
        Ok(_) => Err(ConfigError::Load(format!("{what} are not a table"))),
        Err(e) => Err(ConfigError::Load(format!("{what}: {e}"))),
    }
}

fn suggestion(near: Option<&str>) -> String {
    near.map(|n| format!(" (did you mean {n}?)"))
        .unwrap_or_default()
}

/// The file's parse error without the quoted line, which could hold a secret.
fn toml_problem(error: &figment::Error) -> String {
    error
        .to_string()
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.contains('|'))
        .collect::<Vec<_>>()
        .join(": ")
}

/// An environment value shown as the type its default has (`"32"` as `32`).
fn typed_like(value: &Value, default: Option<&Value>) -> Value {
    match (value, default) {
        (Value::String(..), Some(Value::Num(..))) => value
            .to_num_lossy()
            .map(|n| Value::Num(value.tag(), n))
            .unwrap_or_else(|| value.clone()),
        (Value::String(..), Some(Value::Bool(..))) => value
            .to_bool_lossy()
            .map(|b| Value::Bool(value.tag(), b))
            .unwrap_or_else(|| value.clone()),
        _ => value.clone(),
    }
}

/// A value as TOML text.
fn toml_text(value: &Value) -> String {
    let quoted = |s: &str| serde_json::to_string(s).expect("a string serializes");
    match value {
        Value::String(_, s) => quoted(s),
        Value::Char(_, c) => quoted(&c.to_string()),
        Value::Bool(_, b) => b.to_string(),
        Value::Num(_, n) => n
            .to_i128()
            .map(|n| n.to_string())
            .or_else(|| n.to_u128_lossy().map(|n| n.to_string()))
            .or_else(|| n.to_f64().map(|n| n.to_string()))
            .unwrap_or_default(),
        Value::Empty(..) => "\"\"".to_owned(),
        Value::Array(_, items) => format!(
            "[{}]",
            items.iter().map(toml_text).collect::<Vec<_>>().join(", ")
        ),
        Value::Dict(_, dict) => format!(
            "{{ {} }}",
            dict.iter()
                .map(|(k, v)| format!("{k} = {}", toml_text(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Names each failing setting as its environment variable (or its key in the file),
/// never with a secret's value.
fn describe(error: figment::Error) -> ConfigError {
    let problems: Vec<String> = error
        .into_iter()
        .map(|e| {
            let key = e.path.first().cloned().unwrap_or_default();
            let setting = if key.is_empty() {
                "configuration".to_owned()
            } else {
                env_name(&key)
            };
            let source = match e.metadata.as_ref() {
                Some(m) if m.name == FROM_FILE => match &m.source {
                    Some(Source::File(path)) => format!(" (`{key}` in {})", path.display()),
                    _ => format!(" (`{key}` in the file)"),
                },
                Some(m) if m.name == FROM_FLAG => format!(" (--{})", key.replace('_', "-")),
                _ => String::new(),
            };
            let problem = if SECRETS.contains(&key.as_str()) {
                // The kind would quote the value.
                "must be text (in a TOML file, in quotes)".to_owned()
            } else {
                e.kind.to_string()
            };
            format!("{setting}{source}: {problem}")
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
        assert!(
            refused(serde_json::json!({"smtp_url": "smtp://127.0.0.1:25"}))
                .contains("RAMP_SMTP_FROM")
        );
        assert!(
            refused(
                serde_json::json!({"smtp_url": "smtp://127.0.0.1:25", "smtp_from": "a@example.com"})
            )
            .contains("RAMP_PUBLIC_URL")
        );
        assert!(
            refused(serde_json::json!({"smtp_url": "http://x", "smtp_from": "a@example.com"}))
                .contains("RAMP_SMTP_URL")
        );
        assert!(
            refused(serde_json::json!({"notify_webhook_url": "https://x/hook", "notify_webhook_secret": "short"}))
                .contains("RAMP_NOTIFY_WEBHOOK_SECRET")
        );
        assert!(
            refused(serde_json::json!({"notify_lease_ms": 10})).contains("RAMP_NOTIFY_LEASE_MS")
        );
        let on = load(serde_json::json!({
            "smtp_url": "smtp://127.0.0.1:25",
            "smtp_from": "ramp <forms@example.com>",
            "public_url": "https://forms.example.com/",
        }))
        .unwrap();
        assert_eq!(on.notify().public_url, "https://forms.example.com");
        let fine = load(serde_json::json!({"metrics_listen": "127.0.0.1:9090"})).unwrap();
        assert_eq!(fine.metrics_listen, Some("127.0.0.1:9090".parse().unwrap()));
        assert_eq!(fine.retention().batch, 500);
    }

    fn env(vars: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        vars.iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        Settings::load_with(None, env(vars), NoOverrides {})
    }

    #[test]
    fn environment_values_are_text_and_numbers_are_read_where_settings_are_numbers() {
        let loaded = settings(&[
            ("RAMP_CAMUNDA_PASSWORD", "123456"),
            ("RAMP_CAMUNDA_USER", "\"quoted\""),
            ("RAMP_JWT_AUDIENCE", "12345"),
            ("RAMP_JWT_ISSUER", "true"),
            (
                "RAMP_JWT_SECRET",
                "0123456789012345678901234567890123456789",
            ),
            ("RAMP_DATABASE_POOL_SIZE", " 32 "),
            ("RAMP_JWT_REQUIRE_EMAIL_VERIFIED", "false"),
            ("RAMP_STARTABLE_DEFINITIONS", "VOE, Approval"),
        ])
        .unwrap();
        let config = loaded.serve().unwrap();
        assert_eq!(config.camunda_password.unwrap().expose_secret(), "123456");
        assert_eq!(config.camunda_user.as_deref(), Some("\"quoted\""));
        assert_eq!(config.jwt_audience, "12345");
        assert_eq!(config.jwt_issuer.as_deref(), Some("true"));
        assert_eq!(
            config.jwt_secret.unwrap().expose_secret(),
            "0123456789012345678901234567890123456789"
        );
        assert_eq!(config.database_pool_size, 32);
        assert!(!config.jwt_require_email_verified);
        assert_eq!(config.startable_definitions, ["VOE", "Approval"]);
        assert_eq!(loaded.token().unwrap().jwt_audience, "12345");
    }

    #[test]
    fn a_bad_number_names_its_setting_and_a_bad_secret_is_never_shown() {
        let error = settings(&[("RAMP_DATABASE_POOL_SIZE", "many")])
            .unwrap()
            .serve()
            .unwrap_err()
            .to_string();
        assert!(error.contains("RAMP_DATABASE_POOL_SIZE"), "{error}");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ramp.toml");
        for secret in [
            "camunda_password = 987654",
            "jwt_secret = true",
            "database_url = 4242.5",
        ] {
            std::fs::write(&file, secret).unwrap();
            let error = Settings::load_with(Some(&file), env(&[]), NoOverrides {})
                .and_then(|s| s.serve())
                .unwrap_err()
                .to_string();
            let value = secret.rsplit(' ').next().unwrap();
            assert!(!error.contains(value), "{secret}: {error}");
            assert!(error.contains("in quotes"), "{secret}: {error}");
        }
        // Unquoted text is not TOML: the parser's message quotes the line, ramp not.
        std::fs::write(&file, "jwt_secret = hunter2hunter2\n").unwrap();
        let error = Settings::load_with(Some(&file), env(&[]), NoOverrides {})
            .err()
            .expect("refused")
            .to_string();
        assert!(!error.contains("hunter2"), "{error}");
        assert!(error.contains("line 1"), "{error}");
    }

    #[test]
    fn unknown_names_are_refused_with_the_nearest_setting() {
        let error = settings(&[("RAMP_JWT_ISSUR", "https://login.example.com")])
            .err()
            .expect("refused")
            .to_string();
        assert!(
            error.contains("RAMP_JWT_ISSUR is not a setting (did you mean RAMP_JWT_ISSUER?)"),
            "{error}"
        );
        assert!(!error.contains("login.example.com"), "{error}");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ramp.toml");
        std::fs::write(&file, "jwt_issur = \"x\"\nlisten = \"127.0.0.1:1\"\n").unwrap();
        let error = Settings::load_with(Some(&file), env(&[]), NoOverrides {})
            .err()
            .expect("refused")
            .to_string();
        assert!(
            error.contains("`jwt_issur` is not a setting (did you mean jwt_issuer?)"),
            "{error}"
        );

        let error = Settings::load_with(None, env(&[]), serde_json::json!({"listn": "x"}))
            .err()
            .expect("refused")
            .to_string();
        assert!(error.contains("--listn is not a setting"), "{error}");

        // What scripts, tests and tools read is no setting, and no mistake either.
        settings(&[
            ("RAMP_TEST_DATABASE_URL", "x"),
            ("RAMP_BENCH_SERVER", "x"),
            ("RAMP_ENGINE", "camunda"),
            ("RAMP_ENGINE_DB_URL", "x"),
            ("RAMP_FUZZ_SECONDS", "0"),
            ("RAMP_CONFIG", "ramp.toml"),
            ("PATH", "/bin"),
        ])
        .unwrap();
    }

    #[test]
    fn each_command_checks_only_what_it_reads() {
        let shared = settings(&[
            ("RAMP_TLS_CERT", "/nonexistent/cert.pem"),
            ("RAMP_LISTEN", "not-an-address"),
            ("RAMP_DATABASE_URL", "host=127.0.0.1 user=postgres"),
            ("RAMP_CAMUNDA_URL", "http://127.0.0.1:8080/engine-rest"),
            ("RAMP_TOKEN", "a-token"),
            ("RAMP_WORKER_TOPICS", "a, b:assignee=x.y"),
            ("RAMP_WORKER_LONG_POLL_MS", "1000"),
        ])
        .unwrap();
        assert!(shared.serve().is_err());
        shared.log().unwrap();
        shared.engine().unwrap().camunda().unwrap();
        shared.database().unwrap().database_url().unwrap();
        let worker = shared.worker().unwrap();
        assert_eq!(worker.options.worker_topics, ["a", "b:assignee=x.y"]);
        assert_eq!(worker.options.worker_long_poll_ms, 1000);
        shared.token().unwrap();

        let error = settings(&[
            ("RAMP_WORKER_MAX_IN_FLIGHT", "0"),
            ("RAMP_TOKEN", "t"),
            ("RAMP_CAMUNDA_URL", "http://127.0.0.1:8080/engine-rest"),
        ])
        .unwrap()
        .worker()
        .unwrap_err()
        .to_string();
        assert!(error.contains("RAMP_WORKER_MAX_IN_FLIGHT"), "{error}");
    }

    #[test]
    fn the_parts_read_only_keys_of_the_whole() {
        let all: BTreeSet<&str> = keys().into_iter().collect();
        assert_eq!(all.len(), keys().len(), "a key is listed twice");
        for part in [
            keys_of::<LogConfig>(),
            keys_of::<EngineConfig>(),
            keys_of::<DatabaseConfig>(),
            keys_of::<TokenConfig>(),
        ] {
            assert!(!part.is_empty());
            for key in part {
                assert!(all.contains(key), "{key} is read but not a setting");
            }
        }
        let defaults = dict_of(&Defaults::default(), "defaults").unwrap();
        for key in defaults.keys() {
            assert!(all.contains(key.as_str()), "default for no setting: {key}");
        }
    }

    /// `docs/ramp.example.toml` names every setting (set, or commented out when it
    /// has no sensible example value) and loads as it is.
    #[test]
    fn the_example_file_names_every_setting_and_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/ramp.example.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let mut named = BTreeSet::new();
        for line in text.lines() {
            let line = line.trim_start_matches('#').trim();
            if let Some((key, _)) = line.split_once(" = ")
                && !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                named.insert(key.to_owned());
            }
        }
        let all: BTreeSet<String> = keys().into_iter().map(str::to_owned).collect();
        let missing: Vec<_> = all.difference(&named).collect();
        let unknown: Vec<_> = named.difference(&all).collect();
        assert!(missing.is_empty(), "not in the example: {missing:?}");
        assert!(
            unknown.is_empty(),
            "in the example but no setting: {unknown:?}"
        );

        let loaded = Settings::load_with(Some(&path), env(&[]), NoOverrides {}).unwrap();
        loaded.serve().unwrap();
        loaded.log().unwrap();
        loaded.engine().unwrap().camunda().unwrap();
        loaded.database().unwrap().database_url().unwrap();
    }

    #[test]
    fn the_report_shows_sources_and_hides_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ramp.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:6000\"\njwt_secret = \"file-secret-file-secret-file-secret-42\"\n",
        )
        .unwrap();
        let loaded = Settings::load_with(
            Some(&file),
            env(&[
                ("RAMP_JWT_ISSUER", "from-env"),
                ("RAMP_DATABASE_POOL_SIZE", "32"),
                ("RAMP_CAMUNDA_PASSWORD", "123456"),
            ]),
            serde_json::json!({"log": "debug"}),
        )
        .unwrap();
        let report = loaded.report();
        for line in [
            format!("listen = \"127.0.0.1:6000\"  # from {}", file.display()),
            "jwt_issuer = \"from-env\"  # from RAMP_JWT_ISSUER".to_owned(),
            "database_pool_size = 32  # from RAMP_DATABASE_POOL_SIZE".to_owned(),
            "log = \"debug\"  # from --log".to_owned(),
            "jwt_audience = \"ramp\"  # default".to_owned(),
            "camunda_password = \"<redacted>\"  # from RAMP_CAMUNDA_PASSWORD".to_owned(),
            format!("jwt_secret = \"<redacted>\"  # from {}", file.display()),
            "# tls_cert is not set (RAMP_TLS_CERT)".to_owned(),
        ] {
            assert!(
                report.lines().any(|l| l == line),
                "{line:?} not in\n{report}"
            );
        }
        assert!(!report.contains("123456"), "{report}");
        assert!(!report.contains("file-secret"), "{report}");
        assert!(
            report.contains("ramp serve: configuration: RAMP_DATABASE_URL is not set"),
            "{report}"
        );
    }
}
