//! Notifications against real receivers: Mailpit (a real SMTP server, installed by
//! `scripts/install.sh`, run by each test on free ports, read through its HTTP API)
//! and a small HTTP server of the test's own for the webhook.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

use crate::client::Client;
use crate::e2e::ramp_command;
use crate::engine::{engine_url, unique_key};
use crate::forms::{created_id, instance_with_form, new_task, user, worker};
use crate::helpers::{
    TEST_ISSUER, TEST_SECRET, TestApp, channel, free_port, fresh_database, scalar, spawn_app_on,
    spawn_app_with, wait_until_serving,
};

const FROM: &str = "ramp <forms@example.com>";
const PUBLIC_URL: &str = "https://forms.example.com/app";
const WEBHOOK_SECRET: &str = "a-webhook-secret-of-at-least-32-characters";

/// Mailpit on free ports, stopped when dropped.
struct Mailpit {
    _process: Child,
    smtp: SocketAddr,
    api: String,
    http: reqwest::Client,
}

impl Mailpit {
    async fn start() -> Self {
        let program = std::env::var("MAILPIT").unwrap_or_else(|_| "mailpit".into());
        let smtp: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let web: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let process = Command::new(&program)
            .args([
                "--smtp",
                &smtp.to_string(),
                "--listen",
                &web.to_string(),
                "--disable-version-check",
                "--quiet",
            ])
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("mailpit could not run ({e}); scripts/install.sh installs it")
            });
        let mailpit = Self {
            _process: process,
            smtp,
            api: format!("http://{web}/api/v1"),
            http: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let up = mailpit
                .http
                .get(format!("{}/messages", mailpit.api))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if up && TcpStream::connect(smtp).await.is_ok() {
                return mailpit;
            }
            assert!(Instant::now() < deadline, "mailpit never answered");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn smtp_url(&self) -> String {
        format!("smtp://{}", self.smtp)
    }

    /// What Mailpit's API answers at `path`.
    async fn get(&self, path: &str) -> Value {
        let answer = self.http.get(format!("{}{path}", self.api)).send().await;
        answer.unwrap().json().await.unwrap()
    }

    /// The messages that arrived for `to`, oldest first, each with its text.
    async fn messages_to(&self, to: &str) -> Vec<Value> {
        let list = self.get("/messages?limit=500").await;
        let mut found = Vec::new();
        for message in list["messages"].as_array().unwrap().iter().rev() {
            let addressed = message["To"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["Address"].as_str() == Some(to));
            if addressed {
                let id = message["ID"].as_str().unwrap();
                found.push(self.get(&format!("/message/{id}")).await);
            }
        }
        found
    }

    /// Waits until `count` messages arrived for `to` (at most `within`).
    async fn wait_for(&self, to: &str, count: usize, within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        loop {
            let messages = self.messages_to(to).await;
            if messages.len() >= count {
                return messages;
            }
            assert!(
                Instant::now() < deadline,
                "{count} mail(s) to {to} never arrived (saw {})",
                messages.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The links to forms in a mail's text.
fn links(message: &Value) -> Vec<String> {
    message["Text"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .filter(|word| word.starts_with(PUBLIC_URL))
        .map(str::to_owned)
        .collect()
}

fn link_to(form: &str) -> String {
    format!("{PUBLIC_URL}/forms/{form}")
}

fn mail_settings(mailpit: &Mailpit, extra: Value) -> Value {
    let mut settings = json!({
        "smtp_url": mailpit.smtp_url(),
        "smtp_from": FROM,
        "public_url": PUBLIC_URL,
        "notify_gather_ms": 500,
        "notify_poll_ms": 100,
        "notify_lease_ms": 6000,
    });
    settings
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    settings
}

async fn new_form(app: &TestApp, instance: &str, assignee: &str) -> String {
    created_id(app, new_task(&unique_key("ext"), instance, assignee)).await
}

#[tokio::test]
async fn a_new_form_mails_its_assignee_once_with_a_link_to_the_form_page() {
    // The link's path is the web UI's route for a form.
    let routes = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web/src/app/app.routes.ts"),
    )
    .unwrap();
    assert!(
        routes.contains("path: 'forms/:id'"),
        "the web UI's form route is forms/:id"
    );

    let mailpit = Mailpit::start().await;
    let app = spawn_app_with(mail_settings(&mailpit, json!({}))).await;
    let ann = user();
    let (instance, _) = instance_with_form(&ann).await;
    let form = new_form(&app, &instance, &ann).await;

    let mails = mailpit.wait_for(&ann, 1, Duration::from_secs(20)).await;
    let mail = &mails[0];
    assert_eq!(mail["From"]["Address"], "forms@example.com");
    assert!(
        mail["Subject"]
            .as_str()
            .unwrap()
            .starts_with("A form waits for you: "),
        "{}",
        mail["Subject"]
    );
    assert_eq!(links(mail), [link_to(&form)]);
    assert!(
        mail["MessageID"]
            .as_str()
            .is_some_and(|id| id.ends_with("@forms.example.com")),
        "{}",
        mail["MessageID"]
    );

    // Given to someone else: they hear of it, saying so; the first hears nothing more.
    let bob = user();
    app.as_admin().reassign(&form, &bob).await.unwrap();
    let mails = mailpit.wait_for(&bob, 1, Duration::from_secs(20)).await;
    assert_eq!(links(&mails[0]), [link_to(&form)]);
    assert!(mails[0]["Text"].as_str().unwrap().contains("given to you"));

    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        mailpit.messages_to(&ann).await.len(),
        1,
        "one mail per form"
    );
    assert_eq!(mailpit.messages_to(&bob).await.len(), 1);
}

/// Most deployments send no notifications: then none is stored for a new form (a
/// third of a create's cost in the database). Once a replica with mail joins, the
/// forms that arrive from then on are notified, whichever replica stores them.
#[tokio::test]
async fn notifications_are_stored_only_once_a_replica_sends_them() {
    let database = fresh_database().await;
    let quiet = spawn_app_on(&database, json!({})).await;
    let ann = user();
    let (instance, _) = instance_with_form(&ann).await;
    new_form(&quiet, &instance, &ann).await;
    let db = quiet.db().await;
    let stored: i64 = scalar(&db, "SELECT count(*) FROM notifications", &[]).await;
    assert_eq!(stored, 0, "no replica sends notifications: none is stored");

    let mailpit = Mailpit::start().await;
    let _mailing = spawn_app_on(&database, mail_settings(&mailpit, json!({}))).await;
    let bob = user();
    let (instance, _) = instance_with_form(&bob).await;
    let form = new_form(&quiet, &instance, &bob).await;
    let mails = mailpit.wait_for(&bob, 1, Duration::from_secs(20)).await;
    assert_eq!(links(&mails[0]), [link_to(&form)]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        mailpit.messages_to(&ann).await.is_empty(),
        "a form that arrived before any replica sent mail is not mailed"
    );
}

#[tokio::test]
async fn forms_that_arrive_together_go_in_one_mail_and_the_next_waits_for_the_interval() {
    let mailpit = Mailpit::start().await;
    let interval = Duration::from_secs(4);
    let app = spawn_app_with(mail_settings(
        &mailpit,
        json!({"notify_interval_ms": interval.as_millis() as u64}),
    ))
    .await;
    let ann = user();
    let (instance, _) = instance_with_form(&ann).await;
    let mut forms = Vec::new();
    for _ in 0..3 {
        forms.push(new_form(&app, &instance, &ann).await);
    }
    let mails = mailpit.wait_for(&ann, 1, Duration::from_secs(20)).await;
    let first_at = Instant::now();
    assert_eq!(mails[0]["Subject"], "3 forms wait for you");
    let mut linked = links(&mails[0]);
    linked.sort();
    let mut expected: Vec<_> = forms.iter().map(|f| link_to(f)).collect();
    expected.sort();
    assert_eq!(linked, expected);

    // One more within the interval: it waits for the interval, then comes alone.
    let fourth = new_form(&app, &instance, &ann).await;
    let mails = mailpit.wait_for(&ann, 2, Duration::from_secs(20)).await;
    assert!(
        first_at.elapsed() >= interval - Duration::from_millis(500),
        "the second mail came {:?} after the first",
        first_at.elapsed()
    );
    assert_eq!(links(&mails[1]), [link_to(&fourth)]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(mailpit.messages_to(&ann).await.len(), 2);
}

/// A proxy in front of the SMTP server that passes the conversation until the
/// client's `DATA` and holds everything after it: the mail is being sent and never
/// accepted. `held` turns true when a body is held.
async fn data_holding_proxy(upstream: SocketAddr) -> (SocketAddr, Arc<Mutex<bool>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let held = Arc::new(Mutex::new(false));
    let flag = held.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let flag = flag.clone();
            tokio::spawn(async move {
                let server = TcpStream::connect(upstream).await.unwrap();
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                });
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                let mut holding = false;
                loop {
                    let n = match client_read.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if holding {
                        *flag.lock().unwrap() = true;
                        continue;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    if server_write.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                    let text = String::from_utf8_lossy(&seen);
                    if text.starts_with("DATA\r\n") || text.contains("\r\nDATA\r\n") {
                        holding = true;
                    }
                }
            });
        }
    });
    (addr, held)
}

/// `ramp serve` as its own process on `database`, mailing through `smtp`.
async fn serve_mailing(database: &str, smtp: &str) -> (Child, SocketAddr) {
    let port = free_port();
    let child = ramp_command()
        .arg("serve")
        .env("RAMP_LISTEN", format!("127.0.0.1:{port}"))
        .env("RAMP_DATABASE_URL", database)
        .env("RAMP_CAMUNDA_URL", engine_url())
        .env("RAMP_JWT_SECRET", TEST_SECRET)
        .env("RAMP_JWT_ISSUER", TEST_ISSUER)
        .env("RAMP_SMTP_URL", smtp)
        .env("RAMP_SMTP_FROM", FROM)
        .env("RAMP_PUBLIC_URL", PUBLIC_URL)
        .env("RAMP_NOTIFY_GATHER_MS", "200")
        .env("RAMP_NOTIFY_POLL_MS", "100")
        .env("RAMP_NOTIFY_LEASE_MS", "6000")
        .spawn()
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "ramp serve never listened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_until_serving(addr).await;
    (child, addr)
}

/// The state and attempts of the notification send of `assignee`.
async fn send_of(db: &tokio_postgres::Client, assignee: &str) -> (String, i32) {
    let row = db
        .query_one(
            "SELECT state, attempts FROM notification_sends WHERE assignee = $1",
            &[&assignee],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn a_serve_killed_while_sending_a_mail_leaves_it_to_be_sent_once_after_restart() {
    let mailpit = Mailpit::start().await;
    let (proxy, held) = data_holding_proxy(mailpit.smtp).await;
    let database = fresh_database().await;
    let (mut first, addr) = serve_mailing(&database, &format!("smtp://{proxy}")).await;

    let ann = user();
    let (instance, _) = instance_with_form(&ann).await;
    let form = Client::worker_on(&channel(addr).await)
        .create_form(new_task(&unique_key("ext"), &instance, &ann))
        .await
        .unwrap();

    // The mail's body is on its way (claimed, DATA sent, held): kill the server.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !*held.lock().unwrap() {
        assert!(Instant::now() < deadline, "the mail was never being sent");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.start_kill().unwrap(); // SIGKILL
    first.wait().await.unwrap();
    let client = crate::helpers::connect(&database).await;
    assert_eq!(
        send_of(&client, &ann).await.0,
        "sending",
        "claimed, not marked"
    );
    assert!(
        mailpit.messages_to(&ann).await.is_empty(),
        "the held mail never reached the server"
    );

    // Restarted (straight to the SMTP server): once the lease runs out, it is sent.
    let (_second, _) = serve_mailing(&database, &mailpit.smtp_url()).await;
    let mails = mailpit.wait_for(&ann, 1, Duration::from_secs(30)).await;
    assert_eq!(links(&mails[0]), [link_to(&form)]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(mailpit.messages_to(&ann).await.len(), 1, "sent once");
    assert_eq!(send_of(&client, &ann).await, ("sent".to_owned(), 2));
}

/// One webhook call: its headers and body.
type Call = (axum::http::HeaderMap, Vec<u8>);

#[derive(Clone, Default)]
struct Received {
    calls: Arc<Mutex<Vec<Call>>>,
}

/// An HTTP receiver that answers 503 to the first call and 200 after.
async fn webhook_receiver() -> (String, Received) {
    let received = Received::default();
    let calls = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let calls = calls.clone();
                async move {
                    let mut calls = calls.calls.lock().unwrap();
                    calls.push((headers, body.to_vec()));
                    if calls.len() == 1 {
                        axum::http::StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        axum::http::StatusCode::OK
                    }
                }
            },
        ),
    );
    let (addr, _) = crate::helpers::serve(app).await;
    (format!("http://{addr}/hook"), received)
}

#[tokio::test]
async fn the_webhook_gets_the_same_events_signed_and_is_retried_under_one_delivery_id() {
    let (url, received) = webhook_receiver().await;
    let app = spawn_app_with(json!({
        "public_url": PUBLIC_URL,
        "notify_webhook_url": url,
        "notify_webhook_secret": WEBHOOK_SECRET,
        "notify_gather_ms": 300,
        "notify_poll_ms": 100,
        "notify_lease_ms": 6000,
    }))
    .await;
    let ann = user();
    let (instance, _) = instance_with_form(&ann).await;
    let form = new_form(&app, &instance, &ann).await;

    let deadline = Instant::now() + Duration::from_secs(30);
    while received.calls.lock().unwrap().len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the webhook was not called again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let calls = received.calls.lock().unwrap().clone();
    for (headers, body) in &calls {
        let mut mac = Hmac::<Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
        mac.update(body);
        let expected: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            headers["x-ramp-signature"].to_str().unwrap(),
            format!("sha256={expected}")
        );
    }
    assert_eq!(
        calls[0].0["x-ramp-delivery"], calls[1].0["x-ramp-delivery"],
        "a retried call names the same delivery"
    );
    let body: Value = serde_json::from_slice(&calls[1].1).unwrap();
    assert_eq!(body["assignee"], ann.as_str());
    assert_eq!(body["forms"][0]["id"], form.as_str());
    assert_eq!(body["forms"][0]["event"], "created");
    assert_eq!(body["forms"][0]["link"], link_to(&form));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        received.calls.lock().unwrap().len(),
        2,
        "sent once it was taken"
    );
}

/// A review on a form, then a gateway on `approved`, which the reviewer may leave
/// out: the engine then refuses the answer, and the form comes back.
fn review_model(key: &str) -> String {
    crate::engine::definitions(
        key,
        &["review"],
        &format!(
            r#"
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="review"/>
    <bpmn:sendTask id="review" name="Review the request" camunda:type="external" camunda:topic="{key}"/>
    <bpmn:sequenceFlow id="f2" sourceRef="review" targetRef="wait_review"/>
    <bpmn:receiveTask id="wait_review" messageRef="msg_review"/>
    <bpmn:sequenceFlow id="f3" sourceRef="wait_review" targetRef="decide"/>
    <bpmn:exclusiveGateway id="decide"/>
    <bpmn:sequenceFlow id="yes" sourceRef="decide" targetRef="end"><bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">${{approved == true}}</bpmn:conditionExpression></bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="no" sourceRef="decide" targetRef="end"><bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">${{approved == false}}</bpmn:conditionExpression></bpmn:sequenceFlow>
    <bpmn:endEvent id="end"/>"#
        ),
    )
}

#[tokio::test]
async fn a_form_returned_to_its_author_mails_them_with_the_reason() {
    let mailpit = Mailpit::start().await;
    let app = spawn_app_with(mail_settings(
        &mailpit,
        json!({"notify_interval_ms": 1000, "delivery_poll_ms": 100}),
    ))
    .await;
    let key = unique_key("notify_review");
    crate::engine::camunda()
        .deploy(
            &key,
            vec![(format!("{key}.bpmn"), review_model(&key).into_bytes())],
            false,
            None,
        )
        .await
        .unwrap();
    let ann = user();
    crate::engine::camunda()
        .start_process(&key, &ann, &Default::default())
        .await
        .unwrap();
    let _worker = ramp_command()
        .arg("worker")
        .args(["--definition-key", &key])
        .env("RAMP_SERVER", app.url())
        .env("RAMP_CAMUNDA_URL", engine_url())
        .env("RAMP_TOKEN", worker())
        // A topic of the test's own: no other worker on the shared engine takes it.
        .env("RAMP_WORKER_TOPICS", &key)
        .env("RAMP_WORKER_LONG_POLL_MS", "1000")
        .spawn()
        .unwrap();

    let mails = mailpit.wait_for(&ann, 1, Duration::from_secs(30)).await;
    let form = links(&mails[0])[0].rsplit('/').next().unwrap().to_owned();
    // `approved` left out: the engine refuses the answer, and the form comes back.
    let answer = json!({"comment": "fine"});
    app.as_user(&ann)
        .submit_once(
            &form,
            ramp::json::json_to_struct(answer.as_object().unwrap()),
            &uuid::Uuid::now_v7().to_string(),
        )
        .await
        .unwrap();
    let mails = mailpit.wait_for(&ann, 2, Duration::from_secs(30)).await;
    assert!(
        mails[1]["Subject"]
            .as_str()
            .unwrap()
            .starts_with("Returned to you: "),
        "{}",
        mails[1]["Subject"]
    );
    let text = mails[1]["Text"].as_str().unwrap();
    assert!(
        text.contains("returned to you: the process could not use this answer"),
        "{text}"
    );
    assert_eq!(links(&mails[1]), [link_to(&form)]);
}
