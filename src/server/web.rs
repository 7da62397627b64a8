//! The web UI's static files, on the API's port: plain GET and HEAD requests that
//! are not gRPC are answered from `RAMP_WEB_DIR`, and paths that name no file get
//! `index.html`, so the app's own routes (`/inbox`, `/forms/…`) load on reload.

use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Method, Request, Response, header};
use http_body::Body as HttpBody;
use tonic::body::Body;
use tower::{Layer, Service, ServiceExt};
use tower_http::services::{ServeDir, ServeFile};

#[derive(Clone)]
pub struct WebUiLayer {
    files: Option<ServeDir<ServeFile>>,
}

impl WebUiLayer {
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self {
            files: dir.map(|dir| {
                let index = dir.join("index.html");
                ServeDir::new(dir)
                    .append_index_html_on_directories(true)
                    .fallback(ServeFile::new(index))
            }),
        }
    }
}

impl<S> Layer<S> for WebUiLayer {
    type Service = WebUi<S>;
    fn layer(&self, inner: S) -> Self::Service {
        WebUi {
            inner,
            files: self.files.clone(),
        }
    }
}

#[derive(Clone)]
pub struct WebUi<S> {
    inner: S,
    files: Option<ServeDir<ServeFile>>,
}

/// Whether a request is for the UI: a GET or HEAD that is not gRPC(-web).
fn for_the_ui<B>(request: &Request<B>) -> bool {
    let grpc = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    (request.method() == Method::GET || request.method() == Method::HEAD) && !grpc
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for WebUi<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send,
    ReqBody: Send + 'static,
    ResBody: HttpBody<Data = bytes::Bytes> + Send + 'static,
    ResBody::Error: Into<tonic::codegen::StdError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        if let Some(files) = self.files.clone()
            && for_the_ui(&request)
        {
            let (parts, _) = request.into_parts();
            let request = Request::from_parts(parts, ());
            return Box::pin(async move {
                let response = match files.oneshot(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                Ok(response.map(Body::new))
            });
        }
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let response = inner.call(request).await?;
            Ok(response.map(Body::new))
        })
    }
}
