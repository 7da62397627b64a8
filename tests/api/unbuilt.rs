//! RPCs whose logic later issues build answer UNIMPLEMENTED, saying so, rather than
//! pretending. These tests change as the RPCs are built.

use ramp::proto::form_service_client::FormServiceClient;
use ramp::proto::process_service_client::ProcessServiceClient;
use ramp::proto::{GetFormTaskRequest, StartProcessRequest};

use crate::helpers::{spawn_app, token, with_token};

#[tokio::test]
async fn unbuilt_rpcs_answer_unimplemented_and_name_their_issue() {
    let app = spawn_app().await;
    let mut processes = ProcessServiceClient::new(app.channel().await);
    let mut forms = FormServiceClient::new(app.channel().await);

    let ann = token("ann@example.com", &[]);
    let status = processes
        .start_process(with_token(
            StartProcessRequest {
                definition_key: "VOE".into(),
                business_key: "ann@example.com".into(),
                ..Default::default()
            },
            &ann,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented, "{status:?}");
    assert!(
        status.message().contains("issue #5"),
        "{}",
        status.message()
    );

    let status = forms
        .get_form_task(with_token(
            GetFormTaskRequest {
                id: uuid::Uuid::now_v7().to_string(),
            },
            &ann,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented, "{status:?}");
    assert!(
        status.message().contains("issue #6"),
        "{}",
        status.message()
    );
}
