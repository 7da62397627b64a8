//! The reference for the memory per stream: a tonic server with nothing but
//! ramp's generated FormService, whose PendingForms sends one empty snapshot and
//! then holds the stream open. Same tonic, same HTTP/2 settings and same codec as
//! `ramp serve`; none of ramp's own per-stream state.

use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use ramp::proto::form_service_server::{FormService, FormServiceServer};
use ramp::proto::*;
use tonic::{Request, Response, Status};

#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:50151")]
    pub listen: SocketAddr,
}

struct Bare;

type Events = Pin<Box<dyn Stream<Item = Result<PendingFormsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl FormService for Bare {
    type PendingFormsStream = Events;

    async fn pending_forms(
        &self,
        _: Request<PendingFormsRequest>,
    ) -> Result<Response<Events>, Status> {
        let snapshot = PendingFormsResponse {
            cursor: "c".into(),
            event: Some(pending_forms_response::Event::Snapshot(
                pending_forms_response::Snapshot::default(),
            )),
        };
        let events = futures::StreamExt::chain(
            futures::stream::once(async move { Ok(snapshot) }),
            futures::stream::pending(),
        );
        Ok(Response::new(Box::pin(events)))
    }

    async fn claim_form_task(
        &self,
        _: Request<ramp::proto::ClaimFormTaskRequest>,
    ) -> Result<Response<ramp::proto::ClaimFormTaskResponse>, Status> {
        Err(Status::unimplemented("bare server"))
    }

    async fn unclaim_form_task(
        &self,
        _: Request<ramp::proto::UnclaimFormTaskRequest>,
    ) -> Result<Response<ramp::proto::UnclaimFormTaskResponse>, Status> {
        Err(Status::unimplemented("bare server"))
    }

    async fn create_form_task(
        &self,
        _: Request<CreateFormTaskRequest>,
    ) -> Result<Response<CreateFormTaskResponse>, Status> {
        Err(Status::unimplemented("bare server"))
    }

    async fn get_form_task(
        &self,
        _: Request<GetFormTaskRequest>,
    ) -> Result<Response<GetFormTaskResponse>, Status> {
        Err(Status::unimplemented("bare server"))
    }

    async fn list_form_tasks(
        &self,
        _: Request<ListFormTasksRequest>,
    ) -> Result<Response<ListFormTasksResponse>, Status> {
        Err(Status::unimplemented("bare server"))
    }

    async fn save_draft(
        &self,
        _: Request<SaveDraftRequest>,
    ) -> Result<Response<SaveDraftResponse>, Status> {
        Err(Status::unimplemented("bare server"))
    }

    async fn submit_form(
        &self,
        _: Request<SubmitFormRequest>,
    ) -> Result<Response<SubmitFormResponse>, Status> {
        Err(Status::unimplemented("bare server"))
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    eprintln!("bare server on {}", args.listen);
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .max_concurrent_streams(10_000)
        .http2_keepalive_interval(Some(Duration::from_secs(20)))
        .add_service(FormServiceServer::new(Bare))
        .serve_with_shutdown(args.listen, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
