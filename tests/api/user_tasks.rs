//! The engine's own user tasks in the inbox (#23): who sees one, how its changes
//! reach their streams, claim and unclaim.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use ramp::forms::{EngineUserTask, UserTaskEnd};
use ramp::proto::pending_forms_response::Event;
use ramp::proto::*;
use serde_json::json;
use tonic::{Code, Streaming};

use crate::client::Client;
use crate::engine::{camunda, rest_send, unique_key};
use crate::forms::{next, pending_form, quiet, user};
use crate::helpers::{TestApp, column, scalar, spawn_app, spawn_app_with};
use crate::user_task_engine::{deploy_user_task_process, start_with, tasks_of};

fn at(second: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 3, 10, 0, second).unwrap()
}

/// A user task as the engine might report it, for candidate user `bob` and group
/// `reviewers` (of this test's database only: nothing reaches the engine).
fn engine_task(id: &str) -> EngineUserTask {
    EngineUserTask {
        id: id.into(),
        name: Some("Review the order".into()),
        task_definition_key: "review".into(),
        assignee: None,
        candidate_users: vec!["bob".into()],
        candidate_groups: vec!["reviewers".into()],
        created: at(0),
        last_updated: None,
        due: Some(at(59)),
        follow_up: None,
        priority: 60,
        process_instance_id: "pi-1".into(),
        root_process_instance_id: "pi-1".into(),
        business_key: None,
        process_definition_id: None,
        process_definition_key: Some("order".into()),
        tenant_id: None,
        execution_id: None,
        form: Some((
            "order-review".into(),
            json!({"title": "Order review", "components": [{"type": "textfield", "key": "amount"}]}),
        )),
        form_variables: json!({"amount": "12", "other": 1})
            .as_object()
            .unwrap()
            .clone(),
    }
}

/// The change rows of the form of engine task `id`, oldest first, as
/// "kind[/reason] key".
async fn changes_of(db: &tokio_postgres::Client, id: &str) -> Vec<String> {
    column(
        db,
        "SELECT c.kind || coalesce('/' || c.reason, '') || ' ' || c.assignee
         FROM form_changes c JOIN form_tasks f ON f.id = c.form_task_id
         WHERE f.external_task_id = $1 ORDER BY c.tx, c.seq",
        &[&id],
    )
    .await
}

#[tokio::test]
async fn a_learned_user_task_is_logged_to_its_audience_and_moves_with_its_claims() {
    let app = spawn_app().await;
    let forms = app.app.forms();
    let db = app.db().await;

    assert!(forms.learn_user_task(engine_task("t-1")).await.unwrap());
    assert_eq!(
        changes_of(&db, "t-1").await,
        ["added user:bob", "added group:reviewers"]
    );
    let (kind, assignee, prefill, priority, title): (
        String,
        String,
        serde_json::Value,
        i32,
        String,
    ) = {
        let row = db
            .query_one(
                "SELECT kind, assignee, prefill, priority, form_title FROM form_tasks
                 WHERE external_task_id = 't-1'",
                &[],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4))
    };
    assert_eq!(
        (kind.as_str(), assignee.as_str(), priority, title.as_str()),
        ("user_task", "", 60, "Order review")
    );
    assert_eq!(prefill, json!({"amount": "12"}));

    // The same read again, and an older one: nothing is written.
    assert!(!forms.learn_user_task(engine_task("t-1")).await.unwrap());
    let claimed = EngineUserTask {
        assignee: Some("carol".into()),
        last_updated: Some(at(10)),
        ..engine_task("t-1")
    };
    assert!(forms.learn_user_task(claimed).await.unwrap());
    let stale = EngineUserTask {
        last_updated: Some(at(5)),
        ..engine_task("t-1")
    };
    assert!(!forms.learn_user_task(stale).await.unwrap());
    let unclaimed = EngineUserTask {
        last_updated: Some(at(20)),
        ..engine_task("t-1")
    };
    assert!(forms.learn_user_task(unclaimed).await.unwrap());
    assert_eq!(
        changes_of(&db, "t-1").await,
        [
            "added user:bob",
            "added group:reviewers",
            "removed/claimed user:bob",
            "removed/claimed group:reviewers",
            "added user:carol",
            "removed/claimed user:carol",
            "added user:bob",
            "added group:reviewers",
        ]
    );
    // Rows of one change share its transaction.
    let transactions: i64 = scalar(&db, "SELECT count(DISTINCT tx) FROM form_changes", &[]).await;
    assert_eq!(transactions, 3);
}

#[tokio::test]
async fn a_user_task_that_left_the_engine_is_withdrawn_once_and_unknown_ones_are_ignored() {
    let app = spawn_app().await;
    let forms = app.app.forms();
    let db = app.db().await;
    forms.learn_user_task(engine_task("t-2")).await.unwrap();
    forms.learn_user_task(engine_task("t-3")).await.unwrap();

    assert_eq!(forms.pending_user_task_ids().await.unwrap(), ["t-2", "t-3"]);
    assert!(
        forms
            .end_user_task("t-2", UserTaskEnd::Completed)
            .await
            .unwrap()
    );
    assert!(
        !forms
            .end_user_task("t-2", UserTaskEnd::Deleted)
            .await
            .unwrap()
    );
    assert!(
        !forms
            .end_user_task("nope", UserTaskEnd::Deleted)
            .await
            .unwrap()
    );
    assert!(
        forms
            .end_user_task("t-3", UserTaskEnd::Deleted)
            .await
            .unwrap()
    );
    assert!(forms.pending_user_task_ids().await.unwrap().is_empty());
    assert_eq!(
        changes_of(&db, "t-2").await,
        [
            "added user:bob",
            "added group:reviewers",
            "removed/withdrawn user:bob",
            "removed/withdrawn group:reviewers",
        ]
    );
    let reasons: Vec<String> = column(
        &db,
        "SELECT withdrawal_reason FROM form_tasks ORDER BY external_task_id",
        &[],
    )
    .await;
    assert_eq!(
        reasons,
        [
            "it was completed in the process engine",
            "the process no longer needs it"
        ]
    );
    // A withdrawn task is not brought back by a late read of it.
    let late = EngineUserTask {
        last_updated: Some(at(30)),
        assignee: Some("bob".into()),
        ..engine_task("t-2")
    };
    assert!(!forms.learn_user_task(late).await.unwrap());
}

/// One test's people and its process: a model whose user task has candidate
/// group `group` and candidate user `uma`; `gil` and `gus` are in the group,
/// `olaf` in another. All unique to the test, so no other test's tasks reach them.
struct Scene {
    app: TestApp,
    key: String,
    group: String,
    uma: String,
    gil: String,
    gus: String,
    olaf: String,
}

impl Scene {
    async fn new() -> Self {
        let key = unique_key("inbox");
        let group = format!("reviewers_{key}");
        let uma = format!("uma-{key}@example.com");
        deploy_user_task_process(
            &camunda(),
            &key,
            &format!(
                r#"camunda:candidateGroups="{group}" camunda:candidateUsers="{uma}" camunda:formRef="form_{key}" camunda:formRefBinding="latest""#
            ),
        )
        .await;
        let app = spawn_app_with(json!({"user_tasks": true, "user_task_poll_ms": 100})).await;
        Self {
            app,
            gil: format!("gil-{key}@example.com"),
            gus: format!("gus-{key}@example.com"),
            olaf: format!("olaf-{key}@example.com"),
            key,
            group,
            uma,
        }
    }

    /// A client of `who`, with the groups the scene gives them.
    fn client(&self, who: &str) -> Client {
        let other = format!("others_{}", self.key);
        let groups: &[&str] = if who == self.gil || who == self.gus {
            &[&self.group]
        } else if who == self.olaf {
            &[&other]
        } else {
            &[]
        };
        self.app.in_groups(who, groups)
    }

    /// `who`'s inbox stream, past its (empty) snapshot.
    async fn inbox(&self, who: &str) -> Streaming<PendingFormsResponse> {
        let mut stream = self.client(who).pending_forms("").await.unwrap();
        match next(&mut stream).await.event {
            Some(Event::Snapshot(s)) => assert!(s.form_tasks.is_empty(), "{who}: {s:?}"),
            other => panic!("expected a snapshot, got {other:?}"),
        }
        stream
    }

    /// Starts the process in the engine; its instance and its user task's id.
    async fn start(&self) -> (String, String) {
        let instance = start_with(&self.key, &format!("order-{}", self.key), json!({})).await;
        let task = tasks_of(&instance).await.remove(0).id;
        (instance, task)
    }
}

/// The form `message` adds (it must be an addition).
fn added(message: PendingFormsResponse) -> FormTaskSummary {
    match message.event {
        Some(Event::Added(form)) => form,
        other => panic!("expected added, got {other:?}"),
    }
}

fn removal(message: PendingFormsResponse) -> (String, RemovalReason) {
    match message.event {
        Some(Event::Removed(removed)) => {
            let reason = removed.reason();
            (removed.id, reason)
        }
        other => panic!("expected removed, got {other:?}"),
    }
}

fn data(value: serde_json::Value) -> prost_types::Struct {
    ramp::json::json_to_struct(value.as_object().unwrap())
}

const QUIET: Duration = Duration::from_millis(1500);

#[tokio::test]
async fn a_group_task_reaches_every_candidate_and_moves_with_claims_and_unclaims() {
    let scene = Scene::new().await;
    let (uma, gil, gus, olaf) = (&scene.uma, &scene.gil, &scene.gus, &scene.olaf);
    let mut umas = scene.inbox(uma).await;
    let mut gils = scene.inbox(gil).await;
    let mut guss = scene.inbox(gus).await;
    let mut olafs = scene.inbox(olaf).await;
    let (_, engine_task) = scene.start().await;

    // Every candidate hears of it, once; the others not at all.
    let form = added(next(&mut umas).await);
    assert_eq!(form.kind, FormTaskKind::UserTask as i32);
    assert_eq!(form.candidate_groups, [scene.group.as_str()]);
    assert_eq!(form.candidate_users, [uma.as_str()]);
    assert_eq!(form.assignee, "");
    assert_eq!(added(next(&mut gils).await).id, form.id);
    assert_eq!(added(next(&mut guss).await).id, form.id);
    assert!(quiet(&mut olafs, QUIET).await, "not a candidate");
    assert!(quiet(&mut gils, QUIET).await, "one event for one change");

    // Gil claims: it leaves Uma's and Gus's inboxes and comes to Gil's as added.
    let claimed = scene.client(gil).claim(&form.id).await.unwrap();
    let summary = claimed.summary.unwrap();
    assert_eq!(summary.assignee, *gil);
    assert_eq!(claimed.engine_task_id, engine_task);
    assert!(claimed.schema.is_some(), "the task's Camunda Form");
    assert_eq!(
        removal(next(&mut umas).await),
        (form.id.clone(), RemovalReason::Claimed)
    );
    assert_eq!(
        removal(next(&mut guss).await),
        (form.id.clone(), RemovalReason::Claimed)
    );
    let mine = added(next(&mut gils).await);
    assert_eq!(
        (mine.id.as_str(), mine.assignee.as_str()),
        (form.id.as_str(), gil.as_str())
    );
    let engine_assignee = tasks_of(&claimed_instance(&scene, &engine_task).await)
        .await
        .remove(0)
        .assignee;
    assert_eq!(engine_assignee.as_deref(), Some(gil.as_str()));
    // Claiming it again answers it as it is; another candidate is told it is taken.
    assert_eq!(
        scene
            .client(gil)
            .claim(&form.id)
            .await
            .unwrap()
            .summary
            .unwrap()
            .assignee,
        *gil
    );
    let taken = scene.client(uma).claim(&form.id).await.unwrap_err();
    assert_eq!(taken.code(), Code::FailedPrecondition);
    assert_eq!(taken.message(), "someone else claimed this task");

    // Gil gives it back (its draft goes): back to everyone, Gil as a group member.
    scene
        .client(gil)
        .save_draft(&form.id, data(json!({"comment": "half"})))
        .await
        .unwrap();
    assert!(matches!(
        next(&mut gils).await.event,
        Some(Event::Updated(_))
    ));
    let unclaimed = scene.client(gil).unclaim(&form.id).await.unwrap();
    assert_eq!(unclaimed.assignee, "");
    assert!(!unclaimed.has_draft);
    for stream in [&mut umas, &mut gils, &mut guss] {
        let back = added(next(stream).await);
        assert_eq!(
            (back.id.as_str(), back.assignee.as_str()),
            (form.id.as_str(), "")
        );
    }
    assert!(quiet(&mut olafs, QUIET).await, "never a candidate");
    assert!(quiet(&mut gils, Duration::from_millis(300)).await);
    let _ = camunda()
        .delete_process_instance(&claimed_instance(&scene, &engine_task).await, true)
        .await;
}

/// The process instance of engine task `id`.
async fn claimed_instance(scene: &Scene, id: &str) -> String {
    let db = scene.app.db().await;
    scalar(
        &db,
        "SELECT process_instance_id FROM form_tasks WHERE external_task_id = $1",
        &[&id],
    )
    .await
}

#[tokio::test]
async fn of_two_candidates_claiming_at_once_one_wins_and_the_other_is_told() {
    let scene = Scene::new().await;
    let mut umas = scene.inbox(&scene.uma).await;
    let (instance, _) = scene.start().await;
    let form = added(next(&mut umas).await);
    let (uma, gus) = (scene.client(&scene.uma), scene.client(&scene.gus));
    let (a, b) = tokio::join!(uma.claim(&form.id), gus.claim(&form.id));
    let (won, lost) = match (a, b) {
        (Ok(won), Err(lost)) | (Err(lost), Ok(won)) => (won, lost),
        other => panic!("one claim wins, one loses: {other:?}"),
    };
    assert_eq!(lost.code(), Code::FailedPrecondition, "{lost:?}");
    assert_eq!(lost.message(), "someone else claimed this task");
    let winner = won.summary.unwrap().assignee;
    let in_engine = tasks_of(&instance).await.remove(0).assignee;
    assert_eq!(in_engine.as_deref(), Some(winner.as_str()));
    let _ = camunda().delete_process_instance(&instance, true).await;
}

#[tokio::test]
async fn a_task_assigned_in_the_engine_moves_between_inboxes() {
    let scene = Scene::new().await;
    let mut umas = scene.inbox(&scene.uma).await;
    let mut guss = scene.inbox(&scene.gus).await;
    let mut olafs = scene.inbox(&scene.olaf).await;
    let (instance, engine_task) = scene.start().await;
    let form = added(next(&mut umas).await);
    assert_eq!(added(next(&mut guss).await).id, form.id);

    // As Tasklist would: given to Olaf, who is no candidate at all.
    rest_send(
        reqwest::Method::POST,
        &format!("/task/{engine_task}/assignee"),
        json!({"userId": scene.olaf}),
    )
    .await;
    assert_eq!(
        removal(next(&mut umas).await),
        (form.id.clone(), RemovalReason::Claimed)
    );
    assert_eq!(
        removal(next(&mut guss).await),
        (form.id.clone(), RemovalReason::Claimed)
    );
    assert_eq!(added(next(&mut olafs).await).assignee, scene.olaf);

    // Then to Gus.
    rest_send(
        reqwest::Method::POST,
        &format!("/task/{engine_task}/assignee"),
        json!({"userId": scene.gus}),
    )
    .await;
    assert_eq!(
        removal(next(&mut olafs).await),
        (form.id.clone(), RemovalReason::Claimed)
    );
    assert_eq!(added(next(&mut guss).await).assignee, scene.gus);
    assert!(quiet(&mut umas, QUIET).await);

    // Completed there: it leaves Gus's inbox.
    rest_send(
        reqwest::Method::POST,
        &format!("/task/{engine_task}/complete"),
        json!({"variables": {}}),
    )
    .await;
    assert_eq!(
        removal(next(&mut guss).await),
        (form.id.clone(), RemovalReason::Withdrawn)
    );
    let _ = camunda().delete_process_instance(&instance, true).await;
}

#[tokio::test]
async fn only_candidates_and_the_assignee_see_a_user_task_and_only_candidates_claim_it() {
    let scene = Scene::new().await;
    let mut umas = scene.inbox(&scene.uma).await;
    let (instance, _) = scene.start().await;
    let form = added(next(&mut umas).await);
    let (uma, gil, olaf) = (
        scene.client(&scene.uma),
        scene.client(&scene.gil),
        scene.client(&scene.olaf),
    );

    // Seen by candidates (with its form), listed for them, not for others.
    let seen = gil.form(&form.id).await.unwrap();
    assert!(seen.schema.is_some());
    let listed = |client: Client| async move {
        client
            .forms(ListFormTasksRequest::default())
            .await
            .unwrap()
            .form_tasks
            .into_iter()
            .map(|f| f.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(listed(uma.clone()).await, [form.id.as_str()]);
    assert_eq!(listed(gil.clone()).await, [form.id.as_str()]);
    assert!(listed(olaf.clone()).await.is_empty());
    assert_eq!(
        olaf.form(&form.id).await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(
        olaf.claim(&form.id).await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(
        olaf.unclaim(&form.id).await.unwrap_err().code(),
        Code::NotFound
    );

    // A candidate drafts only once it has claimed the task.
    let unclaimed_draft = gil
        .save_draft(&form.id, data(json!({"comment": "x"})))
        .await
        .unwrap_err();
    assert_eq!(unclaimed_draft.code(), Code::FailedPrecondition);
    // Admins reassign it in the engine, not in ramp.
    let reassigned = scene
        .app
        .as_admin()
        .reassign(&form.id, &scene.olaf)
        .await
        .unwrap_err();
    assert_eq!(reassigned.code(), Code::FailedPrecondition);

    // Once Uma claimed it, Gil no longer sees it.
    uma.claim(&form.id).await.unwrap();
    assert_eq!(gil.form(&form.id).await.unwrap_err().code(), Code::NotFound);
    assert!(listed(gil.clone()).await.is_empty());
    assert_eq!(listed(uma.clone()).await, [form.id.as_str()]);
    // Only its assignee gives it back.
    assert_eq!(
        gil.unclaim(&form.id).await.unwrap_err().code(),
        Code::NotFound
    );

    // A send-task form is not claimed; a bad id is a bad argument.
    let ann = user();
    let send_task_form = pending_form(&scene.app, &ann).await;
    let refused = scene
        .app
        .as_user(&ann)
        .claim(&send_task_form)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    let bad = uma.claim("not-an-id").await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    crate::helpers::assert_clean(&bad);
    let _ = camunda().delete_process_instance(&instance, true).await;
}

#[tokio::test]
async fn a_user_task_stays_when_another_branch_of_its_instance_is_cancelled() {
    // Reconciliation checks the pending forms of an instance where something was
    // cancelled, and withdraws those whose receive task can no longer get their
    // message. A user task waits for no message: seen failing before user tasks
    // were left out of that check (the review was withdrawn with "the receive
    // task can no longer receive the message").
    let key = unique_key("inbox_branch");
    let uma = format!("uma-{key}@example.com");
    let model = crate::engine::definitions(
        &key,
        &[],
        &format!(
            r#"
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="fork"/>
    <bpmn:parallelGateway id="fork"/>
    <bpmn:sequenceFlow id="f2" sourceRef="fork" targetRef="review"/>
    <bpmn:sequenceFlow id="f3" sourceRef="fork" targetRef="hold"/>
    <bpmn:userTask id="review" name="Review" camunda:candidateUsers="{uma}"/>
    <bpmn:userTask id="hold" name="Hold"/>
    <bpmn:sequenceFlow id="f4" sourceRef="review" targetRef="join"/>
    <bpmn:sequenceFlow id="f5" sourceRef="hold" targetRef="join"/>
    <bpmn:parallelGateway id="join"/>
    <bpmn:sequenceFlow id="f6" sourceRef="join" targetRef="end"/>
    <bpmn:endEvent id="end"/>"#
        ),
    );
    crate::engine::deploy_model(&camunda(), &key, model).await;
    let app = spawn_app_with(json!({"user_tasks": true, "user_task_poll_ms": 100})).await;
    let mut umas = app.in_groups(&uma, &[]).pending_forms("").await.unwrap();
    assert!(matches!(
        next(&mut umas).await.event,
        Some(Event::Snapshot(_))
    ));
    let instance = start_with(&key, &format!("order-{key}"), json!({})).await;
    let form = added(next(&mut umas).await);

    rest_send(
        reqwest::Method::POST,
        &format!("/process-instance/{instance}/modification"),
        json!({"instructions": [{"type": "cancel", "activityId": "hold"}]}),
    )
    .await;
    // Reconciliation runs every 250 ms in tests.
    assert!(quiet(&mut umas, Duration::from_secs(4)).await);
    let status: String = scalar(
        &app.db().await,
        "SELECT status FROM form_tasks WHERE id = $1::text::uuid",
        &[&form.id],
    )
    .await;
    assert_eq!(status, "pending");
    let _ = camunda().delete_process_instance(&instance, true).await;
}

#[tokio::test]
async fn a_snapshot_and_a_resumed_stream_show_a_group_task_once() {
    let scene = Scene::new().await;
    // Uma is also in the group: the task's rows name her twice.
    let both = scene.app.in_groups(&scene.uma, &[&scene.group]);
    let mut first = both.pending_forms("").await.unwrap();
    let start = next(&mut first).await.cursor;
    let (instance, _) = scene.start().await;
    let form = added(next(&mut first).await);
    assert!(quiet(&mut first, QUIET).await, "one event for both keys");

    let mut snapshot = both.pending_forms("").await.unwrap();
    match next(&mut snapshot).await.event {
        Some(Event::Snapshot(s)) => {
            let ids: Vec<&str> = s.form_tasks.iter().map(|f| f.id.as_str()).collect();
            assert_eq!(ids, [form.id.as_str()]);
        }
        other => panic!("expected a snapshot, got {other:?}"),
    }
    let mut resumed = both.pending_forms(&start).await.unwrap();
    assert_eq!(added(next(&mut resumed).await).id, form.id);
    assert!(quiet(&mut resumed, QUIET).await, "one event for both keys");

    // Claimed by Gus: one removal.
    scene.client(&scene.gus).claim(&form.id).await.unwrap();
    assert_eq!(
        removal(next(&mut resumed).await),
        (form.id.clone(), RemovalReason::Claimed)
    );
    assert!(quiet(&mut resumed, QUIET).await, "one event for both keys");
    let _ = camunda().delete_process_instance(&instance, true).await;
}

#[tokio::test]
async fn the_engine_user_id_and_groups_come_from_the_configured_claims() {
    let app = spawn_app_with(json!({
        "jwt_user_id_claim": "preferred_username",
        "jwt_groups_claim": "realm.groups",
    }))
    .await;
    let key = unique_key("claims");
    let (ann, bob) = (
        format!("ann-{key}@example.com"),
        format!("bob-{key}@example.com"),
    );
    let token = |email: &str, username: &str, groups: &[&str]| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &json!({
                "sub": email, "email": email, "email_verified": true,
                "preferred_username": username, "realm": {"groups": groups},
                "aud": "ramp", "iss": crate::helpers::TEST_ISSUER,
                "iat": now, "nbf": now, "exp": now + 3600,
            }),
            &jsonwebtoken::EncodingKey::from_secret(crate::helpers::TEST_SECRET.as_bytes()),
        )
        .unwrap()
    };
    let as_ann = app.bearing(token(&ann, &format!("ann_{key}"), &[]));
    let as_bob = app.bearing(token(&bob, &format!("bob_{key}"), &[&format!("g_{key}")]));
    let mut anns = as_ann.pending_forms("").await.unwrap();
    let mut bobs = as_bob.pending_forms("").await.unwrap();
    next(&mut anns).await;
    next(&mut bobs).await;

    let task = EngineUserTask {
        candidate_users: vec![format!("ann_{key}")],
        candidate_groups: vec![format!("g_{key}")],
        ..engine_task(&format!("t-{key}"))
    };
    app.app.forms().learn_user_task(task).await.unwrap();
    let form = added(next(&mut anns).await);
    assert_eq!(added(next(&mut bobs).await).id, form.id);
    // Ann's email is not her engine user id: a task for it is not hers.
    let by_email = EngineUserTask {
        candidate_users: vec![ann.clone()],
        candidate_groups: Vec::new(),
        ..engine_task(&format!("t2-{key}"))
    };
    app.app.forms().learn_user_task(by_email).await.unwrap();
    assert!(quiet(&mut anns, QUIET).await);
}
