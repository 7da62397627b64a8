//! Secrets and tokens never reach the logs, through a succeeding and a failing run.

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;

use crate::auth::sign;
use crate::helpers::{TEST_ISSUER, fresh_database, wait_until_serving};

const JWT_SECRET: &str = "jwt-secret-canary-0123456789abcdef0123456789";
const DB_PASSWORD: &str = "db-password-canary-42";
const CAMUNDA_PASSWORD: &str = "camunda-password-canary-7";

fn ramp_serve(env: &[(&str, String)]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_ramp"));
    for (key, _) in std::env::vars() {
        if key.starts_with("RAMP_") {
            command.env_remove(key);
        }
    }
    command
        .arg("serve")
        .env("RAMP_LOG", "debug")
        .env("RAMP_LOG_FORMAT", "json")
        .env("RAMP_JWT_SECRET", JWT_SECRET)
        .env("RAMP_JWT_ISSUER", TEST_ISSUER)
        .env("RAMP_CAMUNDA_URL", "http://127.0.0.1:9/engine-rest")
        .env("RAMP_CAMUNDA_USER", "demo")
        .env("RAMP_CAMUNDA_PASSWORD", CAMUNDA_PASSWORD)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

fn assert_clean(logs: &str, tokens: &[String]) {
    for secret in [JWT_SECRET, DB_PASSWORD, CAMUNDA_PASSWORD] {
        assert!(
            !logs.contains(secret),
            "a secret reached the logs: {secret}"
        );
    }
    for token in tokens {
        // The signature part alone would identify a leaked token.
        let signature = token.rsplit('.').next().unwrap();
        assert!(!logs.contains(signature), "a token reached the logs");
    }
}

#[tokio::test]
async fn no_secret_or_token_reaches_the_logs() {
    let port = crate::helpers::free_port();
    let listen = format!("127.0.0.1:{port}");
    let database_url = format!("{} password={DB_PASSWORD}", fresh_database().await);

    // A failing run: the database unreachable (its password in the URL), then a bad
    // setting.
    let mut failing = ramp_serve(&[
        ("RAMP_LISTEN", listen.clone()),
        (
            "RAMP_DATABASE_URL",
            format!("host=127.0.0.1 port=1 user=postgres password={DB_PASSWORD}"),
        ),
        ("RAMP_DATABASE_TIMEOUT_MS", "300".into()),
    ])
    .spawn()
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    failing.start_kill().unwrap();
    let failing = failing.wait_with_output().await.unwrap();
    let refused = ramp_serve(&[
        ("RAMP_LISTEN", "nowhere".into()),
        ("RAMP_DATABASE_URL", database_url.clone()),
    ])
    .output()
    .await
    .unwrap();
    assert!(!refused.status.success());

    // A succeeding run with good and bad tokens.
    let mut child = ramp_serve(&[
        ("RAMP_LISTEN", listen.clone()),
        ("RAMP_DATABASE_URL", database_url),
    ])
    .spawn()
    .unwrap();
    // Read its log while it runs: at `debug` it writes more than a pipe holds, and a
    // server blocked on a full pipe answers nothing.
    let mut stderr = child.stderr.take().unwrap();
    let log = tokio::spawn(async move {
        let mut text = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut text)
            .await
            .unwrap();
        text
    });
    let addr = listen.parse().unwrap();
    crate::helpers::wait_until_listening(addr, "ramp serve").await;
    wait_until_serving(addr).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({"email": "ann@example.com", "email_verified": true, "iss": TEST_ISSUER, "aud": "ramp", "exp": now + 600});
    let good = sign(&claims, JWT_SECRET);
    let forged = sign(&claims, "forged-secret-forged-secret-forged-secret!!");
    let expired = sign(
        &json!({"email": "ann@example.com", "email_verified": true, "iss": TEST_ISSUER, "aud": "ramp", "exp": now - 600}),
        JWT_SECRET,
    );
    for token in [&good, &forged, &expired] {
        let caller = crate::client::Client::at(addr, "ann@example.com", token.clone());
        let _ = caller.start("VOE").await;
    }
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &child.id().unwrap().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let succeeding = tokio::time::timeout(Duration::from_secs(10), async {
        let _ = child.wait().await;
        log.await.unwrap()
    })
    .await
    .expect("ramp serve stops on SIGTERM");

    let logs = format!(
        "{}\n{}\n{}",
        String::from_utf8_lossy(&failing.stderr),
        String::from_utf8_lossy(&refused.stderr),
        succeeding
    );
    // The logs are really there: the refusals and the call are in them.
    assert!(
        logs.contains("database not ready"),
        "the failing run logged nothing useful:\n{logs}"
    );
    assert!(
        logs.contains("bad token signature"),
        "the refusal was not logged:\n{logs}"
    );
    assert!(
        logs.contains("StartProcess"),
        "the RPC was not logged:\n{logs}"
    );
    assert_clean(&logs, &[good, forged, expired]);
}

/// Secrets that look like numbers, switches or quoted text are text, and no error
/// shows them, whether they come from the environment or the config file.
#[test]
fn secrets_that_look_like_numbers_or_switches_are_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    // What a run printed, and whether it succeeded.
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_ramp"));
        for (key, _) in std::env::vars() {
            if key.starts_with("RAMP_") {
                command.env_remove(key);
            }
        }
        let output = command
            .args(args)
            .envs(env.iter().copied())
            .current_dir(dir.path())
            .output()
            .unwrap();
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), printed)
    };
    for value in ["123456", "987654.5", "true", "\"quoted-canary\"", "[7, 8]"] {
        for setting in [
            "RAMP_CAMUNDA_PASSWORD",
            "RAMP_JWT_SECRET",
            "RAMP_DATABASE_URL",
        ] {
            // Fails on a setting of its own; the secret must not show either way.
            let (started, stderr) = run(
                &["serve"],
                &[
                    ("RAMP_DATABASE_URL", "host=127.0.0.1 port=1 user=postgres"),
                    ("RAMP_LISTEN", "nowhere"),
                    (setting, value),
                ],
            );
            assert!(!started);
            assert!(!stderr.contains(value), "{setting}={value}: {stderr}");
        }
        let (started, stderr) = run(
            &["worker"],
            &[
                ("RAMP_CAMUNDA_URL", "http://127.0.0.1:9/engine-rest"),
                ("RAMP_WORKER_MAX_IN_FLIGHT", "0"),
                ("RAMP_TOKEN", value),
            ],
        );
        assert!(!started);
        assert!(stderr.contains("RAMP_WORKER_MAX_IN_FLIGHT"), "{stderr}");
        assert!(!stderr.contains(value), "RAMP_TOKEN={value}: {stderr}");

        // The same value in the file, unquoted where TOML allows it.
        let file = dir.path().join("ramp.toml");
        std::fs::write(&file, format!("camunda_password = {value}\n")).unwrap();
        let (_, printed) = run(&["--config", file.to_str().unwrap(), "config"], &[]);
        let bare = value.trim_matches(|c| c == '"' || c == '[' || c == ']');
        for line in printed.lines().filter(|l| l.contains("camunda_password")) {
            assert!(!line.contains(bare), "camunda_password = {value}: {line}");
        }
    }
}
