//! The HTTP side of the metrics: `GET /metrics` answers the OpenMetrics text, anything else is
//! 404. Each scrape takes the core's snapshot and renders it on a blocking thread (store reads),
//! so the async runtime that serves gRPC never waits on a scrape, and the core's write lock is
//! never taken.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tracing::Instrument;

use super::families::{CONTENT_TYPE, Metrics};
use crate::core::Daemon;

/// Binds the metrics address (port 0 picks a free one); a failure is a start-up error.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// A serving metrics endpoint; dropping it stops the server.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct Scrape {
    daemon: Arc<Daemon>,
    metrics: Arc<Metrics>,
}

impl MetricsServer {
    /// Serves `metrics` (with `daemon`'s state) on `listener` from a task of the current
    /// runtime.
    pub fn start(
        listener: TcpListener,
        daemon: Arc<Daemon>,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let app = Router::new()
            .route("/metrics", get(scrape).fallback(not_found))
            .fallback(not_found)
            .with_state(Scrape { daemon, metrics });
        let task = tokio::spawn(
            async move {
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::error!(error = %e, "the metrics endpoint stopped");
                }
            }
            .instrument(tracing::info_span!("metrics_server", %addr)),
        );
        Ok(Self { addr, task })
    }

    /// The bound address (the chosen port when the config said 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn scrape(State(s): State<Scrape>) -> Response {
    let rendered = tokio::task::spawn_blocking(move || {
        s.daemon
            .snapshot()
            .map(|snapshot| s.metrics.render(&snapshot))
    })
    .await;
    match rendered {
        Ok(Ok(text)) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "metrics scrape: reading the daemon's state failed");
            (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "metrics scrape: the render task failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        "not found; metrics are at /metrics\n",
    )
        .into_response()
}
