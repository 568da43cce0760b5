//! The in-process daemon the latency and ingestion figures are measured on: a real sled store in
//! a temp dir, the real tonic server on 127.0.0.1:0 on its own runtime (as `caudad serve` runs
//! it), and an executor that only timestamps launches, because what is measured is the daemon's
//! path from a request to a launch decision, not starting worker processes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use cauda_proto::v1::cauda_client::CaudaClient;
use cauda_proto::v1::worker_client::WorkerClient;
use cauda_proto::v1::{self, finish_request::Outcome};
use caudad::core::{Daemon, DaemonSettings, Executor, SystemClock};
use caudad::model::{RunId, RunRecord};
use caudad::scheduler::Inventory;
use caudad::store::{SledStore, StoreConfig};
use tokio::sync::{mpsc, oneshot};
use tonic::transport::Channel;

/// How long the bench waits for any one expected launch before it gives up.
const LAUNCH_DEADLINE: Duration = Duration::from_secs(30);

/// One launch as the executor saw it.
#[derive(Debug, Clone, Copy)]
pub struct Launch {
    pub run: RunId,
    pub attempt: u32,
    /// When the executor was called (after the start was durable in sled).
    pub at: Instant,
}

/// An executor that records when each launch happened and starts nothing.
struct RecordingExecutor {
    tx: mpsc::UnboundedSender<Launch>,
}

impl Executor for RecordingExecutor {
    fn launch(&self, run: &RunRecord) {
        let at = Instant::now();
        // A closed channel means the bench stopped listening; nothing to record then.
        let _ = self.tx.send(Launch {
            run: run.id,
            attempt: run.attempt,
            at,
        });
    }
    fn cancel(&self, _run: &RunRecord) {}
}

/// The launches the executor recorded, in order.
pub struct Launches {
    rx: mpsc::UnboundedReceiver<Launch>,
}

impl Launches {
    /// The next launch, which must be `run`'s: any other launch means the setup let a run
    /// start that should have stayed queued.
    pub async fn expect(&mut self, run: u64) -> anyhow::Result<Launch> {
        let launch = self.next().await?;
        if launch.run.0 != run {
            bail!("expected r-{run} to launch, but {} launched", launch.run);
        }
        Ok(launch)
    }

    /// The next `n` launches.
    pub async fn take(&mut self, n: usize) -> anyhow::Result<Vec<Launch>> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.next().await?);
        }
        Ok(out)
    }

    /// Fails when a launch is pending now (checked after the daemon answered).
    pub fn expect_none(&mut self) -> anyhow::Result<()> {
        match self.rx.try_recv() {
            Ok(launch) => bail!("{} launched but should have stayed queued", launch.run),
            Err(_) => Ok(()),
        }
    }

    async fn next(&mut self) -> anyhow::Result<Launch> {
        tokio::time::timeout(LAUNCH_DEADLINE, self.rx.recv())
            .await
            .context("no launch within the deadline")?
            .context("the executor's channel closed")
    }
}

/// A daemon core served over gRPC on its own runtime.
pub struct Rig {
    pub addr: SocketAddr,
    runtime: tokio::runtime::Runtime,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), tonic::transport::Error>>>,
    _dir: tempfile::TempDir,
}

impl Rig {
    /// A fresh daemon over an empty sled store with the inventory `devices` (config syntax).
    pub fn start(devices: &[&str]) -> anyhow::Result<(Rig, Launches)> {
        let dir = tempfile::Builder::new()
            .prefix("caudad-bench-")
            .tempdir()
            .context("creating the bench's temp dir")?;
        let store = SledStore::open(dir.path().join("db"), StoreConfig::default())?;
        let entries: Vec<String> = devices.iter().map(|d| d.to_string()).collect();
        let settings = DaemonSettings {
            inventory: Inventory::from_spec(&entries)?,
            ..DaemonSettings::default()
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let daemon = Arc::new(Daemon::new(
            Arc::new(store),
            settings,
            Arc::new(SystemClock),
            Arc::new(RecordingExecutor { tx }),
        ));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("bench-daemon")
            .max_blocking_threads(caudad::grpc::MAX_BLOCKING_THREADS)
            .build()
            .context("starting the daemon's runtime")?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .context("binding 127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = runtime.spawn(caudad::grpc::serve(listener, daemon, async {
            let _ = stopped.await;
        }));
        let rig = Rig {
            addr,
            runtime,
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
        };
        Ok((rig, Launches { rx }))
    }

    /// A client of the public service on its own connection.
    pub async fn cauda(&self) -> anyhow::Result<CaudaClient<Channel>> {
        Ok(CaudaClient::connect(format!("http://{}", self.addr)).await?)
    }

    /// A client of the worker service on its own connection.
    pub async fn worker(&self) -> anyhow::Result<WorkerClient<Channel>> {
        Ok(WorkerClient::connect(format!("http://{}", self.addr)).await?)
    }

    /// Stops the server and waits (bounded) for it to drain. Call outside any runtime.
    pub fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            self.runtime
                .block_on(async { tokio::time::timeout(Duration::from_secs(10), task).await })
                .context("the server did not stop within 10 s")???;
        }
        Ok(())
    }
}

/// A small spec on the embedded digits: one run, or a grid over `train.seed` of `grid` runs;
/// `gpus` whole GPUs each (0 = a CPU slot). Every call gets its own `split_seed`, so no two
/// specs share a config hash: the daemon would reuse an identical run instead of queueing it.
pub fn spec(name: &str, gpus: u32, grid: Option<std::ops::Range<usize>>) -> String {
    static SALT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let salt = SALT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut text = format!(
        "name = \"{name}\"\nmethod = \"ce\"\n[data]\nformat = \"digits\"\n\
         imbalance = {{ profile = \"exp\", ratio = 50 }}\nsplit_seed = {salt}\n[train]\nepochs = 20\n\
         [resources]\ngpus = {gpus}\n"
    );
    if let Some(seeds) = grid {
        let list: Vec<String> = seeds.map(|s| s.to_string()).collect();
        text.push_str(&format!(
            "[sweep]\n\"train.seed\" = [{}]\n",
            list.join(", ")
        ));
    }
    text
}

/// Submits `spec_text` as user `bench`; returns the experiment id and its run ids.
pub async fn submit(
    client: &mut CaudaClient<Channel>,
    spec_text: &str,
) -> anyhow::Result<(u64, Vec<u64>)> {
    let reply = client
        .submit_experiment(v1::SubmitExperimentRequest {
            spec_toml: spec_text.to_string(),
            source_name: Some("bench.toml".into()),
            user: Some("bench".into()),
            priority: None,
            validate_only: false,
        })
        .await?
        .into_inner();
    Ok((
        reply.experiment_id,
        reply.runs.iter().map(|r| r.run_id).collect(),
    ))
}

/// How many runs of experiment `id` are queued.
pub async fn queued_of(client: &mut CaudaClient<Channel>, id: u64) -> anyhow::Result<u32> {
    let experiment = client
        .get_experiment(v1::GetExperimentRequest { experiment_id: id })
        .await?
        .into_inner()
        .experiment
        .context("GetExperiment answered without an experiment")?;
    Ok(experiment.counts.map_or(0, |c| c.queued))
}

/// A run's summary as the engine writes it (the daemon refuses a `Finish` without one).
const SUMMARY: &str = r#"{"method":"ce","class_counts":[5,1],"split_hash":"h","epochs":1,
    "best_test_top1":0.5,"val_selected_top1":null,"images_per_sec":10.0,
    "last":{"test_top1":0.5,"many":null,"medium":null,"few":null,"per_class":[1.0,0.0]}}"#;

/// Ends a launched attempt as its worker would: Finish with success, which frees its devices.
pub async fn finish(client: &mut WorkerClient<Channel>, launch: Launch) -> anyhow::Result<()> {
    client
        .finish(v1::FinishRequest {
            run_id: launch.run.0,
            attempt: launch.attempt,
            outcome: Some(Outcome::Success(v1::FinishSuccess {
                summary_json: SUMMARY.into(),
            })),
        })
        .await?;
    Ok(())
}

/// Registers a launched attempt as its worker would.
pub async fn register(client: &mut WorkerClient<Channel>, launch: Launch) -> anyhow::Result<()> {
    let reply = client
        .register(v1::RegisterRequest {
            run_id: launch.run.0,
            attempt: launch.attempt,
            pid: std::process::id(),
            hostname: "bench".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        })
        .await?
        .into_inner();
    ensure!(
        reply.resume.is_none(),
        "a fresh run has no checkpoint to resume"
    );
    Ok(())
}
