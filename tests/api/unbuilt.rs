//! RPCs whose logic later issues build answer UNIMPLEMENTED, saying so, rather than
//! pretending. These tests change as the RPCs are built.

use ramp::proto::SubmitFormRequest;
use ramp::proto::form_service_client::FormServiceClient;

use crate::helpers::{spawn_app, token, with_token};

#[tokio::test]
async fn unbuilt_rpcs_answer_unimplemented_and_name_their_issue() {
    let app = spawn_app().await;
    let mut forms = FormServiceClient::new(app.channel().await);
    let ann = token("ann@example.com", &[]);
    let status = forms
        .submit_form(with_token(
            SubmitFormRequest {
                id: uuid::Uuid::now_v7().to_string(),
                ..Default::default()
            },
            &ann,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented, "{status:?}");
    assert!(
        status.message().contains("issue #7"),
        "{}",
        status.message()
    );
}
