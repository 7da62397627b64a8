//! The whole flow with every part a separate process: the engine (the run's),
//! PostgreSQL (the run's cluster), `ramp serve` and workers. Each test deploys a
//! copy of its models under keys of its own and runs its workers for those keys
//! only, so that they never take another test's tasks.

use std::process::Stdio;
use std::time::{Duration, Instant};

use ramp::proto::pending_forms_response::Event;
use ramp::proto::*;
use serde_json::json;
use tokio::process::{Child, Command};
use tokio_stream::StreamExt;

use crate::client::{Client, WORKER, worker_token};
use crate::engine::{camunda, engine_url, rest_get, unique_key};
use crate::forms::user;
use crate::helpers::{
    TEST_ISSUER, TEST_SECRET, fresh_database, token, token_in_groups, wait_until_serving,
};

pub fn ramp_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ramp"));
    for (key, _) in std::env::vars() {
        if key.starts_with("RAMP_") {
            command.env_remove(key);
        }
    }
    command
        .env("RAMP_LOG", "warn,ramp=info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    command
}

pub struct Stack {
    _serve: Child,
    pub addr: std::net::SocketAddr,
    pub startable: String,
}

impl Stack {
    /// A client of the user `email` on this stack's server.
    pub fn as_user(&self, email: &str) -> Client {
        Client::at(self.addr, email, token(email, &[]))
    }

    pub fn server(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// `ramp serve` as its own process on a fresh database.
pub async fn serve(startable: &str) -> Stack {
    let port = crate::helpers::free_port();
    let serve = ramp_command()
        .arg("serve")
        .env("RAMP_LISTEN", format!("127.0.0.1:{port}"))
        .env("RAMP_DATABASE_URL", fresh_database().await)
        .env("RAMP_CAMUNDA_URL", engine_url())
        .env("RAMP_JWT_SECRET", TEST_SECRET)
        .env("RAMP_JWT_ISSUER", TEST_ISSUER)
        .env("RAMP_STARTABLE_DEFINITIONS", startable)
        .env("RAMP_RECONCILE_INTERVAL_MS", "500")
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    crate::helpers::wait_until_listening(addr, "ramp serve").await;
    wait_until_serving(addr).await;
    Stack {
        _serve: serve,
        addr,
        startable: startable.into(),
    }
}

/// `ramp serve` as its own process on a fresh database, with the engine at
/// `engine`, writing JSON logs filtered by `log` to a pipe (read them with
/// `stop_and_read_logs`); answers once it listens.
pub async fn serve_logging_json(engine: &str, log: &str) -> (Child, std::net::SocketAddr) {
    let port = crate::helpers::free_port();
    let serve = ramp_command()
        .arg("serve")
        .env("RAMP_LISTEN", format!("127.0.0.1:{port}"))
        .env("RAMP_DATABASE_URL", fresh_database().await)
        .env("RAMP_CAMUNDA_URL", engine)
        .env("RAMP_JWT_SECRET", TEST_SECRET)
        .env("RAMP_JWT_ISSUER", TEST_ISSUER)
        .env("RAMP_LOG_FORMAT", "json")
        .env("RAMP_LOG", log)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    crate::helpers::wait_until_listening(addr, "ramp serve").await;
    (serve, addr)
}

/// Stops `serve` (from `serve_logging_json`) with SIGTERM, within 20 s, and answers
/// what it logged: the text, and the lines that are JSON.
pub async fn stop_and_read_logs(serve: Child) -> (String, Vec<serde_json::Value>) {
    let pid = serve.id().unwrap() as i32;
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let output = tokio::time::timeout(Duration::from_secs(20), serve.wait_with_output())
        .await
        .expect("ramp serve stops")
        .unwrap();
    let logs = String::from_utf8_lossy(&output.stderr).into_owned();
    let lines = logs
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (logs, lines)
}

/// `ramp worker` as its own process.
pub fn worker(server: &str, args: &[&str], engine: &str) -> Child {
    ramp_command()
        .arg("worker")
        .args(args)
        .env("RAMP_SERVER", server)
        .env("RAMP_CAMUNDA_URL", engine)
        .env("RAMP_TOKEN", token("worker@example.com", &["ramp-worker"]))
        .env("RAMP_WORKER_LONG_POLL_MS", "1000")
        .spawn()
        .unwrap()
}

/// The demo models (`processes/`) deployed under keys of the test's own: VOE and
/// VOE_RISK become `<VOE>` and `<VOE>_RISK`, and the candidate group of its user
/// task, "reviewers", becomes `demo_reviewers(<VOE>)`. Returns the root key.
pub async fn deploy_demo_copy() -> String {
    let root = unique_key("VOE");
    let child = format!("{root}_RISK");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("processes");
    let mut resources = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.ends_with(".bpmn") || name.ends_with(".form")) {
            continue;
        }
        let mut text = std::fs::read_to_string(&path).unwrap();
        if name.ends_with(".bpmn") {
            text = text
                .replace(r#"id="VOE_RISK""#, &format!(r#"id="{child}""#))
                .replace(
                    r#"calledElement="VOE_RISK""#,
                    &format!(r#"calledElement="{child}""#),
                )
                .replace(r#"id="VOE""#, &format!(r#"id="{root}""#))
                .replace(
                    r#"camunda:candidateGroups="reviewers""#,
                    &format!(r#"camunda:candidateGroups="{}""#, demo_reviewers(&root)),
                );
        }
        resources.push((name, text.into_bytes()));
    }
    camunda()
        .deploy(&root, resources, false, None)
        .await
        .unwrap();
    root
}

/// The candidate group of the user task in a copy of the demo deployed by
/// `deploy_demo_copy` under the root key `root`.
pub fn demo_reviewers(root: &str) -> String {
    format!("{root}_reviewers")
}

async fn next_event(stream: &mut tonic::Streaming<PendingFormsResponse>) -> Event {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(20), stream.next())
            .await
            .expect("an event within 20 s")
            .unwrap()
            .unwrap();
        match message.event.unwrap() {
            Event::Heartbeat(_) => continue,
            event => return event,
        }
    }
}

/// Waits for the next form added to `user`'s inbox and returns it.
async fn next_form(stream: &mut tonic::Streaming<PendingFormsResponse>) -> FormTaskSummary {
    loop {
        match next_event(stream).await {
            Event::Added(form) => return form,
            Event::Snapshot(snapshot) if !snapshot.form_tasks.is_empty() => {
                return snapshot.form_tasks[0].clone();
            }
            _ => continue,
        }
    }
}

async fn inbox(stack: &Stack, user: &str) -> tonic::Streaming<PendingFormsResponse> {
    stack.as_user(user).pending_forms("").await.unwrap()
}

async fn submit(stack: &Stack, user: &str, form: &str, data: serde_json::Value) {
    let data = ramp::json::json_to_struct(data.as_object().unwrap());
    stack
        .as_user(user)
        .submit_once(form, data, &format!("submit-{form}"))
        .await
        .unwrap_or_else(|s| panic!("submitting {form}: {s:?}"));
}

/// The demo from StartProcess to its end, through every form.
pub async fn run_the_demo(stack: &Stack) {
    let ann = user();
    let reviewer = user();
    let mut ann_inbox = inbox(stack, &ann).await;
    next_event(&mut ann_inbox).await; // the (empty) snapshot
    let mut reviewer_inbox = inbox(stack, &reviewer).await;
    next_event(&mut reviewer_inbox).await;

    let as_ann = stack.as_user(&ann);
    let process = as_ann.start(&stack.startable).await.unwrap();

    let company = next_form(&mut ann_inbox).await;
    assert_eq!(company.form_name, "company_details");
    submit(
        stack,
        &ann,
        &company.id,
        json!({
            "companyName": "Acme Components", "country": "DE", "vatNumber": "DE123456789",
            "contactEmail": "contact@acme.example", "annualSpend": 250000, "supplierType": "critical",
            "criticalityReason": "Sole supplier of the main controller board.", "handlesPersonalData": false,
            "acceptsCodeOfConduct": true, "reviewerEmail": reviewer
        }),
    )
    .await;

    // Inside the called process, still the starter's.
    let risk = next_form(&mut ann_inbox).await;
    assert_eq!(risk.form_name, "risk_assessment");
    assert_ne!(
        risk.process_instance_id, process.engine_instance_id,
        "a form of the called process"
    );
    assert_eq!(
        risk.root_process_instance_id, process.engine_instance_id,
        "belongs to the root"
    );
    submit(
        stack,
        &ann,
        &risk.id,
        json!({"dataAccess": "internal", "hasIsoCertification": false, "hasContinuityPlan": true, "riskScore": 2,
               "mitigation": "Second source qualified by the end of the year."}),
    )
    .await;

    // Assigned to the reviewer by the model's input mapping.
    let review = next_form(&mut reviewer_inbox).await;
    assert_eq!(review.form_name, "qualify_supplier");
    // The model's `ramp.context` names what the reviewer sees the form is about.
    assert_eq!(review.context, "Acme Components, DE", "{review:?}");
    assert_eq!(review.assignee, reviewer);
    submit(
        stack,
        &reviewer,
        &review.id,
        json!({"qualificationLevel": "A", "paymentTermsDays": 30, "decision": "approve"}),
    )
    .await;

    // Approved: the engine's own user task reaches the reviewers' group as a group
    // task; a member claims it and fills its Camunda Form.
    let group = demo_reviewers(&stack.startable);
    let onboarder = user();
    let as_onboarder = Client::at(
        stack.addr,
        &onboarder,
        token_in_groups(&onboarder, &[&group]),
    );
    let mut onboarder_inbox = as_onboarder.pending_forms("").await.unwrap();
    let onboarding = next_form(&mut onboarder_inbox).await;
    assert_eq!(onboarding.kind(), FormTaskKind::UserTask);
    assert_eq!(onboarding.form_name, "onboard_supplier");
    assert_eq!(onboarding.title, "Onboard supplier");
    assert_eq!(onboarding.assignee, "", "nobody holds it yet");
    assert_eq!(onboarding.candidate_groups, std::slice::from_ref(&group));
    assert_eq!(onboarding.priority, 60);
    assert!(onboarding.due_time.is_some(), "{onboarding:?}");
    assert_eq!(onboarding.process_instance_id, process.engine_instance_id);
    let claimed = as_onboarder.claim(&onboarding.id).await.unwrap();
    assert_eq!(claimed.summary.unwrap().assignee, onboarder);
    let schema = claimed
        .schema
        .expect("the form the engine resolved (formRef, latest)");
    assert_eq!(
        schema.fields["id"].kind,
        Some(prost_types::value::Kind::StringValue(
            "onboard_supplier".into()
        ))
    );
    submit(
        stack,
        &onboarder,
        &onboarding.id,
        json!({"supplierNumber": "S-104233", "bankDetailsVerified": true}),
    )
    .await;

    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let state = as_ann.process(&process.id).await.unwrap().state();
        if state == ProcessState::Completed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the process did not complete ({state:?})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let done: Vec<serde_json::Value> = rest_get(&format!(
        "/history/task?processInstanceId={}&taskDefinitionKey=onboard_supplier",
        process.engine_instance_id
    ))
    .await;
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(done[0]["assignee"], onboarder.as_str());
    assert_eq!(done[0]["deleteReason"], "completed");
}

#[tokio::test]
async fn the_demo_runs_end_to_end_with_ramp_worker() {
    let root = deploy_demo_copy().await;
    let stack = serve(&root).await;
    let keys = format!("{root},{root}_RISK");
    let _worker = worker(&stack.server(), &["--definition-key", &keys], &engine_url());
    run_the_demo(&stack).await;
}

mod worker {
    use super::*;
    use crate::engine::deploy_model;
    use crate::http_fault::{Fault, HttpFaultProxy};

    /// A model with one send task on `topic`, started `count` times for `user` with
    /// `variables`. Returns (key, instance ids).
    async fn started(
        topic: &str,
        count: usize,
        user: &str,
        variables: serde_json::Value,
    ) -> (String, Vec<String>) {
        let key = unique_key("work");
        let model = crate::engine::form_process(&key, "step").replace(
            "camunda:topic=\"submit_form\"",
            &format!("camunda:topic=\"{topic}\""),
        );
        deploy_model(&camunda(), &key, model).await;
        let mut instances = Vec::new();
        for _ in 0..count {
            let typed = ramp::camunda::typed(variables.as_object().unwrap());
            instances.push(
                camunda()
                    .start_process(&key, user, &typed)
                    .await
                    .unwrap()
                    .id,
            );
        }
        (key, instances)
    }

    async fn forms_of(stack: &Stack, key_user: &str) -> Vec<FormTaskSummary> {
        let request = ListFormTasksRequest {
            page_size: 500,
            ..Default::default()
        };
        stack
            .as_user(key_user)
            .forms(request)
            .await
            .unwrap()
            .form_tasks
    }

    async fn eventually<F, Fut>(what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !check().await {
            assert!(
                Instant::now() < deadline,
                "{what} did not happen within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn external_tasks(instance: &str) -> Vec<serde_json::Value> {
        rest_get(&format!("/external-task?processInstanceId={instance}")).await
    }

    async fn incidents(instance: &str) -> usize {
        let found: Vec<serde_json::Value> =
            rest_get(&format!("/incident?processInstanceId={instance}")).await;
        found.len()
    }

    #[tokio::test]
    async fn a_topic_with_an_assignee_path_assigns_the_form_to_that_person() {
        let stack = serve("none").await;
        let starter = user();
        let owner = user();
        let (key, _) = started(
            "risk_assessment_for_company_users",
            1,
            &starter,
            json!({"supplier": {"companyOwner": owner, "name": "Acme"}}),
        )
        .await;
        let _worker = worker(
            &stack.server(),
            &[
                "--topic",
                "risk_assessment_for_company_users:assignee=supplier.companyOwner",
                "--definition-key",
                &key,
            ],
            &engine_url(),
        );
        eventually("the owner's form", || async {
            forms_of(&stack, &owner).await.len() == 1
        })
        .await;
        assert!(forms_of(&stack, &starter).await.is_empty());
    }

    #[tokio::test]
    async fn a_worker_killed_before_completing_leaves_one_form_after_another_takes_over() {
        let stack = serve("none").await;
        let ann = user();
        let (key, instances) = started("submit_form", 1, &ann, json!({})).await;
        // The first worker's completion never comes back: it dies holding the task.
        let proxy = HttpFaultProxy::start(&engine_url(), Fault::HangBefore("/complete")).await;
        let mut first = worker(
            &stack.server(),
            &["--definition-key", &key, "--lock-ms", "2000"],
            &proxy.url(),
        );
        eventually("the form", || async {
            forms_of(&stack, &ann).await.len() == 1
        })
        .await;
        first.kill().await.unwrap();

        let _second = worker(&stack.server(), &["--definition-key", &key], &engine_url());
        eventually("the send task completed", || async {
            external_tasks(&instances[0]).await.is_empty()
        })
        .await;
        assert_eq!(
            forms_of(&stack, &ann).await.len(),
            1,
            "still exactly one form"
        );
    }

    #[tokio::test]
    async fn two_workers_on_one_topic_make_one_form_per_task() {
        let stack = serve("none").await;
        let ann = user();
        let (key, _) = started("submit_form", 10, &ann, json!({})).await;
        let _a = worker(&stack.server(), &["--definition-key", &key], &engine_url());
        let _b = worker(&stack.server(), &["--definition-key", &key], &engine_url());
        eventually("ten forms", || async {
            forms_of(&stack, &ann).await.len() >= 10
        })
        .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(forms_of(&stack, &ann).await.len(), 10);
    }

    #[tokio::test]
    async fn a_server_that_stays_down_ends_in_an_incident_after_the_retries() {
        let closed = crate::helpers::closed_addr();
        let ann = user();
        let (key, instances) = started("submit_form", 1, &ann, json!({})).await;
        let _worker = worker(
            &format!("http://{closed}"),
            &[
                "--definition-key",
                &key,
                "--retries",
                "2",
                "--retry-timeout-ms",
                "200",
            ],
            &engine_url(),
        );
        // First a failure with retries left, then none and an incident.
        eventually("a failure with retries", || async {
            external_tasks(&instances[0])
                .await
                .first()
                .is_some_and(|t| t["retries"] == json!(1))
        })
        .await;
        eventually("an incident", || async {
            incidents(&instances[0]).await == 1
        })
        .await;
        let task = &external_tasks(&instances[0]).await[0];
        assert_eq!(task["retries"], json!(0));
        assert!(
            task["errorMessage"]
                .as_str()
                .unwrap()
                .contains("could not create the form")
        );
    }

    #[tokio::test]
    async fn an_unresolvable_assignee_is_an_incident_at_once() {
        let stack = serve("none").await;
        let ann = user();
        let (key, instances) = started("submit_form", 1, &ann, json!({})).await;
        let _worker = worker(
            &stack.server(),
            &[
                "--definition-key",
                &key,
                "--topic",
                "submit_form:assignee=nosuch.path",
            ],
            &engine_url(),
        );
        eventually("an incident", || async {
            incidents(&instances[0]).await == 1
        })
        .await;
        assert!(forms_of(&stack, &ann).await.is_empty());
    }

    /// The form an earlier attempt made for `instance`'s send task, for `assignee`,
    /// before it lost the task (a worker that died before completing it, say).
    async fn made_earlier(
        stack: &Stack,
        instance: &str,
        business_key: &str,
        assignee: &str,
    ) -> String {
        let task = external_tasks(instance).await.remove(0);
        let earlier = Client::at(stack.addr, WORKER, worker_token())
            .create_form_task(CreateFormTaskRequest {
                external_task_id: task["id"].as_str().unwrap().into(),
                process_instance_id: instance.into(),
                business_key: business_key.into(),
                activity_id: "step".into(),
                assignee: assignee.into(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(earlier.created);
        earlier.form_task.unwrap().summary.unwrap().id
    }

    /// Issue 19, finding 11: the process's assignee was corrected after an earlier
    /// attempt made the form; the worker's repeat moves the pending form to the
    /// corrected person. Before the fix the worker took `created=false` for done and
    /// completed the task with the form still Ann's (seen failing).
    #[tokio::test]
    async fn a_task_fetched_again_with_a_corrected_assignee_moves_its_form_to_them() {
        let stack = serve("none").await;
        let ann = user();
        let bob = user();
        let (key, instances) = started("submit_form", 1, &ann, json!({"assignedTo": bob})).await;
        let form = made_earlier(&stack, &instances[0], &ann, &ann).await;

        let _worker = worker(&stack.server(), &["--definition-key", &key], &engine_url());
        eventually("the send task completed", || async {
            external_tasks(&instances[0]).await.is_empty()
        })
        .await;
        let bobs: Vec<String> = forms_of(&stack, &bob)
            .await
            .into_iter()
            .map(|f| f.id)
            .collect();
        assert_eq!(bobs, [form], "the corrected assignee did not get the form");
        assert!(forms_of(&stack, &ann).await.is_empty());
    }

    /// Issue 19, finding 11: the form was answered by the first assignee before the
    /// correction reached it; ramp refuses the repeat, and the worker makes an
    /// incident that says why instead of completing the task. Before the fix the
    /// worker completed the task as if nothing differed (seen failing: no incident).
    #[tokio::test]
    async fn a_task_whose_form_was_answered_by_another_assignee_becomes_an_incident_saying_why() {
        let stack = serve("none").await;
        let ann = user();
        let bob = user();
        // The model with a form of its own, so that the answer is checked against it
        // (not against the newest `step` form another test deployed).
        let key = unique_key("work");
        let form = json!({"id": "step", "type": "default", "components": [
            {"type": "textfield", "key": "answer", "label": "Answer"}
        ]});
        camunda()
            .deploy(
                &key,
                vec![
                    (
                        format!("{key}.bpmn"),
                        crate::engine::form_process(&key, "step").into_bytes(),
                    ),
                    ("step.form".into(), form.to_string().into_bytes()),
                ],
                false,
                None,
            )
            .await
            .unwrap();
        let variables = ramp::camunda::typed(json!({"assignedTo": bob}).as_object().unwrap());
        let instance = camunda()
            .start_process(&key, &ann, &variables)
            .await
            .unwrap()
            .id;
        let form = made_earlier(&stack, &instance, &ann, &ann).await;
        submit(&stack, &ann, &form, json!({"answer": "Ann's"})).await;

        let _worker = worker(&stack.server(), &["--definition-key", &key], &engine_url());
        eventually("an incident", || async { incidents(&instance).await == 1 }).await;
        let task = &external_tasks(&instance).await[0];
        assert_eq!(task["retries"], json!(0));
        let message = task["errorMessage"].as_str().unwrap();
        assert!(
            message.starts_with("ramp could not create the form: a form task for this external task exists with other data: ")
                && message.contains(&format!("assignee is {ann:?} there but {bob:?} here"))
                && message.contains("the form is completed"),
            "{message}"
        );
        let anns = forms_of(&stack, &ann).await;
        assert_eq!(anns.len(), 1);
        assert_eq!(anns[0].status(), FormTaskStatus::Completed);
        assert!(forms_of(&stack, &bob).await.is_empty());
    }

    #[tokio::test]
    async fn sigterm_gives_back_the_tasks_a_worker_holds() {
        let closed = crate::helpers::closed_addr();
        let ann = user();
        let (key, instances) = started("submit_form", 2, &ann, json!({})).await;
        // The server is down, so the worker holds its tasks while it retries.
        let mut held = worker(
            &format!("http://{closed}"),
            &["--definition-key", &key, "--lock-ms", "600000"],
            &engine_url(),
        );
        eventually("both tasks locked", || async {
            let mut locked = 0;
            for instance in &instances {
                locked += external_tasks(instance)
                    .await
                    .iter()
                    .filter(|t| !t["lockExpirationTime"].is_null())
                    .count();
            }
            locked == 2
        })
        .await;
        let pid = held.id().unwrap().to_string();
        assert!(
            std::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let exited = tokio::time::timeout(Duration::from_secs(10), held.wait())
            .await
            .expect("the worker exits within 10 s");
        assert!(exited.unwrap().success());
        for instance in &instances {
            let task = &external_tasks(instance).await[0];
            assert!(task["lockExpirationTime"].is_null(), "left locked: {task}");
        }
    }
}

/// The Python worker (`examples/python-worker`) on the same contract.
#[tokio::test]
async fn the_demo_runs_end_to_end_with_the_python_worker() {
    let root = deploy_demo_copy().await;
    let stack = serve(&root).await;
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/python-worker/run.sh");
    let _worker = Command::new("bash")
        .arg(script)
        .args([
            "--definition-key",
            &root,
            "--definition-key",
            &format!("{root}_RISK"),
            "--long-poll-ms",
            "1000",
        ])
        .env("RAMP_SERVER", stack.server())
        .env("RAMP_CAMUNDA_URL", engine_url())
        .env("RAMP_TOKEN", token("worker@example.com", &["ramp-worker"]))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the Python worker starts (make test installs its venv)");
    run_the_demo(&stack).await;
}
