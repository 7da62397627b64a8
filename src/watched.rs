//! A response body that shows each frame to a watcher as it passes, and keeps the
//! watcher as long as the body lives: for what must happen when a response ends
//! (its outcome logged, its request no longer in flight), whenever and however it
//! ends. Dropping the body drops the watcher, so a watcher's `Drop` sees a response
//! its client left before the end.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

/// What sees a response's frames pass.
pub trait Watcher<D, E> {
    /// Sees one frame, an error, or the end (`None`).
    fn frame(&mut self, frame: &Option<Result<Frame<D>, E>>);
}

pin_project! {
    pub struct Watched<B, W> {
        #[pin]
        inner: B,
        watcher: W,
    }
}

impl<B, W> Watched<B, W> {
    pub fn new(inner: B, watcher: W) -> Self {
        Self { inner, watcher }
    }
}

impl<B: Body, W: Watcher<B::Data, B::Error>> Body for Watched<B, W> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        this.watcher.frame(&frame);
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
