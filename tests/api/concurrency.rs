//! Concurrency across two replicas on one database, counted by the checker:
//! duplicate starts racing, one form submitted many times at once, and a thousand
//! forms created and submitted at once.

use std::collections::HashMap;

use futures::StreamExt;
use ramp::camunda::types::{ExternalTask, FetchTopic};
use ramp::proto::*;
use serde_json::json;
use tonic::Code;

use crate::checker::{AcceptedSubmission, FIELD, Ledger};
use crate::client::Client;
use crate::engine::camunda;
use crate::forms::{created_id, user};
use crate::helpers::{TestApp, spawn_app_on, spawn_app_with};
use crate::load::{Inboxes, checker, deploy_looping_model};

/// Two replicas sharing a fresh database, users allowed to start `key`.
async fn two_replicas(key: &str) -> (TestApp, TestApp) {
    let settings = json!({
        "startable_definitions": key,
        "delivery_poll_ms": 250,
        "stream_heartbeat_secs": 2,
    });
    let a = spawn_app_with(settings.clone()).await;
    let b = spawn_app_on(&a.database_url, settings).await;
    (a, b)
}

/// Starts `count` instances of `key` in the engine directly, one per new user, and
/// completes their send tasks as a worker would (their receive tasks then wait).
/// Returns (user, instance, external task) per instance.
async fn instances_waiting(key: &str, count: usize) -> Vec<(String, String, ExternalTask)> {
    let started: Vec<(String, String)> = futures::stream::iter(0..count)
        .map(|_| async {
            let user = user();
            let id = crate::engine::start_instance(key, &user).await;
            (user, id)
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut tasks: HashMap<String, ExternalTask> = HashMap::new();
    while tasks.len() < count {
        let by_key = FetchTopic {
            process_definition_key: Some(key.to_owned()),
            ..Default::default()
        };
        let fetched = crate::engine::fetch_send_tasks("storm", 500, 600_000, by_key).await;
        assert!(
            !fetched.is_empty(),
            "{} of {count} tasks fetched",
            tasks.len()
        );
        for task in fetched {
            tasks.insert(task.process_instance_id.clone(), task);
        }
    }
    futures::stream::iter(tasks.values())
        .map(|task| async move {
            camunda()
                .complete_external_task(&task.id, "storm", &Default::default(), &Default::default())
                .await
                .unwrap()
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    started
        .into_iter()
        .map(|(user, id)| {
            let task = tasks.remove(&id).unwrap();
            (user, id, task)
        })
        .collect()
}

fn form_request(user: &str, task: &ExternalTask) -> CreateFormTaskRequest {
    CreateFormTaskRequest {
        external_task_id: task.id.clone(),
        process_instance_id: task.process_instance_id.clone(),
        business_key: user.into(),
        activity_id: task.activity_id.clone(),
        activity_instance_id: task.activity_instance_id.clone().unwrap_or_default(),
        execution_id: task.execution_id.clone().unwrap_or_default(),
        ..Default::default()
    }
}

fn data(value: &str) -> prost_types::Struct {
    ramp::json::json_to_struct(json!({ FIELD: value }).as_object().unwrap())
}

#[tokio::test]
async fn a_duplicate_start_storm_across_two_replicas_starts_each_key_once() {
    let key = deploy_looping_model().await;
    let (a, b) = two_replicas(&key).await;
    let channels = [a.channel().await, b.channel().await];
    let ledger = Ledger::default();
    let users: Vec<String> = (0..10).map(|_| user()).collect();
    // Ten starts per user at once, each with a request id of its own, half on each
    // replica.
    let attempts = users
        .iter()
        .flat_map(|user| (0..10).map(move |n| (user.clone(), n)));
    let answers: Vec<(String, Result<Process, tonic::Status>)> = futures::stream::iter(attempts)
        .map(|(user, n)| {
            let client = Client::user_on(&channels[n % 2], &user);
            let ledger = ledger.clone();
            let key = key.clone();
            async move {
                ledger.start_attempted(&user);
                let answer = client
                    .start_with(StartProcessRequest {
                        definition_key: key,
                        business_key: user.clone(),
                        variables: None,
                        request_id: format!("storm-{n}"),
                    })
                    .await;
                (user, answer)
            }
        })
        .buffer_unordered(100)
        .collect()
        .await;
    let mut winners: HashMap<String, usize> = HashMap::new();
    let mut refused = 0;
    for (user, answer) in answers {
        match answer {
            Ok(process) => {
                assert_eq!(process.state(), ProcessState::Active, "{process:?}");
                ledger.start_accepted(&user, &process.engine_instance_id);
                *winners.entry(user).or_default() += 1;
            }
            Err(status) => {
                assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
                refused += 1;
            }
        }
    }
    crate::report!(
        "start storm: 100 starts, {} won, {refused} ALREADY_EXISTS",
        winners.len()
    );
    assert_eq!(winners.len(), users.len(), "every key started");
    assert!(winners.values().all(|n| *n == 1), "{winners:?}");
    let mut checker = checker(&a.database_url, &key);
    checker.expect_forms = false; // no worker: the starts are what counts
    checker
        .check(&ledger)
        .await
        .assert_nothing_lost_or_duplicated("duplicate-start storm");
}

#[tokio::test]
async fn one_form_submitted_twenty_times_at_once_across_two_replicas_is_delivered_once() {
    let key = deploy_looping_model().await;
    let (a, b) = two_replicas(&key).await;
    let ledger = Ledger::default();
    let inboxes = Inboxes::new(&[a.addr(), b.addr()], &ledger);
    let (user, instance, task) = instances_waiting(&key, 1).await.remove(0);
    inboxes.open(&user, 1).await;
    let form = created_id(&a, form_request(&user, &task)).await;

    let channels = [a.channel().await, b.channel().await];
    let answers: Vec<(usize, Result<Submission, tonic::Status>)> = futures::stream::iter(0..20)
        .map(|n| {
            let client = Client::user_on(&channels[n % 2], &user);
            let form = form.clone();
            async move {
                let data = data(&format!("answer {n}"));
                let request_id = format!("submit-{n}");
                (n, client.submit_once(&form, data, &request_id).await)
            }
        })
        .buffer_unordered(20)
        .collect()
        .await;
    let mut winners = Vec::new();
    for (n, answer) in answers {
        match answer {
            Ok(submission) => winners.push((n, submission)),
            Err(status) => assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}"),
        }
    }
    crate::report!("submit storm: 20 submits, {} won", winners.len());
    assert_eq!(winners.len(), 1, "one winner");
    let (n, submission) = winners.remove(0);
    ledger.start_accepted(&user, &instance);
    ledger.submission_accepted(AcceptedSubmission {
        form_id: form,
        instance,
        submission_id: submission.id,
        value: format!("answer {n}"),
    });
    checker(&a.database_url, &key)
        .check(&ledger)
        .await
        .assert_nothing_lost_or_duplicated("one form, 20 concurrent submits");
    drop(inboxes);
}

#[tokio::test]
async fn a_thousand_forms_created_and_submitted_at_once_across_two_replicas() {
    const FORMS: usize = 1_000;
    let key = deploy_looping_model().await;
    let (a, b) = two_replicas(&key).await;
    let ledger = Ledger::default();
    let inboxes = Inboxes::new(&[a.addr(), b.addr()], &ledger);
    let began = std::time::Instant::now();
    let cases = instances_waiting(&key, FORMS).await;
    let phase = |what: &str| {
        crate::report!(
            "1,000 forms: {what} after {:.1} s",
            began.elapsed().as_secs_f64()
        )
    };
    phase("instances waiting in the engine");
    futures::stream::iter(cases.iter().enumerate())
        .for_each_concurrent(50, |(n, (user, instance, _))| {
            ledger.start_accepted(user, instance);
            inboxes.open(user, n)
        })
        .await;
    phase("inboxes open");
    let channels = [a.channel().await, b.channel().await];

    // Created at once, each on either replica (the inbox may be on the other).
    let created: Vec<String> = futures::stream::iter(cases.iter().enumerate())
        .map(|(n, (user, _, task))| {
            let worker = Client::worker_on(&channels[(n / 2) % 2]);
            let request = form_request(user, task);
            async move { worker.create_form(request).await.unwrap() }
        })
        .buffered(100)
        .collect()
        .await;

    phase("forms created");
    // Submitted at once.
    let submitted: Vec<Submission> = futures::stream::iter(cases.iter().zip(&created).enumerate())
        .map(|(n, ((user, _, _), form))| {
            let client = Client::user_on(&channels[n % 2], user);
            async move {
                let data = data(&format!("value of {user}"));
                let request_id = format!("submit-{form}");
                client.submit_once(form, data, &request_id).await.unwrap()
            }
        })
        .buffered(100)
        .collect()
        .await;
    for (((user, instance, _), form), submission) in cases.iter().zip(created).zip(submitted) {
        ledger.submission_accepted(AcceptedSubmission {
            form_id: form,
            instance: instance.clone(),
            submission_id: submission.id,
            value: format!("value of {user}"),
        });
    }
    phase("forms submitted");
    checker(&a.database_url, &key)
        .check(&ledger)
        .await
        .assert_nothing_lost_or_duplicated("1,000 forms across two replicas");
    phase("checked");
    drop(inboxes);
}

#[tokio::test]
async fn more_submits_at_once_than_pooled_connections_all_succeed() {
    // Two pooled connections, eight submits at once: a submit that needed a second
    // connection while holding its first would starve the pool. The forms are made
    // on another replica, so the submitting one has not seen their schema yet.
    let key = deploy_looping_model().await;
    let maker = spawn_app_with(json!({})).await;
    let app = spawn_app_on(
        &maker.database_url,
        json!({"database_pool_size": 2, "database_timeout_ms": 2_000}),
    )
    .await;
    let cases = instances_waiting(&key, 8).await;
    let worker = Client::worker_on(&maker.channel().await);
    let mut forms = Vec::new();
    for (user, _, task) in &cases {
        let created = worker
            .create_form_task(form_request(user, task))
            .await
            .unwrap()
            .form_task
            .unwrap();
        assert!(created.schema.is_some(), "the form has its schema");
        forms.push(created.summary.unwrap().id);
    }
    let channel = app.channel().await;
    let answers =
        futures::future::join_all(cases.iter().zip(&forms).map(|((user, _, _), form)| {
            let client = Client::user_on(&channel, user);
            async move { client.submit(form, data("Acme")).await }
        }))
        .await;
    for answer in answers {
        answer.expect("every submit succeeds");
    }
}
