//! The harness every test uses: a fresh database on the run's throwaway PostgreSQL
//! cluster (started by `scripts/test.sh`, shared by all tests), and the real server
//! started in-process on port 0.

use std::net::SocketAddr;
use std::time::Duration;

use ramp::config::Config;
use ramp::server::Application;
use serde_json::json;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// The HS256 secret test servers accept (unless a test configures other keys).
pub const TEST_SECRET: &str = "ramp-integration-tests-shared-secret-0123456789";
/// The issuer test servers require.
pub const TEST_ISSUER: &str = "ramp-test";

/// A valid token for `email` with `roles`, for an hour.
pub fn token(email: &str, roles: &[&str]) -> String {
    let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
    ramp::auth::mint_hs256(
        &secrecy::SecretString::from(TEST_SECRET),
        &ramp::auth::TokenClaims {
            email,
            roles: &roles,
            ttl: Duration::from_secs(3600),
            issuer: Some(TEST_ISSUER),
            audience: "ramp",
        },
    )
    .expect("a token is minted")
}

/// A valid token for `email` (by default also its engine user id) that names its
/// engine `groups` (the `groups` claim), for an hour.
pub fn token_in_groups(email: &str, groups: &[&str]) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({
            "sub": email, "email": email, "email_verified": true, "roles": [],
            "groups": groups, "aud": "ramp", "iss": TEST_ISSUER,
            "iat": now, "nbf": now, "exp": now + 3600,
        }),
        &jsonwebtoken::EncodingKey::from_secret(TEST_SECRET.as_bytes()),
    )
    .expect("a token is minted")
}

/// `message` as a request carrying `token`.
pub fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("a token is ASCII"),
    );
    request
}

/// The run's cluster, as `scripts/test.sh` exports it.
pub fn admin_database_url() -> String {
    std::env::var("RAMP_TEST_DATABASE_URL").expect(
        "RAMP_TEST_DATABASE_URL is not set: run the tests through `make test`, \
         which starts a throwaway PostgreSQL cluster for them",
    )
}

/// A connection to the database at `url` (its connection task running beside it).
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("the database does not answer: {e}"));
    tokio::spawn(connection);
    client
}

/// Creates an empty database of the test's own and returns its connection string.
pub async fn fresh_database() -> String {
    let admin = admin_database_url();
    let client = connect(&admin).await;
    let name = format!("ramp_test_{}", uuid::Uuid::now_v7().simple());
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("a test database is created");
    // In key=value form a later key overrides an earlier one.
    format!("{admin} dbname={name}")
}

/// A configuration for a test server on a free port, with `extra` settings on top.
pub fn test_config(database_url: &str, extra: serde_json::Value) -> Config {
    let mut settings = json!({
        "listen": "127.0.0.1:0",
        "database_url": database_url,
        "log": "warn,ramp=info",
        "shutdown_grace_secs": 5,
        "jwt_secret": TEST_SECRET,
        "jwt_issuer": TEST_ISSUER,
        "startable_definitions": "VOE",
        "camunda_url": crate::engine::engine_url(),
        "reconcile_interval_ms": 250,
        // The run's engine holds every test's user tasks: the tests that read them
        // turn this on.
        "user_tasks": false,
    });
    if let (Some(base), Some(extra)) = (settings.as_object_mut(), extra.as_object()) {
        base.extend(extra.clone());
    }
    Config::load(None, settings).expect("the test configuration is valid")
}

pub struct TestApp {
    pub app: Application,
    pub database_url: String,
}

impl TestApp {
    pub fn addr(&self) -> SocketAddr {
        self.app.local_addr()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    pub async fn channel(&self) -> Channel {
        channel(self.addr()).await
    }
}

/// A running server on its own fresh database, SERVING.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(json!({})).await
}

/// Like `spawn_app`, with settings of the test's own.
pub async fn spawn_app_with(extra: serde_json::Value) -> TestApp {
    spawn_app_on(&fresh_database().await, extra).await
}

/// A server on a given database (a second replica, say), SERVING.
pub async fn spawn_app_on(database_url: &str, extra: serde_json::Value) -> TestApp {
    ramp::telemetry::init("warn,ramp=info", ramp::config::LogFormat::Pretty);
    let app = Application::start(test_config(database_url, extra))
        .await
        .expect("the server starts");
    wait_until_serving(app.local_addr()).await;
    TestApp {
        app,
        database_url: database_url.to_owned(),
    }
}

impl TestApp {
    /// A direct connection to the server's database, to check what it holds.
    pub async fn db(&self) -> tokio_postgres::Client {
        connect(&self.database_url).await
    }
}

/// The one value of the one row `sql` answers on `db`.
pub async fn scalar<T: tokio_postgres::types::FromSqlOwned>(
    db: &tokio_postgres::Client,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> T {
    db.query_one(sql, params)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

/// The first column of the rows `sql` answers on `db`, in their order.
pub async fn column<T: tokio_postgres::types::FromSqlOwned>(
    db: &tokio_postgres::Client,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Vec<T> {
    let rows = db
        .query(sql, params)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.iter().map(|row| row.get(0)).collect()
}

/// An address on which nothing listens now (bound, then released): a closed port,
/// or a free one for a server of the test's own.
pub fn closed_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("a bound address")
}

/// A port free now, for a server of the test's own.
pub fn free_port() -> u16 {
    closed_addr().port()
}

/// The status `stream` ends with, past the messages still in it, within `limit`;
/// panics where it ends without one, or goes on.
pub async fn end_status<T>(stream: &mut tonic::Streaming<T>, limit: Duration) -> tonic::Status {
    let end = tokio::time::timeout(limit, async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => continue,
                Err(status) => return status,
                Ok(None) => panic!("the stream ended without a status"),
            }
        }
    });
    end.await
        .unwrap_or_else(|_| panic!("the stream did not end within {limit:?}"))
}

/// Serves `router` (a stand-in for the engine, a webhook, ...) on a free port: its
/// address, and the task serving it (abort it to stop).
pub async fn serve(router: axum::Router) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let addr = listener.local_addr().expect("a bound address");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (addr, task)
}

/// Waits (bounded, 20 s) until something listens at `addr`: `what`, in the failure.
pub async fn wait_until_listening(addr: SocketAddr, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} never listened"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("a valid URI")
        .connect()
        .await
        .expect("the server accepts connections")
}

/// The overall health status the server reports now.
pub async fn health_status(addr: SocketAddr) -> ServingStatus {
    let mut health = HealthClient::new(channel(addr).await);
    let response = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health answers");
    response.into_inner().status()
}

/// Waits (bounded) until health says SERVING.
pub async fn wait_until_serving(addr: SocketAddr) {
    for _ in 0..300 {
        if health_status(addr).await == ServingStatus::Serving {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server at {addr} did not become SERVING within 15 s");
}

/// A gRPC frame: flag byte, big-endian length, message.
pub fn grpc_frame(flag: u8, message: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(5 + message.len());
    frame.push(flag);
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(message);
    frame
}

/// Splits a gRPC-web response body into its data messages and its trailer block.
pub fn parse_grpc_web(body: &[u8]) -> (Vec<Vec<u8>>, String) {
    let mut messages = Vec::new();
    let mut trailers = String::new();
    let mut rest = body;
    while rest.len() >= 5 {
        let flag = rest[0];
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        let payload = &rest[5..5 + len];
        if flag & 0x80 != 0 {
            trailers.push_str(&String::from_utf8_lossy(payload));
        } else {
            messages.push(payload.to_vec());
        }
        rest = &rest[5 + len..];
    }
    assert!(rest.is_empty(), "a partial gRPC-web frame was left over");
    (messages, trailers)
}

/// Asserts that a client reads nothing of the engine's or the database's own in
/// `status`: no URL, no engine id (a UUID, a definition id `key:1:uuid`, an activity
/// instance id `task:uuid`), no exception class or Java package, no engine error
/// code and no SQL, in its message or in its field violations.
#[track_caller]
pub fn assert_clean(status: &tonic::Status) {
    use std::sync::LazyLock;
    use tonic_types::StatusExt;
    static LEAKS: LazyLock<[(&str, regex::Regex); 6]> = LazyLock::new(|| {
        let re = |pattern| regex::Regex::new(pattern).expect("a valid pattern");
        [
            ("a URL", re(r"(?i)\b(https?|jdbc|postgres(ql)?)://")),
            (
                "an engine id",
                re(r"(?i)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"),
            ),
            ("an exception class", re(r"\b\w*Exception\b")),
            (
                "a Java package",
                re(r"\b(org\.(camunda|operaton|apache|postgresql)|java(x)?\.[a-z]+)\."),
            ),
            ("an engine error code", re(r"\bENGINE-\d+")),
            (
                "SQL",
                re(concat!(
                    r"(?i)\bSQLSTATE\b|\bcharacter varying\b|\bvarchar\(|\brelation \x22",
                    r"|\bviolates\b.*\bconstraint\b|\bsyntax error at\b",
                    r"|\bselect\b.+\bfrom\b|\binsert into\b|\bdelete from\b|\bupdate \w+ set\b",
                )),
            ),
        ]
    });
    let mut texts = vec![status.message().to_owned()];
    if let Some(bad_request) = status.get_error_details().bad_request() {
        for violation in &bad_request.field_violations {
            texts.push(format!("{}: {}", violation.field, violation.description));
        }
    }
    for text in &texts {
        for (what, pattern) in LEAKS.iter() {
            assert!(
                !pattern.is_match(text),
                "a client reads {what} in {:?}: {text:?}",
                status.code()
            );
        }
    }
}

/// The error a call answered, checked for its code and for what its client reads
/// (see `assert_clean`).
#[track_caller]
pub fn refused<T: std::fmt::Debug>(
    result: Result<T, tonic::Status>,
    code: tonic::Code,
) -> tonic::Status {
    let status = result.expect_err("the call is refused");
    assert_eq!(status.code(), code, "{status:?}");
    assert_clean(&status);
    status
}
