//! The engine client against the real engine.

use std::time::Duration;

use ramp::camunda::types::{CorrelationMessage, FetchAndLock, FetchTopic, ProcessInstanceQuery};
use ramp::camunda::{CamundaError, DeployError, typed, variables};
use serde_json::json;

use crate::engine::{
    camunda, complete_user_task, deploy_model, form_process, parallel_waits, rest_get, unique_key,
    user_tasks,
};

fn topic(key: &str, lock_ms: u64) -> FetchTopic {
    FetchTopic {
        topic_name: "submit_form".into(),
        lock_duration: lock_ms,
        process_definition_key: Some(key.to_owned()),
        ..Default::default()
    }
}

fn fetch(worker: &str, key: &str, lock_ms: u64) -> FetchAndLock {
    FetchAndLock {
        worker_id: worker.into(),
        max_tasks: 10,
        topics: vec![topic(key, lock_ms)],
        ..Default::default()
    }
}

#[tokio::test]
async fn deploy_lists_definitions_and_filters_duplicates() {
    let camunda = camunda();
    let key = unique_key("deploy");
    let files = vec![(
        format!("{key}.bpmn"),
        form_process(&key, "step").into_bytes(),
    )];

    let first = camunda
        .deploy(&key, files.clone(), true, None)
        .await
        .unwrap();
    let defined = first
        .deployed_process_definitions
        .expect("new definitions are listed");
    assert_eq!(defined.len(), 1);

    // Unchanged: the engine answers the earlier deployment, without definitions.
    let again = camunda.deploy(&key, files, true, None).await.unwrap();
    assert_eq!(again.id, first.id);
    assert!(
        again
            .deployed_process_definitions
            .as_ref()
            .is_none_or(|d| d.is_empty())
    );
    let definitions = camunda.deployment_definitions(&again.id).await.unwrap();
    assert_eq!(definitions.len(), 1);
    assert_eq!(
        (definitions[0].key.as_str(), definitions[0].version),
        (key.as_str(), 1)
    );
    assert_eq!(camunda.latest_definition(&key).await.unwrap().version, 1);
}

#[tokio::test]
async fn forms_of_one_file_name_in_two_folders_stay_two_resources() {
    let dir = tempfile::tempdir().unwrap();
    let key = unique_key("forms");
    // One file name, two forms (the engine keeps form ids unique per deployment).
    for (folder, label) in [("a", "first"), ("b", "second")] {
        std::fs::create_dir(dir.path().join(folder)).unwrap();
        std::fs::write(
            dir.path().join(folder).join("qualify_supplier.form"),
            json!({"id": format!("qualify_{label}"), "type": "default", "components": [{"type": "text", "text": label}]}).to_string(),
        )
        .unwrap();
    }
    std::fs::write(
        dir.path().join(format!("{key}.bpmn")),
        form_process(&key, "qualify_supplier"),
    )
    .unwrap();

    let camunda = camunda();
    let deployment = camunda
        .deploy(
            &key,
            ramp::deploy::collect(&[dir.path().to_owned()]).unwrap(),
            true,
            None,
        )
        .await
        .unwrap();
    let resources = camunda.deployment_resources(&deployment.id).await.unwrap();
    let mut names: Vec<_> = resources.iter().map(|r| r.name.clone()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "a/qualify_supplier.form".to_owned(),
            "b/qualify_supplier.form".into(),
            format!("{key}.bpmn")
        ]
    );
    let b = resources
        .iter()
        .find(|r| r.name == "b/qualify_supplier.form")
        .unwrap();
    let content = camunda.resource_data(&deployment.id, &b.id).await.unwrap();
    assert!(String::from_utf8(content).unwrap().contains("second"));
}

#[tokio::test]
async fn a_broken_model_is_refused_with_its_line_and_column() {
    let key = unique_key("broken");
    // The send task has no topic: the engine's parser refuses it.
    let broken = form_process(&key, "step").replace(r#" camunda:topic="submit_form""#, "");
    let result = camunda()
        .deploy(
            &key,
            vec![(format!("{key}.bpmn"), broken.into_bytes())],
            true,
            None,
        )
        .await;
    let Err(DeployError::Parse { problems, .. }) = result else {
        panic!("expected a parse error, got {result:?}");
    };
    let (resource, problem) = &problems[0];
    assert_eq!(resource, &format!("{key}.bpmn"));
    // The send task is on line 8 of the model.
    assert_eq!(problem.line, Some(8), "{problem:?}");
    assert!(problem.column.is_some());
}

#[tokio::test]
async fn start_query_read_variables_and_delete() {
    let camunda = camunda();
    let key = unique_key("start");
    deploy_model(&camunda, &key, form_process(&key, "step")).await;
    let business_key = format!("{key}@example.com");
    let values = json!({"count": 3, "ratio": 0.25, "name": "Ann ü", "ok": true, "nothing": null, "supplier": {"tags": ["a", "b"]}});
    let started = camunda
        .start_process(&key, &business_key, &typed(values.as_object().unwrap()))
        .await
        .unwrap();
    assert_eq!(started.business_key.as_deref(), Some(business_key.as_str()));

    let query = ProcessInstanceQuery {
        business_key: Some(business_key.clone()),
        root_process_instances: true,
        active: true,
        ..Default::default()
    };
    let running = camunda.process_instances(&query).await.unwrap();
    assert_eq!(
        running.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        [started.id.as_str()]
    );

    // The types the engine holds, and the values read back.
    let raw = camunda.process_variables(&started.id).await.unwrap();
    let types: Vec<_> = ["count", "ratio", "name", "ok", "nothing", "supplier"]
        .iter()
        .map(|n| raw[*n]["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        types,
        ["Long", "Double", "String", "Boolean", "Null", "Json"]
    );
    let back = variables::variables_from_engine(&raw).unwrap();
    assert_eq!(serde_json::Value::Object(back), values);

    let history = camunda
        .historic_process_instance(&started.id)
        .await
        .unwrap();
    assert_eq!(history.state, "ACTIVE");
    assert_eq!(
        history.root_process_instance_id.as_deref(),
        Some(started.id.as_str())
    );

    camunda
        .delete_process_instance(&started.id, true)
        .await
        .unwrap();
    // Deleting again is not an error.
    camunda
        .delete_process_instance(&started.id, true)
        .await
        .unwrap();
    assert_eq!(
        camunda
            .historic_process_instance(&started.id)
            .await
            .unwrap()
            .state,
        "EXTERNALLY_TERMINATED"
    );
    assert!(camunda.process_instances(&query).await.unwrap().is_empty());

    let unknown = camunda
        .start_process(&unique_key("nope"), &business_key, &Default::default())
        .await;
    assert!(
        matches!(unknown, Err(CamundaError::NotFound(_))),
        "{unknown:?}"
    );
    let missing = camunda.historic_process_instance("no-such-instance").await;
    assert!(
        matches!(missing, Err(CamundaError::NotFound(_))),
        "{missing:?}"
    );
}

#[tokio::test]
async fn an_object_variable_the_engine_wrote_as_json_reads_back() {
    let camunda = camunda();
    let key = unique_key("object");
    deploy_model(&camunda, &key, form_process(&key, "step")).await;
    let instance = camunda
        .start_process(&key, "ann@example.com", &Default::default())
        .await
        .unwrap();
    // A Java collection serialized as JSON (how multi-instance collections are kept),
    // and a Date, written through the engine's own API.
    for (name, body) in [
        (
            "suppliers",
            json!({"value": r#"[{"name":"Acme","score":4}]"#, "type": "Object",
                   "valueInfo": {"objectTypeName": "java.util.ArrayList<java.util.LinkedHashMap>", "serializationDataFormat": "application/json"}}),
        ),
        (
            "due",
            json!({"value": "2025-01-31T10:15:30.000+0100", "type": "Date"}),
        ),
    ] {
        crate::engine::rest_send(
            reqwest::Method::PUT,
            &format!("/process-instance/{}/variables/{name}", instance.id),
            body,
        )
        .await;
    }
    let raw = camunda.process_variables(&instance.id).await.unwrap();
    let values = variables::variables_from_engine(&raw).unwrap();
    assert_eq!(values["suppliers"], json!([{"name": "Acme", "score": 4}]));
    assert_eq!(values["due"], json!("2025-01-31T09:15:30.000Z"));
    camunda
        .delete_process_instance(&instance.id, true)
        .await
        .unwrap();
}

#[tokio::test]
async fn correlation_tells_no_match_from_ambiguous_from_success() {
    let camunda = camunda();
    let key = unique_key("corr");
    deploy_model(&camunda, &key, form_process(&key, "step")).await;
    let instance = camunda
        .start_process(&key, "ann@example.com", &Default::default())
        .await
        .unwrap();
    let message = |name: &str, instance: &str| CorrelationMessage {
        message_name: name.into(),
        process_instance_id: Some(instance.into()),
        process_variables: typed(json!({"answer": 42}).as_object().unwrap()),
        result_enabled: true,
        ..Default::default()
    };

    // The send task has not completed: nothing waits for the message yet.
    let early = camunda.correlate(&message("step", &instance.id)).await;
    assert!(
        matches!(early, Err(CamundaError::NoMatchingExecution(_))),
        "{early:?}"
    );

    // The worker completes the send task; now the receive task waits.
    let tasks = camunda
        .fetch_and_lock(&fetch("w1", &key, 10_000))
        .await
        .unwrap();
    assert_eq!(tasks.len(), 1);
    camunda
        .complete_external_task(&tasks[0].id, "w1", &Default::default(), &Default::default())
        .await
        .unwrap();
    let waiting = camunda
        .executions_waiting_for(&instance.id, "step")
        .await
        .unwrap();
    assert_eq!(waiting.len(), 1);
    let subscriptions = camunda
        .message_subscriptions(&instance.id, "step")
        .await
        .unwrap();
    assert_eq!(subscriptions.len(), 1);
    assert_eq!(subscriptions[0].activity_id.as_deref(), Some("wait_step"));
    let tree = camunda.activity_instances(&instance.id).await.unwrap();
    assert!(tree.walk().iter().any(|a| a.activity_id == "wait_step"));

    let results = camunda
        .correlate(&message("step", &instance.id))
        .await
        .unwrap();
    assert_eq!(results.len(), 1);
    let history = camunda
        .historic_process_instance(&instance.id)
        .await
        .unwrap();
    assert_eq!(history.state, "COMPLETED");
    let answers = camunda
        .historic_variables(&[&instance.id], "answer")
        .await
        .unwrap();
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].value, json!(42));

    // Two executions wait for one message in one instance.
    let key = unique_key("ambiguous");
    deploy_model(&camunda, &key, parallel_waits(&key, "both")).await;
    let instance = camunda
        .start_process(&key, "ann@example.com", &Default::default())
        .await
        .unwrap();
    let ambiguous = camunda.correlate(&message("both", &instance.id)).await;
    assert!(
        matches!(ambiguous, Err(CamundaError::AmbiguousCorrelation(_))),
        "{ambiguous:?}"
    );
    // One of them, by its execution.
    let waiting = camunda
        .executions_waiting_for(&instance.id, "both")
        .await
        .unwrap();
    assert_eq!(waiting.len(), 2);
    camunda
        .trigger_message(&waiting[0].id, "both", &Default::default())
        .await
        .unwrap();
    assert_eq!(
        camunda
            .executions_waiting_for(&instance.id, "both")
            .await
            .unwrap()
            .len(),
        1
    );
    camunda
        .delete_process_instance(&instance.id, true)
        .await
        .unwrap();
}

#[tokio::test]
async fn external_tasks_fetch_complete_fail_and_lose_their_lock() {
    let camunda = camunda();
    let key = unique_key("tasks");
    deploy_model(&camunda, &key, form_process(&key, "step")).await;
    let a = camunda
        .start_process(&key, "a@example.com", &Default::default())
        .await
        .unwrap();
    let b = camunda
        .start_process(&key, "b@example.com", &Default::default())
        .await
        .unwrap();

    // Only this test's tasks: the fetch filters by this test's definition key.
    let mut tasks = camunda
        .fetch_and_lock(&fetch("w1", &key, 1_000))
        .await
        .unwrap();
    tasks.sort_by_key(|t| t.business_key.clone());
    assert_eq!(tasks.len(), 2);
    assert_eq!(tasks[0].activity_id, "step");
    assert_eq!(tasks[0].process_instance_id, a.id);
    assert!(
        tasks[0].retries.is_none(),
        "retries are null until the first failure"
    );

    // Task A: the lock runs out, another worker takes it, the first cannot complete.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let retaken = camunda
        .fetch_and_lock(&fetch("w2", &key, 60_000))
        .await
        .unwrap();
    assert_eq!(retaken.len(), 2, "expired locks are fetched again");
    let lost = camunda
        .complete_external_task(&tasks[0].id, "w1", &Default::default(), &Default::default())
        .await;
    assert!(
        matches!(lost, Err(CamundaError::LockedByOtherWorker(_))),
        "{lost:?}"
    );
    let extend = camunda.extend_lock(&tasks[0].id, "w1", 10_000).await;
    assert!(
        extend.is_err(),
        "a lock held by another worker cannot be extended"
    );
    camunda
        .extend_lock(&tasks[0].id, "w2", 10_000)
        .await
        .unwrap();
    camunda
        .complete_external_task(&tasks[0].id, "w2", &Default::default(), &Default::default())
        .await
        .unwrap();

    // Task B: a failure without retries leaves an incident; the task is not fetched again.
    camunda
        .fail_external_task(
            &tasks[1].id,
            "w2",
            "assignee unknown",
            "no such variable",
            0,
            0,
        )
        .await
        .unwrap();
    camunda.unlock(&tasks[1].id).await.unwrap();
    let again = camunda
        .fetch_and_lock(&fetch("w3", &key, 60_000))
        .await
        .unwrap();
    assert!(again.is_empty(), "{again:?}");
    let incidents: serde_json::Value =
        crate::engine::rest_get(&format!("/incident?processInstanceId={}", b.id)).await;
    assert_eq!(incidents.as_array().unwrap().len(), 1, "{incidents}");

    // A task that is gone.
    let gone = camunda
        .complete_external_task(
            "no-such-task",
            "w1",
            &Default::default(),
            &Default::default(),
        )
        .await;
    assert!(matches!(gone, Err(CamundaError::NotFound(_))), "{gone:?}");
    camunda.delete_process_instance(&b.id, true).await.unwrap();
}

#[tokio::test]
async fn history_shows_what_ended_and_what_was_deleted() {
    let camunda = camunda();
    let key = unique_key("hist");
    deploy_model(&camunda, &key, form_process(&key, "step")).await;
    let since = (chrono::Utc::now() - chrono::Duration::seconds(5))
        .format("%Y-%m-%dT%H:%M:%S%.3f%z")
        .to_string();
    let instance = camunda
        .start_process(&key, "ann@example.com", &Default::default())
        .await
        .unwrap();
    // Deleting an instance while its send task waits: the activity is cancelled and the
    // external task deleted before completion.
    camunda
        .delete_process_instance(&instance.id, true)
        .await
        .unwrap();

    let ended = camunda
        .historic_process_instances_finished_after(&since, 0, 500)
        .await
        .unwrap();
    assert!(
        ended
            .iter()
            .any(|p| p.id == instance.id && p.state == "EXTERNALLY_TERMINATED")
    );
    let cancelled = camunda
        .canceled_activity_instances_after(&since, 0, 500)
        .await
        .unwrap();
    assert!(
        cancelled
            .iter()
            .any(|a| a.process_instance_id == instance.id && a.activity_id == "step")
    );
    let deleted = camunda.external_task_deletions_after(&since).await.unwrap();
    assert!(
        deleted
            .iter()
            .any(|l| l.process_instance_id == instance.id && l.activity_id == "step")
    );
}

mod faults {
    use std::time::Duration;

    use ramp::camunda::CamundaError;
    use ramp::camunda::types::ProcessInstanceQuery;

    use crate::engine::{camunda, camunda_at, deploy_model, engine_url, form_process, unique_key};
    use crate::fault_proxy::{Fault, FaultProxy};

    fn engine_addr() -> std::net::SocketAddr {
        let url = engine_url();
        let host = url
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap()
            .to_owned();
        host.parse().unwrap()
    }

    #[tokio::test]
    async fn a_refused_connection_is_unavailable() {
        let closed = crate::helpers::closed_addr();
        let client = camunda_at(
            &format!("http://{closed}/engine-rest"),
            Duration::from_secs(1),
        );
        let result = client.version().await;
        assert!(
            matches!(result, Err(CamundaError::Unavailable(_))),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn a_call_that_hangs_past_the_timeout_has_an_unknown_outcome() {
        let proxy = FaultProxy::start(engine_addr(), Fault::Pass).await;
        let client = camunda_at(&proxy.url(), Duration::from_millis(800));
        client
            .version()
            .await
            .expect("through the proxy, the engine answers");

        proxy.set(Fault::Hang);
        let fresh = camunda_at(&proxy.url(), Duration::from_millis(800));
        let started = std::time::Instant::now();
        let result = fresh.version().await;
        assert!(
            matches!(result, Err(CamundaError::Timeout(_))),
            "{result:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the timeout held"
        );
    }

    #[tokio::test]
    async fn a_reset_mid_response_has_an_unknown_outcome_and_the_engine_may_have_acted() {
        let camunda = camunda();
        let key = unique_key("reset");
        deploy_model(&camunda, &key, form_process(&key, "step")).await;
        let proxy = FaultProxy::start(engine_addr(), Fault::ResetMidResponse).await;
        let client = camunda_at(&proxy.url(), Duration::from_secs(5));
        let business_key = format!("{key}@example.com");

        let result = client
            .start_process(&key, &business_key, &Default::default())
            .await;
        assert!(
            matches!(result, Err(CamundaError::Timeout(_))),
            "{result:?}"
        );
        // The engine did start the instance: "outcome unknown" was the truth.
        let query = ProcessInstanceQuery {
            business_key: Some(business_key),
            ..Default::default()
        };
        let running = camunda.process_instances(&query).await.unwrap();
        assert_eq!(running.len(), 1);
        camunda
            .delete_process_instance(&running[0].id, true)
            .await
            .unwrap();
    }
}

/// The demo process (`processes/`) from start to end, as a worker and ramp would
/// drive it: on the critical branch through the called process, and on the standard
/// branch straight to the review; approved, on to the reviewers' user task.
#[tokio::test]
async fn the_demo_process_runs_to_the_end_on_both_branches() {
    let camunda = camunda();
    // A copy under keys of this test's own: other runs on the shared engine may
    // deploy another VOE meanwhile.
    let key = crate::e2e::deploy_demo_copy().await;

    for (supplier_type, forms) in [
        (
            "critical",
            &["company_details", "risk_assessment", "qualify_supplier"][..],
        ),
        ("standard", &["company_details", "qualify_supplier"][..]),
    ] {
        let starter = format!("{}@example.com", unique_key("starter"));
        let root = camunda
            .start_process(&key, &starter, &Default::default())
            .await
            .unwrap();
        for form in forms {
            // Only this run's tasks: fetch by its business key (children inherit it).
            let request = FetchAndLock {
                worker_id: "demo".into(),
                max_tasks: 5,
                topics: vec![FetchTopic {
                    topic_name: "submit_form".into(),
                    lock_duration: 30_000,
                    local_variables: true,
                    include_extension_properties: true,
                    business_key: Some(starter.clone()),
                    ..Default::default()
                }],
                ..Default::default()
            };
            let tasks = camunda.fetch_and_lock(&request).await.unwrap();
            assert_eq!(
                tasks
                    .iter()
                    .map(|t| t.activity_id.as_str())
                    .collect::<Vec<_>>(),
                [*form]
            );
            let task = &tasks[0];
            if *form == "qualify_supplier" {
                // Assigned to the reviewer the first form named, by an input mapping.
                let assigned = &task.variables["assignedTo"];
                assert_eq!(assigned["value"], "bob@example.com", "{assigned}");
            }
            if *form == "risk_assessment" {
                assert_ne!(
                    task.process_instance_id, root.id,
                    "the form lives in the called process"
                );
                let child = camunda
                    .historic_process_instance(&task.process_instance_id)
                    .await
                    .unwrap();
                assert_eq!(
                    child.root_process_instance_id.as_deref(),
                    Some(root.id.as_str())
                );
            }
            camunda
                .complete_external_task(&task.id, "demo", &Default::default(), &Default::default())
                .await
                .unwrap();
            let answers = match *form {
                "company_details" => {
                    json!({"companyName": "Acme", "supplierType": supplier_type, "reviewerEmail": "bob@example.com"})
                }
                "risk_assessment" => {
                    json!({"riskScore": 2, "dataAccess": "internal", "mitigation": "Quarterly audits of access."})
                }
                _ => {
                    json!({"decision": "approve", "qualificationLevel": "A", "paymentTermsDays": 30})
                }
            };
            camunda
                .correlate(&CorrelationMessage {
                    message_name: (*form).into(),
                    process_instance_id: Some(task.process_instance_id.clone()),
                    process_variables: typed(answers.as_object().unwrap()),
                    result_enabled: true,
                    ..Default::default()
                })
                .await
                .unwrap();
        }
        // Approved: the engine's own user task, for the candidate group "reviewers"
        // (renamed in the copy), with its Camunda Form by reference, a due date and
        // a priority.
        let tasks = user_tasks(&root.id).await;
        assert_eq!(tasks.len(), 1, "{tasks:?}");
        let task = &tasks[0];
        assert_eq!(task["taskDefinitionKey"], "onboard_supplier");
        assert_eq!(task["assignee"], serde_json::Value::Null);
        assert_eq!(task["camundaFormRef"]["key"], "onboard_supplier");
        assert_eq!(task["camundaFormRef"]["binding"], "latest");
        assert_eq!(task["priority"], 60);
        assert!(task["due"].is_string(), "{task}");
        let id = task["id"].as_str().unwrap();
        let links: Vec<serde_json::Value> = rest_get(&format!("/task/{id}/identity-links")).await;
        let groups: Vec<_> = links
            .iter()
            .filter(|l| l["type"] == "candidate")
            .map(|l| l["groupId"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(groups, [crate::e2e::demo_reviewers(&key)]);
        let form: serde_json::Value = rest_get(&format!("/task/{id}/deployed-form")).await;
        assert_eq!(form["id"], "onboard_supplier");
        complete_user_task(
            id,
            json!({"supplierNumber": "S-104233", "bankDetailsVerified": true}),
        )
        .await;

        let history = camunda.historic_process_instance(&root.id).await.unwrap();
        assert_eq!(history.state, "COMPLETED", "{supplier_type}");
    }
}
