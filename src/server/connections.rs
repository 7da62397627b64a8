//! Bounds on the connections `ramp serve` holds: how many may be open at once, how
//! long one may stay open without a request in flight, and how large a request's
//! headers may be, the same on HTTP/1.1 and HTTP/2.
//!
//! A connection is busy while a request on it is in flight (its response body not
//! yet finished); bytes alone do not count, so neither keepalive pings nor a client
//! trickling a request head keep it open. A new connection must bring its first
//! request (after the TLS handshake) within `first_request`; a connection that has
//! served requests is closed after `idle` without one. An inbox stream is a request
//! in flight, so a stream open for hours keeps its connection.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{Stream, StreamExt};
use http::{Request, Response, StatusCode};
use http_body::Frame;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tonic::body::Body;
use tonic::transport::server::{Connected, TcpConnectInfo, TlsConnectInfo};

use crate::middleware::{Answer, Middleware, Next, ResponseBody};
use crate::watched::{Watched, Watcher};

/// The bounds, from the configuration.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// Connections open at once; one more is closed as soon as it is accepted.
    pub max_connections: usize,
    /// How long a new connection may take to bring its first request.
    pub first_request: Duration,
    /// How long a connection may stay without a request in flight.
    pub idle: Duration,
    /// The largest header block of a request, counted as HTTP/2 counts it (each
    /// field's name and value plus 32 bytes).
    pub max_header_bytes: usize,
}

/// Wraps accepted TCP connections: those over `max_connections` are closed at once
/// (a warning, at most one every 10 s, says how many), the others carry the
/// bookkeeping that closes them when idle.
pub fn guard<S>(
    incoming: S,
    limits: ConnectionLimits,
) -> impl Stream<Item = io::Result<Guarded>> + Send + 'static
where
    S: Stream<Item = io::Result<TcpStream>> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let refused = Arc::new(Refusals {
        started: Instant::now(),
        since_warning: AtomicU64::new(0),
        last_warning_ms: AtomicU64::new(0),
    });
    incoming.filter_map(move |accepted| {
        let outcome = match accepted {
            Err(error) => Some(Err(error)),
            Ok(stream) => match permits.clone().try_acquire_owned() {
                Ok(permit) => Some(Ok(Guarded::new(stream, permit, limits))),
                Err(_) => {
                    refused.note(limits.max_connections);
                    // Dropping the socket closes it: the client reads end-of-stream.
                    None
                }
            },
        };
        futures::future::ready(outcome)
    })
}

/// Counts connections refused over the cap, to warn about them without flooding.
struct Refusals {
    started: Instant,
    since_warning: AtomicU64,
    /// Milliseconds after `started` of the last warning; 0: none yet.
    last_warning_ms: AtomicU64,
}

impl Refusals {
    fn note(&self, cap: usize) {
        let now = self.started.elapsed().as_millis() as u64;
        self.since_warning.fetch_add(1, Ordering::Relaxed);
        let last = self.last_warning_ms.load(Ordering::Relaxed);
        if (last == 0 || now.saturating_sub(last) >= 10_000)
            && self
                .last_warning_ms
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let refused = self.since_warning.swap(0, Ordering::Relaxed);
            tracing::warn!(
                refused,
                max_connections = cap,
                "connections refused: RAMP_MAX_CONNECTIONS are open"
            );
        }
    }
}

/// What a connection's requests report to it.
pub struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    served: AtomicBool,
    /// Milliseconds after `opened` when the last request ended.
    last_end_ms: AtomicU64,
    limits: ConnectionLimits,
}

impl Activity {
    fn begin(&self) {
        self.served.store(true, Ordering::SeqCst);
        self.in_flight.fetch_add(1, Ordering::SeqCst);
    }

    fn end(&self) {
        let now = self.opened.elapsed().as_millis() as u64;
        self.last_end_ms.store(now, Ordering::SeqCst);
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }

    /// When the connection is to be closed if nothing changes; `None` while a
    /// request is in flight.
    fn deadline(&self) -> Option<Instant> {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        if !self.served.load(Ordering::SeqCst) {
            return Some(self.opened + self.limits.first_request);
        }
        let last_end = Duration::from_millis(self.last_end_ms.load(Ordering::SeqCst));
        Some(self.opened + last_end + self.limits.idle)
    }
}

/// An accepted connection: its socket, its place under the cap, and the timer
/// that ends it when it stays without a request.
pub struct Guarded {
    io: TcpStream,
    activity: Arc<Activity>,
    timer: Pin<Box<Sleep>>,
    expired: bool,
    _permit: OwnedSemaphorePermit,
}

impl Guarded {
    fn new(io: TcpStream, permit: OwnedSemaphorePermit, limits: ConnectionLimits) -> Self {
        let opened = Instant::now();
        Self {
            io,
            activity: Arc::new(Activity {
                opened,
                in_flight: AtomicUsize::new(0),
                served: AtomicBool::new(false),
                last_end_ms: AtomicU64::new(0),
                limits,
            }),
            timer: Box::pin(tokio::time::sleep_until(opened + limits.first_request)),
            expired: false,
            _permit: permit,
        }
    }

    /// Whether the connection has stayed too long without a request. Arms the
    /// timer for the next check otherwise (while busy: one idle period from now).
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let now = Instant::now();
        match self.activity.deadline() {
            Some(deadline) if deadline <= now => return true,
            Some(deadline) => {
                if self.timer.deadline() != deadline {
                    self.timer.as_mut().reset(deadline);
                }
            }
            // Busy: look again one idle period from now, once the timer has run out
            // (not on every read: a busy connection reads often).
            None => {
                if self.timer.deadline() <= now {
                    self.timer.as_mut().reset(now + self.activity.limits.idle);
                }
            }
        }
        // Registers the wake-up; ready only once the deadline has passed.
        self.timer.as_mut().poll(cx).is_ready() && self.activity.deadline().is_some()
    }
}

/// What tonic puts into each request's extensions for a guarded connection.
#[derive(Clone)]
pub struct ConnectionInfo {
    tcp: TcpConnectInfo,
    activity: Arc<Activity>,
}

impl Connected for Guarded {
    type ConnectInfo = ConnectionInfo;

    fn connect_info(&self) -> ConnectionInfo {
        ConnectionInfo {
            tcp: self.io.connect_info(),
            activity: self.activity.clone(),
        }
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.expired {
            return Poll::Ready(Ok(()));
        }
        let read = Pin::new(&mut this.io).poll_read(cx, buf);
        if read.is_pending() && this.expired(cx) {
            // End of stream, with nothing in flight: HTTP/1.1 and HTTP/2 both close
            // the connection, and a TLS handshake that never came fails.
            tracing::debug!(
                served = this.activity.served.load(Ordering::Relaxed),
                "closing a connection without a request in flight"
            );
            this.expired = true;
            return Poll::Ready(Ok(()));
        }
        read
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Marks each request in flight on its connection until its response body is done
/// (or dropped), and refuses a request whose headers exceed the limit with 431 —
/// HTTP/2 refuses them itself by the same count, announced to clients in its
/// settings; HTTP/1.1 heads are counted here.
#[derive(Clone)]
pub struct RequestTracking {
    max_header_bytes: usize,
}

impl RequestTracking {
    pub fn new(max_header_bytes: usize) -> Self {
        Self { max_header_bytes }
    }
}

/// The size of a request's header block as HTTP/2 counts it (RFC 9113, 6.5.2),
/// pseudo-header fields included.
pub fn header_list_size<B>(request: &Request<B>) -> usize {
    const OVERHEAD: usize = 32;
    let pseudo = [
        ":method".len() + request.method().as_str().len(),
        ":path".len()
            + request
                .uri()
                .path_and_query()
                .map_or(1, |p| p.as_str().len()),
        ":scheme".len() + request.uri().scheme_str().map_or(4, str::len),
        ":authority".len() + request.uri().authority().map_or(0, |a| a.as_str().len()),
    ];
    let fields: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + OVERHEAD)
        .sum();
    fields + pseudo.iter().map(|p| p + OVERHEAD).sum::<usize>()
}

/// Ends a request's time in flight when dropped: watches its response body, and
/// is dropped with it.
struct InFlight(Arc<Activity>);

impl<D, E> Watcher<D, E> for Option<InFlight> {
    fn frame(&mut self, _: &Option<Result<Frame<D>, E>>) {}
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.end();
    }
}

impl<ReqBody, ResBody, E> Middleware<ReqBody, ResBody, E> for RequestTracking
where
    ResBody: ResponseBody,
    E: Send + 'static,
{
    type Body = Body;

    fn call(
        &self,
        mut request: Request<ReqBody>,
        next: Next<ReqBody, ResBody, E>,
    ) -> Answer<Body, E> {
        let info = {
            let extensions = request.extensions();
            extensions.get::<ConnectionInfo>().cloned().or_else(|| {
                extensions
                    .get::<TlsConnectInfo<ConnectionInfo>>()
                    .map(|tls| tls.get_ref().clone())
            })
        };
        let in_flight = info.map(|info| {
            // `tonic::Request::remote_addr` reads this.
            request.extensions_mut().insert(info.tcp.clone());
            info.activity.begin();
            InFlight(info.activity)
        });
        if header_list_size(&request) > self.max_header_bytes {
            tracing::debug!(
                limit = self.max_header_bytes,
                "refused a request whose headers are too large"
            );
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
            if request.version() < http::Version::HTTP_2 {
                // Whatever else the client sends on it is not worth reading.
                response.headers_mut().insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
            }
            return Box::pin(async move {
                drop(in_flight);
                Ok(response)
            });
        }
        let response = next.run(request);
        Box::pin(async move {
            Ok(response
                .await?
                .map(|body| Body::new(Watched::new(body, in_flight))))
        })
    }
}
