//! RPCs whose logic later issues build answer UNIMPLEMENTED, saying so, rather than
//! pretending. These tests change as the RPCs are built.

use ramp::proto::form_service_client::FormServiceClient;
use ramp::proto::process_service_client::ProcessServiceClient;
use ramp::proto::{GetFormTaskRequest, StartProcessRequest};

use crate::helpers::spawn_app;

#[tokio::test]
async fn unbuilt_rpcs_answer_unimplemented_and_name_their_issue() {
    let app = spawn_app().await;
    let mut processes = ProcessServiceClient::new(app.channel().await);
    let mut forms = FormServiceClient::new(app.channel().await);

    let status = processes
        .start_process(StartProcessRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented);
    assert!(
        status.message().contains("issue #5"),
        "{}",
        status.message()
    );

    let status = forms
        .get_form_task(GetFormTaskRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented);
    assert!(
        status.message().contains("issue #6"),
        "{}",
        status.message()
    );
}
