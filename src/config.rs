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
}

/// The built-in defaults, the lowest layer.
#[derive(Serialize)]
struct Defaults {
    listen: &'static str,
    database_pool_size: usize,
    database_timeout_ms: u64,
    auth: AuthMode,
    log: &'static str,
    log_format: LogFormat,
    cors_origins: Vec<String>,
    max_message_bytes: usize,
    max_concurrent_streams: u32,
    http2_keepalive_secs: u64,
    shutdown_grace_secs: u64,
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:50051",
            database_pool_size: 16,
            database_timeout_ms: 5_000,
            auth: AuthMode::Jwt,
            log: "info",
            log_format: LogFormat::Pretty,
            cors_origins: Vec::new(),
            max_message_bytes: 4 * 1024 * 1024,
            max_concurrent_streams: 10_000,
            http2_keepalive_secs: 20,
            shutdown_grace_secs: 10,
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
        match &self.database_url {
            None => {
                return Err(invalid(
                    "RAMP_DATABASE_URL",
                    "is not set: give a PostgreSQL connection string",
                ));
            }
            Some(url) => {
                tokio_postgres::Config::from_str(url.expose_secret()).map_err(|e| {
                    // The parser's message never contains the password.
                    invalid(
                        "RAMP_DATABASE_URL",
                        &format!("is not a PostgreSQL connection string: {e}"),
                    )
                })?;
            }
        }
        if self.database_pool_size == 0 {
            return Err(invalid("RAMP_DATABASE_POOL_SIZE", "must be at least 1"));
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
        tracing_subscriber::EnvFilter::try_new(&self.log)
            .map_err(|e| invalid("RAMP_LOG", &format!("is not a log filter: {e}")))?;
        Ok(())
    }

    /// The database connection string. Validated at load.
    pub fn database_url(&self) -> &SecretString {
        self.database_url
            .as_ref()
            .expect("validated: database_url is set")
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
