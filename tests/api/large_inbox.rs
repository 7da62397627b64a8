//! An inbox too large for one gRPC message: its snapshot comes in pages that a
//! client with gRPC's default limits reads (issue #19, finding 9).

use std::collections::HashSet;
use std::time::Duration;

use prost::Message;
use ramp::proto::pending_forms_response::Event;
use tokio_stream::StreamExt;

use crate::forms::{next, quiet, user};
use crate::helpers::spawn_app;

/// What a gRPC client accepts per message unless told otherwise.
const DEFAULT_LIMIT: usize = 4 * 1024 * 1024;

/// `count` pending forms of `assignee`, stored as the write path stores them (the
/// form task and its `added` change), with names as long as real models have.
async fn pending_forms(db: &tokio_postgres::Client, assignee: &str, count: i32) {
    db.execute(
        "WITH forms AS (
            INSERT INTO form_tasks (id, external_task_id, business_key, form_name, message_name,
                assignee, status, process_instance_id, root_process_instance_id,
                process_definition_id, process_definition_key, activity_id, created_at, updated_at)
            SELECT gen_random_uuid(), gen_random_uuid()::text, $1, $2, $2, $1, 'pending', gen_random_uuid()::text,
                gen_random_uuid()::text, $3 || ':1:' || gen_random_uuid(), $3, $2,
                now() - make_interval(secs => $4 - n), now() - make_interval(secs => $4 - n)
            FROM generate_series(1, $4) n
            RETURNING *
        )
        INSERT INTO form_changes (form_task_id, assignee, kind, summary)
        SELECT id, assignee, 'added', jsonb_build_object(
            'id', id, 'form_name', form_name, 'business_key', business_key, 'assignee', assignee,
            'status', 'pending', 'process_instance_id', process_instance_id,
            'root_process_instance_id', root_process_instance_id,
            'process_definition_key', process_definition_key, 'created_at', created_at,
            'updated_at', updated_at, 'has_draft', false, 'title', form_name)
        FROM forms",
        &[
            &assignee,
            &"supplier_onboarding_risk_assessment_and_compliance_review_by_the_regional_procurement_office",
            &"supplier_onboarding_with_compliance_checks",
            &count,
        ],
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn ten_thousand_pending_forms_reach_a_client_with_default_limits_in_pages() {
    // Seen failing before the fix: the snapshot was one message of about 5 MiB, and
    // the client's stream failed with "decoded message length too large".
    let app = spawn_app().await;
    let ann = user();
    pending_forms(&app.db().await, &ann, 10_000).await;

    // The test client is tonic's generated client, as any client builds it: limits
    // left as they are.
    let as_ann = app.as_user(&ann);
    let mut stream = as_ann.pending_forms("").await.unwrap();
    let mut forms = Vec::new();
    let mut pages = 0;
    let mut total_bytes = 0;
    let cursor = loop {
        let message = tokio::time::timeout(Duration::from_secs(60), stream.next())
            .await
            .expect("the snapshot within 60 s")
            .expect("the stream is open")
            .expect("every message within the client's limit");
        let size = message.encoded_len();
        assert!(size < DEFAULT_LIMIT, "a message of {size} bytes");
        total_bytes += size;
        let Some(Event::Snapshot(page)) = message.event else {
            panic!("expected a snapshot page, got {:?}", message.event);
        };
        pages += 1;
        forms.extend(page.form_tasks);
        if !page.more_pages {
            assert!(
                !message.cursor.is_empty(),
                "the last page carries the cursor"
            );
            break message.cursor;
        }
        assert!(message.cursor.is_empty(), "only the last page has a cursor");
    };
    println!(
        "{} forms in {pages} pages, {total_bytes} bytes in all",
        forms.len()
    );
    assert!(
        total_bytes > DEFAULT_LIMIT,
        "the inbox is larger than one message may be ({total_bytes} bytes)"
    );
    assert!(pages > 1);
    assert_eq!(forms.len(), 10_000, "every form");
    let unique: HashSet<&str> = forms.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(unique.len(), 10_000, "each once");
    assert!(
        forms
            .windows(2)
            .all(|w| w[0].create_time.as_ref().map(|t| (t.seconds, t.nanos))
                <= w[1].create_time.as_ref().map(|t| (t.seconds, t.nanos))),
        "oldest first across the pages"
    );

    // The cursor of the last page resumes: nothing again, then what changes.
    let mut resumed = as_ann.pending_forms(&cursor).await.unwrap();
    assert!(quiet(&mut resumed, Duration::from_millis(1_000)).await);
    pending_forms(&app.db().await, &ann, 1).await;
    assert!(matches!(
        next(&mut resumed).await.event,
        Some(Event::Added(_))
    ));
    assert!(matches!(
        next(&mut stream).await.event,
        Some(Event::Added(_))
    ));
}
