//! Bounds on connections: a connection that brings no request is closed, an idle
//! one too, the cap on open connections holds, and a request in flight (an open
//! inbox stream) keeps its connection however long it lasts.

use std::time::{Duration, Instant};

use ramp::proto::pending_forms_response::Event;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{health_status, spawn_app_with};

/// How long the server took to close `socket` (end of stream or a reset), reading
/// and dropping whatever it sends meanwhile; `None` if it is still open after
/// `within`.
async fn closed_within(socket: &mut TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + within;
    let mut buffer = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, socket.read(&mut buffer)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

async fn silent(app: &crate::helpers::TestApp, n: usize) -> Vec<TcpStream> {
    futures::future::join_all((0..n).map(|_| TcpStream::connect(app.addr())))
        .await
        .into_iter()
        .map(|socket| socket.expect("the server accepts the connection"))
        .collect()
}

#[tokio::test]
async fn connections_that_send_nothing_are_closed_within_the_bound() {
    let app = spawn_app_with(json!({"first_request_timeout_secs": 1})).await;

    let mut sockets = silent(&app, 100).await;
    // The server answers others meanwhile.
    health_status(app.addr()).await;
    let closed = futures::future::join_all(
        sockets
            .iter_mut()
            .map(|socket| closed_within(socket, Duration::from_secs(10))),
    )
    .await;

    let open = closed.iter().filter(|c| c.is_none()).count();
    let slowest = closed.iter().flatten().max().copied().unwrap_or_default();
    crate::report!(
        "connections: 100 silent connections, bound 1 s: {} closed, slowest after {slowest:?}",
        100 - open
    );
    assert_eq!(open, 0, "silent connections were still open after 10 s");
    assert!(
        slowest < Duration::from_secs(3),
        "closed only after {slowest:?}"
    );
    health_status(app.addr()).await;
}

#[tokio::test]
async fn a_connection_over_the_cap_is_closed_at_once_and_the_cap_frees_up() {
    let app = spawn_app_with(json!({
        "max_connections": 8,
        "first_request_timeout_secs": 4,
    }))
    .await;
    // The harness's own health connections are gone.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut held = silent(&app, 8).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut over = TcpStream::connect(app.addr()).await.unwrap();
    let refused = closed_within(&mut over, Duration::from_secs(2)).await;
    crate::report!("connections: the 9th of 8 closed after {refused:?}");
    assert!(
        refused.is_some(),
        "a connection over the cap stayed open for 2 s"
    );
    assert!(
        closed_within(&mut held[0], Duration::from_millis(100))
            .await
            .is_none(),
        "a connection under the cap was closed at once"
    );

    // The silent ones go at their bound; then calls are served again.
    for socket in &mut held {
        assert!(
            closed_within(socket, Duration::from_secs(8))
                .await
                .is_some()
        );
    }
    health_status(app.addr()).await;
}

#[tokio::test]
async fn idle_connections_are_closed_and_open_streams_stay() {
    let app = spawn_app_with(json!({
        "first_request_timeout_secs": 1,
        "idle_timeout_secs": 2,
        "stream_heartbeat_secs": 1,
    }))
    .await;

    // An inbox, open far longer than the idle bound.
    let mut inbox = app
        .as_user(&crate::forms::user())
        .pending_forms("")
        .await
        .unwrap();

    // HTTP/1.1: one request, answered, then nothing.
    let mut http1 = TcpStream::connect(app.addr()).await.unwrap();
    http1
        .write_all(b"GET /livez HTTP/1.1\r\nhost: ramp\r\n\r\n")
        .await
        .unwrap();
    let mut answer = vec![0u8; 1024];
    let n = http1.read(&mut answer).await.unwrap();
    assert!(
        String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer[..n])
    );
    // HTTP/2: the preface and settings, then no request.
    let mut http2 = TcpStream::connect(app.addr()).await.unwrap();
    http2
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();

    let (http1_closed, http2_closed) = tokio::join!(
        closed_within(&mut http1, Duration::from_secs(10)),
        closed_within(&mut http2, Duration::from_secs(10)),
    );
    crate::report!(
        "connections: idle HTTP/1.1 closed after {http1_closed:?} (bound 2 s), \
         HTTP/2 without a request after {http2_closed:?} (bound 1 s)"
    );
    assert!(
        http1_closed.is_some_and(|d| d < Duration::from_secs(5)),
        "{http1_closed:?}"
    );
    assert!(
        http2_closed.is_some_and(|d| d < Duration::from_secs(4)),
        "{http2_closed:?}"
    );

    // The inbox kept its connection: heartbeats still arrive, 4 s after it opened.
    let opened = Instant::now();
    while opened.elapsed() < Duration::from_secs(4) {
        let message = tokio::time::timeout(Duration::from_secs(3), inbox.message())
            .await
            .expect("a message within 3 s")
            .expect("the stream is open")
            .expect("the stream goes on");
        assert!(matches!(
            message.event,
            Some(Event::Heartbeat(_) | Event::Snapshot(_))
        ));
    }
}
