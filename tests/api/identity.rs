//! Identities that cannot be confused (issue 20): a token whose email looks like
//! another user's does not act as them, and a token that lives longer than
//! `RAMP_JWT_MAX_TTL_SECS` is refused.

use std::time::{SystemTime, UNIX_EPOCH};

use ramp::proto::*;
use serde_json::{Value, json};
use tonic::Code;

use crate::auth::sign;
use crate::helpers::{TEST_ISSUER, TEST_SECRET, spawn_app, spawn_app_with};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A verified token for `email`, issued now and valid for `ttl` seconds.
fn claims(email: &str, ttl: u64) -> Value {
    json!({
        "sub": email, "email": email, "email_verified": true, "roles": [],
        "iss": TEST_ISSUER, "aud": "ramp", "iat": now(), "exp": now() + ttl,
    })
}

/// Issue 20: a verified token for `Kate@…` written with the Kelvin sign (U+212A)
/// acted as `kate@…` — Unicode lowercasing turned it into her address — and read
/// and cancelled her process (seen failing: GetProcess answered OK). Neither it nor
/// the other usual lookalikes are let in; Kate's process stays hers and running.
#[tokio::test]
async fn a_lookalike_of_a_users_email_does_not_act_as_them() {
    let app = spawn_app().await;
    crate::processes::deploy_demo().await;
    let suffix = &uuid::Uuid::now_v7().simple().to_string()[20..];
    let kate = format!("kate-{suffix}@example.com");
    let kates = app.as_admin().start_for("VOE", &kate).await.unwrap();

    let lookalikes = [
        (
            "the Kelvin sign",
            format!("\u{212A}ate-{suffix}@example.com"),
        ),
        ("a fullwidth k", format!("\u{FF4B}ate-{suffix}@example.com")),
        (
            "a zero-width joiner",
            format!("ka\u{200D}te-{suffix}@example.com"),
        ),
        (
            "a zero-width space",
            format!("kate\u{200B}-{suffix}@example.com"),
        ),
        ("a Cyrillic а", format!("k\u{430}te-{suffix}@example.com")),
        (
            "a dotless ı",
            format!("kate-{suffix}@example.com").replace('e', "\u{131}"),
        ),
        (
            "a dotted İ",
            format!("KATE-{suffix}@EXAMPLE.COM").replace('E', "\u{130}"),
        ),
    ];
    for (what, email) in &lookalikes {
        let lookalike = app.bearing(sign(&claims(email, 3600), TEST_SECRET));
        let got = lookalike.process(&kates.id).await;
        let status = crate::helpers::refused(got, Code::Unauthenticated);
        assert!(
            status.message().contains("email is not accepted"),
            "{what}: {status:?}"
        );
        let cancelled = lookalike.cancel(&kates.id, "lookalike").await;
        crate::helpers::refused(cancelled, Code::Unauthenticated);
    }

    let still = app.as_user(&kate).process(&kates.id).await.unwrap();
    assert_eq!(still.state(), ProcessState::Active);
    assert_eq!(still.business_key, kate);
}

/// Issue 20: a token valid until the year 9999 was accepted. A token lives at most
/// `RAMP_JWT_MAX_TTL_SECS` (24 h by default) from issue to expiry, and from now to
/// expiry when it says nothing of its issue or a future one (seen failing: all
/// accepted).
#[tokio::test]
async fn a_token_that_lives_longer_than_the_limit_is_refused() {
    let app = spawn_app().await;
    let ann = crate::forms::user();
    let list = |bearer: String| {
        let client = app.bearing(bearer);
        async move { client.processes(ListProcessesRequest::default()).await }
    };
    let long_lived = [
        ("valid until 9999", {
            let mut c = claims(&ann, 0);
            c["exp"] = json!(253_402_300_799_u64);
            c
        }),
        ("issued for 25 hours", claims(&ann, 25 * 3600)),
        ("no iat, expiring in 25 hours", {
            let mut c = claims(&ann, 25 * 3600);
            c.as_object_mut().unwrap().remove("iat");
            c
        }),
        ("an iat in the future, expiring in 48 hours", {
            let mut c = claims(&ann, 48 * 3600);
            c["iat"] = json!(now() + 47 * 3600);
            c
        }),
    ];
    for (what, claims) in long_lived {
        let status = crate::helpers::refused(
            list(sign(&claims, TEST_SECRET)).await,
            Code::Unauthenticated,
        );
        assert!(
            status.message().contains("lifetime too long") && status.message().contains("86400"),
            "{what}: {status:?}"
        );
    }
    list(sign(&claims(&ann, 23 * 3600), TEST_SECRET))
        .await
        .expect("a token for 23 hours is accepted");
    let mut no_iat = claims(&ann, 3600);
    no_iat.as_object_mut().unwrap().remove("iat");
    list(sign(&no_iat, TEST_SECRET))
        .await
        .expect("a token without iat that expires within the limit is accepted");

    // A limit of the operator's own.
    let app = spawn_app_with(json!({"jwt_max_ttl_secs": 600})).await;
    let status = app
        .bearing(sign(&claims(&ann, 3600), TEST_SECRET))
        .processes(ListProcessesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("600"), "{status:?}");
    app.bearing(sign(&claims(&ann, 300), TEST_SECRET))
        .processes(ListProcessesRequest::default())
        .await
        .expect("five minutes are within ten");
}

#[test]
fn a_longest_lifetime_of_zero_is_refused() {
    let settings = json!({
        "database_url": "host=127.0.0.1 dbname=unused",
        "camunda_url": "http://127.0.0.1:9/engine-rest",
        "jwt_secret": TEST_SECRET,
        "jwt_max_ttl_secs": 0,
    });
    let error = ramp::config::Config::load(None, settings)
        .expect_err("a zero lifetime is refused")
        .to_string();
    assert!(error.contains("RAMP_JWT_MAX_TTL_SECS"), "{error}");
}
