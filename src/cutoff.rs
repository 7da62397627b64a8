//! Response bodies that end early, with a gRPC status of our choosing, when something
//! happens: the server shuts down, or the caller's token expires.
//!
//! A body that has data ready always sends it first; the cut comes only while the
//! body waits (an idle stream), so a unary answer is never cut in half. After the
//! cut, the body ends with trailers carrying the status, which gRPC and gRPC-web
//! clients read like any other end of call.

use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderMap, HeaderValue};
use http_body::{Body, Frame};
use pin_project_lite::pin_project;

pin_project! {
    pub struct CutoffBody<B, F> {
        #[pin]
        inner: B,
        #[pin]
        cut: F,
        status: tonic::Code,
        message: &'static str,
        ended: bool,
    }
}

impl<B, F> CutoffBody<B, F> {
    /// Wraps `inner`; when `cut` completes while `inner` waits, the body ends with
    /// `status` and `message` (a plain ASCII message, sent percent-encoded).
    pub fn new(inner: B, cut: F, status: tonic::Code, message: &'static str) -> Self {
        Self {
            inner,
            cut,
            status,
            message,
            ended: false,
        }
    }
}

impl<B: Body, F: Future<Output = ()>> Body for CutoffBody<B, F> {
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
            Poll::Pending => match this.cut.poll(cx) {
                Poll::Ready(()) => {
                    *this.ended = true;
                    Poll::Ready(Some(Ok(Frame::trailers(trailers(
                        *this.status,
                        this.message,
                    )))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }
}

fn trailers(status: tonic::Code, message: &str) -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from(status as i32));
    let encoded = message.replace('%', "%25").replace(' ', "%20");
    if let Ok(value) = HeaderValue::from_str(&encoded) {
        trailers.insert("grpc-message", value);
    }
    trailers
}
