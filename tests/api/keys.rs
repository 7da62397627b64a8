//! PEM public keys (the algorithm comes from the key, never from the token) and TLS,
//! with keys and certificates made by openssl for each test.

use std::path::Path;
use std::process::Command;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ramp::proto::ListFormTasksRequest;
use serde_json::json;
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

use crate::helpers::{TEST_ISSUER, fresh_database, refused, spawn_app_with, test_config};

fn openssl(args: &[&str], dir: &Path) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        status.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&status.stderr)
    );
}

/// An EC P-256 key pair: (private PKCS#8 PEM, public PEM file path).
fn ec_key(dir: &Path, name: &str) -> (Vec<u8>, std::path::PathBuf) {
    let private = format!("{name}.key");
    let public = format!("{name}.pub");
    openssl(
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            &private,
        ],
        dir,
    );
    openssl(&["pkey", "-in", &private, "-pubout", "-out", &public], dir);
    (std::fs::read(dir.join(private)).unwrap(), dir.join(public))
}

/// Ann's token (for ten minutes), signed with `key` by `algorithm`.
fn signed(algorithm: Algorithm, key: &EncodingKey) -> String {
    jsonwebtoken::encode(&Header::new(algorithm), &claims(), key).unwrap()
}

fn claims() -> serde_json::Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    json!({"email": "ann@example.com", "email_verified": true, "iss": TEST_ISSUER, "aud": "ramp", "exp": now + 600})
}

#[tokio::test]
async fn a_pem_key_fixes_the_algorithm() {
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = ec_key(dir.path(), "signer");
    let (other_private, _) = ec_key(dir.path(), "other");
    let app = spawn_app_with(json!({"jwt_secret": null, "jwt_public_key_file": public})).await;
    let call = |token: String| {
        let client = app.bearing(token);
        async move {
            let listed = client.forms(ListFormTasksRequest::default()).await;
            listed.map(|_| ())
        }
    };

    let good = signed(
        Algorithm::ES256,
        &EncodingKey::from_ec_pem(&private).unwrap(),
    );
    call(good).await.expect("a token signed by the key passes");

    let other = signed(
        Algorithm::ES256,
        &EncodingKey::from_ec_pem(&other_private).unwrap(),
    );
    let status = refused(call(other).await, Code::Unauthenticated);
    assert!(
        status.message().contains("signature"),
        "{}",
        status.message()
    );

    // The classic swap: HS256 "signed" with the public key's bytes as the secret.
    let swapped = signed(
        Algorithm::HS256,
        &EncodingKey::from_secret(&std::fs::read(&public).unwrap()),
    );
    let status = refused(call(swapped).await, Code::Unauthenticated);
    assert!(
        status.message().contains("algorithm"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn a_key_file_that_is_no_key_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not-a-key.pem");
    std::fs::write(&path, "hello").unwrap();
    let config = test_config(
        &fresh_database().await,
        json!({"jwt_secret": null, "jwt_public_key_file": path}),
    );
    let error = ramp::server::Application::start(config)
        .await
        .err()
        .expect("the server refuses to start");
    assert!(
        error.to_string().contains("RAMP_JWT_PUBLIC_KEY_FILE"),
        "{error}"
    );
}

#[tokio::test]
async fn tls_serves_grpc_over_https() {
    let dir = tempfile::tempdir().unwrap();
    // A CA of the test's own and a server certificate for localhost signed by it.
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "1",
                "-subj",
                "/CN=ramp test CA",
            ],
        ]
        .concat(),
        dir.path(),
    );
    openssl(
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "key.pem",
                "-out",
                "leaf.csr",
                "-subj",
                "/CN=localhost",
            ],
        ]
        .concat(),
        dir.path(),
    );
    std::fs::write(
        dir.path().join("leaf.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "cert.pem",
            "-days",
            "1",
            "-extfile",
            "leaf.ext",
        ],
        dir.path(),
    );
    let cert = dir.path().join("cert.pem");
    let config = test_config(
        &fresh_database().await,
        json!({"tls_cert": cert, "tls_key": dir.path().join("key.pem")}),
    );
    let app = ramp::server::Application::start(config)
        .await
        .expect("the server starts with TLS");
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(
            std::fs::read(dir.path().join("ca.pem")).unwrap(),
        ))
        .domain_name("localhost");
    let channel = Channel::from_shared(format!("https://localhost:{}", app.local_addr().port()))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .expect("a TLS connection");
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health answers over TLS");

    // Plaintext is not served on a TLS port.
    let plain = Channel::from_shared(format!("http://127.0.0.1:{}", app.local_addr().port()))
        .unwrap()
        .connect()
        .await;
    if let Ok(channel) = plain {
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        assert!(
            health
                .check(tonic_health::pb::HealthCheckRequest {
                    service: String::new()
                })
                .await
                .is_err()
        );
    }
}
