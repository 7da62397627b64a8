//! The user task poller against the real engine: what the engine's user tasks do
//! (created, claimed, completed, deleted there) reaches ramp's database within
//! seconds; one replica reads at a time; the watermark is the engine's time.

use std::future::Future;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ramp::proto::*;
use serde_json::{Value, json};

use crate::clock_skew::SkewedEngine;
use crate::engine::{camunda, deploy_model, engine_url, rest_send, unique_key};
use crate::helpers::{connect, fresh_database, spawn_app_on, spawn_app_with};
use crate::user_task_engine::{review_form, start_with, tasks_of, user_task_process};

/// Settings of a server that reads user tasks every 100 ms, with `extra` on top.
fn polling(extra: Value) -> Value {
    let mut settings = json!({"user_tasks": true, "user_task_poll_ms": 100});
    if let (Some(base), Some(extra)) = (settings.as_object_mut(), extra.as_object()) {
        base.extend(extra.clone());
    }
    settings
}

/// How long `condition` took to hold, checked every 50 ms; panics after `limit`.
async fn within<F: Future<Output = bool>>(
    limit: Duration,
    what: &str,
    mut condition: impl FnMut() -> F,
) -> Duration {
    let started = Instant::now();
    loop {
        if condition().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The form task of engine task `id` in the database at `url`: status, assignee,
/// candidate groups, withdrawal reason.
async fn stored(url: &str, id: &str) -> Option<(String, String, Vec<String>, Option<String>)> {
    connect(url)
        .await
        .query_opt(
            "SELECT status, assignee, candidate_groups, withdrawal_reason FROM form_tasks
             WHERE external_task_id = $1 AND kind = 'user_task'",
            &[&id],
        )
        .await
        .unwrap()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
}

async fn status_of(url: &str, id: &str) -> Option<String> {
    stored(url, id).await.map(|(status, ..)| status)
}

/// The lease row: owner, generation, watermark.
async fn lease(url: &str) -> (Option<uuid::Uuid>, i64, Option<DateTime<Utc>>) {
    let row = connect(url)
        .await
        .query_one(
            "SELECT lease_owner, lease_generation, watermark FROM user_task_watch",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

/// Waits until the server's first full read of the engine's open tasks (all the
/// shared engine's, other tests' included) has ended: from then on every read is
/// an incremental one.
async fn first_read_done(url: &str) {
    within(
        Duration::from_secs(60),
        "the first full read ends",
        || async { lease(url).await.2.is_some() },
    )
    .await;
}

/// Deletes the test's instances from the shared engine.
async fn delete_instances(ids: &[String]) {
    for id in ids {
        let _ = camunda().delete_process_instance(id, true).await;
    }
}

#[tokio::test]
async fn a_task_of_the_engine_reaches_the_inbox_and_follows_what_happens_to_it_there() {
    let app = spawn_app_with(polling(json!({}))).await;
    first_read_done(&app.database_url).await;
    let key = unique_key("poll_life");
    let group = format!("reviewers_{key}");
    // After the task the process waits on: its completion does not end the
    // process, so what ends its form is the poller's reading of the task's end.
    let attributes = format!(
        r#"camunda:candidateGroups="{group}" camunda:priority="80" camunda:formRef="form_{key}" camunda:formRefBinding="latest""#
    );
    camunda()
        .deploy(
            &key,
            vec![
                (
                    format!("{key}.bpmn"),
                    user_task_process(&key, &attributes)
                        .replace(
                            r#"<bpmn:sequenceFlow id="f2" sourceRef="review" targetRef="end"/>"#,
                            r#"<bpmn:sequenceFlow id="f2" sourceRef="review" targetRef="later"/>
    <bpmn:receiveTask id="later"/>
    <bpmn:sequenceFlow id="f3" sourceRef="later" targetRef="end"/>"#,
                        )
                        .into_bytes(),
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
        .unwrap();
    let business_key = format!("order-{key}@example.com");
    let instance = start_with(&key, &business_key, json!({"comment": "first look"})).await;
    let dropped = start_with(&key, &format!("dropped-{key}"), json!({})).await;
    let id = tasks_of(&instance).await.remove(0).id;
    let dropped_task = tasks_of(&dropped).await.remove(0).id;

    let admin = crate::client::Client::at(
        app.addr(),
        crate::client::ADMIN,
        crate::client::admin_token(),
    );
    let learned = within(
        Duration::from_secs(10),
        "the new task is listed",
        || async {
            admin
                .forms(ListFormTasksRequest {
                    business_key: business_key.clone(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .form_tasks
                .len()
                == 1
        },
    )
    .await;
    let listed = admin
        .forms(ListFormTasksRequest {
            business_key: business_key.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .form_tasks
        .remove(0);
    assert_eq!(listed.kind, FormTaskKind::UserTask as i32);
    assert_eq!(listed.candidate_groups, vec![group.clone()]);
    assert_eq!(listed.priority, 80);
    assert_eq!(listed.form_name, format!("form_{key}"));
    assert_eq!(listed.assignee, "");
    let detail = admin.form(&listed.id).await.unwrap();
    assert_eq!(detail.engine_task_id, id);
    // Prefilled from the task's form variables, read on its first sight.
    let db = app.db().await;
    let prefill: Value = db
        .query_one(
            "SELECT prefill FROM form_tasks WHERE external_task_id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(prefill["comment"], "first look");
    assert_eq!(listed.business_key, business_key);

    // Claimed in the engine, as Tasklist would.
    rest_send(
        reqwest::Method::POST,
        &format!("/task/{id}/claim"),
        json!({"userId": format!("ann_{key}")}),
    )
    .await;
    let claimed = within(Duration::from_secs(10), "the claim is learned", || async {
        stored(&app.database_url, &id)
            .await
            .is_some_and(|(_, assignee, ..)| assignee == format!("ann_{key}"))
    })
    .await;

    // Completed and deleted in the engine.
    rest_send(
        reqwest::Method::POST,
        &format!("/task/{id}/complete"),
        json!({"variables": {}}),
    )
    .await;
    rest_send(
        reqwest::Method::DELETE,
        &format!("/process-instance/{dropped}"),
        json!({}),
    )
    .await;
    let ended = within(Duration::from_secs(10), "both ends are seen", || async {
        status_of(&app.database_url, &id).await.as_deref() != Some("pending")
            && status_of(&app.database_url, &dropped_task).await.as_deref() != Some("pending")
    })
    .await;
    let (_, _, _, completed) = stored(&app.database_url, &id).await.unwrap();
    let (_, _, _, deleted) = stored(&app.database_url, &dropped_task).await.unwrap();
    assert_eq!(
        completed.as_deref(),
        Some("it was completed in the process engine")
    );
    // The instance's deletion may reach ramp first through the ended processes it
    // reconciles.
    assert!(
        [
            Some("the process no longer needs it"),
            Some("the process ended")
        ]
        .contains(&deleted.as_deref()),
        "{deleted:?}"
    );
    eprintln!("learned in {learned:?}, claim in {claimed:?}, ends in {ended:?}");
    delete_instances(&[instance]).await;
}

#[tokio::test]
async fn tasks_created_in_one_transaction_with_shared_timestamps_are_all_learned() {
    let app = spawn_app_with(polling(json!({}))).await;
    first_read_done(&app.database_url).await;
    let key = unique_key("poll_many");
    deploy_model(
        &camunda(),
        &key,
        user_task_process_many(&key, 40, &format!(r#"camunda:candidateUsers="ann_{key}""#)),
    )
    .await;
    let instance = start_with(&key, "many", json!({})).await;
    let tasks = tasks_of(&instance).await;
    assert_eq!(tasks.len(), 40);
    let mut stamps: Vec<DateTime<Utc>> = tasks.iter().map(|t| t.created).collect();
    stamps.sort();
    stamps.dedup();
    assert!(
        stamps.len() < tasks.len(),
        "the premise: some of the tasks share their creation time"
    );
    within(Duration::from_secs(10), "every task is learned", || async {
        let db = connect(&app.database_url).await;
        let ids: Vec<String> = tasks.iter().map(|t| t.id.clone()).collect();
        let count: i64 = db
            .query_one(
                "SELECT count(*) FROM form_tasks WHERE external_task_id = ANY($1) AND status = 'pending'",
                &[&ids],
            )
            .await
            .unwrap()
            .get(0);
        count == 40
    })
    .await;
    delete_instances(&[instance]).await;
}

/// A process whose user task `review` runs `count` times in parallel (a
/// multi-instance): all its tasks are created in one transaction.
fn user_task_process_many(key: &str, count: u32, attributes: &str) -> String {
    user_task_process(key, attributes).replace(
        &format!(r#"<bpmn:userTask id="review" name="Review" {attributes}/>"#),
        &format!(
            r#"<bpmn:userTask id="review" name="Review" {attributes}><bpmn:multiInstanceLoopCharacteristics><bpmn:loopCardinality>{count}</bpmn:loopCardinality></bpmn:multiInstanceLoopCharacteristics></bpmn:userTask>"#
        ),
    )
}

/// The engine time of the newest of `tasks`' creation.
fn newest_created(tasks: &[ramp::camunda::types::Task]) -> DateTime<Utc> {
    tasks.iter().map(|t| t.created).max().unwrap()
}

/// A server that has done its first full read and will not read again for a few
/// seconds; then tasks are created and the watermark is moved past their stamps
/// (as a read of a later change, committed before theirs, would have moved it).
/// Answers whether the task is learned within `wait`.
async fn learned_behind_the_watermark(overlap_ms: u64, wait: Duration) -> bool {
    let app = spawn_app_with(polling(json!({
        "user_task_poll_ms": 4000,
        "user_task_overlap_ms": overlap_ms,
    })))
    .await;
    first_read_done(&app.database_url).await;
    let key = unique_key("poll_late");
    deploy_model(
        &camunda(),
        &key,
        user_task_process(&key, &format!(r#"camunda:candidateUsers="ann_{key}""#)),
    )
    .await;
    let instance = start_with(&key, "late", json!({})).await;
    let tasks = tasks_of(&instance).await;
    // 50 ms past the task's stamp: a later change was read, this one committed
    // after that read.
    let past = newest_created(&tasks) + chrono::Duration::milliseconds(50);
    connect(&app.database_url)
        .await
        .execute("UPDATE user_task_watch SET watermark = $1", &[&past])
        .await
        .unwrap();
    let started = Instant::now();
    let mut learned = false;
    while started.elapsed() < wait {
        if status_of(&app.database_url, &tasks[0].id).await.is_some() {
            learned = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    delete_instances(&[instance]).await;
    learned
}

#[tokio::test]
async fn a_change_committed_after_a_later_one_was_read_is_read_through_the_overlap() {
    assert!(
        learned_behind_the_watermark(5_000, Duration::from_secs(10)).await,
        "the overlap reads below the watermark"
    );
}

#[tokio::test]
async fn without_the_overlap_a_change_stamped_below_the_watermark_is_missed() {
    // The other side of the test above: the overlap is what catches it (until the
    // next full read, which these settings put five minutes away).
    assert!(!learned_behind_the_watermark(0, Duration::from_secs(6)).await);
}

#[tokio::test]
async fn the_watermark_is_the_engines_time_whatever_ramps_clock_says() {
    // To ramp, the engine's clock runs an hour behind its own (and the database's):
    // a watermark from ramp's clock would ask the engine for changes an hour in its
    // future, and find none.
    let skewed = SkewedEngine::start(&engine_url(), chrono::Duration::hours(1)).await;
    let app = spawn_app_with(polling(json!({"camunda_url": skewed.url()}))).await;
    first_read_done(&app.database_url).await;
    let key = unique_key("poll_skew");
    deploy_model(
        &camunda(),
        &key,
        user_task_process(&key, &format!(r#"camunda:candidateUsers="ann_{key}""#)),
    )
    .await;
    let instance = start_with(&key, "skew", json!({})).await;
    let id = tasks_of(&instance).await.remove(0).id;
    within(Duration::from_secs(10), "the task is learned", || async {
        status_of(&app.database_url, &id).await.as_deref() == Some("pending")
    })
    .await;
    let watermark = lease(&app.database_url).await.2.unwrap();
    let behind = Utc::now() - watermark;
    assert!(
        behind > chrono::Duration::minutes(59) && behind < chrono::Duration::minutes(61),
        "the watermark is the engine's time as ramp reads it: {behind}"
    );
    rest_send(
        reqwest::Method::POST,
        &format!("/task/{id}/complete"),
        json!({"variables": {}}),
    )
    .await;
    within(
        Duration::from_secs(10),
        "the completion is learned",
        || async { status_of(&app.database_url, &id).await.as_deref() != Some("pending") },
    )
    .await;
}

#[tokio::test]
async fn one_of_two_servers_reads_and_the_other_takes_over_when_it_stops() {
    let database = fresh_database().await;
    let settings = polling(json!({"user_task_lease_ms": 3000}));
    let first = spawn_app_on(&database, settings.clone()).await;
    first_read_done(&database).await;
    let (holder, generation, _) = lease(&database).await;
    let second = spawn_app_on(&database, settings).await;

    // For two seconds (twenty reads of each) the lease stays with the first, and a
    // task is learned once.
    let key = unique_key("poll_two");
    deploy_model(
        &camunda(),
        &key,
        user_task_process(&key, &format!(r#"camunda:candidateUsers="ann_{key}""#)),
    )
    .await;
    let one = start_with(&key, "one", json!({})).await;
    let one_task = tasks_of(&one).await.remove(0).id;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (owner, now_generation, _) = lease(&database).await;
        assert_eq!((owner, now_generation), (holder, generation));
    }
    assert_eq!(
        status_of(&database, &one_task).await.as_deref(),
        Some("pending")
    );
    let added: i64 = connect(&database)
        .await
        .query_one(
            "SELECT count(*) FROM form_changes c JOIN form_tasks f ON f.id = c.form_task_id
             WHERE f.external_task_id = $1 AND c.kind = 'added'",
            &[&one_task],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(added, 1, "learned once, for its one candidate");

    first.app.shutdown();
    first.app.stopped().await.unwrap();
    within(
        Duration::from_secs(5),
        "the second server takes over",
        || async {
            let (owner, now_generation, _) = lease(&database).await;
            owner.is_some() && owner != holder && now_generation > generation
        },
    )
    .await;
    let two = start_with(&key, "two", json!({})).await;
    let two_task = tasks_of(&two).await.remove(0).id;
    within(Duration::from_secs(10), "the new holder learns", || async {
        status_of(&database, &two_task).await.as_deref() == Some("pending")
    })
    .await;
    drop(second);
    delete_instances(&[one, two]).await;
}

#[tokio::test]
async fn the_lease_has_one_holder_and_a_holder_that_lost_it_cannot_move_the_watermark() {
    use ramp::store::user_task_watch::{advance, release, take_or_renew};
    let database = fresh_database().await;
    let store = ramp::store::Store::new(
        &secrecy::SecretString::from(database.clone()),
        4,
        Duration::from_secs(5),
    )
    .unwrap();
    store.migrate().await.unwrap();
    let client = store.client().await.unwrap();
    let (a, b) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    let length = Duration::from_millis(300);
    let resync = Duration::from_secs(300);
    let t = |s: i64| DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap();

    let first = take_or_renew(&client, a, length, resync)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (first.generation, first.watermark, first.resync_due),
        (1, None, true)
    );
    assert!(
        take_or_renew(&client, b, length, resync)
            .await
            .unwrap()
            .is_none()
    );
    assert!(advance(&client, a, 1, t(10), true).await.unwrap());
    let renewed = take_or_renew(&client, a, length, resync)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (renewed.generation, renewed.watermark, renewed.resync_due),
        (1, Some(t(10)), false)
    );
    assert!(
        !advance(&client, b, 1, t(20), false).await.unwrap(),
        "b holds nothing"
    );

    // a stalls past its lease; b takes over and moves on.
    tokio::time::sleep(length + Duration::from_millis(100)).await;
    let taken = take_or_renew(&client, b, length, resync)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((taken.generation, taken.watermark), (2, Some(t(10))));
    assert!(advance(&client, b, 2, t(30), false).await.unwrap());
    // a wakes up: neither its late advance nor one in its old generation lands.
    assert!(!advance(&client, a, 1, t(15), false).await.unwrap());
    assert!(
        take_or_renew(&client, a, length, resync)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(lease(&database).await, (Some(b), 2, Some(t(30))));

    // Given up on shutdown, the lease is free at once.
    assert!(release(&client, b).await.unwrap());
    let back = take_or_renew(&client, a, length, resync)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((back.generation, back.watermark), (3, Some(t(30))));
}

#[tokio::test]
async fn a_lease_whose_holder_died_is_taken_over_once_it_runs_out() {
    // A replica that died holding the lease: it never gives it up.
    let database = fresh_database().await;
    let migrated = spawn_app_on(&database, json!({})).await;
    let dead = uuid::Uuid::now_v7();
    connect(&database)
        .await
        .execute(
            "UPDATE user_task_watch SET lease_owner = $1, lease_generation = 5,
                lease_until = now() + interval '3 seconds'",
            &[&dead],
        )
        .await
        .unwrap();
    let app = spawn_app_on(&database, polling(json!({"user_task_lease_ms": 1000}))).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        lease(&database).await.0,
        Some(dead),
        "a lease that has not run out stays its holder's"
    );
    let taken = within(
        Duration::from_secs(10),
        "the lease is taken over",
        || async {
            let (owner, generation, watermark) = lease(&database).await;
            owner != Some(dead) && generation == 6 && watermark.is_some()
        },
    )
    .await;
    eprintln!("taken over {taken:?} after the first second");

    let key = unique_key("poll_dead");
    deploy_model(
        &camunda(),
        &key,
        user_task_process(&key, &format!(r#"camunda:candidateUsers="ann_{key}""#)),
    )
    .await;
    let instance = start_with(&key, "dead", json!({})).await;
    let id = tasks_of(&instance).await.remove(0).id;
    within(Duration::from_secs(10), "the new holder learns", || async {
        status_of(&app.database_url, &id).await.as_deref() == Some("pending")
    })
    .await;
    drop(migrated);
    delete_instances(&[instance]).await;
}
