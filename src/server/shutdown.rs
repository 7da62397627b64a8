//! Ends open response streams when the server shuts down.
//!
//! tonic's graceful shutdown waits for every open request, and a server stream (a
//! PendingForms inbox, a health watch) never ends by itself, so shutdown would hang.
//! This layer cuts every response body once the shutdown token fires: an idle stream
//! ends with UNAVAILABLE, which clients treat as "reconnect, perhaps elsewhere".

use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tower::{Layer, Service};

use crate::cutoff::CutoffBody;

#[derive(Clone, Debug)]
pub struct StreamShutdownLayer {
    token: CancellationToken,
}

impl StreamShutdownLayer {
    pub fn new(token: CancellationToken) -> Self {
        Self { token }
    }
}

impl<S> Layer<S> for StreamShutdownLayer {
    type Service = StreamShutdown<S>;
    fn layer(&self, inner: S) -> Self::Service {
        StreamShutdown {
            inner,
            token: self.token.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct StreamShutdown<S> {
    inner: S,
    token: CancellationToken,
}

type ShutdownBody<B> = CutoffBody<B, WaitForCancellationFutureOwned>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for StreamShutdown<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = Response<ShutdownBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let future = self.inner.call(request);
        let token = self.token.clone();
        Box::pin(async move {
            let response = future.await?;
            Ok(response.map(|body| {
                CutoffBody::new(
                    body,
                    token.cancelled_owned(),
                    tonic::Code::Unavailable,
                    "server is shutting down",
                )
            }))
        })
    }
}
