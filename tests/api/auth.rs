//! Every RPC against every kind of caller, with the exact code each gets. RPCs whose
//! logic is not built yet are covered as far as the authorization decision (after
//! it they answer UNIMPLEMENTED); later issues turn those cells into real answers.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ramp::proto::form_service_client::FormServiceClient;
use ramp::proto::process_service_client::ProcessServiceClient;
use ramp::proto::*;
use serde_json::{Value, json};
use tonic::Code;
use tonic::transport::Channel;

use crate::helpers::{TEST_ISSUER, TEST_SECRET, spawn_app, with_token};

/// The callers of one test, with emails of its own: the engine is shared, and a
/// business key running there for another test would change the answers.
struct People {
    ann: String,
    bob: String,
    worker: String,
    admin: String,
    carol: String,
}

impl People {
    fn new() -> Self {
        let suffix = &uuid::Uuid::now_v7().simple().to_string()[20..];
        let email = |name: &str| format!("{name}-{suffix}@example.com");
        Self {
            ann: email("ann"),
            bob: email("bob"),
            worker: email("worker"),
            admin: email("admin"),
            carol: email("carol"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Who {
    NoToken,
    Expired,
    NotYetValid,
    WrongIssuer,
    WrongAudience,
    BadSignature,
    AlgNone,
    UnverifiedEmail,
    Garbage,
    /// Ann's email with a Cyrillic а: a lookalike, not Ann (issue 20).
    Lookalike,
    /// Ann, with a token valid until the year 9999 (issue 20).
    LivesTooLong,
    Ann,
    Bob,
    Worker,
    Admin,
}

const EVERYONE: [Who; 15] = [
    Who::NoToken,
    Who::Expired,
    Who::NotYetValid,
    Who::WrongIssuer,
    Who::WrongAudience,
    Who::BadSignature,
    Who::AlgNone,
    Who::UnverifiedEmail,
    Who::Garbage,
    Who::Lookalike,
    Who::LivesTooLong,
    Who::Ann,
    Who::Bob,
    Who::Worker,
    Who::Admin,
];

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(email: &str, roles: &[&str]) -> Value {
    json!({
        "sub": email, "email": email, "email_verified": true, "roles": roles,
        "iss": TEST_ISSUER, "aud": "ramp", "iat": now(), "exp": now() + 3600,
    })
}

pub fn sign(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn b64(value: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

fn token_of(who: Who, people: &People) -> Option<String> {
    let valid = |email: &str, roles: &[&str]| sign(&claims(email, roles), TEST_SECRET);
    let with = |change: &dyn Fn(&mut Value)| {
        let mut c = claims(&people.ann, &[]);
        change(&mut c);
        sign(&c, TEST_SECRET)
    };
    Some(match who {
        Who::NoToken => return None,
        // Past the 30 s leeway on both sides.
        Who::Expired => with(&|c| c["exp"] = json!(now() - 120)),
        Who::NotYetValid => with(&|c| c["nbf"] = json!(now() + 120)),
        Who::WrongIssuer => with(&|c| c["iss"] = json!("someone-else")),
        Who::WrongAudience => with(&|c| c["aud"] = json!("another-service")),
        Who::BadSignature => sign(
            &claims(&people.ann, &["ramp-admin"]),
            "not-the-secret-not-the-secret-not-the-secret",
        ),
        Who::AlgNone => format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "typ": "JWT"})),
            b64(&claims(&people.ann, &["ramp-admin"]))
        ),
        Who::UnverifiedEmail => with(&|c| c["email_verified"] = json!(false)),
        Who::Garbage => "not.a.jwt".to_owned(),
        Who::Lookalike => with(&|c| {
            let lookalike = people.ann.replacen('a', "\u{430}", 1);
            c["email"] = json!(lookalike);
        }),
        Who::LivesTooLong => with(&|c| c["exp"] = json!(253_402_300_799_u64)),
        Who::Ann => valid(&people.ann, &[]),
        Who::Bob => valid(&people.bob, &[]),
        Who::Worker => valid(&people.worker, &["ramp-worker"]),
        Who::Admin => valid(&people.admin, &["ramp-admin"]),
    })
}

/// What the client is told for each refused caller.
fn refusal_words(who: Who) -> &'static str {
    match who {
        Who::NoToken => "missing bearer token",
        Who::Expired => "expired",
        Who::NotYetValid => "not yet valid",
        Who::WrongIssuer => "issuer",
        Who::WrongAudience => "audience",
        Who::BadSignature => "signature",
        Who::AlgNone => "algorithm",
        Who::UnverifiedEmail => "not verified",
        Who::Garbage => "malformed",
        Who::Lookalike => "email is not accepted",
        Who::LivesTooLong => "lifetime too long",
        _ => unreachable!("{who:?} is let in"),
    }
}

fn is_valid(who: Who) -> bool {
    matches!(who, Who::Ann | Who::Bob | Who::Worker | Who::Admin)
}

#[derive(Clone, Copy, Debug)]
enum Rpc {
    StartAnnsProcess,
    StartProcessOffAllowList,
    GetAnnsProcess,
    ListAnnsProcesses,
    CancelCarolsProcess,
    CreateFormTask,
    GetAnnsFormTask,
    ListAnnsFormTasks,
    PendingForms,
    SaveDraftOnAnnsForm,
    SubmitForm,
}

const EVERY_RPC: [Rpc; 11] = [
    Rpc::StartAnnsProcess,
    Rpc::StartProcessOffAllowList,
    Rpc::GetAnnsProcess,
    Rpc::ListAnnsProcesses,
    Rpc::CancelCarolsProcess,
    Rpc::CreateFormTask,
    Rpc::GetAnnsFormTask,
    Rpc::ListAnnsFormTasks,
    Rpc::PendingForms,
    Rpc::SaveDraftOnAnnsForm,
    Rpc::SubmitForm,
];

/// The code each caller must get. Before the matrix runs, Ann has a running VOE process and so
/// has Carol (both started by an admin); the admin's cancel is the last call of its
/// row, so it finds Carol's process still running.
fn expected(rpc: Rpc, who: Who) -> Code {
    if !is_valid(who) {
        return Code::Unauthenticated;
    }
    match (rpc, who) {
        // Workers create form tasks and nothing else (issue 20): they read no one's
        // forms or answers. Told the engine knows no such instance.
        (Rpc::CreateFormTask, Who::Worker) => Code::InvalidArgument,
        (_, Who::Worker) => Code::PermissionDenied,
        // Ann may start VOE for herself, but one runs already.
        (Rpc::StartAnnsProcess, Who::Ann | Who::Admin) => Code::AlreadyExists,
        (Rpc::StartAnnsProcess, _) => Code::PermissionDenied,
        // A definition off the allow-list: admins only (and the engine has none).
        (Rpc::StartProcessOffAllowList, Who::Admin) => Code::NotFound,
        (Rpc::StartProcessOffAllowList, _) => Code::PermissionDenied,
        // Another user's process does not exist for the caller.
        (Rpc::GetAnnsProcess, Who::Ann | Who::Admin) => Code::Ok,
        (Rpc::GetAnnsProcess, _) => Code::NotFound,
        (Rpc::ListAnnsProcesses, Who::Ann | Who::Admin) => Code::Ok,
        (Rpc::ListAnnsProcesses, _) => Code::PermissionDenied,
        (Rpc::CancelCarolsProcess, Who::Admin) => Code::Ok,
        (Rpc::CancelCarolsProcess, _) => Code::NotFound,
        // Admins are let in, and told the engine knows no such instance.
        (Rpc::CreateFormTask, Who::Admin) => Code::InvalidArgument,
        (Rpc::CreateFormTask, _) => Code::PermissionDenied,
        (Rpc::GetAnnsFormTask, Who::Ann | Who::Admin) => Code::Ok,
        (Rpc::GetAnnsFormTask, _) => Code::NotFound,
        (Rpc::ListAnnsFormTasks, Who::Ann | Who::Admin) => Code::Ok,
        (Rpc::ListAnnsFormTasks, _) => Code::PermissionDenied,
        // Everyone's own inbox.
        (Rpc::PendingForms, _) => Code::Ok,
        // Only the assignee drafts.
        (Rpc::SaveDraftOnAnnsForm, Who::Ann) => Code::Ok,
        (Rpc::SaveDraftOnAnnsForm, _) => Code::NotFound,
        // Only the assignee submits; Ann's data lacks the form's required fields.
        (Rpc::SubmitForm, Who::Ann) => Code::InvalidArgument,
        (Rpc::SubmitForm, _) => Code::NotFound,
    }
}

struct Setup {
    people: People,
    anns_process: String,
    carols_process: String,
    anns_form: String,
}

/// The code and message of one call.
async fn call(rpc: Rpc, channel: Channel, token: Option<&str>, setup: &Setup) -> (Code, String) {
    fn req<T>(message: T, token: Option<&str>) -> tonic::Request<T> {
        match token {
            Some(token) => with_token(message, token),
            None => tonic::Request::new(message),
        }
    }
    let ann = setup.people.ann.clone();
    let mut processes = ProcessServiceClient::new(channel.clone());
    let mut forms = FormServiceClient::new(channel);
    let result = match rpc {
        Rpc::StartAnnsProcess => processes
            .start_process(req(
                StartProcessRequest {
                    definition_key: "VOE".into(),
                    business_key: ann,
                    ..Default::default()
                },
                token,
            ))
            .await
            .map(|_| ()),
        Rpc::StartProcessOffAllowList => processes
            .start_process(req(
                StartProcessRequest {
                    definition_key: "Payroll".into(),
                    business_key: ann,
                    ..Default::default()
                },
                token,
            ))
            .await
            .map(|_| ()),
        Rpc::GetAnnsProcess => processes
            .get_process(req(
                GetProcessRequest {
                    id: setup.anns_process.clone(),
                },
                token,
            ))
            .await
            .map(|_| ()),
        Rpc::ListAnnsProcesses => processes
            .list_processes(req(
                ListProcessesRequest {
                    business_key: ann,
                    ..Default::default()
                },
                token,
            ))
            .await
            .map(|_| ()),
        Rpc::CancelCarolsProcess => processes
            .cancel_process(req(
                CancelProcessRequest {
                    id: setup.carols_process.clone(),
                    reason: String::new(),
                },
                token,
            ))
            .await
            .map(|_| ()),
        Rpc::CreateFormTask => forms
            .create_form_task(req(
                CreateFormTaskRequest {
                    external_task_id: "ext-1".into(),
                    process_instance_id: "pi-1".into(),
                    business_key: ann,
                    activity_id: "qualify_supplier".into(),
                    ..Default::default()
                },
                token,
            ))
            .await
            .map(|_| ()),
        Rpc::GetAnnsFormTask => forms
            .get_form_task(req(
                GetFormTaskRequest {
                    id: setup.anns_form.clone(),
                },
                token,
            ))
            .await
            .map(|_| ()),
        Rpc::ListAnnsFormTasks => forms
            .list_form_tasks(req(
                ListFormTasksRequest {
                    assignee: ann,
                    ..Default::default()
                },
                token,
            ))
            .await
            .map(|_| ()),
        Rpc::PendingForms => forms
            .pending_forms(req(PendingFormsRequest::default(), token))
            .await
            .map(|_| ()),
        Rpc::SaveDraftOnAnnsForm => forms
            .save_draft(req(
                SaveDraftRequest {
                    id: setup.anns_form.clone(),
                    data: None,
                },
                token,
            ))
            .await
            .map(|_| ()),
        Rpc::SubmitForm => forms
            .submit_form(req(
                SubmitFormRequest {
                    id: setup.anns_form.clone(),
                    data: None,
                    request_id: String::new(),
                },
                token,
            ))
            .await
            .map(|_| ()),
    };
    match result {
        Ok(()) => (Code::Ok, String::new()),
        Err(status) => (status.code(), status.message().to_owned()),
    }
}

async fn setup(app: &crate::helpers::TestApp) -> Setup {
    let people = People::new();
    crate::processes::deploy_demo().await;
    let admin = app.bearing(sign(&claims(&people.admin, &["ramp-admin"]), TEST_SECRET));
    let started = "the admin starts a process";
    let anns = admin.start_for("VOE", &people.ann).await.expect(started);
    let carols_process = admin
        .start_for("VOE", &people.carol)
        .await
        .expect(started)
        .id;
    // A form for Ann in her process, as a worker would create it.
    let worker = app.bearing(sign(&claims(&people.worker, &["ramp-worker"]), TEST_SECRET));
    let anns_form = worker
        .create_form(CreateFormTaskRequest {
            external_task_id: format!("ext-{}", anns.id),
            process_instance_id: anns.engine_instance_id.clone(),
            business_key: people.ann.clone(),
            activity_id: "company_details".into(),
            ..Default::default()
        })
        .await
        .expect("the worker creates Ann's form");
    Setup {
        people,
        anns_process: anns.id,
        carols_process,
        anns_form,
    }
}

#[tokio::test]
async fn every_rpc_against_every_caller() {
    let app = spawn_app().await;
    let setup = setup(&app).await;
    let channel = app.channel().await;
    let mut mismatches = Vec::new();
    for who in EVERYONE {
        let token = token_of(who, &setup.people);
        for rpc in EVERY_RPC {
            let (code, message) = call(rpc, channel.clone(), token.as_deref(), &setup).await;
            let want = expected(rpc, who);
            if code != want {
                mismatches.push(format!(
                    "{rpc:?} as {who:?}: got {code:?} ({message}), want {want:?}"
                ));
                continue;
            }
            if !is_valid(who) {
                let words = refusal_words(who);
                if !message.contains(words) {
                    mismatches.push(format!(
                        "{rpc:?} as {who:?}: message {message:?} does not say {words:?}"
                    ));
                }
                if let Some(token) = &token
                    && token.len() > 10
                    && message.contains(token.as_str())
                {
                    mismatches.push(format!("{rpc:?} as {who:?}: the token was echoed"));
                }
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

#[tokio::test]
async fn health_and_reflection_need_no_token() {
    let app = spawn_app().await;
    // spawn_app already waited on health without a token; reflection:
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    let mut client = ServerReflectionClient::new(app.channel().await);
    let request = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection answers without a token");
}

#[tokio::test]
async fn a_non_bearer_authorization_is_refused() {
    let app = spawn_app().await;
    let mut forms = FormServiceClient::new(app.channel().await);
    let mut request = tonic::Request::new(PendingFormsRequest::default());
    request
        .metadata_mut()
        .insert("authorization", "Basic YW5uOnB3".parse().unwrap());
    let status = forms.pending_forms(request).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    crate::helpers::assert_clean(&status);
    assert!(status.message().contains("Bearer"), "{}", status.message());
}
