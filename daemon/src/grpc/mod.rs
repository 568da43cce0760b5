//! The daemon's gRPC edge: tonic adapters over the core (`service`), the one conversions module
//! (`convert`), and `serve`, which runs the `Cauda` service and tonic-health on a listener until
//! a shutdown future resolves (tests bind `127.0.0.1:0` and stop with a oneshot). `auth` gates
//! both services with bearer tokens when the config has `[auth]`; `tls` puts the port behind
//! rustls when it has `[tls]`.

pub mod auth;
mod blocking;
pub mod convert;
pub mod engine_wire;
mod epoch_wire;
mod export;
mod service;
pub mod tls;
mod watch;
mod worker_service;

use std::future::Future;
use std::sync::Arc;

use cauda_proto::v1::cauda_server::CaudaServer;
use cauda_proto::v1::worker_server::WorkerServer;
use tonic::service::interceptor::InterceptedService;

use crate::core::Daemon;
pub use blocking::MAX_BLOCKING_THREADS;
pub use service::CaudaService;
pub use worker_service::{
    HEARTBEAT_INTERVAL_MS, MAX_CHECKPOINT_BYTES, WorkerService, meta_to_wire,
};

/// Largest request the server decodes (1 MiB); larger ones fail with RESOURCE_EXHAUSTED.
pub const MAX_REQUEST_BYTES: usize = 1 << 20;

/// Largest run summary (JSON) a worker's `Finish` carries: 8 MiB. A confusion matrix of 1000
/// classes (the most an engine summary keeps) is about 2 MB of it; a worker sends a summary
/// that would be larger without its matrix.
pub const MAX_SUMMARY_BYTES: usize = 8 << 20;

/// Largest worker message decoded: a `Finish` with the largest summary (or a 1 MiB checkpoint
/// chunk), plus framing.
pub const MAX_WORKER_MESSAGE_BYTES: usize = MAX_SUMMARY_BYTES + (64 << 10);
const _: () = assert!(MAX_SUMMARY_BYTES >= cauda_proto::MAX_CHUNK_BYTES);

/// Serves the `Cauda` service, the internal `Worker` service and the gRPC health service on
/// `listener` until `shutdown` resolves, then drains in-flight calls. No authentication.
pub async fn serve(
    listener: tokio::net::TcpListener,
    daemon: Arc<Daemon>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let gates = (auth::UserGate::default(), auth::WorkerGate::default());
    serve_gated(listener, daemon, gates, shutdown).await
}

/// `serve` with the public service behind `gates.0` and the worker service behind `gates.1`
/// (health stays open).
pub async fn serve_gated(
    listener: tokio::net::TcpListener,
    daemon: Arc<Daemon>,
    gates: (auth::UserGate, auth::WorkerGate),
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    serve_secured(listener, daemon, gates, None, shutdown).await
}

/// `serve_gated`, with TLS on the port when `tls` is given (every service, health included).
pub async fn serve_secured(
    listener: tokio::net::TcpListener,
    daemon: Arc<Daemon>,
    gates: (auth::UserGate, auth::WorkerGate),
    tls: Option<tonic::transport::ServerTlsConfig>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_serving::<CaudaServer<CaudaService>>().await;
    let worker = WorkerServer::new(WorkerService::new(daemon.clone()))
        .max_decoding_message_size(MAX_WORKER_MESSAGE_BYTES);
    let worker = InterceptedService::new(worker, gates.1);
    let cauda =
        CaudaServer::new(CaudaService::new(daemon)).max_decoding_message_size(MAX_REQUEST_BYTES);
    let cauda = InterceptedService::new(cauda, gates.0);
    tracing::info!(addr = ?listener.local_addr().ok(), tls = tls.is_some(), "serving");
    let mut server = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        server = server.tls_config(tls)?;
    }
    server
        .add_service(health)
        .add_service(cauda)
        .add_service(worker)
        .serve_with_incoming_shutdown(
            // Without TCP_NODELAY a reply of a few KB waits ~40 ms for a delayed ACK
            // (measured by bench/daemon.sh: ListRuns p50 44 ms -> 1.2 ms).
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await
}
