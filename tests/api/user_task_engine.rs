//! The engine client's user task calls against the real engine, and the models the
//! user task tests share.

use chrono::{DateTime, Utc};
use ramp::camunda::types::{HistoricTask, Task};
use ramp::camunda::{Camunda, CamundaError, typed};
use serde_json::{Map, Value, json};

use crate::engine::{camunda, definitions, deploy_model, rest_send, unique_key};

/// A process `key`: start → user task `review` (with `attributes`, e.g.
/// `camunda:candidateGroups="g"`) → end.
pub fn user_task_process(key: &str, attributes: &str) -> String {
    definitions(
        key,
        &[],
        &format!(
            r#"
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="review"/>
    <bpmn:userTask id="review" name="Review" {attributes}/>
    <bpmn:sequenceFlow id="f2" sourceRef="review" targetRef="end"/>
    <bpmn:endEvent id="end"/>"#
        ),
    )
}

/// A Camunda Form with id `form_id` and one text field `comment`.
pub fn review_form(form_id: &str) -> String {
    json!({
        "id": form_id,
        "type": "default",
        "components": [{"type": "textfield", "key": "comment", "label": "Comment"}],
    })
    .to_string()
}

/// Deploys a user task process `key` whose task has `attributes`, with the Camunda
/// Form `form_{key}` in the same deployment.
pub async fn deploy_user_task_process(camunda: &Camunda, key: &str, attributes: &str) {
    camunda
        .deploy(
            key,
            vec![
                (
                    format!("{key}.bpmn"),
                    user_task_process(key, attributes).into_bytes(),
                ),
                (
                    format!("{key}.form"),
                    review_form(&format!("form_{key}")).into_bytes(),
                ),
            ],
            false,
            None,
        )
        .await
        .unwrap_or_else(|e| panic!("{key} deploys: {e}"));
}

/// Starts `key` in the engine with `variables` (plain JSON values); the instance id.
pub async fn start_with(key: &str, business_key: &str, variables: Value) -> String {
    let variables: Map<String, Value> = serde_json::from_value(variables).unwrap();
    camunda()
        .start_process(key, business_key, &typed(&variables))
        .await
        .unwrap_or_else(|e| panic!("{key} starts: {e}"))
        .id
}

/// The open user tasks of one process instance.
pub async fn tasks_of(instance: &str) -> Vec<Task> {
    crate::engine::rest_get(&format!("/task?processInstanceId={instance}")).await
}

/// Every row of a paged engine read, page after page of 100 until one is short.
async fn all_pages<T, F, Fut>(read: F) -> Vec<T>
where
    F: Fn(u32) -> Fut,
    Fut: std::future::Future<Output = Vec<T>>,
{
    let mut all = Vec::new();
    loop {
        let page = read(all.len() as u32).await;
        let full = page.len() == 100;
        all.extend(page);
        if !full {
            return all;
        }
    }
}

/// Every open task changed after `after`, all pages.
async fn all_updated_after(camunda: &Camunda, after: DateTime<Utc>) -> Vec<Task> {
    all_pages(|first| async move {
        camunda
            .tasks_updated_after(after, first, 100)
            .await
            .unwrap()
    })
    .await
}

/// Every task ended after `after`, all pages.
async fn all_finished_after(camunda: &Camunda, after: DateTime<Utc>) -> Vec<HistoricTask> {
    all_pages(|first| async move {
        camunda
            .tasks_finished_after(after, first, 100)
            .await
            .unwrap()
    })
    .await
}

#[tokio::test]
async fn a_user_task_is_read_with_its_candidates_form_variables_and_instance() {
    let camunda = camunda();
    let key = unique_key("ut_read");
    deploy_user_task_process(
        &camunda,
        &key,
        &format!(
            r#"camunda:candidateUsers="ann_{key},bob_{key}" camunda:candidateGroups="rev_{key}" camunda:dueDate="2030-01-02T03:04:05" camunda:priority="70" camunda:formRef="form_{key}" camunda:formRefBinding="latest""#
        ),
    )
    .await;
    let before = camunda.engine_now().await.unwrap() - chrono::Duration::seconds(2);
    let instance = start_with(&key, "order-7", json!({"amount": 12, "note": "hi"})).await;
    let id = tasks_of(&instance).await.remove(0).id;

    let changed = all_updated_after(&camunda, before).await;
    let task = changed
        .iter()
        .find(|t| t.id == id)
        .expect("a new task counts as updated");
    assert_eq!(task.last_updated, None, "never updated since its creation");
    assert_eq!(task.changed_at(), task.created);
    assert_eq!(task.name.as_deref(), Some("Review"));
    assert_eq!(task.task_definition_key.as_deref(), Some("review"));
    assert_eq!(task.process_instance_id.as_deref(), Some(instance.as_str()));
    assert_eq!(task.priority, 70);
    assert!(task.due.is_some());
    assert_eq!(task.assignee, None);
    assert_eq!(
        task.camunda_form_ref.as_ref().map(|f| f.key.as_str()),
        Some(format!("form_{key}").as_str())
    );
    assert!(
        camunda
            .user_task(&id)
            .await
            .unwrap()
            .is_some_and(|t| t.created == task.created)
    );

    let mut links: Vec<(Option<String>, Option<String>, String)> = camunda
        .task_identity_links(&id)
        .await
        .unwrap()
        .into_iter()
        .map(|l| (l.user_id, l.group_id, l.kind))
        .collect();
    links.sort();
    assert_eq!(
        links,
        vec![
            (None, Some(format!("rev_{key}")), "candidate".to_owned()),
            (Some(format!("ann_{key}")), None, "candidate".to_owned()),
            (Some(format!("bob_{key}")), None, "candidate".to_owned()),
        ]
    );

    let form = camunda.deployed_form(&id).await.unwrap().expect("a form");
    assert_eq!(form["id"], format!("form_{key}"));
    let variables = camunda.task_form_variables(&id).await.unwrap();
    assert_eq!(variables["amount"]["value"], 12);
    assert_eq!(variables["note"]["type"], "String");

    let instances = camunda
        .process_instances_by_id(std::slice::from_ref(&instance))
        .await
        .unwrap();
    assert_eq!(instances.len(), 1);
    assert_eq!(instances[0].business_key.as_deref(), Some("order-7"));
    assert_eq!(
        instances[0].root_process_instance_id.as_deref(),
        Some(instance.as_str())
    );
    assert_eq!(
        instances[0].process_definition_key.as_deref(),
        Some(key.as_str())
    );
}

#[tokio::test]
async fn a_task_without_a_form_has_none_and_a_gone_task_is_not_found() {
    let camunda = camunda();
    let key = unique_key("ut_plain");
    deploy_model(
        &camunda,
        &key,
        user_task_process(&key, &format!(r#"camunda:assignee="ann_{key}""#)),
    )
    .await;
    let instance = start_with(&key, "b", json!({})).await;
    let id = tasks_of(&instance).await.remove(0).id;
    assert_eq!(camunda.deployed_form(&id).await.unwrap(), None);

    let gone = "00000000-0000-0000-0000-000000000000";
    assert!(camunda.user_task(gone).await.unwrap().is_none());
    assert!(camunda.historic_task(gone).await.unwrap().is_none());
    for result in [
        camunda.claim_task(gone, "x").await,
        camunda.unclaim_task(gone).await,
        camunda.complete_task(gone, &Map::new()).await,
        camunda.task_identity_links(gone).await.map(drop),
        camunda.deployed_form(gone).await.map(drop),
        camunda.task_form_variables(gone).await.map(drop),
    ] {
        assert!(
            matches!(result, Err(CamundaError::NotFound(_))),
            "{result:?}"
        );
    }
}

#[tokio::test]
async fn claims_race_safely_and_every_change_shows_as_an_update() {
    let camunda = camunda();
    let key = unique_key("ut_claim");
    deploy_model(
        &camunda,
        &key,
        user_task_process(&key, &format!(r#"camunda:candidateGroups="g_{key}""#)),
    )
    .await;
    let instance = start_with(&key, "b", json!({})).await;
    let created = tasks_of(&instance).await.remove(0);
    let (ann, bob) = (format!("ann_{key}"), format!("bob_{key}"));

    camunda.claim_task(&created.id, &ann).await.unwrap();
    camunda
        .claim_task(&created.id, &ann)
        .await
        .expect("claiming one's own task again succeeds");
    let refused = camunda.claim_task(&created.id, &bob).await;
    assert!(
        matches!(refused, Err(CamundaError::AlreadyClaimed(_))),
        "{refused:?}"
    );
    let claimed = camunda.user_task(&created.id).await.unwrap().unwrap();
    assert_eq!(claimed.assignee.as_deref(), Some(ann.as_str()));
    let updated = claimed.last_updated.expect("a claim is an update");
    assert!(updated >= created.created);
    // A read from just before the claim finds it.
    let changed = all_updated_after(&camunda, updated - chrono::Duration::milliseconds(1)).await;
    assert!(changed.iter().any(|t| t.id == created.id));

    camunda.unclaim_task(&created.id).await.unwrap();
    let unclaimed = camunda.user_task(&created.id).await.unwrap().unwrap();
    assert_eq!(unclaimed.assignee, None);
    assert!(unclaimed.last_updated >= Some(updated));

    // Two candidates at once: exactly one holds the task.
    let (a, b) = tokio::join!(
        camunda.claim_task(&created.id, &ann),
        camunda.claim_task(&created.id, &bob)
    );
    assert!(
        a.is_ok() != b.is_ok(),
        "one claim wins, one fails: {a:?} {b:?}"
    );
    let winner = if a.is_ok() { &ann } else { &bob };
    let held = camunda.user_task(&created.id).await.unwrap().unwrap();
    assert_eq!(held.assignee.as_ref(), Some(winner));
}

#[tokio::test]
async fn completed_and_deleted_tasks_are_told_apart_in_history() {
    let camunda = camunda();
    let key = unique_key("ut_end");
    deploy_model(
        &camunda,
        &key,
        user_task_process(&key, &format!(r#"camunda:candidateUsers="ann_{key}""#)),
    )
    .await;
    let before = camunda.engine_now().await.unwrap() - chrono::Duration::seconds(2);
    let done = start_with(&key, "done", json!({})).await;
    let dropped = start_with(&key, "dropped", json!({})).await;
    let done_task = tasks_of(&done).await.remove(0).id;
    let dropped_task = tasks_of(&dropped).await.remove(0).id;

    let answers: Map<String, Value> =
        serde_json::from_value(json!({"approved": true, "comment": "fine"})).unwrap();
    camunda
        .complete_task(&done_task, &typed(&answers))
        .await
        .unwrap();
    let again = camunda.complete_task(&done_task, &typed(&answers)).await;
    assert!(matches!(again, Err(CamundaError::NotFound(_))), "{again:?}");
    rest_send(
        reqwest::Method::DELETE,
        &format!("/process-instance/{dropped}"),
        json!({}),
    )
    .await;

    assert!(camunda.user_task(&done_task).await.unwrap().is_none());
    let finished = all_finished_after(&camunda, before).await;
    let ended = |id: &str| finished.iter().find(|t| t.id == id).cloned();
    let completed = ended(&done_task).expect("the completed task is listed");
    assert!(completed.completed());
    assert_eq!(
        completed.root_process_instance_id.as_deref(),
        Some(done.as_str())
    );
    assert!(completed.end_time.is_some());
    let deleted = ended(&dropped_task).expect("the deleted task is listed");
    assert!(!deleted.completed(), "{:?}", deleted.delete_reason);
    assert_eq!(
        camunda
            .historic_task(&done_task)
            .await
            .unwrap()
            .map(|t| t.completed()),
        Some(true)
    );
    let history: Vec<Value> = crate::engine::rest_get(&format!(
        "/history/variable-instance?processInstanceId={done}&variableName=approved"
    ))
    .await;
    assert_eq!(history[0]["value"], true);
}
