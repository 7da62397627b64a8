//! A TCP proxy of a test's own between ramp and the shared engine, to produce faults
//! the real engine cannot (and without stopping the engine other tests use).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fault {
    /// Forward everything.
    Pass,
    /// Accept and read, never answer.
    Hang,
    /// Forward the request, then send the first bytes of the answer and reset the
    /// connection (TCP RST).
    ResetMidResponse,
}

pub struct FaultProxy {
    pub addr: SocketAddr,
    fault: Arc<Mutex<Fault>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    pub async fn start(upstream: SocketAddr, fault: Fault) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let fault = Arc::new(Mutex::new(fault));
        let current = fault.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let fault = *current.lock().unwrap();
                tokio::spawn(handle(client, upstream, fault));
            }
        });
        Self { addr, fault, task }
    }

    /// The engine URL through this proxy.
    pub fn url(&self) -> String {
        format!("http://{}/engine-rest", self.addr)
    }

    pub fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
    }
}

async fn handle(mut client: TcpStream, upstream: SocketAddr, fault: Fault) {
    match fault {
        Fault::Pass => {
            if let Ok(mut server) = TcpStream::connect(upstream).await {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            }
        }
        Fault::Hang => {
            let mut sink = [0u8; 4096];
            while let Ok(n) = client.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        }
        Fault::ResetMidResponse => {
            let Ok(mut server) = TcpStream::connect(upstream).await else {
                return;
            };
            // The request: whatever the client sends until it pauses.
            let mut request = [0u8; 16 * 1024];
            loop {
                match tokio::time::timeout(
                    std::time::Duration::from_millis(200),
                    client.read(&mut request),
                )
                .await
                {
                    Ok(Ok(n)) if n > 0 => {
                        if server.write_all(&request[..n]).await.is_err() {
                            return;
                        }
                    }
                    _ => break,
                }
            }
            let mut answer = [0u8; 4096];
            if let Ok(n) = server.read(&mut answer).await
                && n > 0
            {
                let _ = client.write_all(&answer[..n.min(20)]).await;
            }
            // SO_LINGER 0: closing sends a reset, not an orderly end. (The deprecation
            // warns of blocking on drop, which a zero linger never does.)
            #[allow(deprecated)]
            let _ = client.set_linger(Some(std::time::Duration::ZERO));
            drop(client);
        }
    }
}
