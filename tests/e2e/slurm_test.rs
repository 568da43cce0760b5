//! The Slurm executor against a REAL single-node Slurm 22.05 cluster (slurmctld + slurmd +
//! munge, 2 fake GPUs, 4 shards; `.ci/slurm-up.sh` starts it when it is installed but down):
//! a grid runs to the end with one job per GPU at a time; `cauda cancel` removes the jobs;
//! `scontrol requeue` resumes a run from its checkpoint as a new attempt; a daemon killed with
//! SIGKILL and restarted on its port reconciles with Slurm: no duplicate job, every run finished
//! exactly once; with `[auth]` and `data_roots` a job's worker authenticates and re-checks
//! the data path. Skipped (`common::skip`; a failure under `CAUDA_REQUIRE_ALL`) only where Slurm
//! is not installed.

use crate::common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cauda_proto::v1;
use common::*;

const LIMIT: Duration = Duration::from_secs(120);

/// The tests share one cluster with 2 GPUs: one at a time.
static CLUSTER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Starts the cluster if needed; `false` (after `skip`) when Slurm is not installed.
fn slurm_up() -> bool {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ci/slurm-up.sh");
    let out = Command::new("sh")
        .arg(&script)
        .output()
        .expect("run .ci/slurm-up.sh");
    match out.status.code() {
        Some(0) => true,
        Some(2) => {
            skip(
                &format!(
                    "Slurm is not installed here ({})",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
                "apt-get install slurm-wlm munge, as .ci/run does",
            );
            false
        }
        _ => panic!(
            ".ci/slurm-up.sh failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// A daemon config for the Slurm executor; `prefix` keeps each test's jobs apart.
fn config(prefix: &str) -> String {
    format!(
        "max_retries = 0\nheartbeat_timeout_ms = 20000\nexecutor = \"slurm\"\n[slurm]\n\
         poll_interval_ms = 200\njob_name_prefix = \"{prefix}\"\nworker_patience_secs = 60\n\
         shards_per_gpu = 4\n"
    )
}

/// A prefix unique to this test process and test.
fn prefix(test: &str) -> String {
    format!("t{}{test}", std::process::id())
}

/// Every job squeue knows whose name starts with `prefix-`: (id, name, state).
fn jobs(prefix: &str) -> Vec<(u64, String, String)> {
    let out = Command::new("squeue")
        .args(["--json"])
        .output()
        .expect("squeue");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("squeue json");
    v["jobs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|j| {
            let name = j["name"].as_str()?;
            name.starts_with(&format!("{prefix}-")).then(|| {
                (
                    j["job_id"].as_u64().unwrap_or(0),
                    name.to_string(),
                    j["job_state"].as_str().unwrap_or("").to_string(),
                )
            })
        })
        .collect()
}

fn active(state: &str) -> bool {
    !matches!(
        state,
        "COMPLETED"
            | "FAILED"
            | "CANCELLED"
            | "TIMEOUT"
            | "NODE_FAIL"
            | "PREEMPTED"
            | "OUT_OF_MEMORY"
    )
}

/// Cancels whatever a failed test left queued or running.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for (id, _, state) in jobs(&self.0) {
            if active(&state) {
                let _ = Command::new("scancel").arg(id.to_string()).status();
            }
        }
    }
}

/// No two jobs ever had the same name (squeue keeps ended jobs for MinJobAge, 5 minutes).
fn assert_no_duplicate_jobs(prefix: &str) {
    let mut names: HashMap<String, Vec<u64>> = HashMap::new();
    for (id, name, _) in jobs(prefix) {
        names.entry(name).or_default().push(id);
    }
    let dups: Vec<_> = names.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(dups.is_empty(), "duplicate jobs: {dups:?}");
}

/// One job's stamps from its log: (job, start_ms, end_ms, CUDA_VISIBLE_DEVICES).
fn stamps(log: &Path) -> Option<(u64, u64, u64, String)> {
    let text = std::fs::read_to_string(log).ok()?;
    let field = |line: &str, key: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .map(str::to_string)
    };
    let start = text.lines().find(|l| l.contains("start_ms="))?;
    let end = text.lines().find(|l| l.contains("end_ms="))?;
    let job = start.split_whitespace().nth(2)?.parse().ok()?;
    Some((
        job,
        field(start, "start_ms=")?.parse().ok()?,
        field(end, "end_ms=")?.parse().ok()?,
        field(start, "CUDA_VISIBLE_DEVICES=").unwrap_or_default(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gpu_grid_runs_through_slurm_one_job_per_gpu_at_a_time() {
    let _cluster = CLUSTER.lock().await;
    if !slurm_up() {
        return;
    }
    let prefix = prefix("grid");
    let _cleanup = Cleanup(prefix.clone());
    let dir = tempfile::tempdir().unwrap();
    let daemon = Caudad::start(dir.path(), &config(&prefix));
    let mut client = daemon.client().await;
    let spec = tiny_spec(
        "grid",
        3,
        "[resources]\ngpus = 1\n[sweep]\n\"train.seed\" = [1, 2, 3, 4]\n",
    );
    let ids = submit_ids(&mut client, &spec).await;
    let runs = wait_all_done(&mut client, &ids, LIMIT).await;
    let mut spans = Vec::new();
    for run in &runs {
        assert_finished_once(&mut client, run, 3).await;
        assert_eq!(run.attempt, 1);
        let job = run.slurm_job_id.expect("the slurm job id is recorded");
        assert_eq!(run.slurm_job_attempt, Some(1));
        let log = dir
            .path()
            .join(format!("data/slurm-logs/{prefix}-{}-1.log", run.run_id));
        // The job's script stamps its end just after the worker finished. Bounded by the
        // suite's LIMIT: a fresh-clone CI on a loaded machine once took over 60 s here.
        let (stamped, start, end, gpu) = wait_for(LIMIT, "the job's stamps", || {
            let found = stamps(&log);
            async move { found }
        })
        .await;
        assert_eq!(stamped, job);
        assert!(
            gpu == "0" || gpu == "1",
            "r-{}: CUDA_VISIBLE_DEVICES={gpu:?}",
            run.run_id
        );
        // The worker saw it too (its own line in the job's output file), and the run's log
        // names the job.
        let text = std::fs::read_to_string(&log).expect("job log");
        let said = format!("CUDA_VISIBLE_DEVICES=\"{gpu}\"");
        assert!(text.contains(&said), "{said} in {text}");
        // The worker's last line is stored before the run's end (read when its Finish came,
        // not at the next poll), so a watcher that stops at the end has seen it.
        let stored = events(&mut client, run.run_id).await;
        assert_line_before_end(&stored, "epoch 3/3");
        let lines = log_lines(&stored);
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&format!("slurm job {job}"))),
            "{lines:?}"
        );
        spans.push((run.run_id, start, end, gpu));
    }
    for (i, a) in spans.iter().enumerate() {
        for b in &spans[i + 1..] {
            let overlap = a.1 < b.2 && b.1 < a.2;
            assert!(
                !(overlap && a.3 == b.3),
                "r-{} and r-{} shared gpu {}",
                a.0,
                b.0,
                a.3
            );
        }
    }
    assert_no_duplicate_jobs(&prefix);
}

/// With `[auth]` and `data_roots`, a job's worker gets what a local worker gets: it talks to
/// the daemon with its attempt's token (in the job's environment), and re-checks the run's data
/// path against the roots (`CAUDA_DATA_ROOTS`) before opening it. The jobs start 3 s after
/// submission (`--begin`), time enough to point a symlink outside the root: that run fails
/// naming the roots, and a run under the root trains to the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_authenticate_and_recheck_the_data_roots() {
    let _cluster = CLUSTER.lock().await;
    if !slurm_up() {
        return;
    }
    let prefix = prefix("auth");
    let _cleanup = Cleanup(prefix.clone());
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    write_idx(&root.join("mnist"));
    write_idx(&dir.path().join("outside/mnist"));
    let swapped = root.join("swapped");
    std::os::unix::fs::symlink(root.join("mnist"), &swapped).unwrap();
    let base = config(&prefix);
    let (top, slurm) = base.split_once("[slurm]\n").expect("a [slurm] section");
    let text = format!(
        "{top}data_roots = [\"{}\"]\n{}[slurm]\nextra_sbatch_args = [\"--begin=now+3\"]\n{slurm}",
        root.display(),
        three_users_config()
    );
    let daemon = Caudad::start(dir.path(), &text);
    let mut client = daemon.client().await;
    let mut ids = Vec::new();
    for (name, path) in [
        ("direct", root.join("mnist")),
        ("late-swap", swapped.clone()),
    ] {
        let request = v1::SubmitExperimentRequest {
            spec_toml: idx_spec(name, &path),
            source_name: Some("auth.toml".into()),
            ..Default::default()
        };
        let reply = client
            .submit_experiment(as_user("t-ada", request))
            .await
            .expect("submit as ada")
            .into_inner();
        ids.push(reply.runs[0].run_id);
    }
    std::fs::remove_file(&swapped).unwrap();
    std::os::unix::fs::symlink(dir.path().join("outside/mnist"), &swapped).unwrap();
    let runs = wait_for(LIMIT, "both runs to end", || {
        let mut c = client.clone();
        let ids = ids.clone();
        async move {
            let mut runs = Vec::new();
            for id in ids {
                let run = c
                    .get_run(as_user("t-bob", v1::GetRunRequest { run_id: id }))
                    .await
                    .expect("get run as bob")
                    .into_inner()
                    .run
                    .expect("run");
                if !is_terminal(run.state()) {
                    return None;
                }
                runs.push(run);
            }
            Some(runs)
        }
    })
    .await;
    assert_eq!(runs[0].state(), v1::RunState::Succeeded, "{:?}", runs[0]);
    assert_eq!(runs[0].user, "ada");
    assert!(runs[0].slurm_job_id.is_some());
    assert_eq!(runs[0].slurm_job_state, None, "not a stale poll once ended");
    assert_eq!(runs[1].state(), v1::RunState::Failed, "{:?}", runs[1]);
    let error = runs[1].error.clone().unwrap_or_default();
    assert!(
        error.contains("data.path") && error.contains("outside the data roots"),
        "{error}"
    );
    assert_no_duplicate_jobs(&prefix);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_removes_running_and_pending_jobs_and_show_has_slurms_reason() {
    let _cluster = CLUSTER.lock().await;
    if !slurm_up() {
        return;
    }
    let prefix = prefix("cancel");
    let _cleanup = Cleanup(prefix.clone());
    let dir = tempfile::tempdir().unwrap();
    let daemon = Caudad::start(dir.path(), &config(&prefix));
    let mut client = daemon.client().await;
    // Three whole-GPU runs on two GPUs: one pends in Slurm for resources.
    let spec = tiny_spec(
        "long",
        400,
        "[resources]\ngpus = 1\n[sweep]\n\"train.seed\" = [1, 2, 3]\n",
    );
    let ids = submit_ids(&mut client, &spec).await;
    let experiment = submit(&mut client, &tiny_spec("other", 1, "")).await;
    let pending = wait_for(LIMIT, "two jobs running and one pending", || {
        let mut c = client.clone();
        let ids = ids.clone();
        async move {
            let mut running = 0;
            let mut pending = None;
            for id in ids {
                let run = get_run(&mut c, id).await;
                match run.slurm_job_state.as_deref() {
                    Some("RUNNING") => running += 1,
                    Some(s) if s.starts_with("PENDING (") => pending = Some(run),
                    _ => {}
                }
            }
            (running == 2).then_some(pending).flatten()
        }
    })
    .await;
    assert_eq!(
        pending.state(),
        v1::RunState::Running,
        "dispatched to Slurm"
    );
    assert!(
        pending
            .slurm_job_state
            .as_deref()
            .unwrap()
            .contains("Resources")
            || pending
                .slurm_job_state
                .as_deref()
                .unwrap()
                .contains("Priority"),
        "{:?}",
        pending.slurm_job_state
    );
    let experiment_id = get_run(&mut client, ids[0]).await.experiment_id;
    client
        .cancel_run(v1::CancelRunRequest {
            target: Some(v1::cancel_run_request::Target::ExperimentId(experiment_id)),
            reason: Some("test".into()),
        })
        .await
        .expect("cancel");
    let names: Vec<String> = ids.iter().map(|id| format!("{prefix}-{id}-1")).collect();
    wait_for(
        Duration::from_secs(30),
        "the jobs to leave the queue",
        || {
            let left: Vec<_> = jobs(&prefix)
                .into_iter()
                .filter(|(_, name, state)| names.contains(name) && active(state))
                .collect();
            async move { left.is_empty().then_some(()) }
        },
    )
    .await;
    for id in &ids {
        assert_eq!(
            get_run(&mut client, *id).await.state(),
            v1::RunState::Cancelled
        );
    }
    // The other experiment's CPU run was untouched and finishes.
    let other: Vec<u64> = experiment.runs.iter().map(|r| r.run_id).collect();
    let done = wait_all_done(&mut client, &other, LIMIT).await;
    assert_eq!(done[0].state(), v1::RunState::Succeeded);
    assert_no_duplicate_jobs(&prefix);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_requeued_by_slurm_resumes_from_its_checkpoint_as_a_new_attempt() {
    let _cluster = CLUSTER.lock().await;
    if !slurm_up() {
        return;
    }
    let prefix = prefix("requeue");
    let _cleanup = Cleanup(prefix.clone());
    let dir = tempfile::tempdir().unwrap();
    let daemon = Caudad::start(dir.path(), &config(&prefix));
    let mut client = daemon.client().await;
    let total = 60;
    let ids = submit_ids(
        &mut client,
        &tiny_spec("rq", total, "[resources]\ngpu_share = 0.5\n"),
    )
    .await;
    let id = ids[0];
    let job = wait_for(LIMIT, "a few epochs trained", || {
        let mut c = client.clone();
        async move {
            let run = get_run(&mut c, id).await;
            (run.epochs_done >= 3).then_some(run.slurm_job_id).flatten()
        }
    })
    .await;
    let status = Command::new("scontrol")
        .args(["requeue", &job.to_string()])
        .status()
        .expect("scontrol");
    assert!(status.success());
    let runs = wait_all_done(&mut client, &ids, LIMIT).await;
    let states = assert_finished_once(&mut client, &runs[0], total).await;
    assert_eq!(runs[0].attempt, 2, "resumed as a new attempt");
    let requeue = states
        .iter()
        .find(|s| s.0 == v1::RunState::Running && s.1 == v1::RunState::Queued)
        .expect("requeued");
    assert!(
        requeue.2.contains(&format!("slurm requeued job {job}")),
        "{}",
        requeue.2
    );
    let metrics = epochs(&mut client, id).await;
    assert_eq!(metrics[0].attempt, 1);
    assert_eq!(
        metrics.last().unwrap().attempt,
        2,
        "not trained again from scratch"
    );
    assert!(metrics.iter().filter(|m| m.attempt == 1).count() >= 3);
    // max_retries = 0: a requeue is not a failure, or the run would have failed.
    let lines = log_lines(&events(&mut client, id).await);
    assert!(
        lines.iter().any(|l| l.contains("resuming after epoch")),
        "{lines:?}"
    );
    assert_no_duplicate_jobs(&prefix);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_killed_mid_grid_reconciles_with_slurm_without_duplicates() {
    let _cluster = CLUSTER.lock().await;
    if !slurm_up() {
        return;
    }
    let prefix = prefix("restart");
    let _cleanup = Cleanup(prefix.clone());
    let dir = tempfile::tempdir().unwrap();
    let mut first = Caudad::start(dir.path(), &config(&prefix));
    let listen = first.url.trim_start_matches("http://").to_string();
    let mut client = first.client().await;
    let total = 40;
    let spec = tiny_spec(
        "restart",
        total,
        "[resources]\ngpus = 1\n[sweep]\n\"train.seed\" = [1, 2, 3, 4]\n",
    );
    let ids = submit_ids(&mut client, &spec).await;
    let before: BTreeMap<u64, u64> = wait_for(LIMIT, "two runs a few epochs in", || {
        let mut c = client.clone();
        let ids = ids.clone();
        async move {
            let mut mid = BTreeMap::new();
            for id in ids {
                let run = get_run(&mut c, id).await;
                if run.epochs_done >= 2
                    && let Some(job) = run.slurm_job_id
                {
                    mid.insert(id, job);
                }
            }
            (mid.len() >= 2).then_some(mid)
        }
    })
    .await;
    first.kill9();
    drop(client);
    let second = Caudad::start_on(dir.path(), &config(&prefix), &listen);
    let mut client = second.client().await;
    let runs = wait_all_done(&mut client, &ids, LIMIT).await;
    for run in &runs {
        assert_finished_once(&mut client, run, total).await;
        if let Some(job) = before.get(&run.run_id) {
            assert_eq!(
                run.attempt, 1,
                "r-{}: its job was kept, its worker reconnected",
                run.run_id
            );
            assert_eq!(run.slurm_job_id, Some(*job));
        }
    }
    assert_no_duplicate_jobs(&prefix);
    let log = second.stderr.lock().unwrap().join("\n");
    assert!(!log.contains("panicked"), "{log}");
}

/// Milliseconds from a run's submission to its worker's registration (daemon clock).
async fn submit_to_registered(
    client: &mut cauda_proto::v1::cauda_client::CaudaClient<tonic::transport::Channel>,
    id: u64,
) -> i64 {
    let run = get_run(client, id).await;
    let registered = events(client, id)
        .await
        .iter()
        .find_map(|e| match &e.event {
            Some(v1::run_event::Event::Log(l)) if l.line.contains("registered") => Some(e.at_ms),
            _ => None,
        })
        .expect("the worker registered");
    registered - run.submitted_at_ms
}

/// One executor's figures: (submit-to-registered latencies in ms, makespan of the grid in s).
async fn measure(daemon: &Caudad, probes: usize, grid: usize) -> (Vec<i64>, f64) {
    let mut client = daemon.client().await;
    let mut latencies = Vec::new();
    for i in 0..probes {
        let ids = submit_ids(
            &mut client,
            &tiny_spec(&format!("probe{i}"), 1, &format!("seed = {}\n", 1000 + i)),
        )
        .await;
        assert_eq!(ids.len(), 1, "a new run, not a reused one");
        wait_all_done(&mut client, &ids, LIMIT).await;
        latencies.push(submit_to_registered(&mut client, ids[0]).await);
    }
    let seeds: Vec<String> = (1..=grid).map(|s| s.to_string()).collect();
    let spec = tiny_spec(
        "grid",
        1,
        &format!("[sweep]\n\"train.seed\" = [{}]\n", seeds.join(", ")),
    );
    let started = std::time::Instant::now();
    let ids = submit_ids(&mut client, &spec).await;
    let runs = wait_all_done(&mut client, &ids, Duration::from_secs(1800)).await;
    let makespan = started.elapsed().as_secs_f64();
    assert!(runs.iter().all(|r| r.state() == v1::RunState::Succeeded));
    latencies.sort_unstable();
    (latencies, makespan)
}

/// `bench/slurm.sh`: submit-to-start latency and a grid's makespan through Slurm against the
/// local process executor, both with 2 CPU slots (the node's 2 CPUs, `cpus_per_task = 1`).
/// Prints figures, asserts none of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: bench/slurm.sh runs it"]
async fn bench_slurm_against_local() {
    let _cluster = CLUSTER.lock().await;
    if !slurm_up() {
        return;
    }
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (probes, grid) = (env("BENCH_PROBES", 10), env("BENCH_GRID", 100));
    let prefix = prefix("bench");
    let _cleanup = Cleanup(prefix.clone());
    let local_dir = tempfile::tempdir().unwrap();
    let local = Caudad::start(local_dir.path(), "devices = [\"cpu:2\"]\nmax_retries = 0\n");
    let (local_lat, local_span) = measure(&local, probes, grid).await;
    drop(local);
    let slurm_dir = tempfile::tempdir().unwrap();
    let slurm = Caudad::start(slurm_dir.path(), &config(&prefix));
    let (slurm_lat, slurm_span) = measure(&slurm, probes, grid).await;
    let median = |v: &[i64]| v[v.len() / 2] as f64;
    let mean = |v: &[i64]| v.iter().sum::<i64>() as f64 / v.len() as f64;
    println!("submit -> worker registered, ms ({probes} runs one after another):");
    println!(
        "  local  median {:7.0}  mean {:7.0}  max {:6}",
        median(&local_lat),
        mean(&local_lat),
        local_lat.last().unwrap()
    );
    println!(
        "  slurm  median {:7.0}  mean {:7.0}  max {:6}   ratio slurm/local (median) {:.2}",
        median(&slurm_lat),
        mean(&slurm_lat),
        slurm_lat.last().unwrap(),
        median(&slurm_lat) / median(&local_lat)
    );
    println!("makespan of a {grid}-run grid (1 epoch each, 2 at a time):");
    println!("  local  {local_span:7.1} s");
    println!(
        "  slurm  {slurm_span:7.1} s   ratio slurm/local {:.2}",
        slurm_span / local_span
    );
    println!(
        "{{\"probes\":{probes},\"grid\":{grid},\"local_latency_median_ms\":{},\"slurm_latency_median_ms\":{},\"local_makespan_s\":{local_span:.2},\"slurm_makespan_s\":{slurm_span:.2}}}",
        median(&local_lat),
        median(&slurm_lat)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_runs_go_through_slurm_like_engine_runs() {
    let _cluster = CLUSTER.lock().await;
    if !slurm_up() {
        return;
    }
    let prefix = prefix("cmd");
    let _cleanup = Cleanup(prefix.clone());
    let dir = tempfile::tempdir().unwrap();
    let config = format!("{}[commands]\nenabled = true\n", config(&prefix));
    let daemon = Caudad::start(dir.path(), &config);
    let mut client = daemon.client().await;
    // A program on a GPU share of a Slurm job: it sees the job's device and reports through fd 3.
    let spec = r#"name = "slurm-cmd"
[command]
argv = ["sh", "-c", "echo seed={seed} gpu=$CUDA_VISIBLE_DEVICES; echo '{{\"v\":1,\"type\":\"epoch\",\"epoch\":1,\"train_loss\":0.5,\"test_top1\":0.5}}' >&3"]
[train]
seed = 1
[resources]
gpu_share = 0.25
[sweep]
"train.seed" = [1, 2]
"#;
    let ids = submit_ids(&mut client, spec).await;
    assert_eq!(ids.len(), 2);
    let runs = wait_all_done(&mut client, &ids, LIMIT).await;
    for run in &runs {
        assert_eq!(
            run.state(),
            v1::RunState::Succeeded,
            "r-{}: {}",
            run.run_id,
            run.error()
        );
        assert!(
            run.slurm_job_id.is_some(),
            "r-{} ran as a Slurm job",
            run.run_id
        );
        let lines = log_lines(&events(&mut client, run.run_id).await);
        let seen = lines
            .iter()
            .find_map(|l| l.strip_prefix("seed="))
            .unwrap_or_else(|| panic!("the program's line in {lines:#?}"));
        assert!(
            seen.contains(" gpu=0") || seen.contains(" gpu=1"),
            "one of the cluster's GPUs: {seen}"
        );
        assert_eq!(epochs(&mut client, run.run_id).await.len(), 1);
    }
    assert_no_duplicate_jobs(&prefix);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_squeue_polls_are_counted_and_the_daemon_carries_on() {
    let _cluster = CLUSTER.lock().await;
    if !slurm_up() {
        return;
    }
    let prefix = prefix("poll");
    let _cleanup = Cleanup(prefix.clone());
    let dir = tempfile::tempdir().unwrap();
    // A `squeue` on the daemon's PATH that fails while a marker file exists, else runs the real one.
    let real = String::from_utf8(
        Command::new("sh")
            .args(["-c", "command -v squeue"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let marker = dir.path().join("squeue-down");
    std::fs::write(
        bin.join("squeue"),
        format!(
            "#!/bin/sh\nif [ -e '{}' ]; then echo 'slurm_load_jobs error: Unable to contact slurm controller' >&2; exit 1; fi\nexec {} \"$@\"\n",
            marker.display(),
            real.trim()
        ),
    )
    .unwrap();
    Command::new("chmod")
        .arg("755")
        .arg(bin.join("squeue"))
        .status()
        .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let config = format!("{}[metrics]\nlisten = \"127.0.0.1:0\"\n", config(&prefix));
    let daemon = Caudad::start_with_env(dir.path(), &config, "127.0.0.1:0", &[("PATH", &path)]);
    let addr = daemon.metrics.clone().expect("metrics address");
    assert_eq!(
        get(&scrape(&addr).await, "cauda_slurm_poll_errors_total"),
        0.0
    );
    std::fs::write(&marker, b"").unwrap();
    wait_for(LIMIT, "failed polls to be counted", || {
        let addr = addr.clone();
        async move { (get(&scrape(&addr).await, "cauda_slurm_poll_errors_total") >= 2.0).then_some(()) }
    })
    .await;
    // Slurm back: the daemon schedules as before.
    std::fs::remove_file(&marker).unwrap();
    let mut client = daemon.client().await;
    let ids = submit_ids(&mut client, &tiny_spec("after-outage", 1, "")).await;
    let run = wait_all_done(&mut client, &ids, LIMIT).await.remove(0);
    assert_eq!(run.state(), v1::RunState::Succeeded, "{}", run.error());
}
