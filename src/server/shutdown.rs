//! Ends open response streams when the server shuts down.
//!
//! tonic's graceful shutdown waits for every open request, and a server stream (a
//! PendingForms inbox, a health watch) never ends by itself, so shutdown would hang.
//! This layer wraps every response body: once the shutdown token fires, a body that
//! has nothing ready ends with the trailers `grpc-status: 14` (UNAVAILABLE), which
//! clients treat as "reconnect elsewhere". Bodies with data ready finish sending it
//! first, so unary answers are never cut.

use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::{Body, Frame};
use pin_project_lite::pin_project;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tower::{Layer, Service};

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
            Ok(response.map(|inner| ShutdownBody {
                inner,
                shutdown: Box::pin(token.cancelled_owned()),
                ended: false,
            }))
        })
    }
}

pin_project! {
    pub struct ShutdownBody<B> {
        #[pin]
        inner: B,
        shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
        ended: bool,
    }
}

impl<B: Body> Body for ShutdownBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        if *this.ended {
            return Poll::Ready(None);
        }
        match this.inner.poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame),
            Poll::Pending => match this.shutdown.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    *this.ended = true;
                    Poll::Ready(Some(Ok(Frame::trailers(shutdown_trailers()))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }
}

fn shutdown_trailers() -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("14"));
    trailers.insert(
        "grpc-message",
        HeaderValue::from_static("server%20is%20shutting%20down"),
    );
    trailers
}
