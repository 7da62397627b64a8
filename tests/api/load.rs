//! What the reliability tests run and break: a PostgreSQL cluster of the test's
//! own (so restarting it disturbs no other test), `ramp serve` and `ramp worker` as
//! real processes (so they can be killed, frozen and restarted), and a steady mixed
//! load of clients — each a user who opens an inbox stream, starts a process, waits
//! for its form, and submits it — that writes what it was told into a `Ledger`.
//!
//! Clients behave as a careful real client would: they retry what failed for a
//! passing reason (UNAVAILABLE, a broken connection, a call that timed out) with
//! the same request id, move to another replica when one does not answer, and
//! resume a broken stream with its last cursor.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ramp::proto::pending_forms_response::Event;
use ramp::proto::*;
use serde_json::json;
use tokio::process::Child;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

use crate::checker::{AcceptedSubmission, Checker, FIELD, FORM, Ledger, Report};
use crate::client::Client;
use crate::engine::{camunda, engine_url, unique_key};
use crate::helpers::{TEST_ISSUER, TEST_SECRET, free_port, wait_until_serving};

fn script(name: &str) -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name)
}

/// A throwaway PostgreSQL cluster of the test's own (`scripts/postgres.sh`), stopped
/// and removed when dropped.
pub struct Cluster {
    dir: tempfile::TempDir,
    pub port: u16,
}

impl Cluster {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        // As root the server runs as the postgres user, which must reach the folder.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let cluster = Self {
            dir,
            port: free_port(),
        };
        cluster.start_again().await;
        cluster
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("pg")
    }

    pub async fn start_again(&self) {
        let status = tokio::process::Command::new(script("postgres.sh"))
            .arg("start")
            .arg(self.data())
            .arg(self.port.to_string())
            .arg("throwaway")
            .status()
            .await
            .unwrap();
        assert!(status.success(), "the test's cluster starts");
    }

    /// A fast shutdown: every connection is cut, as in a failover or a restart.
    pub async fn stop(&self) {
        let status = tokio::process::Command::new(script("postgres.sh"))
            .arg("stop")
            .arg(self.data())
            .status()
            .await
            .unwrap();
        assert!(status.success(), "the test's cluster stops");
    }

    /// A new database on this cluster.
    pub async fn database(&self) -> String {
        let admin = format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.port
        );
        let client = crate::helpers::connect(&admin).await;
        let name = format!("ramp_rel_{}", uuid::Uuid::now_v7().simple());
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        format!("{admin} dbname={name}")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new(script("postgres.sh"))
            .arg("stop")
            .arg(self.data())
            .status();
    }
}

/// The settings every replica of a reliability test runs with: short timers, so
/// that faults are noticed and settled within a test's time.
pub fn replica_env(
    database_url: &str,
    camunda_url: &str,
    startable: &str,
) -> Vec<(String, String)> {
    [
        ("RAMP_DATABASE_URL", database_url),
        ("RAMP_CAMUNDA_URL", camunda_url),
        ("RAMP_JWT_SECRET", TEST_SECRET),
        ("RAMP_JWT_ISSUER", TEST_ISSUER),
        ("RAMP_STARTABLE_DEFINITIONS", startable),
        ("RAMP_LOG", "warn,ramp=info"),
        ("RAMP_CAMUNDA_TIMEOUT_MS", "2000"),
        ("RAMP_START_GRACE_MS", "3000"),
        ("RAMP_RECONCILE_INTERVAL_MS", "500"),
        ("RAMP_DELIVERY_LEASE_MS", "4000"),
        ("RAMP_DELIVERY_POLL_MS", "250"),
        ("RAMP_DATABASE_TIMEOUT_MS", "2000"),
        ("RAMP_STREAM_HEARTBEAT_SECS", "2"),
        ("RAMP_CHANGE_POLL_MS", "500"),
        ("RAMP_SHUTDOWN_GRACE_SECS", "2"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// `ramp serve` as a process of its own, on a fixed port so that it can be
/// restarted where clients expect it. Killed when dropped.
pub struct Replica {
    child: Option<Child>,
    pub addr: SocketAddr,
    env: Vec<(String, String)>,
    log: tempfile::NamedTempFile,
}

impl Replica {
    pub async fn start(env: Vec<(String, String)>) -> Self {
        let mut replica = Self {
            child: None,
            addr: format!("127.0.0.1:{}", free_port()).parse().unwrap(),
            env,
            log: tempfile::NamedTempFile::new().unwrap(),
        };
        replica.restart().await;
        replica
    }

    /// Starts it (again) and waits until it serves.
    pub async fn restart(&mut self) {
        let mut command = crate::e2e::ramp_command();
        command
            .arg("serve")
            .env("RAMP_LISTEN", self.addr.to_string())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stderr(
                std::fs::OpenOptions::new()
                    .append(true)
                    .open(self.log.path())
                    .unwrap(),
            );
        self.child = Some(command.spawn().unwrap());
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(self.addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "ramp serve never listened:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        wait_until_serving(self.addr).await;
    }

    /// SIGKILL: no shutdown, no goodbye.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().and_then(Child::id).expect("running");
        let status = std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// SIGSTOP: the process holds its connections, leases and streams, and does
    /// nothing.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            // A frozen process must be thawed to die of SIGKILL promptly.
            if let Some(pid) = child.id() {
                let _ = std::process::Command::new("kill")
                    .args(["-CONT", &pid.to_string()])
                    .status();
            }
            let _ = child.start_kill();
        }
    }
}

/// `ramp worker` for one definition, as a process of its own.
pub struct WorkerProcess {
    child: Child,
    server: String,
    engine: String,
    key: String,
}

impl WorkerProcess {
    pub fn start(server: SocketAddr, engine: &str, key: &str) -> Self {
        let server = format!("http://{server}");
        Self {
            child: spawn_worker(&server, engine, key),
            server,
            engine: engine.to_owned(),
            key: key.to_owned(),
        }
    }

    pub async fn kill(&mut self) {
        self.child.kill().await.unwrap();
    }

    pub fn restart(&mut self) {
        self.child = spawn_worker(&self.server, &self.engine, &self.key);
    }
}

fn spawn_worker(server: &str, engine: &str, key: &str) -> Child {
    // A short lock: a task held by a worker that died comes back within seconds.
    crate::e2e::worker(
        server,
        &["--definition-key", key, "--lock-ms", "3000"],
        engine,
    )
}

/// The model the load starts (`submit::LOOPING`): send task `step` → receive task
/// `wait_step` → back to `wait_step` for ever, so a second delivery of one answer
/// would complete the receive task a second time (and show in the engine's
/// history). Deployed under a key of the test's own with its Camunda Form; returns
/// the key.
pub async fn deploy_looping_model() -> String {
    let key = unique_key("rel");
    let bpmn = crate::engine::definitions(&key, &[FORM], crate::submit::LOOPING);
    let form = json!({"id": FORM, "type": "default", "components": [
        {"type": "textfield", "key": FIELD, "label": "Company", "validate": {"required": true}}
    ]});
    crate::engine::deploy_model_with_form(&camunda(), &key, bpmn, &form.to_string()).await;
    key
}

/// The checker for a test's database and model, reading the engine directly.
pub fn checker(database_url: &str, key: &str) -> Checker {
    Checker {
        engine: engine_url(),
        database_url: database_url.to_owned(),
        definition_key: key.to_owned(),
        expect_forms: true,
        stream_wait: Duration::from_secs(20),
    }
}

/// Inbox streams held for users of a test's own, each recording into the ledger
/// (resumed by cursor on another replica when one breaks); all end when dropped.
pub struct Inboxes {
    replicas: Replicas,
    ledger: Ledger,
    done: CancellationToken,
}

impl Inboxes {
    pub fn new(addrs: &[SocketAddr], ledger: &Ledger) -> Self {
        Self {
            replicas: Replicas::new(addrs),
            ledger: ledger.clone(),
            done: CancellationToken::new(),
        }
    }

    /// Opens `user`'s inbox on replica `n` (of the list) and waits for its snapshot.
    pub async fn open(&self, user: &str, n: usize) {
        let (opened_tx, opened) = tokio::sync::oneshot::channel();
        tokio::spawn(observe(
            self.replicas.clone(),
            n,
            user.to_owned(),
            self.ledger.clone(),
            self.done.clone(),
            opened_tx,
        ));
        tokio::time::timeout(Duration::from_secs(60), opened)
            .await
            .expect("the inbox opens within 60 s")
            .expect("the inbox opens");
    }
}

impl Drop for Inboxes {
    fn drop(&mut self) {
        self.done.cancel();
    }
}

/// Codes a careful client retries: the call may not have happened, or its outcome
/// is unknown and the request id makes repeating it safe.
fn passing(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::Unknown
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::Internal
    )
}

/// The longest a client waits for one call before it tries another replica.
const CALL_TIMEOUT: Duration = Duration::from_secs(6);

#[derive(Clone)]
struct Replicas {
    channels: Arc<Vec<Channel>>,
}

impl Replicas {
    fn new(addrs: &[SocketAddr]) -> Self {
        let channels = addrs
            .iter()
            .map(|a| {
                Endpoint::from_shared(format!("http://{a}"))
                    .unwrap()
                    .connect_timeout(Duration::from_secs(2))
                    .connect_lazy()
            })
            .collect();
        Self {
            channels: Arc::new(channels),
        }
    }

    /// `user`'s client on replica `n` (counted round the list).
    fn client(&self, n: usize, user: &str) -> Client {
        Client::user_on(&self.channels[n % self.channels.len()], user)
    }
}

/// Counts of what the clients went through, printed with the checker's.
#[derive(Default)]
pub struct Tally {
    pub cycles: AtomicUsize,
    pub retries: AtomicUsize,
    pub unexpected: std::sync::Mutex<Vec<String>>,
}

/// A running load; `finish_and_check` stops it, waits for every client, and checks.
pub struct Load {
    pub ledger: Ledger,
    pub tally: Arc<Tally>,
    stop: CancellationToken,
    streams_done: CancellationToken,
    clients: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// `clients` users at a time against `addrs`, starting `key`.
    pub fn start(addrs: &[SocketAddr], key: &str, clients: usize) -> Self {
        let ledger = Ledger::default();
        let tally = Arc::new(Tally::default());
        let stop = CancellationToken::new();
        let streams_done = CancellationToken::new();
        let replicas = Replicas::new(addrs);
        let clients = (0..clients)
            .map(|n| {
                tokio::spawn(client(
                    n,
                    replicas.clone(),
                    key.to_owned(),
                    ledger.clone(),
                    tally.clone(),
                    stop.clone(),
                    streams_done.clone(),
                ))
            })
            .collect();
        Self {
            ledger,
            tally,
            stop,
            streams_done,
            clients,
        }
    }

    /// Lets the load run for `time`.
    pub async fn run_for(&self, time: Duration) {
        tokio::time::sleep(time).await;
    }

    /// Waits (bounded) until at least `cycles` more cycles completed.
    pub async fn progress(&self, cycles: usize, within: Duration) {
        let target = self.tally.cycles.load(Ordering::Relaxed) + cycles;
        let deadline = Instant::now() + within;
        while self.tally.cycles.load(Ordering::Relaxed) < target {
            assert!(
                Instant::now() < deadline,
                "the load made no progress: {} cycles; clients stopped on: {:?}",
                self.tally.cycles.load(Ordering::Relaxed),
                self.tally.unexpected.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits (bounded) until `count` submissions were accepted in all.
    pub async fn submissions(&self, count: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.ledger.accepted_submissions() < count {
            assert!(
                Instant::now() < deadline,
                "only {} submissions accepted",
                self.ledger.accepted_submissions()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops starting new cycles, lets the ones in flight finish, checks, and ends
    /// the streams. Fails on anything lost or duplicated.
    pub async fn finish_and_check(self, checker: &Checker, scenario: &str) -> Report {
        self.stop.cancel();
        for client in self.clients {
            tokio::time::timeout(Duration::from_secs(180), client)
                .await
                .expect("every client finishes its cycle within 180 s")
                .expect("no client panicked");
        }
        let mut report = checker.check(&self.ledger).await;
        self.streams_done.cancel();
        let unexpected = self.tally.unexpected.lock().unwrap().clone();
        crate::report!(
            "load [{scenario}]: {} cycles, {} calls retried",
            self.tally.cycles.load(Ordering::Relaxed),
            self.tally.retries.load(Ordering::Relaxed)
        );
        report.problems.extend(unexpected);
        report.assert_nothing_lost_or_duplicated(scenario);
        report
    }
}

async fn client(
    n: usize,
    replicas: Replicas,
    key: String,
    ledger: Ledger,
    tally: Arc<Tally>,
    stop: CancellationToken,
    streams_done: CancellationToken,
) {
    let mut turn = n;
    while !stop.is_cancelled() {
        let user = format!("{}@example.com", unique_key(&format!("c{n}")));
        // The inbox first, so that it sees everything of this user.
        let (opened_tx, opened) = tokio::sync::oneshot::channel();
        tokio::spawn(observe(
            replicas.clone(),
            turn,
            user.clone(),
            ledger.clone(),
            streams_done.clone(),
            opened_tx,
        ));
        let _ = tokio::time::timeout(Duration::from_secs(60), opened).await;
        if let Err(problem) = cycle(&replicas, &mut turn, &key, &user, &ledger, &tally).await {
            tally.unexpected.lock().unwrap().push(problem);
            return;
        }
        tally.cycles.fetch_add(1, Ordering::Relaxed);
        turn += 1;
    }
}

/// Repeats `call`, as `user`, on the replicas in turn while it fails for a passing
/// reason.
async fn retrying<T, F, Fut>(
    replicas: &Replicas,
    turn: &mut usize,
    tally: &Tally,
    user: &str,
    what: &str,
    mut call: F,
) -> Result<T, tonic::Status>
where
    F: FnMut(Client) -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        let outcome =
            match tokio::time::timeout(CALL_TIMEOUT, call(replicas.client(*turn, user))).await {
                Ok(outcome) => outcome,
                Err(_) => Err(tonic::Status::deadline_exceeded("no answer in time")),
            };
        match outcome {
            Err(status) if passing(status.code()) => {
                if Instant::now() > deadline {
                    return Err(tonic::Status::new(
                        status.code(),
                        format!("{what}: still failing after 150 s: {}", status.message()),
                    ));
                }
                tally.retries.fetch_add(1, Ordering::Relaxed);
                *turn += 1;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            other => return other,
        }
    }
}

/// One user's cycle: start, wait for the form, submit. Err is a problem the checker
/// reports (an answer a careful client could not act on).
async fn cycle(
    replicas: &Replicas,
    turn: &mut usize,
    key: &str,
    user: &str,
    ledger: &Ledger,
    tally: &Tally,
) -> Result<(), String> {
    ledger.start_attempted(user);
    let mut request_id = format!("start-{user}");
    let mut attempts = 0;
    let instance = loop {
        attempts += 1;
        if attempts > 200 {
            return Err(format!("{user}: the start never settled"));
        }
        let request = StartProcessRequest {
            definition_key: key.into(),
            business_key: user.into(),
            variables: None,
            request_id: request_id.clone(),
        };
        let answer = retrying(replicas, turn, tally, user, "start", |client| {
            let request = request.clone();
            async move { client.start_with(request).await }
        })
        .await;
        let process = match answer {
            Ok(process) => process,
            Err(status) => return Err(format!("{user}: start answered {status:?}")),
        };
        match process.state() {
            ProcessState::Active => break process.engine_instance_id,
            // Its outcome is being checked: ask again (the request id returns it).
            ProcessState::Starting => tokio::time::sleep(Duration::from_millis(500)).await,
            // Reconciliation found it never started: a new attempt.
            ProcessState::Failed => {
                request_id = format!("start-{user}-{attempts}");
            }
            other => return Err(format!("{user}: the process is {other:?}")),
        }
    };
    ledger.start_accepted(user, &instance);

    // The worker makes the form.
    let deadline = Instant::now() + Duration::from_secs(150);
    let form = loop {
        let listed = retrying(replicas, turn, tally, user, "list", |client| async move {
            let first_page = ListFormTasksRequest {
                page_size: 10,
                ..Default::default()
            };
            client.forms(first_page).await
        })
        .await
        .map_err(|s| format!("{user}: list answered {s:?}"))?
        .form_tasks;
        if let Some(form) = listed
            .into_iter()
            .find(|f| f.process_instance_id == instance)
        {
            break form.id;
        }
        if Instant::now() > deadline {
            return Err(format!("{user}: no form for {instance} within 150 s"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let value = format!("value of {user}");
    let data = ramp::json::json_to_struct(json!({ FIELD: value }).as_object().unwrap());
    let submitted = retrying(replicas, turn, tally, user, "submit", |client| {
        let (form, data) = (form.clone(), data.clone());
        async move {
            client
                .submit_once(&form, data, &format!("submit-{form}"))
                .await
        }
    })
    .await
    .map_err(|s| format!("{user}: submit answered {s:?}"))?;
    ledger.submission_accepted(AcceptedSubmission {
        form_id: form,
        instance,
        submission_id: submitted.id,
        value,
    });
    Ok(())
}

/// One user's inbox, held until the test ends: every event goes into the ledger;
/// a stream that breaks or stays silent past two heartbeats is resumed with its
/// last cursor, on the next replica.
async fn observe(
    replicas: Replicas,
    mut turn: usize,
    user: String,
    ledger: Ledger,
    done: CancellationToken,
    opened: tokio::sync::oneshot::Sender<()>,
) {
    let mut cursor = String::new();
    let mut opened = Some(opened);
    let mut broken = false;
    while !done.is_cancelled() {
        if broken {
            turn += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        broken = true;
        let client = replicas.client(turn, &user);
        let replica = turn % replicas.channels.len();
        let mut stream =
            match tokio::time::timeout(CALL_TIMEOUT, client.pending_forms(&cursor)).await {
                Ok(Ok(stream)) => {
                    ledger.stream_trace(&user, format!("open on {replica} from {cursor:?}"));
                    stream
                }
                Ok(Err(status)) => {
                    ledger.stream_trace(
                        &user,
                        format!("open on {replica} from {cursor:?}: {:?}", status.code()),
                    );
                    continue;
                }
                Err(_) => {
                    ledger.stream_trace(&user, format!("open on {replica}: no answer"));
                    continue;
                }
            };
        if !cursor.is_empty() {
            ledger.stream_resumed(&user);
        }
        // A snapshot's pages, until its last (a stream that breaks drops them).
        let mut pages: Vec<String> = Vec::new();
        loop {
            let message = tokio::select! {
                _ = done.cancelled() => return,
                message = tokio::time::timeout(Duration::from_secs(5), stream.next()) => message,
            };
            let message = match message {
                Ok(Some(Ok(message))) => message,
                // Silent, ended or failed: resume.
                Ok(Some(Err(status))) => {
                    ledger.stream_trace(&user, format!("failed: {:?}", status.code()));
                    break;
                }
                Ok(None) => {
                    ledger.stream_trace(&user, "ended".into());
                    break;
                }
                Err(_) => {
                    ledger.stream_trace(&user, "silent for 5 s".into());
                    break;
                }
            };
            let what = match &message.event {
                Some(Event::Snapshot(s)) => Some(format!("snapshot of {}", s.form_tasks.len())),
                Some(Event::Added(f)) => Some(format!("added {}", f.id)),
                Some(Event::Updated(f)) => Some(format!("updated {}", f.id)),
                Some(Event::Removed(r)) => Some(format!("removed {}", r.id)),
                Some(Event::Heartbeat(_)) | None => None,
            };
            if let Some(what) = what {
                ledger.stream_trace(&user, format!("{what} at {:?}", message.cursor));
            }
            match message.event {
                Some(Event::Snapshot(snapshot)) => {
                    pages.extend(snapshot.form_tasks.iter().map(|f| f.id.clone()));
                    if snapshot.more_pages {
                        continue;
                    }
                    ledger.stream_snapshot(&user, std::mem::take(&mut pages));
                    if let Some(opened) = opened.take() {
                        let _ = opened.send(());
                    }
                }
                Some(Event::Added(form)) => ledger.stream_event(&user, "added", &form.id),
                Some(Event::Updated(form)) => ledger.stream_event(&user, "updated", &form.id),
                Some(Event::Removed(removed)) => ledger.stream_event(&user, "removed", &removed.id),
                Some(Event::Heartbeat(_)) | None => {}
            }
            if !message.cursor.is_empty() {
                cursor = message.cursor;
            }
        }
    }
}
