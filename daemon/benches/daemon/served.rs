//! The real `caudad serve` process: its resident memory idle, after a large store is filled
//! through SubmitExperiment and after listing it, and the latency of `ls` (ListRuns) over that
//! store. Its inventory has one CPU slot and no GPU, and every run asks for a GPU, so all runs
//! stay queued and no worker process ever starts.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use cauda_proto::v1::{self, RunState, RunView, cancel_run_request::Target};
use tonic::transport::Channel;

use crate::rig::{spec, submit};

type Cauda = cauda_proto::v1::cauda_client::CaudaClient<Channel>;

/// Runs per SubmitExperiment while filling (a `[sweep]` over `train.seed`).
pub const GRID: usize = 1000;

/// A `caudad serve` child on 127.0.0.1 port 0 over a temp data dir.
pub struct Served {
    child: Child,
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Served {
    /// Starts the binary and waits for its address line.
    pub fn start(binary: &Path) -> anyhow::Result<Served> {
        let dir = tempfile::Builder::new()
            .prefix("caudad-bench-serve-")
            .tempdir()?;
        let config = dir.path().join("c.toml");
        std::fs::write(&config, "devices = [\"cpu:1\"]\n")?;
        let mut child = Command::new(binary)
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stderr = child.stderr.take().context("the child's stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        // Bounded: the address comes first; the pipe ends if the daemon dies.
        let addr = lines
            .by_ref()
            .take(200)
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix("caudad listening on ").map(str::to_string));
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{} did not print its address", binary.display());
        };
        std::thread::Builder::new()
            .name("caudad-stderr".into())
            .spawn(move || lines.for_each(drop))?;
        Ok(Served {
            child,
            addr: format!("http://{addr}"),
            _dir: dir,
        })
    }

    /// VmRSS and VmHWM (peak) of the daemon, in MiB.
    pub fn rss_mib(&self) -> anyhow::Result<(f64, f64)> {
        let path = format!("/proc/{}/status", self.child.id());
        let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let field = |name: &str| -> anyhow::Result<f64> {
            let kib: f64 = status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .with_context(|| format!("{path} has no {name}"))?
                .parse()?;
            Ok(kib / 1024.0)
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// SIGTERM, then SIGKILL if it has not exited within 10 s.
    pub fn stop(mut self) -> anyhow::Result<()> {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id())?);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child.kill()?;
        self.child.wait()?;
        bail!("caudad did not stop within 10 s of SIGTERM")
    }
}

/// Submits `runs` GPU runs in grids of `GRID`; returns the time of each submission and the
/// experiment ids.
pub async fn fill(client: &mut Cauda, runs: usize) -> anyhow::Result<(Vec<Duration>, Vec<u64>)> {
    let mut times = Vec::new();
    let mut experiments = Vec::new();
    let mut done = 0;
    while done < runs {
        let n = GRID.min(runs - done);
        let text = spec(&format!("ls-{}", experiments.len()), 1, Some(0..n));
        let start = Instant::now();
        let (experiment, ids) = submit(client, &text).await?;
        times.push(start.elapsed());
        ensure!(ids.len() == n, "a grid of {n} gave {} runs", ids.len());
        experiments.push(experiment);
        done += n;
    }
    Ok((times, experiments))
}

/// Cancels every run of `experiment`; returns how many were cancelled.
pub async fn cancel(client: &mut Cauda, experiment: u64) -> anyhow::Result<usize> {
    let reply = client
        .cancel_run(v1::CancelRunRequest {
            target: Some(Target::ExperimentId(experiment)),
            reason: Some("bench".into()),
        })
        .await?
        .into_inner();
    Ok(reply.cancelled_run_ids.len())
}

/// Lists runs as `cauda ls` does (basic view), following page tokens when `all`; returns the
/// number of runs listed.
pub async fn list(
    client: &mut Cauda,
    page_size: u32,
    states: &[RunState],
    all: bool,
) -> anyhow::Result<usize> {
    let mut token = String::new();
    let mut listed = 0;
    // Bounded: at most 100,000 pages.
    for _ in 0..100_000 {
        let reply = client
            .list_runs(v1::ListRunsRequest {
                states: states.iter().map(|s| *s as i32).collect(),
                page_size,
                page_token: token,
                view: RunView::Basic as i32,
                ..v1::ListRunsRequest::default()
            })
            .await?
            .into_inner();
        listed += reply.runs.len();
        if !all || reply.next_page_token.is_empty() {
            return Ok(listed);
        }
        token = reply.next_page_token;
    }
    bail!("ListRuns kept answering page tokens")
}

/// `reps` timed listings (see `list`), each checked to list `expect` runs.
pub async fn time_list(
    client: &mut Cauda,
    reps: usize,
    expect: usize,
    (page_size, states, all): (u32, &[RunState], bool),
) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(reps);
    for _ in 0..reps {
        let start = Instant::now();
        let listed = list(client, page_size, states, all).await?;
        samples.push(start.elapsed());
        ensure!(listed == expect, "listed {listed} runs, expected {expect}");
    }
    Ok(samples)
}
