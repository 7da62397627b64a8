//! A user's inbox read page by page (ListFormTasks without filters): the pages
//! hold exactly what the visibility rule lets the user see, each form once, oldest
//! first, across every arm of the rule, states and ties of creation time.

use std::time::Duration;

use chrono::{DateTime, Utc};
use ramp::forms::FormState;
use ramp::store::Store;
use ramp::store::forms::{ListQuery, Viewer, list};
use secrecy::SecretString;
use uuid::Uuid;

use crate::helpers::{connect, fresh_database};

async fn migrated_store() -> (Store, tokio_postgres::Client) {
    let url = fresh_database().await;
    let store = Store::new(&SecretString::from(url.clone()), 2, Duration::from_secs(10)).unwrap();
    store.migrate().await.expect("migrations apply");
    (store, connect(&url).await)
}

/// `count` form tasks of every shape the visibility rule tells apart: send-task
/// forms and user tasks, assigned to the viewers or to others or to nobody, with
/// candidate users and groups, in every state, several sharing a creation time.
async fn mixed_forms(db: &tokio_postgres::Client, count: i32) {
    db.execute(
        "INSERT INTO form_tasks (id, external_task_id, business_key, form_name, message_name,
             assignee, status, process_instance_id, root_process_instance_id,
             process_definition_id, process_definition_key, activity_id, created_at, updated_at,
             kind, candidate_users, candidate_groups)
         SELECT gen_random_uuid(), 'mixed-' || n, 'bk', 'f', 'm',
             CASE WHEN n % 7 IN (0, 1) THEN (ARRAY['ann@example.com', 'bob@example.com'])[1 + n % 2]
                  WHEN n % 7 IN (2, 3) THEN (ARRAY['ann', 'bob', 'cid'])[1 + n % 3]
                  ELSE '' END,
             (ARRAY['pending', 'pending', 'completed', 'withdrawn'])[1 + (n / 7) % 4],
             'pi-' || n, 'pi-' || n, 'def', 'mixed', 'a',
             -- Ties: every three forms share a creation time.
             timestamptz '2026-01-01' + make_interval(secs => n / 3), now(),
             CASE WHEN n % 7 IN (0, 1) THEN 'send_task' ELSE 'user_task' END,
             CASE WHEN n % 5 = 0 THEN ARRAY['ann'] WHEN n % 5 = 1 THEN ARRAY['bob', 'ann']
                  ELSE '{}'::text[] END,
             CASE WHEN n % 4 = 0 THEN ARRAY['clerks'] WHEN n % 4 = 1 THEN ARRAY['clerks', 'reviewers']
                  ELSE '{}'::text[] END
         FROM generate_series(1, $1) n",
        &[&count],
    )
    .await
    .unwrap();
    db.batch_execute("ANALYZE form_tasks").await.unwrap();
}

/// What the visibility rule (`store::forms::VISIBLE`, `rules::may_see_task`)
/// lets `viewer` see in `statuses` (all when empty), oldest first.
async fn visible_ids(db: &tokio_postgres::Client, viewer: &Viewer, statuses: &[&str]) -> Vec<Uuid> {
    crate::helpers::column(
        db,
        "SELECT id FROM form_tasks
         WHERE (cardinality($4::text[]) = 0 OR status = ANY($4))
           AND ((kind = 'send_task' AND assignee = $1)
             OR (kind = 'user_task' AND assignee <> '' AND assignee = $2)
             OR (kind = 'user_task' AND assignee = ''
                 AND (candidate_users @> ARRAY[$2::text] OR candidate_groups && $3::text[])))
         ORDER BY created_at, id",
        &[&viewer.email, &viewer.user_id, &viewer.groups, &statuses],
    )
    .await
}

fn viewer(email: &str, user_id: &str, groups: &[&str]) -> Viewer {
    Viewer {
        email: email.to_owned(),
        user_id: user_id.to_owned(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        keys: Vec::new(),
    }
}

#[tokio::test]
async fn a_users_pages_hold_what_they_may_see_once_each_oldest_first() {
    let (store, db) = migrated_store().await;
    mixed_forms(&db, 600).await;
    let client = store.client().await.unwrap();
    let viewers = [
        viewer("ann@example.com", "ann", &["clerks"]),
        viewer("bob@example.com", "bob", &["reviewers", "clerks"]),
        viewer("cid@example.com", "cid", &[]),
        // A user without an engine user id sees no user task by id.
        viewer("dee@example.com", "", &["reviewers"]),
    ];
    let state_sets: [&[FormState]; 4] = [
        &[],
        &[FormState::Pending],
        &[FormState::Completed, FormState::Withdrawn],
        &[FormState::Pending, FormState::Withdrawn],
    ];
    for viewer in &viewers {
        for statuses in state_sets {
            let words: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
            let expected = visible_ids(&db, viewer, &words).await;
            assert!(!expected.is_empty(), "{viewer:?} {words:?} sees something");
            for page_size in [1_i64, 7, 50, 1000] {
                let mut seen = Vec::new();
                let mut after: Option<(DateTime<Utc>, Uuid)> = None;
                loop {
                    let page = list(
                        &client,
                        &ListQuery {
                            assignee: None,
                            viewer: Some(viewer),
                            statuses,
                            business_key: None,
                            root_process_instance_id: None,
                            after,
                            limit: page_size,
                        },
                    )
                    .await
                    .unwrap();
                    assert!(page.len() as i64 <= page_size);
                    seen.extend(page.iter().map(|f| *f.id.as_uuid()));
                    match page.last() {
                        Some(last) if page.len() as i64 == page_size => {
                            after = Some((last.created_at, *last.id.as_uuid()));
                        }
                        _ => break,
                    }
                }
                assert_eq!(
                    seen, expected,
                    "{viewer:?}, states {words:?}, pages of {page_size}"
                );
            }
        }
    }
}
