//! The `ramp` binary as an operator runs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{fresh_database, wait_until_serving};

fn ramp() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ramp"));
    // Only what each test sets: nothing from the developer's shell.
    for (key, _) in std::env::vars() {
        if key.starts_with("RAMP_") {
            command.env_remove(key);
        }
    }
    command
}

/// Runs `ramp serve` with the given environment and expects it to refuse to start.
fn refused(env: &[(&str, &str)]) -> String {
    let mut command = ramp();
    command.arg("serve").envs(env.iter().copied());
    let output = command.output().expect("ramp runs");
    assert!(!output.status.success(), "ramp serve started with {env:?}");
    String::from_utf8(output.stderr).unwrap()
}

const DB: (&str, &str) = ("RAMP_DATABASE_URL", "host=127.0.0.1 port=1 user=postgres");

#[test]
fn a_bad_setting_fails_fast_naming_the_setting() {
    let started = Instant::now();

    let stderr = refused(&[DB, ("RAMP_LISTEN", "not-an-address")]);
    assert!(stderr.contains("RAMP_LISTEN"), "{stderr}");

    let stderr = refused(&[]);
    assert!(stderr.contains("RAMP_DATABASE_URL"), "{stderr}");

    let stderr = refused(&[DB, ("RAMP_MAX_MESSAGE_BYTES", "10")]);
    assert!(stderr.contains("RAMP_MAX_MESSAGE_BYTES"), "{stderr}");

    let stderr = refused(&[DB, ("RAMP_AUTH", "maybe")]);
    assert!(stderr.contains("RAMP_AUTH"), "{stderr}");

    let stderr = refused(&[DB, ("RAMP_TLS_CERT", "/nonexistent/cert.pem")]);
    assert!(stderr.contains("RAMP_TLS_KEY"), "{stderr}");

    assert!(
        started.elapsed() < Duration::from_secs(10),
        "refusals must not wait on anything"
    );
}

#[test]
fn a_bad_database_url_is_refused_without_echoing_the_password() {
    let stderr = refused(&[(
        "RAMP_DATABASE_URL",
        "postgres://ramp:hunter2secret@localhost:notaport/ramp",
    )]);
    assert!(stderr.contains("RAMP_DATABASE_URL"), "{stderr}");
    assert!(
        !stderr.contains("hunter2secret"),
        "the password leaked: {stderr}"
    );
}

#[tokio::test]
async fn ramp_serve_runs_and_stops_cleanly_on_sigterm() {
    let url = fresh_database().await;
    let port = crate::helpers::free_port();
    let mut child = ramp()
        .arg("serve")
        .env("RAMP_DATABASE_URL", &url)
        .env("RAMP_LISTEN", format!("127.0.0.1:{port}"))
        .env("RAMP_LOG", "warn")
        .env("RAMP_JWT_SECRET", crate::helpers::TEST_SECRET)
        .env("RAMP_CAMUNDA_URL", crate::engine::engine_url())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ramp serve starts");
    let addr = format!("127.0.0.1:{port}").parse().unwrap();

    // Wait for the port, then for health.
    crate::helpers::wait_until_listening(addr, "ramp serve").await;
    wait_until_serving(addr).await;

    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "ramp serve did not stop within 10 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status}");
}

#[tokio::test]
async fn ramp_migrate_applies_the_schema() {
    let url = fresh_database().await;
    let status = ramp()
        .arg("migrate")
        .env("RAMP_DATABASE_URL", &url)
        .env("RAMP_LOG", "warn")
        .status()
        .unwrap();
    assert!(status.success());
    let client = crate::helpers::connect(&url).await;
    let row = client
        .query_one("SELECT count(*) FROM refinery_schema_history", &[])
        .await
        .unwrap();
    assert!(row.get::<_, i64>(0) >= 1);
}

/// The standard output of a command that succeeded (its standard error in the
/// failure).
#[track_caller]
fn stdout_of(output: Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("the output is UTF-8")
}

/// Runs `ramp token` with `args` and `env`, in `dir`.
fn mint(args: &[&str], env: &[(&str, &str)], dir: &Path) -> Output {
    ramp()
        .arg("token")
        .args(args)
        .envs(env.iter().copied())
        .current_dir(dir)
        .output()
        .unwrap()
}

/// The claims of `token`, an HS256 token signed with `secret` for `audience` (and
/// `issuer`, when given); panics where it is not.
fn claims(token: &str, secret: &[u8], audience: &str, issuer: Option<&str>) -> serde_json::Value {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_audience(&[audience]);
    if let Some(issuer) = issuer {
        validation.set_issuer(&[issuer]);
    }
    jsonwebtoken::decode::<serde_json::Value>(
        token.trim(),
        &jsonwebtoken::DecodingKey::from_secret(secret),
        &validation,
    )
    .unwrap_or_else(|e| panic!("the token does not verify: {e}"))
    .claims
}

/// Runs `ramp deploy` with `args`, then `dir`, against the run's engine.
fn deploy(args: &[&str], dir: &Path) -> Output {
    ramp()
        .arg("deploy")
        .args(args)
        .arg(dir)
        .env("RAMP_CAMUNDA_URL", crate::engine::engine_url())
        .output()
        .unwrap()
}

#[tokio::test]
async fn ramp_token_mints_tokens_the_server_accepts() {
    use ramp::proto::CreateFormTaskRequest;

    let dir = tempfile::tempdir().unwrap();
    let output = mint(
        &[
            "--email",
            "Worker@Example.com",
            "--role",
            "ramp-worker",
            "--ttl",
            "10m",
        ],
        &[
            ("RAMP_JWT_SECRET", crate::helpers::TEST_SECRET),
            ("RAMP_JWT_ISSUER", crate::helpers::TEST_ISSUER),
        ],
        dir.path(),
    );
    let token = stdout_of(output).trim().to_owned();

    let app = crate::helpers::spawn_app().await;
    let status = app
        .bearing(token)
        .create_form_task(CreateFormTaskRequest {
            external_task_id: "ext-1".into(),
            process_instance_id: "pi-1".into(),
            business_key: "ann@example.com".into(),
            activity_id: "qualify_supplier".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    // Let in as a worker (and told that the engine knows no instance pi-1).
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
}

#[test]
fn ramp_token_uses_the_secret_that_make_run_generated() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(".ramp")).unwrap();
    std::fs::write(
        dir.path().join(".ramp/jwt-secret"),
        "a-generated-secret-a-generated-secret-0123\n",
    )
    .unwrap();
    let token = stdout_of(mint(&["--email", "me@example.com"], &[], dir.path()));
    // Signed with the generated secret.
    let claims = claims(
        &token,
        b"a-generated-secret-a-generated-secret-0123",
        "ramp",
        None,
    );
    assert_eq!(claims["email"], "me@example.com");
    assert_eq!(claims["email_verified"], true);
}

#[test]
fn ramp_token_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let secret = [("RAMP_JWT_SECRET", crate::helpers::TEST_SECRET)];
    assert!(
        !mint(&["--email", "not an email"], &secret, dir.path())
            .status
            .success()
    );
    assert!(
        !mint(
            &["--email", "me@example.com", "--ttl", "soon"],
            &secret,
            dir.path()
        )
        .status
        .success()
    );
    let output = mint(&["--email", "me@example.com"], &[], dir.path());
    assert!(
        !output.status.success(),
        "no secret anywhere must be an error"
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("RAMP_JWT_SECRET"));
}

#[tokio::test]
async fn ramp_deploy_deploys_the_demo_and_prints_its_definitions() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // A deployment name of its own: the engine compares a deployment with the last
    // one of the same name, which an engine used before may hold with other files.
    let name = crate::engine::unique_key("ramp-demo-test");
    let printed = stdout_of(deploy(&["--name", &name], &root.join("processes")));
    let keys: Vec<_> = printed
        .lines()
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(keys, ["VOE", "VOE_RISK"], "{printed}");
    assert!(
        printed.lines().all(|l| l.contains(" version ")),
        "{printed}"
    );

    // Deployed again unchanged: the same versions, nothing new.
    let again = deploy(&["--name", &name], &root.join("processes"));
    assert_eq!(String::from_utf8(again.stdout).unwrap(), printed);
}

#[test]
fn ramp_deploy_prints_each_parse_error_with_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let key = crate::engine::unique_key("cli_broken");
    let broken =
        crate::engine::form_process(&key, "step").replace(r#" camunda:topic="submit_form""#, "");
    std::fs::write(dir.path().join("broken.bpmn"), broken).unwrap();
    let output = deploy(&[], dir.path());
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("broken.bpmn:8:"), "{stderr}");
}

/// A decision table as Camunda Modeler exports it (with its diagram), without
/// `historyTimeToLive`.
fn modeler_decision(id: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" xmlns:dmndi="https://www.omg.org/spec/DMN/20191111/DMNDI/" xmlns:dc="http://www.omg.org/spec/DMN/20180521/DC/" xmlns:modeler="http://camunda.org/schema/modeler/1.0" id="Definitions_{id}" name="DRD" namespace="http://camunda.org/schema/1.0/dmn" exporter="Camunda Modeler" exporterVersion="5.31.0" modeler:executionPlatform="Camunda Platform" modeler:executionPlatformVersion="7.22.0">
  <decision id="{id}" name="Risk level">
    <decisionTable id="DecisionTable_1">
      <input id="Input_1" label="Score">
        <inputExpression id="InputExpression_1" typeRef="integer">
          <text>score</text>
        </inputExpression>
      </input>
      <output id="Output_1" label="Level" name="level" typeRef="string" />
      <rule id="Rule_1">
        <inputEntry id="UnaryTests_1"><text>&gt; 50</text></inputEntry>
        <outputEntry id="LiteralExpression_1"><text>"high"</text></outputEntry>
      </rule>
    </decisionTable>
  </decision>
  <dmndi:DMNDI>
    <dmndi:DMNDiagram>
      <dmndi:DMNShape dmnElementRef="{id}">
        <dc:Bounds height="80" width="180" x="160" y="100" />
      </dmndi:DMNShape>
    </dmndi:DMNDiagram>
  </dmndi:DMNDI>
</definitions>
"#
    )
}

#[tokio::test]
async fn ramp_deploy_deploys_a_decision_table_and_a_model_without_history_time_to_live() {
    let dir = tempfile::tempdir().unwrap();
    let decision = crate::engine::unique_key("risk");
    let process = crate::engine::unique_key("cli_no_ttl");
    std::fs::write(dir.path().join("risk.dmn"), modeler_decision(&decision)).unwrap();
    let model = crate::engine::form_process(&process, "step");
    assert!(model.contains(r#" camunda:historyTimeToLive="P1D""#));
    std::fs::write(
        dir.path().join("request.bpmn"),
        model.replace(r#" camunda:historyTimeToLive="P1D""#, ""),
    )
    .unwrap();

    let printed = stdout_of(deploy(&["--name", &process], dir.path()));
    assert_eq!(printed, format!("{process} version 1\n"));
    // Both carry the engine's default history time to live.
    for (what, key) in [("decision", &decision), ("process", &process)] {
        let definitions: Vec<serde_json::Value> =
            crate::engine::rest_get(&format!("/{what}-definition?key={key}")).await;
        assert_eq!(definitions.len(), 1, "{what} {key}");
        assert_eq!(definitions[0]["historyTimeToLive"], 180, "{what} {key}");
    }
}

#[test]
fn ramp_deploy_names_a_refused_decision_table_with_the_engine_reason_and_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let decision = crate::engine::unique_key("broken");
    // A hand edit gone wrong: a closing tag lost.
    let broken = modeler_decision(&decision).replace("</decisionTable>", "");
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    std::fs::write(dir.path().join("rules/risk.dmn"), broken).unwrap();

    let output = deploy(&[], dir.path());

    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    // The file, the engine's reason (all it says for a DMN), and what ramp sees.
    assert!(
        stderr.contains("rules/risk.dmn: ENGINE-22004 Unable to transform DMN resource"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "likely cause: it is not well-formed XML: line 16: </decision> closes <decisionTable> (opened at line 4)"
        ),
        "{stderr}"
    );
}

/// Writes the settings file `name` with `text` into `dir`; answers its path.
fn settings_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let file = dir.join(name);
    std::fs::write(&file, text).unwrap();
    file
}

/// Runs `command` for at most `limit`: its output, and whether it was still running
/// (then killed).
fn output_within(mut command: Command, limit: Duration) -> (Output, bool) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ramp runs");
    let deadline = Instant::now() + limit;
    let mut killed = false;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            killed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (child.wait_with_output().unwrap(), killed)
}

#[test]
fn a_misspelt_setting_stops_every_command_naming_the_nearest() {
    let dir = tempfile::tempdir().unwrap();
    let commands: [&[&str]; 6] = [
        &["serve"],
        &["worker"],
        &["migrate"],
        &["deploy", "."],
        &["token", "--email", "me@example.com"],
        &["config"],
    ];
    for args in commands {
        let mut command = ramp();
        command
            .args(args)
            .current_dir(dir.path())
            .env("RAMP_JWT_ISSUR", "https://login.example.com")
            .env("RAMP_JWT_SECRET", crate::helpers::TEST_SECRET)
            .env("RAMP_DATABASE_URL", "host=127.0.0.1 port=1 user=postgres")
            .env("RAMP_CAMUNDA_URL", "http://127.0.0.1:9/engine-rest")
            .env("RAMP_TOKEN", "a-token");
        let (output, killed) = output_within(command, Duration::from_secs(10));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !killed && !output.status.success(),
            "ramp {args:?} ran with RAMP_JWT_ISSUR: {stderr}"
        );
        assert!(
            stderr.contains("RAMP_JWT_ISSUR is not a setting (did you mean RAMP_JWT_ISSUER?)"),
            "ramp {args:?}: {stderr}"
        );
    }

    // In the file: the key, and the file it is in.
    let file = settings_file(
        dir.path(),
        "ramp.toml",
        "jwt_issur = \"https://login.example.com\"\n",
    );
    let mut command = ramp();
    command.arg("--config").arg(&file).arg("config");
    let (output, _) = output_within(command, Duration::from_secs(10));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("`jwt_issur` is not a setting (did you mean jwt_issuer?)"),
        "{stderr}"
    );
}

#[tokio::test]
async fn each_command_reads_only_what_it_uses() {
    // One env file for everything: a TLS path and an address only serve reads, and
    // broken; an issuer only serve and token read.
    let engine = crate::engine::engine_url();
    let shared: [(&str, &str); 4] = [
        ("RAMP_TLS_CERT", "/nonexistent/cert.pem"),
        ("RAMP_TLS_KEY", "/nonexistent/key.pem"),
        ("RAMP_LISTEN", "not-an-address"),
        ("RAMP_CAMUNDA_URL", &engine),
    ];

    let url = fresh_database().await;
    let status = ramp()
        .arg("migrate")
        .envs(shared)
        .env("RAMP_DATABASE_URL", &url)
        .env("RAMP_LOG", "warn")
        .status()
        .unwrap();
    assert!(status.success(), "migrate read serve's settings");

    let dir = tempfile::tempdir().unwrap();
    let key = crate::engine::unique_key("cli_shared");
    std::fs::write(
        dir.path().join("p.bpmn"),
        crate::engine::form_process(&key, "step"),
    )
    .unwrap();
    let output = ramp()
        .arg("deploy")
        .arg(dir.path())
        .envs(shared)
        .output()
        .unwrap();
    stdout_of(output);

    let mut worker = ramp();
    worker
        .arg("worker")
        .envs(shared)
        .env(
            "RAMP_TOKEN",
            crate::helpers::token("w@example.com", &["ramp-worker"]),
        )
        .env("RAMP_SERVER", "http://127.0.0.1:1")
        // No engine: this worker must take no other test's task.
        .env("RAMP_CAMUNDA_URL", "http://127.0.0.1:9/engine-rest")
        .env("RAMP_WORKER_LONG_POLL_MS", "500")
        .env("RAMP_LOG", "info");
    let (output, killed) = output_within(worker, Duration::from_secs(3));
    assert!(
        killed,
        "the worker stopped: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    let stderr = refused(&[
        ("RAMP_DATABASE_URL", "host=127.0.0.1 port=1 user=postgres"),
        ("RAMP_TLS_CERT", "/nonexistent/cert.pem"),
        ("RAMP_TLS_KEY", "/nonexistent/key.pem"),
    ]);
    assert!(
        stderr.contains("RAMP_TLS_CERT"),
        "serve checks it: {stderr}"
    );
}

#[test]
fn worker_settings_come_from_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = settings_file(
        dir.path(),
        "worker.toml",
        &format!(
            "camunda_url = \"http://127.0.0.1:9/engine-rest\"\n\
             server = \"http://127.0.0.1:1\"\n\
             token = \"{}\"\n\
             worker_topics = [\"from_the_file\", \"other:assignee=a.b\"]\n\
             worker_long_poll_ms = 500\n\
             log = \"info\"\n",
            crate::helpers::token("w@example.com", &["ramp-worker"])
        ),
    );
    let mut worker = ramp();
    worker.arg("--config").arg(&file).arg("worker");
    let (output, killed) = output_within(worker, Duration::from_secs(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(killed, "the worker stopped: {stderr}");
    assert!(
        stderr.contains(r#"["from_the_file", "other:assignee=a.b"]"#),
        "{stderr}"
    );

    // A flag overrides the file.
    let mut worker = ramp();
    worker
        .arg("--config")
        .arg(&file)
        .args(["worker", "--topic", "from_a_flag"]);
    let (output, _) = output_within(worker, Duration::from_secs(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(r#"["from_a_flag"]"#), "{stderr}");
}

#[test]
fn ramp_config_prints_each_value_with_its_source_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let file = settings_file(
        dir.path(),
        "ramp.toml",
        "listen = \"127.0.0.1:6000\"\njwt_secret = \"file-secret-file-secret-file-secret-1\"\n",
    );
    let printed = stdout_of(
        ramp()
            .arg("--config")
            .arg(&file)
            .arg("config")
            .current_dir(dir.path())
            .env("RAMP_JWT_ISSUER", "https://login.example.com")
            .env(
                "RAMP_DATABASE_URL",
                "postgres://ramp:db-password-42@db/ramp",
            )
            .env("RAMP_CAMUNDA_PASSWORD", "123456")
            .output()
            .unwrap(),
    );
    for line in [
        format!("listen = \"127.0.0.1:6000\"  # from {}", file.display()),
        "jwt_issuer = \"https://login.example.com\"  # from RAMP_JWT_ISSUER".to_owned(),
        "database_url = \"<redacted>\"  # from RAMP_DATABASE_URL".to_owned(),
        "camunda_password = \"<redacted>\"  # from RAMP_CAMUNDA_PASSWORD".to_owned(),
        format!("jwt_secret = \"<redacted>\"  # from {}", file.display()),
        "jwt_audience = \"ramp\"  # default".to_owned(),
        "#   ramp migrate: ok".to_owned(),
    ] {
        assert!(
            printed.lines().any(|l| l == line),
            "{line:?} not in\n{printed}"
        );
    }
    for secret in ["file-secret", "db-password-42", "123456"] {
        assert!(!printed.contains(secret), "{secret} printed:\n{printed}");
    }
}

#[test]
fn environment_values_are_taken_as_text() {
    // A quoted secret keeps its quotes; an audience and an issuer that look like a
    // number and a switch are text.
    let dir = tempfile::tempdir().unwrap();
    let secret = "\"a-quoted-secret-a-quoted-secret-0123\"";
    let token = stdout_of(mint(
        &["--email", "me@example.com"],
        &[
            ("RAMP_JWT_SECRET", secret),
            ("RAMP_JWT_AUDIENCE", "12345"),
            ("RAMP_JWT_ISSUER", "true"),
        ],
        dir.path(),
    ));
    // Signed with the secret as written, for audience 12345 and issuer true.
    claims(&token, secret.as_bytes(), "12345", Some("true"));
}

#[test]
fn ramp_token_refuses_a_lifetime_servers_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let secret = [("RAMP_JWT_SECRET", crate::helpers::TEST_SECRET)];
    let long = mint(
        &["--email", "w@example.com", "--ttl", "30d"],
        &secret,
        dir.path(),
    );
    assert!(!long.status.success(), "a 30-day token is not minted");
    let said = String::from_utf8_lossy(&long.stderr);
    assert!(said.contains("RAMP_JWT_MAX_TTL_SECS"), "{said}");
    assert!(!said.contains(crate::helpers::TEST_SECRET), "{said}");
    // A day is minted; 30 days where the servers allow them.
    stdout_of(mint(
        &["--email", "w@example.com", "--ttl", "24h"],
        &secret,
        dir.path(),
    ));
    stdout_of(mint(
        &["--email", "w@example.com", "--ttl", "30d"],
        &[secret[0], ("RAMP_JWT_MAX_TTL_SECS", "2592000")],
        dir.path(),
    ));
}
