//! Ends open response streams when the server shuts down.
//!
//! tonic's graceful shutdown waits for every open request, and a server stream (a
//! PendingForms inbox, a health watch) never ends by itself, so shutdown would hang.
//! This layer cuts every response body once the shutdown token fires: an idle stream
//! ends with UNAVAILABLE, which clients treat as "reconnect, perhaps elsewhere".

use http::Request;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::cutoff::CutoffBody;
use crate::middleware::{Answer, Middleware, Next};

#[derive(Clone, Debug)]
pub struct StreamShutdown {
    token: CancellationToken,
}

impl StreamShutdown {
    pub fn new(token: CancellationToken) -> Self {
        Self { token }
    }
}

type ShutdownBody<B> = CutoffBody<B, WaitForCancellationFutureOwned>;

impl<ReqBody, ResBody, E> Middleware<ReqBody, ResBody, E> for StreamShutdown
where
    ResBody: Send + 'static,
    E: Send + 'static,
{
    type Body = ShutdownBody<ResBody>;

    fn call(
        &self,
        request: Request<ReqBody>,
        next: Next<ReqBody, ResBody, E>,
    ) -> Answer<Self::Body, E> {
        let future = next.run(request);
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
