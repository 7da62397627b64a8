//! Authenticates every `ramp.v1` RPC before it reaches its service, puts the
//! `Caller` into the request's extensions, and ends the response stream with
//! UNAUTHENTICATED when the caller's token expires. Health and reflection stay open.

use std::sync::Arc;
use std::time::SystemTime;

use futures::future::BoxFuture;
use http::Request;

use super::Authenticator;
use crate::cutoff::CutoffBody;
use crate::middleware::{Answer, Middleware, Next};

/// The RPCs that need a caller: everything of ramp's own API.
const PROTECTED_PREFIX: &str = "/ramp.v1.";

#[derive(Clone)]
pub struct Authentication {
    authenticator: Arc<Authenticator>,
}

impl Authentication {
    pub fn new(authenticator: Arc<Authenticator>) -> Self {
        Self { authenticator }
    }
}

type ExpiringBody<B> = CutoffBody<B, BoxFuture<'static, ()>>;

impl<ReqBody, ResBody, E> Middleware<ReqBody, ResBody, E> for Authentication
where
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
    E: Send + 'static,
{
    type Body = ExpiringBody<ResBody>;

    fn call(
        &self,
        mut request: Request<ReqBody>,
        next: Next<ReqBody, ResBody, E>,
    ) -> Answer<Self::Body, E> {
        let authenticator = self.authenticator.clone();
        Box::pin(async move {
            if !request.uri().path().starts_with(PROTECTED_PREFIX) {
                let response = next.run(request).await?;
                return Ok(response.map(|body| never_cut(body)));
            }
            let caller = match authenticator.authenticate(request.headers()).await {
                Ok(caller) => caller,
                Err(error) => {
                    tracing::info!(reason = %error, "caller refused");
                    return Ok(error.to_status().into_http::<ResBody>().map(never_cut));
                }
            };
            if !caller.may_call(request.uri().path()) {
                tracing::info!(caller = %caller.email, rpc = request.uri().path(), "a worker called an RPC other than CreateFormTask; refused");
                let status = tonic::Status::permission_denied(
                    "workers may only create form tasks (FormService/CreateFormTask)",
                );
                return Ok(status.into_http::<ResBody>().map(never_cut));
            }
            let expires_at = caller.expires_at;
            request.extensions_mut().insert(caller);
            let response = next.run(request).await?;
            Ok(response.map(|body| match expires_at {
                Some(at) => CutoffBody::new(
                    body,
                    Box::pin(expiry(at)) as BoxFuture<'static, ()>,
                    tonic::Code::Unauthenticated,
                    "token expired",
                ),
                None => never_cut(body),
            }))
        })
    }
}

fn never_cut<B>(body: B) -> ExpiringBody<B> {
    CutoffBody::new(body, Box::pin(std::future::pending()), tonic::Code::Ok, "")
}

async fn expiry(at: SystemTime) {
    let left = at.duration_since(SystemTime::now()).unwrap_or_default();
    tokio::time::sleep(left).await;
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use std::time::{Duration, Instant};

    use bytes::Bytes;
    use http::Response;
    use http_body::{Body, Frame};
    use secrecy::SecretString;
    use tower::{Layer, ServiceExt};

    use super::*;
    use crate::auth::jwt::JwtVerifier;
    use crate::auth::{JwtSettings, KeySource, TokenClaims, mint_hs256};
    use crate::middleware::MiddlewareLayer;

    /// A response stream that never sends anything, like an idle inbox.
    #[derive(Default)]
    struct Idle;

    impl Body for Idle {
        type Data = Bytes;
        type Error = Infallible;
        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Pending
        }
    }

    const SECRET: &str = "unit-test-secret-unit-test-secret-0123";

    fn authenticator() -> Arc<Authenticator> {
        let settings = JwtSettings {
            key: KeySource::Secret(SecretString::from(SECRET)),
            issuer: None,
            audience: "ramp".into(),
            leeway_secs: 0,
            email_claim: "email".into(),
            require_email_verified: true,
            roles_claim: "roles".into(),
            user_id_claim: "email".into(),
            groups_claim: "groups".into(),
            jwks_min_refresh: Duration::from_secs(10),
            max_ttl: Duration::from_secs(3600),
        };
        Arc::new(Authenticator::Jwt(Box::new(
            JwtVerifier::new(settings).unwrap(),
        )))
    }

    #[tokio::test]
    async fn a_stream_ends_with_unauthenticated_when_its_token_expires() {
        let token = mint_hs256(
            &SecretString::from(SECRET),
            &TokenClaims {
                email: "ann@example.com",
                roles: &[],
                ttl: Duration::from_secs(2),
                issuer: None,
                audience: "ramp",
            },
        )
        .unwrap();
        let service = MiddlewareLayer::new(Authentication::new(authenticator())).layer(
            tower::service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(Idle)) }),
        );
        let request = Request::builder()
            .uri("/ramp.v1.FormService/PendingForms")
            .header("authorization", format!("Bearer {token}"))
            .body(())
            .unwrap();
        let started = Instant::now();
        let response = service.oneshot(request).await.unwrap();
        let mut body = std::pin::pin!(response.into_body());

        let frame = tokio::time::timeout(
            Duration::from_secs(5),
            std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)),
        )
        .await
        .expect("the stream ends within 5 s")
        .expect("with a frame")
        .unwrap();
        let elapsed = started.elapsed();
        let trailers = frame.into_trailers().expect("the last frame is trailers");
        assert_eq!(trailers["grpc-status"], "16", "UNAUTHENTICATED");
        assert!(
            trailers["grpc-message"]
                .to_str()
                .unwrap()
                .contains("expired")
        );
        // Expiry is at a whole second: between 1 and 2 s from now.
        assert!(
            elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(4),
            "{elapsed:?}"
        );
    }

    #[tokio::test]
    async fn health_and_reflection_pass_without_a_token() {
        let service = MiddlewareLayer::new(Authentication::new(authenticator())).layer(
            tower::service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(Idle)) }),
        );
        let request = Request::builder()
            .uri("/grpc.health.v1.Health/Check")
            .body(())
            .unwrap();
        let response = service.oneshot(request).await.unwrap();
        assert!(response.headers().get("grpc-status").is_none());
    }
}
