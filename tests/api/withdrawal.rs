//! Forms that can no longer be answered leave the inbox.

use std::time::{Duration, Instant};

use ramp::camunda::types::{ExternalTask, FetchTopic};
use ramp::proto::pending_forms_response::Event;
use ramp::proto::*;

use crate::engine::{camunda, definitions, executions_waiting, rest_get, rest_send, unique_key};
use crate::forms::{created_id, next, open, user};
use crate::helpers::{TestApp, spawn_app, spawn_app_with};

fn send_receive(form: &str) -> String {
    format!(
        r#"<bpmn:sendTask id="{form}" camunda:type="external" camunda:topic="submit_form"/>
    <bpmn:receiveTask id="wait_{form}" messageRef="msg_{form}"/>"#
    )
}

pub async fn deploy(key: &str, xml: String) {
    crate::engine::deploy_model(&camunda(), key, xml).await;
}

/// Deploys the process `key` with `body` and the messages it names (see
/// `definitions`).
async fn deploy_definitions(key: &str, messages: &[&str], body: &str) {
    deploy(key, definitions(key, messages, body)).await;
}

pub async fn fetch(business_key: &str, expected: usize) -> Vec<ExternalTask> {
    let mut tasks = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while tasks.len() < expected && Instant::now() < deadline {
        let by_key = FetchTopic {
            business_key: Some(business_key.into()),
            ..Default::default()
        };
        tasks.extend(crate::engine::fetch_send_tasks("w", 10, 600_000, by_key).await);
    }
    assert_eq!(tasks.len(), expected);
    tasks
}

pub async fn form_of(app: &TestApp, business_key: &str, task: &ExternalTask) -> String {
    created_id(
        app,
        CreateFormTaskRequest {
            external_task_id: task.id.clone(),
            process_instance_id: task.process_instance_id.clone(),
            business_key: business_key.into(),
            activity_id: task.activity_id.clone(),
            activity_instance_id: task.activity_instance_id.clone().unwrap_or_default(),
            ..Default::default()
        },
    )
    .await
}

/// The forms the worker makes of `tasks`, in their order.
pub async fn forms_of(app: &TestApp, business_key: &str, tasks: &[ExternalTask]) -> Vec<String> {
    let mut forms = Vec::new();
    for task in tasks {
        forms.push(form_of(app, business_key, task).await);
    }
    forms
}

/// The form's status and withdrawal reason, as its assignee `user` reads them.
pub async fn status_of(app: &TestApp, user: &str, form: &str) -> (FormTaskStatus, String) {
    let task = app.as_user(user).form(form).await.unwrap();
    (task.summary.unwrap().status(), task.withdrawal_reason)
}

/// A running instance with one form: its user, the instance, the send task (fetched,
/// not completed) and the form the worker made of it.
pub struct OneForm {
    pub user: String,
    pub instance: String,
    pub task: ExternalTask,
    pub form: String,
}

/// Starts `key` in the engine for a user of the test's own, fetches its one send task
/// and makes its form through `app`.
pub async fn one_form(app: &TestApp, key: &str) -> OneForm {
    let user = user();
    let instance = crate::engine::start_instance(key, &user).await;
    let task = fetch(&user, 1).await.remove(0);
    let form = form_of(app, &user, &task).await;
    OneForm {
        user,
        instance,
        task,
        form,
    }
}

/// Completes a send task fetched by `fetch`, as the worker does once its form exists.
pub async fn complete(task: &ExternalTask) {
    camunda()
        .complete_external_task(&task.id, "w", &Default::default(), &Default::default())
        .await
        .unwrap();
}

/// A process forked in two: the send task `step` and its receive task (each with
/// the extra attributes `send` and `receive`) on one branch; on the other, a receive
/// task `other` for a message never sent, that a test cancels, or that `interrupt`
/// (elements beside it, a boundary event say) interrupts.
pub fn step_beside_another_branch(key: &str, send: &str, receive: &str, interrupt: &str) -> String {
    definitions(
        key,
        &["step", "never"],
        &format!(
            r#"
    <bpmn:startEvent id="s"/><bpmn:sequenceFlow id="a" sourceRef="s" targetRef="fork"/>
    <bpmn:parallelGateway id="fork"/>
    <bpmn:sequenceFlow id="b" sourceRef="fork" targetRef="step"/>
    <bpmn:sendTask id="step" camunda:type="external" camunda:topic="submit_form" {send}/>
    <bpmn:sequenceFlow id="c" sourceRef="step" targetRef="wait_step"/>
    <bpmn:receiveTask id="wait_step" messageRef="msg_step" {receive}/>
    <bpmn:sequenceFlow id="d" sourceRef="wait_step" targetRef="e1"/><bpmn:endEvent id="e1"/>
    <bpmn:sequenceFlow id="f" sourceRef="fork" targetRef="other"/>
    <bpmn:receiveTask id="other" messageRef="msg_never"/>
    <bpmn:sequenceFlow id="g" sourceRef="other" targetRef="e2"/><bpmn:endEvent id="e2"/>
    {interrupt}"#
        ),
    )
}

/// Waits up to 10 s for the form to be withdrawn.
pub async fn withdrawn_within_ten_seconds(app: &TestApp, user: &str, form: &str) -> String {
    let started = Instant::now();
    loop {
        let (status, reason) = status_of(app, user, form).await;
        if status == FormTaskStatus::Withdrawn {
            return reason;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "not withdrawn within 10 s ({status:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn cancelling_a_process_withdraws_its_forms_called_processes_included() {
    let child = unique_key("child");
    let parent = unique_key("parent");
    deploy_definitions(
        &child,
        &["inner"],
        &format!(
            r#"
    <bpmn:startEvent id="s"/><bpmn:sequenceFlow id="a" sourceRef="s" targetRef="inner"/>
    {}
    <bpmn:sequenceFlow id="b" sourceRef="inner" targetRef="wait_inner"/>
    <bpmn:sequenceFlow id="c" sourceRef="wait_inner" targetRef="e"/><bpmn:endEvent id="e"/>"#,
            send_receive("inner")
        ),
    )
    .await;
    deploy_definitions(
        &parent,
        &["outer"],
        &format!(
            r#"
    <bpmn:startEvent id="s"/><bpmn:sequenceFlow id="a" sourceRef="s" targetRef="fork"/>
    <bpmn:parallelGateway id="fork"/>
    <bpmn:sequenceFlow id="b" sourceRef="fork" targetRef="outer"/>
    {}
    <bpmn:sequenceFlow id="c" sourceRef="outer" targetRef="wait_outer"/>
    <bpmn:sequenceFlow id="d" sourceRef="wait_outer" targetRef="e1"/><bpmn:endEvent id="e1"/>
    <bpmn:sequenceFlow id="f" sourceRef="fork" targetRef="call"/>
    <bpmn:callActivity id="call" calledElement="{child}">
      <bpmn:extensionElements><camunda:in businessKey="${{execution.processBusinessKey}}"/></bpmn:extensionElements>
    </bpmn:callActivity>
    <bpmn:sequenceFlow id="g" sourceRef="call" targetRef="e2"/><bpmn:endEvent id="e2"/>"#,
            send_receive("outer")
        ),
    )
    .await;

    let app = spawn_app().await;
    let ann = user();
    let process = app.as_admin().start_for(&parent, &ann).await.unwrap();
    let mut ids = forms_of(&app, &ann, &fetch(&ann, 2).await).await;
    // Both belong to the root the user started.
    let as_ann = app.as_user(&ann);
    let listed = as_ann
        .forms(ListFormTasksRequest {
            root_process_instance_id: process.engine_instance_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.form_tasks.len(), 2);

    let mut inbox = open(&app, &ann, "").await;
    next(&mut inbox).await;
    as_ann.cancel(&process.id, "").await.unwrap();
    let mut removed = Vec::new();
    for _ in 0..2 {
        match next(&mut inbox).await.event {
            Some(Event::Removed(r)) => {
                assert_eq!(r.reason(), RemovalReason::Withdrawn);
                removed.push(r.id);
            }
            other => panic!("expected removed, got {other:?}"),
        }
    }
    removed.sort();
    ids.sort();
    assert_eq!(removed, ids);
}

#[tokio::test]
async fn a_boundary_timer_on_the_receive_task_withdraws_the_form() {
    let key = unique_key("timer");
    deploy_definitions(
        &key,
        &["step", "later"],
        &format!(
            r#"
    <bpmn:startEvent id="s"/><bpmn:sequenceFlow id="a" sourceRef="s" targetRef="step"/>
    {}
    <bpmn:sequenceFlow id="b" sourceRef="step" targetRef="wait_step"/>
    <bpmn:sequenceFlow id="c" sourceRef="wait_step" targetRef="e"/><bpmn:endEvent id="e"/>
    <bpmn:boundaryEvent id="too_late" attachedToRef="wait_step" cancelActivity="true">
      <bpmn:timerEventDefinition><bpmn:timeDuration>PT2S</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:boundaryEvent>
    <bpmn:sequenceFlow id="d" sourceRef="too_late" targetRef="after_timeout"/>
    <bpmn:receiveTask id="after_timeout" messageRef="msg_later"/>
    <bpmn:sequenceFlow id="f" sourceRef="after_timeout" targetRef="e2"/><bpmn:endEvent id="e2"/>"#,
            send_receive("step")
        ),
    )
    .await;
    let app = spawn_app().await;
    let case = one_form(&app, &key).await;
    complete(&case.task).await;

    let reason = withdrawn_within_ten_seconds(&app, &case.user, &case.form).await;
    assert!(reason.contains("can no longer receive"), "{reason}");
    // The process went on along the timer's path.
    assert_eq!(executions_waiting(&case.instance, "later").await, 1);
}

#[tokio::test]
async fn a_process_deleted_in_the_engine_withdraws_its_forms() {
    let key = unique_key("deleted");
    deploy(&key, crate::engine::form_process(&key, "step")).await;
    let app = spawn_app().await;
    let case = one_form(&app, &key).await;
    camunda()
        .delete_process_instance(&case.instance, true)
        .await
        .unwrap();
    let reason = withdrawn_within_ten_seconds(&app, &case.user, &case.form).await;
    assert!(reason.contains("ended"), "{reason}");
}

/// A deleted instance is seen by two passes: the one for ended processes and the one
/// for interruptions (its activities were cancelled). Whichever looks first, the
/// person reads that the process ended.
#[tokio::test]
async fn an_instance_gone_when_its_interruption_is_looked_at_withdraws_its_forms_as_ended() {
    let key = unique_key("gone");
    deploy(&key, crate::engine::form_process(&key, "step")).await;
    // The app's own reconciler looks once at startup, then not for an hour.
    let app = spawn_app_with(serde_json::json!({"reconcile_interval_ms": 3_600_000})).await;
    let case = one_form(&app, &key).await;
    camunda()
        .delete_process_instance(&case.instance, true)
        .await
        .unwrap();
    let withdrawn = withdrawals(&app)
        .instances_interrupted(std::slice::from_ref(&case.instance))
        .await
        .unwrap();
    assert_eq!(withdrawn, 1);
    let (status, reason) = status_of(&app, &case.user, &case.form).await;
    assert_eq!(status, FormTaskStatus::Withdrawn);
    assert!(reason.contains("ended"), "{reason}");
}

#[tokio::test]
async fn a_form_whose_send_task_the_worker_still_holds_is_not_withdrawn() {
    // Another branch of the same instance is interrupted by a timer, so the instance
    // is looked at; the form's send task is fetched but not completed.
    let key = unique_key("held");
    let timer = r#"<bpmn:boundaryEvent id="soon" attachedToRef="other" cancelActivity="true">
      <bpmn:timerEventDefinition><bpmn:timeDuration>PT1S</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:boundaryEvent>
    <bpmn:sequenceFlow id="h" sourceRef="soon" targetRef="e3"/><bpmn:endEvent id="e3"/>"#;
    deploy(&key, step_beside_another_branch(&key, "", "", timer)).await;
    let app = spawn_app().await;
    let case = one_form(&app, &key).await;

    // Wait until the timer has fired and a few passes have looked at the instance.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let cancelled: Vec<serde_json::Value> = rest_get(&format!(
            "/history/activity-instance?processInstanceId={}&activityId=other&canceled=true",
            case.instance
        ))
        .await;
        if !cancelled.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the timer did not fire");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        status_of(&app, &case.user, &case.form).await.0,
        FormTaskStatus::Pending
    );
}

#[tokio::test]
async fn fifty_ended_processes_among_two_hundred_withdraw_exactly_their_forms() {
    let key = unique_key("scale");
    deploy(&key, crate::engine::form_process(&key, "step")).await;
    let app = spawn_app().await;
    let ann = user();
    let engine = camunda();
    let starts = (0..200).map(|_| {
        let engine = engine.clone();
        let (key, ann) = (key.clone(), ann.clone());
        async move {
            engine
                .start_process(&key, &ann, &Default::default())
                .await
                .unwrap()
                .id
        }
    });
    let instances: Vec<String> = futures::future::join_all(starts).await;
    // 1,000 pending forms, five per process, written as CreateFormTask would.
    let db = app.db().await;
    db.execute(
        "INSERT INTO form_tasks (id, external_task_id, business_key, form_name, message_name, assignee, status,
            process_instance_id, root_process_instance_id, activity_id)
         SELECT gen_random_uuid(), i || '-' || n, $2, 'step', 'step', $2, 'pending', i, i, 'step'
         FROM unnest($1::text[]) AS i, generate_series(1, 5) AS n",
        &[&instances, &ann],
    )
    .await
    .unwrap();

    // Engine calls of one reconciliation pass with 1,000 pending forms and nothing
    // changed: a fixed few history queries, none per form.
    let (reconciler, counted) = reconciler(&app);
    reconciler.pass().await.unwrap();
    let before = counted.calls();
    reconciler.pass().await.unwrap();
    let per_pass = counted.calls() - before;
    assert!(
        per_pass <= 3,
        "{per_pass} engine calls in a quiet pass over 1,000 pending forms"
    );

    // 50 processes end at once.
    let ended: Vec<String> = instances[..50].to_vec();
    let deletes = ended.iter().map(|id| {
        let engine = engine.clone();
        let id = id.clone();
        async move { engine.delete_process_instance(&id, true).await.unwrap() }
    });
    futures::future::join_all(deletes).await;
    let started = Instant::now();
    loop {
        let withdrawn: i64 = crate::helpers::scalar(
            &db,
            "SELECT count(*) FROM form_tasks WHERE status = 'withdrawn'",
            &[],
        )
        .await;
        if withdrawn == 250 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{withdrawn} of 250 withdrawn after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let wrong: i64 = crate::helpers::scalar(&db, "SELECT count(*) FROM form_tasks WHERE (status = 'withdrawn') <> (process_instance_id = ANY($1))", &[&ended]).await;
    assert_eq!(wrong, 0, "exactly the ended processes' forms");
}

/// A reconciler of the test's own on the app's database (the app's own runs beside
/// it), so that the test knows when a pass has looked, and its engine client, whose
/// calls the test can count.
pub fn reconciler(app: &TestApp) -> (ramp::processes::Reconciler, ramp::camunda::Camunda) {
    let settings = ramp::processes::ReconcileSettings {
        interval: Duration::from_secs(3600),
        overlap: Duration::from_secs(30),
        start_grace: Duration::from_secs(30),
    };
    let (store, hub) = store_and_hub(app);
    let counted = crate::engine::camunda();
    let withdrawals =
        ramp::forms::withdrawal::Withdrawals::new(store.clone(), counted.clone(), hub);
    (
        ramp::processes::Reconciler::new(store, counted.clone(), withdrawals, settings),
        counted,
    )
}

/// The withdrawals of the test's own on the app's database (see `reconciler`).
fn withdrawals(app: &TestApp) -> ramp::forms::withdrawal::Withdrawals {
    let (store, hub) = store_and_hub(app);
    ramp::forms::withdrawal::Withdrawals::new(store, crate::engine::camunda(), hub)
}

/// A store and a change hub of the test's own on the app's database.
fn store_and_hub(app: &TestApp) -> (ramp::store::Store, ramp::forms::ChangeHub) {
    let store = ramp::store::Store::new(
        &secrecy::SecretString::from(app.database_url.clone()),
        4,
        Duration::from_secs(10),
    )
    .unwrap();
    let hub = ramp::forms::ChangeHub::new(
        store.clone(),
        ramp::forms::HubSettings {
            poll_interval: Duration::from_secs(3600),
            notify_tick: Duration::from_millis(2),
            stream_buffer: 16,
            max_streams_per_user: 1,
        },
    );
    (store, hub)
}

/// Suspends (or activates) the asynchronous continuations of every version of
/// `key`: jobs made while suspended wait, so a token stays between two activities
/// for as long as the test wants.
async fn suspend_jobs(key: &str, suspended: bool) {
    rest_send(
        reqwest::Method::PUT,
        "/job-definition/suspended",
        serde_json::json!({"processDefinitionKey": key, "suspended": suspended, "includeJobs": true}),
    )
    .await;
}

/// Cancels activities of a running instance, as an operator does in Cockpit.
pub async fn cancel(instance: &str, instruction: serde_json::Value) {
    rest_send(
        reqwest::Method::POST,
        &format!("/process-instance/{instance}/modification"),
        serde_json::json!({"instructions": [instruction], "skipCustomListeners": true}),
    )
    .await;
}

/// Cancels every instance of the activity `activity` in `instance`.
pub async fn cancel_activity(instance: &str, activity: &str) {
    cancel(
        instance,
        serde_json::json!({"type": "cancel", "activityId": activity}),
    )
    .await;
}

/// Waits up to 10 s for `n` executions of `instance` to wait for `message`.
pub async fn waiting(instance: &str, message: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = executions_waiting(instance, message).await;
        if found == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{found} of {n} executions wait for {message}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Finding 6 of issue 19: between the send task and its receive task an
/// asynchronous continuation (`send` and `receive` are the attributes of each)
/// leaves a moment where neither an external task nor a subscription exists; a
/// check of the instance then (another branch was cancelled) must not withdraw the
/// form. Seen failing before the fix: the form was withdrawn.
async fn a_form_in_an_asynchronous_gap_is_kept(send: &str, receive: &str) {
    let key = unique_key("gap");
    deploy(&key, step_beside_another_branch(&key, send, receive, "")).await;
    suspend_jobs(&key, true).await;
    let app = spawn_app().await;
    let case = one_form(&app, &key).await;
    complete(&case.task).await;
    // The token waits for its continuation's job: no external task, no subscription.
    let tree = camunda().activity_instances(&case.instance).await.unwrap();
    assert!(
        tree.walk()
            .iter()
            .any(|n| !n.child_transition_instances.is_empty()),
        "the token is in the asynchronous gap"
    );
    assert!(
        camunda()
            .message_subscriptions(&case.instance, "step")
            .await
            .unwrap()
            .is_empty()
    );

    // The other branch is cancelled: reconciliation looks at the instance.
    cancel_activity(&case.instance, "other").await;
    let (reconciler, counted) = reconciler(&app);
    let before = counted.calls();
    reconciler.pass().await.unwrap();
    assert_eq!(
        status_of(&app, &case.user, &case.form).await,
        (FormTaskStatus::Pending, String::new()),
        "withdrawn while its answer could still be received"
    );
    assert!(
        counted.calls() - before > 3,
        "the pass looked at the instance"
    );

    // The continuation runs; the receive task waits for the form's answer.
    suspend_jobs(&key, false).await;
    waiting(&case.instance, "step", 1).await;
    reconciler.pass().await.unwrap();
    assert_eq!(
        status_of(&app, &case.user, &case.form).await.0,
        FormTaskStatus::Pending
    );
}

#[tokio::test]
async fn a_form_is_kept_while_its_send_task_continues_asynchronously() {
    a_form_in_an_asynchronous_gap_is_kept(r#"camunda:asyncAfter="true""#, "").await;
}

#[tokio::test]
async fn a_form_is_kept_while_its_receive_task_is_entered_asynchronously() {
    a_form_in_an_asynchronous_gap_is_kept("", r#"camunda:asyncBefore="true""#).await;
}

/// Finding 6 of issue 19, its multi-instance half: two parallel branches wait for
/// the same message; one branch's receive task is cancelled. Its form is withdrawn
/// (nothing in its branch can receive the answer any more) while the sibling's form
/// stays. Seen failing before the fix: the cancelled branch's form stayed pending,
/// since the sibling's subscription has the same message name.
#[tokio::test]
async fn a_cancelled_branch_of_a_multi_instance_loses_its_form_while_its_sibling_waits() {
    let key = unique_key("branches");
    deploy_definitions(
        &key,
        &["step"],
        &format!(
            r#"
    <bpmn:startEvent id="s"/><bpmn:sequenceFlow id="a" sourceRef="s" targetRef="each"/>
    <bpmn:subProcess id="each">
      <bpmn:multiInstanceLoopCharacteristics><bpmn:loopCardinality>2</bpmn:loopCardinality></bpmn:multiInstanceLoopCharacteristics>
      <bpmn:startEvent id="is"/><bpmn:sequenceFlow id="b" sourceRef="is" targetRef="step"/>
      {}
      <bpmn:sequenceFlow id="c" sourceRef="step" targetRef="wait_step"/>
      <bpmn:sequenceFlow id="d" sourceRef="wait_step" targetRef="ie"/><bpmn:endEvent id="ie"/>
    </bpmn:subProcess>
    <bpmn:sequenceFlow id="e" sourceRef="each" targetRef="end"/><bpmn:endEvent id="end"/>"#,
            send_receive("step")
        ),
    )
    .await;
    let app = spawn_app().await;
    let ann = user();
    let instance = crate::engine::start_instance(&key, &ann).await;
    let tasks = fetch(&ann, 2).await;
    let ids = forms_of(&app, &ann, &tasks).await;
    for task in &tasks {
        complete(task).await;
    }
    waiting(&instance, "step", 2).await;

    // The first form's branch: the receive task beside its send task is cancelled.
    let branch = camunda()
        .historic_activity_instance(tasks[0].activity_instance_id.as_deref().unwrap())
        .await
        .unwrap()
        .parent_activity_instance_id
        .unwrap();
    let tree = camunda().activity_instances(&instance).await.unwrap();
    let receive = tree
        .walk()
        .into_iter()
        .find(|n| {
            n.activity_id == "wait_step" && n.parent_activity_instance_id.as_ref() == Some(&branch)
        })
        .expect("the branch waits")
        .id
        .clone();
    cancel(
        &instance,
        serde_json::json!({"type": "cancel", "activityInstanceId": receive}),
    )
    .await;
    waiting(&instance, "step", 1).await;

    let (reconciler, _) = reconciler(&app);
    reconciler.pass().await.unwrap();
    let (status, reason) = status_of(&app, &ann, &ids[0]).await;
    assert_eq!(
        status,
        FormTaskStatus::Withdrawn,
        "the cancelled branch's form"
    );
    assert!(reason.contains("can no longer receive"), "{reason}");
    assert_eq!(
        status_of(&app, &ann, &ids[1]).await.0,
        FormTaskStatus::Pending,
        "the waiting branch's form"
    );
}

/// The deletion watch reads external tasks deleted after its watermark. The
/// engine's log query cannot filter by time (it ignores `timestampAfter`): before
/// the fix every deletion ever logged came back on every pass, oldest first, so
/// that past 500 entries a pass read the whole log and its newest entries were on
/// the last page (seen on the shared engine: the same 372 entries for a time in
/// the year 2030 as for none).
#[tokio::test]
async fn external_task_deletions_are_read_from_the_watermark_on() {
    let key = unique_key("deletions");
    deploy(&key, crate::engine::form_process(&key, "step")).await;
    let engine = camunda();
    let mut instances = Vec::new();
    for _ in 0..2 {
        let instance = crate::engine::start_instance(&key, &user()).await;
        engine
            .delete_process_instance(&instance, true)
            .await
            .unwrap();
        instances.push(instance);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let logged = |instance: &str, entries: &[ramp::camunda::types::ExternalTaskLog]| {
        entries
            .iter()
            .find(|l| l.process_instance_id == instance)
            .map(|l| l.timestamp.clone())
    };
    let long_ago = "2000-01-01T00:00:00.000+0000";
    let all = engine
        .external_task_deletions_after(long_ago)
        .await
        .unwrap();
    let first = logged(&instances[0], &all).expect("the first deletion is logged");
    let after_first = engine.external_task_deletions_after(&first).await.unwrap();
    assert!(
        logged(&instances[1], &after_first).is_some(),
        "the later one"
    );
    assert!(
        logged(&instances[0], &after_first).is_none(),
        "not the first"
    );
    let since = ramp::camunda::parse_engine_time(&first).unwrap();
    assert!(
        after_first
            .iter()
            .all(|l| ramp::camunda::parse_engine_time(&l.timestamp).unwrap() > since)
    );
}

/// A send task in a subprocess whose receive task follows the subprocess: once the
/// subprocess completed, the answer is received in the enclosing scope, and a check
/// of the instance keeps the form.
#[tokio::test]
async fn a_form_whose_receive_task_follows_the_send_tasks_subprocess_is_kept() {
    let key = unique_key("outside");
    deploy_definitions(
        &key,
        &["step", "never"],
        r#"
    <bpmn:startEvent id="s"/><bpmn:sequenceFlow id="a" sourceRef="s" targetRef="fork"/>
    <bpmn:parallelGateway id="fork"/>
    <bpmn:sequenceFlow id="b" sourceRef="fork" targetRef="sub"/>
    <bpmn:subProcess id="sub">
      <bpmn:startEvent id="is"/><bpmn:sequenceFlow id="i1" sourceRef="is" targetRef="step"/>
      <bpmn:sendTask id="step" camunda:type="external" camunda:topic="submit_form"/>
      <bpmn:sequenceFlow id="i2" sourceRef="step" targetRef="ie"/><bpmn:endEvent id="ie"/>
    </bpmn:subProcess>
    <bpmn:sequenceFlow id="c" sourceRef="sub" targetRef="wait_step"/>
    <bpmn:receiveTask id="wait_step" messageRef="msg_step"/>
    <bpmn:sequenceFlow id="d" sourceRef="wait_step" targetRef="e1"/><bpmn:endEvent id="e1"/>
    <bpmn:sequenceFlow id="f" sourceRef="fork" targetRef="other"/>
    <bpmn:receiveTask id="other" messageRef="msg_never"/>
    <bpmn:sequenceFlow id="g" sourceRef="other" targetRef="e2"/><bpmn:endEvent id="e2"/>"#,
    )
    .await;
    let app = spawn_app().await;
    let case = one_form(&app, &key).await;
    complete(&case.task).await;
    waiting(&case.instance, "step", 1).await;
    cancel_activity(&case.instance, "other").await;
    let (reconciler, _) = reconciler(&app);
    reconciler.pass().await.unwrap();
    assert_eq!(
        status_of(&app, &case.user, &case.form).await.0,
        FormTaskStatus::Pending
    );
}
