//! Shared harness of the end-to-end tests: the real `caudad serve` binary on 127.0.0.1 port 0
//! with a sled data dir and real `caudad work` children, a tonic client, bounded polling, and
//! the worker processes found through /proc (so tests can `kill -9` them), and `require`, the
//! one way a test skips for a missing tool.

#![allow(dead_code)]

mod in_process;
mod scrape;
mod skip;
#[allow(unused_imports)]
pub use in_process::InProcess;
#[allow(unused_imports)]
pub use scrape::{get, http, parse_exposition, scrape};
#[allow(unused_imports)]
pub use skip::{TORCH_PYTHON, cauda_bin, caudad_bin, caudad_seql_bin, require, skip, torch_python};

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cauda_proto::v1::{self, cauda_client::CaudaClient};
use tonic::transport::Channel;

/// Runs the `cauda` binary `cli` against `addr` with `args`, asserts it succeeded (naming the
/// arguments and its stderr) and returns its stdout.
pub fn cauda_ok(cli: &Path, addr: &str, args: &[&str]) -> String {
    let out = Command::new(cli)
        .arg("--addr")
        .arg(addr)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cauda {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Cancels one run (no reason given).
pub fn cancel_request(id: u64) -> v1::CancelRunRequest {
    v1::CancelRunRequest {
        target: Some(v1::cancel_run_request::Target::RunId(id)),
        reason: None,
    }
}

/// A tiny real run: an MLP on the embedded digits made long-tailed, a checkpoint every epoch.
pub fn tiny_spec(name: &str, epochs: u32, extra: &str) -> String {
    format!(
        r#"name = "{name}"
method = "ce"
[data]
format = "digits"
imbalance = {{ profile = "exp", ratio = 10 }}
[model]
backbone = "mlp"
[train]
epochs = {epochs}
batch_size = 64
optimizer = {{ name = "sgd", lr = 0.05, momentum = 0.9 }}
checkpoint_every = 1
{extra}"#
    )
}

/// A tiny MNIST-shaped IDX data set in `dir`: 4x4 gray images, 10 classes, 2 of each.
pub fn write_idx(dir: &Path) {
    std::fs::create_dir_all(dir).expect("mkdir");
    for prefix in ["train", "t10k"] {
        let n = 20u32;
        let mut images = Vec::new();
        images.extend(0x0803u32.to_be_bytes());
        for v in [n, 4, 4] {
            images.extend(v.to_be_bytes());
        }
        let mut labels = Vec::new();
        labels.extend(0x0801u32.to_be_bytes());
        labels.extend(n.to_be_bytes());
        for i in 0..n {
            let class = (i % 10) as u8;
            images.extend(std::iter::repeat_n(class * 25, 16));
            labels.push(class);
        }
        std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), images).expect("write");
        std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), labels).expect("write");
    }
}

/// An MLP for one epoch on the IDX data set at `path`.
pub fn idx_spec(name: &str, path: &Path) -> String {
    format!(
        r#"name = "{name}"
[data]
format = "idx"
path = "{}"
[model]
backbone = "mlp"
[train]
epochs = 1
batch_size = 8
"#,
        path.display()
    )
}

/// A `caudad serve` process.
pub struct Caudad {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    pub data: PathBuf,
    /// Everything the daemon wrote on stderr after its address.
    pub stderr: Arc<Mutex<Vec<String>>>,
    /// The metrics endpoint's `127.0.0.1:PORT`, when the config has `[metrics]`.
    pub metrics: Option<String>,
}

impl Caudad {
    /// Starts the daemon with `config` (caudad.toml text) on `data` and waits for its address.
    pub fn start(data: &Path, config: &str) -> Self {
        Self::start_on(data, config, "127.0.0.1:0")
    }

    /// `start` on `listen` (a restarted daemon takes its predecessor's port, which its
    /// workers on a cluster dial).
    pub fn start_on(data: &Path, config: &str, listen: &str) -> Self {
        Self::start_with_env(data, config, listen, &[])
    }

    /// `start_on` with extra environment for the daemon (e.g. a `PATH` with fake tools).
    pub fn start_with_env(data: &Path, config: &str, listen: &str, env: &[(&str, &str)]) -> Self {
        Self::start_program(&caudad_bin(), data, config, listen, env)
    }

    /// `start_with_env` with another daemon binary built on `caudad::cli` (one that extends
    /// cauda, such as `caudad_seql_bin()`).
    pub fn start_program(
        program: &Path,
        data: &Path,
        config: &str,
        listen: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let path = data.join("caudad.toml");
        std::fs::write(&path, config).expect("write caudad.toml");
        let mut child = Command::new(program)
            .envs(env.iter().copied())
            .args(["serve", "--listen", listen, "--config"])
            .arg(&path)
            .arg("--data-dir")
            .arg(data.join("data"))
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn caudad serve");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        // Bounded: the daemon prints its address first (its metrics address, if any, just
        // before); give up after 200 lines.
        let mut metrics = None;
        let addr = lines
            .by_ref()
            .take(200)
            .map_while(Result::ok)
            .find_map(|l| {
                if let Some(m) = l.strip_prefix("caudad metrics on ") {
                    metrics = Some(m.to_string());
                }
                l.strip_prefix("caudad listening on ").map(str::to_string)
            })
            .expect("caudad printed its address");
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Ok(mut l) = sink.lock() {
                    l.push(line);
                }
            }
        });
        Self {
            child,
            url: format!("http://{addr}"),
            data: data.to_path_buf(),
            stderr: log,
            metrics,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: the daemon gets no chance to clean up (its workers live on until they notice).
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub async fn client(&self) -> CaudaClient<Channel> {
        CaudaClient::connect(self.url.clone())
            .await
            .expect("connect to caudad")
    }

    /// The live worker processes of this daemon: (pid, run id, attempt).
    pub fn workers(&self) -> Vec<(u32, u64, u32)> {
        workers_of(&self.url)
    }
}

impl Drop for Caudad {
    fn drop(&mut self) {
        let url = self.url.clone();
        self.kill9();
        for (pid, _, _) in workers_of(&url) {
            kill9(pid);
        }
    }
}

/// The `caudad work` processes that dial `url`: (pid, run, attempt), from /proc.
pub fn workers_of(url: &str) -> Vec<(u32, u64, u32)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = raw
            .split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let flag = |name: &str| {
            args.iter()
                .position(|a| a == name)
                .and_then(|i| args.get(i + 1))
                .cloned()
        };
        if args.get(1).map(String::as_str) == Some("work")
            && flag("--daemon").as_deref() == Some(url)
            && !is_zombie(pid)
            && let (Some(run), Some(attempt)) = (flag("--run"), flag("--attempt"))
            && let (Ok(run), Ok(attempt)) = (run.parse(), attempt.parse())
        {
            out.push((pid, run, attempt));
        }
    }
    out
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(true)
}

/// Whether a process is alive (and not a zombie).
pub fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(pid)
}

pub fn kill9(pid: u32) {
    // Not `kill(1)`: a minimal machine may lack procps.
    if let Ok(raw) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(raw),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// Awaits a background task of a test (a sampler told to stop), failing the test with the
/// task's own panic (an RPC error, a violated invariant) where `abort` would have lost it.
pub async fn join(task: tokio::task::JoinHandle<()>) {
    if let Err(e) = task.await {
        match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("a background task of the test ended badly: {e}"),
        }
    }
}

/// Polls `check` every 50 ms until it returns `Some`, or panics after `limit` naming `what`.
pub async fn wait_for<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn submit(client: &mut CaudaClient<Channel>, spec: &str) -> v1::SubmitExperimentResponse {
    client
        .submit_experiment(v1::SubmitExperimentRequest {
            spec_toml: spec.to_string(),
            source_name: Some("test.toml".into()),
            user: Some("tester".into()),
            ..Default::default()
        })
        .await
        .expect("submit")
        .into_inner()
}

/// The ids of the runs `spec` made (see `submit`).
pub async fn submit_ids(client: &mut CaudaClient<Channel>, spec: &str) -> Vec<u64> {
    submit(client, spec)
        .await
        .runs
        .iter()
        .map(|r| r.run_id)
        .collect()
}

/// Submits one `tiny_spec` experiment of `epochs` per `(name, resources, seeds)`: those
/// `[resources]` lines and a sweep over `seeds` (a TOML array, e.g. `"[1, 2]"`); their run ids.
pub async fn submit_grid(
    client: &mut CaudaClient<Channel>,
    epochs: u32,
    grid: &[(&str, &str, &str)],
) -> Vec<u64> {
    let mut ids = Vec::new();
    for (name, resources, seeds) in grid {
        let extra = format!("[resources]\n{resources}\n[sweep]\n\"train.seed\" = {seeds}\n");
        ids.extend(submit_ids(client, &tiny_spec(name, epochs, &extra)).await);
    }
    ids
}

/// Waits for `child` at most `limit` (killing it and failing the test after that); its output.
pub fn output_within(mut child: Child, limit: Duration, what: &str) -> std::process::Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("wait for the child").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("the child's output")
}

pub async fn get_run(client: &mut CaudaClient<Channel>, id: u64) -> v1::Run {
    client
        .get_run(v1::GetRunRequest { run_id: id })
        .await
        .expect("get run")
        .into_inner()
        .run
        .expect("run")
}

pub async fn epochs(client: &mut CaudaClient<Channel>, id: u64) -> Vec<v1::EpochMetrics> {
    client
        .get_metrics(v1::GetMetricsRequest { run_id: id })
        .await
        .expect("metrics")
        .into_inner()
        .epochs
}

/// Every stored event of a run (a replay-only watch).
pub async fn events(client: &mut CaudaClient<Channel>, id: u64) -> Vec<v1::RunEvent> {
    let mut stream = client
        .watch_run(v1::WatchRunRequest {
            run_id: id,
            replay_only: true,
            ..Default::default()
        })
        .await
        .expect("watch")
        .into_inner();
    let mut out = Vec::new();
    while let Some(e) = stream.message().await.expect("event") {
        out.push(e);
    }
    out
}

pub fn is_terminal(state: v1::RunState) -> bool {
    matches!(
        state,
        v1::RunState::Succeeded | v1::RunState::Failed | v1::RunState::Cancelled
    )
}

/// Waits until every run in `ids` is terminal; returns them.
pub async fn wait_all_done(
    client: &mut CaudaClient<Channel>,
    ids: &[u64],
    limit: Duration,
) -> Vec<v1::Run> {
    wait_for(limit, "every run to finish", || {
        let mut c = client.clone();
        let ids = ids.to_vec();
        async move {
            let mut runs = Vec::new();
            for id in ids {
                let run = get_run(&mut c, id).await;
                if !is_terminal(run.state()) {
                    return None;
                }
                runs.push(run);
            }
            Some(runs)
        }
    })
    .await
}

/// The log lines of a run's events.
pub fn log_lines(events: &[v1::RunEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match &e.event {
            Some(v1::run_event::Event::Log(l)) => Some(l.line.clone()),
            _ => None,
        })
        .collect()
}

/// A log line starting with `prefix` was stored before the run's terminal state, so a watcher
/// that stops at the end (`cauda logs -f`, `submit --wait`) has seen it.
pub fn assert_line_before_end(events: &[v1::RunEvent], prefix: &str) {
    let line = events.iter().position(
        |e| matches!(&e.event, Some(v1::run_event::Event::Log(l)) if l.line.starts_with(prefix)),
    );
    let end = events.iter().position(
        |e| matches!(&e.event, Some(v1::run_event::Event::State(s)) if is_terminal(s.to())),
    );
    assert!(
        line.is_some() && line < end,
        "the line {prefix:?} (at {line:?}) is not before the end (at {end:?}): {:?}",
        log_lines(events)
    );
}

/// The state changes of a run's events: (from, to, reason).
pub fn state_changes(events: &[v1::RunEvent]) -> Vec<(v1::RunState, v1::RunState, String)> {
    events
        .iter()
        .filter_map(|e| match &e.event {
            Some(v1::run_event::Event::State(s)) => {
                Some((s.from(), s.to(), s.reason.clone().unwrap_or_default()))
            }
            _ => None,
        })
        .collect()
}

/// The grants sent with a run's first change to RUNNING.
pub fn first_grants(events: &[v1::RunEvent]) -> Vec<v1::Grant> {
    events
        .iter()
        .find_map(|e| match &e.event {
            Some(v1::run_event::Event::State(s)) if s.to() == v1::RunState::Running => {
                Some(s.grants.clone())
            }
            _ => None,
        })
        .expect("the run started")
}

/// Asserts what every crash test asks of a finished run: it succeeded, its stored epochs are
/// exactly 1..=total (none missing, none repeated) and it entered SUCCEEDED once. Returns its
/// state changes for further checks.
pub async fn assert_finished_once(
    client: &mut CaudaClient<Channel>,
    run: &v1::Run,
    total: u32,
) -> Vec<(v1::RunState, v1::RunState, String)> {
    assert_eq!(run.state(), v1::RunState::Succeeded, "{run:?}");
    let numbers: Vec<u32> = epochs(client, run.run_id)
        .await
        .iter()
        .map(|m| m.epoch)
        .collect();
    assert_eq!(
        numbers,
        (1..=total).collect::<Vec<_>>(),
        "r-{}: contiguous, none missing, none repeated",
        run.run_id
    );
    let states = state_changes(&events(client, run.run_id).await);
    let succeeded = states
        .iter()
        .filter(|s| s.1 == v1::RunState::Succeeded)
        .count();
    assert_eq!(succeeded, 1, "r-{} finished exactly once", run.run_id);
    states
}

/// A daemon config with two users and an admin on 2 CPU slots: ada, bob and root (admin), whose
/// tokens are "t-ada", "t-bob" and "t-root".
pub fn three_users_config() -> String {
    let user = |name: &str, admin: bool| {
        let hash = caudad::store::sha256_hex(format!("t-{name}").as_bytes());
        format!("{{ name = \"{name}\", token_sha256 = \"{hash}\", admin = {admin} }}")
    };
    format!(
        "devices = [\"cpu:2\"]\n[auth]\nusers = [{}, {}, {}]\n",
        user("ada", false),
        user("bob", false),
        user("root", true)
    )
}

/// `message` with `authorization: Bearer <token>`.
pub fn as_user<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    cauda_proto::Bearer::new(token)
        .expect("ascii token")
        .apply(&mut request);
    request
}
