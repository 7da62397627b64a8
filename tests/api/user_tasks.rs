//! The engine's own user tasks in the inbox (#23): who sees one, how its changes
//! reach their streams, claim and unclaim.

use chrono::{DateTime, TimeZone, Utc};
use ramp::forms::{EngineUserTask, UserTaskEnd};
use serde_json::json;

use crate::helpers::{column, scalar, spawn_app};

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
