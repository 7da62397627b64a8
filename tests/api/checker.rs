//! The reliability checker: compares what clients were told (a `Ledger` the load
//! fills) with what ramp's database and the engine's history hold, and counts.
//!
//! - every accepted start exists once in the engine (history by business key); no
//!   business key a client tried has more than one instance, accepted or not;
//! - every started process got exactly one form (a worker that died or retried did
//!   not make two);
//! - every accepted submission reached its process exactly once, with its data: the
//!   marker `rampSubmissionId` and the submitted value are in the engine's history,
//!   and the receive task (which loops, so a second delivery would show) completed
//!   once; no submission in the database reached its process twice;
//! - every stream saw every change of its user once, in order (the database's change
//!   log is the truth).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Prints a line where `make test` shows it: libtest captures what `println!`
/// writes, not what is written to the standard error stream itself.
#[macro_export]
macro_rules! report {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

/// The form every checked process waits on, and the field that carries the data.
pub const FORM: &str = "step";
pub const WAIT: &str = "wait_step";
pub const FIELD: &str = "companyName";

#[derive(Clone, Debug)]
pub struct AcceptedSubmission {
    pub form_id: String,
    pub instance: String,
    pub submission_id: String,
    pub value: String,
}

/// One stream's view: every change it was sent after its first snapshot, as
/// (kind, form id), and the form ids of that snapshot.
#[derive(Clone, Debug, Default)]
pub struct StreamLog {
    pub snapshot: Vec<String>,
    pub events: Vec<(String, String)>,
    pub resumes: usize,
    /// What the stream's client did and got, in order (connects with their cursor,
    /// messages with theirs, how each connection ended): printed with a problem.
    pub trace: Vec<String>,
}

#[derive(Clone, Default)]
struct Inner {
    attempted: BTreeMap<String, ()>,
    starts: BTreeMap<String, String>,
    submissions: Vec<AcceptedSubmission>,
    streams: HashMap<String, StreamLog>,
}

/// What clients were told, shared by every client task of a test.
#[derive(Clone, Default)]
pub struct Ledger {
    inner: Arc<Mutex<Inner>>,
}

impl Ledger {
    pub fn start_attempted(&self, business_key: &str) {
        let mut inner = self.inner.lock().unwrap();
        inner.attempted.insert(business_key.to_owned(), ());
    }

    /// A start answered OK with this engine instance.
    pub fn start_accepted(&self, business_key: &str, instance: &str) {
        let mut inner = self.inner.lock().unwrap();
        inner
            .starts
            .insert(business_key.to_owned(), instance.to_owned());
    }

    pub fn submission_accepted(&self, submission: AcceptedSubmission) {
        self.inner.lock().unwrap().submissions.push(submission);
    }

    pub fn stream_snapshot(&self, user: &str, ids: Vec<String>) {
        let mut inner = self.inner.lock().unwrap();
        let log = inner.streams.entry(user.to_owned()).or_default();
        if log.events.is_empty() && log.snapshot.is_empty() {
            log.snapshot = ids;
        } else {
            // A fresh snapshot after events would hide a gap: the checker counts
            // it as a resume that did not resume.
            log.resumes += 1000;
        }
    }

    pub fn stream_event(&self, user: &str, kind: &str, form_id: &str) {
        let mut inner = self.inner.lock().unwrap();
        let log = inner.streams.entry(user.to_owned()).or_default();
        log.events.push((kind.to_owned(), form_id.to_owned()));
    }

    /// Notes one step of `user`'s stream client for the failure message.
    pub fn stream_trace(&self, user: &str, step: String) {
        let mut inner = self.inner.lock().unwrap();
        inner
            .streams
            .entry(user.to_owned())
            .or_default()
            .trace
            .push(step);
    }

    pub fn stream_resumed(&self, user: &str) {
        let mut inner = self.inner.lock().unwrap();
        inner.streams.entry(user.to_owned()).or_default().resumes += 1;
    }

    pub fn accepted_submissions(&self) -> usize {
        self.inner.lock().unwrap().submissions.len()
    }

    fn stream_events(&self, user: &str) -> StreamLog {
        self.inner
            .lock()
            .unwrap()
            .streams
            .get(user)
            .cloned()
            .unwrap_or_default()
    }
}

/// accepted, delivered, lost, duplicated, for one promise.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counts {
    pub accepted: usize,
    pub delivered: usize,
    pub lost: usize,
    pub duplicated: usize,
}

#[derive(Debug, Default)]
pub struct Report {
    pub starts: Counts,
    pub forms: Counts,
    pub submissions: Counts,
    pub stream_events: Counts,
    pub streams: usize,
    pub stream_resumes: usize,
    /// Instances ramp removed itself (late instances of starts it had released):
    /// counted apart, not as duplicates.
    pub undone: usize,
    /// What went wrong, for the failure message.
    pub problems: Vec<String>,
}

impl Report {
    /// Prints the counts and fails the test on anything lost or duplicated.
    pub fn assert_nothing_lost_or_duplicated(&self, scenario: &str) {
        let line = |name: &str, c: &Counts| {
            format!(
                "{name}: accepted {}, delivered {}, lost {}, duplicated {}",
                c.accepted, c.delivered, c.lost, c.duplicated
            )
        };
        crate::report!(
            "checker [{scenario}]\n  {} ({} removed by ramp)\n  {}\n  {}\n  {} ({} streams, {} resumed by cursor)",
            line("starts", &self.starts),
            self.undone,
            line("forms", &self.forms),
            line("submissions", &self.submissions),
            line("stream events", &self.stream_events),
            self.streams,
            self.stream_resumes,
        );
        let lost =
            self.starts.lost + self.forms.lost + self.submissions.lost + self.stream_events.lost;
        let duplicated = self.starts.duplicated
            + self.forms.duplicated
            + self.submissions.duplicated
            + self.stream_events.duplicated;
        assert!(
            self.problems.is_empty() && lost == 0 && duplicated == 0,
            "[{scenario}] lost {lost}, duplicated {duplicated}:\n{}",
            self.problems.join("\n")
        );
    }
}

/// Where the checker looks: the engine (directly, never through a test's fault
/// proxy), the database every replica shares, and the definition the load started.
pub struct Checker {
    pub engine: String,
    pub database_url: String,
    pub definition_key: String,
    /// Whether every started process should have got a form (a worker ran).
    pub expect_forms: bool,
    /// How long a stream may take to catch up with the log before what it has not
    /// seen counts as lost.
    pub stream_wait: Duration,
}

impl Checker {
    pub async fn check(&self, ledger: &Ledger) -> Report {
        let db = crate::helpers::connect(&self.database_url).await;
        self.wait_until_deliveries_settle(&db).await;
        let mut report = Report::default();
        self.check_starts(ledger, &db, &mut report).await;
        self.check_submissions(ledger, &db, &mut report).await;
        self.check_streams(ledger, &db, &mut report).await;
        report
    }

    async fn get(&self, path_and_query: &str) -> Vec<Value> {
        let url = format!("{}{path_and_query}", self.engine);
        for _ in 0..20 {
            if let Ok(response) = reqwest::get(&url).await
                && response.status().is_success()
                && let Ok(body) = response.json::<Vec<Value>>().await
            {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!("the engine did not answer {url}");
    }

    /// Every accepted submission is delivered or given up on (`undeliverable`,
    /// `failed`) before anything is counted: bounded, then what is still pending
    /// counts as lost.
    async fn wait_until_deliveries_settle(&self, db: &tokio_postgres::Client) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            let pending: i64 = crate::helpers::scalar(
                db,
                "SELECT count(*) FROM correlation_outbox WHERE state = 'pending'",
                &[],
            )
            .await;
            if pending == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn check_starts(
        &self,
        ledger: &Ledger,
        db: &tokio_postgres::Client,
        report: &mut Report,
    ) {
        let history = self
            .get(&format!(
                "/history/process-instance?processDefinitionKey={}&rootProcessInstances=true&maxResults=100000",
                self.definition_key
            ))
            .await;
        // An instance that ramp removed itself (its start was settled elsewhere while
        // the engine answered a slow replica) was undone, not kept, so it is counted
        // apart: it carries the id of a start ramp released (`rampProcessId`, kept in
        // `released_starts`), ended EXTERNALLY_TERMINATED and is in no row of ramp's.
        // Any other instance of a key counts, ended or not, however it ended: a
        // duplicate that someone deleted still existed (and may have made forms).
        let known: HashSet<String> = crate::helpers::column(
            db,
            "SELECT engine_instance_id FROM processes WHERE engine_instance_id IS NOT NULL",
            &[],
        )
        .await
        .into_iter()
        .collect();
        let released: HashSet<String> =
            crate::helpers::column(db, "SELECT process_id::text FROM released_starts", &[])
                .await
                .into_iter()
                .collect();
        let released_tags: HashSet<String> = self
            .get(&format!(
                "/history/variable-instance?processDefinitionKey={}&variableName=rampProcessId&maxResults=100000",
                self.definition_key
            ))
            .await
            .iter()
            .filter(|tag| {
                tag["value"]
                    .as_str()
                    .is_some_and(|value| released.contains(value))
            })
            .filter_map(|tag| tag["processInstanceId"].as_str().map(str::to_owned))
            .collect();
        let mut in_engine: HashMap<String, Vec<String>> = HashMap::new();
        let mut undone = HashSet::new();
        for instance in &history {
            if let (Some(key), Some(id)) =
                (instance["businessKey"].as_str(), instance["id"].as_str())
            {
                if instance["state"] == "EXTERNALLY_TERMINATED"
                    && !known.contains(id)
                    && released_tags.contains(id)
                {
                    undone.insert(id.to_owned());
                    continue;
                }
                in_engine
                    .entry(key.to_owned())
                    .or_default()
                    .push(id.to_owned());
            }
        }
        report.undone = undone.len();
        if !undone.is_empty() {
            crate::report!(
                "checker: {} extra instance(s) removed by ramp after a start settled elsewhere",
                undone.len()
            );
        }
        let inner = ledger.inner.lock().unwrap().clone();
        let starts = &mut report.starts;
        starts.accepted = inner.starts.len();
        for (key, instance) in &inner.starts {
            match in_engine.get(key).map(Vec::as_slice).unwrap_or_default() {
                [] => {
                    starts.lost += 1;
                    report
                        .problems
                        .push(format!("start of {key} accepted, not in the engine"));
                }
                [only] if only == instance => starts.delivered += 1,
                [only] => {
                    starts.lost += 1;
                    report.problems.push(format!(
                        "start of {key} answered {instance}, the engine holds {only}"
                    ));
                }
                many => {
                    starts.duplicated += 1;
                    report
                        .problems
                        .push(format!("{key} started {} times", many.len()));
                }
            }
        }
        for key in inner.attempted.keys() {
            let n = in_engine.get(key).map_or(0, Vec::len);
            if n > 1 && !inner.starts.contains_key(key) {
                starts.duplicated += 1;
                report
                    .problems
                    .push(format!("{key} (never accepted) started {n} times"));
            }
        }

        if !self.expect_forms {
            return;
        }
        // One form per started instance, whatever the workers went through.
        let rows = db
            .query(
                "SELECT root_process_instance_id, count(*) FROM form_tasks GROUP BY root_process_instance_id",
                &[],
            )
            .await
            .unwrap();
        let forms: HashMap<String, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let inner = ledger.inner.lock().unwrap().clone();
        let counts = &mut report.forms;
        counts.accepted = inner.starts.len();
        for (key, instance) in &inner.starts {
            match forms.get(instance).copied().unwrap_or(0) {
                0 => {
                    counts.lost += 1;
                    report
                        .problems
                        .push(format!("no form for {key}'s process {instance}"));
                }
                1 => counts.delivered += 1,
                n => {
                    counts.duplicated += 1;
                    report
                        .problems
                        .push(format!("{n} forms for {key}'s process {instance}"));
                }
            }
            // A second instance of the key that made forms: its user saw a form of a
            // process that should not exist.
            for other in in_engine.get(key).into_iter().flatten() {
                if other != instance
                    && let Some(n) = forms.get(other)
                {
                    counts.duplicated += 1;
                    report
                        .problems
                        .push(format!("{n} form(s) for {key}'s second process {other}"));
                }
            }
        }
        let undone_forms: i64 = undone.iter().filter_map(|id| forms.get(id)).sum();
        if undone_forms > 0 {
            crate::report!(
                "checker: {undone_forms} form(s) of instances ramp removed (withdrawn with them)"
            );
        }
    }

    async fn check_submissions(
        &self,
        ledger: &Ledger,
        db: &tokio_postgres::Client,
        report: &mut Report,
    ) {
        let key = &self.definition_key;
        let markers = self
            .get(&format!(
                "/history/variable-instance?processDefinitionKey={key}&variableName=rampSubmissionId&maxResults=100000"
            ))
            .await;
        let values = self
            .get(&format!(
                "/history/variable-instance?processDefinitionKey={key}&variableName={FIELD}&maxResults=100000"
            ))
            .await;
        let definitions = self.get(&format!("/process-definition?key={key}")).await;
        let mut waits: HashMap<String, usize> = HashMap::new();
        for definition in &definitions {
            let id = definition["id"].as_str().unwrap();
            for activity in self
                .get(&format!(
                    "/history/activity-instance?processDefinitionId={id}&activityId={WAIT}&finished=true&maxResults=100000"
                ))
                .await
            {
                *waits
                    .entry(activity["processInstanceId"].as_str().unwrap().to_owned())
                    .or_default() += 1;
            }
        }
        let by_instance = |list: &[Value]| -> HashMap<String, Vec<Value>> {
            let mut map: HashMap<String, Vec<Value>> = HashMap::new();
            for v in list {
                map.entry(
                    v["processInstanceId"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                )
                .or_default()
                .push(v["value"].clone());
            }
            map
        };
        let markers = by_instance(&markers);
        let values = by_instance(&values);

        let inner = ledger.inner.lock().unwrap().clone();
        let counts = &mut report.submissions;
        counts.accepted = inner.submissions.len();
        for s in &inner.submissions {
            let marked = markers
                .get(&s.instance)
                .is_some_and(|m| m.contains(&Value::String(s.submission_id.clone())));
            let with_data = values
                .get(&s.instance)
                .is_some_and(|v| v.contains(&Value::String(s.value.clone())));
            match waits.get(&s.instance).copied().unwrap_or(0) {
                1 if marked && with_data => counts.delivered += 1,
                0 | 1 => {
                    counts.lost += 1;
                    report.problems.push(format!(
                        "submission {} of form {} not delivered (marker {marked}, data {with_data})",
                        s.submission_id, s.form_id
                    ));
                }
                n => {
                    counts.duplicated += 1;
                    report.problems.push(format!(
                        "submission {} of form {} delivered {n} times",
                        s.submission_id, s.form_id
                    ));
                }
            }
        }
        let answered: std::collections::HashSet<String> = inner
            .submissions
            .iter()
            .map(|s| s.instance.clone())
            .collect();
        // Submissions whose answer never reached a client (a replica killed after
        // the commit) are delivered too, and nothing is delivered twice.
        let rows = db
            .query(
                "SELECT process_instance_id, state FROM correlation_outbox",
                &[],
            )
            .await
            .unwrap();
        for row in rows {
            let instance: String = row.get(0);
            let state: String = row.get(1);
            let n = waits.get(&instance).copied().unwrap_or(0);
            if n > 1 && !answered.contains(&instance) {
                counts.duplicated += 1;
                report.problems.push(format!(
                    "an unanswered submission reached {instance} {n} times"
                ));
            } else if state != "delivered" {
                report
                    .problems
                    .push(format!("the delivery to {instance} ended {state}"));
            }
        }
    }

    async fn check_streams(
        &self,
        ledger: &Ledger,
        db: &tokio_postgres::Client,
        report: &mut Report,
    ) {
        let users: Vec<String> = ledger
            .inner
            .lock()
            .unwrap()
            .streams
            .keys()
            .cloned()
            .collect();
        report.streams = users.len();
        for user in users {
            let rows = db
                .query(
                    "SELECT kind, form_task_id::text, tx, seq FROM form_changes WHERE assignee = $1 ORDER BY tx, seq",
                    &[&user],
                )
                .await
                .unwrap();
            let expected: Vec<(String, String)> =
                rows.iter().map(|r| (r.get(0), r.get(1))).collect();
            // The stream may still be catching up: wait (bounded) for it.
            let deadline = Instant::now() + self.stream_wait;
            let mut seen = ledger.stream_events(&user);
            while seen.events.len() + seen.snapshot.len() < expected.len()
                && Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
                seen = ledger.stream_events(&user);
            }
            report.stream_resumes += seen.resumes;
            // The load opens each stream before its user's first start, so its
            // snapshot is empty; a form in a snapshot stands for its `added`.
            let observed: Vec<(String, String)> = seen
                .snapshot
                .iter()
                .map(|id| ("added".to_owned(), id.clone()))
                .chain(seen.events.iter().cloned())
                .collect();
            let counts = &mut report.stream_events;
            counts.accepted += expected.len();
            let mut tally: HashMap<&(String, String), i64> = HashMap::new();
            for e in &expected {
                *tally.entry(e).or_default() += 1;
            }
            for e in &observed {
                *tally.entry(e).or_default() -= 1;
            }
            let lost: usize = tally
                .values()
                .filter(|n| **n > 0)
                .map(|n| *n as usize)
                .sum();
            let duplicated: usize = tally
                .values()
                .filter(|n| **n < 0)
                .map(|n| (-*n) as usize)
                .sum();
            counts.lost += lost;
            counts.duplicated += duplicated;
            counts.delivered += expected.len() - lost;
            let positions: Vec<String> = rows
                .iter()
                .map(|r| {
                    format!(
                        "{}@{}.{}",
                        r.get::<_, String>(0),
                        r.get::<_, i64>(2),
                        r.get::<_, i64>(3)
                    )
                })
                .collect();
            let trace = seen.trace.join("\n    ");
            if lost > 0 || duplicated > 0 {
                report.problems.push(format!(
                    "{user}'s stream: expected {expected:?}, saw {observed:?}\n  log positions {positions:?}\n  client:\n    {trace}"
                ));
            } else if observed != expected {
                counts.lost += 1;
                report.problems.push(format!(
                    "{user}'s stream saw its changes out of order: expected {expected:?}, saw {observed:?}\n  log positions {positions:?}\n  client:\n    {trace}"
                ));
            }
            if seen.resumes >= 1000 {
                counts.lost += 1;
                report
                    .problems
                    .push(format!("{user}'s stream got a fresh snapshot mid-way"));
            }
        }
    }
}

/// The checker itself: what it is shown lost or duplicated, it counts.
#[tokio::test]
async fn the_checker_counts_what_is_lost_and_what_is_duplicated() {
    use ramp::camunda::types::FetchTopic;

    let app = crate::helpers::spawn_app().await;
    let key = crate::load::deploy_looping_model().await;
    let engine = crate::engine::camunda();
    let (ann, bob) = (crate::forms::user(), crate::forms::user());
    let mut instances = Vec::new();
    for user in [&ann, &bob] {
        instances.push(crate::engine::start_instance(&key, user).await);
    }
    let by_key = FetchTopic {
        process_definition_key: Some(key.clone()),
        ..Default::default()
    };
    let tasks = crate::engine::fetch_send_tasks("checker", 10, 60_000, by_key).await;
    for task in &tasks {
        engine
            .complete_external_task(
                &task.id,
                "checker",
                &Default::default(),
                &Default::default(),
            )
            .await
            .unwrap();
    }
    // Ann's answer reaches her process twice; Bob's never.
    for _ in 0..2 {
        let delivered = reqwest::Client::new()
            .post(format!("{}/message", crate::engine::engine_url()))
            .json(&serde_json::json!({
                "messageName": FORM, "processInstanceId": instances[0],
                "processVariables": {"rampSubmissionId": {"value": "s-ann"}, FIELD: {"value": "v"}}
            }))
            .send()
            .await
            .unwrap();
        assert!(delivered.status().is_success());
    }

    // A short-lived second instance of Ann's key, unknown to ramp, that made a form
    // and was deleted (EXTERNALLY_TERMINATED): a duplicate all the same. And a late
    // instance of a start ramp released, which ramp removed: counted apart.
    let db = app.db().await;
    let duplicate = crate::engine::start_instance(&key, &ann).await;
    db.execute(
        "INSERT INTO form_tasks (id, external_task_id, business_key, form_name, message_name, assignee, status,
            process_instance_id, root_process_instance_id, activity_id, withdrawal_reason)
         VALUES (gen_random_uuid(), $1, $2, 'step', 'step', $2, 'withdrawn', $1, $1, 'step', 'the process ended')",
        &[&duplicate, &ann],
    )
    .await
    .unwrap();
    engine
        .delete_process_instance(&duplicate, true)
        .await
        .unwrap();
    let released = uuid::Uuid::now_v7();
    db.execute(
        "INSERT INTO released_starts (process_id, business_key) VALUES ($1, $2)",
        &[&released, &bob],
    )
    .await
    .unwrap();
    let late = engine
        .start_process(
            &key,
            &bob,
            &ramp::camunda::typed(
                serde_json::json!({"rampProcessId": released.to_string()})
                    .as_object()
                    .unwrap(),
            ),
        )
        .await
        .unwrap()
        .id;
    engine.delete_process_instance(&late, true).await.unwrap();

    let ledger = Ledger::default();
    ledger.start_accepted(&ann, &instances[0]);
    ledger.start_accepted(&bob, &instances[1]);
    ledger.start_accepted("nobody@example.com", "no-such-instance");
    for (id, instance) in [("s-ann", &instances[0]), ("s-bob", &instances[1])] {
        ledger.submission_accepted(AcceptedSubmission {
            form_id: "f".into(),
            instance: instance.clone(),
            submission_id: id.into(),
            value: "v".into(),
        });
    }
    // Streams: Ann's saw a change the log does not hold; Bob's missed one; Carol's
    // saw hers out of order.
    ledger.stream_event(&ann, "added", "no-such-form");
    let carol = crate::forms::user();
    let (x, y) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    for (user, form) in [(&bob, x), (&carol, y)] {
        for kind in ["added", "removed"] {
            db.execute(
                "INSERT INTO form_changes (form_task_id, assignee, kind) VALUES ($1, $2, $3)",
                &[&form, user, &kind],
            )
            .await
            .unwrap();
        }
    }
    ledger.stream_event(&bob, "removed", &x.to_string());
    ledger.stream_event(&carol, "removed", &y.to_string());
    ledger.stream_event(&carol, "added", &y.to_string());

    let mut checker = crate::load::checker(&app.database_url, &key);
    checker.stream_wait = Duration::from_secs(1);
    let report = checker.check(&ledger).await;
    let counts = |accepted, delivered, lost, duplicated| Counts {
        accepted,
        delivered,
        lost,
        duplicated,
    };
    // Ann's key had two instances (one deleted); Bob's late instance is not one.
    assert_eq!(report.starts, counts(3, 1, 1, 1));
    assert_eq!(report.undone, 1, "Bob's late instance, removed by ramp");
    // No form for the accepted starts; one for Ann's second instance.
    assert_eq!(report.forms, counts(3, 0, 3, 1));
    assert_eq!(report.submissions, counts(2, 0, 1, 1));
    // Bob: one of two lost; Carol: both seen, out of order (counted lost once).
    assert_eq!(report.stream_events, counts(4, 3, 2, 1));
    let failed = std::panic::catch_unwind(|| report.assert_nothing_lost_or_duplicated("self-test"));
    assert!(failed.is_err(), "the checker fails a test on these counts");
}
