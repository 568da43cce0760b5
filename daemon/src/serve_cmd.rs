//! `caudad serve`: load `caudad.toml` (flags override it), open the sled store in the data
//! directory, build the device inventory and serve the gRPC API until Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use caudad::config::DaemonConfig;
use caudad::core::{Daemon, DaemonSettings, NoopExecutor, SystemClock};
use caudad::store::{SledStore, StoreConfig};

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

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
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
    let inventory = config.inventory(&path)?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let store = SledStore::open(config.data_dir.join("db"), StoreConfig::default())?;
    let settings = DaemonSettings {
        inventory,
        scheduler: config.scheduler,
        max_retries: config.max_retries,
    };
    let daemon = Arc::new(Daemon::new(
        Arc::new(store),
        settings,
        Arc::new(SystemClock),
        Arc::new(NoopExecutor),
    ));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(async move {
        // Runs queued before a restart get their chance at once.
        daemon.schedule()?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        eprintln!("caudad listening on {}", listener.local_addr()?);
        let shutdown = async {
            if let Err(e) = tokio::signal::ctrl_c().await {
                tracing::error!(error = %e, "cannot listen for Ctrl-C; shutting down");
            }
        };
        caudad::grpc::serve(listener, daemon, shutdown).await?;
        anyhow::Ok(())
    })
}
