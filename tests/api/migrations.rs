use std::time::Duration;

use ramp::store::Store;
use secrecy::SecretString;
use serde_json::json;

use crate::helpers::{fresh_database, test_config, wait_until_serving};

fn store(url: &str) -> Store {
    Store::new(
        &SecretString::from(url.to_owned()),
        2,
        Duration::from_secs(10),
    )
    .unwrap()
}

/// Everything a migration could change: tables, columns, indexes, constraints, and
/// the migration history itself.
async fn schema_snapshot(url: &str) -> Vec<String> {
    let client = crate::helpers::connect(url).await;
    crate::helpers::column(
        &client,
        "SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable
               FROM information_schema.columns WHERE table_schema = 'public'
             UNION ALL
             SELECT 'index ' || indexname || ' ' || indexdef FROM pg_indexes WHERE schemaname = 'public'
             UNION ALL
             SELECT 'constraint ' || conname || ' ' || pg_get_constraintdef(oid)
               FROM pg_constraint WHERE connamespace = 'public'::regnamespace
             UNION ALL
             SELECT 'migration ' || version || ' ' || name || ' ' || applied_on
               FROM refinery_schema_history
             ORDER BY 1",
        &[],
    )
    .await
}

async fn applied_versions(url: &str) -> Vec<i32> {
    let client = crate::helpers::connect(url).await;
    crate::helpers::column(
        &client,
        "SELECT version FROM refinery_schema_history ORDER BY version",
        &[],
    )
    .await
}

#[tokio::test]
async fn migrations_create_the_tables() {
    let url = fresh_database().await;
    store(&url).migrate().await.expect("migrations apply");

    let snapshot = schema_snapshot(&url).await;
    for table in [
        "processes",
        "form_tasks",
        "submissions",
        "form_changes",
        "correlation_outbox",
    ] {
        assert!(
            snapshot
                .iter()
                .any(|line| line.starts_with(&format!("column {table}."))),
            "table {table} missing"
        );
    }
    assert!(
        snapshot
            .iter()
            .any(|l| l.starts_with("index processes_one_active_per_business_key"))
    );
}

#[tokio::test]
async fn migrations_applied_twice_change_nothing() {
    let url = fresh_database().await;
    let store = store(&url);
    store.migrate().await.expect("first run");
    let after_first = schema_snapshot(&url).await;

    store.migrate().await.expect("second run");
    let after_second = schema_snapshot(&url).await;

    assert_eq!(after_first, after_second);
}

#[tokio::test]
async fn concurrent_migrations_apply_each_migration_once() {
    let url = fresh_database().await;
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let store = store(&url);
            tokio::spawn(async move { store.migrate().await })
        })
        .collect();
    for run in runs {
        run.await.unwrap().expect("every concurrent run succeeds");
    }
    let versions = applied_versions(&url).await;
    let mut unique = versions.clone();
    unique.dedup();
    assert_eq!(versions, unique, "a migration was recorded twice");
    assert!(!versions.is_empty());
}

#[tokio::test]
async fn two_servers_starting_together_migrate_once() {
    ramp::telemetry::init("warn", ramp::config::LogFormat::Pretty);
    let url = fresh_database().await;
    let (a, b) = tokio::join!(
        ramp::server::Application::start(test_config(&url, json!({}))),
        ramp::server::Application::start(test_config(&url, json!({}))),
    );
    let (a, b) = (
        a.expect("first server starts"),
        b.expect("second server starts"),
    );
    tokio::join!(
        wait_until_serving(a.local_addr()),
        wait_until_serving(b.local_addr())
    );

    let versions = applied_versions(&url).await;
    let mut unique = versions.clone();
    unique.dedup();
    assert_eq!(versions, unique);

    a.shutdown();
    b.shutdown();
    a.stopped().await.unwrap();
    b.stopped().await.unwrap();
}

#[test]
fn every_migration_says_whether_it_expands_or_contracts() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('V') && n.ends_with(".sql"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for file in files {
        let text = std::fs::read_to_string(dir.join(&file)).unwrap();
        let first = text.lines().next().unwrap_or_default();
        let kind_line = first.starts_with("-- expand:") || first.starts_with("-- contract:");
        let listed = readme.lines().any(|l| {
            l.starts_with(&format!("| `{file}` | "))
                && (l.contains("expand") || l.contains("contract"))
        });
        assert!(listed, "{file} is not classified in migrations/README.md");
        // Files before the rule (V1-V3) may lack the line; every later one has it.
        let version: u32 = file[1..file.find("__").unwrap()].parse().unwrap();
        assert!(
            version <= 3 || kind_line,
            "{file} lacks its `-- expand:` / `-- contract:` line"
        );
    }
}

#[tokio::test]
async fn a_database_a_newer_release_migrated_still_serves_this_release() {
    let url = fresh_database().await;
    store(&url).migrate().await.expect("migrations apply");
    let client = crate::helpers::connect(&url).await;
    // What a newer release leaves behind: a migration this one does not have.
    client
        .batch_execute(
            "INSERT INTO refinery_schema_history (version, name, applied_on, checksum)
             VALUES (9999, 'from_a_newer_release', '2026-01-01T00:00:00Z', '1')",
        )
        .await
        .unwrap();
    store(&url)
        .migrate()
        .await
        .expect("an older release starts on the expanded schema");
    crate::helpers::spawn_app_on(&url, serde_json::json!({})).await;

    // An edited migration is still refused.
    client
        .batch_execute("UPDATE refinery_schema_history SET checksum = '1' WHERE version = 1")
        .await
        .unwrap();
    let refused = store(&url)
        .migrate()
        .await
        .expect_err("a divergent migration");
    assert!(refused.to_string().contains("migration"), "{refused}");
}

#[tokio::test]
async fn the_operations_migration_applies_again_after_a_rollback_removed_it() {
    let url = fresh_database().await;
    store(&url).migrate().await.expect("migrations apply");
    let before = schema_snapshot(&url).await;
    let client = crate::helpers::connect(&url).await;
    // The rollback step of docs/operations.md.
    client
        .batch_execute("DELETE FROM refinery_schema_history WHERE version >= 4")
        .await
        .unwrap();
    store(&url)
        .migrate()
        .await
        .expect("V4 and later apply again over their own objects");
    let after = schema_snapshot(&url).await;
    let strip = |lines: Vec<String>| -> Vec<String> {
        lines
            .into_iter()
            .filter(|l| !l.starts_with("migration "))
            .collect()
    };
    assert_eq!(strip(before), strip(after));
    assert_eq!(
        applied_versions(&url).await,
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    );
}

/// A database whose notifications were sent by replicas of the release before V12
/// (which record no channel) keeps having notifications written once V12 applies.
#[tokio::test]
async fn the_channels_migration_records_the_channels_earlier_sends_used() {
    let url = fresh_database().await;
    store(&url).migrate().await.expect("migrations apply");
    let client = crate::helpers::connect(&url).await;
    // As the release before V12 left it: a webhook send, no recorded channel.
    client
        .batch_execute(
            "DELETE FROM refinery_schema_history WHERE version = 12;
             DROP TABLE notification_channels;
             INSERT INTO notification_sends (id, channel, assignee, state)
                 VALUES (gen_random_uuid(), 'webhook', 'ann@example.com', 'sent');",
        )
        .await
        .unwrap();
    store(&url).migrate().await.expect("V12 applies");
    let channels: Vec<String> = crate::helpers::column(
        &client,
        "SELECT channel FROM notification_channels ORDER BY channel",
        &[],
    )
    .await;
    assert_eq!(channels, ["webhook"]);
}
