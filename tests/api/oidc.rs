//! Tokens from a real OpenID Connect provider (`oidc-provider` from npm, run by
//! `tests/oidc/provider.mjs`): JWKS validation, key rotation, roles from a claim path
//! and `email_verified`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use ramp::proto::CreateFormTaskRequest;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tonic::Code;

use crate::helpers::spawn_app_with;

struct Provider {
    child: tokio::process::Child,
    issuer: String,
}

impl Provider {
    async fn start(port: u16, keys: &Path) -> Self {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc/provider.mjs");
        let mut child = tokio::process::Command::new("node")
            .arg(script)
            .args(["--port", &port.to_string(), "--keys"])
            .arg(keys)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs (make test installs tests/oidc)");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the provider starts within 30 s")
            .unwrap()
            .expect("the provider prints READY");
        let issuer = line
            .strip_prefix("READY ")
            .expect("READY <issuer>")
            .to_owned();
        Self { child, issuer }
    }

    fn port(&self) -> u16 {
        self.issuer.rsplit(':').next().unwrap().parse().unwrap()
    }

    async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// An access token for `email`, from the client-credentials grant.
    async fn token(&self, email: &str, verified: bool, roles: &str) -> String {
        let response: serde_json::Value = reqwest::Client::new()
            .post(format!("{}/token", self.issuer))
            .basic_auth("ramp-test", Some("ramp-test-secret"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("resource", "urn:ramp"),
                ("email", email),
                ("email_verified", if verified { "true" } else { "false" }),
                ("roles", roles),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        response["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token: {response}"))
            .to_owned()
    }
}

fn keys_file(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

fn create_task() -> CreateFormTaskRequest {
    CreateFormTaskRequest {
        external_task_id: "ext-1".into(),
        process_instance_id: "pi-1".into(),
        business_key: "ann@example.com".into(),
        activity_id: "qualify_supplier".into(),
        ..Default::default()
    }
}

fn ramp_settings(provider: &Provider) -> serde_json::Value {
    json!({
        "jwt_secret": null,
        "jwt_jwks_url": format!("{}/jwks", provider.issuer),
        "jwt_issuer": provider.issuer,
        "jwt_audience": "urn:ramp",
        "jwt_roles_claim": "realm_access.roles",
        "jwt_jwks_min_refresh_secs": 1,
    })
}

#[tokio::test]
async fn tokens_of_a_real_provider_are_checked_against_its_jwks() {
    let dir = tempfile::tempdir().unwrap();
    let provider = Provider::start(0, &keys_file(&dir, "keys.json")).await;
    let app = spawn_app_with(ramp_settings(&provider)).await;

    // Roles from realm_access.roles: a worker is let in (and told that the engine
    // knows no instance pi-1).
    let worker = provider
        .token("worker@example.com", true, "ramp-worker")
        .await;
    let status = app
        .bearing(&worker)
        .create_form_task(create_task())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

    // A user without the role is let in, then refused.
    let user = provider.token("ann@example.com", true, "").await;
    let status = app
        .bearing(&user)
        .create_form_task(create_task())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");

    // An unverified email does not count.
    let unverified = provider
        .token("ann@example.com", false, "ramp-worker")
        .await;
    let status = app
        .bearing(&unverified)
        .pending_forms("")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(
        status.message().contains("not verified"),
        "{}",
        status.message()
    );

    // The same claims signed with a shared secret instead of the provider's key: the
    // algorithm is the published key's, so the token is refused.
    let mut parts = worker.split('.');
    let (_, payload) = (parts.next(), parts.next().unwrap());
    use base64::Engine;
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    let forged = crate::auth::sign(&claims, "a-shared-secret-a-shared-secret-a-shared");
    let status = app
        .bearing(&forged)
        .create_form_task(create_task())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");

    provider.stop().await;
}

#[tokio::test]
async fn a_rotated_key_is_fetched_when_a_token_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let before = Provider::start(0, &keys_file(&dir, "before.json")).await;
    let port = before.port();
    let app = spawn_app_with(ramp_settings(&before)).await;

    let old = before
        .token("worker@example.com", true, "ramp-worker")
        .await;
    let status = app
        .bearing(&old)
        .create_form_task(create_task())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    before.stop().await;

    // The provider comes back on the same address with a new key only.
    let after = Provider::start(port, &keys_file(&dir, "after.json")).await;
    let new = after.token("worker@example.com", true, "ramp-worker").await;
    tokio::time::sleep(Duration::from_millis(1_100)).await; // past the refetch limit
    let status = app
        .bearing(&new)
        .create_form_task(create_task())
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::InvalidArgument,
        "the new key was not fetched: {status:?}"
    );
    after.stop().await;
}

#[tokio::test]
async fn unreachable_signing_keys_answer_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let provider = Provider::start(0, &keys_file(&dir, "keys.json")).await;
    let token = provider.token("ann@example.com", true, "").await;
    let settings = ramp_settings(&provider);
    provider.stop().await;

    let app = spawn_app_with(settings).await;
    let status = app.bearing(&token).pending_forms("").await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
}
