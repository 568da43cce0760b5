//! An in-process daemon for API tests that drive every state change themselves: a real sled
//! store in a temp dir, the real gRPC server on 127.0.0.1:0 with a oneshot shutdown, and an
//! executor that does nothing (started runs stay Running until the test says otherwise).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cauda_proto::v1::{cauda_client::CaudaClient, worker_client::WorkerClient};
use caudad::core::{Clock, Daemon, DaemonSettings, NoopExecutor};
use caudad::scheduler::Inventory;
use caudad::store::{SledStore, StoreConfig};
use tokio::sync::oneshot;
use tonic::transport::Channel;

/// A running in-process server; `shutdown` (or dropping it) stops it.
pub struct InProcess {
    pub addr: std::net::SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl InProcess {
    /// A daemon over `<dir>/db` with `devices` (e.g. `cpu:2`, `gpu:0@24000`) and `clock`.
    pub async fn start(dir: &Path, devices: &[String], clock: Arc<dyn Clock>) -> InProcess {
        let daemon = Self::daemon(dir, devices, clock);
        daemon.schedule().expect("schedule on start");
        Self::serve(daemon).await
    }

    /// The daemon `start` serves, not yet scheduled nor served: a test can act on its core
    /// first (submit, finish, `recover` as a restarted daemon does).
    pub fn daemon(dir: &Path, devices: &[String], clock: Arc<dyn Clock>) -> Arc<Daemon> {
        let store = SledStore::open(dir.join("db"), StoreConfig::default()).expect("open sled");
        let settings = DaemonSettings {
            inventory: Inventory::from_spec(devices).expect("inventory"),
            ..DaemonSettings::default()
        };
        Arc::new(Daemon::new(
            Arc::new(store),
            settings,
            clock,
            Arc::new(NoopExecutor),
        ))
    }

    /// Serves `daemon` on 127.0.0.1, port 0.
    pub async fn serve(daemon: Arc<Daemon>) -> InProcess {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            caudad::grpc::serve(listener, daemon, async {
                let _ = stopped.await;
            })
            .await
            .expect("serve");
        });
        InProcess {
            addr,
            stop: Some(stop),
            task,
        }
    }

    pub async fn client(&self) -> CaudaClient<Channel> {
        CaudaClient::connect(format!("http://{}", self.addr))
            .await
            .expect("connect")
    }

    pub async fn worker(&self) -> WorkerClient<Channel> {
        WorkerClient::connect(format!("http://{}", self.addr))
            .await
            .expect("connect worker")
    }

    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("server stops")
            .expect("server task");
    }
}
