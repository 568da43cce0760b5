//! A running daemon, assembled: the sled store, the core, the process executor and its event
//! pump, the liveness/scheduling ticker and the gRPC server on a bound listener. `caudad serve`
//! runs one until a signal; `caudad demo` runs one for the demo study and stops it.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::config::ExecutorKind;
use crate::config::{ConfigError, DaemonConfig};
use crate::core::Executor;
use crate::core::{CoreError, Daemon, DaemonSettings, SystemClock};
use crate::executor::slurm::{SlurmExecutor, SlurmSettings};
use crate::executor::{self, ProcessConfig, ProcessExecutor};
use crate::grpc::auth::{UserGate, WorkerGate};
use crate::model::RunId;
use crate::store::{SledStore, StoreConfig, StoreError};

/// How often the daemon looks for lost workers and re-runs the scheduler.
const TICK: Duration = Duration::from_secs(1);

/// Why a daemon could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("creating the data directory {}: {source}", path.display())]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error("binding the metrics endpoint (metrics.listen) {addr}: {source}")]
    MetricsBind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Serve(#[from] tonic::transport::Error),
    #[error(transparent)]
    Folders(#[from] crate::folders::FolderError),
    #[error("slurm executor: {0}")]
    Slurm(#[from] crate::executor::slurm::SlurmError),
    #[error(
        "refusing to listen on {addr} without authentication: add an [auth] section with users \
         to the config, listen on a loopback address, or set allow_insecure_listen = true"
    )]
    InsecureListen { addr: SocketAddr },
    #[error(
        "refusing to listen on {addr} with [auth] but without [tls]: bearer tokens would cross \
         the network in plaintext; add a [tls] section (cert, key), listen on a loopback \
         address, or set allow_insecure_listen = true"
    )]
    PlaintextTokens { addr: SocketAddr },
    #[error(transparent)]
    Tls(#[from] crate::grpc::tls::TlsError),
}

/// A started daemon (inside a tokio runtime).
pub struct Node {
    /// The address the gRPC server listens on (the bound port when the config said 0).
    pub addr: SocketAddr,
    pub daemon: Arc<Daemon>,
    pub executor: ProcessExecutor,
    /// The Slurm executor, with `executor = "slurm"` (then it runs every attempt instead).
    pub slurm: Option<SlurmExecutor>,
    /// Runs the previous daemon left running, requeued at start.
    pub requeued: Vec<RunId>,
    /// The Prometheus endpoint, with `[metrics]` (serving from start until the node stops).
    pub metrics: Option<crate::metrics::MetricsServer>,
    listener: tokio::net::TcpListener,
    /// The watched inbox and presets folders (live while the node serves).
    folders: crate::folders::Folders,
    /// Who may call the public and worker services.
    gates: (UserGate, WorkerGate),
    /// TLS on the port (`[tls]`), already checked.
    tls: Option<tonic::transport::ServerTlsConfig>,
}

impl Node {
    /// Opens the store under `config.data_dir`, binds `config.listen`, requeues the previous
    /// daemon's running runs and starts the executor. `program` is the `caudad` binary workers
    /// run (`caudad work`): one built with the same `engine`, the plugins and presets this
    /// daemon serves. `config_path` names the config in errors.
    pub async fn start(
        config: &DaemonConfig,
        config_path: &Path,
        program: PathBuf,
        engine: crate::engine::Engine,
    ) -> Result<Self, NodeError> {
        if config.auth.is_none()
            && !config.listen.ip().is_loopback()
            && !config.allow_insecure_listen
        {
            return Err(NodeError::InsecureListen {
                addr: config.listen,
            });
        }
        if config.auth.is_some() && config.tls.is_none() && !config.listen.ip().is_loopback() {
            if !config.allow_insecure_listen {
                return Err(NodeError::PlaintextTokens {
                    addr: config.listen,
                });
            }
            tracing::warn!(
                addr = %config.listen,
                "allow_insecure_listen: bearer tokens cross the network in plaintext (no [tls])"
            );
        }
        let tls = match &config.tls {
            Some(t) => Some(crate::grpc::tls::server_config(t)?),
            None => None,
        };
        let inventory = config.inventory(config_path)?;
        std::fs::create_dir_all(&config.data_dir).map_err(|source| NodeError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let store = SledStore::open(
            config.data_dir.join("db"),
            StoreConfig {
                keep_checkpoints: config.keep_checkpoints,
                min_free_bytes: config.min_free_disk_mb.saturating_mul(1 << 20),
            },
        )?;
        let metrics_listener = match config.metrics {
            Some(m) => {
                let listener = crate::metrics::bind(m.listen).await.map_err(|source| {
                    NodeError::MetricsBind {
                        addr: m.listen,
                        source,
                    }
                })?;
                Some((m.listen, listener))
            }
            None => None,
        };
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| NodeError::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| NodeError::Bind {
            addr: config.listen,
            source,
        })?;
        let data_roots = crate::core::DataRoots::new(config.effective_data_roots());
        // What every worker, local or under Slurm, is told: how to dial back (https with
        // [tls]) and verify the daemon, and the data roots it re-checks paths against.
        let daemon_url = match tls {
            Some(_) => worker_url(addr).replacen("http://", "https://", 1),
            None => worker_url(addr),
        };
        let worker_env: Vec<(String, String)> = config
            .tls
            .as_ref()
            .map(crate::grpc::tls::worker_env)
            .unwrap_or_default()
            .into_iter()
            .chain([
                (crate::core::DATA_ROOTS_ENV.to_string(), data_roots.to_env()),
                (
                    crate::worker::RUN_ROOT_ENV.to_string(),
                    std::path::absolute(
                        config
                            .commands
                            .run_root
                            .clone()
                            .unwrap_or_else(|| config.data_dir.join("runs")),
                    )
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
                ),
            ])
            .collect();
        let slurm = match config.executor {
            ExecutorKind::Slurm => {
                let c = config.slurm.clone().unwrap_or_default();
                Some(SlurmExecutor::new(SlurmSettings {
                    caudad: c.caudad_path.clone().unwrap_or_else(|| program.clone()),
                    daemon_url: c
                        .worker_daemon_url
                        .clone()
                        .unwrap_or_else(|| daemon_url.clone()),
                    env: worker_env.clone(),
                    log_dir: c
                        .log_dir
                        .clone()
                        .unwrap_or_else(|| config.data_dir.join("slurm-logs")),
                    config: c,
                })?)
            }
            ExecutorKind::Process => None,
        };
        let (executor, events) = ProcessExecutor::new(
            ProcessConfig {
                program,
                daemon_url,
                grace: Duration::from_millis(config.kill_grace_ms),
                env: worker_env,
            },
            tokio::runtime::Handle::current(),
        );
        let settings = DaemonSettings {
            inventory,
            scheduler: config.scheduler,
            max_retries: config.max_retries,
            gpu_backend: config.backends.gpu,
            commands: crate::core::CommandPolicy {
                enabled: config.commands.enabled,
                users: config.commands.users.clone(),
                admins: config
                    .auth
                    .iter()
                    .flat_map(|a| a.users.iter().filter(|u| u.admin))
                    .map(|u| u.name.clone())
                    .collect(),
            },
        };
        let recorder = metrics_listener
            .is_some()
            .then(|| Arc::new(crate::metrics::Metrics::new()));
        let mut core = Daemon::new(
            Arc::new(store),
            settings,
            Arc::new(SystemClock),
            match &slurm {
                Some((s, _)) => Arc::new(s.clone()) as Arc<dyn Executor>,
                None => Arc::new(executor.clone()),
            },
        )
        .with_engine(engine);
        if let Some(r) = &recorder {
            core = core.with_recorder(r.clone());
        }
        let daemon = Arc::new(core);
        daemon.set_max_queued_runs(config.quotas.max_queued_runs_per_user);
        daemon.set_max_gpus(config.quotas.max_gpus_per_user);
        daemon.set_data_roots(data_roots)?;
        tokio::spawn(executor::pump(events, daemon.clone()));
        // Runs the previous daemon left running resume as new attempts; queued runs keep
        // their order and get their chance at once. Under Slurm, attempts whose jobs Slurm
        // still holds stay running (their workers reconnect).
        let (requeued, slurm) = match slurm {
            Some((s, driver)) => {
                let keep = s.live_attempts().await?;
                let requeued = daemon.recover_keeping(&keep)?;
                driver.start(daemon.clone());
                (requeued, Some(s))
            }
            None => (daemon.recover()?, None),
        };
        let folders = crate::folders::start(config, daemon.clone())?;
        let metrics = match (metrics_listener, recorder) {
            (Some((asked, listener)), Some(recorder)) => Some(
                crate::metrics::MetricsServer::start(listener, daemon.clone(), recorder).map_err(
                    |source| NodeError::MetricsBind {
                        addr: asked,
                        source,
                    },
                )?,
            ),
            _ => None,
        };
        let ticker = daemon.clone();
        let timeout = config.heartbeat_timeout_ms;
        tokio::spawn(async move {
            let mut every = tokio::time::interval(TICK);
            loop {
                every.tick().await;
                // A tick may commit (lost workers, scheduling): off the runtime's workers.
                let core = ticker.clone();
                match tokio::task::spawn_blocking(move || core.tick(timeout)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::error!(error = %e, "scheduling tick failed"),
                    Err(e) => tracing::error!(error = %e, "scheduling tick panicked"),
                }
            }
        });
        // Worker tokens are always handed out; they are checked when users are.
        let gates = (
            UserGate::new(config.auth.as_ref()),
            WorkerGate::new(config.auth.is_some().then(|| match &slurm {
                Some(s) => s.tokens(),
                None => executor.tokens(),
            })),
        );
        if config.auth.is_none() && !addr.ip().is_loopback() {
            tracing::warn!(%addr, "allow_insecure_listen: serving without authentication");
        }
        Ok(Self {
            addr,
            daemon,
            executor,
            slurm,
            requeued,
            metrics,
            listener,
            folders,
            gates,
            tls,
        })
    }

    /// Serves the gRPC API until `shutdown` resolves, then stops the live workers (the next
    /// daemon requeues their runs).
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), NodeError> {
        let _folders = self.folders;
        let _metrics = self.metrics;
        let served =
            crate::grpc::serve_secured(self.listener, self.daemon, self.gates, self.tls, shutdown)
                .await;
        self.executor.stop_all();
        Ok(served?)
    }
}

/// The address workers dial: the listen address, with an unspecified IP replaced by loopback.
pub fn worker_url(addr: SocketAddr) -> String {
    let ip = if addr.ip().is_unspecified() {
        match addr {
            SocketAddr::V4(_) => std::net::IpAddr::from([127, 0, 0, 1]),
            SocketAddr::V6(_) => std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        }
    } else {
        addr.ip()
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}
