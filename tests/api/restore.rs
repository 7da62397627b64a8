//! ramp's database copied into another PostgreSQL cluster (pg_dump and restore):
//! the change log's positions are the old cluster's transaction ids, far above the
//! new cluster's (issue #19, finding 8).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ramp::proto::pending_forms_response::Event;
use serde_json::json;
use tokio_stream::StreamExt;

use crate::forms::{added_id, created_id, instance_with_form, new_task, next, open, quiet, user};
use crate::helpers::{fresh_database, spawn_app, spawn_app_on};
use crate::load::Cluster;

/// A PostgreSQL client program of the newest installed version.
fn pg_tool(name: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed")
        .map(|e| e.unwrap().path().join("bin"))
        .filter(|d| d.join(name).exists())
        .collect();
    dirs.sort_by_key(|d| {
        d.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
    });
    dirs.pop().expect("a PostgreSQL bin folder").join(name)
}

/// Copies one database into another with pg_dump and pg_restore, as an operator
/// moving ramp to a new cluster does.
async fn dump_and_restore(from: &str, to: &str) {
    let dump = tempfile::NamedTempFile::new().unwrap();
    let status = tokio::process::Command::new(pg_tool("pg_dump"))
        .args(["--format=custom", "--file"])
        .arg(dump.path())
        .arg(from)
        .status()
        .await
        .unwrap();
    assert!(status.success(), "pg_dump");
    let status = tokio::process::Command::new(pg_tool("pg_restore"))
        .args(["--no-owner", "--exit-on-error", "--dbname", to])
        .arg(dump.path())
        .status()
        .await
        .unwrap();
    assert!(status.success(), "pg_restore");
}

/// Asserts that every position of the change log but the form `later`'s (made on
/// the new cluster) moved below the new cluster's ids: below zero.
async fn assert_old_positions_sort_below_new(db: &tokio_postgres::Client, later: &str) {
    let top: i64 = crate::helpers::scalar(
        db,
        "SELECT max(tx) FROM form_changes WHERE form_task_id::text <> $1",
        &[&later],
    )
    .await;
    assert!(top < 0, "the old positions moved below the new ones: {top}");
}

fn snapshot_ids(message: &ramp::proto::PendingFormsResponse) -> Vec<String> {
    match &message.event {
        Some(Event::Snapshot(s)) => {
            assert!(!s.more_pages);
            s.form_tasks.iter().map(|t| t.id.clone()).collect()
        }
        other => panic!("expected a snapshot, got {other:?}"),
    }
}

#[tokio::test]
async fn a_database_restored_into_another_cluster_keeps_every_inbox_live() {
    // Seen failing before the fix: the stream resumed on the new cluster with its
    // old cursor sent nothing at all (no snapshot, and not the change made there).
    let old = spawn_app().await;
    let ann = user();
    let (instance, _) = instance_with_form(&ann).await;
    let form = |name: &str| new_task(&format!("ext-{name}-{instance}"), &instance, &ann);
    let mut stream = open(&old, &ann, "").await;
    assert_eq!(snapshot_ids(&next(&mut stream).await), Vec::<String>::new());
    let first = created_id(&old, form("first")).await;
    let heard = next(&mut stream).await;
    assert_eq!(added_id(&heard), first);
    drop(stream);
    // Made after the client last heard from its stream: it must not be lost.
    let unheard = created_id(&old, form("unheard")).await;
    let old_database = old.database_url.clone();
    old.app.shutdown();
    old.app.stopped().await.unwrap();

    let cluster = Cluster::start().await;
    let copy = cluster.database().await;
    dump_and_restore(&old_database, &copy).await;
    let client = crate::helpers::connect(&copy).await;
    let row = client
        .query_one(
            "SELECT (SELECT max(tx) FROM form_changes), pg_current_xact_id()::text::bigint",
            &[],
        )
        .await
        .unwrap();
    let (old_top, new_id): (i64, i64) = (row.get(0), row.get(1));
    assert!(
        new_id < old_top,
        "the new cluster's transaction ids ({new_id}) are below the log's ({old_top})"
    );

    let new = spawn_app_on(&copy, json!({})).await;
    // The old cursor names a position of the old cluster: a snapshot, with the form
    // the client had not heard of.
    let mut resumed = open(&new, &ann, &heard.cursor).await;
    let snapshot = next(&mut resumed).await;
    let mut ids = snapshot_ids(&snapshot);
    ids.sort();
    let mut expected = vec![first.clone(), unheard.clone()];
    expected.sort();
    assert_eq!(ids, expected);
    // A new change arrives, on that stream and on a fresh one.
    let mut fresh = open(&new, &ann, "").await;
    assert_eq!(snapshot_ids(&next(&mut fresh).await).len(), 2);
    let later = created_id(&new, form("later")).await;
    assert_eq!(added_id(&next(&mut resumed).await), later);
    assert_eq!(added_id(&next(&mut fresh).await), later);
    // The new cursors resume: the change after the snapshot once, then nothing.
    let mut again = open(&new, &ann, &snapshot.cursor).await;
    assert_eq!(added_id(&next(&mut again).await), later);
    assert!(quiet(&mut again, Duration::from_millis(1_000)).await);
    // And every position now sorts below the new cluster's ids.
    assert_old_positions_sort_below_new(&client, &later).await;

    new.app.shutdown();
    new.app.stopped().await.unwrap();
    drop(client);
    cluster.stop().await;
}

/// A TCP forwarder whose upstream can be switched, cutting every connection it
/// carries: a database address that moves to another cluster (a DNS name or a
/// proxy switched over) under a running server.
struct Switch {
    addr: std::net::SocketAddr,
    upstream: Arc<Mutex<std::net::SocketAddr>>,
    carried: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Switch {
    fn drop(&mut self) {
        self.task.abort();
        for connection in self.carried.lock().unwrap().drain(..) {
            connection.abort();
        }
    }
}

impl Switch {
    async fn start(upstream: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let upstream = Arc::new(Mutex::new(upstream));
        let carried = Arc::new(Mutex::new(Vec::new()));
        let (to, list) = (upstream.clone(), carried.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let target = *to.lock().unwrap();
                let connection = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                list.lock().unwrap().push(connection.abort_handle());
            }
        });
        Self {
            addr,
            upstream,
            carried,
            task,
        }
    }

    /// New connections go to `upstream`; those open now are cut.
    fn switch(&self, upstream: std::net::SocketAddr) {
        *self.upstream.lock().unwrap() = upstream;
        for connection in self.carried.lock().unwrap().drain(..) {
            connection.abort();
        }
    }
}

#[tokio::test]
async fn a_server_whose_database_moves_to_a_copy_in_another_cluster_keeps_its_streams_live() {
    // The same database name on both clusters, reached through one address that is
    // switched from the first to the second while ramp runs. Seen failing before the
    // fix: the stream stayed open and silent, and never got the change made on the
    // new cluster.
    let original = fresh_database().await;
    let name = original
        .split_whitespace()
        .rev()
        .find_map(|kv| kv.strip_prefix("dbname="))
        .unwrap()
        .to_owned();
    let shared: std::net::SocketAddr = {
        let url = crate::helpers::admin_database_url();
        let port = url
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix("port="))
            .unwrap_or("5432")
            .to_owned();
        format!("127.0.0.1:{port}").parse().unwrap()
    };
    let switch = Switch::start(shared).await;
    let through = format!(
        "host=127.0.0.1 port={} user=postgres dbname={name}",
        switch.addr.port()
    );
    let app = spawn_app_on(&through, json!({"change_poll_ms": 500})).await;
    let ann = user();
    let (instance, _) = instance_with_form(&ann).await;
    let form = |name: &str| new_task(&format!("ext-{name}-{instance}"), &instance, &ann);
    let mut stream = open(&app, &ann, "").await;
    next(&mut stream).await;
    let first = created_id(&app, form("first")).await;
    let heard = next(&mut stream).await;
    assert_eq!(added_id(&heard), first);

    let cluster = Cluster::start().await;
    let admin = format!(
        "host=127.0.0.1 port={} user=postgres dbname=postgres",
        cluster.port
    );
    let client = crate::helpers::connect(&admin).await;
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let copy = format!("{admin} dbname={name}");
    dump_and_restore(&original, &copy).await;
    switch.switch(format!("127.0.0.1:{}", cluster.port).parse().unwrap());

    // The stream either ends (its position means nothing on the new cluster) and is
    // resumed as a client does, with its last cursor, or goes on; either way the
    // change made on the new cluster reaches the client.
    let later = loop {
        match create_until_up(&app, form("later")).await {
            Some(later) => break later,
            None => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    let mut cursor = heard.cursor.clone();
    let mut forms: Vec<String> = vec![first.clone()];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !forms.contains(&later) {
        let message = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("the change made on the new cluster arrives within 30 s");
        match message {
            Some(Ok(message)) => {
                match &message.event {
                    Some(Event::Snapshot(s)) => {
                        forms = s.form_tasks.iter().map(|t| t.id.clone()).collect()
                    }
                    Some(Event::Added(t)) => forms.push(t.id.clone()),
                    _ => {}
                }
                if !message.cursor.is_empty() {
                    cursor = message.cursor;
                }
            }
            // Ended or failed: resume as a client does.
            Some(Err(_)) | None => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                stream = open(&app, &ann, &cursor).await;
            }
        }
    }
    assert!(forms.contains(&first), "nothing lost: {forms:?}");
    // Positions on the new cluster sort below its own transaction ids now.
    assert_old_positions_sort_below_new(&crate::helpers::connect(&copy).await, &later).await;

    app.app.shutdown();
    app.app.stopped().await.unwrap();
    drop(switch);
    cluster.stop().await;
}

/// CreateFormTask, or `None` while the server cannot reach its database yet.
async fn create_until_up(
    app: &crate::helpers::TestApp,
    request: ramp::proto::CreateFormTaskRequest,
) -> Option<String> {
    app.as_worker().create_form(request).await.ok()
}
