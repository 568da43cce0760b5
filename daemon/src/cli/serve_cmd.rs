//! `caudad serve`: load `caudad.toml` (flags override it), start the daemon (`caudad::node`)
//! and serve the gRPC API (public and worker services) until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;

use crate::config::DaemonConfig;
use crate::engine::Engine;
use crate::node::Node;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// The daemon's config file (caudad.toml); absent means the defaults.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The gRPC address, overriding the config's `listen`.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// The data directory, overriding the config's `data_dir`.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

pub fn run(args: ServeArgs, engine: Engine) -> anyhow::Result<()> {
    let (mut config, path) = match &args.config {
        Some(path) => (DaemonConfig::load(path)?, path.clone()),
        None => (DaemonConfig::default(), PathBuf::from("<defaults>")),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    // The workers are this binary, so they build the same engine.
    let program = std::env::current_exe().context("locating the daemon's own binary")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(crate::grpc::MAX_BLOCKING_THREADS)
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(async move {
        let node = Node::start(&config, &path, program, engine).await?;
        if !node.requeued.is_empty() {
            eprintln!(
                "caudad: resuming {} runs of the previous daemon",
                node.requeued.len()
            );
        }
        if let Some(metrics) = &node.metrics {
            eprintln!("caudad metrics on {}", metrics.addr());
        }
        eprintln!("caudad listening on {}", node.addr);
        node.serve(shutdown_signal()).await?;
        anyhow::Ok(())
    })
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        r = tokio::signal::ctrl_c() => {
            if let Err(e) = r {
                tracing::error!(error = %e, "cannot listen for Ctrl-C; shutting down");
            }
        }
        () = term => {}
    }
}
