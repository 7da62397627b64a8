//! One tower layer for the plain-HTTP steps in front of the gRPC services, so that
//! each step (the operator's endpoints, the web UI's files, connection bookkeeping,
//! tracing, cutting streams at shutdown, authentication) is written as its logic
//! alone: what it does with a request, whether and how it passes it on with `Next`,
//! and what it does with the answer.

use std::task::{Context, Poll};

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{Request, Response};
use tonic::body::Body;
use tonic::codegen::StdError;
use tower::{Layer, Service};

/// What one step does with each request.
pub trait Middleware<ReqBody, ResBody, E>: Clone + Send + 'static {
    /// The body of the step's answers.
    type Body;

    /// Answers `request`, itself or by passing it on with `next`.
    fn call(
        &self,
        request: Request<ReqBody>,
        next: Next<ReqBody, ResBody, E>,
    ) -> Answer<Self::Body, E>;
}

/// A step's answer, to come.
pub type Answer<B, E> = BoxFuture<'static, Result<Response<B>, E>>;

/// A response body that tonic can send, as the inner services give them.
pub trait ResponseBody:
    http_body::Body<Data = Bytes, Error: Into<StdError>> + Send + 'static
{
}

impl<B> ResponseBody for B where
    B: http_body::Body<Data = Bytes, Error: Into<StdError>> + Send + 'static
{
}

/// The rest of the stack, ready to take one request.
pub struct Next<ReqBody, ResBody, E> {
    call: Box<dyn FnOnce(Request<ReqBody>) -> Answer<ResBody, E> + Send>,
}

impl<ReqBody, ResBody, E> Next<ReqBody, ResBody, E> {
    /// Passes `request` on. The rest of the stack is called here and now; the
    /// answer comes with the returned future.
    pub fn run(self, request: Request<ReqBody>) -> Answer<ResBody, E> {
        (self.call)(request)
    }

    /// Passes `request` on, for a step whose own answers have a body of their own.
    pub fn pass(self, request: Request<ReqBody>) -> Answer<Body, E>
    where
        ResBody: ResponseBody,
        E: Send + 'static,
    {
        let response = self.run(request);
        Box::pin(async move { Ok(response.await?.map(Body::new)) })
    }
}

/// A step that answers some plain HTTP requests itself (the operator's endpoints,
/// the web UI's files) and passes every other one on: it is a `Middleware` by
/// saying which requests it answers, and how.
pub trait Endpoints: Clone + Send + 'static {
    /// The answer to `request` (its head), when this step answers it; `None`
    /// passes it on.
    fn answer(&self, request: &Request<()>) -> Option<BoxFuture<'static, Response<Body>>>;
}

impl<T, ReqBody, ResBody, E> Middleware<ReqBody, ResBody, E> for T
where
    T: Endpoints,
    ResBody: ResponseBody,
    E: Send + 'static,
{
    type Body = Body;

    fn call(&self, request: Request<ReqBody>, next: Next<ReqBody, ResBody, E>) -> Answer<Body, E> {
        let (parts, body) = request.into_parts();
        let head = Request::from_parts(parts, ());
        match self.answer(&head) {
            Some(response) => Box::pin(async move { Ok(response.await) }),
            None => {
                let (parts, ()) = head.into_parts();
                next.pass(Request::from_parts(parts, body))
            }
        }
    }
}

/// The layer of a `Middleware`.
#[derive(Clone)]
pub struct MiddlewareLayer<M> {
    middleware: M,
}

impl<M> MiddlewareLayer<M> {
    pub fn new(middleware: M) -> Self {
        Self { middleware }
    }
}

impl<S, M: Clone> Layer<S> for MiddlewareLayer<M> {
    type Service = MiddlewareService<S, M>;

    fn layer(&self, inner: S) -> Self::Service {
        MiddlewareService {
            inner,
            middleware: self.middleware.clone(),
        }
    }
}

/// A service that runs its middleware in front of `inner`.
#[derive(Clone)]
pub struct MiddlewareService<S, M> {
    inner: S,
    middleware: M,
}

impl<S, M, ReqBody, ResBody> Service<Request<ReqBody>> for MiddlewareService<S, M>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    M: Middleware<ReqBody, ResBody, S::Error>,
    ReqBody: 'static,
{
    type Response = Response<M::Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // The service that was polled ready is the one to call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let next = Next {
            call: Box::new(move |request| Box::pin(inner.call(request))),
        };
        self.middleware.call(request, next)
    }
}
