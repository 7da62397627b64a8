//! The signals that stop a long-running command (`serve`, `worker`): Ctrl-C and
//! SIGTERM.

/// Completes when the process is asked to stop.
pub async fn stop_requested() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM can be watched");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
